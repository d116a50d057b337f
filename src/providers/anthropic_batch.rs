//! Anthropic Message Batches: `POST {base_url}/v1/messages/batches` with
//! `{"requests":[{"custom_id","params"}]}`, polled at `/v1/messages/batches/{id}` until
//! `processing_status` is `ended`, results read as JSONL from its `results_url`
//! (shared/reference/providers.md §3). Each result line's `result.type` is `succeeded` (with
//! the message), `errored`, `canceled` or `expired`, in any order.

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use super::batch::{
    Conn, End, LineResult, ResultLine, State, WireError, parse_lines, quoted, text_field,
};

/// One element of the `requests` array.
pub fn line(custom_id: &str, body: &str) -> String {
    format!(r#"{{"custom_id":{},"params":{body}}}"#, quoted(custom_id))
}

fn batches(c: &Conn<'_>) -> String {
    format!(
        "{}/v1/messages/batches",
        c.cfg.base_url.trim_end_matches('/')
    )
}

/// Creates the batch from the comma-joined request elements.
pub async fn submit(c: &Conn<'_>, lines: &str) -> Result<(String, String), WireError> {
    let mut payload = String::with_capacity(lines.len() + 16);
    payload.push_str(r#"{"requests":["#);
    payload.push_str(lines);
    payload.push_str("]}");
    let created = c
        .json(
            c.request(Method::POST, &batches(c))
                .header(CONTENT_TYPE, "application/json")
                .body(payload),
        )
        .await?;
    Ok((
        text_field(&created, "/id")?,
        text_field(&created, "/processing_status").unwrap_or_else(|_| "in_progress".into()),
    ))
}

/// Reads a batch's processing status.
pub async fn poll(c: &Conn<'_>, id: &str) -> Result<State, WireError> {
    let raw = c
        .json(c.request(Method::GET, &format!("{}/{id}", batches(c))))
        .await?;
    Ok(state(raw))
}

fn state(raw: Value) -> State {
    let status = raw["processing_status"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    // An ended batch says per line what became of each request.
    let end = (status == "ended").then_some(End::Completed);
    State { status, end, raw }
}

/// The result lines of an ended batch, from its `results_url`.
pub async fn results(c: &Conn<'_>, s: &State) -> Result<Vec<ResultLine>, WireError> {
    let url = match s.raw["results_url"].as_str() {
        Some(u) if !u.is_empty() => u.to_string(),
        _ => format!(
            "{}/{}/results",
            batches(c),
            s.raw["id"].as_str().unwrap_or("")
        ),
    };
    let bytes = c.send(c.request(Method::GET, &url)).await?;
    parse_lines(&bytes, parse_line)
}

/// Reads one result line.
pub fn parse_line(v: &Value) -> Option<ResultLine> {
    let custom_id = v["custom_id"].as_str()?.to_string();
    let r = &v["result"];
    let result = match r["type"].as_str()? {
        "succeeded" => LineResult::Response(r.get("message")?.to_string()),
        "errored" => {
            // An ErrorResponse: {"type": "error", "error": {"type", "message"}}.
            let e = if r["error"]["error"].is_object() {
                &r["error"]["error"]
            } else {
                &r["error"]
            };
            LineResult::Error {
                status: None,
                code: e["type"].as_str().map(str::to_string),
                message: e["message"]
                    .as_str()
                    .map_or_else(|| r["error"].to_string(), str::to_string),
            }
        }
        "expired" => LineResult::Expired("the batch expired before this request ran".into()),
        "canceled" => LineResult::Canceled("the batch was canceled before this request ran".into()),
        _ => return None,
    };
    Some(ResultLine { custom_id, result })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testutil::fixture;
    use serde_json::json;

    #[test]
    fn request_elements_have_the_fixture_shape() {
        let fx: Value = serde_json::from_slice(&fixture("anthropic-batch-request.json")).unwrap();
        let first = &fx["requests"][0];
        let l: Value =
            serde_json::from_str(&line("task-0001", &first["params"].to_string())).unwrap();
        assert_eq!(&l, first);
    }

    #[test]
    fn result_lines_of_the_fixture() {
        let lines = parse_lines(&fixture("anthropic-batch-results.jsonl"), parse_line).unwrap();
        assert_eq!(lines.len(), 3);
        assert!(matches!(&lines[0].result, LineResult::Response(m) if m.contains("Paris")));
        assert_eq!(
            lines[1].result,
            LineResult::Error {
                status: None,
                code: Some("invalid_request_error".into()),
                message: "max_tokens: must be greater than or equal to 1".into(),
            }
        );
        assert!(matches!(lines[2].result, LineResult::Expired(_)));
        let canceled = json!({"custom_id": "r1", "result": {"type": "canceled"}});
        assert!(matches!(
            parse_line(&canceled).unwrap().result,
            LineResult::Canceled(_)
        ));
    }

    #[test]
    fn only_ended_batches_end() {
        assert_eq!(state(json!({"processing_status": "in_progress"})).end, None);
        assert_eq!(state(json!({"processing_status": "canceling"})).end, None);
        assert_eq!(
            state(json!({"processing_status": "ended"})).end,
            Some(End::Completed)
        );
    }
}
