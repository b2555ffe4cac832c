//! The regression gate of `bench`: a shape fails when its tuned kernel became slower than
//! a baseline report by more than the allowed regression beyond the measured noise, or
//! when the tuned kernel is slower than the default by more than the allowed staleness
//! beyond noise (the table is stale).

use crate::bench::{BenchReport, ShapeBench};
use serde::{Deserialize, Serialize};

/// What is compared with the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// The tuned kernel's absolute time (same machine, quiet conditions).
    Time,
    /// The tuned/default speedup measured within one run: robust to a machine that is
    /// uniformly slower or faster (noisy CI machines).
    Speedup,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub problem: String,
    /// "regression" or "stale".
    pub kind: String,
    /// How much worse, in percent.
    pub change_pct: f64,
    /// Allowed change (threshold plus noise), in percent.
    pub allowed_pct: f64,
    pub detail: String,
}

/// Checks `current` (and against `baseline` when given). `max_regression` and `max_stale`
/// are fractions: a tuned kernel may be up to `max_stale` slower than the default (beyond
/// noise) before the table counts as stale. Why a tolerance: the tuner keeps a winner only
/// when it beat the default beyond noise, yet on the H200 a cuBLASLt algorithm that beat
/// cuBLAS by 1.7 % (interval 1.5-1.9 %) in `tune` came out 0.5 % slower in the `bench` run
/// that followed, on a 400 us prefill GEMM: a systematic difference between the two runs
/// (clocks under sustained load) that no noise estimate of either covers.
pub fn check(current: &BenchReport, baseline: Option<&BenchReport>, max_regression: f64, max_stale: f64, metric: Metric) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in &current.shapes {
        if s.speedup_hi < 1.0 - max_stale {
            out.push(Finding {
                problem: s.problem.clone(),
                kind: "stale".into(),
                change_pct: (1.0 / s.speedup - 1.0) * 100.0,
                allowed_pct: max_stale * 100.0,
                detail: format!(
                    "tuned kernel {} is slower than the default ({:.3}x, interval {:.3}..{:.3}; {:.1}% allowed): re-tune",
                    s.kernels[0].kernel,
                    s.speedup,
                    s.speedup_lo,
                    s.speedup_hi,
                    max_stale * 100.0
                ),
            });
        }
        let Some(base) = baseline.and_then(|b| b.shapes.iter().find(|x| x.problem == s.problem)) else { continue };
        let change = change(metric, s, base);
        let (noise, what) = match metric {
            Metric::Time => (
                (s.kernels[0].noise_pct + base.kernels[0].noise_pct) / 100.0,
                format!("tuned {:.2} us, baseline {:.2} us", tuned_us(s), tuned_us(base)),
            ),
            Metric::Speedup => (
                BenchReport::speedup_noise(s) + BenchReport::speedup_noise(base),
                format!("speedup over the default {:.3}x, baseline {:.3}x", s.speedup, base.speedup),
            ),
        };
        let allowed = max_regression + noise;
        if change > allowed {
            out.push(Finding {
                problem: s.problem.clone(),
                kind: "regression".into(),
                change_pct: change * 100.0,
                allowed_pct: allowed * 100.0,
                detail: format!("{what}: {:.1}% worse, {:.1}% allowed", change * 100.0, allowed * 100.0),
            });
        }
    }
    out
}

/// How much worse shape `now` is than `base` in `metric`, as a fraction (+ = worse): the
/// tuned time's change, or the speedup's (`base / now − 1`).
pub fn change(metric: Metric, now: &ShapeBench, base: &ShapeBench) -> f64 {
    match metric {
        Metric::Time => tuned_us(now) / tuned_us(base) - 1.0,
        Metric::Speedup => base.speedup / now.speedup - 1.0,
    }
}

fn tuned_us(s: &ShapeBench) -> f64 {
    s.kernels[0].median_us
}

/// How many shapes the findings are about (a shape may have several).
pub fn failing_shapes(findings: &[Finding]) -> usize {
    findings.iter().map(|f| &f.problem).collect::<std::collections::BTreeSet<_>>().len()
}

/// Parses a percentage ("5%", "2.5 %") into a fraction; the % is required.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    // The % is required: a bare "1" (1 %?) and "0.99" (99 %?) read opposite ways.
    let t = s.trim().strip_suffix('%').ok_or_else(|| format!("'{s}' is not a percentage: write it with %, e.g. 5%"))?;
    let v: f64 = t.trim().parse().map_err(|_| format!("'{s}' is not a percentage"))?;
    let f = v / 100.0;
    if !(0.0..10.0).contains(&f) {
        return Err(format!("'{s}' is out of range (0% to under 1000%)"));
    }
    Ok(f)
}
