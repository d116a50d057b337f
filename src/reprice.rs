//! `costbench reprice`: every cost figure of a stored run under another price table, with no
//! provider call.
//!
//! The store keeps each attempt's token usage, so a run can be priced again: one read of the
//! store gives the analysis as stored and with the new prices
//! ([`RunAnalysis::load_before_after`]), and this module only lines the two up row by row. An attempt whose provider had no price (or a token
//! class without one) under the old table gets a cost under the new one; an attempt without
//! usage keeps its stored cost (0 for a refused request, unknown for a call never answered, whose
//! bound is taken at the new prices).

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::analysis::{Row, RunAnalysis};
use crate::providers::{Price, ProviderConfig};
use crate::route::{ClassRoute, ClassVerdict, RoutePlan};
use crate::store::RunInfo;

/// Why a price table cannot re-price a run.
#[derive(Debug, thiserror::Error)]
pub enum RepriceError {
    /// A provider of the run is not in the price file.
    #[error("{file} has no provider `{id}`, which run {run} used (the file has: {known})")]
    MissingProvider {
        /// The provider id.
        id: String,
        /// The run.
        run: i64,
        /// The price file.
        file: String,
        /// The ids the file has.
        known: String,
    },
    /// A provider of the run has no `price` in the price file.
    #[error(
        "provider `{id}` in {file} has no `price`, so run {run}'s calls to it cannot be re-priced"
    )]
    NoPrice {
        /// The provider id.
        id: String,
        /// The run.
        run: i64,
        /// The price file.
        file: String,
    },
}

impl RepriceError {
    /// The fix to suggest.
    pub fn hint(&self) -> &'static str {
        "give every provider of the run an entry with a `price` in the price file (USD per 1M tokens)"
    }
}

