use super::interrupt;
use super::fmt_us;
use crate::backend::Backend;
use crate::cli::TuneArgs;
use crate::error::{Error, Result};
use crate::problem::{DType, Problem};
use crate::progress::Progress;
use crate::shapes::ShapeFile;
use crate::table::{commit_rows, Table, TableRow};
use crate::tune::{tune_problem, Outcome, TuneConfig};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn run<B: Backend>(b: B, a: &TuneArgs) -> Result<()> {
    super::chain_launches(&b, a.pdl)?;
    let shapes = ShapeFile::load(&a.shapes)?;
    let dtype: Option<DType> = a.dtype.as_deref().map(str::parse).transpose().map_err(Error::input)?;
    // Largest share of time first, so a stopped run has done the most valuable part.
    let mut entries = shapes.entries.clone();
    entries.sort_by(|x, y| y.weight.total_cmp(&x.weight));
    let total: f64 = entries.iter().map(|e| e.weight).sum();
    // Unique problems, heaviest first, each with its summed weight; --top-share stops once
    // the shapes taken cover that share of the total.
    let mut problems: Vec<Problem> = Vec::new();
    let mut weights: Vec<f64> = Vec::new();
    let mut covered = 0.0;
    for e in &entries {
        if let Some(limit) = a.top_share {
            if total > 0.0 && covered / total >= limit {
                break;
            }
        }
        covered += e.weight;
        let p = Problem { dtype: dtype.unwrap_or(e.problem.dtype), ..e.problem };
        match problems.iter().position(|q| *q == p) {
            Some(i) => weights[i] += e.weight,
            None => {
                problems.push(p);
                weights.push(e.weight);
            }
        }
    }
    if let Some(limit) = a.top_share {
        if !a.quiet {
            eprintln!(
                "--top-share {limit}: {} of {} shapes make up {:.1}% of the estimated time",
                problems.len(),
                entries.len(),
                if total > 0.0 { 100.0 * covered / total } else { 100.0 }
            );
        }
    }
    let before_shard = problems.len();
    if let Some((k, n)) = a.shard {
        let (p, w): (Vec<Problem>, Vec<f64>) =
            problems.into_iter().zip(weights).enumerate().filter(|(i, _)| i % n == k).map(|(_, pw)| pw).unzip();
        (problems, weights) = (p, w);
    }
    // Cumulative share of the total weight covered after each problem (progress display).
    let shares: Vec<f64> = weights
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w;
            Some(if total > 0.0 { *acc / total } else { 1.0 })
        })
        .collect();
    if problems.is_empty() {
        if let (Some((k, n)), true) = (a.shard, before_shard > 0) {
            // More shards (or workers) than shapes: this one has nothing to do, which is
            // no error (`--devices` gives each worker a shard).
            if !a.quiet {
                eprintln!("shard {k}/{n}: none of the {before_shard} shapes falls to it; nothing to tune");
            }
            return Ok(());
        }
        return Err(Error::input(format!("{}: no shapes to tune", a.shapes.display())));
    }

    let mut table = Table::load_existing(&a.out)?.unwrap_or_else(|| {
        let mut t = Table::default();
        t.comments.push(format!("tuned by gemmtune {} from {}", env!("CARGO_PKG_VERSION"), a.shapes.display()));
        t
    });
    // Fail now, not after the first shape's tuning, when the table cannot be written there
    // (taking its lock creates the lock file beside it).
    drop(crate::table::TableLock::acquire(&a.out)?);
    let validators = b.identity().validators();
    let (usable, _) = table.check_rows(&b);
    let done: BTreeSet<Problem> = usable.iter().map(|r| r.problem).collect();
    let todo: Vec<Problem> = problems.iter().copied().filter(|p| a.force || !done.contains(p)).collect();
    if !a.quiet && todo.len() < problems.len() {
        eprintln!(
            "resuming: {} of {} shapes already tuned in {} (use --force to re-tune them)",
            problems.len() - todo.len(),
            problems.len(),
            a.out.display()
        );
    }

    let cfg = TuneConfig {
        allow_tf32: a.allow_tf32,
        exclude: a.exclude.iter().map(|e| crate::backend::KernelId::new(e.clone())).collect(),
        budget: Duration::from_millis(a.budget_ms.max(1)),
        seed: a.seed.unwrap_or_else(|| TuneConfig::default().seed),
        settle: a.settle_ms.map_or(b.clock_settling().settle, Duration::from_millis),
        ..TuneConfig::default()
    };
    let start = Instant::now();
    let mut progress = Progress::new(todo.len() as u64, "tuning", a.quiet);
    let mut failed = Vec::new();
    let mut candidates = 0usize;
    let mut listed = std::collections::HashSet::new();
    interrupt::install(false, true);
    let mut tuned = 0usize;
    // A lost GPU context: (index of the shape, what happened, the kernel in flight).
    let mut lost: Option<(usize, String, Option<String>)> = None;
    // Our kernels of the shapes after the first compile on a thread of their own while the
    // first shapes are tuned (`Backend::precompile`), until the loop ends.
    let looping = AtomicBool::new(true);
    std::thread::scope(|s| -> Result<()> {
        s.spawn(|| b.precompile(&todo, &|| !looping.load(Ordering::Relaxed) || interrupt::requested()));
        let _stop = ClearOnDrop(&looping);
        for (i, p) in todo.iter().enumerate() {
            if interrupt::requested() {
                progress.finish();
                // With --force the same command would start over: say what resumes instead.
                let how = if a.force {
                    "the others keep the rows they had; rerun without --force to tune only shapes missing from the table, with --force to re-tune all again"
                } else {
                    "rerun the same command to resume"
                };
                return Err(Error::Interrupted(format!(
                    "interrupted: {tuned} of {} shapes tuned and saved in {}; {how}",
                    todo.len(),
                    a.out.display()
                )));
            }
            let share = problems.iter().position(|q| q == p).map_or(1.0, |j| shares[j]);
            progress.set_message(format!("{p} (share covered after it: {:.1}%)", 100.0 * share));
            let mut obs = Inflight { inner: &mut progress, path: a.inflight.as_deref(), last: None };
            let result = tune_problem(&b, p, &cfg, &mut obs);
            let in_flight = obs.last.take();
            match result {
                Ok(o) => {
                    candidates += o.candidates.len();
                    for c in &o.candidates {
                        listed.insert(c.id.clone());
                    }
                    // Checkpoint after every shape: a kill loses at most the shape in flight,
                    // and rows other processes wrote to the same table meanwhile are kept.
                    table = commit_rows(&a.out, &table.comments, &validators, vec![TableRow::from_outcome(&o, "")])?;
                    tuned += 1;
                    let line = shape_line(i + 1, todo.len(), &o);
                    if a.verbose && a.quiet {
                        progress.note(line); // -v asks for the decisions even without a display
                    } else {
                        progress.done(line);
                    }
                    if a.verbose {
                        for line in details(&o) {
                            progress.note(line);
                        }
                    }
                }
                Err(e) if crate::error::is_sticky(&e.to_string()) => {
                    progress.finish();
                    let what = format!("{p}: the device context is lost ({e}); {tuned} shapes were saved in {}", a.out.display());
                    lost = Some((i, what, in_flight));
                    break;
                }
                Err(e) => {
                    progress.note(format!("warning: {p}: {e}"));
                    failed.push(*p);
                }
            }
        }
        Ok(())
    })?;
    if let Some((i, what, culprit)) = lost {
        return continue_in_worker(b, a, &todo[i..], what, culprit);
    }
    progress.finish();
    // A typo in --exclude would leave the kernel meant in the sweep without a word.
    if !a.quiet && failed.len() < todo.len() {
        for e in a.exclude.iter().filter(|e| !listed.contains(&crate::backend::KernelId::new(e.as_str()))) {
            eprintln!("warning: --exclude {e} is not a candidate of any shape tuned (a typo?)");
        }
    }
    if !a.quiet && !todo.is_empty() {
        eprintln!(
            "tuned {} shapes ({} candidates) in {:.1} s; table written to {}",
            todo.len() - failed.len(),
            candidates,
            start.elapsed().as_secs_f64(),
            a.out.display()
        );
    }
    if !a.quiet {
        print!("{}", super::table::render_rows(&table, |r| problems.contains(&r.problem)));
    }
    if !failed.is_empty() {
        return Err(Error::runtime(format!("{} shapes could not be tuned (see warnings above)", failed.len())));
    }
    Ok(())
}

