//! The run's typed event stream and its consumers.
//!
//! The run emits one [`RunEvent`] for each thing that happens (modelled on nextest's
//! `reporter/events.rs`); the progress bar, the counters behind the summary line and the
//! `--events` JSONL log are [`Consumer`]s of the same stream, and the store writer takes the
//! attempt itself once they have seen it. Batch and streaming dispatch will emit the same
//! events.
//!
//! `--events FILE` format: one JSON object a line, tagged by `"event"`:
//! - `run_started`: `run_id`, `resumed`, `total_slots`;
//! - `attempt_finished`: the stored attempt's identity (`suite`, `provider`, `task_id`,
//!   `repeat`, `try`), `request_hash`, `final`, `answered`, `replayed`, `delivery`,
//!   `error_kind`, `error_message`, `http_status`, `latency_ms`, `ttft_ms`, `finish_reason`, `usage`,
//!   `cost_usd` / `spent_usd` (null when unknown) and `cost_max_usd`;
//! - `retry_scheduled`: the attempt's identity, `delay_ms`, `reason` (its error kind) and
//!   `server_asked` (the wait came from `retry-after`);
//! - `outcome_finished`: the identity and `answered`;
//! - `batch_submitted`: `provider`, `batch_id` (the provider's), `requests`;
//! - `batch_polled`: `provider`, `batch_id`, `status` (the provider's own word);
//! - `batch_ended`: `provider`, `batch_id`, `status`, `requests`, `answered`;
//! - `run_interrupted`;
//! - `spend_cap_reached` (`--max-spend`): `cap_usd`, `spent_usd` (unknown costs at their
//!   bound, earlier sessions included) and `refused_bound_usd`, the bound of the call that
//!   did not fit (null when it had none);
//! - `run_finished`: the summary's figures.
//!
//! Each line is flushed as it is written, so the log of an interrupted or killed run is
//! complete up to that point. No API key is ever part of an event (stored error messages are
//! redacted before they get here).

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::RunSummary;
use crate::providers::{Money, Tally};
use crate::store::AttemptRow;

