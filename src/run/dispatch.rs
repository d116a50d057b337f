//! The dispatch seam: how a prepared request that the cache could not answer gets an answer.
//!
//! The run prepares every slot the same way (render, body, cache key, cost bound), resolves
//! what it can from the cache, and hands the rest to a [`Dispatch`] implementation, which
//! reports every try to the [`Recorder`]. [`Online`] calls the provider's HTTP API now,
//! retrying with backoff; [`super::batch::Batch`] gathers requests into the provider's batch
//! API and records their results when the batches end.

use serde_json::Value;

use super::call::{CallSpec, backoff, try_once};
use super::{Recorder, limits};
use crate::providers::{ChatRequest, Money, Protocol, ProviderConfig, bound};
use crate::store::{AttemptRow, Delivery, ErrorKind};
use crate::suite::{Suite, Task};

/// A slot ready to be resolved: its identity row (with the cache key), the body to send and
/// the cost bound used where a cost turns out unknown.
pub struct Prepared {
    /// The slot's identity; every attempt of the slot starts from it.
    pub base: AttemptRow,
    /// The request body exactly as sent.
    pub body: Value,
    /// The most a try can cost when its bill is never seen.
    pub cost_max: Option<Money>,
    /// The prompt-token estimate behind `cost_max`.
    pub est_prompt_tokens: u64,
}

impl Prepared {
    /// Renders the slot's request. A template that fails for this task is returned as the
    /// slot's final attempt (not called, known cost 0).
    pub fn new(
        base: AttemptRow,
        cfg: &ProviderConfig,
        protocol: &dyn Protocol,
        suite: &Suite,
        task: &Task,
    ) -> Result<Prepared, Box<AttemptRow>> {
        let messages = match suite.messages(task) {
            Ok(m) => m,
            Err(e) => return Err(Box::new(not_called(&base, ErrorKind::RenderError, e))),
        };
        let body = protocol.body(
            cfg,
            &ChatRequest {
                messages,
                params: suite.params.clone(),
            },
        );
        let mut base = base;
        base.request_hash = super::cache::request_key(cfg, &body, base.repeat);
        let est_prompt_tokens = bound::prompt_token_bound(&body);
        Ok(Prepared {
            cost_max: bound::cost_bound(cfg.price.as_ref(), &body, est_prompt_tokens),
            est_prompt_tokens,
            base,
            body,
        })
    }

    /// Adds the cost bound to an attempt whose cost turned out unknown.
    pub fn bounded(&self, mut row: AttemptRow) -> AttemptRow {
        if row.cost.is_none() {
            row.cost_max = self.cost_max;
            row.est_prompt_tokens = Some(self.est_prompt_tokens);
        }
        row
    }

    /// The slot's final attempt when it is resolved without any call.
    pub fn not_called(&self, kind: ErrorKind, message: String) -> AttemptRow {
        not_called(&self.base, kind, message)
    }
}

fn not_called(base: &AttemptRow, kind: ErrorKind, message: String) -> AttemptRow {
    AttemptRow {
        is_final: true,
        started_at: crate::store::now(),
        delivery: Delivery::NotCalled,
        error_kind: Some(kind),
        error_message: Some(message),
        cost: Some(Money::ZERO),
        spent: Some(Money::ZERO),
        ..base.clone()
    }
}

/// A way of getting answers for prepared requests.
pub(crate) trait Dispatch {
    /// Resolves one prepared request, reporting every try (and every retry) to `rec`; the
    /// last attempt reported is final. A deferring implementation (batch) may only take the
    /// request here and resolve it in [`Dispatch::finish`].
    async fn dispatch(&self, req: &Prepared, rec: &Recorder);

    /// Resolves whatever `dispatch` left outstanding, once every slot has been handed out.
    async fn finish(&self, _rec: &Recorder) {}

    /// Whether the slot is already in this dispatcher's hands from an earlier session of the
    /// run (a submitted batch), so it must not be prepared and sent again.
    fn owns(&self, _suite: &str, _task_id: &str, _repeat: u32) -> bool {
        false
    }
}

/// Online dispatch: the provider's HTTP API, one request per try, retried with backoff.
pub struct Online<'a> {
    /// The provider.
    pub cfg: &'a ProviderConfig,
    /// Its protocol.
    pub protocol: &'a dyn Protocol,
    /// Its HTTP client (one connection pool per provider).
    pub client: reqwest::Client,
    /// The key's variable and value, when the provider needs one.
    pub key: Option<(String, Option<String>)>,
    /// Its rate limits.
    pub limits: super::limits::Limits,
}

impl Dispatch for Online<'_> {
    async fn dispatch(&self, req: &Prepared, rec: &Recorder) {
        let key = match &self.key {
            Some((_, Some(k))) if !k.is_empty() => Some(k.as_str()),
            Some((var, _)) => {
                let row = req.not_called(
                    ErrorKind::MissingKey,
                    format!("environment variable {var} is not set"),
                );
                return rec.record(row, None, None).await;
            }
            None => None,
        };
        // Streaming is how the answer travels, not what is asked: the cache key and the
        // recorded request stay those of the plain body.
        let streamed = self.cfg.stream.then(|| {
            let mut b = req.body.clone();
            self.protocol.stream_body(&mut b);
            b
        });
        let spec = CallSpec {
            cfg: self.cfg,
            protocol: self.protocol,
            client: &self.client,
            key,
            body: streamed.as_ref().unwrap_or(&req.body),
            stream: self.cfg.stream,
        };
        let mut delays = backoff(self.cfg);
        let mut base = req.base.clone();
        let estimate = limits::estimate(req.est_prompt_tokens, bound::completion_cap(&req.body));
        loop {
            // Under --max-spend each try waits for room under the cap, or ends the slot
            // (left pending for a resume) once the run stopped at it.
            let Some(_permit) = rec.admit_call(req).await else {
                return;
            };
            self.limits.admit(estimate).await;
            let r = try_once(&spec, base.clone()).await;
            if let Some(d) = r.pause {
                self.limits.pause(d);
            }
            if let Some(extra) = r
                .row
                .usage
                .map(|u| limits::used(&u))
                .and_then(|u| u.checked_sub(estimate))
            {
                self.limits.charge(extra).await;
            }
            // The server knows when it will take us back: its wait replaces our backoff.
            let retry = if r.retryable { delays.next() } else { None }
                .map(|d| (r.retry_after.unwrap_or(d), r.retry_after.is_some()));
            let mut row = req.bounded(r.row);
            row.is_final = row.answered || retry.is_none();
            let answer = r.body.map(|resp| {
                super::cache::record(self.cfg, &row.request_hash, &req.body, resp, row.latency_ms)
            });
            rec.record(row, answer, retry).await;
            let Some((wait, _)) = retry else { return };
            if rec.stopped() {
                return;
            }
            tokio::time::sleep(wait).await;
            base.try_no += 1;
        }
    }
}
