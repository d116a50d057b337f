//! The CI regression gate: a stored run against a committed [`Baseline`].
//!
//! Decisions from [`RunAnalysis`] and `stats` only; the CLI loads the analyses. For every suite ×
//! provider of the baseline, outcomes are paired with the run's on the same task id and repeat,
//! and two checks are made:
//!
//! - **acceptance**: the drop (baseline − run) with Tango's score interval (a paired cluster
//!   bootstrap with repeats), tested with McNemar's mid-p (a paired cluster-bootstrap p with
//!   repeats, where McNemar's pairs are not independent);
//! - **cost per accepted outcome**: the ratio run / baseline with a paired BCa bootstrap
//!   resampling the same tasks on both sides, tested with the bootstrap p of ratio = 1; above
//!   20,000 tasks, as in `compare`, the paired delta method on the log scale and its z-test.
//!
//! Every p-value of the run is adjusted with Holm over all the checks (statistics.md §3.6: the
//! family is fixed before looking). A check FAILS only when the regression is both significant
//! after Holm and larger than the practical threshold over its whole interval (criterion's
//! two-stage verdict, `compare_to_threshold`); it PASSES when its interval rules out a regression
//! beyond the threshold; otherwise it is INCONCLUSIVE, with the paired tasks a conclusive verdict
//! would need (80% power at the observed effect). Only a FAIL fails the gate (exit 3).
//!
//! When a provider's price differs from the baseline's, the run is also priced at the
//! baseline's prices (the store keeps usage; see `reprice`), and a cost increase that goes away
//! there is named as caused by the price change alone.

use std::collections::HashMap;

use serde::Serialize;

use crate::analysis::{self, AnalysisOptions, OutcomeFacts, RowAnalysis, RunAnalysis};
use crate::baseline::{Baseline, BaselineOutcome, BaselineRow, RoutedClass};
use crate::compare::{self, MigrationVerdict};
use crate::providers::{Money, Price, Rate};
use crate::route::{self, RouteInput};
use crate::stats::{self, Outcome};
use crate::store::RunInfo;

/// Power at which `tasks_needed` is computed.
const PLANNING_POWER: f64 = 0.8;

/// Most missing outcomes an error lists.
const LIST_MISSING: usize = 5;

/// The practical thresholds.
#[derive(Debug, Clone, Copy)]
pub struct GateSpec {
    /// Largest acceptable drop in acceptance, as a share (0.02 = two points).
    pub max_acceptance_drop: f64,
    /// Largest acceptable relative increase in cost per accepted outcome (0.10 = 10%).
    pub max_cost_increase: f64,
}

/// Why the gate cannot run: each is the user's input (exit 2), with the fix.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// A threshold outside its range.
    #[error("{0}")]
    BadThreshold(String),
    /// The run lacks suites, providers or outcomes the baseline has.
    #[error("run {run} does not cover the baseline (saved from run {baseline_run}): {what}")]
    NotCovered {
        /// The gated run.
        run: i64,
        /// The baseline's run.
        baseline_run: i64,
        /// What is missing.
        what: String,
    },
}

impl GateError {
    /// The fix to suggest.
    pub fn hint(&self) -> &'static str {
        match self {
            GateError::BadThreshold(_) => {
                "e.g. --max-acceptance-drop 0.02 (two points) --max-cost-increase 0.10 (10%)"
            }
            GateError::NotCovered { .. } => {
                "gate a run of the baseline's suites and providers (same task ids and repeats), or, if the suites changed on purpose, run `costbench baseline save --run ID --out FILE` on a run you trust"
            }
        }
    }
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// The interval rules out a regression beyond the threshold.
    Pass,
    /// Significant after Holm, and the whole interval is beyond the threshold.
    Fail,
    /// Neither: not enough paired tasks to tell.
    Inconclusive,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Inconclusive => "INCONCLUSIVE",
        })
    }
}

/// What a check measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Acceptance rate; the change is the drop, baseline − run.
    Acceptance,
    /// Cost per accepted outcome; the change is the ratio run / baseline.
    CostPerAccepted,
    /// A class's routed provider (or cascade) still qualifies: its acceptance interval in the
    /// run against the class's quality threshold.
    Routed,
}

