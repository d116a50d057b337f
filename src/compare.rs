//! Migration verdicts: may the candidate provider replace the incumbent?
//!
//! Decisions from [`RunAnalysis`] and `stats` only; this module never reads the store (the CLI
//! loads the analyses). Outcomes are paired on the same (suite, task, repeat): two providers of
//! one run ([`RunAnalysis::pair`]) or the incumbent of one run and the candidate of another run
//! of the same suite ([`RunAnalysis::pair_runs`], by suite name and task id, so a suite whose
//! graders changed between the runs still pairs).
//!
//! A pair counts when both outcomes are decided: an unanswered outcome is a rejection and pairs;
//! an outcome whose grader failed, or that is not graded or not attempted yet, breaks its pair and
//! is counted by reason (statistics.md §3.1, recommendation 4: errored items must not be silently
//! dropped).
//!
//! Per suite, and pooled per workload class when the class has several suites:
//!
//! - the difference in acceptance, candidate − incumbent: Tango's score interval with one
//!   outcome per task, a paired cluster bootstrap (whole tasks resampled) with repeats, since
//!   Tango assumes independent pairs;
//! - McNemar's mid-p (one outcome per task only), raw and Holm-adjusted over the suites of the
//!   workload the pooled verdict is drawn from;
//! - the non-inferiority verdict against a margin fixed before the run (the suite's `margin`,
//!   else [`DEFAULT_MARGIN`]; `--margin` overrides and the output says which), SUPERIOR when the
//!   interval's lower bound clears 0 (statistics.md §3.4);
//! - the saving per accepted outcome and the cost ratio with a paired BCa bootstrap that resamples
//!   the same tasks on both sides (statistics.md §3.5), or above [`DELTA_ABOVE_TASKS`](crate::analysis::DELTA_ABOVE_TASKS) tasks the
//!   paired delta method (as the report's row interval does there);
//! - when inconclusive, the paired tasks that would give a conclusive verdict with 80% power.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::analysis::{
    AnalysisOptions, OutcomeFacts, Pairing, RunAnalysis, Verdict, paired_cost_ci,
};
use crate::providers::{Money, Tally};
use crate::stats::{self, Estimate, Interval, Outcome, StatsError};
use crate::store::RunInfo;
use crate::store::plan::SuitePlan;

/// The margin used when neither the suite nor `--margin` sets one: two points of acceptance.
pub const DEFAULT_MARGIN: f64 = 0.02;

/// Power at which `tasks_needed` is computed.
const PLANNING_POWER: f64 = 0.8;

/// Why a comparison cannot be made: each is the user's input, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A provider id the run does not have.
    #[error("provider `{id}` is not in run {run}; that run's providers are: {known}")]
    UnknownProvider {
        /// The id asked for.
        id: String,
        /// The run searched.
        run: i64,
        /// The ids it has, comma-separated.
        known: String,
    },
    /// Incumbent and candidate are the same provider of the same run.
    #[error(
        "the incumbent and the candidate are both `{0}` of run {1}: a provider compared with itself decides nothing"
    )]
    SameProvider(String, i64),
    /// The two runs share no suite.
    #[error("runs {a} and {b} have no suite in common (run {a}: {suites_a}; run {b}: {suites_b})")]
    NoCommonSuite {
        /// Incumbent run.
        a: i64,
        /// Candidate run.
        b: i64,
        /// Suites of run a.
        suites_a: String,
        /// Suites of run b.
        suites_b: String,
    },
    /// `--suite` names a suite the compared runs do not share.
    #[error("suite `{suite}` is not among the suites compared ({known})")]
    UnknownSuite {
        /// The suite asked for.
        suite: String,
        /// The suites that can be compared.
        known: String,
    },
    /// A margin outside (0, 1).
    #[error("--margin must be above 0 and below 1 (got {0}); 0.02 means two points of acceptance")]
    BadMargin(f64),
}

impl CompareError {
    /// The fix to suggest.
    pub fn hint(&self) -> &'static str {
        match self {
            CompareError::UnknownProvider { .. } => {
                "pass one of the ids listed; `costbench runs` shows each run's providers"
            }
            CompareError::SameProvider(..) => {
                "name two different providers, or compare one provider across two runs with --runs ID_A ID_B"
            }
            CompareError::NoCommonSuite { .. } => {
                "compare two runs of the same suite; `costbench runs` lists each run's suites"
            }
            CompareError::UnknownSuite { .. } => {
                "pass one of the suites listed, or leave out --suite"
            }
            CompareError::BadMargin(_) => "give the margin as a share, e.g. --margin 0.02",
        }
    }
}

