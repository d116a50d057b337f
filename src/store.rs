//! The store: one SQLite file that every stage writes to and reads from.
//!
//! The run writes attempts, grading writes grades, and report/gate/route read only the store, so
//! they can be re-run without calling a provider. WAL mode and batched transactions keep a
//! `kill -9` from losing more than the attempts in flight and from leaving a torn file.
//! The schema is versioned with `PRAGMA user_version`; a newer or foreign file is refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::providers::{Money, Usage};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = 1;

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
    /// No database exists yet.
    #[error("no database at {path}; run `costbench run` first, or pass --db")]
    Missing {
        /// The expected file.
        path: PathBuf,
    },
    /// A requested run does not exist.
    #[error("no run {0} in the database; `costbench runs` lists them")]
    NoRun(String),
    /// Other I/O.
    #[error("{0}")]
    Io(String),
}

const MIGRATIONS: &[&str] = &[
    // v1
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta VALUES ('application', 'costbench');
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        cache_mode TEXT NOT NULL,
        plan TEXT NOT NULL
    );
    CREATE INDEX runs_key ON runs(key);
    CREATE TABLE tasks (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        suite TEXT NOT NULL,
        idx INTEGER NOT NULL,
        task_id TEXT NOT NULL,
        vars TEXT NOT NULL,
        PRIMARY KEY (run_id, suite, task_id)
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        suite TEXT NOT NULL,
        provider TEXT NOT NULL,
        task_id TEXT NOT NULL,
        repeat INTEGER NOT NULL,
        try INTEGER NOT NULL,
        final INTEGER NOT NULL,
        request_hash TEXT NOT NULL,
        started_at TEXT NOT NULL,
        latency_ms REAL NOT NULL,
        http_status INTEGER,
        error_kind TEXT,
        error_message TEXT,
        answered INTEGER NOT NULL,
        replayed INTEGER NOT NULL,
        usage_known INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        cache_write_1h_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        reasoning_tokens INTEGER NOT NULL,
        cost_femto INTEGER,
        spent_femto INTEGER,
        finish_reason TEXT,
        output TEXT
    );
    CREATE INDEX attempts_slot ON attempts(run_id, suite, provider, task_id, repeat);
    CREATE TABLE grades (
        run_id INTEGER NOT NULL,
        suite TEXT NOT NULL,
        provider TEXT NOT NULL,
        task_id TEXT NOT NULL,
        repeat INTEGER NOT NULL,
        attempt_id INTEGER NOT NULL,
        accepted INTEGER NOT NULL,
        verdicts TEXT NOT NULL,
        graded_at TEXT NOT NULL,
        PRIMARY KEY (run_id, suite, provider, task_id, repeat)
    );
    CREATE TABLE cache (
        key TEXT PRIMARY KEY,
        protocol TEXT NOT NULL,
        base_url TEXT NOT NULL,
        model TEXT NOT NULL,
        request TEXT NOT NULL,
        response TEXT NOT NULL,
        latency_ms REAL,
        created_at TEXT NOT NULL
    );
    "#,
];

/// A slot: (suite, provider, task id, repeat).
pub type SlotKey = (String, String, String, u32);

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
    /// Wall time of the HTTP exchange.
    pub latency_ms: f64,
    /// HTTP status, if a response arrived.
    pub http_status: Option<u16>,
    /// Error class (`rate_limited`, `server_error`, `timeout`, ...), if it failed.
    pub error_kind: Option<String>,
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
    /// Money actually spent by this run on this attempt (0 when replayed).
    pub spent: Option<Money>,
    /// Provider's finish reason.
    pub finish_reason: Option<String>,
    /// The answer text.
    pub output: Option<String>,
}

