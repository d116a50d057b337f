//! What routing simulates from: per workload class, the outcomes every provider recorded on the
//! same (suite, task, repeat), lined up item by item, and the simulation of a candidate (one
//! provider, or a cascade) over them with no new call.
//!
//! Items are keyed by suite, task id and repeat, so runs of the same suite with different
//! providers line up. A provider that lacks an outcome on some item of its class cannot be
//! judged on the class and is left out with a reason; an item that some provider's graders could
//! not decide is dropped for every provider (counted), so all candidates are compared on the
//! same items.

use std::collections::{BTreeMap, HashMap};

use crate::analysis::{RunAnalysis, RuntimeChecks, Verdict};
use crate::store::plan::ProviderPlan;

/// One provider's outcomes on the items of a class, item by item.
#[derive(Debug, Clone)]
pub struct ProviderData {
    /// Provider id.
    pub id: String,
    /// Its tags as configured.
    pub tags: BTreeMap<String, String>,
    /// Known token cost of each item (retries included), USD.
    pub cost: Vec<f64>,
    /// Whether the full graders accepted the answer.
    pub accepted: Vec<bool>,
    /// Whether the checks that can run at serving time passed (false without an answer).
    pub runtime_ok: Vec<bool>,
    /// Latency of the answering call, ms (0 without an answer).
    pub latency_ms: Vec<f32>,
    /// Calls of unknown cost over the items (their cost is left out of `cost`).
    pub unpriced_calls: u64,
    /// Whether any of its costs is known (a provider without a price has none).
    pub priced: bool,
}

/// The items of one workload class and every provider measured on all of them.
#[derive(Debug, Clone)]
pub struct ClassData {
    /// Workload class.
    pub workload: String,
    /// Suites of the class.
    pub suites: Vec<String>,
    /// The highest `quality_threshold` among its suites.
    pub suite_threshold: Option<f64>,
    /// Whether every suite of the class has a check marked `runtime: true` (cascades need one).
    pub has_runtime: bool,
    /// Item offsets of each task (cluster): items of task `t` are `cluster_start[t]..[t + 1]`.
    pub cluster_start: Vec<usize>,
    /// Rejection cost of each item (its suite's `rejection_cost_usd`), USD.
    pub rejection: Vec<f64>,
    /// Providers measured on every item.
    pub providers: Vec<ProviderData>,
    /// Providers left out, with the reason.
    pub excluded: Vec<(String, String)>,
    /// Items dropped because some provider's graders could not decide them.
    pub dropped_items: usize,
}

impl ClassData {
    /// Number of items (task × repeat).
    pub fn items(&self) -> usize {
        self.rejection.len()
    }

    /// Number of tasks (clusters).
    pub fn clusters(&self) -> usize {
        self.cluster_start.len().saturating_sub(1)
    }

    /// A provider's position by id.
    pub fn provider(&self, id: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.id == id)
    }
}

/// One recorded outcome of a provider on an item, before lining up.
#[derive(Clone, Copy)]
struct Cell {
    verdict: Verdict,
    cost: f64,
    unknown: u16,
    runtime_ok: bool,
    latency: f32,
}

/// What routing needs of a suite: (quality threshold, rejection cost in USD, whether it has a
/// runtime check).
type SuiteFacts = (Option<f64>, f64, bool);

