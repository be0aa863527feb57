//! `skab`: parses the command line and runs the command.

use clap::Parser;
use skab_server::cli;

/// mimalloc instead of the system allocator: uploads allocate and free body and batch
/// buffers at a high rate, where glibc's malloc showed up at ~6 % of the CPU of a PUT
/// (docs/benchmarks.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args, skab_server::serve::serve) {
        eprintln!("skab: {}", e.0);
        std::process::exit(1);
    }
}
