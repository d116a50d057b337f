//! The analysis of a stored run: the one place that aggregates.
//!
//! `store → RunAnalysis`: per suite × provider, every outcome (task, repeat, verdict, cost or its
//! bound, latency) and the row figures every output reads (acceptance with its interval, costs,
//! cost per accepted outcome with its interval and bound, latency, failures by kind). The report
//! formats, and later compare, route and gate, only render or decide from this; none of them
//! reads the store. Pairing two providers of one run, or one provider across two runs, on the
//! same (suite, task, repeat) is a method here.
//!
//! Cost per accepted outcome = (token cost of every billed attempt, retries included, plus
//! rejected outcomes × the suite's rejection cost) / accepted outcomes. Failed outcomes (no
//! answer) count as rejected; outcomes whose grader failed are left out of acceptance. A call
//! whose cost is unknown (a timeout after the request was sent, an answer without usage) is not
//! read as 0 and does not blank the row either: the figures use the known costs, and
//! `*_max` figures add each unknown call at its bound (see `providers::bound`).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::grade::confusion::{self, GraderDetails};
use crate::labels::agreement::{Agreement, GradedCounts, agreement};
use crate::providers::{Money, Price, Tally, Usage, bound};
use crate::stats::{self, Outcome};
use crate::store::outcomes::{AttemptCost, OutcomeIndex, OutcomePart, Reprice};
use crate::store::plan::{ProviderPlan, SuitePlan};
use crate::store::{ErrorKind, GradeStatus, OutcomeRecord, RunInfo, Store, StoreError};

/// Statistical settings of an analysis.
#[derive(Debug, Clone, Copy)]
pub struct AnalysisOptions {
    /// Confidence level of every interval.
    pub confidence: f64,
    /// Bootstrap resamples for cost per accepted outcome.
    pub bootstrap: usize,
    /// Bootstrap seed (same seed, same interval).
    pub seed: u64,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            confidence: 0.95,
            bootstrap: 2000,
            seed: 20261127,
        }
    }
}

/// How one outcome ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Answered and accepted.
    Accepted,
    /// Answered and rejected.
    Rejected,
    /// No answer (counted as rejected).
    Unanswered,
    /// Answered, but a grader could not decide: left out of acceptance.
    GraderError,
    /// Answered, not graded yet: left out of acceptance.
    Ungraded,
}

impl Verdict {
    /// Whether it counts in the acceptance rate's denominator.
    pub fn decided(self) -> bool {
        matches!(
            self,
            Verdict::Accepted | Verdict::Rejected | Verdict::Unanswered
        )
    }
}

/// One outcome (task × repeat) of one provider: what the statistics need, compactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutcomeFacts {
    /// Position of the task in its suite (the cluster for statistics).
    pub task_idx: u32,
    /// Sample number.
    pub repeat: u32,
    /// How it ended.
    pub verdict: Verdict,
    /// Token cost of its attempts whose cost is known.
    pub known_cost: Money,
    /// The most its unknown-cost attempts can have cost (0 when none).
    pub unknown_max: Money,
    /// Attempts whose cost is unknown.
    pub unknown_calls: u16,
    /// Whether some unknown cost has no bound.
    pub unbounded: bool,
    /// Latency of the answering call.
    pub latency_ms: Option<f32>,
    /// Time to first token of the answering call, when it was streamed.
    pub ttft_ms: Option<f32>,
}

impl OutcomeFacts {
    /// Whether it was accepted.
    pub fn accepted(&self) -> bool {
        self.verdict == Verdict::Accepted
    }

    /// Its token cost as a tally (known, unknown, bounded).
    pub fn cost(&self) -> Tally {
        Tally {
            known: self.known_cost,
            unknown: u64::from(self.unknown_calls),
            unbounded: u64::from(self.unbounded),
            bound: self.unknown_max,
        }
    }
}

/// One suite × provider: its outcomes in task order, and its figures.
#[derive(Debug, Clone)]
pub struct RowAnalysis {
    /// The figures outputs print.
    pub figures: Row,
    /// The graders' verdicts before human labels overrode any (for the agreement figures).
    pub graded: GradedCounts,
    /// Every attempted outcome, sorted by (task, repeat).
    pub outcomes: Vec<OutcomeFacts>,
}

/// The analysis of one stored run.
#[derive(Debug, Clone)]
pub struct RunAnalysis {
    /// The run as stored.
    pub run: RunInfo,
    /// The settings the figures were computed with.
    pub options: AnalysisOptions,
    /// Rows by suite then provider, in plan order.
    pub rows: Vec<RowAnalysis>,
    /// Task ids per suite, by task position.
    pub task_ids: HashMap<String, Vec<String>>,
    /// Graders against human labels, when some outcome has one.
    pub agreement: Option<Agreement>,
    /// Confusion matrices of `label` graders and field figures of `fields` graders.
    pub graders: GraderDetails,
}

/// Two outcomes of the same (suite, task, repeat).
pub type Pair<'a> = (&'a OutcomeFacts, &'a OutcomeFacts);

/// The outcomes two sides share, and how many of each side had no partner.
#[derive(Debug, Clone)]
pub struct Pairing<'a> {
    /// Paired outcomes, (left, right).
    pub pairs: Vec<Pair<'a>>,
    /// Left outcomes without a right partner.
    pub unpaired_left: usize,
    /// Right outcomes without a left partner.
    pub unpaired_right: usize,
}

impl RunAnalysis {
    /// Reads and analyses a run.
    pub fn load(
        store: &Store,
        run: RunInfo,
        options: AnalysisOptions,
    ) -> Result<RunAnalysis, StoreError> {
        Self::load_with(store, run, options, None, Keep::Outcomes)
    }

    /// Reads a run's row figures only, the same figures [`RunAnalysis::load`] gives, for the
    /// outputs that print nothing else (the table, markdown and JSON reports): every row's
    /// `outcomes` and the `task_ids` are left empty. Each row is finished as soon as the store
    /// has streamed it, holding its interval's sample (16 bytes a decided outcome) and its
    /// latencies rather than every outcome of the run: the summary `costbench run` prints at
    /// 300,000 outcomes peaked at 44.5 MB holding them.
    pub fn load_figures(
        store: &Store,
        run: RunInfo,
        options: AnalysisOptions,
    ) -> Result<RunAnalysis, StoreError> {
        Self::load_with(store, run, options, None, Keep::Figures)
    }

    /// Reads and analyses a run as if its providers had had `prices` (by provider id): every
    /// attempt with stored usage is priced anew, and the bound of each call of unknown cost is
    /// taken at the new prices; what was actually spent stays as stored. Providers missing from
    /// `prices` keep their stored costs. No provider is called and the store is not changed.
    pub fn load_repriced(
        store: &Store,
        run: RunInfo,
        options: AnalysisOptions,
        prices: &HashMap<String, Price>,
    ) -> Result<RunAnalysis, StoreError> {
        let run = with_prices(run, prices);
        let reprice = repricer(&run, prices);
        Self::load_with(store, run, options, Some(&reprice), Keep::Outcomes)
    }

    /// The run as stored and as [`RunAnalysis::load_repriced`] gives it, from one read of the
    /// store (the read is most of the time on a big run; reading twice doubled it).
    pub fn load_before_after(
        store: &Store,
        run: RunInfo,
        options: AnalysisOptions,
        prices: &HashMap<String, Price>,
    ) -> Result<(RunAnalysis, RunAnalysis), StoreError> {
        Self::before_after_split(store, run, options, prices, Split::auto())
    }

    /// [`RunAnalysis::load_before_after`], its run read in parts as `split` says.
    fn before_after_split(
        store: &Store,
        run: RunInfo,
        options: AnalysisOptions,
        prices: &HashMap<String, Price>,
        split: Split,
    ) -> Result<(RunAnalysis, RunAnalysis), StoreError> {
        let run_after = with_prices(run.clone(), prices);
        let reprice = repricer(&run_after, prices);
        let (rates, rates_after) = (prompt_rates(&run), prompt_rates(&run_after));
        let rate = |p: &str| rates.get(p).copied();
        let rate_after = |p: &str| rates_after.get(p).copied();
        let mut both = load_rows(
            store,
            &[&run, &run_after],
            Keep::Outcomes,
            &options,
            split,
            |conn, index, part, accs| {
                let [before, after] = accs else {
                    unreachable!("two analyses")
                };
                conn.for_each_outcome_repriced(
                    index,
                    part,
                    &rate,
                    &rate_after,
                    &reprice,
                    |mut o, r| {
                        before.add(&o);
                        o.cost = r.cost;
                        o.spent = r.spent;
                        after.add(&o);
                    },
                )
            },
        )?;
        let mut rows_after = both.pop().unwrap_or_default();
        let mut rows = both.pop().unwrap_or_default();
        let task_ids = store.task_ids(run.id)?;
        let labelled = store.labelled_outcomes(run.id)?;
        let graders = grader_details(store, &run)?;
        fill_grader_sets(store, &mut rows)?;
        fill_grader_sets(store, &mut rows_after)?;
        Ok((
            RunAnalysis {
                agreement: agreement(&run, &rows, &labelled, &options),
                graders: graders.clone(),
                rows,
                task_ids: task_ids.clone(),
                run,
                options,
            },
            RunAnalysis {
                agreement: agreement(&run_after, &rows_after, &labelled, &options),
                graders,
                rows: rows_after,
                task_ids,
                run: run_after,
                options,
            },
        ))
    }

    fn load_with(
        store: &Store,
        run: RunInfo,
        options: AnalysisOptions,
        reprice: Option<&Reprice<'_>>,
        keep: Keep,
    ) -> Result<RunAnalysis, StoreError> {
        Self::load_split(store, run, options, reprice, keep, Split::auto())
    }

