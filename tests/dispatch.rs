//! Dispatcher: exact hits, bucket and default fallbacks, coverage, record mode.

mod common;
use gemmtune::backend::cpu::CpuBackend;
use gemmtune::backend::{Backend, KernelId, Operands};
use gemmtune::dispatch::{Dispatcher, Source};
use gemmtune::problem::{DType, Problem};
use gemmtune::shapes::ShapeFile;
use gemmtune::table::{Table, TableRow};
use gemmtune::tune::validate::{check_output, operand_seeds};

fn table_with(rows: &[(Problem, &str)]) -> Table {
    let b = CpuBackend::new();
    let mut t = Table::default();
    let vid = t.validator_id(&b.identity().validators());
    for (p, k) in rows {
        t.upsert(TableRow {
            problem: *p,
            kernel: KernelId::new(*k),
            time_us: 1.0,
            default_kernel: b.default_kernel(p),
            default_time_us: 2.0,
            speedup: 2.0,
            noise_pct: 1.0,
            tflops: 0.1,
            gbps: 1.0,
            candidates: 3,
            rejected: 0,
            validators: vid.clone(),
            attrs: String::new(),
            tuned_at: "2026-01-01T00:00:00Z".into(),
            line: 0,
        });
    }
    t
}

fn run(d: &Dispatcher<CpuBackend>, p: &Problem, seed: u64) -> Source {
    let b = d.backend();
    let (xs, ws) = operand_seeds(seed);
    let mut ops = Operands {
        x: b.alloc(p.dtype, p.x_len()).unwrap(),
        w: b.alloc(p.dtype, p.w_len()).unwrap(),
        y: b.alloc(p.dtype, p.y_len()).unwrap(),
    };
    b.fill_random(&mut ops.x, xs).unwrap();
    b.fill_random(&mut ops.w, ws).unwrap();
    b.fill_nan(&mut ops.y).unwrap();
    let s = d.gemm(p, &ops.x, &ops.w, &mut ops.y).unwrap();
    check_output(p, &b.download(&ops.y).unwrap(), seed).unwrap();
    s
}

#[test]
fn exact_bucket_and_default_with_coverage_and_record() {
    let p1 = Problem::linear(DType::F32, 1, 64, 96).unwrap();
    let p8 = p1.with_m(8);
    let p64 = p1.with_m(64);
    let t = table_with(&[(p1, "cpu:gemm:t1"), (p8, "cpu:matrixmultiply:t1"), (p64, "cpu:matrixmultiply:t1")]);
    let dir = tempfile::tempdir().unwrap();
    let tpath = dir.path().join("t.csv");
    t.save(&tpath).unwrap();
    let rec = dir.path().join("unseen.csv");
    let d = Dispatcher::from_table(&tpath, CpuBackend::new(), true).unwrap().record_unseen(&rec);
    assert!(d.warnings().is_empty());

    assert_eq!(run(&d, &p1, 1), Source::Exact);
    assert_eq!(d.choose(&p1).unwrap().0.as_str(), "cpu:gemm:t1");
    // M = 5 takes the smallest tuned M above it (8).
    assert_eq!(run(&d, &p1.with_m(5), 2), Source::Bucket);
    assert_eq!(d.choose(&p1.with_m(5)).unwrap().0.as_str(), "cpu:matrixmultiply:t1");
    // M = 100 is above every bucket: the largest below (64).
    assert_eq!(d.choose(&p1.with_m(100)).unwrap().1, Source::Bucket);
    // Other weights: the default.
    let other = Problem::linear(DType::F32, 3, 65, 96).unwrap();
    assert_eq!(run(&d, &other, 3), Source::Default);
    assert_eq!(run(&d, &other, 4), Source::Default);

    let cov = d.coverage();
    assert_eq!((cov.hits, cov.bucket, cov.default), (1, 1, 2));
    assert_eq!(cov.unseen.get(&other), Some(&2));
    assert!(cov.summary().contains("4 GEMM calls"), "{}", cov.summary());

    d.flush_record().unwrap();
    d.flush_record().unwrap(); // flushing again must not double the counts
    let f = ShapeFile::load(&rec).unwrap();
    assert_eq!(f.entries.len(), 2);
    let e = f.entries.iter().find(|e| e.problem == other).unwrap();
    assert_eq!(e.calls, 2.0);
    drop(d); // flushes too: still no double counting
    assert_eq!(ShapeFile::load(&rec).unwrap().entries.iter().find(|e| e.problem == other).unwrap().calls, 2.0);
}

#[test]
fn bucket_skips_kernels_that_cannot_run_the_requested_m() {
    // The skinny kernel (M <= 16) tuned for M = 16 cannot serve M = 200.
    let p16 = Problem::linear(DType::F32, 16, 32, 64).unwrap();
    let isa = if std::arch::is_x86_feature_detected!("avx2") { "avx2" } else { "portable" };
    let t = table_with(&[(p16, &format!("cpu:skinny:{isa}:m4:t1"))]);
    let d = Dispatcher::from_loaded(&t, std::path::Path::new("t.csv"), CpuBackend::new(), true).unwrap();
    assert_eq!(run(&d, &p16.with_m(3), 5), Source::Bucket);
    assert_eq!(run(&d, &p16.with_m(200), 6), Source::Default);
}

#[test]
fn a_bucket_row_of_a_library_configuration_stands_for_the_default() {
    // A row whose kernel stands for a library configuration (a cuBLASLt algo chosen at
    // M = 128) gives M = 64 the library's own choice, the default; rows of our kernels
    // are still fallbacks.
    let p128 = Problem::linear(DType::F32, 128, 32, 64).unwrap();
    let t = table_with(&[(p128, "cpu:matrixmultiply:t1"), (p128.with_m(32), "cpu:gemm:t1")]);
    let mut b = common::Restricted::new("cpu:gemm:t2", &["cpu:matrixmultiply:t1", "cpu:gemm:t1"]);
    b.fixed_m = vec![KernelId::new("cpu:matrixmultiply:t1")];
    let d = Dispatcher::from_loaded(&t, std::path::Path::new("t.csv"), b, true).unwrap();
    let choice = |m: usize| d.choose(&p128.with_m(m)).unwrap();
    assert_eq!(choice(64), (KernelId::new("cpu:gemm:t2"), Source::Default), "the nearest row above is a configuration");
    assert_eq!(choice(200), (KernelId::new("cpu:gemm:t2"), Source::Default), "the nearest row below is a configuration");
    assert_eq!(choice(16), (KernelId::new("cpu:gemm:t1"), Source::Bucket), "the nearest row above is ours");
    assert_eq!(choice(128), (KernelId::new("cpu:matrixmultiply:t1"), Source::Exact), "an exact row is used whatever its kernel");
}

#[test]
fn strict_refuses_rows_of_another_device() {
    let p = Problem::linear(DType::F32, 1, 64, 96).unwrap();
    let mut t = table_with(&[(p, "cpu:gemm:t1")]);
    t.validators.get_mut("v1").unwrap().insert("device".into(), "elsewhere".into());
    let path = std::path::Path::new("t.csv");
    let d = Dispatcher::from_loaded(&t, path, CpuBackend::new(), false).unwrap();
    assert_eq!(d.warnings().len(), 1);
    assert_eq!(d.choose(&p).unwrap().1, Source::Default);
    let e = Dispatcher::from_loaded(&t, path, CpuBackend::new(), true).err().unwrap();
    assert!(e.to_string().contains("device differs"), "{e}");
    assert_eq!(e.exit_code(), 2);
}
