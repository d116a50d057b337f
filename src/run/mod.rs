//! The run: every suite × provider × task × repeat, called concurrently, every try stored.
//!
//! Each provider gets its own concurrency limit and HTTP client; a failing provider only fills
//! its own rows with failures. Attempts stream to the store's writer thread as they finish, so
//! Ctrl-C (or a crash) keeps everything completed, and running the same command again resumes
//! the same run and calls only the slots that have no answer yet.

pub mod batch;
pub mod cache;
pub mod call;
pub mod dispatch;
pub mod events;
pub mod limits;
pub mod plan;
pub mod progress;
pub mod spend;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::providers::{Mode, ProviderConfig, protocol_for};
use crate::store::{
    AttemptRow, CacheRecord, ErrorKind, RunStatus, Store, StoreError, WriteOp, Writer,
};
use crate::suite::Suite;
pub use cache::CacheMode;
use dispatch::{Dispatch, Online, Prepared};
pub use events::Spend;
use events::{Consumer, Counters, EventLog, RunEvent};
use plan::{Slot, SlotSource, run_key, run_plan, slots_in};
use progress::Progress;

/// Options of one `costbench run`.
pub struct RunOptions {
    /// The database file.
    pub db: PathBuf,
    /// Record/replay cache mode.
    pub cache: CacheMode,
    /// A JSONL cassette to load before the run (and to record into in `rw` mode, which the
    /// caller does with [`cache::export_cassette`] once the run is graded).
    pub cassette: Option<PathBuf>,
    /// Show a progress bar (only on a terminal).
    pub progress: bool,
    /// Always start a new run instead of resuming an unfinished one.
    pub fresh: bool,
    /// Write the run's events to this file as JSONL.
    pub events: Option<PathBuf>,
    /// Stop calling before the run's spend could pass this (see [`spend`]).
    pub max_spend: Option<crate::providers::Money>,
}

/// How many replay misses the summary names; the rest are counted.
const MISSES_NAMED: usize = 5;

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
    /// How many slots replay mode had no recorded answer for.
    pub cache_misses: u64,
    /// The first few of them, as `suite / task / provider`.
    pub first_misses: Vec<String>,
    /// Whether Ctrl-C stopped it.
    pub interrupted: bool,
    /// Providers the run stopped calling after an authentication, permission or not-found
    /// error; their remaining slots stay pending for a resume once the configuration is fixed.
    pub halted: Vec<Halt>,
    /// Outcomes left in provider batches this session did not collect (Ctrl-C, or a poll
    /// the provider refused); the same command collects them.
    pub batch_pending: u64,
    /// Money spent by this invocation, unknown costs bounded.
    pub spent: Spend,
    /// Set when the run stopped calling at `--max-spend`.
    pub capped: Option<Capped>,
    /// Wall time.
    pub elapsed_s: f64,
}

/// A run that stopped calling at its spend cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capped {
    /// The cap, the spend and the call that did not fit.
    pub stop: spend::CapStop,
    /// Outcomes of the run (all sessions) still without an answer.
    pub pending: u64,
}

/// Why the run stopped calling one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halt {
    /// The provider id.
    pub provider: String,
    /// The HTTP status that stopped it.
    pub status: Option<u16>,
    /// The provider's own message (keys redacted).
    pub message: String,
    /// The variable the API key is read from, if any.
    pub key_env: Option<String>,
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self
            .status
            .map_or("an error".into(), |s| format!("HTTP {s}"));
        write!(
            f,
            "provider `{}` answered {status}: {}",
            self.provider, self.message
        )?;
        match (&self.key_env, self.status) {
            (Some(k), Some(401 | 403)) => {
                write!(f, "; check the API key in ${k} and its permissions")
            }
            (None, Some(401 | 403)) => {
                write!(f, "; the provider wants an API key: set api_key_env")
            }
            (_, Some(404)) => write!(f, "; check the provider's `model` and `base_url`"),
            _ => Ok(()),
        }
    }
}

