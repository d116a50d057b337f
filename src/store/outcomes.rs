//! What the analysis and the graders read: every outcome of a run, and answers to grade.

use std::collections::HashMap;

use rusqlite::params;

use super::{Delivery, ErrorKind, Store, StoreError, money_from_columns, now, sql};
use crate::providers::{Money, Tally, Usage};

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
    pub(crate) fn from_columns(status: Option<&str>, accepted: bool) -> GradeStatus {
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
    /// What the suite's LLM judges cost for this grade: known femto-dollars and how many judge
    /// calls had an unknown cost; `None` when the suite has no judge.
    pub judge_cost: Option<(Money, u64)>,
    /// Fingerprint of the grader set that gave the verdicts (see [`super::judge`]).
    pub grader_set: Option<String>,
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
    /// Token cost of the tries: known, and unknown with bounds.
    pub cost: Tally,
    /// What this run spent on them (0 for replayed answers), known and bounded.
    pub spent: Tally,
    /// Whether an answer arrived.
    pub answered: bool,
    /// Latency of the answering try.
    pub latency_ms: Option<f64>,
    /// Time to first token of the answering try, when it was streamed.
    pub ttft_ms: Option<f64>,
    /// The grade, if graded.
    pub grade: Option<GradeStatus>,
    /// The human raters' majority verdict, when humans labelled it (it overrides `grade` in
    /// every figure; see `store::labels`).
    pub human: Option<bool>,
    /// What its grade's LLM-judge calls cost; `None` when its grade had no judge.
    pub judge_cost: Option<Tally>,
    /// Fingerprint of the grader set that gave the grade, when stored with one.
    pub grader_set: Option<String>,
    /// Failed tries, in order.
    pub failures: Vec<FailedAttempt>,
}

/// What an attempt's cost rests on, which a re-pricing may replace before folding.
#[derive(Debug, Clone, Copy)]
pub struct AttemptCost {
    /// Token usage, when the provider reported it.
    pub usage: Option<Usage>,
    /// Its cost; `None` when unknown.
    pub cost: Option<Money>,
    /// The most it can have cost, when its cost is unknown; `None` when unboundable.
    pub cost_max: Option<Money>,
    /// The byte-count prompt estimate the bound was made with.
    pub est_prompt_tokens: Option<u64>,
}

/// Re-prices one attempt of (suite, provider) in place (see `costbench reprice`); `Sync`, as
/// the parts of a run are read on several threads.
pub type Reprice<'a> = dyn Fn(&str, &str, &mut AttemptCost) + Sync + 'a;

/// A provider's dearest prompt-token rate, by provider id (see [`Store::for_each_outcome`]).
pub type PromptRate<'a> = dyn Fn(&str) -> Option<crate::providers::Rate> + Sync + 'a;

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
    ttft_ms: Option<f64>,
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
fn fold(
    attempts: &[AttemptFacts],
    prompt_rate: Option<crate::providers::Rate>,
    rec: &mut OutcomeRecord,
) {
    let answered_prompt = attempts
        .iter()
        .filter(|a| a.answered)
        .find_map(|a| a.usage)
        .map(|u| u.input + u.cached_input + u.cache_write + u.cache_write_1h);
    for a in attempts {
        if a.delivery.is_call() {
            rec.calls += 1;
            rec.failed_calls += u32::from(!a.answered);
        }
        if let Some(u) = a.usage {
            rec.usage.input += u.input;
            rec.usage.cached_input += u.cached_input;
            rec.usage.cache_write += u.cache_write;
            rec.usage.cache_write_1h += u.cache_write_1h;
            rec.usage.output += u.output;
            rec.usage.reasoning += u.reasoning;
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
        rec.cost.add(a.cost, bound);
        rec.spent.add(a.spent, bound);
        if a.answered {
            rec.answered = true;
            rec.latency_ms = Some(a.latency_ms);
            rec.ttft_ms = a.ttft_ms;
        }
    }
}

/// One part of a run's outcomes, which a scan reads on its own (on its own connection, in
/// parallel with the others): a suite and provider, and a range of task ids in byte order
/// (`from <= task_id < to`; `None` leaves that end open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomePart {
    /// Suite name.
    pub suite: String,
    /// Provider id.
    pub provider: String,
    /// The first task id of the part (inclusive).
    pub from: Option<String>,
    /// The task id after the part (exclusive).
    pub to: Option<String>,
}

