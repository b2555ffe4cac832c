//! The tuner's decisions on purpose-built contests.

mod common;
use common::Restricted;
use gemmtune::backend::cpu::CpuBackend;
use gemmtune::backend::Backend;
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
    // `alias` runs exactly the default's code under another name.
    let all = CpuBackend::new().threads();
    let default = format!("cpu:gemm:t{all}");
    let b = Restricted::new(&default, &["cpu:test:alias"]);
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
        assert_eq!(o.winner.as_str(), "cpu:gemm:t1");
        let reason = |id: &str| {
            o.candidates.iter().find(|c| c.id.as_str() == id).and_then(|c| c.rejected.clone()).unwrap_or_default()
        };
        assert!(reason("cpu:test:wrong").contains("relative error"), "{}", reason("cpu:test:wrong"));
        assert!(reason("cpu:test:nan").contains("NaN"), "{}", reason("cpu:test:nan"));
        let partial = reason("cpu:test:partial");
        assert!(partial.contains("never written") && partial.contains(&format!("{} of", p.n)), "{partial}");
        assert!(reason("cpu:test:panic").contains("panicked"), "{}", reason("cpu:test:panic"));
        assert!(reason("cpu:skinny:sse9:m1:t1").contains("cannot load"));
        if p.dtype == DType::F32 {
            assert!(reason("cpu:test:oob").contains("wrote past the end"), "{}", reason("cpu:test:oob"));
            assert_eq!(o.rejected(), 6);
        }
    }
}

#[test]
fn rotating_sets_exceed_the_cache_within_the_memory_cap() {
    let b = CpuBackend::new();
    let c = cfg();
    let p = Problem::linear(DType::F32, 1, 576, 576).unwrap();
    let n = gemmtune::tune::set_count(&p, b.cache_bytes(), &c);
    assert!(n as f64 * p.min_bytes() >= 2.0 * b.cache_bytes() as f64, "{n} sets");
    let huge = Problem::linear(DType::F32, 8192, 49152, 4096).unwrap();
    assert_eq!(gemmtune::tune::set_count(&huge, b.cache_bytes(), &c), 1);
}
