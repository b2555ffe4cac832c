//! Times one CPU kernel for quantized weights at M = 1 (or `m`), outside the tuner: per
//! call and per 32-weight block, best of 5 rounds. `copies` > 1 rotates through that many weight
//! matrices (with large ones, weights come from memory as in decode); 1 keeps them hot.
//!
//! cargo run --release --example qbench -- <n> <k> <copies> <kernel id> [q4_1|q8_0 [m]]
//! e.g. cargo run --release --example qbench -- 192 4096 1 cpu:qpair:avx2:m1:t1
use gemmtune::backend::cpu::{CpuBackend, CpuKernel, HostTensor};
use gemmtune::problem::{DType, Problem, WeightFormat};
use gemmtune::quant::QuantTensor;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: qbench <n> <k> <copies> <kernel id> [q4_1|q8_0 [m]]");
        std::process::exit(2);
    }
    let num = |i: usize| args[i].parse::<usize>().unwrap_or_else(|_| panic!("argument {i} must be a number"));
    let (n, k, copies, id) = (num(1), num(2), num(3).max(1), &args[4]);
    let f = match args.get(5).map(String::as_str) {
        Some("q8_0") => WeightFormat::Q8_0,
        _ => WeightFormat::Q4_1,
    };
    let b = CpuBackend::new();
    let m = args.get(6).map_or(1, |_| num(6));
    let p = Problem::linear(DType::F32, m, n, k).and_then(|p| p.with_weights(f)).expect("a valid problem");
    let ws: Vec<HostTensor> = (0..copies)
        .map(|c| {
            let mut q = QuantTensor::zeros(f, n, k);
            q.fill_random(c as u64 + 1);
            HostTensor::Quant(q)
        })
        .collect();
    let x = HostTensor::F32((0..m * k).map(|i| (i as f32 * 0.37).sin()).collect());
    let mut y = HostTensor::F32(vec![0.0; m * n]);
    let kern = CpuKernel::parse(id).expect("a CPU kernel id");
    for _ in 0..3 {
        ws.iter().for_each(|w| b.run_host(&kern, &p, &x, w, &mut y));
    }
    let reps = 2000 / copies + 1;
    // From inside the pool, as the runtime calls its GEMMs (`Llama::forward`): a call from
    // outside would also time waking the pool's workers.
    let best = b.install(|| {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..reps {
                ws.iter().for_each(|w| b.run_host(&kern, &p, &x, w, &mut y));
            }
            best = best.min(t.elapsed().as_secs_f64() / (reps * copies) as f64);
        }
        best
    });
    let blocks = (n * k / 32) as f64;
    let gflops = 2.0 * (m * n * k) as f64 / best * 1e-9;
    println!("{id} {f} m={m} n={n} k={k} copies={copies}: {:.2} us per call, {:.2} ns per block, {gflops:.1} GFLOP/s", best * 1e6, best * 1e9 / blocks);
}
