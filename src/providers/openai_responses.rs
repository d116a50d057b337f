//! The OpenAI Responses API (`protocol: openai-responses`, `POST {base_url}/responses`).
//!
//! System turns become `instructions`, the rest the `input` items; `max_tokens` is sent as
//! `max_output_tokens` (it includes reasoning) and `seed`, which the API lacks, is not sent.
//! Responses are not stored server-side (`store: false`) unless `extra_body` says otherwise.
//! Usage: `input_tokens` includes cached and cache-written tokens, `output_tokens` includes
//! reasoning. There is no finish reason: `completed` reads as `stop`, `incomplete` as its
//! `incomplete_details.reason` (`max_output_tokens` → `length`, `content_filter`).

use serde_json::{Value, json};

use super::openai::OpenAi;
use super::{ChatRequest, Completion, ErrorInfo, Protocol, ProviderConfig, Served, Usage};

/// The OpenAI Responses API.
pub struct OpenAiResponses;

impl Protocol for OpenAiResponses {
    fn url(&self, cfg: &ProviderConfig) -> String {
        format!("{}/responses", cfg.base_url.trim_end_matches('/'))
    }

    fn body(&self, cfg: &ProviderConfig, req: &ChatRequest) -> Value {
        let mut body = serde_json::Map::new();
        body.insert("model".into(), json!(cfg.model));
        let system: Vec<&str> = req
            .messages
            .iter()
            .filter(|m| m.role == "system")
            .map(|m| m.content.as_str())
            .collect();
        if !system.is_empty() {
            body.insert("instructions".into(), json!(system.join("\n\n")));
        }
        let input: Vec<Value> = req
            .messages
            .iter()
            .filter(|m| m.role != "system")
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        body.insert("input".into(), Value::Array(input));
        // An eval has no use for a stored response, and storing is the API's default.
        body.insert("store".into(), json!(false));
        let dropped = |k: &str| cfg.drop_params.iter().any(|d| d == k);
        for (k, v) in &req.params {
            if dropped(k) {
                continue;
            }
            match k.as_str() {
                "seed" => {}
                "max_tokens" | "max_completion_tokens" => {
                    if !dropped("max_output_tokens") {
                        body.insert("max_output_tokens".into(), v.clone());
                    }
                }
                _ => {
                    body.insert(k.clone(), v.clone());
                }
            }
        }
        for (k, v) in &cfg.extra_body {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }

    fn auth_headers(&self, key: &str) -> Vec<(&'static str, String)> {
        // Same key header and error bodies as Chat Completions.
        OpenAi.auth_headers(key)
    }

    fn parse(&self, body: &[u8]) -> Result<Completion, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        let status = v.get("status").and_then(Value::as_str).unwrap_or("");
        if status == "failed" || v.get("error").is_some_and(|e| !e.is_null()) {
            return Err(format!(
                "response status `{status}`: {}",
                v.get("error").unwrap_or(&Value::Null)
            ));
        }
        let output = v
            .get("output")
            .and_then(Value::as_array)
            .ok_or("response has no output list")?;
        // As the SDK's `output_text`: every output_text of every message item, in order.
        let text: String = output
            .iter()
            .filter(|item| item.get("type").and_then(Value::as_str) == Some("message"))
            .flat_map(|item| {
                item.get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .filter(|c| c.get("type").and_then(Value::as_str) == Some("output_text"))
            .filter_map(|c| c.get("text").and_then(Value::as_str))
            .collect();
        let finish_reason = match status {
            "completed" => Some("stop".to_string()),
            "incomplete" => Some(
                match v
                    .pointer("/incomplete_details/reason")
                    .and_then(Value::as_str)
                {
                    Some("max_output_tokens") => "length".to_string(),
                    Some(other) => other.to_string(),
                    None => "incomplete".to_string(),
                },
            ),
            "" => None,
            other => Some(other.to_string()),
        };
        let usage = v.get("usage").filter(|u| u.is_object()).map(parse_usage);
        let served = Served {
            tier: v
                .get("service_tier")
                .and_then(Value::as_str)
                .map(str::to_string),
            ..Served::default()
        };
        Ok(Completion {
            text,
            finish_reason,
            usage,
            reported_cost: None,
            served,
        })
    }

    fn parse_error(&self, body: &[u8]) -> ErrorInfo {
        OpenAi.parse_error(body)
    }
}

fn parse_usage(u: &Value) -> Usage {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("/input_tokens_details/cached_tokens");
    // Required in the SDK, absent from older responses.
    let cache_write = n("/input_tokens_details/cache_write_tokens");
    Usage {
        input: n("/input_tokens")
            .saturating_sub(cached)
            .saturating_sub(cache_write),
        cached_input: cached,
        cache_write,
        cache_write_1h: 0,
        output: n("/output_tokens"),
        reasoning: n("/output_tokens_details/reasoning_tokens"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testutil::{config, fixture, request};

    #[test]
    fn the_fixture_reads_text_usage_and_tier() {
        let c = OpenAiResponses
            .parse(&fixture("openai-responses.json"))
            .unwrap();
        assert_eq!(c.text, "{\"answer\": 42}");
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        let u = c.usage.unwrap();
        // 5120 input of which 4096 cached; 900 output of which 832 reasoning.
        assert_eq!(
            (u.input, u.cached_input, u.output, u.reasoning),
            (1024, 4096, 900, 832)
        );
        assert_eq!(c.served.tier.as_deref(), Some("default"));
    }

    #[test]
    fn the_request_uses_the_responses_shape() {
        let cfg = config(
            "openai-responses",
            "https://api.openai.com/v1/",
            "gpt-5.5",
            json!({}),
        );
        assert_eq!(
            OpenAiResponses.url(&cfg),
            "https://api.openai.com/v1/responses"
        );
        let req = request(
            &[("system", "Answer in JSON."), ("user", "2+2?")],
            json!({"max_tokens": 64, "temperature": 0, "seed": 7}),
        );
        let b = OpenAiResponses.body(&cfg, &req);
        assert_eq!(b["instructions"], json!("Answer in JSON."));
        assert_eq!(b["input"], json!([{"role": "user", "content": "2+2?"}]));
        assert_eq!(b["max_output_tokens"], json!(64));
        assert_eq!(b["store"], json!(false));
        assert!(b.get("max_tokens").is_none() && b.get("seed").is_none());
        assert_eq!(crate::providers::bound::completion_cap(&b), Some(64));
    }

    #[test]
    fn incomplete_failed_and_missing_usage() {
        let incomplete =
            br#"{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},
            "output":[{"type":"message","content":[{"type":"output_text","text":"{\"ans"}]}],
            "usage":{"input_tokens":10,"output_tokens":64}}"#;
        let c = OpenAiResponses.parse(incomplete).unwrap();
        assert_eq!(c.finish_reason.as_deref(), Some("length"));
        assert_eq!(c.usage.unwrap().output, 64);
        let failed =
            br#"{"status":"failed","error":{"code":"server_error","message":"boom"},"output":[]}"#;
        assert!(
            OpenAiResponses
                .parse(failed)
                .unwrap_err()
                .contains("server_error")
        );
        let bare = br#"{"status":"completed","output":[]}"#;
        assert!(OpenAiResponses.parse(bare).unwrap().usage.is_none());
        assert!(OpenAiResponses.parse(b"{}").is_err());
    }
}