impl Metric {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Acceptance => "acceptance",
            Metric::CostPerAccepted => "cost per accepted",
            Metric::Routed => "routed choice qualifies",
        }
    }
}

/// A change with its interval (`None`: undefined, or an unbounded side).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Change {
    /// Point estimate.
    pub estimate: Option<f64>,
    /// Lower bound.
    pub low: Option<f64>,
    /// Upper bound.
    pub high: Option<f64>,
    /// Interval method.
    pub method: &'static str,
}

/// A provider whose price differs from the baseline's, and what the cost did without it.
#[derive(Debug, Clone, Serialize)]
pub struct PriceChange {
    /// Each changed rate, `output $1.6/1M → $3.2/1M`.
    pub changes: Vec<String>,
    /// The ratio run / baseline with the run priced at the baseline's prices.
    pub ratio_at_baseline_prices: Change,
    /// Whether the increase beyond the threshold goes away at the baseline's prices.
    pub price_only: bool,
}

/// One check of the gate.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Suite name.
    pub suite: String,
    /// Provider id.
    pub provider: String,
    /// Workload class.
    pub workload: String,
    /// What is measured.
    pub metric: Metric,
    /// The verdict.
    pub status: Status,
    /// Outcome pairs used.
    pub paired: u64,
    /// Distinct tasks among them.
    pub tasks: u64,
    /// The baseline's figure over the pairs (acceptance rate, or USD per accepted).
    pub baseline: Option<f64>,
    /// The run's figure over the pairs.
    pub run: Option<f64>,
    /// Acceptance: drop (baseline − run); cost: ratio (run / baseline).
    pub change: Change,
    /// The practical threshold on `change` (a drop, or a ratio 1 + max increase).
    pub threshold: f64,
    /// The significance test.
    pub test: &'static str,
    /// Its two-sided p-value.
    pub p_value: Option<f64>,
    /// Holm-adjusted over every check of the gate.
    pub p_holm: Option<f64>,
    /// Paired tasks for an 80% chance of a conclusive verdict (inconclusive checks).
    pub tasks_needed: Option<u64>,
    /// Set when the provider's price differs from the baseline's (cost checks).
    pub price_change: Option<PriceChange>,
    /// Caveats.
    pub notes: Vec<String>,
}

/// The gate's result: what the text, markdown and JUnit outputs render (serializable, though
/// no JSON output is offered yet).
#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    /// The baseline's source run.
    pub baseline_run: i64,
    /// The gated run.
    pub run: i64,
    /// Confidence level of every interval; α = 1 − confidence for the tests.
    pub confidence: f64,
    /// The thresholds.
    pub max_acceptance_drop: f64,
    /// The thresholds.
    pub max_cost_increase: f64,
    /// Every check.
    pub checks: Vec<Check>,
    /// Gate-wide notes (what was not gated).
    pub notes: Vec<String>,
}

impl GateReport {
    /// FAIL if a check failed, else INCONCLUSIVE if one was, else PASS.
    pub fn status(&self) -> Status {
        let any = |s: Status| self.checks.iter().any(|c| c.status == s);
        if any(Status::Fail) {
            Status::Fail
        } else if any(Status::Inconclusive) {
            Status::Inconclusive
        } else {
            Status::Pass
        }
    }

    /// Checks with a given status.
    pub fn count(&self, s: Status) -> usize {
        self.checks.iter().filter(|c| c.status == s).count()
    }
}

/// Checks the thresholds, and that the run has every suite and provider of the baseline with
/// the same repeats (cheap: before the analysis is loaded).
pub fn check_plan(baseline: &Baseline, run: &RunInfo, spec: &GateSpec) -> Result<(), GateError> {
    let d = spec.max_acceptance_drop;
    if !(d > 0.0 && d < 1.0) {
        return Err(GateError::BadThreshold(format!(
            "--max-acceptance-drop must be above 0 and below 1 (got {d}); 0.02 means two points"
        )));
    }
    let c = spec.max_cost_increase;
    if !(c > 0.0 && c.is_finite()) {
        return Err(GateError::BadThreshold(format!(
            "--max-cost-increase must be above 0 (got {c}); 0.10 means 10%"
        )));
    }
    let not_covered = |what: String| GateError::NotCovered {
        run: run.id,
        baseline_run: baseline.run.id,
        what,
    };
    for s in &baseline.suites {
        let Some(rs) = run.plan.suite(&s.name) else {
            return Err(not_covered(format!(
                "it has no suite `{}` (it has: {})",
                s.name,
                join(run.plan.suites.iter().map(|s| s.name.as_str()))
            )));
        };
        if rs.repeats < s.repeats {
            return Err(not_covered(format!(
                "suite `{}` has {} repeats, the baseline {}",
                s.name, rs.repeats, s.repeats
            )));
        }
    }
    for r in &baseline.rows {
        if run.plan.provider(&r.provider).is_none() {
            return Err(not_covered(format!(
                "it has no provider `{}` (it has: {})",
                r.provider,
                join(run.plan.providers.iter().map(|p| p.id.as_str()))
            )));
        }
    }
    Ok(())
}