/// What to compare.
#[derive(Debug, Clone, Copy)]
pub struct CompareSpec<'a> {
    /// Provider id of the incumbent (in the incumbent's run).
    pub incumbent: &'a str,
    /// Provider id of the candidate (in the candidate's run).
    pub candidate: &'a str,
    /// Only this suite.
    pub suite: Option<&'a str>,
    /// `--margin`, overriding the suites' margins.
    pub margin: Option<f64>,
}

/// The three-way non-inferiority verdict, with superiority read off the same interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationVerdict {
    /// The interval's lower bound is above 0: the candidate accepts more.
    Superior,
    /// The interval's lower bound is above −margin.
    NonInferior,
    /// The interval straddles −margin.
    Inconclusive,
    /// The interval's upper bound is below −margin.
    Inferior,
}

impl std::fmt::Display for MigrationVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MigrationVerdict::Superior => "SUPERIOR",
            MigrationVerdict::NonInferior => "NON-INFERIOR",
            MigrationVerdict::Inconclusive => "INCONCLUSIVE",
            MigrationVerdict::Inferior => "INFERIOR",
        })
    }
}

/// Where a comparison's margin came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarginSource {
    /// The suite file's `margin` (pooled rows: the smallest of their suites').
    Suite,
    /// [`DEFAULT_MARGIN`].
    Default,
    /// `--margin`.
    Flag,
}

/// Outcomes that did not pair, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Unpaired {
    /// Pairs where a grader failed on either side.
    pub grader_error: u64,
    /// Pairs where either side is answered but not graded yet.
    pub ungraded: u64,
    /// Planned (task, repeat) slots that either side has not attempted yet.
    pub pending: u64,
    /// Outcomes of a (task, repeat) that only one of the two runs' suites has (tasks added or
    /// removed, repeats changed).
    pub not_in_both_runs: u64,
}

impl Unpaired {
    fn add(&mut self, o: &Unpaired) {
        self.grader_error += o.grader_error;
        self.ungraded += o.ungraded;
        self.pending += o.pending;
        self.not_in_both_runs += o.not_in_both_runs;
    }

    /// Whether every planned outcome paired.
    pub fn is_empty(&self) -> bool {
        *self == Unpaired::default()
    }
}

/// A figure for each side.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sides {
    /// The incumbent's.
    pub incumbent: Option<f64>,
    /// The candidate's.
    pub candidate: Option<f64>,
}

/// The difference in acceptance, candidate − incumbent, with its interval.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Difference {
    /// Point estimate.
    pub estimate: Option<f64>,
    /// Lower bound.
    pub low: Option<f64>,
    /// Upper bound.
    pub high: Option<f64>,
    /// `tango-score` (one outcome per task) or `paired-cluster-bootstrap` (repeats).
    pub method: &'static str,
}

