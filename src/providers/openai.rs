//! OpenAI Chat Completions, and the servers that speak it: DeepSeek, Qwen (DashScope
//! compatible mode), Kimi, OpenRouter, Ollama, llama.cpp and vLLM.
//!
//! Usage is read as each of them reports it (see shared/reference/providers.md):
//! `prompt_tokens` includes cached and cache-written tokens; the cached count is
//! `prompt_tokens_details.cached_tokens`, DeepSeek's `prompt_cache_hit_tokens`, or Kimi's legacy
//! top-level `cached_tokens`; cache writes are `cache_write_tokens` (OpenAI, OpenRouter) or
//! `cache_creation_input_tokens` (Qwen explicit cache); reasoning is inside `completion_tokens`.

use serde_json::{Value, json};

use super::{ChatRequest, Completion, ErrorInfo, Money, Protocol, ProviderConfig, Served, Usage};

/// The OpenAI-compatible Chat Completions protocol.
pub struct OpenAi;

impl Protocol for OpenAi {
    fn url(&self, cfg: &ProviderConfig) -> String {
        format!("{}/chat/completions", cfg.base_url.trim_end_matches('/'))
    }

    fn body(&self, cfg: &ProviderConfig, req: &ChatRequest) -> Value {
        let mut body = serde_json::Map::new();
        body.insert("model".into(), json!(cfg.model));
        body.insert("messages".into(), json!(req.messages));
        for (k, v) in &req.params {
            if !cfg.drop_params.contains(k) {
                body.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in &cfg.extra_body {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }

    fn auth_headers(&self, key: &str) -> Vec<(&'static str, String)> {
        vec![("authorization", format!("Bearer {key}"))]
    }

    fn parse(&self, body: &[u8]) -> Result<Completion, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            // OpenRouter can report an upstream error inside a 200.
            return Err(format!("error in a 200 response: {err}"));
        }
        let choice = v
            .get("choices")
            .and_then(|c| c.get(0))
            .ok_or("response has no choices[0]")?;
        let message = choice.get("message").ok_or("choices[0] has no message")?;
        let text = match message.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => return Err(format!("message.content is not a string: {other}")),
        };
        let finish_reason = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string);
        let usage = v.get("usage").filter(|u| u.is_object()).map(parse_usage);
        let reported_cost = v
            .pointer("/usage/cost")
            .and_then(|c| Money::parse_usd(&c.to_string()).ok());
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
            reported_cost,
            served,
        })
    }

    fn stream_body(&self, body: &mut Value) {
        if let Some(o) = body.as_object_mut() {
            o.insert("stream".into(), json!(true));
            // Without it the stream carries no usage at all, and the cost would be unknown.
            o.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }

    fn parse_error(&self, body: &[u8]) -> ErrorInfo {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return ErrorInfo::default();
        };
        // `{"error":{...}}`, or vLLM's older flat `{"object":"error","message":..}`.
        ErrorInfo::from_body(&v, &["code", "type"])
    }
}

fn parse_usage(u: &Value) -> Usage {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64);
    let prompt = n("/prompt_tokens").unwrap_or(0);
    let cached = n("/prompt_cache_hit_tokens")
        .or_else(|| n("/prompt_tokens_details/cached_tokens"))
        .or_else(|| n("/cached_tokens"))
        .unwrap_or(0);
    let cache_write = n("/prompt_tokens_details/cache_write_tokens")
        .or_else(|| n("/prompt_tokens_details/cache_creation_input_tokens"))
        .unwrap_or(0);
    let input = n("/prompt_cache_miss_tokens")
        .unwrap_or_else(|| prompt.saturating_sub(cached).saturating_sub(cache_write));
    Usage {
        input,
        cached_input: cached,
        cache_write,
        cache_write_1h: 0,
        output: n("/completion_tokens").unwrap_or(0),
        reasoning: n("/completion_tokens_details/reasoning_tokens").unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testutil::fixture;

    #[test]
    fn openai_cached_and_reasoning() {
        let c = OpenAi.parse(&fixture("openai-chat.json")).unwrap();
        let u = c.usage.unwrap();
        assert_eq!(
            (u.input, u.cached_input, u.output, u.reasoning),
            (512, 1536, 310, 192)
        );
        assert_eq!(c.text, "{\"answer\": 42}");
    }

    #[test]
    fn deepseek_hit_and_miss() {
        let u = OpenAi
            .parse(&fixture("deepseek-chat.json"))
            .unwrap()
            .usage
            .unwrap();
        assert_eq!((u.input, u.cached_input, u.output), (184, 2816, 350));
    }

    #[test]
    fn qwen_cache_creation_is_not_input() {
        let u = OpenAi
            .parse(&fixture("qwen-chat.json"))
            .unwrap()
            .usage
            .unwrap();
        assert_eq!((u.input, u.cached_input, u.cache_write), (52, 0, 2048));
    }

    #[test]
    fn openrouter_reported_cost_is_kept() {
        let c = OpenAi.parse(&fixture("openrouter-chat.json")).unwrap();
        assert!(c.reported_cost.is_some());
    }

    #[test]
    fn openrouter_cost_in_exponent_form_is_exact() {
        // JSON writers print small amounts with an exponent; it is the billed amount all the same.
        for text in ["4.2e-06", "4.2E-6", "0.0000042"] {
            let body = format!(
                r#"{{"choices":[{{"message":{{"content":"hi"}},"finish_reason":"stop"}}],
                   "usage":{{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,"cost":{text}}}}}"#
            );
            let c = OpenAi.parse(body.as_bytes()).unwrap();
            assert_eq!(c.reported_cost, Some(Money(4_200_000_000)), "{text}");
        }
    }

    #[test]
    fn missing_usage_is_none_not_zero() {
        let c = OpenAi
            .parse(br#"{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}"#)
            .unwrap();
        assert!(c.usage.is_none());
    }

    #[test]
    fn error_bodies() {
        let e = OpenAi.parse_error(&fixture("openai-error-insufficient-quota.json"));
        assert_eq!(e.code.as_deref(), Some("insufficient_quota"));
        let e = OpenAi.parse_error(br#"{"object":"error","message":"m","type":"BadRequestError"}"#);
        assert_eq!(e.code.as_deref(), Some("BadRequestError"));
        assert!(OpenAi.parse(b"not json").is_err());
    }
}
