//! TunableOp interchange round trips on files written by hand from the documented format
//! (shared/reference/tuners.md §2), including the M/N swap and validators.

mod common;
use common::bin;
use gemmtune::problem::{DType, Layout, Problem};
use gemmtune::tunableop::{export, export_set, import, parse_results, untuned_to_shapes, validators_for};
use std::path::Path;

fn data(name: &str) -> (String, std::path::PathBuf) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tunableop").join(name);
    (std::fs::read_to_string(&p).unwrap(), p)
}

#[test]
fn rocm_results_import_with_validators_and_the_m_n_swap() {
    let (text, path) = data("rocm_results.csv");
    let (t, skipped) = import(&text, &path).unwrap();
    assert_eq!(t.rows.len(), 4);
    assert_eq!(skipped.len(), 1, "the scaled (fp8) op is not a plain GEMM: {skipped:?}");
    assert!(skipped[0].contains(":10:"), "{skipped:?}");
    let v = t.validators.values().next().unwrap();
    assert_eq!(v["backend"], "rocm");
    assert_eq!(v["arch"], "gfx942:sramecc+:xnack-");
    assert_eq!(v["lib.rocblas"], "5.1.0-aa2a5e0a");
    assert_eq!(v["tunableop.PT_VERSION"], "2.9.0");
    // tn_4096_1_4096: BLAS m = N = 4096, n = M = 1.
    let p = Problem::linear(DType::BF16, 1, 4096, 4096).unwrap();
    let r = t.get(&p).unwrap();
    assert_eq!(r.kernel.as_str(), "rocm:hipblaslt-index:56537");
    assert!((r.time_us - 12.3).abs() < 1e-9);
    let p = Problem::linear(DType::F16, 8, 1280, 8192).unwrap();
    assert_eq!(t.get(&p).unwrap().kernel.as_str(), "rocm:rocblas:default");
    // Export writes the same rows back (extra BLAS_PARAMS fields are not kept).
    // The imported PT_VERSION goes back out without being given.
    let (out, left_out) = export(&t, "v1", &validators_for(&t, "v1", &[]));
    assert!(left_out.is_empty());
    for line in text.lines().filter(|l| l.starts_with("GemmTunableOp_")) {
        let key: Vec<&str> = line.split(',').take(3).collect();
        assert!(out.lines().any(|o| o.split(',').take(3).collect::<Vec<_>>() == key), "{line} missing in\n{out}");
    }
    for v in ["Validator,PT_VERSION,2.9.0", "Validator,GCN_ARCH_NAME,gfx942:sramecc+:xnack-", "Validator,ROCBLAS_VERSION,5.1.0-aa2a5e0a"] {
        assert!(out.contains(v), "{v} missing in\n{out}");
    }
    let again = parse_results(&out, Path::new("x.csv")).unwrap();
    assert_eq!(again.rows.len(), 4);
}

#[test]
fn older_signatures_and_cuda_side_files() {
    let (text, path) = data("old_readme.csv");
    let (t, skipped) = import(&text, &path).unwrap();
    assert!(skipped.is_empty());
    let p = Problem::new(DType::F32, Layout::NT, 4096, 25088, 64, 1).unwrap();
    assert_eq!(t.get(&p).unwrap().kernel.as_str(), "rocm:hipblaslt-index:1219");
    let (text, path) = data("cuda_results.csv");
    let (t, _) = import(&text, &path).unwrap();
    let v = t.validators.values().next().unwrap();
    assert_eq!(v["backend"], "cuda");
    assert!(t.rows.iter().all(|r| r.kernel.as_str() == "cuda:cublas:default"));
    // CUDA rows have no TunableOp kernel beyond Default-on-ROCm: export leaves them out.
    let (_, left_out) = export(&t, "v1", &[]);
    assert_eq!(left_out.len(), 2);
}

#[test]
fn a_table_of_two_devices_exports_one_with_its_own_validators() {
    let (text, path) = data("rocm_results.csv");
    let (a, _) = import(&text, &path).unwrap();
    let other = text.replace("gfx942:sramecc+:xnack-", "gfx90a:sramecc+:xnack-").replace("Validator,PT_VERSION,2.9.0", "Validator,PT_VERSION,2.8.0");
    let (b, _) = import(&other, &path).unwrap();
    let mut t = a.clone();
    t.merge(&b);
    assert_eq!(t.rows.len(), 8, "both devices' rows are kept");
    let e = export_set(&t, None).unwrap_err().to_string();
    assert!(e.contains("2 validator sets") && e.contains("--set") && e.contains("gfx90a"), "{e}");
    assert!(export_set(&t, Some("v9")).is_err());
    for (arch, pt) in [("gfx942", "2.9.0"), ("gfx90a", "2.8.0")] {
        let id = t.validators.iter().find(|(_, v)| v["arch"].starts_with(arch)).unwrap().0.as_str();
        let (out, left_out) = export(&t, id, &validators_for(&t, id, &[]));
        assert!(out.contains(&format!("Validator,GCN_ARCH_NAME,{arch}")) && out.contains(&format!("Validator,PT_VERSION,{pt}")), "{out}");
        assert!(!out.contains(if arch == "gfx942" { "gfx90a" } else { "gfx942" }), "{out}");
        assert_eq!(out.lines().filter(|l| l.starts_with("GemmTunableOp_")).count(), 4);
        assert_eq!(left_out, vec![format!("4 rows of other validator sets than {id}")]);
    }
}

#[test]
fn untuned_files_become_shape_files() {
    let (text, path) = data("untuned.csv");
    let (f, skipped) = untuned_to_shapes(&text, &path).unwrap();
    assert!(skipped.is_empty());
    assert_eq!(f.entries.len(), 3);
    assert_eq!(f.entries[0].calls, 2.0);
    assert_eq!(f.entries[0].problem, Problem::linear(DType::BF16, 1, 6144, 4096).unwrap());
    assert_eq!(f.entries[2].problem, Problem::new(DType::F16, Layout::NT, 128, 64, 32, 16).unwrap());
}

#[test]
fn cli_import_export_and_profile() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = data("rocm_results.csv");
    let table = dir.path().join("t.csv");
    let o = bin().args(["table", "import"]).arg(&path).arg("--out").arg(&table).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("tunableop_results0.csv");
    let o = bin().args(["table", "export"]).arg(&table).args(["--validator", "PT_VERSION=2.9.0", "--out"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("GemmTunableOp_BFloat16_TN,tn_4096_1_4096_ld_4096_4096_4096,Gemm_Hipblaslt_TN_56537,0.012300"), "{text}");
    let (_, untuned) = data("untuned.csv");
    let shapes = dir.path().join("s.csv");
    let o = bin().args(["profile", "--from-tunableop-untuned"]).arg(&untuned).arg("--out").arg(&shapes).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(gemmtune::shapes::ShapeFile::load(&shapes).unwrap().entries.len(), 3);
}
