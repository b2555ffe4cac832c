//! The command-line tool end to end, as a user runs it (real processes, real files).

mod common;
use common::bin;
use std::fs;

const SHAPES: &str = "# tiny test shapes\n\
dtype,layout,m,n,k,batch,phase,model,layer,calls,weight\n\
f32,TN,1,64,96,1,decode,test,qkv,2,2\n\
f32,TN,4,64,96,1,decode,test,qkv,2,1\n\
bf16,TN,24,40,64,1,prefill,test,o,1,1\n";

fn output(cmd: &mut std::process::Command) -> (i32, String, String) {
    let o = cmd.output().expect("run gemmtune");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

#[test]
fn tune_show_validate_resume_dispatch_bench() {
    let dir = tempfile::tempdir().unwrap();
    let shapes = dir.path().join("s.csv");
    fs::write(&shapes, SHAPES).unwrap();
    let table = dir.path().join("t.csv");
    let (code, out, err) = output(bin().args(["tune", "--shapes"]).arg(&shapes).arg("--out").arg(&table).args(["--budget-ms", "40", "--seed", "3"]));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains('\x1b') && !out.contains('\x1b'), "escape codes in non-TTY output");
    assert!(err.contains("[3/3]") && err.contains("table written"), "{err}");
    assert!(out.contains("kernel") && out.lines().count() >= 5, "{out}");

    let (code, out, _) = output(bin().args(["table", "show"]).arg(&table));
    assert_eq!(code, 0);
    assert!(out.contains("3 rows, 1 validator sets") && out.contains("backend=cpu"), "{out}");

    let (code, out, err) = output(bin().args(["table", "validate", "--strict"]).arg(&table));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 of 3 rows usable"), "{out}");

    // Rerunning resumes: nothing re-tuned, rows unchanged.
    let before = fs::read_to_string(&table).unwrap();
    let (code, _, err) = output(bin().args(["tune", "--shapes"]).arg(&shapes).arg("--out").arg(&table));
    assert_eq!(code, 0);
    assert!(err.contains("resuming: 3 of 3 shapes already tuned"), "{err}");
    assert_eq!(fs::read_to_string(&table).unwrap(), before);

    let rec = dir.path().join("unseen.csv");
    let (code, out, err) = output(
        bin().args(["dispatch", "--table"]).arg(&table).arg("--shapes").arg(&shapes).args(["--extra-m", "2,7"]).arg("--record").arg(&rec),
    );
    assert_eq!(code, 0, "{err}{out}");
    assert!(out.contains("exact") && out.contains("bucket") && !out.contains("WRONG"), "{out}");
    assert!(out.contains("7 GEMM calls: 3 exact"), "{out}");
    let recorded = fs::read_to_string(&rec).unwrap();
    assert_eq!(recorded.lines().filter(|l| l.starts_with("f32") || l.starts_with("bf16")).count(), 4, "{recorded}");
    assert!(out.contains("4 unseen shapes recorded to"), "{out}");
    // A --record that cannot be kept (a directory, a table) is refused before any work.
    for bad in [dir.path().to_path_buf(), table.clone()] {
        let (code, out, err) = output(bin().args(["dispatch", "--table"]).arg(&table).arg("--shapes").arg(&shapes).arg("--record").arg(&bad));
        assert_eq!(code, 2, "{err}");
        assert!(out.is_empty() && err.contains(&bad.display().to_string()), "{out}{err}");
    }
    assert_eq!(fs::read_to_string(&table).unwrap(), before, "the table given as --record is untouched");

    let json = dir.path().join("b.json");
    // The stale check is loosened: a table tuned in 40 ms on shapes of a few microseconds,
    // benched while the other tests of this file load the 2 CPUs, can read a few percent
    // slower than its default on noise alone (it did once in a CI run); the gate itself is
    // tested in tests/reports.rs.
    let (code, out, err) =
        output(bin().args(["bench", "--table"]).arg(&table).args(["--budget-ms", "20", "-q", "--max-stale", "50%", "--json"]).arg(&json));
    assert_eq!(code, 0, "{err}{out}");
    assert!(out.contains("limits: peak") && out.contains("gate: passed"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["schema"], "gemmtune-bench/1");
    assert_eq!(v["shapes"].as_array().unwrap().len(), 3);
    assert!(v["limits"]["bandwidth"].as_f64().unwrap() > 1e8);
    assert_eq!(v["hot"], false);

    // --hot times on one operand set and says so; hot and cold runs never gate each other.
    let hot = dir.path().join("hot.json");
    let (code, out, err) = output(bin().args(["bench", "--hot", "--table"]).arg(&table).args(["--budget-ms", "20", "-q", "--json"]).arg(&hot));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("timed hot") && out.contains("gate: passed"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&hot).unwrap()).unwrap();
    assert_eq!(v["hot"], true);
    for (flag, base) in [(None, &hot), (Some("--hot"), &json)] {
        let (code, _, err) = output(bin().arg("bench").args(flag).arg("--table").arg(&table).args(["--budget-ms", "20", "-q", "--baseline"]).arg(base));
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--baseline was timed") && err.contains("do not compare"), "{err}");
    }

    // --kernel times one named kernel on every shape, no table needed; it must say which
    // shapes (and cannot be mixed with a table).
    let forced = dir.path().join("k.json");
    let (code, out, err) =
        output(bin().args(["bench", "--kernel", "cpu:gemm:t1", "--shapes"]).arg(&shapes).args(["--budget-ms", "20", "-q", "--json"]).arg(&forced));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("gate: passed (3 shapes)"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&forced).unwrap()).unwrap();
    for s in v["shapes"].as_array().unwrap() {
        assert_eq!((s["kernels"][0]["kernel"].as_str(), s["source"].as_str()), (Some("cpu:gemm:t1"), Some("kernel")), "{s}");
    }
    let (code, _, err) = output(bin().args(["bench", "--kernel", "cpu:nonsense:t1", "--shapes"]).arg(&shapes).args(["--budget-ms", "20", "-q"]));
    assert_ne!(code, 0);
    assert!(err.contains("--kernel cpu:nonsense:t1 cannot run"), "{err}");
    let (code, _, err) = output(bin().args(["bench", "--kernel", "cpu:gemm:t1"]));
    assert!(code == 2 && err.contains("--shapes"), "{err}");
    // With everything else right, --table beside --kernel is what clap refuses.
    let (code, _, err) = output(bin().args(["bench", "--kernel", "cpu:gemm:t1", "--shapes"]).arg(&shapes).arg("--table").arg(&table));
    assert!(code == 2 && err.contains("cannot be used with"), "{err}");

    let merged = dir.path().join("m.csv");
    let (code, out, _) = output(bin().args(["table", "merge"]).arg(&table).arg(&table).arg("--out").arg(&merged));
    assert_eq!(code, 0);
    assert!(out.contains("3 rows"), "{out}");
}

