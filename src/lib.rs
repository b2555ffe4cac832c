//! gemmtune: pick the fastest GEMM kernel for every matrix shape an LLM runs.
//!
//! Data flow: a shape file (`shapes`) lists the problems (`problem`); the tuner (`tune`)
//! times and validates every candidate a backend (`backend`) offers and writes the
//! winners to a best-kernel table (`table`); the dispatcher (`dispatch`) replays the
//! table at run time. See docs/architecture.md.

pub mod atomic;
pub mod backend;
pub mod error;
pub mod problem;
pub mod quant;
pub mod random;
pub mod reference;
pub mod shapes;
pub mod dispatch;
pub mod table;
pub mod tune;
pub mod progress;
pub mod report;
pub mod cli;
pub mod commands;
pub mod bench;
pub mod gguf;
pub mod profile;
pub mod model;
pub mod serve;
pub mod gate;
pub mod reports;
pub mod fuzz;
pub mod tunableop;
pub mod textfile;
