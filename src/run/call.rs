//! One HTTP try with a provider and its classification; the retry loop lives in the online
//! dispatcher ([`super::dispatch`]).
//!
//! Retries follow the OpenAI SDK's policy (shared/reference/providers.md §1): retry 408, 409,
//! 429 and 5xx, timeouts and connection errors; honour `x-should-retry`, `retry-after-ms` and
//! `retry-after` (seconds or an HTTP date); give up when the server asks for a longer wait
//! than the policy allows. Every header is read defensively: no value a server sends panics.
//! `insufficient_quota` (a 429) and a 402 without `retry-after` are terminal.
//!
//! A streamed call (`stream: true`) reads its server-sent events as they come, notes the time
//! to the first answer text, and folds them into the body a plain call would have returned
//! ([`crate::providers::stream`]); from there it is parsed, priced and cached like any other.

use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;
use reqwest::header::HeaderMap;

use crate::providers::quirks::{self, is_content_refusal, is_context_length, is_overloaded};
use crate::providers::stream::{self, Step, StreamFailure};
use crate::providers::{Completion, ErrorInfo, Protocol, ProviderConfig};
use crate::store::{AttemptRow, Delivery, ErrorKind, now};

/// The longest a single HTTP call may be given, whatever the config says: a day. Keeps the
/// conversion to a [`Duration`] and the deadline arithmetic far from overflow.
const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(86_400);

/// The per-call timeout of a provider, never panicking on any configured value.
pub fn call_timeout(cfg: &ProviderConfig) -> Duration {
    Duration::try_from_secs_f64(cfg.timeout_s)
        .unwrap_or(MAX_CALL_TIMEOUT)
        .min(MAX_CALL_TIMEOUT)
}

/// The outcome of one HTTP try, before it is stored.
pub struct TryResult {
    /// The stored form (run/slot fields are filled by the caller).
    pub row: AttemptRow,
    /// Whether another try may help.
    pub retryable: bool,
    /// A wait the server asked for.
    pub retry_after: Option<Duration>,
    /// The raw 2xx body (valid JSON), for the cache.
    pub body: Option<String>,
    /// How long the provider's rate-limit headers say to hold further calls.
    pub pause: Option<Duration>,
}

/// Everything needed to send one request.
pub struct CallSpec<'a> {
    /// The provider.
    pub cfg: &'a ProviderConfig,
    /// Its protocol.
    pub protocol: &'a dyn Protocol,
    /// Shared HTTP client.
    pub client: &'a reqwest::Client,
    /// API key, if any.
    pub key: Option<&'a str>,
    /// The request body, in its streaming form when `stream` is set.
    pub body: &'a serde_json::Value,
    /// Ask for server-sent events (the provider's `stream: true`).
    pub stream: bool,
}

/// Delays between tries, with jitter, per the provider's policy.
pub fn backoff(cfg: &ProviderConfig) -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(cfg.retry.base_delay_ms))
        .with_max_delay(Duration::from_millis(
            cfg.retry.max_delay_ms.max(cfg.retry.base_delay_ms),
        ))
        .with_max_times(cfg.retry.max_retries as usize)
        .with_jitter()
        .build()
}

/// Sends the request once and classifies what came back.
///
/// Some servers echo the credentials they rejected; the key is cut out of every stored message.
/// `slot` carries the attempt's identity (run, suite, provider, task, repeat, try, hash).
pub async fn try_once(spec: &CallSpec<'_>, slot: AttemptRow) -> TryResult {
    let mut r = exchange(spec, slot).await;
    if let (Some(key), Some(m)) = (spec.key, r.row.error_message.as_mut()) {
        *m = redact(m, key);
    }
    r
}

/// Replaces every occurrence of `secret` in `text`.
fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "[REDACTED]")
    }
}

