//! The typed contracts the store keeps: the plan of a run, run statuses, and how each attempt
//! ended. The run writes them, the analysis reads them back; both sides use these types, so
//! nothing is looked up by string key and an old or foreign run is a clear error, not a silent
//! default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::providers::{Money, Price};

/// What a run was asked to do: its suites and providers (never a secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunPlan {
    /// The suites, in the order given.
    pub suites: Vec<SuitePlan>,
    /// The providers, in the order given.
    pub providers: Vec<ProviderPlan>,
}

/// A suite as the run saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SuitePlan {
    /// Unique suite name.
    pub name: String,
    /// What it measures.
    #[serde(default)]
    pub description: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// Workload class.
    pub workload: String,
    /// Acceptance a provider must reach to qualify.
    pub quality_threshold: Option<f64>,
    /// Non-inferiority margin fixed in the suite file; absent in runs stored before it existed.
    #[serde(default)]
    pub margin: Option<f64>,
    /// Downstream cost of one rejected output, femto-dollars as decimal text (exact).
    #[serde(with = "money_text")]
    pub rejection_cost_femto: Money,
    /// Samples per task per provider.
    pub repeats: u32,
    /// Number of tasks.
    pub tasks: u64,
    /// Fingerprint of everything that changes what is asked.
    pub fingerprint: String,
    /// The completion-token cap the suite's params set (`max_tokens` and its aliases); bounds
    /// the cost of a call whose answer was never seen. Absent in runs stored before it existed.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Positions of the graders marked `runtime: true` (checks that can run at serving time),
    /// which index each grade's stored `verdicts`; empty (and absent in runs stored before it
    /// existed) when the suite has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_graders: Vec<usize>,
    /// The kind of each grader, by position (absent in runs stored before it existed): the
    /// report reads `label` and `fields` graders' details and names graders by it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grader_kinds: Vec<String>,
}

/// A provider as the run saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProviderPlan {
    /// Unique id.
    pub id: String,
    /// Wire protocol.
    pub protocol: String,
    /// Base URL.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Name of the key's environment variable (never the key).
    pub api_key_env: Option<String>,
    /// Prices, exactly as configured.
    pub price: Option<Price>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl RunPlan {
    /// A suite by name.
    pub fn suite(&self, name: &str) -> Option<&SuitePlan> {
        self.suites.iter().find(|s| s.name == name)
    }

    /// A provider by id.
    pub fn provider(&self, id: &str) -> Option<&ProviderPlan> {
        self.providers.iter().find(|p| p.id == id)
    }
}

/// Money as an exact integer of femto-dollars written as text (JSON numbers lose digits).
pub mod money_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::providers::Money;

    /// Writes `"1000"`.
    pub fn serialize<S: Serializer>(m: &Money, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&m.0)
    }

    /// Reads `"1000"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let t = String::deserialize(d)?;
        t.parse::<i128>().map(Money).map_err(|_| {
            serde::de::Error::custom(format!("`{t}` is not an amount in femto-dollars"))
        })
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Calling now (or killed while calling: a later command resumes it).
    Running,
    /// Stopped by Ctrl-C.
    Interrupted,
    /// Ended with some outcomes unanswered.
    Incomplete,
    /// Stopped calling at `--max-spend`; a higher cap resumes it.
    Capped,
    /// Every outcome answered.
    Complete,
}

impl RunStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Incomplete => "incomplete",
            RunStatus::Capped => "capped",
            RunStatus::Complete => "complete",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "running" => RunStatus::Running,
            "interrupted" => RunStatus::Interrupted,
            "incomplete" => RunStatus::Incomplete,
            "capped" => RunStatus::Capped,
            "complete" => RunStatus::Complete,
            _ => return None,
        })
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a request reached the provider, which decides what a failed attempt may have cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Delivery {
    /// Nothing was sent: no key, a replay miss, a template error. Not a call; costs 0.
    #[default]
    NotCalled,
    /// The request never left: DNS failure, refused connection, TCP connect timeout, TLS
    /// failure. A call that costs a known 0.
    NeverSent,
    /// Sent, and the outcome is unknown: a timeout or reset after the request was written.
    /// The provider may have billed an answer we never saw: cost unknown, bounded.
    SentUnknown,
    /// The provider answered with an HTTP error; rejected requests are not billed.
    Refused,
    /// A 2xx response arrived (an answer, or a body that says it is incomplete).
    Answered,
}

/// Why an attempt got no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// HTTP 429.
    RateLimited,
    /// Out of credit (`insufficient_quota`, 402).
    Quota,
    /// HTTP 401/403.
    Auth,
    /// HTTP 404: an unknown model or a wrong endpoint.
    NotFound,
    /// HTTP 408 or 504 (the provider's deadline), or a client-side timeout.
    Timeout,
    /// HTTP 409.
    Conflict,
    /// The prompt is longer than the model's context.
    ContextLength,
    /// Another 4xx.
    ClientError,
    /// HTTP 5xx.
    ServerError,
    /// The provider said it is overloaded (HTTP 529, Anthropic `overloaded_error`, a 503 saying
    /// so): a capacity problem, retried, kept apart from other server errors for health.
    Overloaded,
    /// The provider refused the content: a content-policy 400, or a 2xx stopped by its filter
    /// with no text to grade.
    ContentRefused,
    /// A connection that failed or broke (see [`Delivery`] for whether anything was sent).
    Connection,
    /// A 2xx body that could not be read.
    BadResponse,
    /// A 2xx body that says generation did not finish (DeepSeek `insufficient_system_resource`).
    Incomplete,
    /// `--cache replay` had no recorded answer.
    CacheMiss,
    /// The API key variable is unset.
    MissingKey,
    /// The prompt template failed for this task.
    RenderError,
    /// A batch request the provider did not run before the batch's window ended.
    Expired,
    /// A batch request that did not run because the batch was cancelled.
    Canceled,
}