/// One comparison: a suite, or a workload class pooled over its suites.
///
/// The JSON contract of `costbench compare --format json`, stable:
///
/// ```text
/// { "incumbent_run", "candidate_run", "confidence",
///   "comparisons": [ {
///     "suite",                 // null on a pooled row (all suites of the workload)
///     "workload", "incumbent", "candidate",
///     "paired",                // outcome pairs used
///     "tasks",                 // distinct tasks among them (the bootstrap's clusters)
///     "unpaired": {"grader_error","ungraded","pending","not_in_both_runs"},
///     "acceptance": {"incumbent","candidate"},          // over the paired outcomes
///     "acceptance_diff": {"estimate","low","high","method"},   // candidate − incumbent
///     "mcnemar_mid_p",         // null with repeats (McNemar needs independent pairs)
///     "mcnemar_mid_p_holm",    // Holm over the suites of the workload; null on pooled rows
///                              // and when the workload has one suite
///     "margin", "margin_source",                         // "suite" | "default" | "flag"
///     "verdict",               // "superior" | "non-inferior" | "inconclusive" | "inferior"
///     "cost_per_accepted_usd": {"incumbent","candidate"},
///     "saving_per_accepted_usd": {"estimate","low","high"},   // incumbent − candidate
///     "cost_ratio": {"estimate","low","high"},                 // candidate / incumbent
///     "cost_method",           // "paired-bca-bootstrap", or "paired-delta" above 20,000 tasks
///     "tasks_needed",          // paired tasks for 80% power of a conclusive verdict; null
///                              // unless inconclusive
///     "more_tasks",            // tasks_needed − tasks (at least 1); null likewise
///     "notes": [text] } ] }
/// ```
///
/// Intervals are two-sided at `confidence`; a `null` bound is unbounded (bootstrap resamples
/// in which a side accepted nothing) and a `null` estimate is undefined. Costs are the known
/// token costs plus each rejected outcome's rejection cost; a note says when a side has calls of
/// unknown cost. Pooled rows appear only for workloads with two or more compared suites.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Suite name; `None` on a pooled row.
    pub suite: Option<String>,
    /// Workload class.
    pub workload: String,
    /// Incumbent provider id.
    pub incumbent: String,
    /// Candidate provider id.
    pub candidate: String,
    /// Outcome pairs used.
    pub paired: u64,
    /// Distinct tasks among them.
    pub tasks: u64,
    /// Outcomes that did not pair, by reason.
    pub unpaired: Unpaired,
    /// Acceptance rates over the paired outcomes.
    pub acceptance: Sides,
    /// Candidate − incumbent acceptance, with its interval.
    pub acceptance_diff: Difference,
    /// McNemar mid-p (one outcome per task only).
    pub mcnemar_mid_p: Option<f64>,
    /// Holm-adjusted mid-p over the suites of the workload.
    pub mcnemar_mid_p_holm: Option<f64>,
    /// Non-inferiority margin.
    pub margin: f64,
    /// Where the margin came from.
    pub margin_source: MarginSource,
    /// The verdict.
    pub verdict: MigrationVerdict,
    /// Cost per accepted outcome of each side over the paired outcomes.
    pub cost_per_accepted_usd: Sides,
    /// Incumbent − candidate cost per accepted outcome, paired BCa bootstrap.
    pub saving_per_accepted_usd: Estimate,
    /// Candidate / incumbent cost per accepted outcome, paired BCa bootstrap.
    pub cost_ratio: Estimate,
    /// Method of the saving and ratio intervals: `paired-bca-bootstrap`, or `paired-delta`
    /// above [`DELTA_ABOVE_TASKS`](crate::analysis::DELTA_ABOVE_TASKS) tasks (the report's fast-path rule).
    pub cost_method: &'static str,
    /// Paired tasks for an 80% chance of a conclusive verdict (inconclusive only).
    pub tasks_needed: Option<u64>,
    /// tasks_needed − tasks.
    pub more_tasks: Option<u64>,
    /// Caveats: unknown costs, unpaired outcomes, missing p-values.
    pub notes: Vec<String>,
}

/// Every comparison of one `costbench compare`.
#[derive(Debug, Clone, Serialize)]
pub struct Comparisons {
    /// The incumbent's run.
    pub incumbent_run: i64,
    /// The candidate's run.
    pub candidate_run: i64,
    /// Confidence level of every interval.
    pub confidence: f64,
    /// Per suite, then pooled per workload.
    pub comparisons: Vec<Comparison>,
}

/// The statistics of one paired sample.
#[derive(Debug, Clone)]
pub struct Assessment {
    /// Acceptance, incumbent and candidate.
    pub acceptance: Sides,
    /// The verdict and what it rests on.
    pub decision: Decision,
    /// Cost per accepted, incumbent and candidate.
    pub cost_per_accepted: Sides,
    /// Incumbent − candidate cost per accepted.
    pub saving: Estimate,
    /// Candidate / incumbent cost per accepted.
    pub ratio: Estimate,
    /// The method of the saving and ratio intervals.
    pub cost_method: &'static str,
}

const NO_ESTIMATE: Estimate = Estimate {
    estimate: None,
    low: None,
    high: None,
};

const NO_SIDES: Sides = Sides {
    incumbent: None,
    candidate: None,
};

/// The acceptance side of a comparison: the interval, the test and the verdict.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Candidate − incumbent.
    pub difference: Interval,
    /// McNemar mid-p, with one outcome per task.
    pub mid_p: Option<f64>,
    /// The verdict at the margin.
    pub verdict: MigrationVerdict,
    /// Paired tasks for 80% power, when inconclusive.
    pub tasks_needed: Option<u64>,
    /// Distinct tasks.
    pub tasks: u64,
}

