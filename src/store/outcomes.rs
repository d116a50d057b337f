//! What the analysis and the graders read: every outcome of a run, and answers to grade.

use rusqlite::params;

use super::{Delivery, ErrorKind, Store, StoreError, money_from_columns, now, sql};
use crate::providers::{Money, Usage};

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

/// The verdict on one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradeStatus {
    /// Every grader passed.
    Accepted,
    /// Some grader failed.
    Rejected,
    /// A grader could not decide (its own failure, not the provider's): left out of acceptance.
    Error,
}

impl GradeStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            GradeStatus::Accepted => "accepted",
            GradeStatus::Rejected => "rejected",
            GradeStatus::Error => "error",
        }
    }

    /// Reads the stored name; rows written before the status existed have only `accepted`.
    fn from_columns(status: Option<&str>, accepted: bool) -> GradeStatus {
        match status {
            Some("error") => GradeStatus::Error,
            Some("accepted") => GradeStatus::Accepted,
            Some("rejected") => GradeStatus::Rejected,
            _ if accepted => GradeStatus::Accepted,
            _ => GradeStatus::Rejected,
        }
    }
}

/// A grade to store.
#[derive(Debug, Clone)]
pub struct GradeRow {
    /// The graded attempt.
    pub attempt_id: i64,
    /// The verdict.
    pub status: GradeStatus,
    /// What the grader could not do, when `status` is `Error`.
    pub error: Option<String>,
    /// Per-grader verdicts (JSON).
    pub verdicts: String,
}

/// One failed attempt, as the analysis sees it.
#[derive(Debug, Clone)]
pub struct FailedAttempt {
    /// Why it failed.
    pub kind: ErrorKind,
    /// The stored message (never a key).
    pub message: Option<String>,
}

/// Every attempt of one outcome (suite × provider × task × repeat), folded, with its grade.
#[derive(Debug, Clone)]
pub struct OutcomeRecord {
    /// Suite name.
    pub suite: String,
    /// Provider id.
    pub provider: String,
    /// Task id.
    pub task_id: String,
    /// Position of the task in its suite (the cluster index for statistics).
    pub task_idx: u32,
    /// Sample number.
    pub repeat: u32,
    /// HTTP tries (a replayed answer counts as one; attempts that made no call do not).
    pub calls: u32,
    /// Tries without an answer.
    pub failed_calls: u32,
    /// Summed usage.
    pub usage: Usage,
    /// Sum of the costs that are known.
    pub known_cost: Money,
    /// Tries whose cost is unknown.
    pub unknown_calls: u32,
    /// The most the unknown tries can have cost together; `None` when one is unboundable.
    pub unknown_max: Option<Money>,
    /// Sum of the spend that is known (0 for replayed answers).
    pub known_spent: Money,
    /// Tries whose spend is unknown (they are among `unknown_calls`).
    pub unknown_spent_calls: u32,
    /// The most the unknown spend can have been; `None` when unboundable.
    pub unknown_spent_max: Option<Money>,
    /// Whether an answer arrived.
    pub answered: bool,
    /// Latency of the answering try.
    pub latency_ms: Option<f64>,
    /// The grade, if graded.
    pub grade: Option<GradeStatus>,
    /// Failed tries, in order.
    pub failures: Vec<FailedAttempt>,
}

/// One stored attempt, before folding.
struct AttemptFacts {
    delivery: Delivery,
    kind: Option<ErrorKind>,
    message: Option<String>,
    answered: bool,
    usage: Option<Usage>,
    cost: Option<Money>,
    cost_max: Option<Money>,
    est_prompt_tokens: Option<u64>,
    spent: Option<Money>,
    latency_ms: f64,
}

/// What an attempt stored before deliveries were recorded (schema v1) must have been.
fn legacy_delivery(
    kind: Option<ErrorKind>,
    status: Option<i64>,
    answered: bool,
    cost: Option<Money>,
) -> Delivery {
    match kind {
        Some(k) if k.not_called() => Delivery::NotCalled,
        _ if answered || status.is_some_and(|s| (200..300).contains(&s)) => Delivery::Answered,
        _ if status.is_some() => Delivery::Refused,
        Some(ErrorKind::Connection) if cost == Some(Money::ZERO) => Delivery::NeverSent,
        _ => Delivery::SentUnknown,
    }
}

