//! Paired comparisons of two providers run on the same tasks.
//!
//! Pairing matters: both providers see the same tasks, so the task-difficulty variance cancels and
//! the comparison is far sharper than comparing two independent intervals (Miller, "Adding Error
//! Bars to Evals", 2024, recommendation 4). Inputs are two slices *aligned by task*: position i of
//! each slice is the same task (and the same repeat). Dropped or errored items must be recorded as
//! rejections upstream, not removed, or the pairing breaks.
//!
//! - Discordant counts b = #(A accepted, B rejected), c = #(A rejected, B accepted).
//! - **McNemar** (*Psychometrika* 12:153–157, 1947): exact conditional p = min(1, 2·F(min(b,c))) under
//!   Binomial(b+c, ½), the **mid-p** 2·F(min) − f(min) recommended by Fagerland, Lydersen & Laake
//!   (*BMC Med Res Methodol* 13:91, 2013), and χ² with continuity correction.
//! - Difference in acceptance p_A − p_B = (b − c)/n with **Tango's score interval** (*Stat Med*
//!   17:891–908, 1998), recommended for paired proportions by Fagerland, Lydersen & Laake (*Stat Med*
//!   33:2850–2875, 2014) and well-behaved with zero off-diagonal cells. With repeats per task, a
//!   paired cluster bootstrap of the difference instead.
//! - Difference and ratio of cost per accepted outcome with a **paired BCa bootstrap**: the same
//!   resampled task indices for both sides (statistics.md §3.5).

use super::bootstrap::{Clusters, bca_bounds, cluster_index, paired_ratio_replicates};
use super::{Interval, Outcome, StatsError, check_level, check_outcomes, z_two_sided};
use serde::Serialize;
use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, Discrete, DiscreteCDF};

/// Checks that two outcome slices are aligned by task (same length, same task at each position).
pub fn check_aligned(a: &[Outcome], b: &[Outcome]) -> Result<(), StatsError> {
    if a.len() != b.len() {
        return Err(StatsError::LengthMismatch {
            left: a.len(),
            right: b.len(),
        });
    }
    check_outcomes(a)?;
    check_outcomes(b)?;
    match a.iter().zip(b).position(|(x, y)| x.task != y.task) {
        Some(i) => Err(StatsError::TaskMismatch(i)),
        None => Ok(()),
    }
}

/// The paired 2×2 table of two providers' acceptances on the same outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PairedCounts {
    /// Number of pairs.
    pub n: u64,
    /// Both accepted.
    pub both: u64,
    /// Only A accepted (b).
    pub only_a: u64,
    /// Only B accepted (c).
    pub only_b: u64,
    /// Neither accepted.
    pub neither: u64,
    /// Number of distinct tasks; fewer than `n` means repeats, where McNemar and Tango do not
    /// apply and the cluster bootstrap should be used.
    pub clusters: u64,
}

impl PairedCounts {
    /// Tabulates two aligned slices.
    pub fn from_outcomes(a: &[Outcome], b: &[Outcome]) -> Result<Self, StatsError> {
        check_aligned(a, b)?;
        let mut t = PairedCounts {
            n: a.len() as u64,
            both: 0,
            only_a: 0,
            only_b: 0,
            neither: 0,
            clusters: cluster_index(a).1 as u64,
        };
        for (x, y) in a.iter().zip(b) {
            match (x.accepted, y.accepted) {
                (true, true) => t.both += 1,
                (true, false) => t.only_a += 1,
                (false, true) => t.only_b += 1,
                (false, false) => t.neither += 1,
            }
        }
        Ok(t)
    }

    /// Observed difference in acceptance p_A − p_B = (b − c)/n (0 when n = 0).
    pub fn difference(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            (self.only_a as f64 - self.only_b as f64) / self.n as f64
        }
    }

    /// Discordance rate ψ = (b + c)/n (0 when n = 0).
    pub fn discordance(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            (self.only_a + self.only_b) as f64 / self.n as f64
        }
    }

    /// The same table with the providers swapped.
    pub fn swapped(&self) -> Self {
        PairedCounts {
            only_a: self.only_b,
            only_b: self.only_a,
            ..*self
        }
    }
}