/// Decides on acceptance alone: `incumbent[i]` and `candidate[i]` are the same task and repeat.
/// Tango's score interval with one outcome per task, a paired cluster bootstrap with repeats.
pub fn decide(
    incumbent: &[Outcome],
    candidate: &[Outcome],
    margin: f64,
    opts: &AnalysisOptions,
) -> Result<Decision, StatsError> {
    let ni = stats::noninferiority_paired(
        candidate,
        incumbent,
        margin,
        opts.confidence,
        opts.bootstrap,
        opts.seed,
    )?;
    let d = ni.difference;
    let verdict = if d.low > 0.0 {
        MigrationVerdict::Superior
    } else {
        match ni.verdict {
            stats::Verdict::NonInferior => MigrationVerdict::NonInferior,
            stats::Verdict::Inferior => MigrationVerdict::Inferior,
            stats::Verdict::Inconclusive => MigrationVerdict::Inconclusive,
        }
    };
    let t = stats::PairedCounts::from_outcomes(candidate, incumbent)?;
    let independent = t.clusters == t.n;
    let tasks_needed = match verdict {
        MigrationVerdict::Inconclusive if independent => ni.tasks_for_80_power,
        MigrationVerdict::Inconclusive => tasks_for_power(&d, margin, t.clusters, opts.confidence),
        _ => None,
    };
    Ok(Decision {
        difference: d,
        mid_p: independent.then(|| stats::mcnemar(t.only_a, t.only_b).mid_p),
        verdict,
        tasks_needed,
        tasks: t.clusters,
    })
}

/// Assesses a paired sample: the [`Decision`] and the paired cost figures.
pub fn assess(
    incumbent: &[Outcome],
    candidate: &[Outcome],
    margin: f64,
    opts: &AnalysisOptions,
) -> Result<Assessment, StatsError> {
    let decision = decide(incumbent, candidate, margin, opts)?;
    let rate = |o: &[Outcome]| o.iter().filter(|x| x.accepted).count() as f64 / o.len() as f64;
    let paired = paired_cost_ci(candidate, incumbent, opts);
    let cost_method = paired.as_ref().map_or("paired-bca-bootstrap", |p| p.method);
    let (saving, ratio, cpa) = match paired {
        Ok(p) => (
            // Same seed, same indices: the saving's replicates are the exact negatives of the
            // difference's, and BCa is equivariant under negation.
            Estimate {
                estimate: p.difference.estimate.map(|e| -e),
                low: p.difference.high.map(|h| -h),
                high: p.difference.low.map(|l| -l),
            },
            p.ratio,
            Sides {
                incumbent: p.cost_per_accepted_b,
                candidate: p.cost_per_accepted_a,
            },
        ),
        Err(_) => (NO_ESTIMATE, NO_ESTIMATE, NO_SIDES),
    };
    Ok(Assessment {
        acceptance: Sides {
            incumbent: Some(rate(incumbent)),
            candidate: Some(rate(candidate)),
        },
        decision,
        cost_per_accepted: cpa,
        saving,
        ratio,
        cost_method,
    })
}

/// Tasks for a conclusive verdict with 80% power when the interval is a cluster bootstrap: the
/// per-task variance is read off the interval's width (se ≈ width / 2z), then
/// n = (z₁₋α/₂ + z₀.₈)²·v/(d + δ)² as in Miller (2024) §4.
fn tasks_for_power(d: &Interval, margin: f64, tasks: u64, confidence: f64) -> Option<u64> {
    let z = stats::z_two_sided(confidence).ok()?;
    let zb = stats::norm_quantile(PLANNING_POWER);
    let se = d.width() / (2.0 * z);
    let gap = (d.estimate + margin).abs();
    if gap == 0.0 || !se.is_finite() {
        return None;
    }
    let v = se * se * tasks as f64;
    Some(((z + zb).powi(2) * v / (gap * gap)).ceil().max(1.0) as u64)
}

/// One side of a comparison: a run and a provider of it.
struct Side<'a> {
    run: &'a RunAnalysis,
    provider: &'a str,
}

