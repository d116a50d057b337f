//! The baseline file: what `costbench gate` compares a run against.
//!
//! `costbench baseline save` writes, from a stored run's [`RunAnalysis`], per suite × provider
//! every outcome a paired test needs (task id, repeat, verdict, token cost) and the summary
//! figures, with the prices each provider had, so a later run can be paired task by task and a
//! cost change can be split into price and usage. Users commit the file, so it is JSON laid out
//! for small diffs: one outcome per line, sorted by task id then repeat, amounts as exact
//! femto-dollar text.
//!
//! ```text
//! { "schema_version": 1,                  // SCHEMA_VERSION; a newer file is refused
//!   "created_by": "costbench 0.1.0",
//!   "run": {"id", "created_at"},         // the run it was saved from
//!   "suites": [ {"name", "workload", "repeats", "tasks", "quality_threshold",
//!                "rejection_cost_femto", "fingerprint"} ],
//!   "providers": [ {"id", "model", "price"} ],   // price as in the run plan ("$0.4/1M"), or null
//!   "rows": [ {"suite", "provider",
//!              "summary": {"accepted", "decided", "acceptance", "acceptance_low",
//!                          "acceptance_high", "acceptance_method", "cost_per_accepted_usd",
//!                          "unpriced_calls"},
//!              "outcomes": [
//!                {"task", "repeat", "verdict", "cost"[, "unknown_calls", "unknown_max"]},
//!                ... one a line ] } ],
//!   "routes": null | [ {"workload", "provider", "providers", "quality_threshold",
//!                      "acceptance"} ] }   // the route per class: see [`RoutedClass`]
//! ```
//!
//! `verdict` is `accepted`, `rejected`, `unanswered` (counted as rejected), `grader_error` or
//! `ungraded` (both left out of pairs); `cost` is the outcome's known token cost in femto-dollars
//! (rejection cost not included: it is the suite's `rejection_cost_femto`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analysis::{RunAnalysis, Verdict};
use crate::providers::{Money, Price};
use crate::route::{ClassVerdict, RoutePlan};
use crate::store::plan::money_text;

/// The baseline format this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Why a baseline cannot be saved or used: each is the user's input (exit 2), with the fix.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The file is not there or cannot be read.
    #[error("cannot read the baseline {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not JSON, or not a baseline's shape.
    #[error("{path} is not a costbench baseline: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Written by another schema version.
    #[error(
        "{path} has baseline schema_version {found}; this costbench reads version {SCHEMA_VERSION}"
    )]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u64,
    },
    /// The run has outcomes not attempted yet: a baseline from it would be partial.
    #[error("run {run} is not finished: {pending} outcomes were never attempted")]
    Unfinished {
        /// The run.
        run: i64,
        /// Outcomes not attempted.
        pending: u64,
    },
}

impl BaselineError {
    /// The fix to suggest.
    pub fn hint(&self) -> &'static str {
        match self {
            BaselineError::Unfinished { .. } => {
                "run the same `costbench run` command again to finish the run, then save the baseline"
            }
            _ => {
                "run `costbench baseline save --run ID --out FILE` on a run you trust and commit the file"
            }
        }
    }
}

/// The run a baseline was saved from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaselineRun {
    /// Run id in the database it came from.
    pub id: i64,
    /// When the run started (UTC).
    pub created_at: String,
}

/// A suite as the baseline's run planned it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaselineSuite {
    /// Suite name.
    pub name: String,
    /// Workload class.
    pub workload: String,
    /// Samples per task.
    pub repeats: u32,
    /// Tasks in the suite.
    pub tasks: u64,
    /// The acceptance a provider must reach to qualify.
    pub quality_threshold: Option<f64>,
    /// Downstream cost of one rejected output.
    #[serde(with = "money_text")]
    pub rejection_cost_femto: Money,
    /// Fingerprint of what the suite asks (changes when prompts or tasks change).
    pub fingerprint: String,
}

/// A provider and the price its costs were computed at.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaselineProvider {
    /// Provider id.
    pub id: String,
    /// Model name.
    pub model: String,
    /// Prices as configured for the run; `None` when it had none (costs unknown).
    pub price: Option<Price>,
}