/// What every part of a run's outcome scan reads alike, read once for all of them: the task
/// positions and the human votes. Shared by reference between the parts' threads.
pub struct OutcomeIndex {
    run_id: i64,
    tasks: HashMap<String, PackedIds>,
    /// Sorted as the outcomes are (suite, provider, task id, repeat).
    humans: Vec<super::labels::HumanVotes>,
}

impl OutcomeIndex {
    /// `suite` × `provider` cut into at most `n` parts of about as many tasks each (one part
    /// when the run lists no task of the suite), in task id order; together they cover every
    /// attempt of the pair, those of tasks missing from the task list included.
    pub fn split(&self, suite: &str, provider: &str, n: usize) -> Vec<OutcomePart> {
        let ids = self.tasks.get(suite);
        let len = ids.map_or(0, PackedIds::len);
        let n = n.clamp(1, len.max(1));
        // Part k starts at the (k · len / n)-th id; the first starts open, so ids before the
        // first listed one are read too, as the last part reads those after the last.
        let bound = |k: usize| {
            ids.filter(|_| k > 0 && k < n)
                .map(|ids| ids.id(k * len / n).to_string())
        };
        (0..n)
            .map(|k| OutcomePart {
                suite: suite.to_string(),
                provider: provider.to_string(),
                from: bound(k),
                to: bound(k + 1),
            })
            .collect()
    }
}

impl Store {
    /// Reads what every part of a run's outcome scan shares (see [`Store::for_each_outcome`]).
    pub fn outcome_index(&self, run_id: i64) -> Result<OutcomeIndex, StoreError> {
        Ok(OutcomeIndex {
            run_id,
            tasks: Positions::load(self, run_id)?,
            humans: self.human_votes(run_id)?,
        })
    }

    /// Calls `f` with every attempted outcome of one part of a run, its attempts folded, in
    /// the order of task id and repeat.
    ///
    /// Attempts stream along the attempts index and grades along their primary key, both in
    /// that order, and are merged here; task positions come from `index`, read once for every
    /// part. Joining them in SQL instead cost two B-tree searches per attempt, most of a
    /// report's time on a million outcomes. Only one outcome's attempts are held at a time.
    ///
    /// `prompt_rate` gives each provider's dearest prompt-token rate, with which unknown-cost
    /// bounds take the prompt size an answer reported; `reprice`, when given, replaces each
    /// attempt's cost first (the stored rows are not changed).
    pub fn for_each_outcome(
        &self,
        index: &OutcomeIndex,
        part: &OutcomePart,
        prompt_rate: &PromptRate<'_>,
        reprice: Option<&Reprice<'_>>,
        mut f: impl FnMut(OutcomeRecord),
    ) -> Result<(), StoreError> {
        self.scan_outcomes(index, part, prompt_rate, reprice, None, |rec, _| f(rec))
    }

    /// As [`Store::for_each_outcome`], with every outcome folded twice in one read: `f` gets
    /// the record as stored and its token cost and spend with `reprice` applied to each attempt
    /// (unknown costs bounded with `prompt_rate_after`). One scan instead of two: the scan is
    /// most of the time of `costbench reprice`.
    pub fn for_each_outcome_repriced(
        &self,
        index: &OutcomeIndex,
        part: &OutcomePart,
        prompt_rate: &PromptRate<'_>,
        prompt_rate_after: &PromptRate<'_>,
        reprice: &Reprice<'_>,
        mut f: impl FnMut(OutcomeRecord, Repriced),
    ) -> Result<(), StoreError> {
        self.scan_outcomes(
            index,
            part,
            prompt_rate,
            None,
            Some((prompt_rate_after, reprice)),
            |rec, after| {
                if let Some(after) = after {
                    f(rec, after)
                }
            },
        )
    }

