//! What routing simulates from: per workload class, the outcomes every provider recorded on the
//! same (suite, task, repeat), lined up item by item, and the simulation of a candidate (one
//! provider, or a cascade) over them with no new call.
//!
//! Items are keyed by suite, task id and repeat, so runs of the same suite with different
//! providers line up. A provider that lacks an outcome on some item of its class cannot be
//! judged on the class and is left out with a reason; an item that some provider's graders could
//! not decide is dropped for every provider (counted), so all candidates are compared on the
//! same items.

use std::collections::BTreeMap;

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
        // Every item of the class gets a dense slot, in (suite, task id, repeat) order as the
        // resamples' seeds expect: suites by name, tasks by id (ranked once per suite), then
        // repeats. A million outcomes are too many to key by strings.
        let names: Vec<&str> = members.keys().map(String::as_str).collect();
        let mut tasks: Vec<Vec<&str>> = vec![Vec::new(); names.len()];
        let mut repeats = vec![0usize; names.len()];
        for r in runs {
            for (s, name) in names.iter().enumerate() {
                if let Some(ids) = r.task_ids.get(*name) {
                    tasks[s].extend(ids.iter().map(String::as_str));
                }
            }
            for row in &r.rows {
                if let Ok(s) = names.binary_search(&row.figures.suite.as_str()) {
                    let most = row.outcomes.iter().map(|o| o.repeat as usize + 1).max();
                    repeats[s] = repeats[s].max(most.unwrap_or(0));
                }
            }
        }
        for ids in &mut tasks {
            ids.sort_unstable();
            ids.dedup();
        }
        let mut base = vec![0usize; names.len() + 1];
        for s in 0..names.len() {
            base[s + 1] = base[s] + tasks[s].len() * repeats[s];
        }
        let np = plans.len();
        // Slot-major: the cells of slot i are grid[i·np .. (i + 1)·np], one per provider.
        let mut grid: Vec<Option<Cell>> = vec![None; base[names.len()] * np];
        for (r, checks) in runs.iter().zip(runtime) {
            // This run's task positions → their rank among the suite's task ids.
            let ranks: Vec<Vec<usize>> = names
                .iter()
                .enumerate()
                .map(|(s, name)| {
                    r.task_ids.get(*name).map_or(Vec::new(), |ids| {
                        ids.iter()
                            .map(|id| tasks[s].binary_search(&id.as_str()).unwrap_or(0))
                            .collect()
                    })
                })
                .collect();
            for row in &r.rows {
                let f = &row.figures;
                let Ok(s) = names.binary_search(&f.suite.as_str()) else {
                    continue;
                };
                let Some(p) = plans.iter().position(|q| q.id == f.provider) else {
                    continue;
                };
                let ok = checks.row(&f.suite, &f.provider);
                for (i, o) in row.outcomes.iter().enumerate() {
                    let Some(&t) = ranks[s].get(o.task_idx as usize) else {
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
                    let slot = base[s] + t * repeats[s] + o.repeat as usize;
                    grid[slot * np + p].get_or_insert(cell);
                }
            }
        }
        let measured: Vec<usize> = (0..base[names.len()])
            .filter(|&i| grid[i * np..(i + 1) * np].iter().any(Option::is_some))
            .collect();
        let total = measured.len();
        let mut ids: Vec<usize> = Vec::new();
        let mut excluded = Vec::new();
        for (p, plan) in plans.iter().enumerate() {
            let n = measured
                .iter()
                .filter(|&&i| grid[i * np + p].is_some())
                .count();
            if n == total && total > 0 {
                ids.push(p);
            } else if n > 0 {
                excluded.push((
                    plan.id.clone(),
                    format!(
                        "measured on {n} of the class's {total} outcomes (every one is needed to compare it)"
                    ),
                ));
            }
        }
        let items: Vec<usize> = measured
            .into_iter()
            .filter(|&i| {
                ids.iter()
                    .all(|&p| grid[i * np + p].is_some_and(|c| c.verdict.decided()))
            })
            .collect();
        let dropped_items = total - items.len();
        let mut providers: Vec<ProviderData> = ids
            .iter()
            .map(|&p| ProviderData {
                id: plans[p].id.clone(),
                tags: plans[p].tags.clone(),
                cost: Vec::with_capacity(items.len()),
                accepted: Vec::with_capacity(items.len()),
                runtime_ok: Vec::with_capacity(items.len()),
                latency_ms: Vec::with_capacity(items.len()),
                unpriced_calls: 0,
                priced: false,
            })
            .collect();
        let mut cluster_start = Vec::new();
        let mut rejection = Vec::with_capacity(items.len());
        let mut last = None;
        for (n, &i) in items.iter().enumerate() {
            let s = base.partition_point(|&b| b <= i) - 1;
            let task = (s, (i - base[s]) / repeats[s]);
            if last != Some(task) {
                cluster_start.push(n);
                last = Some(task);
            }
            rejection.push(members[names[s]].1);
            for (prov, &p) in providers.iter_mut().zip(&ids) {
                let Some(c) = grid[i * np + p] else { continue };
                prov.cost.push(c.cost);
                prov.accepted.push(c.verdict == Verdict::Accepted);
                prov.runtime_ok.push(c.runtime_ok);
                prov.latency_ms.push(c.latency);
                prov.unpriced_calls += u64::from(c.unknown);
                prov.priced |= c.unknown == 0;
            }
        }
        cluster_start.push(items.len());
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
