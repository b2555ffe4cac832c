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
    /// Put before every prompt (the model adds a beginning-of-sequence token).
    pub bos: Option<u32>,
    /// The beginning-of-sequence token, whether or not prompts get it (a chat template's
    /// `bos_token`).
    pub bos_token: Option<u32>,
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
        // Pre-tokenizers whose splitting is known to be the GPT-2 regex (with digits split
        // one by one for the first group); others (llama-bpe, qwen2, ...) split differently,
        // and their ids would be silently wrong, so they are refused.
        let pre_tok: PreTokenizerWrapper = match pre {
            "smollm" | "starcoder" | "refact" => Sequence::new(vec![Digits::new(true).into(), byte_level]).into(),
            "default" | "gpt-2" | "gpt2" => byte_level,
            other => return Err(bad(format!("pre-tokenizer '{other}' is not supported (smollm, starcoder, refact, gpt-2 are)"))),
        };
        inner.with_pre_tokenizer(Some(pre_tok));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        if types.len() > tokens.len() {
            return Err(bad(format!("tokenizer.ggml.token_type has {} entries for {} tokens", types.len(), tokens.len())));
        }
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
            bos_token: id("tokenizer.ggml.bos_token_id"),
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
        // The template: a string, a list of named ones ("default" taken), or a file of its own.
        let chat_template = match tcfg.as_ref().and_then(|c| c.get("chat_template")) {
            Some(serde_json::Value::String(t)) => Some(t.clone()),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_string),
            _ => std::fs::read_to_string(path.join("chat_template.jinja")).ok(),
        };
        // A beginning-of-sequence token is what the tokenizer's post-processor puts before
        // the text (a Llama or Mistral tokenizer.json's TemplateProcessing).
        let probe = |special: bool| inner.encode("a", special).map(|e| e.get_ids().to_vec()).unwrap_or_default();
        let (plain, with) = (probe(false), probe(true));
        let bos = (with.len() == plain.len() + 1 && with[1..] == plain[..]).then(|| with[0]);
        let named = tcfg.as_ref().and_then(|c| c.get("bos_token")).and_then(|b| b.as_str().or_else(|| b.get("content")?.as_str()));
        let bos_token = named.and_then(|t| inner.token_to_id(t)).or(bos);
        Ok(Tokenizer { inner, eos, bos, bos_token, chat_template, stop })
    }

    /// The ids of `text`, after the beginning-of-sequence token where the model has one,
    /// unless the text starts with it already (a chat template that writes `bos_token`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| Error::runtime(format!("tokenizer: {e}")))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if let Some(b) = self.bos.filter(|&b| enc.get_ids().first() != Some(&b)) {
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
        // As transformers renders them: blocks trimmed, Python string methods, the special
        // tokens as variables and `raise_exception`.
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_template("chat", src).map_err(|e| Error::input(format!("chat template: {e}")))?;
        let msgs: Vec<HashMap<&str, &str>> =
            messages.iter().map(|(r, c)| HashMap::from([("role", r.as_str()), ("content", c.as_str())])).collect();
        let token = |id: Option<u32>| id.and_then(|i| self.inner.id_to_token(i)).unwrap_or_default();
        let ctx = minijinja::context! {
            messages => msgs,
            add_generation_prompt => true,
            bos_token => token(self.bos_token),
            eos_token => token(Some(self.eos)),
        };
        env.get_template("chat").and_then(|t| t.render(ctx)).map_err(|e| Error::input(format!("chat template: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::processors::template::TemplateProcessing;

    /// A Hugging Face folder whose tokenizer.json puts `<s>` before every text (as Llama's
    /// and Mistral's do), with `template` as tokenizer_config.json's chat template.
    fn hf_folder(dir: &std::path::Path, template: &str) {
        let vocab: HashMap<String, u32> =
            ["<s>", "</s>", "<unk>", "a", "b", "c", "[INST]", "[/INST]"].iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
        let model = WordLevel::builder().vocab(vocab.into_iter().collect()).unk_token("<unk>".into()).build().unwrap();
        let mut t = HfTokenizer::new(model);
        t.with_pre_tokenizer(Some(Whitespace {}));
        t.add_special_tokens(["<s>", "</s>", "[INST]", "[/INST]"].map(|s| AddedToken::from(s, true))).unwrap();
        let post = TemplateProcessing::builder().try_single("<s> $A").unwrap().special_tokens(vec![("<s>", 0)]).build().unwrap();
        t.with_post_processor(Some(post));
        t.save(dir.join("tokenizer.json"), false).unwrap();
        std::fs::write(dir.join("config.json"), r#"{"eos_token_id": 1}"#).unwrap();
        let cfg = serde_json::json!({"bos_token": "<s>", "eos_token": "</s>", "chat_template": template});
        std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
    }

    #[test]
    fn a_folder_s_post_processor_gives_the_bos_once_and_templates_render_as_transformers_does() {
        let dir = tempfile::tempdir().unwrap();
        // Mistral's shape of template: bos_token written by the template, blocks on their
        // own lines (trimmed), a Python string method.
        let template = "{{ bos_token }}\n{% for m in messages %}\n{% if m['role'] == 'user' %}\n[INST] {{ m['content'].strip() }} [/INST]\n{% else %}{{ raise_exception('bad role') }}{% endif %}\n{% endfor %}";
        hf_folder(dir.path(), template);
        let t = Tokenizer::load(dir.path()).unwrap();
        assert_eq!((t.bos, t.bos_token, t.eos), (Some(0), Some(0), 1));
        assert_eq!(t.encode("a b").unwrap(), [0, 3, 4], "a plain prompt gets the bos");
        let chat = t.chat_prompt(&[("user".into(), "  a c ".into())]).unwrap();
        // What jinja2 renders with transformers' settings (trim_blocks, lstrip_blocks).
        assert_eq!(chat, "<s>\n[INST] a c [/INST]\n", "trimmed blocks, strip(), bos_token");
        assert_eq!(t.encode(&chat).unwrap(), [0, 6, 3, 5, 7], "the template's bos is not doubled");
        let e = t.chat_prompt(&[("system".into(), "x".into())]).unwrap_err().to_string();
        assert!(e.contains("bad role"), "{e}");
    }
}