/// After a lost GPU context (a sticky error: no more work in this process), tunes the
/// shapes left, `rest`, in a supervised worker process that skips the kernel in flight
/// when it happened, as `--isolate` would have from the start. A worker (run by such a
/// supervisor, `--inflight`) just reports the loss: its supervisor restarts it.
fn continue_in_worker<B: Backend>(b: B, a: &TuneArgs, rest: &[Problem], what: String, culprit: Option<String>) -> Result<()> {
    let Some(culprit) = culprit.filter(|_| a.inflight.is_none()) else {
        return Err(Error::ContextLost(format!("{what}; rerun (or use --isolate) to continue")));
    };
    drop(b); // its context is of no more use; free the device memory it holds
    let mut shapes = crate::shapes::ShapeFile::default();
    for p in rest {
        shapes.add(crate::shapes::ShapeEntry::new(*p));
    }
    let name = a.out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let path = a.out.with_file_name(format!(".{name}.remaining.csv"));
    shapes.save(&path)?;
    eprintln!("{what}; tuning the {} shapes left in a worker process, without {culprit}", rest.len());
    let mut exclude = a.exclude.clone();
    exclude.push(culprit);
    let worker = TuneArgs { shapes: path.clone(), dtype: None, top_share: None, shard: None, isolate: true, devices: Vec::new(), exclude, ..a.clone() };
    let result = run_devices(&worker);
    let _ = std::fs::remove_file(&path);
    result
}

