//! The Llama forward pass of llama.rs on an NVIDIA GPU: weights resident in bf16 (or f16),
//! the KV cache on the device, the non-GEMM operations as NVRTC kernels
//! (kernels/llama.cu), and every linear layer a `Dispatcher::gemm` call on the tuned
//! table. q/k/v and gate/up run as one fused GEMM each (what serving runtimes do, and the
//! shapes `profile --fuse fused` derives).
//!
//! Decode steps (one new token per sequence) are captured as a CUDA graph per batch size
//! once warm: the first step at a batch size runs eagerly (kernels resolve and compile),
//! the second is captured, and later steps replay it. Everything a step varies (tokens,
//! positions, cache slots) lives in one device array uploaded before the launch, so the
//! captured kernels read the current values.
//!
//! KV cache: per layer one K and one V array `[slot][context][kv_heads × head_dim]`; a
//! sequence holds a slot from `new_cache` until its `GpuCache` is dropped.

use super::llama::{Config, Llama};
use super::runtime::{DispatchStats, Runtime, SeqCache};
use crate::backend::cpu::HostTensor;
use crate::backend::cuda::device::{drv, DevBuf, Gpu};
use crate::backend::cuda::rtc::{assemble, grid_for, LLAMA};
use crate::backend::cuda::CudaBackend;
use crate::dispatch::{Dispatcher, Source};
use crate::error::{Error, Result};
use crate::problem::{DType, Problem, WeightFormat};
use crate::quant::QuantTensor;
use cudarc::driver::sys::CUfunction_attribute_enum as FnAttr;
use cudarc::driver::{CudaFunction, CudaGraph, LaunchConfig, PushKernelArg};
use half::{bf16, f16};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// How the GPU runtime is set up.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    /// Storage type of weights, GEMM activations and the KV cache (bf16 or f16).
    pub dtype: DType,
    /// Sequences that can hold a KV cache at once (the serving batch limit).
    pub slots: usize,
    /// Context per sequence (capped by the model's).
    pub context: usize,
    /// Most new tokens per forward call; longer prompts are prefilled in chunks.
    pub max_rows: usize,
    /// Capture decode steps as CUDA graphs once warm.
    pub graphs: bool,
    /// Launch our kernels (non-GEMM ones and our own GEMMs) as programmatic dependent
    /// launches, so each is scheduled while its predecessor drains (sm_90+).
    pub pdl: bool,
    /// Layer weights of `random` models: dense (in `dtype`) or packed int4 (q4_1, g128).
    pub weights: WeightFormat,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions { dtype: DType::BF16, slots: 16, context: 4096, max_rows: 2048, graphs: true, pdl: true, weights: WeightFormat::Dense }
    }
}

struct LayerW {
    attn_norm: DevBuf,
    qkv: DevBuf,
    o: DevBuf,
    ffn_norm: DevBuf,
    gate_up: DevBuf,
    down: DevBuf,
    k_cache: DevBuf,
    v_cache: DevBuf,
}

struct Kernels {
    embed: CudaFunction,
    rmsnorm: CudaFunction,
    rope: CudaFunction,
    attention: CudaFunction,
    silu_mul: CudaFunction,
    add: CudaFunction,
    add_rmsnorm: CudaFunction,
    argmax: CudaFunction,
}

/// Activation buffers sized for `max_rows` new tokens and `slots` sequences.
struct Act {
    /// u32 row metadata: tokens, positions, slots (max_rows each), then last rows (slots).
    meta: DevBuf,
    x: DevBuf,
    xn: DevBuf,
    qkv: DevBuf,
    att: DevBuf,
    out: DevBuf,
    gate_up: DevBuf,
    a: DevBuf,
    last: DevBuf,
    logits: DevBuf,
    /// u32 greedy token of each sequence.
    next: DevBuf,
}

struct Graph(CudaGraph);
// SAFETY: a graph is only launched from the thread that owns the runtime (&mut self).
unsafe impl Send for Graph {}

/// The model on the GPU; implements `Runtime` for `generate` and `serve`.
pub struct CudaLlama {
    m: Model,
    act: Act,
    /// Decode batch sizes that ran eagerly once; their next step is captured.
    warm: HashSet<usize>,
    /// Decode batch sizes whose capture failed: they run eagerly.
    eager_only: HashSet<usize>,
    /// Captured decode steps by batch size, with the GEMM calls each replay makes.
    graphs: HashMap<usize, (Graph, Vec<(Problem, Source)>)>,
    /// Host copy of the row metadata; kept here so its upload need not be waited for
    /// (a step's results are read back, synchronizing, before the next step rewrites it;
    /// the chunked path synchronizes after each chunk).
    meta: Vec<u32>,
}

