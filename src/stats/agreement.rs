//! Agreement between two raters on binary labels (typically a human and an automatic grader),
//! and the correction of an acceptance rate for a grader's known error rates.
//!
//! - Raw agreement p_o and **Cohen's κ** = (p_o − p_e)/(1 − p_e), p_e = Σ_k p_{A,k}·p_{B,k} (Cohen,
//!   *Educ. Psychol. Meas.* 20:37–46, 1960; bands from Landis & Koch, *Biometrics* 33:159–174, 1977).
//! - **Krippendorff's α** for nominal data, two raters, no missing labels:
//!   α = 1 − (n − 1)·D/(n₀·n₁) with n = 2N pairable values, D = number of disagreeing units and
//!   n₀, n₁ the pooled label counts (Krippendorff, *Content Analysis*, 4th ed., 2018, ch. 12;
//!   Hayes & Krippendorff, *Commun. Methods Meas.* 1:77–89, 2007). α ≥ 0.800 is "reliable".
//! - Bootstrap intervals for both (items resampled, BCa); degenerate resamples (all labels equal,
//!   κ and α undefined) are counted and treated conservatively.
//! - **Sensitivity and specificity** of the grader against human labels, with Wilson intervals.
//! - **Rogan–Gladen** corrected rate p = (p_obs + Sp − 1)/(Se + Sp − 1) (Rogan & Gladen, *Am. J.
//!   Epidemiol.* 107:71–76, 1978), clamped to [0, 1], with a bootstrap interval that resamples
//!   both the suite and the human-labelled calibration set (Lang & Reiczigel, *Prev. Vet. Med.*
//!   113:13–22, 2014, discuss why the calibration uncertainty must be carried).
//!
//! High agreement does not mean an unbiased rate: a grader biased toward "accept" inflates every
//! provider, and not equally, so differences between providers can flip.

use super::binomial::wilson;
use super::bootstrap::bca_bounds;
use super::paired::Estimate;
use super::rng::Rng;
use super::{Interval, StatsError, check_level};
use rayon::prelude::*;
use serde::Serialize;

/// A 2×2 table of two raters' binary labels on the same items (rater A is the reference, e.g. the
/// human, when sensitivity and specificity are computed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AgreementTable {
    /// Both raters accept.
    pub both_accept: u64,
    /// A accepts, B rejects.
    pub only_a: u64,
    /// A rejects, B accepts.
    pub only_b: u64,
    /// Both raters reject.
    pub both_reject: u64,
}

impl AgreementTable {
    /// Tabulates two label slices of equal length.
    pub fn from_labels(a: &[bool], b: &[bool]) -> Result<Self, StatsError> {
        if a.len() != b.len() {
            return Err(StatsError::LengthMismatch {
                left: a.len(),
                right: b.len(),
            });
        }
        let mut t = AgreementTable {
            both_accept: 0,
            only_a: 0,
            only_b: 0,
            both_reject: 0,
        };
        for (&x, &y) in a.iter().zip(b) {
            match (x, y) {
                (true, true) => t.both_accept += 1,
                (true, false) => t.only_a += 1,
                (false, true) => t.only_b += 1,
                (false, false) => t.both_reject += 1,
            }
        }
        Ok(t)
    }

    /// Number of items.
    pub fn n(&self) -> u64 {
        self.both_accept + self.only_a + self.only_b + self.both_reject
    }

    /// Raw agreement p_o (None when the table is empty).
    pub fn raw_agreement(&self) -> Option<f64> {
        let n = self.n();
        (n > 0).then(|| (self.both_accept + self.both_reject) as f64 / n as f64)
    }

    /// Cohen's κ (None when empty or when p_e = 1, i.e. both raters give one constant label).
    pub fn cohen_kappa(&self) -> Option<f64> {
        kappa(self.cells())
    }

    /// Krippendorff's α, nominal, two raters (None when empty or all labels are identical).
    pub fn krippendorff_alpha(&self) -> Option<f64> {
        kalpha(self.cells())
    }

    /// Cells as f64 [both_accept, only_a, only_b, both_reject].
    fn cells(&self) -> [f64; 4] {
        [
            self.both_accept as f64,
            self.only_a as f64,
            self.only_b as f64,
            self.both_reject as f64,
        ]
    }
}