    /// [`RunAnalysis::load_with`], its run read in parts as `split` says.
    fn load_split(
        store: &Store,
        run: RunInfo,
        options: AnalysisOptions,
        reprice: Option<&Reprice<'_>>,
        keep: Keep,
        split: Split,
    ) -> Result<RunAnalysis, StoreError> {
        let rates = prompt_rates(&run);
        let rate = |p: &str| rates.get(p).copied();
        let mut rows = load_rows(
            store,
            &[&run],
            keep,
            &options,
            split,
            |conn, index, part, accs| {
                conn.for_each_outcome(index, part, &rate, reprice, |o| accs[0].add(&o))
            },
        )?
        .pop()
        .unwrap_or_default();
        fill_grader_sets(store, &mut rows)?;
        // Read again rather than kept from the scan (which reads them to place each task):
        // holding them while the rows are finished raised a million-outcome report's peak
        // RSS from 90 to 104 MB, to save a read of 0.13–0.31 s.
        let task_ids = match keep {
            Keep::Outcomes => store.task_ids(run.id)?,
            Keep::Figures => HashMap::new(),
        };
        let labelled = store.labelled_outcomes(run.id)?;
        Ok(RunAnalysis {
            agreement: agreement(&run, &rows, &labelled, &options),
            graders: grader_details(store, &run)?,
            run,
            options,
            rows,
            task_ids,
        })
    }

    /// The row of a suite and provider.
    pub fn row(&self, suite: &str, provider: &str) -> Option<&RowAnalysis> {
        self.rows
            .iter()
            .find(|r| r.figures.suite == suite && r.figures.provider == provider)
    }

    /// Pairs two providers of this run on the same (suite, task, repeat).
    pub fn pair(&self, suite: &str, left: &str, right: &str) -> Option<Pairing<'_>> {
        let l = self.row(suite, left)?;
        let r = self.row(suite, right)?;
        Some(pair_sorted(
            &l.outcomes,
            &r.outcomes,
            |o| (o.task_idx, o.repeat),
            |o| (o.task_idx, o.repeat),
        ))
    }

    /// Pairs a provider of this run with a provider of another run of the same suite, on the
    /// same task id and repeat (task positions may differ between runs).
    pub fn pair_runs<'a>(
        &'a self,
        other: &'a RunAnalysis,
        suite: &str,
        left: &str,
        right: &str,
    ) -> Option<Pairing<'a>> {
        let l = self.row(suite, left)?;
        let r = other.row(suite, right)?;
        let lid = self.task_ids.get(suite)?;
        let rid = other.task_ids.get(suite)?;
        let index: HashMap<(&str, u32), &OutcomeFacts> = r
            .outcomes
            .iter()
            .filter_map(|o| Some(((rid.get(o.task_idx as usize)?.as_str(), o.repeat), o)))
            .collect();
        let mut pairs = Vec::new();
        for o in &l.outcomes {
            if let Some(p) = lid
                .get(o.task_idx as usize)
                .and_then(|id| index.get(&(id.as_str(), o.repeat)))
            {
                pairs.push((o, *p));
            }
        }
        Some(Pairing {
            unpaired_left: l.outcomes.len() - pairs.len(),
            unpaired_right: r.outcomes.len() - pairs.len(),
            pairs,
        })
    }

    /// Unanswered outcomes of the whole run, by the kind of their last failure, with the
    /// first message of each kind.
    pub fn unanswered_by_kind(&self) -> BTreeMap<String, FailureKind> {
        let mut out: BTreeMap<String, FailureKind> = BTreeMap::new();
        for r in &self.rows {
            for (k, f) in &r.figures.unanswered_by_kind {
                let e = out.entry(k.clone()).or_insert_with(|| FailureKind {
                    count: 0,
                    first_message: f.first_message.clone(),
                });
                e.count += f.count;
            }
        }
        out
    }
}

/// The label and field details of the suites whose graders include a `label` or `fields`
/// grader (the only suites whose grades are read again).
fn grader_details(store: &Store, run: &RunInfo) -> Result<GraderDetails, StoreError> {
    let mut out = GraderDetails::default();
    for s in run
        .plan
        .suites
        .iter()
        .filter(|s| s.grader_kinds.iter().any(|k| k == "label" || k == "fields"))
    {
        let mut tally = confusion::Tally::default();
        store.suite_verdicts(run.id, &s.name, |p, v| tally.add(p, v))?;
        tally.finish(&s.name, &mut out);
    }
    Ok(out)
}

/// The run with `prices` in place of its providers' stored prices.
fn with_prices(mut run: RunInfo, prices: &HashMap<String, Price>) -> RunInfo {
    for p in &mut run.plan.providers {
        if let Some(price) = prices.get(&p.id) {
            p.price = Some(price.clone());
        }
    }
    run
}

/// Each priced provider's dearest prompt-token rate, with which unknown costs are bounded.
fn prompt_rates(run: &RunInfo) -> HashMap<String, crate::providers::Rate> {
    run.plan
        .providers
        .iter()
        .filter_map(|p| Some((p.id.clone(), bound::prompt_rate(p.price.as_ref()?))))
        .collect()
}

/// Prices an attempt anew from its stored usage; without usage, an unknown cost gets its bound
/// at the new prices. Providers missing from `prices` are left as stored.
fn repricer<'a>(
    run: &RunInfo,
    prices: &'a HashMap<String, Price>,
) -> impl Fn(&str, &str, &mut AttemptCost) + 'a {
    let caps: HashMap<String, Option<u64>> = run
        .plan
        .suites
        .iter()
        .map(|s| (s.name.clone(), s.max_tokens))
        .collect();
    move |suite: &str, provider: &str, a: &mut AttemptCost| {
        let Some(price) = prices.get(provider) else {
            return;
        };
        match a.usage {
            // The stored row keeps no service tier, labels or start time yet: a rule that
            // needs them (off-peak) makes the repriced cost unknown rather than guessed.
            Some(u) => a.cost = u.cost(price, &crate::providers::Served::default()),
            None if a.cost.is_none() => {
                a.cost_max = a
                    .est_prompt_tokens
                    .zip(caps.get(suite).copied().flatten())
                    .map(|(est, cap)| bound::max_cost(price, est, cap));
            }
            None => {}
        }
    }
}

/// What an analysis keeps of each row besides its figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Keep {
    /// Every outcome (compare, route, gate, the HTML report).
    #[default]
    Outcomes,
    /// The figures only; a row is finished as soon as its outcomes have streamed by.
    Figures,
}

/// Outcomes a part of a row aims at (see [`load_rows`]): small enough that the workers end a
/// million-outcome run within a part of each other, large enough that a part's own queries
/// cost nothing beside its rows.
const PART_OUTCOMES: u64 = 1 << 15;

/// Most connections a run is read on at once.
const MAX_WORKERS: usize = 8;

/// How [`load_rows`] cuts a run into parts, and how many workers read them.
#[derive(Debug, Clone, Copy)]
struct Split {
    workers: usize,
    part_outcomes: u64,
}

impl Split {
    /// A worker per core, parts of [`PART_OUTCOMES`].
    fn auto() -> Split {
        Split {
            workers: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_WORKERS),
            part_outcomes: PART_OUTCOMES,
        }
    }
}

/// A row of the plan: its suite and provider (by position), and whether an earlier row has
/// the same pair (it gets the outcomes; this one stays empty).
#[derive(Clone, Copy)]
struct PlanRow {
    suite: usize,
    provider: usize,
    repeated: bool,
}

/// A row put together from parts that end in any order: they are folded in task id order,
/// the order of one scan of the row, so that every figure and interval is that scan's.
#[derive(Default)]
struct RowMerge {
    /// The parts folded so far (the first part's accumulators, one per analysis).
    acc: Option<Vec<Acc>>,
    /// How many parts the row has, and the next to fold.
    parts: usize,
    next: usize,
    /// Parts that ended before one ahead of them.
    early: Vec<(usize, Vec<Acc>)>,
    /// The finished rows, one per analysis.
    done: Option<Vec<RowAnalysis>>,
}

impl RowMerge {
    /// Takes part `k`; the whole row once its last part is in.
    fn put(&mut self, k: usize, accs: Vec<Acc>) -> Option<Vec<Acc>> {
        self.early.push((k, accs));
        while let Some(i) = self.early.iter().position(|(k, _)| *k == self.next) {
            let (_, accs) = self.early.swap_remove(i);
            match self.acc.as_mut() {
                None => self.acc = Some(accs),
                Some(acc) => acc.iter_mut().zip(accs).for_each(|(a, b)| a.merge(b)),
            }
            self.next += 1;
        }
        if self.next == self.parts {
            self.acc.take()
        } else {
            None
        }
    }
}

