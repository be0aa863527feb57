//! `skab`: parses the command line and runs the command.

use clap::Parser;
use skab_server::cli;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args, skab_server::serve::serve) {
        eprintln!("skab: {}", e.0);
        std::process::exit(1);
    }
}
