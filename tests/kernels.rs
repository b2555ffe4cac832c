//! Every CPU kernel against the f64 reference on awkward shapes, dtypes and layouts.

use gemmtune::backend::cpu::CpuBackend;
use gemmtune::backend::{Backend, Operands};
use gemmtune::problem::{DType, Layout, Problem};
use gemmtune::tune::validate::validate;

fn check_all(b: &CpuBackend, p: &Problem) -> usize {
    let mut ops = Operands {
        x: b.alloc(p.dtype, p.x_len()).unwrap(),
        w: b.alloc(p.dtype, p.w_len()).unwrap(),
        y: b.alloc(p.dtype, p.y_len()).unwrap(),
    };
    let mut n = 0;
    for (i, c) in b.candidates(p).unwrap().iter().enumerate() {
        let k = b.resolve(p, &c.id).unwrap();
        // Two fresh draws per kernel.
        for draw in 0..2 {
            let seed = 1000 + 10 * i as u64 + draw;
            if let Err(why) = validate(b, &k, p, &mut ops, seed) {
                panic!("{} on {p}: {why}", c.id);
            }
        }
        n += 1;
    }
    n
}

#[test]
fn decode_shapes_every_kernel() {
    let b = CpuBackend::new();
    // M = 1..16, N and K off every SIMD width, K = 1, K large.
    let shapes = [(1, 1, 1), (1, 7, 13), (2, 33, 1000), (3, 5, 1), (5, 17, 31), (8, 64, 4099), (16, 19, 257), (13, 3, 95)];
    for (m, n, k) in shapes {
        for d in DType::ALL {
            let p = Problem::linear(d, m, n, k).unwrap();
            let tried = check_all(&b, &p);
            assert!(tried >= 4, "{p}: only {tried} kernels");
        }
    }
}

#[test]
fn prefill_shapes_every_layout_and_batch() {
    let b = CpuBackend::new();
    for (m, n, k, batch) in [(17, 9, 33, 1), (64, 31, 130, 2), (100, 3, 7, 3), (40, 129, 1, 1)] {
        for layout in [Layout::TN, Layout::NN, Layout::NT, Layout::TT] {
            for d in DType::ALL {
                let p = Problem::new(d, layout, m, n, k, batch).unwrap();
                check_all(&b, &p);
            }
        }
    }
}

#[test]
fn decode_kernels_in_other_layouts_and_batches() {
    // The skinny kernel is offered for TN only; the libraries must cover the rest.
    let b = CpuBackend::new();
    for layout in [Layout::NN, Layout::NT, Layout::TT] {
        let p = Problem::new(DType::BF16, layout, 1, 37, 70, 1).unwrap();
        let ids: Vec<String> = b.candidates(&p).unwrap().into_iter().map(|c| c.id.0).collect();
        assert!(ids.iter().all(|i| !i.contains("skinny")), "{ids:?}");
        check_all(&b, &p);
    }
    let p = Problem::new(DType::F16, Layout::TN, 4, 40, 200, 3).unwrap();
    let ids: Vec<String> = b.candidates(&p).unwrap().into_iter().map(|c| c.id.0).collect();
    assert!(ids.iter().any(|i| i.contains("skinny")));
    check_all(&b, &p);
}
