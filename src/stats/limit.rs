//! The normal limit of a task bootstrap's sums, for resampling large runs cheaply.
//!
//! A bootstrap resample of k tasks weighs task t by wₜ ~ Multinomial(k, 1/k), so a feature's
//! resampled sum is Σ wₜ·xₜ. Over many features these sums have mean k·x̄ and covariance k·Σ,
//! with Σ the features' covariance across tasks (divided by k), and by the central limit theorem
//! they are jointly normal as k grows. Drawing them from that normal costs O(d²) per resample
//! instead of O(k·d): at a few hundred thousand tasks, a thousand resamples take milliseconds
//! instead of seconds. Statistics that are functions of the sums (ratios, rates, a comparison
//! between candidates) are then computed on each draw exactly as on a bootstrap resample.

use super::rng::Rng;
use rayon::prelude::*;

/// Tasks per parallel chunk when summing the covariance.
const CHUNK: usize = 4096;

/// The joint normal limit of the resampled sums of some per-task features.
#[derive(Debug, Clone)]
pub struct SumsLimit {
    /// k·x̄ per feature: the sums over all tasks.
    center: Vec<f64>,
    /// Lower-triangular factor (row-major d×d) of k·Σ.
    factor: Vec<f64>,
}

impl SumsLimit {
    /// The limit of `features` (each one value per task, all of the same length).
    pub fn of(features: &[&[f64]]) -> SumsLimit {
        let d = features.len();
        let k = features.iter().map(|f| f.len()).min().unwrap_or(0);
        let center: Vec<f64> = features.iter().map(|f| f[..k].iter().sum()).collect();
        let mean: Vec<f64> = center.iter().map(|s| s / k.max(1) as f64).collect();
        // Σₜ (xₜ − x̄)(xₜ − x̄)ᵀ, lower triangle, in parallel chunks of tasks. This is k·Σ.
        let scatter = (0..k.div_ceil(CHUNK))
            .into_par_iter()
            .map(|c| {
                let mut s = vec![0.0; d * d];
                let mut x = vec![0.0; d];
                for t in c * CHUNK..((c + 1) * CHUNK).min(k) {
                    for (j, f) in features.iter().enumerate() {
                        x[j] = f[t] - mean[j];
                    }
                    for i in 0..d {
                        for j in 0..=i {
                            s[i * d + j] += x[i] * x[j];
                        }
                    }
                }
                s
            })
            .reduce(
                || vec![0.0; d * d],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                    a
                },
            );
        SumsLimit {
            center,
            factor: psd_factor(&scatter, d),
        }
    }

    /// One draw of every feature's resampled sum.
    pub fn draw(&self, rng: &mut Rng) -> Vec<f64> {
        let d = self.center.len();
        let z: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        (0..d)
            .map(|i| {
                let row = &self.factor[i * d..i * d + i + 1];
                self.center[i] + row.iter().zip(&z).map(|(l, z)| l * z).sum::<f64>()
            })
            .collect()
    }
}

/// A lower-triangular L with L·Lᵀ = `a` for a positive semi-definite `a` (row-major d×d, lower
/// triangle read). Features are often exactly dependent (a constant, or a cascade's cost that
/// equals a provider's), so a pivot that vanishes up to rounding leaves its column zero rather
/// than failing as a plain Cholesky would.
fn psd_factor(a: &[f64], d: usize) -> Vec<f64> {
    let mut l = vec![0.0; d * d];
    for j in 0..d {
        let row_j: f64 = l[j * d..j * d + j].iter().map(|x| x * x).sum();
        let pivot = a[j * d + j] - row_j;
        // What is left of the feature's variance once the earlier features explain theirs.
        if pivot <= 1e-10 * a[j * d + j] {
            continue;
        }
        let r = pivot.sqrt();
        l[j * d + j] = r;
        for i in j + 1..d {
            let dot: f64 = (0..j).map(|m| l[i * d + m] * l[j * d + m]).sum();
            l[i * d + j] = (a[i * d + j] - dot) / r;
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factor_rebuilds_a_covariance_with_a_dependent_and_a_constant_feature() {
        // x, 2x (dependent), a constant, and y.
        let x: Vec<f64> = (0..50).map(|t| f64::from(t % 7)).collect();
        let x2: Vec<f64> = x.iter().map(|v| 2.0 * v).collect();
        let one = vec![1.0; 50];
        let y: Vec<f64> = (0..50).map(|t| f64::from((t * 13) % 11)).collect();
        let feats: [&[f64]; 4] = [&x, &x2, &one, &y];
        let lim = SumsLimit::of(&feats);
        let d = 4;
        let mean = |f: &[f64]| f.iter().sum::<f64>() / 50.0;
        for i in 0..d {
            for j in 0..=i {
                let (mi, mj) = (mean(feats[i]), mean(feats[j]));
                let want: f64 = (0..50)
                    .map(|t| (feats[i][t] - mi) * (feats[j][t] - mj))
                    .sum();
                let got: f64 = (0..d)
                    .map(|m| lim.factor[i * d + m] * lim.factor[j * d + m])
                    .sum();
                assert!(
                    (want - got).abs() <= 1e-9 * want.abs().max(1.0),
                    "({i},{j}): {got} vs {want}"
                );
            }
        }
        // The constant's sum never moves; the dependent feature moves exactly twice as far.
        let mut rng = Rng::new(7);
        for _ in 0..20 {
            let s = lim.draw(&mut rng);
            assert_eq!(s[2], 50.0);
            assert!((s[1] - 2.0 * s[0]).abs() < 1e-9, "{s:?}");
        }
    }

    #[test]
    fn draws_match_the_multinomial_bootstraps_mean_and_spread() {
        // A skewed feature over 2,000 tasks: the normal draws' sums and the multinomial
        // resamples' sums agree in mean and standard deviation.
        let k = 2000;
        let f: Vec<f64> = (0..k).map(|t| ((t * 37) % 101) as f64 / 10.0).collect();
        let lim = SumsLimit::of(&[&f]);
        let (b, mut rng) = (4000, Rng::new(11));
        let normal: Vec<f64> = (0..b).map(|_| lim.draw(&mut rng)[0]).collect();
        let boot: Vec<f64> = (0..b)
            .map(|_| (0..k).map(|_| f[rng.index(k)]).sum())
            .collect();
        let moments = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
            (m, s)
        };
        let ((mn, sn), (mb, sb)) = (moments(&normal), moments(&boot));
        assert!((mn - mb).abs() < 0.1 * sb, "means {mn} vs {mb} (sd {sb})");
        assert!((sn / sb - 1.0).abs() < 0.06, "sds {sn} vs {sb}");
    }
}
