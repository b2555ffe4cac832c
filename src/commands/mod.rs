//! The work behind each CLI subcommand.

mod backends;
mod bench;
mod dispatch;
mod table;
mod tune;

use crate::backend::cpu::CpuBackend;
use crate::cli::{BackendName, Cli, Command};
use crate::error::{Error, Result};

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Tune(a) => tune::run(backend(a.backend)?, &a),
        Command::Table(t) => table::run(t),
        Command::Bench(a) => bench::run(backend(a.backend)?, &a),
        Command::Dispatch(a) => dispatch::run(backend(a.backend)?, &a),
        Command::Backends => backends::run(),
    }
}

/// The backend a command asked for, or a one-line reason why it cannot be had.
pub(crate) fn backend(name: BackendName) -> Result<CpuBackend> {
    match name {
        BackendName::Cpu => Ok(CpuBackend::new()),
        BackendName::Cuda => Err(Error::input(
            "backend 'cuda' is not part of this build yet (the CUDA backend is in development); use --backend cpu",
        )),
        BackendName::Rocm => Err(Error::input(
            "backend 'rocm' is not part of this build yet (the ROCm backend is in development); use --backend cpu",
        )),
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
