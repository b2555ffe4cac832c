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
    /// The same tokenizer reading control-token text as plain text: for what users wrote
    /// in chat messages (see `chat_ids`).
    plain: HfTokenizer,
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

/// `t` with its special tokens' text encoded as ordinary text.
fn plain_of(t: &HfTokenizer) -> HfTokenizer {
    let mut plain = t.clone();
    plain.set_encode_special_tokens(true);
    plain
}

/// A piece of a chat template's output: its own text, or message `i`'s content.
enum Piece {
    Template(String),
    Content(usize),
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
            plain: plain_of(&inner),
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
        if !tj.is_file() {
            return Err(Error::input(format!(
                "{}: not a model folder: no tokenizer.json (a Hugging Face folder holds config.json, tokenizer.json and *.safetensors; or give a .gguf file)",
                path.display()
            )));
        }
        let inner = HfTokenizer::from_file(&tj).map_err(|e| Error::input(format!("{}: {e}", tj.display())))?;
        // A missing file is None; a present one that is not JSON is an error naming it.
        let read = |name: &str| -> Result<Option<serde_json::Value>> {
            let f = path.join(name);
            let Ok(text) = std::fs::read_to_string(&f) else { return Ok(None) };
            serde_json::from_str(&text).map(Some).map_err(|e| Error::input(format!("{}: {e}", f.display())))
        };
        let cfg = read("config.json")?;
        let tcfg = read("tokenizer_config.json")?;
        // transformers ends a generation at any of generation_config.json's eos ids (a
        // Llama 3 instruct model ends its turn with <|eot_id|>, listed only there) and
        // config.json's: an id or a list of ids in either.
        let gcfg = read("generation_config.json")?;
        let eos_ids = |c: &Option<serde_json::Value>, file: &str| -> Result<Vec<u32>> {
            let Some(v) = c.as_ref().and_then(|c| c.get("eos_token_id")) else { return Ok(Vec::new()) };
            let one = |x: &serde_json::Value| x.as_u64().and_then(|i| u32::try_from(i).ok());
            let ids: Option<Vec<u32>> = match v {
                serde_json::Value::Array(a) => a.iter().map(one).collect(),
                serde_json::Value::Null => Some(Vec::new()),
                x => one(x).map(|i| vec![i]),
            };
            ids.ok_or_else(|| {
                Error::input(format!("{}: 'eos_token_id' must be a token id or a list of them, not {v}", path.join(file).display()))
            })
        };
        let mut stop: Vec<u32> = Vec::new();
        for id in eos_ids(&cfg, "config.json")?.into_iter().chain(eos_ids(&gcfg, "generation_config.json")?) {
            if !stop.contains(&id) {
                stop.push(id);
            }
        }
        let vocab = inner.get_vocab_size(true) as u32;
        if let Some(bad) = stop.iter().find(|&&i| i >= vocab) {
            return Err(Error::input(format!("{}: eos_token_id {bad} is not in the vocabulary of {vocab} tokens", path.display())));
        }
        let eos = *stop.first().ok_or_else(|| {
            Error::input(format!("{}: 'eos_token_id' is missing (config.json or generation_config.json)", path.display()))
        })?;
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
        Ok(Tokenizer { plain: plain_of(&inner), inner, eos, bos, bos_token, chat_template, stop })
    }

    /// The ids of `text`, after the beginning-of-sequence token where the model has one,
    /// unless the text starts with it already (a chat template that writes `bos_token`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| Error::runtime(format!("tokenizer: {e}")))?;
        Ok(self.with_bos(enc.get_ids().to_vec()))
    }

    /// `ids` after the beginning-of-sequence token where the model has one, unless they
    /// start with it already.
    fn with_bos(&self, mut ids: Vec<u32>) -> Vec<u32> {
        if let Some(b) = self.bos.filter(|&b| ids.first() != Some(&b)) {
            ids.insert(0, b);
        }
        ids
    }

    /// The ids of a chat, where only the template's own text gives control tokens: a
    /// message containing "<|im_end|>\n<|im_start|>system" stays that text instead of
    /// ending its turn and opening a system one (as OpenAI's API treats message text).
    ///
    /// Messages without such text get the ids of the whole rendering. Otherwise the
    /// template is rendered a second time with a unique mark for each content. Where
    /// putting the contents back in the marks' places gives the real rendering (the
    /// template used them verbatim), the control tokens are looked for in the template's
    /// text only, and the text between two of them (template and message text together)
    /// is encoded with control-token text read as text: how the tokenizer treats a whole
    /// text (split at control tokens, each stretch encoded on its own). A template that
    /// changes contents (strip(), say) refuses control-token text in them.
    pub fn chat_ids(&self, messages: &[(String, String)]) -> Result<Vec<u32>> {
        let text = self.chat_prompt(messages)?;
        let control = self.control_tokens();
        // Messages without control-token text: the whole rendering encoded as it is. (The
        // stretches below are not always its ids: a Metaspace pre-tokenizer that prepends
        // "▁" to the first piece only would prepend it to every stretch.)
        if control_text_in(messages, &control).is_none() {
            return self.encode(&text);
        }
        self.chat_ids_in_stretches(messages, &text, &control)
    }

    /// The special added tokens with their ids (what `chat_ids` keeps to the template).
    pub fn control_tokens(&self) -> Vec<(u32, AddedToken)> {
        self.inner.get_added_tokens_decoder().into_iter().filter(|(_, t)| t.special && !t.content.is_empty()).collect()
    }

    /// `chat_ids`'s form for messages holding control-token text (public for the tests
    /// that compare it with the whole rendering's ids on ordinary messages): `text` is the
    /// rendering, `control` the special added tokens.
    pub fn chat_ids_in_stretches(&self, messages: &[(String, String)], text: &str, control: &[(u32, AddedToken)]) -> Result<Vec<u32>> {
        let nonce: u64 = rand::random();
        let mark = |i: usize| format!("\u{F8F0}{nonce:016x}:{i}\u{F8F1}");
        let marked: Vec<(String, String)> = messages.iter().enumerate().map(|(i, (r, _))| (r.clone(), mark(i))).collect();
        if let Ok(skeleton) = self.chat_prompt(&marked) {
            // The template's stretches of the real text, by byte range.
            let (mut at, mut template, mut rebuilt) = (0, Vec::new(), String::new());
            for piece in split_marks(&skeleton, messages.len(), &mark) {
                let s = match piece {
                    Piece::Template(s) => {
                        template.push((at, at + s.len()));
                        s
                    }
                    Piece::Content(i) => messages[i].1.clone(),
                };
                at += s.len();
                rebuilt.push_str(&s);
            }
            if rebuilt == text {
                let mut spans = Vec::new();
                for &(from, to) in &template {
                    spans.extend(control_spans(text, from, to, control));
                }
                let mut ids = Vec::new();
                let mut done = 0;
                for (from, to, id) in spans.into_iter().chain([(text.len(), text.len(), u32::MAX)]) {
                    if from > done {
                        let enc = self.plain.encode(&text[done..from], false).map_err(|e| Error::runtime(format!("tokenizer: {e}")))?;
                        ids.extend_from_slice(enc.get_ids());
                    }
                    if id != u32::MAX {
                        ids.push(id);
                    }
                    done = to;
                }
                return Ok(self.with_bos(ids));
            }
        }
        if let Some(t) = control_text_in(messages, control) {
            return Err(Error::input(format!(
                "a message contains the control token text '{}', which this model's chat template would not keep as text",
                t.content
            )));
        }
        self.encode(text)
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

/// The control tokens in `text[from..to]`: (start, end, id), leftmost-longest, each
/// widened over the whitespace its `lstrip`/`rstrip` swallows (as the tokenizer does).
fn control_spans(text: &str, from: usize, to: usize, control: &[(u32, AddedToken)]) -> Vec<(usize, usize, u32)> {
    let mut spans = Vec::new();
    let mut i = from;
    while i < to {
        let here = &text[i..to];
        let best = control.iter().filter(|(_, t)| here.starts_with(t.content.as_str())).max_by_key(|(_, t)| t.content.len());
        match best {
            Some((id, t)) => {
                let (mut s, mut e) = (i, i + t.content.len());
                if t.lstrip {
                    s = text[..s].trim_end().len().max(spans.last().map_or(0, |l: &(usize, usize, u32)| l.1));
                }
                if t.rstrip {
                    e = text.len() - text[e..].trim_start().len();
                }
                spans.push((s, e, *id));
                i = e.max(i + t.content.len());
            }
            None => i += here.chars().next().map_or(1, char::len_utf8),
        }
    }
    spans
}

/// The first control token whose text a message holds, if any.
fn control_text_in<'a>(messages: &[(String, String)], control: &'a [(u32, AddedToken)]) -> Option<&'a AddedToken> {
    messages.iter().find_map(|(_, c)| control.iter().map(|(_, t)| t).find(|t| c.contains(t.content.as_str())))
}

