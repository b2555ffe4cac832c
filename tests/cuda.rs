//! CUDA backend. Without a GPU only the missing-library path runs; the `#[ignore]`d tests
//! need an NVIDIA GPU and run on the H100 through scripts/gpu/h100.sh (the test binary is
//! built here and carried there, since that machine has no Rust toolchain).

#[path = "common/gpu.rs"]
mod checks;

use gemmtune::backend::cuda::{missing_libraries, CudaBackend};
use gemmtune::backend::Backend;
use gemmtune::problem::{DType, Layout, Problem};
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

use checks::{operands, AWKWARD};

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_fill_is_bit_exact_with_the_host_generator() {
    checks::fill_is_bit_exact(&gpu());
}

/// Validation's one-copy readback (`inspect_guarded`): the poison, the sampled values and
/// a write past the end of Y (here a fill made 16 elements too long) are each seen, and the
/// sampled indices may change between calls.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_inspection_sees_poison_values_and_a_write_past_the_end() {
    let b = gpu();
    let n = 4099;
    for d in DType::ALL {
        let mut buf = b.alloc(d, n).unwrap();
        b.fill_nan(&mut buf).unwrap();
        let (seen, intact) = b.inspect_guarded(&buf, &[3, 4000]).unwrap();
        assert_eq!((seen.nonfinite, seen.first_nonfinite, intact), (n, Some(0), true), "{d}");
        b.fill_random(&mut buf, 5).unwrap();
        let (seen, intact) = b.inspect_guarded(&buf, &[7, 0, n - 1]).unwrap();
        assert_eq!((seen.nonfinite, intact), (0, true), "{d}");
        let want: Vec<f32> = [7, 0, n - 1].iter().map(|&i| gemmtune::random::element(d, 5, i as u64)).collect();
        assert_eq!(seen.values, want, "{d}");
        let (len, bytes) = (buf.len, buf.bytes);
        (buf.len, buf.bytes) = (len + 16, bytes + 16 * d.bytes() as usize);
        b.fill_random(&mut buf, 6).unwrap();
        (buf.len, buf.bytes) = (len, bytes);
        let (seen, intact) = b.inspect_guarded(&buf, &[7, 0, n - 1]).unwrap();
        assert_eq!((seen.nonfinite, intact), (0, false), "{d}: the write past the end is seen");
        assert_eq!(seen.values[0], gemmtune::random::element(d, 6, 7), "{d}");
        assert!(!b.guard_intact(&buf).unwrap());
        b.fill_nan(&mut buf).unwrap();
        assert!(b.inspect_guarded(&buf, &[]).unwrap().1, "{d}: poisoned again, the guard is whole");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_every_candidate_is_correct_on_awkward_shapes() {
    let b = gpu();
    // Plus shapes for the wgmma kernel (sm_90): a token count between its tile sizes, a
    // row count past the last 64/128-row tile, f16, and K split 16 ways over 128 steps.
    let wgmma = [(DType::BF16, Layout::TN, 100, 200, 1024, 1), (DType::F16, Layout::TN, 64, 1280, 8192, 1)];
    for (d, l, m, n, k, batch) in AWKWARD.into_iter().chain(wgmma) {
        let p = Problem::new(d, l, m, n, k, batch).unwrap();
        let (count, own_wrong, lib_wrong) = checks::every_candidate_is_correct(&b, &p, |id| id.contains("cublas"));
        let own = b.candidates(&p).unwrap().iter().filter(|c| !c.id.as_str().contains("cublas")).count();
        let gemv_fits = m <= 4 && k % 8 == 0;
        let mma_fits = m <= 32 && k % 32 == 0;
        let wg_fits = (5..=128).contains(&m) && k % 64 == 0 && b.identity().arch == "sm_90";
        if d != DType::F32 && l == Layout::TN && batch == 1 && (gemv_fits || mma_fits || wg_fits) {
            assert!(own > 0, "{p}: no own kernels offered");
        }
        // Every candidate must be right: our kernels, and every configuration cuBLASLt
        // accepts (AlgoCheck); failures seen here once were a race in our own harness.
        // TF32 math exceeds the f32 bound by design (the TF32 test checks the opt-in).
        let lib_wrong: Vec<String> = lib_wrong.into_iter().filter(|w| !(d == DType::F32 && w.contains("tf32"))).collect();
        assert!(own_wrong.is_empty(), "{p}: own kernels wrong:\n{}", own_wrong.join("\n"));
        assert!(lib_wrong.is_empty(), "{p}: library configurations wrong:\n{}", lib_wrong.join("\n"));
        eprintln!("{p}: {count} candidates ({own} own), all correct on 2 draws");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_quantized_weight_candidates_are_correct() {
    use gemmtune::problem::WeightFormat::{G128, Q4_1, Q8_0};
    let b = gpu();
    // Decode shapes with int4 kernels (a row count that is not a multiple of 16, K with a
    // tail chunk, M up to 16) and a prefill shape (dequantize-then-GEMM only).
    for (d, f, m, n, k) in [
        (DType::BF16, G128, 1, 1280, 8192),
        (DType::F16, Q4_1, 5, 100, 576),
        (DType::BF16, Q4_1, 16, 1024, 1024),
        (DType::F16, G128, 9, 264, 1536),
        (DType::BF16, Q8_0, 3, 320, 2048),
        (DType::BF16, G128, 96, 512, 1024),
    ] {
        let p = Problem::linear(d, m, n, k).unwrap().with_weights(f).unwrap();
        assert_eq!(b.default_kernel(&p).as_str(), "cuda:dq:cublas:default");
        let (count, own_wrong, dq_wrong) = checks::every_candidate_is_correct(&b, &p, |id| id.starts_with("cuda:dq:"));
        let fused = b.candidates(&p).unwrap().iter().filter(|c| c.id.as_str().starts_with("cuda:qmma:")).count();
        assert_eq!(fused > 0, m <= 16 && f != Q8_0, "{p}: {fused} fused candidates");
        assert!(own_wrong.is_empty(), "{p}: int4 kernels wrong:\n{}", own_wrong.join("\n"));
        assert!(dq_wrong.is_empty(), "{p}: dequantize-then-GEMM wrong:\n{}", dq_wrong.join("\n"));
        eprintln!("{p}: {count} candidates ({fused} fused int4), all correct on 2 draws");
    }
    // Dense kernels refuse packed weights and the other way round, with reasons.
    let p = Problem::linear(DType::BF16, 1, 1280, 8192).unwrap();
    let q = p.with_weights(G128).unwrap();
    let e = b.resolve(&q, &gemmtune::backend::KernelId::new("cuda:cublas:default")).err().unwrap().to_string();
    assert!(e.contains("dense weights"), "{e}");
    let e = b.resolve(&p, &gemmtune::backend::KernelId::new("cuda:qmma:mt1:w4:v1:n1:k1:p1")).err().unwrap().to_string();
    assert!(e.contains("int4 weights"), "{e}");
    let f32q = Problem::linear(DType::F32, 1, 256, 256).unwrap().with_weights(Q4_1).unwrap();
    assert!(b.candidates(&f32q).unwrap_err().to_string().contains("bf16/f16 activations"));
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_tuned_winners_stay_correct_on_fresh_draws() {
    use gemmtune::tune::{tune_problem, TuneConfig};
    let b = gpu();
    use gemmtune::problem::WeightFormat::{Dense, G128, Q4_1};
    for (d, f, m, n, k) in [
        (DType::F16, Dense, 8, 4104, 1024),
        (DType::BF16, Dense, 8, 1280, 8192),
        (DType::BF16, Dense, 1, 6144, 4096),
        (DType::BF16, G128, 1, 6144, 4096),
        (DType::F16, Q4_1, 4, 2048, 4096),
    ] {
        let p = Problem::linear(d, m, n, k).unwrap().with_weights(f).unwrap();
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

/// `tune --pdl` and the GPU runtime launch our kernels chained (programmatic dependent
/// launch): a call's blocks start while the call before runs, so everything that reads
/// (W included: kernels/common.cuh) or writes, the split-K workspace and its counters too,
/// must wait for it. A chain of dependent calls (each call's Y is the next one's
/// X) must give bit for bit what the same chain gives unchained. Our GEMMs request W
/// before that wait, so a kernel that has just written W must not be followed by a
/// chained one; the int4 rows run the fused kernel and the dequantize-then-GEMM path (a
/// dequantize kernel writes the scratch W its GEMM reads, on every call) chained. That
/// rule is kept by construction (`Kind::Dequant` launches its GEMM unchained): a build
/// that chained it passed this test too on the H200 (the dequantize kernel is done before
/// the GEMM's blocks run), so these rows check the chained int4 paths' results, not the
/// hazard. The wgmma rows launch clusters (their K split) chained.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_chained_launches_wait_for_the_call_before() {
    use gemmtune::backend::KernelId;
    let b = gpu();
    assert!(b.set_chained_launches(true), "this test needs sm_90+");
    use gemmtune::problem::WeightFormat::{Dense, Q4_1};
    for (m, n, f, id) in [
        (1, 4096, Dense, "cuda:gemv:r2:t256:u1:m1"),
        (4, 2048, Dense, "cuda:gemv:r1:t128:u2:m4"),
        (8, 1024, Dense, "cuda:mma:mt1:w4:v2:n1:k8"),
        (32, 2048, Dense, "cuda:mma:mt1:w4:v1:n4:k4"),
        (8, 1024, Dense, "cuda:mmal:mt1:w8:v2:n1:k4"),
        (1, 4096, Dense, "cuda:mmal:mt2:w8:v2:n1:k1"),
        (128, 2048, Dense, "cuda:wg:n128:g2:t2:s4:k4"),
        (32, 1024, Dense, "cuda:wg:n32:g2:t1:s6:k1"),
        (32, 2048, Dense, "cuda:wgt:n32:g1:t1:s16:k2"),
        (8, 1024, Q4_1, "cuda:qmma:mt1:w4:v1:n1:k1:p1"),
        (8, 1024, Q4_1, "cuda:dq:mma:mt1:w4:v2:n1:k8"),
        (1, 4096, Q4_1, "cuda:dq:gemv:r2:t256:u1:m1"),
    ] {
        let p = Problem::linear(DType::BF16, m, n, n).unwrap().with_weights(f).unwrap();
        let k = b.resolve(&p, &KernelId::new(id)).unwrap();
        let chain = |pdl: bool| {
            b.set_chained_launches(pdl);
            let (mut a, mut c) = (b.alloc(p.dtype, m * n).unwrap(), b.alloc(p.dtype, m * n).unwrap());
            let mut ws = [b.alloc_w(&p).unwrap(), b.alloc_w(&p).unwrap()];
            b.fill_random(&mut a, 11).unwrap();
            b.fill_random(&mut ws[0], 12).unwrap();
            b.fill_random(&mut ws[1], 13).unwrap();
            for i in 0..16 {
                b.run(&k, &p, &a, &ws[i % 2], &mut c).unwrap();
                std::mem::swap(&mut a, &mut c);
            }
            b.download(&a).unwrap()
        };
        let (plain, chained) = (chain(false), chain(true));
        assert!(plain.iter().all(|v| v.is_finite()), "{p} {id}: the chain overflowed");
        let differ = plain.iter().zip(&chained).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
        assert_eq!(differ, 0, "{p} {id}: {differ} of {} outputs differ when chained", plain.len());
        eprintln!("{p} {id}: 16 dependent calls chained = unchained, bit for bit");
    }
    b.set_chained_launches(false);
}

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_graph_timing_is_sane() {
    checks::graph_timing_is_sane(&gpu());
}

#[test]
fn the_committed_63_shape_tables_are_valid_and_every_kernel_id_decodes() {
    use gemmtune::backend::cpu::CpuBackend;
    use gemmtune::backend::cuda::{custom::Custom, lt};
    use gemmtune::table::Table;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shapes = gemmtune::shapes::ShapeFile::load(&root.join("shapes/llama-h100-63.csv")).unwrap();
    // The H100 table was timed unchained, the H200 one with our kernels chained (--pdl).
    for (file, gpu, chained) in [("h100-llama-63.csv", "H100", false), ("h200-llama-63.csv", "H200", true)] {
        let path = root.join("tables").join(file);
        let t = Table::load(&path).unwrap();
        assert_eq!(t.rows.len(), 63, "{file}");
        for e in &shapes.entries {
            assert!(t.get(&e.problem).is_some(), "{}: {} missing", file, e.problem);
        }
        for r in &t.rows {
            let v = &t.validators[&r.validators];
            assert_eq!(v["backend"], "cuda");
            assert!(v["device"].contains(gpu), "{file}: {v:?}");
            let lt_version: usize = v["lib.cublasLt"].parse().unwrap();
            assert_eq!(r.default_kernel.as_str(), "cuda:cublas:default");
            let id = r.kernel.as_str();
            if id.starts_with("cuda:cublaslt:") {
                lt::decode_id(id, lt_version).unwrap();
                assert!(r.attrs.contains("workspace=") && !r.attrs.contains("pdl="), "{file}: {}", r.attrs);
            } else if id != "cuda:cublas:default" {
                Custom::parse(id).unwrap();
                assert!(Custom::parse(id).unwrap().unsupported(&r.problem).is_none(), "{file}: {id} cannot run {}", r.problem);
                assert_eq!(r.attrs.contains("pdl=1"), chained, "{file}: {id} {}", r.attrs);
            }
            assert!(r.speedup >= 1.0 && r.time_us > 0.0 && r.candidates >= 100, "{file}: {r:?}");
        }
        // On a machine without that GPU every row is skipped with a reason, none used.
        let (ok, skipped) = t.check_rows(&CpuBackend::new());
        assert!(ok.is_empty());
        assert!(skipped.iter().all(|s| s.reason.contains("backend differs")), "{file}: {:?}", skipped[0]);
    }
}

#[test]
fn every_committed_gpu_table_names_kernels_that_decode_for_their_rows() {
    use gemmtune::backend::cuda::{custom::Custom, lt, DQ_DEFAULT};
    use gemmtune::table::Table;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tables");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("h100-") || name.starts_with("h200-")) || !name.ends_with(".csv") {
            continue;
        }
        let t = Table::load(&path).unwrap();
        for r in &t.rows {
            let v = &t.validators[&r.validators];
            let lt_version: usize = v["lib.cublasLt"].parse().unwrap();
            let dense = r.problem.wformat.is_dense();
            assert_eq!(r.default_kernel.as_str(), if dense { "cuda:cublas:default" } else { DQ_DEFAULT }, "{}", path.display());
            // `cuda:dq:<dense id>` runs that dense kernel on the dequantized weights.
            let id = match r.kernel.as_str().strip_prefix("cuda:dq:") {
                Some(rest) => {
                    assert!(!dense, "{}: {} on dense weights", path.display(), r.kernel);
                    format!("cuda:{rest}")
                }
                None => r.kernel.as_str().to_string(),
            };
            let p = r.problem.with_weights(gemmtune::problem::WeightFormat::Dense).unwrap();
            if id.starts_with("cuda:cublaslt:") {
                lt::decode_id(&id, lt_version).unwrap();
            } else if id != "cuda:cublas:default" {
                let c = Custom::parse(&id).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let target = if id.starts_with("cuda:qmma:") { r.problem } else { p };
                assert!(c.unsupported(&target).is_none(), "{}: {id} cannot run {}", path.display(), r.problem);
            }
            seen += 1;
        }
    }
    assert!(seen > 300, "only {seen} rows in tables/h100-*.csv and h200-*.csv");
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

#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_prompts_packed_into_small_passes_match_each_prompt_in_one_pass() {
    use gemmtune::dispatch::Dispatcher;
    use gemmtune::model::cuda::{CudaLlama, GpuOptions};
    use gemmtune::model::llama::Config;
    use gemmtune::model::runtime::{Runtime, SeqCache};
    // SmolLM2-135M's shapes with random weights (made on the GPU, as decode-bench does):
    // no model file needed.
    let mc = gemmtune::profile::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/shapes/configs/smollm2-135m.json"))).unwrap();
    let cfg = Config::from_model(&mc, 1e-5, 10000.0, 256.0);
    let runtime = |max_rows: usize| {
        let d = Dispatcher::untuned(CudaBackend::new(0).expect("this test needs an NVIDIA GPU"));
        let opt = GpuOptions { dtype: DType::F16, slots: 4, context: 256, max_rows, graphs: true, ..Default::default() };
        CudaLlama::random(cfg.clone(), d, opt, 3).unwrap()
    };
    let prompts: Vec<Vec<u32>> = [23usize, 9, 40].iter().enumerate().map(|(s, &n)| (0..n).map(|i| ((s * 7919 + i * 104_729) % 49_152) as u32).collect()).collect();
    let next: [u32; 4] = [17, 4242, 31_000, 9];
    let rel_rms = |a: &[f32], b: &[f32]| {
        let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        (num / b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>()).sqrt()
    };
    // Each prompt alone in one pass, then decode steps.
    let mut one = runtime(256);
    let alone: Vec<Vec<Vec<f32>>> = prompts
        .iter()
        .map(|p| {
            let mut c = one.new_cache().unwrap();
            let mut out = vec![one.forward(&mut [(&mut c, &p[..])]).unwrap().remove(0)];
            for t in next {
                out.push(one.forward(&mut [(&mut c, &[t][..])]).unwrap().remove(0));
            }
            out
        })
        .collect();
    // Passes of 7 rows: the three prompts (72 rows) packed in order into 11 passes, pieces
    // of a prompt continuing into the next pass; then decode steps of all three together.
    let mut small = runtime(7);
    let mut caches: Vec<_> = (0..3).map(|_| small.new_cache().unwrap()).collect();
    let mut seqs: Vec<(&mut _, &[u32])> = caches.iter_mut().zip(&prompts).map(|(c, p)| (c, &p[..])).collect();
    let mut packed: Vec<Vec<Vec<f32>>> = small.forward(&mut seqs).unwrap().into_iter().map(|l| vec![l]).collect();
    for t in next {
        let mut seqs: Vec<(&mut _, &[u32])> = caches.iter_mut().map(|c| (c, std::slice::from_ref(&t))).collect();
        for (i, l) in small.forward(&mut seqs).unwrap().into_iter().enumerate() {
            packed[i].push(l);
        }
    }
    for s in 0..3 {
        assert_eq!(caches[s].len(), prompts[s].len() + next.len(), "sequence {s}: cache length");
        for (i, (a, b)) in alone[s].iter().zip(&packed[s]).enumerate() {
            assert!(a.iter().all(|v| v.is_finite()), "sequence {s} step {i}: non-finite logits");
            let e = rel_rms(b, a);
            assert!(e < 0.01, "sequence {s} step {i}: logits after packed passes differ by {e:.3e}");
        }
    }
}

// ------------------------------------------------------------- the GPU runtime (SmolLM2)

mod runtime {
    use gemmtune::backend::cpu::CpuBackend;
    use gemmtune::backend::cuda::CudaBackend;
    use gemmtune::dispatch::Dispatcher;
    use gemmtune::model::cuda::{CudaLlama, GpuOptions};
    use gemmtune::model::llama::{KvCache, Llama};
    use gemmtune::model::runtime::Runtime;
    use gemmtune::problem::DType;
    use std::path::Path;

    fn model() -> Llama {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(p.exists(), "{} is missing: run scripts/fetch-model.sh", p.display());
        Llama::load(&p).unwrap()
    }

    fn prompts() -> Vec<Vec<u32>> {
        let f: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/smollm2_greedy.json")).unwrap(),
        )
        .unwrap();
        f["cases"].as_array().unwrap().iter().map(|c| c["prompt_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()).collect()
    }

    fn argmax(v: &[f32]) -> usize {
        v.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0
    }

    /// Top-1 minus top-2 logit.
    fn margin(v: &[f32]) -> f32 {
        let mut s = v.to_vec();
        s.sort_by(|a, b| b.total_cmp(a));
        s[0] - s[1]
    }

    /// The CPU f32 greedy continuation and the logits of each step (prompt logits first).
    fn cpu_greedy(m: &Llama, prompt: &[u32], n: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
        let d = Dispatcher::untuned(CpuBackend::new());
        let mut c = KvCache::new(&m.cfg);
        let mut logits = vec![m.forward(&d, &mut [(&mut c, prompt)]).unwrap().remove(0)];
        let mut toks = Vec::new();
        for _ in 0..n {
            let t = argmax(logits.last().unwrap()) as u32;
            toks.push(t);
            logits.push(m.forward(&d, &mut [(&mut c, &[t])]).unwrap().remove(0));
        }
        (toks, logits)
    }

    /// The GPU logits with the given tokens forced (prompt logits first).
    fn gpu_forced(rt: &mut CudaLlama, prompt: &[u32], toks: &[u32]) -> Vec<Vec<f32>> {
        let mut c = rt.new_cache().unwrap();
        let mut out = vec![rt.forward(&mut [(&mut c, prompt)]).unwrap().remove(0)];
        for &t in toks {
            out.push(rt.forward(&mut [(&mut c, &[t])]).unwrap().remove(0));
        }
        out
    }

    fn gpu_runtime(m: &Llama, dtype: DType, graphs: bool) -> CudaLlama {
        let d = Dispatcher::untuned(CudaBackend::new(0).expect("this test needs an NVIDIA GPU"));
        CudaLlama::from_host(m, d, GpuOptions { dtype, slots: 4, context: 1024, max_rows: 256, graphs, ..Default::default() }).unwrap()
    }

    fn rel_rms(a: &[f32], b: &[f32]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
        (num / den).sqrt()
    }

    #[test]
    #[ignore = "needs an NVIDIA GPU and the SmolLM2 model"]
    fn gpu_runtime_follows_the_cpu_reference() {
        let m = model();
        for (dtype, bound) in [(DType::F16, 0.02), (DType::BF16, 0.06)] {
            let mut rt = gpu_runtime(&m, dtype, true);
            let (mut checked, mut steps, mut worst) = (0, 0, 0f64);
            for prompt in prompts() {
                let (toks, cpu) = cpu_greedy(&m, &prompt, 24);
                let gpu = gpu_forced(&mut rt, &prompt, &toks);
                for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
                    assert!(g.iter().all(|v| v.is_finite()), "{dtype}: non-finite logits at step {i}");
                    worst = worst.max(rel_rms(g, c));
                    steps += 1;
                    // Where the reference is decided by a clear margin, the GPU must agree.
                    if margin(c) > 1.0 {
                        checked += 1;
                        assert_eq!(argmax(g), argmax(c), "{dtype}: step {i} of {prompt:?}: GPU picks another token");
                    }
                }
            }
            assert!(checked * 2 >= steps, "{dtype}: only {checked} of {steps} steps had a clear margin");
            assert!(worst < bound, "{dtype}: logits differ from the f32 CPU reference by {worst:.3} (relative RMS)");
            eprintln!("{dtype}: {checked} of {steps} clear-margin steps agree; worst relative RMS of logits {worst:.4}; {}", rt.dispatcher().coverage().summary());
        }
    }

    #[test]
    #[ignore = "needs an NVIDIA GPU and the SmolLM2 model"]
    fn gpu_native_int4_weights_follow_the_cpu_reference() {
        use gemmtune::model::weights::WeightMode;
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
        let (dense, native) = (model(), Llama::load_with(&p, WeightMode::Native).unwrap());
        let dense_bytes = gpu_runtime(&dense, DType::BF16, true).weight_bytes();
        for (dtype, bound) in [(DType::F16, 0.02), (DType::BF16, 0.06)] {
            let mut rt = gpu_runtime(&native, dtype, true);
            // Q4_1 layers stay packed (5 bits a weight); the Q8_0 embedding/head is dense.
            assert!(rt.weight_bytes() < dense_bytes * 7 / 10, "{} vs {dense_bytes} bytes: layers not packed", rt.weight_bytes());
            let (mut checked, mut steps, mut worst) = (0, 0, 0f64);
            for prompt in prompts() {
                let (toks, cpu) = cpu_greedy(&dense, &prompt, 24);
                let gpu = gpu_forced(&mut rt, &prompt, &toks);
                for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
                    assert!(g.iter().all(|v| v.is_finite()), "{dtype}: non-finite logits at step {i}");
                    worst = worst.max(rel_rms(g, c));
                    steps += 1;
                    if margin(c) > 1.0 {
                        checked += 1;
                        assert_eq!(argmax(g), argmax(c), "{dtype} int4: step {i} of {prompt:?}: GPU picks another token");
                    }
                }
            }
            let cov = rt.dispatcher().coverage().summary();
            assert!(checked * 2 >= steps, "{dtype}: only {checked} of {steps} steps had a clear margin");
            assert!(worst < bound, "{dtype} int4: logits differ from the f32 CPU reference by {worst:.3} (relative RMS)");
            eprintln!("{dtype} int4 (q4_1 packed): {checked} of {steps} clear-margin steps agree; worst relative RMS {worst:.4}; {cov}");
        }
    }

    #[test]
    #[ignore = "needs an NVIDIA GPU and the SmolLM2 model"]
    fn gpu_graph_replay_equals_eager_launches() {
        let m = model();
        let prompt = &prompts()[0];
        let (toks, _) = cpu_greedy(&m, prompt, 12);
        // Eager launches without PDL against replayed graphs with PDL: the programmatic
        // edges must not change a single bit.
        let d = Dispatcher::untuned(CudaBackend::new(0).expect("this test needs an NVIDIA GPU"));
        let opt = GpuOptions { dtype: DType::BF16, slots: 4, context: 1024, max_rows: 256, graphs: false, pdl: false, ..Default::default() };
        let eager = gpu_forced(&mut CudaLlama::from_host(&m, d, opt).unwrap(), prompt, &toks);
        let mut rt = gpu_runtime(&m, DType::BF16, true);
        let graphed = gpu_forced(&mut rt, prompt, &toks);
        for (i, (a, b)) in eager.iter().zip(&graphed).enumerate() {
            assert!(a == b, "step {i}: replayed graph differs from eager launches (relative RMS {:.2e})", rel_rms(b, a));
        }
        // Decode steps after the first two replay a graph; coverage still counts their GEMMs.
        let calls_per_step = 4 * m.cfg.layers as u64 + 1;
        let cov = rt.dispatcher().coverage();
        assert_eq!(cov.calls(), calls_per_step * (toks.len() as u64 + 1), "{}", cov.summary());
    }

    #[test]
    #[ignore = "needs an NVIDIA GPU and the SmolLM2 model"]
    fn gpu_batched_decode_matches_one_at_a_time() {
        let m = model();
        let ps = prompts();
        let ps = &ps[..3];
        let runs: Vec<(Vec<u32>, Vec<Vec<f32>>)> = ps.iter().map(|p| cpu_greedy(&m, p, 10)).collect();
        let mut rt = gpu_runtime(&m, DType::F16, true);
        let alone: Vec<Vec<Vec<f32>>> = ps.iter().zip(&runs).map(|(p, (t, _))| gpu_forced(&mut rt, p, t)).collect();
        // All three decoded together, after prefilling each (M = 3 per step).
        let mut caches: Vec<_> = (0..3).map(|_| rt.new_cache().unwrap()).collect();
        let mut together: Vec<Vec<Vec<f32>>> = Vec::new();
        for (c, p) in caches.iter_mut().zip(ps) {
            together.push(vec![rt.forward(&mut [(c, &p[..])]).unwrap().remove(0)]);
        }
        for step in 0..10 {
            let toks: Vec<[u32; 1]> = runs.iter().map(|(t, _)| [t[step]]).collect();
            let mut seqs: Vec<(&mut _, &[u32])> = caches.iter_mut().zip(&toks).map(|(c, t)| (c, &t[..])).collect();
            for (i, l) in rt.forward(&mut seqs).unwrap().into_iter().enumerate() {
                together[i].push(l);
            }
        }
        for s in 0..3 {
            for (i, (a, b)) in alone[s].iter().zip(&together[s]).enumerate() {
                let e = rel_rms(b, a);
                assert!(e < 0.01, "sequence {s} step {i}: batched logits differ by {e:.3e}");
                if margin(a) > 0.5 {
                    assert_eq!(argmax(a), argmax(b), "sequence {s} step {i}");
                }
            }
        }
        drop(caches);
        // Slots return when caches drop: four fit again.
        let again: Vec<_> = (0..4).map(|_| rt.new_cache().unwrap()).collect();
        assert!(rt.new_cache().is_err(), "a fifth sequence exceeds the 4 slots");
        drop(again);
    }

    #[test]
    #[ignore = "needs an NVIDIA GPU and the SmolLM2 model"]
    fn gpu_greedy_ids_equal_the_argmax_of_the_logits() {
        let m = model();
        let mut rt = gpu_runtime(&m, DType::BF16, true);
        let p = &prompts()[1];
        let (mut a, mut b) = (rt.new_cache().unwrap(), rt.new_cache().unwrap());
        let mut la = rt.forward(&mut [(&mut a, &p[..])]).unwrap().remove(0);
        let mut ib = rt.forward_greedy(&mut [(&mut b, &p[..])]).unwrap()[0];
        for step in 0..8 {
            assert_eq!(argmax(&la) as u32, ib, "step {step}");
            la = rt.forward(&mut [(&mut a, &[ib])]).unwrap().remove(0);
            ib = rt.forward_greedy(&mut [(&mut b, &[ib])]).unwrap()[0];
        }
    }
}
