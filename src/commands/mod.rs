//! The work behind each CLI subcommand.

mod backends;
mod bench;
mod dispatch;
mod generate;
mod profile;
mod serve;
mod table;
mod tune;

use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::CudaBackend;
use crate::cli::{BackendName, Cli, Command};
use crate::error::{Error, Result};

/// Runs `$body` with `$b` bound to the backend named by `$name` (each backend is its own
/// type, so the body is compiled once per backend).
macro_rules! with_backend {
    ($name:expr, $b:ident => $body:expr) => {
        $crate::commands::with_backend!($name, 0, $b => $body)
    };
    ($name:expr, $device:expr, $b:ident => $body:expr) => {
        match $name {
            BackendName::Cpu => {
                let $b = CpuBackend::new();
                $body
            }
            BackendName::Cuda => {
                let $b = CudaBackend::new($device)?;
                $body
            }
            BackendName::Rocm => Err(Error::input(
                "backend 'rocm' is not part of this build yet (the ROCm backend is in development); use --backend cpu or cuda",
            )),
        }
    };
}
pub(crate) use with_backend;

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Tune(a) if !a.devices.is_empty() || a.isolate => tune::run_devices(&a),
        Command::Tune(a) => with_backend!(a.backend, a.device, b => tune::run(b, &a)),
        Command::Table(t) => table::run(t),
        Command::Bench(a) => with_backend!(a.backend, b => bench::run(b, &a)),
        Command::Dispatch(a) => with_backend!(a.backend, b => dispatch::run(b, &a)),
        Command::Profile(a) => profile::run(&a),
        Command::Generate(a) => generate::run(&a),
        Command::Serve(a) => serve::run(&a),
        Command::Backends => backends::run(),
    }
}

pub(crate) fn fmt_us(seconds: f64) -> String {
    let us = seconds * 1e6;
    if !us.is_finite() {
        "-".into()
    } else if us >= 100.0 {
        format!("{us:.0}")
    } else if us >= 10.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.2}")
    }
}

/// The model, tokenizer and dispatcher `generate` and `serve` run with: the table (or
/// the backend default when none), its warnings printed, and `--record` applied.
pub(crate) fn load_runtime(
    model: &std::path::Path,
    table: Option<&std::path::Path>,
    strict: bool,
    record: Option<&std::path::Path>,
    weights: crate::model::weights::WeightMode,
) -> Result<(crate::model::llama::Llama, crate::model::tokenizer::Tokenizer, crate::dispatch::Dispatcher<CpuBackend>)> {
    use crate::dispatch::Dispatcher;
    let tok = crate::model::tokenizer::Tokenizer::load(model)?;
    let llama = crate::model::llama::Llama::load_with(model, weights)?;
    let mut d = match table {
        Some(path) => Dispatcher::from_table(path, CpuBackend::new(), strict)?,
        None => Dispatcher::untuned(CpuBackend::new()),
    };
    for w in d.warnings() {
        eprintln!("warning: {w}");
    }
    if let Some(r) = record {
        d = d.record_all(r);
    }
    Ok((llama, tok, d))
}