/// Everything but the activations (which a forward pass writes).
struct Model {
    cfg: Config,
    opt: GpuOptions,
    d: Arc<Dispatcher<CudaBackend>>,
    k: Kernels,
    layers: Vec<LayerW>,
    embed: DevBuf,
    /// None when the output head is tied to the embedding.
    head: Option<DevBuf>,
    out_norm: DevBuf,
    /// f64 RoPE inverse frequencies theta^(-2i/d), computed on the host like the CPU path.
    inv_freq: DevBuf,
    free: Arc<Mutex<Vec<usize>>>,
}

/// A sequence's place in the device KV cache.
pub struct GpuCache {
    slot: usize,
    len: usize,
    free: Arc<Mutex<Vec<usize>>>,
}

impl SeqCache for GpuCache {
    fn len(&self) -> usize {
        self.len
    }
}

impl Drop for GpuCache {
    fn drop(&mut self) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(self.slot);
    }
}

fn gpu_of(d: &Dispatcher<CudaBackend>) -> &Gpu {
    d.backend().gpu()
}

/// Host f32 values in the GPU storage type, as raw 16-bit words.
fn to_words(v: &[f32], dtype: DType) -> Vec<u16> {
    match dtype {
        DType::BF16 => v.par_iter().map(|&x| bf16::from_f32(x).to_bits()).collect(),
        _ => v.par_iter().map(|&x| f16::from_f32(x).to_bits()).collect(),
    }
}

/// Formats the GPU keeps packed (those with fused int4 kernels); other packed weights
/// (q8_0) are dequantized to the 16-bit type at upload.
fn gpu_packs(f: WeightFormat) -> bool {
    matches!(f, WeightFormat::Q4_1 | WeightFormat::G128)
}

impl CudaLlama {
    /// Uploads a model loaded on the host (GGUF or safetensors, f32) in `opt.dtype`.
    pub fn from_host(m: &Llama, d: Dispatcher<CudaBackend>, opt: GpuOptions) -> Result<CudaLlama> {
        let gpu = gpu_of(&d);
        let dt = opt.dtype;
        let up16 = |v: &[f32]| -> Result<DevBuf> {
            let b = gpu.alloc(dt, v.len())?;
            gpu.upload(&b, &to_words(v, dt))?;
            Ok(b)
        };
        let up32 = |v: &[f32]| -> Result<DevBuf> {
            let b = gpu.alloc(DType::F32, v.len())?;
            gpu.upload(&b, v)?;
            Ok(b)
        };
        // One linear layer's weight from its parts (q, k, v or gate, up stacked by rows):
        // packed int4 when every part is (`--weights native`), else dense 16-bit.
        let up_w = |parts: &[&HostTensor]| -> Result<DevBuf> {
            let packed: Option<Vec<&QuantTensor>> =
                parts.iter().map(|t| if let HostTensor::Quant(q) = t { Some(q) } else { None }).collect();
            match packed {
                Some(qs) if qs.iter().all(|q| gpu_packs(q.format) && q.format == qs[0].format && q.k == qs[0].k) => {
                    let data = qs.iter().flat_map(|q| q.data.iter().copied()).collect();
                    let t = QuantTensor::new(qs[0].format, qs.iter().map(|q| q.rows).sum(), qs[0].k, data).map_err(Error::runtime)?;
                    gpu.upload_packed(&t, dt)
                }
                _ => up16(&parts.iter().flat_map(|t| t.as_f32().into_owned()).collect::<Vec<f32>>()),
            }
        };
        let mut layers = Vec::with_capacity(m.layers.len());
        for l in &m.layers {
            layers.push(LayerW {
                attn_norm: up32(&l.attn_norm)?,
                qkv: up_w(&[&l.wq, &l.wk, &l.wv])?,
                o: up_w(&[&l.wo])?,
                ffn_norm: up32(&l.ffn_norm)?,
                gate_up: up_w(&[&l.wg, &l.wu])?,
                down: up_w(&[&l.wd])?,
                k_cache: gpu.alloc(dt, 1)?, // sized in `finish`
                v_cache: gpu.alloc(dt, 1)?,
            });
        }
        // The embedding is looked up by rows, so it stays dense (and so does a tied head).
        let embed = up16(&m.embed.as_f32())?;
        let head = if m.tied { None } else { Some(up_w(&[&m.head])?) };
        let out_norm = up32(&m.out_norm)?;
        CudaLlama::finish(m.cfg.clone(), d, opt, layers, embed, head, out_norm)
    }

