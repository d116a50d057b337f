//! Anthropic Messages (`POST /v1/messages`): request building, response and usage parsing, and
//! error bodies.
//!
//! Follows shared/reference/providers.md, "3. Anthropic Messages" and the "Cross-provider
//! summary". Unlike OpenAI, `input_tokens` **excludes** cached and cache-written tokens, so it is
//! taken as-is; cache reads are `cache_read_input_tokens`; cache writes are split by TTL in
//! `cache_creation.ephemeral_{5m,1h}_input_tokens` (priced differently), falling back to the
//! total `cache_creation_input_tokens`; `output_tokens` already includes thinking.
//!
//! Suite params are OpenAI-style; the request differs from a pass-through in four ways:
//! - `max_tokens` is required by Anthropic: absent from the suite params, it is taken from
//!   `max_completion_tokens`, else [`DEFAULT_MAX_TOKENS`] is sent.
//! - `stop` becomes `stop_sequences` (always an array).
//! - `seed` is not sent: Anthropic has no seed and rejects unknown fields.
//! - system messages become the top-level `system` string.
//!
//! Other params (`temperature`, `top_p`, `top_k`, `thinking`, ...) pass through unchanged; note
//! that Anthropic's `temperature` range is 0–1, not OpenAI's 0–2, and it is not rescaled.

use serde_json::{Value, json};

use super::{ChatRequest, Completion, ErrorInfo, Protocol, ProviderConfig, Served, Usage};

/// The `anthropic-version` header value; the only stable version of the Messages API.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` sent when the suite params set no output limit (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 1024;

/// The Anthropic Messages protocol.
pub struct Anthropic;

impl Protocol for Anthropic {
    fn url(&self, cfg: &ProviderConfig) -> String {
        format!("{}/v1/messages", cfg.base_url.trim_end_matches('/'))
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
            // Several system messages are joined: the API takes one top-level system prompt.
            body.insert("system".into(), json!(system.join("\n\n")));
        }
        // The API accepts only `user` and `assistant` turns; system went top-level above.
        let messages: Vec<Value> = req
            .messages
            .iter()
            .filter(|m| m.role == "user" || m.role == "assistant")
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        body.insert("messages".into(), Value::Array(messages));

        // A param is skipped when `drop_params` names it by its suite name or its wire name.
        let dropped = |k: &str| cfg.drop_params.iter().any(|d| d == k);
        for (k, v) in &req.params {
            if dropped(k) {
                continue;
            }
            match k.as_str() {
                "seed" | "max_completion_tokens" => {}
                "stop" => {
                    if !dropped("stop_sequences")
                        && let Some(s) = stop_sequences(v)
                    {
                        body.insert("stop_sequences".into(), s);
                    }
                }
                _ => {
                    body.insert(k.clone(), v.clone());
                }
            }
        }
        // Required, so it is sent even when `drop_params` names it (`extra_body` can still set it):
        // OpenAI's newer name for the same limit if given, else the default.
        if body.get("max_tokens").is_none_or(Value::is_null) {
            let limit = req
                .params
                .get("max_completion_tokens")
                .filter(|m| !m.is_null() && !dropped("max_completion_tokens"))
                .cloned()
                .unwrap_or_else(|| json!(DEFAULT_MAX_TOKENS));
            body.insert("max_tokens".into(), limit);
        }
        for (k, v) in &cfg.extra_body {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }

    fn auth_headers(&self, key: &str) -> Vec<(&'static str, String)> {
        vec![
            ("x-api-key", key.to_string()),
            ("anthropic-version", ANTHROPIC_VERSION.to_string()),
        ]
    }