/// Errors that stop a run before or after calling.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A tasks file changed between loading its suite and storing the run's task list.
    #[error(transparent)]
    TasksChanged(#[from] crate::suite::TasksChanged),
    /// Reading or writing the cassette failed.
    #[error("cassette {path}: {message}")]
    Cassette {
        /// The cassette file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An output file given on the command line cannot be written; found before any call.
    #[error("{path}: {message}")]
    Unwritable {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Another process is running the same run.
    #[error(
        "another costbench process is running this run (same suites and providers; lock {}); wait for it to finish",
        .lock.display()
    )]
    Busy {
        /// The lock file it holds.
        lock: PathBuf,
    },
    /// The async runtime or an HTTP client could not start.
    #[error("cannot start: {0}")]
    Runtime(String),
}

/// Checks that `out` can be written and is not the database (or its WAL/SHM files), before
/// anything is called or overwritten.
pub fn check_output(db: &Path, out: &Path) -> Result<(), RunError> {
    let unwritable = |message: String| RunError::Unwritable {
        path: out.to_path_buf(),
        message,
    };
    let canon = |p: &Path| -> Option<PathBuf> {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new(".")).canonicalize().ok()?;
        Some(dir.join(p.file_name()?))
    };
    let target = canon(out).ok_or_else(|| unwritable("no such directory".into()))?;
    let target = target.canonicalize().unwrap_or(target);
    if let Some(db) = canon(db) {
        let db = db.canonicalize().unwrap_or(db);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            if target == Path::new(&p) {
                return Err(unwritable(format!(
                    "is the database{}; choose another output file",
                    if suffix.is_empty() { "" } else { "'s own file" }
                )));
            }
        }
    }
    if target.is_dir() {
        return Err(unwritable("is a directory".into()));
    }
    // Creating a temporary file beside it is exactly what writing it will need.
    let dir = target.parent().unwrap_or(Path::new("."));
    tempfile::NamedTempFile::new_in(dir)
        .map(drop)
        .map_err(|e| unwritable(format!("cannot write in {}: {e}", dir.display())))?;
    if target.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(&target)
            .map(drop)
            .map_err(|e| unwritable(e.to_string()))?;
    }
    Ok(())
}

/// Takes the run's lock: a file lock beside the database, named after the run key, held for
/// as long as this process runs the run. The OS releases it when the process dies (even by
/// `kill -9`), so a crash never leaves a run stuck.
fn lock_run(db: &Path, key: &str) -> Result<std::fs::File, RunError> {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".run-{}.lock", key.get(..16).unwrap_or(key)));
    let lock = db.with_file_name(name);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| RunError::Runtime(format!("lock file {}: {e}", lock.display())))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(RunError::Busy { lock }),
        Err(std::fs::TryLockError::Error(e)) => Err(RunError::Runtime(format!(
            "lock file {}: {e}",
            lock.display()
        ))),
    }
}

