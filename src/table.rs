//! The best-kernel table (`tables/*.csv`); the format is documented in
//! docs/table-format.md.
//!
//! ```text
//! # free comment lines
//! #@format 1
//! #@validators v1 {"arch":"x86_64+avx512+avx2","backend":"cpu","device":"...",...}
//! dtype,layout,m,n,k,batch,kernel,time_us,default_kernel,default_time_us,speedup,...,check
//! f32,TN,1,576,576,1,cpu:skinny:avx512:m1:t1,31.2,cpu:gemm:t2,40.5,1.298,...,v1,...,9c1d0e4a
//! ```
//!
//! Every row names the validator set it was tuned under, so tables from several devices
//! or library versions can be merged and each row is checked on its own: rows that do not
//! fit the current device are skipped with a warning saying why, never the whole file.
//! The last column is a CRC-32 of the row, so truncation or hand edits that break a row
//! are reported with its line number.

use crate::atomic::write_atomic;
use crate::backend::{Backend, KernelId, Validators};
use crate::error::{Error, Result};
use crate::problem::{parse_types, Layout, Problem};
use crate::tune::Outcome;
use std::collections::BTreeMap;
use std::path::Path;

pub const FORMAT: u32 = 1;
pub const COLUMNS: [&str; 20] = [
    "dtype", "layout", "m", "n", "k", "batch", "kernel", "time_us", "default_kernel",
    "default_time_us", "speedup", "noise_pct", "tflops", "gbps", "candidates", "rejected",
    "validators", "attrs", "tuned_at", "check",
];

#[derive(Clone, Debug, PartialEq)]
pub struct TableRow {
    pub problem: Problem,
    pub kernel: KernelId,
    pub time_us: f64,
    pub default_kernel: KernelId,
    pub default_time_us: f64,
    pub speedup: f64,
    pub noise_pct: f64,
    pub tflops: f64,
    pub gbps: f64,
    pub candidates: usize,
    pub rejected: usize,
    /// Id of the validator set in the table header.
    pub validators: String,
    pub attrs: String,
    pub tuned_at: String,
    /// Line in the file it was read from (0 when built in memory).
    pub line: usize,
}

impl TableRow {
    pub fn from_outcome(o: &Outcome, validators: &str) -> TableRow {
        let p = &o.problem;
        TableRow {
            problem: *p,
            kernel: o.winner.clone(),
            time_us: o.winner_time * 1e6,
            default_kernel: o.default.clone(),
            default_time_us: o.default_time * 1e6,
            speedup: o.speedup(),
            noise_pct: o.noise * 100.0,
            tflops: p.flops() / o.winner_time / 1e12,
            gbps: p.min_bytes() / o.winner_time / 1e9,
            candidates: o.candidates.len(),
            rejected: o.rejected(),
            validators: validators.to_string(),
            attrs: o.winner_attrs.clone(),
            tuned_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            line: 0,
        }
    }

    fn fields(&self) -> Vec<String> {
        let p = &self.problem;
        vec![
            p.types(),
            p.layout.name().into(),
            p.m.to_string(),
            p.n.to_string(),
            p.k.to_string(),
            p.batch.to_string(),
            self.kernel.0.clone(),
            fmt_f(self.time_us, 3),
            self.default_kernel.0.clone(),
            fmt_f(self.default_time_us, 3),
            fmt_f(self.speedup, 4),
            fmt_f(self.noise_pct, 2),
            fmt_f(self.tflops, 4),
            fmt_f(self.gbps, 2),
            self.candidates.to_string(),
            self.rejected.to_string(),
            self.validators.clone(),
            self.attrs.clone(),
            self.tuned_at.clone(),
        ]
    }
}

fn fmt_f(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "nan".into()
    }
}

fn checksum(fields: &[String]) -> String {
    let mut h = crc32fast::Hasher::new();
    for f in fields {
        h.update(f.as_bytes());
        h.update(&[0x1f]);
    }
    format!("{:08x}", h.finalize())
}

/// A row that cannot be used here, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Skip {
    pub line: usize,
    pub problem: Problem,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub comments: Vec<String>,
    /// Validator sets by id (`v1`, `v2`, ...).
    pub validators: BTreeMap<String, Validators>,
    pub rows: Vec<TableRow>,
}

impl Table {
    /// The table at `path` a command is about to add to, None when there is none yet
    /// (`textfile::absent_or_empty`); a file that is something else is an error naming it.
    pub fn load_existing(path: &Path) -> Result<Option<Table>> {
        if crate::textfile::absent_or_empty(path) {
            return Ok(None);
        }
        Table::load(path).map(Some)
    }