#[test]
fn input_errors_exit_2_and_name_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    fs::write(&bad, "dtype,m,n,k\nf32,1,2,3\nf32,1,x,3\n").unwrap();
    let out = dir.path().join("t.csv");
    let (code, _, err) = output(bin().args(["tune", "--shapes"]).arg(&bad).arg("--out").arg(&out));
    assert_eq!(code, 2);
    assert!(err.contains("bad.csv:3: field 'n'"), "{err}");
    assert!(!out.exists(), "no table for failed input");

    let (code, _, err) = output(bin().args(["tune", "--shapes", "/nonexistent/s.csv", "--out"]).arg(&out));
    assert_eq!(code, 2);
    assert!(err.contains("file not found"), "{err}");

    let (code, _, err) = output(bin().args(["tune", "--shapes"]).arg(&bad).args(["--backend", "cuda", "--out"]).arg(&out));
    assert_eq!(code, 2);
    assert!(err.lines().count() == 1 && err.contains("cuda"), "{err}");

    let good = dir.path().join("good.csv");
    fs::write(&good, "dtype,m,n,k\nf32,1,2,3\n").unwrap();
    let (code, _, err) = output(bin().args(["tune", "--shapes"]).arg(&good).args(["--dtype", "f8", "--out"]).arg(&out));
    assert_eq!(code, 2);
    assert!(err.contains("unknown dtype 'f8'"), "{err}");

    let (code, _, _) = output(bin().args(["tune", "--bogus"]));
    assert_eq!(code, 2);

    // Chained launches exist on CUDA sm_90+ only: the CPU refuses --pdl before tuning or
    // timing anything.
    let (code, _, err) = output(bin().args(["tune", "--pdl", "--shapes"]).arg(&good).arg("--out").arg(&out));
    assert_eq!(code, 2);
    assert!(err.contains("--pdl") && err.contains("cpu"), "{err}");
    assert!(!out.exists(), "no table when --pdl is refused");

    fs::write(&out, "not a table\n").unwrap();
    let (code, _, err) = output(bin().args(["table", "show"]).arg(&out));
    assert_eq!(code, 2);
    assert!(err.contains("t.csv:1") && err.contains("#@format"), "{err}");
}