/// Runs every suite against every provider and stores every attempt.
pub fn execute(
    suites: &[Suite],
    providers: &[ProviderConfig],
    opts: &RunOptions,
) -> Result<RunSummary, RunError> {
    let t0 = Instant::now();
    let mut store = Store::open(&opts.db)?;
    // Outputs are checked before the first call, not discovered broken after the last.
    if let Some(c) = opts
        .cassette
        .as_ref()
        .filter(|_| opts.cache == CacheMode::ReadWrite)
    {
        check_output(&opts.db, c)?;
    }
    let log = match &opts.events {
        Some(p) => {
            check_output(&opts.db, p)?;
            Some(EventLog::create(p).map_err(|e| RunError::Unwritable {
                path: p.clone(),
                message: e.to_string(),
            })?)
        }
        None => None,
    };
    // In rw mode a cassette that does not exist yet is about to be recorded.
    if let Some(c) = opts
        .cassette
        .as_ref()
        .filter(|c| c.exists() || opts.cache != CacheMode::ReadWrite)
    {
        cache::import_cassette(&mut store, c)?;
    }
    let key = run_key(suites, providers);
    let _lock = lock_run(&opts.db, &key)?;
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
            // The task lists stream from their files into the store, which the run then
            // reads a page at a time: no suite's tasks are ever held whole in memory.
            let new = store.begin_run(&key, opts.cache.as_str(), &run_plan(suites, providers))?;
            for s in suites {
                s.for_each_task(|i, t| {
                    new.add_task(&s.name, i, &t.id, &t.vars_json)
                        .map_err(RunError::from)
                })?;
            }
            new.commit()?
        }
    };

    // Work lists are generated lazily, so memory does not grow with the number of slots, and
    // the total is counted, not enumerated (a billion repeats must not stall the start).
    let mut done = 0;
    if resume.is_some() {
        for s in suites {
            for p in providers {
                done += store.answered_slots(run_id, &s.name, &p.id)?;
            }
        }
    }
    let all = (providers.len() as u64).saturating_mul(slots_in(suites));
    let total = all.saturating_sub(done);
    let skipped = all - total;
    let budget = match opts.max_spend {
        Some(cap) if resume.is_some() => Some(spend::Budget::new(cap, store.run_spent(run_id)?)),
        Some(cap) => Some(spend::Budget::new(cap, Spend::default())),
        None => None,
    };

    // One HTTP client (and connection pool) per provider, built before anything is called.
    let clients = providers
        .iter()
        .map(|p| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(p.max_concurrency)
                // A connect that cannot finish in half the call's time fails as a connect
                // error: nothing was sent, so it is known to cost nothing.
                .connect_timeout((call::call_timeout(p) / 2).min(Duration::from_secs(30)))
                .build()
                .map_err(|e| RunError::Runtime(format!("HTTP client for `{}`: {e}", p.id)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut spill = opts.db.clone().into_os_string();
    spill.push(format!(".spill-run{run_id}-{}.jsonl", std::process::id()));
    let writer = Writer::start(&opts.db, PathBuf::from(spill))?;
    let rec = Recorder {
        run_id,
        mode: opts.cache,
        tx: writer.sender(),
        writer_failed: writer.failed(),
        interrupted: Arc::new(AtomicBool::new(false)),
        reader: Mutex::new(Store::open(&opts.db)?),
        bar: Progress::new(total, opts.progress),
        counters: Mutex::new(Counters::default()),
        log,
        misses: Mutex::new((0, Vec::new())),
        halted: Mutex::new(Vec::new()),
        budget,
        db: opts.db.clone(),
        batch_pending: AtomicU64::new(0),
        batch_failure: Mutex::new(None),
    };
    let source = SlotSource {
        suites,
        store: &rec.reader,
        run_id,
        resumed: resume.is_some(),
        failure: Mutex::new(None),
    };
    rec.emit(&RunEvent::RunStarted {
        run_id,
        resumed: resume.is_some(),
        total_slots: total,
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Runtime(format!("async runtime: {e}")))?;
    let interrupted = rt.block_on(async {
        // The handler is registered before the first slot, so SIGINT never meets the default
        // handler (which would kill the process without saving).
        let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
        tokio::select! {
            biased;
            _ = &mut ctrl_c => return true,
            () = std::future::ready(()) => {}
        }
        // Slots served from the cache complete without ever waiting, so the loop below may
        // not return to this select for a long time; a watcher on a worker thread raises
        // the flag that stops handing out slots.
        let flag = rec.interrupted.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, Ordering::SeqCst);
            }
        });
        let all = futures_util::future::join_all(
            providers
                .iter()
                .zip(clients)
                .map(|(p, client)| run_provider(&rec, p, client, source.pending(&p.id))),
        );
        tokio::select! {
            biased;
            _ = &mut ctrl_c => true,
            _ = all => rec.interrupted.load(Ordering::SeqCst),
        }
    });
    // Dropping the runtime cancels calls still in flight; what finished is already queued.
    drop(rt);
    rec.bar.finish();
    if interrupted {
        rec.emit(&RunEvent::RunInterrupted);
    }
    let capped = rec.budget.as_ref().and_then(spend::Budget::stopped);
    let Recorder {
        tx,
        misses,
        counters,
        log,
        halted,
        batch_pending,
        batch_failure,
        ..
    } = rec;
    let batch_pending = batch_pending.into_inner();
    let mut halted = halted.into_inner().unwrap_or_else(|e| e.into_inner());
    for h in &mut halted {
        h.key_env = providers
            .iter()
            .find(|p| p.id == h.provider)
            .and_then(|p| p.api_key_env.clone());
    }
    drop(tx);
    let slot_failure = source
        .failure
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let batch_failure = batch_failure
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(e) = writer.finish().err().or(slot_failure).or(batch_failure) {
        // The run could not be stored or read whole; resuming calls only what is missing.
        let _ = store.set_run_status(run_id, RunStatus::Interrupted);
        return Err(e.into());
    }
    let c = counters.into_inner().unwrap_or_else(|e| e.into_inner());
    let (cache_misses, first_misses) = misses.into_inner().unwrap_or_else(|e| e.into_inner());

    let status = if interrupted {
        RunStatus::Interrupted
    } else if capped.is_some() {
        RunStatus::Capped
    } else if c.failed_slots > 0 || batch_pending > 0 {
        RunStatus::Incomplete
    } else {
        RunStatus::Complete
    };
    store.set_run_status(run_id, status)?;
    let capped = match capped {
        Some(stop) => {
            let mut answered = 0;
            for s in suites {
                for p in providers {
                    answered += store.answered_slots(run_id, &s.name, &p.id)?;
                }
            }
            Some(Capped {
                stop,
                pending: all.saturating_sub(answered),
            })
        }
        None => None,
    };
    let summary = RunSummary {
        run_id,
        resumed: resume.is_some(),
        skipped,
        calls: c.calls,
        replayed: c.replayed,
        failed_slots: c.failed_slots,
        cache_misses,
        first_misses,
        interrupted,
        halted,
        batch_pending,
        spent: c.spent,
        capped,
        elapsed_s: t0.elapsed().as_secs_f64(),
    };
    if let Some(log) = log {
        log.event(&RunEvent::RunFinished(&summary));
        if let Some(e) = log.error() {
            eprintln!("warning: the events log is incomplete: {e}");
        }
    }
    Ok(summary)
}