async fn exchange(spec: &CallSpec<'_>, slot: AttemptRow) -> TryResult {
    let started_at = now();
    let t0 = Instant::now();
    let url = if spec.stream {
        spec.protocol.stream_url(spec.cfg)
    } else {
        spec.protocol.url(spec.cfg)
    };
    let mut req = spec
        .client
        .post(url)
        .timeout(call_timeout(spec.cfg))
        .json(spec.body);
    if let Some(k) = spec.key {
        for (h, v) in spec.protocol.auth_headers(k) {
            req = req.header(h, v);
        }
    }
    let mut row = AttemptRow { started_at, ..slot };
    let resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) => return transport_failure(row, t0, &e),
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    row.http_status = Some(status);
    let pause = super::limits::pause_from_headers(
        &headers,
        Duration::from_secs(spec.cfg.retry.max_retry_after_s),
    );
    // A server that ignores `stream: true` answers with one JSON body, read as usual.
    let sse = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if spec.stream && sse && (200..300).contains(&status) {
        let mut r = streamed(spec, row, t0, resp, &headers).await;
        r.pause = pause;
        return r;
    }
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return transport_failure(row, t0, &e),
    };
    row.latency_ms = t0.elapsed().as_secs_f64() * 1000.0;

    if (200..300).contains(&status) {
        let mut r = success(spec, row, &headers, &bytes);
        r.pause = pause;
        return r;
    }

    let info = spec.protocol.parse_error(&bytes);
    let limit = spec.cfg.retry.max_retry_after_s;
    let (retry_after, too_long) = match retry_after(&headers, limit) {
        Ok(wait) => (wait, None),
        Err(asked) => (None, Some(asked)),
    };
    let (kind, mut retryable) = classify(status, &info, retry_after.is_some());
    match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
        Some("true") => retryable = true,
        Some("false") => retryable = false,
        _ => {}
    }
    let mut message = format!(
        "HTTP {status}{}",
        info.message
            .as_deref()
            .map(|m| format!(": {}", truncate(m, 300)))
            .unwrap_or_default()
    );
    if let Some(asked) = too_long {
        retryable = false;
        message.push_str(&format!(
            " (retry-after {}s exceeds the {limit}s limit)",
            truncate(&format!("{asked:.0}"), 40)
        ));
    }
    row.error_kind = Some(kind);
    row.error_message = Some(message);
    // Rejected requests are not billed.
    row.delivery = Delivery::Refused;
    row.cost = Delivery::Refused.known_cost();
    row.spent = row.cost;
    TryResult {
        row,
        retryable,
        retry_after,
        body: None,
        pause,
    }
}

/// What an HTTP error (or an error event after a 200, whose `status` is the code it names)
/// means, and whether another try may help.
fn classify(status: u16, info: &ErrorInfo, has_retry_after: bool) -> (ErrorKind, bool) {
    let code = info.code.as_deref().unwrap_or_default();
    let message = info.message.as_deref().unwrap_or_default();
    match status {
        429 if code == "insufficient_quota" => (ErrorKind::Quota, false),
        429 => (ErrorKind::RateLimited, true),
        402 => (ErrorKind::Quota, has_retry_after),
        401 | 403 => (ErrorKind::Auth, false),
        404 => (ErrorKind::NotFound, false),
        // 504: the provider's own deadline (Anthropic `timeout_error`, Gemini DEADLINE_EXCEEDED).
        408 | 504 => (ErrorKind::Timeout, true),
        409 => (ErrorKind::Conflict, true),
        400 if is_context_length(code, message) => (ErrorKind::ContextLength, false),
        400 if is_content_refusal(code) => (ErrorKind::ContentRefused, false),
        500..=599 if is_overloaded(status, code, message) => (ErrorKind::Overloaded, true),
        500..=599 => (ErrorKind::ServerError, true),
        _ => (ErrorKind::ClientError, false),
    }
}

