//! The tuner's decisions on purpose-built contests.

mod common;
use common::Restricted;
use gemmtune::backend::cpu::CpuBackend;
use gemmtune::problem::{DType, Problem};
use gemmtune::tune::{tune_problem, TuneConfig};
use std::time::Duration;

fn cfg() -> TuneConfig {
    TuneConfig { budget: Duration::from_millis(150), seed: 42, ..TuneConfig::default() }
}

#[test]
fn picks_the_faster_of_two_candidates() {
    // The default is a deliberately slow naive loop; the gemm crate must beat it.
    let b = Restricted::new("cpu:test:slow", &["cpu:gemm:t1"]);
    let p = Problem::linear(DType::F32, 64, 96, 128).unwrap();
    let o = tune_problem(&b, &p, &cfg(), &mut ()).unwrap();
    assert_eq!(o.winner.as_str(), "cpu:gemm:t1", "{}", o.decision);
    assert!(o.speedup() > 1.5, "speedup {} ({})", o.speedup(), o.decision);
    assert!(o.decision.starts_with("tuned"), "{}", o.decision);

    // And the other way round: the slow one never wins against a fast default.
    let b = Restricted::new("cpu:gemm:t1", &["cpu:test:slow"]);
    let o = tune_problem(&b, &p, &cfg(), &mut ()).unwrap();
    assert_eq!(o.winner.as_str(), "cpu:gemm:t1");
    assert_eq!(o.speedup(), 1.0);
}

#[test]
fn keeps_the_default_when_a_contender_ties_within_noise() {
    // `alias` runs exactly the default's code under another name; the times the tuner sees
    // are drawn from one noisy distribution for both (±2 %, seeded), so the machine's load
    // cannot decide the contest.
    let all = CpuBackend::new().threads();
    let default = format!("cpu:gemm:t{all}");
    let mut b = Restricted::new(&default, &["cpu:test:alias"]);
    let calls = std::sync::atomic::AtomicU64::new(0);
    b.time_hook = Some(Box::new(move |_, _, _| {
        let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let u = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
        1e-3 * (0.98 + 0.04 * u)
    }));
    let p = Problem::linear(DType::F32, 32, 256, 256).unwrap();
    for seed in 0..3 {
        let o = tune_problem(&b, &p, &TuneConfig { seed, ..cfg() }, &mut ()).unwrap();
        assert_eq!(o.winner.as_str(), default, "seed {seed}: {}", o.decision);
        assert!(o.decision.starts_with("default kept"), "{}", o.decision);
    }
}

#[test]
fn wrong_kernels_are_rejected_with_reasons_and_never_win() {
    let b = Restricted::new(
        "cpu:gemm:t1",
        &["cpu:test:wrong", "cpu:test:nan", "cpu:test:partial", "cpu:test:panic", "cpu:test:oob", "cpu:skinny:sse9:m1:t1"],
    );
    for p in [Problem::linear(DType::F32, 4, 40, 72).unwrap(), Problem::linear(DType::BF16, 3, 17, 9).unwrap()] {
        let o = tune_problem(&b, &p, &cfg(), &mut ()).unwrap();
        // On bf16 outputs the kernels write an f32 copy (as the real ones do), poisoned
        // and guarded like the output itself.
        assert_eq!(o.winner.as_str(), "cpu:gemm:t1", "{}", o.decision);
        let reason = |id: &str| {
            o.candidates.iter().find(|c| c.id.as_str() == id).and_then(|c| c.rejected.clone()).unwrap_or_default()
        };
        assert!(reason("cpu:test:wrong").contains("relative error"), "{}", reason("cpu:test:wrong"));
        assert!(reason("cpu:test:nan").contains("NaN"), "{}", reason("cpu:test:nan"));
        let partial = reason("cpu:test:partial");
        assert!(partial.contains("never written") && partial.contains(&format!("{} of", p.n)), "{partial}");
        assert!(reason("cpu:test:panic").contains("panicked"), "{}", reason("cpu:test:panic"));
        assert!(reason("cpu:skinny:sse9:m1:t1").contains("cannot load"));
        assert!(reason("cpu:test:oob").contains("wrote past the end"), "{}", reason("cpu:test:oob"));
        assert_eq!(o.rejected(), 6);
    }
}

