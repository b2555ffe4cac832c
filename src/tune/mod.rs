//! The tuner: for one problem, validate every candidate, time the survivors with
//! successive halving, and keep a winner only if it beats the default by more than the
//! measured noise in an interleaved A/B comparison.
//!
//! Timing method (see docs/architecture.md):
//! - operands are random (never zeros) and rotate over enough sets to exceed the
//!   last-level cache, so weights stream from memory as in real decode;
//! - every candidate is warmed up, then timed in samples of back-to-back calls (each
//!   sample at least the backend's `min_sample` long; where one call is that long and the
//!   backend's warm-up is one call, that call is the first sample); the statistic is the
//!   median;
//! - successive halving: after each round, candidates slower than the best by a
//!   shrinking margin are dropped and at most half survive, so most time goes to the
//!   contenders;
//! - the final contender and the default are sampled alternately (A/B/B/A), and the
//!   contender wins only if the ~99 % interval of the per-pair time ratio lies below 1
//!   and the median gain is at least `min_gain` (a 0.5 % gain is not worth a switch);
//!   while the median shows such a gain but the interval still reaches 1, the A/B goes on
//!   past the budget (up to 31 pairs, 1.5 budgets) instead of discarding the gain;
//! - on a backend that settles its clocks (GPUs), a contender gaining less than
//!   `rested_below` must also win a second A/B after `settle` idle: the first runs at
//!   whatever power state the sweep left.

pub mod guard;
pub mod stats;
pub mod validate;

use crate::backend::{Backend, Candidate, KernelId, Operands};
use crate::error::{Error, Result};
use crate::problem::Problem;
use crate::random::derive_seed;
use guard::guarded;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct TuneConfig {
    /// Wall-time budget for timing one problem (validation not included).
    pub budget: Duration,
    /// Rotating operand sets together exceed `cache_factor` × the last-level cache.
    pub cache_factor: f64,
    /// Upper bound on the memory of the rotating sets.
    pub max_set_bytes: usize,
    /// Base seed; every validation draws fresh operands from a seed derived from it.
    pub seed: u64,
    /// Smallest median gain over the default for a contender to replace it.
    pub min_gain: f64,
    /// Fresh operand draws the candidates' validations rotate over.
    pub draws: usize,
    /// Extra fresh draws a winner must pass before it replaces the default.
    pub confirm_draws: usize,
    /// f32 problems may use TF32 math (validated against a looser bound).
    pub allow_tf32: bool,
    /// Kernel ids never run (e.g. one that crashed a worker before).
    pub exclude: Vec<KernelId>,
    /// Idle time before a second A/B from rest, which a contender gaining less than
    /// `rested_below` must win too (zero: no second A/B; GPUs: their clock settling).
    pub settle: Duration,
    pub rested_below: f64,
}

impl Default for TuneConfig {
    fn default() -> Self {
        TuneConfig {
            budget: Duration::from_millis(250),
            cache_factor: 5.0,
            max_set_bytes: 2 << 30,
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1),
            min_gain: 0.01,
            draws: 4,
            confirm_draws: 3,
            allow_tf32: false,
            exclude: Vec::new(),
            settle: Duration::ZERO,
            rested_below: 1.06,
        }
    }
}

/// What happened to one candidate.
#[derive(Clone, Debug)]
pub struct CandidateResult {
    pub id: KernelId,
    pub attrs: String,
    /// Relative error against the reference, when validated.
    pub error: Option<f64>,
    /// Why it was rejected (cannot load, wrong numbers, NaN, panic, ...).
    pub rejected: Option<String>,
    /// Median seconds per call over its samples, when timed.
    pub median: Option<f64>,
    /// Seconds of the single warm-up call, when it ran.
    pub warm: Option<f64>,
    pub samples: usize,
}

/// The result of tuning one problem.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub problem: Problem,
    pub winner: KernelId,
    pub winner_attrs: String,
    /// Seconds per call, from the final A/B comparison.
    pub winner_time: f64,
    pub default: KernelId,
    pub default_time: f64,
    /// Relative half-width of the ~99 % interval of the winner/default ratio.
    pub noise: f64,
    /// Why the winner was chosen (or the default kept), in words.
    pub decision: String,
    pub candidates: Vec<CandidateResult>,
    pub wall: Duration,
    /// Where the wall time went.
    pub phases: Phases,
}

