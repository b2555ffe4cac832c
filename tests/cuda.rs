//! CUDA backend. Without a GPU only the missing-library path runs; the `#[ignore]`d tests
//! need an NVIDIA GPU and run on the H100 through scripts/gpu/h100.sh (the test binary is
//! built here and carried there, since that machine has no Rust toolchain).

use gemmtune::backend::cuda::{missing_libraries, CudaBackend};
use gemmtune::backend::{Backend, Operands};
use gemmtune::problem::{DType, Layout, Problem};
use gemmtune::random;
use gemmtune::tune::validate::validate;

#[test]
fn without_cuda_the_error_names_what_is_missing() {
    let missing = missing_libraries();
    match CudaBackend::new(0) {
        Ok(_) => assert!(missing.is_empty(), "opened a GPU while {missing:?} are missing"),
        Err(e) if !missing.is_empty() => {
            let msg = e.to_string();
            assert!(msg.starts_with("backend 'cuda' unavailable: cannot load"), "{msg}");
            for lib in missing {
                assert!(msg.contains(lib), "{msg} should name {lib}");
            }
            assert_eq!(e.exit_code(), 2);
            assert_eq!(msg.lines().count(), 1);
        }
        Err(e) => panic!("libraries present but no GPU opened: {e}"),
    }
}

fn gpu() -> CudaBackend {
    CudaBackend::new(0).expect("this test needs an NVIDIA GPU")
}