    pub fn load(path: &Path) -> Result<Table> {
        let text = crate::textfile::read(path, "table")?;
        Table::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Table> {
        let mut t = Table::default();
        let mut format = None;
        let mut header_line = 0;
        let mut body_start = text.len();
        let mut offset = 0;
        for (idx, line) in text.split_inclusive('\n').enumerate() {
            let lineno = idx + 1;
            let trimmed = line.trim();
            if let Some(meta) = trimmed.strip_prefix("#@") {
                let (key, rest) = meta.split_once(' ').unwrap_or((meta, ""));
                match key {
                    "format" => {
                        let v: u32 = rest.trim().parse().map_err(|_| {
                            Error::at(path, lineno, Some("format"), format!("'{}' is not a number", rest.trim()))
                        })?;
                        if v != FORMAT {
                            return Err(Error::at(
                                path,
                                lineno,
                                Some("format"),
                                format!("format {v} is not supported (this gemmtune reads format {FORMAT})"),
                            ));
                        }
                        format = Some(v);
                    }
                    "validators" => {
                        let (id, json) = rest.trim().split_once(' ').ok_or_else(|| {
                            Error::at(path, lineno, Some("validators"), "expected '#@validators <id> {json}'")
                        })?;
                        let v: Validators = serde_json::from_str(json).map_err(|e| {
                            Error::at(path, lineno, Some("validators"), format!("bad JSON: {e}"))
                        })?;
                        if t.validators.insert(id.to_string(), v).is_some() {
                            return Err(Error::at(path, lineno, Some("validators"), format!("set '{id}' defined twice")));
                        }
                    }
                    other => {
                        return Err(Error::at(path, lineno, None, format!("unknown directive '#@{other}'")));
                    }
                }
            } else if let Some(c) = trimmed.strip_prefix('#') {
                t.comments.push(c.trim().to_string());
            } else if !trimmed.is_empty() {
                header_line = lineno;
                body_start = offset;
                break;
            }
            offset += line.len();
        }
        if format.is_none() {
            return Err(Error::at(path, 1, None, "not a gemmtune table: the '#@format' line is missing"));
        }
        if header_line == 0 {
            return Ok(t); // no header: an empty table
        }
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .comment(Some(b'#'))
            .from_reader(&text.as_bytes()[body_start..]);
        let lines = crate::textfile::LineIndex::new(text);
        let line_of = |p: Option<&csv::Position>| p.map_or(header_line, |p| lines.record_line(text, body_start + p.byte() as usize));
        let headers = rdr
            .headers()
            .map_err(|e| Error::at(path, header_line, None, format!("unreadable header: {e}")))?
            .clone();
        if headers.iter().ne(COLUMNS.iter().copied()) {
            return Err(Error::at(
                path,
                header_line,
                None,
                format!("wrong header: expected '{}'", COLUMNS.join(",")),
            ));
        }
        let mut seen: BTreeMap<(Problem, Machine), usize> = BTreeMap::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| Error::at(path, line_of(e.position()), None, format!("unreadable row: {e}")))?;
            let line = line_of(rec.position());
            if rec.len() != COLUMNS.len() {
                return Err(Error::at(
                    path,
                    line,
                    None,
                    format!("row has {} fields, expected {} (truncated?)", rec.len(), COLUMNS.len()),
                ));
            }
            let f = |i: usize| rec.get(i).unwrap_or("");
            let bad = |i: usize, msg: String| Error::at(path, line, Some(COLUMNS[i]), msg);
            let fields: Vec<String> = (0..COLUMNS.len() - 1).map(|i| f(i).to_string()).collect();
            let want = checksum(&fields);
            if f(19) != want {
                return Err(bad(19, format!("checksum {} does not match the row ({want}): the row was edited or damaged", f(19))));
            }
            let dim = |i: usize| -> Result<usize> {
                f(i).parse::<usize>().map_err(|_| bad(i, format!("'{}' is not a whole number", f(i))))
            };
            let num = |i: usize| -> Result<f64> {
                f(i).parse::<f64>().map_err(|_| bad(i, format!("'{}' is not a number", f(i))))
            };
            let (dtype, wformat) = parse_types(f(0)).map_err(|e| bad(0, e))?;
            let layout: Layout = f(1).parse().map_err(|e| bad(1, e))?;
            let problem = Problem::new(dtype, layout, dim(2)?, dim(3)?, dim(4)?, dim(5)?)
                .and_then(|p| p.with_weights(wformat))
                .map_err(|e| Error::at(path, line, Problem::check_field(&e), &e))?;
            for i in [6, 8] {
                if f(i).is_empty() {
                    return Err(bad(i, "empty kernel id".into()));
                }
            }
            if !t.validators.contains_key(f(16)) {
                return Err(bad(16, format!("validator set '{}' is not defined in the header", f(16))));
            }
            if let Some(prev) = seen.insert((problem, machine(&t.validators[f(16)])), line) {
                return Err(Error::at(path, line, None, format!("{problem} is listed twice for one device (first on line {prev})")));
            }
            // A time is positive, or unknown (NaN: an imported row without one).
            let time = |i: usize| -> Result<f64> {
                let v = num(i)?;
                if v.is_nan() || (v.is_finite() && v > 0.0) {
                    Ok(v)
                } else {
                    Err(bad(i, format!("'{}' is not a positive time", f(i))))
                }
            };
            // Merges keep the newest row by this stamp: it must be one.
            humantime::parse_rfc3339(f(18)).map_err(|e| bad(18, format!("'{}' is not an RFC 3339 UTC time: {e}", f(18))))?;
            t.rows.push(TableRow {
                problem,
                kernel: KernelId::new(f(6)),
                time_us: time(7)?,
                default_kernel: KernelId::new(f(8)),
                default_time_us: time(9)?,
                speedup: num(10)?,
                noise_pct: num(11)?,
                tflops: num(12)?,
                gbps: num(13)?,
                candidates: dim(14)?,
                rejected: dim(15)?,
                validators: f(16).to_string(),
                attrs: f(17).to_string(),
                tuned_at: f(18).to_string(),
                line,
            });
        }
        Ok(t)
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.comments {
            out.push_str(&format!("# {c}\n"));
        }
        out.push_str(&format!("#@format {FORMAT}\n"));
        for (id, v) in &self.validators {
            out.push_str(&format!("#@validators {id} {}\n", serde_json::to_string(v).expect("json")));
        }
        let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
        w.write_record(COLUMNS).expect("memory");
        for r in &self.rows {
            let mut fields = r.fields();
            fields.push(checksum(&fields));
            w.write_record(&fields).expect("memory");
        }
        out.push_str(&String::from_utf8(w.into_inner().expect("memory")).expect("utf-8"));
        out
    }

    /// Writes atomically: the old table stays intact if anything fails.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = self.to_text();
        write_atomic(path, |w| w.write_all(text.as_bytes()))
    }

    /// The id of a validator set equal to `v`, adding it if new.
    pub fn validator_id(&mut self, v: &Validators) -> String {
        if let Some((id, _)) = self.validators.iter().find(|(_, x)| *x == v) {
            return id.clone();
        }
        let mut n = self.validators.len() + 1;
        while self.validators.contains_key(&format!("v{n}")) {
            n += 1;
        }
        let id = format!("v{n}");
        self.validators.insert(id.clone(), v.clone());
        id
    }

    /// Inserts or replaces the row for `row.problem`.
    /// A row's key: its problem and the machine its validators name. One table holds a row
    /// per problem and machine, so tables of several devices merge into one that serves
    /// each (a device uses the rows whose validators match it).
    fn key(&self, r: &TableRow) -> (Problem, Machine) {
        (r.problem, self.validators.get(&r.validators).map(machine).unwrap_or_default())
    }

    /// Adds `row` (its validator set already in the table), replacing the row of the same
    /// problem on the same machine.
    pub fn upsert(&mut self, row: TableRow) {
        let key = self.key(&row);
        match self.rows.iter().position(|r| self.key(r) == key) {
            Some(i) => self.rows[i] = row,
            None => self.rows.push(row),
        }
    }

    /// The first row of problem `p` (whichever machine it was tuned on).
    pub fn get(&self, p: &Problem) -> Option<&TableRow> {
        self.rows.iter().find(|r| r.problem == *p)
    }

    /// Merges `other` in. For a problem tuned on the same machine in both, the row tuned
    /// most recently wins; rows of other machines are kept side by side. Returns how many
    /// rows of `other` replaced or were dropped for existing ones.
    pub fn merge(&mut self, other: &Table) -> usize {
        let mut index: BTreeMap<(Problem, Machine), usize> = self.rows.iter().enumerate().map(|(i, r)| (self.key(r), i)).collect();
        let mut conflicts = 0;
        for row in &other.rows {
            let mut row = row.clone();
            row.validators = self.validator_id(&other.validators[&row.validators]);
            row.line = 0;
            match index.get(&self.key(&row)) {
                Some(&i) => {
                    conflicts += 1;
                    if tuned_time(&row.tuned_at) > tuned_time(&self.rows[i].tuned_at) {
                        self.rows[i] = row;
                    }
                }
                None => {
                    index.insert(self.key(&row), self.rows.len());
                    self.rows.push(row);
                }
            }
        }
        self.drop_unused_validators();
        conflicts
    }

    fn drop_unused_validators(&mut self) {
        let used: std::collections::BTreeSet<&String> = self.rows.iter().map(|r| &r.validators).collect();
        self.validators.retain(|id, _| used.contains(id));
    }

    /// Splits rows into those usable on backend `b` and those skipped with a reason.
    /// A row is usable when its validators match this device and libraries and its
    /// kernel id resolves here.
    pub fn check_rows<'a, B: Backend>(&'a self, b: &B) -> (Vec<&'a TableRow>, Vec<Skip>) {
        let (mut ok, mut skipped) = (Vec::new(), Vec::new());
        for r in &self.rows {
            let reason = match self.validators.get(&r.validators).and_then(|v| b.row_mismatch(v)) {
                Some(why) => Some(why),
                None => b.resolve(&r.problem, &r.kernel).err().map(|e| format!("kernel not usable: {e}")),
            };
            match reason {
                Some(reason) => skipped.push(Skip { line: r.line, problem: r.problem, reason }),
                None => ok.push(r),
            }
        }
        (ok, skipped)
    }
}

