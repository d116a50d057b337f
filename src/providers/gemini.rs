//! Google Gemini `generateContent` (Gemini Developer API): request building, response and usage
//! parsing, and error bodies.
//!
//! Follows shared/reference/providers.md, "4. Google Gemini `generateContent`" and the
//! "Cross-provider summary". `promptTokenCount` **includes** `cachedContentTokenCount`, so
//! uncached input is their difference; `toolUsePromptTokenCount` is separate and billed as
//! input, so it is added; `thoughtsTokenCount` is **not** inside `candidatesTokenCount`, so
//! output is their sum. Gemini reports no cache writes (explicit-cache creation is billed at
//! the input price, storage per hour, neither in the response).
//!
//! Suite params are OpenAI-style and go into `generationConfig`, renamed:
//!
//! | suite param | `generationConfig` field |
//! |---|---|
//! | `temperature`, `seed` | same name |
//! | `top_p`, `top_k` | `topP`, `topK` |
//! | `max_tokens`, `max_completion_tokens` | `maxOutputTokens` (`max_tokens` wins if both) |
//! | `stop` | `stopSequences` (always an array) |
//! | `presence_penalty`, `frequency_penalty` | `presencePenalty`, `frequencyPenalty` |
//!
//! Any other param goes into `generationConfig` under its own name, so a suite can use Gemini's
//! names (`responseMimeType`, `thinkingConfig`, ...) directly. System messages become
//! `systemInstruction`; `assistant` turns become role `model`.

use serde_json::{Value, json};

use super::{ChatRequest, Completion, ErrorInfo, Protocol, ProviderConfig, Served, Usage};

/// The Gemini `generateContent` protocol.
pub struct Gemini;