/// A shape's wall time by phase (`tune -v` prints them).
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// Listing the candidates (on a GPU, the first shape waits for its kernels' compiles).
    pub list: Duration,
    /// Loading every candidate (modules, library descriptors).
    pub resolve: Duration,
    /// Drawing operands and their reference, and reading the inputs back after each draw.
    pub draws: Duration,
    /// Running and judging each candidate once.
    pub checks: Duration,
    /// Rotating operand sets made, every survivor called once (warm-up, first cut).
    pub warm: Duration,
    /// Successive halving of the contenders.
    pub halving: Duration,
    /// The A/B against the default and the winner's re-validation.
    pub decide: Duration,
}

impl Outcome {
    pub fn speedup(&self) -> f64 {
        self.default_time / self.winner_time
    }
    pub fn rejected(&self) -> usize {
        self.candidates.iter().filter(|c| c.rejected.is_some()).count()
    }
}

/// Progress callbacks; the CLI draws bars from them.
pub trait Observer {
    fn candidate(&mut self, _problem: &Problem, _stage: &str, _id: &KernelId) {}
}
impl Observer for () {}

/// Tunes one problem on backend `b`; the winner's eager (non-graph) time per call is
/// added to its attributes as `eager_us`.
pub fn tune_problem<B: Backend>(
    b: &B,
    p: &Problem,
    cfg: &TuneConfig,
    obs: &mut dyn Observer,
) -> Result<Outcome> {
    // The rotating sets decide() timed with are reused here: no second allocation and fill.
    let mut sets = Vec::new();
    let mut o = decide(b, p, cfg, obs, &mut sets)?;
    if let (Ok(k), false) = (b.resolve(p, &o.winner), sets.is_empty()) {
        let calls = ((b.min_sample().as_secs_f64() / o.winner_time.max(1e-9)).ceil() as usize).clamp(1, 10_000);
        let eager = guarded(|| {
            b.time_eager(&k, p, &mut sets, 1)?; // warm
            let mut v: Vec<f64> = Vec::new();
            for _ in 0..5 {
                v.push(b.time_eager(&k, p, &mut sets, calls)?);
            }
            Ok(stats::median(&v))
        });
        if let Ok(t) = eager {
            if !o.winner_attrs.is_empty() {
                o.winner_attrs.push(';');
            }
            o.winner_attrs.push_str(&format!("eager_us={:.3}", t * 1e6));
        }
    }
    Ok(o)
}

