//! What a per-task drill-down reads: each outcome's last try (its answer or its failure), that
//! try's tokens, the grade with every grader's verdict and reason, and the task's variables.
//!
//! Text is cut in SQL to a caller's limit, so a run with huge answers never holds them whole.

use super::{Store, StoreError};

/// The last try of one outcome (suite × provider × task × repeat), with its grade.
#[derive(Debug, Clone)]
pub struct OutcomeDetail {
    /// Suite name.
    pub suite: String,
    /// Provider id.
    pub provider: String,
    /// Task id.
    pub task_id: String,
    /// Sample number.
    pub repeat: u32,
    /// The answer, cut to the limit asked for (empty when unanswered).
    pub output: String,
    /// The answer's whole length in characters.
    pub output_chars: u64,
    /// Why the last try failed, when unanswered: the error kind.
    pub error_kind: Option<String>,
    /// The last try's error message (never a key).
    pub error_message: Option<String>,
    /// Prompt tokens of the last try (cached and cache writes included).
    pub prompt_tokens: u64,
    /// Completion tokens of the last try.
    pub output_tokens: u64,
    /// Every grader's verdict as stored (a JSON list of `{passed, reason, error?}`).
    pub verdicts: Option<String>,
    /// Why grading failed, when it did.
    pub grade_error: Option<String>,
    /// The task's variables (JSON object text), cut to the limit asked for.
    pub vars: String,
}

impl Store {
    /// Calls `f` with the last try of every outcome of a run, with its grade and task
    /// variables; `max_chars` cuts outputs, variables and messages.
    pub fn for_each_detail(
        &self,
        run_id: i64,
        max_chars: usize,
        mut f: impl FnMut(OutcomeDetail),
    ) -> Result<(), StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT a.suite, a.provider, a.task_id, a.repeat,
                    substr(coalesce(a.output, ''), 1, ?2), length(coalesce(a.output, '')),
                    CASE WHEN a.answered THEN NULL ELSE a.error_kind END,
                    CASE WHEN a.answered THEN NULL ELSE substr(a.error_message, 1, ?2) END,
                    a.input_tokens + a.cached_tokens + a.cache_write_tokens + a.cache_write_1h_tokens,
                    a.output_tokens, g.verdicts, g.error, substr(coalesce(t.vars, '{}'), 1, ?2)
                 FROM attempts a
                 LEFT JOIN grades g ON g.run_id = a.run_id AND g.suite = a.suite
                    AND g.provider = a.provider AND g.task_id = a.task_id AND g.repeat = a.repeat
                 LEFT JOIN tasks t ON t.run_id = a.run_id AND t.suite = a.suite
                    AND t.task_id = a.task_id
                 WHERE a.run_id = ?1 AND a.final = 1",
            )
            .map_err(|e| self.err(e))?;
        let limit = i64::try_from(max_chars).unwrap_or(i64::MAX);
        let mut rows = st.query((run_id, limit)).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
            let read = || -> rusqlite::Result<OutcomeDetail> {
                Ok(OutcomeDetail {
                    suite: r.get(0)?,
                    provider: r.get(1)?,
                    task_id: r.get(2)?,
                    repeat: n(3)? as u32,
                    output: r.get(4)?,
                    output_chars: n(5)?,
                    error_kind: r.get(6)?,
                    error_message: r.get(7)?,
                    prompt_tokens: n(8)?,
                    output_tokens: n(9)?,
                    verdicts: r.get(10)?,
                    grade_error: r.get(11)?,
                    vars: r.get(12)?,
                })
            };
            f(read().map_err(|e| self.err(e))?);
        }
        Ok(())
    }
}
