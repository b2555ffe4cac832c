//! Command-line interface (clap derive). Each subcommand's work lives in `commands/`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "gemmtune",
    version,
    about = "Pick the fastest GEMM kernel for every matrix shape an LLM runs.",
    long_about = "gemmtune times and validates every GEMM kernel a backend offers for each \
shape in a shape file, writes the winners to a best-kernel table, and replays that table \
at run time through its dispatcher.\n\n\
Exit codes: 0 success, 1 runtime failure (or a failed bench gate), 2 usage or input error, 130 interrupted (Ctrl-C).",
    after_help = "Examples:\n  \
gemmtune tune --shapes shapes/smollm2-135m.csv --out tables/cpu.csv\n  \
gemmtune table show tables/cpu.csv\n  \
gemmtune dispatch --table tables/cpu.csv --shapes shapes/smollm2-135m.csv\n  \
gemmtune bench --table tables/cpu.csv\n  \
gemmtune backends"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Tune every shape of a shape file and write the best-kernel table.
    #[command(after_help = "Examples:\n  \
gemmtune tune --shapes shapes/smollm2-135m.csv --out tables/cpu.csv\n  \
gemmtune tune --shapes shapes/smollm2-135m.csv --out tables/cpu-bf16.csv --dtype bf16 --budget-ms 500\n\n\
The table is saved after every shape: rerunning the same command resumes where it stopped \
(shapes already in the table are kept unless --force).")]
    Tune(TuneArgs),
    /// Inspect, check and combine best-kernel tables.
    #[command(subcommand)]
    Table(TableCommand),
    /// Re-time a table's winners against the default and each library, with roofline.
    #[command(after_help = "Example:\n  gemmtune bench --table tables/cpu.csv --json bench.json")]
    Bench(BenchArgs),
    /// Run every shape of a shape file through the dispatcher and report coverage.
    #[command(after_help = "Example:\n  \
gemmtune dispatch --table tables/cpu.csv --shapes shapes/smollm2-135m.csv --extra-m 3,24 --record unseen.csv\n\n\
Each call's output is checked against the f64 reference.")]
    Dispatch(DispatchArgs),
    /// Derive the GEMM shapes a model runs (from its config.json or GGUF), or merge
    /// dispatcher records into a shape file.
    #[command(after_help = "Examples:\n  \
gemmtune profile --model shapes/configs/llama-3.1-70b.json --tp 8 --out shapes/llama-3.1-70b-tp8.csv\n  \
gemmtune profile --model models/SmolLM2-135M-Instruct.Q4_1.gguf --dtype f32 --device cpu --max-batch 8 --out s.csv\n  \
gemmtune profile --from-record unseen-a.csv unseen-b.csv --out shapes/recorded.csv\n\n\
Column-parallel layers (qkv, gate_up, lm_head) divide N by --tp; row-parallel layers (o_proj, down)\n\
divide K. Weights estimate each row's share of time with a roofline model of --device.")]
    Profile(ProfileArgs),
    /// Generate text with a real model, every GEMM dispatched by the tuned table.
    #[command(after_help = "Example:\n  \
scripts/fetch-model.sh\n  \
gemmtune generate --model models/SmolLM2-135M-Instruct.Q4_1.gguf --table tables/cpu-smollm2-135m.csv --chat --prompt \"What is a GEMM?\"")]
    Generate(GenerateArgs),
    /// Serve the model over an OpenAI-compatible HTTP API (continuous batching).
    #[command(after_help = "Example:\n  \
gemmtune serve --model models/SmolLM2-135M-Instruct.Q4_1.gguf --table tables/cpu-smollm2-135m.csv --port 8080\n  \
curl -s localhost:8080/v1/chat/completions -d '{\"model\":\"SmolLM2-135M-Instruct\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}'")]
    Serve(ServeArgs),
    /// Show which backends work on this machine, and why not otherwise.
    Backends,
    /// Decode speed of a model of a config's shapes with random weights on the GPU
    /// (bf16/f16, graph-captured steps) against the HBM roofline, tuned vs default dispatch.
    #[command(after_help = "Example:\n  \
gemmtune decode-bench --config shapes/configs/llama-3.1-8b.json --table tables/h100.csv --baseline --batch 1,16")]
    DecodeBench(DecodeBenchArgs),
}

