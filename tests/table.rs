//! Table format: round trips, integrity, per-row validation, merge.

use gemmtune::backend::cpu::CpuBackend;
use gemmtune::backend::{Backend, KernelId};
use gemmtune::problem::{DType, Layout, Problem, WeightFormat};
use gemmtune::shapes::ShapeFile;
use gemmtune::table::{describe_skips, Table, TableRow};
use std::path::Path;

fn row(p: Problem, kernel: &str, vid: &str, at: &str) -> TableRow {
    TableRow {
        problem: p,
        kernel: KernelId::new(kernel),
        time_us: 12.5,
        default_kernel: KernelId::new("cpu:gemm:t2"),
        default_time_us: 20.0,
        speedup: 1.6,
        noise_pct: 1.25,
        tflops: 0.0123,
        gbps: 45.5,
        candidates: 16,
        rejected: 2,
        validators: vid.into(),
        attrs: "note=a b".into(),
        tuned_at: at.into(),
        line: 0,
    }
}

fn sample_table(b: &CpuBackend) -> Table {
    let mut t = Table::default();
    t.comments.push("test table".into());
    let vid = t.validator_id(&b.identity().validators());
    t.upsert(row(Problem::linear(DType::F32, 1, 576, 576).unwrap(), "cpu:gemm:t1", &vid, "2026-01-01T00:00:00Z"));
    t.upsert(row(Problem::new(DType::BF16, Layout::NT, 512, 96, 33, 4).unwrap(), "cpu:matrixmultiply:t1", &vid, "2026-01-01T00:00:00Z"));
    t
}

fn parse(text: &str) -> Result<Table, String> {
    Table::parse(text, Path::new("t.csv")).map_err(|e| e.to_string())
}