/// A cached response, keyed by the request hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    /// SHA-256 of the canonical request.
    pub key: String,
    /// Protocol name.
    pub protocol: String,
    /// Provider base URL.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// The request body as sent (no credentials).
    pub request: serde_json::Value,
    /// The response body as received.
    pub response: serde_json::Value,
    /// How long the recorded call took; replayed answers report it as their latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
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
    /// `running`, `interrupted`, `incomplete` (some outcomes without answer) or `complete`.
    pub status: String,
    /// `rw`, `replay` or `off`.
    pub cache_mode: String,
    /// The plan: suites and providers (no secrets).
    pub plan: serde_json::Value,
}

/// A cache entry as stored: request and response as JSON text (compact in memory).
#[derive(Debug, Clone)]
pub struct CacheRecord {
    /// SHA-256 of the canonical request.
    pub key: String,
    /// Protocol name.
    pub protocol: String,
    /// Provider base URL.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// The request body as sent.
    pub request: String,
    /// The response body as received.
    pub response: String,
    /// How long the recorded call took.
    pub latency_ms: Option<f64>,
}

impl From<&CacheEntry> for CacheRecord {
    fn from(e: &CacheEntry) -> Self {
        CacheRecord {
            key: e.key.clone(),
            protocol: e.protocol.clone(),
            base_url: e.base_url.clone(),
            model: e.model.clone(),
            request: e.request.to_string(),
            response: e.response.to_string(),
            latency_ms: e.latency_ms,
        }
    }
}

/// Messages to the writer thread.
pub enum WriteOp {
    /// Store an attempt.
    Attempt(Box<AttemptRow>),
    /// Store a cache entry.
    Cache(Box<CacheRecord>),
}

/// An open database.
pub struct Store {
    /// The connection.
    pub conn: Connection,
    path: PathBuf,
}

