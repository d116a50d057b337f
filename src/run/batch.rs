//! Batch dispatch: the provider's own batch API behind the [`Dispatch`] seam (`mode: batch`).
//!
//! Each request the cache could not answer joins the current chunk; a chunk is submitted when
//! the next request would pass the API's request or byte limit ([`Api::max_requests`],
//! [`Api::max_bytes`], or the provider's `batch.max_requests`), and the last one once every
//! slot is handed out ([`Dispatch::finish`]). Every batch is stored with the slot behind each
//! of its requests before the provider is asked to create it, and its provider id right after
//! ([`crate::store::batches`]), so running the same command after a restart or `kill -9`
//! polls the batches already submitted instead of paying for them again; their slots are not
//! handed out again ([`Dispatch::owns`]). Batches are polled with exponential backoff
//! (`batch.poll_s` doubling up to `batch.max_poll_s`, with jitter). An ended batch's result
//! lines are joined to their slots by `custom_id` and recorded as attempts through the same
//! [`Recorder`] as online calls, priced at the batch rates; failed, expired and cancelled
//! lines become failed attempts with the provider's message, and a request with no line at all
//! one whose cost is unknown (bounded). The batch is closed through the writer after its
//! attempts, so a kill while recording re-reads the results and records only what is missing.
//!
//! One window is not covered: a kill between the provider creating a batch and its id being
//! stored (one HTTP response) forgets that batch, and the same command submits its requests
//! again. Ctrl-C leaves submitted batches running at the provider; the same command collects
//! them.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;

use super::call::{answered, backoff};
use super::dispatch::{Dispatch, Prepared};
use super::events::RunEvent;
use super::{CacheMode, Recorder};
use crate::providers::batch::{Api, Conn, End, LineResult, State, WireError};
use crate::providers::quirks::{is_context_length, unix_seconds};
use crate::providers::{Protocol, ProviderConfig};
use crate::store::batches::{BatchItem, OpenBatch, custom_id, custom_idx};
use crate::store::{AttemptRow, CacheRecord, Delivery, ErrorKind, Store, StoreError, WriteOp};

/// The requests gathered for the next submission.
#[derive(Default)]
struct Chunk {
    /// Their payload elements, joined by the API's separator.
    lines: String,
    /// The slot behind each, in `custom_id` order.
    items: Vec<BatchItem>,
}

/// Batch dispatch for one provider (see the module docs).
pub struct Batch<'a> {
    cfg: &'a ProviderConfig,
    protocol: &'a dyn Protocol,
    api: Api,
    client: reqwest::Client,
    key: Option<(String, Option<String>)>,
    run_id: i64,
    /// The bookkeeping connection: batch rows are committed before and right after each
    /// submission, not queued behind the writer.
    store: Mutex<Store>,
    chunk: tokio::sync::Mutex<Chunk>,
    open: Mutex<Vec<OpenBatch>>,
    /// Slots (suite, task id, repeat) already in batches submitted before a restart.
    in_flight: HashSet<(String, String, u32)>,
    max_requests: usize,
}