/// The new price of every provider of `run`, from a providers file's entries.
pub fn prices_for(
    run: &RunInfo,
    entries: &[ProviderConfig],
    file: &Path,
) -> Result<HashMap<String, Price>, RepriceError> {
    let mut prices = HashMap::new();
    for p in &run.plan.providers {
        let Some(e) = entries.iter().find(|e| e.id == p.id) else {
            return Err(RepriceError::MissingProvider {
                id: p.id.clone(),
                run: run.id,
                file: file.display().to_string(),
                known: entries
                    .iter()
                    .map(|e| e.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let Some(price) = &e.price else {
            return Err(RepriceError::NoPrice {
                id: p.id.clone(),
                run: run.id,
                file: file.display().to_string(),
            });
        };
        prices.insert(p.id.clone(), price.clone());
    }
    Ok(prices)
}

/// A figure before and after re-pricing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Change<T> {
    /// Under the stored prices.
    pub before: T,
    /// Under the new prices.
    pub after: T,
}

/// An interval of cost per accepted outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bounds {
    /// Lower bound, USD.
    pub low: Option<f64>,
    /// Upper bound, USD (`null` when unbounded or unknown).
    pub high: Option<f64>,
}

/// One suite × provider row, before → after.
#[derive(Debug, Clone, Serialize)]
pub struct RepricedRow {
    /// Suite name.
    pub suite: String,
    /// Provider id.
    pub provider: String,
    /// Whether the cost per accepted outcome changed.
    pub changed: bool,
    /// Cost per accepted outcome (known costs).
    pub cost_per_accepted_usd: Change<Option<f64>>,
    /// Its interval (the report's: log-scale studentized bootstrap, or delta-log on many tasks).
    pub cost_per_accepted_ci: Change<Bounds>,
    /// The same with calls of unknown cost at their bound.
    pub cost_per_accepted_max_usd: Change<Option<f64>>,
    /// Token cost of every attempt whose cost is known.
    pub tokens_usd: Change<Option<f64>>,
    /// Token cost + rejection cost.
    pub total_usd: Change<Option<f64>>,
    /// Attempts whose cost is unknown.
    pub unpriced_calls: Change<u64>,
}

/// A run re-priced.
///
/// The JSON contract of `costbench reprice --format json`:
///
/// ```text
/// { "run", "prices", "confidence", "any_changed",
///   "rows": [ { "suite", "provider", "changed",
///     "cost_per_accepted_usd": {"before","after"},
///     "cost_per_accepted_ci": {"before": {"low","high"}, "after": {"low","high"}},
///     "cost_per_accepted_max_usd": {"before","after"},
///     "tokens_usd": {"before","after"}, "total_usd": {"before","after"},
///     "unpriced_calls": {"before","after"} } ],
///   "policy", "any_route_changed",
///   "routes": [ { "workload", "choice_changed", "bill_changed",
///     "verdict": {"before","after"}, "choice": {"before","after"},
///     "cost_per_accepted_usd": {"before","after"}, "cost_per_request_usd": {"before","after"},
///     "monthly_usd": {"before","after"} } ],
///   "monthly_total_usd": {"before","after"} }
/// ```
/// `changed` compares cost per accepted outcome before and after; `null` means unknown (or
/// unbounded, for an interval's high bound). `routes` is `costbench route` drawn on the run
/// before and after (under `policy`, the defaults when `null`): the choice is the class's
/// provider or cascade (`null` when none qualifies), its figures are the choice's, and the
/// monthly bill needs a `monthly_volume` in the policy.
#[derive(Debug, Clone, Serialize)]
pub struct Repriced {
    /// The run.
    pub run: i64,
    /// The price file.
    pub prices: String,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// Whether any row's cost per accepted outcome changed.
    pub any_changed: bool,
    /// Rows by suite then provider, in plan order.
    pub rows: Vec<RepricedRow>,
    /// The routing policy file (`null`: defaults).
    pub policy: Option<String>,
    /// Whether any class's choice or bill changed.
    pub any_route_changed: bool,
    /// Each class's route before → after.
    pub routes: Vec<RouteChange>,
    /// The monthly bills of the classes with a volume, summed, before → after.
    pub monthly_total_usd: Change<Option<f64>>,
}

/// A workload class's route before → after re-pricing.
#[derive(Debug, Clone, Serialize)]
pub struct RouteChange {
    /// Workload class.
    pub workload: String,
    /// Whether the chosen provider or cascade changed (or the verdict).
    pub choice_changed: bool,
    /// Whether the choice's cost per request (and so the class's bill) changed.
    pub bill_changed: bool,
    /// chosen, no_clear_winner or none_qualifies.
    pub verdict: Change<ClassVerdict>,
    /// The choice (the leading contender when no clear winner; `null` when none qualifies).
    pub choice: Change<Option<String>>,
    /// The choice's cost per accepted outcome.
    pub cost_per_accepted_usd: Change<Option<f64>>,
    /// The choice's mean token cost per request.
    pub cost_per_request_usd: Change<Option<f64>>,
    /// The class's monthly bill under the recommendation (needs the policy's volume).
    pub monthly_usd: Change<Option<f64>>,
}

/// Each class's route before and after, lined up by class.
fn route_changes(before: &RoutePlan, after: &RoutePlan) -> Vec<RouteChange> {
    let choice = |c: &ClassRoute| c.choice.as_ref().map(|f| f.name.clone());
    let per_accepted = |c: &ClassRoute| {
        c.choice
            .as_ref()
            .and_then(|f| f.cost_per_accepted_usd.estimate)
    };
    let per_request = |c: &ClassRoute| c.choice.as_ref().map(|f| f.cost_per_request_usd);
    let monthly = |c: &ClassRoute| {
        c.monthly
            .as_ref()
            .and_then(|m| m.recommendation_usd.as_ref())
            .and_then(|u| u.estimate)
    };
    before
        .classes
        .iter()
        .filter_map(|b| {
            let a = after.classes.iter().find(|a| a.workload == b.workload)?;
            let ch = |f: &dyn Fn(&ClassRoute) -> Option<f64>| Change {
                before: f(b),
                after: f(a),
            };
            let cost_per_request_usd = ch(&per_request);
            let monthly_usd = ch(&monthly);
            Some(RouteChange {
                workload: b.workload.clone(),
                choice_changed: b.verdict != a.verdict || choice(b) != choice(a),
                bill_changed: cost_per_request_usd.before != cost_per_request_usd.after
                    || monthly_usd.before != monthly_usd.after,
                verdict: Change {
                    before: b.verdict,
                    after: a.verdict,
                },
                choice: Change {
                    before: choice(b),
                    after: choice(a),
                },
                cost_per_accepted_usd: ch(&per_accepted),
                cost_per_request_usd,
                monthly_usd,
            })
        })
        .collect()
}

/// Lines up the analysis as stored and as re-priced (same run, same plan order), with the
/// route drawn on each.
pub fn repriced(
    before: &RunAnalysis,
    after: &RunAnalysis,
    prices: &Path,
    plans: (&RoutePlan, &RoutePlan),
) -> Repriced {
    let rows: Vec<RepricedRow> = before
        .rows
        .iter()
        .zip(&after.rows)
        .map(|(b, a)| row(&b.figures, &a.figures))
        .collect();
    let routes = route_changes(plans.0, plans.1);
    Repriced {
        run: before.run.id,
        prices: prices.display().to_string(),
        confidence: before.options.confidence,
        any_changed: rows.iter().any(|r| r.changed),
        rows,
        policy: plans.0.policy.clone(),
        any_route_changed: routes.iter().any(|r| r.choice_changed || r.bill_changed),
        monthly_total_usd: Change {
            before: total(&routes, |c| c.monthly_usd.before),
            after: total(&routes, |c| c.monthly_usd.after),
        },
        routes,
    }
}

/// The sum of the classes' monthly bills (`None` when no class has one).
fn total(routes: &[RouteChange], bill: fn(&RouteChange) -> Option<f64>) -> Option<f64> {
    routes
        .iter()
        .filter_map(bill)
        .fold(None, |sum, b| Some(sum.unwrap_or(0.0) + b))
}

fn row(b: &Row, a: &Row) -> RepricedRow {
    let change = |f: fn(&Row) -> Option<f64>| Change {
        before: f(b),
        after: f(a),
    };
    let bounds = |r: &Row| Bounds {
        low: r.cost_per_accepted_ci.low,
        high: r.cost_per_accepted_ci.high,
    };
    RepricedRow {
        suite: b.suite.clone(),
        provider: b.provider.clone(),
        changed: b.cost_per_accepted_usd != a.cost_per_accepted_usd,
        cost_per_accepted_usd: change(|r| r.cost_per_accepted_usd),
        cost_per_accepted_ci: Change {
            before: bounds(b),
            after: bounds(a),
        },
        cost_per_accepted_max_usd: change(|r| r.cost_per_accepted_max_usd),
        tokens_usd: change(|r| r.cost_usd.tokens),
        total_usd: change(|r| r.cost_usd.total),
        unpriced_calls: Change {
            before: b.unpriced_calls,
            after: a.unpriced_calls,
        },
    }
}