/// κ from cell counts.
fn kappa(c: [f64; 4]) -> Option<f64> {
    let n: f64 = c.iter().sum();
    if n <= 0.0 {
        return None;
    }
    let po = (c[0] + c[3]) / n;
    let (a_yes, b_yes) = ((c[0] + c[1]) / n, (c[0] + c[2]) / n);
    let pe = a_yes * b_yes + (1.0 - a_yes) * (1.0 - b_yes);
    (pe < 1.0).then(|| (po - pe) / (1.0 - pe))
}

/// Krippendorff's α (nominal, two raters) from cell counts.
fn kalpha(c: [f64; 4]) -> Option<f64> {
    let units: f64 = c.iter().sum();
    let values = 2.0 * units;
    let n1 = 2.0 * c[0] + c[1] + c[2];
    let n0 = values - n1;
    (units > 0.0 && n0 > 0.0 && n1 > 0.0).then(|| 1.0 - (values - 1.0) * (c[1] + c[2]) / (n0 * n1))
}

/// Agreement statistics with bootstrap intervals.
#[derive(Debug, Clone, Serialize)]
pub struct AgreementCi {
    /// The table the statistics describe.
    pub table: AgreementTable,
    /// Raw agreement with a Wilson interval.
    pub raw_agreement: Interval,
    /// Cohen's κ with a BCa bootstrap interval.
    pub kappa: Estimate,
    /// Krippendorff's α with a BCa bootstrap interval.
    pub alpha: Estimate,
    /// Number of resamples.
    pub resamples: usize,
    /// Resamples where κ or α was undefined (constant labels), counted against both bounds.
    pub degenerate_resamples: usize,
}

/// Raw agreement, κ and α with BCa intervals from `reps` item resamples under `seed`.
pub fn agreement_bootstrap(
    table: AgreementTable,
    reps: usize,
    confidence: f64,
    seed: u64,
) -> Result<AgreementCi, StatsError> {
    check_level(confidence)?;
    let n = table.n();
    if n == 0 {
        return Err(StatsError::Empty);
    }
    if reps < 2 {
        return Err(StatsError::InvalidParameter("need at least 2 resamples"));
    }
    let raw =
        wilson(table.both_accept + table.both_reject, n, confidence).ok_or(StatsError::Empty)?;
    let cells = table.cells();
    // Cumulative cell boundaries: resampling an item is drawing an index and finding its cell.
    let bounds = [
        table.both_accept,
        table.both_accept + table.only_a,
        table.both_accept + table.only_a + table.only_b,
    ];
    let reps_kv: Vec<(f64, f64)> = (0..reps)
        .into_par_iter()
        .with_min_len(8)
        .map(|r| {
            let mut rng = Rng::stream(seed, r as u64);
            let mut c = [0.0; 4];
            for _ in 0..n {
                let i = rng.below(n);
                let cell = bounds.iter().filter(|&&b| i >= b).count();
                c[cell] += 1.0;
            }
            (kappa(c).unwrap_or(f64::NAN), kalpha(c).unwrap_or(f64::NAN))
        })
        .collect();
    let degenerate = reps_kv
        .iter()
        .filter(|(k, a)| k.is_nan() || a.is_nan())
        .count();
    // Leave-one-item-out values: only four distinct ones, repeated by cell count.
    let jack = |f: fn([f64; 4]) -> Option<f64>| -> Vec<f64> {
        let mut out = Vec::new();
        for k in 0..4 {
            if cells[k] > 0.0 {
                let mut c = cells;
                c[k] -= 1.0;
                let v = f(c).unwrap_or(f64::NAN);
                out.extend(std::iter::repeat_n(v, cells[k] as usize));
            }
        }
        out
    };
    let est = |point: Option<f64>, mut reps: Vec<f64>, jk: Vec<f64>| -> Estimate {
        match point {
            None => Estimate {
                estimate: None,
                low: None,
                high: None,
            },
            Some(e) => {
                let (lo, hi) = bca_bounds(e, &mut reps, &jk, confidence);
                Estimate {
                    estimate: Some(e),
                    low: Some(lo.clamp(-1.0, e)),
                    high: Some(hi.clamp(e, 1.0)),
                }
            }
        }
    };
    let kappa_reps = reps_kv.iter().map(|x| x.0).collect();
    let alpha_reps = reps_kv.iter().map(|x| x.1).collect();
    Ok(AgreementCi {
        table,
        raw_agreement: raw,
        kappa: est(table.cohen_kappa(), kappa_reps, jack(kappa)),
        alpha: est(table.krippendorff_alpha(), alpha_reps, jack(kalpha)),
        resamples: reps,
        degenerate_resamples: degenerate,
    })
}