    /// A model of `cfg`'s shapes with random weights made on the device (uniform, scaled
    /// by 1/sqrt(fan-in) so activations stay finite; norms 1; layer weights packed when
    /// `opt.weights` names an int4 format, the embedding and head dense, as GPTQ/AWQ
    /// checkpoints keep them): for decode benchmarks of models whose weights are not at hand
    /// (Llama-3.1-8B, 70B per-GPU shards).
    pub fn random(cfg: Config, d: Dispatcher<CudaBackend>, opt: GpuOptions, seed: u64) -> Result<CudaLlama> {
        let gpu = gpu_of(&d);
        let dt = opt.dtype;
        let fill = d.backend().rtc().function(gpu, &module_name(dt), || llama_source(dt), "fill_scaled")?;
        let mut next_seed = seed;
        // Uniform in [-scale, scale): variance scale²/3, so sqrt(3/k) gives unit-variance
        // outputs for fan-in k.
        let rand = |n: usize, k: usize, scale: f32, s: &mut u64| -> Result<DevBuf> {
            let b = gpu.alloc(dt, n * k)?;
            *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let len = b.len as u64;
            // SAFETY: writes exactly len elements of the buffer.
            unsafe {
                gpu.stream.launch_builder(&fill).arg(&b.ptr).arg(&len).arg(&*s).arg(&scale).launch(grid_for(b.len)).map_err(drv)?;
            }
            Ok(b)
        };
        let planar = d.backend().rtc().function(gpu, &module_name(dt), || llama_source(dt), "fill_planar")?;
        let wf = opt.weights;
        if !(wf.is_dense() || gpu_packs(wf)) {
            return Err(Error::input(format!("random GPU models hold dense, q4_1 or g128 weights, not {wf}")));
        }
        // A layer weight: dense like `rand`, or packed int4 spanning the same range.
        let layer = |n: usize, k: usize, scale: f32, s: &mut u64| -> Result<DevBuf> {
            if wf.is_dense() {
                return rand(n, k, scale, s);
            }
            let b = gpu.alloc_packed(wf, n, k, dt)?;
            *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let (rows, kk, g, g128) = (n as u64, k as i32, wf.block() as i32, (wf == WeightFormat::G128) as i32);
            // SAFETY: writes the nibble and parameter planes of n × k packed weights.
            unsafe {
                gpu.stream
                    .launch_builder(&planar)
                    .arg(&b.ptr)
                    .arg(&rows)
                    .arg(&kk)
                    .arg(&g)
                    .arg(&g128)
                    .arg(&*s)
                    .arg(&scale)
                    .launch(grid_for(n * k / 8))
                    .map_err(drv)?;
            }
            Ok(b)
        };
        let fan_in = |k: usize| (3.0 / k as f32).sqrt();
        let ones = |n: usize| -> Result<DevBuf> {
            let b = gpu.alloc(DType::F32, n)?;
            gpu.upload(&b, &vec![1f32; n])?;
            Ok(b)
        };
        let (h, hd, i) = (cfg.hidden, cfg.head_dim, cfg.intermediate);
        let (qn, kvn) = (cfg.heads * hd, cfg.kv_heads * hd);
        let mut layers = Vec::new();
        for _ in 0..cfg.layers {
            layers.push(LayerW {
                attn_norm: ones(h)?,
                qkv: layer(qn + 2 * kvn, h, fan_in(h), &mut next_seed)?,
                o: layer(h, qn, fan_in(qn), &mut next_seed)?,
                ffn_norm: ones(h)?,
                gate_up: layer(2 * i, h, fan_in(h), &mut next_seed)?,
                down: layer(h, i, fan_in(i), &mut next_seed)?,
                k_cache: gpu.alloc(dt, 1)?,
                v_cache: gpu.alloc(dt, 1)?,
            });
        }
        let embed = rand(cfg.vocab, h, 1.0, &mut next_seed)?;
        let head = Some(rand(cfg.vocab, h, fan_in(h), &mut next_seed)?);
        let out_norm = ones(h)?;
        gpu.sync()?;
        CudaLlama::finish(cfg, d, opt, layers, embed, head, out_norm)
    }

