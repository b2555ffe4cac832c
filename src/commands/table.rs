use super::fmt_us;
use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::CudaBackend;
use crate::backend::Backend;
use crate::cli::{BackendName, TableCommand};
use std::path::Path;
use crate::error::{Error, Result};
use crate::report::render;
use crate::tunableop;
use crate::table::{describe_skips, Table, TableRow};

pub fn run(cmd: TableCommand) -> Result<()> {
    match cmd {
        TableCommand::Show { table } => {
            let t = Table::load(&table)?;
            println!("{}: {} rows, {} validator sets", table.display(), t.rows.len(), t.validators.len());
            for (id, v) in &t.validators {
                let kv: Vec<String> = v.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("  {id}: {}", kv.join("  "));
            }
            print!("{}", render_rows(&t, |_| true));
            Ok(())
        }
        TableCommand::Validate { table, backend, strict } => {
            let t = Table::load(&table)?;
            super::with_backend!(backend, b => validate(&table, &t, &b, strict))
        }
        TableCommand::Check { table, backend } => {
            let t = Table::load(&table)?;
            super::with_backend!(backend, b => {
                let (_, skipped) = t.check_rows(&b);
                for w in describe_skips(&table, t.rows.len(), &skipped) {
                    println!("re-tune needed: {w}");
                }
                if skipped.is_empty() {
                    println!("{}: all {} rows match this device and its libraries", table.display(), t.rows.len());
                    Ok(())
                } else {
                    Err(Error::runtime(format!("{} of {} rows need re-tuning", skipped.len(), t.rows.len())))
                }
            })
        }
        TableCommand::Export { table, format, validators, set, out } => {
            check_format(&format)?;
            let t = Table::load(&table)?;
            let given: Vec<(String, String)> = validators
                .iter()
                .map(|kv| match kv.split_once('=') {
                    // A TunableOp line is `Validator,KEY,VALUE`: a comma would move the value.
                    Some((k, v)) if !k.is_empty() && !k.contains(',') && !kv.contains('\n') => Ok((k.to_string(), v.to_string())),
                    _ => Err(Error::input(format!("--validator '{kv}' is not KEY=VALUE (a key without commas, one line)"))),
                })
                .collect::<Result<_>>()?;
            if same_file(&table, &out) {
                return Err(Error::input(format!("--out {} is the table being exported; give another path", out.display())));
            }
            if Table::load_existing(&out).is_ok_and(|t| t.is_some()) {
                return Err(Error::input(format!("{}: holds a gemmtune table; not overwritten with a TunableOp file", out.display())));
            }
            let set = tunableop::export_set(&t, set.as_deref())?;
            let (text, left_out) = tunableop::export(&t, &set, &tunableop::validators_for(&t, &set, &given));
            for l in &left_out {
                eprintln!("left out: {l}");
            }
            let rows = text.lines().filter(|l| !l.starts_with("Validator,")).count();
            if rows == 0 {
                return Err(Error::input(format!(
                    "{}: none of the {} rows of validator set {set} has a TunableOp form (TunableOp names rocBLAS and hipBLASLt solutions); nothing written",
                    table.display(),
                    t.rows.iter().filter(|r| r.validators == set).count()
                )));
            }
            crate::atomic::write_atomic(&out, |w| w.write_all(text.as_bytes()))?;
            println!("{}: {rows} TunableOp rows of validator set {set} ({} rows left out)", out.display(), t.rows.len() - rows);
            Ok(())
        }
        TableCommand::Import { file, format, out } => {
            check_format(&format)?;
            let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, "read", e))?;
            if same_file(&file, &out) {
                return Err(Error::input(format!("--out {} is the TunableOp file being imported; give another path", out.display())));
            }
            let (t, skipped) = tunableop::import(&text, &file)?;
            for s in &skipped {
                eprintln!("skipped {s}");
            }
            if t.rows.is_empty() {
                return Err(Error::input(format!("{}: no TunableOp result lines to import; {} left as it was", file.display(), out.display())));
            }
            // Into the table already there, as `tune` adds to one (newest row per machine).
            let _lock = crate::table::TableLock::acquire(&out)?;
            let mut merged = Table::load_existing(&out)?.unwrap_or_default();
            let kept = merged.rows.len();
            merged.merge(&t);
            merged.save(&out)?;
            println!(
                "{}: {} rows from {} ({} lines skipped); {} rows in the table ({kept} before)",
                out.display(),
                t.rows.len(),
                file.display(),
                skipped.len(),
                merged.rows.len()
            );
            Ok(())
        }
        TableCommand::Merge { tables, out } => {
            // Held from the first read to the write: a `tune` committing rows to `out`
            // meanwhile waits, then rereads, instead of being overwritten.
            let _lock = crate::table::TableLock::acquire(&out)?;
            // An --out among the inputs is merged into; any other must be a table (or new).
            if !tables.iter().any(|t| same_file(t, &out)) {
                Table::load_existing(&out)?;
            }
            let mut merged = Table::default();
            merged.comments.push(format!("merged by gemmtune {}", env!("CARGO_PKG_VERSION")));
            let mut conflicts = 0;
            for path in &tables {
                conflicts += merged.merge(&Table::load(path)?);
            }
            merged.save(&out)?;
            println!(
                "merged {} tables into {}: {} rows, {} shapes of one device present in several (newest kept; other devices' rows kept beside)",
                tables.len(),
                out.display(),
                merged.rows.len(),
                conflicts
            );
            Ok(())
        }
    }
}