/// Sensitivity and specificity of a grader (rater B) against human labels (rater A).
#[derive(Debug, Clone, Serialize)]
pub struct GraderAccuracy {
    /// Se = P(grader accepts | human accepts), Wilson interval; None without human accepts.
    pub sensitivity: Option<Interval>,
    /// Sp = P(grader rejects | human rejects), Wilson interval; None without human rejects.
    pub specificity: Option<Interval>,
}

impl GraderAccuracy {
    /// Se and Sp from a table whose rater A is the human and rater B the grader.
    pub fn from_table(t: &AgreementTable, confidence: f64) -> Self {
        GraderAccuracy {
            sensitivity: wilson(t.both_accept, t.both_accept + t.only_a, confidence),
            specificity: wilson(t.both_reject, t.both_reject + t.only_b, confidence),
        }
    }
}

/// Rogan–Gladen corrected rate (p_obs + Sp − 1)/(Se + Sp − 1), clamped to [0, 1]; None when
/// Se + Sp ≤ 1 (a grader no better than chance cannot be inverted) or an input is outside [0, 1].
pub fn rogan_gladen(p_obs: f64, sensitivity: f64, specificity: f64) -> Option<f64> {
    let unit = |x: f64| (0.0..=1.0).contains(&x);
    if !(unit(p_obs) && unit(sensitivity) && unit(specificity)) {
        return None;
    }
    let j = sensitivity + specificity - 1.0;
    (j > 0.0).then(|| ((p_obs + specificity - 1.0) / j).clamp(0.0, 1.0))
}