#[test]
fn round_trip_and_atomic_save() {
    let b = CpuBackend::new();
    let t = sample_table(&b);
    let again = parse(&t.to_text()).unwrap();
    assert_eq!(again.rows.len(), 2);
    assert_eq!(again.validators, t.validators);
    for (a, r) in again.rows.iter().zip(&t.rows) {
        assert_eq!(TableRow { line: 0, ..a.clone() }, *r);
        assert!(a.line > 0);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/table.csv");
    t.save(&path).unwrap();
    assert_eq!(Table::load(&path).unwrap().rows.len(), 2);
}

#[test]
fn damaged_rows_are_reported_with_line_and_field() {
    let b = CpuBackend::new();
    let text = sample_table(&b).to_text();
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.iter().position(|l| l.starts_with("dtype,")).unwrap();
    let first = header + 2; // 1-based line of the first row
    let edit = |f: &dyn Fn(&str) -> String| -> String {
        let mut v: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        v[first - 1] = f(&v[first - 1]);
        v.join("\n") + "\n"
    };
    // A hand edit of a number breaks the checksum.
    let e = parse(&edit(&|l| l.replacen(",12.500,", ",10.000,", 1))).unwrap_err();
    assert!(e.contains(&format!("t.csv:{first}: field 'check'")), "{e}");
    // Blank and comment lines between rows, and CRLF line ends, do not shift the line named.
    let spaced = edit(&|l| l.replacen(",12.500,", ",10.000,", 1)).replacen("\ndtype,", "\n\n# note\n\ndtype,", 1);
    let e = parse(&spaced).unwrap_err();
    assert!(e.contains(&format!("t.csv:{}: field 'check'", first + 3)), "{e}");
    let e = parse(&edit(&|l| l.replacen(",12.500,", ",10.000,", 1)).replace('\n', "\r\n")).unwrap_err();
    assert!(e.contains(&format!("t.csv:{first}: field 'check'")), "{e}");
    // Truncation mid-row.
    let cut = text[..text.len() - 30].to_string();
    let e = parse(&cut).unwrap_err();
    assert!(e.contains("t.csv:") && (e.contains("fields") || e.contains("check")), "{e}");
    // Wrong header.
    let e = parse(&text.replace("dtype,layout,m", "dtype,layout,mm")).unwrap_err();
    assert!(e.contains("wrong header"), "{e}");
    // Missing format line / unsupported format.
    assert!(parse("dtype\n").unwrap_err().contains("#@format"));
    assert!(parse(&text.replace("#@format 1", "#@format 9")).unwrap_err().contains("format 9 is not supported"));
    // Undefined validator set.
    let e = parse(&text.replace("#@validators v1", "#@validators v7")).unwrap_err();
    assert!(e.contains("field 'validators'"), "{e}");
}

#[test]
fn unknown_dtype_and_bad_dims_are_rejected_even_with_a_good_checksum() {
    // Rows written by a (hypothetical) newer writer: correct checksum, bad content.
    let b = CpuBackend::new();
    let mut t = sample_table(&b);
    t.rows.truncate(1);
    let good = t.to_text();
    let refresh = |text: String| -> String {
        // Recompute the checksum of the edited row so only the content is wrong.
        let mut out = Vec::new();
        for l in text.lines() {
            if l.starts_with("f16,") || l.starts_with("f32,") || l.starts_with("f8,") || l.starts_with("f32/") {
                let mut fields: Vec<&str> = l.split(',').collect();
                fields.pop();
                let mut h = crc32fast::Hasher::new();
                for f in &fields {
                    h.update(f.as_bytes());
                    h.update(&[0x1f]);
                }
                out.push(format!("{},{:08x}", fields.join(","), h.finalize()));
            } else {
                out.push(l.to_string());
            }
        }
        out.join("\n") + "\n"
    };
    let e = parse(&refresh(good.replace("f32,TN,1,576", "f8,TN,1,576"))).unwrap_err();
    assert!(e.contains("field 'dtype'") && e.contains("unknown dtype"), "{e}");
    let e = parse(&refresh(good.replace("f32,TN,1,576", "f32,TN,0,576"))).unwrap_err();
    assert!(e.contains("field 'm'"), "{e}");
    let e = parse(&refresh(good.replace("f32,TN,1,576", "f32,TN,1,99999999999"))).unwrap_err();
    assert!(e.contains("field 'n'"), "{e}");
    // An error about the layout names the layout, not m.
    let e = parse(&refresh(good.replace("f32,TN,1,576", "f32/q8_0,NN,1,576"))).unwrap_err();
    assert!(e.contains("field 'layout'"), "{e}");
}

#[test]
fn rows_of_another_device_are_skipped_with_one_warning() {
    let b = CpuBackend::new();
    let mut t = sample_table(&b);
    let mut other = b.identity().validators();
    other.insert("device".into(), "Some Other CPU (64 threads)".into());
    let vid = t.validator_id(&other);
    t.upsert(row(Problem::linear(DType::F32, 2, 576, 576).unwrap(), "cpu:gemm:t1", &vid, "2026-01-01T00:00:00Z"));
    t.upsert(row(Problem::linear(DType::F32, 4, 576, 576).unwrap(), "cpu:gemm:t1", &vid, "2026-01-01T00:00:00Z"));
    // A kernel this machine cannot run is skipped too.
    let v1 = t.validator_id(&b.identity().validators());
    t.upsert(row(Problem::linear(DType::F32, 8, 576, 576).unwrap(), "cpu:skinny:sse9:m1:t1", &v1, "2026-01-01T00:00:00Z"));
    let t = parse(&t.to_text()).unwrap();
    let (ok, skipped) = t.check_rows(&b);
    assert_eq!(ok.len(), 2);
    assert_eq!(skipped.len(), 3);
    let warnings = describe_skips(Path::new("t.csv"), t.rows.len(), &skipped);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("2 of 5 rows skipped") && w.contains("device differs")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("kernel not usable")), "{warnings:?}");
}

