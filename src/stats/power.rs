//! Power and sample size: how many tasks a suite needs to detect a difference in acceptance, and
//! the smallest difference a given suite can detect.
//!
//! - **Miller** ("Adding Error Bars to Evals", arXiv:2411.00640, 2024, §4): for a paired comparison
//!   with K samples per task, n = (z₁₋α/₂ + z_power)²·(ω² + σ_A²/K_A + σ_B²/K_B)/δ², where ω² is the
//!   variance of the per-task *expected* score difference and σ² the within-task variance;
//!   inverted for the minimum detectable effect. Clustering multiplies n by the design effect
//!   1 + (m − 1)·ICC (Kish, *Survey Sampling*, 1965).
//! - **Paired binary** (Connor, *Biometrics* 43:207–211, 1987), from the discordance ψ and the
//!   difference δ: n = (z₁₋α/₂√ψ + z_power√(ψ − δ²))²/δ².
//! - **Unpaired binary** (Fleiss, Levin & Paik, *Statistical Methods for Rates and Proportions*,
//!   3rd ed., 2003, eq. 4.14, without continuity correction), per group:
//!   n = (z₁₋α/₂√(2p̄q̄) + z_power√(p₁q₁ + p₂q₂))²/(p₁ − p₂)².
//! - **Non-inferiority, paired** (statistics.md §3.4): n = (z₁₋α/₂ + z_power)²·ψ/(δ + Δ)².
//!
//! All sizes are returned unrounded (f64) so callers can show "969.0"; round up with `ceil` to
//! plan. Errors for levels outside (0, 1) and non-positive effects or variances.

use super::{StatsError, check_level, norm_quantile};

/// z₁₋α/₂ + z_power for a two-sided test at `alpha`.
fn z_sum(alpha: f64, power: f64) -> Result<f64, StatsError> {
    check_level(alpha)?;
    check_level(power)?;
    Ok(norm_quantile(1.0 - alpha / 2.0) + norm_quantile(power))
}

/// Rejects non-finite or non-positive values.
fn positive(x: f64, what: &'static str) -> Result<f64, StatsError> {
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(StatsError::InvalidParameter(what))
    }
}

/// Variance components of a paired comparison (Miller 2024 §4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MillerVariance {
    /// ω² = Var(x_A) + Var(x_B) − 2Cov(x_A, x_B) of the per-task expected scores (from pilot data).
    pub omega2: f64,
    /// Within-task variance of model A's score (p(1−p) averaged over tasks for binary scores).
    pub sigma2_a: f64,
    /// Samples per task for model A.
    pub k_a: u32,
    /// Within-task variance of model B's score.
    pub sigma2_b: f64,
    /// Samples per task for model B.
    pub k_b: u32,
}

impl MillerVariance {
    /// Total per-task variance ω² + σ_A²/K_A + σ_B²/K_B.
    fn total(&self) -> Result<f64, StatsError> {
        if self.k_a == 0 || self.k_b == 0 {
            return Err(StatsError::InvalidParameter(
                "samples per task must be >= 1",
            ));
        }
        let parts = [self.omega2, self.sigma2_a, self.sigma2_b];
        if parts.iter().any(|x| !x.is_finite() || *x < 0.0) {
            return Err(StatsError::InvalidParameter(
                "variances must be finite and >= 0",
            ));
        }
        positive(
            self.omega2 + self.sigma2_a / f64::from(self.k_a) + self.sigma2_b / f64::from(self.k_b),
            "total variance",
        )
    }
}

/// Tasks needed to detect a paired difference `delta` (Miller 2024):
/// n = (z₁₋α/₂ + z_power)²·(ω² + σ_A²/K_A + σ_B²/K_B)/δ².
pub fn miller_sample_size(
    delta: f64,
    var: MillerVariance,
    alpha: f64,
    power: f64,
) -> Result<f64, StatsError> {
    let z = z_sum(alpha, power)?;
    let d = positive(delta.abs(), "delta")?;
    Ok(z * z * var.total()? / (d * d))
}

/// Minimum detectable paired difference for `n` tasks (Miller 2024):
/// δ = (z₁₋α/₂ + z_power)·√((ω² + σ_A²/K_A + σ_B²/K_B)/n).
pub fn miller_mde(n: f64, var: MillerVariance, alpha: f64, power: f64) -> Result<f64, StatsError> {
    let z = z_sum(alpha, power)?;
    Ok(z * (var.total()? / positive(n, "n")?).sqrt())
}

