//! How well the graders agree with the humans, per workload class and grader, and each row's
//! acceptance rate corrected for the graders' error (statistics.md §3.8; the estimators are in
//! `stats::agreement`).
//!
//! The human verdict of an outcome is its raters' majority (a tie is left out). Per workload:
//! - the suites' combined verdict (`grader: "all"`, what acceptance counts) and each grader of
//!   each suite (`graders[i]`, a grader that could not decide left out) against the humans:
//!   raw agreement (Wilson interval), Cohen's κ and Krippendorff's α (BCa bootstrap over
//!   items), and the grader's sensitivity and specificity (Wilson), the human being the
//!   reference;
//! - per suite × provider, the automatic acceptance rate (as graded, before human overrides)
//!   and its Rogan–Gladen correction for the combined verdict's Se and Sp, with a bootstrap
//!   interval that carries the calibration set's uncertainty. Unanswered outcomes are
//!   rejections no grader made: the correction applies to the graded share,
//!   p = RG(accepted / graded) × graded / (graded + unanswered).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::analysis::{AnalysisOptions, RowAnalysis};
use crate::stats::agreement::{
    AgreementTable, GraderAccuracy, agreement_bootstrap, rogan_gladen_interval,
};
use crate::stats::paired::Estimate;
use crate::stats::{Interval, wilson};
use crate::store::labels::LabelledOutcome;
use crate::store::{GradeStatus, RunInfo};

/// The report's `agreement` section.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// Outcomes with a human label.
    pub labelled_outcomes: u64,
    /// Of which the raters tied (left out of every figure here, and not overriding).
    pub tied: u64,
    /// Of which no grader decided (ungraded, or a grader error): the human verdict decides
    /// them, but they say nothing about the graders.
    pub not_graded: u64,
    /// The interval methods used.
    pub methods: Methods,
    /// Per workload class, in plan order.
    pub workloads: Vec<WorkloadAgreement>,
}

/// The interval methods of the section.
#[derive(Debug, Clone, Serialize)]
pub struct Methods {
    /// Raw agreement, sensitivity and specificity.
    pub rates: &'static str,
    /// κ and α.
    pub kappa_alpha: &'static str,
    /// The corrected acceptance rate.
    pub corrected: &'static str,
    /// Bootstrap resamples.
    pub resamples: usize,
}

/// One workload class.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadAgreement {
    /// Workload class.
    pub workload: String,
    /// The combined verdict first (`all`), then each grader of each suite.
    pub graders: Vec<GraderAgreement>,
    /// Per suite × provider, the raw and corrected acceptance rates.
    pub acceptance: Vec<CorrectedAcceptance>,
}

/// One grader (or the combined verdict) against the humans.
#[derive(Debug, Clone, Serialize)]
pub struct GraderAgreement {
    /// `all` (every suite's combined verdict) or `graders[i]`.
    pub grader: String,
    /// The suite, for a single grader.
    pub suite: Option<String>,
    /// The grader's kind, when the run recorded it.
    pub kind: Option<String>,
    /// Outcomes judged by both.
    pub items: u64,
    /// Human (A) × grader (B) counts.
    pub table: AgreementTable,
    /// Share of items where both agree.
    pub raw_agreement: Option<Interval>,
    /// Cohen's κ.
    pub kappa: Option<Estimate>,
    /// Krippendorff's α (nominal).
    pub alpha: Option<Estimate>,
    /// Resamples where κ or α was undefined (one label only), counted against both bounds.
    pub degenerate_resamples: usize,
    /// P(grader accepts | human accepts).
    pub sensitivity: Option<Interval>,
    /// P(grader rejects | human rejects).
    pub specificity: Option<Interval>,
}

/// A suite × provider row's acceptance, raw and corrected for grader error.
#[derive(Debug, Clone, Serialize)]
pub struct CorrectedAcceptance {
    /// Suite name.
    pub suite: String,
    /// Provider id.
    pub provider: String,
    /// Outcomes the graders accepted.
    pub grader_accepted: u64,
    /// Outcomes the graders decided (accepted or rejected).
    pub graded: u64,
    /// Outcomes without an answer (rejected, by no grader).
    pub unanswered: u64,
    /// The automatic acceptance rate, Wilson interval.
    pub raw: Option<Interval>,
    /// Rogan–Gladen corrected rate with its bootstrap interval; `null` with `note` when it
    /// cannot be computed.
    pub corrected: Option<Interval>,
    /// Why there is no corrected rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The automatic verdicts of one suite × provider row, before human overrides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GradedCounts {
    /// Answered outcomes the graders accepted.
    pub accepted: u64,
    /// Answered outcomes the graders rejected.
    pub rejected: u64,
    /// Outcomes without an answer.
    pub unanswered: u64,
}

/// The part of a stored per-grader verdict agreement reads.
#[derive(serde::Deserialize)]
struct StoredVerdict {
    passed: bool,
    #[serde(default)]
    error: Option<String>,
}

/// Human (A) and grader (B) labels of one group.
#[derive(Default)]
struct Pairs {
    human: Vec<bool>,
    grader: Vec<bool>,
}

impl Pairs {
    fn push(&mut self, h: bool, g: bool) {
        self.human.push(h);
        self.grader.push(g);
    }
}