    fn parse(&self, body: &[u8]) -> Result<Completion, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        if v.get("type").and_then(Value::as_str) == Some("error") {
            return Err(format!(
                "error in a 200 response: {}",
                v.get("error").unwrap_or(&Value::Null)
            ));
        }
        let content = v
            .get("content")
            .and_then(Value::as_array)
            .ok_or("response has no content array")?;
        // Only `text` blocks are the answer; thinking and tool_use blocks are not.
        let text: String = content
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect();
        let finish_reason = v
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(str::to_string);
        let usage = v.get("usage").filter(|u| u.is_object()).map(parse_usage);
        Ok(Completion {
            text,
            finish_reason,
            usage,
            reported_cost: None,
            served: v.get("usage").map(served).unwrap_or_default(),
        })
    }

    fn parse_error(&self, body: &[u8]) -> ErrorInfo {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            // e.g. the HTML 413 page Cloudflare returns before the API sees the request.
            return ErrorInfo::default();
        };
        ErrorInfo::from_body(&v, &["type"])
    }
}

/// OpenAI's `stop` is a string or an array; `stop_sequences` must be an array.
fn stop_sequences(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(json!([s])),
        other => Some(other.clone()),
    }
}

/// How the call was served: `usage.service_tier`, and every other string field of `usage`
/// (`inference_geo`, `speed`) as a label a price multiplier may name.
fn served(u: &Value) -> Served {
    let mut s = Served::default();
    for (k, v) in u.as_object().into_iter().flatten() {
        if let Some(v) = v.as_str() {
            if k == "service_tier" {
                s.tier = Some(v.to_string());
            } else {
                s.labels.insert(k.clone(), v.to_string());
            }
        }
    }
    s
}

