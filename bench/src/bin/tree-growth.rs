//! Inserts files one by one into one directory of one space (as a PUT storm into a single
//! collection does) and reports the slowest inserts: the moments a table or the node slab
//! grows. Each insert holds the space's write lock on a serving thread, so its worst case
//! is a stall for every request on that thread. Usage: `tree-growth [--files N] [--over-us U]`.

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use skab_engine::ns::{Content, Name, NsOp, SpaceTree};
use skab_engine::ContentHash;

#[derive(Parser)]
struct Args {
    /// Files to insert.
    #[arg(long, default_value_t = 600_000)]
    files: usize,
    /// Report inserts slower than this, microseconds.
    #[arg(long, default_value_t = 2000)]
    over_us: u128,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut tree = SpaceTree::new();
    let dir = Name::new("put")?;
    tree.apply(&NsOp::Mkdir {
        path: vec![dir.clone()],
        now: 0,
    })?;
    let mut slow = Vec::new();
    let mut total = std::time::Duration::ZERO;
    for i in 0..args.files {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        let op = NsOp::PutFile {
            path: vec![dir.clone(), Name::new(&format!("put1-t1-{i}.bin"))?],
            content: Content {
                hash: ContentHash(h),
                size: 0,
                chunks: Box::new([]),
            },
            now: 1,
            keep_versions: 10,
        };
        let t = Instant::now();
        tree.apply(&op)?;
        let d = t.elapsed();
        total += d;
        if d.as_micros() > args.over_us {
            slow.push((i, d.as_micros()));
        }
    }
    println!(
        "{} inserts, mean {:.2} us; slower than {} us (insert number, us): {:?}",
        args.files,
        total.as_secs_f64() * 1e6 / args.files as f64,
        args.over_us,
        slow
    );
    Ok(())
}