/// Compares the candidate (of `candidate_run`) with the incumbent (of `incumbent_run`; the same
/// analysis for a comparison within one run) on every suite both runs have.
pub fn compare(
    incumbent_run: &RunAnalysis,
    candidate_run: &RunAnalysis,
    spec: &CompareSpec<'_>,
) -> Result<Comparisons, CompareError> {
    let common = check(&incumbent_run.run, &candidate_run.run, spec)?;
    let same_run = incumbent_run.run.id == candidate_run.run.id;
    let plan_c = &candidate_run.run.plan;
    let suites: Vec<&SuitePlan> = common
        .into_iter()
        .filter(|s| spec.suite.is_none_or(|name| s.name == name))
        .collect();
    let inc = Side {
        run: incumbent_run,
        provider: spec.incumbent,
    };
    let cand = Side {
        run: candidate_run,
        provider: spec.candidate,
    };
    let opts = incumbent_run.options;

    let mut rows = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    for s in &suites {
        let sample = sample(&inc, &cand, s, plan_c.suite(&s.name).unwrap_or(s), same_run);
        let (margin, source) = margin_of(spec.margin, s.margin);
        rows.push(comparison(
            Some(s.name.clone()),
            s.workload.clone(),
            spec,
            &sample,
            margin,
            source,
            &opts,
        ));
        samples.push(sample);
    }

    // Pooled per workload, with Holm over the workload's suites.
    let mut workloads: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in suites.iter().enumerate() {
        workloads.entry(s.workload.as_str()).or_default().push(i);
    }
    let mut pooled_rows = Vec::new();
    for (workload, idx) in workloads {
        if idx.len() < 2 {
            continue;
        }
        let with_p: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| rows[i].mcnemar_mid_p.is_some())
            .collect();
        let p: Vec<f64> = with_p
            .iter()
            .filter_map(|&i| rows[i].mcnemar_mid_p)
            .collect();
        if let Ok(adj) = stats::holm(&p, 1.0 - opts.confidence) {
            for (&i, a) in with_p.iter().zip(adj.adjusted) {
                rows[i].mcnemar_mid_p_holm = Some(a);
            }
        }
        let pooled = pool(idx.iter().map(|&i| &samples[i]));
        let suite_margins: Vec<f64> = idx.iter().filter_map(|&i| suites[i].margin).collect();
        let strictest = suite_margins.iter().copied().reduce(f64::min);
        let (margin, source) = margin_of(spec.margin, strictest);
        let mut row = comparison(
            None,
            workload.to_string(),
            spec,
            &pooled,
            margin,
            source,
            &opts,
        );
        row.notes.insert(
            0,
            format!(
                "pooled over {} suites: {}",
                idx.len(),
                join(idx.iter().map(|&i| suites[i].name.as_str()))
            ),
        );
        pooled_rows.push(row);
    }
    rows.extend(pooled_rows);
    Ok(Comparisons {
        incumbent_run: incumbent_run.run.id,
        candidate_run: candidate_run.run.id,
        confidence: opts.confidence,
        comparisons: rows,
    })
}

/// Checks a comparison against the two runs' plans (cheap, so the CLI calls it before loading
/// the analyses): both providers exist, they differ within one run, the margin is in (0, 1),
/// the runs share a suite. Returns the shared suites, in the incumbent run's order.
pub fn check<'a>(
    incumbent: &'a RunInfo,
    candidate: &RunInfo,
    spec: &CompareSpec<'_>,
) -> Result<Vec<&'a SuitePlan>, CompareError> {
    for (run, id) in [(incumbent, spec.incumbent), (candidate, spec.candidate)] {
        if run.plan.provider(id).is_none() {
            return Err(CompareError::UnknownProvider {
                id: id.to_string(),
                run: run.id,
                known: join(run.plan.providers.iter().map(|p| p.id.as_str())),
            });
        }
    }
    if incumbent.id == candidate.id && spec.incumbent == spec.candidate {
        return Err(CompareError::SameProvider(
            spec.incumbent.to_string(),
            incumbent.id,
        ));
    }
    if let Some(m) = spec.margin
        && !(m > 0.0 && m < 1.0)
    {
        return Err(CompareError::BadMargin(m));
    }
    let common: Vec<&SuitePlan> = incumbent
        .plan
        .suites
        .iter()
        .filter(|s| candidate.plan.suite(&s.name).is_some())
        .collect();
    if common.is_empty() {
        return Err(CompareError::NoCommonSuite {
            a: incumbent.id,
            b: candidate.id,
            suites_a: join(incumbent.plan.suites.iter().map(|s| s.name.as_str())),
            suites_b: join(candidate.plan.suites.iter().map(|s| s.name.as_str())),
        });
    }
    if let Some(name) = spec.suite
        && !common.iter().any(|s| s.name == name)
    {
        return Err(CompareError::UnknownSuite {
            suite: name.to_string(),
            known: join(common.iter().map(|s| s.name.as_str())),
        });
    }
    Ok(common)
}

/// The margin and where it came from: the flag, else the suite's, else the default.
fn margin_of(flag: Option<f64>, suite: Option<f64>) -> (f64, MarginSource) {
    match (flag, suite) {
        (Some(m), _) => (m, MarginSource::Flag),
        (None, Some(m)) => (m, MarginSource::Suite),
        (None, None) => (DEFAULT_MARGIN, MarginSource::Default),
    }
}

fn join<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

