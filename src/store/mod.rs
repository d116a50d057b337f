//! The store: one SQLite file that every stage writes to and reads from.
//!
//! The run writes attempts, grading writes grades, and report/gate/route read only the store, so
//! they can be re-run without calling a provider. WAL mode and batched transactions keep a
//! `kill -9` from losing more than the attempts in flight and from leaving a torn file.
//! The schema is versioned with `PRAGMA user_version`; a newer or foreign file is refused.

pub mod batches;
pub mod cache;
pub mod details;
pub mod health;
pub mod judge;
pub mod labels;
pub mod outcomes;
pub mod plan;
mod schema;
pub mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::providers::{Money, Usage};
pub use cache::{CacheEntry, CacheRecord};
pub use outcomes::{GradeRow, GradeStatus, OutcomeRecord, Ungraded};
pub use plan::{Delivery, ErrorKind, RunPlan, RunStatus};
use schema::MIGRATIONS;
pub use writer::{WriteOp, Writer};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The file was written by a newer costbench.
    #[error(
        "database {path} has schema version {found}, newer than this costbench understands ({SCHEMA_VERSION}); upgrade costbench or use another --db"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
    /// The file is some other application's database.
    #[error("{path} is not a costbench database; use another --db")]
    Foreign {
        /// The database file.
        path: PathBuf,
    },
    /// The file has an older schema and was opened read-only, so it cannot be upgraded.
    #[error(
        "database {path} has schema version {found} and needs upgrading to {SCHEMA_VERSION}, which needs write access: run any costbench command on it where it can be written"
    )]
    NeedsUpgrade {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
    /// The file is damaged, or not a database at all.
    #[error(
        "database {path} is corrupted or is not a database; restore it from a backup or use another --db"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
    },
    /// No database exists yet.
    #[error("no database at {path}; run `costbench run` first, or pass --db")]
    Missing {
        /// The expected file.
        path: PathBuf,
    },
    /// A requested run does not exist.
    #[error("no run {0} in the database; `costbench runs` lists them")]
    NoRun(String),
    /// A run whose stored record this build cannot read (written by a foreign tool, or
    /// damaged).
    #[error(
        "database {path}: run {run} cannot be read ({what}); this costbench reads schema version {SCHEMA_VERSION}"
    )]
    Unreadable {
        /// The database file.
        path: PathBuf,
        /// The run.
        run: i64,
        /// What could not be read.
        what: String,
    },
    /// The writer could not store the run's attempts and gave up; the answers it held went
    /// to a spill file when there were any.
    #[error("{cause}; {}", spill_note(*.answers, .spill))]
    WriterGaveUp {
        /// Why the database refused the writes.
        cause: String,
        /// How many received answers were not stored.
        answers: usize,
        /// The spill file holding them (`None`: there were none), or why it failed.
        spill: Result<Option<PathBuf>, String>,
    },
    /// Other I/O.
    #[error("{0}")]
    Io(String),
}

fn spill_note(answers: usize, spill: &Result<Option<PathBuf>, String>) -> String {
    match spill {
        Ok(None) => "no received answer was lost".into(),
        Ok(Some(p)) => format!(
            "the {answers} answers not stored are in {}: `costbench cache import {}`, then run the same command again to replay them without paying twice",
            p.display(),
            p.display()
        ),
        Err(e) => {
            format!("{answers} received answers could not be saved to a spill file either: {e}")
        }
    }
}

/// Slots per page that [`Store::tasks_page`] callers aim for (tasks × repeats).
pub const PAGE_SLOTS: usize = 1024;

/// One slot's attempts so far: whether one was answered, and the next try number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotProgress {
    /// Some attempt got an answer.
    pub answered: bool,
    /// The try number the next attempt takes.
    pub next_try: u32,
}