/// Current UTC time in RFC 3339 with milliseconds.
pub fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_millis())
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (civil-from-days, Hinnant).
fn rfc3339(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| sql(path, e))?;
        let mut s = Store {
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

    fn configure(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA cache_size=-512;",
            )
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
            });
        }
        if version == 0 {
            let tables: i64 = self
                .conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            if tables > 0 {
                return Err(StoreError::Foreign {
                    path: self.path.clone(),
                });
            }
        } else {
            let app: Option<String> = self
                .conn
                .query_row("SELECT value FROM meta WHERE key='application'", [], |r| {
                    r.get(0)
                })
                .optional()
                .unwrap_or(None);
            if app.as_deref() != Some("costbench") {
                return Err(StoreError::Foreign {
                    path: self.path.clone(),
                });
            }
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction().map_err(|e| sql(&self.path, e))?;
            tx.execute_batch(m).map_err(|e| sql(&self.path, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| sql(&self.path, e))?;
            tx.commit().map_err(|e| sql(&self.path, e))?;
        }
        Ok(())
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        sql(&self.path, e)
    }

    /// Creates a run and its task list: (suite, position, task id, variables as JSON).
    pub fn create_run<'a>(
        &mut self,
        key: &str,
        cache_mode: &str,
        plan: &serde_json::Value,
        tasks: impl Iterator<Item = (&'a str, usize, &'a str, &'a str)>,
    ) -> Result<i64, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql(&path, e))?;
        tx.execute(
            "INSERT INTO runs (key, created_at, status, cache_mode, plan) VALUES (?1, ?2, 'running', ?3, ?4)",
            params![key, now(), cache_mode, plan.to_string()],
        )
        .map_err(|e| sql(&path, e))?;
        let id = tx.last_insert_rowid();
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO tasks (run_id, suite, idx, task_id, vars) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(|e| sql(&path, e))?;
            for (suite, i, task_id, vars) in tasks {
                st.execute(params![id, suite, i as i64, task_id, vars])
                    .map_err(|e| sql(&path, e))?;
            }
        }
        tx.commit().map_err(|e| sql(&path, e))?;
        Ok(id)
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
    pub fn set_run_status(&self, id: i64, status: &str) -> Result<(), StoreError> {
        let finished = (status != "running").then(now);
        self.conn
            .execute(
                "UPDATE runs SET status = ?2, finished_at = ?3 WHERE id = ?1",
                params![id, status, finished],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Slots (suite, provider, task, repeat) that already have an answer, and each slot's
    /// next try number, so a resumed run calls only what is missing.
    pub fn slot_progress(&self, run_id: i64) -> Result<HashMap<SlotKey, (bool, u32)>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT suite, provider, task_id, repeat, max(answered), max(try) + 1
                 FROM attempts WHERE run_id = ?1 GROUP BY suite, provider, task_id, repeat",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([run_id], |r| {
                Ok((
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u32),
                    (r.get::<_, i64>(4)? != 0, r.get::<_, i64>(5)? as u32),
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// One run by id, or the latest when `id` is `None`.
    pub fn run(&self, id: Option<i64>) -> Result<RunInfo, StoreError> {
        let q = "SELECT id, created_at, finished_at, status, cache_mode, plan FROM runs";
        let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<RunInfo> {
            let plan: String = r.get(5)?;
            Ok(RunInfo {
                id: r.get(0)?,
                created_at: r.get(1)?,
                finished_at: r.get(2)?,
                status: r.get(3)?,
                cache_mode: r.get(4)?,
                plan: serde_json::from_str(&plan).unwrap_or(serde_json::Value::Null),
            })
        };
        let res = match id {
            Some(id) => self
                .conn
                .query_row(&format!("{q} WHERE id = ?1"), [id], map),
            None => self
                .conn
                .query_row(&format!("{q} ORDER BY id DESC LIMIT 1"), [], map),
        };
        res.optional().map_err(|e| self.err(e))?.ok_or_else(|| {
            StoreError::NoRun(id.map_or_else(|| "(none yet)".to_string(), |i| i.to_string()))
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

    /// Looks up a cached response body (as recorded) and the recorded call's latency.
    pub fn cache_get(&self, key: &str) -> Result<Option<(String, Option<f64>)>, StoreError> {
        self.conn
            .prepare_cached("SELECT response, latency_ms FROM cache WHERE key = ?1")
            .and_then(|mut st| {
                st.query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))
    }

    /// Writes every cache entry as one JSON object a line; returns how many.
    pub fn cache_export(&self, out: &mut dyn std::io::Write) -> Result<usize, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT key, protocol, base_url, model, request, response, latency_ms FROM cache ORDER BY key")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<f64>>(6)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut n = 0;
        for row in rows {
            let (key, protocol, base_url, model, request, response, latency_ms) =
                row.map_err(|e| self.err(e))?;
            let e = CacheEntry {
                key,
                protocol,
                base_url,
                model,
                request: serde_json::from_str(&request).unwrap_or_default(),
                response: serde_json::from_str(&response).unwrap_or_default(),
                latency_ms,
            };
            let line = serde_json::to_string(&e).map_err(|e| StoreError::Io(e.to_string()))?;
            writeln!(out, "{line}").map_err(|e| StoreError::Io(e.to_string()))?;
            n += 1;
        }
        Ok(n)
    }

    /// Inserts cache entries (existing keys are kept); returns how many were new.
    pub fn cache_import(&mut self, entries: &[CacheEntry]) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql(&path, e))?;
        let mut n = 0;
        for e in entries {
            n += insert_cache(&tx, &CacheRecord::from(e)).map_err(|e| sql(&path, e))?;
        }
        tx.commit().map_err(|e| sql(&path, e))?;
        Ok(n)
    }
}

/// Attempts of one slot (suite × provider × task × repeat), summed, with its grade.
#[derive(Debug, Clone)]
pub struct SlotSummary {
    /// Suite name.
    pub suite: String,
    /// Provider id.
    pub provider: String,
    /// Position of the task in its suite (the cluster index for statistics).
    pub task_idx: u32,
    /// HTTP tries (replayed answers count as one).
    pub calls: u64,
    /// Tries that got no answer.
    pub failed_calls: u64,
    /// Summed usage.
    pub usage: Usage,
    /// Summed production cost; `None` when any try's cost is unknown.
    pub cost: Option<Money>,
    /// Tries whose cost is unknown.
    pub unpriced_calls: u64,
    /// Summed spend of this run; `None` when any is unknown.
    pub spent: Option<Money>,
    /// Whether an answer arrived.
    pub answered: bool,
    /// Latency of the answering try.
    pub latency_ms: Option<f64>,
    /// The grade, if graded.
    pub accepted: Option<bool>,
}

/// Error kinds recorded without any HTTP call; they are not counted as calls.
pub const NOT_CALLED: &str = "('cache_miss', 'missing_key', 'render_error')";

impl Store {
    /// Calls `f` with every attempted slot of a run, summed, ordered by suite and provider;
    /// rows stream from SQLite, so memory does not grow with the run.
    pub fn for_each_slot(
        &self,
        run_id: i64,
        mut f: impl FnMut(SlotSummary),
    ) -> Result<(), StoreError> {
        let q = format!(
            "SELECT a.suite, a.provider, coalesce(t.idx, 0),
                sum(coalesce(a.error_kind, '') NOT IN {NOT_CALLED}),
                sum(a.answered = 0 AND coalesce(a.error_kind, '') NOT IN {NOT_CALLED}),
                sum(a.input_tokens), sum(a.cached_tokens), sum(a.cache_write_tokens),
                sum(a.output_tokens), sum(a.reasoning_tokens), sum(a.cache_write_1h_tokens),
                sum(a.cost_femto), sum(a.cost_femto IS NULL),
                sum(a.spent_femto), sum(a.spent_femto IS NULL),
                max(a.answered), max(CASE WHEN a.answered THEN a.latency_ms END), g.accepted
             FROM attempts a
             LEFT JOIN tasks t ON t.run_id = a.run_id AND t.suite = a.suite AND t.task_id = a.task_id
             LEFT JOIN grades g ON g.run_id = a.run_id AND g.suite = a.suite
                AND g.provider = a.provider AND g.task_id = a.task_id AND g.repeat = a.repeat
             WHERE a.run_id = ?1
             GROUP BY a.suite, a.provider, a.task_id, a.repeat
             ORDER BY a.suite, a.provider, t.idx, a.repeat"
        );
        let mut st = self.conn.prepare(&q).map_err(|e| self.err(e))?;
        let rows = st
            .query_map([run_id], |r| {
                let n = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0) as u64);
                let money = |sum: usize, nulls: usize| -> rusqlite::Result<Option<Money>> {
                    Ok(if n(nulls)? > 0 {
                        None
                    } else {
                        Some(Money(i128::from(
                            r.get::<_, Option<i64>>(sum)?.unwrap_or(0),
                        )))
                    })
                };
                Ok(SlotSummary {
                    suite: r.get(0)?,
                    provider: r.get(1)?,
                    task_idx: r.get::<_, i64>(2)? as u32,
                    calls: n(3)?,
                    failed_calls: n(4)?,
                    usage: Usage {
                        input: n(5)?,
                        cached_input: n(6)?,
                        cache_write: n(7)?,
                        output: n(8)?,
                        reasoning: n(9)?,
                        cache_write_1h: n(10)?,
                    },
                    cost: money(11, 12)?,
                    unpriced_calls: n(12)?,
                    spent: money(13, 14)?,
                    answered: n(15)? > 0,
                    latency_ms: r.get(16)?,
                    accepted: r.get::<_, Option<bool>>(17)?,
                })
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            f(row.map_err(|e| self.err(e))?);
        }
        Ok(())
    }
}

/// An answer waiting for a grade.
#[derive(Debug, Clone)]
pub struct Ungraded {
    /// The answering attempt.
    pub attempt_id: i64,
    /// Suite name.
    pub suite: String,
    /// Provider id.
    pub provider: String,
    /// Task id.
    pub task_id: String,
    /// Sample number.
    pub repeat: u32,
    /// The answer text.
    pub output: String,
    /// The task's variables (JSON object text).
    pub vars: String,
}

/// A grade to store.
#[derive(Debug, Clone)]
pub struct GradeRow {
    /// The graded attempt.
    pub attempt_id: i64,
    /// Whether every grader passed.
    pub accepted: bool,
    /// Per-grader verdicts (JSON).
    pub verdicts: String,
}

impl Store {
    /// Answers of a run after `after_id` (at most `limit`), all or only those without a grade.
    pub fn answers(
        &self,
        run_id: i64,
        only_ungraded: bool,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<Ungraded>, StoreError> {
        let q = format!(
            "SELECT a.id, a.suite, a.provider, a.task_id, a.repeat, coalesce(a.output, ''),
                coalesce(t.vars, '{{}}')
             FROM attempts a
             LEFT JOIN tasks t ON t.run_id = a.run_id AND t.suite = a.suite AND t.task_id = a.task_id
             WHERE a.run_id = ?1 AND a.answered = 1 AND a.id > ?2 {}
             ORDER BY a.id LIMIT ?3",
            if only_ungraded {
                "AND NOT EXISTS (SELECT 1 FROM grades g WHERE g.run_id = a.run_id AND g.suite = a.suite
                    AND g.provider = a.provider AND g.task_id = a.task_id AND g.repeat = a.repeat)"
            } else {
                ""
            }
        );
        let mut st = self.conn.prepare(&q).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![run_id, after_id, limit as i64], |r| {
                Ok(Ungraded {
                    attempt_id: r.get(0)?,
                    suite: r.get(1)?,
                    provider: r.get(2)?,
                    task_id: r.get(3)?,
                    repeat: r.get::<_, i64>(4)? as u32,
                    output: r.get(5)?,
                    vars: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Stores grades, replacing earlier grades of the same slots.
    pub fn put_grades(
        &mut self,
        run_id: i64,
        grades: &[(&Ungraded, GradeRow)],
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql(&path, e))?;
        {
            let mut st = tx
                .prepare(
                    "INSERT OR REPLACE INTO grades
                     (run_id, suite, provider, task_id, repeat, attempt_id, accepted, verdicts, graded_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(|e| sql(&path, e))?;
            let at = now();
            for (u, g) in grades {
                st.execute(params![
                    run_id,
                    u.suite,
                    u.provider,
                    u.task_id,
                    u.repeat,
                    g.attempt_id,
                    g.accepted,
                    g.verdicts,
                    at
                ])
                .map_err(|e| sql(&path, e))?;
            }
        }
        tx.commit().map_err(|e| sql(&path, e))
    }
}

fn insert_cache(conn: &Connection, e: &CacheRecord) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO cache (key, protocol, base_url, model, request, response, latency_ms,
            created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        e.key,
        e.protocol,
        e.base_url,
        e.model,
        e.request,
        e.response,
        e.latency_ms,
        now()
    ])
}

fn insert_attempt(conn: &Connection, a: &AttemptRow) -> rusqlite::Result<usize> {
    let u = a.usage.unwrap_or_default();
    conn.prepare_cached(
        "INSERT INTO attempts (run_id, suite, provider, task_id, repeat, try, final, request_hash,
            started_at, latency_ms, http_status, error_kind, error_message, answered, replayed,
            usage_known, input_tokens, cached_tokens, cache_write_tokens, cache_write_1h_tokens,
            output_tokens, reasoning_tokens, cost_femto, spent_femto, finish_reason, output)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)",
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
        a.error_kind,
        a.error_message,
        a.answered,
        a.replayed,
        a.usage.is_some(),
        u.input as i64,
        u.cached_input as i64,
        u.cache_write as i64,
        u.cache_write_1h as i64,
        u.output as i64,
        u.reasoning as i64,
        a.cost.map(|m| m.0 as i64),
        a.spent.map(|m| m.0 as i64),
        a.finish_reason,
        a.output,
    ])
}

fn sql(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_000_000, 5), "2026-11-18T11:06:40.005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000Z");
    }

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
}