/// Passes progress on and records the candidate about to run (for a supervisor to skip
/// it if this process dies).
struct Inflight<'a> {
    inner: &'a mut Progress,
    path: Option<&'a std::path::Path>,
    last: Option<String>,
}

impl crate::tune::Observer for Inflight<'_> {
    fn candidate(&mut self, p: &Problem, stage: &str, id: &crate::backend::KernelId) {
        if let Some(path) = self.path {
            let _ = std::fs::write(path, id.as_str());
        }
        self.last = Some(id.as_str().to_string());
        self.inner.candidate(p, stage, id);
    }
}

fn shape_line(i: usize, n: usize, o: &Outcome) -> String {
    let tag = if o.winner == o.default { "default kept" } else { "tuned" };
    format!(
        "[{i}/{n}] {}: {} {} us vs default {} us ({:.2}x, {tag}); {} candidates, {} rejected, {:.2} s (list {:.2}, resolve {:.2}, draws {:.2}, checks {:.2}, warm {:.2}, halving {:.2}, decide {:.2})",
        o.problem,
        o.winner,
        fmt_us(o.winner_time),
        fmt_us(o.default_time),
        o.speedup(),
        o.candidates.len(),
        o.rejected(),
        o.wall.as_secs_f64(),
        o.phases.list.as_secs_f64(),
        o.phases.resolve.as_secs_f64(),
        o.phases.draws.as_secs_f64(),
        o.phases.checks.as_secs_f64(),
        o.phases.warm.as_secs_f64(),
        o.phases.halving.as_secs_f64(),
        o.phases.decide.as_secs_f64()
    )
}

/// Kernel ids for people: cuBLASLt blobs shortened to their first hex digits.
fn short(id: &str) -> String {
    match id.rsplit_once(':') {
        Some((head, blob)) if blob.len() > 32 && blob.bytes().all(|b| b.is_ascii_hexdigit()) => format!("{head}:{}..", &blob[..8]),
        _ => id.to_string(),
    }
}