    fn scan_outcomes(
        &self,
        index: &OutcomeIndex,
        part: &OutcomePart,
        prompt_rate: &PromptRate<'_>,
        reprice: Option<&Reprice<'_>>,
        twice: Option<Twice<'_>>,
        mut f: impl FnMut(OutcomeRecord, Option<Repriced>),
    ) -> Result<(), StoreError> {
        let mut positions = Positions::new(&index.tasks);
        let ([attempts_q, grades_q], args) = part_queries(&index.run_id, part);
        let mut attempts_st = self.conn.prepare(&attempts_q).map_err(|e| self.err(e))?;
        let mut grades_st = self.conn.prepare(&grades_q).map_err(|e| self.err(e))?;
        let mut rows = attempts_st.query(&*args).map_err(|e| self.err(e))?;
        let mut grades = grades_st.query(&*args).map_err(|e| self.err(e))?;
        let mut next_grade =
            read_grade(grades.next().map_err(|e| self.err(e))?).map_err(|e| self.err(e))?;
        // Human labels are few and sorted as the outcomes: a cursor walks them alongside,
        // from the first of the part.
        let humans = &index.humans;
        let first = (
            part.suite.as_str(),
            part.provider.as_str(),
            part.from.as_deref().unwrap_or(""),
        );
        let mut next_human = humans.partition_point(|h| {
            (
                h.key.suite.as_str(),
                h.key.provider.as_str(),
                h.key.task_id.as_str(),
            ) < first
        });

        let mut current: Option<OutcomeRecord> = None;
        let mut attempts: Vec<AttemptFacts> = Vec::new();
        loop {
            let row = rows.next().map_err(|e| self.err(e))?;
            let same = match (&row, &current) {
                (Some(r), Some(c)) => same_outcome(r, c),
                _ => false,
            };
            if !same && let Some(mut rec) = current.take() {
                // Grades arrive in the same order: skip those of outcomes without attempts.
                while next_grade.as_ref().is_some_and(|g| g.key(&rec).is_lt()) {
                    next_grade = read_grade(grades.next().map_err(|e| self.err(e))?)
                        .map_err(|e| self.err(e))?;
                }
                if let Some(g) = next_grade.as_mut().filter(|g| g.key(&rec).is_eq()) {
                    rec.grade = Some(g.status);
                    rec.judge_cost = g.judge_cost;
                    rec.grader_set = g.grader_set.take();
                }
                while humans
                    .get(next_human)
                    .is_some_and(|h| human_order(&h.key, &rec).is_lt())
                {
                    next_human += 1;
                }
                if let Some(h) = humans
                    .get(next_human)
                    .filter(|h| human_order(&h.key, &rec).is_eq())
                {
                    rec.human = h.verdict();
                }
                fold(&attempts, prompt_rate(&rec.provider), &mut rec);
                let after = twice.map(|(rate_after, reprice)| {
                    repriced(&rec, &mut attempts, rate_after(&rec.provider), reprice)
                });
                keep_failures(&mut rec, &mut attempts);
                f(rec, after);
            }
            let Some(r) = row else { break };
            if !same {
                current = Some(new_outcome(r, part, &mut positions).map_err(|e| self.err(e))?);
            }
            let mut attempt = read_attempt(r).map_err(|e| self.err(e))?;
            if let (Some(reprice), Some(c)) = (reprice, current.as_ref()) {
                attempt.reprice(reprice, &c.suite, &c.provider);
            }
            attempts.push(attempt);
        }
        Ok(())
    }
}

