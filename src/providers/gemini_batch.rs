//! Gemini batch mode: `POST {base_url}/v1beta/models/{model}:batchGenerateContent` with the
//! requests inlined (`inputConfig.requests.requests[]`, each `{request, metadata: {key}}`), a
//! long-running operation polled at `/v1beta/{name}` until its `metadata.state` is terminal,
//! and results read from its inlined responses (shared/reference/providers.md §4 Batch).
//!
//! Unverified against the live API (the reference marks the output shape unverified): where
//! the inlined responses sit (both `response.inlinedResponses` and
//! `metadata.output.inlinedResponses` are read), and the download path of a `responsesFile`
//! (`/download/v1beta/{file}:download?alt=media`), whose lines are `{"key", "response"|"error"}`.

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use super::batch::{
    Conn, End, LineResult, ResultLine, State, WireError, parse_lines, quoted, text_field,
};

/// One inlined request.
pub fn line(custom_id: &str, body: &str) -> String {
    format!(
        r#"{{"request":{body},"metadata":{{"key":{}}}}}"#,
        quoted(custom_id)
    )
}

fn base(c: &Conn<'_>) -> String {
    c.cfg.base_url.trim_end_matches('/').to_string()
}

/// Creates the batch from the comma-joined inlined requests.
pub async fn submit(c: &Conn<'_>, lines: &str, name: &str) -> Result<(String, String), WireError> {
    let model = c.cfg.model.strip_prefix("models/").unwrap_or(&c.cfg.model);
    let mut payload = String::with_capacity(lines.len() + 128);
    payload.push_str(&format!(
        r#"{{"batch":{{"displayName":{},"inputConfig":{{"requests":{{"requests":["#,
        quoted(name)
    ));
    payload.push_str(lines);
    payload.push_str("]}}}}");
    let op = c
        .json(
            c.request(
                Method::POST,
                &format!("{}/v1beta/models/{model}:batchGenerateContent", base(c)),
            )
            .header(CONTENT_TYPE, "application/json")
            .body(payload),
        )
        .await?;
    let s = state(op);
    Ok((text_field(&s.raw, "/name")?, s.status))
}

/// Reads the batch operation.
pub async fn poll(c: &Conn<'_>, name: &str) -> Result<State, WireError> {
    let raw = c
        .json(c.request(Method::GET, &format!("{}/v1beta/{name}", base(c))))
        .await?;
    Ok(state(raw))
}

fn state(raw: Value) -> State {
    let status = raw
        .pointer("/metadata/state")
        .or_else(|| raw.get("state"))
        .and_then(Value::as_str)
        .unwrap_or(if raw["done"] == true {
            "done"
        } else {
            "unknown"
        })
        .to_string();
    let word = status.rsplit('_').next().unwrap_or("");
    let failure = || {
        raw.pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("the batch failed")
            .to_string()
    };
    let end = match word {
        "SUCCEEDED" => Some(End::Completed),
        "FAILED" => Some(End::Failed(failure())),
        "CANCELLED" => Some(End::Canceled),
        "EXPIRED" => Some(End::Expired),
        _ if raw["done"] == true && raw["error"].is_object() => Some(End::Failed(failure())),
        _ if raw["done"] == true => Some(End::Completed),
        _ => None,
    };
    State { status, end, raw }
}

/// The inlined responses of an ended batch, or the lines of its responses file.
pub async fn results(c: &Conn<'_>, s: &State) -> Result<Vec<ResultLine>, WireError> {
    let output = ["/response", "/metadata/output"]
        .iter()
        .filter_map(|p| s.raw.pointer(p))
        .find(|o| o.get("inlinedResponses").is_some() || o.get("responsesFile").is_some());
    let Some(output) = output else {
        return Ok(Vec::new());
    };
    if let Some(list) = output
        .pointer("/inlinedResponses/inlinedResponses")
        .and_then(Value::as_array)
    {
        return list
            .iter()
            .map(|v| {
                parse_line(v).ok_or_else(|| WireError {
                    status: None,
                    message: format!("unexpected inlined response: {}", super::batch::short(v)),
                    transient: false,
                })
            })
            .collect();
    }
    let file = text_field(output, "/responsesFile")?;
    let bytes = c
        .send(c.request(
            Method::GET,
            &format!("{}/download/v1beta/{file}:download?alt=media", base(c)),
        ))
        .await?;
    parse_lines(&bytes, parse_line)
}

/// Reads one response: `{"key"|"metadata":{"key"}, "response"|"error"}`.
pub fn parse_line(v: &Value) -> Option<ResultLine> {
    let custom_id = v["key"]
        .as_str()
        .or_else(|| v.pointer("/metadata/key").and_then(Value::as_str))?
        .to_string();
    let result = if let Some(r) = v.get("response").filter(|r| r.is_object()) {
        LineResult::Response(r.to_string())
    } else if let Some(e) = v.get("error").filter(|e| e.is_object()) {
        LineResult::Error {
            status: e["code"].as_u64().and_then(|s| u16::try_from(s).ok()),
            code: e["status"].as_str().map(str::to_string),
            message: e["message"].as_str().unwrap_or_default().to_string(),
        }
    } else {
        return None;
    };
    Some(ResultLine { custom_id, result })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testutil::fixture;
    use serde_json::json;

    #[test]
    fn output_lines_of_the_fixture() {
        let lines = parse_lines(&fixture("gemini-batch-output.jsonl"), parse_line).unwrap();
        assert!(matches!(&lines[0].result, LineResult::Response(r) if r.contains("Paris")));
        assert_eq!(
            lines[1].result,
            LineResult::Error {
                status: Some(400),
                code: Some("INVALID_ARGUMENT".into()),
                message: "Request contains an invalid argument.".into()
            }
        );
        let inlined = json!({"response": {"candidates": []}, "metadata": {"key": "r3"}});
        assert_eq!(parse_line(&inlined).unwrap().custom_id, "r3");
    }

    #[test]
    fn operation_states() {
        let s = |st: &str| state(json!({"name": "batches/1", "metadata": {"state": st}})).end;
        assert_eq!(s("BATCH_STATE_RUNNING"), None);
        assert_eq!(s("BATCH_STATE_PENDING"), None);
        assert_eq!(s("BATCH_STATE_SUCCEEDED"), Some(End::Completed));
        assert_eq!(s("BATCH_STATE_CANCELLED"), Some(End::Canceled));
        assert_eq!(s("BATCH_STATE_EXPIRED"), Some(End::Expired));
        assert!(matches!(s("BATCH_STATE_FAILED"), Some(End::Failed(_))));
    }

    #[test]
    fn inlined_requests_carry_their_key() {
        let fx = fixture("gemini-batch-input.jsonl");
        let first: Value =
            serde_json::from_slice(fx.split(|b| *b == b'\n').next().unwrap()).unwrap();
        let l: Value = serde_json::from_str(&line("r0", &first["request"].to_string())).unwrap();
        assert_eq!(l["request"], first["request"]);
        assert_eq!(l["metadata"]["key"], "r0");
    }
}
