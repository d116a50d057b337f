//! Provider batches of a run: every batch submitted (or about to be) and the slot behind each
//! of its requests.
//!
//! A batch row is written with its requests *before* the provider is asked to create it, and
//! its provider id right after, each in its own transaction: a restarted run polls every
//! batch that has a provider id instead of submitting its requests again, and forgets one
//! without (the provider never confirmed it). A batch is closed through the run's writer in
//! the same order as the attempts made from its results, so a closed batch always has its
//! attempts stored. A request's `custom_id` is its index in the batch (`r<idx>`).

use std::collections::HashSet;

use rusqlite::params;

use super::{Store, StoreError, money_from_columns, now, sql};
use crate::providers::Money;

/// One request of a batch: the slot it answers and what a failed line needs to be recorded.
#[derive(Debug, Clone)]
pub struct BatchItem {
    /// Position in the batch; the request's `custom_id` is `r<idx>`.
    pub idx: u32,
    /// Suite name.
    pub suite: String,
    /// Task id.
    pub task_id: String,
    /// Sample number.
    pub repeat: u32,
    /// The try number its attempt takes.
    pub try_no: u32,
    /// The cache key of its request.
    pub request_hash: String,
    /// The most it can cost when its bill is never seen.
    pub cost_max: Option<Money>,
    /// The prompt-token estimate behind `cost_max`.
    pub est_prompt_tokens: Option<u64>,
    /// The request body as sent (JSON text), for the cache.
    pub request: String,
    /// Whether its attempt is already stored (results recorded before a restart).
    pub recorded: bool,
}

impl BatchItem {
    /// The `custom_id` that names this request in the provider's batch.
    pub fn custom_id(&self) -> String {
        custom_id(self.idx)
    }
}

/// The `custom_id` of the request at `idx` (letters, digits, `_` and `-` only: Anthropic's rule).
pub fn custom_id(idx: u32) -> String {
    format!("r{idx}")
}

/// The index a `custom_id` names, if it is one of ours.
pub fn custom_idx(custom_id: &str) -> Option<u32> {
    custom_id.strip_prefix('r')?.parse().ok()
}

/// A batch the provider accepted and whose results are not recorded yet.
#[derive(Debug, Clone)]
pub struct OpenBatch {
    /// Local row id.
    pub id: i64,
    /// The provider's id of the batch.
    pub remote_id: String,
    /// When it was submitted (RFC 3339).
    pub submitted_at: String,
    /// How many requests it holds.
    pub requests: u64,
}