#[test]
fn merge_keeps_the_newest_row_per_machine_and_every_machine_s_rows() {
    let b = CpuBackend::new();
    let mut a = sample_table(&b);
    let p = Problem::linear(DType::F32, 1, 576, 576).unwrap();
    // Another device: its row of the same problem stands beside ours.
    let mut other = Table::default();
    let mut w = b.identity().validators();
    w.insert("device".into(), "another CPU".into());
    let wid = other.validator_id(&w);
    other.upsert(row(p, "cpu:matrixmultiply:t2", &wid, "2026-07-01T00:00:00Z"));
    assert_eq!(a.merge(&other), 0);
    assert_eq!(a.rows.iter().filter(|r| r.problem == p).count(), 2);
    let merged = parse(&a.to_text()).unwrap();
    assert_eq!((merged.rows.len(), merged.validators.len()), (3, 2));
    // This device's dispatcher takes this device's row of the problem.
    let d = gemmtune::dispatch::Dispatcher::from_loaded(&merged, Path::new("t.csv"), CpuBackend::new(), false).unwrap();
    let (k, src) = d.choose(&p).unwrap();
    assert_eq!((k.as_str(), src), ("cpu:gemm:t1", gemmtune::dispatch::Source::Exact));
    // The same machine after an upgrade: its newer rows replace its old ones only.
    let mut upgraded = Table::default();
    let mut v = b.identity().validators();
    v.insert("gemmtune".into(), "9.9.9".into());
    let vid = upgraded.validator_id(&v);
    upgraded.upsert(row(p, "cpu:gemm:t2", &vid, "2026-06-01T00:00:00Z"));
    upgraded.upsert(row(p.with_m(3), "cpu:gemm:t2", &vid, "2026-06-01T00:00:00Z"));
    assert_eq!(a.merge(&upgraded), 1);
    let kernels: Vec<&str> = a.rows.iter().filter(|r| r.problem == p).map(|r| r.kernel.as_str()).collect();
    assert_eq!(kernels, ["cpu:gemm:t2", "cpu:matrixmultiply:t2"]);
    assert_eq!(a.rows.len(), 4);
    // One problem twice for one device is still a damaged table.
    let text = a.to_text();
    let dup = text.lines().find(|l| l.starts_with("f32,TN,3,")).unwrap();
    let e = parse(&format!("{text}{dup}\n")).unwrap_err();
    assert!(e.contains("listed twice for one device"), "{e}");
}

#[test]
fn quantized_keys_round_trip_and_old_files_load_unchanged() {
    let b = CpuBackend::new();
    let mut t = sample_table(&b);
    let old_text = t.to_text(); // dense rows only: what a writer before quantized keys wrote
    let vid = t.validator_id(&b.identity().validators());
    let dense = Problem::linear(DType::F32, 1, 576, 576).unwrap();
    for (f, kernel) in [(WeightFormat::Q4_1, "cpu:qdot:avx2:m1:n2:t1"), (WeightFormat::Q8_0, "cpu:dqgemm:t2")] {
        t.upsert(row(dense.with_weights(f).unwrap(), kernel, &vid, "2026-01-02T00:00:00Z"));
    }
    let g = Problem::linear(DType::BF16, 4, 4096, 14336).unwrap().with_weights(WeightFormat::G128).unwrap();
    t.upsert(row(g, "cpu:qsplit:avx2:x3:m4:n1:t2", &vid, "2026-01-02T00:00:00Z"));
    let text = t.to_text();
    assert!(text.contains("\nf32/q4_1,TN,1,576,576,1,") && text.contains("\nbf16/g128,TN,4,4096,14336,1,"), "{text}");
    let again = parse(&text).unwrap();
    assert_eq!(again.rows.iter().map(|r| r.problem).collect::<Vec<_>>(), t.rows.iter().map(|r| r.problem).collect::<Vec<_>>());
    // The dense and q4_1 rows of the same shape are distinct problems.
    assert_eq!(again.rows.iter().filter(|r| (r.problem.m, r.problem.n, r.problem.k) == (1, 576, 576)).count(), 3);
    // The old text (no quantized rows) parses to the same dense rows, checksums included.
    let old = parse(&old_text).unwrap();
    assert!(old.rows.iter().all(|r| r.problem.wformat.is_dense()) && old.rows.len() == 2);
    assert!(old_text.contains("\nf32,TN,1,576,576,1,"));
    // Unknown formats and K off the block are named with line and field.
    let bad = text.replace("f32/q8_0,TN,1,576,576", "f32/q3_k,TN,1,576,576");
    assert!(parse(&bad).unwrap_err().contains("field 'check'")); // edited: checksum first
    let shapes = |s: &str| ShapeFile::parse(s, Path::new("s.csv")).map_err(|e| e.to_string());
    let e = shapes("dtype,m,n,k\nf32/q4_1,1,8,64\nf32/q3_k,1,8,64\n").unwrap_err();
    assert!(e.contains("s.csv:3: field 'dtype'") && e.contains("weight format"), "{e}");
    let e = shapes("dtype,m,n,k\nf32/g128,1,8,576\n").unwrap_err();
    assert!(e.contains("s.csv:2: field 'k'") && e.contains("multiple of the g128 block"), "{e}");
    let e = shapes("dtype,layout,m,n,k\nf32/q8_0,NN,1,8,64\n").unwrap_err();
    assert!(e.contains("s.csv:2") && e.contains("[N, K]"), "{e}");
    let f = shapes("dtype,m,n,k\nf32/q4_1,1,8,64\nf32,1,8,64\n").unwrap();
    assert_eq!(f.entries.len(), 2, "same shape, different weights: two problems");
    assert_eq!(shapes(&f.to_csv()).unwrap().entries.iter().map(|e| e.problem).collect::<Vec<_>>(), f.entries.iter().map(|e| e.problem).collect::<Vec<_>>());
}

