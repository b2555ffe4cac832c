//! The dispatcher: replays a tuned table at run time.
//!
//! `Dispatcher::gemm(problem, operands)` runs the kernel the table names for that exact
//! problem. Unseen problems fall back in this order (documented in docs/architecture.md):
//! 1. **bucket**: a row with the same dtype, layout, N, K and batch whose M is the
//!    smallest tuned M ≥ the requested M (the kernel tuned for a slightly larger batch),
//!    else the largest tuned M below it; the kernel must resolve for the requested M (else
//!    the next nearest row). A row whose kernel is a library configuration chosen for its
//!    own M (`Backend::fits_other_m`) stands for the library's choice: the default;
//! 2. **default**: the backend's default kernel.
//!
//! Each decision is made once per problem and cached. Coverage (hits, bucket and
//! default fallbacks, the unseen problems with call counts) is counted, and a record
//! mode writes the unseen problems to a shape file so they can be tuned next.

use crate::backend::{Backend, KernelId};
use crate::error::{Error, Result};
use crate::problem::{Phase, Problem, WeightKey};
use crate::shapes::{ShapeEntry, ShapeFile};
use crate::table::{describe_skips, Table};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What the record file receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordMode {
    /// Problems without an exact table row (to tune next).
    Unseen,
    /// Every problem dispatched, with its phase.
    All,
}

/// How a problem's kernel was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The table has this exact problem.
    Exact,
    /// A row for the same weights at another M.
    Bucket,
    /// The backend default.
    Default,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Exact => "exact",
            Source::Bucket => "bucket",
            Source::Default => "default",
        }
    }
}

/// Counts of calls by how their kernel was chosen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Coverage {
    pub hits: u64,
    pub bucket: u64,
    pub default: u64,
    /// Problems without an exact row, with their call counts.
    pub unseen: BTreeMap<Problem, u64>,
}

impl Coverage {
    pub fn calls(&self) -> u64 {
        self.hits + self.bucket + self.default
    }
    pub fn summary(&self) -> String {
        let pct = |v: u64| if self.calls() == 0 { 0.0 } else { 100.0 * v as f64 / self.calls() as f64 };
        format!(
            "{} GEMM calls: {} exact ({:.1}%), {} bucket fallback ({:.1}%), {} default fallback ({:.1}%); {} unseen shapes",
            self.calls(),
            self.hits,
            pct(self.hits),
            self.bucket,
            pct(self.bucket),
            self.default,
            pct(self.default),
            self.unseen.len()
        )
    }
}



struct Choice<K> {
    kernel: Arc<K>,
    id: KernelId,
    source: Source,
}

pub struct Dispatcher<B: Backend> {
    backend: B,
    exact: HashMap<Problem, KernelId>,
    by_weights: HashMap<WeightKey, BTreeMap<usize, KernelId>>,
    cache: Mutex<HashMap<Problem, Arc<Choice<B::Kernel>>>>,
    coverage: Mutex<Coverage>,
    record: Option<(PathBuf, RecordMode)>,
    /// Every call by (problem, phase), when recording all calls.
    calls: Mutex<BTreeMap<(Problem, Phase), u64>>,
    phase: Mutex<Phase>,
    /// Calls per (problem, phase) already written to the record file.
    recorded: Mutex<HashMap<(Problem, Phase), u64>>,
    warnings: Vec<String>,
}

impl<B: Backend> Dispatcher<B> {
    /// A dispatcher with no table: every call uses the backend default.
    pub fn untuned(backend: B) -> Dispatcher<B> {
        Dispatcher {
            backend,
            exact: HashMap::new(),
            by_weights: HashMap::new(),
            cache: Mutex::new(HashMap::new()),
            coverage: Mutex::new(Coverage::default()),
            record: None,
            calls: Mutex::new(BTreeMap::new()),
            phase: Mutex::new(Phase::Other),
            recorded: Mutex::new(HashMap::new()),
            warnings: Vec::new(),
        }
    }

    /// Loads `path`; rows that do not fit this backend are skipped with one warning per
    /// reason (see `warnings()`), or make it fail when `strict`.
    pub fn from_table(path: &Path, backend: B, strict: bool) -> Result<Dispatcher<B>> {
        let table = Table::load(path)?;
        Dispatcher::from_loaded(&table, path, backend, strict)
    }

    pub fn from_loaded(table: &Table, path: &Path, backend: B, strict: bool) -> Result<Dispatcher<B>> {
        let (ok, skipped) = table.check_rows(&backend);
        let warnings = describe_skips(path, table.rows.len(), &skipped);
        if strict && !warnings.is_empty() {
            return Err(Error::input(format!("{} (--strict)", warnings.join("; "))));
        }
        let mut d = Dispatcher::untuned(backend);
        for r in ok {
            d.exact.insert(r.problem, r.kernel.clone());
            d.by_weights.entry(r.problem.weight_key()).or_default().insert(r.problem.m, r.kernel.clone());
        }
        d.warnings = warnings;
        Ok(d)
    }

    /// Also append unseen problems to the shape file `path` (on `flush_record` and drop).
    pub fn record_unseen(mut self, path: impl Into<PathBuf>) -> Dispatcher<B> {
        self.record = Some((path.into(), RecordMode::Unseen));
        self
    }

    /// Record every problem dispatched, with its phase and call count, into the shape file
    /// `path` (a live profile of a run; merge several with `profile --from-record`).
    pub fn record_all(mut self, path: impl Into<PathBuf>) -> Dispatcher<B> {
        self.record = Some((path.into(), RecordMode::All));
        self
    }