/// Every row of the plan for each of `runs` (the run as stored, and as repriced: the same
/// outcomes, suites and providers), in plan order; rows without outcomes are empty.
///
/// The run is read in parts (a suite × provider, cut by task id ranges when it is big) on
/// `split.workers` threads, each with its own read-only connection (the calling thread uses
/// `store`'s), which take the parts in plan order; `scan` folds a part into one accumulator
/// per analysis. Reading was most of a big report's time, on one core. A row is finished as
/// soon as its last part is in, so only the rows being read are held, as before.
fn load_rows(
    store: &Store,
    runs: &[&RunInfo],
    keep: Keep,
    options: &AnalysisOptions,
    split: Split,
    scan: impl Fn(&Store, &OutcomeIndex, &OutcomePart, &mut [Acc]) -> Result<(), StoreError> + Sync,
) -> Result<Vec<Vec<RowAnalysis>>, StoreError> {
    let plan = &runs[0].plan;
    let index = store.outcome_index(runs[0].id)?;
    let mut rows: Vec<PlanRow> = Vec::new();
    for (si, s) in plan.suites.iter().enumerate() {
        for (pi, p) in plan.providers.iter().enumerate() {
            let repeated = rows.iter().any(|r| {
                plan.suites[r.suite].name == s.name && plan.providers[r.provider].id == p.id
            });
            rows.push(PlanRow {
                suite: si,
                provider: pi,
                repeated,
            });
        }
    }
    let planned = |r: &PlanRow| {
        let s = &plan.suites[r.suite];
        s.tasks.saturating_mul(u64::from(s.repeats))
    };
    // (row, its k-th part, of how many, the part)
    let mut parts: Vec<(usize, usize, usize, OutcomePart)> = Vec::new();
    let mut merges: Vec<std::sync::Mutex<RowMerge>> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let n = planned(r).div_ceil(split.part_outcomes).max(1);
        let cut = match r.repeated {
            true => Vec::new(),
            false => index.split(
                &plan.suites[r.suite].name,
                &plan.providers[r.provider].id,
                usize::try_from(n).unwrap_or(usize::MAX),
            ),
        };
        let n = cut.len();
        parts.extend(cut.into_iter().enumerate().map(|(k, part)| (i, k, n, part)));
        merges.push(std::sync::Mutex::new(RowMerge {
            parts: n,
            ..RowMerge::default()
        }));
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = |conn: &Store| -> Result<(), StoreError> {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some((r, k, n, part)) = parts.get(i) else {
                return Ok(());
            };
            let row = rows[*r];
            let suite = &plan.suites[row.suite];
            // Sized from the plan once: the first part ends up holding the whole row, and
            // doubling as outcomes arrive would leave up to half of a big row unused.
            let whole = planned(&row).min(MAX_RESERVED_OUTCOMES);
            let room = if *k == 0 { whole } else { whole / *n as u64 };
            let mut accs: Vec<Acc> = runs
                .iter()
                .map(|_| Acc::new(keep, suite.rejection_cost_femto, room as usize))
                .collect();
            if let Err(e) = scan(conn, &index, part, &mut accs) {
                // The other workers stop after their part.
                next.store(parts.len(), std::sync::atomic::Ordering::Relaxed);
                return Err(e);
            }
            let lock = || merges[*r].lock().unwrap_or_else(|e| e.into_inner());
            let Some(accs) = lock().put(*k, accs) else {
                continue;
            };
            let finished = accs
                .into_iter()
                .zip(runs)
                .map(|(a, run)| {
                    let (s, p) = (
                        &run.plan.suites[row.suite],
                        &run.plan.providers[row.provider],
                    );
                    a.finish(s, p, options)
                })
                .collect();
            lock().done = Some(finished);
        }
    };
    let workers = split.workers.clamp(1, parts.len().max(1));
    let path = store.path();
    std::thread::scope(|threads| {
        let helpers: Vec<_> = (1..workers)
            .map(|_| {
                threads.spawn(|| {
                    let r = Store::open_to_read(path).and_then(|conn| work(&conn));
                    if r.is_err() {
                        next.store(parts.len(), std::sync::atomic::Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        let mine = work(store);
        let theirs: Vec<_> = helpers
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        mine.and(theirs.into_iter().collect::<Result<(), _>>())
    })?;
    let mut out: Vec<Vec<RowAnalysis>> = runs.iter().map(|_| Vec::new()).collect();
    for (r, merge) in rows.iter().zip(merges) {
        let merge = merge.into_inner().unwrap_or_else(|e| e.into_inner());
        let finished = merge.done.unwrap_or_else(|| {
            // A repeated pair: empty, as every row without outcomes.
            runs.iter()
                .map(|run| {
                    let (s, p) = (&run.plan.suites[r.suite], &run.plan.providers[r.provider]);
                    Acc::default().finish(s, p, options)
                })
                .collect()
        });
        for (rows, row) in out.iter_mut().zip(finished) {
            rows.push(row);
        }
    }
    Ok(out)
}

/// Puts each row's grader sets as stored beside their fingerprints.
fn fill_grader_sets(store: &Store, rows: &mut [RowAnalysis]) -> Result<(), StoreError> {
    if rows.iter().all(|r| r.figures.graders.is_empty()) {
        return Ok(());
    }
    let sets = store.grader_sets()?;
    for g in rows.iter_mut().flat_map(|r| r.figures.graders.iter_mut()) {
        if let Some(v) = sets.get(&g.fingerprint) {
            g.set = v.clone();
        }
    }
    Ok(())
}

/// Whether the checks that can run at serving time (graders marked `runtime: true`) passed, per
/// suite × provider, aligned with [`RowAnalysis::outcomes`]. Suites without such checks have no
/// entry; an outcome without an answer or a grade did not pass them.
#[derive(Debug, Clone, Default)]
pub struct RuntimeChecks {
    by_row: HashMap<(String, String), Vec<bool>>,
}

impl RuntimeChecks {
    /// The checks of a suite and provider, one per outcome of its row; `None` when the suite
    /// has no runtime check.
    pub fn row(&self, suite: &str, provider: &str) -> Option<&[bool]> {
        self.by_row
            .get(&(suite.to_string(), provider.to_string()))
            .map(Vec::as_slice)
    }
}

impl RunAnalysis {
    /// Reads the runtime checks of this run's graded outcomes (see [`RuntimeChecks`]).
    pub fn runtime_checks(&self, store: &Store) -> Result<RuntimeChecks, StoreError> {
        let mut out = RuntimeChecks::default();
        for s in self
            .run
            .plan
            .suites
            .iter()
            .filter(|s| !s.runtime_graders.is_empty())
        {
            let positions: HashMap<&str, u32> = self
                .task_ids
                .get(&s.name)
                .map(|ids| {
                    ids.iter()
                        .enumerate()
                        .map(|(i, id)| (id.as_str(), i as u32))
                        .collect()
                })
                .unwrap_or_default();
            for p in &self.run.plan.providers {
                let n = self.row(&s.name, &p.id).map_or(0, |r| r.outcomes.len());
                out.by_row
                    .insert((s.name.clone(), p.id.clone()), vec![false; n]);
            }
            store.runtime_checks(
                self.run.id,
                &s.name,
                &s.runtime_graders,
                |p, task, rep, ok| {
                    let (Some(row), Some(&idx)) = (self.row(&s.name, p), positions.get(task))
                    else {
                        return;
                    };
                    let Ok(i) = row
                        .outcomes
                        .binary_search_by_key(&(idx, rep), |o| (o.task_idx, o.repeat))
                    else {
                        return;
                    };
                    if let Some(v) = out
                        .by_row
                        .get_mut(&(s.name.clone(), p.to_string()))
                        .and_then(|v| v.get_mut(i))
                    {
                        *v = ok;
                    }
                },
            )?;
        }
        Ok(out)
    }
}

/// Pairs two outcome lists sorted by their keys.
fn pair_sorted<'a, K: Ord>(
    l: &'a [OutcomeFacts],
    r: &'a [OutcomeFacts],
    lk: impl Fn(&OutcomeFacts) -> K,
    rk: impl Fn(&OutcomeFacts) -> K,
) -> Pairing<'a> {
    let (mut i, mut j) = (0, 0);
    let mut pairs = Vec::new();
    while i < l.len() && j < r.len() {
        match lk(&l[i]).cmp(&rk(&r[j])) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                pairs.push((&l[i], &r[j]));
                i += 1;
                j += 1;
            }
        }
    }
    Pairing {
        unpaired_left: l.len() - pairs.len(),
        unpaired_right: r.len() - pairs.len(),
        pairs,
    }
}

// ------------------------------------------------------------------------------------------
// The row figures: the JSON report's contract.
// ------------------------------------------------------------------------------------------

/// An acceptance rate with its interval.
#[derive(Debug, Clone, Serialize)]
pub struct Acceptance {
    /// accepted / decided outcomes.
    pub rate: Option<f64>,
    /// Lower bound.
    pub low: Option<f64>,
    /// Upper bound.
    pub high: Option<f64>,
    /// Interval method.
    pub method: &'static str,
}

/// Token totals by class.
#[derive(Debug, Clone, Serialize)]
pub struct Tokens {
    /// Prompt tokens not served from cache.
    pub input: u64,
    /// Prompt tokens served from cache.
    pub cached_input: u64,
    /// Prompt tokens written to cache (all lifetimes).
    pub cache_write: u64,
    /// Completion tokens, reasoning included.
    pub output: u64,
    /// Reasoning tokens (subset of output).
    pub reasoning: u64,
}

/// Cost components in USD.
#[derive(Debug, Clone, Serialize)]
pub struct Costs {
    /// Token cost of every billed attempt whose cost is known; `null` only when no cost is
    /// known at all.
    pub tokens: Option<f64>,
    /// Rejected outcomes × rejection cost.
    pub rejections: f64,
    /// tokens + rejections.
    pub total: Option<f64>,
    /// The most the attempts of unknown cost can have cost together (0 when none); `null`
    /// when one of them has no bound (no completion cap, or no price).
    pub unknown_max: Option<f64>,
    /// What the LLM-judge calls of the row's grades cost (known part; judge calls of unknown
    /// cost count in `unknown_max`); included in `total` and in cost per accepted outcome.
    /// Absent when no grade of the row had a judge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<f64>,
}

/// Which grader set gave a row's grades, and how many of them.
#[derive(Debug, Clone, Serialize)]
pub struct GraderSetUse {
    /// The set's fingerprint (changes with any grader's config, weight or the accept rule).
    pub fingerprint: String,
    /// Grades it gave in this row.
    pub outcomes: u64,
    /// The set as stored: `{"accept", "graders": [{"kind", "fingerprint", "weight"}]}`;
    /// `null` when the store lacks it.
    pub set: serde_json::Value,
}

/// The interval of cost per accepted outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CostCi {
    /// Lower bound, USD.
    pub low: Option<f64>,
    /// Upper bound, USD (`null` when unbounded: resamples with no acceptance).
    pub high: Option<f64>,
    /// Interval method.
    pub method: &'static str,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Resamples with no accepted outcome.
    pub zero_accept_resamples: usize,
    /// What the interval resamples: `known costs` (attempts of unknown cost left out).
    pub basis: &'static str,
}

