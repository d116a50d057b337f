//! Streamed answers (`stream: true`): each protocol's server-sent events folded back into the
//! response body the same call would have returned without streaming.
//!
//! The folded body is what the run parses (with the protocol's ordinary [`super::Protocol::parse`]),
//! prices and records in the cache, so a streamed answer replays without streaming and is
//! priced by exactly the code that prices a plain one. Usage is taken from the stream as each
//! provider sends it (OpenAI's final `include_usage` chunk, Anthropic's cumulative
//! `message_delta.usage`, Gemini's last `usageMetadata`, the Responses API's terminal event); a
//! stream that carries none folds into a body without usage, whose cost is unknown (bounded),
//! never 0. An error event after the 200 (Anthropic `event: error`, an OpenRouter chunk with an
//! `error`, a Gemini error chunk, a Responses `error` or `response.failed`) is a failed attempt
//! with the provider's own code; a stream that stops before its end marker is a broken
//! connection whose answer may have been billed.

use serde_json::{Map, Value, json};

/// What one event told the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing that counts as answer text.
    Other,
    /// A delta with answer text: the first one is the time to first token.
    Content,
}

/// Why a stream gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFailure {
    /// The provider sent an error event after the 200: its code (`overloaded_error`, 502, …)
    /// and message.
    Error {
        /// Machine-readable code or type, if any.
        code: Option<String>,
        /// The provider's message.
        message: String,
    },
    /// The stream ended before the protocol's end marker.
    Truncated(String),
    /// An event that is not the protocol's JSON.
    Malformed(String),
}

/// Folds one protocol's events into its non-streaming response body.
pub trait Fold: Send {
    /// Reads one event (`name` is the SSE event name, `message` when unnamed).
    fn event(&mut self, name: &str, data: &str) -> Result<Step, StreamFailure>;
    /// The assembled response body once the stream has ended.
    fn finish(self: Box<Self>) -> Result<Value, StreamFailure>;
}

/// The folder for a protocol name; `None` for a protocol that does not stream.
pub fn folder(protocol: &str) -> Option<Box<dyn Fold>> {
    Some(match protocol {
        "openai" => Box::<ChatFold>::default(),
        "anthropic" => Box::<AnthropicFold>::default(),
        "gemini" => Box::<GeminiFold>::default(),
        "openai-responses" => Box::<ResponsesFold>::default(),
        _ => return None,
    })
}

fn json(data: &str) -> Result<Value, StreamFailure> {
    serde_json::from_str(data).map_err(|e| {
        let mut d: String = data.chars().take(200).collect();
        if d.len() < data.len() {
            d.push('…');
        }
        StreamFailure::Malformed(format!("stream event is not JSON ({e}): {d}"))
    })
}

/// An error object's code (`code`, else `type`, else `status`) and message.
fn error_of(e: &Value) -> StreamFailure {
    let text = |k: &str| {
        e.get(k).and_then(|x| match x {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    StreamFailure::Error {
        code: text("code")
            .or_else(|| text("type"))
            .or_else(|| text("status")),
        message: text("message").unwrap_or_else(|| e.to_string()),
    }
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// OpenAI Chat Completions chunks (and every compatible server): `data: {chunk}` … `data: [DONE]`.
#[derive(Default)]
struct ChatFold {
    head: Map<String, Value>,
    text: String,
    finish_reason: Option<String>,
    usage: Option<Value>,
    done: bool,
}

impl Fold for ChatFold {
    fn event(&mut self, _name: &str, data: &str) -> Result<Step, StreamFailure> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(Step::Other);
        }
        let v = json(data)?;
        // OpenRouter reports a failure after the 200 as a chunk with an `error`.
        if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
            return Err(error_of(e));
        }
        for k in [
            "id",
            "model",
            "created",
            "service_tier",
            "system_fingerprint",
        ] {
            if let Some(x) = v.get(k).filter(|x| !x.is_null()) {
                self.head.insert(k.into(), x.clone());
            }
        }
        // Older Moonshot streams put the usage inside the last choice.
        let choice = v.pointer("/choices/0");
        if let Some(u) = v
            .get("usage")
            .or_else(|| choice.and_then(|c| c.get("usage")))
            .filter(|u| u.is_object())
        {
            self.usage = Some(u.clone());
        }
        let Some(choice) = choice else {
            return Ok(Step::Other);
        };
        if let Some(r) = str_of(choice, "finish_reason") {
            self.finish_reason = Some(r);
        }
        match choice.pointer("/delta/content").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => {
                self.text.push_str(t);
                Ok(Step::Content)
            }
            _ => Ok(Step::Other),
        }
    }

    fn finish(self: Box<Self>) -> Result<Value, StreamFailure> {
        if !self.done && self.finish_reason.is_none() {
            return Err(StreamFailure::Truncated(
                "the stream ended before a finish_reason or [DONE]".into(),
            ));
        }
        let mut body = self.head;
        body.insert("object".into(), json!("chat.completion"));
        body.insert(
            "choices".into(),
            json!([{
                "index": 0,
                "message": {"role": "assistant", "content": self.text},
                "finish_reason": self.finish_reason,
            }]),
        );
        if let Some(u) = self.usage {
            body.insert("usage".into(), u);
        }
        Ok(Value::Object(body))
    }
}

