//! What LLM-judge grading stores beside the grades: every judge call (fresh or replayed) in
//! `judge_calls`, its answer in the record/replay cache like any other answer, and the grader
//! sets (kinds and config fingerprints) that gave each grade in `grader_sets`.
//!
//! A grader set's `graders` column is JSON: `{"accept": "all" | "any" | "score >= X",
//! "graders": [{"kind", "fingerprint", "weight"}, ...]}`, one entry per grader in the order of
//! the stored verdicts, so each verdict names the grader (and its config version) that gave it.

use std::collections::HashMap;

use rusqlite::params;

use super::cache::insert_cache;
use super::{AttemptRow, CacheRecord, Store, StoreError, sql};

/// One judge call to store: the HTTP try (or replay) and what it graded.
#[derive(Debug, Clone)]
pub struct JudgeCallRow {
    /// The candidate's answering attempt that was judged.
    pub attempt_id: i64,
    /// The judge grader's position in its suite's `graders`.
    pub grader: usize,
    /// Which request of the grade: 0, or 1 for the retry after a malformed verdict.
    pub sample: u32,
    /// The try as stored for an attempt (`provider` is the judge's id).
    pub row: AttemptRow,
}

impl Store {
    /// Stores judge calls and the fresh answers to record in the cache, in one transaction.
    pub fn put_judge_calls(
        &mut self,
        run_id: i64,
        calls: &[JudgeCallRow],
        answers: &[CacheRecord],
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql(&path, e))?;
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO judge_calls (run_id, attempt_id, grader, judge, sample, try,
                       request_hash, started_at, latency_ms, http_status, error_kind,
                       error_message, answered, replayed, input_tokens, output_tokens, cost,
                       spent, output)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                       ?16, ?17, ?18, ?19)",
                )
                .map_err(|e| sql(&path, e))?;
            for c in calls {
                let r = &c.row;
                st.execute(params![
                    run_id,
                    c.attempt_id,
                    c.grader as i64,
                    r.provider,
                    c.sample,
                    r.try_no,
                    r.request_hash,
                    r.started_at,
                    r.latency_ms,
                    r.http_status,
                    r.error_kind.map(|k| k.as_str()),
                    r.error_message,
                    r.answered,
                    r.replayed,
                    r.usage.map(
                        |u| (u.input + u.cached_input + u.cache_write + u.cache_write_1h) as i64
                    ),
                    r.usage.map(|u| u.output as i64),
                    r.cost.map(|m| m.0.to_string()),
                    r.spent.map(|m| m.0.to_string()),
                    r.output,
                ])
                .map_err(|e| sql(&path, e))?;
            }
            for a in answers {
                insert_cache(&tx, a).map_err(|e| sql(&path, e))?;
            }
        }
        tx.commit().map_err(|e| sql(&path, e))
    }

    /// Records a grader set (kept once per fingerprint).
    pub fn put_grader_set(&mut self, fingerprint: &str, graders: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO grader_sets (fingerprint, graders) VALUES (?1, ?2)",
                params![fingerprint, graders],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Every stored grader set, by fingerprint, its JSON parsed.
    pub fn grader_sets(&self) -> Result<HashMap<String, serde_json::Value>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT fingerprint, graders FROM grader_sets")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = HashMap::new();
        for row in rows {
            let (k, v) = row.map_err(|e| self.err(e))?;
            out.insert(
                k,
                serde_json::from_str(&v).unwrap_or(serde_json::Value::Null),
            );
        }
        Ok(out)
    }

    /// What a run's judge calls spent (a call of unknown spend has no stored bound).
    pub fn run_judge_spent(&self, run_id: i64) -> Result<crate::providers::Tally, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT spent FROM judge_calls WHERE run_id = ?1")
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([run_id]).map_err(|e| self.err(e))?;
        let mut tally = crate::providers::Tally::default();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let spent: Option<String> = r.get(0).map_err(|e| self.err(e))?;
            tally.add(
                spent
                    .and_then(|s| s.parse().ok())
                    .map(crate::providers::Money),
                None,
            );
        }
        Ok(tally)
    }

    /// How many judge calls of a run were sent to a provider (not replayed from the cache).
    pub fn judge_calls_sent(&self, run_id: i64) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM judge_calls WHERE run_id = ?1 AND replayed = 0",
                [run_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err(e))
    }
}