impl Store {
    /// Stores a batch about to be submitted and its requests; returns its row id.
    pub fn batch_begin(
        &mut self,
        run_id: i64,
        provider: &str,
        api: &str,
        items: &[BatchItem],
    ) -> Result<i64, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql(&path, e))?;
        tx.execute(
            "INSERT INTO batches (run_id, provider, api, status, open, requests, created_at)
             VALUES (?1, ?2, ?3, 'submitting', 1, ?4, ?5)",
            params![run_id, provider, api, items.len() as i64, now()],
        )
        .map_err(|e| sql(&path, e))?;
        let id = tx.last_insert_rowid();
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO batch_items (batch_id, idx, suite, task_id, repeat, try,
                        request_hash, cost_max_femto, est_prompt_tokens, request)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(|e| sql(&path, e))?;
            for it in items {
                st.execute(params![
                    id,
                    it.idx,
                    it.suite,
                    it.task_id,
                    it.repeat,
                    it.try_no,
                    it.request_hash,
                    it.cost_max.map(|m| m.0.to_string()),
                    it.est_prompt_tokens
                        .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                    it.request,
                ])
                .map_err(|e| sql(&path, e))?;
            }
        }
        tx.commit().map_err(|e| sql(&path, e))?;
        Ok(id)
    }

    /// Records the provider's id of a batch it accepted.
    pub fn batch_submitted(
        &self,
        id: i64,
        remote_id: &str,
        status: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE batches SET remote_id = ?2, status = ?3, submitted_at = ?4 WHERE id = ?1",
                params![id, remote_id, status, now()],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records the provider's latest status of an open batch.
    pub fn batch_polled(&self, id: i64, status: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE batches SET status = ?2 WHERE id = ?1",
                params![id, status],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Forgets a batch the provider never accepted, and its requests.
    pub fn batch_discard(&mut self, id: i64) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql(&path, e))?;
        tx.execute("DELETE FROM batch_items WHERE batch_id = ?1", [id])
            .map_err(|e| sql(&path, e))?;
        tx.execute("DELETE FROM batches WHERE id = ?1", [id])
            .map_err(|e| sql(&path, e))?;
        tx.commit().map_err(|e| sql(&path, e))
    }

    /// The open batches of a run's provider that the provider accepted; batches it never
    /// confirmed (a restart between storing and submitting one) are forgotten first.
    pub fn open_batches(
        &mut self,
        run_id: i64,
        provider: &str,
    ) -> Result<Vec<OpenBatch>, StoreError> {
        let unconfirmed: Vec<i64> = {
            let mut st = self
                .conn
                .prepare(
                    "SELECT id FROM batches
                     WHERE run_id = ?1 AND provider = ?2 AND open = 1 AND remote_id IS NULL",
                )
                .map_err(|e| self.err(e))?;
            st.query_map(params![run_id, provider], |r| r.get(0))
                .map_err(|e| self.err(e))?
                .collect::<Result<_, _>>()
                .map_err(|e| self.err(e))?
        };
        for id in unconfirmed {
            self.batch_discard(id)?;
        }
        let mut st = self
            .conn
            .prepare(
                "SELECT id, remote_id, coalesce(submitted_at, created_at), requests FROM batches
                 WHERE run_id = ?1 AND provider = ?2 AND open = 1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        st.query_map(params![run_id, provider], |r| {
            Ok(OpenBatch {
                id: r.get(0)?,
                remote_id: r.get(1)?,
                submitted_at: r.get(2)?,
                requests: r.get::<_, i64>(3)? as u64,
            })
        })
        .map_err(|e| self.err(e))?
        .collect::<Result<_, _>>()
        .map_err(|e| self.err(e))
    }

    /// The slots (suite, task id, repeat) whose requests sit in open batches of a provider.
    pub fn batch_in_flight(
        &self,
        run_id: i64,
        provider: &str,
    ) -> Result<HashSet<(String, String, u32)>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT i.suite, i.task_id, i.repeat FROM batch_items i
                 JOIN batches b ON b.id = i.batch_id
                 WHERE b.run_id = ?1 AND b.provider = ?2 AND b.open = 1",
            )
            .map_err(|e| self.err(e))?;
        st.query_map(params![run_id, provider], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u32))
        })
        .map_err(|e| self.err(e))?
        .collect::<Result<_, _>>()
        .map_err(|e| self.err(e))
    }

    /// The requests of a batch in index order, each saying whether its attempt is stored.
    pub fn batch_items(&self, id: i64, provider: &str) -> Result<Vec<BatchItem>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT i.idx, i.suite, i.task_id, i.repeat, i.try, i.request_hash,
                    i.cost_max_femto, i.est_prompt_tokens, i.request,
                    EXISTS (SELECT 1 FROM attempts a WHERE a.run_id = b.run_id
                        AND a.suite = i.suite AND a.provider = ?2 AND a.task_id = i.task_id
                        AND a.repeat = i.repeat AND a.try = i.try)
                 FROM batch_items i JOIN batches b ON b.id = i.batch_id
                 WHERE i.batch_id = ?1 ORDER BY i.idx",
            )
            .map_err(|e| self.err(e))?;
        st.query_map(params![id, provider], |r| {
            let cost_max: Option<String> = r.get(6)?;
            Ok(BatchItem {
                idx: r.get::<_, i64>(0)? as u32,
                suite: r.get(1)?,
                task_id: r.get(2)?,
                repeat: r.get::<_, i64>(3)? as u32,
                try_no: r.get::<_, i64>(4)? as u32,
                request_hash: r.get(5)?,
                cost_max: money_from_columns(None, cost_max.as_deref()),
                est_prompt_tokens: r.get::<_, Option<i64>>(7)?.map(|n| n.max(0) as u64),
                request: r.get(8)?,
                recorded: r.get(9)?,
            })
        })
        .map_err(|e| self.err(e))?
        .collect::<Result<_, _>>()
        .map_err(|e| self.err(e))
    }
}