/// Latency percentiles of answering calls (nearest rank).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Median, ms.
    pub p50: Option<f64>,
    /// 95th percentile, ms.
    pub p95: Option<f64>,
    /// 99th percentile, ms.
    pub p99: Option<f64>,
}

impl Latency {
    /// The percentiles of `values` (any order).
    pub fn of(mut values: Vec<f32>) -> Latency {
        values.sort_unstable_by(f32::total_cmp);
        Latency {
            p50: percentile(&values, 0.50),
            p95: percentile(&values, 0.95),
            p99: percentile(&values, 0.99),
        }
    }
}

/// The failure kinds a buyer watches: always listed in a row's `error_rates`, 0 when none.
pub const HEALTH_KINDS: [ErrorKind; 7] = [
    ErrorKind::RateLimited,
    ErrorKind::Overloaded,
    ErrorKind::Timeout,
    ErrorKind::ServerError,
    ErrorKind::BadResponse,
    ErrorKind::ContentRefused,
    ErrorKind::ContextLength,
];

/// The share of `calls` that failed with each kind: the [`HEALTH_KINDS`], then every other
/// kind that occurred. Empty when nothing was called.
pub fn error_rates(failures: &BTreeMap<String, FailureKind>, calls: u64) -> BTreeMap<String, f64> {
    if calls == 0 {
        return BTreeMap::new();
    }
    let mut out: BTreeMap<String, f64> = HEALTH_KINDS
        .iter()
        .map(|k| (k.as_str().to_string(), 0.0))
        .collect();
    for (k, f) in failures {
        out.insert(k.clone(), f.count as f64 / calls as f64);
    }
    out
}

/// Failures of one kind.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailureKind {
    /// How many (attempts, or outcomes where so labelled).
    pub count: u64,
    /// The first message of this kind (never a key).
    pub first_message: Option<String>,
}

/// One suite × provider row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Suite name.
    pub suite: String,
    /// Workload class.
    pub workload: String,
    /// Provider id.
    pub provider: String,
    /// Tasks in the suite.
    pub tasks: u64,
    /// tasks × repeats.
    pub outcomes: u64,
    /// Outcomes not attempted yet.
    pub pending: u64,
    /// Accepted outcomes.
    pub accepted: u64,
    /// Attempted outcomes that ended without an answer (counted as rejected).
    pub unanswered: u64,
    /// Answered outcomes whose grader failed (left out of acceptance).
    pub grader_errors: u64,
    /// Outcomes whose verdict is the human raters' (`costbench labels import`), not the
    /// graders'.
    pub human_labelled: u64,
    /// Acceptance rate and Wilson interval.
    pub acceptance: Acceptance,
    /// The suite's quality threshold.
    pub quality_threshold: Option<f64>,
    /// Whether the acceptance rate reaches the threshold (point estimate).
    pub qualifies: Option<bool>,
    /// HTTP attempts, retries included.
    pub calls: u64,
    /// Attempts without an answer.
    pub failed_calls: u64,
    /// Attempts beyond the first of each outcome.
    pub retries: u64,
    /// Attempts whose cost is unknown.
    pub unpriced_calls: u64,
    /// Token totals.
    pub tokens: Tokens,
    /// Costs.
    pub cost_usd: Costs,
    /// (known token cost + rejection cost) / accepted; `null` when nothing was accepted or no
    /// cost is known.
    pub cost_per_accepted_usd: Option<f64>,
    /// The same with every attempt of unknown cost at its bound; `null` when unboundable.
    pub cost_per_accepted_max_usd: Option<f64>,
    /// The interval of `cost_per_accepted_usd`.
    pub cost_per_accepted_ci: CostCi,
    /// What this run actually paid, known part (0 for replayed answers).
    pub spent_usd: Option<f64>,
    /// The most it can have paid, with unknown spend at its bound; `null` when unboundable.
    pub spent_max_usd: Option<f64>,
    /// Latency of answering calls.
    pub latency_ms: Latency,
    /// Time to first token of answering streamed calls (all `null` when nothing was streamed).
    pub ttft_ms: Latency,
    /// Failed attempts of each kind as a share of `calls`.
    pub error_rates: BTreeMap<String, f64>,
    /// Failed attempts by kind.
    pub failures: BTreeMap<String, FailureKind>,
    /// Unanswered outcomes by the kind of their last failure.
    pub unanswered_by_kind: BTreeMap<String, FailureKind>,
    /// The grader sets (kinds and config fingerprints) that gave the row's grades; empty for
    /// grades stored before grader sets were recorded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub graders: Vec<GraderSetUse>,
}

/// One provider's health in one run, over every suite: `costbench runs --health`.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderHealth {
    /// The run id.
    pub run: i64,
    /// When the run started (UTC).
    pub created_at: String,
    /// Provider id.
    pub provider: String,
    /// HTTP attempts, retries included (a replayed answer counts as one).
    pub calls: u64,
    /// Attempts without an answer.
    pub failed_calls: u64,
    /// Attempts beyond the first of each outcome.
    pub retries: u64,
    /// `failed_calls / calls`; `null` when nothing was called.
    pub error_rate: Option<f64>,
    /// Failed attempts of each kind as a share of `calls` (see [`error_rates`]).
    pub error_rates: BTreeMap<String, f64>,
    /// Failed attempts by kind, with the first message of each.
    pub failures: BTreeMap<String, FailureKind>,
    /// Latency of answering calls.
    pub latency_ms: Latency,
    /// Time to first token of answering streamed calls.
    pub ttft_ms: Latency,
}

/// Running sums of one provider's health while the store streams a run's attempts.
#[derive(Default)]
struct HealthAcc {
    calls: u64,
    called_outcomes: u64,
    outcome_called: bool,
    failed_calls: u64,
    failures: BTreeMap<String, FailureKind>,
    latencies: Vec<f32>,
    ttfts: Vec<f32>,
}

/// Every provider's health in `run`, in the run's provider order (providers of the plan with
/// no attempt yet are left out).
pub fn run_health(store: &Store, run: &RunInfo) -> Result<Vec<ProviderHealth>, StoreError> {
    let mut by_provider: HashMap<String, HealthAcc> = HashMap::new();
    store.for_each_call(run.id, |c| {
        let h = by_provider.entry(c.provider).or_default();
        if c.new_outcome {
            h.outcome_called = false;
        }
        if !c.is_call {
            return;
        }
        h.calls += 1;
        if !h.outcome_called {
            h.outcome_called = true;
            h.called_outcomes += 1;
        }
        if c.answered {
            h.latencies.push(c.latency_ms as f32);
            h.ttfts.extend(c.ttft_ms.map(|t| t as f32));
        } else {
            h.failed_calls += 1;
            if let Some(k) = c.kind {
                count_failure(&mut h.failures, k, &c.message);
            }
        }
    })?;
    Ok(run
        .plan
        .providers
        .iter()
        .filter_map(|p| {
            let h = by_provider.remove(&p.id)?;
            Some(ProviderHealth {
                run: run.id,
                created_at: run.created_at.clone(),
                provider: p.id.clone(),
                calls: h.calls,
                failed_calls: h.failed_calls,
                retries: h.calls - h.called_outcomes,
                error_rate: (h.calls > 0).then(|| h.failed_calls as f64 / h.calls as f64),
                error_rates: error_rates(&h.failures, h.calls),
                failures: h.failures,
                latency_ms: Latency::of(h.latencies),
                ttft_ms: Latency::of(h.ttfts),
            })
        })
        .collect())
}

/// Running sums of one row while the store streams its outcomes.
#[derive(Default)]
struct Acc {
    calls: u64,
    /// Outcomes with at least one call; calls beyond one each are retries.
    called_outcomes: u64,
    failed_calls: u64,
    usage: Usage,
    cost: Tally,
    spent: Tally,
    /// Outcomes attempted, and how many ended each way.
    attempted: u64,
    accepted: u64,
    unanswered: u64,
    grader_errors: u64,
    decided: u64,
    failures: BTreeMap<String, FailureKind>,
    unanswered_by_kind: BTreeMap<String, FailureKind>,
    human_labelled: u64,
    graded: GradedCounts,
    /// Judge costs of the row's grades, and whether any grade had a judge.
    judge: Tally,
    judged: bool,
    /// Grades per grader-set fingerprint, in first-seen order (almost always one).
    sets: Vec<(String, u64)>,
    keep: Keep,
    /// The suite's rejection cost, which [`Keep::Figures`] adds to the sample as it goes.
    rejection: Money,
    /// Every outcome ([`Keep::Outcomes`]).
    outcomes: Vec<OutcomeFacts>,
    /// [`Keep::Figures`]: the interval's sample (see [`cost_ci`]) in arrival order, which is
    /// task id then repeat order, and the answering calls' latencies and times to first token.
    sample: Vec<Outcome>,
    /// [`Keep::Figures`]: the sample's task totals as they stream by. Past
    /// [`DELTA_ABOVE_TASKS`] tasks the interval is the delta method, which needs only these, so
    /// the sample is let go and a large row's figures take constant memory.
    moments: stats::DeltaMoments,
    /// The task being summed: (task, cost, accepted).
    open_task: Option<(u32, f64, f64)>,
    sample_dropped: bool,
    latencies: Vec<f32>,
    ttfts: Vec<f32>,
}

