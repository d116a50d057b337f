//! Non-inferiority of a candidate provider against an incumbent, with a margin fixed in advance.
//!
//! "Can we migrate to the cheaper model without losing more than δ points of acceptance?"
//! H₀: p_cand − p_inc ≤ −δ against H₁: p_cand − p_inc > −δ. The verdict reads the two-sided
//! interval of the paired difference at the given confidence (95% two-sided, i.e. a one-sided
//! 97.5% bound, is the FDA convention; FDA Guidance "Non-Inferiority Clinical Trials to Establish
//! Effectiveness", 2016; the three-way reading follows Piaggio et al., CONSORT extension for
//! non-inferiority trials, *JAMA* 308:2594–2604, 2012):
//!
//! - **NON-INFERIOR** when the lower bound is above −δ;
//! - **INFERIOR** when the upper bound is below −δ;
//! - **INCONCLUSIVE** otherwise.
//!
//! The interval is Tango's score interval (*Stat Med* 17:891–908, 1998) for one outcome per task,
//! and a paired cluster bootstrap with repeats. statistics.md §3.4 also shows the paired Wald form
//! d ± z·√((b+c)/n − d²)/√n; we report its standard error for comparison but never decide on it.
//!
//! Pitfalls the caller owns: the margin must come from the suite file, recorded before the run; it
//! should be anchored to a fixed reference model (bio-creep); and a noisy grader biases the
//! difference toward 0, which makes non-inferiority *easier* to claim (see `agreement`).

use super::paired::{PairedCounts, paired_acceptance_bootstrap, tango_difference};
use super::{Interval, Outcome, StatsError, check_level, norm_quantile};
use serde::Serialize;

/// The three-way verdict of a non-inferiority comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Verdict {
    /// The whole interval lies above −δ.
    NonInferior,
    /// The whole interval lies below −δ.
    Inferior,
    /// The interval straddles −δ.
    Inconclusive,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::NonInferior => "NON-INFERIOR",
            Verdict::Inferior => "INFERIOR",
            Verdict::Inconclusive => "INCONCLUSIVE",
        })
    }
}

/// The result of a non-inferiority comparison of a candidate against an incumbent.
#[derive(Debug, Clone, Serialize)]
pub struct NonInferiority {
    /// The verdict.
    pub verdict: Verdict,
    /// Margin δ > 0, in acceptance-rate units (0.05 = five points).
    pub margin: f64,
    /// Interval for p_cand − p_inc.
    pub difference: Interval,
    /// Pairs (outcomes per side).
    pub n: u64,
    /// Only the candidate accepted.
    pub candidate_only: u64,
    /// Only the incumbent accepted.
    pub incumbent_only: u64,
    /// Discordance ψ = (candidate_only + incumbent_only)/n.
    pub discordance: f64,
    /// The paired Wald standard error √(ψ − d²)/√n, for comparison with textbook figures only.
    pub se_wald: f64,
    /// Tasks at which, if the observed difference and discordance held, the expected interval
    /// would clear −δ (≈ 50% chance of a conclusive verdict): z²(ψ − d²)/(d + δ)². None when
    /// already conclusive or when d = −δ exactly (no n suffices).
    pub tasks_for_conclusive: Option<u64>,
    /// Tasks for an 80% chance of a conclusive verdict at the observed difference and discordance:
    /// (z₁₋α/₂ + z₀.₈)²(ψ − d²)/(d + δ)². None as above.
    pub tasks_for_80_power: Option<u64>,
}

/// Tasks needed so that the bound at d ± z·√((ψ − d²)/n) clears −δ with probability `power`.
fn tasks_needed(d: f64, psi: f64, margin: f64, z: f64, power: f64) -> Option<u64> {
    let gap = (d + margin).abs();
    let var = (psi - d * d).max(0.0);
    if gap == 0.0 || !gap.is_finite() {
        return None;
    }
    let zb = if power > 0.5 {
        norm_quantile(power)
    } else {
        0.0
    };
    let n = (z + zb).powi(2) * var / (gap * gap);
    Some(n.ceil().max(1.0) as u64)
}

/// The fewest pairs at which a sample with no discordant pair (d = 0) has a Tango interval
/// clearing −δ: more than `n`, found by bisection (the lower bound rises with the pairs).
fn tasks_until_unchanged_is_conclusive(n: u64, margin: f64, confidence: f64) -> Option<u64> {
    let clears = |m: u64| tango_difference(0, 0, m, confidence).is_some_and(|d| d.low > -margin);
    let (mut lo, mut hi) = (n, n.max(1));
    while !clears(hi) {
        lo = hi;
        hi = hi.checked_mul(2).filter(|&h| h <= 1 << 40)?;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if clears(mid) { hi = mid } else { lo = mid }
    }
    Some(hi)
}