/// The summary figures of one suite × provider, as the report showed them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaselineSummary {
    /// Accepted outcomes.
    pub accepted: u64,
    /// Outcomes counted in acceptance (accepted, rejected, unanswered).
    pub decided: u64,
    /// accepted / decided.
    pub acceptance: Option<f64>,
    /// Lower bound of its interval.
    pub acceptance_low: Option<f64>,
    /// Upper bound of its interval.
    pub acceptance_high: Option<f64>,
    /// The interval's method (`wilson`).
    pub acceptance_method: String,
    /// Cost per accepted outcome, USD (known costs).
    pub cost_per_accepted_usd: Option<f64>,
    /// Calls whose cost is unknown.
    pub unpriced_calls: u64,
}

/// One outcome: what a paired test needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaselineOutcome {
    /// Task id.
    pub task: String,
    /// Sample number.
    pub repeat: u32,
    /// How it ended.
    pub verdict: Verdict,
    /// Known token cost, femto-dollars.
    #[serde(with = "money_text")]
    pub cost: Money,
    /// Calls of unknown cost (absent when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unknown_calls: u16,
    /// The most those calls can have cost, femto-dollars (absent when 0).
    #[serde(default, with = "money_text", skip_serializing_if = "is_no_money")]
    pub unknown_max: Money,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

fn is_no_money(m: &Money) -> bool {
    *m == Money::ZERO
}

/// One suite × provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaselineRow {
    /// Suite name.
    pub suite: String,
    /// Provider id.
    pub provider: String,
    /// The figures the report showed.
    pub summary: BaselineSummary,
    /// Every outcome, sorted by task id then repeat.
    pub outcomes: Vec<BaselineOutcome>,
}

/// The provider (or cascade) `costbench route` sent a workload class to when the baseline
/// was saved; the gate checks that it still qualifies in the gated run.
///
/// Only classes with a clear choice are listed (a "no clear winner" routes nothing); `null`
/// in a file saved before routes were recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoutedClass {
    /// Workload class.
    pub workload: String,
    /// The route's name: a provider id, or `a -> b` for a cascade.
    pub provider: String,
    /// Its provider ids in call order.
    pub providers: Vec<String>,
    /// The threshold the choice's acceptance lower bound had to reach (`null`: none set).
    pub quality_threshold: Option<f64>,
    /// The route's acceptance in the baseline's run.
    pub acceptance: Option<f64>,
}

/// A baseline file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Baseline {
    /// [`SCHEMA_VERSION`] when written.
    pub schema_version: u32,
    /// `costbench <version>` that wrote it.
    pub created_by: String,
    /// The run it was saved from.
    pub run: BaselineRun,
    /// Its suites.
    pub suites: Vec<BaselineSuite>,
    /// Its providers with their prices.
    pub providers: Vec<BaselineProvider>,
    /// Per suite × provider, in plan order.
    pub rows: Vec<BaselineRow>,
    /// Routed provider per workload class (`None` in files saved before routes were kept).
    pub routes: Option<Vec<RoutedClass>>,
}