/// The baseline's price of every provider whose price in the run differs: what the run is
/// priced at again to tell a price change from a usage change.
pub fn changed_prices(baseline: &Baseline, run: &RunInfo) -> HashMap<String, Price> {
    baseline
        .providers
        .iter()
        .filter_map(|b| {
            let price = b.price.as_ref()?;
            let now = run.plan.provider(&b.id)?;
            (now.price.as_ref() != Some(price)).then(|| (b.id.clone(), price.clone()))
        })
        .collect()
}

/// Gates `run` against `baseline`; `at_baseline_prices` is the run priced at the baseline's
/// prices ([`changed_prices`]), when some price changed.
///
/// `routes` is the run lined up for routing, needed when the baseline lists routed classes
/// (each is measured again on the run: [`routed_check`]).
pub fn gate(
    baseline: &Baseline,
    run: &RunAnalysis,
    at_baseline_prices: Option<&RunAnalysis>,
    routes: Option<&RouteInput>,
    spec: &GateSpec,
) -> Result<GateReport, GateError> {
    check_plan(baseline, &run.run, spec)?;
    let opts = run.options;
    let changed = changed_prices(baseline, &run.run);
    let mut pending = Vec::new();
    for b in &baseline.rows {
        let Some(now) = run_side(run, b) else {
            continue; // check_plan has made sure it is there
        };
        let base_rejection = baseline
            .suite(&b.suite)
            .map_or(Money::ZERO, |s| s.rejection_cost_femto);
        let pairs = pair(b, base_rejection, &now).map_err(|missing| GateError::NotCovered {
            run: run.run.id,
            baseline_run: baseline.run.id,
            what: format!(
                "suite `{}`, provider `{}`: {} baseline outcomes have no attempted outcome in the run (first: {})",
                b.suite,
                b.provider,
                missing.len(),
                missing
                    .iter()
                    .take(LIST_MISSING)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        let workload = now.row.figures.workload.clone();
        pending.push(acceptance_check(b, &workload, &pairs, spec, &opts));
        let mut cost = cost_check(b, &workload, &pairs, spec, &opts);
        if let (Some(base_price), Some(repriced)) = (
            changed.get(&b.provider),
            at_baseline_prices.and_then(|a| run_side(a, b)),
        ) {
            let run_price = run
                .run
                .plan
                .provider(&b.provider)
                .and_then(|p| p.price.as_ref());
            cost.check.price_change = Some(price_change(
                base_price,
                run_price,
                &cost.check,
                &pair(b, base_rejection, &repriced).unwrap_or_else(|_| pairs.clone()),
                &opts,
            ));
        }
        pending.push(cost);
    }
    let mut notes = Vec::new();
    for r in &run.rows {
        let f = &r.figures;
        if !baseline
            .rows
            .iter()
            .any(|b| b.suite == f.suite && b.provider == f.provider)
        {
            notes.push(format!(
                "suite `{}`, provider `{}` is not in the baseline: not gated",
                f.suite, f.provider
            ));
        }
    }
    for s in &baseline.suites {
        if run
            .run
            .plan
            .suite(&s.name)
            .is_some_and(|r| r.fingerprint != s.fingerprint)
        {
            notes.push(format!(
                "suite `{}` changed since the baseline (prompt, params, tasks or repeats): outcomes are paired by task id and repeat",
                s.name
            ));
        }
    }
    let mut checks = decide(pending, opts.confidence);
    match (&baseline.routes, routes) {
        (None, _) => notes.push(
            "the baseline lists no routed classes (saved before routes were kept): re-save it to gate the routing too".into(),
        ),
        (Some(r), Some(input)) => checks.extend(r.iter().map(|r| routed_check(r, input, &opts))),
        (Some(r), None) if !r.is_empty() => notes.push(
            "the baseline lists routed classes, but the run was not lined up for routing: they are not gated".into(),
        ),
        (Some(_), None) => {}
    }
    Ok(GateReport {
        baseline_run: baseline.run.id,
        run: run.run.id,
        confidence: opts.confidence,
        max_acceptance_drop: spec.max_acceptance_drop,
        max_cost_increase: spec.max_cost_increase,
        checks,
        notes,
    })
}

/// Whether a class's routed provider (or cascade) still qualifies in the run: PASS when its
/// whole acceptance interval is at or above the class's threshold (the rule `route` chose it
/// by), FAIL when the whole interval is below it or the route cannot be measured (a provider
/// missing), INCONCLUSIVE when the interval straddles the threshold. Not a significance test,
/// so it stays out of Holm.
fn routed_check(r: &RoutedClass, input: &RouteInput, opts: &AnalysisOptions) -> Check {
    let suites = input
        .classes
        .iter()
        .find(|c| c.workload == r.workload)
        .map_or_else(String::new, |c| c.suites.join(", "));
    let mut check = Check {
        suite: suites,
        provider: r.provider.clone(),
        workload: r.workload.clone(),
        metric: Metric::Routed,
        status: Status::Fail,
        paired: 0,
        tasks: 0,
        baseline: r.acceptance,
        run: None,
        change: Change {
            estimate: None,
            low: None,
            high: None,
            method: "wilson",
        },
        threshold: r.quality_threshold.unwrap_or(0.0),
        test: "acceptance interval against the class's quality threshold",
        p_value: None,
        p_holm: None,
        tasks_needed: None,
        price_change: None,
        notes: Vec::new(),
    };
    let m = match route::remeasure(input, opts, &r.workload, &r.providers) {
        Ok(m) => m,
        Err(why) => {
            check.notes.push(format!(
                "the routed choice cannot be measured on this run: {why}"
            ));
            return check;
        }
    };
    let a = &m.figures.acceptance;
    check.paired = m.figures.outcomes;
    check.tasks = m.tasks as u64;
    check.run = a.rate;
    check.change = Change {
        estimate: a.rate,
        low: a.low,
        high: a.high,
        method: a.method,
    };
    check.status = match (r.quality_threshold, a.low, a.high) {
        (None, ..) if m.figures.accepted > 0 => Status::Pass,
        (None, ..) => Status::Fail,
        (Some(t), Some(lo), _) if lo >= t => Status::Pass,
        (Some(t), _, Some(hi)) if hi < t => Status::Fail,
        (Some(_), Some(_), Some(_)) => Status::Inconclusive,
        (Some(_), ..) => Status::Fail,
    };
    match check.status {
        Status::Fail if r.quality_threshold.is_some() => check.notes.push(
            "the routed choice no longer qualifies: its whole acceptance interval is below the class's threshold (run `costbench route` again)".into(),
        ),
        Status::Fail => check.notes.push("the routed choice accepted nothing".into()),
        Status::Inconclusive => check.notes.push(
            "the acceptance interval straddles the class's threshold: more tasks would tell whether the routed choice still qualifies".into(),
        ),
        Status::Pass => {}
    }
    check
}

/// One row of the run, with what pairing needs.
struct RunSide<'a> {
    row: &'a RowAnalysis,
    ids: &'a [String],
    rejection: Money,
}

/// The run's row of a baseline row's suite and provider.
fn run_side<'a>(a: &'a RunAnalysis, b: &BaselineRow) -> Option<RunSide<'a>> {
    let row = a.row(&b.suite, &b.provider)?;
    let suite = a.run.plan.suite(&b.suite)?;
    Some(RunSide {
        row,
        ids: a.task_ids.get(&b.suite).map_or(&[][..], Vec::as_slice),
        rejection: suite.rejection_cost_femto,
    })
}