/// Design effect 1 + (m − 1)·ICC for clusters of `m` correlated items (m ≥ 1, ICC in [−1, 1]).
pub fn design_effect(m: f64, icc: f64) -> Result<f64, StatsError> {
    if !(m >= 1.0 && m.is_finite() && (-1.0..=1.0).contains(&icc)) {
        return Err(StatsError::InvalidParameter("cluster size or ICC"));
    }
    Ok((1.0 + (m - 1.0) * icc).max(0.0))
}

/// Paired tasks needed to detect a difference `delta` in acceptance given discordance `psi`
/// (Connor 1987): n = (z₁₋α/₂√ψ + z_power√(ψ − δ²))²/δ². Requires δ² < ψ ≤ 1.
pub fn paired_sample_size(psi: f64, delta: f64, alpha: f64, power: f64) -> Result<f64, StatsError> {
    check_level(alpha)?;
    check_level(power)?;
    let d = positive(delta.abs(), "delta")?;
    if !(psi > d * d && psi <= 1.0) {
        return Err(StatsError::InvalidParameter(
            "discordance must satisfy delta^2 < psi <= 1",
        ));
    }
    let za = norm_quantile(1.0 - alpha / 2.0);
    let zb = norm_quantile(power);
    Ok((za * psi.sqrt() + zb * (psi - d * d).sqrt()).powi(2) / (d * d))
}