/// Reads the verdict off an interval for the difference.
fn verdict(diff: &Interval, margin: f64) -> Verdict {
    if diff.low > -margin {
        Verdict::NonInferior
    } else if diff.high < -margin {
        Verdict::Inferior
    } else {
        Verdict::Inconclusive
    }
}

/// Non-inferiority from paired counts: `candidate_only` (only the candidate accepted),
/// `incumbent_only` (only the incumbent accepted) among `n` pairs, margin δ (> 0, < 1), two-sided
/// `confidence`. The difference is d = (candidate_only − incumbent_only)/n with Tango's interval.
pub fn noninferiority(
    candidate_only: u64,
    incumbent_only: u64,
    n: u64,
    margin: f64,
    confidence: f64,
) -> Result<NonInferiority, StatsError> {
    check_level(confidence)?;
    if !(margin > 0.0 && margin < 1.0) {
        return Err(StatsError::InvalidParameter("margin must be in (0, 1)"));
    }
    if n == 0 {
        return Err(StatsError::Empty);
    }
    if candidate_only + incumbent_only > n {
        return Err(StatsError::CountExceedsTotal);
    }
    let difference = tango_difference(candidate_only, incumbent_only, n, confidence)
        .ok_or(StatsError::InvalidParameter("difference interval"))?;
    Ok(assemble(
        difference,
        margin,
        n,
        candidate_only,
        incumbent_only,
        confidence,
    ))
}

/// Builds the result from an interval and the paired counts.
fn assemble(
    difference: Interval,
    margin: f64,
    n: u64,
    candidate_only: u64,
    incumbent_only: u64,
    confidence: f64,
) -> NonInferiority {
    let nf = n as f64;
    let d = (candidate_only as f64 - incumbent_only as f64) / nf;
    let psi = (candidate_only + incumbent_only) as f64 / nf;
    let z = norm_quantile(1.0 - (1.0 - confidence) / 2.0);
    let v = verdict(&difference, margin);
    let (for_conclusive, for_80) = if v == Verdict::Inconclusive && psi == 0.0 {
        // No outcome differed: the planning formula's variance ψ − d² is 0 and would say one
        // task. What would settle it is enough tasks that an unchanged result is conclusive.
        let n = tasks_until_unchanged_is_conclusive(n, margin, confidence);
        (n, n)
    } else if v == Verdict::Inconclusive {
        (
            tasks_needed(d, psi, margin, z, 0.5),
            tasks_needed(d, psi, margin, z, 0.8),
        )
    } else {
        (None, None)
    };
    NonInferiority {
        verdict: v,
        margin,
        difference,
        n,
        candidate_only,
        incumbent_only,
        discordance: psi,
        se_wald: ((psi - d * d).max(0.0) / nf).sqrt(),
        tasks_for_conclusive: for_conclusive,
        tasks_for_80_power: for_80,
    }
}

