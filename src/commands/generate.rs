use crate::backend::cpu::CpuBackend;
use crate::cli::GenerateArgs;
use crate::dispatch::Dispatcher;
use crate::error::Result;
use crate::gguf::Gguf;
use crate::model::llama::Llama;
use crate::model::sampler::Sampler;
use crate::model::tokenizer::{StreamDecoder, Tokenizer};
use crate::model::generate;
use std::io::Write;
use std::time::Instant;

pub fn run(a: &GenerateArgs) -> Result<()> {
    let t = Instant::now();
    let g = Gguf::open(&a.model)?;
    let tok = Tokenizer::from_gguf(&g)?;
    let model = Llama::load(&a.model)?;
    let mut d = match &a.table {
        Some(path) => Dispatcher::from_table(path, CpuBackend::new(), a.strict)?,
        None => Dispatcher::untuned(CpuBackend::new()),
    };
    for w in d.warnings() {
        eprintln!("warning: {w}");
    }
    if let Some(r) = &a.record {
        d = d.record_all(r);
    }
    let text = if a.chat { tok.chat_prompt(&[("user".into(), a.prompt.clone())])? } else { a.prompt.clone() };
    let ids = tok.encode(&text)?;
    eprintln!("loaded {} in {:.2} s; prompt: {} tokens", a.model.display(), t.elapsed().as_secs_f64(), ids.len());
    let mut sampler = Sampler::new(a.temperature, a.top_p, a.seed);
    let mut stream = StreamDecoder::new();
    let mut out = std::io::stdout().lock();
    let mut generated = Vec::new();
    let stats = generate(&model, &d, &ids, a.max_tokens, &tok.stop, &mut sampler, |id| {
        generated.push(id);
        if a.ids {
            write!(out, "{id} ").ok();
        } else {
            write!(out, "{}", stream.push(&tok, id)?).ok();
        }
        out.flush().ok();
        Ok(true)
    })?;
    writeln!(out).ok();
    eprintln!(
        "prefill: {} tokens in {:.3} s ({:.1} tok/s); decode: {} tokens in {:.3} s ({:.1} tok/s){}",
        stats.prompt_tokens,
        stats.prefill.as_secs_f64(),
        stats.prefill_tok_s(),
        stats.generated,
        stats.decode.as_secs_f64(),
        stats.decode_tok_s(),
        if stats.stopped_by_eos { "; stopped at end of turn" } else { "" }
    );
    eprintln!("dispatch: {}", d.coverage().summary());
    d.flush_record()?;
    Ok(())
}
