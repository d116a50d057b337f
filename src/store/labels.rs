//! Human labels: one verdict (and note) per outcome and rater. `costbench labels import` writes
//! them; the outcome scan folds them into every figure (a human verdict overrides the
//! automatic one), and the agreement statistics compare them with the graders' verdicts.
//!
//! Several raters may label one outcome; its human verdict is their majority, and a tie leaves
//! the automatic verdict in place ([`majority`]).

use rusqlite::{OptionalExtension, params};

use super::outcomes::GradeStatus;
use super::{Store, StoreError, now, sql};

/// One outcome of a run: (suite, provider, task id, repeat).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutcomeKey {
    /// Suite name.
    pub suite: String,
    /// Provider id.
    pub provider: String,
    /// Task id.
    pub task_id: String,
    /// Sample number.
    pub repeat: u32,
}

/// A human label to store.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    /// The labelled outcome.
    pub key: OutcomeKey,
    /// Who labelled it.
    pub rater: String,
    /// The rater's verdict.
    pub accepted: bool,
    /// The rater's note.
    pub note: Option<String>,
}

/// What storing labels changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutSummary {
    /// Labels not stored before (outcome × rater).
    pub added: u64,
    /// Labels whose verdict or note changed.
    pub changed: u64,
    /// Labels stored already, identical.
    pub unchanged: u64,
}

/// The human verdict of several raters: the majority, `None` on a tie.
pub fn majority(accepts: u32, rejects: u32) -> Option<bool> {
    match accepts.cmp(&rejects) {
        std::cmp::Ordering::Greater => Some(true),
        std::cmp::Ordering::Less => Some(false),
        std::cmp::Ordering::Equal => None,
    }
}

/// The human labels of one outcome, summed over raters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HumanVotes {
    /// The outcome.
    pub key: OutcomeKey,
    /// Raters who accepted it.
    pub accepts: u32,
    /// Raters who rejected it.
    pub rejects: u32,
}

impl HumanVotes {
    /// The majority verdict (`None` on a tie).
    pub fn verdict(&self) -> Option<bool> {
        majority(self.accepts, self.rejects)
    }
}

/// A labelled outcome with its automatic grade, for the agreement statistics.
#[derive(Debug, Clone)]
pub struct LabelledOutcome {
    /// The human votes.
    pub votes: HumanVotes,
    /// The automatic verdict, when graded.
    pub status: Option<GradeStatus>,
    /// The stored per-grader verdicts (JSON), when graded.
    pub verdicts: Option<String>,
}

/// An answered outcome that can be exported for labelling, without its texts.
#[derive(Debug, Clone)]
pub struct ExportCandidate {
    /// The outcome.
    pub key: OutcomeKey,
    /// The automatic verdict, when graded.
    pub status: Option<GradeStatus>,
}

/// The texts of an outcome to label.
#[derive(Debug, Clone)]
pub struct ExportTexts {
    /// The answer.
    pub output: String,
    /// The task's variables (JSON object text).
    pub vars: String,
    /// The stored per-grader verdicts (JSON), when graded.
    pub verdicts: Option<String>,
}

