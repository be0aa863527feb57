//! Builds a large namespace (default 10 M entries) and reports RAM per entry, lookup rate
//! and snapshot encode/decode time. Usage: `index-memory [--spaces N] [--dirs D] [--files F]`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use skab_engine::ns::{
    decode_snapshot_with, encode_snapshot, ChunkRef, Content, Name, NsOp, SpaceTree,
};
use skab_engine::{ChunkId, ContentHash, NodeId};

#[derive(Parser)]
struct Args {
    /// Spaces (user homes) to build.
    #[arg(long, default_value_t = 100_000)]
    spaces: usize,
    /// Directories per space.
    #[arg(long, default_value_t = 4)]
    dirs: usize,
    /// Files per space, spread over the directories.
    #[arg(long, default_value_t = 96)]
    files: usize,
    /// Content templates shared by all files.
    #[arg(long, default_value_t = 2000)]
    templates: usize,
    /// Lookups to time.
    #[arg(long, default_value_t = 2_000_000)]
    lookups: usize,
}

const SUBJECTS: [&str; 8] = [
    "Dansk",
    "Matematik",
    "Engelsk",
    "Historie",
    "Biologi",
    "Fysik-kemi",
    "Tysk",
    "Billedkunst",
];
const WORDS: [&str; 8] = [
    "opgave",
    "aflevering",
    "noter",
    "rapport",
    "billede",
    "præsentation",
    "stil",
    "projekt",
];
const EXTS: [&str; 6] = [".docx", ".pdf", ".jpg", ".pptx", ".txt", ".xlsx"];

fn rss_bytes() -> Result<u64> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    let line = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?;
    Ok(kb * 1024)
}

