//! Intervals for an acceptance rate: x accepted out of n, and the clustered case where a task is
//! run several times.
//!
//! - **Wilson** score interval (Wilson, *JASA* 22:209–212, 1927): the display default.
//! - **Jeffreys** equal-tailed Beta(x+½, n−x+½) interval, with the boundary modification of Brown,
//!   Cai & DasGupta (*Statistical Science* 16:101–133, 2001, §4.1.2): bound 0 at x = 0 and 1 at
//!   x = n. A Bayesian alternative for display.
//! - **Clopper–Pearson** exact interval (*Biometrika* 26:404–413, 1934): the gate default, because
//!   its coverage never drops below the nominal level.
//! - **Agresti–Coull** (*Am. Stat.* 52:119–126, 1998), clamped to [0, 1], for completeness.
//! - **Clustered** rates (Miller, "Adding Error Bars to Evals", 2024, §2.2): the cluster-robust
//!   (sandwich) standard error by task, turned into a design effect and a Wilson interval at the
//!   effective sample size with a t critical value on C−1 df (Korn & Graubard, *Survey
//!   Methodology* 24:193–201, 1998, use the same effective-n device for Clopper–Pearson). A cluster
//!   bootstrap (BCa, whole tasks resampled) is the assumption-light alternative.
//!
//! There is deliberately no Wald interval: it collapses to zero width at 0/n and n/n and
//! under-covers badly exactly where acceptance rates live (0.9–1.0).

use super::bootstrap::{Clusters, bca_bounds, cluster_index, ratio_replicates};
use super::{Interval, Outcome, StatsError, check_level, check_outcomes, t_two_sided, z_two_sided};
use serde::Serialize;
use statrs::distribution::{Beta, ContinuousCDF};

/// Validates (x, n, confidence) and returns (p̂, α); None for n = 0, x > n or a bad level.
fn setup(accepted: u64, n: u64, confidence: f64) -> Option<(f64, f64)> {
    if n == 0 || accepted > n || check_level(confidence).is_err() {
        return None;
    }
    Some((accepted as f64 / n as f64, 1.0 - confidence))
}

/// Beta quantile that never panics; parameters are validated by the callers.
fn beta_quantile(a: f64, b: f64, q: f64) -> Option<f64> {
    Beta::new(a, b).ok()?.try_inverse_cdf(q).ok()
}

/// Wilson score interval for `accepted` out of `n` (None when n = 0, accepted > n or the level is
/// not in (0, 1)).
///
/// Bounds: (p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n), with z = z₁₋α/₂ and p̂ = x/n.
pub fn wilson(accepted: u64, n: u64, confidence: f64) -> Option<Interval> {
    let (p, _) = setup(accepted, n, confidence)?;
    let z = z_two_sided(confidence).ok()?;
    let (low, high) = wilson_bounds(p, n as f64, z);
    // The exact endpoints at x = 0 and x = n are 0 and 1; pin them against rounding.
    let low = if accepted == 0 { 0.0 } else { low };
    let high = if accepted == n { 1.0 } else { high };
    Some(Interval {
        estimate: p,
        low,
        high,
        method: "wilson",
    })
}

/// Wilson bounds for proportion `p` at a (possibly fractional) sample size `n` and critical `z`.
pub(crate) fn wilson_bounds(p: f64, n: f64, z: f64) -> (f64, f64) {
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    // Clamping only removes floating-point spill; the algebraic bounds lie in [0, 1] and contain p.
    ((centre - half).clamp(0.0, p), (centre + half).clamp(p, 1.0))
}

/// Jeffreys interval: the α/2 and 1−α/2 quantiles of Beta(x+½, n−x+½), with low = 0 at x = 0 and
/// high = 1 at x = n (Brown, Cai & DasGupta 2001). None on invalid input as for [`wilson`].
pub fn jeffreys(accepted: u64, n: u64, confidence: f64) -> Option<Interval> {
    let (p, alpha) = setup(accepted, n, confidence)?;
    let (a, b) = (accepted as f64 + 0.5, (n - accepted) as f64 + 0.5);
    let low = if accepted == 0 {
        0.0
    } else {
        beta_quantile(a, b, alpha / 2.0)?
    };
    let high = if accepted == n {
        1.0
    } else {
        beta_quantile(a, b, 1.0 - alpha / 2.0)?
    };
    Some(Interval {
        estimate: p,
        // At very low confidence levels the posterior quantiles can straddle p̂ asymmetrically;
        // keeping p̂ inside is what every caller assumes of an interval "around" the estimate.
        low: low.min(p),
        high: high.max(p),
        method: "jeffreys",
    })
}

