//! Sequential early stopping for an acceptance rate: Wald's sequential probability ratio test.
//!
//! H₀: p = p₀ against H₁: p = p₁ (p₁ > p₀, e.g. "at or below the 80% floor" against "clearly at
//! 90%"). After each graded outcome y, the log-likelihood ratio grows by
//! y·ln(p₁/p₀) + (1−y)·ln((1−p₁)/(1−p₀)); stop for H₁ once Λ ≥ ln((1−β)/α) and for H₀ once
//! Λ ≤ ln(β/(1−α)) (Wald, "Sequential tests of statistical hypotheses", *Ann. Math. Stat.*
//! 16:117–186, 1945). Operating characteristics (average sample number, probability of each
//! verdict) are computed *exactly* by dynamic programming over the number of acceptances, not by
//! simulation.
//!
//! Caveats owned by the caller: stop only at task-cluster boundaries, randomise task order (suites
//! are often sorted by difficulty), and do not report the naive rate after an early stop as if n
//! had been fixed (it is biased). Continuous monitoring of a *difference* needs always-valid
//! p-values (Johari, Pekelis & Walsh, *Oper. Res.* 70:1806–1821, 2022), not implemented here.

use super::{StatsError, check_level, norm_quantile};
use serde::Serialize;

/// What the SPRT says after the outcomes seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SprtDecision {
    /// Keep grading.
    Continue,
    /// Stop: evidence for H₁ (p = p₁).
    AcceptH1,
    /// Stop: evidence for H₀ (p = p₀).
    AcceptH0,
}

/// A Wald SPRT for a Bernoulli acceptance rate, with its running state.
#[derive(Debug, Clone, Serialize)]
pub struct Sprt {
    /// Rate under H₀.
    pub p0: f64,
    /// Rate under H₁.
    pub p1: f64,
    /// Type I error (accept H₁ when H₀ holds).
    pub alpha: f64,
    /// Type II error (accept H₀ when H₁ holds).
    pub beta: f64,
    /// Upper threshold ln((1−β)/α).
    pub upper: f64,
    /// Lower threshold ln(β/(1−α)).
    pub lower: f64,
    /// Log-likelihood ratio increment for an acceptance, ln(p₁/p₀).
    step_accept: f64,
    /// Increment for a rejection, ln((1−p₁)/(1−p₀)).
    step_reject: f64,
    /// Current log-likelihood ratio.
    pub llr: f64,
    /// Outcomes seen.
    pub n: u64,
    /// Decision so far (sticky once reached).
    pub decision: SprtDecision,
}

/// Exact operating characteristics of an SPRT at one true rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SprtOperatingPoint {
    /// True acceptance rate.
    pub p: f64,
    /// Expected number of outcomes graded before stopping (truncated at `max_n`).
    pub average_sample_number: f64,
    /// Probability of stopping for H₁.
    pub prob_accept_h1: f64,
    /// Probability of stopping for H₀.
    pub prob_accept_h0: f64,
    /// Probability of still continuing at `max_n` (truncation; normally negligible).
    pub prob_undecided: f64,
}

impl Sprt {
    /// A fresh test; requires 0 < p₀ < p₁ < 1 and α, β in (0, 1) with α + β < 1.
    pub fn new(p0: f64, p1: f64, alpha: f64, beta: f64) -> Result<Self, StatsError> {
        check_level(p0)?;
        check_level(p1)?;
        check_level(alpha)?;
        check_level(beta)?;
        if p1 <= p0 {
            return Err(StatsError::InvalidParameter("p1 must exceed p0"));
        }
        if alpha + beta >= 1.0 {
            return Err(StatsError::InvalidParameter("alpha + beta must be < 1"));
        }
        Ok(Sprt {
            p0,
            p1,
            alpha,
            beta,
            upper: ((1.0 - beta) / alpha).ln(),
            lower: (beta / (1.0 - alpha)).ln(),
            step_accept: (p1 / p0).ln(),
            step_reject: ((1.0 - p1) / (1.0 - p0)).ln(),
            llr: 0.0,
            n: 0,
            decision: SprtDecision::Continue,
        })
    }

