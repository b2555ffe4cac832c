//! Re-timing of a table's winners against the default and each library, with the
//! device limits (compute peak and copy bandwidth) measured in the same run.
//!
//! For each problem the kernels are timed in interleaved rounds (every kernel once per
//! round, the order rotating), so drift and frequency changes hit all of them alike;
//! the tuned/default speedup is the median of per-round ratios with its ~99 % interval.

use crate::backend::{Backend, ClockSettling, KernelId};
use crate::error::Result;
use crate::problem::Problem;
use crate::tune::guard::guarded;
use crate::tune::{rotating_sets, stats, TuneConfig};
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    /// FLOP/s on `peak_problem` sustained: the best library kernel's `sustain_calls`
    /// back-to-back calls from rest, one sample (the compute roof of every % of
    /// roofline). A GPU reaches its power cap within ~50 ms of a large GEMM and runs
    /// slower from then on (H200: 783 TFLOP/s in the first 50 ms, 672 at 0.1-0.5 s, 656
    /// after 3 s; docs/PERFORMANCE.md, twelfth session); prefill rows are timed over
    /// hundreds of ms, mostly in that state.
    pub peak_flops: f64,
    /// Best FLOP/s of a few samples of a burst (rested device): the roof before the
    /// power cap, reported beside the sustained one.
    #[serde(default)]
    pub burst_flops: f64,
    /// Calls in the sustained sample (0: `peak_flops` is the burst figure).
    #[serde(default)]
    pub sustain_calls: usize,
    pub peak_kernel: String,
    pub peak_problem: String,
    /// Copy bandwidth, bytes/s (read + write).
    pub bandwidth: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KernelTiming {
    /// "tuned", "default" or the library family.
    pub role: String,
    pub kernel: String,
    pub median_us: f64,
    pub noise_pct: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShapeBench {
    pub problem: String,
    pub dtype: String,
    pub layout: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub phase: String,
    /// How the tuned kernel was found: exact, bucket or default.
    pub source: String,
    pub kernels: Vec<KernelTiming>,
    /// Default time over tuned time (median of per-round ratios) and its interval.
    pub speedup: f64,
    pub speedup_lo: f64,
    pub speedup_hi: f64,
    /// Roofline floor over the tuned time.
    pub roofline_pct: f64,
    pub bound: String,
}

impl ShapeBench {
    /// The default kernel's median time: its own entry, or the tuned kernel's when the
    /// table's choice is the default (then timed once).
    pub fn default_us(&self) -> f64 {
        self.default_timing().map_or(f64::NAN, |k| k.median_us)
    }

    /// The default kernel's entry of `kernels` (the tuned one's when they are the same).
    pub fn default_timing(&self) -> Option<&KernelTiming> {
        self.kernels.iter().find(|k| k.role == "default").or(self.kernels.first())
    }

    /// The default kernel's % of the roofline, from its own measured time.
    pub fn default_roofline_pct(&self) -> f64 {
        self.roofline_pct * self.kernels.first().map_or(f64::NAN, |k| k.median_us) / self.default_us()
    }

    /// The problem this row names (None when its fields do not make one).
    pub fn to_problem(&self) -> Option<Problem> {
        let (dtype, wformat) = crate::problem::parse_types(&self.dtype).ok()?;
        Problem::new(dtype, self.layout.parse().ok()?, self.m, self.n, self.k, self.batch).and_then(|p| p.with_weights(wformat)).ok()
    }
}

/// Version of the JSON report schema (docs/bench-report.md).
pub const SCHEMA: &str = "gemmtune-bench/1";

/// A whole bench run: what `--format json` writes and `--baseline` reads.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BenchReport {
    pub schema: String,
    pub gemmtune: String,
    pub backend: String,
    pub device: String,
    /// RFC 3339 time of the run.
    pub created: String,
    pub limits: Limits,
    /// Our kernels were launched chained (`--pdl`: programmatic dependent launch), as the
    /// GPU runtime launches them; library kernels never are.
    #[serde(default)]
    pub pdl: bool,
    /// Timed on one operand set, weights cache-resident (`--hot`, a diagnostic).
    #[serde(default)]
    pub hot: bool,
    pub shapes: Vec<ShapeBench>,
}