impl<'a> Batch<'a> {
    /// Batch dispatch for `cfg` in run `run_id`, picking up the batches an earlier session
    /// of the run submitted.
    pub fn new(
        cfg: &'a ProviderConfig,
        protocol: &'a dyn Protocol,
        client: reqwest::Client,
        db: &std::path::Path,
        run_id: i64,
    ) -> Result<Option<Batch<'a>>, StoreError> {
        let Some(api) = Api::of(&cfg.protocol) else {
            return Ok(None);
        };
        let mut store = Store::open(db)?;
        let open = store.open_batches(run_id, &cfg.id)?;
        let in_flight = store.batch_in_flight(run_id, &cfg.id)?;
        Ok(Some(Batch {
            cfg,
            protocol,
            api,
            client,
            key: cfg
                .api_key_env
                .as_ref()
                .map(|v| (v.clone(), std::env::var(v).ok())),
            run_id,
            store: Mutex::new(store),
            chunk: tokio::sync::Mutex::new(Chunk::default()),
            open: Mutex::new(open),
            in_flight,
            max_requests: cfg
                .batch
                .max_requests
                .unwrap_or(usize::MAX)
                .min(api.max_requests()),
        }))
    }

    fn key(&self) -> Option<&str> {
        match &self.key {
            Some((_, Some(k))) if !k.is_empty() => Some(k),
            _ => None,
        }
    }

    fn conn(&self) -> Conn<'_> {
        Conn {
            cfg: self.cfg,
            protocol: self.protocol,
            client: &self.client,
            key: self.key(),
            timeout: super::call::call_timeout(self.cfg),
        }
    }

    /// Runs a store call off the async threads' hot path; its failure fails the run.
    fn with_store<T>(
        &self,
        rec: &Recorder,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Option<T> {
        let r = tokio::task::block_in_place(|| {
            let mut s = self.store.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut s)
        });
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                rec.batch_failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(e);
                None
            }
        }
    }

    /// Stores a chunk, submits it (retrying transient failures with the provider's retry
    /// policy) and stores the provider's id; a refused chunk becomes failed attempts.
    async fn submit(&self, chunk: Chunk, rec: &Recorder) {
        let n = chunk.items.len() as u64;
        let Some(id) = self.with_store(rec, |s| {
            s.batch_begin(self.run_id, &self.cfg.id, self.api.as_str(), &chunk.items)
        }) else {
            return;
        };
        let name = format!("costbench-run{}-{}-{id}", self.run_id, self.cfg.id);
        let conn = self.conn();
        let mut delays = backoff(self.cfg);
        let error = loop {
            match self.api.submit(&conn, &chunk.lines, &name).await {
                Ok((remote, status)) => {
                    if self
                        .with_store(rec, |s| s.batch_submitted(id, &remote, &status))
                        .is_none()
                    {
                        return;
                    }
                    rec.emit(&RunEvent::BatchSubmitted {
                        provider: &self.cfg.id,
                        batch_id: &remote,
                        requests: n,
                    });
                    let submitted_at = crate::store::now();
                    self.open
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(OpenBatch {
                            id,
                            remote_id: remote,
                            submitted_at,
                            requests: n,
                        });
                    return;
                }
                Err(e) if e.transient && !rec.stopped() => match delays.next() {
                    Some(d) => tokio::time::sleep(d).await,
                    None => break e,
                },
                Err(e) => break e,
            }
        };
        // Never created (as far as the provider told us): forget it, and record why its
        // requests got no answer, unless the run is stopping (then they stay pending).
        if self.with_store(rec, |s| s.batch_discard(id)).is_none() || rec.stopped() {
            return;
        }
        let started_at = crate::store::now();
        let kind = error_kind(error.status, None, &error.message);
        for it in &chunk.items {
            let mut row = self.row(it, &started_at, 0.0);
            row.http_status = error.status;
            row.error_kind = Some(kind);
            row.error_message = Some(format!("batch submission failed: {error}"));
            // A creation that timed out may still have created (and billed) the batch.
            row.delivery = if error.status.is_some() {
                Delivery::Refused
            } else {
                Delivery::SentUnknown
            };
            row.cost = row.delivery.known_cost();
            row.spent = row.cost;
            rec.record(bounded(row, it), None, None).await;
        }
    }

    /// The attempt of a batch request, before its result is read.
    fn row(&self, it: &BatchItem, started_at: &str, latency_ms: f64) -> AttemptRow {
        AttemptRow {
            run_id: self.run_id,
            suite: it.suite.clone(),
            provider: self.cfg.id.clone(),
            task_id: it.task_id.clone(),
            repeat: it.repeat,
            try_no: it.try_no,
            is_final: true,
            request_hash: it.request_hash.clone(),
            started_at: started_at.to_string(),
            latency_ms,
            ..AttemptRow::default()
        }
    }

    /// Polls every open batch until each has ended (or the run stops), recording results.
    async fn poll_all(&self, rec: &Recorder) {
        let conn = self.conn();
        let opts = &self.cfg.batch;
        let mut delays = backon::ExponentialBuilder::new()
            .with_min_delay(Duration::from_secs_f64(opts.poll_s))
            .with_max_delay(Duration::from_secs_f64(opts.max_poll_s.max(opts.poll_s)))
            .without_max_times()
            .with_jitter()
            .build();
        let max_wait = Duration::from_secs_f64(opts.max_wait_h * 3600.0);
        let started = Instant::now();
        loop {
            let open = self.open.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if open.is_empty() {
                return;
            }
            if rec.stopped() {
                self.leave_pending(&open, rec);
                return;
            }
            for b in open {
                match self.poll_one(&conn, &b, rec).await {
                    Ok(true) => self.close(&b),
                    // Still running, or a failure that may pass (5xx, connection): poll again,
                    // up to `batch.max_wait_h` after submission.
                    Ok(false)
                    | Err(WireError {
                        transient: true, ..
                    }) => {
                        let waited = unix_seconds(&b.submitted_at)
                            .and_then(|t| unix_seconds(&crate::store::now()).map(|n| n - t))
                            .map_or(started.elapsed(), |s| Duration::from_secs(s.max(0) as u64));
                        if waited > max_wait {
                            self.abandon(&b, rec).await;
                            self.close(&b);
                        }
                    }
                    Err(e) => {
                        // The provider will not tell us about this batch now (a key, a
                        // permission, an unknown id): stop calling, keep it open in the store,
                        // and let the same command collect it once that is fixed.
                        let mut h = rec.halted.lock().unwrap_or_else(|e| e.into_inner());
                        if !h.iter().any(|h| h.provider == self.cfg.id) {
                            h.push(super::Halt {
                                provider: self.cfg.id.clone(),
                                status: e.status,
                                message: format!("polling batch {}: {}", b.remote_id, e.message),
                                key_env: None,
                            });
                        }
                        drop(h);
                        self.leave_pending(std::slice::from_ref(&b), rec);
                        self.close(&b);
                    }
                }
            }
            if self
                .open
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
            {
                return;
            }
            let wait = delays
                .next()
                .unwrap_or(Duration::from_secs_f64(opts.max_poll_s));
            tokio::time::sleep(wait).await;
        }
    }

    /// Drops a batch from this session's polling.
    fn close(&self, b: &OpenBatch) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|o| o.id != b.id);
    }

    /// Counts the outcomes of batches this session leaves open at the provider.
    fn leave_pending(&self, open: &[OpenBatch], rec: &Recorder) {
        let n: u64 = open.iter().map(|b| b.requests).sum();
        rec.batch_pending.fetch_add(n, Ordering::SeqCst);
    }

    /// Polls one batch; `Ok(true)` once it has ended and its results are recorded.
    async fn poll_one(
        &self,
        conn: &Conn<'_>,
        b: &OpenBatch,
        rec: &Recorder,
    ) -> Result<bool, WireError> {
        let state = self.api.poll(conn, &b.remote_id).await?;
        rec.emit(&RunEvent::BatchPolled {
            provider: &self.cfg.id,
            batch_id: &b.remote_id,
            status: &state.status,
        });
        let _ = self.with_store(rec, |s| s.batch_polled(b.id, &state.status));
        let Some(end) = state.end.clone() else {
            return Ok(false);
        };
        let lines = self.api.results(conn, &state).await?;
        self.record_results(b, &state, &end, lines, rec).await;
        Ok(true)
    }

    /// Joins result lines to their slots and records one attempt per request not yet
    /// recorded, then closes the batch through the writer.
    async fn record_results(
        &self,
        b: &OpenBatch,
        state: &State,
        end: &End,
        lines: Vec<crate::providers::batch::ResultLine>,
        rec: &Recorder,
    ) {
        let Some(items) = self.with_store(rec, |s| s.batch_items(b.id, &self.cfg.id)) else {
            return;
        };
        let mut results: Vec<Option<LineResult>> = vec![None; items.len()];
        let mut stray = 0;
        for l in lines {
            match custom_idx(&l.custom_id).and_then(|i| results.get_mut(i as usize)) {
                Some(slot) => *slot = Some(l.result),
                None => stray += 1,
            }
        }
        let latency_ms = unix_seconds(&b.submitted_at)
            .and_then(|t| {
                unix_seconds(&crate::store::now()).map(|n| (n - t).max(0) as f64 * 1000.0)
            })
            .unwrap_or(0.0);
        let mut answered_n = 0;
        for (it, result) in items.iter().zip(results) {
            if it.recorded {
                continue;
            }
            let (row, answer) = self.result_row(it, result, end, &b.submitted_at, latency_ms);
            answered_n += u64::from(row.answered);
            rec.record(row, answer, None).await;
        }
        let detail = match end {
            End::Failed(m) => Some(m.clone()),
            _ if stray > 0 => Some(format!(
                "{stray} result lines named no request of this batch"
            )),
            _ => None,
        };
        let _ = rec
            .tx
            .send(WriteOp::BatchClosed {
                id: b.id,
                status: state.status.clone(),
                detail,
            })
            .await;
        rec.emit(&RunEvent::BatchEnded {
            provider: &self.cfg.id,
            batch_id: &b.remote_id,
            status: &state.status,
            answered: answered_n,
            requests: items.len() as u64,
        });
    }

    /// The attempt (and cache record) of one request from its result line.
    fn result_row(
        &self,
        it: &BatchItem,
        result: Option<LineResult>,
        end: &End,
        started_at: &str,
        latency_ms: f64,
    ) -> (AttemptRow, Option<CacheRecord>) {
        let mut row = self.row(it, started_at, latency_ms);
        let failed = |mut row: AttemptRow, kind, status, message: String, delivery: Delivery| {
            row.error_kind = Some(kind);
            row.http_status = status;
            row.error_message = Some(message);
            row.delivery = delivery;
            row.cost = delivery.known_cost();
            row.spent = row.cost;
            row
        };
        let row = match result {
            Some(LineResult::Response(body)) => {
                row.http_status = Some(200);
                match self.protocol.parse(body.as_bytes()) {
                    Ok(mut c) => {
                        c.served.batch = true;
                        let r = answered(row, c, self.cfg, body.as_bytes());
                        let mut row = r.row;
                        row.is_final = true;
                        let answer = r.body.map(|response| CacheRecord {
                            key: it.request_hash.clone(),
                            protocol: self.cfg.protocol.clone(),
                            base_url: self.cfg.base_url.clone(),
                            model: self.cfg.model.clone(),
                            request: it.request.clone(),
                            response,
                            latency_ms: Some(latency_ms),
                        });
                        return (bounded(row, it), answer);
                    }
                    Err(e) => {
                        // Billed, but unreadable: the cost is unknown.
                        row.delivery = Delivery::Answered;
                        row.error_kind = Some(ErrorKind::BadResponse);
                        row.error_message = Some(e);
                        row.cost = None;
                        row
                    }
                }
            }
            Some(LineResult::Error {
                status,
                code,
                message,
            }) => {
                let kind = error_kind(status, code.as_deref(), &message);
                let text = match (status, code) {
                    (Some(s), _) => format!("batch line: HTTP {s}: {message}"),
                    (None, Some(c)) => format!("batch line: {c}: {message}"),
                    (None, None) => format!("batch line: {message}"),
                };
                failed(row, kind, status, text, Delivery::Refused)
            }
            Some(LineResult::Expired(m)) => failed(
                row,
                ErrorKind::Expired,
                None,
                format!("batch line expired: {m}"),
                Delivery::Refused,
            ),
            Some(LineResult::Canceled(m)) => failed(
                row,
                ErrorKind::Canceled,
                None,
                format!("batch line canceled: {m}"),
                Delivery::Refused,
            ),
            None => match end {
                End::Completed => failed(
                    row,
                    ErrorKind::BadResponse,
                    None,
                    "the batch ended without a result for this request".into(),
                    Delivery::SentUnknown,
                ),
                End::Failed(m) => failed(
                    row,
                    ErrorKind::ClientError,
                    None,
                    format!("the batch failed: {m}"),
                    Delivery::Refused,
                ),
                End::Expired => failed(
                    row,
                    ErrorKind::Expired,
                    None,
                    "the batch expired before this request ran".into(),
                    Delivery::Refused,
                ),
                End::Canceled => failed(
                    row,
                    ErrorKind::Canceled,
                    None,
                    "the batch was cancelled before this request ran".into(),
                    Delivery::Refused,
                ),
            },
        };
        (bounded(row, it), None)
    }

    /// Gives up on a batch polled longer than `batch.max_wait_h`: its requests become failed
    /// attempts of unknown cost (it may still run and bill).
    async fn abandon(&self, b: &OpenBatch, rec: &Recorder) {
        let Some(items) = self.with_store(rec, |s| s.batch_items(b.id, &self.cfg.id)) else {
            return;
        };
        let message = format!(
            "batch {} still running after batch.max_wait_h = {} h; no longer polled",
            b.remote_id, self.cfg.batch.max_wait_h
        );
        for it in items.iter().filter(|it| !it.recorded) {
            let mut row = self.row(it, &b.submitted_at, 0.0);
            row.error_kind = Some(ErrorKind::Timeout);
            row.error_message = Some(message.clone());
            row.delivery = Delivery::SentUnknown;
            rec.record(bounded(row, it), None, None).await;
        }
        let _ = rec
            .tx
            .send(WriteOp::BatchClosed {
                id: b.id,
                status: "abandoned".into(),
                detail: Some(message),
            })
            .await;
    }
}