#[derive(Args, Debug)]
pub struct DecodeBenchArgs {
    /// Model configuration (config.json, a folder holding one, or a GGUF file).
    #[arg(long)]
    pub config: PathBuf,
    /// Tensor-parallel ranks: the model is one rank's shard (no communication is timed).
    #[arg(long, default_value_t = 1)]
    pub tp: usize,
    /// Tuned table; without one every GEMM uses the backend default.
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// Also run the same model with default dispatch, interleaved with the tuned one.
    #[arg(long)]
    pub baseline: bool,
    /// Decode batch sizes (sequences decoded together).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub batch: Vec<usize>,
    #[arg(long, default_value_t = 128)]
    pub prompt_len: usize,
    /// Decode steps timed per repetition.
    #[arg(long, default_value_t = 64)]
    pub steps: usize,
    /// Repetitions (alternating tuned and baseline); the median is reported.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Layers to build (default: the config's); fewer fit smaller GPUs.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Pack the random layer weights in this int4 format (q4_1 or g128) instead of dense
    /// --gpu-dtype; the embedding and the head stay dense.
    #[arg(long, default_value = "dense")]
    pub quant: crate::problem::WeightFormat,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// Address to bind; loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Name clients must use as `model` (default: the file name without extensions).
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub name: Option<String>,
    /// Most sequences decoded together (decode M), 1 to 1024.
    #[arg(long, default_value_t = 16, value_parser = between(1, MAX_BATCH))]
    pub max_batch: usize,
    /// Requests waiting beyond the batch before new ones get 429.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Most prompt tokens prefilled between two decode steps while other sequences are
    /// decoding, over the waiting prompts in arrival order (a long prompt is prefilled in
    /// chunks of this size, so it stalls their streams by one chunk at a time).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    pub prefill_chunk: u64,
    /// Record every GEMM problem of the session to this shape file (written at exit).
    #[arg(long)]
    pub record: Option<PathBuf>,
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// Where and how `generate` and `serve` run the model.
#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// Backend that runs the model: cpu (f32; the default of generate and serve) or cuda
    /// (bf16/f16 weights on the GPU, decode steps as CUDA graphs; decode-bench's only
    /// one). The table must be tuned for that backend.
    #[arg(long)]
    pub backend: Option<BackendName>,
    /// GPU ordinal (cuda).
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// Storage type of weights, activations and KV cache on the GPU (bf16 or f16).
    #[arg(long, default_value = "bf16", value_parser = sixteen_bit)]
    pub gpu_dtype: crate::problem::DType,
    /// Context per sequence on the GPU (capped by the model's); sizes the KV cache.
    #[arg(long, default_value_t = 4096, value_parser = at_least(1))]
    pub context: usize,
    /// Run every decode step eagerly instead of replaying CUDA graphs.
    #[arg(long)]
    pub no_graphs: bool,
    /// Launch the GPU runtime's kernels without programmatic dependent launch (PDL), each
    /// waiting for the previous one to finish before it is scheduled (for comparisons).
    #[arg(long)]
    pub no_pdl: bool,
    /// f32: dequantize the GGUF's weights at load (default); native: keep packed weights
    /// packed, each linear layer a quantized problem in the table: Q4_1 and Q8_0 on the
    /// CPU (`f32/q4_1`), Q4_1 on the GPU (`bf16/q4_1`; Q8_0 is dequantized there).
    #[arg(long, value_enum, default_value_t = crate::model::weights::WeightMode::F32)]
    pub weights: crate::model::weights::WeightMode,
}

/// Refuses a device ordinal the backend cannot have without asking it: the host (cpu) is
/// one device, so another ordinal is a mistake, not a choice.
pub fn check_device(backend: BackendName, device: usize) -> crate::error::Result<()> {
    if backend == BackendName::Cpu && device != 0 {
        return Err(crate::error::Error::input(format!("--device {device}: the cpu backend has one device, 0")));
    }
    Ok(())
}

impl ExecArgs {
    /// The backend of generate and serve: cpu unless told.
    pub fn backend(&self) -> BackendName {
        self.backend.unwrap_or(BackendName::Cpu)
    }

    /// What clap cannot check alone, checked before anything loads: the runtime's
    /// backends, the host being one device, and where `record` would be kept.
    pub fn check(&self, record: Option<&std::path::Path>) -> crate::error::Result<()> {
        use crate::error::Error;
        if self.backend() == BackendName::Rocm {
            return Err(Error::input("the runtime runs on --backend cpu or cuda"));
        }
        check_device(self.backend(), self.device)?;
        record.map_or(Ok(()), crate::dispatch::check_record_path)
    }
}

