//! The statistics core: honest intervals, paired tests, non-inferiority, multiple comparisons,
//! power, agreement and sequential stopping.
//!
//! Everything here is a pure function over outcomes (accepted or not, cost, task), independent of
//! providers and storage, so that `report`, `gate` and `route` can all share one audited
//! implementation. Method choices follow `reference/statistics.md`:
//!
//! - acceptance rates: Wilson / Jeffreys for display, Clopper–Pearson where a gate decides
//!   (Brown, Cai & DasGupta, *Statistical Science* 16:101–133, 2001); never Wald;
//! - cost per accepted outcome: studentized (bootstrap-t, on the linear or the log scale) and BCa
//!   bootstraps over whole task clusters (Efron, *JASA* 82:171–185, 1987; Hall 1992) with a
//!   log-scale delta method as the fast path; the report uses the log-scale bootstrap-t, which
//!   covers best for heavy-tailed costs;
//! - paired binary comparisons: McNemar mid-p (Fagerland, Lydersen & Laake, *BMC Med Res Methodol*
//!   13:91, 2013) and Tango's score interval (*Stat Med* 17:891–908, 1998);
//! - multiplicity: Holm (1979) and Benjamini–Hochberg (1995);
//! - power: Miller, "Adding Error Bars to Evals" (2024).
//!
//! The module is split one file per topic; this file holds the shared vocabulary (`Interval`,
//! `Outcome`, `StatsError`) and small helpers for critical values.

pub mod agreement;
pub mod binomial;
pub mod bootstrap;
pub mod limit;
pub mod multiple;
pub mod noninferiority;
pub mod paired;
pub mod power;
pub mod rng;
pub mod sequential;

pub use agreement::{
    AgreementCi, AgreementTable, GraderAccuracy, agreement_bootstrap, rogan_gladen,
    rogan_gladen_interval,
};
pub use binomial::{
    ClusteredRate, acceptance_cluster_bootstrap, acceptance_clustered, agresti_coull,
    clopper_pearson, jeffreys, wilson,
};
pub use bootstrap::{
    CostRatioCi, DeltaMoments, cost_per_accepted_bca, cost_per_accepted_delta_log,
    cost_per_accepted_studentized, cost_per_accepted_studentized_log, try_cost_per_accepted_bca,
};
pub use multiple::{Adjusted, benjamini_hochberg, benjamini_yekutieli, holm};
pub use noninferiority::{NonInferiority, Verdict, noninferiority, noninferiority_paired};
pub use paired::{
    Estimate, McNemar, PairedCostCi, PairedCounts, check_aligned, mcnemar,
    paired_acceptance_bootstrap, paired_cost_per_accepted, paired_cost_per_accepted_delta,
    tango_difference,
};
pub use power::{
    MillerVariance, design_effect, miller_mde, miller_sample_size, noninferiority_sample_size,
    paired_mde, paired_sample_size, unpaired_mde, unpaired_sample_size,
};
pub use sequential::{Sprt, SprtDecision, SprtOperatingPoint, fixed_n_one_sided};

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// The confidence level used when a caller has no reason to choose another.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;

/// A two-sided confidence interval around a point estimate.
///
/// JSON shape (used verbatim by the report): `{"estimate": f64, "low": f64, "high": f64,
/// "method": "wilson" | "jeffreys" | "clopper-pearson" | ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// The point estimate (for rates, the observed proportion x/n).
    pub estimate: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Short machine-readable name of the method that produced the bounds: "wilson",
    /// "jeffreys", "clopper-pearson", "agresti-coull", "wilson-clustered", "cluster-bootstrap",
    /// "tango-score", "paired-cluster-bootstrap" or "rogan-gladen-bootstrap".
    pub method: &'static str,
}

impl Interval {
    /// Whether `value` lies inside the closed interval.
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }

    /// Width `high - low`.
    pub fn width(&self) -> f64 {
        self.high - self.low
    }
}

/// One graded outcome of one provider on one task (one repeat).
///
/// `task` is a dense cluster index shared by every provider that ran the same task; `cost` is the
/// USD attributed to this outcome, retries and rejection cost included.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Outcome {
    /// Dense task (cluster) index; repeats of one task share it.
    pub task: u32,
    /// Whether the grader accepted the outcome.
    pub accepted: bool,
    /// Cost in USD attributed to this outcome (must be finite and ≥ 0).
    pub cost: f64,
}

