//! The tokenizer, built from GGUF metadata with the `tokenizers` crate: byte-level BPE
//! (`tokenizer.ggml.model = gpt2`) with its vocabulary and merges, control tokens as
//! special tokens, and the pre-tokenizer the GGUF names (`tokenizer.ggml.pre`). SmolLM2's
//! `smollm` splits every digit on its own before the GPT-2 byte-level regex (as llama.cpp
//! does; transformers 5 does not know the name and skips the digit split, which differs
//! only for non-ASCII numerals after a space). Also the chat template (minijinja).

use crate::error::{Error, Result};
use crate::gguf::Gguf;
use std::collections::HashMap;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

pub struct Tokenizer {
    inner: HfTokenizer,
    pub eos: u32,
    pub bos: Option<u32>,
    pub chat_template: Option<String>,
    /// Token ids that end a generation (eos and any `<|im_end|>`-style end marker).
    pub stop: Vec<u32>,
}

fn strings(g: &Gguf, key: &str) -> Result<Vec<String>> {
    let arr = g
        .get(key)
        .and_then(|v| v.as_array())
        .ok_or_else(|| Error::input(format!("{}: metadata field '{key}' is missing", g.path.display())))?;
    arr.iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::input(format!("{}: '{key}' holds non-strings", g.path.display())))
}

impl Tokenizer {
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
        let bad = |m: String| Error::input(format!("{}: {m}", g.path.display()));
        let model = g.get("tokenizer.ggml.model").and_then(|v| v.as_str()).unwrap_or("");
        if model != "gpt2" {
            return Err(bad(format!("tokenizer model '{model}' is not supported (byte-level BPE 'gpt2' is)")));
        }
        let tokens = strings(g, "tokenizer.ggml.tokens")?;
        let merges: Vec<(String, String)> = strings(g, "tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| bad(format!("merge '{m}' has no space")))
            })
            .collect::<Result<_>>()?;
        let types: Vec<u64> = g
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(1)).collect())
            .unwrap_or_default();
        let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| bad(format!("cannot build the BPE model: {e}")))?;
        let mut inner = HfTokenizer::new(bpe);
        let pre = g.get("tokenizer.ggml.pre").and_then(|v| v.as_str()).unwrap_or("default");
        let byte_level: PreTokenizerWrapper = ByteLevel::new(false, true, true).into();
        let pre_tok: PreTokenizerWrapper = match pre {
            "smollm" | "starcoder" | "refact" => Sequence::new(vec![Digits::new(true).into(), byte_level]).into(),
            _ => byte_level,
        };
        inner.with_pre_tokenizer(Some(pre_tok));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        // Control tokens (type 3) are matched whole and never split.
        let special: Vec<AddedToken> = types
            .iter()
            .enumerate()
            .filter(|(_, &t)| t == 3)
            .map(|(i, _)| AddedToken::from(tokens[i].clone(), true))
            .collect();
        inner.add_special_tokens(special).map_err(|e| bad(format!("special tokens: {e}")))?;
        let id = |k: &str| g.get(k).and_then(|v| v.as_u64()).map(|v| v as u32);
        let eos = id("tokenizer.ggml.eos_token_id").ok_or_else(|| bad("no tokenizer.ggml.eos_token_id".into()))?;
        let add_bos = g.get("tokenizer.ggml.add_bos_token").map(|v| *v == crate::gguf::Value::Bool(true)).unwrap_or(false);
        let mut stop = vec![eos];
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
            if let Some(i) = tokens.iter().position(|t| t == name) {
                if !stop.contains(&(i as u32)) {
                    stop.push(i as u32);
                }
            }
        }
        Ok(Tokenizer {
            inner,
            eos,
            bos: if add_bos { id("tokenizer.ggml.bos_token_id") } else { None },
            chat_template: g.get("tokenizer.chat_template").and_then(|v| v.as_str()).map(str::to_string),
            stop,
        })
    }

    /// The tokenizer of a model path: GGUF metadata, or `tokenizer.json` (+ config.json
    /// for the end-of-sequence id, tokenizer_config.json for the chat template) in a folder.
    pub fn load(path: &std::path::Path) -> Result<Tokenizer> {
        if !path.is_dir() {
            return Tokenizer::from_gguf(&Gguf::open(path)?);
        }
        let tj = path.join("tokenizer.json");
        let inner = HfTokenizer::from_file(&tj).map_err(|e| Error::input(format!("{}: {e}", tj.display())))?;
        let read = |name: &str| -> Option<serde_json::Value> {
            serde_json::from_str(&std::fs::read_to_string(path.join(name)).ok()?).ok()
        };
        let cfg = read("config.json");
        let tcfg = read("tokenizer_config.json");
        let eos = cfg
            .as_ref()
            .and_then(|c| c.get("eos_token_id"))
            .and_then(|v| v.as_u64().or_else(|| v.as_array().and_then(|a| a.first()).and_then(|x| x.as_u64())))
            .ok_or_else(|| Error::input(format!("{}: 'eos_token_id' is missing", path.join("config.json").display())))?
            as u32;
        let mut stop = vec![eos];
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
            if let Some(i) = inner.token_to_id(name) {
                if !stop.contains(&i) {
                    stop.push(i);
                }
            }
        }
        let chat_template = tcfg.as_ref().and_then(|c| c.get("chat_template")).and_then(|v| v.as_str()).map(str::to_string);
        Ok(Tokenizer { inner, eos, bos: None, chat_template, stop })
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| Error::runtime(format!("tokenizer: {e}")))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if let Some(b) = self.bos {
            ids.push(b);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| Error::runtime(format!("tokenizer: {e}")))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Renders chat messages (role, content) with the model's template and a generation
    /// prompt; ChatML when the model has no template.
    pub fn chat_prompt(&self, messages: &[(String, String)]) -> Result<String> {
        let fallback = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        let src = self.chat_template.as_deref().unwrap_or(fallback);
        let mut env = minijinja::Environment::new();
        env.add_template("chat", src).map_err(|e| Error::input(format!("chat template: {e}")))?;
        let msgs: Vec<HashMap<&str, &str>> =
            messages.iter().map(|(r, c)| HashMap::from([("role", r.as_str()), ("content", c.as_str())])).collect();
        env.get_template("chat")
            .and_then(|t| t.render(minijinja::context! { messages => msgs, add_generation_prompt => true }))
            .map_err(|e| Error::input(format!("chat template: {e}")))
    }
}

/// Incremental detokenization for streaming: emits only text that is complete (no
/// dangling partial UTF-8 sequence).
pub struct StreamDecoder {
    ids: Vec<u32>,
    emitted: usize,
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder { ids: Vec::new(), emitted: 0 }
    }

    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = tok.decode(&self.ids)?;
        if text.ends_with('\u{FFFD}') {
            return Ok(String::new()); // wait for the rest of the character
        }
        let new = text.get(self.emitted..).unwrap_or("").to_string();
        self.emitted = text.len();
        Ok(new)
    }
}

impl Default for StreamDecoder {
    fn default() -> Self {
        StreamDecoder::new()
    }
}