impl BenchReport {
    pub fn load(path: &std::path::Path) -> crate::error::Result<BenchReport> {
        use crate::error::Error;
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read bench report", e))?;
        let r: BenchReport = serde_json::from_str(&text)
            .map_err(|e| Error::input(format!("{}:{}: not a bench report: {e}", path.display(), e.line())))?;
        if r.schema != SCHEMA {
            return Err(Error::input(format!("{}: schema '{}' is not '{SCHEMA}'", path.display(), r.schema)));
        }
        // What the gate and the reports read of every shape, checked now rather than met
        // as a panic after a whole run.
        let mut seen = std::collections::HashSet::new();
        for (i, x) in r.shapes.iter().enumerate() {
            let bad = |why: &str| Error::input(format!("{}: shapes[{i}] ({}): {why}", path.display(), x.problem));
            let ok_time = |t: f64| t.is_finite() && t > 0.0;
            if x.kernels.first().is_none_or(|k| k.role != "tuned") {
                return Err(bad("'kernels' must start with the tuned kernel's timing (role \"tuned\")"));
            }
            if x.kernels.iter().any(|k| !ok_time(k.median_us) || !k.noise_pct.is_finite() || k.noise_pct < 0.0) {
                return Err(bad("every timing needs a positive median_us and a noise_pct of 0 or more"));
            }
            if !ok_time(x.default_us()) || !ok_time(x.speedup) {
                return Err(bad("needs a positive default time and speedup"));
            }
            // The gate compares shape by shape: two entries of one would be two verdicts.
            if !seen.insert(&x.problem) {
                return Err(bad("the shape is listed twice"));
            }
        }
        Ok(r)
    }

    /// Half-width of the speedup interval relative to the speedup.
    pub fn speedup_noise(s: &ShapeBench) -> f64 {
        if s.speedup > 0.0 {
            (s.speedup_hi - s.speedup_lo) / 2.0 / s.speedup
        } else {
            0.0
        }
    }
}

pub fn measure_limits<B: Backend>(b: &B, cfg: &TuneConfig, settling: ClockSettling) -> Result<Limits> {
    let p = b.peak_problem();
    let mut sets = rotating_sets(b, &p, &TuneConfig { cache_factor: 0.0, ..cfg.clone() })?;
    // Copy bandwidth first, on a rested device, as the decode rows are timed (bench
    // settles before each shape).
    let bandwidth = b.measure_bandwidth()?;
    let mut best: Option<(f64, KernelId, B::Kernel)> = None;
    for id in b.library_kernels(&p) {
        let Ok(k) = b.resolve(&p, &id) else { continue };
        let _ = guarded(|| b.time(&k, &p, &mut sets, 1)); // warm-up
        let mut t = Vec::new();
        for _ in 0..5 {
            if let Ok(s) = guarded(|| b.time(&k, &p, &mut sets, 1)) {
                t.push(s);
            }
        }
        if t.is_empty() {
            continue; // every sample failed: this kernel measures nothing
        }
        let m = t.iter().copied().fold(f64::MAX, f64::min);
        if best.as_ref().is_none_or(|b| m < b.0) {
            best = Some((m, id, k));
        }
    }
    let Some((burst_t, id, k)) = best else {
        return Err(crate::error::Error::runtime(format!("no library kernel ran the peak problem {p}")));
    };
    // The sustained sample, from rest as the shapes are timed.
    let sustained_t = if settling.sustain_calls > 0 {
        std::thread::sleep(settling.settle);
        guarded(|| b.time(&k, &p, &mut sets, settling.sustain_calls))
            .map_err(|e| crate::error::Error::runtime(format!("{p}: {id}: {e}")))?
    } else {
        burst_t
    };
    Ok(Limits {
        peak_flops: p.flops() / sustained_t,
        burst_flops: p.flops() / burst_t,
        sustain_calls: settling.sustain_calls,
        peak_kernel: id.to_string(),
        peak_problem: p.to_string(),
        bandwidth,
    })
}