/// Clopper–Pearson exact interval: L = Beta⁻¹(α/2; x, n−x+1) (0 at x = 0) and
/// U = Beta⁻¹(1−α/2; x+1, n−x) (1 at x = n). None on invalid input as for [`wilson`].
pub fn clopper_pearson(accepted: u64, n: u64, confidence: f64) -> Option<Interval> {
    let (p, alpha) = setup(accepted, n, confidence)?;
    let x = accepted as f64;
    let nf = n as f64;
    let low = if accepted == 0 {
        0.0
    } else {
        beta_quantile(x, nf - x + 1.0, alpha / 2.0)?
    };
    let high = if accepted == n {
        1.0
    } else {
        beta_quantile(x + 1.0, nf - x, 1.0 - alpha / 2.0)?
    };
    Some(Interval {
        estimate: p,
        low: low.min(p),
        high: high.max(p),
        method: "clopper-pearson",
    })
}

/// Agresti–Coull interval: ñ = n+z², p̃ = (x+z²/2)/ñ, p̃ ± z√(p̃(1−p̃)/ñ), clamped to [0, 1] and
/// widened to contain p̂. None on invalid input as for [`wilson`].
pub fn agresti_coull(accepted: u64, n: u64, confidence: f64) -> Option<Interval> {
    let (p, _) = setup(accepted, n, confidence)?;
    let z = z_two_sided(confidence).ok()?;
    let nt = n as f64 + z * z;
    let pt = (accepted as f64 + z * z / 2.0) / nt;
    let half = z * (pt * (1.0 - pt) / nt).sqrt();
    Some(Interval {
        estimate: p,
        low: (pt - half).clamp(0.0, p),
        high: (pt + half).clamp(p, 1.0),
        method: "agresti-coull",
    })
}

/// An acceptance rate estimated from repeated samples per task, with cluster-robust uncertainty.
#[derive(Debug, Clone, Serialize)]
pub struct ClusteredRate {
    /// Wilson interval at the effective sample size with a t(C−1) critical value.
    pub interval: Interval,
    /// Number of outcomes.
    pub n: usize,
    /// Number of clusters (tasks). Below about 40 the sandwich SE is optimistic (Miller 2024).
    pub clusters: usize,
    /// Cluster-robust standard error, √(C/(C−1) · Σ_c (Σ_i (s_ic − p̂))² / n²).
    pub se_clustered: f64,
    /// Standard error if all outcomes were independent, √(p̂(1−p̂)/n).
    pub se_independent: f64,
    /// Design effect (se_clustered / se_independent)²; 1 when the rate is 0 or 1.
    pub design_effect: f64,
    /// n / design effect, capped at n; the number of clusters when the rate is 0 or 1.
    pub effective_n: f64,
}

