//! Progress display for long runs: a bar over shapes and a line for the current
//! candidate on a terminal; one plain line per finished shape when stderr is not a
//! terminal (logs, CI); nothing at all with `--quiet`.

use crate::backend::KernelId;
use crate::problem::Problem;
use crate::tune::Observer;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub struct Progress {
    bars: Option<(MultiProgress, ProgressBar, ProgressBar)>,
    quiet: bool,
}

impl Progress {
    pub fn new(total: u64, what: &str, quiet: bool) -> Progress {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::new();
            let bar = multi.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})")
                    .expect("template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(what.to_string());
            let line = multi.add(ProgressBar::new_spinner());
            line.set_style(ProgressStyle::with_template("  {spinner} {msg}").expect("template"));
            line.enable_steady_tick(std::time::Duration::from_millis(120));
            (multi, bar, line)
        });
        Progress { bars, quiet }
    }

    pub fn set_message(&self, msg: String) {
        if let Some((_, bar, _)) = &self.bars {
            bar.set_message(msg);
        }
    }

    /// A finished item: printed above the bars, or as a plain line without a terminal.
    pub fn done(&self, line: String) {
        match &self.bars {
            Some((multi, bar, _)) => {
                let _ = multi.println(line);
                bar.inc(1);
            }
            None if !self.quiet => eprintln!("{line}"),
            None => {}
        }
    }

    /// Something worth saying even in a log (a warning), never hidden by the bars.
    pub fn note(&self, line: String) {
        match &self.bars {
            Some((multi, _, _)) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some((_, bar, line)) = &self.bars {
            line.finish_and_clear();
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn candidate(&mut self, p: &Problem, stage: &str, id: &KernelId) {
        if let Some((_, _, line)) = &self.bars {
            line.set_message(format!("{p}: {stage} {id}"));
        }
    }
}
