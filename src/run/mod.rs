//! The run: every suite × provider × task × repeat, called concurrently, every try stored.
//!
//! Each provider gets its own concurrency limit and HTTP client; a failing provider only fills
//! its own rows with failures. Attempts stream to the store's writer thread as they finish, so
//! Ctrl-C (or a crash) keeps everything completed, and running the same command again resumes
//! the same run and calls only the slots that have no answer yet.

pub mod cache;
pub mod call;
pub mod plan;
pub mod progress;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use futures_util::StreamExt;

use crate::providers::{ChatRequest, Money, ProviderConfig, bound, protocol_for};
use crate::store::{
    AttemptRow, Delivery, ErrorKind, RunStatus, Store, StoreError, WriteOp, Writer,
};
use crate::suite::Suite;
pub use cache::CacheMode;
use call::{CallSpec, try_once};
use plan::{Slot, pending_slots, run_key, run_plan, slots_in};
use progress::Progress;

/// Options of one `costbench run`.
pub struct RunOptions {
    /// The database file.
    pub db: PathBuf,
    /// Record/replay cache mode.
    pub cache: CacheMode,
    /// A JSONL cassette to load before the run (and to record into in `rw` mode).
    pub cassette: Option<PathBuf>,
    /// Show a progress bar (only on a terminal).
    pub progress: bool,
    /// Always start a new run instead of resuming an unfinished one.
    pub fresh: bool,
}

/// What a run did, for the CLI's summary and exit code.
#[derive(Debug)]
pub struct RunSummary {
    /// The run id.
    pub run_id: i64,
    /// Whether an unfinished run was resumed.
    pub resumed: bool,
    /// Slots answered in an earlier session of this run and skipped.
    pub skipped: u64,
    /// HTTP tries made now.
    pub calls: u64,
    /// Answers served from the cache now.
    pub replayed: u64,
    /// Slots that ended without an answer.
    pub failed_slots: u64,
    /// Replay-mode cache misses, as `suite / task / provider`.
    pub cache_misses: Vec<String>,
    /// Whether Ctrl-C stopped it.
    pub interrupted: bool,
    /// Money spent by this invocation; `None` when some spend cannot be known.
    pub spent: Option<Money>,
    /// Wall time.
    pub elapsed_s: f64,
}

/// Errors that stop a run before or after calling.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing the cassette failed.
    #[error("cassette {path}: {message}")]
    Cassette {
        /// The cassette file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The async runtime or an HTTP client could not start.
    #[error("cannot start: {0}")]
    Runtime(String),
}

