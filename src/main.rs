use clap::Parser;

fn main() {
    // Behave like other Unix tools when the reader goes away (`gemmtune ... | head`):
    // end quietly on SIGPIPE instead of panicking on a failed write.
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = gemmtune::cli::Cli::parse();
    if let Err(e) = gemmtune::commands::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