/// Validates, times and picks; leaves the rotating operand sets it timed with in `sets`.
fn decide<B: Backend>(
    b: &B,
    p: &Problem,
    cfg: &TuneConfig,
    obs: &mut dyn Observer,
    sets: &mut Vec<Operands<B::Buffer>>,
) -> Result<Outcome> {
    let start = Instant::now();
    let default = b.default_kernel(p);
    let mut cands: Vec<Candidate> = b.candidates(p)?;
    let listed = start.elapsed();
    if !cands.iter().any(|c| c.id == default) {
        cands.insert(0, Candidate { id: default.clone(), attrs: String::new() });
    }
    let mut results: Vec<CandidateResult> = cands
        .iter()
        .map(|c| CandidateResult {
            id: c.id.clone(),
            attrs: c.attrs.clone(),
            error: None,
            rejected: None,
            median: None,
            warm: None,
            samples: 0,
        })
        .collect();

    // 1. Resolve, then validate on rotating fresh draws (see validate.rs).
    let mut kernels: Vec<Option<B::Kernel>> = Vec::with_capacity(results.len());
    for r in results.iter_mut() {
        if cfg.exclude.contains(&r.id) {
            r.rejected = Some("excluded by --exclude (given, or added after it crashed a tuning worker)".into());
            kernels.push(None);
            continue;
        }
        match b.resolve(p, &r.id) {
            Ok(k) => kernels.push(Some(k)),
            Err(e) => {
                r.rejected = Some(format!("cannot load: {e}"));
                kernels.push(None);
            }
        }
    }
    let resolved = start.elapsed();
    let mut checking = Duration::ZERO;
    let mut ops = alloc_operands(b, p)?;
    let draws = cfg.draws.clamp(1, results.len().max(1));
    let tol = validate::tolerance(p, cfg.allow_tf32);
    for d in 0..draws {
        let draw = validate::Draw::new(p, derive_seed(cfg.seed, d as u64 + 1));
        let fill = |ops: &mut Operands<B::Buffer>| {
            guarded(|| draw.fill(b, ops)).map_err(|e| Error::runtime(format!("{p}: cannot fill operands: {e}")))
        };
        let inputs_changed = |ops: &Operands<B::Buffer>| {
            guarded(|| draw.inputs_changed(b, p, ops)).map_err(|e| Error::runtime(format!("{p}: cannot read the operands back: {e}")))
        };
        // Candidate i's verdict on the operands as they are; a lost context ends the shape.
        let mut check = |i: usize, ops: &mut Operands<B::Buffer>| -> Result<std::result::Result<f64, String>> {
            let t = Instant::now();
            let v = draw.check_run(b, kernels[i].as_ref().expect("in the group"), p, ops, tol);
            checking += t.elapsed();
            if let Err(reason) = &v {
                context_lost(p, &results[i].id, reason)?;
            }
            Ok(v)
        };
        fill(&mut ops)?;
        let group: Vec<usize> = (d..results.len()).step_by(draws).filter(|&i| kernels[i].is_some()).collect();
        let mut verdicts = Vec::with_capacity(group.len());
        for &i in &group {
            obs.candidate(p, "validating", &results[i].id);
            verdicts.push(check(i, &mut ops)?);
        }
        if inputs_changed(&ops)?.is_some() {
            // One of the group wrote into X or W, and those after it were judged on
            // changed operands: the group again, one at a time on fresh operands.
            verdicts.clear();
            for &i in &group {
                obs.candidate(p, "re-validating", &results[i].id);
                fill(&mut ops)?;
                let v = check(i, &mut ops)?;
                verdicts.push(match inputs_changed(&ops)? {
                    Some(changed) => Err(changed),
                    None => v,
                });
            }
        }
        for (&i, v) in group.iter().zip(verdicts) {
            match v {
                Ok(err) => results[i].error = Some(err),
                Err(reason) => {
                    results[i].rejected = Some(reason);
                    kernels[i] = None;
                }
            }
        }
    }
    drop(ops);
    let validated = start.elapsed();
    let default_idx = results.iter().position(|r| r.id == default).expect("default listed");

    // 2. Rotating operand sets, then warm-up and calibration of calls per sample.
    *sets = rotating_sets(b, p, cfg)?;
    let sets = sets.as_mut_slice();
    let mut timings: Vec<Vec<f64>> = vec![Vec::new(); results.len()];
    let mut calls: Vec<usize> = vec![1; results.len()];
    let timing_start = Instant::now();
    let mut alive: Vec<usize> = Vec::new();
    let mut warm: Vec<f64> = vec![f64::INFINITY; results.len()];
    for i in 0..results.len() {
        let Some(k) = &kernels[i] else { continue };
        obs.candidate(p, "warming up", &results[i].id);
        // The backend's warm-up calls, the last timed: the first pays one-time costs (a CPU
        // thread pool created or its workers woken). Timed alone, it cut threaded CPU
        // kernels here at small shapes (2-vCPU Xeon VM: `cpu:qdot:avx512:m1:n1:t2` 103 us
        // against 30 us for t1); on a GPU validation has paid them (`warm_up_calls`).
        let untimed = b.warm_up_calls().max(1) - 1;
        match guarded(|| (0..untimed).try_for_each(|_| b.time(k, p, sets, 1).map(drop)).and_then(|_| b.time(k, p, sets, 1))) {
            Ok(t) => {
                warm[i] = t;
                calls[i] = ((b.min_sample().as_secs_f64() / t.max(1e-9)).ceil() as usize).clamp(1, 100_000);
                // Where the warm-up is one call (a GPU: validation has just run the
                // candidate) and a sample is one call, that call is the first sample: then
                // a warm-up that spent the budget (large GEMMs: ~135 candidates x 13 ms on
                // the H200's lm_head at M = 8192) calls no candidate again before the cuts.
                // Not on the CPU: there a warm call can catch a descheduling (a 20 us
                // kernel timed at 2 ms on a loaded 2-core VM), which only calibrates.
                if calls[i] == 1 && untimed == 0 {
                    timings[i].push(t);
                }
                alive.push(i);
            }
            Err(reason) => {
                context_lost(p, &results[i].id, &reason)?;
                results[i].rejected = Some(format!("failed while timing: {reason}"));
            }
        }
    }
    // A first cut on the single warm call: far slower than the best is out (the default
    // always stays for the final comparison). Where a warm call can be disturbed (the CPU:
    // a descheduling, see above), one that misses the cut gets one more call first.
    let best_warm = alive.iter().map(|&i| warm[i]).fold(f64::INFINITY, f64::min);
    if b.warm_up_calls() > 1 {
        for &i in &alive {
            if i != default_idx && warm[i] > 3.0 * best_warm {
                let k = kernels[i].as_ref().expect("alive kernels are resolved");
                match guarded(|| b.time(k, p, sets, 1)) {
                    Ok(t) => warm[i] = warm[i].min(t),
                    Err(reason) => context_lost(p, &results[i].id, &reason)?,
                }
            }
        }
    }
    alive.retain(|&i| i == default_idx || warm[i] <= 3.0 * best_warm);
    let warmed = start.elapsed();

    // 3. Successive halving over the contenders (the default always stays for the A/B).
    let budget = cfg.budget.as_secs_f64();
    let round_cost: f64 = alive.iter().map(|&i| warm[i] * calls[i] as f64).sum();
    let mut per_round = if 2.0 * round_cost > 0.25 * budget { 1 } else { 2 };
    let mut cut = 0.5;
    loop {
        for &i in &alive {
            if timing_start.elapsed().as_secs_f64() > budget && !timings[i].is_empty() {
                continue; // over budget: no more samples for those already sampled
            }
            let k = kernels[i].as_ref().expect("alive kernels are resolved");
            obs.candidate(p, "timing", &results[i].id);
            for _ in 0..per_round {
                match guarded(|| b.time(k, p, sets, calls[i])) {
                    Ok(t) => timings[i].push(t),
                    Err(reason) => {
                        context_lost(p, &results[i].id, &reason)?;
                        results[i].rejected = Some(format!("failed while timing: {reason}"));
                        break;
                    }
                }
            }
        }
        alive.retain(|&i| results[i].rejected.is_none() && !timings[i].is_empty());
        let med = |i: usize| stats::median(&timings[i]);
        alive.sort_by(|&a, &b| med(a).total_cmp(&med(b)));
        let Some(&best) = alive.first() else { break };
        let best_t = med(best);
        let contenders: Vec<usize> = alive
            .iter()
            .copied()
            .filter(|&i| i != default_idx && med(i) <= best_t * (1.0 + cut))
            .collect();
        let keep = contenders.len().div_ceil(2).max(1);
        let mut next: Vec<usize> = contenders.into_iter().take(keep).collect();
        if alive.contains(&default_idx) {
            next.push(default_idx);
        }
        alive = next;
        let contenders = alive.iter().filter(|&&i| i != default_idx).count();
        if contenders <= 1 || timing_start.elapsed().as_secs_f64() > 0.5 * budget {
            break;
        }
        per_round *= 2;
        cut = (cut * 0.5).max(0.05);
    }
    let halved = start.elapsed();
    for (i, r) in results.iter_mut().enumerate() {
        r.samples = timings[i].len();
        r.warm = warm[i].is_finite().then_some(warm[i]);
        if r.rejected.is_none() && r.samples > 0 {
            r.median = Some(stats::median(&timings[i]));
        }
    }

    // 4. Decide: interleaved A/B of the best contender against the default.
    let contender = alive
        .iter()
        .copied()
        .filter(|&i| i != default_idx)
        .min_by(|&a, &b| stats::median(&timings[a]).total_cmp(&stats::median(&timings[b])));
    let default_ok = results[default_idx].rejected.is_none();
    let outcome = |winner: usize, wt: f64, dt: f64, noise: f64, decision: String, results: Vec<CandidateResult>| Outcome {
        problem: *p,
        winner: results[winner].id.clone(),
        winner_attrs: results[winner].attrs.clone(),
        winner_time: wt,
        default: default.clone(),
        default_time: dt,
        noise,
        decision,
        candidates: results,
        wall: start.elapsed(),
        phases: Phases {
            list: listed,
            resolve: resolved - listed,
            draws: validated.saturating_sub(resolved + checking),
            checks: checking,
            warm: warmed - validated,
            halving: halved - warmed,
            decide: start.elapsed() - halved,
        },
    };
    match (contender, default_ok) {
        (None, true) => {
            let t = results[default_idx].median.unwrap_or(f64::NAN);
            let n = stats::relative_mad(&timings[default_idx]);
            Ok(outcome(default_idx, t, t, n, "default kept: no other valid candidate".into(), results))
        }
        (None, false) => Err(Error::runtime(format!(
            "{p}: no candidate passed validation; the default was rejected: {}",
            results[default_idx].rejected.clone().unwrap_or_default()
        ))),
        (Some(c), false) => {
            // No A/B to win, but the same re-validation as any kernel replacing the default.
            let why = results[default_idx].rejected.clone().unwrap_or_default();
            if let Err(again) = revalidate(b, p, sets, kernels[c].as_ref().unwrap(), cfg, obs, &results[c].id) {
                results[c].rejected = Some(format!("failed re-validation: {again}"));
                return Err(Error::runtime(format!("{p}: the default was rejected ({why}) and the fastest other candidate failed re-validation ({again})")));
            }
            let t = results[c].median.unwrap_or(f64::NAN);
            Ok(outcome(c, t, f64::NAN, f64::NAN, format!("default rejected ({why}); best valid kept (re-validated)"), results))
        }
        (Some(c), true) => {
            let (kc, kd) = (kernels[c].as_ref().unwrap(), kernels[default_idx].as_ref().unwrap());
            obs.candidate(p, "A/B vs default", &results[c].id);
            let calls_ab = calls[c].max(calls[default_idx]);
            let ab_start = Instant::now();
            let ab = ab_pairs(b, p, sets, (kc, kd), calls_ab, |ratios| {
                let (spent, ab) = (timing_start.elapsed().as_secs_f64(), ab_start.elapsed().as_secs_f64());
                // Out of budget: stop, unless the contender leads on the median but one
                // disturbed pair keeps the interval at 1; then up to 31 pairs and another
                // budget for the A/B (on the H200 a 5 % lm_head gain was lost to this).
                (spent > budget || ab > 0.5 * budget) && !(stats::undecided(ratios, cfg.min_gain) && ab < 1.5 * budget)
            });
            // A contender failing in the A/B is rejected like one failing earlier; the
            // default keeps the shape (its own failure still fails it).
            let (tc, td, ratios) = match ab {
                Ok(r) => r,
                Err(AbFailure::Contender(why)) => {
                    context_lost(p, &results[c].id, &why)?;
                    results[c].rejected = Some(format!("failed in the A/B: {why}"));
                    let t = results[default_idx].median.unwrap_or(f64::NAN);
                    let n = stats::relative_mad(&timings[default_idx]);
                    let d = format!("default kept: the best contender {} failed in the A/B ({why})", results[c].id);
                    return Ok(outcome(default_idx, t, t, n, d, results));
                }
                Err(AbFailure::Default(why)) => return Err(Error::runtime(format!("{p}: the default failed in the A/B: {why}"))),
            };
            let (wt, dt) = (stats::median(&tc), stats::median(&td));
            let ratio = stats::median(&ratios);
            let (lo, hi) = stats::median_ci(&ratios);
            let noise = (hi - lo) / 2.0 / ratio;
            let wins = hi < 1.0 && ratio < 1.0 - cfg.min_gain;
            if wins && !cfg.settle.is_zero() && ratio > 1.0 / cfg.rested_below {
                // A small gain measured hot (the A/B follows the whole sweep) must also
                // hold from rest: on a GPU at its power cap some library configurations
                // lead by 1-5 % on large GEMMs that they lose from rest, which is how
                // `bench` (and a serving process between bursts) meets them
                // (docs/PERFORMANCE.md, thirteenth session).
                obs.candidate(p, "A/B from rest", &results[c].id);
                std::thread::sleep(cfg.settle);
                let (_, _, rested) = match ab_pairs(b, p, sets, (kc, kd), calls_ab, |_| true) {
                    Ok(r) => r,
                    Err(AbFailure::Contender(why)) => {
                        context_lost(p, &results[c].id, &why)?;
                        results[c].rejected = Some(format!("failed in the A/B from rest: {why}"));
                        let d = format!("default kept: the best contender {} failed in the A/B from rest ({why})", results[c].id);
                        return Ok(outcome(default_idx, dt, dt, noise, d, results));
                    }
                    Err(AbFailure::Default(why)) => return Err(Error::runtime(format!("{p}: the default failed in the A/B: {why}"))),
                };
                let r = stats::median(&rested);
                if r >= 1.0 - cfg.min_gain {
                    let d = format!(
                        "default kept: best contender {} led hot ({:.3}x over {} pairs) but not from rest ({:.3}x over {} pairs after {} ms idle)",
                        results[c].id,
                        1.0 / ratio,
                        ratios.len(),
                        1.0 / r,
                        rested.len(),
                        cfg.settle.as_millis()
                    );
                    return Ok(outcome(default_idx, dt, dt, noise, d, results));
                }
            }
            if wins {
                // Before a kernel replaces the default, check it again on fresh draws: some
                // library configurations are wrong only now and then (a race), and one
                // lucky validation must not let them into a table.
                if let Err(why) = revalidate(b, p, sets, kc, cfg, obs, &results[c].id) {
                    results[c].rejected = Some(format!("failed re-validation: {why}"));
                    let d = format!("default kept: the fastest contender {} failed re-validation ({why})", results[c].id);
                    return Ok(outcome(default_idx, dt, dt, noise, d, results));
                }
                let d = format!(
                    "tuned: {:.3}x faster than the default (ratio interval {lo:.3}..{hi:.3} over {} pairs; re-validated on {} more draws)",
                    1.0 / ratio,
                    ratios.len(),
                    cfg.confirm_draws
                );
                Ok(outcome(c, wt, dt, noise, d, results))
            } else {
                let d = format!(
                    "default kept: best contender {} within noise (ratio {ratio:.3}, interval {lo:.3}..{hi:.3})",
                    results[c].id
                );
                Ok(outcome(default_idx, dt, dt, noise, d, results))
            }
        }
    }
}