/// The paired outcomes of one suite × provider, aligned by task.
#[derive(Debug, Clone, Default)]
struct Pairs {
    base: Vec<Outcome>,
    run: Vec<Outcome>,
    /// Distinct tasks.
    tasks: u64,
    /// Pairs broken by a grader error or an outcome not graded, either side.
    unjudged: u64,
    /// Calls of unknown cost among the pairs: baseline, run.
    unknown_calls: (u64, u64),
    /// Known cost of any pair.
    any_known_cost: bool,
}

/// Pairs the baseline's outcomes with the run's on task id and repeat; the baseline outcomes
/// the run never attempted are returned as the error.
fn pair(b: &BaselineRow, base_rejection: Money, now: &RunSide<'_>) -> Result<Pairs, Vec<String>> {
    let index: HashMap<(&str, u32), &OutcomeFacts> = now
        .row
        .outcomes
        .iter()
        .filter_map(|o| Some(((now.ids.get(o.task_idx as usize)?.as_str(), o.repeat), o)))
        .collect();
    let mut p = Pairs::default();
    let mut missing = Vec::new();
    let mut last: Option<&str> = None;
    for o in &b.outcomes {
        let Some(r) = index.get(&(o.task.as_str(), o.repeat)) else {
            missing.push(format!("task {} repeat {}", o.task, o.repeat));
            continue;
        };
        if !(o.verdict.decided() && r.verdict.decided()) {
            p.unjudged += 1;
            continue;
        }
        if last != Some(o.task.as_str()) {
            p.tasks += 1;
            last = Some(o.task.as_str());
        }
        let task = (p.tasks - 1) as u32;
        p.base.push(outcome(task, o, base_rejection));
        let accepted = r.accepted();
        p.run.push(Outcome {
            task,
            accepted,
            cost: with_rejection(r.known_cost, accepted, now.rejection),
        });
        p.unknown_calls.0 += u64::from(o.unknown_calls);
        p.unknown_calls.1 += u64::from(r.unknown_calls);
        p.any_known_cost |= o.cost != Money::ZERO || r.known_cost != Money::ZERO;
    }
    if missing.is_empty() {
        Ok(p)
    } else {
        Err(missing)
    }
}