impl ErrorKind {
    /// Every kind, for parsing.
    const ALL: [ErrorKind; 19] = [
        ErrorKind::RateLimited,
        ErrorKind::Quota,
        ErrorKind::Auth,
        ErrorKind::NotFound,
        ErrorKind::Timeout,
        ErrorKind::Conflict,
        ErrorKind::ContextLength,
        ErrorKind::ClientError,
        ErrorKind::ServerError,
        ErrorKind::Overloaded,
        ErrorKind::ContentRefused,
        ErrorKind::Connection,
        ErrorKind::BadResponse,
        ErrorKind::Incomplete,
        ErrorKind::CacheMiss,
        ErrorKind::MissingKey,
        ErrorKind::RenderError,
        ErrorKind::Expired,
        ErrorKind::Canceled,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Quota => "quota",
            ErrorKind::Auth => "auth",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Conflict => "conflict",
            ErrorKind::ContextLength => "context_length",
            ErrorKind::ClientError => "client_error",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::ContentRefused => "content_refused",
            ErrorKind::Connection => "connection",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Incomplete => "incomplete",
            ErrorKind::CacheMiss => "cache_miss",
            ErrorKind::MissingKey => "missing_key",
            ErrorKind::RenderError => "render_error",
            ErrorKind::Expired => "expired",
            ErrorKind::Canceled => "canceled",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether this kind says the provider's configuration is wrong (key, permission, model
    /// or endpoint), not that the model answered badly: the run stops calling that provider.
    pub fn is_configuration(self) -> bool {
        matches!(self, ErrorKind::Auth | ErrorKind::NotFound)
    }

    /// Whether an attempt of this kind made no call at all.
    pub fn not_called(self) -> bool {
        matches!(
            self,
            ErrorKind::CacheMiss | ErrorKind::MissingKey | ErrorKind::RenderError
        )
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Delivery {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::NotCalled => "not_called",
            Delivery::NeverSent => "never_sent",
            Delivery::SentUnknown => "sent_unknown",
            Delivery::Refused => "refused",
            Delivery::Answered => "answered",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Delivery> {
        Some(match s {
            "not_called" => Delivery::NotCalled,
            "never_sent" => Delivery::NeverSent,
            "sent_unknown" => Delivery::SentUnknown,
            "refused" => Delivery::Refused,
            "answered" => Delivery::Answered,
            _ => return None,
        })
    }

    /// What such an attempt is known to cost before usage is read: `Some(0)` when nothing
    /// can have been billed, `None` when only the response can tell.
    pub fn known_cost(self) -> Option<Money> {
        match self {
            Delivery::NotCalled | Delivery::NeverSent | Delivery::Refused => Some(Money::ZERO),
            Delivery::SentUnknown | Delivery::Answered => None,
        }
    }

    /// Whether this attempt counts as an HTTP call.
    pub fn is_call(self) -> bool {
        self != Delivery::NotCalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(k.as_str()), Some(k));
        }
        for d in [
            Delivery::NotCalled,
            Delivery::NeverSent,
            Delivery::SentUnknown,
            Delivery::Refused,
            Delivery::Answered,
        ] {
            assert_eq!(Delivery::parse(d.as_str()), Some(d));
        }
        for s in ["running", "interrupted", "incomplete", "capped", "complete"] {
            assert_eq!(RunStatus::parse(s).map(RunStatus::as_str), Some(s));
        }
    }

    #[test]
    fn a_plan_stored_before_typed_plans_still_reads() {
        // The exact JSON the first release stored (rates as "$x/1M", money as femto text).
        let old = r#"{"suites":[{"name":"s","description":"","path":"s.yaml","workload":"w",
            "quality_threshold":0.5,"rejection_cost_femto":"1000000000000","repeats":1,"tasks":3,
            "fingerprint":"ab"}],
            "providers":[{"id":"p","protocol":"openai","base_url":"http://x/v1","model":"m",
            "api_key_env":null,"price":{"input":"$0.4/1M","cached_input":"$0.1/1M",
            "cache_write":null,"cache_write_1h":null,"output":"$1.6/1M"},"tags":{}}]}"#;
        let p: RunPlan = serde_json::from_str(old).unwrap();
        assert_eq!(p.suites[0].rejection_cost_femto, Money(1_000_000_000_000));
        // Stored before graders could be marked `runtime: true`: no runtime checks.
        assert!(p.suites[0].runtime_graders.is_empty());
        let price = p.providers[0].price.as_ref().unwrap();
        assert_eq!(price.input.0, 400_000_000);
        // And what is written reads back equal.
        let again: RunPlan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(again, p);
    }
}