fn details(o: &Outcome) -> Vec<String> {
    let mut v = vec![format!("    {}", o.decision)];
    for c in &o.candidates {
        match (&c.rejected, c.median) {
            (Some(why), _) => v.push(format!("    rejected {}: {why}", short(c.id.as_str()))),
            (None, Some(t)) => v.push(format!("    {:<56} {:>10} us  ({} samples)", short(c.id.as_str()), fmt_us(t), c.samples)),
            (None, None) => v.push(format!(
                "    {:<56} dropped after warm-up ({} us)",
                short(c.id.as_str()),
                c.warm.map_or("-".into(), fmt_us)
            )),
        }
    }
    v
}

/// Clears its flag when dropped, however the scope it lives in is left.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

fn backend_name(a: &TuneArgs) -> String {
    format!("{:?}", a.backend).to_lowercase()
}

/// `--devices`: one `tune` worker process per device entry, shard i of n each, all
/// writing the same table (merged under its lock); waits for all and reports each.
pub fn run_devices(a: &TuneArgs) -> Result<()> {
    // The devices there are, asked once here: a missing library is one clear error, not
    // one from every worker at once (their lines interleaved).
    let visible = match a.backend {
        crate::cli::BackendName::Cuda => crate::backend::cuda::device_count()?,
        crate::cli::BackendName::Rocm => crate::backend::rocm::device_count()?,
        crate::cli::BackendName::Cpu => 1,
    };
    let devices: Vec<usize> = if a.devices.len() == 1 && a.devices[0] == "all" {
        (0..visible).collect()
    } else {
        a.devices
            .iter()
            .map(|d| d.parse::<usize>().map_err(|_| Error::input(format!("--devices: '{d}' is not a device ordinal"))))
            .collect::<Result<_>>()?
    };
    let devices = if devices.is_empty() { vec![a.device] } else { devices };
    if let Some(d) = devices.iter().find(|&&d| d >= visible) {
        return Err(Error::input(format!("device {d} requested; the {} backend sees {visible}", backend_name(a))));
    }
    let n = devices.len();
    let exe = std::env::current_exe().map_err(|e| Error::runtime(format!("cannot find own executable: {e}")))?;
    let backend = backend_name(a);
    let start = Instant::now();
    // The workers run in process groups of their own: each Ctrl-C reaches this process,
    // which passes it on (`supervise`). The first makes them finish their shape and stop;
    // a second stops them at once, and this process waits for them either way.
    interrupt::install(false, false);
    // One supervisor thread per worker: restart a worker that died or lost its GPU
    // context, excluding the candidate that was in flight.
    let failed = std::sync::atomic::AtomicUsize::new(0);
    // Workers that stopped on an input error (exit 2) or on Ctrl-C (130).
    let (input_errors, interrupted) = (std::sync::atomic::AtomicUsize::new(0), std::sync::atomic::AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for (i, d) in devices.iter().copied().enumerate() {
            let (exe, backend, failed, devices) = (&exe, &backend, &failed, &devices);
            let (input_errors, interrupted) = (&input_errors, &interrupted);
            scope.spawn(move || {
                let inflight = a.out.with_file_name(format!(
                    ".{}.worker{i}.inflight",
                    a.out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
                ));
                let mut exclude: Vec<String> = a.exclude.clone();
                for attempt in 0..=3 {
                    let _ = std::fs::remove_file(&inflight);
                    // --force only on the first attempt: a restart resumes.
                    let mut c = worker_command(exe, backend, a, devices, i, &exclude, a.force && attempt == 0);
                    c.arg("--inflight").arg(&inflight);
                    let status = match supervise(c, &inflight, Duration::from_secs(a.hang_timeout.max(1))) {
                        Ok((s, hung)) => {
                            if hung {
                                eprintln!("worker {i}: no progress for {} s: killed", a.hang_timeout);
                            }
                            s
                        }
                        Err(e) => {
                            eprintln!("worker {i}: cannot start: {e}");
                            break;
                        }
                    };
                    if !a.quiet {
                        let (k, m) = worker_shard(a, i, n);
                        eprintln!("worker {i} (device {d}, shard {k}/{m}): {status}");
                    }
                    if status.success() {
                        let _ = std::fs::remove_file(&inflight);
                        return;
                    }
                    if status.code() == Some(130) || interrupt::requested() {
                        let _ = std::fs::remove_file(&inflight);
                        interrupted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                    if status.code() == Some(2) {
                        input_errors.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    // Died (a signal) or lost its context (75): skip the kernel in flight.
                    let crashed = status.code().is_none() || status.code() == Some(75);
                    let culprit = std::fs::read_to_string(&inflight).unwrap_or_default();
                    if !crashed || culprit.is_empty() || attempt == 3 {
                        break;
                    }
                    eprintln!("worker {i}: restarting without {culprit} (in flight when it died)");
                    exclude.push(culprit);
                }
                let _ = std::fs::remove_file(&inflight);
                failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
    });
    let (failed, input_errors, interrupted) = (failed.into_inner(), input_errors.into_inner(), interrupted.into_inner());
    // No table yet when every worker failed before its first shape.
    let rows = Table::load_existing(&a.out)?.map_or(0, |t| t.rows.len());
    if !a.quiet {
        eprintln!("{n} workers finished in {:.1} s; {rows} rows in {}", start.elapsed().as_secs_f64(), a.out.display());
    }
    if interrupted > 0 {
        return Err(Error::Interrupted(format!(
            "interrupted: {interrupted} of {n} workers stopped after their shape in flight; {rows} rows saved in {}; rerun the same command to resume",
            a.out.display()
        )));
    }
    if failed > 0 && failed == input_errors {
        return Err(Error::input(format!("{failed} of {n} workers stopped on an input error (above)")));
    }
    if failed > 0 {
        return Err(Error::runtime(format!("{failed} of {n} workers failed")));
    }
    Ok(())
}

/// The shard worker `i` of `n` tunes: shard i/n, or within the user's `--shard s/S` the
/// i-th of n parts of it, (s + S·i)/(S·n): shards take every N-th shape, so those are
/// exactly the shapes of shard s split n ways.
fn worker_shard(a: &TuneArgs, i: usize, n: usize) -> (usize, usize) {
    a.shard.map_or((i, n), |(s, total)| (s + total * i, total * n))
}

/// The `--settle-ms` of a worker on device `d`: the user's, or 0 where workers share the
/// GPU (they keep it busy for each other: no idle time to measure a gain from rest in).
fn worker_settle(a: &TuneArgs, devices: &[usize], d: usize) -> Option<u64> {
    a.settle_ms.or((devices.iter().filter(|&&x| x == d).count() > 1).then_some(0))
}

/// The command line of worker `i`, on `devices[i]`, of one per entry of `devices`.
fn worker_command(
    exe: &std::path::Path,
    backend: &str,
    a: &TuneArgs,
    devices: &[usize],
    i: usize,
    exclude: &[String],
    force: bool,
) -> std::process::Command {
    let (d, n) = (devices[i], devices.len());
    let (k, m) = worker_shard(a, i, n);
    let mut c = std::process::Command::new(exe);
    c.arg("tune").arg("--shapes").arg(&a.shapes).arg("--out").arg(&a.out);
    c.args(["--backend", backend, "--device", &d.to_string(), "--shard", &format!("{k}/{m}")]);
    c.args(["--budget-ms", &a.budget_ms.to_string(), "-q"]);
    if let Some(ms) = worker_settle(a, devices, d) {
        c.args(["--settle-ms", &ms.to_string()]);
    }
    if a.verbose {
        c.arg("-v"); // each worker prints its own shapes' decisions
    }
    if let Some(dt) = &a.dtype {
        c.args(["--dtype", dt]);
    }
    if let Some(s) = a.seed {
        c.args(["--seed", &s.to_string()]);
    }
    if let Some(t) = a.top_share {
        c.args(["--top-share", &t.to_string()]);
    }
    if force {
        c.arg("--force");
    }
    if a.allow_tf32 {
        c.arg("--allow-tf32");
    }
    if a.pdl {
        c.arg("--pdl");
    }
    for e in exclude {
        c.args(["--exclude", e]);
    }
    c
}

/// Runs a worker; kills it when the candidate it is running (the in-flight file) has not
/// changed for `timeout`. Returns its exit status and whether it was killed as hung.
fn supervise(
    mut c: std::process::Command,
    inflight: &std::path::Path,
    timeout: Duration,
) -> std::io::Result<(std::process::ExitStatus, bool)> {
    // A process group of its own: a Ctrl-C at the terminal reaches the supervisor alone,
    // which passes each signal on once (reaching the worker both ways, it counted as the
    // second Ctrl-C and stopped the shape in flight at once).
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    let mut child = c.spawn()?;
    let mut last = (String::new(), Instant::now());
    let mut passed_on = 0;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        if interrupt::count() > passed_on {
            passed_on = interrupt::count();
            #[cfg(unix)]
            // SAFETY: a signal to our own child, which has not been reaped (try_wait above).
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGINT);
            }
        }
        let now = std::fs::read_to_string(inflight).unwrap_or_default();
        if now != last.0 {
            last = (now, Instant::now());
        } else if !last.0.is_empty() && last.1.elapsed() > timeout {
            child.kill()?;
            return Ok((child.wait()?, true));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> TuneArgs {
        let mut v = vec!["gemmtune", "tune", "--shapes", "s.csv", "--out", "t.csv"];
        v.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(v).unwrap().command {
            crate::cli::Command::Tune(a) => a,
            _ => unreachable!(),
        }
    }

    fn arg_of(c: &std::process::Command, flag: &str) -> Option<String> {
        let a: Vec<String> = c.get_args().map(|s| s.to_string_lossy().into_owned()).collect();
        a.iter().position(|x| x == flag).map(|i| a[i + 1].clone())
    }

    fn settle_arg(c: &std::process::Command) -> Option<String> {
        arg_of(c, "--settle-ms")
    }

    /// Workers split the user's shard, not the whole file: together they take exactly the
    /// shapes (every N-th by index) the shard names, each once.
    #[test]
    fn workers_split_the_users_shard() {
        let exe = std::path::Path::new("gemmtune");
        let shard_of = |a: &TuneArgs, i: usize| arg_of(&worker_command(exe, "cuda", a, &[0, 1, 2], i, &[], false), "--shard").unwrap();
        assert_eq!((0..3).map(|i| shard_of(&args(&[]), i)).collect::<Vec<_>>(), ["0/3", "1/3", "2/3"]);
        let a = args(&["--shard", "1/4"]);
        let parts: Vec<(usize, usize)> = (0..3).map(|i| shard_of(&a, i)).map(|s| crate::cli::parse_shard(&s).unwrap()).collect();
        for idx in 0..240 {
            let takers = parts.iter().filter(|(k, m)| idx % m == *k).count();
            assert_eq!(takers, usize::from(idx % 4 == 1), "shape {idx}");
        }
    }

    /// A worker gets `--settle-ms` when the user gave it, and 0 when it shares its GPU with
    /// another worker (no idle time there to measure a gain from rest in).
    #[test]
    fn workers_sharing_a_gpu_skip_the_second_comparison_from_rest() {
        let exe = std::path::Path::new("gemmtune");
        let c = |a: &TuneArgs, devices: &[usize]| worker_command(exe, "cuda", a, devices, 0, &[], false);
        let (plain, told) = (args(&[]), args(&["--settle-ms", "300"]));
        assert_eq!(settle_arg(&c(&plain, &[0, 1])), None, "the backend's default");
        assert_eq!(settle_arg(&c(&plain, &[0, 0])), Some("0".into()));
        assert_eq!(settle_arg(&c(&told, &[0, 1])), Some("300".into()));
        assert_eq!(settle_arg(&c(&told, &[0, 0])), Some("300".into()));
    }
}
