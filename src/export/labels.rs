//! `costbench labels agreement`: the graders against the human labels, as a table or JSON
//! (the JSON is the report's `agreement` section, see `export::json`).

use super::markup::{WIDTH, pct, text_table};
use crate::labels::agreement::Agreement;
use crate::stats::Interval;
use crate::stats::paired::Estimate;

/// `0.483 [0.35, 0.61]`, or `–` when undefined.
fn estimate(e: Option<&Estimate>) -> String {
    let n = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.3}"));
    match e {
        Some(e) if e.estimate.is_some() => {
            format!("{} [{}, {}]", n(e.estimate), n(e.low), n(e.high))
        }
        _ => "–".into(),
    }
}

/// `85.0% [79.4, 89.3]`, or `–`.
fn rate(i: Option<&Interval>) -> String {
    match i {
        Some(i) => format!(
            "{} [{:.1}, {:.1}]",
            pct(Some(i.estimate)),
            i.low * 100.0,
            i.high * 100.0
        ),
        None => "–".into(),
    }
}

/// A table's header and rows.
pub(super) type Grid = (Vec<String>, Vec<Vec<String>>);

/// The graders against the humans, one row per workload × grader, and the acceptance raw and
/// corrected for grader error, one row per workload × suite × provider.
pub(super) fn grids(a: &Agreement, conf: &str) -> (Grid, Grid) {
    let mut graders = Vec::new();
    let mut acceptance = Vec::new();
    for w in &a.workloads {
        for g in &w.graders {
            let name = match (&g.suite, &g.kind) {
                (Some(s), Some(k)) => format!("{s} {} ({k})", g.grader),
                (Some(s), None) => format!("{s} {}", g.grader),
                _ => "all graders".into(),
            };
            graders.push(vec![
                w.workload.clone(),
                name,
                g.items.to_string(),
                rate(g.raw_agreement.as_ref()),
                estimate(g.kappa.as_ref()),
                estimate(g.alpha.as_ref()),
                rate(g.sensitivity.as_ref()),
                rate(g.specificity.as_ref()),
            ]);
        }
        for c in &w.acceptance {
            acceptance.push(vec![
                w.workload.clone(),
                c.suite.clone(),
                c.provider.clone(),
                rate(c.raw.as_ref()),
                c.corrected
                    .as_ref()
                    .map_or_else(|| c.note.clone().unwrap_or_default(), |i| rate(Some(i))),
            ]);
        }
    }
    let head = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    (
        (
            head(&[
                "workload",
                "grader",
                "items",
                &format!("agreement [{conf}]"),
                &format!("Cohen's κ [{conf}]"),
                &format!("Krippendorff's α [{conf}]"),
                "sensitivity",
                "specificity",
            ]),
            graders,
        ),
        (
            head(&[
                "workload",
                "suite",
                "provider",
                &format!("acceptance, graders [{conf}]"),
                &format!("corrected for grader error [{conf}]"),
            ]),
            acceptance,
        ),
    )
}

/// What the agreement figures are and which intervals they carry.
pub(super) fn methods_note(a: &Agreement) -> String {
    format!(
        "Human verdict = the raters' majority; the graders' sensitivity and specificity take it as the \
         truth. Intervals: agreement, sensitivity, specificity and raw acceptance Wilson; κ and α BCa \
         bootstrap over items ({} resamples); corrected acceptance Rogan–Gladen with a bootstrap over \
         the suite and the labelled items. κ is low where one verdict dominates even at high agreement \
         (the kappa paradox).",
        a.methods.resamples
    )
}

/// The agreement as two terminal tables (graders, then acceptance) and a line of methods.
pub fn table(a: &Agreement, run: i64, confidence: f64, width: Option<u16>) -> String {
    let width = width.unwrap_or(WIDTH);
    let conf = format!("{:.0}%", confidence * 100.0);
    let ((gh, gr), (ch, cr)) = grids(a, &conf);
    let g = text_table(gh, gr, width);
    let c = text_table(ch, cr, width);
    format!(
        "run {run}: {} human-labelled outcome(s){}{}\n{g}\n{c}\n{}",
        a.labelled_outcomes,
        if a.tied > 0 {
            format!(", {} tied between raters (left out)", a.tied)
        } else {
            String::new()
        },
        if a.not_graded > 0 {
            format!(", {} with no automatic verdict (left out)", a.not_graded)
        } else {
            String::new()
        },
        methods_note(a)
    )
}