fn parse_usage(u: &Value) -> Usage {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64);
    let write_total = n("/cache_creation_input_tokens").unwrap_or(0);
    let (cache_write, cache_write_1h) = match u.get("cache_creation").filter(|c| c.is_object()) {
        Some(_) => {
            let w5m = n("/cache_creation/ephemeral_5m_input_tokens").unwrap_or(0);
            let w1h = n("/cache_creation/ephemeral_1h_input_tokens").unwrap_or(0);
            // Writes the breakdown does not explain (a TTL we do not know) are still billed:
            // count them at the 5-minute rate rather than lose them.
            let rest = write_total.saturating_sub(w5m.saturating_add(w1h));
            (w5m.saturating_add(rest), w1h)
        }
        None => (write_total, 0),
    };
    Usage {
        input: n("/input_tokens").unwrap_or(0),
        cached_input: n("/cache_read_input_tokens").unwrap_or(0),
        cache_write,
        cache_write_1h,
        output: n("/output_tokens").unwrap_or(0),
        reasoning: n("/output_tokens_details/thinking_tokens").unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testutil::{config, fixture, request};

    fn cfg(extra: Value) -> ProviderConfig {
        config(
            "anthropic",
            "https://api.anthropic.com/",
            "claude-sonnet-4-6",
            extra,
        )
    }

    fn req(params: Value) -> ChatRequest {
        request(
            &[
                ("system", "Be terse."),
                ("user", "Q1"),
                ("assistant", "A1"),
                ("system", "Answer in JSON."),
                ("user", "Q2"),
            ],
            params,
        )
    }

    #[test]
    fn url_and_headers() {
        let c = cfg(json!({}));
        assert_eq!(Anthropic.url(&c), "https://api.anthropic.com/v1/messages");
        let h = Anthropic.auth_headers("sk-ant");
        assert!(h.contains(&("x-api-key", "sk-ant".into())));
        assert!(h.contains(&("anthropic-version", "2023-06-01".into())));
    }

    #[test]
    fn cache_read_and_5m_write() {
        let c = Anthropic
            .parse(&fixture("anthropic-messages.json"))
            .unwrap();
        let u = c.usage.unwrap();
        assert_eq!(
            (
                u.input,
                u.cached_input,
                u.cache_write,
                u.cache_write_1h,
                u.output,
                u.reasoning
            ),
            (312, 8192, 2048, 0, 187, 0)
        );
        assert_eq!(c.text, "{\"answer\": 42}");
        assert_eq!(c.finish_reason.as_deref(), Some("end_turn"));
        assert!(c.reported_cost.is_none());
    }

    #[test]
    fn ttl_split_thinking_and_text_blocks() {
        let c = Anthropic
            .parse(
                br#"{"content":[{"type":"thinking","thinking":"hmm"},{"type":"text","text":"a"},
                {"type":"tool_use","id":"t","name":"f","input":{}},{"type":"text","text":"b"}],
                "stop_reason":"max_tokens","usage":{"input_tokens":10,
                "cache_creation_input_tokens":300,"cache_read_input_tokens":0,
                "cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200},
                "output_tokens":50,"output_tokens_details":{"thinking_tokens":30}}}"#,
            )
            .unwrap();
        assert_eq!(c.text, "ab");
        assert_eq!(c.finish_reason.as_deref(), Some("max_tokens"));
        let u = c.usage.unwrap();
        assert_eq!(
            (
                u.input,
                u.cache_write,
                u.cache_write_1h,
                u.output,
                u.reasoning
            ),
            (10, 100, 200, 50, 30)
        );
    }

    #[test]
    fn cache_writes_without_breakdown_are_5m() {
        let u = Anthropic
            .parse(
                br#"{"content":[],"usage":{"input_tokens":5,"cache_creation_input_tokens":700,
                "output_tokens":1}}"#,
            )
            .unwrap()
            .usage
            .unwrap();
        assert_eq!((u.input, u.cache_write, u.cache_write_1h), (5, 700, 0));
    }

    #[test]
    fn missing_usage_is_none_not_zero() {
        let c = Anthropic
            .parse(br#"{"content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn"}"#)
            .unwrap();
        assert!(c.usage.is_none());
        assert_eq!(c.text, "hi");
    }

    #[test]
    fn body_system_top_level_and_default_max_tokens() {
        let b = Anthropic.body(&cfg(json!({})), &req(json!({"temperature": 0.2})));
        assert_eq!(b["model"], "claude-sonnet-4-6");
        assert_eq!(b["system"], "Be terse.\n\nAnswer in JSON.");
        let roles: Vec<&str> = b["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(b["messages"][2]["content"], "Q2");
        assert_eq!(b["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(b["temperature"], 0.2);
    }

    #[test]
    fn body_maps_stop_drops_seed_keeps_max_tokens() {
        let b = Anthropic.body(
            &cfg(json!({})),
            &req(json!({"max_tokens": 300, "stop": "END", "seed": 7, "top_p": 0.9})),
        );
        assert_eq!(b["max_tokens"], 300);
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert!(b.get("stop").is_none() && b.get("seed").is_none());
        assert_eq!(b["top_p"], 0.9);
        let b = Anthropic.body(
            &cfg(json!({})),
            &req(json!({"max_completion_tokens": 64, "stop": ["a", "b"]})),
        );
        assert_eq!(b["max_tokens"], 64);
        assert!(b.get("max_completion_tokens").is_none());
        assert_eq!(b["stop_sequences"], json!(["a", "b"]));
        let no_system = request(&[("user", "hi")], json!({}));
        assert!(
            Anthropic
                .body(&cfg(json!({})), &no_system)
                .get("system")
                .is_none()
        );
    }

    #[test]
    fn body_drop_params_and_extra_body() {
        let c = cfg(json!({
            "drop_params": ["temperature", "stop"],
            "extra_body": {"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 4096},
        }));
        let b = Anthropic.body(
            &c,
            &req(json!({"temperature": 1, "stop": "x", "max_tokens": 100})),
        );
        assert!(b.get("temperature").is_none() && b.get("stop_sequences").is_none());
        assert_eq!(b["thinking"]["budget_tokens"], 2048);
        assert_eq!(b["max_tokens"], 4096);
    }

    #[test]
    fn error_bodies() {
        let e = Anthropic.parse_error(&fixture("anthropic-error-overloaded.json"));
        assert_eq!(e.code.as_deref(), Some("overloaded_error"));
        assert_eq!(e.message.as_deref(), Some("Overloaded"));
        let e = Anthropic.parse_error(&fixture("anthropic-error-rate-limit.json"));
        assert_eq!(e.code.as_deref(), Some("rate_limit_error"));
        assert!(Anthropic.parse_error(b"<html>413</html>").code.is_none());
        assert!(Anthropic.parse(b"not json").is_err());
        assert!(Anthropic.parse(b"[]").is_err());
        assert!(
            Anthropic
                .parse(&fixture("anthropic-error-overloaded.json"))
                .is_err()
        );
    }
}
