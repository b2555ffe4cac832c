//! GPTQ checkpoints (4-bit, groups of 128): a tiny random Llama quantized by the test the way
//! GPTQ stores it (qweight packed along K, qzeros packed along N and stored minus one,
//! f16 scales), written as a Hugging Face folder, must load to exactly the weights
//! s·(q − z), and run packed (`--weights native`, g128 kernels) within the f32 bound of the
//! dense path.

use gemmtune::backend::cpu::CpuBackend;
use gemmtune::dispatch::Dispatcher;
use gemmtune::model::llama::{KvCache, Llama};
use gemmtune::model::weights::WeightMode;
use half::f16;
use rand::{rngs::SmallRng, Rng, SeedableRng};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::collections::HashMap;
use std::path::Path;

const H: usize = 256;
const I: usize = 384;
const NH: usize = 4;
const KV: usize = 2;
const D: usize = 64;
const L: usize = 2;
const V: usize = 64;

enum T {
    F32(Vec<usize>, Vec<f32>),
    F16(Vec<usize>, Vec<f16>),
    I32(Vec<usize>, Vec<i32>),
}

fn write(dir: &Path, tensors: &HashMap<String, T>, quant: Option<serde_json::Value>) {
    let bytes: HashMap<&String, (Dtype, &Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, t)| {
            let v = match t {
                T::F32(s, v) => (Dtype::F32, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                T::F16(s, v) => (Dtype::F16, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                T::I32(s, v) => (Dtype::I32, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            };
            (k, v)
        })
        .collect();
    let views: Vec<(String, TensorView)> =
        bytes.iter().map(|(k, (d, s, b))| ((*k).clone(), TensorView::new(*d, (*s).clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    let mut cfg = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": H, "intermediate_size": I,
        "num_attention_heads": NH, "num_key_value_heads": KV, "num_hidden_layers": L, "vocab_size": V,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 64, "tie_word_embeddings": true
    });
    if let Some(q) = quant {
        cfg["quantization_config"] = q;
    }
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
}

/// GPTQ-quantizes `w` (`[n, k]`, row-major): per row and group of 128, an f16 scale and an
/// integer zero in 1..=15 (the original format stores zero − 1, so 0 is avoided); returns
/// qweight `[k/8, n]`, qzeros `[k/128, n/8]`, scales `[k/128, n]` and the exact dequantized
/// weights `(q − z)·s` as the loader computes them.
fn quantize(w: &[f32], n: usize, k: usize) -> (Vec<i32>, Vec<i32>, Vec<f16>, Vec<f32>) {
    let g = k / 128;
    let (mut qw, mut qz, mut sc, mut deq) = (vec![0u32; k / 8 * n], vec![0u32; g * n / 8], vec![f16::ZERO; g * n], vec![0f32; n * k]);
    for r in 0..n {
        for gi in 0..g {
            let vals = &w[r * k + gi * 128..r * k + (gi + 1) * 128];
            let (lo, hi) = vals.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let s = f16::from_f32((hi - lo).max(1e-3) / 15.0);
            let z = ((-lo / s.to_f32()).round() as i32).clamp(1, 15) as u32;
            sc[gi * n + r] = s;
            qz[gi * (n / 8) + r / 8] |= (z - 1) << (4 * (r % 8));
            for (j, &v) in vals.iter().enumerate() {
                let kk = gi * 128 + j;
                let q = ((v / s.to_f32()).round() as i32 + z as i32).clamp(0, 15) as u32;
                qw[(kk / 8) * n + r] |= q << (4 * (kk % 8));
                deq[r * k + kk] = (q as f32 - z as f32) * s.to_f32();
            }
        }
    }
    let i = |v: Vec<u32>| v.into_iter().map(|x| x as i32).collect();
    (i(qw), i(qz), sc, deq)
}

/// Writes the GPTQ checkpoint into `gptq` and the same model with the dequantized weights
/// as f32 into `dense`.
fn write_pair(gptq: &Path, dense: &Path, quant: serde_json::Value) {
    let mut rng = SmallRng::seed_from_u64(11);
    let mut rand = |n: usize, scale: f32| -> Vec<f32> { (0..n).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale).collect() };
    let (mut q, mut d): (HashMap<String, T>, HashMap<String, T>) = (HashMap::new(), HashMap::new());
    let mut both = |name: String, shape: Vec<usize>, v: Vec<f32>| {
        q.insert(name.clone(), T::F32(shape.clone(), v.clone()));
        d.insert(name, T::F32(shape, v));
    };
    both("model.embed_tokens.weight".into(), vec![V, H], rand(V * H, 1.0));
    both("model.norm.weight".into(), vec![H], rand(H, 1.0));
    let mut linears = Vec::new();
    for l in 0..L {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        both(p("input_layernorm.weight"), vec![H], rand(H, 1.0));
        both(p("post_attention_layernorm.weight"), vec![H], rand(H, 1.0));
        for (s, n, k) in [
            ("self_attn.q_proj", NH * D, H),
            ("self_attn.k_proj", KV * D, H),
            ("self_attn.v_proj", KV * D, H),
            ("self_attn.o_proj", H, NH * D),
            ("mlp.gate_proj", I, H),
            ("mlp.up_proj", I, H),
            ("mlp.down_proj", H, I),
        ] {
            linears.push((p(s), n, k, rand(n * k, 0.2)));
        }
    }
    for (name, n, k, w) in linears {
        let (qw, qz, sc, deq) = quantize(&w, n, k);
        q.insert(format!("{name}.qweight"), T::I32(vec![k / 8, n], qw));
        q.insert(format!("{name}.qzeros"), T::I32(vec![k / 128, n / 8], qz));
        q.insert(format!("{name}.scales"), T::F16(vec![k / 128, n], sc));
        q.insert(format!("{name}.g_idx"), T::I32(vec![k], (0..k as i32).map(|i| i / 128).collect()));
        d.insert(format!("{name}.weight"), T::F32(vec![n, k], deq));
    }
    write(gptq, &q, Some(quant));
    write(dense, &d, None);
}

fn logits(m: &Llama, tokens: &[u32]) -> Vec<Vec<f32>> {
    let d = Dispatcher::untuned(CpuBackend::new());
    let mut c = KvCache::new(&m.cfg);
    let mut out = vec![m.forward(&d, &mut [(&mut c, &tokens[..4])]).unwrap().remove(0)];
    for &t in &tokens[4..] {
        out.push(m.forward(&d, &mut [(&mut c, &[t])]).unwrap().remove(0));
    }
    out
}

/// `‖a − b‖ / ‖b‖`.
fn rel_rms(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

/// A GPTQ checkpoint and its dense twin in a fresh temporary folder (kept while the
/// returned guard lives).
fn checkpoint_pair(quant: serde_json::Value) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (g, d) = (tmp.path().join("gptq"), tmp.path().join("dense"));
    std::fs::create_dir_all(&g).unwrap();
    std::fs::create_dir_all(&d).unwrap();
    write_pair(&g, &d, quant);
    (tmp, g, d)
}

fn gptq_config() -> serde_json::Value {
    serde_json::json!({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": false, "sym": false})
}

#[test]
fn gptq_checkpoints_load_exactly_and_run_packed() {
    let (_tmp, g, d) = checkpoint_pair(gptq_config());
    let tokens = [1u32, 5, 9, 2, 33, 7, 60, 12];
    let dense = logits(&Llama::load(&d).unwrap(), &tokens);
    // Dequantized at load: exactly the weights s·(q − z), so exactly the same logits.
    let unpacked = logits(&Llama::load_with(&g, WeightMode::F32).unwrap(), &tokens);
    assert_eq!(unpacked, dense, "GPTQ weights dequantized at load differ from s·(q − z)");
    // Kept packed (g128 kernels, q/k rows reordered as packed rows): within the f32 bound.
    let packed = logits(&Llama::load_with(&g, WeightMode::Native).unwrap(), &tokens);
    for (i, (p, r)) in packed.iter().zip(&dense).enumerate() {
        let e = rel_rms(p, r);
        assert!(e < 1e-4, "step {i}: packed g128 logits differ by {e:.2e} (relative RMS)");
    }
}

#[test]
fn gptq_variants_outside_g128_are_refused_by_name() {
    for (field, value, says) in [
        ("desc_act", serde_json::json!(true), "desc_act"),
        ("bits", serde_json::json!(8), "only 4-bit"),
        ("group_size", serde_json::json!(64), "groups of 128"),
        ("checkpoint_format", serde_json::json!("marlin"), "checkpoint_format 'marlin'"),
        ("quant_method", serde_json::json!("awq"), "quant_method 'awq'"),
    ] {
        let mut q = gptq_config();
        q[field] = value;
        let (_tmp, g, _) = checkpoint_pair(q);
        let e = Llama::load(&g).err().unwrap_or_else(|| panic!("{field}: loaded")).to_string();
        assert!(e.contains("quantization_config") && e.contains(says), "{field}: {e}");
        assert!(e.contains("config.json"), "the error names the file: {e}");
    }
}

/// The packed g128 layers on the GPU (fused int4 kernels for decode, dequantize-then-GEMM
/// otherwise): logits follow the f32 CPU reference of the dequantized model.
#[test]
#[ignore = "needs an NVIDIA GPU"]
fn gpu_gptq_checkpoint_runs_packed() {
    use gemmtune::backend::cuda::CudaBackend;
    use gemmtune::model::cuda::{CudaLlama, GpuOptions};
    use gemmtune::model::runtime::Runtime;
    use gemmtune::problem::DType;
    let (_tmp, g, d) = checkpoint_pair(gptq_config());
    let tokens = [1u32, 5, 9, 2, 33, 7, 60, 12];
    let dense = logits(&Llama::load(&d).unwrap(), &tokens);
    let native = Llama::load_with(&g, WeightMode::Native).unwrap();
    for (dtype, bound) in [(DType::F16, 0.01), (DType::BF16, 0.05)] {
        let disp = Dispatcher::untuned(CudaBackend::new(0).expect("this test needs an NVIDIA GPU"));
        let opt = GpuOptions { dtype, slots: 2, context: 64, max_rows: 16, graphs: true, ..Default::default() };
        let mut rt = CudaLlama::from_host(&native, disp, opt).unwrap();
        let dense_bytes = (H * (NH * D + 2 * KV * D) + H * NH * D + 3 * H * I) * L * 2;
        assert!(rt.weight_bytes() < dense_bytes as u64 * 6 / 10, "{} bytes on the GPU: layers not packed", rt.weight_bytes());
        let mut c = rt.new_cache().unwrap();
        let mut gpu = vec![rt.forward(&mut [(&mut c, &tokens[..4])]).unwrap().remove(0)];
        for &t in &tokens[4..] {
            gpu.push(rt.forward(&mut [(&mut c, &[t])]).unwrap().remove(0));
        }
        for (i, (p, r)) in gpu.iter().zip(&dense).enumerate() {
            let e = rel_rms(p, r);
            assert!(e < bound, "{dtype} step {i}: GPU logits of the packed GPTQ model differ by {e:.2e} (relative RMS)");
        }
        eprintln!("{dtype}: packed GPTQ on the GPU follows the f32 reference ({} steps)", gpu.len());
    }
}