    /// Adds one graded outcome and returns the decision; after a stop, further outcomes are
    /// ignored and the decision is returned unchanged.
    pub fn update(&mut self, accepted: bool) -> SprtDecision {
        if self.decision != SprtDecision::Continue {
            return self.decision;
        }
        self.n += 1;
        self.llr += if accepted {
            self.step_accept
        } else {
            self.step_reject
        };
        self.decision = self.classify(self.llr);
        self.decision
    }

    /// Feeds outcomes in order until a decision; returns it and the number of outcomes used.
    pub fn run(&mut self, outcomes: &[bool]) -> (SprtDecision, u64) {
        for &y in outcomes {
            if self.update(y) != SprtDecision::Continue {
                break;
            }
        }
        (self.decision, self.n)
    }

    /// Decision for a log-likelihood ratio value.
    fn classify(&self, llr: f64) -> SprtDecision {
        // A tiny tolerance keeps exact boundary hits (common with rational p's) on the stop side.
        if llr >= self.upper - 1e-12 {
            SprtDecision::AcceptH1
        } else if llr <= self.lower + 1e-12 {
            SprtDecision::AcceptH0
        } else {
            SprtDecision::Continue
        }
    }

    /// Exact operating characteristics at true rate `p`, by dynamic programming over the number
    /// of acceptances among the outcomes seen, truncated at `max_n` outcomes.
    pub fn operating_point(&self, p: f64, max_n: u64) -> Result<SprtOperatingPoint, StatsError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(StatsError::InvalidParameter("p must be in [0, 1]"));
        }
        let cap = usize::try_from(max_n).unwrap_or(usize::MAX).min(1_000_000);
        // prob[s] = P(still running after n outcomes with s acceptances); only [lo, hi] non-zero.
        let mut prob = vec![0.0f64; cap + 2];
        prob[0] = 1.0;
        let (mut lo, mut hi) = (0usize, 0usize);
        let (mut asn, mut h1, mut h0) = (0.0, 0.0, 0.0);
        let mut alive = 1.0;
        for n in 1..=cap {
            // Step: s → s+1 with p, s → s with 1−p; iterate downwards so each entry is read once.
            for s in (lo..=hi).rev() {
                let m = prob[s];
                prob[s + 1] += m * p;
                prob[s] = m * (1.0 - p);
            }
            hi += 1;
            alive = 0.0;
            let mut new_lo = usize::MAX;
            let mut new_hi = 0;
            for (s, slot) in prob.iter_mut().enumerate().take(hi + 1).skip(lo) {
                let m = *slot;
                if m == 0.0 {
                    continue;
                }
                let llr = s as f64 * self.step_accept + (n - s) as f64 * self.step_reject;
                match self.classify(llr) {
                    SprtDecision::AcceptH1 => {
                        h1 += m;
                        asn += m * n as f64;
                        *slot = 0.0;
                    }
                    SprtDecision::AcceptH0 => {
                        h0 += m;
                        asn += m * n as f64;
                        *slot = 0.0;
                    }
                    SprtDecision::Continue => {
                        alive += m;
                        new_lo = new_lo.min(s);
                        new_hi = new_hi.max(s);
                    }
                }
            }
            if new_lo == usize::MAX || alive < 1e-15 {
                alive = alive.max(0.0);
                asn += alive * n as f64;
                break;
            }
            (lo, hi) = (new_lo, new_hi);
            if n == cap {
                asn += alive * n as f64;
            }
        }
        Ok(SprtOperatingPoint {
            p,
            average_sample_number: asn,
            prob_accept_h1: h1,
            prob_accept_h0: h0,
            prob_undecided: alive,
        })
    }
}