/// A kernel that leaves a right Y but writes into its input X is rejected by name, and
/// the kernel validated after it on the same draw (which computed from the changed X) is
/// judged again on fresh operands and kept.
#[test]
fn a_kernel_writing_into_its_inputs_is_rejected_and_its_victims_are_not() {
    // Four draws: candidates 1 and 5 share one, `alias` first.
    let mut b = Restricted::new(
        "cpu:gemm:t1",
        &["cpu:test:alias", "cpu:test:slow", "cpu:matrixmultiply:t1", "cpu:gemm:t2", "cpu:matrixmultiply:t2"],
    );
    b.clobbers = Some(gemmtune::backend::KernelId::new("cpu:test:alias"));
    let p = Problem::linear(DType::F32, 8, 48, 64).unwrap();
    for (w, name) in [(false, "X"), (true, "W")] {
        b.clobbers_w = w;
        let o = tune_problem(&b, &p, &TuneConfig { draws: 4, ..cfg() }, &mut ()).unwrap();
        let reason = |id: &str| o.candidates.iter().find(|c| c.id.as_str() == id).and_then(|c| c.rejected.clone());
        let alias = reason("cpu:test:alias").unwrap_or_default();
        assert!(alias.contains(&format!("wrote into its input {name}")), "{alias}");
        assert_eq!(reason("cpu:matrixmultiply:t2"), None, "the victim");
        assert_eq!(o.rejected(), 1, "{:?}", o.candidates.iter().map(|c| (&c.id, &c.rejected)).collect::<Vec<_>>());
        assert_ne!(o.winner.as_str(), "cpu:test:alias");
    }
}

#[test]
fn rotating_sets_exceed_the_cache_within_the_memory_cap() {
    use gemmtune::tune::set_count;
    let c = cfg();
    // Fixed cache sizes, not this machine's: a CI VM may report its host's whole L3 (480
    // MiB on one), past what the set cap can cover.
    let p = Problem::linear(DType::F32, 1, 576, 576).unwrap(); // 1.33 MB a set
    for cache in [2usize << 20, 32 << 20, 60 << 20] {
        let n = set_count(&p, cache, &c);
        assert!(n as f64 * p.min_bytes() >= c.cache_factor * cache as f64, "{cache} bytes: {n} sets");
        assert!(((n - 1) as f64) * p.min_bytes() < c.cache_factor * cache as f64, "{cache} bytes: {n} sets, more than needed");
    }
    // At most 256 sets, and no more bytes than the memory cap.
    assert_eq!(set_count(&p, 480 << 20, &c), 256);
    let huge = Problem::linear(DType::F32, 8192, 49152, 4096).unwrap();
    assert_eq!(set_count(&huge, 32 << 20, &c), 1);
    let big = Problem::linear(DType::F32, 1, 16384, 16384).unwrap(); // 1.07 GB a set
    assert_eq!(set_count(&big, 480 << 20, &c), 1);
    let mid = Problem::linear(DType::F32, 1, 4096, 16384).unwrap(); // 268 MB a set
    assert_eq!(set_count(&mid, 480 << 20, &c), (c.max_set_bytes as f64 / mid.min_bytes()).floor() as usize);
}