/// Anthropic Messages: `message_start`, content blocks, `message_delta`, `message_stop`.
#[derive(Default)]
struct AnthropicFold {
    message: Option<Map<String, Value>>,
    text: String,
    stop_reason: Option<Value>,
    /// Counters from `message_delta`: cumulative, so the last value wins.
    final_usage: Option<Map<String, Value>>,
    stopped: bool,
}

impl Fold for AnthropicFold {
    fn event(&mut self, name: &str, data: &str) -> Result<Step, StreamFailure> {
        let v = json(data)?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(name);
        match kind {
            "error" => Err(error_of(v.get("error").unwrap_or(&v))),
            "message_start" => {
                self.message = v.get("message").and_then(Value::as_object).cloned();
                Ok(Step::Other)
            }
            "content_block_delta" => {
                // Only text deltas are the answer; thinking and tool input are not.
                match v.pointer("/delta/text").and_then(Value::as_str) {
                    Some(t) if v.pointer("/delta/type") == Some(&json!("text_delta")) => {
                        self.text.push_str(t);
                        Ok(if t.is_empty() {
                            Step::Other
                        } else {
                            Step::Content
                        })
                    }
                    _ => Ok(Step::Other),
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").filter(|r| !r.is_null()) {
                    self.stop_reason = Some(r.clone());
                }
                if let Some(u) = v.get("usage").and_then(Value::as_object) {
                    let merged = self.final_usage.get_or_insert_with(Map::new);
                    merged.extend(u.iter().map(|(k, x)| (k.clone(), x.clone())));
                }
                Ok(Step::Other)
            }
            "message_stop" => {
                self.stopped = true;
                Ok(Step::Other)
            }
            _ => Ok(Step::Other),
        }
    }

    fn finish(self: Box<Self>) -> Result<Value, StreamFailure> {
        let Some(mut msg) = self.message else {
            return Err(StreamFailure::Truncated(
                "the stream ended without a message_start".into(),
            ));
        };
        if !self.stopped && self.stop_reason.is_none() {
            return Err(StreamFailure::Truncated(
                "the stream ended before message_delta or message_stop".into(),
            ));
        }
        msg.insert(
            "content".into(),
            json!([{"type": "text", "text": self.text}]),
        );
        msg.insert(
            "stop_reason".into(),
            self.stop_reason.unwrap_or(Value::Null),
        );
        // message_start's usage has the prompt counters and a placeholder output count; only
        // message_delta's cumulative counters make it the bill. Without them usage is unknown.
        match self.final_usage {
            Some(last) => {
                let mut u = msg
                    .get("usage")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                u.extend(last);
                msg.insert("usage".into(), Value::Object(u));
            }
            None => {
                msg.remove("usage");
            }
        }
        Ok(Value::Object(msg))
    }
}

/// Gemini `streamGenerateContent?alt=sse`: each event a `GenerateContentResponse`, no end marker.
#[derive(Default)]
struct GeminiFold {
    head: Map<String, Value>,
    text: String,
    finish_reason: Option<Value>,
    usage: Option<Value>,
    prompt_feedback: Option<Value>,
    chunks: usize,
}

