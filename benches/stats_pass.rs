//! Benchmark of the full statistics pass that a costbench report runs.
//!
//! 20 providers × 10 workloads × 1,000 tasks (one outcome per task). For every provider and
//! workload: Wilson, Jeffreys and Clopper–Pearson intervals, the log-delta and BCa (B = 2,000)
//! intervals for cost per accepted outcome; for every provider against the incumbent (provider 0):
//! McNemar, Tango's interval, the non-inferiority verdict and the paired BCa bootstrap (B = 2,000)
//! of the cost difference and ratio; then Holm and Benjamini–Hochberg over the 190 comparisons.
//!
//! It prints the wall time of each pass and a hash of every output bit; passes with the same seed
//! must hash identically, also on a one-thread rayon pool (scheduling independence).
//!
//! Run: `cargo bench --bench stats_pass` (optionally `-- --seed N`).

use costbench::stats::rng::Rng;
use costbench::stats::{
    Outcome, PairedCounts, benjamini_hochberg, clopper_pearson, cost_per_accepted_bca,
    cost_per_accepted_delta_log, holm, jeffreys, mcnemar, noninferiority, paired_cost_per_accepted,
    tango_difference, wilson,
};
use rayon::prelude::*;
use std::time::Instant;

const PROVIDERS: usize = 20;
const WORKLOADS: usize = 10;
const TASKS: usize = 1000;
const B: usize = 2000;
const CONF: f64 = 0.95;
const MARGIN: f64 = 0.05;

/// Synthetic outcomes: acceptance from a logistic model of provider skill minus task difficulty
/// (so providers are correlated across tasks, as real ones are), log-normal costs scaled by a
/// per-provider price, rejected outcomes 1.5× dearer (retries).
fn generate(seed: u64) -> Vec<Vec<Vec<Outcome>>> {
    (0..WORKLOADS)
        .map(|w| {
            let mut rng = Rng::stream(seed, w as u64);
            let difficulty: Vec<f64> = (0..TASKS).map(|_| 1.2 * rng.normal() - 2.0).collect();
            (0..PROVIDERS)
                .map(|p| {
                    let mut rng = Rng::stream(seed ^ 0xABCD, (w * PROVIDERS + p) as u64);
                    let skill = 0.5 * (p as f64 / PROVIDERS as f64);
                    let price = 0.002 * (1.0 + (p % 7) as f64);
                    difficulty
                        .iter()
                        .enumerate()
                        .map(|(t, &d)| {
                            let pr = 1.0 / (1.0 + (d + skill - 0.4 * rng.normal()).exp());
                            let accepted = rng.bernoulli(pr);
                            let base = price * (0.7 * rng.normal()).exp();
                            Outcome {
                                task: t as u32,
                                accepted,
                                cost: if accepted { base } else { 1.5 * base },
                            }
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// FNV-1a over a stream of 64-bit words.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn word(&mut self, x: u64) {
        for b in x.to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn f(&mut self, x: f64) {
        self.word(x.to_bits());
    }
    fn opt(&mut self, x: Option<f64>) {
        match x {
            Some(v) => self.f(v),
            None => self.word(u64::MAX),
        }
    }
}

/// One full pass; returns the hash of all outputs and a few headline figures.
fn pass(data: &[Vec<Vec<Outcome>>], seed: u64) -> (u64, usize, usize) {
    let cells: Vec<(usize, usize)> = (0..WORKLOADS)
        .flat_map(|w| (0..PROVIDERS).map(move |p| (w, p)))
        .collect();
    let per_cell: Vec<(Vec<f64>, Option<f64>)> = cells
        .par_iter()
        .map(|&(w, p)| {
            let o = &data[w][p];
            let n = o.len() as u64;
            let acc = o.iter().filter(|x| x.accepted).count() as u64;
            let cell_seed = seed ^ ((w * PROVIDERS + p) as u64).wrapping_mul(0x9E37_79B9);
            let mut out = Vec::new();
            for i in [
                wilson(acc, n, CONF),
                jeffreys(acc, n, CONF),
                clopper_pearson(acc, n, CONF),
            ]
            .into_iter()
            .flatten()
            {
                out.extend([i.estimate, i.low, i.high]);
            }
            let bca = cost_per_accepted_bca(o, B, CONF, cell_seed);
            let dl = cost_per_accepted_delta_log(o, CONF);
            for c in [&bca, &dl] {
                out.extend([c.estimate, c.low, c.high].map(|x| x.unwrap_or(f64::NAN)));
            }
            out.push(bca.zero_accept_resamples as f64);
            let mut mid_p = None;
            if p != 0 {
                let inc = &data[w][0];
                let t = PairedCounts::from_outcomes(o, inc).expect("aligned by construction");
                let m = mcnemar(t.only_a, t.only_b);
                let tango = tango_difference(t.only_a, t.only_b, t.n, CONF).expect("n > 0");
                let ni = noninferiority(t.only_a, t.only_b, t.n, MARGIN, CONF).expect("valid");
                let pc = paired_cost_per_accepted(o, inc, B, CONF, cell_seed).expect("aligned");
                out.extend([m.exact_p, m.mid_p, tango.low, tango.high]);
                out.push(ni.verdict as u8 as f64);
                for e in [pc.difference, pc.ratio] {
                    out.extend([e.estimate, e.low, e.high].map(|x| x.unwrap_or(f64::NAN)));
                }
                mid_p = Some(m.mid_p);
            }
            (out, mid_p)
        })
        .collect();
    let family: Vec<f64> = per_cell.iter().filter_map(|c| c.1).collect();
    let h = holm(&family, 0.05).expect("valid p-values");
    let bh = benjamini_hochberg(&family, 0.05).expect("valid p-values");
    let mut hash = Fnv::new();
    for (vals, mp) in &per_cell {
        vals.iter().for_each(|&v| hash.f(v));
        hash.opt(*mp);
    }
    for (a, r) in h.adjusted.iter().zip(&h.rejected) {
        hash.f(*a);
        hash.word(u64::from(*r));
    }
    bh.adjusted.iter().for_each(|&a| hash.f(a));
    (hash.0, h.rejections(), bh.rejections())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_240_601u64);
    let t0 = Instant::now();
    let data = generate(seed);
    println!(
        "stats_pass: {PROVIDERS} providers x {WORKLOADS} workloads x {TASKS} tasks, B = {B}, \
         seed {seed}, rayon threads {} (data generated in {:.3} s)",
        rayon::current_num_threads(),
        t0.elapsed().as_secs_f64()
    );
    let mut hashes = Vec::new();
    for run in 1..=2 {
        let t = Instant::now();
        let (hash, holm_rej, bh_rej) = pass(&data, seed);
        println!(
            "run {run}: full pass {:.3} s, output hash {hash:016x}, Holm rejections {holm_rej}/190, \
             BH rejections {bh_rej}/190",
            t.elapsed().as_secs_f64()
        );
        hashes.push(hash);
    }
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool");
    let t = Instant::now();
    let (hash1, _, _) = one.install(|| pass(&data, seed));
    println!(
        "run on 1 thread: full pass {:.3} s, output hash {hash1:016x}",
        t.elapsed().as_secs_f64()
    );
    hashes.push(hash1);
    let identical = hashes.windows(2).all(|w| w[0] == w[1]);
    println!(
        "bit-identical across runs and thread counts: {}",
        if identical { "yes" } else { "NO" }
    );
    if !identical {
        std::process::exit(1);
    }
}