/// Rogan–Gladen corrected acceptance rate with a bootstrap interval.
///
/// `accepted` of `n` suite outcomes were accepted by the grader; `calibration` is the
/// human (A) × grader (B) table on human-labelled items. Each resample redraws the suite's
/// acceptances (binomial, by item) and the calibration items, and recomputes the corrected rate;
/// resamples where Se* + Sp* ≤ 1 count against both bounds. Method "rogan-gladen-bootstrap".
pub fn rogan_gladen_interval(
    accepted: u64,
    n: u64,
    calibration: &AgreementTable,
    reps: usize,
    confidence: f64,
    seed: u64,
) -> Result<Interval, StatsError> {
    check_level(confidence)?;
    if n == 0 || calibration.n() == 0 {
        return Err(StatsError::Empty);
    }
    if accepted > n {
        return Err(StatsError::CountExceedsTotal);
    }
    if reps < 2 {
        return Err(StatsError::InvalidParameter("need at least 2 resamples"));
    }
    let t = calibration;
    let pos = t.both_accept + t.only_a;
    let neg = t.both_reject + t.only_b;
    let ratio = |k: u64, m: u64| {
        if m == 0 {
            f64::NAN
        } else {
            k as f64 / m as f64
        }
    };
    let p_obs = accepted as f64 / n as f64;
    let (se, sp) = (ratio(t.both_accept, pos), ratio(t.both_reject, neg));
    let estimate = rogan_gladen(p_obs, se, sp)
        .ok_or(StatsError::InvalidParameter("grader no better than chance"))?;
    let mut reps_v: Vec<f64> = (0..reps)
        .into_par_iter()
        .with_min_len(8)
        .map(|r| {
            let mut rng = Rng::stream(seed, r as u64);
            let draw = |rng: &mut Rng, m: u64, p: f64| (0..m).filter(|_| rng.bernoulli(p)).count();
            let x = draw(&mut rng, n, p_obs) as u64;
            let s = draw(&mut rng, pos, se) as u64;
            let q = draw(&mut rng, neg, sp) as u64;
            rogan_gladen(ratio(x, n), ratio(s, pos), ratio(q, neg)).unwrap_or(f64::NAN)
        })
        .collect();
    let (lo, hi) = bca_bounds(estimate, &mut reps_v, &[], confidence);
    Ok(Interval {
        estimate,
        low: lo.clamp(0.0, estimate),
        high: hi.clamp(estimate, 1.0),
        method: "rogan-gladen-bootstrap",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// statistics.md §3.8 [C]: 200 items, human accepts/auto accepts 150, human accepts/auto
    /// rejects 10, human rejects/auto accepts 20, both reject 20.
    const T200: AgreementTable = AgreementTable {
        both_accept: 150,
        only_a: 10,
        only_b: 20,
        both_reject: 20,
    };

    #[test]
    fn known_answers_200_items() {
        assert_eq!(T200.n(), 200);
        assert!((T200.raw_agreement().unwrap() - 0.85).abs() < 1e-12);
        // κ = (0.85 − 0.71)/(1 − 0.71) = 0.4828; α = 1 − 399·30/(330·70) = 0.4818.
        let k = T200.cohen_kappa().unwrap();
        let a = T200.krippendorff_alpha().unwrap();
        assert_eq!(format!("{k:.3}"), "0.483");
        assert_eq!(format!("{a:.3}"), "0.482");
        assert!((k - 0.14 / 0.29).abs() < 1e-12);
        assert!((a - (1.0 - 399.0 * 30.0 / (330.0 * 70.0))).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_intervals_bracket_the_estimates() {
        let ci = agreement_bootstrap(T200, 2000, 0.95, 7).unwrap();
        let k = ci.kappa;
        assert!(k.low.unwrap() < 0.483 && 0.483 < k.high.unwrap());
        assert!(k.low.unwrap() > 0.25 && k.high.unwrap() < 0.7, "{k:?}");
        assert!(ci.alpha.low.unwrap() < ci.alpha.estimate.unwrap());
        assert_eq!(ci.degenerate_resamples, 0);
        let again = agreement_bootstrap(T200, 2000, 0.95, 7).unwrap();
        assert_eq!(again.kappa, ci.kappa);
    }

    #[test]
    fn sensitivity_specificity_and_rogan_gladen() {
        let acc = GraderAccuracy::from_table(&T200, 0.95);
        let se = acc.sensitivity.unwrap();
        let sp = acc.specificity.unwrap();
        assert!((se.estimate - 0.9375).abs() < 1e-12 && (sp.estimate - 0.5).abs() < 1e-12);
        // The grader accepts 85% of the suite; corrected: (0.85 + 0.5 − 1)/(0.9375 + 0.5 − 1) = 0.8.
        let p = rogan_gladen(0.85, 0.9375, 0.5).unwrap();
        assert!((p - 0.8).abs() < 1e-12);
        let ci = rogan_gladen_interval(850, 1000, &T200, 1000, 0.95, 3).unwrap();
        assert!((ci.estimate - 0.8).abs() < 1e-12);
        assert!(
            ci.low < 0.8 && ci.high > 0.8 && ci.low >= 0.0 && ci.high <= 1.0,
            "{ci:?}"
        );
        assert!(rogan_gladen(0.5, 0.5, 0.5).is_none());
        assert!(rogan_gladen(1.5, 0.9, 0.9).is_none());
        // Clamped when the observed rate is below the false-positive rate.
        assert_eq!(rogan_gladen(0.05, 0.9, 0.9), Some(0.0));
    }

    #[test]
    fn degenerate_tables() {
        let empty = AgreementTable::from_labels(&[], &[]).unwrap();
        assert_eq!(empty.cohen_kappa(), None);
        assert!(agreement_bootstrap(empty, 100, 0.95, 1).is_err());
        let constant = AgreementTable::from_labels(&[true; 5], &[true; 5]).unwrap();
        assert_eq!(constant.cohen_kappa(), None);
        assert_eq!(constant.krippendorff_alpha(), None);
        assert!(AgreementTable::from_labels(&[true], &[]).is_err());
        let perfect = AgreementTable::from_labels(&[true, false, true], &[true, false, true]);
        assert_eq!(perfect.unwrap().cohen_kappa(), Some(1.0));
    }
}