    fn finish(
        mut cfg: Config,
        d: Dispatcher<CudaBackend>,
        opt: GpuOptions,
        mut layers: Vec<LayerW>,
        embed: DevBuf,
        head: Option<DevBuf>,
        out_norm: DevBuf,
    ) -> Result<CudaLlama> {
        if !matches!(opt.dtype, DType::BF16 | DType::F16) {
            return Err(Error::input(format!("the GPU runtime keeps weights in bf16 or f16, not {}", opt.dtype)));
        }
        if !cfg.head_dim.is_multiple_of(32) || cfg.head_dim > 256 || !cfg.heads.is_multiple_of(cfg.kv_heads) {
            return Err(Error::input(format!(
                "the GPU attention kernel needs head_dim a multiple of 32 up to 256 and heads a multiple of kv_heads (got {} and {}/{})",
                cfg.head_dim, cfg.heads, cfg.kv_heads
            )));
        }
        if opt.slots == 0 || opt.max_rows == 0 {
            return Err(Error::input("the GPU runtime needs at least one sequence slot and one row"));
        }
        cfg.context = cfg.context.min(opt.context);
        d.backend().set_pdl(opt.pdl);
        let gpu = gpu_of(&d);
        let dt = opt.dtype;
        let kvn = cfg.kv_heads * cfg.head_dim;
        for l in &mut layers {
            l.k_cache = gpu.alloc(dt, opt.slots * cfg.context * kvn)?;
            l.v_cache = gpu.alloc(dt, opt.slots * cfg.context * kvn)?;
        }
        let (r, s) = (opt.max_rows, opt.slots);
        let (h, qn, i) = (cfg.hidden, cfg.heads * cfg.head_dim, cfg.intermediate);
        let act = Act {
            meta: gpu.alloc_bytes(4 * (3 * r + s))?,
            x: gpu.alloc(DType::F32, r * h)?,
            xn: gpu.alloc(dt, r * h)?,
            qkv: gpu.alloc(dt, r * (qn + 2 * kvn))?,
            att: gpu.alloc(dt, r * qn)?,
            out: gpu.alloc(dt, r * h)?,
            gate_up: gpu.alloc(dt, r * 2 * i)?,
            a: gpu.alloc(dt, r * i)?,
            last: gpu.alloc(dt, s * h)?,
            logits: gpu.alloc(dt, s * cfg.vocab)?,
            next: gpu.alloc_bytes(4 * s)?,
        };
        let inv: Vec<f64> =
            (0..cfg.head_dim / 2).map(|i| (cfg.rope_theta as f64).powf(-2.0 * i as f64 / cfg.head_dim as f64)).collect();
        let inv_freq = gpu.alloc_bytes(8 * inv.len())?;
        gpu.upload(&inv_freq, &inv)?;
        let rtc = d.backend().rtc();
        let f = |name: &str| rtc.function(gpu, &module_name(dt), || llama_source(dt), name);
        let k = Kernels {
            embed: f("embed_rows")?,
            rmsnorm: f("rmsnorm_rows")?,
            rope: f("rope_store")?,
            attention: f("attention")?,
            silu_mul: f("silu_mul")?,
            add: f("add_residual")?,
            add_rmsnorm: f("add_rmsnorm")?,
            argmax: f("argmax_rows")?,
        };
        // Set whatever the size: the kernel's static shared memory counts against the 48 KiB
        // allowed without it, so a dynamic size just under 48 KiB needs it too.
        let smem = attention_smem(&cfg);
        k.attention.set_attribute(FnAttr::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem as i32).map_err(|e| {
            Error::input(format!("context {} needs {smem} bytes of shared memory for attention: {e:?}", cfg.context))
        })?;
        gpu.sync()?;
        let free = Arc::new(Mutex::new((0..opt.slots).rev().collect()));
        Ok(CudaLlama {
            m: Model { cfg, opt, d: Arc::new(d), k, layers, embed, head, out_norm, inv_freq, free },
            act,
            warm: HashSet::new(),
            eager_only: HashSet::new(),
            graphs: HashMap::new(),
            meta: Vec::new(),
        })
    }

    pub fn dispatcher(&self) -> &Dispatcher<CudaBackend> {
        &self.m.d
    }

    /// The dispatcher's coverage and record, for a server's metrics.
    pub fn stats(&self) -> Arc<dyn DispatchStats> {
        self.m.d.clone()
    }

    /// Bytes of weights one decode step streams (every GEMM weight once; the embedding
    /// lookup reads only a few rows): the numerator of the decode roofline.
    pub fn weight_bytes(&self) -> u64 {
        let (m, g) = (&self.m, |b: &DevBuf| b.bytes as u64);
        let layers: u64 = m.layers.iter().map(|l| g(&l.qkv) + g(&l.o) + g(&l.gate_up) + g(&l.down)).sum();
        layers + g(m.head.as_ref().unwrap_or(&m.embed))
    }