/// One stored HTTP attempt.
#[derive(Debug, Clone, Default)]
pub struct AttemptRow {
    /// The run.
    pub run_id: i64,
    /// Suite name.
    pub suite: String,
    /// Provider id.
    pub provider: String,
    /// Task id.
    pub task_id: String,
    /// Sample number (0-based).
    pub repeat: u32,
    /// Try number within the slot (0-based, continues across resumes).
    pub try_no: u32,
    /// Whether this was the last try of its call (answered, or given up).
    pub is_final: bool,
    /// SHA-256 of the canonical request (the cache key).
    pub request_hash: String,
    /// UTC start time, RFC 3339.
    pub started_at: String,
    /// Wall time of the HTTP exchange (a streamed answer: until its last event).
    pub latency_ms: f64,
    /// Time to the first answer text of a streamed call; `None` when not streamed or no text.
    pub ttft_ms: Option<f64>,
    /// HTTP status, if a response arrived.
    pub http_status: Option<u16>,
    /// Whether the request reached the provider, which decides what a failure may cost.
    pub delivery: Delivery,
    /// Why it failed, if it did.
    pub error_kind: Option<ErrorKind>,
    /// Error detail (never contains the API key).
    pub error_message: Option<String>,
    /// Whether a usable answer arrived.
    pub answered: bool,
    /// Whether the answer came from the record/replay cache.
    pub replayed: bool,
    /// Token usage, when the provider reported it.
    pub usage: Option<Usage>,
    /// Production cost of this attempt; `None` when it cannot be computed.
    pub cost: Option<Money>,
    /// When the cost is unknown: the most it can have been (prompt estimate × input price +
    /// the completion cap × output price); `None` when unboundable.
    pub cost_max: Option<Money>,
    /// The prompt-token estimate `cost_max` used (UTF-8 bytes: a token is at least one byte).
    pub est_prompt_tokens: Option<u64>,
    /// Money actually spent by this run on this attempt (0 when replayed).
    pub spent: Option<Money>,
    /// Provider's finish reason.
    pub finish_reason: Option<String>,
    /// The answer text.
    pub output: Option<String>,
}

/// A run's summary line.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// Run id.
    pub id: i64,
    /// When it started (UTC).
    pub created_at: String,
    /// When it ended, if it did.
    pub finished_at: Option<String>,
    /// Where the run stands.
    pub status: RunStatus,
    /// `rw`, `replay` or `off`.
    pub cache_mode: String,
    /// The plan: suites and providers (no secrets).
    pub plan: RunPlan,
}

/// An open database.
pub struct Store {
    /// The connection.
    pub conn: Connection,
    path: PathBuf,
}