/// The agreement section of a run, or `None` when no outcome has a human label.
pub fn agreement(
    run: &RunInfo,
    rows: &[RowAnalysis],
    labelled: &[LabelledOutcome],
    opts: &AnalysisOptions,
) -> Option<Agreement> {
    if labelled.is_empty() {
        return None;
    }
    let workload_of = |suite: &str| run.plan.suite(suite).map(|s| s.workload.clone());
    let mut all: BTreeMap<String, Pairs> = BTreeMap::new();
    let mut per_grader: BTreeMap<(String, String, usize), Pairs> = BTreeMap::new();
    let (mut tied, mut not_graded) = (0, 0);
    for l in labelled {
        let Some(h) = l.votes.verdict() else {
            tied += 1;
            continue;
        };
        let Some(w) = workload_of(&l.votes.key.suite) else {
            continue;
        };
        let auto = match l.status {
            Some(GradeStatus::Accepted) => true,
            Some(GradeStatus::Rejected) => false,
            _ => {
                not_graded += 1;
                continue;
            }
        };
        all.entry(w.clone()).or_default().push(h, auto);
        let verdicts: Vec<StoredVerdict> = l
            .verdicts
            .as_deref()
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        for (i, v) in verdicts.iter().enumerate() {
            if v.error.is_none() {
                per_grader
                    .entry((w.clone(), l.votes.key.suite.clone(), i))
                    .or_default()
                    .push(h, v.passed);
            }
        }
    }
    let mut workloads = Vec::new();
    let mut seen = Vec::new();
    for s in &run.plan.suites {
        if seen.contains(&s.workload) {
            continue;
        }
        seen.push(s.workload.clone());
        let Some(pairs) = all.get(&s.workload) else {
            continue;
        };
        let table = table_of(pairs);
        let mut graders = vec![grader_agreement("all".into(), None, None, table, opts)];
        for ((_, suite, i), p) in per_grader.range(
            (s.workload.clone(), String::new(), 0)..(s.workload.clone() + "\0", String::new(), 0),
        ) {
            let kind = run
                .plan
                .suite(suite)
                .and_then(|s| s.grader_kinds.get(*i).cloned());
            graders.push(grader_agreement(
                format!("graders[{i}]"),
                Some(suite.clone()),
                kind,
                table_of(p),
                opts,
            ));
        }
        let acceptance = rows
            .iter()
            .filter(|r| r.figures.workload == s.workload)
            .map(|r| corrected(r, &table, opts))
            .collect();
        workloads.push(WorkloadAgreement {
            workload: s.workload.clone(),
            graders,
            acceptance,
        });
    }
    Some(Agreement {
        labelled_outcomes: labelled.len() as u64,
        tied,
        not_graded,
        methods: Methods {
            rates: "wilson",
            kappa_alpha: "bca-bootstrap",
            corrected: "rogan-gladen-bootstrap",
            resamples: opts.bootstrap,
        },
        workloads,
    })
}

fn table_of(p: &Pairs) -> AgreementTable {
    // Equal lengths by construction.
    AgreementTable::from_labels(&p.human, &p.grader).unwrap_or(AgreementTable {
        both_accept: 0,
        only_a: 0,
        only_b: 0,
        both_reject: 0,
    })
}

fn grader_agreement(
    grader: String,
    suite: Option<String>,
    kind: Option<String>,
    table: AgreementTable,
    opts: &AnalysisOptions,
) -> GraderAgreement {
    let ci = agreement_bootstrap(table, opts.bootstrap, opts.confidence, opts.seed).ok();
    let acc = GraderAccuracy::from_table(&table, opts.confidence);
    GraderAgreement {
        grader,
        suite,
        kind,
        items: table.n(),
        table,
        raw_agreement: ci.as_ref().map(|c| c.raw_agreement),
        kappa: ci.as_ref().map(|c| c.kappa),
        alpha: ci.as_ref().map(|c| c.alpha),
        degenerate_resamples: ci.as_ref().map_or(0, |c| c.degenerate_resamples),
        sensitivity: acc.sensitivity,
        specificity: acc.specificity,
    }
}

/// A row's automatic acceptance and its Rogan–Gladen correction for `calibration`.
fn corrected(
    r: &RowAnalysis,
    calibration: &AgreementTable,
    opts: &AnalysisOptions,
) -> CorrectedAcceptance {
    let g = r.graded;
    let graded = g.accepted + g.rejected;
    let decided = graded + g.unanswered;
    let raw = wilson(g.accepted, decided, opts.confidence);
    let share = if decided > 0 {
        graded as f64 / decided as f64
    } else {
        0.0
    };
    let (corrected, note) = if graded == 0 {
        (None, Some("no graded outcome".to_string()))
    } else if calibration.both_accept + calibration.only_a == 0
        || calibration.both_reject + calibration.only_b == 0
    {
        (
            None,
            Some("the humans accepted or rejected every labelled outcome: sensitivity or specificity is unknown".into()),
        )
    } else {
        match rogan_gladen_interval(
            g.accepted,
            graded,
            calibration,
            opts.bootstrap,
            opts.confidence,
            opts.seed,
        ) {
            Ok(i) => (
                Some(Interval {
                    estimate: i.estimate * share,
                    low: i.low * share,
                    high: i.high * share,
                    method: i.method,
                }),
                None,
            ),
            Err(e) => (None, Some(format!("cannot correct: {e}"))),
        }
    };
    CorrectedAcceptance {
        suite: r.figures.suite.clone(),
        provider: r.figures.provider.clone(),
        grader_accepted: g.accepted,
        graded,
        unanswered: g.unanswered,
        raw,
        corrected,
        note,
    }
}