    pub fn options(&self) -> &GpuOptions {
        &self.m.opt
    }

    /// Runs `seqs` (each a cache and its new tokens) in the passes of `plan_passes`, and
    /// reads each sequence's output with `read` (logits or greedy ids).
    fn run<T>(&mut self, seqs: &mut [(&mut GpuCache, &[u32])], read: fn(&Model, &Act, usize) -> Result<Vec<T>>) -> Result<Vec<T>> {
        // Checked for the whole call before any pass: a prompt past the context would
        // otherwise fail at its last chunk after the others ran (its cache part-filled),
        // and a sequence without tokens would get another sequence's logits on the
        // chunked path.
        for (cache, toks) in seqs.iter() {
            if toks.is_empty() {
                return Err(Error::input("every sequence of a forward call needs at least one new token"));
            }
            if cache.len + toks.len() > self.m.cfg.context {
                return Err(Error::input(format!("sequence of {} tokens exceeds the context of {}", cache.len + toks.len(), self.m.cfg.context)));
            }
            // Before any chunk of it is written to the cache.
            if let Some(t) = toks.iter().find(|&&t| t as usize >= self.m.cfg.vocab) {
                return Err(Error::input(format!("token id {t} is outside the vocabulary of {}", self.m.cfg.vocab)));
            }
        }
        let lens: Vec<usize> = seqs.iter().map(|(_, t)| t.len()).collect();
        let passes = plan_passes(&lens, self.m.opt.max_rows, self.m.opt.slots);
        if passes.len() == 1 {
            let s = self.step(seqs)?;
            return read(&self.m, &self.act, s);
        }
        // Too many rows or sequences for one pass: passes filled to max_rows, a sequence's
        // tokens continuing into the next pass where one fills up.
        let mut out: Vec<Option<T>> = (0..seqs.len()).map(|_| None).collect();
        for pass in &passes {
            let mut part: Vec<(&mut GpuCache, &[u32])> = Vec::with_capacity(pass.len());
            let mut pieces = pass.iter().peekable();
            for (i, (cache, toks)) in seqs.iter_mut().enumerate() {
                if let Some((_, range)) = pieces.next_if(|(j, _)| *j == i) {
                    let toks: &[u32] = toks;
                    part.push((&mut **cache, &toks[range.clone()]));
                }
            }
            let s = self.step(&mut part)?;
            if pass.iter().any(|(i, r)| r.end == lens[*i]) {
                // Reading synchronizes: the next pass may then rewrite the host metadata.
                for ((i, r), v) in pass.iter().zip(read(&self.m, &self.act, s)?) {
                    if r.end == lens[*i] {
                        out[*i] = Some(v);
                    }
                }
            } else {
                // The next pass rewrites the host metadata this one's queued upload reads.
                gpu_of(&self.m.d).sync()?;
            }
        }
        Ok(out.into_iter().map(|v| v.expect("every sequence's last piece is in a pass")).collect())
    }

    /// One pass over at most `max_rows` rows; returns the number of sequences.
    fn step(&mut self, seqs: &mut [(&mut GpuCache, &[u32])]) -> Result<usize> {
        let (m, s) = (seqs.iter().map(|(_, t)| t.len()).sum::<usize>(), seqs.len());
        if m == 0 {
            return Ok(0);
        }
        let r = self.m.opt.max_rows;
        let mut meta = std::mem::take(&mut self.meta);
        meta.clear();
        meta.resize(3 * r + self.m.opt.slots, 0);
        let mut row = 0;
        // Tokens, context and non-empty sequences were checked by `run` for the whole call.
        for (si, (cache, toks)) in seqs.iter().enumerate() {
            for (i, &t) in toks.iter().enumerate() {
                meta[row] = t;
                meta[r + row] = (cache.len + i) as u32;
                meta[2 * r + row] = cache.slot as u32;
                row += 1;
            }
            meta[3 * r + si] = (row - 1) as u32;
        }
        self.meta = meta;
        let (model, act) = (&self.m, &mut self.act);
        let gpu = gpu_of(&model.d);
        gpu.bind()?;
        // SAFETY: self.meta is not touched again before this step's results are read,
        // which synchronizes the stream.
        unsafe { gpu.upload_queued(&act.meta, &self.meta)? };
        let graphs = model.opt.graphs && m == s;
        if graphs && self.graphs.contains_key(&s) {
            let (g, calls) = &self.graphs[&s];
            g.0.launch().map_err(drv)?;
            model.d.count_replayed(calls);
        } else if graphs && self.warm.contains(&s) && !self.eager_only.contains(&s) {
            let mut calls = Vec::new();
            match gpu.capture(|| enqueue(model, act, m, s, &mut calls)) {
                Ok(g) => {
                    g.launch().map_err(drv)?;
                    self.graphs.insert(s, (Graph(g), calls));
                }
                Err(e) => {
                    // A step that cannot be captured (a kernel that is not capturable, no
                    // memory for the graph) runs eagerly from now on at this batch size,
                    // instead of failing every step (in serve: every request).
                    eprintln!("warning: decode step of {s} sequences not captured ({e}); run eagerly from now on");
                    self.eager_only.insert(s);
                    enqueue(model, act, m, s, &mut Vec::new())?;
                }
            }
        } else {
            enqueue(model, act, m, s, &mut Vec::new())?;
            if graphs {
                self.warm.insert(s);
            }
        }
        for (cache, toks) in seqs.iter_mut() {
            cache.len += toks.len();
        }
        Ok(s)
    }
}