/// Folds the attempts of one outcome. An unknown cost is bounded by its stored bound, with the
/// prompt tokens an answered try of the same request reported in place of the byte-count
/// estimate the run made when it had no answer to read them from.
fn fold(attempts: &[AttemptFacts], prompt_rate: Option<crate::providers::Rate>) -> Folded {
    let answered_prompt = attempts
        .iter()
        .filter(|a| a.answered)
        .find_map(|a| a.usage)
        .map(|u| u.input + u.cached_input + u.cache_write + u.cache_write_1h);
    let mut f = Folded::default();
    for a in attempts {
        if a.delivery.is_call() {
            f.calls += 1;
            f.failed_calls += u32::from(!a.answered);
        }
        if let Some(u) = a.usage {
            f.usage.input += u.input;
            f.usage.cached_input += u.cached_input;
            f.usage.cache_write += u.cache_write;
            f.usage.cache_write_1h += u.cache_write_1h;
            f.usage.output += u.output;
            f.usage.reasoning += u.reasoning;
        }
        // The stored bound priced `est` prompt tokens; swap in the count the provider reported.
        let bound = match (
            a.cost_max,
            a.est_prompt_tokens,
            answered_prompt,
            prompt_rate,
        ) {
            (Some(max), Some(est), Some(real), Some(rate)) => {
                Some(Money(max.0 - rate.cost(est).0 + rate.cost(real).0))
            }
            (max, ..) => max,
        };
        match a.cost {
            Some(c) => f.known_cost = f.known_cost.plus(c),
            None => {
                f.unknown_calls += 1;
                f.unknown_max = f.unknown_max.zip(bound).map(|(x, y)| x.plus(y));
            }
        }
        match a.spent {
            Some(c) => f.known_spent = f.known_spent.plus(c),
            None => {
                f.unknown_spent_calls += 1;
                f.unknown_spent_max = f.unknown_spent_max.zip(bound).map(|(x, y)| x.plus(y));
            }
        }
        if a.answered {
            f.answered = true;
            f.latency_ms = Some(a.latency_ms);
        }
    }
    f
}

/// The folded attempts of one outcome.
struct Folded {
    calls: u32,
    failed_calls: u32,
    usage: Usage,
    known_cost: Money,
    unknown_calls: u32,
    unknown_max: Option<Money>,
    known_spent: Money,
    unknown_spent_calls: u32,
    unknown_spent_max: Option<Money>,
    answered: bool,
    latency_ms: Option<f64>,
}

impl Default for Folded {
    /// Nothing unknown yet, so the bound of the unknown part is a known zero.
    fn default() -> Self {
        Folded {
            calls: 0,
            failed_calls: 0,
            usage: Usage::default(),
            known_cost: Money::ZERO,
            unknown_calls: 0,
            unknown_max: Some(Money::ZERO),
            known_spent: Money::ZERO,
            unknown_spent_calls: 0,
            unknown_spent_max: Some(Money::ZERO),
            answered: false,
            latency_ms: None,
        }
    }
}

