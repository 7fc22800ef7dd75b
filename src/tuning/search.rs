//! How the next trial's hyperparameters are chosen (CONTRACT-training C.3).
//!
//! - **Random**: every coordinate drawn uniformly in [0, 1] (so values are uniform in the
//!   range's own scaling), each trial independently.
//! - **Grid**: every combination of the categorical values, in order.
//! - **Bayesian**: Bayesian optimisation with a Gaussian process. SageMaker does not publish
//!   its method; this one is stated here so that nobody mistakes it for SageMaker's: the
//!   first trials (three, or fewer when the job runs fewer) are drawn at random; after that
//!   a Gaussian process with a squared-exponential kernel (length scale 0.3 on the unit
//!   cube, noise 1e-4, objective values standardised) is fitted to the finished trials, and
//!   the next point is the one of 2,000 random candidates with the highest expected
//!   improvement (ξ = 0.01). Trials still running count at the mean of those finished
//!   ("constant liar"), so parallel trials spread out.
//!
//! A seeded generator (SplitMix64) makes a tuning job's choices repeatable from its
//! RandomSeed.

use std::collections::BTreeMap;

use super::space::Space;

/// HyperParameterTuningJobStrategyType, as far as sagedock runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Random,
    Grid,
    Bayesian,
}

/// Hyperparameter values by name.
pub type Values = BTreeMap<String, String>;

/// SplitMix64: small, fast, and good enough to spread trials.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Chooses trials for one tuning job.
#[derive(Debug, Clone)]
pub struct Searcher {
    space: Space,
    strategy: Strategy,
    rng: Rng,
    /// Grid: the next combination to hand out.
    next_in_grid: usize,
    /// Bayesian: how many trials are drawn at random first.
    initial: usize,
}

impl Searcher {
    /// `max_jobs` bounds the random start of the Bayesian strategy.
    pub fn new(space: Space, strategy: Strategy, seed: u64, max_jobs: usize) -> Searcher {
        Searcher {
            space,
            strategy,
            rng: Rng::new(seed),
            next_in_grid: 0,
            initial: 3.min(max_jobs.saturating_sub(1)).max(1),
        }
    }

    /// The next trial's values: `done` are the finished trials with their objective (larger
    /// is better), `pending` the running ones. None when the grid is exhausted.
    pub fn next(&mut self, done: &[(Values, f64)], pending: &[Values]) -> Option<Values> {
        match self.strategy {
            Strategy::Grid => {
                let grid = self.space.grid()?;
                let values = grid.get(self.next_in_grid)?.clone();
                self.next_in_grid += 1;
                Some(values)
            }
            Strategy::Random => Some(self.random()),
            Strategy::Bayesian => {
                if done.len() < self.initial {
                    return Some(self.random());
                }
                Some(self.expected_improvement(done, pending))
            }
        }
    }

    fn random_point(&mut self) -> Vec<f64> {
        (0..self.space.ranges.len())
            .map(|_| self.rng.unit())
            .collect()
    }

    fn random(&mut self) -> Values {
        let point = self.random_point();
        self.space.values_at(&point)
    }

    fn expected_improvement(&mut self, done: &[(Values, f64)], pending: &[Values]) -> Values {
        let mut points: Vec<Vec<f64>> = Vec::new();
        let mut ys: Vec<f64> = Vec::new();
        for (values, y) in done {
            if let Some(p) = self.space.point_of(values) {
                points.push(p);
                ys.push(*y);
            }
        }
        if points.is_empty() {
            return self.random();
        }
        let mean = ys.iter().sum::<f64>() / ys.len() as f64;
        for values in pending {
            if let Some(p) = self.space.point_of(values) {
                points.push(p);
                ys.push(mean);
            }
        }
        let Some(gp) = Gp::fit(&points, &ys) else {
            return self.random();
        };
        let best = gp.best;
        let mut chosen = self.random_point();
        let mut chosen_ei = f64::NEG_INFINITY;
        for _ in 0..2000 {
            let candidate = self.random_point();
            let (mu, sigma) = gp.predict(&candidate);
            let ei = expected_improvement(mu, sigma, best, 0.01);
            if ei > chosen_ei {
                chosen_ei = ei;
                chosen = candidate;
            }
        }
        self.space.values_at(&chosen)
    }
}

fn expected_improvement(mu: f64, sigma: f64, best: f64, xi: f64) -> f64 {
    if sigma <= 1e-12 {
        return (mu - best - xi).max(0.0);
    }
    let z = (mu - best - xi) / sigma;
    (mu - best - xi) * normal_cdf(z) + sigma * normal_pdf(z)
}

fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Φ(z) through erf (Abramowitz and Stegun 7.1.26, error below 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    0.5 * (1.0 + if x >= 0.0 { erf } else { -erf })
}

