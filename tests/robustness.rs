//! Tuning survives kills, Ctrl-C and concurrent writers (real processes).

mod common;
use common::bin;
use gemmtune::table::Table;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn shapes(path: &Path, ms: &[usize], n: usize) {
    let mut s = String::from("dtype,m,n,k\n");
    for &m in ms {
        s.push_str(&format!("f32,{m},{n},96\n"));
    }
    fs::write(path, s).unwrap();
}

fn tune_cmd(shapes: &Path, out: &Path) -> std::process::Command {
    let mut c = bin();
    c.args(["tune", "--shapes"]).arg(shapes).arg("--out").arg(out).args(["--budget-ms", "40", "-q"]);
    c
}

fn rows(t: &Table) -> BTreeMap<usize, String> {
    t.rows.iter().map(|r| (r.problem.m, r.tuned_at.clone() + &r.kernel.0)).collect()
}

#[test]
fn sigkill_at_random_points_loses_no_finished_shape() {
    let ms: Vec<usize> = (1..=10).collect();
    for (seed, want) in [(3u64, 2), (11, 4), (29, 6)] {
        let dir = tempfile::tempdir().unwrap();
        let (s, out) = (dir.path().join("s.csv"), dir.path().join("t.csv"));
        shapes(&s, &ms, 48 + seed as usize);
        let mut child = tune_cmd(&s, &out).spawn().unwrap();
        // Kill inside the run, once 2, 4 or 6 shapes are saved (polled, not slept: a fixed
        // sleep on a loaded machine could land before the first save or after the last),
        // then a seed-dependent moment later (within the next shape or its save).
        let t = Instant::now();
        while Table::load(&out).map_or(0, |t| t.rows.len()) < want && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(seed * 7 % 60));
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        let before = rows(&Table::load(&out).expect("the table parses after a kill"));
        assert!(before.len() >= want && before.len() < ms.len(), "seed {seed}: killed mid-run, {} rows", before.len());
        let status = tune_cmd(&s, &out).status().unwrap();
        assert!(status.success());
        let after = Table::load(&out).unwrap();
        assert_eq!(after.rows.len(), ms.len(), "seed {seed}: every shape present");
        let after = rows(&after);
        for (m, row) in &before {
            assert_eq!(after.get(m), Some(row), "seed {seed}: shape m={m} finished before the kill was re-tuned or lost");
        }
        eprintln!("seed {seed}: {} shapes finished before the kill, kept", before.len());
    }
}

#[test]
fn ctrl_c_keeps_what_is_finished_and_says_how_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (s, out) = (dir.path().join("s.csv"), dir.path().join("t.csv"));
    shapes(&s, &(1..=30).collect::<Vec<_>>(), 64);
    let child = tune_cmd(&s, &out).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let t = Instant::now();
    while !out.exists() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted:") && err.contains("rerun the same command to resume"), "{err}");
    let t = Table::load(&out).unwrap();
    assert!(!t.rows.is_empty() && t.rows.len() < 30, "{} rows", t.rows.len());
}

/// A second Ctrl-C stops at once instead of waiting for the shape in flight (here one that
/// takes ~15 s on 2 cores), and says so.
#[test]
fn a_second_ctrl_c_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (s, out) = (dir.path().join("s.csv"), dir.path().join("t.csv"));
    fs::write(&s, "dtype,m,n,k\nf32,1024,4096,4096\n").unwrap();
    let mut c = bin();
    c.args(["tune", "--shapes"]).arg(&s).arg("--out").arg(&out).args(["--budget-ms", "20000", "-q"]);
    let child = c.stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    for _ in 0..2 {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted again: stopped at once"), "{err}");
    // Before the shape in flight could have finished.
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(!out.exists(), "nothing finished, nothing written");
}

/// Ctrl-C at a terminal signals the whole foreground process group: under --isolate the
/// worker must still finish its shape in flight (it got the signal twice, directly and
/// passed on by the supervisor, and stopped at once as after a second Ctrl-C).
#[test]
fn one_ctrl_c_under_isolate_finishes_the_shape_in_flight() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let (s, out) = (dir.path().join("s.csv"), dir.path().join("t.csv"));
    fs::write(&s, "dtype,m,n,k\nf32,512,2048,2048\nf32,256,2048,2048\n").unwrap();
    let mut c = bin();
    c.args(["tune", "--isolate", "--shapes"]).arg(&s).arg("--out").arg(&out).args(["-q"]);
    // A group of its own, so that signalling it is a terminal's Ctrl-C without the test's.
    c.process_group(0);
    let child = c.stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling the process group we just made.
    unsafe { libc::killpg(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(!err.contains("interrupted again"), "{err}");
    assert!(Table::load(&out).map(|t| t.rows.len()).unwrap_or(0) >= 1, "the shape in flight was finished and saved: {err}");
}

#[test]
fn two_processes_writing_one_table_keep_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, out) = (dir.path().join("a.csv"), dir.path().join("b.csv"), dir.path().join("t.csv"));
    shapes(&a, &[1, 2, 3, 4, 5, 6], 64);
    shapes(&b, &[1, 2, 3, 4, 5, 6], 80);
    let mut pa = tune_cmd(&a, &out).spawn().unwrap();
    let mut pb = tune_cmd(&b, &out).spawn().unwrap();
    assert!(pa.wait().unwrap().success());
    assert!(pb.wait().unwrap().success());
    let t = Table::load(&out).unwrap();
    let mut ns: Vec<(usize, usize)> = t.rows.iter().map(|r| (r.problem.n, r.problem.m)).collect();
    ns.sort();
    assert_eq!(ns.len(), 12, "{ns:?}");
    assert_eq!(ns.iter().filter(|(n, _)| *n == 64).count(), 6);
}