/// Something that happened in a run.
pub enum RunEvent<'a> {
    /// The run began calling (or resumed).
    RunStarted {
        /// The run id.
        run_id: i64,
        /// Whether an unfinished run was resumed.
        resumed: bool,
        /// Slots this session has to resolve.
        total_slots: u64,
    },
    /// One attempt (an HTTP try, a replayed answer, or a slot resolved without a call) ended.
    AttemptFinished(&'a AttemptRow),
    /// The attempt just finished will be tried again after `delay`.
    RetryScheduled {
        /// The failed attempt.
        attempt: &'a AttemptRow,
        /// How long the run waits before the next try.
        delay: Duration,
        /// Whether the server set the wait (`retry-after`) rather than our backoff.
        server_asked: bool,
    },
    /// A slot's final attempt: the outcome has an answer or never will in this session.
    OutcomeFinished(&'a AttemptRow),
    /// A provider accepted a batch of requests.
    BatchSubmitted {
        /// The provider id.
        provider: &'a str,
        /// The provider's batch id.
        batch_id: &'a str,
        /// Requests in it.
        requests: u64,
    },
    /// A batch was polled.
    BatchPolled {
        /// The provider id.
        provider: &'a str,
        /// The provider's batch id.
        batch_id: &'a str,
        /// Its status, in the provider's words.
        status: &'a str,
    },
    /// A batch ended and its results were recorded.
    BatchEnded {
        /// The provider id.
        provider: &'a str,
        /// The provider's batch id.
        batch_id: &'a str,
        /// Its final status, in the provider's words.
        status: &'a str,
        /// Requests in it.
        requests: u64,
        /// Requests that got an answer.
        answered: u64,
    },
    /// Ctrl-C stopped the run.
    RunInterrupted,
    /// `--max-spend`: the next call would not fit under the cap, so the run stopped calling.
    SpendCapReached(super::spend::CapStop),
    /// The run ended.
    RunFinished(&'a RunSummary),
}

/// A consumer of the event stream.
pub trait Consumer: Sync {
    /// Sees one event.
    fn event(&self, e: &RunEvent<'_>);
}

/// What the run spent, keeping unknown costs bounded instead of blanking the total.
pub type Spend = Tally;

/// The counters behind the run's summary line.
#[derive(Debug, Default)]
pub struct Counters {
    /// HTTP tries.
    pub calls: u64,
    /// Answers served from the cache.
    pub replayed: u64,
    /// Slots that ended without an answer.
    pub failed_slots: u64,
    /// Money spent.
    pub spent: Spend,
}

impl Consumer for Mutex<Counters> {
    fn event(&self, e: &RunEvent<'_>) {
        let mut c = self.lock().unwrap_or_else(|e| e.into_inner());
        match e {
            RunEvent::AttemptFinished(row) => {
                if row.replayed {
                    c.replayed += 1;
                } else if row.delivery.is_call() {
                    c.calls += 1;
                }
                c.spent.add(row.spent, row.cost_max);
            }
            RunEvent::OutcomeFinished(row) if !row.answered => c.failed_slots += 1,
            _ => {}
        }
    }
}

/// The `--events FILE` JSONL log.
pub struct EventLog {
    out: Mutex<std::io::BufWriter<std::fs::File>>,
    error: Mutex<Option<String>>,
}

impl EventLog {
    /// Creates (truncates) the log file.
    pub fn create(path: &Path) -> std::io::Result<EventLog> {
        Ok(EventLog {
            out: Mutex::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
            error: Mutex::new(None),
        })
    }

    /// The first write error, if any happened.
    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Consumer for EventLog {
    fn event(&self, e: &RunEvent<'_>) {
        let mut line = event_json(e).to_string();
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // Flushed per line: a killed run's log is complete up to its last event.
        if let Err(err) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            self.error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(err.to_string());
        }
    }
}

fn usd(m: Option<Money>) -> Value {
    m.map_or(Value::Null, |m| json!(m.usd()))
}

fn identity(event: &str, a: &AttemptRow) -> serde_json::Map<String, Value> {
    let v = json!({
        "event": event,
        "suite": a.suite,
        "provider": a.provider,
        "task_id": a.task_id,
        "repeat": a.repeat,
        "try": a.try_no,
    });
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// The JSON form of an event (see the module docs).
pub fn event_json(e: &RunEvent<'_>) -> Value {
    match e {
        RunEvent::RunStarted {
            run_id,
            resumed,
            total_slots,
        } => json!({
            "event": "run_started", "run_id": run_id, "resumed": resumed,
            "total_slots": total_slots,
        }),
        RunEvent::AttemptFinished(a) => {
            let mut m = identity("attempt_finished", a);
            let rest = json!({
                "request_hash": a.request_hash,
                "final": a.is_final,
                "answered": a.answered,
                "replayed": a.replayed,
                "delivery": a.delivery.as_str(),
                "error_kind": a.error_kind.map(|k| k.as_str()),
                "error_message": a.error_message,
                "http_status": a.http_status,
                "latency_ms": a.latency_ms,
                "ttft_ms": a.ttft_ms,
                "finish_reason": a.finish_reason,
                "usage": a.usage,
                "cost_usd": usd(a.cost),
                "spent_usd": usd(a.spent),
                "cost_max_usd": usd(a.cost_max),
            });
            if let Value::Object(r) = rest {
                m.extend(r);
            }
            Value::Object(m)
        }
        RunEvent::RetryScheduled {
            attempt,
            delay,
            server_asked,
        } => {
            let mut m = identity("retry_scheduled", attempt);
            m.insert("delay_ms".into(), json!(delay.as_secs_f64() * 1000.0));
            m.insert(
                "reason".into(),
                json!(attempt.error_kind.map(|k| k.as_str())),
            );
            m.insert("server_asked".into(), json!(server_asked));
            Value::Object(m)
        }
        RunEvent::OutcomeFinished(a) => {
            let mut m = identity("outcome_finished", a);
            m.insert("answered".into(), json!(a.answered));
            Value::Object(m)
        }
        RunEvent::BatchSubmitted {
            provider,
            batch_id,
            requests,
        } => json!({
            "event": "batch_submitted", "provider": provider, "batch_id": batch_id,
            "requests": requests,
        }),
        RunEvent::BatchPolled {
            provider,
            batch_id,
            status,
        } => json!({
            "event": "batch_polled", "provider": provider, "batch_id": batch_id, "status": status,
        }),
        RunEvent::BatchEnded {
            provider,
            batch_id,
            status,
            requests,
            answered,
        } => json!({
            "event": "batch_ended", "provider": provider, "batch_id": batch_id, "status": status,
            "requests": requests, "answered": answered,
        }),
        RunEvent::RunInterrupted => json!({"event": "run_interrupted"}),
        RunEvent::SpendCapReached(stop) => json!({
            "event": "spend_cap_reached",
            "cap_usd": stop.cap.usd(),
            "spent_usd": stop.spent.usd(),
            "refused_bound_usd": usd(stop.refused_bound),
        }),
        RunEvent::RunFinished(s) => json!({
            "event": "run_finished",
            "run_id": s.run_id,
            "resumed": s.resumed,
            "skipped": s.skipped,
            "calls": s.calls,
            "replayed": s.replayed,
            "failed_slots": s.failed_slots,
            "cache_misses": s.cache_misses,
            "interrupted": s.interrupted,
            "spend_capped": s.capped.is_some(),
            "batch_pending": s.batch_pending,
            "spent_usd": s.spent.known.usd(),
            "unknown_spend_calls": s.spent.unknown,
            "unknown_spend_max_usd": s.spent.bound.usd(),
            "unbounded_spend_calls": s.spent.unbounded,
            "elapsed_s": s.elapsed_s,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spend_keeps_known_money_and_bounds_the_unknown() {
        let mut s = Spend::default();
        let known = AttemptRow {
            spent: Some(Money::parse_usd("0.0123").unwrap()),
            ..AttemptRow::default()
        };
        s.add(known.spent, known.cost_max);
        assert_eq!(s.to_string(), "$0.0123");
        let unknown = AttemptRow {
            cost_max: Some(Money::parse_usd("0.002").unwrap()),
            ..AttemptRow::default()
        };
        s.add(unknown.spent, unknown.cost_max);
        s.add(unknown.spent, unknown.cost_max);
        assert_eq!(
            s.to_string(),
            "$0.0123 (+ up to $0.004 in 2 calls of unknown cost)"
        );
        s.add(None, None);
        assert_eq!(
            s.to_string(),
            "unknown ($0.0123 known + 3 calls of unknown cost, 1 of them unbounded)"
        );
    }
}