/// Runs every suite against every provider and stores every attempt.
pub fn execute(
    suites: &[Suite],
    providers: &[ProviderConfig],
    opts: &RunOptions,
) -> Result<RunSummary, RunError> {
    let t0 = Instant::now();
    let mut store = Store::open(&opts.db)?;
    // In rw mode a cassette that does not exist yet is about to be recorded.
    if let Some(c) = opts
        .cassette
        .as_ref()
        .filter(|c| c.exists() || opts.cache != CacheMode::ReadWrite)
    {
        cache::import_cassette(&mut store, c)?;
    }
    let key = run_key(suites, providers);
    let resume = if opts.fresh {
        None
    } else {
        store.resumable_run(&key)?
    };
    let run_id = match resume {
        Some(id) => {
            store.set_run_status(id, RunStatus::Running)?;
            id
        }
        None => {
            let tasks = suites.iter().flat_map(|s| {
                s.tasks
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (s.name.as_str(), i, t.id.as_str(), &*t.vars_json))
            });
            store.create_run(
                &key,
                opts.cache.as_str(),
                &run_plan(suites, providers),
                tasks,
            )?
        }
    };
    let progress_map = store.slot_progress(run_id)?;

    // Work lists are generated lazily, so memory does not grow with the number of slots.
    let progress_map = &progress_map;
    let total: u64 = providers
        .iter()
        .map(|p| pending_slots(suites, progress_map, &p.id).count() as u64)
        .sum();
    let skipped = providers.len() as u64 * slots_in(suites) - total;

    // One HTTP client (and connection pool) per provider, built before anything is called.
    let clients = providers
        .iter()
        .map(|p| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(p.max_concurrency)
                // A connect that cannot finish in half the call's time fails as a connect
                // error: nothing was sent, so it is known to cost nothing.
                .connect_timeout(
                    std::time::Duration::try_from_secs_f64((p.timeout_s / 2.0).min(30.0))
                        .unwrap_or(std::time::Duration::from_secs(30)),
                )
                .build()
                .map_err(|e| RunError::Runtime(format!("HTTP client for `{}`: {e}", p.id)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let writer = Writer::start(&opts.db)?;
    let reader = Mutex::new(Store::open(&opts.db)?);
    let bar = Progress::new(total, opts.progress);
    let state = Shared {
        run_id,
        mode: opts.cache,
        tx: writer.sender(),
        reader,
        bar,
        misses: Mutex::new(Vec::new()),
        counters: Mutex::new(Counters::default()),
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Runtime(format!("async runtime: {e}")))?;
    let interrupted = rt.block_on(async {
        let all =
            futures_util::future::join_all(providers.iter().zip(clients).map(|(p, client)| {
                run_provider(
                    &state,
                    p,
                    client,
                    pending_slots(suites, progress_map, &p.id),
                )
            }));
        tokio::select! {
            _ = all => false,
            _ = tokio::signal::ctrl_c() => true,
        }
    });
    // Dropping the runtime cancels calls still in flight; what finished is already queued.
    drop(rt);
    state.bar.finish();
    let Shared {
        tx,
        misses,
        counters,
        ..
    } = state;
    drop(tx);
    writer.finish()?;
    let c = counters.into_inner().unwrap_or_default();

    let status = if interrupted {
        RunStatus::Interrupted
    } else if c.failed_slots > 0 {
        RunStatus::Incomplete
    } else {
        RunStatus::Complete
    };
    store.set_run_status(run_id, status)?;
    if let Some(path) = &opts.cassette
        && opts.cache == CacheMode::ReadWrite
        && !interrupted
    {
        cache::export_cassette(&store, path)?;
    }
    Ok(RunSummary {
        run_id,
        resumed: resume.is_some(),
        skipped,
        calls: c.calls,
        replayed: c.replayed,
        failed_slots: c.failed_slots,
        cache_misses: misses.into_inner().unwrap_or_default(),
        interrupted,
        spent: c.spent,
        elapsed_s: t0.elapsed().as_secs_f64(),
    })
}

struct Counters {
    calls: u64,
    replayed: u64,
    failed_slots: u64,
    spent: Option<Money>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            calls: 0,
            replayed: 0,
            failed_slots: 0,
            spent: Some(Money::ZERO),
        }
    }
}

struct Shared {
    run_id: i64,
    mode: CacheMode,
    tx: std::sync::mpsc::SyncSender<WriteOp>,
    reader: Mutex<Store>,
    bar: Progress,
    misses: Mutex<Vec<String>>,
    counters: Mutex<Counters>,
}

/// How an attempt came about, for the run's counters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// An HTTP try.
    Http,
    /// An answer served from the cache.
    Replayed,
    /// Recorded without any call (replay miss, missing key, template error).
    NotCalled,
}

impl Shared {
    fn record(&self, row: AttemptRow, source: Source) {
        {
            let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
            match source {
                Source::Http => c.calls += 1,
                Source::Replayed => c.replayed += 1,
                Source::NotCalled => {}
            }
            c.spent = c.spent.zip(row.spent).map(|(a, b)| a.plus(b));
            if row.is_final && !row.answered {
                c.failed_slots += 1;
            }
            self.bar.update(&row, c.spent);
        }
        // The writer outlives every sender; a send error means it already failed, which
        // `Writer::finish` reports.
        let _ = self.tx.send(WriteOp::Attempt(Box::new(row)));
    }
}

async fn run_provider<'a>(
    state: &Shared,
    cfg: &ProviderConfig,
    client: reqwest::Client,
    slots: impl Iterator<Item = Slot<'a>>,
) {
    let Some(protocol) = protocol_for(&cfg.protocol) else {
        return; // validated at load time
    };
    let key = cfg
        .api_key_env
        .as_ref()
        .map(|v| (v.clone(), std::env::var(v).ok()));
    futures_util::stream::iter(slots)
        .for_each_concurrent(cfg.max_concurrency, |slot| {
            let client = &client;
            let key = &key;
            async move {
                run_slot(state, cfg, protocol, client, key, slot).await;
            }
        })
        .await;
}