#[test]
fn shards_and_logical_workers_cover_every_shape_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.csv");
    shapes(&s, &[1, 2, 3, 4, 5, 6, 7], 72);
    // Shards: 0/2 takes every other shape of the heaviest-first order; 1/2 the rest.
    let half = dir.path().join("half.csv");
    assert!(tune_cmd(&s, &half).args(["--shard", "0/2"]).status().unwrap().success());
    assert_eq!(Table::load(&half).unwrap().rows.len(), 4);
    assert!(tune_cmd(&s, &half).args(["--shard", "1/2"]).status().unwrap().success());
    assert_eq!(Table::load(&half).unwrap().rows.len(), 7);
    // Two worker processes on one (CPU) device, one table; -v reaches the workers, whose
    // decision lines cover every shape once.
    let out = dir.path().join("t.csv");
    let o = tune_cmd(&s, &out).args(["--devices", "0,0", "-v"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let decisions = err.lines().filter(|l| l.starts_with('[') && l.contains("] f32 TN m=")).count();
    assert_eq!(decisions, 7, "{err}");
    let t = Table::load(&out).unwrap();
    let mut ms: Vec<usize> = t.rows.iter().map(|r| r.problem.m).collect();
    ms.sort();
    assert_eq!(ms, vec![1, 2, 3, 4, 5, 6, 7]);
    assert!(tune_cmd(&s, &out).args(["--shard", "2/2"]).output().unwrap().status.code() == Some(2));
    // More workers than shapes: the ones with an empty shard succeed (the run exited 2).
    let one = dir.path().join("one.csv");
    shapes(&one, &[3], 72);
    let few = dir.path().join("few.csv");
    let o = tune_cmd(&one, &few).args(["--devices", "0,0"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(Table::load(&few).unwrap().rows.len(), 1);
}

#[test]
fn a_worker_killed_by_a_kernel_is_restarted_without_that_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.csv");
    shapes(&s, &[1, 2, 3], 40);
    // Without isolation the crash takes the whole run down.
    let plain = dir.path().join("plain.csv");
    let st = tune_cmd(&s, &plain).env("GEMMTUNE_CPU_TEST_ABORT", "1").status().unwrap();
    assert!(!st.success() && st.code().is_none(), "killed by a signal: {st:?}");
    // With --isolate the supervisor restarts the worker, skipping the culprit.
    let out = dir.path().join("t.csv");
    let o = tune_cmd(&s, &out).env("GEMMTUNE_CPU_TEST_ABORT", "1").arg("--isolate").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("restarting without cpu:test:abort"), "{err}");
    let t = Table::load(&out).unwrap();
    assert_eq!(t.rows.len(), 3);
    assert!(t.rows.iter().all(|r| r.kernel.as_str() != "cpu:test:abort"));
}

#[test]
fn a_lost_context_is_survived_by_a_worker_without_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.csv");
    shapes(&s, &[1, 2, 3], 40);
    // cpu:test:sticky loses the "context": every later call of the process fails, as after
    // a sticky GPU error. Without --isolate the tune carries on in a worker process.
    let out = dir.path().join("t.csv");
    let o = tune_cmd(&s, &out).env("GEMMTUNE_CPU_TEST_STICKY", "1").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("context is lost") && err.contains("3 shapes left in a worker process, without cpu:test:sticky"), "{err}");
    let t = Table::load(&out).unwrap();
    assert_eq!(t.rows.len(), 3);
    assert!(t.rows.iter().all(|r| r.kernel.as_str() != "cpu:test:sticky"));
    assert!(!dir.path().join(".t.csv.remaining.csv").exists(), "the worker's shape file is removed");
    // With --isolate the supervisor restarts its worker (exit 75) without the kernel.
    let out = dir.path().join("t2.csv");
    let o = tune_cmd(&s, &out).env("GEMMTUNE_CPU_TEST_STICKY", "1").arg("--isolate").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("without cpu:test:sticky"), "{err}");
    let t = Table::load(&out).unwrap();
    assert_eq!(t.rows.len(), 3);
    assert!(t.rows.iter().all(|r| r.kernel.as_str() != "cpu:test:sticky"));
}

#[test]
fn a_hung_kernel_is_killed_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("s.csv");
    shapes(&s, &[1, 2], 40);
    let out = dir.path().join("t.csv");
    let o = tune_cmd(&s, &out)
        .env("GEMMTUNE_CPU_TEST_HANG", "1")
        .args(["--isolate", "--hang-timeout", "3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("no progress for 3 s: killed") && err.contains("restarting without cpu:test:hang"), "{err}");
    assert_eq!(Table::load(&out).unwrap().rows.len(), 2);
}