/// Where the run's attempts go: the event consumers, then the store writer.
pub(crate) struct Recorder {
    run_id: i64,
    mode: CacheMode,
    tx: tokio::sync::mpsc::Sender<WriteOp>,
    writer_failed: Arc<AtomicBool>,
    /// Set by Ctrl-C.
    interrupted: Arc<AtomicBool>,
    reader: Mutex<Store>,
    bar: Progress,
    counters: Mutex<Counters>,
    log: Option<EventLog>,
    /// Replay misses: how many, and the first few named.
    misses: Mutex<(u64, Vec<String>)>,
    /// Providers no longer called, and why.
    halted: Mutex<Vec<Halt>>,
    /// The spend cap, when the run has one.
    budget: Option<spend::Budget>,
    /// The database, for dispatchers that keep their own books (batch).
    db: PathBuf,
    /// Outcomes left in provider batches at the end of this session.
    batch_pending: AtomicU64,
    /// A store failure of batch bookkeeping, which fails the run.
    batch_failure: Mutex<Option<StoreError>>,
}

impl Recorder {
    /// Hands an event to every consumer.
    fn emit(&self, e: &RunEvent<'_>) {
        if let (Some(b), RunEvent::AttemptFinished(row)) = (&self.budget, e) {
            b.record(row.spent, row.cost_max);
        }
        self.counters.event(e);
        self.bar.event(e);
        if let Some(log) = &self.log {
            log.event(e);
        }
    }

