//! Per-provider rate limits: `rpm` and `tpm` from the providers file (GCRA limiters from
//! governor), and the pauses a provider asks for in its rate-limit headers, so the run slows
//! down before it is refused instead of hammering and retrying.
//!
//! A request's tokens are estimated before the call (the prompt's UTF-8 length / 4, a typical
//! ratio, plus its completion cap) and corrected after: tokens the answer used beyond the
//! estimate are charged to the limiter then, delaying the next calls. GCRA cannot refund, so an
//! overestimate is not given back; the estimate is kept close rather than conservative.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::providers::{ProviderConfig, Usage};

/// The limits of one provider.
pub struct Limits {
    rpm: Option<DefaultDirectRateLimiter>,
    tpm: Option<(DefaultDirectRateLimiter, NonZeroU32)>,
    /// No call starts before this instant (a provider's rate-limit headers said so).
    paused_until: Mutex<Option<Instant>>,
}

impl Limits {
    /// The limits `cfg` sets (none by default).
    pub fn new(cfg: &ProviderConfig) -> Limits {
        Limits {
            rpm: cfg.rpm.map(|n| RateLimiter::direct(Quota::per_minute(n))),
            tpm: cfg
                .tpm
                .map(|n| (RateLimiter::direct(Quota::per_minute(n)), n)),
            paused_until: Mutex::new(None),
        }
    }

    /// Waits until a request of about `tokens` tokens may start.
    pub async fn admit(&self, tokens: u64) {
        let until = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = until {
            tokio::time::sleep_until(t).await;
        }
        if let Some(l) = &self.rpm {
            l.until_ready().await;
        }
        self.take_tokens(tokens).await;
    }

    /// Charges tokens an answer used beyond its estimate.
    pub async fn charge(&self, extra: u64) {
        self.take_tokens(extra).await;
    }

    async fn take_tokens(&self, tokens: u64) {
        let Some((l, per_minute)) = &self.tpm else {
            return;
        };
        // A request larger than the whole minute's budget waits for a full bucket, not forever.
        let n = tokens.clamp(1, u64::from(per_minute.get())) as u32;
        if let Some(n) = NonZeroU32::new(n) {
            // Cannot fail: n is at most the burst size.
            let _ = l.until_n_ready(n).await;
        }
    }

    /// Holds every call to this provider for `d` from now.
    pub fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none_or(|t| t < until) {
            *p = Some(until);
        }
    }
}

/// The tokens a request is expected to use: its prompt bytes / 4 plus its completion cap.
pub fn estimate(est_prompt_bytes: u64, cap: Option<u64>) -> u64 {
    est_prompt_bytes / 4 + cap.unwrap_or(0)
}

/// The tokens an answer used, by its usage.
pub fn used(u: &Usage) -> u64 {
    u.input
        .saturating_add(u.cached_input)
        .saturating_add(u.cache_write)
        .saturating_add(u.cache_write_1h)
        .saturating_add(u.output)
}

/// How long to hold the provider when its headers say a limit is spent: OpenAI's
/// `x-ratelimit-remaining-{requests,tokens}: 0` with `x-ratelimit-reset-*` (`"1s"`, `"6m0s"`),
/// Anthropic's `anthropic-ratelimit-*-remaining: 0` with `*-reset` (an RFC 3339 time). At most
/// `limit`.
pub fn pause_from_headers(h: &HeaderMap, limit: Duration) -> Option<Duration> {
    let text = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    let spent = |k: &str| text(k).and_then(|v| v.parse::<f64>().ok()) == Some(0.0);
    let mut wait: Option<Duration> = None;
    for what in ["requests", "tokens"] {
        if spent(&format!("x-ratelimit-remaining-{what}"))
            && let Some(d) = text(&format!("x-ratelimit-reset-{what}")).and_then(openai_duration)
        {
            wait = wait.max(Some(d));
        }
    }
    for what in ["requests", "tokens", "input-tokens", "output-tokens"] {
        if spent(&format!("anthropic-ratelimit-{what}-remaining"))
            && let Some(d) = text(&format!("anthropic-ratelimit-{what}-reset")).and_then(until)
        {
            wait = wait.max(Some(d));
        }
    }
    wait.map(|w| w.min(limit))
}

/// OpenAI's reset durations: `"20ms"`, `"1s"`, `"1.5s"`, `"6m0s"`, `"1h2m3s"`.
fn openai_duration(s: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let (num, tail) = rest.split_at(split);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let n: f64 = num.parse().ok()?;
        total += n * match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = next;
    }
    (total.is_finite() && total <= 86_400.0).then(|| Duration::from_secs_f64(total))
}

/// The time from now until an RFC 3339 instant (zero when it has passed).
fn until(rfc3339: &str) -> Option<Duration> {
    let t = humantime::parse_rfc3339_weak(rfc3339).ok()?;
    Some(
        t.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn openai_reset_durations() {
        assert_eq!(openai_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(openai_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(openai_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(openai_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(openai_duration("soon"), None);
        assert_eq!(openai_duration("5x"), None);
        assert_eq!(openai_duration("1e300s"), None);
    }

    #[test]
    fn a_spent_limit_pauses_until_its_reset_and_no_longer_than_allowed() {
        let limit = Duration::from_secs(60);
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "2s"),
            ("x-ratelimit-remaining-tokens", "1500"),
            ("x-ratelimit-reset-tokens", "30s"),
        ]);
        assert_eq!(pause_from_headers(&h, limit), Some(Duration::from_secs(2)));
        // Remaining budget: no pause.
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "3"),
            ("x-ratelimit-reset-requests", "2s"),
        ]);
        assert_eq!(pause_from_headers(&h, limit), None);
        // A reset beyond the policy's limit is capped.
        let h = headers(&[
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "10m0s"),
        ]);
        assert_eq!(pause_from_headers(&h, limit), Some(limit));
        // Anthropic: an RFC 3339 reset time.
        let later = humantime::format_rfc3339_seconds(
            std::time::SystemTime::now() + Duration::from_secs(30),
        )
        .to_string();
        let h = headers(&[
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", &later),
        ]);
        let d = pause_from_headers(&h, limit).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
    }

    #[tokio::test]
    async fn a_burst_passes_and_a_pause_holds_the_next_call() {
        let cfg: ProviderConfig = serde_json::from_value(serde_json::json!({
            "id": "p", "protocol": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m",
            "rpm": 60
        }))
        .unwrap();
        let l = Limits::new(&cfg);
        // GCRA at 60 per minute with its default burst of 60 lets a first burst through, and
        // the 61st must wait for the bucket (checked without waiting).
        for _ in 0..60 {
            l.admit(0).await;
        }
        assert!(l.rpm.as_ref().unwrap().check().is_err());
        // A pause holds the next call; a shorter pause never cuts a longer one.
        let t0 = Instant::now();
        let free = Limits::new(&ProviderConfig { rpm: None, ..cfg });
        free.pause(Duration::from_millis(300));
        free.pause(Duration::from_millis(100));
        free.admit(0).await;
        assert!(
            t0.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t0.elapsed()
        );
    }
}