async fn run_slot(
    state: &Shared,
    cfg: &ProviderConfig,
    protocol: &dyn crate::providers::Protocol,
    client: &reqwest::Client,
    key: &Option<(String, Option<String>)>,
    slot: Slot<'_>,
) {
    // The slot's identity; every attempt of the slot starts from it.
    let mut base = AttemptRow {
        run_id: state.run_id,
        suite: slot.suite.name.clone(),
        provider: cfg.id.clone(),
        task_id: slot.task.id.clone(),
        repeat: slot.repeat,
        try_no: slot.next_try,
        ..Default::default()
    };
    let fail = |base: &AttemptRow, kind: ErrorKind, message: String| AttemptRow {
        is_final: true,
        started_at: crate::store::now(),
        delivery: Delivery::NotCalled,
        error_kind: Some(kind),
        error_message: Some(message),
        cost: Some(Money::ZERO),
        spent: Some(Money::ZERO),
        ..base.clone()
    };
    let messages = match slot.suite.messages(slot.task) {
        Ok(m) => m,
        Err(e) => {
            return state.record(fail(&base, ErrorKind::RenderError, e), Source::NotCalled);
        }
    };
    let body = protocol.body(
        cfg,
        &ChatRequest {
            messages,
            params: slot.suite.params.clone(),
        },
    );
    base.request_hash = cache::request_key(cfg, &body, slot.repeat);
    // Kept on every attempt, used only where the cost turns out unknown.
    let est_prompt = bound::prompt_token_bound(&body);
    let cost_max = bound::cost_bound(cfg.price.as_ref(), &body, est_prompt);
    let bounded = |mut row: AttemptRow| {
        if row.cost.is_none() {
            row.cost_max = cost_max;
            row.est_prompt_tokens = Some(est_prompt);
        }
        row
    };

    if state.mode != CacheMode::Off {
        let hit = {
            let reader = state.reader.lock().unwrap_or_else(|e| e.into_inner());
            reader.cache_get(&base.request_hash).ok().flatten()
        };
        if let Some((resp, latency)) = hit {
            let row = cache::replayed_row(base, (&resp, latency), cfg, protocol);
            return state.record(bounded(row), Source::Replayed);
        }
        if state.mode == CacheMode::Replay {
            let what = format!(
                "suite `{}` / task `{}` / provider `{}`",
                slot.suite.name, slot.task.id, cfg.id
            );
            state
                .misses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(what.clone());
            let row = fail(
                &base,
                ErrorKind::CacheMiss,
                format!("no recorded answer for {what} (--cache replay makes no network call)"),
            );
            return state.record(row, Source::NotCalled);
        }
    }

    let api_key = match key {
        Some((_, Some(k))) if !k.is_empty() => Some(k.as_str()),
        Some((var, _)) => {
            let row = fail(
                &base,
                ErrorKind::MissingKey,
                format!("environment variable {var} is not set"),
            );
            return state.record(row, Source::NotCalled);
        }
        None => None,
    };
    let spec = CallSpec {
        cfg,
        protocol,
        client,
        key: api_key,
        body: &body,
    };
    let mut delays = call::backoff(cfg);
    loop {
        let r = try_once(&spec, base.clone()).await;
        let delay = if r.retryable { delays.next() } else { None };
        let mut row = bounded(r.row);
        row.is_final = row.answered || delay.is_none();
        if let Some(resp) = r.body.filter(|_| state.mode == CacheMode::ReadWrite) {
            let record = cache::record(cfg, &row.request_hash, &body, resp, row.latency_ms);
            let _ = state.tx.send(WriteOp::Cache(Box::new(record)));
        }
        state.record(row, Source::Http);
        let Some(d) = delay else { return };
        // The server knows when it will take us back: its wait replaces our backoff.
        tokio::time::sleep(r.retry_after.unwrap_or(d)).await;
        base.try_no += 1;
    }
}
