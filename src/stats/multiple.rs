//! Multiple comparisons over a family of hypotheses the caller declares up front.
//!
//! - **Holm** step-down (Holm, "A simple sequentially rejective multiple test procedure", *Scand. J.
//!   Stat.* 6:65–70, 1979): family-wise error control, for pass/fail gates.
//! - **Benjamini–Hochberg** step-up (*JRSS-B* 57:289–300, 1995): false discovery rate control under
//!   independence or positive dependence, for report highlights.
//! - **Benjamini–Yekutieli** (*Ann. Stat.* 29:1165–1188, 2001): BH with q/Σ1/i, valid under
//!   arbitrary dependence.
//!
//! The family must be defined before looking at the results (all providers × workload classes in
//! the gate), and one table never mixes Holm and BH. Adjusted p-values are returned in the input
//! order; a hypothesis is rejected iff its adjusted p-value is ≤ the level, which is equivalent to
//! the step-down/step-up rules and handles ties consistently.

use super::{StatsError, check_level};
use serde::Serialize;

/// Adjusted p-values and rejections for one family, in the caller's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adjusted {
    /// "holm", "benjamini-hochberg" or "benjamini-yekutieli".
    pub method: &'static str,
    /// The family-wise α (Holm) or the FDR level q (BH, BY).
    pub level: f64,
    /// Adjusted p-values, same order as the input.
    pub adjusted: Vec<f64>,
    /// Whether each hypothesis is rejected, same order as the input.
    pub rejected: Vec<bool>,
}

impl Adjusted {
    /// Number of rejected hypotheses.
    pub fn rejections(&self) -> usize {
        self.rejected.iter().filter(|&&r| r).count()
    }
}

/// Validates a family of p-values and returns the permutation that sorts them ascending (ties
/// keep input order, so results are deterministic).
fn sorted_order(p: &[f64], level: f64) -> Result<Vec<usize>, StatsError> {
    check_level(level)?;
    if p.iter().any(|x| !(0.0..=1.0).contains(x)) {
        return Err(StatsError::InvalidValue("p-value outside [0, 1]"));
    }
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    Ok(order)
}

/// Builds the result from adjusted values.
fn finish(method: &'static str, level: f64, adjusted: Vec<f64>) -> Adjusted {
    let rejected = adjusted.iter().map(|&a| a <= level).collect();
    Adjusted {
        method,
        level,
        adjusted,
        rejected,
    }
}

/// Holm step-down at family-wise level `alpha`: p̃₍ᵢ₎ = max_{j≤i} min(1, (m − j + 1)·p₍ⱼ₎).
/// An empty family rejects nothing; p-values outside [0, 1] or NaN are an error.
pub fn holm(p: &[f64], alpha: f64) -> Result<Adjusted, StatsError> {
    let order = sorted_order(p, alpha)?;
    let m = p.len();
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    Ok(finish("holm", alpha, adjusted))
}

/// Step-up adjustment shared by BH and BY: p̃₍ᵢ₎ = min_{j≥i} min(1, c·m·p₍ⱼ₎/j).
fn step_up(p: &[f64], order: &[usize], c: f64) -> Vec<f64> {
    let m = p.len();
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 1.0;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min((c * m as f64 * p[i] / (rank + 1) as f64).min(1.0));
        // c·m·p/m can round below p; an adjusted p-value is never below the raw one.
        adjusted[i] = running.max(p[i]);
    }
    adjusted
}

/// Benjamini–Hochberg at FDR level `q`: rejects H₍₁₎..H₍ₖ₎ with k = max{k : p₍ₖ₎ ≤ k·q/m}.
pub fn benjamini_hochberg(p: &[f64], q: f64) -> Result<Adjusted, StatsError> {
    let order = sorted_order(p, q)?;
    Ok(finish("benjamini-hochberg", q, step_up(p, &order, 1.0)))
}

/// Benjamini–Yekutieli at FDR level `q`: BH with q replaced by q / Σᵢ₌₁ᵐ 1/i.
pub fn benjamini_yekutieli(p: &[f64], q: f64) -> Result<Adjusted, StatsError> {
    let order = sorted_order(p, q)?;
    let harmonic: f64 = (1..=p.len()).map(|i| 1.0 / i as f64).sum();
    Ok(finish(
        "benjamini-yekutieli",
        q,
        step_up(p, &order, harmonic.max(1.0)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P8: [f64; 8] = [0.001, 0.008, 0.012, 0.021, 0.039, 0.041, 0.20, 0.74];

    #[test]
    fn statistics_md_example() {
        // statistics.md §3.6: unadjusted 6, BH(.05) 4, Holm(.05) 1 rejections.
        assert_eq!(P8.iter().filter(|&&p| p <= 0.05).count(), 6);
        let h = holm(&P8, 0.05).unwrap();
        let bh = benjamini_hochberg(&P8, 0.05).unwrap();
        assert_eq!(h.rejections(), 1);
        assert_eq!(bh.rejections(), 4);
        assert_eq!(
            bh.rejected,
            [true, true, true, true, false, false, false, false]
        );
        // Holm adjusted p for the smallest: 8 × 0.001.
        assert!((h.adjusted[0] - 0.008).abs() < 1e-15);
        // BH adjusted: 0.021·8/4 = 0.042 for the 4th.
        assert!((bh.adjusted[3] - 0.042).abs() < 1e-15);
        let by = benjamini_yekutieli(&P8, 0.05).unwrap();
        assert!(by.rejections() <= bh.rejections());
    }

    #[test]
    fn order_is_preserved_and_ties_are_consistent() {
        let p = [0.04, 0.001, 0.04, 0.9];
        let h = holm(&p, 0.1).unwrap();
        assert_eq!(h.rejected[0], h.rejected[2]);
        assert!(h.rejected[1]);
        assert!(holm(&[], 0.05).unwrap().rejected.is_empty());
        assert!(holm(&[0.5, f64::NAN], 0.05).is_err());
        assert!(benjamini_hochberg(&[1.2], 0.05).is_err());
        assert!(holm(&[0.1], 0.0).is_err());
    }

    proptest! {
        #![proptest_config(crate::stats::proptest_config(512))]

        #[test]
        fn holm_never_rejects_more_than_bh(p in proptest::collection::vec(0.0f64..=1.0, 0..40),
                                            alpha in 0.001f64..0.3) {
            let h = holm(&p, alpha).unwrap();
            let bh = benjamini_hochberg(&p, alpha).unwrap();
            for (hr, br) in h.rejected.iter().zip(&bh.rejected) {
                prop_assert!(!hr || *br, "Holm rejected a hypothesis BH kept");
            }
            for (i, &x) in p.iter().enumerate() {
                prop_assert!(h.adjusted[i] >= x && h.adjusted[i] <= 1.0);
                prop_assert!(bh.adjusted[i] >= x && bh.adjusted[i] <= 1.0);
                prop_assert!(bh.adjusted[i] <= h.adjusted[i] + 1e-15);
            }
        }
    }
}