/// The HTTP status an error event's code stands for: a number (OpenRouter), or an error type
/// (Anthropic's `overloaded_error`, OpenAI's `rate_limit_exceeded`); unknown ones as a 500.
fn event_status(code: &str) -> u16 {
    if let Ok(n) = code.parse::<u16>() {
        return n;
    }
    match code {
        "rate_limit_error" | "rate_limit_exceeded" | "RESOURCE_EXHAUSTED" => 429,
        "overloaded_error" => 529,
        "timeout_error" | "DEADLINE_EXCEEDED" => 504,
        "invalid_request_error" | "INVALID_ARGUMENT" | "context_length_exceeded" => 400,
        c if is_content_refusal(c) => 400,
        "authentication_error" | "permission_error" | "PERMISSION_DENIED" => 403,
        "not_found_error" | "NOT_FOUND" => 404,
        "billing_error" | "insufficient_quota" => 402,
        _ => 500,
    }
}

/// A 2xx body: an answer, or one that cannot be read.
fn success(
    spec: &CallSpec<'_>,
    mut row: AttemptRow,
    headers: &HeaderMap,
    bytes: &[u8],
) -> TryResult {
    match spec.protocol.parse(bytes) {
        Ok(mut c) => {
            // Gemini names the tier that served the call (priority can fall back to
            // standard) in a header, not the body.
            if let Some(t) = headers
                .get("x-gemini-service-tier")
                .and_then(|v| v.to_str().ok())
            {
                c.served.tier = Some(t.to_string());
            }
            answered(row, c, spec.cfg, bytes)
        }
        Err(e) => {
            // A body we cannot read is not retried: the same server would send it again.
            row.delivery = Delivery::Answered;
            // Gemini answers a blocked prompt with its reason and no candidate.
            row.error_kind = Some(if e.starts_with("prompt blocked") {
                ErrorKind::ContentRefused
            } else {
                ErrorKind::BadResponse
            });
            row.error_message = Some(e);
            row.cost = None;
            TryResult {
                row,
                retryable: false,
                retry_after: None,
                body: None,
                pause: None,
            }
        }
    }
}