#[derive(Args, Debug, Clone)]
pub struct GenerateArgs {
    /// GGUF model file (Llama architecture).
    #[arg(long)]
    pub model: PathBuf,
    /// Tuned table; without one every GEMM uses the backend default.
    #[arg(long)]
    pub table: Option<PathBuf>,
    #[arg(long)]
    pub prompt: String,
    /// Wrap the prompt as a user message in the model's chat template.
    #[arg(long)]
    pub chat: bool,
    #[arg(long, default_value_t = 64, value_parser = at_least(1))]
    pub max_tokens: usize,
    /// 0 = greedy (the default); up to 2, as `serve` takes.
    #[arg(long, default_value_t = 0.0, value_parser = in_range(0.0, 2.0))]
    pub temperature: f32,
    /// Nucleus sampling: the smallest set of tokens holding this much probability (0 to 1).
    #[arg(long, default_value_t = 1.0, value_parser = in_range(0.0, 1.0))]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Record every GEMM problem of the run (with phase and counts) to this shape file.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Print the generated token ids instead of text.
    #[arg(long)]
    pub ids: bool,
    /// Decode this many copies of the prompt together (decode M = batch) and report
    /// aggregate throughput; text is printed for the first sequence only (1 to 1024).
    #[arg(long, default_value_t = 1, value_parser = between(1, MAX_BATCH))]
    pub batch: usize,
    /// Keep generating past end-of-turn (for benchmarks: exactly --max-tokens tokens).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Run the same generation this many times untimed first (for benchmarks: the timed
    /// run then starts warm, its thread pool, buffers and caches in place, as a serving
    /// process is after its first request). Their GEMMs count in the dispatch coverage and
    /// in --record.
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Fail if table rows do not fit this machine.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// A Hugging Face config.json, a folder holding one (and its safetensors), or a GGUF file.
    #[arg(long, required_unless_present_any = ["from_record", "from_tunableop_untuned"], conflicts_with = "from_record")]
    pub model: Option<PathBuf>,
    /// Merge these record files (written by `dispatch --record`) instead; rows are
    /// weighted by calls × roofline time on --device.
    #[arg(long, num_args = 1..,
          conflicts_with_all = ["tp", "batch", "max_batch", "prompt_len", "phase", "dtype", "gen_len", "fuse"])]
    pub from_record: Vec<PathBuf>,
    /// Read the shapes of a PyTorch TunableOp untuned file (tunableop_untuned*.csv).
    #[arg(long, conflicts_with_all = ["model", "from_record", "tp", "batch", "max_batch", "prompt_len", "phase", "dtype", "device", "gen_len", "fuse"])]
    pub from_tunableop_untuned: Option<PathBuf>,
    /// Tensor-parallel ranks.
    #[arg(long, default_value_t = 1)]
    pub tp: usize,
    /// Decode batch sizes (M of a decode step).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64,128,256", conflicts_with = "max_batch")]
    pub batch: Vec<usize>,
    /// Decode batches as the bucket policy needs them: powers of two up to N, and N.
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Prompt lengths (M of a prefill step).
    #[arg(long, value_delimiter = ',', default_value = "128,512,2048,8192")]
    pub prompt_len: Vec<usize>,
    /// Which phases to list.
    #[arg(long, value_enum, default_value = "both")]
    pub phase: PhaseArg,
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Roofline model for the weights: h100, h200, a100, mi300x, cpu.
    #[arg(long, default_value = "h100")]
    pub device: String,
    /// Tokens generated per request (decode rows weigh that many steps).
    #[arg(long, default_value_t = 256)]
    pub gen_len: usize,
    /// q/k/v and gate/up as stored by the checkpoint (auto; fused when unknown), or forced.
    #[arg(long, value_enum, default_value = "auto")]
    pub fuse: FuseArg,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhaseArg {
    Prefill,
    Decode,
    Both,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuseArg {
    Auto,
    Fused,
    Separate,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendName {
    Cpu,
    Cuda,
    Rocm,
}

#[derive(Args, Debug, Clone)]
pub struct TuneArgs {
    /// Shape file to tune (see docs/architecture.md for the format).
    #[arg(long)]
    pub shapes: PathBuf,
    /// Backend whose kernels are tuned.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendName,
    /// Table to write (created, or updated and resumed if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Timing budget per shape, in milliseconds (validation comes on top).
    #[arg(long, default_value_t = 250)]
    pub budget_ms: u64,
    /// Idle time before a second A/B comparison from rest, which a winner gaining less
    /// than 6 % over the default must win too (a gain that only holds at the power cap
    /// does not survive `bench`). Default: the backend's (GPUs 500, the CPU 0: no second
    /// comparison), and 0 for workers that share a GPU (`--devices 0,0`); 0 turns it off.
    #[arg(long)]
    pub settle_ms: Option<u64>,
    /// Tune every shape in this dtype instead of the shape file's (f32, f16, bf16).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Seed for the random operands (default: fresh each run).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Re-tune shapes that already have a valid row in the output table.
    #[arg(long)]
    pub force: bool,
    /// GPU to tune on (device ordinal).
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// Tune only shard K of N (K/N, 0-based): every N-th shape of the heaviest-first order,
    /// so shards carry similar weight. Several shards can write one table.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Tune on several devices at once: one worker process per entry, each a shard of the
    /// shapes, all writing --out (merged under the table lock). `all` = every visible GPU;
    /// an ordinal may repeat (N logical workers on one device).
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Run the tuning in a worker process that is restarted when it dies or loses its GPU
    /// context, skipping the kernel in flight at the time (same as `--devices <device>`).
    #[arg(long)]
    pub isolate: bool,
    /// With --isolate/--devices: a worker whose candidate in flight makes no progress for
    /// this many seconds is killed and restarted without that candidate.
    #[arg(long, default_value_t = 120)]
    pub hang_timeout: u64,
    /// Never run this kernel id (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// (worker protocol) Write the id of each candidate about to run into this file.
    #[arg(long, hide = true)]
    pub inflight: Option<PathBuf>,
    /// Let f32 problems use TF32 tensor-core math (CUDA): TF32 candidates pass validation
    /// with a 2e-3 error bound instead of f32's 1e-4; their rows say `math=tf32`.
    #[arg(long)]
    pub allow_tf32: bool,
    /// Time our kernels launched chained, as the GPU runtime launches them (CUDA sm_90+:
    /// programmatic dependent launch, so a call's launch and start-up overlap the previous
    /// one's tail); library kernels are timed as they launch, unchained.
    /// Rows of our kernels then say `pdl=1`: use such a table with the GPU runtime.
    #[arg(long)]
    pub pdl: bool,
    /// Tune only the heaviest shapes that together make up this share of the total weight
    /// (e.g. 0.95), heaviest first.
    #[arg(long, value_parser = share)]
    pub top_share: Option<f64>,
    /// Print rejected candidates and the decision for every shape.
    #[arg(long, short)]
    pub verbose: bool,
    /// No progress display and no summary.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum TableCommand {
    /// Print a table's rows.
    Show {
        table: PathBuf,
    },
    /// Check a table: syntax, checksums, and whether each row fits this machine.
    Validate {
        table: PathBuf,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendName,
        /// Fail (exit 2) if any row would be skipped here.
        #[arg(long)]
        strict: bool,
    },
    /// Flag rows whose validators no longer match this machine's device and libraries
    /// (re-tune needed), without timing anything; exit 1 if any.
    Check {
        table: PathBuf,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendName,
    },
    /// Write a table's ROCm rows as a PyTorch TunableOp results file.
    Export {
        table: PathBuf,
        /// Only `tunableop` for now.
        #[arg(long, default_value = "tunableop")]
        format: String,
        /// Validator lines, KEY=VALUE (e.g. PT_VERSION=2.11.0); detected ones from the
        /// table's ROCm validators are written too.
        #[arg(long = "validator")]
        validators: Vec<String>,
        /// The validator set (`v1`, ... as `table show` lists them) whose rows to export:
        /// a TunableOp file holds one; needed when the table holds several.
        #[arg(long)]
        set: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Read a PyTorch TunableOp results file into a gemmtune table.
    Import {
        file: PathBuf,
        #[arg(long, default_value = "tunableop")]
        format: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Merge tables (e.g. from several devices) into one; the newest row wins per shape.
    Merge {
        #[arg(required = true, num_args = 1..)]
        tables: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

impl BenchArgs {
    /// The report formats to write to --out.
    pub fn formats(&self) -> Vec<String> {
        self.format.clone().unwrap_or_else(|| vec!["md".into(), "json".into()])
    }
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Tuned table whose winners are re-timed.
    #[arg(long, required_unless_present_any = ["limits", "kernel"])]
    pub table: Option<PathBuf>,
    /// Instead of a table's winners, time this kernel id on every shape of --shapes
    /// (checked against the f64 reference first), against the default and the libraries.
    #[arg(long, conflicts_with = "table", requires = "shapes")]
    pub kernel: Option<String>,
    /// Only measure and print the device limits (compute peak, copy bandwidth).
    #[arg(long, conflicts_with_all = ["json", "out", "format", "baseline"])]
    pub limits: bool,
    /// Bench these shapes (default: the table's rows); shapes without a row use the
    /// dispatcher's fallback.
    #[arg(long)]
    pub shapes: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendName,
    /// Timing budget per shape, in milliseconds.
    #[arg(long, default_value_t = 400)]
    pub budget_ms: u64,
    /// Back-to-back calls of the compute peak's problem, timed as one sample from rest,
    /// whose rate is the compute roof (the sustained peak; the burst peak, best of a few
    /// single calls, is reported beside it). Default: the backend's (GPUs 100, the CPU 0:
    /// the burst peak is the roof).
    #[arg(long)]
    pub sustain_calls: Option<usize>,
    /// Idle time before each shape, so that none inherits the clock and power state of
    /// heavy calls before it. Default: the backend's (GPUs 500, the CPU 0).
    #[arg(long)]
    pub settle_ms: Option<u64>,
    /// Also write the full results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A previous report (JSON) to compare with: per-shape change, and the gate.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Fail (exit 1) when a shape regresses by more than this beyond its noise, e.g. 5%.
    #[arg(long, default_value = "5%")]
    pub max_regression: String,
    /// Fail (exit 1) when a tuned kernel is slower than the default by more than this
    /// beyond its noise (the table is stale), e.g. 2%.
    #[arg(long, default_value = "2%")]
    pub max_stale: String,
    /// What the baseline comparison uses: the tuned time, or the tuned/default speedup of
    /// the same run (for noisy CI machines).
    #[arg(long, value_enum, default_value = "time")]
    pub gate_on: GateOn,
    /// Report formats written to --out: md, json, csv, junit, svg (default md,json).
    #[arg(long, value_delimiter = ',', requires = "out")]
    pub format: Option<Vec<String>>,
    /// Folder for the reports (report.md, report.json, report.csv, report.junit.xml,
    /// speedup.svg, roofline.svg).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Fail if table rows do not fit this machine.
    #[arg(long)]
    pub strict: bool,
    /// Launch our kernels chained, as the GPU runtime does (CUDA sm_90+: programmatic
    /// dependent launch); the default (cuBLAS) is timed as it is launched, unchained.
    #[arg(long)]
    pub pdl: bool,
    /// Time every kernel on one operand set, so the weights stay in the last-level cache
    /// from call to call. A diagnostic: set against a normal (cold) run it separates a
    /// kernel's fixed cost per call from its memory stream; % of roofline may pass 100.
    /// Such a report cannot be a --baseline for a cold run, nor the reverse.
    #[arg(long)]
    pub hot: bool,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateOn {
    Time,
    Speedup,
}

#[derive(Args, Debug)]
pub struct DispatchArgs {
    #[arg(long)]
    pub table: PathBuf,
    #[arg(long)]
    pub shapes: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendName,
    /// Also dispatch these M values for every (N, K) of the shape file, to exercise the
    /// fallbacks (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub extra_m: Vec<usize>,
    /// Append problems without an exact table row to this shape file.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Fail if table rows do not fit this machine.
    #[arg(long)]
    pub strict: bool,
}

fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!("'{s}' is not a share in (0, 1]")),
    }
}

/// A number from `lo` to `hi` (NaN and infinities refused).
/// Most sequences `generate --batch` and `serve --max-batch` decode together: each holds a
/// KV cache, and beyond this a typo (an extra zero or three) would only run out of memory.
pub const MAX_BATCH: usize = 1024;

/// A whole number from `lo` to `hi`.
fn between(lo: usize, hi: usize) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |s: &str| match s.parse::<usize>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a whole number from {lo} to {hi}")),
    }
}

/// A whole number of at least `lo`.
fn at_least(lo: usize) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |s: &str| match s.parse::<usize>() {
        Ok(v) if v >= lo => Ok(v),
        _ => Err(format!("'{s}' is not a whole number of at least {lo}")),
    }
}

/// bf16 or f16 (the GPU runtime's storage types).
fn sixteen_bit(s: &str) -> Result<crate::problem::DType, String> {
    match s.parse::<crate::problem::DType>() {
        Ok(d @ (crate::problem::DType::BF16 | crate::problem::DType::F16)) => Ok(d),
        _ => Err(format!("'{s}' is not bf16 or f16")),
    }
}

fn in_range(lo: f32, hi: f32) -> impl Fn(&str) -> Result<f32, String> + Clone {
    move |s: &str| match s.parse::<f32>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a number from {lo} to {hi}")),
    }
}

/// `K/N` of `--shard`.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (k, n) = s.split_once('/').ok_or_else(|| format!("'{s}' is not K/N"))?;
    match (k.parse::<usize>(), n.parse::<usize>()) {
        (Ok(k), Ok(n)) if n >= 1 && k < n => Ok((k, n)),
        _ => Err(format!("'{s}' is not a shard K/N with 0 <= K < N")),
    }
}
