//! The report: one row per suite × provider, read from the store alone.
//!
//! Cost per accepted outcome = (token cost of every billed attempt, retries included, plus
//! rejected outcomes × the suite's rejection cost) / accepted outcomes. Failed slots (no answer)
//! count as rejected: the work still has to be done. A cost that cannot be computed is `null`
//! (JSON) or `unknown` (text), never 0.
//!
//! # JSON contract (`--format json`)
//! ```text
//! { "run": { "id", "created_at", "finished_at", "status", "cache_mode", "confidence" },
//!   "rows": [ { "suite", "workload", "provider", "tasks", "outcomes", "pending", "accepted",
//!     "acceptance": {"rate","low","high","method"},            // Wilson interval
//!     "quality_threshold", "qualifies",
//!     "calls", "failed_calls", "retries", "unpriced_calls",
//!     "tokens": {"input","cached_input","cache_write","output","reasoning"},
//!     "cost_usd": {"tokens","rejections","total"},
//!     "cost_per_accepted_usd", "cost_per_accepted_ci": {"low","high","method","resamples","zero_accept_resamples"},
//!     "spent_usd", "latency_ms": {"p50","p95"} } ] }
//! ```
//! `input` counts prompt tokens not served from cache; `output` includes reasoning tokens;
//! `calls` counts every HTTP attempt (retries included; a replayed answer counts as one);
//! `failed_calls` those that got no answer; `pending` outcomes not yet attempted (an
//! interrupted run), which are excluded from the acceptance rate.

use std::collections::BTreeMap;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::providers::{Money, Usage};
use crate::stats::{self, Outcome};
use crate::store::{RunInfo, Store, StoreError};

/// Report output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A terminal table.
    Table,
    /// The stable JSON contract.
    Json,
    /// A Markdown table.
    Md,
}

/// Statistical settings of a report.
#[derive(Debug, Clone, Copy)]
pub struct ReportOptions {
    /// Confidence level of every interval.
    pub confidence: f64,
    /// Bootstrap resamples for cost per accepted outcome.
    pub bootstrap: usize,
    /// Bootstrap seed (same seed, same interval).
    pub seed: u64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            confidence: 0.95,
            bootstrap: 2000,
            seed: 20261127,
        }
    }
}

/// An acceptance rate with its interval.
#[derive(Debug, Clone, Serialize)]
pub struct Acceptance {
    /// accepted / completed outcomes.
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
    /// Token cost of every billed attempt.
    pub tokens: Option<f64>,
    /// Rejected outcomes × rejection cost.
    pub rejections: f64,
    /// tokens + rejections.
    pub total: Option<f64>,
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
}

/// Latency percentiles of answering calls.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median, ms.
    pub p50: Option<f64>,
    /// 95th percentile, ms.
    pub p95: Option<f64>,
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
    /// (token cost + rejection cost) / accepted; `null` when nothing was accepted or unknown.
    pub cost_per_accepted_usd: Option<f64>,
    /// Its interval.
    pub cost_per_accepted_ci: CostCi,
    /// What this run actually paid (0 for replayed answers).
    pub spent_usd: Option<f64>,
    /// Latency of answering calls.
    pub latency_ms: Latency,
}

/// Run metadata in the report.
#[derive(Debug, Clone, Serialize)]
pub struct RunMeta {
    /// Run id.
    pub id: i64,
    /// Start (UTC).
    pub created_at: String,
    /// End (UTC), if ended.
    pub finished_at: Option<String>,
    /// Status.
    pub status: String,
    /// Cache mode.
    pub cache_mode: String,
    /// Confidence level of the intervals.
    pub confidence: f64,
}

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Run metadata.
    pub run: RunMeta,
    /// Rows, by suite then provider (in plan order).
    pub rows: Vec<Row>,
}

struct Acc {
    calls: u64,
    failed_calls: u64,
    slots: u64,
    usage: Usage,
    cost: Option<Money>,
    unpriced: u64,
    spent: Option<Money>,
    accepted: u64,
    answered: u64,
    /// f32 is ample for milliseconds and halves the per-outcome memory.
    latencies: Vec<f32>,
    /// (task index, accepted, token cost in femto-dollars) per outcome, for the bootstrap.
    outcomes: Vec<(u32, bool, i64)>,
}

impl Default for Acc {
    /// Costs start known at zero; one unknown slot makes them unknown.
    fn default() -> Self {
        Acc {
            calls: 0,
            failed_calls: 0,
            slots: 0,
            usage: Usage::default(),
            cost: Some(Money::ZERO),
            unpriced: 0,
            spent: Some(Money::ZERO),
            accepted: 0,
            answered: 0,
            latencies: Vec::new(),
            outcomes: Vec::new(),
        }
    }
}

