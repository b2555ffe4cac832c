//! ROCm backend. Without an AMD GPU only the missing-library paths run (through the
//! library and through the real binary); the `#[ignore]`d tests need an AMD GPU with
//! ROCm 6 or 7 and have not been run on one yet.

mod common;
#[path = "common/gpu.rs"]
mod gpu;
use common::bin;
use gemmtune::backend::rocm::{missing_libraries, RocmBackend};
use gemmtune::problem::{DType, Layout, Problem};

#[test]
fn without_rocm_the_error_names_what_is_missing() {
    match (RocmBackend::new(0), missing_libraries()) {
        (Ok(_), missing) => assert!(missing.is_none(), "opened a GPU while {missing:?}"),
        (Err(e), Some(missing)) => {
            let msg = e.to_string();
            assert_eq!(msg, missing);
            assert!(msg.starts_with("backend 'rocm' unavailable: cannot load"), "{msg}");
            assert_eq!(e.exit_code(), 2);
            assert_eq!(msg.lines().count(), 1);
        }
        // Libraries present, but no usable GPU: an error that is not about loading.
        (Err(e), None) => assert!(!e.to_string().contains("cannot load"), "{e}"),
    }
}

#[test]
fn the_binary_names_each_missing_library_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let shapes = dir.path().join("s.csv");
    std::fs::write(&shapes, "dtype,layout,m,n,k,batch,phase,model,layer,calls,weight\nbf16,TN,1,64,64,1,decode,t,q,1,1\n").unwrap();
    let empty = dir.path().join("rocm");
    std::fs::create_dir(&empty).unwrap();
    let o = bin()
        .env("ROCM_PATH", &empty)
        .args(["tune", "--backend", "rocm", "--shapes"])
        .arg(&shapes)
        .arg("--out")
        .arg(dir.path().join("t.csv"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for lib in ["libamdhip64.so", "libhiprtc.so", "librocblas.so", "libhipblaslt.so"] {
        assert!(err.contains(lib), "{err} should name {lib}");
    }
    assert!(err.contains(&format!("{}/lib", empty.display())) && err.contains("(ROCM_PATH)"), "{err}");
    assert!(!dir.path().join("t.csv").exists(), "no table without a backend");

    let o = bin().env("ROCM_PATH", &empty).arg("backends").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0));
    let line = out.lines().find(|l| l.starts_with("rocm")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.starts_with("rocm  not available: backend 'rocm' unavailable: cannot load libamdhip64.so"), "{line}");
}

fn amd() -> RocmBackend {
    RocmBackend::new(0).expect("this test needs an AMD GPU with ROCm")
}

#[test]
#[ignore = "needs an AMD GPU"]
fn gpu_fill_is_bit_exact_with_the_host_generator() {
    gpu::fill_is_bit_exact(&amd());
}

#[test]
#[ignore = "needs an AMD GPU"]
fn gpu_every_candidate_is_correct_on_awkward_shapes() {
    let b = amd();
    for (d, l, m, n, k, batch) in gpu::AWKWARD {
        let p = Problem::new(d, l, m, n, k, batch).unwrap();
        let (count, own_wrong, lib_wrong) = gpu::every_candidate_is_correct(&b, &p, |id| id.contains(":rocblas:") || id.contains(":hipblaslt"));
        assert!(own_wrong.is_empty(), "{p}: own kernels wrong:\n{}", own_wrong.join("\n"));
        assert!(lib_wrong.is_empty(), "{p}: library kernels wrong:\n{}", lib_wrong.join("\n"));
        eprintln!("{p}: {count} candidates, all correct on 2 draws");
    }
    // Our kernels are offered where they apply.
    let p = Problem::new(DType::BF16, Layout::TN, 1, 4096, 4096, 1).unwrap();
    use gemmtune::backend::Backend;
    assert!(b.candidates(&p).unwrap().iter().any(|c| c.id.as_str().starts_with("rocm:gemv:")));
}

#[test]
#[ignore = "needs an AMD GPU"]
fn gpu_graph_timing_is_sane() {
    gpu::graph_timing_is_sane(&amd());
}
