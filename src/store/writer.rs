//! The writer thread: one connection that owns every write of a run, committing in batches.
//!
//! A paid answer must never be lost to a busy database: a batch that cannot be committed
//! because another connection holds the lock is retried with backoff for up to
//! [`BUSY_RETRY_FOR`]. Meanwhile the bounded channel fills and the run's sends wait, so the
//! run stops calling instead of piling up answers it cannot store. If the store still refuses
//! (or fails otherwise), the writer sets the shared `failed` flag (the run then starts no new
//! call) and writes every answer it holds to a spill file, a JSONL cassette that
//! `costbench cache import FILE` loads, so running the same command again replays those
//! answers instead of paying for them twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, params};
use tokio::sync::mpsc;

use super::cache::{CacheEntry, CacheRecord, insert_cache};
use super::{AttemptRow, ErrorKind, Store, StoreError, money_columns, sql};

/// How long a batch the database refuses as busy or locked is retried before the writer gives
/// up and spills.
pub const BUSY_RETRY_FOR: Duration = Duration::from_secs(600);

/// Messages to the writer thread.
pub enum WriteOp {
    /// Store an attempt.
    Attempt(Box<AttemptRow>),
    /// Store a cache entry.
    Cache(Box<CacheRecord>),
    /// A received answer that is not to be cached (`--cache off`/`replay`), kept only so a
    /// writer that gives up can still spill it.
    Answer(Box<CacheRecord>),
    /// Close a provider batch whose results are recorded (sent after their attempts, so it
    /// commits with or after them).
    BatchClosed {
        /// The batch's row id.
        id: i64,
        /// Its final status.
        status: String,
        /// The provider's message, if any.
        detail: Option<String>,
    },
}

/// A background thread that owns a write connection and commits in batches.
pub struct Writer {
    tx: Option<mpsc::Sender<WriteOp>>,
    failed: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<(), StoreError>>>,
}

impl Writer {
    /// Starts the writer on its own connection to `path`; if it ever gives up, the answers it
    /// holds go to `spill`.
    pub fn start(path: &Path, spill: PathBuf) -> Result<Writer, StoreError> {
        let store = Store::open(path)?;
        // Bounded, so a slow or locked disk applies back-pressure instead of growing memory;
        // one batch of up to 256 ops keeps the writer busy.
        let (tx, rx) = mpsc::channel::<WriteOp>(256);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let handle = std::thread::Builder::new()
            .name("costbench-writer".into())
            .spawn(move || write_loop(store, rx, &flag, &spill))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Writer {
            tx: Some(tx),
            failed,
            handle: Some(handle),
        })
    }

    /// A sender for write operations.
    pub fn sender(&self) -> mpsc::Sender<WriteOp> {
        self.tx.clone().expect("writer is open until finish")
    }

    /// Set once the writer has given up: no new call should be made.
    pub fn failed(&self) -> Arc<AtomicBool> {
        self.failed.clone()
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

fn write_loop(
    mut store: Store,
    mut rx: mpsc::Receiver<WriteOp>,
    failed: &AtomicBool,
    spill: &Path,
) -> Result<(), StoreError> {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if let Err(e) = commit_retrying(&mut store, &batch) {
            failed.store(true, Ordering::SeqCst);
            // Everything still on its way is held too: the run stops calling, and the
            // calls in flight finish into this channel.
            while let Some(op) = rx.blocking_recv() {
                batch.push(op);
            }
            return Err(spill_answers(&batch, spill, e));
        }
    }
    Ok(())
}

/// Commits one batch, retrying busy and locked errors with backoff for [`BUSY_RETRY_FOR`].
fn commit_retrying(store: &mut Store, batch: &[WriteOp]) -> Result<(), StoreError> {
    let deadline = Instant::now() + BUSY_RETRY_FOR;
    let mut delay = Duration::from_millis(20);
    loop {
        match commit(store, batch) {
            Ok(()) => return Ok(()),
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(sql(&store.path, e)),
        }
    }
}

fn commit(store: &mut Store, batch: &[WriteOp]) -> rusqlite::Result<()> {
    let tx = store.conn.transaction()?;
    for op in batch {
        match op {
            WriteOp::Attempt(a) => insert_attempt(&tx, a)?,
            WriteOp::Cache(c) => insert_cache(&tx, c)?,
            WriteOp::Answer(_) => 0,
            WriteOp::BatchClosed { id, status, detail } => {
                super::batches::close_batch(&tx, *id, status, detail.as_deref())?
            }
        };
    }
    tx.commit()
}

pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Writes every answer of `ops` to `spill` as cassette lines; the error names the file.
fn spill_answers(ops: &[WriteOp], spill: &Path, cause: StoreError) -> StoreError {
    let answers: Vec<&CacheRecord> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Cache(c) | WriteOp::Answer(c) => Some(&**c),
            WriteOp::Attempt(_) | WriteOp::BatchClosed { .. } => None,
        })
        .collect();
    let written = (!answers.is_empty())
        .then(|| write_spill(&answers, spill))
        .transpose();
    StoreError::WriterGaveUp {
        cause: cause.to_string(),
        answers: answers.len(),
        spill: written.map_err(|e| e.to_string()),
    }
}

fn write_spill(answers: &[&CacheRecord], spill: &Path) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create_new(spill)?);
    for a in answers {
        let line = serde_json::to_string(&CacheEntry::from(*a))?;
        writeln!(f, "{line}")?;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(spill.to_path_buf())
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
            delivery, cost_big, spent_big, cost_max_femto, est_prompt_tokens, ttft_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)",
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
        a.ttft_ms,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression: a writer that could not store the run's attempts dropped them while the run
    // kept calling; now it raises the stop flag and spills every answer it holds.
    #[test]
    fn a_writer_that_gives_up_spills_every_answer_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let spill = dir.path().join("x.spill.jsonl");
        let writer = Writer::start(&db, spill.clone()).unwrap();
        // A failure no retry can fix: the table is gone.
        Connection::open(&db)
            .unwrap()
            .execute_batch("DROP TABLE attempts")
            .unwrap();
        let answer = |key: &str| CacheRecord {
            key: key.into(),
            protocol: "openai".into(),
            base_url: "http://x/v1".into(),
            model: "m".into(),
            request: "{}".into(),
            response: r#"{"choices":[]}"#.into(),
            latency_ms: Some(1.0),
        };
        let tx = writer.sender();
        tx.blocking_send(WriteOp::Cache(Box::new(answer("k1"))))
            .unwrap();
        tx.blocking_send(WriteOp::Attempt(Box::default())).unwrap();
        tx.blocking_send(WriteOp::Answer(Box::new(answer("k2"))))
            .unwrap();
        drop(tx);
        let failed = writer.failed();
        let e = writer.finish().unwrap_err();
        assert!(failed.load(Ordering::SeqCst));
        assert!(e.to_string().contains("cache import"), "{e}");
        let lines: Vec<CacheEntry> = std::fs::read_to_string(&spill)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let spilled: Vec<&str> = lines.iter().map(|e| e.key.as_str()).collect();
        // k1 may have been committed in a batch of its own before the attempt failed; then it
        // is in the store and need not be spilled. Either way no answer is lost.
        let stored: i64 = Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM cache WHERE key = 'k1'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(spilled.contains(&"k2"), "{spilled:?}");
        assert!(
            spilled.contains(&"k1") != (stored == 1),
            "k1 exactly once: {spilled:?}, stored {stored}"
        );
    }
}