fn operands(b: &CudaBackend, p: &Problem) -> Operands<<CudaBackend as Backend>::Buffer> {
    Operands {
        x: b.alloc(p.dtype, p.x_len()).unwrap(),
        w: b.alloc(p.dtype, p.w_len()).unwrap(),
        y: b.alloc(p.dtype, p.y_len()).unwrap(),
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_fill_is_bit_exact_with_the_host_generator() {
    let b = gpu();
    for d in DType::ALL {
        let mut buf = b.alloc(d, 100_003).unwrap();
        b.fill_random(&mut buf, 77).unwrap();
        let got = b.download(&buf).unwrap();
        for (i, v) in got.iter().enumerate() {
            assert_eq!(v.to_bits(), random::element(d, 77, i as u64).to_bits(), "{d} element {i}");
        }
        b.fill_nan(&mut buf).unwrap();
        let seen = b.inspect(&buf, &[0, 5]).unwrap();
        assert_eq!((seen.nonfinite, seen.first_nonfinite), (100_003, Some(0)));
        assert!(seen.values.iter().all(|v| v.is_nan()));
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_every_candidate_is_correct_on_awkward_shapes() {
    let b = gpu();
    let shapes = [
        (DType::BF16, Layout::TN, 1, 1280, 8192, 1),
        (DType::BF16, Layout::TN, 3, 100, 4096, 1),
        (DType::F16, Layout::TN, 8, 4104, 1024, 1),
        (DType::BF16, Layout::TN, 17, 384, 2048, 1),
        (DType::BF16, Layout::TN, 32, 77, 512, 1),
        (DType::F16, Layout::TN, 5, 1000, 72, 1),
        (DType::BF16, Layout::TN, 200, 96, 160, 1),
        (DType::BF16, Layout::NN, 64, 256, 128, 2),
        (DType::F32, Layout::NT, 9, 33, 65, 1),
    ];
    for (d, l, m, n, k, batch) in shapes {
        let p = Problem::new(d, l, m, n, k, batch).unwrap();
        let mut ops = operands(&b, &p);
        let cands = b.candidates(&p).unwrap();
        let own = cands.iter().filter(|c| !c.id.as_str().contains("cublas")).count();
        let gemv_fits = m <= 4 && k % 8 == 0;
        let mma_fits = m <= 32 && k % 32 == 0;
        if d != DType::F32 && l == Layout::TN && batch == 1 && (gemv_fits || mma_fits) {
            assert!(own > 0, "{p}: no own kernels offered");
        }
        let (mut own_wrong, mut lib_wrong) = (Vec::new(), Vec::new());
        for (i, c) in cands.iter().enumerate() {
            let k = b.resolve(&p, &c.id).unwrap_or_else(|e| panic!("{p}: {} does not resolve: {e}", c.id));
            for draw in 0..2u64 {
                if let Err(why) = validate(&b, &k, &p, &mut ops, 100 + 2 * i as u64 + draw) {
                    let line = format!("{}: {why}", c.id);
                    if c.id.as_str().contains("cublas") { lib_wrong.push(line) } else { own_wrong.push(line) }
                    break;
                }
            }
        }
        // Every candidate must be right: our kernels, and every configuration cuBLASLt
        // accepts (AlgoCheck). Failures seen here once were a race in our own harness.
        assert!(own_wrong.is_empty(), "{p}: own kernels wrong:\n{}", own_wrong.join("\n"));
        assert!(lib_wrong.is_empty(), "{p}: library configurations wrong:\n{}", lib_wrong.join("\n"));
        eprintln!("{p}: {} candidates ({own} own), all correct on 2 draws", cands.len());
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_tuned_winners_stay_correct_on_fresh_draws() {
    use gemmtune::tune::{tune_problem, TuneConfig};
    let b = gpu();
    for (d, m, n, k) in [(DType::F16, 8, 4104, 1024), (DType::BF16, 8, 1280, 8192), (DType::BF16, 1, 6144, 4096)] {
        let p = Problem::linear(d, m, n, k).unwrap();
        let o = tune_problem(&b, &p, &TuneConfig { seed: 5, ..TuneConfig::default() }, &mut ()).unwrap();
        let kern = b.resolve(&p, &o.winner).unwrap();
        let mut ops = operands(&b, &p);
        for draw in 0..10u64 {
            if let Err(why) = validate(&b, &kern, &p, &mut ops, 9000 + draw) {
                panic!("{p}: winner {} wrong on draw {draw}: {why}", o.winner);
            }
        }
        eprintln!("{p}: winner {} ({}) correct on 10 fresh draws", o.winner.as_str().get(..40).unwrap_or(o.winner.as_str()), o.decision);
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_graph_timing_is_sane() {
    let b = gpu();
    let p = Problem::linear(DType::BF16, 1, 8192, 8192).unwrap();
    let mut sets = vec![operands(&b, &p), operands(&b, &p)];
    for (i, s) in sets.iter_mut().enumerate() {
        b.fill_random(&mut s.x, i as u64).unwrap();
        b.fill_random(&mut s.w, 10 + i as u64).unwrap();
    }
    let k = b.resolve(&p, &b.default_kernel(&p)).unwrap();
    let t = b.time(&k, &p, &mut sets, 20).unwrap();
    // 128 MiB of weights: between the HBM roofline (~40 us) and a generous 1 ms.
    assert!(t > 30e-6 && t < 1e-3, "{t}");
}

#[test]
fn the_committed_h100_table_is_valid_and_every_kernel_id_decodes() {
    use gemmtune::backend::cpu::CpuBackend;
    use gemmtune::backend::cuda::{custom::Custom, lt};
    use gemmtune::table::Table;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tables/h100-llama-63.csv");
    let t = Table::load(&path).unwrap();
    assert_eq!(t.rows.len(), 63);
    let shapes = gemmtune::shapes::ShapeFile::load(&path.with_file_name("../shapes/llama-h100-63.csv")).unwrap();
    for e in &shapes.entries {
        assert!(t.get(&e.problem).is_some(), "{} missing from the table", e.problem);
    }
    for r in &t.rows {
        let v = &t.validators[&r.validators];
        assert_eq!(v["backend"], "cuda");
        assert!(v["device"].contains("H100"), "{v:?}");
        let lt_version: usize = v["lib.cublasLt"].parse().unwrap();
        assert_eq!(r.default_kernel.as_str(), "cuda:cublas:default");
        let id = r.kernel.as_str();
        if id.starts_with("cuda:cublaslt:") {
            lt::decode_id(id, lt_version).unwrap();
            assert!(r.attrs.contains("workspace="), "{}", r.attrs);
        } else if id != "cuda:cublas:default" {
            Custom::parse(id).unwrap();
            assert!(Custom::parse(id).unwrap().unsupported(&r.problem).is_none(), "{id} cannot run {}", r.problem);
        }
        assert!(r.speedup >= 1.0 && r.time_us > 0.0 && r.candidates >= 100, "{r:?}");
    }
    // On a machine without that GPU every row is skipped with a reason, none used.
    let (ok, skipped) = t.check_rows(&CpuBackend::new());
    assert!(ok.is_empty());
    assert!(skipped.iter().all(|s| s.reason.contains("backend differs")), "{:?}", skipped[0]);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_tf32_candidates_need_the_opt_in() {
    use gemmtune::tune::{tune_problem, TuneConfig};
    let b = gpu();
    let p = Problem::linear(DType::F32, 256, 1024, 2048).unwrap();
    let strict = tune_problem(&b, &p, &TuneConfig { seed: 3, ..TuneConfig::default() }, &mut ()).unwrap();
    let tf32: Vec<_> = strict.candidates.iter().filter(|c| c.id.as_str().contains("tf32")).collect();
    assert!(!tf32.is_empty(), "TF32 candidates are offered for f32");
    assert!(
        tf32.iter().all(|c| c.rejected.as_deref().is_some_and(|r| r.contains("relative error"))),
        "without the opt-in TF32 results exceed the f32 bound"
    );
    assert!(!strict.winner.as_str().contains("tf32"));
    let relaxed = tune_problem(&b, &p, &TuneConfig { seed: 3, allow_tf32: true, ..TuneConfig::default() }, &mut ()).unwrap();
    let passed = relaxed.candidates.iter().filter(|c| c.id.as_str().contains("tf32") && c.rejected.is_none()).count();
    assert!(passed > 0, "with --allow-tf32 TF32 candidates validate");
    eprintln!("f32 {p}: strict winner {} ({:.2}x); with TF32 {} ({:.2}x), {passed} TF32 candidates valid",
        strict.winner.as_str().get(..40).unwrap_or(strict.winner.as_str()), strict.speedup(),
        relaxed.winner.as_str().get(..40).unwrap_or(relaxed.winner.as_str()), relaxed.speedup());
}