/// Why a statistic could not be computed from the given input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum StatsError {
    /// The input had no observations.
    Empty,
    /// The confidence level (or α, power) must lie strictly between 0 and 1.
    InvalidLevel(f64),
    /// A count exceeded its total (e.g. accepted > n).
    CountExceedsTotal,
    /// Two slices that must be aligned by task differ in length.
    LengthMismatch {
        /// Length of the first slice.
        left: usize,
        /// Length of the second slice.
        right: usize,
    },
    /// Two aligned slices disagree on the task at this position.
    TaskMismatch(usize),
    /// A cost or p-value was NaN, infinite or out of its domain.
    InvalidValue(&'static str),
    /// A parameter was outside its domain; the text names it.
    InvalidParameter(&'static str),
}

impl std::fmt::Display for StatsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatsError::Empty => write!(f, "no observations"),
            StatsError::InvalidLevel(v) => write!(f, "level {v} is not strictly between 0 and 1"),
            StatsError::CountExceedsTotal => write!(f, "a count exceeds its total"),
            StatsError::LengthMismatch { left, right } => {
                write!(f, "paired inputs differ in length ({left} vs {right})")
            }
            StatsError::TaskMismatch(i) => write!(f, "paired inputs disagree on the task at {i}"),
            StatsError::InvalidValue(what) => write!(f, "invalid value: {what}"),
            StatsError::InvalidParameter(what) => write!(f, "invalid parameter: {what}"),
        }
    }
}

impl std::error::Error for StatsError {}

/// Checks that a level (confidence, α, power) lies strictly inside (0, 1).
pub(crate) fn check_level(level: f64) -> Result<f64, StatsError> {
    if level.is_finite() && level > 0.0 && level < 1.0 {
        Ok(level)
    } else {
        Err(StatsError::InvalidLevel(level))
    }
}

/// Standard normal quantile Φ⁻¹(p) for p in (0, 1).
pub(crate) fn norm_quantile(p: f64) -> f64 {
    Normal::standard().inverse_cdf(p)
}

/// Standard normal CDF Φ(x).
pub(crate) fn norm_cdf(x: f64) -> f64 {
    Normal::standard().cdf(x)
}

/// Two-sided critical value z₁₋α/₂ for a confidence level, or an error for a level outside (0, 1).
pub(crate) fn z_two_sided(confidence: f64) -> Result<f64, StatsError> {
    let c = check_level(confidence)?;
    Ok(norm_quantile(1.0 - (1.0 - c) / 2.0))
}

/// Two-sided Student-t critical value with `df` degrees of freedom (normal when df is huge).
pub(crate) fn t_two_sided(confidence: f64, df: f64) -> Result<f64, StatsError> {
    let c = check_level(confidence)?;
    if df.is_nan() || df < 1.0 {
        return Err(StatsError::InvalidParameter("degrees of freedom < 1"));
    }
    let t = StudentsT::new(0.0, 1.0, df)
        .map_err(|_| StatsError::InvalidParameter("degrees of freedom"))?;
    Ok(t.inverse_cdf(1.0 - (1.0 - c) / 2.0))
}

/// Validates outcome costs: every cost must be finite and non-negative.
pub(crate) fn check_outcomes(outcomes: &[Outcome]) -> Result<(), StatsError> {
    if outcomes.is_empty() {
        return Err(StatsError::Empty);
    }
    if outcomes.iter().any(|o| !o.cost.is_finite() || o.cost < 0.0) {
        return Err(StatsError::InvalidValue("cost must be finite and >= 0"));
    }
    Ok(())
}

/// Proptest settings for every property test in `stats`: a fixed seed (tests are deterministic)
/// and no regression files written outside this module.
#[cfg(test)]
pub(crate) fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_C057),
        ..proptest::test_runner::Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_values_match_tables() {
        assert!((z_two_sided(0.95).unwrap() - 1.959_964).abs() < 1e-6);
        assert!((z_two_sided(0.99).unwrap() - 2.575_829).abs() < 1e-6);
        // t(0.975; 9) = 2.262157 from any t table.
        assert!((t_two_sided(0.95, 9.0).unwrap() - 2.262_157).abs() < 1e-5);
    }

    #[test]
    fn invalid_levels_are_errors_not_panics() {
        for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
            assert!(z_two_sided(bad).is_err());
        }
        assert!(t_two_sided(0.95, 0.0).is_err());
    }

    #[test]
    fn interval_helpers() {
        let i = Interval {
            estimate: 0.5,
            low: 0.4,
            high: 0.7,
            method: "wilson",
        };
        assert!(i.contains(0.5) && !i.contains(0.8));
        assert!((i.width() - 0.3).abs() < 1e-12);
    }
}