fn outcome(task: u32, o: &BaselineOutcome, rejection: Money) -> Outcome {
    let accepted = o.verdict == crate::analysis::Verdict::Accepted;
    Outcome {
        task,
        accepted,
        cost: with_rejection(o.cost, accepted, rejection),
    }
}

/// An outcome's cost for cost per accepted: its tokens, plus the rejection cost if rejected.
fn with_rejection(cost: Money, accepted: bool, rejection: Money) -> f64 {
    cost.plus(if accepted { Money::ZERO } else { rejection })
        .usd()
}

/// A check before Holm: its raw verdict inputs.
struct Pending {
    check: Check,
    /// The whole interval is beyond the threshold (FAIL if significant after Holm).
    beyond: bool,
    /// The interval rules out a regression beyond the threshold.
    within: bool,
}

fn base_check(b: &BaselineRow, workload: &str, metric: Metric, p: &Pairs) -> Check {
    Check {
        suite: b.suite.clone(),
        provider: b.provider.clone(),
        workload: workload.to_string(),
        metric,
        status: Status::Inconclusive,
        paired: p.base.len() as u64,
        tasks: p.tasks,
        baseline: None,
        run: None,
        change: Change {
            estimate: None,
            low: None,
            high: None,
            method: "none",
        },
        threshold: 0.0,
        test: "none",
        p_value: None,
        p_holm: None,
        tasks_needed: None,
        price_change: None,
        notes: if p.unjudged > 0 {
            vec![format!(
                "{} outcome pairs left out: a grader error or no grade on either side",
                p.unjudged
            )]
        } else {
            Vec::new()
        },
    }
}

fn rate(o: &[Outcome]) -> Option<f64> {
    (!o.is_empty()).then(|| o.iter().filter(|x| x.accepted).count() as f64 / o.len() as f64)
}