/// Builds the report of a run from the store.
pub fn build(store: &Store, run: &RunInfo, opts: ReportOptions) -> Result<Report, StoreError> {
    let mut acc: BTreeMap<(String, String), Acc> = BTreeMap::new();
    store.for_each_slot(run.id, |s| {
        let a = acc
            .entry((s.suite.clone(), s.provider.clone()))
            .or_default();
        a.calls += s.calls;
        a.failed_calls += s.failed_calls;
        a.slots += u64::from(s.calls > 0);
        a.usage.input += s.usage.input;
        a.usage.cached_input += s.usage.cached_input;
        a.usage.cache_write += s.usage.cache_write + s.usage.cache_write_1h;
        a.usage.output += s.usage.output;
        a.usage.reasoning += s.usage.reasoning;
        a.cost = a.cost.zip(s.cost).map(|(x, y)| x.plus(y));
        a.unpriced += s.unpriced_calls;
        a.spent = a.spent.zip(s.spent).map(|(x, y)| x.plus(y));
        let accepted = s.accepted == Some(true);
        a.accepted += u64::from(accepted);
        a.answered += u64::from(s.answered);
        a.latencies.extend(s.latency_ms.map(|l| l as f32));
        // Unknown slot costs make the row's cost unknown, so they are never read as 0.
        let cost = s.cost.map_or(0, |c| i64::try_from(c.0).unwrap_or(i64::MAX));
        a.outcomes.push((s.task_idx, accepted, cost));
    })?;

    let plan = &run.plan;
    let empty = Vec::new();
    let suites = plan["suites"].as_array().unwrap_or(&empty);
    let providers = plan["providers"].as_array().unwrap_or(&empty);
    let mut rows = Vec::new();
    for s in suites {
        let suite = s["name"].as_str().unwrap_or_default().to_string();
        let tasks = s["tasks"].as_u64().unwrap_or(0);
        let outcomes = tasks * s["repeats"].as_u64().unwrap_or(1);
        let rejection = Money(
            s["rejection_cost_femto"]
                .as_str()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0),
        );
        let threshold = s["quality_threshold"].as_f64();
        for p in providers {
            let provider = p["id"].as_str().unwrap_or_default().to_string();
            let a = acc
                .remove(&(suite.clone(), provider.clone()))
                .unwrap_or_default();
            rows.push(row(
                RowInput {
                    suite: suite.clone(),
                    workload: s["workload"].as_str().unwrap_or_default().to_string(),
                    provider,
                    tasks,
                    outcomes,
                    rejection,
                    threshold,
                },
                a,
                opts,
            ));
        }
    }
    Ok(Report {
        run: RunMeta {
            id: run.id,
            created_at: run.created_at.clone(),
            finished_at: run.finished_at.clone(),
            status: run.status.clone(),
            cache_mode: run.cache_mode.clone(),
            confidence: opts.confidence,
        },
        rows,
    })
}

struct RowInput {
    suite: String,
    workload: String,
    provider: String,
    tasks: u64,
    outcomes: u64,
    rejection: Money,
    threshold: Option<f64>,
}