/// Whether two paths name one file (both must exist to be the same).
fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

fn check_format(f: &str) -> Result<()> {
    if f != "tunableop" {
        return Err(Error::input(format!("--format '{f}' is not supported (tunableop)")));
    }
    Ok(())
}

fn validate<B: Backend>(path: &Path, t: &Table, b: &B, strict: bool) -> Result<()> {
    let (ok, skipped) = t.check_rows(b);
    for w in describe_skips(path, t.rows.len(), &skipped) {
        eprintln!("warning: {w}");
    }
    println!(
        "{}: syntax and checksums OK; {} of {} rows usable on this {} device",
        path.display(),
        ok.len(),
        t.rows.len(),
        b.name()
    );
    if strict && !skipped.is_empty() {
        return Err(Error::input(format!("{} rows do not fit this device (--strict)", skipped.len())));
    }
    Ok(())
}

/// The rows of `t` selected by `keep`, as an aligned text table.
/// Batched problems get a batch column, and a table of several machines a column naming
/// each row's validator set (`table show` lists the sets): rows that differ only there
/// would read as duplicates without them.
pub fn render_rows(t: &Table, keep: impl Fn(&TableRow) -> bool) -> String {
    let kept: Vec<&TableRow> = t.rows.iter().filter(|r| keep(r)).collect();
    let batched = kept.iter().any(|r| r.problem.batch > 1);
    let sets = t.validators.len() > 1;
    let rows: Vec<Vec<String>> = kept
        .iter()
        .map(|r| {
            let p = &r.problem;
            let mut row = super::problem_cells(p, batched);
            if sets {
                row.push(r.validators.clone());
            }
            row.extend([
                r.kernel.to_string(),
                fmt_us(r.time_us / 1e6),
                fmt_us(r.default_time_us / 1e6),
                format!("{:.2}x", r.speedup),
                format!("{:.1}%", r.noise_pct),
                format!("{:.1}", r.tflops * 1e3),
                format!("{:.1}", r.gbps),
            ]);
            row
        })
        .collect();
    let mut head = super::problem_head(batched);
    if sets {
        head.push("set");
    }
    head.extend(["kernel", "us", "default us", "speedup", "noise", "GFLOP/s", "GB/s"]);
    render(&head, &rows)
}