/// The passes `CudaLlama::run` makes over sequences of `lens` new tokens: at most
/// `max_rows` rows and `slots` sequences each, in order, each pass filled before the next
/// begins (a sequence's tokens continue into the next pass), so there are as few as the
/// rows allow. A piece is (sequence, its token range); a sequence is at most once in a
/// pass. One sequence at a time in chunks took a pass per short prompt: 64 prompts of 16
/// tokens were 64 passes where 16 of 64 rows do.
pub(crate) fn plan_passes(lens: &[usize], max_rows: usize, slots: usize) -> Vec<Vec<(usize, Range<usize>)>> {
    assert!(max_rows > 0 && slots > 0, "checked when the runtime is built");
    let (mut passes, mut pass, mut rows) = (Vec::new(), Vec::new(), 0);
    for (i, &len) in lens.iter().enumerate() {
        let mut at = 0;
        while at < len {
            if rows == max_rows || pass.len() == slots {
                passes.push(std::mem::take(&mut pass));
                rows = 0;
            }
            let take = (len - at).min(max_rows - rows);
            pass.push((i, at..at + take));
            (rows, at) = (rows + take, at + take);
        }
    }
    if !pass.is_empty() {
        passes.push(pass);
    }
    passes
}

/// The logits of the `s` sequences of the last step, as f32.
fn read_logits(m: &Model, act: &Act, s: usize) -> Result<Vec<Vec<f32>>> {
    let v = m.cfg.vocab;
    let words: Vec<u16> = gpu_of(&m.d).download_raw(&act.logits, s * v)?;
    let bf = m.opt.dtype == DType::BF16;
    let conv = |w: &u16| if bf { bf16::from_bits(*w).to_f32() } else { f16::from_bits(*w).to_f32() };
    Ok(words.chunks(v).map(|row| row.iter().map(conv).collect()).collect())
}

/// The greedy tokens of the `s` sequences of the last step (argmax on the device).
fn read_tokens(m: &Model, act: &Act, s: usize) -> Result<Vec<u32>> {
    gpu_of(&m.d).download_raw(&act.next, s)
}

fn module_name(dt: DType) -> String {
    format!("llama_{}", dt.name())
}

/// The runtime's kernels (kernels/llama.cu) for one 16-bit type.
pub(crate) fn llama_source(dt: DType) -> String {
    assemble(LLAMA, &[("LL_DTYPE", if dt == DType::BF16 { "0" } else { "1" })])
}

/// Eight warps per (row, head) block.
const ATTENTION_THREADS: usize = 256;

/// Scores for the whole context, then one partial output row per warp.
fn attention_smem(c: &Config) -> usize {
    4 * (c.context + ATTENTION_THREADS / 32 * c.head_dim)
}