fn template(i: usize, rng: &mut StdRng) -> Content {
    let mut h = [0u8; 32];
    rng.fill(&mut h[..]);
    let n = rng.gen_range(1..=4);
    let chunks: Vec<ChunkRef> = (0..n)
        .map(|_| {
            let mut id = [0u8; 32];
            rng.fill(&mut id[..]);
            ChunkRef {
                id: ChunkId(id),
                len: rng.gen_range(1000..200_000),
            }
        })
        .collect();
    let size = chunks.iter().map(|c| u64::from(c.len)).sum();
    h[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Content {
        hash: ContentHash(h),
        size,
        chunks: chunks.into(),
    }
}

fn dir_name(d: usize) -> String {
    format!(
        "{} {}",
        SUBJECTS[d % SUBJECTS.len()],
        2020 + d / SUBJECTS.len()
    )
}

fn file_name(f: usize, rng: &mut StdRng) -> String {
    let w = WORDS[rng.gen_range(0..WORDS.len())];
    let s = SUBJECTS[rng.gen_range(0..SUBJECTS.len())];
    let e = EXTS[rng.gen_range(0..EXTS.len())];
    if rng.gen_bool(0.5) {
        format!("{w} {f} {s}{e}")
    } else {
        format!("{w}_{f}{e}")
    }
}

fn main() -> Result<()> {
    let a = Args::parse();
    if a.dirs == 0 {
        bail!("--dirs must be at least 1");
    }
    let mut rng = StdRng::seed_from_u64(7);
    let pool: Vec<Arc<Content>> = (0..a.templates)
        .map(|i| Arc::new(template(i, &mut rng)))
        .collect();
    let by_hash: HashMap<ContentHash, Arc<Content>> =
        pool.iter().map(|c| (c.hash, c.clone())).collect();
    let mut intern = |c: &Content| {
        by_hash
            .get(&c.hash)
            .cloned()
            .unwrap_or_else(|| Arc::new(c.clone()))
    };

    let entries_per_space = a.dirs + a.files;
    let total = (a.spaces * entries_per_space) as u64;
    let rss0 = rss_bytes()?;
    let t0 = Instant::now();
    let mut spaces: Vec<SpaceTree> = Vec::new();
    for _ in 0..a.spaces {
        let mut t = SpaceTree::new();
        let dirs: Vec<Name> = (0..a.dirs)
            .map(|d| Name::new(&dir_name(d)))
            .collect::<Result<_, _>>()?;
        for d in &dirs {
            t.apply_with(
                &NsOp::Mkdir {
                    path: vec![d.clone()],
                    now: 1,
                },
                &mut intern,
            )?;
        }
        for f in 0..a.files {
            let path = vec![
                dirs[f % a.dirs].clone(),
                Name::new(&file_name(f, &mut rng))?,
            ];
            let content = (*pool[rng.gen_range(0..pool.len())]).clone();
            let op = NsOp::PutFile {
                path,
                content,
                now: 2 + f as i64,
                keep_versions: 10,
            };
            t.apply_with(&op, &mut intern)?;
        }
        spaces.push(t);
    }
    let build_s = t0.elapsed().as_secs_f64();
    let rss1 = rss_bytes()?;
    let count: u64 = spaces.iter().map(|t| t.entry_count()).sum();
    if count != total {
        bail!("built {count} entries, expected {total}");
    }
    let per = (rss1 - rss0) as f64 / total as f64;
    println!("entries: {total} in {} spaces", a.spaces);
    println!(
        "build: {build_s:.2} s ({:.2} M entries/s)",
        total as f64 / build_s / 1e6
    );
    println!(
        "rss delta: {:.1} MiB = {per:.1} bytes/entry",
        (rss1 - rss0) as f64 / 1048576.0
    );

    // Lookups: random (space, path) pairs over all spaces, one thread. The
    // query paths are built in order so that, like a parsed request path, they are cache-hot.
    let queries: Vec<(usize, Vec<Name>)> = (0..a.lookups)
        .map(|_| {
            let s = rng.gen_range(0..a.spaces);
            let t = &spaces[s];
            let dirs: Vec<NodeId> = t.children(NodeId::ROOT).collect();
            let d = dirs[rng.gen_range(0..dirs.len())];
            let files: Vec<NodeId> = t.children(d).collect();
            let f = files
                .get(rng.gen_range(0..files.len().max(1)))
                .copied()
                .unwrap_or(d);
            (s, t.path_of(f).unwrap_or_default())
        })
        .collect();
    let t1 = Instant::now();
    let mut found = 0usize;
    for (s, path) in &queries {
        found += usize::from(spaces[*s].resolve(path).is_some());
    }
    let ls = t1.elapsed().as_secs_f64();
    if found != queries.len() {
        bail!("only {found} of {} lookups found", queries.len());
    }
    let nq = queries.len();
    drop(queries);
    println!(
        "lookups: {:.2} M/s on one core (2-component paths)",
        nq as f64 / ls / 1e6
    );

    let t2 = Instant::now();
    let snaps: Vec<(String, skab_engine::ns::SpaceSnapshot)> = spaces
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("school/user{i}"), t.to_snapshot()))
        .collect();
    let snap_s = t2.elapsed().as_secs_f64();
    let t3 = Instant::now();
    let bytes = encode_snapshot(&snaps)?;
    let enc_s = t3.elapsed().as_secs_f64();
    drop(snaps);
    println!(
        "snapshot: to_snapshot {snap_s:.2} s, encode {enc_s:.2} s, {:.1} MiB ({:.1} bytes/entry)",
        bytes.len() as f64 / 1048576.0,
        bytes.len() as f64 / total as f64
    );
    let t4 = Instant::now();
    let back = decode_snapshot_with(&bytes, &mut intern)?;
    let dec_s = t4.elapsed().as_secs_f64();
    let back_count: u64 = back.iter().map(|(_, t)| t.entry_count()).sum();
    if back_count != total || back.len() != a.spaces {
        bail!("decoded {back_count} entries in {} spaces", back.len());
    }
    println!(
        "snapshot: validate + decode + rebuild {dec_s:.2} s ({:.2} M entries/s)",
        total as f64 / dec_s / 1e6
    );
    Ok(())
}