/// Acceptance rate with clustered standard errors by task (Miller 2024, recommendation 2).
///
/// Definitions: p̂ = Σ accepted / n; the sandwich variance
/// V = C/(C−1) · Σ_c (Σ_{i∈c} (s_i − p̂))² / n² (the small-sample factor `inspect_ai` uses);
/// design effect D = V / (p̂(1−p̂)/n); effective n = n / D (≤ n). The interval is Wilson at the
/// effective n with z replaced by t₁₋α/₂ on C−1 df. When p̂ is 0 or 1 the variance carries no
/// information about clustering, so the conservative effective n = C (perfect within-task
/// correlation) is used. Errors: empty input, fewer than 2 clusters, a bad level.
pub fn acceptance_clustered(
    outcomes: &[Outcome],
    confidence: f64,
) -> Result<ClusteredRate, StatsError> {
    check_outcomes(outcomes)?;
    check_level(confidence)?;
    let (ids, c) = cluster_index(outcomes);
    if c < 2 {
        return Err(StatsError::InvalidParameter("need at least 2 clusters"));
    }
    let n = outcomes.len();
    let nf = n as f64;
    let accepted = outcomes.iter().filter(|o| o.accepted).count();
    let p = accepted as f64 / nf;
    let mut resid = vec![0.0; c];
    for (o, &k) in outcomes.iter().zip(&ids) {
        resid[k] += f64::from(u8::from(o.accepted)) - p;
    }
    let cf = c as f64;
    let var_cl = cf / (cf - 1.0) * resid.iter().map(|r| r * r).sum::<f64>() / (nf * nf);
    let var_ind = p * (1.0 - p) / nf;
    let (design_effect, effective_n) = if var_ind > 0.0 {
        let d = var_cl / var_ind;
        // A negative intra-task correlation would claim more than n independent outcomes.
        (d, (nf / d).min(nf))
    } else {
        (1.0, cf)
    };
    let t = t_two_sided(confidence, cf - 1.0)?;
    let (low, high) = wilson_bounds(p, effective_n, t);
    Ok(ClusteredRate {
        interval: Interval {
            estimate: p,
            low: if accepted == 0 { 0.0 } else { low },
            high: if accepted == n { 1.0 } else { high },
            method: "wilson-clustered",
        },
        n,
        clusters: c,
        se_clustered: var_cl.sqrt(),
        se_independent: var_ind.sqrt(),
        design_effect,
        effective_n,
    })
}

