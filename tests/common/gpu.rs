//! Device-independent checks for GPU backends, run by the `#[ignore]`d tests of each GPU
//! backend on its hardware (tests/cuda.rs, tests/rocm.rs).
#![allow(dead_code)]

use gemmtune::backend::{Backend, Operands};
use gemmtune::problem::{DType, Layout, Problem};
use gemmtune::random;
use gemmtune::tune::validate::validate;

/// X, W (packed when the problem's weights are) and Y of `p`.
pub fn operands<B: Backend>(b: &B, p: &Problem) -> Operands<B::Buffer> {
    gemmtune::tune::alloc_operands(b, p).unwrap()
}

/// The device fill reproduces `random::element` bit for bit; NaN poison is seen by `inspect`.
pub fn fill_is_bit_exact<B: Backend>(b: &B) {
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
        assert!(b.guard_intact(&buf).unwrap());
    }
}

/// Shapes that exercise tails, odd K, batches and every layout.
pub const AWKWARD: [(DType, Layout, usize, usize, usize, usize); 9] = [
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

/// Every candidate resolves and validates on two draws; returns the failures of our own
/// kernels and of library kernels (`is_library(id)`), each as `id: reason`.
pub fn every_candidate_is_correct<B: Backend>(b: &B, p: &Problem, is_library: impl Fn(&str) -> bool) -> (usize, Vec<String>, Vec<String>) {
    let mut ops = operands(b, p);
    let cands = b.candidates(p).unwrap();
    let (mut own_wrong, mut lib_wrong) = (Vec::new(), Vec::new());
    for (i, c) in cands.iter().enumerate() {
        let k = b.resolve(p, &c.id).unwrap_or_else(|e| panic!("{p}: {} does not resolve: {e}", c.id));
        for draw in 0..2u64 {
            if let Err(why) = validate(b, &k, p, &mut ops, 100 + 2 * i as u64 + draw) {
                let line = format!("{}: {why}", c.id);
                if is_library(c.id.as_str()) {
                    lib_wrong.push(line)
                } else {
                    own_wrong.push(line)
                }
                break;
            }
        }
    }
    (cands.len(), own_wrong, lib_wrong)
}

/// One graph-timed sample of the default on a 128 MiB weight: above the HBM roofline
/// (~20 us at 6 TB/s) and below a generous 1 ms.
pub fn graph_timing_is_sane<B: Backend>(b: &B) {
    let p = Problem::linear(DType::BF16, 1, 8192, 8192).unwrap();
    let mut sets = vec![operands(b, &p), operands(b, &p)];
    for (i, s) in sets.iter_mut().enumerate() {
        b.fill_random(&mut s.x, i as u64).unwrap();
        b.fill_random(&mut s.w, 10 + i as u64).unwrap();
    }
    let k = b.resolve(&p, &b.default_kernel(&p)).unwrap();
    let t = b.time(&k, &p, &mut sets, 20).unwrap();
    assert!(t > 15e-6 && t < 1e-3, "{t}");
}
