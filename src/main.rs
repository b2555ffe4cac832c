use clap::Parser;

fn main() {
    let cli = gemmtune::cli::Cli::parse();
    if let Err(e) = gemmtune::commands::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