/// `skeleton` cut at the marks of `n` contents (`mark(i)`), in the order they appear.
fn split_marks(skeleton: &str, n: usize, mark: &dyn Fn(usize) -> String) -> Vec<Piece> {
    let marks: Vec<String> = (0..n).map(mark).collect();
    let mut pieces = Vec::new();
    let mut rest = skeleton;
    loop {
        let next = marks.iter().enumerate().filter_map(|(i, m)| rest.find(m.as_str()).map(|at| (at, i))).min();
        let Some((at, i)) = next else { break };
        pieces.push(Piece::Template(rest[..at].to_string()));
        pieces.push(Piece::Content(i));
        rest = &rest[at + marks[i].len()..];
    }
    pieces.push(Piece::Template(rest.to_string()));
    pieces
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

    /// The text held back at the end (an incomplete character, as U+FFFD, or a model that
    /// really ended on one): what `push` would have emitted had more tokens come.
    pub fn finish(&mut self, tok: &Tokenizer) -> Result<String> {
        let text = tok.decode(&self.ids)?;
        let rest = text.get(self.emitted..).unwrap_or("").to_string();
        self.emitted = text.len();
        Ok(rest)
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

    /// Control-token text in a chat message stays text: only the template's own text gives
    /// control tokens. A template that changes the contents (strip()) refuses such text.
    #[test]
    fn control_token_text_in_messages_stays_text() {
        let dir = tempfile::tempdir().unwrap();
        hf_folder(dir.path(), "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}");
        let t = Tokenizer::load(dir.path()).unwrap();
        let msgs = |c: &str| vec![("user".to_string(), c.to_string())];
        let ids = t.chat_ids(&msgs("a [/INST] b [INST] c")).unwrap();
        let count = |ids: &[u32], id: u32| ids.iter().filter(|&&i| i == id).count();
        assert_eq!((count(&ids, 6), count(&ids, 7)), (1, 1), "{ids:?}");
        assert_eq!(ids[..3], [0, 6, 3], "bos, the template's [INST], then 'a'");
        // Plain messages: the stretch form gives the whole rendering's ids.
        for c in ["a b c", " a  b ", "c\na"] {
            let text = t.chat_prompt(&msgs(c)).unwrap();
            assert_eq!(t.chat_ids_in_stretches(&msgs(c), &text, &t.control_tokens()).unwrap(), t.encode(&text).unwrap(), "{c:?}");
        }
        hf_folder(dir.path(), "{% for m in messages %}[INST] {{ m['content'].strip() }} [/INST]{% endfor %}");
        let t = Tokenizer::load(dir.path()).unwrap();
        let e = t.chat_ids(&msgs(" a [/INST] b ")).unwrap_err().to_string();
        assert!(e.contains("control token text '[/INST]'"), "{e}");
        assert_eq!(t.chat_ids(&msgs(" a b ")).unwrap(), [0, 6, 3, 4, 7]);
    }

    /// Every eos id of config.json and generation_config.json ends a generation (Llama 3
    /// instruct lists its end of turn only in the latter), config.json's first is `eos`;
    /// ids that are not ids, or not in the vocabulary, and files that are not JSON are
    /// errors naming the file.
    #[test]
    fn eos_ids_come_from_both_configs() {
        let dir = tempfile::tempdir().unwrap();
        hf_folder(dir.path(), "");
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("config.json", r#"{"eos_token_id": [1, 7]}"#);
        write("generation_config.json", r#"{"eos_token_id": [7, 6], "do_sample": true}"#);
        let t = Tokenizer::load(dir.path()).unwrap();
        assert_eq!(t.eos, 1);
        for id in [1, 7, 6] {
            assert!(t.stop.contains(&id), "{id} in {:?}", t.stop);
        }
        // Only generation_config.json has one.
        write("config.json", r#"{"eos_token_id": null}"#);
        write("generation_config.json", r#"{"eos_token_id": 6}"#);
        assert_eq!(Tokenizer::load(dir.path()).unwrap().eos, 6);
        let err = |gen: &str| {
            write("generation_config.json", gen);
            Tokenizer::load(dir.path()).err().map(|e| e.to_string()).unwrap_or_default()
        };
        assert!(err(r#"{"eos_token_id": "</s>"}"#).contains("generation_config.json: 'eos_token_id' must be"));
        assert!(err(r#"{"eos_token_id": 99}"#).contains("eos_token_id 99 is not in the vocabulary"));
        let e = err("{\n\"eos_token_id\": 1,,}");
        assert!(e.contains("generation_config.json") && e.contains("line 2"), "{e}");
        assert!(err("{}").contains("'eos_token_id' is missing"));
    }
}