    /// Whether the run must start no new call (Ctrl-C, or the store writer gave up).
    fn stopped(&self) -> bool {
        self.writer_failed.load(Ordering::Relaxed) || self.interrupted.load(Ordering::Relaxed)
    }

    /// Admits one call of `req` under the spend cap, waiting while calls in flight may still
    /// leave room; `None` when the run stopped at the cap (reported once, as an event).
    pub(crate) async fn admit_call(&self, req: &Prepared) -> Option<spend::Permit<'_>> {
        let Some(b) = &self.budget else {
            return Some(spend::Permit::unlimited());
        };
        match b.admit(req.cost_max).await {
            Ok(p) => Some(p),
            Err((stop, first)) => {
                if first {
                    self.emit(&RunEvent::SpendCapReached(stop));
                }
                None
            }
        }
    }

    /// Whether the cap stopped the run and nothing is left that the cache could serve free.
    fn capped_out(&self) -> bool {
        self.mode == CacheMode::Off && self.budget.as_ref().is_some_and(|b| b.stopped().is_some())
    }

    /// Whether the run stopped calling `provider` (a configuration error).
    fn halted(&self, provider: &str) -> bool {
        let h = self.halted.lock().unwrap_or_else(|e| e.into_inner());
        h.iter().any(|h| h.provider == provider)
    }

    /// Stops calling the provider of a final attempt that failed for its configuration.
    fn halt_on(&self, row: &AttemptRow) {
        if !(row.is_final && row.error_kind.is_some_and(ErrorKind::is_configuration)) {
            return;
        }
        let mut h = self.halted.lock().unwrap_or_else(|e| e.into_inner());
        if !h.iter().any(|h| h.provider == row.provider) {
            h.push(Halt {
                provider: row.provider.clone(),
                status: row.http_status,
                message: row.error_message.clone().unwrap_or_default(),
                key_env: None,
            });
        }
    }

    /// Records one attempt: its events, then the store (the answer's cache entry first).
    /// `retry` is the wait before the next try, and whether the server asked for it.
    async fn record(
        &self,
        row: AttemptRow,
        answer: Option<CacheRecord>,
        retry: Option<(Duration, bool)>,
    ) {
        self.emit(&RunEvent::AttemptFinished(&row));
        self.halt_on(&row);
        if let Some((delay, server_asked)) = retry {
            self.emit(&RunEvent::RetryScheduled {
                attempt: &row,
                delay,
                server_asked,
            });
        }
        if row.is_final {
            self.emit(&RunEvent::OutcomeFinished(&row));
        }
        if let Some(a) = answer {
            let op = if self.mode == CacheMode::ReadWrite {
                WriteOp::Cache(Box::new(a))
            } else {
                WriteOp::Answer(Box::new(a))
            };
            // The writer outlives every sender; a send error means it already failed, which
            // `Writer::finish` reports.
            let _ = self.tx.send(op).await;
        }
        let _ = self.tx.send(WriteOp::Attempt(Box::new(row))).await;
    }

    /// Serves a prepared request from the cache when it can; `true` when the slot is done.
    async fn resolve_from_cache(
        &self,
        req: &Prepared,
        cfg: &ProviderConfig,
        protocol: &dyn crate::providers::Protocol,
    ) -> bool {
        if self.mode == CacheMode::Off {
            return false;
        }
        let hit = {
            let reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
            reader.cache_get(&req.base.request_hash).ok().flatten()
        };
        // A cache answer never waits on the network; yielding here lets the runtime see
        // Ctrl-C even when every slot is served (or missed) from the cache.
        tokio::task::yield_now().await;
        if let Some((resp, latency)) = hit {
            let row = cache::replayed_row(req.base.clone(), (&resp, latency), cfg, protocol);
            self.record(req.bounded(row), None, None).await;
            return true;
        }
        if self.mode != CacheMode::Replay {
            return false;
        }
        let what = format!(
            "suite `{}` / task `{}` / provider `{}`",
            req.base.suite, req.base.task_id, cfg.id
        );
        {
            let mut m = self.misses.lock().unwrap_or_else(|e| e.into_inner());
            m.0 += 1;
            if m.1.len() < MISSES_NAMED {
                m.1.push(what.clone());
            }
        }
        let row = req.not_called(
            ErrorKind::CacheMiss,
            format!("no recorded answer for {what} (--cache replay makes no network call)"),
        );
        self.record(row, None, None).await;
        true
    }
}

