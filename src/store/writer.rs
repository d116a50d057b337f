//! The writer thread: one connection that owns every write of a run, committing in batches.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, params};

use super::cache::{CacheRecord, insert_cache};
use super::{AttemptRow, ErrorKind, Store, StoreError, money_columns, sql};

/// Messages to the writer thread.
pub enum WriteOp {
    /// Store an attempt.
    Attempt(Box<AttemptRow>),
    /// Store a cache entry.
    Cache(Box<CacheRecord>),
}

/// A background thread that owns a write connection and commits in batches.
pub struct Writer {
    tx: Option<mpsc::SyncSender<WriteOp>>,
    handle: Option<JoinHandle<Result<(), StoreError>>>,
}

impl Writer {
    /// Starts the writer on its own connection to `path`.
    pub fn start(path: &Path) -> Result<Writer, StoreError> {
        let store = Store::open(path)?;
        // Bounded, so a slow disk applies back-pressure instead of growing memory; one batch
        // of up to 256 ops keeps the writer busy.
        let (tx, rx) = mpsc::sync_channel::<WriteOp>(256);
        let handle = std::thread::Builder::new()
            .name("costbench-writer".into())
            .spawn(move || write_loop(store, rx))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Writer {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// A sender for write operations.
    pub fn sender(&self) -> mpsc::SyncSender<WriteOp> {
        self.tx.clone().expect("writer is open until finish")
    }

    /// Flushes everything sent so far and stops the thread.
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.tx.take();
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(StoreError::Io("writer thread panicked".into())),
            None => Ok(()),
        }
    }
}

fn write_loop(mut store: Store, rx: mpsc::Receiver<WriteOp>) -> Result<(), StoreError> {
    let path = store.path.clone();
    while let Ok(first) = rx.recv() {
        let tx = store.conn.transaction().map_err(|e| sql(&path, e))?;
        let mut op = Some(first);
        let mut n = 0;
        while let Some(o) = op.take() {
            match o {
                WriteOp::Attempt(a) => insert_attempt(&tx, &a),
                WriteOp::Cache(c) => insert_cache(&tx, &c),
            }
            .map_err(|e| sql(&path, e))?;
            n += 1;
            if n < 1024 {
                op = rx.try_recv().ok();
            }
        }
        tx.commit().map_err(|e| sql(&path, e))?;
    }
    Ok(())
}

fn insert_attempt(conn: &Connection, a: &AttemptRow) -> rusqlite::Result<usize> {
    let u = a.usage.unwrap_or_default();
    let (cost, cost_big) = money_columns(a.cost);
    let (spent, spent_big) = money_columns(a.spent);
    // Usage counters are checked against what any provider could bill before they get here,
    // so they fit; a saturated value would still never wrap to a negative count.
    let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO attempts (run_id, suite, provider, task_id, repeat, try, final, request_hash,
            started_at, latency_ms, http_status, error_kind, error_message, answered, replayed,
            usage_known, input_tokens, cached_tokens, cache_write_tokens, cache_write_1h_tokens,
            output_tokens, reasoning_tokens, cost_femto, spent_femto, finish_reason, output,
            delivery, cost_big, spent_big, cost_max_femto, est_prompt_tokens)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)",
    )?
    .execute(params![
        a.run_id,
        a.suite,
        a.provider,
        a.task_id,
        a.repeat,
        a.try_no,
        a.is_final,
        a.request_hash,
        a.started_at,
        a.latency_ms,
        a.http_status,
        a.error_kind.map(ErrorKind::as_str),
        a.error_message,
        a.answered,
        a.replayed,
        a.usage.is_some(),
        tokens(u.input),
        tokens(u.cached_input),
        tokens(u.cache_write),
        tokens(u.cache_write_1h),
        tokens(u.output),
        tokens(u.reasoning),
        cost,
        spent,
        a.finish_reason,
        a.output,
        a.delivery.as_str(),
        cost_big,
        spent_big,
        a.cost_max.map(|m| m.0.to_string()),
        a.est_prompt_tokens.map(tokens),
    ])
}
