use super::fmt_us;
use crate::backend::{Backend, ClockSettling, KernelId};
use crate::bench::{bench_problem, measure_limits, BenchReport, ShapeBench, SCHEMA};
use crate::cli::GateOn;
use crate::gate::{Finding, Metric};
use crate::reports;
use crate::cli::BenchArgs;
use crate::dispatch::Dispatcher;
use crate::error::{Error, Result};
use crate::problem::{Phase, Problem};
use crate::progress::Progress;
use crate::report::render;
use crate::shapes::ShapeFile;
use crate::tune::{stats, TuneConfig};
use std::time::Duration;


pub fn run<B: Backend>(b: B, a: &BenchArgs) -> Result<()> {
    if a.limits {
        let cfg = TuneConfig { budget: Duration::from_millis(a.budget_ms.max(1)), ..TuneConfig::default() };
        let l = measure_limits(&b, &cfg, settling(&b, a))?;
        println!("{} ({}): {}", b.identity().device, b.name(), l.describe());
        return Ok(());
    }
    check_outputs(a)?;
    let pdl = super::chain_launches(&b, a.pdl)?;
    let shapes = |path: &std::path::Path| -> Result<Vec<(Problem, Phase)>> {
        Ok(ShapeFile::load(path)?.entries.iter().map(|e| (e.problem, e.phase)).collect())
    };
    match (&a.table, &a.kernel) {
        (Some(table), _) => {
            let t = crate::table::Table::load(table)?;
            let d = Dispatcher::from_loaded(&t, table, b, a.strict)?;
            for w in d.warnings() {
                eprintln!("warning: {w}");
            }
            let problems = match &a.shapes {
                Some(path) => shapes(path)?,
                // The table's rows the dispatcher took for this device (a merged table has
                // other devices' rows of the same problems), in the table's order, each
                // once, phased as a shape file's default.
                None => {
                    let mut seen = std::collections::BTreeSet::new();
                    t.rows
                        .iter()
                        .filter(|r| d.has_row(&r.problem) && seen.insert(r.problem))
                        .map(|r| (r.problem, crate::shapes::ShapeEntry::new(r.problem).phase))
                        .collect()
                }
            };
            bench(d.backend(), a, pdl, &problems, |p| d.choose(p).map(|(id, src)| (id, src.name())))
        }
        (None, Some(kernel)) => {
            let id = KernelId::new(kernel.as_str());
            let problems = shapes(a.shapes.as_deref().expect("clap requires --shapes with --kernel"))?;
            // Every shape checked before any is timed: a shape the kernel cannot run or gets
            // wrong ends the command at once, not after the others' timings.
            for (p, _) in &problems {
                check_forced(&b, p, &id)?;
            }
            bench(&b, a, pdl, &problems, |_| Ok((id.clone(), "kernel")))
        }
        (None, None) => unreachable!("clap requires --table, --kernel or --limits"),
    }
}

/// The backend's clock settling, with --sustain-calls / --settle-ms over it.
fn settling<B: Backend>(b: &B, a: &BenchArgs) -> ClockSettling {
    let d = b.clock_settling();
    ClockSettling {
        sustain_calls: a.sustain_calls.unwrap_or(d.sustain_calls),
        settle: a.settle_ms.map_or(d.settle, Duration::from_millis),
    }
}

/// A kernel named by --kernel has not been through `tune`'s checks: it must run `p` and
/// match the f64 reference on one fresh draw before its time means anything.
fn check_forced<B: Backend>(b: &B, p: &Problem, id: &KernelId) -> Result<()> {
    let k = b.resolve(p, id).map_err(|e| Error::input(format!("--kernel {id} cannot run {p}: {e}")))?;
    let mut ops = crate::tune::alloc_operands(b, p)?;
    crate::tune::validate::validate(b, &k, p, &mut ops, crate::random::derive_seed(0x6B65_726E, p.m as u64))
        .map(|_| ())
        .map_err(|why| Error::runtime(format!("--kernel {id} is wrong on {p}: {why}")))
}

