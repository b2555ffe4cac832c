//! Atomic file replacement for everything the user keeps (tables, shape files).
//!
//! The new content goes to a temporary file in the same directory, is flushed and
//! fsynced, then renamed over the target: a reader (or a crash, a kill, a full disk)
//! sees either the old file or the new one, never a half-written mix. The replacement
//! keeps what the user set on the file: a symlink is followed (its target is replaced,
//! the link stays), the file's permissions carry over, and a read-only file is refused
//! rather than replaced. Temporary files of writers that were killed are removed by the
//! next write.

use crate::error::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file a write to `path` replaces: the target of a symlink, else `path` itself.
pub fn resolve(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// Writes `path` atomically with whatever `fill` writes.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let target = resolve(path);
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "create directory", e))?;
    let old = fs::metadata(&target).ok();
    if old.as_ref().is_some_and(|m| m.permissions().readonly()) {
        return Err(Error::input(format!("{}: the file is read-only; not replaced (make it writable to update it)", path.display())));
    }
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    remove_stale_temporaries(&dir, &name);
    // Unique per write, not only per process: two threads may write one file at once (the
    // kernel disk cache), and a shared temporary could be renamed away half written.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp.{}.{n}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        {
            let mut w = std::io::BufWriter::new(&mut f);
            fill(&mut w)?;
            w.flush()?;
        }
        if let Some(m) = &old {
            f.set_permissions(m.permissions())?;
        }
        f.sync_all()?;
        fs::rename(&tmp, &target)?;
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, "write", e));
    }
    Ok(())
}

/// Removes `.<name>.tmp.<pid>[.<n>]` files in `dir` whose writer no longer runs (killed
/// mid-write: a kill -9 cannot clean up after itself).
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp.");
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let pid = file.strip_prefix(&prefix).and_then(|p| p.split('.').next()).and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if pid != std::process::id() && !process_runs(pid) {
            let _ = fs::remove_file(e.path());
        }
    }
}

#[cfg(unix)]
fn process_runs(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists (and may be signalled).
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn process_runs(_pid: u32) -> bool {
    true // unknown: keep the file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_keeps_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        write_atomic(&p, |w| w.write_all(b"old\n")).unwrap();
        let err = write_atomic(&p, |w| {
            w.write_all(b"half of the new")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(fs::read_to_string(&p).unwrap(), "old\n");
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[cfg(unix)]
    /// Threads of one process writing one file at once (the kernel disk cache) each
    /// write a temporary of their own: every write succeeds and the file is always one
    /// writer's whole content.
    #[test]
    fn concurrent_writers_in_one_process_do_not_share_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.bin");
        let body = |t: u8| vec![t; 1 << 16];
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..25 {
                        write_atomic(p, |w| w.write_all(&body(t))).unwrap();
                        let got = fs::read(p).unwrap();
                        assert!(got.len() == 1 << 16 && got.iter().all(|&b| b == got[0]), "a mixed or short file");
                    }
                });
            }
        });
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporaries left");
    }

    #[test]
    fn symlinks_permissions_read_only_files_and_leftovers_of_killed_writers() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        let target = real.join("t.csv");
        write_atomic(&target, |w| w.write_all(b"v1\n")).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        // A leftover of a writer that is gone (no process has pid 2^22 + 1 here: above
        // the default pid_max).
        let stale = real.join(".t.csv.tmp.4194305");
        fs::write(&stale, b"half").unwrap();
        let stale2 = real.join(".t.csv.tmp.4194305.7");
        fs::write(&stale2, b"half").unwrap();
        write_atomic(&link, |w| w.write_all(b"v2\n")).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        assert_eq!(fs::read_to_string(&target).unwrap(), "v2\n");
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!stale.exists() && !stale2.exists(), "the killed writer's temporary files are removed");
        fs::set_permissions(&target, fs::Permissions::from_mode(0o444)).unwrap();
        let e = write_atomic(&target, |w| w.write_all(b"v3\n")).unwrap_err();
        assert!(e.to_string().contains("read-only") && e.exit_code() == 2, "{e}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "v2\n");
    }
}