/// A Gaussian process over the unit cube, fitted to standardised observations.
struct Gp {
    points: Vec<Vec<f64>>,
    /// K⁻¹ y.
    alpha: Vec<f64>,
    /// The Cholesky factor of K (lower).
    chol: Vec<Vec<f64>>,
    /// The best standardised observation.
    best: f64,
}

const LENGTH_SCALE: f64 = 0.3;
const NOISE: f64 = 1e-4;

fn kernel(a: &[f64], b: &[f64]) -> f64 {
    let d2: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    (-d2 / (2.0 * LENGTH_SCALE * LENGTH_SCALE)).exp()
}

impl Gp {
    fn fit(points: &[Vec<f64>], ys: &[f64]) -> Option<Gp> {
        let n = points.len();
        let mean = ys.iter().sum::<f64>() / n as f64;
        let var = ys.iter().map(|y| (y - mean) * (y - mean)).sum::<f64>() / n as f64;
        let std = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
        let y: Vec<f64> = ys.iter().map(|v| (v - mean) / std).collect();
        let mut k = vec![vec![0.0; n]; n];
        for i in 0..n {
            for j in 0..n {
                k[i][j] = kernel(&points[i], &points[j]) + if i == j { NOISE } else { 0.0 };
            }
        }
        let chol = cholesky(&k)?;
        let alpha = solve_upper_t(&chol, &solve_lower(&chol, &y));
        let best = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Gp {
            points: points.to_vec(),
            alpha,
            chol,
            best,
        })
    }

    /// Mean and standard deviation at `x`.
    fn predict(&self, x: &[f64]) -> (f64, f64) {
        let k: Vec<f64> = self.points.iter().map(|p| kernel(p, x)).collect();
        let mu = k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let v = solve_lower(&self.chol, &k);
        let var = (1.0 - v.iter().map(|x| x * x).sum::<f64>()).max(0.0);
        (mu, var.sqrt())
    }
}

fn cholesky(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = a[i][i] - sum;
                if d <= 0.0 {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - sum) / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solves L x = b.
fn solve_lower(l: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let mut x = vec![0.0; b.len()];
    for i in 0..b.len() {
        let sum: f64 = (0..i).map(|k| l[i][k] * x[k]).sum();
        x[i] = (b[i] - sum) / l[i][i];
    }
    x
}

/// Solves Lᵀ x = b.
fn solve_upper_t(l: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let sum: f64 = (i + 1..n).map(|k| l[k][i] * x[k]).sum();
        x[i] = (b[i] - sum) / l[i][i];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::super::space::Range;
    use super::*;

    fn space() -> Space {
        Space {
            ranges: vec![Range::continuous("x", "0", "1", None).unwrap()],
        }
    }

    #[test]
    fn random_trials_cover_the_range_and_repeat_from_their_seed() {
        let mut a = Searcher::new(space(), Strategy::Random, 7, 50);
        let mut b = Searcher::new(space(), Strategy::Random, 7, 50);
        let xs: Vec<f64> = (0..200)
            .map(|_| a.next(&[], &[]).unwrap()["x"].parse().unwrap())
            .collect();
        let ys: Vec<f64> = (0..200)
            .map(|_| b.next(&[], &[]).unwrap()["x"].parse().unwrap())
            .collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().any(|x| *x < 0.1) && xs.iter().any(|x| *x > 0.9));
    }

    #[test]
    fn bayesian_search_finds_the_peak_faster_than_chance() {
        // Objective: -(x - 0.73)^2, peak at 0.73. After 3 random trials, each proposal is
        // observed; within 12 trials the best should be within 0.03 of the peak.
        let mut searcher = Searcher::new(space(), Strategy::Bayesian, 11, 12);
        let mut done: Vec<(Values, f64)> = Vec::new();
        for _ in 0..12 {
            let values = searcher.next(&done, &[]).unwrap();
            let x: f64 = values["x"].parse().unwrap();
            done.push((values, -(x - 0.73) * (x - 0.73)));
        }
        let best = done
            .iter()
            .map(|(v, _)| v["x"].parse::<f64>().unwrap())
            .min_by(|a, b| (a - 0.73).abs().total_cmp(&(b - 0.73).abs()))
            .unwrap();
        assert!((best - 0.73).abs() < 0.03, "best x {best}");
    }

    #[test]
    fn the_grid_runs_out() {
        let space = Space {
            ranges: vec![Range::categorical("c", &["a".into(), "b".into()]).unwrap()],
        };
        let mut s = Searcher::new(space, Strategy::Grid, 0, 2);
        assert_eq!(s.next(&[], &[]).unwrap()["c"], "a");
        assert_eq!(s.next(&[], &[]).unwrap()["c"], "b");
        assert!(s.next(&[], &[]).is_none());
    }

    #[test]
    fn the_normal_cdf_is_accurate() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(-1.0) - 0.158_655_25).abs() < 1e-6);
    }
}