/// Current UTC time in RFC 3339 with milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        }
        // Switching a brand-new file to WAL can report "locked" without waiting while another
        // process creates the same file; such an open is retried a few times.
        let mut tries = 0;
        loop {
            match Self::open_once(path) {
                Err(StoreError::Sqlite { source, .. })
                    if tries < 50 && writer::is_busy(&source) =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10 * tries));
                }
                r => return r,
            }
        }
    }

    fn open_once(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path).map_err(|e| sql(path, e))?;
        let s = Store {
            conn,
            path: path.to_path_buf(),
        };
        s.configure()?;
        s.migrate()?;
        Ok(s)
    }

    /// Opens an existing database; a missing file is an error, not a new empty database.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        Self::open(path)
    }

    /// Opens an existing database to read: read-only when its schema is current, so reports
    /// work where it cannot be written; upgraded in place first when it is older.
    pub fn open_to_read(path: &Path) -> Result<Store, StoreError> {
        match Self::open_read_only(path) {
            Err(StoreError::NeedsUpgrade { .. }) => Self::open_existing(path),
            other => other,
        }
    }

    /// Opens an existing database for reading only, so reports work from a read-only
    /// directory or file (a WAL database there is read as immutable: nothing can write it).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        use rusqlite::OpenFlags;
        // NO_MUTEX as rusqlite's own default: a connection is used from one thread at a time,
        // and SQLite's per-call mutex was an eighth of a large report's time.
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let check = |conn: Connection| -> Result<Store, StoreError> {
            let s = Store {
                conn,
                path: path.to_path_buf(),
            };
            s.conn
                .execute_batch("PRAGMA busy_timeout=5000; PRAGMA cache_size=-512;")
                .map_err(|e| s.err(e))?;
            let version = s.check_version(&s.conn)? as i64;
            if version < SCHEMA_VERSION {
                return Err(StoreError::NeedsUpgrade {
                    path: path.to_path_buf(),
                    found: version,
                });
            }
            Ok(s)
        };
        match Connection::open_with_flags(path, flags)
            .map_err(|e| sql(path, e))
            .and_then(check)
        {
            Ok(s) => Ok(s),
            // Without write access to the directory SQLite cannot create the WAL index.
            Err(StoreError::Sqlite { .. }) => {
                let uri = format!("file:{}?immutable=1", uri_path(path));
                Connection::open_with_flags(&uri, flags)
                    .map_err(|e| sql(path, e))
                    .and_then(check)
            }
            Err(e) => Err(e),
        }
    }

    fn configure(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(
                // busy_timeout first: switching a new file to WAL needs a lock another
                // process creating the same file may hold for a moment.
                "PRAGMA busy_timeout=5000; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-512;",
            )
            .map_err(|e| self.err(e))
    }

    fn migrate(&self) -> Result<(), StoreError> {
        // The common case, an up-to-date file, takes no write lock.
        if self.check_version(&self.conn)? == SCHEMA_VERSION as usize {
            return Ok(());
        }
        // Migrating takes the write lock first and reads the version again under it, so two
        // processes creating the same new file cannot both run the first migration.
        let path = self.path.clone();
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(|e| sql(&path, e))?;
        let version = self.check_version(&tx)?;
        for m in &MIGRATIONS[version..] {
            tx.execute_batch(m).map_err(|e| sql(&path, e))?;
        }
        tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
            .map_err(|e| sql(&path, e))?;
        tx.commit().map_err(|e| sql(&path, e))
    }

    /// How many migrations the file has had; a newer or foreign file is an error.
    fn check_version(&self, conn: &Connection) -> Result<usize, StoreError> {
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
            });
        }
        let ours = if version <= 0 {
            let tables: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            tables == 0 && version == 0
        } else {
            conn.query_row("SELECT value FROM meta WHERE key='application'", [], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .ok()
            .flatten()
            .as_deref()
                == Some("costbench")
        };
        if !ours {
            return Err(StoreError::Foreign {
                path: self.path.clone(),
            });
        }
        Ok(version as usize)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        sql(&self.path, e)
    }

    /// Creates a run and its task list: (suite, position, task id, variables as JSON).
    pub fn create_run<'a>(
        &mut self,
        key: &str,
        cache_mode: &str,
        plan: &RunPlan,
        tasks: impl Iterator<Item = (&'a str, usize, &'a str, &'a str)>,
    ) -> Result<i64, StoreError> {
        let new = self.begin_run(key, cache_mode, plan)?;
        for (suite, i, task_id, vars) in tasks {
            new.add_task(suite, i, task_id, vars)?;
        }
        new.commit()
    }

    /// Starts creating a run; its tasks are added one at a time, so a caller can stream them
    /// from their files, and nothing is stored unless [`NewRun::commit`] is reached.
    pub fn begin_run(
        &mut self,
        key: &str,
        cache_mode: &str,
        plan: &RunPlan,
    ) -> Result<NewRun<'_>, StoreError> {
        let path = self.path.clone();
        let plan = serde_json::to_string(plan).map_err(|e| StoreError::Io(e.to_string()))?;
        let tx = self.conn.transaction().map_err(|e| sql(&path, e))?;
        tx.execute(
            "INSERT INTO runs (key, created_at, status, cache_mode, plan) VALUES (?1, ?2, 'running', ?3, ?4)",
            params![key, now(), cache_mode, plan],
        )
        .map_err(|e| sql(&path, e))?;
        let id = tx.last_insert_rowid();
        Ok(NewRun { tx, id, path })
    }

    /// Up to `limit` tasks of a run's suite in task-id order, after `after` (from the first
    /// when `None`): a page read along the task list's primary key.
    pub fn tasks_page(
        &self,
        run_id: i64,
        suite: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::suite::Task>, StoreError> {
        // `>= ''` takes every text id, the empty one included.
        let q = match after {
            Some(_) => {
                "SELECT task_id, vars FROM tasks WHERE run_id = ?1 AND suite = ?2 AND task_id > ?3
                 ORDER BY task_id LIMIT ?4"
            }
            None => {
                "SELECT task_id, vars FROM tasks WHERE run_id = ?1 AND suite = ?2 AND task_id >= ?3
                 ORDER BY task_id LIMIT ?4"
            }
        };
        let mut st = self.conn.prepare_cached(q).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(
                params![run_id, suite, after.unwrap_or(""), limit as i64],
                |r| {
                    Ok(crate::suite::Task {
                        id: r.get(0)?,
                        vars_json: r.get::<_, String>(1)?.into_boxed_str(),
                    })
                },
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The progress of one provider's slots on the tasks `first..=last` (by id) of a suite,
    /// keyed by (task id, repeat); slots without attempts are absent.
    pub fn slot_progress(
        &self,
        run_id: i64,
        suite: &str,
        provider: &str,
        (first, last): (&str, &str),
    ) -> Result<HashMap<(String, u32), SlotProgress>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT task_id, repeat, max(answered), max(try) + 1 FROM attempts
                 WHERE run_id = ?1 AND suite = ?2 AND provider = ?3 AND task_id BETWEEN ?4 AND ?5
                 GROUP BY task_id, repeat",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![run_id, suite, provider, first, last], |r| {
                Ok((
                    (r.get(0)?, r.get::<_, i64>(1)? as u32),
                    SlotProgress {
                        answered: r.get::<_, i64>(2)? != 0,
                        next_try: r.get::<_, i64>(3)? as u32,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// How many slots of one suite and provider already have an answer.
    pub fn answered_slots(
        &self,
        run_id: i64,
        suite: &str,
        provider: &str,
    ) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM (SELECT 1 FROM attempts
                    WHERE run_id = ?1 AND suite = ?2 AND provider = ?3
                    GROUP BY task_id, repeat HAVING max(answered) = 1)",
                params![run_id, suite, provider],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// What a run's attempts have spent so far: known amounts exactly, unknown ones with
    /// their bounds (what `--max-spend` counts when the run resumes).
    pub fn run_spent(&self, run_id: i64) -> Result<crate::providers::Tally, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT spent_femto, spent_big, cost_max_femto FROM attempts WHERE run_id = ?1",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([run_id]).map_err(|e| self.err(e))?;
        let mut tally = crate::providers::Tally::default();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let cell = |i: usize| r.get::<_, Option<String>>(i);
            let spent = money_from_columns(
                r.get(0).map_err(|e| self.err(e))?,
                cell(1).map_err(|e| self.err(e))?.as_deref(),
            );
            let bound = cell(2)
                .map_err(|e| self.err(e))?
                .and_then(|b| b.parse().ok())
                .map(Money);
            tally.add(spent, bound);
        }
        Ok(tally)
    }

    /// The output tokens of every answered call with known usage of `suite` on `provider` in
    /// the latest run that has any: (run id, tokens per call). What `costbench plan` takes
    /// as history.
    pub fn recorded_output_tokens(
        &self,
        suite: &str,
        provider: &str,
    ) -> Result<Option<(i64, Vec<u64>)>, StoreError> {
        let run: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(run_id) FROM attempts
                 WHERE suite = ?1 AND provider = ?2 AND answered = 1 AND usage_known = 1",
                params![suite, provider],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let Some(run) = run else { return Ok(None) };
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT output_tokens FROM attempts WHERE run_id = ?1 AND suite = ?2
                 AND provider = ?3 AND answered = 1 AND usage_known = 1",
            )
            .map_err(|e| self.err(e))?;
        let tokens = st
            .query_map(params![run, suite, provider], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))?
            .map(|t| t.map(|t| t.max(0) as u64))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(Some((run, tokens)))
    }

    /// The newest run with this key that did not complete, to resume.
    pub fn resumable_run(&self, key: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT id FROM runs WHERE key = ?1 AND status != 'complete' ORDER BY id DESC LIMIT 1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Marks a run's status (and end time unless still running).
    pub fn set_run_status(&self, id: i64, status: RunStatus) -> Result<(), StoreError> {
        let finished = (status != RunStatus::Running).then(now);
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, finished_at = ?3 WHERE id = ?1",
                params![id, status.as_str(), finished],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// One run by id, or the latest when `id` is `None`.
    pub fn run(&self, id: Option<i64>) -> Result<RunInfo, StoreError> {
        let q = "SELECT id, created_at, finished_at, status, cache_mode, plan FROM runs";
        type Raw = (i64, String, Option<String>, String, String, String);
        let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Raw> {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        };
        let res = match id {
            Some(id) => self
                .conn
                .query_row(&format!("{q} WHERE id = ?1"), [id], map),
            None => self
                .conn
                .query_row(&format!("{q} ORDER BY id DESC LIMIT 1"), [], map),
        };
        let (id, created_at, finished_at, status, cache_mode, plan) =
            res.optional().map_err(|e| self.err(e))?.ok_or_else(|| {
                StoreError::NoRun(id.map_or_else(|| "(none yet)".to_string(), |i| i.to_string()))
            })?;
        let unreadable = |what: String| StoreError::Unreadable {
            path: self.path.clone(),
            run: id,
            what,
        };
        Ok(RunInfo {
            id,
            created_at,
            finished_at,
            status: RunStatus::parse(&status)
                .ok_or_else(|| unreadable(format!("unknown status `{status}`")))?,
            cache_mode,
            plan: serde_json::from_str(&plan)
                .map_err(|e| unreadable(format!("its stored plan: {e}")))?,
        })
    }

    /// All runs, newest first.
    pub fn runs(&self) -> Result<Vec<RunInfo>, StoreError> {
        let ids: Vec<i64> = {
            let mut st = self
                .conn
                .prepare("SELECT id FROM runs ORDER BY id DESC")
                .map_err(|e| self.err(e))?;
            st.query_map([], |r| r.get(0))
                .map_err(|e| self.err(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?
        };
        ids.into_iter().map(|id| self.run(Some(id))).collect()
    }
}

/// A run being created, in one open transaction (see [`Store::begin_run`]).
pub struct NewRun<'a> {
    tx: rusqlite::Transaction<'a>,
    id: i64,
    path: PathBuf,
}

impl NewRun<'_> {
    /// Adds one task: its suite, position, id and variables (JSON object text).
    pub fn add_task(
        &self,
        suite: &str,
        idx: usize,
        task_id: &str,
        vars: &str,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO tasks (run_id, suite, idx, task_id, vars) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![self.id, suite, idx as i64, task_id, vars]))
            .map(drop)
            .map_err(|e| sql(&self.path, e))
    }

    /// Stores the run and its tasks; returns its id.
    pub fn commit(self) -> Result<i64, StoreError> {
        self.tx.commit().map_err(|e| sql(&self.path, e))?;
        Ok(self.id)
    }
}

/// Money as SQLite keeps it: an exact INTEGER of femto-dollars when it fits in 64 bits (up to
/// $9,223.37), else exact decimal text in the `*_big` column, so no amount ever wraps.
pub(crate) fn money_columns(m: Option<Money>) -> (Option<i64>, Option<String>) {
    match m.map(|m| i64::try_from(m.0).map_err(|_| m.0.to_string())) {
        None => (None, None),
        Some(Ok(small)) => (Some(small), None),
        Some(Err(big)) => (None, Some(big)),
    }
}

/// The inverse of [`money_columns`]; `None` when neither column holds an amount.
pub(crate) fn money_from_columns(small: Option<i64>, big: Option<&str>) -> Option<Money> {
    small
        .map(|v| Money(i128::from(v)))
        .or_else(|| big.and_then(|b| b.parse().ok()).map(Money))
}

/// A path as a `file:` URI path (percent-encoding what a URI reserves).
fn uri_path(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    abs.to_string_lossy()
        .chars()
        .map(|c| match c {
            '%' | '?' | '#' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

pub(crate) fn sql(path: &Path, source: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    if let rusqlite::Error::SqliteFailure(e, _) = &source
        && matches!(e.code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    {
        return StoreError::Corrupt {
            path: path.to_path_buf(),
        };
    }
    StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn money_columns_round_trip_at_the_64_bit_boundary() {
        for v in [
            0,
            1,
            -1,
            i128::from(i64::MAX),
            i128::from(i64::MAX) + 1,
            i128::from(i64::MIN) - 1,
            i128::MAX,
        ] {
            let (small, big) = money_columns(Some(Money(v)));
            assert_eq!(small.is_some(), i64::try_from(v).is_ok(), "{v}");
            assert_eq!(
                money_from_columns(small, big.as_deref()),
                Some(Money(v)),
                "{v}"
            );
        }
        assert_eq!(money_columns(None), (None, None));
        assert_eq!(money_from_columns(None, None), None);
    }

    use super::*;

    #[test]
    fn refuses_newer_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new.db");
        Store::open(&p).unwrap();
        Connection::open(&p)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let e = Store::open(&p).err().unwrap().to_string();
        assert!(e.contains("schema version 99"), "{e}");

        let f = dir.path().join("other.db");
        Connection::open(&f)
            .unwrap()
            .execute_batch("CREATE TABLE x(a)")
            .unwrap();
        let e = Store::open(&f).err().unwrap().to_string();
        assert!(e.contains("not a costbench database"), "{e}");

        let t = dir.path().join("text.db");
        std::fs::write(&t, "hello, this is not sqlite at all, just text........").unwrap();
        assert!(Store::open(&t).is_err());
    }

    // The run reads its slots a page at a time instead of holding every task: each task must
    // come exactly once, the empty id included, and only from its own run and suite.
    #[test]
    fn task_pages_walk_every_task_of_one_suite_once_in_id_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("t.db")).unwrap();
        let plan: RunPlan = serde_json::from_str(r#"{"suites": [], "providers": []}"#).unwrap();
        let ids = ["b", "", "a", "c", "ab", "d", "e"];
        let mut run = 0;
        for r in 0..2 {
            let tasks = ids
                .iter()
                .enumerate()
                .map(|(i, id)| ("s", i, *id, "{}"))
                .chain([("other", 0, "x", "{}")]);
            run = s.create_run(&format!("k{r}"), "rw", &plan, tasks).unwrap();
        }
        let mut walked = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = s.tasks_page(run, "s", after.as_deref(), 3).unwrap();
            assert!(page.len() <= 3);
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            walked.extend(page.into_iter().map(|t| t.id));
        }
        assert_eq!(walked, ["", "a", "ab", "b", "c", "d", "e"]);
    }

    // Regression: processes creating one new database at once failed with `table meta
    // already exists` (both ran the first migration).
    #[test]
    fn creating_one_new_database_from_many_connections_at_once() {
        for _ in 0..4 {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("fresh.db");
            let barrier = std::sync::Barrier::new(8);
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            Store::open(&p).map(|_| ())
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().unwrap().unwrap();
                }
            });
            let s = Store::open(&p).unwrap();
            let v: i64 = s
                .conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(v, SCHEMA_VERSION);
        }
    }
}