impl Store {
    /// Calls `f` with every attempted outcome of a run, its attempts folded, in the order of
    /// suite, provider, task id and repeat. Rows stream from SQLite along the attempts index,
    /// so neither SQLite nor this loop holds more than one outcome at a time.
    ///
    /// `prompt_rate` gives each provider's dearest prompt-token rate, with which unknown-cost
    /// bounds take the prompt size an answer reported.
    pub fn for_each_outcome(
        &self,
        run_id: i64,
        prompt_rate: &dyn Fn(&str) -> Option<crate::providers::Rate>,
        mut f: impl FnMut(OutcomeRecord),
    ) -> Result<(), StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT a.suite, a.provider, a.task_id, a.repeat, a.delivery, a.error_kind,
                    a.error_message, a.answered, a.http_status, a.usage_known, a.input_tokens,
                    a.cached_tokens, a.cache_write_tokens, a.cache_write_1h_tokens,
                    a.output_tokens, a.reasoning_tokens, a.cost_femto, a.cost_big, a.spent_femto,
                    a.spent_big, a.cost_max_femto, a.est_prompt_tokens, a.latency_ms,
                    t.idx, g.status, g.accepted
                 FROM attempts a
                 LEFT JOIN tasks t ON t.run_id = a.run_id AND t.suite = a.suite AND t.task_id = a.task_id
                 LEFT JOIN grades g ON g.run_id = a.run_id AND g.suite = a.suite
                    AND g.provider = a.provider AND g.task_id = a.task_id AND g.repeat = a.repeat
                 WHERE a.run_id = ?1
                 ORDER BY a.suite, a.provider, a.task_id, a.repeat, a.try",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([run_id]).map_err(|e| self.err(e))?;
        let mut current: Option<OutcomeRecord> = None;
        let mut attempts: Vec<AttemptFacts> = Vec::new();
        let flush = |rec: Option<OutcomeRecord>,
                     attempts: &mut Vec<AttemptFacts>,
                     f: &mut dyn FnMut(OutcomeRecord)| {
            if let Some(mut rec) = rec {
                let fo = fold(attempts, prompt_rate(&rec.provider));
                rec.failures = attempts
                    .drain(..)
                    .filter(|a| {
                        !a.answered && a.delivery.is_call()
                            || a.kind.is_some_and(ErrorKind::not_called)
                    })
                    .filter_map(|a| {
                        a.kind.map(|kind| FailedAttempt {
                            kind,
                            message: a.message,
                        })
                    })
                    .collect();
                rec.calls = fo.calls;
                rec.failed_calls = fo.failed_calls;
                rec.usage = fo.usage;
                rec.known_cost = fo.known_cost;
                rec.unknown_calls = fo.unknown_calls;
                rec.unknown_max = fo.unknown_max;
                rec.known_spent = fo.known_spent;
                rec.unknown_spent_calls = fo.unknown_spent_calls;
                rec.unknown_spent_max = fo.unknown_spent_max;
                rec.answered = fo.answered;
                rec.latency_ms = fo.latency_ms;
                f(rec);
            }
        };
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let read = || -> rusqlite::Result<(bool, AttemptFacts)> {
                let same = current.as_ref().is_some_and(|c| {
                    r.get_ref(0).ok().and_then(|v| v.as_str().ok()) == Some(c.suite.as_str())
                        && r.get_ref(1).ok().and_then(|v| v.as_str().ok())
                            == Some(c.provider.as_str())
                        && r.get_ref(2).ok().and_then(|v| v.as_str().ok())
                            == Some(c.task_id.as_str())
                        && r.get::<_, i64>(3).ok() == Some(i64::from(c.repeat))
                });
                let kind = r
                    .get_ref(5)?
                    .as_str_or_null()
                    .map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            5,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?
                    .and_then(ErrorKind::parse);
                let answered: bool = r.get(7)?;
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                let usage = r
                    .get::<_, bool>(9)?
                    .then(|| -> rusqlite::Result<Usage> {
                        Ok(Usage {
                            input: n(10)?,
                            cached_input: n(11)?,
                            cache_write: n(12)?,
                            cache_write_1h: n(13)?,
                            output: n(14)?,
                            reasoning: n(15)?,
                        })
                    })
                    .transpose()?;
                let text = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
                let cost = money_from_columns(r.get(16)?, text(17)?.as_deref());
                let delivery = match text(4)?.as_deref().and_then(Delivery::parse) {
                    Some(d) => d,
                    None => legacy_delivery(kind, r.get(8)?, answered, cost),
                };
                Ok((
                    same,
                    AttemptFacts {
                        delivery,
                        kind,
                        message: if answered { None } else { text(6)? },
                        answered,
                        usage,
                        cost,
                        cost_max: text(20)?.and_then(|t| t.parse().ok()).map(Money),
                        est_prompt_tokens: r.get::<_, Option<i64>>(21)?.map(|v| v.max(0) as u64),
                        spent: money_from_columns(r.get(18)?, text(19)?.as_deref()),
                        latency_ms: r.get(22)?,
                    },
                ))
            };
            let (same, facts) = read().map_err(|e| self.err(e))?;
            if !same {
                flush(current.take(), &mut attempts, &mut f);
                current = Some(
                    (|| -> rusqlite::Result<OutcomeRecord> {
                        let status: Option<String> = r.get(24)?;
                        let accepted: Option<bool> = r.get(25)?;
                        Ok(OutcomeRecord {
                            suite: r.get(0)?,
                            provider: r.get(1)?,
                            task_id: r.get(2)?,
                            repeat: r.get::<_, i64>(3)? as u32,
                            task_idx: r.get::<_, Option<i64>>(23)?.unwrap_or(0) as u32,
                            grade: accepted
                                .map(|a| GradeStatus::from_columns(status.as_deref(), a)),
                            calls: 0,
                            failed_calls: 0,
                            usage: Usage::default(),
                            known_cost: Money::ZERO,
                            unknown_calls: 0,
                            unknown_max: None,
                            known_spent: Money::ZERO,
                            unknown_spent_calls: 0,
                            unknown_spent_max: None,
                            answered: false,
                            latency_ms: None,
                            failures: Vec::new(),
                        })
                    })()
                    .map_err(|e| self.err(e))?,
                );
            }
            attempts.push(facts);
        }
        flush(current.take(), &mut attempts, &mut f);
        Ok(())
    }
}