    /// The phase the following calls belong to (prefill, decode), for recording.
    pub fn set_phase(&self, p: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
    pub fn tuned_rows(&self) -> usize {
        self.exact.len()
    }
    /// Whether the table gave a usable row for exactly `p`.
    pub fn has_row(&self, p: &Problem) -> bool {
        self.exact.contains_key(p)
    }

    /// The kernel id and source that `gemm` would use for `p`.
    pub fn choose(&self, p: &Problem) -> Result<(KernelId, Source)> {
        let c = self.choice(p)?;
        Ok((c.id.clone(), c.source))
    }

    fn choice(&self, p: &Problem) -> Result<Arc<Choice<B::Kernel>>> {
        if let Some(c) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(p) {
            return Ok(c.clone());
        }
        let mut tries: Vec<(KernelId, Source)> = Vec::new();
        if let Some(id) = self.exact.get(p) {
            tries.push((id.clone(), Source::Exact));
        }
        if let Some(ms) = self.by_weights.get(&p.weight_key()) {
            let above = ms.range(p.m..).map(|(_, id)| id);
            let below = ms.range(..p.m).rev().map(|(_, id)| id);
            // Nearest first. A row that chose a library configuration for its M stands
            // for the library's choice at this M: the default, after any nearer rows.
            for id in above.chain(below) {
                if !self.backend.fits_other_m(id) {
                    break;
                }
                tries.push((id.clone(), Source::Bucket));
            }
        }
        tries.push((self.backend.default_kernel(p), Source::Default));
        let mut last_err = None;
        for (id, source) in tries {
            match self.backend.resolve(p, &id) {
                Ok(k) => {
                    let c = Arc::new(Choice { kernel: Arc::new(k), id, source });
                    self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(*p, c.clone());
                    return Ok(c);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::runtime(format!("{p}: no kernel available"))))
    }

    /// Runs `Y = X · W^T` for `p` with the tuned kernel (or the fallback).
    pub fn gemm(&self, p: &Problem, x: &B::Buffer, w: &B::Buffer, y: &mut B::Buffer) -> Result<Source> {
        let c = self.choice(p)?;
        self.count(p, c.source);
        self.backend.run(&c.kernel, p, x, w, y)?;
        Ok(c.source)
    }

    /// Counts calls that ran without `gemm` (replays of a captured CUDA graph whose GEMMs
    /// were dispatched once, at capture), so coverage reflects every call made.
    pub fn count_replayed(&self, calls: &[(Problem, Source)]) {
        for (p, s) in calls {
            self.count(p, *s);
        }
    }

    fn count(&self, p: &Problem, s: Source) {
        let mut cov = self.coverage.lock().unwrap_or_else(|e| e.into_inner());
        match s {
            Source::Exact => cov.hits += 1,
            Source::Bucket => cov.bucket += 1,
            Source::Default => cov.default += 1,
        }
        if s != Source::Exact {
            *cov.unseen.entry(*p).or_default() += 1;
        }
        drop(cov);
        if matches!(self.record, Some((_, RecordMode::All))) {
            let phase = *self.phase.lock().unwrap_or_else(|e| e.into_inner());
            *self.calls.lock().unwrap_or_else(|e| e.into_inner()).entry((*p, phase)).or_default() += 1;
        }
    }

    pub fn coverage(&self) -> Coverage {
        self.coverage.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Merges the recorded problems into the record shape file (atomically); calls already
    /// written by an earlier flush are not counted twice.
    pub fn flush_record(&self) -> Result<()> {
        let Some((path, mode)) = &self.record else { return Ok(()) };
        let counts: Vec<((Problem, Phase), u64)> = match mode {
            RecordMode::Unseen => self.coverage().unseen.into_iter().map(|(p, c)| ((p, Phase::Other), c)).collect(),
            RecordMode::All => self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone().into_iter().collect(),
        };
        let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        let fresh: Vec<((Problem, Phase), u64)> = counts
            .iter()
            .filter_map(|&(key, c)| {
                let before = recorded.get(&key).copied().unwrap_or(0);
                (c > before).then_some((key, c - before))
            })
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let mut file = ShapeFile::load_existing(path)?.unwrap_or_else(|| {
            let what = match mode {
                RecordMode::Unseen => "problems gemmtune dispatched without an exact table row; tune them next",
                RecordMode::All => "every GEMM problem of a recorded run, with call counts (merge with `gemmtune profile --from-record`)",
            };
            ShapeFile { comments: vec![what.into()], entries: Vec::new() }
        });
        for ((p, phase), calls) in fresh {
            let mut e = ShapeEntry::new(p);
            e.layer = "recorded".into();
            if *mode == RecordMode::All {
                e.phase = phase;
            }
            e.calls = calls as f64;
            e.weight = e.calls;
            file.add(e);
        }
        file.save(path)?;
        // Counted as written only once they are: a failed save is retried whole next time.
        recorded.extend(counts);
        Ok(())
    }
}

/// Checks at start-up that `--record` can be kept at `path`: a new file, an empty one, or
/// a shape file to add to. A run of hours must not learn at its end that it cannot be.
pub fn check_record_path(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(crate::error::Error::input(format!("--record {}: is a directory", path.display())));
    }
    ShapeFile::load_existing(path).map(drop)
}

impl<B: Backend> Drop for Dispatcher<B> {
    fn drop(&mut self) {
        if let Err(e) = self.flush_record() {
            eprintln!("warning: could not record unseen GEMM shapes: {e}");
        }
    }
}