/// Non-inferiority from two slices aligned by task (candidate, incumbent). With one outcome per
/// task it is [`noninferiority`] on the tabulated counts; with repeats the interval is a paired
/// BCa cluster bootstrap (`reps` resamples from `seed`).
pub fn noninferiority_paired(
    candidate: &[Outcome],
    incumbent: &[Outcome],
    margin: f64,
    confidence: f64,
    reps: usize,
    seed: u64,
) -> Result<NonInferiority, StatsError> {
    let t = PairedCounts::from_outcomes(candidate, incumbent)?;
    if t.clusters == t.n {
        return noninferiority(t.only_a, t.only_b, t.n, margin, confidence);
    }
    check_level(confidence)?;
    if !(margin > 0.0 && margin < 1.0) {
        return Err(StatsError::InvalidParameter("margin must be in (0, 1)"));
    }
    let diff = paired_acceptance_bootstrap(candidate, incumbent, reps, confidence, seed)?;
    Ok(assemble(diff, margin, t.n, t.only_a, t.only_b, confidence))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_changed_outcome_plans_the_tasks_that_would_make_it_conclusive() {
        // 20 pairs, none discordant: Tango's interval still reaches below −0.02, so the verdict
        // waits; the variance formula would say 1 task, the answer is the first n whose
        // all-concordant interval clears the margin.
        let r = noninferiority(0, 0, 20, 0.02, 0.95).unwrap();
        assert_eq!(r.verdict, Verdict::Inconclusive);
        let m = r.tasks_for_80_power.unwrap();
        assert_eq!(r.tasks_for_conclusive, Some(m));
        let low = |n: u64| tango_difference(0, 0, n, 0.95).unwrap().low;
        assert!(
            low(m) > -0.02 && low(m - 1) <= -0.02,
            "{m}: {} {}",
            low(m),
            low(m - 1)
        );
        // About z²(1 − δ)/δ = 3.84 · 49 ≈ 188 pairs.
        assert!((150..=250).contains(&m), "{m}");
        assert_eq!(
            noninferiority(0, 0, m, 0.02, 0.95).unwrap().verdict,
            Verdict::NonInferior
        );
    }

    #[test]
    fn statistics_md_worked_example() {
        // statistics.md §3.4: n = 400, incumbent-only b = 30, candidate-only c = 22:
        // d = −0.020, SE 0.018, Wald lower bound −0.0553: NOT non-inferior at δ = 0.05.
        let r = noninferiority(22, 30, 400, 0.05, 0.95).unwrap();
        assert!((r.difference.estimate + 0.020).abs() < 1e-12);
        assert!((r.se_wald - 0.018).abs() < 1e-12);
        let wald_low = r.difference.estimate - 1.959_964 * r.se_wald;
        assert!((wald_low + 0.0553).abs() < 5e-5, "{wald_low}");
        // The score interval we decide on is slightly wider: (−0.0566, 0.0158).
        assert!(
            (r.difference.low + 0.056_606).abs() < 1e-5,
            "{:?}",
            r.difference
        );
        assert!((r.difference.high - 0.015_796).abs() < 1e-5);
        assert_eq!(r.verdict, Verdict::Inconclusive);
        // Same difference and discordance: the lower bound clears −0.05 at about
        // 1.96²·(0.13 − 0.0004)/0.03² = 553.2 → 554 tasks (50%), and
        // (1.96 + 0.8416)²·0.1296/0.03² = 1130.2 → 1131 for 80% power.
        assert_eq!(r.tasks_for_conclusive, Some(554));
        assert_eq!(r.tasks_for_80_power, Some(1131));
    }

    #[test]
    fn clear_verdicts() {
        let ni = noninferiority(20, 20, 1000, 0.05, 0.95).unwrap();
        assert_eq!(ni.verdict, Verdict::NonInferior);
        assert_eq!(ni.tasks_for_conclusive, None);
        let inf = noninferiority(0, 150, 1000, 0.05, 0.95).unwrap();
        assert_eq!(inf.verdict, Verdict::Inferior);
        assert_eq!(inf.verdict.to_string(), "INFERIOR");
    }

    #[test]
    fn invalid_input() {
        assert!(noninferiority(1, 1, 0, 0.05, 0.95).is_err());
        assert!(noninferiority(3, 3, 5, 0.05, 0.95).is_err());
        assert!(noninferiority(1, 1, 10, 0.0, 0.95).is_err());
        assert!(noninferiority(1, 1, 10, 0.05, 1.0).is_err());
    }

    #[test]
    fn slices_with_and_without_repeats() {
        let mk = |acc: &[bool], rep: u32| -> Vec<Outcome> {
            acc.iter()
                .enumerate()
                .flat_map(|(t, &a)| {
                    (0..rep).map(move |_| Outcome {
                        task: t as u32,
                        accepted: a,
                        cost: 0.1,
                    })
                })
                .collect()
        };
        let cand: Vec<bool> = (0..300).map(|i| i % 10 != 0).collect();
        let inc: Vec<bool> = (0..300).map(|i| i % 12 != 0).collect();
        let one = noninferiority_paired(&mk(&cand, 1), &mk(&inc, 1), 0.05, 0.95, 1000, 1).unwrap();
        assert_eq!(one.difference.method, "tango-score");
        let rep = noninferiority_paired(&mk(&cand, 3), &mk(&inc, 3), 0.05, 0.95, 1000, 1).unwrap();
        assert_eq!(rep.difference.method, "paired-cluster-bootstrap");
        assert!((one.difference.estimate - rep.difference.estimate).abs() < 1e-12);
        // Triplicated identical repeats carry no more information than one outcome per task.
        assert!(rep.difference.width() > 0.8 * one.difference.width());
    }
}