impl Baseline {
    /// The baseline of an analysed run; a run with outcomes never attempted is refused.
    pub fn from_analysis(a: &RunAnalysis) -> Result<Baseline, BaselineError> {
        let pending: u64 = a.rows.iter().map(|r| r.figures.pending).sum();
        if pending > 0 {
            return Err(BaselineError::Unfinished {
                run: a.run.id,
                pending,
            });
        }
        let empty = Vec::new();
        let rows = a
            .rows
            .iter()
            .map(|r| {
                let f = &r.figures;
                let ids = a.task_ids.get(&f.suite).unwrap_or(&empty);
                let mut outcomes: Vec<BaselineOutcome> = r
                    .outcomes
                    .iter()
                    .map(|o| BaselineOutcome {
                        task: ids
                            .get(o.task_idx as usize)
                            .cloned()
                            .unwrap_or_else(|| format!("#{}", o.task_idx)),
                        repeat: o.repeat,
                        verdict: o.verdict,
                        cost: o.known_cost,
                        unknown_calls: o.unknown_calls,
                        unknown_max: o.unknown_max,
                    })
                    .collect();
                outcomes.sort_by(|x, y| (&x.task, x.repeat).cmp(&(&y.task, y.repeat)));
                BaselineRow {
                    suite: f.suite.clone(),
                    provider: f.provider.clone(),
                    summary: BaselineSummary {
                        accepted: f.accepted,
                        decided: f.accepted
                            + r.outcomes
                                .iter()
                                .filter(|o| o.verdict.decided() && !o.accepted())
                                .count() as u64,
                        acceptance: f.acceptance.rate,
                        acceptance_low: f.acceptance.low,
                        acceptance_high: f.acceptance.high,
                        acceptance_method: f.acceptance.method.to_string(),
                        cost_per_accepted_usd: f.cost_per_accepted_usd,
                        unpriced_calls: f.unpriced_calls,
                    },
                    outcomes,
                }
            })
            .collect();
        Ok(Baseline {
            schema_version: SCHEMA_VERSION,
            created_by: format!("costbench {}", env!("CARGO_PKG_VERSION")),
            run: BaselineRun {
                id: a.run.id,
                created_at: a.run.created_at.clone(),
            },
            suites: a
                .run
                .plan
                .suites
                .iter()
                .map(|s| BaselineSuite {
                    name: s.name.clone(),
                    workload: s.workload.clone(),
                    repeats: s.repeats,
                    tasks: s.tasks,
                    quality_threshold: s.quality_threshold,
                    rejection_cost_femto: s.rejection_cost_femto,
                    fingerprint: s.fingerprint.clone(),
                })
                .collect(),
            providers: a
                .run
                .plan
                .providers
                .iter()
                .map(|p| BaselineProvider {
                    id: p.id.clone(),
                    model: p.model.clone(),
                    price: p.price.clone(),
                })
                .collect(),
            rows,
            routes: None,
        })
    }

    /// The baseline with the classes `plan` chose a route for.
    pub fn with_routes(mut self, plan: &RoutePlan) -> Baseline {
        self.routes = Some(
            plan.classes
                .iter()
                .filter(|c| c.verdict == ClassVerdict::Chosen)
                .filter_map(|c| {
                    let f = c.choice.as_ref()?;
                    Some(RoutedClass {
                        workload: c.workload.clone(),
                        provider: f.name.clone(),
                        providers: f.providers.clone(),
                        quality_threshold: c.quality_threshold,
                        acceptance: f.acceptance.rate,
                    })
                })
                .collect(),
        );
        self
    }

    /// The file's text: JSON with one outcome a line, so a re-saved baseline diffs by outcome.
    pub fn to_text(&self) -> String {
        let mut out = String::from("{\n");
        out.push_str(&format!("  \"schema_version\": {},\n", self.schema_version));
        out.push_str(&format!("  \"created_by\": {},\n", json(&self.created_by)));
        out.push_str(&format!("  \"run\": {},\n", json(&self.run)));
        let list = |items: Vec<String>| {
            if items.is_empty() {
                "[]".to_string()
            } else {
                format!("[\n    {}\n  ]", items.join(",\n    "))
            }
        };
        out.push_str(&format!(
            "  \"suites\": {},\n",
            list(self.suites.iter().map(json).collect())
        ));
        out.push_str(&format!(
            "  \"providers\": {},\n",
            list(self.providers.iter().map(json).collect())
        ));
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                let outcomes: Vec<String> = r.outcomes.iter().map(json).collect();
                format!(
                    "{{\"suite\": {}, \"provider\": {},\n     \"summary\": {},\n     \"outcomes\": [\n      {}\n     ]}}",
                    json(&r.suite),
                    json(&r.provider),
                    json(&r.summary),
                    outcomes.join(",\n      ")
                )
            })
            .collect();
        out.push_str(&format!("  \"rows\": {},\n", list(rows)));
        let routes = self.routes.as_ref().map_or_else(
            || "null".to_string(),
            |r| list(r.iter().map(json).collect()),
        );
        out.push_str(&format!("  \"routes\": {routes}\n}}\n"));
        out
    }

    /// Reads a baseline file: missing, unreadable, malformed or of another schema version is a
    /// [`BaselineError`] naming the file.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses a baseline's text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Baseline, BaselineError> {
        let corrupt = |message: String| BaselineError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        // The version is read first, so a file of another version says so rather than
        // failing on whichever field changed.
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        match value.get("schema_version").map(serde_json::Value::as_u64) {
            None => return Err(corrupt("it has no `schema_version`".into())),
            Some(None) => return Err(corrupt("`schema_version` is not a whole number".into())),
            Some(Some(v)) if v != u64::from(SCHEMA_VERSION) => {
                return Err(BaselineError::Incompatible {
                    path: path.to_path_buf(),
                    found: v,
                });
            }
            Some(Some(_)) => {}
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        let b: Baseline = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            corrupt(format!("{path}: {}", e.into_inner()))
        })?;
        let mut seen = HashMap::new();
        for r in &b.rows {
            if !b.suites.iter().any(|s| s.name == r.suite) {
                return Err(corrupt(format!(
                    "row {} / {} names a suite the file does not list",
                    r.suite, r.provider
                )));
            }
            if seen.insert((&r.suite, &r.provider), ()).is_some() {
                return Err(corrupt(format!(
                    "suite {} and provider {} appear twice",
                    r.suite, r.provider
                )));
            }
        }
        Ok(b)
    }

    /// A suite by name.
    pub fn suite(&self, name: &str) -> Option<&BaselineSuite> {
        self.suites.iter().find(|s| s.name == name)
    }

    /// A provider by id.
    pub fn provider(&self, id: &str) -> Option<&BaselineProvider> {
        self.providers.iter().find(|p| p.id == id)
    }
}