/// Fixed sample size of the one-sided test of p₀ against p₁ with the same α and β (for comparing
/// with the SPRT's average sample number): ((z₁₋α√(p₀q₀) + z₁₋β√(p₁q₁))/(p₁ − p₀))².
pub fn fixed_n_one_sided(p0: f64, p1: f64, alpha: f64, beta: f64) -> Result<f64, StatsError> {
    let t = Sprt::new(p0, p1, alpha, beta)?;
    let za = norm_quantile(1.0 - t.alpha);
    let zb = norm_quantile(1.0 - t.beta);
    let num = za * (p0 * (1.0 - p0)).sqrt() + zb * (p1 * (1.0 - p1)).sqrt();
    Ok((num / (p1 - p0)).powi(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::rng::Rng;

    #[test]
    fn statistics_md_example() {
        // statistics.md §3.7 [C]: p₀ = .80 vs p₁ = .90, α = .05, β = .20; fixed n = 83.
        assert_eq!(fixed_n_one_sided(0.8, 0.9, 0.05, 0.2).unwrap().ceil(), 83.0);
        let t = Sprt::new(0.8, 0.9, 0.05, 0.2).unwrap();
        // (true p, mean n, P(accept H1)) as printed there.
        let table = [
            (0.80, 35.3, 0.047),
            (0.90, 57.7, 0.840),
            (0.95, 36.2, 0.989),
            (0.70, 14.5, 0.001),
        ];
        for (p, asn, ph1) in table {
            let op = t.operating_point(p, 20_000).unwrap();
            println!(
                "p={p}: ASN {:.2}, P(H1) {:.4}, undecided {:.1e}",
                op.average_sample_number, op.prob_accept_h1, op.prob_undecided
            );
            assert!(op.prob_undecided < 1e-9);
            assert!((op.prob_accept_h1 + op.prob_accept_h0 - 1.0).abs() < 1e-9);
            assert!(
                (op.average_sample_number - asn).abs() < 0.5,
                "ASN at {p}: {}",
                op.average_sample_number
            );
            assert!((op.prob_accept_h1 - ph1).abs() < 0.006, "P(H1) at {p}");
        }
    }

    #[test]
    fn simulation_agrees_with_exact_dp() {
        let t = Sprt::new(0.8, 0.9, 0.05, 0.2).unwrap();
        let exact = t.operating_point(0.9, 20_000).unwrap();
        let mut rng = Rng::new(99);
        let runs = 20_000;
        let (mut total_n, mut h1) = (0u64, 0u32);
        for _ in 0..runs {
            let mut s = t.clone();
            while s.decision == SprtDecision::Continue {
                s.update(rng.bernoulli(0.9));
            }
            total_n += s.n;
            h1 += u32::from(s.decision == SprtDecision::AcceptH1);
        }
        let asn = total_n as f64 / runs as f64;
        assert!((asn - exact.average_sample_number).abs() < 1.5, "{asn}");
        assert!((f64::from(h1) / runs as f64 - exact.prob_accept_h1).abs() < 0.015);
    }

    #[test]
    fn update_is_sticky_and_run_stops() {
        let mut t = Sprt::new(0.5, 0.9, 0.05, 0.05).unwrap();
        let (d, n) = t.run(&[true; 100]);
        assert_eq!(d, SprtDecision::AcceptH1);
        assert!(n < 100);
        assert_eq!(t.update(false), SprtDecision::AcceptH1);
        assert_eq!(t.n, n);
        let mut t = Sprt::new(0.5, 0.9, 0.05, 0.05).unwrap();
        assert_eq!(t.run(&[false; 10]).0, SprtDecision::AcceptH0);
        assert_eq!(Sprt::new(0.5, 0.9, 0.05, 0.05).unwrap().run(&[]).1, 0);
    }

    #[test]
    fn invalid_parameters() {
        assert!(Sprt::new(0.9, 0.8, 0.05, 0.2).is_err());
        assert!(Sprt::new(0.0, 0.8, 0.05, 0.2).is_err());
        assert!(Sprt::new(0.5, 0.8, 0.6, 0.5).is_err());
        let t = Sprt::new(0.8, 0.9, 0.05, 0.2).unwrap();
        assert!(t.operating_point(1.5, 100).is_err());
        let trunc = t.operating_point(0.85, 10).unwrap();
        assert!(trunc.prob_undecided > 0.0 && trunc.average_sample_number <= 10.0);
    }
}
