//! The JSON report, a stable contract.
//!
//! ```text
//! { "run": { "id", "created_at", "finished_at", "status", "cache_mode", "confidence" },
//!   "rows": [ { "suite", "workload", "provider", "tasks", "outcomes", "pending", "accepted",
//!     "unanswered", "grader_errors", "human_labelled",
//!     "acceptance": {"rate","low","high","method"},            // Wilson interval
//!     "quality_threshold", "qualifies",
//!     "calls", "failed_calls", "retries", "unpriced_calls",
//!     "tokens": {"input","cached_input","cache_write","output","reasoning"},
//!     "cost_usd": {"tokens","rejections","total","unknown_max", "judge"?},
//!     "cost_per_accepted_usd", "cost_per_accepted_max_usd",
//!     "cost_per_accepted_ci": {"low","high","method","resamples","zero_accept_resamples","basis"},
//!     "spent_usd", "spent_max_usd", "latency_ms": {"p50","p95"},
//!     "failures": {kind: {"count","first_message"}},
//!     "unanswered_by_kind": {kind: {"count","first_message"}},
//!     "graders"?: [ {"fingerprint", "outcomes",
//!                    "set": {"accept", "graders": [{"kind","fingerprint","weight"}]}} ] } ],
//!   "graders": { "confusion": [ {"suite","grader","provider","labels","matrix","outputs",
//!                                "accuracy"} ],                      // `label` graders
//!                "fields": [ {"suite","grader","provider","outputs",
//!                             "fields": [{"pointer","expected","predicted","correct",
//!                                         "precision","recall","f1"}]} ] },  // `fields` graders
//!   "agreement": { "labelled_outcomes", "tied", "not_graded", "methods",
//!     "workloads": [ {"workload",
//!       "graders": [ {"grader","suite","kind","items","table","raw_agreement","kappa","alpha",
//!                     "degenerate_resamples","sensitivity","specificity"} ],
//!       "acceptance": [ {"suite","provider","grader_accepted","graded","unanswered","raw",
//!                        "corrected","note"} ]} ] } }
//! ```
//! The top-level `graders` is present when a suite has a `label` or `fields` grader (`matrix[i][j]`: outputs
//! expected `labels[i]` that named `labels[j]`; pointer `*` is the micro-average), `agreement`
//! when some outcome has a human label (`costbench labels import`). `human_labelled` counts
//! the row's outcomes whose verdict is the human raters' majority, which overrides the graders'
//! in every figure.
//! `cost_usd.judge` (present when the suite has a `judge` grader) is what the LLM-judge calls
//! of the row's grades cost, known part; it is included in `total` and in cost per accepted
//! outcome (judge calls of unknown cost count in `unknown_max`). A row's `graders` names the
//! grader sets (kinds and config fingerprints) that gave its grades, with how many each gave;
//! absent for grades stored before grader sets were recorded.
//! `input` counts prompt tokens not served from cache; `output` includes reasoning tokens;
//! `calls` counts every HTTP attempt (retries included; a replayed answer counts as one);
//! `failed_calls` those that got no answer; `pending` outcomes not yet attempted (an
//! interrupted run), which are excluded from the acceptance rate, as are `grader_errors`.
//! Costs use the known costs; `*_max` adds every attempt of unknown cost at its bound.
//! USD amounts are numbers; `null` means unknown.

use serde::Serialize;

use super::Exporter;
use crate::analysis::{Row, RunAnalysis};
use crate::grade::confusion::GraderDetails;
use crate::labels::agreement::Agreement;

/// The JSON exporter.
pub struct Json;

/// Run metadata in the report.
#[derive(Serialize)]
struct RunMeta<'a> {
    id: i64,
    created_at: &'a str,
    finished_at: Option<&'a str>,
    status: &'a str,
    cache_mode: &'a str,
    confidence: f64,
}

#[derive(Serialize)]
struct Report<'a> {
    run: RunMeta<'a>,
    rows: Vec<&'a Row>,
    #[serde(skip_serializing_if = "GraderDetails::is_empty")]
    graders: &'a GraderDetails,
    #[serde(skip_serializing_if = "Option::is_none")]
    agreement: Option<&'a Agreement>,
}

impl Exporter for Json {
    fn render(&self, a: &RunAnalysis) -> String {
        let report = Report {
            run: RunMeta {
                id: a.run.id,
                created_at: &a.run.created_at,
                finished_at: a.run.finished_at.as_deref(),
                status: a.run.status.as_str(),
                cache_mode: &a.run.cache_mode,
                confidence: a.options.confidence,
            },
            rows: a.rows.iter().map(|r| &r.figures).collect(),
            graders: &a.graders,
            agreement: a.agreement.as_ref(),
        };
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(&report).unwrap_or_default()
    }
}