fn count_failure(
    map: &mut BTreeMap<String, FailureKind>,
    kind: ErrorKind,
    message: &Option<String>,
) {
    let e = map
        .entry(kind.as_str().to_string())
        .or_insert_with(|| FailureKind {
            count: 0,
            first_message: message.clone(),
        });
    e.count += 1;
}

/// Most outcomes a row reserves room for up front; a plan larger than this (which a run
/// rarely finishes) grows its vector as outcomes arrive instead.
const MAX_RESERVED_OUTCOMES: u64 = 1 << 22;

impl Acc {
    fn new(keep: Keep, rejection: Money, planned: usize) -> Acc {
        let mut a = Acc {
            keep,
            rejection,
            ..Acc::default()
        };
        match keep {
            Keep::Outcomes => a.outcomes.reserve_exact(planned),
            Keep::Figures => {
                a.sample.reserve_exact(planned.min(DELTA_ABOVE_TASKS));
                a.latencies.reserve_exact(planned);
            }
        }
        a
    }

    fn add(&mut self, o: &OutcomeRecord) {
        self.calls += u64::from(o.calls);
        self.called_outcomes += u64::from(o.calls > 0);
        self.failed_calls += u64::from(o.failed_calls);
        self.usage.input += o.usage.input;
        self.usage.cached_input += o.usage.cached_input;
        self.usage.cache_write += o.usage.cache_write + o.usage.cache_write_1h;
        self.usage.output += o.usage.output;
        self.usage.reasoning += o.usage.reasoning;
        self.cost.merge(&o.cost);
        self.spent.merge(&o.spent);
        let judge = o.judge_cost.unwrap_or_default();
        self.judge.merge(&judge);
        self.judged |= o.judge_cost.is_some();
        if let Some(set) = &o.grader_set {
            match self.sets.iter_mut().find(|(f, _)| f == set) {
                Some((_, n)) => *n += 1,
                None => self.sets.push((set.clone(), 1)),
            }
        }
        // The judge's calls are part of what the outcome cost.
        let mut cost = o.cost;
        cost.merge(&judge);
        for f in &o.failures {
            count_failure(&mut self.failures, f.kind, &f.message);
        }
        match (o.answered, o.grade) {
            (false, _) => self.graded.unanswered += 1,
            (true, Some(GradeStatus::Accepted)) => self.graded.accepted += 1,
            (true, Some(GradeStatus::Rejected)) => self.graded.rejected += 1,
            _ => {}
        }
        // A human verdict overrides the automatic one (only answered outcomes can be labelled).
        let human = o.human.filter(|_| o.answered);
        self.human_labelled += u64::from(human.is_some());
        let verdict = match (o.answered, o.grade) {
            _ if human.is_some() => {
                if human == Some(true) {
                    Verdict::Accepted
                } else {
                    Verdict::Rejected
                }
            }
            (false, _) => {
                if let Some(last) = o.failures.last() {
                    count_failure(&mut self.unanswered_by_kind, last.kind, &last.message);
                }
                Verdict::Unanswered
            }
            (true, Some(GradeStatus::Accepted)) => Verdict::Accepted,
            (true, Some(GradeStatus::Rejected)) => Verdict::Rejected,
            (true, Some(GradeStatus::Error)) => Verdict::GraderError,
            (true, None) => Verdict::Ungraded,
        };
        self.attempted += 1;
        self.accepted += u64::from(verdict == Verdict::Accepted);
        self.unanswered += u64::from(verdict == Verdict::Unanswered);
        self.grader_errors += u64::from(verdict == Verdict::GraderError);
        self.decided += u64::from(verdict.decided());
        let facts = OutcomeFacts {
            task_idx: o.task_idx,
            repeat: o.repeat,
            verdict,
            known_cost: cost.known,
            unknown_max: cost.bound,
            unknown_calls: u16::try_from(cost.unknown).unwrap_or(u16::MAX),
            unbounded: cost.unbounded > 0,
            latency_ms: o.latency_ms.map(|l| l as f32),
            ttft_ms: o.ttft_ms.map(|l| l as f32),
        };
        match self.keep {
            Keep::Outcomes => self.outcomes.push(facts),
            Keep::Figures => {
                if verdict.decided() {
                    self.stream(sample_entry(&facts, self.rejection));
                }
                self.latencies.extend(facts.latency_ms);
                self.ttfts.extend(facts.ttft_ms);
            }
        }
    }

    /// Adds a decided outcome to the sample and to its task's running totals.
    fn stream(&mut self, e: Outcome) {
        let accepted = f64::from(u8::from(e.accepted));
        match &mut self.open_task {
            Some((task, cost, acc)) if *task == e.task => {
                *cost += e.cost;
                *acc += accepted;
            }
            _ => {
                self.close_task();
                self.open_task = Some((e.task, e.cost, accepted));
            }
        }
        self.moments.outcomes += 1;
        self.moments.accepted += u64::from(e.accepted);
        if !self.sample_dropped {
            self.sample.push(e);
            if self.moments.tasks() + 1 > DELTA_ABOVE_TASKS {
                self.sample = Vec::new();
                self.sample_dropped = true;
            }
        }
    }

    fn close_task(&mut self) {
        if let Some((_, cost, accepted)) = self.open_task.take() {
            self.moments.push_task(cost, accepted);
        }
    }

    /// Adds the outcomes of `later`, a part of the same row whose outcomes all come after
    /// these: the result is the accumulator that added them all in that order (first messages
    /// and grader sets first seen stay the earlier part's; samples and outcomes are appended).
    fn merge(&mut self, mut later: Acc) {
        // Parts are cut between tasks: each part's last task is whole.
        self.close_task();
        later.close_task();
        // Every field named, so that a new one cannot be left out of the merge.
        let Acc {
            calls,
            called_outcomes,
            failed_calls,
            usage,
            cost,
            spent,
            attempted,
            accepted,
            unanswered,
            grader_errors,
            decided,
            failures,
            unanswered_by_kind,
            human_labelled,
            graded,
            judge,
            judged,
            sets,
            keep: _,
            rejection: _,
            outcomes,
            sample,
            moments,
            open_task: _,
            sample_dropped,
            latencies,
            ttfts,
        } = later;
        self.calls += calls;
        self.called_outcomes += called_outcomes;
        self.failed_calls += failed_calls;
        let Usage {
            input,
            cached_input,
            cache_write,
            cache_write_1h,
            output,
            reasoning,
        } = usage;
        self.usage.input += input;
        self.usage.cached_input += cached_input;
        self.usage.cache_write += cache_write;
        self.usage.cache_write_1h += cache_write_1h;
        self.usage.output += output;
        self.usage.reasoning += reasoning;
        self.cost.merge(&cost);
        self.spent.merge(&spent);
        self.attempted += attempted;
        self.accepted += accepted;
        self.unanswered += unanswered;
        self.grader_errors += grader_errors;
        self.decided += decided;
        for (mine, theirs) in [
            (&mut self.failures, failures),
            (&mut self.unanswered_by_kind, unanswered_by_kind),
        ] {
            for (kind, f) in theirs {
                mine.entry(kind)
                    .or_insert(FailureKind {
                        count: 0,
                        first_message: f.first_message,
                    })
                    .count += f.count;
            }
        }
        self.human_labelled += human_labelled;
        let GradedCounts {
            accepted,
            rejected,
            unanswered,
        } = graded;
        self.graded.accepted += accepted;
        self.graded.rejected += rejected;
        self.graded.unanswered += unanswered;
        self.judge.merge(&judge);
        self.judged |= judged;
        for (set, n) in sets {
            match self.sets.iter_mut().find(|(f, _)| *f == set) {
                Some((_, m)) => *m += n,
                None => self.sets.push((set, n)),
            }
        }
        self.outcomes.extend(outcomes);
        self.moments.merge(&moments);
        self.sample_dropped |= sample_dropped || self.moments.tasks() > DELTA_ABOVE_TASKS;
        if self.sample_dropped {
            self.sample = Vec::new();
        } else {
            self.sample.extend(sample);
        }
        self.latencies.extend(latencies);
        self.ttfts.extend(ttfts);
    }

