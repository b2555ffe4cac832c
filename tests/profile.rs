//! `profile`: shapes from GGUF metadata, config.json and safetensors folders, CLI errors,
//! record merging, and `tune --top-share`.

mod common;
use common::bin;
use gemmtune::gguf::{self, Value};
use gemmtune::problem::{DType, Phase};
use gemmtune::profile::{derive, device, load, Fuse, Options};
use gemmtune::shapes::ShapeFile;
use std::fs;
use std::path::Path;

fn opts() -> Options {
    Options {
        tp: 1,
        batches: vec![1, 2, 4, 8],
        prompt_lens: vec![16, 128],
        phase: None,
        dtype: DType::F32,
        device: device("cpu").unwrap(),
        gen_len: 64,
        fuse: Fuse::Auto,
    }
}

/// A GGUF file with SmolLM2's architecture metadata and its tensor names (tiny tensors).
fn smollm2_like_gguf(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("smol.gguf");
    let u = |v: u32| Value::U32(v);
    let mut tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)> = vec![("token_embd.weight".into(), vec![8], 0, vec![0; 32])];
    for b in 0..2 {
        for t in ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"] {
            tensors.push((format!("blk.{b}.{t}.weight"), vec![8], 0, vec![0; 32]));
        }
    }
    let tensors_ref: Vec<(&str, Vec<u64>, u32, Vec<u8>)> =
        tensors.iter().map(|(n, d, t, b)| (n.as_str(), d.clone(), *t, b.clone())).collect();
    gguf::write(
        &p,
        &[
            ("general.architecture", Value::String("llama".into())),
            ("general.name", Value::String("smol".into())),
            ("llama.embedding_length", u(576)),
            ("llama.feed_forward_length", u(1536)),
            ("llama.attention.head_count", u(9)),
            ("llama.attention.head_count_kv", u(3)),
            ("llama.block_count", u(30)),
            ("llama.vocab_size", u(49152)),
        ],
        &tensors_ref,
    )
    .unwrap();
    p
}

#[test]
fn gguf_metadata_gives_the_same_shapes_as_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let g = load(&smollm2_like_gguf(dir.path())).unwrap();
    assert_eq!((g.hidden, g.heads, g.kv_heads, g.head_dim, g.layers), (576, 9, 3, 64, 30));
    assert!(g.tied_embeddings, "no output.weight: tied");
    assert_eq!(g.fused_qkv, Some(false));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let c = load(&root.join("shapes/configs/smollm2-135m.json")).unwrap();
    let from_gguf = derive(&g, &opts()).unwrap();
    let from_json = derive(&c, &Options { fuse: Fuse::Separate, ..opts() }).unwrap();
    let key = |f: &ShapeFile| f.entries.iter().map(|e| (e.problem, e.calls.to_bits())).collect::<Vec<_>>();
    assert_eq!(key(&from_gguf), key(&from_json));
    // And the shipped CPU shape file is exactly that derivation at its batch/prompt sizes.
    let shipped = ShapeFile::load(&root.join("shapes/smollm2-135m.csv")).unwrap();
    let again = derive(&c, &Options { fuse: Fuse::Separate, prompt_lens: vec![16, 128, 512], gen_len: 256, ..opts() }).unwrap();
    assert_eq!(key(&shipped), key(&again));
}