/// The paired outcomes of one suite (or a pool of suites), ready for the statistics.
#[derive(Debug, Clone, Default)]
struct Sample {
    incumbent: Vec<Outcome>,
    candidate: Vec<Outcome>,
    unpaired: Unpaired,
    /// Each side's token cost, known and unknown (to tell "some unknown" from "none known").
    unknown: [Tally; 2],
}

/// An outcome for the statistics: its known cost plus the rejection cost when rejected.
fn outcome(o: &OutcomeFacts, task: u32, rejection: Money) -> Outcome {
    let rejected = !o.accepted();
    Outcome {
        task,
        accepted: o.accepted(),
        cost: o
            .known_cost
            .plus(if rejected { rejection } else { Money::ZERO })
            .usd(),
    }
}

/// Pairs one suite and sorts what did not pair by reason.
fn sample(
    inc: &Side<'_>,
    cand: &Side<'_>,
    si: &SuitePlan,
    sc: &SuitePlan,
    same_run: bool,
) -> Sample {
    let pairing: Option<Pairing<'_>> = if same_run {
        inc.run.pair(&si.name, inc.provider, cand.provider)
    } else {
        inc.run
            .pair_runs(cand.run, &si.name, inc.provider, cand.provider)
    };
    let mut s = Sample::default();
    // The (task, repeat) slots both plans have, and those only one has.
    let (common, only_one) = if same_run {
        (si.tasks * u64::from(si.repeats), 0)
    } else {
        let ids = |r: &RunAnalysis| -> HashSet<String> {
            r.task_ids
                .get(&si.name)
                .map(|v| v.iter().cloned().collect())
                .unwrap_or_default()
        };
        let (a, b) = (ids(inc.run), ids(cand.run));
        let shared = a.intersection(&b).count() as u64;
        let common = shared * u64::from(si.repeats.min(sc.repeats));
        let all = si.tasks * u64::from(si.repeats) + sc.tasks * u64::from(sc.repeats);
        (common, all.saturating_sub(2 * common))
    };
    if let Some(p) = pairing {
        for (l, r) in &p.pairs {
            match (l.verdict, r.verdict) {
                (Verdict::GraderError, _) | (_, Verdict::GraderError) => {
                    s.unpaired.grader_error += 1
                }
                (a, b) if !a.decided() || !b.decided() => s.unpaired.ungraded += 1,
                _ => {
                    s.incumbent
                        .push(outcome(l, l.task_idx, si.rejection_cost_femto));
                    s.candidate
                        .push(outcome(r, l.task_idx, sc.rejection_cost_femto));
                    s.unknown[0].merge(&l.cost());
                    s.unknown[1].merge(&r.cost());
                }
            }
        }
    }
    let used = s.incumbent.len() as u64 + s.unpaired.grader_error + s.unpaired.ungraded;
    s.unpaired.pending = common.saturating_sub(used);
    s.unpaired.not_in_both_runs = only_one;
    s
}

/// Several suites' samples as one, each suite's tasks kept as distinct clusters.
fn pool<'a>(samples: impl Iterator<Item = &'a Sample>) -> Sample {
    let mut out = Sample::default();
    let mut offset: u32 = 0;
    for s in samples {
        let shift = |o: &Outcome| Outcome {
            task: offset.saturating_add(o.task),
            ..*o
        };
        out.incumbent.extend(s.incumbent.iter().map(shift));
        out.candidate.extend(s.candidate.iter().map(shift));
        out.unpaired.add(&s.unpaired);
        for (o, u) in out.unknown.iter_mut().zip(&s.unknown) {
            o.merge(u);
        }
        let top = s
            .incumbent
            .iter()
            .map(|o| o.task)
            .max()
            .map_or(0, |t| t + 1);
        offset = offset.saturating_add(top);
    }
    out
}

