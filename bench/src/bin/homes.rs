//! Creates many empty homes (engine spaces) in a data dir directly through the engine, fast,
//! so that a server started on it holds that many homes: the population behind "a root poll
//! stays a hash lookup with a million homes" (docs/benchmarks.md, "Root polls with a million
//! homes"). Usage: `homes --data-dir DIR --tenant T --prefix u --count N`, names
//! `<prefix><index>` (the names `skab-loadtest users` gives).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use futures::stream::{self, StreamExt};
use skab_engine::{SpaceKey, Store, StoreConfig};

/// Space creations in flight (each waits for its log record to be durable; group commit
/// makes many cheap).
const IN_FLIGHT: usize = 4096;

#[derive(Parser)]
#[command(about = "Create many empty homes in a skab data dir")]
struct Args {
    /// The server's data dir (the store is its `store/`).
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    tenant: String,
    /// User names are this prefix and a number from 0.
    #[arg(long, default_value = "u")]
    prefix: String,
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Digits the number is padded to (0: none).
    #[arg(long, default_value_t = 0)]
    pad: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse();
    let store = Store::open(&a.data_dir.join("store"), StoreConfig::default())
        .context("opening the store")?;
    let started = Instant::now();
    let keys: Vec<SpaceKey> = (0..a.count)
        .map(|i| SpaceKey::new(&a.tenant, &format!("{}{:0w$}", a.prefix, i, w = a.pad)))
        .collect::<Result<_, _>>()
        .context("a tenant or user name is not valid")?;
    let mut made = 0u64;
    let mut results = stream::iter(keys.iter())
        .map(|k| store.create_space(k))
        .buffer_unordered(IN_FLIGHT);
    while let Some(r) = results.next().await {
        r.context("creating a space")?;
        made += 1;
        if made.is_multiple_of(100_000) {
            eprintln!("{made} homes, {:.1} s", started.elapsed().as_secs_f64());
        }
    }
    drop(results);
    store.checkpoint().context("checkpoint")?;
    println!(
        "{made} homes in tenant {} in {:.1} s",
        a.tenant,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