/// OpenAI-style suite param → `generationConfig` field, for the names that differ or are known.
const PARAM_NAMES: &[(&str, &str)] = &[
    ("temperature", "temperature"),
    ("seed", "seed"),
    ("top_p", "topP"),
    ("top_k", "topK"),
    ("max_tokens", "maxOutputTokens"),
    ("max_completion_tokens", "maxOutputTokens"),
    ("stop", "stopSequences"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
];

impl Protocol for Gemini {
    fn url(&self, cfg: &ProviderConfig) -> String {
        // The API's own model names carry a `models/` prefix; accept them as well as bare ids.
        let model = cfg.model.strip_prefix("models/").unwrap_or(&cfg.model);
        format!(
            "{}/v1beta/models/{model}:generateContent",
            cfg.base_url.trim_end_matches('/')
        )
    }

    fn stream_url(&self, cfg: &ProviderConfig) -> String {
        let plain = self.url(cfg);
        let base = plain.strip_suffix(":generateContent").unwrap_or(&plain);
        format!("{base}:streamGenerateContent?alt=sse")
    }

    /// The streaming endpoint is another URL; the body is the same.
    fn stream_body(&self, _body: &mut Value) {}

    fn body(&self, cfg: &ProviderConfig, req: &ChatRequest) -> Value {
        let mut body = serde_json::Map::new();
        let contents: Vec<Value> = req
            .messages
            .iter()
            .filter_map(|m| {
                let role = match m.role.as_str() {
                    "user" => "user",
                    "assistant" => "model",
                    _ => return None,
                };
                Some(json!({"role": role, "parts": [{"text": m.content}]}))
            })
            .collect();
        body.insert("contents".into(), Value::Array(contents));
        let system: Vec<&str> = req
            .messages
            .iter()
            .filter(|m| m.role == "system")
            .map(|m| m.content.as_str())
            .collect();
        if !system.is_empty() {
            // Joined the same way as for Anthropic, so both see the same system prompt.
            body.insert(
                "systemInstruction".into(),
                json!({"parts": [{"text": system.join("\n\n")}]}),
            );
        }

        // A param is skipped when `drop_params` names it by its suite name or its wire name.
        let dropped = |k: &str| cfg.drop_params.iter().any(|d| d == k);
        let mut gen_config = serde_json::Map::new();
        for (k, v) in &req.params {
            let wire = PARAM_NAMES
                .iter()
                .find(|(suite, _)| suite == k)
                .map_or(k.as_str(), |(_, wire)| *wire);
            if dropped(k) || dropped(wire) || v.is_null() {
                continue;
            }
            // `max_tokens` wins over `max_completion_tokens` whatever their order.
            if k == "max_completion_tokens"
                && req.params.get("max_tokens").is_some_and(|m| !m.is_null())
                && !dropped("max_tokens")
            {
                continue;
            }
            let v = match (k.as_str(), v) {
                ("stop", Value::String(s)) => json!([s]),
                _ => v.clone(),
            };
            gen_config.insert(wire.to_string(), v);
        }
        if !gen_config.is_empty() {
            body.insert("generationConfig".into(), Value::Object(gen_config));
        }

        for (k, v) in &cfg.extra_body {
            match (body.get_mut(k), v) {
                // Merged one level deep, so `extra_body.generationConfig.thinkingConfig` adds to
                // the suite's sampling params instead of replacing them.
                (Some(Value::Object(have)), Value::Object(add)) => {
                    for (ik, iv) in add {
                        have.insert(ik.clone(), iv.clone());
                    }
                }
                _ => {
                    body.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Object(body)
    }

    fn auth_headers(&self, key: &str) -> Vec<(&'static str, String)> {
        vec![("x-goog-api-key", key.to_string())]
    }

    fn parse(&self, body: &[u8]) -> Result<Completion, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            return Err(format!("error in a 200 response: {err}"));
        }
        let Some(candidate) = v.get("candidates").and_then(|c| c.get(0)) else {
            // A blocked prompt is answered with promptFeedback and no candidates.
            return Err(match v.pointer("/promptFeedback/blockReason") {
                Some(reason) => {
                    let reason = reason
                        .as_str()
                        .map_or_else(|| reason.to_string(), str::to_string);
                    match v
                        .pointer("/promptFeedback/blockReasonMessage")
                        .and_then(Value::as_str)
                    {
                        Some(m) => format!("prompt blocked: {reason} ({m})"),
                        None => format!("prompt blocked: {reason}"),
                    }
                }
                None => "response has no candidates[0]".to_string(),
            });
        };
        // A candidate stopped by safety can have no content at all: that is empty text.
        let text: String = candidate
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let finish_reason = candidate
            .get("finishReason")
            .and_then(Value::as_str)
            .map(str::to_string);
        let usage = v
            .get("usageMetadata")
            .filter(|u| u.is_object())
            .map(parse_usage);
        Ok(Completion {
            text,
            finish_reason,
            usage,
            reported_cost: None,
            served: Served::default(),
        })
    }

    fn parse_error(&self, body: &[u8]) -> ErrorInfo {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return ErrorInfo::default();
        };
        // Streaming endpoints wrap the error object in an array.
        let v = match &v {
            Value::Array(a) => a.first().unwrap_or(&Value::Null),
            other => other,
        };
        // The gRPC status names the cause (`RESOURCE_EXHAUSTED`); the numeric code only
        // repeats the HTTP status.
        ErrorInfo::from_body(v, &["status", "code"])
    }
}

fn parse_usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let prompt = n("promptTokenCount");
    let cached = n("cachedContentTokenCount");
    let thoughts = n("thoughtsTokenCount");
    Usage {
        input: prompt
            .saturating_sub(cached)
            .saturating_add(n("toolUsePromptTokenCount")),
        cached_input: cached,
        cache_write: 0,
        cache_write_1h: 0,
        output: n("candidatesTokenCount").saturating_add(thoughts),
        reasoning: thoughts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testutil::{config, fixture, request};

    fn cfg(extra: Value) -> ProviderConfig {
        config(
            "gemini",
            "https://generativelanguage.googleapis.com/",
            "gemini-2.5-flash",
            extra,
        )
    }

    fn req(params: Value) -> ChatRequest {
        request(
            &[
                ("system", "Be terse."),
                ("user", "Q1"),
                ("assistant", "A1"),
                ("user", "Q2"),
            ],
            params,
        )
    }

    #[test]
    fn url_and_headers() {
        let url = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent";
        assert_eq!(Gemini.url(&cfg(json!({}))), url);
        assert_eq!(
            Gemini.url(&cfg(json!({"model": "models/gemini-2.5-flash"}))),
            url
        );
        assert_eq!(
            Gemini.auth_headers("k"),
            vec![("x-goog-api-key", "k".to_string())]
        );
    }

    #[test]
    fn cached_and_thoughts() {
        let c = Gemini.parse(&fixture("gemini-generate.json")).unwrap();
        let u = c.usage.unwrap();
        // 4210 prompt − 4000 cached; 120 candidates + 380 thoughts.
        assert_eq!(
            (
                u.input,
                u.cached_input,
                u.cache_write,
                u.output,
                u.reasoning
            ),
            (210, 4000, 0, 500, 380)
        );
        assert_eq!(c.text, "{\"answer\": 42}");
        assert_eq!(c.finish_reason.as_deref(), Some("STOP"));
    }

    #[test]
    fn tool_use_prompt_is_input_and_thought_parts_are_not_text() {
        let c = Gemini
            .parse(
                br#"{"candidates":[{"content":{"role":"model","parts":[
                {"text":"plan...","thought":true},{"text":"a"},{"functionCall":{"name":"f"}},
                {"text":"b","thought":false}]},"finishReason":"MAX_TOKENS"}],
                "usageMetadata":{"promptTokenCount":100,"toolUsePromptTokenCount":40,
                "candidatesTokenCount":7}}"#,
            )
            .unwrap();
        assert_eq!(c.text, "ab");
        assert_eq!(c.finish_reason.as_deref(), Some("MAX_TOKENS"));
        let u = c.usage.unwrap();
        assert_eq!(
            (u.input, u.cached_input, u.output, u.reasoning),
            (140, 0, 7, 0)
        );
    }

    #[test]
    fn missing_usage_is_none_not_zero() {
        let c = Gemini
            .parse(
                br#"{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}]}"#,
            )
            .unwrap();
        assert!(c.usage.is_none());
        assert_eq!(c.text, "hi");
    }

    #[test]
    fn blocked_prompt_is_an_error_naming_the_reason() {
        let e = Gemini
            .parse(
                br#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},
                "usageMetadata":{"promptTokenCount":12,"totalTokenCount":12}}"#,
            )
            .unwrap_err();
        assert!(e.contains("PROHIBITED_CONTENT"), "{e}");
        let c = Gemini
            .parse(br#"{"candidates":[{"finishReason":"SAFETY"}]}"#)
            .unwrap();
        assert_eq!(
            (c.text.as_str(), c.finish_reason.as_deref()),
            ("", Some("SAFETY"))
        );
    }

    #[test]
    fn body_contents_system_and_generation_config() {
        let b = Gemini.body(
            &cfg(json!({})),
            &req(json!({"temperature": 0.2, "top_p": 0.9, "max_tokens": 256,
                "seed": 7, "stop": "END", "responseMimeType": "application/json"})),
        );
        assert!(b.get("model").is_none());
        assert_eq!(
            b["systemInstruction"],
            json!({"parts": [{"text": "Be terse."}]})
        );
        assert_eq!(
            b["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Q1"}]},
                {"role": "model", "parts": [{"text": "A1"}]},
                {"role": "user", "parts": [{"text": "Q2"}]},
            ])
        );
        assert_eq!(
            b["generationConfig"],
            json!({"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 256, "seed": 7,
                "stopSequences": ["END"], "responseMimeType": "application/json"})
        );
    }

    #[test]
    fn body_max_tokens_wins_and_no_empty_config() {
        for params in [
            json!({"max_completion_tokens": 64, "max_tokens": 32}),
            json!({"max_tokens": 32, "max_completion_tokens": 64}),
        ] {
            let b = Gemini.body(&cfg(json!({})), &req(params));
            assert_eq!(b["generationConfig"], json!({"maxOutputTokens": 32}));
        }
        let b = Gemini.body(&cfg(json!({})), &req(json!({"max_completion_tokens": 64})));
        assert_eq!(b["generationConfig"]["maxOutputTokens"], 64);
        let b = Gemini.body(&cfg(json!({})), &req(json!({})));
        assert!(b.get("generationConfig").is_none());
    }

    #[test]
    fn body_drop_params_and_extra_body() {
        let c = cfg(json!({
            "drop_params": ["seed", "topP"],
            "extra_body": {
                "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}},
                "safetySettings": [],
            },
        }));
        let b = Gemini.body(&c, &req(json!({"seed": 1, "top_p": 0.5, "temperature": 0})));
        assert_eq!(
            b["generationConfig"],
            json!({"temperature": 0, "thinkingConfig": {"thinkingBudget": 0}})
        );
        assert_eq!(b["safetySettings"], json!([]));
    }

    #[test]
    fn error_bodies() {
        let e = Gemini.parse_error(&fixture("gemini-error-429.json"));
        assert_eq!(e.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
        assert!(
            e.message
                .unwrap()
                .starts_with("You exceeded your current quota")
        );
        let e =
            Gemini.parse_error(br#"[{"error":{"code":503,"message":"m","status":"UNAVAILABLE"}}]"#);
        assert_eq!(e.code.as_deref(), Some("UNAVAILABLE"));
        let e = Gemini.parse_error(br#"{"error":{"code":500,"message":"m"}}"#);
        assert_eq!(e.code.as_deref(), Some("500"));
        assert!(Gemini.parse_error(b"[]").code.is_none());
        assert!(Gemini.parse(b"not json").is_err());
        assert!(Gemini.parse(&fixture("gemini-error-429.json")).is_err());
        assert!(Gemini.parse(b"{}").is_err());
    }
}