/// Checks kernel `k` again on `cfg.confirm_draws` fresh draws before it replaces the
/// default: some library configurations are wrong only now and then (a race), and one
/// lucky validation must not let them into a table. The first timing set serves as
/// operands: it is refilled for every draw.
fn revalidate<B: Backend>(
    b: &B,
    p: &Problem,
    sets: &mut [Operands<B::Buffer>],
    k: &B::Kernel,
    cfg: &TuneConfig,
    obs: &mut dyn Observer,
    id: &KernelId,
) -> std::result::Result<(), String> {
    let ops = &mut sets[0];
    for extra in 0..cfg.confirm_draws {
        let draw = validate::Draw::new(p, derive_seed(cfg.seed ^ 0xC0FF_EE00, extra as u64));
        obs.candidate(p, "re-validating", id);
        guarded(|| draw.fill(b, ops)).and_then(|_| draw.check_run(b, k, p, ops, validate::tolerance(p, cfg.allow_tf32)))?;
        if let Some(changed) = guarded(|| draw.inputs_changed(b, p, ops))? {
            return Err(changed);
        }
    }
    Ok(())
}

/// An error for the shape when `reason` says the device context is gone: every later
/// call would fail too, and the kernel just announced to the observer (`id`, the one that
/// failed) is the culprit a supervisor restarts without. Ok for an ordinary failure.
fn context_lost(p: &Problem, id: &KernelId, reason: &str) -> Result<()> {
    if crate::error::is_sticky(reason) {
        return Err(Error::runtime(format!("{p}: {id}: {reason}")));
    }
    Ok(())
}

