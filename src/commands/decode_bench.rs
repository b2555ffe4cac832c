//! `decode-bench`: the GPU runtime on a model of a config's shapes with random weights,
//! for models whose weights are not at hand (Llama-3.1-8B in bf16, one 70B TP8 rank).
//! Reports per batch size: prefill time, decode ms per step (graph-replayed greedy steps:
//! the argmax is taken on the device and only token ids are copied back), and the decode
//! roofline — the bytes of every GEMM weight once per step over the device-to-device copy
//! bandwidth measured in the same run.

use crate::backend::cuda::CudaBackend;
use crate::cli::{BackendName, DecodeBenchArgs};
use crate::error::{Error, Result};
use crate::model::cuda::{CudaLlama, GpuOptions};
use crate::model::llama::Config;
use crate::model::runtime::Runtime;
use crate::problem::Phase;
use crate::tune::stats::median;
use serde_json::json;
use std::time::Instant;

struct Side {
    name: &'static str,
    rt: CudaLlama,
    prefill_ms: Vec<Vec<f64>>,
    step_ms: Vec<Vec<f64>>,
}

/// Prefills `batch` sequences with `prompt` one by one, then times `steps` decode steps of
/// all of them together (after two warm steps: eager, then captured). Returns (prefill
/// ms for all sequences, ms per decode step).
fn measure(rt: &mut CudaLlama, prompt: &[u32], batch: usize, steps: usize) -> Result<(f64, f64)> {
    let mut caches = (0..batch).map(|_| rt.new_cache()).collect::<Result<Vec<_>>>()?;
    rt.set_phase(Phase::Prefill);
    let t = Instant::now();
    let mut next = Vec::with_capacity(batch);
    for c in caches.iter_mut() {
        next.push(rt.forward_greedy(&mut [(c, prompt)])?[0]);
    }
    let prefill = t.elapsed().as_secs_f64() * 1e3;
    rt.set_phase(Phase::Decode);
    let mut step = |rt: &mut CudaLlama, next: &mut Vec<u32>| -> Result<()> {
        let toks: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
        let mut seqs: Vec<(&mut _, &[u32])> = caches.iter_mut().zip(&toks).map(|(c, t)| (c, &t[..])).collect();
        *next = rt.forward_greedy(&mut seqs)?;
        Ok(())
    };
    for _ in 0..2 {
        step(rt, &mut next)?;
    }
    let t = Instant::now();
    for _ in 0..steps {
        step(rt, &mut next)?;
    }
    Ok((prefill, t.elapsed().as_secs_f64() * 1e3 / steps as f64))
}