/// The queries of a part's attempts and grades, in the scan's order, and their arguments:
/// each reads the part's own range of its index, in order, without a sort.
fn part_queries<'a>(
    run_id: &'a i64,
    part: &'a OutcomePart,
) -> ([String; 2], Vec<&'a dyn rusqlite::ToSql>) {
    let mut filter = String::from("run_id = ?1 AND suite = ?2 AND provider = ?3");
    let mut args: Vec<&dyn rusqlite::ToSql> = vec![run_id, &part.suite, &part.provider];
    for (op, id) in [(">=", &part.from), ("<", &part.to)] {
        if let Some(id) = id {
            args.push(id);
            filter.push_str(&format!(" AND task_id {op} ?{}", args.len()));
        }
    }
    // Suite and provider are the part's, not read again for every row.
    let attempts = format!(
        "SELECT task_id, repeat, delivery, error_kind, error_message,
            answered, http_status, usage_known, input_tokens, cached_tokens,
            cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens,
            cost_femto, cost_big, spent_femto, spent_big, cost_max_femto,
            est_prompt_tokens, latency_ms, ttft_ms
         FROM attempts WHERE {filter}
         ORDER BY suite, provider, task_id, repeat, try"
    );
    let grades = format!(
        "SELECT task_id, repeat, status, accepted, judge_cost, judge_unknown, grader_set
         FROM grades
         WHERE {filter} ORDER BY suite, provider, task_id, repeat"
    );
    ([attempts, grades], args)
}

/// A stored grade and the outcome it belongs to.
struct GradeKey {
    task_id: String,
    repeat: u32,
    status: GradeStatus,
    judge_cost: Option<Tally>,
    grader_set: Option<String>,
}

impl GradeKey {
    /// How this grade's outcome orders against `rec`, of the same part (SQLite's BINARY order
    /// is byte order).
    fn key(&self, rec: &OutcomeRecord) -> std::cmp::Ordering {
        (self.task_id.as_str(), self.repeat).cmp(&(rec.task_id.as_str(), rec.repeat))
    }
}

fn read_grade(r: Option<&rusqlite::Row<'_>>) -> rusqlite::Result<Option<GradeKey>> {
    let Some(r) = r else { return Ok(None) };
    let status: Option<String> = r.get(2)?;
    Ok(Some(GradeKey {
        task_id: r.get(0)?,
        repeat: r.get::<_, i64>(1)? as u32,
        status: GradeStatus::from_columns(status.as_deref(), r.get(3)?),
        judge_cost: judge_tally(r.get(4)?, r.get(5)?),
        grader_set: r.get(6)?,
    }))
}

/// How a labelled outcome orders against `rec` (the scan's order).
fn human_order(k: &super::labels::OutcomeKey, rec: &OutcomeRecord) -> std::cmp::Ordering {
    (
        k.suite.as_str(),
        k.provider.as_str(),
        k.task_id.as_str(),
        k.repeat,
    )
        .cmp(&(
            rec.suite.as_str(),
            rec.provider.as_str(),
            rec.task_id.as_str(),
            rec.repeat,
        ))
}

/// A grade's stored judge cost as a tally: the known part, and each judge call of unknown
/// cost as an unknown amount without a bound (never 0).
fn judge_tally(known: Option<String>, unknown: Option<i64>) -> Option<Tally> {
    let known = known?;
    let unknown = unknown.unwrap_or(0).max(0) as u64;
    Some(Tally {
        known: Money(known.parse::<i128>().unwrap_or(0)),
        unknown,
        unbounded: unknown,
        bound: Money::ZERO,
    })
}

/// Whether an attempt row belongs to the outcome being folded (of the same part), compared
/// without allocating.
fn same_outcome(r: &rusqlite::Row<'_>, c: &OutcomeRecord) -> bool {
    r.get_ref(0).ok().and_then(|v| v.as_str().ok()) == Some(c.task_id.as_str())
        && r.get::<_, i64>(1).ok() == Some(i64::from(c.repeat))
}

/// Task positions by task id. Attempts arrive sorted by task id within each suite and
/// provider, so a cursor over the ids in that order finds each one without hashing.
///
/// The ids of a suite are packed in one string (read in id order from the tasks' primary key,
/// so nothing is sorted or held twice): at 100,000 tasks 1.8 MB, where a `String` per id and
/// the map of id lists they were read into took over 6 MB of the report's peak. The packed ids
/// are read once for a run and shared by the parts of its scan, each with its own cursor.
struct Positions<'a> {
    by_suite: &'a HashMap<String, PackedIds>,
    /// The suite and provider the cursor walks, and where it is.
    cursor: Option<(String, String, usize)>,
}

/// The task ids of one suite in byte order, packed, with their positions.
#[derive(Default)]
struct PackedIds {
    text: String,
    /// Where each id ends in `text`.
    ends: Vec<usize>,
    positions: Vec<u32>,
}

