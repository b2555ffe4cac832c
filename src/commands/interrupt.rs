//! Ctrl-C (and, where asked, SIGTERM) as a request to stop at the next safe point: `tune`
//! finishes the shape in flight and keeps its table, `generate` ends the generation and
//! saves its `--record`. A second signal ends the process at once (exit 130), for a step
//! that takes too long to wait for, except in a supervisor (`tune --isolate/--devices`),
//! which passes every signal on to its workers and waits for them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static COUNT: AtomicUsize = AtomicUsize::new(0);
static EXIT_ON_SECOND: AtomicBool = AtomicBool::new(true);

extern "C" fn on_signal(_: libc::c_int) {
    // Async-signal-safe: atomics, write and _exit.
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if n >= 2 && EXIT_ON_SECOND.load(Ordering::SeqCst) {
        const MSG: &[u8] = b"\ninterrupted again: stopped at once (work in flight is lost; what was saved is kept)\n";
        // SAFETY: write and _exit are async-signal-safe; nothing is flushed, as after a kill.
        unsafe {
            libc::write(2, MSG.as_ptr() as *const libc::c_void, MSG.len());
            libc::_exit(130);
        }
    }
}

/// Catches SIGINT, and SIGTERM with `term`; `exit_on_second` false for a supervisor,
/// whose workers must get the second signal (and stop at once) before it may end.
pub fn install(term: bool, exit_on_second: bool) {
    EXIT_ON_SECOND.store(exit_on_second, Ordering::SeqCst);
    let signals: &[libc::c_int] = if term { &[libc::SIGINT, libc::SIGTERM] } else { &[libc::SIGINT] };
    for &s in signals {
        // SAFETY: the handler only touches atomics and calls write and _exit.
        unsafe {
            libc::signal(s, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    count() > 0
}

/// Signals received so far.
pub fn count() -> usize {
    COUNT.load(Ordering::SeqCst)
}
