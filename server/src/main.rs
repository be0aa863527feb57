//! `skab`: parses the command line and runs the command.

use clap::Parser;
use skab_server::cli;

/// mimalloc instead of the system allocator: uploads allocate and free body and batch
/// buffers at a high rate, where glibc's malloc showed up at ~6 % of the CPU of a PUT
/// (docs/benchmarks.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long mimalloc keeps freed memory before it returns it to the OS, ms (its default: 10).
/// Upload buffers come and go faster than that; with 10 ms their pages went back to the OS
/// and were faulted in and zeroed again, ~10 % of the CPU of a small PUT (docs/benchmarks.md,
/// "PUT: allocator, wake-ups and a disk-like rig"). `MIMALLOC_PURGE_DELAY` still overrides it.
const ALLOC_PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// mimalloc's `mi_option_purge_delay`, which libmimalloc-sys does not name: the option just
/// before `mi_option_use_numa_nodes` in mimalloc's option enum. Set only where it reads as its
/// documented default (10 ms), so that a reordered enum changes nothing.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t =
    libmimalloc_sys::mi_option_use_numa_nodes - 1;
const MI_PURGE_DELAY_DEFAULT_MS: std::ffi::c_long = 10;

fn main() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: reads and sets one of mimalloc's runtime options; any value is valid for it.
        unsafe {
            if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == MI_PURGE_DELAY_DEFAULT_MS {
                libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ALLOC_PURGE_DELAY_MS);
            }
        }
    }
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args, skab_server::serve::serve) {
        eprintln!("skab: {}", e.0);
        std::process::exit(1);
    }
}