impl PackedIds {
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Without the room growing left unused.
    fn shrunk(mut self) -> PackedIds {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.positions.shrink_to_fit();
        self
    }

    fn id(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

impl<'a> Positions<'a> {
    fn new(by_suite: &'a HashMap<String, PackedIds>) -> Positions<'a> {
        Positions {
            by_suite,
            cursor: None,
        }
    }

    /// The task ids of every suite of a run, packed.
    fn load(store: &Store, run_id: i64) -> Result<HashMap<String, PackedIds>, StoreError> {
        // SQLite's BINARY order, that of the primary key, is byte order: the order in which
        // attempts arrive and `of` compares.
        let mut st = store
            .conn
            .prepare(
                "SELECT suite, task_id, idx FROM tasks WHERE run_id = ?1 ORDER BY suite, task_id",
            )
            .map_err(|e| store.err(e))?;
        let mut rows = st.query([run_id]).map_err(|e| store.err(e))?;
        let mut by_suite: HashMap<String, PackedIds> = HashMap::new();
        let mut current: Option<(String, PackedIds)> = None;
        while let Some(r) = rows.next().map_err(|e| store.err(e))? {
            let text = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_str()?));
            let (suite, id) = (
                text(0).map_err(|e| store.err(e))?,
                text(1).map_err(|e| store.err(e))?,
            );
            let idx = r.get::<_, i64>(2).map_err(|e| store.err(e))?.max(0) as u32;
            if current.as_ref().is_none_or(|(s, _)| s != suite) {
                if let Some((s, ids)) = current.take() {
                    by_suite.insert(s, ids.shrunk());
                }
                current = Some((suite.to_string(), PackedIds::default()));
            }
            if let Some((_, ids)) = current.as_mut() {
                ids.text.push_str(id);
                ids.ends.push(ids.text.len());
                ids.positions.push(idx);
            }
        }
        if let Some((s, ids)) = current {
            by_suite.insert(s, ids.shrunk());
        }
        Ok(by_suite)
    }

    /// The position of `task_id` in `suite` (0 when the task list lacks it).
    fn of(&mut self, suite: &str, provider: &str, task_id: &str) -> u32 {
        let Some(ids) = self.by_suite.get(suite) else {
            return 0;
        };
        let start = match &self.cursor {
            Some((s, p, i)) if s == suite && p == provider => *i,
            _ => {
                self.cursor = Some((suite.to_string(), provider.to_string(), 0));
                0
            }
        };
        // Walk forward a few steps (the usual case: the next task), else search.
        let mut i = start;
        while i < ids.len() && i < start + 4 && ids.id(i) < task_id {
            i += 1;
        }
        if i < ids.len() && ids.id(i) < task_id {
            let (mut lo, mut hi) = (i, ids.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if ids.id(mid) < task_id {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            i = lo;
        }
        if let Some(c) = self.cursor.as_mut() {
            c.2 = i;
        }
        if i < ids.len() && ids.id(i) == task_id {
            ids.positions[i]
        } else {
            0
        }
    }
}

/// A new outcome from its first attempt row; its figures are filled by [`finish`].
fn new_outcome(
    r: &rusqlite::Row<'_>,
    part: &OutcomePart,
    positions: &mut Positions<'_>,
) -> rusqlite::Result<OutcomeRecord> {
    let task_id: String = r.get(0)?;
    let task_idx = positions.of(&part.suite, &part.provider, &task_id);
    Ok(OutcomeRecord {
        provider: part.provider.clone(),
        repeat: r.get::<_, i64>(1)? as u32,
        suite: part.suite.clone(),
        task_id,
        task_idx,
        grade: None,
        human: None,
        judge_cost: None,
        grader_set: None,
        calls: 0,
        failed_calls: 0,
        usage: Usage::default(),
        cost: Tally::default(),
        spent: Tally::default(),
        answered: false,
        latency_ms: None,
        ttft_ms: None,
        failures: Vec::new(),
    })
}

impl AttemptFacts {
    /// Lets `reprice` replace what this attempt's cost rests on.
    fn reprice(&mut self, reprice: &Reprice<'_>, suite: &str, provider: &str) {
        let mut c = AttemptCost {
            usage: self.usage,
            cost: self.cost,
            cost_max: self.cost_max,
            est_prompt_tokens: self.est_prompt_tokens,
        };
        reprice(suite, provider, &mut c);
        self.usage = c.usage;
        self.cost = c.cost;
        self.cost_max = c.cost_max;
        self.est_prompt_tokens = c.est_prompt_tokens;
    }
}

/// One attempt row, as [`part_queries`] selects it.
fn read_attempt(r: &rusqlite::Row<'_>) -> rusqlite::Result<AttemptFacts> {
    let text = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
    let kind = text(3)?.as_deref().and_then(ErrorKind::parse);
    let answered: bool = r.get(5)?;
    let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
    let usage = if r.get::<_, bool>(7)? {
        Some(Usage {
            input: n(8)?,
            cached_input: n(9)?,
            cache_write: n(10)?,
            cache_write_1h: n(11)?,
            output: n(12)?,
            reasoning: n(13)?,
        })
    } else {
        None
    };
    let cost = money_from_columns(r.get(14)?, text(15)?.as_deref());
    let delivery = match text(2)?.as_deref().and_then(Delivery::parse) {
        Some(d) => d,
        None => legacy_delivery(kind, r.get(6)?, answered, cost),
    };
    Ok(AttemptFacts {
        delivery,
        kind,
        message: if answered { None } else { text(4)? },
        answered,
        usage,
        cost,
        cost_max: text(18)?.and_then(|t| t.parse().ok()).map(Money),
        est_prompt_tokens: r.get::<_, Option<i64>>(19)?.map(|v| v.max(0) as u64),
        spent: money_from_columns(r.get(16)?, text(17)?.as_deref()),
        latency_ms: r.get(20)?,
        ttft_ms: r.get(21)?,
    })
}

/// The second pricing of [`Store::for_each_outcome_repriced`]: prompt rates and the re-pricing.
type Twice<'a> = (&'a PromptRate<'a>, &'a Reprice<'a>);

/// An outcome's token cost and spend under other prices.
#[derive(Debug, Clone, Copy, Default)]
pub struct Repriced {
    /// Token cost: known, and unknown with bounds.
    pub cost: Tally,
    /// What the run spent: known, and unknown with bounds at the new prices.
    pub spent: Tally,
}

/// Folds an outcome's attempts as re-priced by `reprice`, without changing `rec`. The attempts
/// are re-priced in place: call it after folding them as stored.
fn repriced(
    rec: &OutcomeRecord,
    attempts: &mut [AttemptFacts],
    prompt_rate: Option<crate::providers::Rate>,
    reprice: &Reprice<'_>,
) -> Repriced {
    for a in attempts.iter_mut() {
        a.reprice(reprice, &rec.suite, &rec.provider);
    }
    let mut scratch = OutcomeRecord {
        suite: String::new(),
        provider: String::new(),
        task_id: String::new(),
        failures: Vec::new(),
        grader_set: None,
        ..*rec
    };
    scratch.cost = Tally::default();
    scratch.spent = Tally::default();
    fold(attempts, prompt_rate, &mut scratch);
    Repriced {
        cost: scratch.cost,
        spent: scratch.spent,
    }
}

/// Keeps an outcome's failed attempts (once folded) and empties `attempts` for the next.
fn keep_failures(rec: &mut OutcomeRecord, attempts: &mut Vec<AttemptFacts>) {
    rec.failures = attempts
        .drain(..)
        .filter(|a| {
            !a.answered && a.delivery.is_call() || a.kind.is_some_and(ErrorKind::not_called)
        })
        .filter_map(|a| {
            a.kind.map(|kind| FailedAttempt {
                kind,
                message: a.message,
            })
        })
        .collect();
}

/// The part of a stored per-grader verdict that the runtime checks read.
#[derive(serde::Deserialize)]
struct StoredVerdict {
    passed: bool,
}

impl Store {
    /// Calls `f(provider, task id, repeat, passed)` for every graded outcome of `suite` in a run,
    /// where `passed` says whether every grader at `positions` (of the grade's stored
    /// `verdicts`) passed; a missing or unreadable verdict counts as not passed.
    pub fn runtime_checks(
        &self,
        run_id: i64,
        suite: &str,
        positions: &[usize],
        mut f: impl FnMut(&str, &str, u32, bool),
    ) -> Result<(), StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT provider, task_id, repeat, verdicts FROM grades
                 WHERE run_id = ?1 AND suite = ?2",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query(params![run_id, suite]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let read = || -> rusqlite::Result<(String, String, u32, Option<String>)> {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u32, r.get(3)?))
            };
            let (provider, task, repeat, verdicts) = read().map_err(|e| self.err(e))?;
            let verdicts: Vec<StoredVerdict> = verdicts
                .and_then(|v| serde_json::from_str(&v).ok())
                .unwrap_or_default();
            let passed = positions
                .iter()
                .all(|&i| verdicts.get(i).is_some_and(|v| v.passed));
            f(&provider, &task, repeat, passed);
        }
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
                      graded_at, status, error, judge_cost, judge_unknown, grader_set)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
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
                    g.judge_cost.map(|(m, _)| m.0.to_string()),
                    g.judge_cost.map(|(_, n)| n as i64),
                    g.grader_set,
                ])
                .map_err(|e| sql(&path, e))?;
            }
        }
        tx.commit().map_err(|e| sql(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A part reads its range of the attempts index and of the grades' primary key in the
    // scan's order: a sort would read and hold the whole part first.
    #[test]
    fn a_part_reads_its_range_of_both_indexes_without_a_sort() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let id = |s: &str| Some(s.to_string());
        for (from, to) in [
            (None, None),
            (id("t1"), None),
            (None, id("t5")),
            (id("t1"), id("t5")),
        ] {
            let part = OutcomePart {
                suite: "s".into(),
                provider: "p".into(),
                from,
                to,
            };
            let (queries, args) = part_queries(&1, &part);
            for q in queries {
                let mut st = store
                    .conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {q}"))
                    .unwrap();
                let plan: Vec<String> = st
                    .query_map(&*args, |r| r.get(3))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let plan = plan.join("; ");
                assert!(plan.contains("USING INDEX"), "{plan}");
                assert!(!plan.contains("TEMP B-TREE"), "{plan}");
                let range = [
                    (part.from.is_some(), "task_id>?"),
                    (part.to.is_some(), "task_id<?"),
                ];
                for (bounded, term) in range {
                    assert_eq!(plan.contains(term), bounded, "{plan}");
                }
            }
        }
    }

    #[test]
    fn task_positions_are_found_in_byte_order_and_a_missing_id_is_position_zero() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let plan: super::super::RunPlan = serde_json::from_value(serde_json::json!({
            "suites": [], "providers": []
        }))
        .unwrap();
        let ids = ["zz", "t2", "t10", "t1", "b", "é", "t0"];
        let tasks = ids
            .iter()
            .enumerate()
            .map(|(i, id)| ("s", i, *id, "{}"))
            .chain([("other", 5, "t1", "{}")]);
        let run = store.create_run("k", "off", &plan, tasks).unwrap();
        let ids_by_suite = Positions::load(&store, run).unwrap();
        let mut p = Positions::new(&ids_by_suite);
        let position = |id: &str| ids.iter().position(|x| *x == id).unwrap() as u32;
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        // As attempts arrive: in byte order ("é" after "zz"), the cursor walking forward.
        for id in &sorted {
            assert_eq!(p.of("s", "p", id), position(id), "{id}");
        }
        // Another provider starts over; a jump far ahead searches; a missing id is 0 and
        // leaves the cursor where the next id is found.
        assert_eq!(p.of("s", "q", "t1"), position("t1"));
        assert_eq!(p.of("s", "q", "t11"), 0);
        assert_eq!(p.of("s", "q", "é"), position("é"));
        assert_eq!(p.of("s", "r", "é"), position("é"));
        assert_eq!(p.of("other", "q", "t1"), 5);
        assert_eq!(p.of("other", "q", "t2"), 0);
        assert_eq!(p.of("missing", "q", "t1"), 0);
    }
}
