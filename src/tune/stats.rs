//! Small statistics for timing samples: medians, spreads and the confidence interval of a
//! median from order statistics (no distribution assumed: timing noise is skewed).

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Median absolute deviation over the median, scaled by 1.4826 (the MAD of normal data
/// times that is its σ): a robust relative spread in the units of a standard deviation.
pub fn relative_mad(v: &[f64]) -> f64 {
    let m = median(v);
    if v.len() < 2 || m == 0.0 {
        return 0.0;
    }
    let dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    1.4826 * median(&dev) / m
}

/// ~99 % confidence interval of the median: the order statistics at n/2 ∓ 1.29·√n
/// (normal approximation of the binomial, z = 2.58). With few samples it widens to
/// [min, max]: with 9 samples, all of them must lie on one side to exclude a value.
pub fn median_ci(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let half = 1.29 * (n as f64).sqrt();
    let lo = ((n as f64 / 2.0 - half).floor().max(0.0) as usize).min(n - 1);
    let hi = ((n as f64 / 2.0 + half).ceil() as usize).min(n - 1);
    (s[lo], s[hi])
}

/// Whether an A/B of candidate/default time ratios should go on: the median says the
/// candidate gains more than `min_gain` but the interval still reaches 1 (with 9 pairs it is
/// [min, max], so one disturbed pair hides any gain). More pairs narrow it.
pub fn undecided(ratios: &[f64], min_gain: f64) -> bool {
    median(ratios) < 1.0 - min_gain && median_ci(ratios).1 >= 1.0
}

pub fn geomean(v: impl IntoIterator<Item = f64>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for x in v {
        sum += x.ln();
        n += 1;
    }
    if n == 0 {
        f64::NAN
    } else {
        (sum / n as f64).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_intervals() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let v: Vec<f64> = (1..=21).map(|i| i as f64).collect();
        let (lo, hi) = median_ci(&v);
        assert!(lo < 11.0 && hi > 11.0 && lo >= 4.0 && hi <= 18.0, "{lo} {hi}");
        assert_eq!(median_ci(&[2.0, 1.0]), (1.0, 2.0));
        assert!((geomean([1.0, 4.0]) - 2.0).abs() < 1e-12);
        assert_eq!(relative_mad(&[1.0, 1.0, 1.0]), 0.0);
        assert!(relative_mad(&[1.0, 1.1, 0.9, 1.0]) > 0.0);
    }

    #[test]
    fn an_ab_with_one_disturbed_pair_is_undecided_until_more_pairs_come() {
        // The H200 lm_head case: a 5 % gain, one pair of nine above 1.
        let mut r = vec![0.95, 0.94, 0.96, 0.95, 0.94, 0.95, 0.96, 0.95, 1.02];
        assert!(undecided(&r, 0.01));
        r.extend([0.95, 0.94, 0.96, 0.95, 0.95, 0.94, 0.96, 0.95, 0.95, 0.96, 0.94, 0.95]);
        assert!(!undecided(&r, 0.01), "21 pairs: the interval excludes 1");
        // Nothing to resolve: a clear win, a median within min_gain, a clear loss.
        assert!(!undecided(&[0.95; 9], 0.01));
        assert!(!undecided(&[0.995, 0.99, 1.0, 0.995, 1.01, 0.995, 0.99, 1.0, 0.995], 0.01));
        assert!(!undecided(&[1.05; 9], 0.01));
    }
}