/// Lines up the outcomes of the given runs by class. `runtime[i]` holds the runtime checks of
/// `runs[i]`. A provider id in several runs takes its first run's outcomes on a shared item.
pub fn classes(runs: &[&RunAnalysis], runtime: &[&RuntimeChecks]) -> Vec<ClassData> {
    // class → suite → its facts
    let mut suites: BTreeMap<String, BTreeMap<String, SuiteFacts>> = BTreeMap::new();
    let mut plans: Vec<&ProviderPlan> = Vec::new();
    for r in runs {
        for s in &r.run.plan.suites {
            suites.entry(s.workload.clone()).or_default().insert(
                s.name.clone(),
                (
                    s.quality_threshold,
                    s.rejection_cost_femto.usd(),
                    !s.runtime_graders.is_empty(),
                ),
            );
        }
        for p in &r.run.plan.providers {
            if !plans.iter().any(|q| q.id == p.id) {
                plans.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for (workload, members) in suites {
        // (suite, task id, repeat) → provider → cell
        let mut cells: BTreeMap<(String, String, u32), HashMap<String, Cell>> = BTreeMap::new();
        for (r, checks) in runs.iter().zip(runtime) {
            for row in &r.rows {
                let f = &row.figures;
                if !members.contains_key(&f.suite) {
                    continue;
                }
                let ids = r.task_ids.get(&f.suite);
                let ok = checks.row(&f.suite, &f.provider);
                for (i, o) in row.outcomes.iter().enumerate() {
                    let Some(task) = ids.and_then(|v| v.get(o.task_idx as usize)) else {
                        continue;
                    };
                    let accepted = o.verdict == Verdict::Accepted;
                    let cell = Cell {
                        verdict: o.verdict,
                        cost: o.known_cost.usd(),
                        unknown: o.unknown_calls,
                        // Without a runtime check only a missing answer is visible at serving
                        // time; an accepted answer passed every check, runtime ones included.
                        runtime_ok: match ok {
                            Some(v) => accepted || v.get(i).copied().unwrap_or(false),
                            None => o.verdict != Verdict::Unanswered,
                        },
                        latency: o.latency_ms.unwrap_or(0.0),
                    };
                    cells
                        .entry((f.suite.clone(), task.clone(), o.repeat))
                        .or_default()
                        .entry(f.provider.clone())
                        .or_insert(cell);
                }
            }
        }
        let total = cells.len();
        let mut ids: Vec<&str> = Vec::new();
        let mut excluded = Vec::new();
        for p in &plans {
            let n = cells.values().filter(|m| m.contains_key(&p.id)).count();
            if n == total && total > 0 {
                ids.push(&p.id);
            } else if n > 0 {
                excluded.push((
                    p.id.clone(),
                    format!(
                        "measured on {n} of the class's {total} outcomes (every one is needed to compare it)"
                    ),
                ));
            }
        }
        let before = cells.len();
        cells.retain(|_, m| {
            ids.iter()
                .all(|id| m.get(*id).is_some_and(|c| c.verdict.decided()))
        });
        let dropped_items = before - cells.len();
        let mut providers: Vec<ProviderData> = ids
            .iter()
            .map(|id| {
                let plan = plans.iter().find(|p| p.id == *id);
                ProviderData {
                    id: id.to_string(),
                    tags: plan.map(|p| p.tags.clone()).unwrap_or_default(),
                    cost: Vec::with_capacity(cells.len()),
                    accepted: Vec::with_capacity(cells.len()),
                    runtime_ok: Vec::with_capacity(cells.len()),
                    latency_ms: Vec::with_capacity(cells.len()),
                    unpriced_calls: 0,
                    priced: false,
                }
            })
            .collect();
        let mut cluster_start = Vec::new();
        let mut rejection = Vec::with_capacity(cells.len());
        let mut last: Option<(&str, &str)> = None;
        for (i, ((suite, task, _), m)) in cells.iter().enumerate() {
            if last != Some((suite.as_str(), task.as_str())) {
                cluster_start.push(i);
                last = Some((suite, task));
            }
            rejection.push(members.get(suite).map_or(0.0, |m| m.1));
            for p in &mut providers {
                let c = m[&p.id];
                p.cost.push(c.cost);
                p.accepted.push(c.verdict == Verdict::Accepted);
                p.runtime_ok.push(c.runtime_ok);
                p.latency_ms.push(c.latency);
                p.unpriced_calls += u64::from(c.unknown);
                p.priced |= c.unknown == 0;
            }
        }
        cluster_start.push(cells.len());
        out.push(ClassData {
            workload,
            suite_threshold: members
                .values()
                .filter_map(|m| m.0)
                .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.max(t)))),
            has_runtime: members.values().all(|m| m.2),
            suites: members.into_keys().collect(),
            cluster_start,
            rejection,
            providers,
            excluded,
            dropped_items,
        });
    }
    out
}

/// A candidate simulated item by item.
#[derive(Debug, Clone, Default)]
pub struct Sim {
    /// Token cost of every step taken, plus the rejection cost when the final answer is
    /// rejected, USD.
    pub cost: Vec<f64>,
    /// Token cost alone (what the providers bill), USD.
    pub tokens: Vec<f64>,
    /// Whether the full graders accepted the final answer.
    pub accepted: Vec<bool>,
    /// Latency of the steps taken, summed, ms.
    pub latency_ms: Vec<f32>,
    /// How many items ended at each step.
    pub ended_at: Vec<u64>,
}

/// Simulates a candidate: call `steps[0]`; escalate to the next step when the answer fails the
/// runtime checks; the last step's answer is final. No call is made: every step's answer is the
/// one that provider recorded for the item.
pub fn simulate(class: &ClassData, steps: &[usize]) -> Sim {
    let n = class.items();
    let mut s = Sim {
        cost: Vec::with_capacity(n),
        tokens: Vec::with_capacity(n),
        accepted: Vec::with_capacity(n),
        latency_ms: Vec::with_capacity(n),
        ended_at: vec![0; steps.len()],
    };
    for i in 0..n {
        let (mut tokens, mut latency) = (0.0, 0.0f32);
        let mut accepted = false;
        for (k, &p) in steps.iter().enumerate() {
            let p = &class.providers[p];
            tokens += p.cost[i];
            latency += p.latency_ms[i];
            if k + 1 == steps.len() || p.runtime_ok[i] {
                accepted = p.accepted[i];
                s.ended_at[k] += 1;
                break;
            }
        }
        s.tokens.push(tokens);
        s.cost
            .push(tokens + if accepted { 0.0 } else { class.rejection[i] });
        s.accepted.push(accepted);
        s.latency_ms.push(latency);
    }
    s
}