/// McNemar's test on the discordant counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct McNemar {
    /// Only A accepted.
    pub b: u64,
    /// Only B accepted.
    pub c: u64,
    /// Exact conditional two-sided p = min(1, 2·F(min(b,c); b+c, ½)).
    pub exact_p: f64,
    /// Mid-p = 2·F(min) − f(min) (the recommended test).
    pub mid_p: f64,
    /// Continuity-corrected statistic (|b − c| − 1)²/(b + c) (0 when |b − c| ≤ 1).
    pub chi2_cc: f64,
    /// Its χ²₁ upper-tail p-value.
    pub chi2_cc_p: f64,
}

/// McNemar's test for discordant counts b (only A accepted) and c (only B accepted); all p-values
/// are 1 when there are no discordant pairs.
pub fn mcnemar(b: u64, c: u64) -> McNemar {
    let m = b + c;
    if m == 0 {
        return McNemar {
            b,
            c,
            exact_p: 1.0,
            mid_p: 1.0,
            chi2_cc: 0.0,
            chi2_cc_p: 1.0,
        };
    }
    let k = b.min(c);
    let (cdf, pmf) = match Binomial::new(0.5, m) {
        Ok(bin) => (bin.cdf(k), bin.pmf(k)),
        Err(_) => (1.0, 0.0),
    };
    let diff = b.abs_diff(c) as f64;
    let chi2 = if diff <= 1.0 {
        0.0
    } else {
        (diff - 1.0).powi(2) / m as f64
    };
    let chi2_p = ChiSquared::new(1.0).map_or(1.0, |d| d.sf(chi2));
    McNemar {
        b,
        c,
        exact_p: (2.0 * cdf).min(1.0),
        mid_p: (2.0 * cdf - pmf).clamp(0.0, 1.0),
        chi2_cc: chi2,
        chi2_cc_p: chi2_p,
    }
}

/// Tango's score statistic Z(Δ) for H₀: p_A − p_B = Δ.
///
/// Z = (b − c − nΔ)/√(n(2q̂ + Δ(1−Δ))), where q̂ = (√(W² + 8n·c·Δ(1−Δ)) − W)/(4n) is the restricted
/// MLE of P(only B) and W = −b − c + (2n − b + c)Δ.
fn tango_z(b: f64, c: f64, n: f64, delta: f64) -> f64 {
    let w = -b - c + (2.0 * n - b + c) * delta;
    let disc = (w * w + 8.0 * n * c * delta * (1.0 - delta)).max(0.0);
    let q = (disc.sqrt() - w) / (4.0 * n);
    let v = n * (2.0 * q + delta * (1.0 - delta));
    let num = b - c - n * delta;
    if v > 0.0 {
        num / v.sqrt()
    } else if num > 0.0 {
        f64::INFINITY
    } else if num < 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    }
}