/// Builds one comparison row from a paired sample.
fn comparison(
    suite: Option<String>,
    workload: String,
    spec: &CompareSpec<'_>,
    s: &Sample,
    margin: f64,
    margin_source: MarginSource,
    opts: &AnalysisOptions,
) -> Comparison {
    let mut notes = Vec::new();
    let mut a = if s.incumbent.is_empty() {
        notes.push("no outcome paired: nothing to decide on".to_string());
        None
    } else {
        match assess(&s.incumbent, &s.candidate, margin, opts) {
            Ok(a) => Some(a),
            Err(e) => {
                notes.push(format!("the statistics could not be computed: {e}"));
                None
            }
        }
    };
    // A side whose every priced figure is unknown would look free: no cost comparison then.
    let costless = s
        .unknown
        .iter()
        .any(|u| u.unknown > 0 && u.known == Money::ZERO);
    if let Some(a) = a.as_mut().filter(|_| costless) {
        a.saving = NO_ESTIMATE;
        a.ratio = NO_ESTIMATE;
        a.cost_per_accepted = NO_SIDES;
        notes.push(
            "no cost is known on one side (no price, or no usage reported): the saving and the \
             cost ratio are not computed"
                .into(),
        );
    }
    if !s.unpaired.is_empty() {
        notes.push(unpaired_note(&s.unpaired));
    }
    if let Some(a) = &a
        && a.decision.mid_p.is_none()
    {
        notes.push(
            "repeats per task: the interval is a paired cluster bootstrap and no McNemar p is \
             given (it assumes independent pairs)"
                .into(),
        );
    }
    for (who, u) in [
        (spec.incumbent, &s.unknown[0]),
        (spec.candidate, &s.unknown[1]),
    ] {
        if u.unknown > 0 {
            let bound = match u.unknown_max() {
                None => "with no bound (a call without a completion cap or a price)".to_string(),
                Some(max) => format!("at most {max} in all"),
            };
            notes.push(format!(
                "{who}: {} call(s) of unknown cost are left out of its cost per accepted ({bound})",
                u.unknown
            ));
        }
    }
    let method = match &a {
        Some(a) => a.decision.difference.method,
        None => "tango-score",
    };
    let tasks = a.as_ref().map_or(0, |a| a.decision.tasks);
    let tasks_needed = a.as_ref().and_then(|a| a.decision.tasks_needed);
    Comparison {
        suite,
        workload,
        incumbent: spec.incumbent.to_string(),
        candidate: spec.candidate.to_string(),
        paired: s.incumbent.len() as u64,
        tasks,
        unpaired: s.unpaired,
        acceptance: a.as_ref().map_or(NO_SIDES, |a| a.acceptance),
        acceptance_diff: Difference {
            estimate: a.as_ref().map(|a| a.decision.difference.estimate),
            low: a.as_ref().map(|a| a.decision.difference.low),
            high: a.as_ref().map(|a| a.decision.difference.high),
            method,
        },
        mcnemar_mid_p: a.as_ref().and_then(|a| a.decision.mid_p),
        mcnemar_mid_p_holm: None,
        margin,
        margin_source,
        verdict: a
            .as_ref()
            .map_or(MigrationVerdict::Inconclusive, |a| a.decision.verdict),
        cost_per_accepted_usd: a.as_ref().map_or(NO_SIDES, |a| a.cost_per_accepted),
        saving_per_accepted_usd: a.as_ref().map_or(NO_ESTIMATE, |a| a.saving),
        cost_ratio: a.as_ref().map_or(NO_ESTIMATE, |a| a.ratio),
        cost_method: a.as_ref().map_or("paired-bca-bootstrap", |a| a.cost_method),
        tasks_needed,
        more_tasks: tasks_needed.map(|n| n.saturating_sub(tasks).max(1)),
        notes,
    }
}

