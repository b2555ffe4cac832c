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
    // A file with no TunableOp lines (a gemmtune shape file given by mistake) is an error.
    let o = bin().args(["profile", "--from-tunableop-untuned"]).arg(&shapes).arg("--out").arg(dir.path().join("s2.csv")).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.path().join("s2.csv").exists());
}

/// The CLI never overwrites what it does not own: import adds to the table at --out
/// (its rows kept) and refuses its own input as --out or a file that is not a table;
/// export refuses to write over a gemmtune table, and a set with nothing TunableOp can
/// hold; an empty import is an error; an empty --out file (mktemp) is a new table.
#[test]
fn cli_import_and_export_keep_what_they_do_not_own() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let o = bin().args(args).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let s = |x: &str| std::ffi::OsString::from(x);
    let (_, rocm) = data("rocm_results.csv");
    let (_, cuda) = data("cuda_results.csv");
    let table = dir.path().join("t.csv");
    std::fs::write(&table, "").unwrap();
    assert_eq!(run(&[&s("table"), &s("import"), rocm.as_os_str(), &s("--out"), table.as_os_str()]).0, Some(0));
    let before = gemmtune::table::Table::load(&table).unwrap().rows.len();
    let (code, err) = run(&[&s("table"), &s("import"), cuda.as_os_str(), &s("--out"), table.as_os_str()]);
    assert_eq!(code, Some(0), "{err}");
    let after = gemmtune::table::Table::load(&table).unwrap().rows.len();
    let cuda_rows = import(&data("cuda_results.csv").0, &cuda).unwrap().0.rows.len();
    assert_eq!(after, before + cuda_rows, "the ROCm rows are kept beside the CUDA ones");
    // Another GPU's CUDA file (CUDA files name no device or arch): its own machine, kept
    // beside the first file's rows, not over them.
    let other_gpu = dir.path().join("a100_results.csv");
    std::fs::copy(&cuda, &other_gpu).unwrap();
    let (code, err) = run(&[&s("table"), &s("import"), other_gpu.as_os_str(), &s("--out"), table.as_os_str()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(gemmtune::table::Table::load(&table).unwrap().rows.len(), after + cuda_rows);

    let copy = dir.path().join("r.csv");
    std::fs::copy(&rocm, &copy).unwrap();
    let (code, err) = run(&[&s("table"), &s("import"), copy.as_os_str(), &s("--out"), copy.as_os_str()]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&rocm).unwrap(), "the input is untouched");
    let shapes = dir.path().join("s.csv");
    std::fs::write(&shapes, "dtype,m,n,k\nf32,1,64,96\n").unwrap();
    let (code, err) = run(&[&s("table"), &s("import"), rocm.as_os_str(), &s("--out"), shapes.as_os_str()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(std::fs::read_to_string(&shapes).unwrap().starts_with("dtype,m,n,k"), "the shape file is untouched");
    let empty = dir.path().join("e.csv");
    std::fs::write(&empty, "").unwrap();
    let (code, err) = run(&[&s("table"), &s("import"), empty.as_os_str(), &s("--out"), dir.path().join("new.csv").as_os_str()]);
    assert!(code == Some(2) && err.contains("no TunableOp result lines"), "{err}");

    let other = dir.path().join("t2.csv");
    std::fs::copy(&table, &other).unwrap();
    let (code, err) = run(&[&s("table"), &s("export"), table.as_os_str(), &s("--set"), &s("v1"), &s("--out"), other.as_os_str()]);
    assert!(code == Some(2) && err.contains("holds a gemmtune table"), "{err}");
    let (code, err) = run(&[&s("table"), &s("export"), table.as_os_str(), &s("--out"), table.as_os_str()]);
    assert_eq!(code, Some(2), "{err}");
    // A CPU table has nothing TunableOp names.
    let cpu = Path::new(env!("CARGO_MANIFEST_DIR")).join("tables/cpu-smollm2-135m-q.csv");
    let (code, err) = run(&[&s("table"), &s("export"), cpu.as_os_str(), &s("--out"), dir.path().join("x.csv").as_os_str()]);
    assert!(code == Some(2) && err.contains("nothing written"), "{err}");
    assert!(!dir.path().join("x.csv").exists());
}

/// Import keeps only what it can stand behind: a padded operand (leading dimension not
/// the packed one; a stride over one column is free) and a time that is not positive are
/// skipped with the reason, a repeated problem is reported (the later line kept), and
/// ROCm kernels make a ROCm set even without ROCm validator lines.
#[test]
fn import_skips_padded_operands_bad_times_and_reports_repeats() {
    let text = "\
GemmTunableOp_BFloat16_TN,tn_4096_8_4096_ld_4096_4096_4096,Gemm_Rocblas_7,0.02
GemmTunableOp_BFloat16_TN,tn_4096_8_4096_ld_4160_4096_4096,Gemm_Rocblas_7,0.02
GemmTunableOp_BFloat16_TN,tn_4096_1_4096_ld_4096_4096_9999,Gemm_Rocblas_7,0.02
GemmTunableOp_BFloat16_NT,nt_64_128_32_ld_64_128_64,Gemm_Rocblas_3,0.01
GemmTunableOp_BFloat16_TN,tn_1024_8_1024_ld_1024_1024_1024,Gemm_Rocblas_5,-1
GemmTunableOp_BFloat16_TN,tn_4096_8_4096_ld_4096_4096_4096,Gemm_Rocblas_9,0.01
";
    let (t, skipped) = import(text, Path::new("r.csv")).unwrap();
    let all = skipped.join("\n");
    assert!(all.contains("r.csv:2:") && all.contains("lda 4160 is not the packed 4096"), "{all}");
    assert!(all.contains("r.csv:5:") && all.contains("not a positive time"), "{all}");
    assert!(all.contains("r.csv:1: the same problem again on line 6"), "{all}");
    // Line 3: ldc over a single column (M = 1) is free; line 4 is packed NT.
    let ms: Vec<usize> = t.rows.iter().map(|r| r.problem.m).collect();
    assert_eq!(t.rows.len(), 3, "{ms:?} / {all}");
    let p = Problem::new(DType::BF16, Layout::TN, 8, 4096, 4096, 1).unwrap();
    assert_eq!(t.get(&p).unwrap().kernel.as_str(), "rocm:rocblas:9", "the later line wins");
    let set = &t.validators[&t.rows[0].validators];
    assert_eq!(set["backend"], "rocm");
}