#[test]
fn table_check_flags_rows_that_need_retuning() {
    let dir = tempfile::tempdir().unwrap();
    let shapes = dir.path().join("s.csv");
    fs::write(&shapes, "dtype,m,n,k\nf32,1,64,96\n").unwrap();
    let table = dir.path().join("t.csv");
    let (code, _, err) = output(bin().args(["tune", "--shapes"]).arg(&shapes).arg("--out").arg(&table).args(["--budget-ms", "20", "-q"]));
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = output(bin().args(["table", "check"]).arg(&table));
    assert_eq!(code, 0);
    assert!(out.contains("all 1 rows match"), "{out}");
    // The same table as if tuned with another version of the gemm crate.
    let text = fs::read_to_string(&table).unwrap();
    let v = env!("CARGO_PKG_VERSION");
    fs::write(&table, text.replace(&format!("\"gemmtune\":\"{v}\""), "\"gemmtune\":\"0.0.1\"")).unwrap();
    let (code, out, err) = output(bin().args(["table", "check"]).arg(&table));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("re-tune needed") && out.contains("gemmtune differs"), "{out}");
}

/// Values no run can use are usage errors before anything loads (the model path given does
/// not exist): a batch of a typo's size (it ran out of memory), zero batches, tokens or
/// context, a GPU storage type that is not 16-bit, an empty served name, a CPU device
/// other than 0, an address that does not resolve, the ROCm backend, a --record folder.
#[test]
fn impossible_runtime_values_are_usage_errors() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/none.gguf");
    for (cmd, args, field) in [
        ("generate", &["--batch", "99999999"][..], "--batch"),
        ("generate", &["--batch", "0"], "--batch"),
        ("generate", &["--max-tokens", "0"], "--max-tokens"),
        ("generate", &["--gpu-dtype", "f32"], "--gpu-dtype"),
        ("generate", &["--context", "0"], "--context"),
        ("serve", &["--max-batch", "100000000"], "--max-batch"),
        ("serve", &["--name", ""], "--name"),
        ("generate", &["--device", "3"], "--device 3"),
        ("serve", &["--host", "999.1.1.1"], "--host"),
        ("generate", &["--backend", "rocm"], "cpu or cuda"),
        ("generate", &["--record", "/"], "--record /"),
    ] {
        let mut c = bin();
        c.arg(cmd).arg("--model").arg(&model).args(args);
        if cmd == "generate" {
            c.args(["--prompt", "Hi"]);
        }
        let (code, _, err) = output(&mut c);
        assert_eq!(code, 2, "{cmd} {args:?}: {err}");
        assert!(err.contains(field), "{cmd} {args:?}: {err}");
    }
}

/// bench checks where its reports go before it times anything: a --json that is a folder,
/// an --out that is a file, --format without --out, and --limits with report options are
/// usage errors (the first two failed after the timing, the last two wrote nothing).
#[test]
fn bench_report_paths_are_checked_before_timing() {
    let dir = tempfile::tempdir().unwrap();
    let afile = dir.path().join("afile");
    fs::write(&afile, "x").unwrap();
    // No table: every case must fail on its report options before the table is read.
    let table = dir.path().join("missing.csv");
    for args in [
        vec!["--json".into(), dir.path().display().to_string()],
        vec!["--out".into(), afile.display().to_string()],
        vec!["--format".into(), "md".into()],
    ] {
        let (code, _, err) = output(bin().args(["bench", "--table"]).arg(&table).args(&args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.contains("missing.csv"), "{args:?} checked after the table: {err}");
    }
    let (code, _, err) = output(bin().args(["bench", "--limits", "--json"]).arg(dir.path().join("l.json")));
    assert!(code == 2 && err.contains("--limits"), "{err}");
}

/// tune says when an --exclude names no candidate of any shape (a typo would leave the
/// kernel meant in the sweep), and refuses a CPU device other than 0.
#[test]
fn tune_flags_a_typo_in_exclude_and_a_cpu_device_ordinal() {
    let dir = tempfile::tempdir().unwrap();
    let shapes = dir.path().join("s.csv");
    fs::write(&shapes, "dtype,m,n,k\nf32,1,64,96\n").unwrap();
    let out = dir.path().join("t.csv");
    let (code, _, err) = output(
        bin().args(["tune", "--shapes"]).arg(&shapes).arg("--out").arg(&out).args(["--budget-ms", "20", "--exclude", "cpu:bogus", "--exclude", "cpu:gemm:t1"]),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("--exclude cpu:bogus is not a candidate") && !err.contains("--exclude cpu:gemm:t1 is not"), "{err}");
    let (code, _, err) = output(bin().args(["tune", "--shapes"]).arg(&shapes).arg("--out").arg(&out).args(["--device", "3"]));
    assert!(code == 2 && err.contains("one device"), "{err}");
    // Workers for devices that are not there: one error from the supervisor, before any.
    let (code, _, err) = output(bin().args(["tune", "--shapes"]).arg(&shapes).arg("--out").arg(&out).args(["--devices", "0,1"]));
    assert!(code == 2 && err.lines().count() == 1 && err.contains("device 1 requested"), "{err}");
}
