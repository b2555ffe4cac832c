//! The work behind each CLI subcommand.

mod backends;
mod bench;
mod decode_bench;
mod dispatch;
mod generate;
mod interrupt;
mod profile;
mod serve;
mod table;
mod tune;

use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::CudaBackend;
use crate::cli::{BackendName, Cli, Command};
use crate::error::Result;

/// Runs `$body` with `$b` bound to the backend named by `$name` (each backend is its own
/// type, so the body is compiled once per backend).
macro_rules! with_backend {
    ($name:expr, $b:ident => $body:expr) => {
        $crate::commands::with_backend!($name, 0, $b => $body)
    };
    ($name:expr, $device:expr, $b:ident => $body:expr) => {
        match $name {
            BackendName::Cpu => {
                $crate::cli::check_device(BackendName::Cpu, $device)?;
                let $b = CpuBackend::new();
                $body
            }
            BackendName::Cuda => {
                let $b = CudaBackend::new($device)?;
                $body
            }
            BackendName::Rocm => {
                let $b = $crate::backend::rocm::RocmBackend::new($device)?;
                $body
            }
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
        Command::DecodeBench(a) => decode_bench::run(&a),
    }
}

/// The leading columns that name a problem in a printed table: type, m, n, k, and the
/// batch when any row of the table is batched (`batched`).
pub(crate) fn problem_head(batched: bool) -> Vec<&'static str> {
    let mut head = vec!["type", "m", "n", "k"];
    if batched {
        head.push("batch");
    }
    head
}

/// `p`'s cells under `problem_head(batched)`.
pub(crate) fn problem_cells(p: &crate::problem::Problem, batched: bool) -> Vec<String> {
    let mut row = vec![format!("{} {}", p.types(), p.layout), p.m.to_string(), p.n.to_string(), p.k.to_string()];
    if batched {
        row.push(p.batch.to_string());
    }
    row
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

/// `--pdl` of tune and bench: our kernels launched chained on `b`, or an input error
/// where it has no such launches. Returns whether they are chained.
pub(crate) fn chain_launches<B: crate::backend::Backend>(b: &B, pdl: bool) -> Result<bool> {
    if pdl && !b.set_chained_launches(true) {
        return Err(crate::error::Error::input(format!(
            "--pdl: the {} backend here has no chained launches (CUDA, sm_90+)",
            b.name()
        )));
    }
    Ok(pdl)
}

/// The dispatcher `generate` and `serve` run with on backend `b`: the table (or the
/// backend default when none), its warnings printed, and `--record` applied.
pub(crate) fn load_dispatcher<B: crate::backend::Backend>(
    b: B,
    table: Option<&std::path::Path>,
    strict: bool,
    record: Option<&std::path::Path>,
) -> Result<crate::dispatch::Dispatcher<B>> {
    use crate::dispatch::Dispatcher;
    let mut d = match table {
        Some(path) => Dispatcher::from_table(path, b, strict)?,
        None => Dispatcher::untuned(b),
    };
    for w in d.warnings() {
        eprintln!("warning: {w}");
    }
    if let Some(r) = record {
        d = d.record_all(r);
    }
    Ok(d)
}

/// Runs `$body` with `$rt` bound to the runtime `$exec` asks for (the CPU f32 model, or
/// the model uploaded to a GPU) and `$stats` to its dispatcher's statistics.
macro_rules! with_runtime {
    ($exec:expr, $model:expr, $table:expr, $strict:expr, $record:expr, $slots:expr, ($rt:ident, $stats:ident) => $body:expr) => {{
        // (generate and serve have checked `exec` and the record path before loading.)
        let exec: &crate::cli::ExecArgs = $exec;
        let model = crate::model::llama::Llama::load_with($model, exec.weights)?;
        match exec.backend() {
            BackendName::Cpu => {
                let d = std::sync::Arc::new(crate::commands::load_dispatcher(CpuBackend::new(), $table, $strict, $record)?);
                let $stats: std::sync::Arc<dyn crate::model::runtime::DispatchStats> = d.clone();
                let $rt = crate::model::runtime::CpuRuntime { model: std::sync::Arc::new(model), d };
                $body
            }
            BackendName::Cuda => {
                let d = crate::commands::load_dispatcher(CudaBackend::new(exec.device)?, $table, $strict, $record)?;
                let opt = crate::model::cuda::GpuOptions {
                    dtype: exec.gpu_dtype,
                    slots: $slots,
                    context: exec.context,
                    graphs: !exec.no_graphs,
                    pdl: !exec.no_pdl,
                    ..Default::default()
                };
                let $rt = crate::model::cuda::CudaLlama::from_host(&model, d, opt)?;
                drop(model);
                let $stats = $rt.stats();
                $body
            }
            BackendName::Rocm => Err(Error::input("the runtime runs on --backend cpu or cuda")),
        }
    }};
}
pub(crate) use with_runtime;