/// Bisection for the Δ in (lo, hi) where the decreasing function f crosses 0.
fn bisect(mut lo: f64, mut hi: f64, f: impl Fn(f64) -> f64) -> f64 {
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if f(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Tango's score interval for the paired difference p_A − p_B = (b − c)/n, where b = `only_a`,
/// c = `only_b` and n the number of pairs: {Δ : |Z(Δ)| ≤ z₁₋α/₂}. None when n = 0, b + c > n or
/// the level is outside (0, 1).
pub fn tango_difference(only_a: u64, only_b: u64, n: u64, confidence: f64) -> Option<Interval> {
    if n == 0 || only_a + only_b > n {
        return None;
    }
    let z = z_two_sided(confidence).ok()?;
    let (b, c, nf) = (only_a as f64, only_b as f64, n as f64);
    let d = (b - c) / nf;
    // Z is +∞ at Δ = −1 and −∞ at Δ = +1 unless the data sit on that edge.
    let low = if only_b == n {
        -1.0
    } else {
        bisect(-1.0, d, |x| tango_z(b, c, nf, x) - z)
    };
    let high = if only_a == n {
        1.0
    } else {
        bisect(d, 1.0, |x| tango_z(b, c, nf, x) + z)
    };
    Some(Interval {
        estimate: d,
        low: low.min(d),
        high: high.max(d),
        method: "tango-score",
    })
}

/// Difference in acceptance p_A − p_B with a paired BCa cluster bootstrap (whole tasks resampled,
/// the same tasks for both sides); the method to use with repeats per task.
pub fn paired_acceptance_bootstrap(
    a: &[Outcome],
    b: &[Outcome],
    reps: usize,
    confidence: f64,
    seed: u64,
) -> Result<Interval, StatsError> {
    check_aligned(a, b)?;
    check_level(confidence)?;
    if reps < 2 {
        return Err(StatsError::InvalidParameter("need at least 2 resamples"));
    }
    let (ca, cb) = (Clusters::acceptance(a), Clusters::acceptance(b));
    let estimate = ca.ratio() - cb.ratio();
    let mut diffs: Vec<f64> = paired_ratio_replicates(&ca, &cb, reps, seed)
        .into_iter()
        .map(|(x, y)| x - y)
        .collect();
    let jack: Vec<f64> = ca
        .jackknife()
        .iter()
        .zip(cb.jackknife())
        .map(|(x, y)| x - y)
        .collect();
    let (low, high) = bca_bounds(estimate, &mut diffs, &jack, confidence);
    Ok(Interval {
        estimate,
        low: low.clamp(-1.0, estimate),
        high: high.clamp(estimate, 1.0),
        method: "paired-cluster-bootstrap",
    })
}

/// A point estimate with optional bounds (None = no estimate, or an unbounded side).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Point estimate; None when undefined (a side with no acceptance).
    pub estimate: Option<f64>,
    /// Lower bound; None when there is no estimate or the bound is unbounded.
    pub low: Option<f64>,
    /// Upper bound; None when there is no estimate or the bound is unbounded.
    pub high: Option<f64>,
}

/// Paired comparison of cost per accepted outcome between providers A and B.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedCostCi {
    /// R_A = Σ cost_A / Σ accepted_A (None when A accepted nothing).
    pub cost_per_accepted_a: Option<f64>,
    /// R_B likewise.
    pub cost_per_accepted_b: Option<f64>,
    /// R_A − R_B in USD per accepted outcome, with a paired BCa interval.
    pub difference: Estimate,
    /// R_A / R_B, with a paired BCa interval (None when R_B is 0 or undefined).
    pub ratio: Estimate,
    /// "paired-bca-bootstrap", or "paired-delta" (the fast path, no resampling).
    pub method: &'static str,
    /// Confidence level.
    pub confidence: f64,
    /// Number of resamples.
    pub resamples: usize,
    /// Resamples in which A accepted nothing (R_A* = +∞), kept in the distribution.
    pub zero_accept_resamples_a: usize,
    /// Resamples in which B accepted nothing (R_B* = +∞), kept in the distribution.
    pub zero_accept_resamples_b: usize,
    /// Number of clusters (tasks).
    pub clusters: usize,
}

/// Turns a point estimate and bootstrap replicates into an [`Estimate`] with BCa bounds.
fn estimate_from(est: f64, reps: &mut Vec<f64>, jack: &[f64], conf: f64) -> Estimate {
    if !est.is_finite() {
        return Estimate {
            estimate: None,
            low: None,
            high: None,
        };
    }
    let (lo, hi) = bca_bounds(est, reps, jack, conf);
    Estimate {
        estimate: Some(est),
        low: lo.is_finite().then_some(lo.min(est)),
        high: hi.is_finite().then_some(hi.max(est)),
    }
}

