//! Provider quirks the run must know about, and the production price of a parsed answer.
//!
//! Kept beside the wire protocols (not in the run) so that every dispatch mode (online HTTP
//! now, batch APIs later) and the replay path classify answers the same way.

use super::{Completion, Money, ProviderConfig, Served};

/// The most tokens one usage counter may report before it is treated as unreadable: 10^10.
///
/// No provider bills ten billion tokens in one call (the largest contexts are a few million),
/// so a larger figure is a broken or hostile server, not a bill; pricing it would report
/// absurd money. Such usage is dropped and the call's cost becomes unknown (and bounded).
pub const MAX_USAGE_TOKENS: u64 = 10_000_000_000;

/// Whether a 400 says the prompt is too long: OpenAI-style `context_length_exceeded`,
/// Anthropic's "prompt is too long", Gemini's "exceeds the maximum number of tokens".
pub fn is_context_length(code: &str, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    code.contains("context_length")
        || m.contains("prompt is too long")
        || m.contains("maximum number of tokens")
        || m.contains("context length")
}

/// Whether an error says the provider is overloaded: Anthropic's 529 `overloaded_error`, or a
/// 5xx whose code or message says so (OpenAI's "engine overloaded", Gemini's "The model is
/// overloaded").
pub fn is_overloaded(status: u16, code: &str, message: &str) -> bool {
    status == 529
        || code.to_ascii_lowercase().contains("overloaded")
        || message.to_ascii_lowercase().contains("overloaded")
}

/// Whether an error code says the provider refused the content: OpenAI
/// `content_policy_violation` / `content_filter`, Qwen `data_inspection_failed`.
pub fn is_content_refusal(code: &str) -> bool {
    matches!(
        code,
        "content_policy_violation" | "content_filter" | "data_inspection_failed"
    )
}

/// Why a 2xx answer with no text is a refusal by the provider's filter, if it is: OpenAI
/// `content_filter`, Anthropic `refusal`, Gemini `SAFETY` and its kin. There is nothing to
/// grade, and asking again would be refused the same way.
pub fn refused_finish(finish_reason: Option<&str>, text: &str) -> Option<String> {
    let r = finish_reason?;
    let refused = matches!(
        r,
        "content_filter"
            | "refusal"
            | "SAFETY"
            | "PROHIBITED_CONTENT"
            | "BLOCKLIST"
            | "SPII"
            | "IMAGE_SAFETY"
            | "RECITATION"
    );
    (refused && text.trim().is_empty())
        .then(|| format!("refused by the provider's filter: finish_reason {r}, no text"))
}

/// Why a 2xx answer is not a usable answer although it was billed, if it is not: DeepSeek
/// stops generation with `insufficient_system_resource` when it runs out of capacity.
pub fn incomplete_finish(finish_reason: Option<&str>) -> Option<&'static str> {
    (finish_reason == Some("insufficient_system_resource"))
        .then_some("finish_reason insufficient_system_resource")
}

/// Drops usage no provider could bill (a counter above [`MAX_USAGE_TOKENS`]) and returns a
/// note saying so; the cost then follows from the remaining figures (unknown, bounded).
pub fn sane_usage(c: &mut Completion) -> Option<String> {
    let u = c.usage?;
    let largest = [
        u.input,
        u.cached_input,
        u.cache_write,
        u.cache_write_1h,
        u.output,
        u.reasoning,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    (largest > MAX_USAGE_TOKENS).then(|| {
        c.usage = None;
        c.reported_cost = None;
        format!(
            "usage ignored: a counter of {largest} tokens is above the {MAX_USAGE_TOKENS} any provider bills in one call; cost unknown"
        )
    })
}

/// The production cost of a parsed answer: the provider's own figure, else usage × price as
/// served (tier and labels from the response, the request's start time for off-peak windows).
pub fn price(c: &Completion, cfg: &ProviderConfig, started_at: &str) -> Option<Money> {
    c.reported_cost.or_else(|| {
        let served = Served {
            at_unix: unix_seconds(started_at),
            ..c.served.clone()
        };
        c.usage
            .as_ref()
            .zip(cfg.price.as_ref())
            .and_then(|(u, p)| u.cost(p, &served))
    })
}

/// Unix seconds of a stored RFC 3339 timestamp.
pub fn unix_seconds(rfc3339: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339(rfc3339).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_secs()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Usage;

    #[test]
    fn context_length_errors_of_each_protocol() {
        assert!(is_context_length("context_length_exceeded", ""));
        assert!(is_context_length(
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum"
        ));
        assert!(is_context_length(
            "INVALID_ARGUMENT",
            "The input token count exceeds the maximum number of tokens allowed"
        ));
        assert!(!is_context_length(
            "invalid_request_error",
            "temperature: out of range"
        ));
    }

    #[test]
    fn overload_and_refusal_signals() {
        assert!(is_overloaded(529, "", ""));
        assert!(is_overloaded(200, "overloaded_error", "Overloaded"));
        assert!(is_overloaded(
            503,
            "UNAVAILABLE",
            "The model is overloaded."
        ));
        assert!(!is_overloaded(
            503,
            "",
            "no provider meets the routing requirements"
        ));
        assert!(is_content_refusal("data_inspection_failed"));
        assert!(!is_content_refusal("invalid_request_error"));
        assert!(refused_finish(Some("SAFETY"), "").is_some());
        assert!(refused_finish(Some("content_filter"), " ").is_some());
        // Text to grade is an answer, whatever the finish reason.
        assert!(refused_finish(Some("refusal"), "I can't help with that.").is_none());
        assert!(refused_finish(Some("stop"), "").is_none());
    }

    #[test]
    fn absurd_usage_is_dropped_with_a_note() {
        let mut c = Completion {
            text: String::new(),
            finish_reason: None,
            usage: Some(Usage {
                input: u64::MAX,
                ..Usage::default()
            }),
            reported_cost: None,
            served: Served::default(),
        };
        assert!(sane_usage(&mut c).is_some_and(|n| n.contains("18446744073709551615")));
        assert_eq!(c.usage, None);
        let mut ok = Completion {
            usage: Some(Usage {
                input: MAX_USAGE_TOKENS,
                ..Usage::default()
            }),
            ..c
        };
        assert_eq!(sane_usage(&mut ok), None);
        assert!(ok.usage.is_some());
    }
}