/// Reads a streamed answer: folds its events into the body a plain call would have returned
/// (which is parsed, priced and cached as such) and notes the time to the first answer text.
async fn streamed(
    spec: &CallSpec<'_>,
    mut row: AttemptRow,
    t0: Instant,
    resp: reqwest::Response,
    headers: &HeaderMap,
) -> TryResult {
    let Some(mut fold) = stream::folder(&spec.cfg.protocol) else {
        return stream_failed(
            row,
            t0,
            StreamFailure::Malformed("protocol cannot stream".into()),
        );
    };
    let mut events = resp.bytes_stream().eventsource();
    while let Some(ev) = events.next().await {
        let step = match ev {
            // Keep-alive and `ping`-only events carry no data.
            Ok(ev) if ev.data.trim().is_empty() => continue,
            Ok(ev) => fold.event(&ev.event, &ev.data),
            Err(EventStreamError::Transport(e)) => return transport_failure(row, t0, &e),
            Err(e) => Err(StreamFailure::Malformed(format!("unreadable stream: {e}"))),
        };
        match step {
            Ok(Step::Content) if row.ttft_ms.is_none() => {
                row.ttft_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(_) => {}
            Err(f) => return stream_failed(row, t0, f),
        }
    }
    row.latency_ms = t0.elapsed().as_secs_f64() * 1000.0;
    match fold.finish() {
        Ok(body) => {
            let mut r = success(spec, row, headers, body.to_string().as_bytes());
            if r.row.answered && r.row.usage.is_none() && r.row.cost.is_none() {
                let note = "the stream ended without usage: cost unknown";
                r.row.error_message = Some(match r.row.error_message.take() {
                    Some(m) => format!("{m}; {note}"),
                    None => note.into(),
                });
            }
            r
        }
        Err(f) => stream_failed(row, t0, f),
    }
}

/// A stream that gave no answer: an error event after the 200 (classified by its code), a
/// stream cut short, or events that cannot be read. The provider may have billed the tokens
/// it generated, so the cost is unknown (bounded), never 0.
fn stream_failed(mut row: AttemptRow, t0: Instant, f: StreamFailure) -> TryResult {
    row.latency_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let (kind, retryable, message) = match f {
        StreamFailure::Error { code, message } => {
            let info = ErrorInfo {
                code: code.clone(),
                message: Some(message.clone()),
            };
            let (kind, retryable) =
                classify(event_status(code.as_deref().unwrap_or("")), &info, false);
            let code = code.map(|c| format!("{c}: ")).unwrap_or_default();
            (
                kind,
                retryable,
                format!(
                    "error event after HTTP 200: {code}{}",
                    truncate(&message, 300)
                ),
            )
        }
        StreamFailure::Truncated(m) => (ErrorKind::Connection, true, format!("stream broken: {m}")),
        StreamFailure::Malformed(m) => (ErrorKind::BadResponse, false, m),
    };
    row.delivery = if kind == ErrorKind::BadResponse {
        Delivery::Answered
    } else {
        Delivery::SentUnknown
    };
    row.error_kind = Some(kind);
    row.error_message = Some(message);
    row.cost = None;
    row.spent = None;
    TryResult {
        row,
        retryable,
        retry_after: None,
        body: None,
        pause: None,
    }
}

/// The attempt of a parsed 2xx answer: priced as served, an incomplete finish kept as a
/// billed failure.
pub(super) fn answered(
    mut row: AttemptRow,
    mut c: Completion,
    cfg: &ProviderConfig,
    bytes: &[u8],
) -> TryResult {
    let note = quirks::sane_usage(&mut c);
    row.delivery = Delivery::Answered;
    row.cost = quirks::price(&c, cfg, &row.started_at);
    row.spent = row.cost;
    row.usage = c.usage;
    row.finish_reason = c.finish_reason.clone();
    if let Some(why) = quirks::refused_finish(row.finish_reason.as_deref(), &c.text) {
        // Billed, but refused: nothing to grade, and asking again gets the same refusal.
        row.output = Some(c.text);
        row.error_kind = Some(ErrorKind::ContentRefused);
        row.error_message = Some(why);
        return TryResult {
            row,
            retryable: false,
            retry_after: None,
            body: None,
            pause: None,
        };
    }
    row.output = Some(c.text);
    if let Some(why) = quirks::incomplete_finish(row.finish_reason.as_deref()) {
        // Billed, but not an answer; another try may get one.
        row.error_kind = Some(ErrorKind::Incomplete);
        row.error_message = Some(why.into());
        return TryResult {
            row,
            retryable: true,
            retry_after: None,
            body: None,
            pause: None,
        };
    }
    row.answered = true;
    row.error_message = note;
    TryResult {
        row,
        retryable: false,
        retry_after: None,
        body: String::from_utf8(bytes.to_vec()).ok(),
        pause: None,
    }
}

fn transport_failure(mut row: AttemptRow, t0: Instant, e: &reqwest::Error) -> TryResult {
    row.latency_ms = t0.elapsed().as_secs_f64() * 1000.0;
    // A connect-phase failure (DNS, refused, connect timeout, TLS) sent nothing; once the
    // request is written, the server may have generated (and billed) an answer we never saw.
    let (kind, delivery) = if e.is_connect() {
        (ErrorKind::Connection, Delivery::NeverSent)
    } else if e.is_timeout() {
        (ErrorKind::Timeout, Delivery::SentUnknown)
    } else {
        (ErrorKind::Connection, Delivery::SentUnknown)
    };
    row.error_kind = Some(kind);
    row.delivery = delivery;
    row.error_message = Some(error_chain(e));
    row.cost = delivery.known_cost();
    row.spent = row.cost;
    TryResult {
        row,
        retryable: true,
        retry_after: None,
        body: None,
        pause: None,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    truncate(&crate::providers::error_chain(e), 500)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// The wait a server asked for: `retry-after-ms`, then `retry-after` in seconds or as an
/// HTTP date. `Err(seconds)` when it asks for more than `limit_s`; unreadable, negative or
/// non-finite values are ignored. Compared in f64 before any [`Duration`] is built, so no
/// header value can panic the run.
fn retry_after(h: &HeaderMap, limit_s: u64) -> Result<Option<Duration>, f64> {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    let seconds = get("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| ms / 1000.0)
        .or_else(|| {
            let v = get("retry-after")?;
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .or_else(|| {
                    let at = httpdate::parse_http_date(v).ok()?;
                    // A date in the past means "now".
                    Some(
                        at.duration_since(std::time::SystemTime::now())
                            .map_or(0.0, |d| d.as_secs_f64()),
                    )
                })
        });
    match seconds {
        None => Ok(None),
        Some(s) if s > limit_s as f64 => Err(s),
        Some(s) => Ok(Duration::try_from_secs_f64(s).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_redacted() {
        assert_eq!(
            redact("Incorrect API key provided: sk-abc (sk-abc)", "sk-abc"),
            "Incorrect API key provided: [REDACTED] ([REDACTED])"
        );
        assert_eq!(redact("no key here", ""), "no key here");
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h, 60), Ok(Some(Duration::from_secs(2))));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h, 60), Ok(Some(Duration::from_millis(150))));
        // An HTTP date is honoured: one in the past means "now".
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, 60), Ok(Some(Duration::ZERO)));
        let later =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600));
        h.insert("retry-after", later.parse().unwrap());
        assert!(matches!(retry_after(&h, 60), Err(s) if s > 3000.0));
    }

    // Regression: `retry-after-ms: 1e300` and `retry-after: 1e25` panicked in
    // Duration::from_secs_f64 before the limit was checked.
    #[test]
    fn huge_retry_after_is_over_the_limit_not_a_panic() {
        for (k, v) in [("retry-after-ms", "1e300"), ("retry-after", "1e25")] {
            let mut h = HeaderMap::new();
            h.insert(k, v.parse().unwrap());
            assert!(retry_after(&h, 120).is_err(), "{k}: {v}");
        }
        for v in ["NaN", "inf", "-1", "-inf", "soon", ""] {
            let mut h = HeaderMap::new();
            h.insert("retry-after", v.parse().unwrap());
            assert_eq!(retry_after(&h, 120), Ok(None), "{v}");
        }
    }

    #[test]
    fn error_kinds_of_http_errors_and_stream_error_events() {
        let info = |code: &str, message: &str| ErrorInfo {
            code: Some(code.into()),
            message: Some(message.into()),
        };
        let kind = |status, code, message| classify(status, &info(code, message), false);
        assert_eq!(
            kind(529, "overloaded_error", "Overloaded"),
            (ErrorKind::Overloaded, true)
        );
        assert_eq!(
            kind(503, "UNAVAILABLE", "The model is overloaded."),
            (ErrorKind::Overloaded, true)
        );
        assert_eq!(kind(503, "", "no provider"), (ErrorKind::ServerError, true));
        assert_eq!(
            kind(400, "content_policy_violation", "no"),
            (ErrorKind::ContentRefused, false)
        );
        assert_eq!(
            kind(400, "invalid_request_error", "bad"),
            (ErrorKind::ClientError, false)
        );
        // Error events after a 200 name a type or a number, not a status.
        for (code, expected) in [
            ("overloaded_error", ErrorKind::Overloaded),
            ("rate_limit_error", ErrorKind::RateLimited),
            ("502", ErrorKind::ServerError),
            ("api_error", ErrorKind::ServerError),
            ("timeout_error", ErrorKind::Timeout),
            ("data_inspection_failed", ErrorKind::ContentRefused),
        ] {
            assert_eq!(kind(event_status(code), code, "").0, expected, "{code}");
        }
    }

    // Regression: a huge `timeout_s` panicked in Duration::from_secs_f64.
    #[test]
    fn any_timeout_converts() {
        let mut cfg =
            crate::providers::testutil::config("openai", "http://x/v1", "m", serde_json::json!({}));
        for t in [1e300, f64::INFINITY, f64::NAN, -1.0, 0.5] {
            cfg.timeout_s = t;
            assert!(call_timeout(&cfg) <= MAX_CALL_TIMEOUT);
        }
    }
}