/// "not paired: 2 grader error, 1 pending".
fn unpaired_note(u: &Unpaired) -> String {
    let parts: Vec<String> = [
        (
            u.grader_error,
            "with a grader error on either side (left out of acceptance)",
        ),
        (u.ungraded, "not graded yet on either side"),
        (u.pending, "not attempted yet on either side"),
        (u.not_in_both_runs, "of a task or repeat only one run has"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, why)| format!("{n} {why}"))
    .collect();
    format!("outcomes not paired: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::rng::Rng;

    /// One simulated suite: `tasks` tasks of varied difficulty, `repeats` samples each; the
    /// candidate's chance on each task is the incumbent's plus `shift`.
    fn suite(tasks: u32, repeats: u32, shift: f64, seed: u64) -> (Vec<Outcome>, Vec<Outcome>) {
        let mut r = Rng::stream(seed, 0);
        let (mut inc, mut cand) = (Vec::new(), Vec::new());
        for task in 0..tasks {
            // Difficulty between 0.5 and 1: the acceptance range where migrations are decided.
            let p = 0.5 + 0.5 * r.uniform();
            for _ in 0..repeats {
                let cost = 0.001 * r.normal().exp();
                inc.push(Outcome {
                    task,
                    accepted: r.bernoulli(p),
                    cost,
                });
                cand.push(Outcome {
                    task,
                    accepted: r.bernoulli((p + shift).clamp(0.0, 1.0)),
                    cost: cost / 2.0,
                });
            }
        }
        (inc, cand)
    }

    /// Share of `n` simulated suites with each verdict.
    fn verdict_shares(
        n: u64,
        tasks: u32,
        repeats: u32,
        shift: f64,
        opts: &AnalysisOptions,
    ) -> BTreeMap<String, f64> {
        let mut counts: BTreeMap<String, f64> = BTreeMap::new();
        for i in 0..n {
            let (inc, cand) = suite(tasks, repeats, shift, 0xA0A0 + i);
            let d = decide(&inc, &cand, DEFAULT_MARGIN, opts).unwrap();
            *counts.entry(d.verdict.to_string()).or_default() += 1.0 / n as f64;
        }
        counts
    }

    fn share(m: &BTreeMap<String, f64>, v: MigrationVerdict) -> f64 {
        m.get(&v.to_string()).copied().unwrap_or(0.0)
    }

    #[test]
    fn a_a_comparisons_rarely_claim_a_difference() {
        // Two identical providers: SUPERIOR or INFERIOR is a false alarm. One outcome per task
        // (Tango), 2,000 seeded suites of 200 tasks. Measured: see the assertion message.
        let opts = AnalysisOptions::default();
        let m = verdict_shares(2000, 200, 1, 0.0, &opts);
        let alarms = share(&m, MigrationVerdict::Superior) + share(&m, MigrationVerdict::Inferior);
        println!("A/A, one outcome per task: {m:?}");
        assert!(alarms <= 0.055, "{m:?}");
        // With 3 repeats per task the paired cluster bootstrap decides; 300 suites of 100 tasks.
        let opts = AnalysisOptions {
            bootstrap: 500,
            ..opts
        };
        let m = verdict_shares(300, 100, 3, 0.0, &opts);
        let alarms = share(&m, MigrationVerdict::Superior) + share(&m, MigrationVerdict::Inferior);
        println!("A/A, 3 repeats: {m:?}");
        assert!(alarms <= 0.055, "{m:?}");
    }

    #[test]
    fn a_candidate_worse_by_the_margin_is_rarely_called_non_inferior() {
        // At the boundary of H0 (true difference −margin) NON-INFERIOR is the type I error of
        // the non-inferiority test: nominally 2.5% (one-sided bound of a 95% interval).
        let opts = AnalysisOptions::default();
        let m = verdict_shares(2000, 200, 1, -DEFAULT_MARGIN, &opts);
        let wrong =
            share(&m, MigrationVerdict::NonInferior) + share(&m, MigrationVerdict::Superior);
        println!("candidate worse by the margin: {m:?}");
        assert!(wrong <= 0.055, "{m:?}");
    }

    #[test]
    fn bootstrap_tasks_needed_agree_with_tango_roughly() {
        // Same data as one outcome per task and as three identical repeats: the planning figure
        // read off the bootstrap interval's width is near the closed form.
        let mk = |acc: &[bool], rep: u32| -> Vec<Outcome> {
            acc.iter()
                .enumerate()
                .flat_map(|(t, &a)| {
                    (0..rep).map(move |_| Outcome {
                        task: t as u32,
                        accepted: a,
                        cost: 0.1,
                    })
                })
                .collect()
        };
        // statistics.md §3.4: n = 400, incumbent-only 30, candidate-only 22.
        let inc: Vec<bool> = (0..400).map(|i| i < 330).collect();
        let cand: Vec<bool> = (0..400)
            .map(|i| i < 300 || (330..352).contains(&i))
            .collect();
        let opts = AnalysisOptions::default();
        let margin = 0.05;
        let one = decide(&mk(&inc, 1), &mk(&cand, 1), margin, &opts).unwrap();
        assert_eq!(one.tasks_needed, Some(1131));
        let rep = decide(&mk(&inc, 3), &mk(&cand, 3), margin, &opts).unwrap();
        assert_eq!(rep.difference.method, "paired-cluster-bootstrap");
        assert_eq!(rep.verdict, MigrationVerdict::Inconclusive);
        let n = rep.tasks_needed.unwrap() as f64;
        println!("tasks needed: Tango 1131, cluster bootstrap {n}");
        assert!((n / 1131.0 - 1.0).abs() < 0.15, "{n}");
    }

    #[test]
    fn margins_come_from_the_flag_then_the_suite_then_the_default() {
        assert_eq!(margin_of(Some(0.1), Some(0.05)), (0.1, MarginSource::Flag));
        assert_eq!(margin_of(None, Some(0.05)), (0.05, MarginSource::Suite));
        assert_eq!(
            margin_of(None, None),
            (DEFAULT_MARGIN, MarginSource::Default)
        );
    }
}