/// One line of JSON.
fn json<T: Serialize>(v: &T) -> String {
    // Plain data with string keys: serializing it to a string cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Baseline {
        Baseline {
            schema_version: SCHEMA_VERSION,
            created_by: "costbench test".into(),
            run: BaselineRun {
                id: 3,
                created_at: "2026-11-30 12:00:00".into(),
            },
            suites: vec![BaselineSuite {
                name: "s".into(),
                workload: "w".into(),
                repeats: 1,
                tasks: 2,
                quality_threshold: Some(0.5),
                rejection_cost_femto: Money(1000),
                fingerprint: "f".into(),
            }],
            providers: vec![BaselineProvider {
                id: "p".into(),
                model: "m".into(),
                price: None,
            }],
            rows: vec![BaselineRow {
                suite: "s".into(),
                provider: "p".into(),
                summary: BaselineSummary {
                    accepted: 1,
                    decided: 2,
                    acceptance: Some(0.5),
                    acceptance_low: Some(0.1),
                    acceptance_high: Some(0.9),
                    acceptance_method: "wilson".into(),
                    cost_per_accepted_usd: None,
                    unpriced_calls: 1,
                },
                outcomes: vec![
                    BaselineOutcome {
                        task: "a".into(),
                        repeat: 0,
                        verdict: Verdict::Accepted,
                        cost: Money(123_456_789_012_345_678),
                        unknown_calls: 0,
                        unknown_max: Money::ZERO,
                    },
                    BaselineOutcome {
                        task: "b".into(),
                        repeat: 0,
                        verdict: Verdict::Unanswered,
                        cost: Money::ZERO,
                        unknown_calls: 1,
                        unknown_max: Money(77),
                    },
                ],
            }],
            routes: None,
        }
    }

    #[test]
    fn the_text_round_trips_exactly_with_one_outcome_a_line() {
        let b = sample();
        let text = b.to_text();
        assert_eq!(Baseline::parse(&text, Path::new("b.json")).unwrap(), b);
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("\"verdict\"")).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("\"cost\":\"123456789012345678\""),
            "{text}"
        );
        // Zero unknowns are left out; present ones kept.
        assert!(!lines[0].contains("unknown"), "{text}");
        assert!(lines[1].contains("\"unknown_max\":\"77\""), "{text}");
    }

    #[test]
    fn another_schema_version_and_broken_files_are_named() {
        let text = sample()
            .to_text()
            .replace("\"schema_version\": 1", "\"schema_version\": 2");
        let e = Baseline::parse(&text, Path::new("b.json")).unwrap_err();
        assert!(
            matches!(e, BaselineError::Incompatible { found: 2, .. }),
            "{e}"
        );
        let e = Baseline::parse("{\"rows\": []}", Path::new("b.json")).unwrap_err();
        assert!(e.to_string().contains("no `schema_version`"), "{e}");
        let e = Baseline::parse("{ not json", Path::new("b.json")).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let text = sample()
            .to_text()
            .replace("\"verdict\":\"accepted\"", "\"verdict\":\"maybe\"");
        let e = Baseline::parse(&text, Path::new("b.json")).unwrap_err();
        assert!(e.to_string().contains("rows[0].outcomes[0].verdict"), "{e}");
    }
}