impl Limits {
    /// One line for the console: the sustained roof, the burst one, the bandwidth.
    pub fn describe(&self) -> String {
        let peak = if self.sustain_calls > 0 {
            format!(
                "peak {:.1} GFLOP/s sustained over {} calls (burst {:.1})",
                self.peak_flops / 1e9,
                self.sustain_calls,
                self.burst_flops / 1e9
            )
        } else {
            format!("peak {:.1} GFLOP/s", self.peak_flops / 1e9)
        };
        format!("{peak} ({} on {}), copy bandwidth {:.1} GB/s", self.peak_kernel, self.peak_problem, self.bandwidth / 1e9)
    }
}

/// Benchmarks one problem: `tuned` (with how it was found) against the default and the
/// backend's library kernels.
pub fn bench_problem<B: Backend>(
    b: &B,
    p: &Problem,
    phase: &str,
    tuned: (&KernelId, &str),
    limits: &Limits,
    cfg: &TuneConfig,
) -> Result<ShapeBench> {
    // When the tuned kernel is the default, it is timed once and the speedup is exactly 1.
    let default = b.default_kernel(p);
    let same = *tuned.0 == default;
    let mut roles: Vec<(String, KernelId)> = vec![("tuned".into(), tuned.0.clone())];
    if !same {
        roles.push(("default".into(), default));
    }
    for id in b.library_kernels(p) {
        if !roles.iter().any(|(_, k)| *k == id) {
            roles.push((id.family().to_string(), id));
        }
    }
    let mut kernels = Vec::new();
    for (role, id) in &roles {
        kernels.push((role.clone(), id.clone(), b.resolve(p, id)?));
    }
    let mut sets = rotating_sets(b, p, cfg)?;
    let mut calls = Vec::new();
    for (_, id, k) in &kernels {
        let t = guarded(|| {
            b.time(k, p, &mut sets, 1)?;
            b.time(k, p, &mut sets, 1)
        })
        .map_err(|e| crate::error::Error::runtime(format!("{p}: {id}: {e}")))?;
        calls.push(((b.min_sample().as_secs_f64() / t.max(1e-9)).ceil() as usize).clamp(1, 100_000));
    }
    let n = kernels.len();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n];
    let start = Instant::now();
    for round in 0..41 {
        for j in 0..n {
            let i = (j + round) % n;
            let t = guarded(|| b.time(&kernels[i].2, p, &mut sets, calls[i]))
                .map_err(|e| crate::error::Error::runtime(format!("{p}: {}: {e}", kernels[i].1)))?;
            samples[i].push(t);
        }
        // At least 8 rounds: with fewer, the speedup's interval is [min, max] of the
        // rounds, which covers the median only 1 - 2^(1-n) of the time (94 % at 5), and
        // the stale check would flag shapes on that weaker evidence.
        if round >= 7 && start.elapsed() > cfg.budget {
            break;
        }
    }
    if same {
        let s = samples[0].clone();
        samples.insert(1, s);
        let (id, k) = (kernels[0].1.clone(), kernels[0].0.clone());
        let _ = k;
        kernels.insert(1, ("default".into(), id.clone(), b.resolve(p, &id)?));
    }
    let ratios: Vec<f64> =
        if same { vec![1.0] } else { samples[1].iter().zip(&samples[0]).map(|(d, t)| d / t).collect() };
    let (lo, hi) = stats::median_ci(&ratios);
    let tuned_t = stats::median(&samples[0]);
    let (t_comp, t_mem) = (p.flops() / limits.peak_flops, p.min_bytes() / limits.bandwidth);
    Ok(ShapeBench {
        problem: p.to_string(),
        dtype: p.types(),
        layout: p.layout.to_string(),
        m: p.m,
        n: p.n,
        k: p.k,
        batch: p.batch,
        phase: phase.to_string(),
        source: tuned.1.to_string(),
        kernels: kernels
            .iter()
            .zip(&samples)
            .map(|((role, id, _), s)| KernelTiming {
                role: role.clone(),
                kernel: id.to_string(),
                median_us: stats::median(s) * 1e6,
                noise_pct: stats::relative_mad(s) * 100.0,
            })
            .collect(),
        speedup: stats::median(&ratios),
        speedup_lo: lo,
        speedup_hi: hi,
        roofline_pct: 100.0 * t_comp.max(t_mem) / tuned_t,
        bound: if t_comp > t_mem { "compute" } else { "memory" }.into(),
    })
}