/// The acceptance check: non-inferiority of the run against the baseline at the margin
/// `max_acceptance_drop` (`compare::decide`), read as PASS / FAIL / INCONCLUSIVE.
fn acceptance_check(
    b: &BaselineRow,
    workload: &str,
    p: &Pairs,
    spec: &GateSpec,
    opts: &AnalysisOptions,
) -> Pending {
    let mut check = base_check(b, workload, Metric::Acceptance, p);
    check.threshold = spec.max_acceptance_drop;
    check.baseline = rate(&p.base);
    check.run = rate(&p.run);
    let Ok(d) = compare::decide(&p.base, &p.run, spec.max_acceptance_drop, opts) else {
        check.notes.push("no paired outcome to compare".into());
        return Pending {
            check,
            beyond: false,
            within: false,
        };
    };
    let diff = d.difference; // run − baseline
    check.change = Change {
        estimate: Some(-diff.estimate),
        low: Some(-diff.high),
        high: Some(-diff.low),
        method: diff.method,
    };
    match d.mid_p {
        Some(mid_p) => {
            check.test = "mcnemar-mid-p";
            check.p_value = Some(mid_p);
        }
        None => {
            check.test = "paired-cluster-bootstrap";
            check.p_value =
                stats::paired::paired_acceptance_p(&p.run, &p.base, opts.bootstrap, opts.seed).ok();
        }
    }
    if d.verdict == MigrationVerdict::Inconclusive {
        let m = spec.max_acceptance_drop;
        let counts = stats::PairedCounts::from_outcomes(&p.run, &p.base).ok();
        let psi = counts.map_or(0.0, |c| c.discordance());
        // At a drop of exactly the threshold no number of tasks is conclusive; plan instead
        // for a run with no real change to pass at the observed discordance (§3.4).
        let alpha = 1.0 - opts.confidence;
        check.tasks_needed = d.tasks_needed.or_else(|| {
            stats::noninferiority_sample_size(psi, 0.0, m, alpha, PLANNING_POWER)
                .ok()
                .map(|n| n.ceil() as u64)
        });
        // With no discordant pair the plug-in variance is 0 and says "1 task"; Tango's upper
        // bound of the drop with none is z²/(n + z²), below δ only from n > z²(1 − δ)/δ on,
        // and discordance only widens it.
        if let Ok(z) = stats::z_two_sided(opts.confidence)
            && d.difference.estimate >= -m
        {
            let floor = (z * z * (1.0 - m) / m).floor() as u64 + 1;
            check.tasks_needed = Some(check.tasks_needed.unwrap_or(0).max(floor));
        }
    }
    Pending {
        check,
        beyond: d.verdict == MigrationVerdict::Inferior,
        within: matches!(
            d.verdict,
            MigrationVerdict::NonInferior | MigrationVerdict::Superior
        ),
    }
}

/// The ratio run / baseline of cost per accepted outcome with its paired interval
/// ([`analysis::paired_cost_ci`]: BCa bootstrap, or the delta method on many tasks), and the p of
/// ratio = 1 by the same method.
fn cost_ratio(p: &Pairs, opts: &AnalysisOptions) -> Option<(stats::PairedCostCi, Option<f64>)> {
    let ci = analysis::paired_cost_ci(&p.run, &p.base, opts).ok()?;
    let pv = if ci.method == stats::paired::DELTA_METHOD {
        delta_ratio_p(&ci.ratio, opts.confidence)
    } else {
        stats::paired::paired_cost_ratio_p(&p.run, &p.base, opts.bootstrap, opts.seed).ok()
    };
    Some((ci, pv))
}

/// The two-sided p of ratio = 1 under the delta method, whose interval is
/// exp(log r̂ ± z·SE): the SE is read back off the interval's width.
fn delta_ratio_p(r: &stats::Estimate, confidence: f64) -> Option<f64> {
    let (est, low, high) = (r.estimate?, r.low?, r.high?);
    let z = stats::z_two_sided(confidence).ok()?;
    let se = (high.ln() - low.ln()) / (2.0 * z);
    if !(est > 0.0 && se > 0.0 && se.is_finite()) {
        return None;
    }
    Some(2.0 * (1.0 - stats::norm_cdf((est.ln() / se).abs())))
}

fn ratio_change(ci: &stats::PairedCostCi) -> Change {
    Change {
        estimate: ci.ratio.estimate,
        low: ci.ratio.low,
        high: ci.ratio.high,
        method: ci.method,
    }
}

