//! `skab-capacity`: measures a school population on this machine and plans hardware from the figures (docs/capacity.md).
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use skab_bench::capacity::{measure, plan, population};
use skab_engine::Store;

#[derive(Parser)]
#[command(about = "Capacity benchmark and planner")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Builds populations of the given sizes and measures them.
    Measure {
        #[arg(long)]
        data_dir: PathBuf,
        /// Sizes, comma separated (each built on top of the previous one).
        #[arg(long, value_delimiter = ',', required = true)]
        users: Vec<u64>,
        #[arg(long, default_value_t = 20)]
        files_per_user: usize,
        #[arg(long, default_value_t = 4)]
        tenants: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Measures an existing store in a fresh process (run by `measure`).
    #[command(hide = true)]
    Open {
        dir: PathBuf,
        users: u64,
        files: usize,
        tenants: u64,
    },
    /// Plans hardware for a school population.
    Plan {
        #[arg(long)]
        pupils: f64,
        #[arg(long, default_value_t = 0.0)]
        teachers: f64,
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/capacity.json"))]
        from: PathBuf,
        #[arg(long, default_value_t = plan::FILES_PER_USER)]
        files_per_user: f64,
        #[arg(long)]
        mean_file_bytes: Option<f64>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> Result<()> {
    match Args::parse().cmd {
        Cmd::Open {
            dir,
            users,
            files,
            tenants,
        } => {
            let f = measure::measure_open(&dir, users, files, tenants)?;
            println!("{}", serde_json::to_string(&f)?);
        }
        Cmd::Measure {
            data_dir,
            mut users,
            files_per_user,
            tenants,
            out,
        } => {
            users.sort_unstable();
            std::fs::create_dir_all(&out)?;
            let dir = data_dir.join("capacity-store");
            if dir.exists() {
                bail!("{} exists: give an empty data dir", dir.display());
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let mut points = Vec::new();
            let mut done = 0u64;
            for &n in &users {
                let store = Store::open(&dir, measure::config())?;
                let t = std::time::Instant::now();
                let built = rt.block_on(population::build(
                    &store,
                    done,
                    n,
                    files_per_user,
                    tenants,
                    &|_| {},
                ))?;
                let build_s = t.elapsed().as_secs_f64();
                store.checkpoint()?;
                drop(store);
                done = n;
                let o = std::process::Command::new(std::env::current_exe()?)
                    .arg("open")
                    .arg(&dir)
                    .arg(n.to_string())
                    .arg(files_per_user.to_string())
                    .arg(tenants.to_string())
                    .output()
                    .context("running the open step")?;
                if !o.status.success() {
                    bail!("open step failed: {}", String::from_utf8_lossy(&o.stderr));
                }
                let mut f: measure::Figures = serde_json::from_slice(&o.stdout)?;
                let (disk, packs) = measure::disk_bytes(&dir);
                measure::put(&mut f, "users", n as f64, "users");
                measure::put(&mut f, "disk_bytes", disk as f64, "bytes");
                measure::put(&mut f, "pack_files_bytes", packs as f64, "bytes");
                measure::put(
                    &mut f,
                    "index_bytes",
                    disk.saturating_sub(packs) as f64,
                    "bytes",
                );
                measure::put(
                    &mut f,
                    "build_users_per_s",
                    built.users as f64 / build_s,
                    "users/s",
                );
                eprintln!("{n} users measured");
                points.push(f);
            }
            let doc = json!({ "machine": measure::machine(&data_dir), "files_per_user": files_per_user,
                "tenants": tenants, "points": points });
            std::fs::write(
                out.join("capacity.json"),
                serde_json::to_string_pretty(&doc)?,
            )?;
            std::fs::write(
                out.join("capacity.html"),
                skab_bench::capacity::report::html(&points, &measure::machine(&data_dir)),
            )?;
            std::fs::remove_dir_all(&dir)?;
        }
        Cmd::Plan {
            pupils,
            teachers,
            from,
            files_per_user,
            mean_file_bytes,
            json,
        } => {
            let doc: serde_json::Value = serde_json::from_slice(
                &std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?,
            )?;
            let points: Vec<measure::Figures> = serde_json::from_value(doc["points"].clone())?;
            let lines = plan::plan(
                &plan::Input {
                    pupils,
                    teachers,
                    files_per_user,
                    mean_file_bytes,
                },
                &points,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&lines)?);
            } else {
                for l in &lines {
                    let (v, u) = match l.unit.as_str() {
                        "bytes" => (l.value / 1e9, "GB"),
                        u => (l.value, u),
                    };
                    println!(
                        "{:<28} {:>14.1} {:<8} (from measured {})",
                        l.what, v, u, l.rests_on
                    );
                }
            }
        }
    }
    Ok(())
}