fn row(i: RowInput, mut a: Acc, opts: ReportOptions) -> Row {
    let attempted = a.outcomes.len() as u64;
    let pending = i.outcomes.saturating_sub(attempted);
    let rejected = attempted - a.accepted;
    let rejections = i.rejection.times(rejected);
    let total = a.cost.map(|c| c.plus(rejections));
    let wilson = stats::wilson(a.accepted, attempted, opts.confidence);
    let cost_per_accepted = total
        .filter(|_| a.accepted > 0)
        .map(|t| t.usd() / a.accepted as f64);
    // Each outcome carries its own token cost plus its rejection cost, clustered by task.
    let ci = if a.cost.is_some() && a.accepted > 0 {
        let outcomes: Vec<Outcome> = a
            .outcomes
            .iter()
            .map(|&(task, accepted, cost)| Outcome {
                task,
                accepted,
                cost: Money(i128::from(cost))
                    .plus(if accepted { Money::ZERO } else { i.rejection })
                    .usd(),
            })
            .collect();
        let r = stats::cost_per_accepted_bca(&outcomes, opts.bootstrap, opts.confidence, opts.seed);
        CostCi {
            low: r.low,
            high: r.high,
            method: r.method,
            resamples: r.resamples,
            zero_accept_resamples: r.zero_accept_resamples,
        }
    } else {
        CostCi {
            low: None,
            high: None,
            method: "bca-bootstrap",
            resamples: 0,
            zero_accept_resamples: 0,
        }
    };
    a.latencies.sort_by(f32::total_cmp);
    let rate = wilson.map(|w| w.estimate);
    Row {
        suite: i.suite,
        workload: i.workload,
        provider: i.provider,
        tasks: i.tasks,
        outcomes: i.outcomes,
        pending,
        accepted: a.accepted,
        unanswered: attempted - a.answered,
        acceptance: Acceptance {
            rate,
            low: wilson.map(|w| w.low),
            high: wilson.map(|w| w.high),
            method: "wilson",
        },
        quality_threshold: i.threshold,
        qualifies: i.threshold.zip(rate).map(|(t, r)| r >= t),
        calls: a.calls,
        failed_calls: a.failed_calls,
        retries: a.calls.saturating_sub(a.slots),
        unpriced_calls: a.unpriced,
        tokens: Tokens {
            input: a.usage.input,
            cached_input: a.usage.cached_input,
            cache_write: a.usage.cache_write,
            output: a.usage.output,
            reasoning: a.usage.reasoning,
        },
        cost_usd: Costs {
            tokens: a.cost.map(Money::usd),
            rejections: rejections.usd(),
            total: total.map(Money::usd),
        },
        cost_per_accepted_usd: cost_per_accepted,
        cost_per_accepted_ci: ci,
        spent_usd: a.spent.map(Money::usd),
        latency_ms: Latency {
            p50: percentile(&a.latencies, 0.50),
            p95: percentile(&a.latencies, 0.95),
        },
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

fn usd(x: Option<f64>) -> String {
    match x {
        None => "unknown".into(),
        Some(0.0) => "$0".into(),
        Some(v) if v.abs() >= 0.01 => format!("${v:.4}"),
        Some(v) => format!("${v:.6}"),
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{:.1}%", v * 100.0))
}

fn ms(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{v:.0}"))
}

const HEADER: [&str; 9] = [
    "suite",
    "provider",
    "accepted",
    "acceptance (95% Wilson)",
    "$/accepted (95% BCa)",
    "total cost",
    "calls / failed / retries",
    "p50 / p95 ms",
    "spent now",
];

fn cells(r: &Row) -> [String; 9] {
    let done = r.outcomes - r.pending;
    let mut acc = format!("{}/{}", r.accepted, done);
    if r.pending > 0 {
        acc.push_str(&format!(" ({} pending)", r.pending));
    }
    let qual = match r.qualifies {
        Some(true) => " ✓",
        Some(false) => " ✗",
        None => "",
    };
    let cpa = match r.cost_per_accepted_usd {
        None => "unknown".to_string(),
        Some(_) => format!(
            "{} [{} – {}]",
            usd(r.cost_per_accepted_usd),
            usd(r.cost_per_accepted_ci.low),
            r.cost_per_accepted_ci
                .high
                .map_or_else(|| "∞".into(), |h| usd(Some(h)))
        ),
    };
    [
        r.suite.clone(),
        r.provider.clone(),
        acc,
        format!(
            "{} [{} – {}]{qual}",
            pct(r.acceptance.rate),
            pct(r.acceptance.low),
            pct(r.acceptance.high)
        ),
        cpa,
        usd(r.cost_usd.total),
        format!("{} / {} / {}", r.calls, r.failed_calls, r.retries),
        format!("{} / {}", ms(r.latency_ms.p50), ms(r.latency_ms.p95)),
        usd(r.spent_usd),
    ]
}

/// Renders a report in a format.
pub fn render(report: &Report, format: Format) -> String {
    let conf = format!("{:.0}%", report.run.confidence * 100.0);
    let header: Vec<String> = HEADER.iter().map(|h| h.replace("95%", &conf)).collect();
    match format {
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default(),
        Format::Table => {
            let mut t = Table::new();
            t.load_style(UTF8_FULL_CONDENSED).set_header(header);
            for r in &report.rows {
                t.add_row(cells(r));
            }
            format!("{}\n{t}\n{}", title(report), footnote(report))
        }
        Format::Md => {
            let esc = |s: &str| s.replace('|', "\\|");
            let mut out = format!("## {}\n\n", title(report));
            out.push_str(&format!("| {} |\n", header.join(" | ")));
            out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
            for r in &report.rows {
                let c: Vec<String> = cells(r).iter().map(|c| esc(c)).collect();
                out.push_str(&format!("| {} |\n", c.join(" | ")));
            }
            out.push_str(&format!("\n{}\n", footnote(report)));
            out
        }
    }
}

fn title(report: &Report) -> String {
    format!(
        "costbench run {} ({}, cache {}, started {})",
        report.run.id, report.run.status, report.run.cache_mode, report.run.created_at
    )
}

fn footnote(report: &Report) -> String {
    let mut s = String::from(
        "$/accepted = (token cost of every attempt, retries included + rejected outcomes × rejection cost) / accepted. \
         ✓/✗: acceptance vs the suite's quality threshold.",
    );
    if report.rows.iter().any(|r| r.unpriced_calls > 0) {
        s.push_str(
            " unknown: some attempts have no usage or no price for a token class they used.",
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f32> = (1..=100u8).map(f32::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.95), Some(95.0));
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