/// The cost check: the ratio's interval against 1 + `max_cost_increase`.
fn cost_check(
    b: &BaselineRow,
    workload: &str,
    p: &Pairs,
    spec: &GateSpec,
    opts: &AnalysisOptions,
) -> Pending {
    let mut check = base_check(b, workload, Metric::CostPerAccepted, p);
    let limit = 1.0 + spec.max_cost_increase;
    check.threshold = limit;
    check.test = "paired-bootstrap";
    let (u_base, u_run) = p.unknown_calls;
    if u_base + u_run > 0 {
        check.notes.push(format!(
            "calls of unknown cost left out (known costs only): {u_base} in the baseline, {u_run} in the run"
        ));
    }
    let none = Pending {
        check: check.clone(),
        beyond: false,
        within: false,
    };
    if !p.any_known_cost && p.base.iter().chain(&p.run).all(|o| o.cost == 0.0) {
        let mut n = none;
        n.check
            .notes
            .push("no known cost on either side: nothing to compare".into());
        return n;
    }
    let Some((ci, pv)) = cost_ratio(p, opts) else {
        let mut n = none;
        n.check.notes.push("no paired outcome to compare".into());
        return n;
    };
    if ci.method == stats::paired::DELTA_METHOD {
        check.test = "paired-delta";
    }
    check.baseline = ci.cost_per_accepted_b;
    check.run = ci.cost_per_accepted_a;
    check.change = ratio_change(&ci);
    check.p_value = pv;
    let r = ci.ratio;
    if r.estimate.is_none() {
        check.notes.push(
            "the ratio is undefined: a side accepted nothing, or the baseline cost nothing".into(),
        );
    }
    let beyond = r.low.is_some_and(|l| l > limit);
    let within = r.high.is_some_and(|h| h <= limit);
    if !beyond && !within {
        check.tasks_needed = cost_tasks_needed(&check.change, limit, p.tasks, opts.confidence);
    }
    Pending {
        check,
        beyond,
        within,
    }
}

/// Tasks for a conclusive cost verdict with 80% power: the per-task variance of the log ratio
/// read off the interval's width (se ≈ width / 2z on the log scale), then
/// n = (z₁₋α/₂ + z₀.₈)²·v/(log r − log limit)², as for acceptance in `compare`.
fn cost_tasks_needed(c: &Change, limit: f64, tasks: u64, confidence: f64) -> Option<u64> {
    let (est, low, high) = (c.estimate?, c.low?, c.high?);
    if !(est > 0.0 && low > 0.0 && high > 0.0) {
        return None;
    }
    let z = stats::z_two_sided(confidence).ok()?;
    let se = (high.ln() - low.ln()) / (2.0 * z);
    let gap = (est.ln() - limit.ln()).abs();
    if gap == 0.0 || !se.is_finite() {
        return None;
    }
    let v = se * se * tasks as f64;
    let zb = stats::norm_quantile(PLANNING_POWER);
    Some(((z + zb).powi(2) * v / (gap * gap)).ceil().max(1.0) as u64)
}

/// What changed in a provider's price, and the cost ratio without the change.
fn price_change(
    base: &Price,
    now: Option<&Price>,
    check: &Check,
    repriced: &Pairs,
    opts: &AnalysisOptions,
) -> PriceChange {
    let rate = |r: Option<Rate>| r.map_or_else(|| "none".to_string(), |r| r.to_string());
    let mut changes = Vec::new();
    match now {
        None => changes.push("price removed".to_string()),
        Some(n) => {
            let pairs = [
                ("input", Some(base.input), Some(n.input)),
                ("cached_input", base.cached_input, n.cached_input),
                ("cache_write", base.cache_write, n.cache_write),
                ("cache_write_1h", base.cache_write_1h, n.cache_write_1h),
                ("output", Some(base.output), Some(n.output)),
            ];
            for (name, a, b) in pairs {
                if a != b {
                    changes.push(format!("{name} {} → {}", rate(a), rate(b)));
                }
            }
        }
    }
    let at_base = cost_ratio(repriced, opts).map_or(
        Change {
            estimate: None,
            low: None,
            high: None,
            method: "paired-bca-bootstrap",
        },
        |(ci, _)| ratio_change(&ci),
    );
    let limit = check.threshold;
    let price_only = check.change.estimate.is_some_and(|e| e > limit)
        && at_base.estimate.is_some_and(|e| e <= limit);
    PriceChange {
        changes,
        ratio_at_baseline_prices: at_base,
        price_only,
    }
}