/// Benches `problems`, `choose` naming each one's kernel and where it came from.
fn bench<B: Backend>(
    b: &B,
    a: &BenchArgs,
    pdl: bool,
    problems: &[(Problem, Phase)],
    choose: impl Fn(&Problem) -> Result<(KernelId, &'static str)>,
) -> Result<()> {
    if problems.is_empty() {
        return Err(Error::input("nothing to bench: no shapes"));
    }
    // Every option checked before the run, which can take minutes.
    let max_reg = crate::gate::parse_percent(&a.max_regression).map_err(|e| Error::input(format!("--max-regression: {e}")))?;
    let max_stale = crate::gate::parse_percent(&a.max_stale).map_err(|e| Error::input(format!("--max-stale: {e}")))?;

    let baseline = a.baseline.as_deref().map(BenchReport::load).transpose()?;
    if let Some(base) = baseline.as_ref().filter(|base| base.pdl != pdl) {
        let how = |on: bool| if on { "with --pdl (our kernels chained)" } else { "without --pdl" };
        return Err(Error::input(format!(
            "--baseline was timed {}, this run would be timed {}: chaining changes our kernels' times, so they do not compare",
            how(base.pdl),
            how(pdl)
        )));
    }
    if let Some(base) = baseline.as_ref().filter(|base| base.hot != a.hot) {
        let how = |hot: bool| if hot { "hot (--hot, weights cache-resident)" } else { "cold (weights from memory)" };
        return Err(Error::input(format!(
            "--baseline was timed {}, this run would be timed {}: the times do not compare",
            how(base.hot),
            how(a.hot)
        )));
    }
    if let Some(base) = &baseline {
        let here = (b.name(), b.identity().device.clone());
        if matches!(a.gate_on, GateOn::Time) && (base.backend != here.0 || base.device != here.1) {
            return Err(Error::input(format!(
                "--baseline was timed on {} ({}), this run is on {} ({}): times compare only on the same device (--gate-on speedup compares across devices)",
                base.device, base.backend, here.1, here.0
            )));
        }
        let names: std::collections::BTreeSet<String> = problems.iter().map(|(p, _)| p.to_string()).collect();
        if !base.shapes.iter().any(|s| names.contains(&s.problem)) {
            return Err(Error::input("--baseline has none of the shapes of this run: nothing would be compared"));
        }
    }
    let mut cfg = TuneConfig { budget: Duration::from_millis(a.budget_ms.max(1)), ..TuneConfig::default() };
    if a.hot {
        cfg.cache_factor = 0.0; // one operand set (the minimum), reused every call
    }
    if !a.quiet {
        eprintln!("measuring device limits (compute peak, copy bandwidth)...");
    }
    let settle = settling(b, a);
    let limits = measure_limits(b, &cfg, settle)?;
    let progress = Progress::new(problems.len() as u64, "benching", a.quiet);
    let mut results = Vec::new();
    // In the shape file's order, each after `settle` idle: a GPU's clocks stay lower for a
    // while after heavy calls, so without it a decode row right after a large prefill
    // GEMM reads slower than the same row after light ones (docs/bench-report.md).
    for (p, phase) in problems {
        progress.set_message(p.to_string());
        std::thread::sleep(settle.settle);
        let (id, source) = choose(p)?;
        let r = bench_problem(b, p, phase.name(), (&id, source), &limits, &cfg)?;
        progress.done(format!("{p}: {:.2}x vs default, {:.0}% of roofline", r.speedup, r.roofline_pct));
        results.push(r);
    }
    progress.finish();

    if !a.quiet {
        print!("{}", render_results(&results));
    }
    if a.hot {
        println!("timed hot (--hot): one operand set, weights cache-resident between calls");
    }
    println!("limits: {}", limits.describe());
    type Group = (&'static str, fn(&ShapeBench) -> bool);
    let groups: [Group; 5] = [
        ("decode phase", |r| r.phase == "decode"),
        ("prefill phase", |r| r.phase == "prefill"),
        ("M <= 32", |r| r.m <= 32),
        ("32 < M < 512", |r| r.m > 32 && r.m < 512),
        ("M >= 512", |r| r.m >= 512),
    ];
    for (name, sel) in groups {
        let rs: Vec<&ShapeBench> = results.iter().filter(|r| sel(r)).collect();
        if rs.is_empty() {
            continue;
        }
        println!(
            "{name:<14} {:>3} shapes: tuned vs default geomean {:.3}x (min {:.3}x); % of roofline geomean: tuned {:.1}%, default {:.1}%",
            rs.len(),
            stats::geomean(rs.iter().map(|r| r.speedup)),
            rs.iter().map(|r| r.speedup).fold(f64::MAX, f64::min),
            stats::geomean(rs.iter().map(|r| r.roofline_pct)),
            stats::geomean(rs.iter().map(|r| r.default_roofline_pct()))
        );
    }
    let report = BenchReport {
        schema: SCHEMA.into(),
        gemmtune: env!("CARGO_PKG_VERSION").into(),
        backend: b.name().into(),
        device: b.identity().device.clone(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        limits,
        pdl,
        hot: a.hot,
        shapes: results,
    };
    let metric = match a.gate_on {
        GateOn::Time => Metric::Time,
        GateOn::Speedup => Metric::Speedup,
    };
    // A table is tuned cold: hot, a tuned kernel may well lose to the default without the
    // table being stale, and a kernel named by --kernel was chosen by no table; such runs
    // report slower shapes but do not fail on them.
    let no_stale_check = if a.hot {
        Some("timed hot")
    } else {
        a.kernel.as_ref().map(|_| "a kernel named by --kernel")
    };
    let max_stale = if no_stale_check.is_some() { f64::INFINITY } else { max_stale };
    let findings = crate::gate::check(&report, baseline.as_ref(), max_reg, max_stale, metric);
    // A shape slower than its default that no stale finding covers (a regression finding
    // of the same shape says nothing about the default) gets its note.
    for s in report.shapes.iter().filter(|s| s.speedup_hi < 1.0 && !findings.iter().any(|f| f.problem == s.problem && f.kind == "stale")) {
        let why = match no_stale_check {
            Some(what) => format!("{what}; not a stale check"),
            None => format!("within the {} allowed", a.max_stale),
        };
        println!("gate: note {}: tuned {:.3}x the default (interval {:.3}..{:.3}), {why}", s.problem, s.speedup, s.speedup_lo, s.speedup_hi);
    }
    write_reports(a, &report, &findings, baseline.as_ref(), metric)?;
    if findings.is_empty() {
        println!("gate: passed ({} shapes{})", report.shapes.len(), if baseline.is_some() { ", against the baseline" } else { "" });
        Ok(())
    } else {
        for f in &findings {
            println!("gate: {} {}: {}", f.kind, f.problem, f.detail);
        }
        Err(Error::runtime(format!("bench gate failed on {} shapes", crate::gate::failing_shapes(&findings))))
    }
}

/// The report formats and where they go, checked before any file is read or anything
/// timed (a bad path used to fail after the whole run).
fn check_outputs(a: &BenchArgs) -> Result<()> {
    if let Some(f) = a.formats().iter().find(|f| !FORMATS.contains(&f.as_str())) {
        return Err(Error::input(format!("unknown --format '{f}' ({})", FORMATS.join(", "))));
    }
    if let Some(path) = a.json.as_ref().filter(|p| p.is_dir()) {
        return Err(Error::input(format!("--json {}: is a directory", path.display())));
    }
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::input(format!("--out {}: cannot make the report folder: {e}", dir.display())))?;
    }
    Ok(())
}

/// The report formats `--format` takes.
const FORMATS: [&str; 5] = ["md", "json", "csv", "junit", "svg"];

fn write_reports(a: &BenchArgs, r: &BenchReport, findings: &[Finding], baseline: Option<&BenchReport>, metric: crate::gate::Metric) -> Result<()> {
    let save = |path: &std::path::Path, text: &str| crate::atomic::write_atomic(path, |w| w.write_all(text.as_bytes()));
    if let Some(path) = &a.json {
        save(path, &serde_json::to_string_pretty(r).expect("json"))?;
    }
    let md = reports::markdown(r, findings, baseline, metric);
    if let Ok(summary) = std::env::var("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).create(true).open(&summary) {
            let _ = f.write_all(md.as_bytes());
        }
    }
    let Some(dir) = &a.out else { return Ok(()) };
    for f in &a.formats() {
        match f.as_str() {
            "md" => save(&dir.join("report.md"), &md)?,
            "json" => save(&dir.join("report.json"), &serde_json::to_string_pretty(r).expect("json"))?,
            "csv" => save(&dir.join("report.csv"), &reports::csv(r))?,
            "junit" => save(&dir.join("report.junit.xml"), &reports::junit(r, findings))?,
            "svg" => {
                save(&dir.join("speedup.svg"), &reports::svg_speedup(r)?)?;
                save(&dir.join("roofline.svg"), &reports::svg_roofline(r)?)?;
            }
            other => unreachable!("--format '{other}' checked before the run"),
        }
    }
    Ok(())
}