/// Difference R_A − R_B and ratio R_A / R_B of cost per accepted outcome (R = Σ cost / Σ
/// accepted) with a paired BCa bootstrap: each resample draws whole tasks once and applies the
/// same indices to both providers. Undefined replicates (∞ − ∞, ∞/∞) count against both bounds.
pub fn paired_cost_per_accepted(
    a: &[Outcome],
    b: &[Outcome],
    reps: usize,
    confidence: f64,
    seed: u64,
) -> Result<PairedCostCi, StatsError> {
    check_aligned(a, b)?;
    check_level(confidence)?;
    if reps < 2 {
        return Err(StatsError::InvalidParameter("need at least 2 resamples"));
    }
    let (ca, cb) = (
        Clusters::cost_per_accepted(a),
        Clusters::cost_per_accepted(b),
    );
    let (ra, rb) = (ca.ratio(), cb.ratio());
    let pairs = paired_ratio_replicates(&ca, &cb, reps, seed);
    let zero_a = pairs.iter().filter(|p| p.0.is_infinite()).count();
    let zero_b = pairs.iter().filter(|p| p.1.is_infinite()).count();
    let mut diffs: Vec<f64> = pairs.iter().map(|(x, y)| x - y).collect();
    let mut ratios: Vec<f64> = pairs.iter().map(|(x, y)| x / y).collect();
    let (ja, jb) = (ca.jackknife(), cb.jackknife());
    let jd: Vec<f64> = ja.iter().zip(&jb).map(|(x, y)| x - y).collect();
    let jr: Vec<f64> = ja.iter().zip(&jb).map(|(x, y)| x / y).collect();
    let ratio_est = if rb > 0.0 { ra / rb } else { f64::NAN };
    Ok(PairedCostCi {
        cost_per_accepted_a: ra.is_finite().then_some(ra),
        cost_per_accepted_b: rb.is_finite().then_some(rb),
        difference: estimate_from(ra - rb, &mut diffs, &jd, confidence),
        ratio: estimate_from(ratio_est, &mut ratios, &jr, confidence),
        method: "paired-bca-bootstrap",
        confidence,
        resamples: reps,
        zero_accept_resamples_a: zero_a,
        zero_accept_resamples_b: zero_b,
        clusters: ca.len(),
    })
}

/// Two-sided bootstrap p-value of H₀: θ = θ₀ from the replicates θ*: the achieved significance
/// level of the percentile interval, 2·min(1 + #{θ* ≤ θ₀}, 1 + #{θ* ≥ θ₀})/(B + 1), at most 1
/// (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, §15.4 and §16.4; the +1 as in
/// Davison & Hinkley, *Bootstrap Methods*, 1997, §4.4, so p is never 0). An undefined replicate
/// (NaN) counts in both tails, as it counts against both bounds of the interval.
fn bootstrap_p(reps: impl Iterator<Item = f64>, null: f64) -> f64 {
    let (mut total, mut low, mut high) = (0u64, 1u64, 1u64);
    for r in reps {
        total += 1;
        low += u64::from(r.is_nan() || r <= null);
        high += u64::from(r.is_nan() || r >= null);
    }
    (2.0 * low.min(high) as f64 / (total + 1) as f64).min(1.0)
}

/// The paired replicates (R_a*, R_b*) behind a bootstrap p-value: whole tasks resampled, the
/// same indices for both sides, as the matching interval draws them.
fn paired_replicates(
    a: &[Outcome],
    b: &[Outcome],
    reps: usize,
    seed: u64,
    clusters: fn(&[Outcome]) -> Clusters,
) -> Result<Vec<(f64, f64)>, StatsError> {
    check_aligned(a, b)?;
    if reps < 2 {
        return Err(StatsError::InvalidParameter("need at least 2 resamples"));
    }
    Ok(paired_ratio_replicates(
        &clusters(a),
        &clusters(b),
        reps,
        seed,
    ))
}

/// Two-sided paired bootstrap p-value of equal cost per accepted outcome (R_A / R_B = 1), from
/// the same resamples (same seed, whole tasks) as [`paired_cost_per_accepted`]'s interval.
/// The smallest p it can give is 2/(reps + 1).
pub fn paired_cost_ratio_p(
    a: &[Outcome],
    b: &[Outcome],
    reps: usize,
    seed: u64,
) -> Result<f64, StatsError> {
    let pairs = paired_replicates(a, b, reps, seed, Clusters::cost_per_accepted)?;
    Ok(bootstrap_p(pairs.iter().map(|(x, y)| x / y), 1.0))
}

/// Two-sided paired cluster-bootstrap p-value of equal acceptance (p_A − p_B = 0), from the same
/// resamples as [`paired_acceptance_bootstrap`]: the test to use with repeats, where McNemar's
/// pairs are not independent.
pub fn paired_acceptance_p(
    a: &[Outcome],
    b: &[Outcome],
    reps: usize,
    seed: u64,
) -> Result<f64, StatsError> {
    let pairs = paired_replicates(a, b, reps, seed, Clusters::acceptance)?;
    Ok(bootstrap_p(pairs.iter().map(|(x, y)| x - y), 0.0))
}