/// Holm over every check with a p-value, then each check's verdict.
fn decide(pending: Vec<Pending>, confidence: f64) -> Vec<Check> {
    let alpha = 1.0 - confidence;
    let with_p: Vec<usize> = (0..pending.len())
        .filter(|&i| pending[i].check.p_value.is_some())
        .collect();
    let ps: Vec<f64> = with_p
        .iter()
        .filter_map(|&i| pending[i].check.p_value)
        .collect();
    let mut holm: HashMap<usize, f64> = HashMap::new();
    if let Ok(adj) = stats::holm(&ps, alpha) {
        for (&i, a) in with_p.iter().zip(adj.adjusted) {
            holm.insert(i, a);
        }
    }
    let family = ps.len();
    pending
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let mut c = p.check;
            c.p_holm = holm.get(&i).copied();
            let significant = c.p_holm.is_some_and(|q| q < alpha);
            c.status = if p.beyond && significant {
                Status::Fail
            } else if p.within {
                Status::Pass
            } else {
                Status::Inconclusive
            };
            if p.beyond && !significant {
                c.notes.push(format!(
                    "beyond the threshold, but not significant after Holm over {family} checks"
                ));
            }
            c
        })
        .collect()
}

fn join<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delta_ratio_p_reads_the_standard_error_off_the_interval() {
        // r̂ = 1.1 with SE 0.05 on the log scale: z = ln 1.1 / 0.05 = 1.906, p = 0.0566.
        let z = stats::z_two_sided(0.95).unwrap();
        let (est, se) = (1.1f64, 0.05);
        let r = stats::paired::Estimate {
            estimate: Some(est),
            low: Some((est.ln() - z * se).exp()),
            high: Some((est.ln() + z * se).exp()),
        };
        let p = delta_ratio_p(&r, 0.95).unwrap();
        assert!((p - 0.0566).abs() < 5e-4, "{p}");
        assert_eq!(
            delta_ratio_p(&stats::paired::Estimate { high: None, ..r }, 0.95),
            None
        );
    }

    fn pending(p: f64, beyond: bool, within: bool) -> Pending {
        let b = BaselineRow {
            suite: "s".into(),
            provider: "p".into(),
            summary: crate::baseline::BaselineSummary {
                accepted: 0,
                decided: 0,
                acceptance: None,
                acceptance_low: None,
                acceptance_high: None,
                acceptance_method: "wilson".into(),
                cost_per_accepted_usd: None,
                unpriced_calls: 0,
            },
            outcomes: Vec::new(),
        };
        let mut check = base_check(&b, "w", Metric::Acceptance, &Pairs::default());
        check.p_value = Some(p);
        Pending {
            check,
            beyond,
            within,
        }
    }

    #[test]
    fn a_regression_beyond_the_threshold_fails_only_when_significant_after_holm() {
        // Raw p 0.02 and 0.03 are both below α = 0.05, but Holm over three checks makes them
        // 0.06 and 0.06: neither may fail; p = 0.001 stays significant (0.003).
        let checks = decide(
            vec![
                pending(0.02, true, false),
                pending(0.03, true, false),
                pending(0.001, true, false),
                pending(0.9, false, true),
            ],
            0.95,
        );
        let s: Vec<Status> = checks.iter().map(|c| c.status).collect();
        assert_eq!(
            s,
            [
                Status::Inconclusive,
                Status::Inconclusive,
                Status::Fail,
                Status::Pass
            ]
        );
        assert!((checks[0].p_holm.unwrap() - 0.06).abs() < 1e-12);
        assert!(checks[0].notes[0].contains("not significant after Holm over 4 checks"));
    }

    #[test]
    fn cost_tasks_needed_grows_as_the_ratio_nears_the_limit() {
        let c = |est: f64| Change {
            estimate: Some(est),
            low: Some(est * 0.9),
            high: Some(est * 1.1),
            method: "x",
        };
        let near = cost_tasks_needed(&c(1.08), 1.1, 100, 0.95).unwrap();
        let far = cost_tasks_needed(&c(1.02), 1.1, 100, 0.95).unwrap();
        assert!(near > far && far > 0, "{near} {far}");
        assert_eq!(cost_tasks_needed(&c(1.1), 1.1, 100, 0.95), None);
    }
}