/// The contender's times, the default's and their per-pair ratios.
type AbTimes = (Vec<f64>, Vec<f64>, Vec<f64>);

/// Which side of an A/B failed (an error or a panic), and why.
enum AbFailure {
    Contender(String),
    Default(String),
}

/// Interleaved timing pairs of a contender and the default (`k.0`, `k.1`; A/B then B/A so
/// neither always runs second): the contender's times, the default's and their ratios.
/// At least 9 pairs, then until `enough` says so or 31.
fn ab_pairs<B: Backend>(
    b: &B,
    p: &Problem,
    sets: &mut [Operands<B::Buffer>],
    k: (&B::Kernel, &B::Kernel),
    calls: usize,
    enough: impl Fn(&[f64]) -> bool,
) -> std::result::Result<AbTimes, AbFailure> {
    let (mut tc, mut td, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 0..31 {
        let mut one = |k: &B::Kernel| guarded(|| b.time(k, p, sets, calls));
        let (a, d) = if pair % 2 == 0 {
            let a = one(k.0);
            (a, one(k.1))
        } else {
            let d = one(k.1);
            (one(k.0), d)
        };
        match (a, d) {
            (Ok(a), Ok(d)) => {
                tc.push(a);
                td.push(d);
                ratios.push(a / d);
            }
            (Err(e), _) => return Err(AbFailure::Contender(e)),
            (_, Err(e)) => return Err(AbFailure::Default(e)),
        }
        if pair >= 8 && enough(&ratios) {
            break;
        }
    }
    Ok((tc, td, ratios))
}

/// X, W (packed when quantized) and Y of `p`, contents unspecified.
pub fn alloc_operands<B: Backend>(b: &B, p: &Problem) -> Result<Operands<B::Buffer>> {
    Ok(Operands {
        x: b.alloc(p.dtype, p.x_len())?,
        w: b.alloc_w(p)?,
        y: b.alloc(p.dtype, p.y_len())?,
    })
}

/// How many operand sets rotate so that together they exceed the cache: `cache_factor` ×
/// the cache, within `max_set_bytes`, and at most 256 sets. The count cap binds only for
/// operands under 1 MB on a 50 MB L2 (SmolLM2's 576 × 576 layers: 256 sets are 3.4× the
/// H100's L2, still far past it); it bounds the allocations and fills of tiny shapes,
/// above all on a CPU whose VM reports its host's whole L3 (480 MiB seen in CI).
pub fn set_count(p: &Problem, cache_bytes: usize, cfg: &TuneConfig) -> usize {
    let set = p.min_bytes().max(1.0);
    let want = (cfg.cache_factor * cache_bytes as f64 / set).ceil() as usize;
    let fit = (cfg.max_set_bytes as f64 / set).floor() as usize;
    want.min(fit).clamp(1, 256)
}

/// Random operand sets (distinct seeds, never zeros) for timing.
pub fn rotating_sets<B: Backend>(b: &B, p: &Problem, cfg: &TuneConfig) -> Result<Vec<Operands<B::Buffer>>> {
    let n = set_count(p, b.cache_bytes(), cfg);
    (0..n)
        .map(|i| {
            let mut o = alloc_operands(b, p)?;
            let s = derive_seed(cfg.seed ^ 0xA5A5_5A5A, i as u64);
            b.fill_random(&mut o.x, s)?;
            b.fill_random(&mut o.w, s.rotate_left(17))?;
            b.fill_random(&mut o.y, s.rotate_left(33))?;
            Ok(o)
        })
        .collect()
}