impl Store {
    /// Task ids of every suite of a run, by task position.
    pub fn task_ids(
        &self,
        run_id: i64,
    ) -> Result<std::collections::HashMap<String, Vec<String>>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT suite, idx, task_id FROM tasks WHERE run_id = ?1")
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([run_id]).map_err(|e| self.err(e))?;
        let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let read = || -> rusqlite::Result<(String, usize, String)> {
                Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as usize, r.get(2)?))
            };
            let (suite, idx, id) = read().map_err(|e| self.err(e))?;
            let ids = out.entry(suite).or_default();
            if ids.len() <= idx {
                ids.resize(idx + 1, String::new());
            }
            ids[idx] = id;
        }
        Ok(out)
    }

    /// The first and last attempt id of a run (`None` when it has no attempt), the range
    /// [`Store::answers`] pages through. One pass over the run's part of the attempts index.
    pub fn attempt_ids(&self, run_id: i64) -> Result<Option<(i64, i64)>, StoreError> {
        self.conn
            .query_row(
                "SELECT min(id), max(id) FROM attempts WHERE run_id = ?1",
                [run_id],
                |r| Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?)),
            )
            .map_err(|e| self.err(e))
    }

    /// Answers of a run with ids in `after_id < id <= last_id` (at most `limit`, by id), all
    /// or only those without a grade.
    ///
    /// The page walks the attempts' primary key from `after_id` and stops after `limit` rows,
    /// so each page costs its own size; `+a.run_id` keeps SQLite from choosing the run's
    /// index instead, which would read and sort every attempt of the run for every page
    /// (quadratic in the run's size).
    pub fn answers(
        &self,
        run_id: i64,
        only_ungraded: bool,
        (after_id, last_id): (i64, i64),
        limit: usize,
    ) -> Result<Vec<Ungraded>, StoreError> {
        let q = format!(
            "SELECT a.id, a.suite, a.provider, a.task_id, a.repeat, coalesce(a.output, ''),
                coalesce(t.vars, '{{}}')
             FROM attempts a
             LEFT JOIN tasks t ON t.run_id = a.run_id AND t.suite = a.suite AND t.task_id = a.task_id
             WHERE a.id > ?2 AND a.id <= ?4 AND +a.run_id = ?1 AND a.answered = 1 {}
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
            .query_map(params![run_id, after_id, limit as i64, last_id], |r| {
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
                     (run_id, suite, provider, task_id, repeat, attempt_id, accepted, verdicts,
                      graded_at, status, error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
                    g.status == GradeStatus::Accepted,
                    g.verdicts,
                    at,
                    g.status.as_str(),
                    g.error,
                ])
                .map_err(|e| sql(&path, e))?;
            }
        }
        tx.commit().map_err(|e| sql(&path, e))
    }
}