fn safetensors(path: &Path, names: &[&str]) {
    let mut header = serde_json::Map::new();
    for (i, n) in names.iter().enumerate() {
        header.insert(n.to_string(), serde_json::json!({"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}));
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut b = (h.len() as u64).to_le_bytes().to_vec();
    b.extend(h);
    b.extend(vec![0u8; 4 * names.len()]);
    fs::write(path, b).unwrap();
}

#[test]
fn safetensors_folders_decide_fusion_by_tensor_names() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    fs::copy(root.join("shapes/configs/llama-3.1-8b.json"), dir.path().join("config.json")).unwrap();
    safetensors(&dir.path().join("model.safetensors"), &["model.layers.0.self_attn.qkv_proj.weight", "model.layers.0.mlp.gate_proj.weight"]);
    let c = load(dir.path()).unwrap();
    assert_eq!((c.fused_qkv, c.fused_gate_up), (Some(true), Some(false)));
    let f = derive(&c, &Options { dtype: DType::BF16, ..opts() }).unwrap();
    assert!(f.entries.iter().any(|e| e.layer == "qkv_proj" && e.problem.n == 6144));
    assert!(f.entries.iter().any(|e| e.layer == "gate_proj+up_proj" && e.problem.n == 14336 && e.calls == 64.0));
}

#[test]
fn cli_profile_errors_name_the_field_and_records_merge() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    fs::write(&cfg, r#"{"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "vocab_size": 32000}"#).unwrap();
    let out = dir.path().join("s.csv");
    let o = bin().args(["profile", "--model"]).arg(&cfg).arg("--out").arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("config.json: field 'num_attention_heads' is missing"), "{err}");

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = bin()
        .args(["profile", "--model"])
        .arg(root.join("shapes/configs/smollm2-135m.json"))
        .args(["--tp", "2", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("num_attention_heads = 9 is not divisible by --tp 2"));

    let o = bin()
        .args(["profile", "--model"])
        .arg(root.join("shapes/configs/llama-3.1-70b.json"))
        .args(["--tp", "8", "--phase", "decode", "--max-batch", "24", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = ShapeFile::load(&out).unwrap();
    assert!(f.comments[0].starts_with("generated by: gemmtune profile --model"), "{:?}", f.comments);
    let ms: std::collections::BTreeSet<usize> = f.entries.iter().map(|e| e.problem.m).collect();
    assert_eq!(ms.into_iter().collect::<Vec<_>>(), vec![1, 2, 4, 8, 16, 24]);
    assert!(f.entries.iter().all(|e| e.phase == Phase::Decode));
    assert!(f.entries.iter().any(|e| e.problem.n == 1280 && e.problem.k == 8192));

    // Records from two dispatch runs merge with counts summed.
    let (r1, r2) = (dir.path().join("r1.csv"), dir.path().join("r2.csv"));
    fs::write(&r1, "dtype,m,n,k,calls\nf32,3,64,96,5\n").unwrap();
    fs::write(&r2, "dtype,m,n,k,calls\nf32,3,64,96,2\nf32,5,64,96,1\n").unwrap();
    let merged = dir.path().join("m.csv");
    let o = bin().args(["profile", "--from-record"]).arg(&r1).arg(&r2).arg("--out").arg(&merged).output().unwrap();
    assert!(o.status.success());
    let m = ShapeFile::load(&merged).unwrap();
    assert_eq!(m.entries.len(), 2);
    assert_eq!(m.entries[0].calls, 7.0);
    // Weighted by time, not calls: one call of a large weight outweighs many small ones.
    let rec = dir.path().join("r3.csv");
    fs::write(&rec, "dtype,m,n,k,calls
f32,1,576,576,60
f32,1,49152,576,1
").unwrap();
    let o = bin().args(["profile", "--from-record"]).arg(&rec).args(["--device", "cpu", "--out"]).arg(&merged).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = ShapeFile::load(&merged).unwrap();
    let w = |n: usize| m.entries.iter().find(|e| e.problem.n == n).unwrap().weight;
    assert!(w(49152) > w(576), "lm_head {} vs q_proj {}", w(49152), w(576));
    // Options a record does not use are refused, not ignored.
    let o = bin().args(["profile", "--from-record"]).arg(&rec).args(["--tp", "8", "--out"]).arg(&merged).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn tune_top_share_takes_the_heaviest_shapes_first() {
    let dir = tempfile::tempdir().unwrap();
    let shapes = dir.path().join("s.csv");
    fs::write(&shapes, "dtype,m,n,k,weight\nf32,1,64,64,1\nf32,2,64,64,90\nf32,4,64,64,5\nf32,8,64,64,4\n").unwrap();
    let table = dir.path().join("t.csv");
    let o = bin()
        .args(["tune", "--shapes"])
        .arg(&shapes)
        .arg("--out")
        .arg(&table)
        .args(["--top-share", "0.95", "--budget-ms", "20"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2 of 4 shapes make up 95.0%"), "{err}");
    let t = gemmtune::table::Table::load(&table).unwrap();
    let ms: Vec<usize> = t.rows.iter().map(|r| r.problem.m).collect();
    assert_eq!(ms, vec![2, 4]);
}