/// A contest modelled on a GPU at its power cap, on a clock of its own: the kernels run
/// (validation, timing loops), but the times the tuner sees are set, so that a loaded CI
/// machine's noise cannot decide it: the default takes 1 ms, `cpu:test:alias` (the
/// default's own code) 0.25 ms while calls come back to back and 4 ms for a second after
/// an idle gap of 450 ms (on the H200 some cuBLASLt configurations led by 1-5 % hot on
/// large GEMMs and lost from rest, where `bench` meets them).
fn leads_only_hot(default: &str) -> Restricted {
    use std::time::Instant;
    // (the last timing's end, the start of the current rested window)
    let clock: std::sync::Mutex<(Option<Instant>, Option<Instant>)> = std::sync::Mutex::new((None, None));
    let mut b = Restricted::new(default, &["cpu:test:alias"]);
    b.time_hook = Some(Box::new(move |k, _, began| {
        let mut c = clock.lock().unwrap();
        // The tuner's settle is 500 ms: a gap of 450 ms or more is that idle, not a
        // descheduling on a loaded machine (which 250 ms could have been).
        if c.0.is_some_and(|last| began.saturating_duration_since(last) > Duration::from_millis(450)) {
            c.1 = Some(began);
        }
        c.0 = Some(Instant::now());
        let rested = c.1.is_some_and(|s| s.elapsed() < Duration::from_secs(1));
        match (k.id().as_str(), rested) {
            ("cpu:test:alias", false) => 0.25e-3,
            ("cpu:test:alias", true) => 4e-3,
            _ => 1e-3,
        }
    }));
    b
}

#[test]
fn a_gain_that_only_holds_hot_does_not_replace_the_default() {
    let default = "cpu:gemm:t1";
    let contest = || leads_only_hot(default);
    let p = Problem::linear(DType::F32, 16, 128, 256).unwrap();
    // Without the second comparison the hot lead wins; with it the default stays.
    let hot = tune_problem(&contest(), &p, &TuneConfig { rested_below: 100.0, ..cfg() }, &mut ()).unwrap();
    assert_eq!(hot.winner.as_str(), "cpu:test:alias", "{}", hot.decision);
    let rest = TuneConfig { settle: Duration::from_millis(500), rested_below: 100.0, ..cfg() };
    let o = tune_problem(&contest(), &p, &rest, &mut ()).unwrap();
    assert_eq!(o.winner.as_str(), default, "{}", o.decision);
    assert!(o.decision.contains("not from rest") && o.decision.contains("after 500 ms idle"), "{}", o.decision);
    // Only gains below `rested_below` are checked again: a large lead is kept as it is.
    let large = tune_problem(&contest(), &p, &TuneConfig { rested_below: 1.1, ..rest.clone() }, &mut ()).unwrap();
    assert_eq!(large.winner.as_str(), "cpu:test:alias", "{}", large.decision);
    // A real winner wins from rest too.
    let b = Restricted::new("cpu:test:slow", &["cpu:gemm:t1"]);
    let o = tune_problem(&b, &p, &TuneConfig { rested_below: 100.0, ..rest }, &mut ()).unwrap();
    assert_eq!(o.winner.as_str(), "cpu:gemm:t1", "{}", o.decision);
}

/// On a backend whose warm-up is one call (CUDA), where that call is a whole sample it is
/// the first sample: once the warm-up has spent the budget (large GEMMs), a candidate that
/// is neither the final contender nor the default is called exactly once. With the CPU's
/// two warm-up calls the warm call only calibrates, and such a candidate is called three
/// times. Reported times are set (5, 4 and 4.5 ms a call: one call per sample, none cut at
/// 3x the best).
#[test]
fn a_warm_up_past_the_budget_is_the_first_sample() {
    for (warm_up, slow_calls) in [(1, 1), (2, 3)] {
        let (o, calls) = timed_contest(warm_up);
        assert_eq!(o.winner.as_str(), "cpu:test:alias", "{}", o.decision);
        assert_eq!(calls.get("cpu:test:slow"), Some(&slow_calls), "warm-up of {warm_up}: {calls:?}");
        let slow = o.candidates.iter().find(|c| c.id.as_str() == "cpu:test:slow").unwrap();
        assert_eq!((slow.samples, slow.median), (1, Some(4.5e-3)), "{slow:?}");
        // Both finalists were timed beyond the warm-up, in the A/B.
        assert!(calls["cpu:test:alias"] > slow_calls && calls["cpu:gemm:t1"] > slow_calls, "{calls:?}");
    }
}