/// `table show` adds a batch column for batched rows and, in a table of several machines,
/// the validator set of each row: rows that differ only there are told apart.
#[test]
fn show_tells_apart_rows_that_differ_in_batch_or_machine() {
    let b = CpuBackend::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let show = |t: &Table| {
        t.save(&path).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_gemmtune")).args(["table", "show"]).arg(&path).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let header = |out: &str| out.lines().find(|l| l.trim_start().starts_with("type")).unwrap_or_default().split_whitespace().map(String::from).collect::<Vec<_>>();
    let mut t = Table::default();
    let vid = t.validator_id(&b.identity().validators());
    let p = Problem::linear(DType::F32, 8, 64, 32).unwrap();
    t.upsert(row(p, "cpu:gemm:t1", &vid, "2026-01-01T00:00:00Z"));
    let out = show(&t);
    assert_eq!(header(&out)[..5], ["type", "m", "n", "k", "kernel"], "{out}");
    t.upsert(row(Problem::new(DType::F32, Layout::TN, 8, 64, 32, 4).unwrap(), "cpu:gemm:t1", &vid, "2026-01-01T00:00:00Z"));
    let out = show(&t);
    assert_eq!(header(&out)[..6], ["type", "m", "n", "k", "batch", "kernel"], "{out}");
    assert!(out.lines().any(|l| l.split_whitespace().skip(2).take(4).eq(["8", "64", "32", "4"])), "{out}");
    let mut other = b.identity().validators();
    other.insert("device".into(), "another machine".into());
    let vid2 = t.validator_id(&other);
    t.upsert(row(p, "cpu:gemm:t2", &vid2, "2026-01-01T00:00:00Z"));
    let out = show(&t);
    assert_eq!(header(&out)[..7], ["type", "m", "n", "k", "batch", "set", "kernel"], "{out}");
    assert!(out.contains(&format!(" {vid2} ")) && out.contains(&format!(" {vid} ")), "{out}");
}

/// A row whose time is not positive or whose stamp is not a time is refused on load,
/// naming the line and field (merges keep the newest row by that stamp).
#[test]
fn rows_with_impossible_times_or_stamps_are_refused() {
    let b = CpuBackend::new();
    let mut t = Table::default();
    let vid = t.validator_id(&b.identity().validators());
    let p = Problem::linear(DType::F32, 1, 576, 576).unwrap();
    let check = |r: TableRow, field: &str| {
        let mut t = t.clone();
        t.upsert(r);
        let e = parse(&t.to_text()).unwrap_err();
        assert!(e.contains(&format!("field '{field}'")) && e.contains("t.csv:"), "{e}");
    };
    let mut r = row(p, "cpu:gemm:t1", &vid, "2026-01-01T00:00:00Z");
    r.time_us = -5.0;
    check(r, "time_us");
    check(row(p, "cpu:gemm:t1", &vid, "yesterday"), "tuned_at");
    // Newest by time, not by text: a fractional second sorts before "Z" as text.
    let mut a = Table::default();
    let va = a.validator_id(&b.identity().validators());
    a.upsert(row(p, "cpu:gemm:t1", &va, "2026-01-01T00:00:00Z"));
    let mut newer = Table::default();
    let vn = newer.validator_id(&b.identity().validators());
    newer.upsert(row(p, "cpu:gemm:t2", &vn, "2026-01-01T00:00:00.500Z"));
    a.merge(&newer);
    assert_eq!(a.get(&p).unwrap().kernel.as_str(), "cpu:gemm:t2");
}