/// Adds the request's cost bound to an attempt whose cost turned out unknown.
fn bounded(mut row: AttemptRow, it: &BatchItem) -> AttemptRow {
    if row.cost.is_none() {
        row.cost_max = it.cost_max;
        row.est_prompt_tokens = it.est_prompt_tokens;
    }
    row
}

/// The error kind of a failed batch line or submission, from its status, code and message.
fn error_kind(status: Option<u16>, code: Option<&str>, message: &str) -> ErrorKind {
    let code = code.unwrap_or("");
    match (status, code) {
        (_, c) if is_context_length(c, message) => ErrorKind::ContextLength,
        (Some(429), _) | (_, "rate_limit_error" | "rate_limit_exceeded" | "RESOURCE_EXHAUSTED") => {
            ErrorKind::RateLimited
        }
        (Some(401 | 403), _)
        | (
            _,
            "authentication_error" | "permission_error" | "PERMISSION_DENIED" | "UNAUTHENTICATED",
        ) => ErrorKind::Auth,
        (Some(404), _) | (_, "not_found_error" | "NOT_FOUND") => ErrorKind::NotFound,
        (Some(408), _) => ErrorKind::Timeout,
        (Some(500..=599), _)
        | (_, "api_error" | "overloaded_error" | "INTERNAL" | "UNAVAILABLE") => {
            ErrorKind::ServerError
        }
        _ => ErrorKind::ClientError,
    }
}