fn render_results(results: &[ShapeBench]) -> String {
    // Library columns in the order first seen.
    let mut libs: Vec<String> = Vec::new();
    for r in results {
        for k in r.kernels.iter().skip(2) {
            if !libs.contains(&k.role) {
                libs.push(k.role.clone());
            }
        }
    }
    let mut headers: Vec<String> =
        ["type", "m", "n", "k", "phase", "tuned kernel", "src", "tuned us", "default us", "speedup", "interval"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    headers.extend(libs.iter().map(|l| format!("{l} us")));
    headers.extend(["% roof".to_string(), "bound".to_string()]);
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let mut row = vec![
                format!("{} {}", r.dtype, r.layout),
                r.m.to_string(),
                r.n.to_string(),
                r.k.to_string(),
                r.phase.clone(),
                r.kernels[0].kernel.clone(),
                r.source.clone(),
                fmt_us(r.kernels[0].median_us / 1e6),
                fmt_us(r.default_us() / 1e6),
                format!("{:.3}x", r.speedup),
                format!("{:.2}-{:.2}", r.speedup_lo, r.speedup_hi),
            ];
            for l in &libs {
                row.push(
                    r.kernels
                        .iter()
                        .skip(2)
                        .find(|k| &k.role == l)
                        .map(|k| fmt_us(k.median_us / 1e6))
                        .unwrap_or_else(|| "-".into()),
                );
            }
            row.push(format!("{:.1}", r.roofline_pct));
            row.push(r.bound.clone());
            row
        })
        .collect();
    let h: Vec<&str> = headers.iter().map(|s| s.as_str()).collect();
    render(&h, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;
    use crate::problem::DType;

    #[test]
    fn a_kernel_named_by_flag_is_checked_before_it_is_timed() {
        let b = CpuBackend::new().with_test_kernels();
        let p = Problem::linear(DType::F32, 4, 40, 72).unwrap();
        check_forced(&b, &p, &KernelId::new("cpu:gemm:t1")).unwrap();
        let wrong = check_forced(&b, &p, &KernelId::new("cpu:test:wrong")).unwrap_err().to_string();
        assert!(wrong.contains("cpu:test:wrong is wrong on") && wrong.contains("relative error"), "{wrong}");
        let nan = check_forced(&b, &p, &KernelId::new("cpu:test:nan")).unwrap_err().to_string();
        assert!(nan.contains("NaN"), "{nan}");
        let unknown = check_forced(&b, &p, &KernelId::new("cpu:nonsense:t1")).unwrap_err().to_string();
        assert!(unknown.contains("cannot run"), "{unknown}");
    }

    /// The roof is the sustained peak when sustain calls are given (the burst beside it),
    /// the burst otherwise; the CPU neither sustains nor settles unless told.
    #[test]
    fn the_peak_is_sustained_when_asked_and_the_flags_override_the_backend() {
        use clap::Parser;
        let b = CpuBackend::new();
        let cfg = TuneConfig { budget: Duration::from_millis(30), ..TuneConfig::default() };
        let burst = measure_limits(&b, &cfg, ClockSettling::default()).unwrap();
        assert_eq!((burst.peak_flops, burst.sustain_calls), (burst.burst_flops, 0));
        let told = ClockSettling { sustain_calls: 3, settle: Duration::from_millis(10) };
        let sustained = measure_limits(&b, &cfg, told).unwrap();
        assert_eq!(sustained.sustain_calls, 3);
        assert!(sustained.peak_flops > 0.0 && sustained.peak_flops != sustained.burst_flops, "{sustained:?}");
        assert!(sustained.describe().contains("sustained over 3 calls (burst "), "{}", sustained.describe());
        let args = |extra: &[&str]| match crate::cli::Cli::try_parse_from([&["gemmtune", "bench", "--limits"], extra].concat()).unwrap().command {
            crate::cli::Command::Bench(a) => a,
            _ => unreachable!(),
        };
        assert_eq!(settling(&b, &args(&[])), ClockSettling::default());
        let told = settling(&b, &args(&["--sustain-calls", "40", "--settle-ms", "250"]));
        assert_eq!(told, ClockSettling { sustain_calls: 40, settle: Duration::from_millis(250) });
    }

    /// No table chose a kernel named by --kernel: slower than the default is reported, not
    /// a stale table that fails the gate (a table's slower winner still fails it: gate.rs).
    #[test]
    fn a_named_kernel_slower_than_the_default_does_not_fail_the_gate() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let shapes = dir.path().join("s.csv");
        std::fs::write(&shapes, "dtype,layout,m,n,k\nf32,TN,16,96,128\n").unwrap();
        let args = |extra: &[&str]| {
            let mut v = vec!["gemmtune", "bench", "--shapes", shapes.to_str().unwrap(), "--budget-ms", "30", "-q"];
            v.extend(extra);
            match crate::cli::Cli::try_parse_from(v).unwrap().command {
                crate::cli::Command::Bench(a) => a,
                _ => unreachable!(),
            }
        };
        let json = dir.path().join("r.json");
        let j = json.to_str().unwrap();
        run(CpuBackend::new().with_test_kernels(), &args(&["--kernel", "cpu:test:slow", "--json", j])).unwrap();
        // Reported: the named (slow) kernel's speedup over the default is below 1.
        let r = crate::bench::BenchReport::load(&json).unwrap();
        assert_eq!(r.shapes[0].kernels[0].kernel, "cpu:test:slow");
        assert!(r.shapes[0].speedup < 1.0, "speedup {}", r.shapes[0].speedup);
        let err = run(CpuBackend::new().with_test_kernels(), &args(&["--kernel", "cpu:test:slow", "--max-stale", "0%"]));
        assert!(err.is_ok(), "--max-stale does not apply to a named kernel: {err:?}");
    }
}