impl Store {
    /// Whether the run has an answered attempt for this outcome (only those can be labelled).
    pub fn answered_outcome(&self, run_id: i64, key: &OutcomeKey) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT 1 FROM attempts WHERE run_id = ?1 AND suite = ?2 AND provider = ?3
                 AND task_id = ?4 AND repeat = ?5 AND answered = 1 LIMIT 1",
                params![run_id, key.suite, key.provider, key.task_id, key.repeat],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| self.err(e))
    }

    /// Stores labels of a run; a rater's earlier label of the same outcome is replaced, so
    /// importing a file twice changes nothing the second time.
    pub fn put_labels(
        &mut self,
        run_id: i64,
        labels: &[LabelRow],
        source: &str,
    ) -> Result<PutSummary, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql(&path, e))?;
        let mut sum = PutSummary::default();
        {
            let mut find = tx
                .prepare(
                    "SELECT accepted, note FROM labels WHERE run_id = ?1 AND suite = ?2
                     AND provider = ?3 AND task_id = ?4 AND repeat = ?5 AND rater = ?6",
                )
                .map_err(|e| sql(&path, e))?;
            let mut put = tx
                .prepare(
                    "INSERT INTO labels (run_id, suite, provider, task_id, repeat, rater, accepted,
                        note, source, labelled_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (run_id, suite, provider, task_id, repeat, rater) DO UPDATE SET
                        accepted = excluded.accepted, note = excluded.note,
                        source = excluded.source, labelled_at = excluded.labelled_at",
                )
                .map_err(|e| sql(&path, e))?;
            let at = now();
            for l in labels {
                let k = &l.key;
                let before: Option<(bool, Option<String>)> = find
                    .query_row(
                        params![run_id, k.suite, k.provider, k.task_id, k.repeat, l.rater],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(|e| sql(&path, e))?;
                match before {
                    Some((a, n)) if a == l.accepted && n == l.note => {
                        sum.unchanged += 1;
                        continue;
                    }
                    Some(_) => sum.changed += 1,
                    None => sum.added += 1,
                }
                put.execute(params![
                    run_id, k.suite, k.provider, k.task_id, k.repeat, l.rater, l.accepted, l.note,
                    source, at
                ])
                .map_err(|e| sql(&path, e))?;
            }
        }
        tx.commit().map_err(|e| sql(&path, e))?;
        Ok(sum)
    }

    /// The human votes of every labelled outcome of a run, in the order of suite, provider,
    /// task id and repeat (the order the outcome scan walks).
    pub fn human_votes(&self, run_id: i64) -> Result<Vec<HumanVotes>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT suite, provider, task_id, repeat, sum(accepted), count(*) FROM labels
                 WHERE run_id = ?1 GROUP BY suite, provider, task_id, repeat
                 ORDER BY suite, provider, task_id, repeat",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([run_id], |r| {
                let accepts: i64 = r.get(4)?;
                let n: i64 = r.get(5)?;
                Ok(HumanVotes {
                    key: OutcomeKey {
                        suite: r.get(0)?,
                        provider: r.get(1)?,
                        task_id: r.get(2)?,
                        repeat: r.get::<_, i64>(3)? as u32,
                    },
                    accepts: accepts as u32,
                    rejects: (n - accepts) as u32,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Every labelled outcome of a run with its automatic grade.
    pub fn labelled_outcomes(&self, run_id: i64) -> Result<Vec<LabelledOutcome>, StoreError> {
        let votes = self.human_votes(run_id)?;
        let mut st = self
            .conn
            .prepare(
                "SELECT status, accepted, verdicts FROM grades WHERE run_id = ?1 AND suite = ?2
                 AND provider = ?3 AND task_id = ?4 AND repeat = ?5",
            )
            .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(votes.len());
        for v in votes {
            let k = &v.key;
            let g: Option<(Option<String>, bool, Option<String>)> = st
                .query_row(
                    params![run_id, k.suite, k.provider, k.task_id, k.repeat],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            let (status, verdicts) = match g {
                Some((s, a, verdicts)) => {
                    (Some(GradeStatus::from_columns(s.as_deref(), a)), verdicts)
                }
                None => (None, None),
            };
            out.push(LabelledOutcome {
                votes: v,
                status,
                verdicts,
            });
        }
        Ok(out)
    }

    /// Every answered outcome of a run with its automatic verdict, in the order of suite,
    /// provider, task id and repeat; texts are read later, only for the outcomes exported.
    pub fn export_candidates(&self, run_id: i64) -> Result<Vec<ExportCandidate>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT DISTINCT a.suite, a.provider, a.task_id, a.repeat, g.status, g.accepted
                 FROM attempts a LEFT JOIN grades g ON g.run_id = a.run_id AND g.suite = a.suite
                    AND g.provider = a.provider AND g.task_id = a.task_id AND g.repeat = a.repeat
                 WHERE a.run_id = ?1 AND a.answered = 1
                 ORDER BY a.suite, a.provider, a.task_id, a.repeat",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([run_id], |r| {
                let status: Option<String> = r.get(4)?;
                let accepted: Option<bool> = r.get(5)?;
                Ok(ExportCandidate {
                    key: OutcomeKey {
                        suite: r.get(0)?,
                        provider: r.get(1)?,
                        task_id: r.get(2)?,
                        repeat: r.get::<_, i64>(3)? as u32,
                    },
                    status: accepted.map(|a| GradeStatus::from_columns(status.as_deref(), a)),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The answer, task variables and per-grader verdicts of one answered outcome.
    pub fn export_texts(
        &self,
        run_id: i64,
        key: &OutcomeKey,
    ) -> Result<Option<ExportTexts>, StoreError> {
        self.conn
            .query_row(
                "SELECT coalesce(a.output, ''), coalesce(t.vars, '{}'), g.verdicts
                 FROM attempts a
                 LEFT JOIN tasks t ON t.run_id = a.run_id AND t.suite = a.suite
                    AND t.task_id = a.task_id
                 LEFT JOIN grades g ON g.run_id = a.run_id AND g.suite = a.suite
                    AND g.provider = a.provider AND g.task_id = a.task_id AND g.repeat = a.repeat
                 WHERE a.run_id = ?1 AND a.suite = ?2 AND a.provider = ?3 AND a.task_id = ?4
                    AND a.repeat = ?5 AND a.answered = 1
                 ORDER BY a.try DESC LIMIT 1",
                params![run_id, key.suite, key.provider, key.task_id, key.repeat],
                |r| {
                    Ok(ExportTexts {
                        output: r.get(0)?,
                        vars: r.get(1)?,
                        verdicts: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Calls `f(provider, verdicts)` with the stored per-grader verdicts (JSON) of every graded
    /// outcome of `suite` in a run.
    pub fn suite_verdicts(
        &self,
        run_id: i64,
        suite: &str,
        mut f: impl FnMut(&str, &str),
    ) -> Result<(), StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT provider, verdicts FROM grades WHERE run_id = ?1 AND suite = ?2")
            .map_err(|e| self.err(e))?;
        let mut rows = st.query(params![run_id, suite]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let text = |i: usize| r.get_ref(i).ok().and_then(|v| v.as_str().ok());
            if let (Some(p), Some(v)) = (text(0), text(1)) {
                f(p, v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_and_ties() {
        assert_eq!(majority(2, 1), Some(true));
        assert_eq!(majority(0, 1), Some(false));
        assert_eq!(majority(1, 1), None);
        assert_eq!(majority(0, 0), None);
    }
}