pub fn run(a: &DecodeBenchArgs) -> Result<()> {
    if a.exec.backend.unwrap_or(BackendName::Cuda) != BackendName::Cuda {
        return Err(Error::input("decode-bench runs on --backend cuda (random weights are made on the GPU)"));
    }
    if a.batch.is_empty() || a.batch.contains(&0) || a.steps == 0 || a.reps == 0 {
        return Err(Error::input("--batch sizes, --steps and --reps must be at least 1"));
    }
    let mut mc = crate::profile::rank_shard(&crate::profile::load(&a.config)?, a.tp)?;
    if let Some(l) = a.layers {
        mc.layers = l;
    }
    let context = a.prompt_len + a.steps + 8;
    let cfg = Config::from_model(&mc, 1e-5, 500000.0, context as f64);
    let opt = GpuOptions {
        dtype: a.exec.gpu_dtype,
        slots: *a.batch.iter().max().expect("non-empty"),
        context,
        // A decode step of the largest batch is one pass too (with fewer rows than
        // sequences the runtime would step them one by one, a batch in name only).
        max_rows: a.prompt_len.max(*a.batch.iter().max().expect("non-empty")).max(1),
        graphs: !a.exec.no_graphs,
        pdl: !a.exec.no_pdl,
        weights: a.quant,
    };
    let mut sides = Vec::new();
    let tuned = super::load_dispatcher(CudaBackend::new(a.exec.device)?, a.table.as_deref(), false, None)?;
    let name = if a.table.is_some() { "tuned" } else { "default" };
    sides.push(Side { name, rt: CudaLlama::random(cfg.clone(), tuned, opt.clone(), a.seed)?, prefill_ms: vec![], step_ms: vec![] });
    if a.baseline && a.table.is_some() {
        let d = super::load_dispatcher(CudaBackend::new(a.exec.device)?, None, false, None)?;
        sides.push(Side { name: "default", rt: CudaLlama::random(cfg.clone(), d, opt.clone(), a.seed)?, prefill_ms: vec![], step_ms: vec![] });
    }
    let bw = sides[0].rt.dispatcher().backend().gpu().copy_bandwidth()?;
    let bytes = sides[0].rt.weight_bytes();
    let floor_ms = bytes as f64 / bw * 1e3;
    eprintln!(
        "{} (tp {} rank, {} layers, hidden {}, {} heads / {} KV, intermediate {}, vocab {}), {}{}: {:.2} GB of GEMM weights per step; copy bandwidth {:.0} GB/s -> roofline {:.3} ms/step",
        mc.name, a.tp, mc.layers, mc.hidden, mc.heads, mc.kv_heads, mc.intermediate, mc.vocab, opt.dtype,
        if a.quant.is_dense() { String::new() } else { format!(" with {} layer weights", a.quant) },
        bytes as f64 / 1e9, bw / 1e9, floor_ms
    );
    let prompt: Vec<u32> = (0..a.prompt_len).map(|i| (crate::random::mix(a.seed ^ crate::random::mix(i as u64)) % cfg.vocab as u64) as u32).collect();
    for s in sides.iter_mut() {
        s.prefill_ms = vec![Vec::new(); a.batch.len()];
        s.step_ms = vec![Vec::new(); a.batch.len()];
    }
    for _ in 0..a.reps {
        for (bi, &b) in a.batch.iter().enumerate() {
            for s in sides.iter_mut() {
                let (p, st) = measure(&mut s.rt, &prompt, b, a.steps)?;
                s.prefill_ms[bi].push(p);
                s.step_ms[bi].push(st);
            }
        }
    }
    let mut rows = Vec::new();
    println!("| dispatch | batch | prefill ms ({} tok/seq) | decode ms/step | tok/s | % of roofline | coverage |", a.prompt_len);
    println!("|---|---|---|---|---|---|---|");
    for (bi, &b) in a.batch.iter().enumerate() {
        for s in &sides {
            let (p, st) = (median(&s.prefill_ms[bi]), median(&s.step_ms[bi]));
            let spread = {
                let v = &s.step_ms[bi];
                let (lo, hi) = v.iter().fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
                (hi - lo) / st * 100.0
            };
            let pct = floor_ms / st * 100.0;
            println!(
                "| {} | {b} | {p:.1} | {st:.3} (spread {spread:.1}%) | {:.1} | {pct:.1}% | {} |",
                s.name,
                b as f64 * 1e3 / st,
                s.rt.dispatcher().coverage().summary()
            );
            rows.push(json!({"dispatch": s.name, "batch": b, "prefill_ms": p, "step_ms": st, "step_ms_all": s.step_ms[bi],
                "prefill_ms_all": s.prefill_ms[bi], "tok_s": b as f64 * 1e3 / st, "roofline_pct": pct}));
        }
        if sides.len() == 2 {
            let (t, d) = (median(&sides[0].step_ms[bi]), median(&sides[1].step_ms[bi]));
            println!("| tuned vs default | {b} | | {:.3}x decode tok/s | | | |", d / t);
        }
    }
    if let Some(path) = &a.json {
        let v = json!({"config": a.config, "tp": a.tp, "layers": mc.layers, "dtype": opt.dtype.name(), "weights": a.quant.name(), "weight_bytes": bytes,
            "copy_bandwidth": bw, "roofline_ms": floor_ms, "prompt_len": a.prompt_len, "steps": a.steps, "reps": a.reps, "rows": rows,
            "device": sides[0].rt.dispatcher().backend().gpu().name});
        crate::atomic::write_atomic(path, |w| w.write_all(serde_json::to_string_pretty(&v).expect("json").as_bytes()))?;
    }
    Ok(())
}