    fn finish(mut self, s: &SuitePlan, p: &ProviderPlan, opts: &AnalysisOptions) -> RowAnalysis {
        let rejection = s.rejection_cost_femto;
        let (sample, latencies, ttfts) = match self.keep {
            Keep::Outcomes => {
                self.outcomes
                    .sort_unstable_by_key(|o| (o.task_idx, o.repeat));
                let sample: Vec<Outcome> = self
                    .outcomes
                    .iter()
                    .filter(|o| o.verdict.decided())
                    .map(|o| sample_entry(o, rejection))
                    .collect();
                let latencies = self.outcomes.iter().filter_map(|o| o.latency_ms).collect();
                let ttfts = self.outcomes.iter().filter_map(|o| o.ttft_ms).collect();
                (sample, latencies, ttfts)
            }
            Keep::Figures => {
                self.close_task();
                // Outcomes arrive in task id then repeat order, so a stable sort by task
                // position gives the (task, repeat) order the outcomes' sort gives.
                let mut sample = std::mem::take(&mut self.sample);
                sample.sort_by_key(|o| o.task);
                let latencies = std::mem::take(&mut self.latencies);
                (sample, latencies, std::mem::take(&mut self.ttfts))
            }
        };
        let outcomes = s.tasks * u64::from(s.repeats);
        let (attempted, accepted, decided) = (self.attempted, self.accepted, self.decided);
        let rejected = decided - accepted;
        let rejections = rejection.times(rejected);
        // No cost is known only when every call's cost is unknown.
        let tokens =
            (self.cost.unknown == 0 || self.cost.unknown < self.calls).then_some(self.cost.known);
        let mut all = self.cost;
        all.merge(&self.judge);
        let total = tokens.map(|t| t.plus(rejections).plus(self.judge.known));
        let total_max = total.zip(all.unknown_max()).map(|(t, u)| t.plus(u));
        let per_accepted = |m: Option<Money>| {
            m.filter(|_| accepted > 0)
                .map(|t| t.usd() / accepted as f64)
        };
        let wilson = stats::wilson(accepted, decided, opts.confidence);
        let ci = cost_ci(accepted, tokens.is_some(), || {
            if self.sample_dropped {
                self.moments.ci(opts.confidence)
            } else {
                cost_per_accepted_ci(&sample, opts)
            }
        });
        drop(sample);
        let rate = wilson.map(|w| w.estimate);
        let spent = (self.spent.unknown == 0 || self.spent.unknown < self.calls)
            .then_some(self.spent.known);
        let figures = Row {
            suite: s.name.clone(),
            workload: s.workload.clone(),
            provider: p.id.clone(),
            tasks: s.tasks,
            outcomes,
            pending: outcomes.saturating_sub(attempted),
            accepted,
            unanswered: self.unanswered,
            grader_errors: self.grader_errors,
            human_labelled: self.human_labelled,
            acceptance: Acceptance {
                rate,
                low: wilson.map(|w| w.low),
                high: wilson.map(|w| w.high),
                method: "wilson",
            },
            quality_threshold: s.quality_threshold,
            qualifies: s.quality_threshold.zip(rate).map(|(t, r)| r >= t),
            calls: self.calls,
            failed_calls: self.failed_calls,
            retries: self.calls.saturating_sub(self.called_outcomes),
            unpriced_calls: self.cost.unknown,
            tokens: Tokens {
                input: self.usage.input,
                cached_input: self.usage.cached_input,
                cache_write: self.usage.cache_write,
                output: self.usage.output,
                reasoning: self.usage.reasoning,
            },
            cost_usd: Costs {
                tokens: tokens.map(Money::usd),
                rejections: rejections.usd(),
                total: total.map(Money::usd),
                unknown_max: all.unknown_max().map(Money::usd),
                judge: self.judged.then(|| self.judge.known.usd()),
            },
            cost_per_accepted_usd: per_accepted(total),
            cost_per_accepted_max_usd: per_accepted(total_max),
            cost_per_accepted_ci: ci,
            spent_usd: spent.map(Money::usd),
            spent_max_usd: spent
                .zip(self.spent.unknown_max())
                .map(|(a, b)| a.plus(b).usd()),
            latency_ms: Latency::of(latencies),
            ttft_ms: Latency::of(ttfts),
            error_rates: error_rates(&self.failures, self.calls),
            failures: self.failures,
            unanswered_by_kind: self.unanswered_by_kind,
            graders: self
                .sets
                .into_iter()
                .map(|(fingerprint, outcomes)| GraderSetUse {
                    fingerprint,
                    outcomes,
                    set: serde_json::Value::Null,
                })
                .collect(),
        };
        RowAnalysis {
            figures,
            graded: self.graded,
            outcomes: self.outcomes,
        }
    }
}

/// A decided outcome as the interval resamples it: its known token cost plus, when it was not
/// accepted, the suite's rejection cost; its task is its cluster.
fn sample_entry(o: &OutcomeFacts, rejection: Money) -> Outcome {
    Outcome {
        task: o.task_idx,
        accepted: o.accepted(),
        cost: o
            .known_cost
            .plus(if o.accepted() { Money::ZERO } else { rejection })
            .usd(),
    }
}

/// Above this many tasks the cost-per-accepted interval is the log-scale delta method: at that
/// size it covers as well as the bootstrap (statistics.md §3.5), while 2,000 resamples of every
/// task would dominate a million-outcome report's time.
pub const DELTA_ABOVE_TASKS: usize = 20_000;

/// The method of the cost-per-accepted interval up to [`DELTA_ABOVE_TASKS`] tasks.
///
/// The studentized bootstrap on the log scale ([`stats::cost_per_accepted_studentized_log`]):
/// in the seeded coverage simulation at n = 100 tasks (tests/interval_coverage.rs, K = 4,000
/// suites, B = 2,000) it covers 0.907–0.955 across the cost shapes, as often as or more than the
/// linear-scale bootstrap-t (0.908–0.953; one tie within 0.001) and BCa (0.883–0.951); none of
/// them reaches 93% for log-normal σ = 1.5 costs at acceptance 0.9.
pub const SMALL_SAMPLE_METHOD: &str = "studentized-bootstrap-log";

/// The interval of cost per accepted outcome over `sample` (one entry per decided outcome, its
/// cost including any rejection cost, `task` its cluster): the log-scale studentized bootstrap
/// of whole tasks, or the log-scale delta method above [`DELTA_ABOVE_TASKS`] tasks (named in `method`).
/// Every report row's interval is this one.
pub fn cost_per_accepted_ci(sample: &[Outcome], opts: &AnalysisOptions) -> stats::CostRatioCi {
    let clusters = stats::bootstrap::cluster_count(sample);
    if clusters > DELTA_ABOVE_TASKS {
        return stats::cost_per_accepted_delta_log(sample, opts.confidence);
    }
    match stats::cost_per_accepted_studentized_log(
        sample,
        opts.bootstrap,
        opts.confidence,
        opts.seed,
    ) {
        Ok(ci) => ci,
        // Only invalid input (no outcome, a cost that is not a finite amount ≥ 0) gets here:
        // the delta method reports it the same way, with no bounds.
        Err(_) => stats::cost_per_accepted_delta_log(sample, opts.confidence),
    }
}

/// The paired interval of cost per accepted outcome of `a` against `b` on the same tasks: the
/// paired BCa bootstrap of whole tasks, or the paired delta method above [`DELTA_ABOVE_TASKS`]
/// tasks (the rule of [`cost_per_accepted_ci`]; `method` names which).
pub fn paired_cost_ci(
    a: &[Outcome],
    b: &[Outcome],
    opts: &AnalysisOptions,
) -> Result<stats::PairedCostCi, stats::StatsError> {
    if stats::bootstrap::cluster_count(a) > DELTA_ABOVE_TASKS {
        stats::paired_cost_per_accepted_delta(a, b, opts.confidence)
    } else {
        stats::paired_cost_per_accepted(a, b, opts.bootstrap, opts.confidence, opts.seed)
    }
}

/// The row's interval of cost per accepted outcome over its decided outcomes, each carrying its
/// known token cost plus its rejection cost ([`sample_entry`], [`cost_per_accepted_ci`], or
/// the same delta interval from streamed moments), when a cost is known and an outcome accepted.
fn cost_ci(accepted: u64, known: bool, interval: impl FnOnce() -> stats::CostRatioCi) -> CostCi {
    let empty = CostCi {
        low: None,
        high: None,
        method: SMALL_SAMPLE_METHOD,
        resamples: 0,
        zero_accept_resamples: 0,
        basis: "known costs",
    };
    if !known || accepted == 0 {
        return empty;
    }
    let r = interval();
    CostCi {
        low: r.low,
        high: r.high,
        method: r.method,
        resamples: r.resamples,
        zero_accept_resamples: r.zero_accept_resamples,
        ..empty
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f32], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(f64::from(sorted[rank.min(sorted.len()) - 1]))
}

/// An outcome with a verdict and nothing else (no cost, no latency), for tests.
#[cfg(test)]
pub(crate) fn test_facts(task_idx: u32, repeat: u32, verdict: Verdict) -> OutcomeFacts {
    OutcomeFacts {
        task_idx,
        repeat,
        verdict,
        known_cost: Money::ZERO,
        unknown_max: Money::ZERO,
        unknown_calls: 0,
        unbounded: false,
        latency_ms: None,
        ttft_ms: None,
    }
}