/// The `method` of [`paired_cost_per_accepted_delta`].
pub const DELTA_METHOD: &str = "paired-delta";

/// Difference R_A − R_B and ratio R_A / R_B of cost per accepted outcome with the paired delta
/// method (the fast path for many tasks, where a bootstrap of every task is the slow part).
///
/// Each task's influence on R = Σc/Σa is ψᵢ = (cᵢ − R·aᵢ)/ā over the C task totals; pairing
/// enters through ψ_Aᵢ − ψ_Bᵢ on the same task. The difference is
/// R̂_A − R̂_B ± z·√(Σ(ψ_Aᵢ − ψ_Bᵢ)²/(C(C−1))); the ratio is exp(log R̂_A − log R̂_B ± z·SE) with
/// SE² = Σ(ψ_Aᵢ/R̂_A − ψ_Bᵢ/R̂_B)²/(C(C−1)), the log-scale form statistics.md §3.5 finds
/// better than the raw scale. `method` is "paired-delta"; `resamples` is 0. A side that
/// accepted nothing has no estimate; a ratio with a free side has no interval.
pub fn paired_cost_per_accepted_delta(
    a: &[Outcome],
    b: &[Outcome],
    confidence: f64,
) -> Result<PairedCostCi, StatsError> {
    check_aligned(a, b)?;
    let z = z_two_sided(confidence)?;
    let (ca, cb) = (
        Clusters::cost_per_accepted(a),
        Clusters::cost_per_accepted(b),
    );
    let (ra, rb) = (ca.ratio(), cb.ratio());
    let k = ca.len() as f64;
    let mean_den = |c: &Clusters| c.den.iter().sum::<f64>() / k;
    let (abar, bbar) = (mean_den(&ca), mean_den(&cb));
    // Σ over tasks of f(ψ_A, ψ_B), None unless both sides have an estimate and C ≥ 2.
    let spread = |f: &dyn Fn(f64, f64) -> f64| -> Option<f64> {
        if !(ra.is_finite() && rb.is_finite()) || ca.len() < 2 {
            return None;
        }
        let ss: f64 = (0..ca.len())
            .map(|i| {
                let pa = (ca.num[i] - ra * ca.den[i]) / abar;
                let pb = (cb.num[i] - rb * cb.den[i]) / bbar;
                f(pa, pb).powi(2)
            })
            .sum();
        Some((ss / (k * (k - 1.0))).sqrt())
    };
    let difference = match spread(&|pa, pb| pa - pb) {
        Some(se) => Estimate {
            estimate: Some(ra - rb),
            low: Some(ra - rb - z * se),
            high: Some(ra - rb + z * se),
        },
        None => Estimate {
            estimate: (ra.is_finite() && rb.is_finite()).then_some(ra - rb),
            low: None,
            high: None,
        },
    };
    let ratio = if ra > 0.0 && rb > 0.0 {
        let est = ra / rb;
        match spread(&|pa, pb| pa / ra - pb / rb) {
            Some(se) => Estimate {
                estimate: Some(est),
                low: Some(est * (-z * se).exp()),
                high: Some(est * (z * se).exp()),
            },
            None => Estimate {
                estimate: est.is_finite().then_some(est),
                low: None,
                high: None,
            },
        }
    } else {
        Estimate {
            estimate: (rb > 0.0 && ra.is_finite()).then_some(ra / rb),
            low: None,
            high: None,
        }
    };
    Ok(PairedCostCi {
        cost_per_accepted_a: ra.is_finite().then_some(ra),
        cost_per_accepted_b: rb.is_finite().then_some(rb),
        difference,
        ratio,
        method: DELTA_METHOD,
        confidence,
        resamples: 0,
        zero_accept_resamples_a: 0,
        zero_accept_resamples_b: 0,
        clusters: ca.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::rng::Rng;
    use proptest::prelude::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn mcnemar_known_answers() {
        // statistics.md §3.3 [C]; exact and mid-p also checked with scipy.stats.binom.
        let m = mcnemar(12, 3);
        assert!(close(m.exact_p, 0.0352, 5e-5), "{}", m.exact_p);
        assert!(close(m.mid_p, 0.0213, 5e-5), "{}", m.mid_p);
        assert!(close(m.exact_p, 0.035_156_25, 1e-10));
        assert!(close(m.chi2_cc_p, 0.0389, 5e-5), "{}", m.chi2_cc_p);
        let m = mcnemar(10, 4);
        assert!(close(m.exact_p, 0.1796, 5e-5) && close(m.mid_p, 0.1185, 5e-5));
        let none = mcnemar(0, 0);
        assert_eq!((none.exact_p, none.mid_p, none.chi2_cc_p), (1.0, 1.0, 1.0));
        let tie = mcnemar(7, 7);
        assert!(close(tie.mid_p, 1.0, 1e-12) && tie.exact_p == 1.0);
    }

    #[test]
    fn tango_known_answers() {
        // Bentur et al. (2009) data as analysed by Fagerland, Lydersen & Laake (2014):
        // n12 = 1, n21 = 7, N = 21, Tango 95% CI (−0.517, −0.026).
        let t = tango_difference(1, 7, 21, 0.95).unwrap();
        assert!(
            close(t.low, -0.5172, 1e-4) && close(t.high, -0.0260, 1e-4),
            "{t:?}"
        );
        // PropCIs::scoreci.mp example (b = 40, c = 20, n = 160); values cross-checked with an
        // independent scipy brentq implementation of the same score equation.
        let t = tango_difference(40, 20, 160, 0.95).unwrap();
        assert!(
            close(t.low, 0.030_865, 1e-5) && close(t.high, 0.218_064, 1e-5),
            "{t:?}"
        );
    }

    #[test]
    fn tango_edges() {
        let z = tango_difference(0, 0, 50, 0.95).unwrap();
        assert!(z.low < 0.0 && z.high > 0.0 && z.estimate == 0.0);
        let all_a = tango_difference(10, 0, 10, 0.95).unwrap();
        assert_eq!(all_a.high, 1.0);
        assert!(all_a.low > 0.0);
        assert!(tango_difference(5, 6, 10, 0.95).is_none());
        assert!(tango_difference(0, 0, 0, 0.95).is_none());
    }

    fn outcomes(acc: &[bool], costs: &[f64]) -> Vec<Outcome> {
        acc.iter()
            .zip(costs)
            .enumerate()
            .map(|(t, (&accepted, &cost))| Outcome {
                task: t as u32,
                accepted,
                cost,
            })
            .collect()
    }

    fn random_pair(n: usize, seed: u64) -> (Vec<Outcome>, Vec<Outcome>) {
        let mut r = Rng::new(seed);
        let mut a = Vec::new();
        let mut b = Vec::new();
        for t in 0..n as u32 {
            let hard = r.bernoulli(0.3);
            let pa = if hard { 0.4 } else { 0.9 };
            let pb = if hard { 0.3 } else { 0.85 };
            a.push(Outcome {
                task: t,
                accepted: r.bernoulli(pa),
                cost: r.normal().exp() * 0.02,
            });
            b.push(Outcome {
                task: t,
                accepted: r.bernoulli(pb),
                cost: r.normal().exp() * 0.01,
            });
        }
        (a, b)
    }

    #[test]
    fn counts_and_alignment() {
        let a = outcomes(&[true, true, false, false], &[1.0; 4]);
        let b = outcomes(&[true, false, true, false], &[1.0; 4]);
        let t = PairedCounts::from_outcomes(&a, &b).unwrap();
        assert_eq!(
            (t.both, t.only_a, t.only_b, t.neither, t.clusters),
            (1, 1, 1, 1, 4)
        );
        assert!(PairedCounts::from_outcomes(&a, &b[..3]).is_err());
        let mut shuffled = b.clone();
        shuffled.swap(0, 1);
        assert_eq!(
            PairedCounts::from_outcomes(&a, &shuffled),
            Err(StatsError::TaskMismatch(0))
        );
    }

    #[test]
    fn paired_cost_uses_the_same_indices_for_both_sides() {
        // Identical providers: every replicate difference is exactly 0 and every ratio exactly 1.
        let (a, _) = random_pair(200, 4);
        let p = paired_cost_per_accepted(&a, &a, 500, 0.95, 1).unwrap();
        assert_eq!(p.difference.low, Some(0.0));
        assert_eq!(p.difference.high, Some(0.0));
        assert_eq!(p.ratio.low, Some(1.0));
        assert_eq!(p.ratio.high, Some(1.0));
    }

    #[test]
    fn paired_cost_detects_a_twofold_price_gap() {
        let (a, b) = random_pair(400, 9);
        let p = paired_cost_per_accepted(&a, &b, 2000, 0.95, 3).unwrap();
        let r = p.ratio;
        assert!(r.low.unwrap() > 1.0, "{r:?}");
        assert!(r.low.unwrap() <= r.estimate.unwrap() && r.estimate <= r.high);
        assert!(p.difference.low.unwrap() > 0.0);
        assert_eq!(p.zero_accept_resamples_a + p.zero_accept_resamples_b, 0);
    }

    #[test]
    fn paired_delta_known_answer() {
        // Two tasks. A: (c, a) = (1, 1), (3, 0) → R_A = 4, ā = 0.5, ψ_A = (−6, 6).
        // B: (1, 1), (1, 1) → R_B = 1, ψ_B = (0, 0). Var(D) = 72 / (2·1) = 36, SE 6.
        let a = outcomes(&[true, false], &[1.0, 3.0]);
        let b = outcomes(&[true, true], &[1.0, 1.0]);
        let p = paired_cost_per_accepted_delta(&a, &b, 0.95).unwrap();
        let z = 1.959_963_984_540_054;
        assert_eq!(p.difference.estimate, Some(3.0));
        assert!(close(p.difference.low.unwrap(), 3.0 - 6.0 * z, 1e-12));
        assert!(close(p.difference.high.unwrap(), 3.0 + 6.0 * z, 1e-12));
        // Log ratio: ψ_A/R_A = (−1.5, 1.5): SE² = 4.5 / 2.
        let se = 2.25f64.sqrt();
        assert_eq!(p.ratio.estimate, Some(4.0));
        assert!(close(p.ratio.low.unwrap(), 4.0 * (-z * se).exp(), 1e-12));
        assert!(close(p.ratio.high.unwrap(), 4.0 * (z * se).exp(), 1e-12));
        assert_eq!((p.method, p.resamples), ("paired-delta", 0));
        // Identical sides: no spread at all.
        let same = paired_cost_per_accepted_delta(&a, &a, 0.95).unwrap();
        assert_eq!(
            (same.difference.low, same.difference.high),
            (Some(0.0), Some(0.0))
        );
        assert_eq!((same.ratio.low, same.ratio.high), (Some(1.0), Some(1.0)));
        // A side that accepted nothing has no estimate.
        let none = outcomes(&[false, false], &[1.0, 1.0]);
        let p = paired_cost_per_accepted_delta(&none, &b, 0.95).unwrap();
        assert_eq!((p.difference.estimate, p.ratio.estimate), (None, None));
    }

    #[test]
    fn paired_delta_agrees_with_the_paired_bootstrap_on_many_tasks() {
        let (a, b) = random_pair(5000, 17);
        let boot = paired_cost_per_accepted(&a, &b, 2000, 0.95, 5).unwrap();
        let delta = paired_cost_per_accepted_delta(&a, &b, 0.95).unwrap();
        assert_eq!(boot.difference.estimate, delta.difference.estimate);
        for (x, y) in [
            (boot.difference.low, delta.difference.low),
            (boot.difference.high, delta.difference.high),
            (boot.ratio.low, delta.ratio.low),
            (boot.ratio.high, delta.ratio.high),
        ] {
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!((x - y).abs() <= 0.03 * x.abs(), "{boot:?}\n{delta:?}");
        }
    }

    #[test]
    fn paired_acceptance_bootstrap_matches_tango_roughly() {
        let (a, b) = random_pair(1000, 21);
        let t = PairedCounts::from_outcomes(&a, &b).unwrap();
        let tango = tango_difference(t.only_a, t.only_b, t.n, 0.95).unwrap();
        let boot = paired_acceptance_bootstrap(&a, &b, 2000, 0.95, 8).unwrap();
        assert!(close(tango.estimate, boot.estimate, 1e-12));
        assert!(close(tango.low, boot.low, 0.01) && close(tango.high, boot.high, 0.01));
    }

    proptest! {
        #![proptest_config(crate::stats::proptest_config(64))]

        #[test]
        fn swapping_providers_flips_the_sign(n in 1u64..500, fa in 0.0f64..1.0, fb in 0.0f64..1.0) {
            let only_a = ((n as f64) * fa * 0.5).floor() as u64;
            let only_b = ((n as f64) * fb * 0.5).floor() as u64;
            let ab = tango_difference(only_a, only_b, n, 0.95).unwrap();
            let ba = tango_difference(only_b, only_a, n, 0.95).unwrap();
            prop_assert!((ab.estimate + ba.estimate).abs() < 1e-12);
            prop_assert!((ab.low + ba.high).abs() < 1e-9, "{ab:?} {ba:?}");
            prop_assert!((ab.high + ba.low).abs() < 1e-9);
            prop_assert!(-1.0 <= ab.low && ab.low <= ab.estimate && ab.estimate <= ab.high
                && ab.high <= 1.0);
            let m1 = mcnemar(only_a, only_b);
            let m2 = mcnemar(only_b, only_a);
            prop_assert_eq!(m1.mid_p, m2.mid_p);
        }

        #[test]
        fn swapping_flips_paired_bootstrap(n in 5usize..80, seed in any::<u64>()) {
            let (a, b) = random_pair(n, seed);
            let ab = paired_cost_per_accepted(&a, &b, 200, 0.95, seed).unwrap();
            let ba = paired_cost_per_accepted(&b, &a, 200, 0.95, seed).unwrap();
            let (d1, d2) = (ab.difference, ba.difference);
            if let (Some(e1), Some(e2)) = (d1.estimate, d2.estimate) {
                prop_assert!((e1 + e2).abs() < 1e-12);
                // Same seed, same indices: the swapped replicates are exact negatives, and BCa
                // is equivariant under negation (z0 and the acceleration flip sign).
                let tol = 1e-9 * (1.0 + e1.abs());
                match (d1.low, d2.high) {
                    (Some(l), Some(h)) => prop_assert!((l + h).abs() < tol, "{d1:?} {d2:?}"),
                    (l, h) => prop_assert!(l.is_none() && h.is_none()),
                }
            }
            let ta = paired_acceptance_bootstrap(&a, &b, 200, 0.95, seed).unwrap();
            let tb = paired_acceptance_bootstrap(&b, &a, 200, 0.95, seed).unwrap();
            prop_assert!((ta.estimate + tb.estimate).abs() < 1e-12);
            prop_assert!(ta.low <= ta.estimate && ta.estimate <= ta.high);
        }
    }

    #[test]
    fn bootstrap_p_values_separate_a_real_gap_from_none() {
        // Identical sides: every replicate sits on the null, p = 1.
        let same = outcomes(&[true, false, true, true], &[1.0, 2.0, 1.0, 1.0]);
        assert_eq!(paired_cost_ratio_p(&same, &same, 999, 7).unwrap(), 1.0);
        assert_eq!(paired_acceptance_p(&same, &same, 999, 7).unwrap(), 1.0);
        // A side costing 1.5× on every task: no replicate reaches 1, p is the floor 2/(B + 1).
        let acc = [true; 30];
        let dear = outcomes(&acc, &[1.5; 30]);
        let cheap = outcomes(&acc, &[1.0; 30]);
        let p = paired_cost_ratio_p(&dear, &cheap, 999, 7).unwrap();
        assert!(close(p, 2.0 / 1000.0, 1e-12), "{p}");
        // Hand count: replicates {0.5, 1, 2, NaN} against 1 → low 1+3, high 1+3 → 2·4/5, capped.
        let p = bootstrap_p([0.5, 1.0, 2.0, f64::NAN].into_iter(), 1.0);
        assert_eq!(p, 1.0);
        let p = bootstrap_p([2.0, 3.0, 4.0, 0.5].into_iter(), 1.0);
        assert!(close(p, 2.0 * 2.0 / 5.0, 1e-12), "{p}");
    }
}