impl Fold for GeminiFold {
    fn event(&mut self, _name: &str, data: &str) -> Result<Step, StreamFailure> {
        let v = json(data)?;
        let v = match v {
            // Some proxies send the error array the non-SSE endpoint uses.
            Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
            other => other,
        };
        if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
            return Err(error_of(e));
        }
        self.chunks += 1;
        for k in ["modelVersion", "responseId"] {
            if let Some(x) = v.get(k) {
                self.head.insert(k.into(), x.clone());
            }
        }
        if let Some(u) = v.get("usageMetadata").filter(|u| u.is_object()) {
            // Cumulative per chunk: the last one is the bill.
            self.usage = Some(u.clone());
        }
        if let Some(p) = v.get("promptFeedback") {
            self.prompt_feedback = Some(p.clone());
        }
        let Some(c) = v.pointer("/candidates/0") else {
            return Ok(Step::Other);
        };
        if let Some(r) = c.get("finishReason").filter(|r| !r.is_null()) {
            self.finish_reason = Some(r.clone());
        }
        let mut step = Step::Other;
        for p in c
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
        {
            if let Some(t) = p
                .get("text")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                self.text.push_str(t);
                step = Step::Content;
            }
        }
        Ok(step)
    }

    fn finish(self: Box<Self>) -> Result<Value, StreamFailure> {
        let mut body = self.head;
        if let Some(p) = self.prompt_feedback {
            body.insert("promptFeedback".into(), p);
        }
        if self.finish_reason.is_none() {
            // A blocked prompt ends with promptFeedback and no candidate: the parser says why.
            if body.contains_key("promptFeedback") {
                return Ok(Value::Object(body));
            }
            return Err(StreamFailure::Truncated(format!(
                "the stream ended after {} chunks without a finishReason",
                self.chunks
            )));
        }
        body.insert(
            "candidates".into(),
            json!([{
                "content": {"parts": [{"text": self.text}], "role": "model"},
                "finishReason": self.finish_reason,
                "index": 0,
            }]),
        );
        if let Some(u) = self.usage {
            body.insert("usageMetadata".into(), u);
        }
        Ok(Value::Object(body))
    }
}

/// The OpenAI Responses API: typed events, the whole response in the terminal one.
#[derive(Default)]
struct ResponsesFold {
    response: Option<Value>,
}