impl Dispatch for Batch<'_> {
    async fn dispatch(&self, req: &Prepared, rec: &Recorder) {
        if let Some((var, _)) = &self.key
            && self.key().is_none()
        {
            let row = req.not_called(
                ErrorKind::MissingKey,
                format!("environment variable {var} is not set"),
            );
            return rec.record(row, None, None).await;
        }
        let body = req.body.to_string();
        let mut chunk = self.chunk.lock().await;
        let sep = self.api.separator();
        let line = |idx: usize| {
            self.api
                .line(self.cfg, self.protocol, &custom_id(idx as u32), &body)
        };
        let mut l = line(chunk.items.len());
        let full = chunk.items.len() >= self.max_requests
            || chunk.lines.len() + sep.len() + l.len() > self.api.max_bytes();
        if full && !chunk.items.is_empty() {
            let ready = std::mem::take(&mut *chunk);
            self.submit(ready, rec).await;
            l = line(0);
        }
        if !chunk.items.is_empty() {
            chunk.lines.push_str(sep);
        }
        chunk.lines.push_str(&l);
        let idx = chunk.items.len() as u32;
        chunk.items.push(BatchItem {
            idx,
            suite: req.base.suite.clone(),
            task_id: req.base.task_id.clone(),
            repeat: req.base.repeat,
            try_no: req.base.try_no,
            request_hash: req.base.request_hash.clone(),
            cost_max: req.cost_max,
            est_prompt_tokens: Some(req.est_prompt_tokens),
            request: body,
            recorded: false,
        });
    }

    async fn finish(&self, rec: &Recorder) {
        let rest = std::mem::take(&mut *self.chunk.lock().await);
        if !rest.items.is_empty() && !rec.stopped() && !rec.halted(&self.cfg.id) {
            self.submit(rest, rec).await;
        }
        if rec.mode == CacheMode::Replay {
            // Replay never touches the network: batches of an earlier session stay open.
            let open = self.open.lock().unwrap_or_else(|e| e.into_inner()).clone();
            return self.leave_pending(&open, rec);
        }
        self.poll_all(rec).await;
    }

    fn owns(&self, suite: &str, task_id: &str, repeat: u32) -> bool {
        !self.in_flight.is_empty()
            && self
                .in_flight
                .contains(&(suite.to_string(), task_id.to_string(), repeat))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_of_batch_lines() {
        assert_eq!(
            error_kind(Some(400), Some("invalid_value"), "bad"),
            ErrorKind::ClientError
        );
        assert_eq!(
            error_kind(
                None,
                Some("invalid_request_error"),
                "prompt is too long: 300000 tokens"
            ),
            ErrorKind::ContextLength
        );
        assert_eq!(
            error_kind(None, Some("overloaded_error"), "busy"),
            ErrorKind::ServerError
        );
        assert_eq!(error_kind(Some(401), None, "no key"), ErrorKind::Auth);
        assert_eq!(
            error_kind(Some(429), None, "slow down"),
            ErrorKind::RateLimited
        );
        assert_eq!(
            error_kind(None, None, "connection refused"),
            ErrorKind::ClientError
        );
    }
}