async fn run_provider<'a>(
    rec: &Recorder,
    cfg: &ProviderConfig,
    client: reqwest::Client,
    slots: impl Iterator<Item = Slot<'a>>,
) {
    let Some(protocol) = protocol_for(&cfg.protocol) else {
        return; // validated at load time
    };
    if cfg.mode == Mode::Batch {
        match batch::Batch::new(cfg, protocol, client.clone(), &rec.db, rec.run_id) {
            // Requests only join a chunk here; one at a time keeps the chunks in slot order.
            Ok(Some(b)) => return drive(rec, cfg, protocol, &b, slots, 1).await,
            Ok(None) => {} // a protocol without a batch API runs online
            Err(e) => {
                rec.batch_failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(e);
                return;
            }
        }
    }
    let online = Online {
        cfg,
        protocol,
        client,
        key: cfg
            .api_key_env
            .as_ref()
            .map(|v| (v.clone(), std::env::var(v).ok())),
        limits: limits::Limits::new(cfg),
    };
    drive(rec, cfg, protocol, &online, slots, cfg.max_concurrency).await;
}

/// Hands a provider's pending slots to its dispatcher, `concurrency` at a time, then lets it
/// finish what it deferred.
async fn drive<'a>(
    rec: &Recorder,
    cfg: &ProviderConfig,
    protocol: &dyn crate::providers::Protocol,
    dispatcher: &impl Dispatch,
    slots: impl Iterator<Item = Slot<'a>>,
    concurrency: usize,
) {
    let slots = slots.filter(|s| !dispatcher.owns(&s.suite.name, &s.task.id, s.repeat));
    futures_util::stream::iter(slots)
        // Ctrl-C or a writer that gave up stops new calls; the slots left stay pending.
        // So does a key, permission or model error: every other call would fail the same way.
        // At the spend cap, slots the cache can answer are still served (they cost nothing).
        .take_while(|_| {
            std::future::ready(!rec.stopped() && !rec.halted(&cfg.id) && !rec.capped_out())
        })
        .for_each_concurrent(concurrency, |slot| {
            run_slot(rec, cfg, protocol, dispatcher, slot)
        })
        .await;
    dispatcher.finish(rec).await;
}

/// One slot: prepare → resolve from the cache → dispatch; every attempt is recorded.
async fn run_slot(
    rec: &Recorder,
    cfg: &ProviderConfig,
    protocol: &dyn crate::providers::Protocol,
    dispatcher: &impl Dispatch,
    slot: Slot<'_>,
) {
    let base = AttemptRow {
        run_id: rec.run_id,
        suite: slot.suite.name.clone(),
        provider: cfg.id.clone(),
        task_id: slot.task.id.clone(),
        repeat: slot.repeat,
        try_no: slot.next_try,
        ..Default::default()
    };
    let req = match Prepared::new(base, cfg, protocol, slot.suite, &slot.task) {
        Ok(req) => req,
        Err(row) => return rec.record(*row, None, None).await,
    };
    if rec.resolve_from_cache(&req, cfg, protocol).await {
        return;
    }
    dispatcher.dispatch(&req, rec).await;
}