/// Closes a batch (inside the writer's transaction, after the attempts made from it).
pub(super) fn close_batch(
    conn: &rusqlite::Connection,
    id: i64,
    status: &str,
    detail: Option<&str>,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE batches SET open = 0, status = ?2, detail = ?3, ended_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, status, detail, now()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AttemptRow, RunPlan, WriteOp, Writer};

    fn item(idx: u32, task: &str) -> BatchItem {
        BatchItem {
            idx,
            suite: "s".into(),
            task_id: task.into(),
            repeat: 0,
            try_no: 0,
            request_hash: format!("h{idx}"),
            cost_max: Some(Money(12_345)),
            est_prompt_tokens: Some(40),
            request: "{}".into(),
            recorded: false,
        }
    }

    // A restart must poll what the provider accepted, forget what it never confirmed (so
    // those slots are sent again), and skip results already stored before the restart.
    #[test]
    fn a_restart_polls_confirmed_batches_and_forgets_unconfirmed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("b.db");
        let mut s = Store::open(&db).unwrap();
        let plan: RunPlan = serde_json::from_str(r#"{"suites": [], "providers": []}"#).unwrap();
        let run = s.create_run("k", "rw", &plan, std::iter::empty()).unwrap();
        let confirmed = s
            .batch_begin(run, "p", "openai", &[item(0, "a"), item(1, "b")])
            .unwrap();
        s.batch_submitted(confirmed, "batch_1", "validating")
            .unwrap();
        s.batch_begin(run, "p", "openai", &[item(0, "c")]).unwrap();
        s.batch_begin(run, "q", "openai", &[item(0, "d")]).unwrap();

        let writer = Writer::start(&db, dir.path().join("spill")).unwrap();
        let tx = writer.sender();
        tx.blocking_send(WriteOp::Attempt(Box::new(AttemptRow {
            run_id: run,
            suite: "s".into(),
            provider: "p".into(),
            task_id: "b".into(),
            answered: true,
            is_final: true,
            ..AttemptRow::default()
        })))
        .unwrap();
        drop(tx);
        writer.finish().unwrap();

        let open = s.open_batches(run, "p").unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(
            (open[0].id, open[0].remote_id.as_str(), open[0].requests),
            (confirmed, "batch_1", 2)
        );
        let mut tasks: Vec<String> = s
            .batch_in_flight(run, "p")
            .unwrap()
            .into_iter()
            .map(|(_, t, _)| t)
            .collect();
        tasks.sort();
        assert_eq!(
            tasks,
            ["a", "b"],
            "the unconfirmed batch's slot c is free again"
        );
        let items = s.batch_items(confirmed, "p").unwrap();
        let recorded: Vec<bool> = items.iter().map(|i| i.recorded).collect();
        assert_eq!(recorded, [false, true]);
        assert_eq!(items[0].cost_max, Some(Money(12_345)));
        assert_eq!(items[0].custom_id(), "r0");
        assert_eq!(custom_idx("r1"), Some(1));
        assert_eq!(custom_idx("task-0001"), None);

        let writer = Writer::start(&db, dir.path().join("spill2")).unwrap();
        writer
            .sender()
            .blocking_send(WriteOp::BatchClosed {
                id: confirmed,
                status: "completed".into(),
                detail: None,
            })
            .unwrap();
        writer.finish().unwrap();
        assert!(s.open_batches(run, "p").unwrap().is_empty());
        assert!(s.batch_in_flight(run, "p").unwrap().is_empty());
        // Another provider's unconfirmed batch waits until that provider resumes.
        assert_eq!(s.batch_in_flight(run, "q").unwrap().len(), 1);
    }
}