/// `a_warm_up_past_the_budget_is_the_first_sample`'s contest on a backend with `warm_up`
/// warm-up calls: its outcome and the calls of each candidate.
fn timed_contest(warm_up: usize) -> (gemmtune::tune::Outcome, std::collections::HashMap<String, usize>) {
    use std::collections::HashMap;
    let calls: std::sync::Arc<std::sync::Mutex<HashMap<String, usize>>> = Default::default();
    let mut b = Restricted::new("cpu:gemm:t1", &["cpu:test:alias", "cpu:test:slow"]);
    b.warm_up_calls = warm_up;
    let seen = calls.clone();
    b.time_hook = Some(Box::new(move |k, _, _| {
        *seen.lock().unwrap().entry(k.id().as_str().to_string()).or_default() += 1;
        match k.id().as_str() {
            "cpu:test:alias" => 4e-3,
            "cpu:test:slow" => 4.5e-3,
            _ => 5e-3,
        }
    }));
    let p = Problem::linear(DType::F32, 8, 64, 64).unwrap();
    let o = tune_problem(&b, &p, &TuneConfig { budget: Duration::from_micros(1), ..cfg() }, &mut ()).unwrap();
    let calls = calls.lock().unwrap().clone();
    (o, calls)
}

/// Samples continue the rotation over the operand sets: a sample of fewer calls than there
/// are sets must not start at set 0 every time (the same few sets, cache-resident, would
/// flatter slow kernels).
#[test]
fn timing_samples_walk_on_through_the_rotating_sets() {
    use gemmtune::backend::Backend;
    let b = CpuBackend::new();
    let p = Problem::linear(DType::F32, 1, 64, 64).unwrap();
    let k = b.resolve(&p, &b.default_kernel(&p)).unwrap();
    let mut sets = gemmtune::tune::rotating_sets(&b, &p, &cfg()).unwrap();
    assert!(sets.len() >= 4, "{} sets", sets.len());
    let first_x = |sets: &[gemmtune::backend::Operands<gemmtune::backend::cpu::HostTensor>]| sets[0].x.as_f32()[0];
    let order: Vec<f32> = sets.iter().map(|s| s.x.as_f32()[0]).collect();
    b.time(&k, &p, &mut sets, 3).unwrap();
    assert_eq!(first_x(&sets), order[3], "the next sample starts at the fourth set");
    b.time(&k, &p, &mut sets, 1).unwrap();
    assert_eq!(first_x(&sets), order[4 % order.len()]);
}

/// A contender must gain at least `min_gain` (1 %), however sure the gain: on a clock of
/// its own (times set, with a little seeded noise the same for both), an alias 0.5 %
/// faster keeps the default and one 3 % faster wins.
#[test]
fn a_gain_below_min_gain_keeps_the_default() {
    let all = CpuBackend::new().threads();
    let default = format!("cpu:gemm:t{all}");
    for (factor, wins) in [(0.995, false), (0.97, true)] {
        let mut b = Restricted::new(&default, &["cpu:test:alias"]);
        let calls = std::sync::atomic::AtomicU64::new(0);
        b.time_hook = Some(Box::new(move |k, _, _| {
            // ±0.1 % noise from a counter, so samples differ but never by the gain.
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let jitter = 1.0 + ((n * 7919) % 21) as f64 * 1e-4 - 1e-3;
            if k.id().as_str() == "cpu:test:alias" { factor * 1e-3 * jitter } else { 1e-3 * jitter }
        }));
        let o = tune_problem(&b, &Problem::linear(DType::F32, 4, 64, 64).unwrap(), &cfg(), &mut ()).unwrap();
        assert_eq!(o.winner.as_str() == "cpu:test:alias", wins, "{factor}: {}", o.decision);
    }
}
