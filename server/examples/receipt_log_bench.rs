//! Receipt log appends at the exam peak, local disk: the server's `Keys::log` (one write at
//! the log's end under a lock, then `fdatasync` through the data dir's own-files storage,
//! `server/src/own_files.rs`) against the way it was written before (one `write` to the file
//! opened `O_APPEND`, then `fdatasync`), side by side, alternating rounds. Many tasks append to
//! one hand-in's log at once, as pupils do in the last minute. Prints appends/s and latency.
//!
//! `cargo run --release -p skab-server --example receipt_log_bench -- [DIR] [TASKS] [PER_TASK]`
//! (DIR on the disk to measure; default /var/tmp).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skab_server::handin::receipt::{self, Keys, Receipt};

fn receipt(i: usize) -> (Receipt, String) {
    let r = Receipt {
        tenant: "school".into(),
        handin: "exam".into(),
        user: format!("pupil{i}"),
        file: "answer.docx".into(),
        size: 65_536,
        blake3: "ab".repeat(32),
        time: "2026-12-05T10:00:00.000Z".into(),
        late: false,
    };
    // About the length of a real signed receipt.
    let text = format!("skab-receipt-1.{}", "x".repeat(300 + i % 7));
    (r, text)
}

/// The old append: `O_APPEND` write, then fdatasync (copied from before the own-files change).
fn old_append(dir: &Path, path: &Path, line: &str) -> std::io::Result<()> {
    let created = !path.exists();
    if created {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(line.as_bytes())?;
    f.sync_data()?;
    if created {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

struct Stats {
    per_s: f64,
    p50: Duration,
    p99: Duration,
}

async fn round(new: bool, data: PathBuf, tasks: usize, per_task: usize) -> Stats {
    let keys = Arc::new(Keys::new(&data));
    let start = Instant::now();
    let mut hs = Vec::new();
    for t in 0..tasks {
        let keys = keys.clone();
        let data = data.clone();
        hs.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for k in 0..per_task {
                let (r, text) = receipt(t * per_task + k);
                let t0 = Instant::now();
                if new {
                    keys.log(&r, &text).await.expect("append");
                } else {
                    let dir = data.join(receipt::LOG_DIR).join(&r.tenant);
                    let path = receipt::log_path(&data, &r.tenant, &r.handin).unwrap();
                    let line = receipt::log_line(&data, &r.tenant, &text).unwrap();
                    tokio::task::spawn_blocking(move || old_append(&dir, &path, &line))
                        .await
                        .unwrap()
                        .expect("append");
                }
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for h in hs {
        lat.extend(h.await.unwrap());
    }
    let took = start.elapsed();
    lat.sort();
    Stats {
        per_s: lat.len() as f64 / took.as_secs_f64(),
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = PathBuf::from(args.get(1).map_or("/var/tmp", String::as_str));
    let tasks: usize = args.get(2).map_or(64, |s| s.parse().expect("TASKS"));
    let per_task: usize = args.get(3).map_or(50, |s| s.parse().expect("PER_TASK"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{tasks} tasks x {per_task} appends to one receipt log, {}",
        base.display()
    );
    println!("| round | way | appends/s | p50 ms | p99 ms |");
    println!("|---|---|---:|---:|---:|");
    for r in 1..=2 {
        for new in [false, true] {
            let dir = tempfile::tempdir_in(&base).unwrap();
            let s = rt.block_on(round(new, dir.path().to_path_buf(), tasks, per_task));
            let way = if new {
                "own-files storage"
            } else {
                "O_APPEND (before)"
            };
            println!(
                "| {r} | {way} | {:.0} | {:.2} | {:.2} |",
                s.per_s,
                s.p50.as_secs_f64() * 1e3,
                s.p99.as_secs_f64() * 1e3
            );
        }
    }
}