/// Enqueues the forward pass of `m` rows (`s` sequences) on the stream: no host
/// synchronization, so it can be captured. Pushes each GEMM's problem and kernel source.
fn enqueue(t: &Model, act: &mut Act, m: usize, s: usize, calls: &mut Vec<(Problem, Source)>) -> Result<()> {
    let (c, k) = (&t.cfg, &t.k);
    let Act { meta, x, xn, qkv, att, out, gate_up, a: act_a, last: last_n, logits, next } = act;
    let gpu = gpu_of(&t.d);
    let dt = t.opt.dtype;
    let pdl = t.opt.pdl;
    let (h, hd, inter) = (c.hidden as i32, c.head_dim as i32, c.intermediate);
    let (qn, kvn) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
    let r = t.opt.max_rows as u64;
    let (tok, pos, slot, last) = (meta.ptr, meta.ptr + 4 * r, meta.ptr + 8 * r, meta.ptr + 12 * r);
    let rows = |threads: u32| LaunchConfig { grid_dim: (m as u32, 1, 1), block_dim: (threads, 1, 1), shared_mem_bytes: 0 };
    let gemm = |calls: &mut Vec<(Problem, Source)>, mm: usize, n: usize, kk: usize, x: &DevBuf, w: &DevBuf, y: &mut DevBuf| -> Result<()> {
        let f = w.packed.map_or(WeightFormat::Dense, |(f, _)| f);
        let p = Problem::linear(dt, mm, n, kk).and_then(|p| p.with_weights(f)).map_err(Error::runtime)?;
        let src = t.d.gemm(&p, x, w, y)?;
        calls.push((p, src));
        Ok(())
    };
    let (eps, ctx, scale) = (c.eps, c.context as i32, 1.0 / (c.head_dim as f32).sqrt());
    let (heads, kvh) = (c.heads as i32, c.kv_heads as i32);
    let null = 0u64;
    let nh = (m * c.hidden) as u64;
    let ni = (m * inter) as u64;
    let inter32 = inter as i32;
    // SAFETY (all launches): buffers were sized in `finish` for max_rows rows and `slots`
    // sequences; m <= max_rows, s <= slots; token ids < vocab, positions < context and
    // slots < slots were checked in `step`.
    unsafe {
        gpu.launcher(&k.embed, pdl).arg(&tok).arg(&t.embed.ptr).arg(&x.ptr).arg(&h).launch(rows(256)).map_err(drv)?;
        if let Some(l0) = t.layers.first() {
            gpu.launcher(&k.rmsnorm, pdl).arg(&x.ptr).arg(&null).arg(&l0.attn_norm.ptr).arg(&xn.ptr).arg(&h).arg(&eps).launch(rows(512)).map_err(drv)?;
        }
        let pairs = ((c.heads + c.kv_heads) * c.head_dim / 2) as u32;
        let rope_cfg = LaunchConfig { grid_dim: (m as u32, pairs.div_ceil(128), 1), block_dim: (128, 1, 1), shared_mem_bytes: 0 };
        let att_cfg = LaunchConfig {
            grid_dim: (m as u32, c.heads as u32, 1),
            block_dim: (ATTENTION_THREADS as u32, 1, 1),
            shared_mem_bytes: attention_smem(c) as u32,
        };
        for (li, l) in t.layers.iter().enumerate() {
            // xn holds attn_norm(x) here (before the loop, or fused into the previous layer's add).
            gemm(calls, m, qn + 2 * kvn, c.hidden, xn, &l.qkv, qkv)?;
            gpu.launcher(&k.rope, pdl)
                .arg(&qkv.ptr)
                .arg(&pos)
                .arg(&slot)
                .arg(&l.k_cache.ptr)
                .arg(&l.v_cache.ptr)
                .arg(&heads)
                .arg(&kvh)
                .arg(&hd)
                .arg(&t.inv_freq.ptr)
                .arg(&ctx)
                .launch(rope_cfg)
                .map_err(drv)?;
            gpu.launcher(&k.attention, pdl)
                .arg(&qkv.ptr)
                .arg(&pos)
                .arg(&slot)
                .arg(&l.k_cache.ptr)
                .arg(&l.v_cache.ptr)
                .arg(&att.ptr)
                .arg(&heads)
                .arg(&kvh)
                .arg(&hd)
                .arg(&ctx)
                .arg(&scale)
                .launch(att_cfg)
                .map_err(drv)?;
            gemm(calls, m, c.hidden, qn, att, &l.o, out)?;
            gpu.launcher(&k.add_rmsnorm, pdl).arg(&x.ptr).arg(&out.ptr).arg(&l.ffn_norm.ptr).arg(&xn.ptr).arg(&h).arg(&eps).launch(rows(512)).map_err(drv)?;
            gemm(calls, m, 2 * inter, c.hidden, xn, &l.gate_up, gate_up)?;
            gpu.launcher(&k.silu_mul, pdl).arg(&gate_up.ptr).arg(&act_a.ptr).arg(&inter32).arg(&ni).launch(grid_for(ni as usize)).map_err(drv)?;
            gemm(calls, m, c.hidden, inter, act_a, &l.down, out)?;
            match t.layers.get(li + 1) {
                Some(next) => gpu.launcher(&k.add_rmsnorm, pdl).arg(&x.ptr).arg(&out.ptr).arg(&next.attn_norm.ptr).arg(&xn.ptr).arg(&h).arg(&eps).launch(rows(512)),
                None => gpu.launcher(&k.add, pdl).arg(&x.ptr).arg(&out.ptr).arg(&nh).launch(grid_for(nh as usize)),
            }
            .map_err(drv)?;
        }
        let seqs = LaunchConfig { grid_dim: (s as u32, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        gpu.launcher(&k.rmsnorm, pdl).arg(&x.ptr).arg(&last).arg(&t.out_norm.ptr).arg(&last_n.ptr).arg(&h).arg(&eps).launch(seqs).map_err(drv)?;
    }
    gemm(calls, s, c.vocab, c.hidden, last_n, t.head.as_ref().unwrap_or(&t.embed), logits)?;
    let vocab = c.vocab as i32;
    let argmax_cfg = LaunchConfig { grid_dim: (s as u32, 1, 1), block_dim: (1024, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: logits hold s rows of vocab values; next holds `slots` >= s u32.
    unsafe { gpu.launcher(&k.argmax, pdl).arg(&logits.ptr).arg(&vocab).arg(&next.ptr).launch(argmax_cfg) }.map_err(drv)?;
    Ok(())
}

impl Runtime for CudaLlama {
    type Cache = GpuCache;

    fn config(&self) -> &Config {
        &self.m.cfg
    }

    fn new_cache(&mut self) -> Result<GpuCache> {
        let slot = self.m.free.lock().unwrap_or_else(|e| e.into_inner()).pop().ok_or_else(|| {
            Error::runtime(format!("all {} GPU sequence slots are in use", self.m.opt.slots))
        })?;
        Ok(GpuCache { slot, len: 0, free: self.m.free.clone() })
    }

    fn forward(&mut self, seqs: &mut [(&mut GpuCache, &[u32])]) -> Result<Vec<Vec<f32>>> {
        self.run(seqs, read_logits)
    }

    fn forward_greedy(&mut self, seqs: &mut [(&mut GpuCache, &[u32])]) -> Result<Vec<u32>> {
        self.run(seqs, read_tokens)
    }

    fn set_phase(&self, p: crate::problem::Phase) {
        self.m.d.set_phase(p)
    }
}

#[cfg(test)]
mod tests {
    use super::plan_passes;

    #[test]
    fn passes_are_full_cover_every_token_in_order_and_respect_both_limits() {
        let cases: [(&[usize], usize, usize); 7] = [
            (&[16; 64], 64, 64),
            (&[100, 100, 100], 128, 16),
            (&[300, 5, 1], 128, 16),
            (&[1; 40], 2048, 16),
            (&[7, 9, 3, 128, 1, 64], 32, 3),
            (&[5], 8, 1),
            (&[2048, 2048], 2048, 16),
        ];
        for (lens, max_rows, slots) in cases {
            let passes = plan_passes(lens, max_rows, slots);
            let total: usize = lens.iter().sum();
            let mut next = vec![0; lens.len()];
            for (pi, pass) in passes.iter().enumerate() {
                let rows: usize = pass.iter().map(|(_, r)| r.len()).sum();
                assert!(rows <= max_rows && pass.len() <= slots, "{lens:?}: pass {pi} has {rows} rows, {} sequences", pass.len());
                // Only the last pass, or one closed by the sequence limit, has room left.
                if pi + 1 < passes.len() {
                    assert!(rows == max_rows || pass.len() == slots, "{lens:?}: pass {pi} closed with room");
                }
                for w in pass.windows(2) {
                    assert!(w[0].0 < w[1].0, "{lens:?}: pass {pi} holds a sequence twice or out of order");
                }
                for (i, r) in pass {
                    assert!(!r.is_empty() && r.start == next[*i], "{lens:?}: sequence {i} resumes at {} not {}", r.start, next[*i]);
                    next[*i] = r.end;
                }
            }
            assert_eq!(next, lens, "every token in a pass");
            if slots >= lens.len() {
                assert_eq!(passes.len(), total.div_ceil(max_rows), "{lens:?}: as few passes as the rows allow");
            }
        }
        // 64 prompts of 16 tokens in passes of 64 rows: 16 passes, not one a prompt.
        assert_eq!(plan_passes(&[16; 64], 64, 64).len(), 16);
        assert!(plan_passes(&[], 8, 2).is_empty());
    }
}