impl Fold for ResponsesFold {
    fn event(&mut self, name: &str, data: &str) -> Result<Step, StreamFailure> {
        let v = json(data)?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or(name);
        match kind {
            "error" => Err(error_of(v.get("error").unwrap_or(&v))),
            "response.failed" => Err(error_of(
                v.pointer("/response/error")
                    .filter(|e| !e.is_null())
                    .unwrap_or(&v),
            )),
            "response.completed" | "response.incomplete" => {
                self.response = v.get("response").cloned();
                Ok(Step::Other)
            }
            "response.output_text.delta" => Ok(match v.get("delta").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => Step::Content,
                _ => Step::Other,
            }),
            _ => Ok(Step::Other),
        }
    }

    fn finish(self: Box<Self>) -> Result<Value, StreamFailure> {
        self.response.ok_or_else(|| {
            StreamFailure::Truncated(
                "the stream ended before response.completed or response.incomplete".into(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::protocol_for;
    use crate::providers::testutil::fixture;

    /// Feeds an SSE fixture through a folder (a minimal framing: blank-line separated events).
    fn fold(protocol: &str, sse: &str) -> Result<(Value, usize), StreamFailure> {
        let mut f = folder(protocol).unwrap();
        let mut contents = 0;
        for block in sse.split("\n\n").filter(|b| !b.trim().is_empty()) {
            let mut name = "message";
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n;
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            if f.event(name, &data)? == Step::Content {
                contents += 1;
            }
        }
        f.finish().map(|v| (v, contents))
    }

    fn text(name: &str) -> String {
        String::from_utf8(fixture(name)).unwrap()
    }

    #[test]
    fn openai_chunks_fold_into_a_completion_with_the_usage_chunk() {
        let (body, contents) = fold("openai", &text("openai-chat-stream.sse")).unwrap();
        assert_eq!(contents, 2);
        let c = protocol_for("openai")
            .unwrap()
            .parse(body.to_string().as_bytes())
            .unwrap();
        assert_eq!(c.text, "Hello world.");
        assert_eq!(c.finish_reason.as_deref(), Some("stop"));
        let u = c.usage.unwrap();
        assert_eq!(
            (u.input, u.cached_input, u.output, u.reasoning),
            (176, 1024, 76, 64)
        );
        assert_eq!(c.served.tier.as_deref(), Some("default"));
    }

    #[test]
    fn anthropic_usage_is_message_start_overwritten_by_message_delta() {
        let (body, contents) = fold("anthropic", &text("anthropic-messages-stream.sse")).unwrap();
        assert_eq!(contents, 2);
        let c = protocol_for("anthropic")
            .unwrap()
            .parse(body.to_string().as_bytes())
            .unwrap();
        assert_eq!(c.text, "Hello world.");
        assert_eq!(c.finish_reason.as_deref(), Some("end_turn"));
        let u = c.usage.unwrap();
        // output_tokens 9 from message_delta, not message_start's placeholder 1.
        assert_eq!((u.input, u.cached_input, u.output), (312, 10240, 9));
        assert_eq!(c.served.tier.as_deref(), Some("standard"));
    }

    #[test]
    fn gemini_takes_the_last_usage_metadata() {
        let (body, contents) = fold("gemini", &text("gemini-stream.sse")).unwrap();
        assert_eq!(contents, 2);
        let c = protocol_for("gemini")
            .unwrap()
            .parse(body.to_string().as_bytes())
            .unwrap();
        assert_eq!(c.text, "Hello world.");
        let u = c.usage.unwrap();
        // candidates 4 + thoughts 250, from the last chunk (the first lacks candidates).
        assert_eq!((u.input, u.output, u.reasoning), (900, 254, 250));
    }

    #[test]
    fn a_stream_without_usage_folds_into_unknown_usage_not_zero() {
        let sse = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        let (body, _) = fold("openai", sse).unwrap();
        let c = protocol_for("openai")
            .unwrap()
            .parse(body.to_string().as_bytes())
            .unwrap();
        assert_eq!(c.text, "hi");
        assert_eq!(c.usage, None);
        // Anthropic without message_delta usage: message_start's placeholder is not a bill.
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let (body, _) = fold("anthropic", sse).unwrap();
        let c = protocol_for("anthropic")
            .unwrap()
            .parse(body.to_string().as_bytes())
            .unwrap();
        assert_eq!(c.usage, None);
    }

    #[test]
    fn error_events_after_the_200_are_failures_with_their_code() {
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"content\":[]}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        assert_eq!(
            fold("anthropic", sse).unwrap_err(),
            StreamFailure::Error {
                code: Some("overloaded_error".into()),
                message: "Overloaded".into()
            }
        );
        let sse = "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}],\"error\":{\"code\":502,\"message\":\"Provider disconnected\"}}\n\n";
        assert_eq!(
            fold("openai", sse).unwrap_err(),
            StreamFailure::Error {
                code: Some("502".into()),
                message: "Provider disconnected".into()
            }
        );
    }

    #[test]
    fn a_cut_stream_is_truncated_and_garbage_is_malformed() {
        let sse = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n";
        assert!(matches!(
            fold("openai", sse),
            Err(StreamFailure::Truncated(_))
        ));
        assert!(matches!(
            fold(
                "gemini",
                "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\n"
            ),
            Err(StreamFailure::Truncated(_))
        ));
        assert!(matches!(
            fold("openai", "data: {not json\n\n"),
            Err(StreamFailure::Malformed(_))
        ));
    }

    #[test]
    fn responses_take_the_terminal_response() {
        let resp = String::from_utf8(fixture("openai-responses.json")).unwrap();
        let resp: Value = serde_json::from_str(&resp).unwrap();
        let sse = format!(
            "event: response.output_text.delta\ndata: {}\n\nevent: response.completed\ndata: {}\n\n",
            json!({"type": "response.output_text.delta", "delta": "Hi"}),
            json!({"type": "response.completed", "response": resp}),
        );
        let (body, contents) = fold("openai-responses", &sse).unwrap();
        assert_eq!(contents, 1);
        assert_eq!(body, resp);
        let sse = format!(
            "event: response.failed\ndata: {}\n\n",
            json!({"type": "response.failed", "response": {"error": {"code": "server_error", "message": "boom"}}})
        );
        assert!(matches!(
            fold("openai-responses", &sse),
            Err(StreamFailure::Error { code: Some(c), .. }) if c == "server_error"
        ));
    }
}