/// Minimum detectable paired difference for `n` tasks at discordance `psi`: the δ solving
/// [`paired_sample_size`] = n, found by bisection on (0, √ψ).
pub fn paired_mde(n: f64, psi: f64, alpha: f64, power: f64) -> Result<f64, StatsError> {
    positive(n, "n")?;
    if !(psi > 0.0 && psi <= 1.0) {
        return Err(StatsError::InvalidParameter(
            "discordance must be in (0, 1]",
        ));
    }
    check_level(alpha)?;
    check_level(power)?;
    // Required n falls monotonically from +∞ (δ → 0) to its value at δ → √ψ.
    let (mut lo, mut hi) = (0.0, psi.sqrt());
    if paired_sample_size(psi, hi * (1.0 - 1e-12), alpha, power)? > n {
        return Err(StatsError::InvalidParameter(
            "n too small to detect any difference",
        ));
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if paired_sample_size(psi, mid, alpha, power)? > n {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

/// Tasks per provider to detect acceptance rates `p1` vs `p2` with independent samples (Fleiss
/// 2003): n = (z₁₋α/₂√(2p̄q̄) + z_power√(p₁q₁ + p₂q₂))²/(p₁ − p₂)².
pub fn unpaired_sample_size(p1: f64, p2: f64, alpha: f64, power: f64) -> Result<f64, StatsError> {
    check_level(alpha)?;
    check_level(power)?;
    if !((0.0..=1.0).contains(&p1) && (0.0..=1.0).contains(&p2)) {
        return Err(StatsError::InvalidParameter("rates must be in [0, 1]"));
    }
    let d = positive((p1 - p2).abs(), "p1 - p2")?;
    let pbar = 0.5 * (p1 + p2);
    let za = norm_quantile(1.0 - alpha / 2.0);
    let zb = norm_quantile(power);
    let a = za * (2.0 * pbar * (1.0 - pbar)).sqrt();
    let b = zb * (p1 * (1.0 - p1) + p2 * (1.0 - p2)).sqrt();
    Ok((a + b).powi(2) / (d * d))
}

/// Minimum detectable difference from baseline rate `p1` (a drop to p1 − δ) with `n` tasks per
/// provider, unpaired: the δ solving [`unpaired_sample_size`] = n, by bisection on (0, p1].
pub fn unpaired_mde(n: f64, p1: f64, alpha: f64, power: f64) -> Result<f64, StatsError> {
    positive(n, "n")?;
    if !(p1 > 0.0 && p1 <= 1.0) {
        return Err(StatsError::InvalidParameter(
            "baseline rate must be in (0, 1]",
        ));
    }
    if unpaired_sample_size(p1, 0.0, alpha, power)? > n {
        return Err(StatsError::InvalidParameter(
            "n too small to detect any drop",
        ));
    }
    let (mut lo, mut hi) = (0.0, p1);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if unpaired_sample_size(p1, p1 - mid, alpha, power)? > n {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

/// Paired tasks for a non-inferiority comparison with margin δ when the true difference is Δ
/// (p_cand − p_inc) and the discordance ψ (statistics.md §3.4): n = (z₁₋α/₂ + z_power)²·ψ/(δ + Δ)².
pub fn noninferiority_sample_size(
    psi: f64,
    true_difference: f64,
    margin: f64,
    alpha: f64,
    power: f64,
) -> Result<f64, StatsError> {
    let z = z_sum(alpha, power)?;
    let psi = positive(psi, "discordance")?;
    let gap = positive(margin + true_difference, "margin + true difference")?;
    Ok(z * z * psi / (gap * gap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(omega2: f64, s2: f64, k: u32) -> MillerVariance {
        MillerVariance {
            omega2,
            sigma2_a: s2,
            k_a: k,
            sigma2_b: s2,
            k_b: k,
        }
    }

    #[test]
    fn miller_known_answers() {
        // Miller (2024), via statistics.md §3.1 [C]: δ = 0.03, ω² = 1/9, α = .05, power .8 → 969.0
        // (no within-task term: next-token probabilities, or K → ∞).
        let n = miller_sample_size(0.03, var(1.0 / 9.0, 0.0, 1), 0.05, 0.8).unwrap();
        assert!((n - 969.0).abs() < 0.5, "{n}");
        assert_eq!(format!("{n:.1}"), "969.0");
        // n = 198, σ² = 1/6 per model: MDE 13.27% at K = 1 and 7.57% at K = 10 (paper: 13.2%, 7.5%).
        let k1 = miller_mde(198.0, var(1.0 / 9.0, 1.0 / 6.0, 1), 0.05, 0.8).unwrap();
        let k10 = miller_mde(198.0, var(1.0 / 9.0, 1.0 / 6.0, 10), 0.05, 0.8).unwrap();
        assert!((k1 - 0.1327).abs() < 5e-5, "{k1}");
        assert!((k10 - 0.0757).abs() < 5e-5, "{k10}");
        // Inverse consistency.
        let back = miller_sample_size(k1, var(1.0 / 9.0, 1.0 / 6.0, 1), 0.05, 0.8).unwrap();
        assert!((back - 198.0).abs() < 1e-6);
    }

    #[test]
    fn clustering_inflates_n() {
        let n = miller_sample_size(0.03, var(1.0 / 9.0, 0.0, 1), 0.05, 0.8).unwrap();
        let deff = design_effect(5.0, 0.2).unwrap();
        assert!((deff - 1.8).abs() < 1e-12);
        assert!((n * deff - 1744.2).abs() < 0.5);
        assert!(design_effect(0.5, 0.1).is_err());
    }

    #[test]
    fn paired_binary_known_answers() {
        // Connor (1987): ψ = 0.2, δ = 0.05, α = .05, power .8:
        // (1.959964·√0.2 + 0.841621·√0.1975)²/0.0025 = 625.55 (checked with scipy.stats.norm).
        let n = paired_sample_size(0.2, 0.05, 0.05, 0.8).unwrap();
        assert!((n - 625.547).abs() < 1e-3, "{n}");
        let mde = paired_mde(n, 0.2, 0.05, 0.8).unwrap();
        assert!((mde - 0.05).abs() < 1e-9);
        assert!(paired_sample_size(0.001, 0.05, 0.05, 0.8).is_err());
    }

    #[test]
    fn unpaired_known_answer() {
        // Fleiss without continuity correction, p1 = .85, p2 = .75:
        // (1.959964·√0.32 + 0.841621·√0.315)²/0.01 = 249.98 per group (checked with scipy).
        let n = unpaired_sample_size(0.85, 0.75, 0.05, 0.8).unwrap();
        assert!((n - 249.982).abs() < 1e-3, "{n}");
        let mde = unpaired_mde(n, 0.85, 0.05, 0.8).unwrap();
        assert!((mde - 0.10).abs() < 1e-9, "{mde}");
        // Pairing helps: with 20% discordance the same 10 points need far fewer tasks.
        assert!(paired_sample_size(0.2, 0.10, 0.05, 0.8).unwrap() < n);
    }

    #[test]
    fn noninferiority_planning() {
        // ψ = 0.13, Δ = 0, δ = 0.05: 7.848879·0.13/0.0025 ≈ 408.1.
        let n = noninferiority_sample_size(0.13, 0.0, 0.05, 0.05, 0.8).unwrap();
        assert!((n - 408.14).abs() < 0.05, "{n}");
        assert!(noninferiority_sample_size(0.13, -0.05, 0.05, 0.05, 0.8).is_err());
    }

    #[test]
    fn invalid_levels() {
        assert!(miller_sample_size(0.03, var(0.1, 0.0, 1), 0.0, 0.8).is_err());
        assert!(miller_sample_size(0.0, var(0.1, 0.0, 1), 0.05, 0.8).is_err());
        assert!(miller_mde(0.0, var(0.1, 0.0, 1), 0.05, 0.8).is_err());
        assert!(miller_mde(100.0, var(0.1, 0.1, 0), 0.05, 0.8).is_err());
        assert!(unpaired_sample_size(0.5, 0.5, 0.05, 0.8).is_err());
    }
}