/// Per-task sums of a simulated candidate, the unit every resample and fold weighs.
#[derive(Debug, Clone)]
pub struct Clustered {
    /// Accepted items per task.
    pub accepted: Vec<f64>,
    /// Cost (rejections included) per task, USD.
    pub cost: Vec<f64>,
    /// Token cost per task, USD.
    pub tokens: Vec<f64>,
}

impl Clustered {
    /// Sums a simulation by task.
    pub fn of(class: &ClassData, sim: &Sim) -> Clustered {
        let k = class.clusters();
        let mut c = Clustered {
            accepted: vec![0.0; k],
            cost: vec![0.0; k],
            tokens: vec![0.0; k],
        };
        for t in 0..k {
            for i in class.cluster_start[t]..class.cluster_start[t + 1] {
                c.accepted[t] += f64::from(u8::from(sim.accepted[i]));
                c.cost[t] += sim.cost[i];
                c.tokens[t] += sim.tokens[i];
            }
        }
        c
    }
}

/// Items per task, as weights' companions.
pub fn items_per_cluster(class: &ClassData) -> Vec<f64> {
    class
        .cluster_start
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64)
        .collect()
}

/// Σ wᵢ·xᵢ.
pub fn dot(w: &[f64], x: &[f64]) -> f64 {
    // Eight running sums instead of one: a single chain of dependent adds is bound by the add's
    // latency, while eight independent lanes vectorize (the resamples of a large class spend
    // most of their time here).
    let n = w.len().min(x.len());
    let (w, x) = (&w[..n], &x[..n]);
    let (wc, wr) = w.as_chunks::<8>();
    let (xc, xr) = x.as_chunks::<8>();
    let mut lanes = [0.0; 8];
    for (a, b) in wc.iter().zip(xc) {
        for l in 0..8 {
            lanes[l] += a[l] * b[l];
        }
    }
    let tail: f64 = wr.iter().zip(xr).map(|(a, b)| a * b).sum();
    lanes.iter().sum::<f64>() + tail
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Two providers on three single-item tasks; rejection costs $1.
    pub(crate) fn toy() -> ClassData {
        let p = |id: &str, cost: [f64; 3], acc: [bool; 3], ok: [bool; 3]| ProviderData {
            id: id.into(),
            tags: BTreeMap::new(),
            cost: cost.to_vec(),
            accepted: acc.to_vec(),
            runtime_ok: ok.to_vec(),
            latency_ms: vec![100.0; 3],
            unpriced_calls: 0,
            priced: true,
        };
        ClassData {
            workload: "w".into(),
            suites: vec!["s".into()],
            suite_threshold: None,
            has_runtime: true,
            cluster_start: vec![0, 1, 2, 3],
            rejection: vec![1.0; 3],
            providers: vec![
                // cheap: item 0 right; item 1 wrong but passes the runtime check; item 2 fails it.
                p(
                    "cheap",
                    [0.1, 0.1, 0.1],
                    [true, false, false],
                    [true, true, false],
                ),
                p(
                    "dear",
                    [1.0, 1.0, 1.0],
                    [true, true, true],
                    [true, true, true],
                ),
            ],
            excluded: Vec::new(),
            dropped_items: 0,
        }
    }

    #[test]
    fn a_cascade_pays_every_step_and_keeps_the_answer_it_ends_with() {
        let c = toy();
        let s = simulate(&c, &[0, 1]);
        // Item 0: cheap, accepted. Item 1: cheap passes the runtime check, so its wrong answer is
        // final (rejected: + $1). Item 2: escalated, pays both, dear's answer accepted.
        assert_eq!(s.accepted, vec![true, false, true]);
        assert_eq!(s.tokens, vec![0.1, 0.1, 1.1]);
        assert_eq!(s.cost, vec![0.1, 1.1, 1.1]);
        assert_eq!(s.latency_ms, vec![100.0, 100.0, 200.0]);
        assert_eq!(s.ended_at, vec![2, 1]);
        let k = Clustered::of(&c, &s);
        assert_eq!(k.accepted, vec![1.0, 0.0, 1.0]);
    }
}
