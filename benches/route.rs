//! Routing speed: 20 providers × 10 workload classes × 1,000 tasks, with cascades (pairs and
//! triples of each class's cost–acceptance frontier), the 90% stability check over 1,000 task
//! resamples, 5-fold cross-validation and the BCa intervals. Target: under 5 s on 2 cores.
//!
//! `cargo bench --bench route` prints the time of `route` on the constructed input (data
//! generation is not timed), best of 3.

use std::collections::BTreeMap;
use std::time::Instant;

use costbench::analysis::AnalysisOptions;
use costbench::route::data::{ClassData, ProviderData};
use costbench::route::policy::Policy;
use costbench::route::{RouteInput, route};
use costbench::stats::rng::Rng;

const PROVIDERS: usize = 20;
const CLASSES: usize = 10;
const TASKS: usize = 1000;

fn class(rng: &mut Rng, c: usize) -> ClassData {
    let providers = (0..PROVIDERS)
        .map(|j| {
            // Dearer providers are more accurate, with noise, so the frontier is a real one.
            let quality = j as f64 / PROVIDERS as f64;
            let p = (0.55 + 0.43 * quality + 0.05 * (rng.uniform() - 0.5)).min(0.99);
            let mean = 1e-4 * 10f64.powf(2.0 * quality + 0.3 * rng.uniform());
            let accepted: Vec<bool> = (0..TASKS).map(|_| rng.bernoulli(p)).collect();
            // The runtime check catches most rejected answers and passes accepted ones.
            let runtime_ok = accepted.iter().map(|&a| a || rng.bernoulli(0.2)).collect();
            ProviderData {
                id: format!("p{j:02}"),
                tags: BTreeMap::new(),
                cost: (0..TASKS)
                    .map(|_| mean * (0.5 * rng.normal()).exp())
                    .collect(),
                accepted,
                runtime_ok,
                latency_ms: (0..TASKS)
                    .map(|_| 200.0 + 800.0 * rng.uniform() as f32)
                    .collect(),
                unpriced_calls: 0,
                priced: true,
            }
        })
        .collect();
    ClassData {
        workload: format!("class{c}"),
        suites: vec![format!("suite{c}")],
        suite_threshold: Some(0.8),
        has_runtime: true,
        cluster_start: (0..=TASKS).collect(),
        rejection: vec![1e-3; TASKS],
        providers,
        excluded: Vec::new(),
        dropped_items: 0,
    }
}

/// User + system CPU time of this process so far: on a shared machine the wall time also
/// counts other processes' turns, the CPU time does not.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn main() {
    let mut rng = Rng::new(5);
    let input = RouteInput {
        runs: Vec::new(),
        classes: (0..CLASSES).map(|c| class(&mut rng, c)).collect(),
        providers: Vec::new(),
        tags: BTreeMap::new(),
    };
    let policy = Policy::default();
    let opts = AnalysisOptions::default();
    let mut best = f64::INFINITY;
    let mut best_cpu = f64::INFINITY;
    let mut plan = None;
    for _ in 0..3 {
        let (t, c) = (Instant::now(), cpu_seconds());
        plan = Some(route(&input, &policy, &opts));
        best = best.min(t.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(cpu_seconds() - c);
    }
    let plan = plan.expect("routed");
    let cascades = plan
        .classes
        .iter()
        .flat_map(|c| &c.rejected)
        .filter(|r| r.candidate.contains("->"))
        .count();
    let chosen = plan
        .classes
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c.workload,
                c.choice.as_ref().map_or("-", |f| f.name.as_str())
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "route: {PROVIDERS} providers × {CLASSES} classes × {TASKS} tasks ({} resamples, {}-fold CV, {} bootstrap): best of 3 = {best:.2} s wall, {best_cpu:.2} s CPU (all threads; on {} cores); {cascades} cascades rejected with a reason; {chosen}",
        policy.resamples,
        policy.folds,
        opts.bootstrap,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}