/// A row made from outcomes, for other modules' tests.
#[cfg(test)]
pub(crate) fn test_row(suite: &str, provider: &str, outcomes: &[OutcomeFacts]) -> RowAnalysis {
    let plan: crate::store::RunPlan = serde_json::from_value(serde_json::json!({
        "suites": [{"name": suite, "path": "s.yaml", "workload": "w", "quality_threshold": 0.5,
            "rejection_cost_femto": "0", "repeats": 1, "tasks": outcomes.len(), "fingerprint": "f"}],
        "providers": [{"id": provider, "protocol": "openai", "base_url": "http://x/v1",
            "model": "m", "api_key_env": null, "price": null}]
    }))
    .expect("a valid plan");
    let mut sorted = outcomes.to_vec();
    sorted.sort_unstable_by_key(|o| (o.task_idx, o.repeat));
    let mut row = Acc::default().finish(
        &plan.suites[0],
        &plan.providers[0],
        &AnalysisOptions::default(),
    );
    row.outcomes = sorted;
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_cost_intervals_switch_to_the_delta_method_above_the_task_limit() {
        let sample = |tasks: usize, cost: f64| -> Vec<Outcome> {
            (0..tasks)
                .map(|t| Outcome {
                    task: t as u32,
                    accepted: t % 4 != 0,
                    cost: cost * (1.0 + (t % 7) as f64 / 10.0),
                })
                .collect()
        };
        let opts = AnalysisOptions {
            bootstrap: 200,
            ..AnalysisOptions::default()
        };
        for (tasks, method) in [
            (100, "paired-bca-bootstrap"),
            (DELTA_ABOVE_TASKS + 1, "paired-delta"),
        ] {
            let ci = paired_cost_ci(&sample(tasks, 2.0), &sample(tasks, 1.0), &opts).unwrap();
            assert_eq!(ci.method, method, "{tasks} tasks");
            // Twice the cost on the same tasks: the ratio is 2 and its interval holds it.
            let r = ci.ratio;
            assert!((r.estimate.unwrap() - 2.0).abs() < 1e-12);
            assert!(r.low.unwrap() <= 2.0 && 2.0 <= r.high.unwrap(), "{r:?}");
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f32> = (1..=100u8).map(f32::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.95), Some(95.0));
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    fn record(
        task_idx: u32,
        answered: bool,
        grade: Option<GradeStatus>,
        cost: i128,
    ) -> OutcomeRecord {
        OutcomeRecord {
            suite: "s".into(),
            provider: "p".into(),
            task_id: format!("t{task_idx}"),
            task_idx,
            repeat: 0,
            calls: 1,
            failed_calls: u32::from(!answered),
            usage: Usage::default(),
            cost: Tally {
                known: Money(cost),
                ..Tally::default()
            },
            spent: Tally {
                known: Money(cost),
                ..Tally::default()
            },
            answered,
            latency_ms: Some(10.0),
            ttft_ms: None,
            grade,
            human: None,
            judge_cost: None,
            grader_set: None,
            failures: Vec::new(),
        }
    }

    fn plans(tasks: u64) -> (SuitePlan, ProviderPlan) {
        let plan: crate::store::RunPlan = serde_json::from_value(serde_json::json!({
            "suites": [{"name": "s", "path": "s.yaml", "workload": "w", "quality_threshold": 0.5,
                "rejection_cost_femto": "1000", "repeats": 1, "tasks": tasks, "fingerprint": "f"}],
            "providers": [{"id": "p", "protocol": "openai", "base_url": "http://x/v1",
                "model": "m", "api_key_env": null, "price": null}]
        }))
        .unwrap();
        (plan.suites[0].clone(), plan.providers[0].clone())
    }

    #[test]
    fn grader_errors_are_paid_for_but_left_out_of_acceptance() {
        let mut acc = Acc::default();
        acc.add(&record(0, true, Some(GradeStatus::Accepted), 100));
        acc.add(&record(1, true, Some(GradeStatus::Rejected), 100));
        acc.add(&record(2, true, Some(GradeStatus::Error), 100));
        acc.add(&record(3, false, None, 0));
        let (s, p) = plans(4);
        let r = acc.finish(&s, &p, &AnalysisOptions::default()).figures;
        assert_eq!((r.accepted, r.grader_errors, r.unanswered), (1, 1, 1));
        // 1 accepted of 3 decided (the grader error is not a rejection of the provider).
        assert_eq!(r.acceptance.rate, Some(1.0 / 3.0));
        // Its cost is still paid: 300 femto of tokens + 2 rejections × 1000 femto.
        assert_eq!(r.cost_usd.total, Some(Money(2300).usd()));
        assert_eq!(r.cost_per_accepted_usd, Some(Money(2300).usd()));
    }

    #[test]
    fn pairing_matches_task_and_repeat_and_counts_the_rest() {
        let l = vec![
            test_facts(0, 0, Verdict::Accepted),
            test_facts(1, 0, Verdict::Rejected),
            test_facts(2, 0, Verdict::Accepted),
        ];
        let r = vec![
            test_facts(1, 0, Verdict::Accepted),
            test_facts(2, 0, Verdict::Rejected),
        ];
        let key = |o: &OutcomeFacts| (o.task_idx, o.repeat);
        let p = pair_sorted(&l, &r, key, key);
        assert_eq!(p.pairs.len(), 2);
        assert_eq!(p.pairs[0].0.task_idx, 1);
        assert_eq!(p.pairs[1].1.verdict, Verdict::Rejected);
        assert_eq!((p.unpaired_left, p.unpaired_right), (1, 0));
    }

    #[test]
    fn a_large_figures_only_row_lets_its_sample_go_and_keeps_the_delta_interval() {
        let tasks = DELTA_ABOVE_TASKS as u32 + 500;
        let mut ids: Vec<u32> = (0..tasks).collect();
        ids.sort_by_key(|i| format!("t{i}"));
        let records: Vec<OutcomeRecord> = ids
            .iter()
            .map(|&i| {
                let n = i as usize;
                let grade = if n.is_multiple_of(3) {
                    GradeStatus::Rejected
                } else {
                    GradeStatus::Accepted
                };
                record(i, true, Some(grade), 1000 + (n * 7919 % 2003) as i128)
            })
            .collect();
        let (s, p) = plans(u64::from(tasks));
        let opts = AnalysisOptions::default();
        let mut figures = Acc::new(Keep::Figures, s.rejection_cost_femto, tasks as usize);
        let mut full = Acc::new(Keep::Outcomes, s.rejection_cost_femto, tasks as usize);
        for r in &records {
            figures.add(r);
            full.add(r);
        }
        assert!(figures.sample_dropped && figures.sample.capacity() == 0);
        // Read in two parts, each under the limit, merged: the sample goes at the merge.
        let mut parts = records.chunks(records.len() / 2 + 1).map(|part| {
            let mut a = Acc::new(Keep::Figures, s.rejection_cost_femto, part.len());
            part.iter().for_each(|r| a.add(r));
            assert!(!a.sample_dropped);
            a
        });
        let (mut merged, second) = (parts.next().unwrap(), parts.next().unwrap());
        merged.merge(second);
        assert!(merged.sample_dropped && merged.sample.is_empty());
        let merged = merged.finish(&s, &p, &opts).figures.cost_per_accepted_ci;
        let (mut figures, full) = (
            figures.finish(&s, &p, &opts).figures,
            full.finish(&s, &p, &opts).figures,
        );
        let (a, b) = (&figures.cost_per_accepted_ci, &full.cost_per_accepted_ci);
        assert_eq!((a.method, b.method), ("delta-log", "delta-log"));
        // Summed in task id order rather than task position order: equal up to rounding.
        let close = |x: Option<f64>, y: Option<f64>| {
            let (x, y) = (x.unwrap(), y.unwrap());
            (x - y).abs() <= 1e-12 * y
        };
        assert!(
            close(a.low, b.low) && close(a.high, b.high),
            "{a:?} vs {b:?}"
        );
        assert!(
            close(merged.low, b.low) && close(merged.high, b.high),
            "{merged:?}"
        );
        figures.cost_per_accepted_ci = full.cost_per_accepted_ci.clone();
        assert_eq!(
            serde_json::to_string(&figures).unwrap(),
            serde_json::to_string(&full).unwrap()
        );
    }

    #[test]
    fn figures_only_rows_equal_the_rows_of_a_full_analysis() {
        // As the store streams them: task id then repeat order ("t10" before "t2"), which is
        // not task position order; costs vary so that the interval depends on the order.
        let mut ids: Vec<u32> = (0..60).collect();
        ids.sort_by_key(|i| format!("t{i}"));
        let grades = [
            Some(GradeStatus::Accepted),
            Some(GradeStatus::Rejected),
            Some(GradeStatus::Accepted),
            Some(GradeStatus::Error),
            None,
        ];
        let mut records = Vec::new();
        for &i in &ids {
            for repeat in 0..2 {
                let n = (i * 7 + repeat * 3) as usize;
                let mut r = record(
                    i,
                    !n.is_multiple_of(11),
                    grades[n % grades.len()],
                    1000 + (n * n) as i128,
                );
                r.repeat = repeat;
                r.latency_ms = Some(10.0 + (n % 13) as f64);
                // Main's later fields take part too: streamed first tokens, human labels
                // overriding the graders, judge costs added to the outcome's cost.
                r.ttft_ms = n.is_multiple_of(3).then_some(2.0 + (n % 5) as f64);
                r.human = n.is_multiple_of(17).then_some(n.is_multiple_of(2));
                r.judge_cost = n.is_multiple_of(4).then(|| Tally {
                    known: Money(300 + n as i128),
                    ..Tally::default()
                });
                r.grader_set = Some(if n.is_multiple_of(9) { "g2" } else { "g1" }.to_string());
                records.push(r);
            }
        }
        let (s, p) = plans(60);
        let opts = AnalysisOptions {
            bootstrap: 200,
            ..AnalysisOptions::default()
        };
        let row = |keep| {
            let mut acc = Acc::new(keep, s.rejection_cost_femto, 0);
            for r in &records {
                acc.add(r);
            }
            acc.finish(&s, &p, &opts)
        };
        let (full, figures) = (row(Keep::Outcomes), row(Keep::Figures));
        assert_eq!(full.outcomes.len(), 120);
        assert!(figures.outcomes.is_empty());
        assert!(full.figures.cost_per_accepted_ci.low.is_some());
        assert!(full.figures.ttft_ms.p50.is_some() && full.figures.human_labelled > 0);
        assert!(full.figures.cost_usd.judge.is_some());
        assert_eq!(full.graded, figures.graded);
        assert_eq!(
            serde_json::to_string(&full.figures).unwrap(),
            serde_json::to_string(&figures.figures).unwrap()
        );
    }

    /// A run of two suites (one with two repeats) and three providers, with retries, failures
    /// of several kinds, unknown costs, grades of every status with judges and two grader
    /// sets, human labels, an attempt of a task missing from the task list and one of a
    /// provider outside the plan. Returns the store and the run.
    fn stored_run(dir: &std::path::Path) -> (Store, RunInfo) {
        use crate::providers::Rate;
        use crate::store::labels::{LabelRow, OutcomeKey};
        use crate::store::{AttemptRow, Delivery, GradeRow, Ungraded, WriteOp, Writer};
        let db = dir.join("r.db");
        let mut store = Store::open(&db).unwrap();
        let (mut a, p) = plans(12);
        a.name = "a".into();
        a.repeats = 2;
        a.max_tokens = Some(16);
        let mut b = a.clone();
        b.name = "b".into();
        b.repeats = 1;
        b.tasks = 7;
        let rate = |s: &str| Rate::parse_per_million(s).unwrap();
        let providers: Vec<ProviderPlan> = ["p", "q", "r"]
            .iter()
            .map(|id| ProviderPlan {
                id: id.to_string(),
                price: Some(Price::new(rate("0.4"), rate("1.6"))),
                ..p.clone()
            })
            .collect();
        let plan = crate::store::RunPlan {
            suites: vec![a, b],
            providers,
        };
        // Ids in byte order are not in position order ("t10" before "t2").
        let tasks: Vec<(&str, usize, String)> = (0..12)
            .map(|i| ("a", i, format!("t{i}")))
            .chain((0..7).map(|i| ("b", i, format!("u{i}"))))
            .collect();
        let run_id = store
            .create_run(
                "k",
                "rw",
                &plan,
                tasks.iter().map(|(s, i, id)| (*s, *i, id.as_str(), "{}")),
            )
            .unwrap();
        let writer = Writer::start(&db, dir.join("spill")).unwrap();
        let tx = writer.sender();
        let mut slots: Vec<(String, String, String, u32)> = Vec::new();
        for provider in ["p", "q", "r", "outside"] {
            let ids = tasks
                .iter()
                .map(|(s, _, id)| (*s, id.clone()))
                .chain([("a", "missing".to_string()), ("a", "zz".to_string())]);
            for (n, (suite, id)) in ids.enumerate() {
                for repeat in 0..if suite == "a" { 2 } else { 1 } {
                    let n =
                        n * 3 + repeat as usize + provider.len() + provider.as_bytes()[0] as usize;
                    if n % 9 == 4 {
                        continue; // not attempted yet
                    }
                    let row = |try_no: u32| AttemptRow {
                        run_id,
                        suite: suite.into(),
                        provider: provider.into(),
                        task_id: id.clone(),
                        repeat,
                        try_no,
                        is_final: true,
                        latency_ms: 10.0 + (n % 17) as f64,
                        ..AttemptRow::default()
                    };
                    let mut try_no = 0;
                    if n % 4 == 1 {
                        // Each part's first message of a kind differs.
                        tx.blocking_send(WriteOp::Attempt(Box::new(AttemptRow {
                            delivery: Delivery::Refused,
                            http_status: Some(503),
                            error_kind: Some(ErrorKind::ServerError),
                            error_message: Some(format!("HTTP 503 at {n}")),
                            cost: Some(Money::ZERO),
                            spent: Some(Money::ZERO),
                            ..row(try_no)
                        })))
                        .unwrap();
                        try_no += 1;
                    }
                    if n % 7 == 3 {
                        // Sent and timed out: an unknown cost, bounded.
                        tx.blocking_send(WriteOp::Attempt(Box::new(AttemptRow {
                            delivery: Delivery::SentUnknown,
                            error_kind: Some(ErrorKind::Timeout),
                            error_message: Some(format!("timed out at {n}")),
                            cost_max: Some(Money(40_000_000_000 + n as i128)),
                            est_prompt_tokens: Some(100),
                            ..row(try_no)
                        })))
                        .unwrap();
                        try_no += 1;
                    }
                    let last = if n % 6 == 5 {
                        AttemptRow {
                            delivery: Delivery::Refused,
                            http_status: Some(429),
                            error_kind: Some(ErrorKind::RateLimited),
                            error_message: Some(format!("HTTP 429 at {n}")),
                            cost: Some(Money::ZERO),
                            spent: Some(Money::ZERO),
                            ..row(try_no)
                        }
                    } else {
                        let usage = Usage {
                            input: 20 + n as u64,
                            output: 3 + (n % 5) as u64,
                            ..Usage::default()
                        };
                        let cost = (n % 11 != 2).then(|| Money(1_000_000_000 * (1 + n as i128)));
                        slots.push((suite.into(), provider.into(), id.clone(), repeat));
                        AttemptRow {
                            delivery: Delivery::Answered,
                            http_status: Some(200),
                            answered: true,
                            usage: Some(usage),
                            cost,
                            spent: cost,
                            ttft_ms: n.is_multiple_of(3).then_some(2.0 + (n % 5) as f64),
                            output: Some("x".into()),
                            ..row(try_no)
                        }
                    };
                    tx.blocking_send(WriteOp::Attempt(Box::new(last))).unwrap();
                }
            }
        }
        drop(tx);
        writer.finish().unwrap();
        let statuses = [
            GradeStatus::Accepted,
            GradeStatus::Rejected,
            GradeStatus::Accepted,
            GradeStatus::Error,
        ];
        let ungraded: Vec<Ungraded> = slots
            .iter()
            .enumerate()
            .filter(|(n, _)| n % 10 != 9)
            .map(|(n, (suite, provider, task_id, repeat))| Ungraded {
                attempt_id: n as i64,
                suite: suite.clone(),
                provider: provider.clone(),
                task_id: task_id.clone(),
                repeat: *repeat,
                output: String::new(),
                vars: String::new(),
            })
            .collect();
        let grades: Vec<(&Ungraded, GradeRow)> = ungraded
            .iter()
            .map(|u| {
                let n = u.attempt_id as usize;
                let status = statuses[n * 7 % statuses.len()];
                let row = GradeRow {
                    attempt_id: u.attempt_id,
                    status,
                    error: None,
                    verdicts: "[]".into(),
                    judge_cost: n
                        .is_multiple_of(4)
                        .then(|| (Money(300 + n as i128), u64::from(n.is_multiple_of(8)))),
                    grader_set: Some(if n.is_multiple_of(9) { "g2" } else { "g1" }.into()),
                };
                (u, row)
            })
            .collect();
        store.put_grades(run_id, &grades).unwrap();
        let labels: Vec<LabelRow> = slots
            .iter()
            .enumerate()
            .filter(|(n, _)| n % 5 == 2)
            .flat_map(|(n, (suite, provider, task_id, repeat))| {
                let key = OutcomeKey {
                    suite: suite.clone(),
                    provider: provider.clone(),
                    task_id: task_id.clone(),
                    repeat: *repeat,
                };
                ["ann", "bo"].map(|rater| LabelRow {
                    key: key.clone(),
                    rater: rater.into(),
                    accepted: n % 3 != 0 || rater == "ann",
                    note: None,
                })
            })
            .collect();
        store.put_labels(run_id, &labels, "test").unwrap();
        let run = store.run(Some(run_id)).unwrap();
        (store, run)
    }

    /// Rows as the JSON report prints them, with their outcomes and graded counts.
    fn printed(rows: &[RowAnalysis]) -> Vec<String> {
        rows.iter()
            .map(|r| {
                format!(
                    "{} {:?} {:?}",
                    serde_json::to_string(&r.figures).unwrap(),
                    r.graded,
                    r.outcomes
                )
            })
            .collect()
    }

    #[test]
    fn a_run_read_in_parallel_parts_has_the_figures_of_one_scan() {
        let dir = tempfile::tempdir().unwrap();
        let (store, run) = stored_run(dir.path());
        let opts = AnalysisOptions {
            bootstrap: 200,
            ..AnalysisOptions::default()
        };
        // One part a row on one connection, as one scan in order read it; and parts of two
        // outcomes (several a row) on three.
        let one = Split {
            workers: 1,
            part_outcomes: u64::MAX,
        };
        let many = Split {
            workers: 3,
            part_outcomes: 2,
        };
        let index = store.outcome_index(run.id).unwrap();
        assert_eq!(index.split("a", "p", 12).len(), 12);
        let prices: HashMap<String, Price> = ["p", "r"]
            .iter()
            .map(|p| {
                let rate = |s: &str| crate::providers::Rate::parse_per_million(s).unwrap();
                (p.to_string(), Price::new(rate("0.8"), rate("3.2")))
            })
            .collect();
        let repriced = with_prices(run.clone(), &prices);
        let reprice = repricer(&repriced, &prices);
        for keep in [Keep::Outcomes, Keep::Figures] {
            for (run, reprice) in [(&run, None), (&repriced, Some(&reprice as &Reprice<'_>))] {
                let load = |split| {
                    RunAnalysis::load_split(&store, run.clone(), opts, reprice, keep, split)
                        .unwrap()
                };
                let (a, b) = (load(one), load(many));
                assert_eq!(a.rows.len(), 6);
                assert_eq!(printed(&a.rows), printed(&b.rows));
                assert_eq!(format!("{:?}", a.agreement), format!("{:?}", b.agreement));
            }
        }
        let a = RunAnalysis::before_after_split(&store, run.clone(), opts, &prices, one).unwrap();
        let b = RunAnalysis::before_after_split(&store, run.clone(), opts, &prices, many).unwrap();
        assert_eq!(printed(&a.0.rows), printed(&b.0.rows));
        assert_eq!(printed(&a.1.rows), printed(&b.1.rows));
        // What the run holds takes part: failures with messages, unknown costs, human labels,
        // judges, two grader sets, outcomes of a task missing from the task list (position 0).
        let figures = |s: &str, p: &str| &a.0.row(s, p).unwrap().figures;
        let p = figures("a", "p");
        assert!(p.failures.len() >= 3 && p.unpriced_calls > 0, "{p:?}");
        assert!(p.human_labelled > 0 && p.graders.len() == 2 && p.cost_usd.judge.is_some());
        assert!(p.cost_per_accepted_ci.low.is_some() && p.ttft_ms.p50.is_some());
        assert!(
            a.0.row("a", "q")
                .unwrap()
                .outcomes
                .iter()
                .filter(|o| o.task_idx == 0)
                .count()
                > 2
        );
        assert!(a.0.agreement.is_some());
        assert_ne!(printed(&a.0.rows), printed(&a.1.rows));
    }
}