/// Acceptance rate with a BCa cluster bootstrap: whole tasks are resampled with replacement, the
/// statistic is Σ accepted* / Σ outcomes*, `b` resamples, seeded by `seed` (bit-reproducible).
///
/// Errors: empty input, `b` < 2, a bad level.
pub fn acceptance_cluster_bootstrap(
    outcomes: &[Outcome],
    b: usize,
    confidence: f64,
    seed: u64,
) -> Result<Interval, StatsError> {
    check_outcomes(outcomes)?;
    check_level(confidence)?;
    if b < 2 {
        return Err(StatsError::InvalidParameter("need at least 2 resamples"));
    }
    let clusters = Clusters::acceptance(outcomes);
    let estimate = clusters.ratio();
    let mut reps = ratio_replicates(&clusters, b, seed);
    let (low, high) = bca_bounds(estimate, &mut reps, &clusters.jackknife(), confidence);
    Ok(Interval {
        estimate,
        low: low.clamp(0.0, estimate),
        high: high.clamp(estimate, 1.0),
        method: "cluster-bootstrap",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use statrs::distribution::{Binomial, Discrete};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Known answers: 29/30 from statistics.md §3.2 [C]; all four cases cross-checked against
    /// scipy 1.17 (`beta.ppf`, `norm.ppf`) to 6 decimals.
    #[test]
    fn known_answers_wilson_cp_jeffreys() {
        // (x, n, wilson, clopper-pearson, jeffreys)
        type Case = (u64, u64, [f64; 2], [f64; 2], [f64; 2]);
        let cases: [Case; 4] = [
            (0, 30, [0.0, 0.113513], [0.0, 0.115703], [0.0, 0.079678]),
            (
                27,
                30,
                [0.743789, 0.965400],
                [0.734712, 0.978883],
                [0.756598, 0.971019],
            ),
            (
                29,
                30,
                [0.833296, 0.994091],
                [0.827831, 0.999156],
                [0.854582, 0.996380],
            ),
            (
                45,
                50,
                [0.786398, 0.956524],
                [0.781865, 0.966725],
                [0.794645, 0.960806],
            ),
        ];
        for (x, n, w, cp, j) in cases {
            let wi = wilson(x, n, 0.95).unwrap();
            let ci = clopper_pearson(x, n, 0.95).unwrap();
            let ji = jeffreys(x, n, 0.95).unwrap();
            for (got, want) in [
                (wi.low, w[0]),
                (wi.high, w[1]),
                (ci.low, cp[0]),
                (ci.high, cp[1]),
                (ji.low, j[0]),
                (ji.high, j[1]),
            ] {
                assert!(close(got, want, 2e-6), "{x}/{n}: got {got}, want {want}");
            }
        }
        // statistics.md §3.2 to its printed 3 decimals.
        let w = wilson(29, 30, 0.95).unwrap();
        assert_eq!(
            (format!("{:.3}", w.low), format!("{:.3}", w.high)),
            ("0.833".into(), "0.994".into())
        );
    }

    #[test]
    fn rule_of_three_upper_bound() {
        // One-sided 95% CP upper bound at 0/30 is 1 − 0.05^(1/30) = 0.0950 (statistics.md §3.2);
        // the two-sided 90% interval has the same upper bound.
        let cp = clopper_pearson(0, 30, 0.90).unwrap();
        assert!(close(cp.high, 1.0 - 0.05f64.powf(1.0 / 30.0), 1e-9));
        assert!(close(cp.high, 0.0950, 5e-5));
    }

    #[test]
    fn invalid_input_is_none() {
        for f in [wilson, jeffreys, clopper_pearson, agresti_coull] {
            assert!(f(0, 0, 0.95).is_none());
            assert!(f(31, 30, 0.95).is_none());
            assert!(f(3, 30, 1.0).is_none());
            assert!(f(3, 30, 0.0).is_none());
            assert!(f(3, 30, f64::NAN).is_none());
        }
    }

    /// Exact coverage P(L(X) ≤ p ≤ U(X)) for X ~ Binomial(n, p) over a grid of true rates.
    fn coverage(n: u64, f: fn(u64, u64, f64) -> Option<Interval>, grid: &[f64]) -> Vec<f64> {
        let ints: Vec<Interval> = (0..=n).map(|x| f(x, n, 0.95).unwrap()).collect();
        grid.iter()
            .map(|&p| {
                let bin = Binomial::new(p, n).unwrap();
                (0..=n)
                    .filter(|&x| ints[x as usize].contains(p))
                    .map(|x| bin.pmf(x))
                    .sum()
            })
            .collect()
    }

    /// Coverage check by exact enumeration: true rates 0.500, 0.501, …, 0.980 (481 rates).
    ///
    /// Measured (printed with `--nocapture`), Wilson mean / worst single rate, CP minimum:
    /// n = 30: 0.9530 / 0.9192 at p = 0.966, CP ≥ 0.9537;
    /// n = 100: 0.9509 / 0.9275 at p = 0.945, CP ≥ 0.9504;
    /// n = 1000: 0.9498 / 0.9405 at p = 0.961, CP ≥ 0.9507.
    /// Wilson dips near the boundary at small n; that is why gates use Clopper–Pearson.
    #[test]
    fn coverage_by_exact_enumeration() {
        let grid: Vec<f64> = (500..=980).map(|k| k as f64 / 1000.0).collect();
        for n in [30u64, 100, 1000] {
            let w = coverage(n, wilson, &grid);
            let cp = coverage(n, clopper_pearson, &grid);
            let mean_w = w.iter().sum::<f64>() / w.len() as f64;
            let (worst_i, worst_w) =
                w.iter().enumerate().fold(
                    (0, 1.0),
                    |acc, (i, &c)| if c < acc.1 { (i, c) } else { acc },
                );
            let min_cp = cp.iter().cloned().fold(1.0, f64::min);
            let mean_cp = cp.iter().sum::<f64>() / cp.len() as f64;
            println!(
                "n={n}: wilson mean {mean_w:.4}, worst {worst_w:.4} at p={:.3}; \
                 clopper-pearson mean {mean_cp:.4}, min {min_cp:.4}",
                grid[worst_i]
            );
            assert!(
                (0.94..=0.97).contains(&mean_w),
                "wilson mean {mean_w} at n={n}"
            );
            assert!(
                min_cp >= 0.95 - 1e-9,
                "clopper-pearson min {min_cp} at n={n}"
            );
        }
    }

    fn rep_outcomes(per_task: &[(u32, u32)]) -> Vec<Outcome> {
        // (accepted, total) per task.
        let mut v = Vec::new();
        for (t, &(acc, tot)) in per_task.iter().enumerate() {
            for i in 0..tot {
                v.push(Outcome {
                    task: t as u32,
                    accepted: i < acc,
                    cost: 0.01,
                });
            }
        }
        v
    }

    #[test]
    fn clustering_widens_when_repeats_agree() {
        // Perfectly correlated repeats: 5 copies of 40 tasks carry the information of 40 outcomes.
        let tasks: Vec<(u32, u32)> = (0..40)
            .map(|t| if t < 30 { (5, 5) } else { (0, 5) })
            .collect();
        let o = rep_outcomes(&tasks);
        let cl = acceptance_clustered(&o, 0.95).unwrap();
        assert!(close(cl.interval.estimate, 0.75, 1e-12));
        assert!(
            close(cl.design_effect, 5.0 * 40.0 / 39.0, 1e-9),
            "{}",
            cl.design_effect
        );
        let naive = wilson(150, 200, 0.95).unwrap();
        let per_task = wilson(30, 40, 0.95).unwrap();
        assert!(cl.interval.width() > naive.width());
        // Close to treating each task as a single outcome (t instead of z makes it a bit wider).
        assert!(cl.interval.width() > per_task.width());
        assert!(cl.interval.width() < per_task.width() * 1.1);
        let boot = acceptance_cluster_bootstrap(&o, 2000, 0.95, 1).unwrap();
        assert!(boot.width() > naive.width());
    }

    #[test]
    fn clustering_edge_cases() {
        assert!(acceptance_clustered(&[], 0.95).is_err());
        let one_task = rep_outcomes(&[(2, 3)]);
        assert!(acceptance_clustered(&one_task, 0.95).is_err());
        let all = rep_outcomes(&[(3, 3), (3, 3), (3, 3)]);
        let cl = acceptance_clustered(&all, 0.95).unwrap();
        assert_eq!(cl.interval.high, 1.0);
        assert!(cl.interval.low > 0.0 && cl.interval.low < 1.0);
        assert_eq!(cl.effective_n, 3.0);
        assert!(acceptance_cluster_bootstrap(&all, 1, 0.95, 0).is_err());
    }

    proptest! {
        #![proptest_config(crate::stats::proptest_config(256))]

        #[test]
        fn intervals_contain_estimate_and_lie_in_unit(n in 1u64..2000, frac in 0.0f64..=1.0,
                                                      conf in 0.5f64..0.999) {
            let x = ((n as f64) * frac).round() as u64;
            for f in [wilson, jeffreys, clopper_pearson, agresti_coull] {
                let i = f(x, n, conf).unwrap();
                prop_assert!(0.0 <= i.low && i.low <= i.estimate && i.estimate <= i.high
                    && i.high <= 1.0, "{i:?}");
                prop_assert!((i.estimate - x as f64 / n as f64).abs() < 1e-15);
            }
        }

        #[test]
        fn clustered_intervals_lie_in_unit(tasks in 2usize..60, reps in 1u32..5,
                                           seed in any::<u64>()) {
            let mut rng = crate::stats::rng::Rng::new(seed);
            let o: Vec<Outcome> = (0..tasks)
                .flat_map(|t| {
                    let p = rng.uniform();
                    (0..reps)
                        .map(|_| Outcome { task: t as u32, accepted: rng.bernoulli(p), cost: 0.0 })
                        .collect::<Vec<_>>()
                })
                .collect();
            let cl = acceptance_clustered(&o, 0.95).unwrap().interval;
            let bt = acceptance_cluster_bootstrap(&o, 200, 0.95, seed).unwrap();
            for i in [cl, bt] {
                prop_assert!(0.0 <= i.low && i.low <= i.estimate && i.estimate <= i.high
                    && i.high <= 1.0, "{i:?}");
            }
        }

        #[test]
        fn clopper_pearson_is_widest(n in 1u64..500, frac in 0.0f64..=1.0) {
            let x = ((n as f64) * frac).round() as u64;
            let cp = clopper_pearson(x, n, 0.95).unwrap();
            let j = jeffreys(x, n, 0.95).unwrap();
            prop_assert!(cp.low <= j.low + 1e-12 && j.high <= cp.high + 1e-12);
        }
    }
}