/// The machine a validator set names: backend, device and arch. Library and gemmtune
/// versions are left out: a re-tune after an upgrade replaces the machine's old rows.
type Machine = [String; 3];

fn machine(v: &Validators) -> Machine {
    ["backend", "device", "arch"].map(|k| v.get(k).cloned().unwrap_or_default())
}

/// An exclusive advisory lock on a table file (a sidecar `.<name>.lock`), held until
/// dropped: serializes writers of the same table across processes.
pub struct TableLock(#[allow(dead_code)] std::fs::File);

impl TableLock {
    pub fn acquire(path: &Path) -> Result<TableLock> {
        // Writers through a symlink and through its target share one lock.
        let path = &crate::atomic::resolve(path);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "create directory", e))?;
        let lock = dir.join(format!(".{name}.lock"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(|e| Error::io(&lock, "open lock file", e))?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            // SAFETY: flock on a descriptor we own; blocks until other writers finish.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(Error::io(&lock, "lock", std::io::Error::last_os_error()));
            }
        }
        Ok(TableLock(f))
    }
}

/// Adds `rows`, tuned under `validators`, to the table at `path`: under the table's lock,
/// rereads the file (so rows other processes wrote meanwhile are kept), upserts the rows
/// and replaces the file atomically. Returns the table as written.
pub fn commit_rows(path: &Path, comments: &[String], validators: &Validators, rows: Vec<TableRow>) -> Result<Table> {
    let _lock = TableLock::acquire(path)?;
    let mut t = Table::load_existing(path)?.unwrap_or_else(|| Table { comments: comments.to_vec(), ..Table::default() });
    let vid = t.validator_id(validators);
    for mut r in rows {
        r.validators = vid.clone();
        t.upsert(r);
    }
    t.save(path)?;
    Ok(t)
}

/// When a row was tuned (its `tuned_at`, checked on load; rows built in memory carry one
/// written by `humantime`). Compared as times: "…:00.5Z" sorts before "…:00Z" as text.
fn tuned_time(stamp: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339(stamp).ok()
}

/// One warning line per distinct reason: "path: 3 of 32 rows skipped (lines 4, 5, 9): why".
pub fn describe_skips(path: &Path, total: usize, skips: &[Skip]) -> Vec<String> {
    let mut by_reason: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for s in skips {
        by_reason.entry(&s.reason).or_default().push(s.line);
    }
    by_reason
        .into_iter()
        .map(|(reason, lines)| {
            let shown: Vec<String> = lines.iter().take(8).map(|l| l.to_string()).collect();
            let more = if lines.len() > 8 { ", ..." } else { "" };
            format!(
                "{}: {} of {total} rows skipped (lines {}{more}): {reason}",
                path.display(),
                lines.len(),
                shown.join(", ")
            )
        })
        .collect()
}
