//! Every CPU kernel against the f64 reference on awkward shapes, dtypes and layouts.

use gemmtune::backend::cpu::CpuBackend;
use gemmtune::backend::{Backend, KernelId};
use gemmtune::problem::{DType, Layout, Problem, WeightFormat};
use gemmtune::tune::alloc_operands;
use gemmtune::tune::validate::validate;

fn check_all(b: &CpuBackend, p: &Problem) -> usize {
    let ids: Vec<KernelId> = b.candidates(p).unwrap().into_iter().map(|c| c.id).collect();
    check(b, p, &ids)
}

fn check(b: &CpuBackend, p: &Problem, ids: &[KernelId]) -> usize {
    let mut ops = alloc_operands(b, p).unwrap();
    let mut n = 0;
    for (i, id) in ids.iter().enumerate() {
        let k = b.resolve(p, id).unwrap();
        // Two fresh draws per kernel.
        for draw in 0..2 {
            let seed = 1000 + 10 * i as u64 + draw;
            if let Err(why) = validate(b, &k, p, &mut ops, seed) {
                panic!("{id} on {p}: {why}");
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

#[test]
fn skinny_every_instruction_set_tile_and_row_block() {
    // Candidates list only the best instruction sets here and the blocks their registers
    // hold; every id that parses must still compute right, including the remainder rows
    // of a row block and the portable fallback. One thread takes all N rows (7: a block
    // of 4, one of 2, one row); two threads split 61 rows into 8 tasks of up to 8 rows.
    let b = CpuBackend::new();
    for d in DType::ALL {
        for (m, n, k, t) in [(4, 7, 64, 1), (9, 61, 37, 2)] {
            let p = Problem::linear(d, m, n, k).unwrap();
            let mut ids = Vec::new();
            for isa in ["portable", "avx2", "avx512"] {
                for (mt, nr) in [(1, 1), (1, 4), (4, 2), (4, 4), (8, 2)] {
                    let id = KernelId::new(format!("cpu:skinny:{isa}:m{mt}:n{nr}:t{t}"));
                    match b.resolve(&p, &id) {
                        Ok(_) => ids.push(id),
                        Err(e) => assert!(isa != "portable" && e.to_string().contains("lacks"), "{id}: {e}"),
                    }
                }
            }
            assert!(ids.len() >= 5);
            check(&b, &p, &ids);
        }
    }
}

#[test]
fn quantized_weights_every_kernel_every_format() {
    let b = CpuBackend::new();
    // K a multiple of the block (32, or 128 for g128); M across decode tiles and a short
    // prefill; N off every row split; a batch of 2; X transposed (only the dequantizing
    // kernels take it); bf16 activations.
    for f in WeightFormat::QUANTIZED {
        let kb = f.block();
        for (m, n, k, batch, layout, dtype) in [
            (1, 1, kb, 1, Layout::TN, DType::F32),
            (1, 37, 3 * kb, 1, Layout::TN, DType::F32),
            (2, 21, 18 * kb, 1, Layout::TN, DType::F32),
            (3, 9, 5 * kb, 1, Layout::TN, DType::F32),
            (8, 64, 2 * kb, 2, Layout::TN, DType::F32),
            (16, 19, 4 * kb, 1, Layout::TN, DType::BF16),
            (13, 33, 9 * kb, 1, Layout::TN, DType::F32),
            (40, 17, 2 * kb, 1, Layout::TN, DType::F32),
            (70, 130, 3 * kb, 1, Layout::TN, DType::F32),
            (5, 11, kb, 2, Layout::TT, DType::F32),
        ] {
            let p = Problem::new(dtype, layout, m, n, k, batch).unwrap().with_weights(f).unwrap();
            let ids: Vec<String> = b.candidates(&p).unwrap().into_iter().map(|c| c.id.0).collect();
            assert_eq!(ids[0], "cpu:dqgemm:t".to_string() + &b.threads().to_string(), "{p}: the default first");
            assert!(ids.iter().all(|i| !i.contains(":gemm:") && !i.contains("skinny")), "{p}: dense kernels offered: {ids:?}");
            if m <= 16 && !layout.x_trans {
                assert!(ids.iter().any(|i| i.contains(":qdot:")), "{p}: no fused kernel: {ids:?}");
                if f != WeightFormat::G128 && gemmtune::backend::cpu::qpair::QPair::available() {
                    assert!(ids.iter().any(|i| i.contains(":qpair:")), "{p}: no pair kernel: {ids:?}");
                }
            }
            check_all(&b, &p);
        }
    }
}

#[test]
fn fused_kernels_of_every_instruction_set_available_here() {
    // The portable fallback is listed only without SIMD; it must be right everywhere.
    let b = CpuBackend::new();
    for f in WeightFormat::QUANTIZED {
        let p = Problem::linear(DType::F32, 5, 23, 3 * f.block()).unwrap().with_weights(f).unwrap();
        let mut ids = Vec::new();
        for isa in ["portable", "avx2", "avx512"] {
            for (mt, nr) in [(1, 1), (4, 2), (8, 1)] {
                let id = KernelId::new(format!("cpu:qdot:{isa}:m{mt}:n{nr}:t2"));
                match b.resolve(&p, &id) {
                    Ok(_) => ids.push(id),
                    Err(e) => assert!(isa != "portable" && e.to_string().contains("lacks"), "{id}: {e}"),
                }
            }
        }
        assert!(ids.len() >= 3);
        check(&b, &p, &ids);
    }
}

#[test]
fn dense_and_packed_kernels_refuse_each_other() {
    let b = CpuBackend::new();
    let dense = Problem::linear(DType::F32, 1, 64, 64).unwrap();
    let q = dense.with_weights(WeightFormat::Q4_1).unwrap();
    let e = b.resolve(&q, &KernelId::new("cpu:gemm:t1")).unwrap_err().to_string();
    assert!(e.contains("needs dense weights"), "{e}");
    let e = b.resolve(&dense, &KernelId::new("cpu:qdot:portable:m1:n1:t1")).unwrap_err().to_string();
    assert!(e.contains("needs quantized weights"), "{e}");
    let big = Problem::linear(DType::F32, 17, 64, 64).unwrap().with_weights(WeightFormat::Q8_0).unwrap();
    assert!(b.resolve(&big, &KernelId::new("cpu:qdot:portable:m1:n1:t1")).is_err());
    // Ids round-trip and malformed ones explain.
    for c in b.candidates(&big).unwrap() {
        assert_eq!(gemmtune::backend::cpu::CpuKernel::parse(c.id.as_str()).unwrap().id(), c.id);
    }
    for bad in ["cpu:qdot:avx2:m3:n1:t1", "cpu:qdot:avx2:m1:n4:t1", "cpu:qpanel:r7:t1", "cpu:qsplit:avx512:x3:m1:n1:t1", "cpu:qsplit:avx2:x3:m4:n8:t1", "cpu:qsplit:avx2:x4:m1:n1:t1", "cpu:dqgemm"] {
        assert!(gemmtune::backend::cpu::CpuKernel::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn two_term_split_runs_where_it_resolves_and_refuses_small_n() {
    // Not a candidate (see QSplit::offered_for), but a table may name it: it must be right
    // where it resolves (N >= 64) and refuse smaller N.
    let b = CpuBackend::new();
    let id = KernelId::new("cpu:qsplit:avx2:x2:m1:n8:t2");
    for f in WeightFormat::QUANTIZED {
        let p = Problem::linear(DType::F32, 3, 200, 2 * f.block()).unwrap().with_weights(f).unwrap();
        match b.resolve(&p, &id) {
            Ok(_) => {
                check(&b, &p, std::slice::from_ref(&id));
            }
            // Refused only for want of AVX2 (every error names the id, avx2 in it).
            Err(e) => assert!(!gemmtune::backend::cpu::qsplit::QSplit::available() && e.to_string().contains("lacks the avx2"), "{e}"),
        }
        let small = Problem::linear(DType::F32, 1, 8, f.block()).unwrap().with_weights(f).unwrap();
        assert!(b.resolve(&small, &id).is_err());
        // Three terms: not for a handful of outputs either (N < 8), where one output near
        // zero decides the relative error.
        let x3 = KernelId::new("cpu:qsplit:avx2:x3:m1:n1:t1");
        let tiny = Problem::linear(DType::F32, 1, 7, f.block()).unwrap().with_weights(f).unwrap();
        if let Err(e) = b.resolve(&tiny, &x3) {
            assert!(e.to_string().contains("N >= 8"), "{e}");
        } else {
            panic!("{x3} resolved for {tiny}");
        }
        assert!(b.candidates(&tiny).unwrap().iter().all(|c| !c.id.as_str().contains("qsplit")));
        assert!(b.candidates(&p).unwrap().iter().all(|c| !c.id.as_str().contains(":x2:")));
    }
}
