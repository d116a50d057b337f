//! OpenAI Batch (and compatible servers): a JSONL file uploaded to `{base_url}/files` with
//! `purpose=batch`, a batch created at `{base_url}/batches` on it, polled at
//! `/batches/{id}`, and its `output_file_id` and `error_file_id` read from
//! `/files/{id}/content` (shared/reference/providers.md §1 Batch API).
//!
//! Input line: `{"custom_id","method":"POST","url","body"}`; output line:
//! `{"id","custom_id","response":{"status_code","body"}|null,"error":{"code","message"}|null}`.
//! Lines come back in any order and are joined on `custom_id`. `error.code: "batch_expired"`
//! (and `batch_cancelled`) mark requests the batch never ran.

use reqwest::Method;
use serde_json::{Value, json};

use super::batch::{
    Conn, End, LineResult, ResultLine, State, WireError, parse_lines, quoted, text_field,
};
use super::{Protocol, ProviderConfig};

/// The endpoint path a request line names: the path of the protocol's URL
/// (`/v1/chat/completions`, `/v1/responses`).
fn endpoint(cfg: &ProviderConfig, protocol: &dyn Protocol) -> String {
    let url = protocol.url(cfg);
    reqwest::Url::parse(&url).map_or(url, |u| u.path().to_string())
}

/// One JSONL input line.
pub fn line(cfg: &ProviderConfig, protocol: &dyn Protocol, custom_id: &str, body: &str) -> String {
    format!(
        r#"{{"custom_id":{},"method":"POST","url":{},"body":{body}}}"#,
        quoted(custom_id),
        quoted(&endpoint(cfg, protocol))
    )
}

fn base(c: &Conn<'_>) -> String {
    c.cfg.base_url.trim_end_matches('/').to_string()
}

/// Uploads the lines as a file and creates the batch on it.
pub async fn submit(c: &Conn<'_>, lines: &str, name: &str) -> Result<(String, String), WireError> {
    let file = reqwest::multipart::Part::bytes(lines.as_bytes().to_vec())
        .file_name(format!("{name}.jsonl"))
        .mime_str("application/jsonl")
        .map_err(|e| WireError {
            status: None,
            message: e.to_string(),
            transient: false,
        })?;
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part("file", file);
    let uploaded = c
        .json(
            c.request(Method::POST, &format!("{}/files", base(c)))
                .multipart(form),
        )
        .await?;
    let file_id = text_field(&uploaded, "/id")?;
    let created = c
        .json(
            c.request(Method::POST, &format!("{}/batches", base(c)))
                .json(&json!({
                    "input_file_id": file_id,
                    "endpoint": endpoint(c.cfg, c.protocol),
                    "completion_window": "24h",
                    "metadata": {"costbench": name},
                })),
        )
        .await?;
    Ok((
        text_field(&created, "/id")?,
        text_field(&created, "/status").unwrap_or_else(|_| "validating".into()),
    ))
}

/// Reads a batch's status.
pub async fn poll(c: &Conn<'_>, id: &str) -> Result<State, WireError> {
    let raw = c
        .json(c.request(Method::GET, &format!("{}/batches/{id}", base(c))))
        .await?;
    Ok(state(raw))
}

fn state(raw: Value) -> State {
    let status = raw["status"].as_str().unwrap_or("unknown").to_string();
    let end = match status.as_str() {
        "completed" => Some(End::Completed),
        "failed" => Some(End::Failed(
            raw.pointer("/errors/data/0/message")
                .and_then(Value::as_str)
                .unwrap_or("the batch failed")
                .to_string(),
        )),
        "expired" => Some(End::Expired),
        "cancelled" => Some(End::Canceled),
        _ => None,
    };
    State { status, end, raw }
}

/// The lines of the output file and the error file.
pub async fn results(c: &Conn<'_>, s: &State) -> Result<Vec<ResultLine>, WireError> {
    let mut out = Vec::new();
    for key in ["output_file_id", "error_file_id"] {
        let Some(fid) = s.raw[key].as_str().filter(|f| !f.is_empty()) else {
            continue;
        };
        let bytes = c
            .send(c.request(Method::GET, &format!("{}/files/{fid}/content", base(c))))
            .await?;
        out.extend(parse_lines(&bytes, parse_line)?);
    }
    Ok(out)
}

/// Reads one output or error line.
pub fn parse_line(v: &Value) -> Option<ResultLine> {
    let custom_id = v["custom_id"].as_str()?.to_string();
    let result = match (&v["response"], &v["error"]) {
        (r, _) if r.is_object() => {
            let status = r["status_code"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok());
            match status {
                Some(200..=299) => LineResult::Response(r["body"].to_string()),
                _ => {
                    let e = &r["body"]["error"];
                    LineResult::Error {
                        status,
                        code: e["code"]
                            .as_str()
                            .or_else(|| e["type"].as_str())
                            .map(str::to_string),
                        message: e["message"]
                            .as_str()
                            .map_or_else(|| r["body"].to_string(), str::to_string),
                    }
                }
            }
        }
        (_, e) if e.is_object() => {
            let code = e["code"].as_str().map(str::to_string);
            let message = e["message"].as_str().unwrap_or_default().to_string();
            match code.as_deref() {
                Some("batch_expired") => LineResult::Expired(message),
                Some("batch_cancelled") => LineResult::Canceled(message),
                _ => LineResult::Error {
                    status: None,
                    code,
                    message,
                },
            }
        }
        _ => return None,
    };
    Some(ResultLine { custom_id, result })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testutil::{config, fixture};

    #[test]
    fn input_lines_have_the_fixture_shape() {
        let cfg = config(
            "openai",
            "https://api.openai.com/v1",
            "gpt-4.1-mini",
            json!({}),
        );
        let body = r#"{"model":"gpt-4.1-mini","messages":[]}"#;
        let l: Value =
            serde_json::from_str(&line(&cfg, &crate::providers::openai::OpenAi, "r7", body))
                .unwrap();
        let fx: Value = serde_json::from_slice(
            fixture("openai-batch-input.jsonl")
                .split(|b| *b == b'\n')
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(l["url"], fx["url"]);
        assert_eq!(l["method"], fx["method"]);
        assert_eq!(l["custom_id"], "r7");
        assert_eq!(l["body"], serde_json::from_str::<Value>(body).unwrap());
    }

    #[test]
    fn output_and_error_lines_of_the_fixtures() {
        let out = parse_lines(&fixture("openai-batch-output.jsonl"), parse_line).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].custom_id, "task-0001");
        let LineResult::Response(body) = &out[0].result else {
            panic!("{out:?}")
        };
        assert!(body.contains("\"Paris\""));
        let errs = parse_lines(&fixture("openai-batch-errors.jsonl"), parse_line).unwrap();
        assert_eq!(
            errs[0].result,
            LineResult::Error {
                status: Some(400),
                code: Some("invalid_value".into()),
                message: "Invalid value for 'max_completion_tokens': must be a positive integer."
                    .into()
            }
        );
        assert!(
            matches!(&errs[1].result, LineResult::Expired(m) if m.contains("completion window"))
        );
    }

    #[test]
    fn batch_states() {
        assert_eq!(state(json!({"status": "in_progress"})).end, None);
        assert_eq!(
            state(json!({"status": "completed"})).end,
            Some(End::Completed)
        );
        assert_eq!(
            state(json!({"status": "failed", "errors": {"data": [{"message": "bad line 3"}]}})).end,
            Some(End::Failed("bad line 3".into()))
        );
        assert_eq!(
            state(json!({"status": "cancelled"})).end,
            Some(End::Canceled)
        );
    }
}
