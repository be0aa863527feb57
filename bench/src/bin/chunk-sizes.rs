//! Measures dedup ratio and metadata cost of chunk-size choices on the school corpus.

use std::collections::HashSet;

use clap::Parser;
use skab_bench::corpus::{self, CorpusConfig, FileKind, Rng};
use skab_engine::chunk::{cut_points, ChunkSizes, DomainKey};
use skab_engine::ChunkId;

/// Bytes of one chunk-index entry assumed for the metadata figure: id 32, pack 4, offset 8,
/// length 4, reference count 4.
const INDEX_ENTRY_BYTES: u64 = 52;
/// Bytes of one chunk reference in a file's chunk list: id 32, length 4.
const CHUNK_REF_BYTES: u64 = 36;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Parser)]
#[command(about = "Dedup ratio and metadata per byte for several chunk sizes")]
struct Args {
    /// Corpus seed.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Average chunk sizes to try, KiB (min = avg/4, max = avg*4).
    #[arg(long, value_delimiter = ',', default_values_t = [8usize, 16, 32, 64, 128])]
    avg_kib: Vec<usize>,
}

/// Chunk store counters for one size choice.
#[derive(Default)]
struct Store {
    seen: HashSet<ChunkId>,
    logical: u64,
    unique: u64,
    refs: u64,
}

impl Store {
    fn add(&mut self, sizes: &ChunkSizes, key: &DomainKey, data: &[u8]) {
        let mut start = 0;
        for end in cut_points(sizes, data) {
            let chunk = &data[start..end];
            if self.seen.insert(key.chunk_id(chunk)) {
                self.unique += chunk.len() as u64;
            }
            self.refs += 1;
            start = end;
        }
        self.logical += data.len() as u64;
    }

    fn ratio(&self) -> f64 {
        self.logical as f64 / self.unique.max(1) as f64
    }
}

fn main() {
    let args = Args::parse();
    let key = DomainKey::derive(&[0; 32], "chunk-sizes");
    let cfg = CorpusConfig {
        seed: args.seed,
        ..CorpusConfig::default()
    };
    let mut files = Vec::new();
    corpus::generate(&cfg, |f| files.push(f));
    let total: u64 = files.iter().map(|f| f.data.len() as u64).sum();
    println!(
        "corpus: {} files, {:.1} MiB logical, seed {}",
        files.len(),
        total as f64 / MIB,
        cfg.seed
    );
    println!();
    println!("| min / avg / max (KiB) | dedup all | office versions | flat versions | class copies | chunk refs per MiB | file-list bytes per logical MiB | index bytes per stored byte |");
    println!("|---|---|---|---|---|---|---|---|");
    for avg in &args.avg_kib {
        let avg = avg * 1024;
        let Ok(sizes) = ChunkSizes::new(avg / 4, avg, avg * 4) else {
            eprintln!("skipping invalid avg {avg}");
            continue;
        };
        let mut all = Store::default();
        let mut by_kind: [Store; 3] = Default::default();
        for f in &files {
            all.add(&sizes, &key, &f.data);
            let k = match f.kind {
                FileKind::OfficeVersion => 0,
                FileKind::FlatVersion => 1,
                FileKind::PupilCopy => 2,
                _ => continue,
            };
            by_kind[k].add(&sizes, &key, &f.data);
        }
        let logical_mib = all.logical as f64 / MIB;
        println!(
            "| {} / {} / {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} | {:.5} |",
            sizes.min / 1024,
            sizes.avg / 1024,
            sizes.max / 1024,
            all.ratio(),
            by_kind[0].ratio(),
            by_kind[1].ratio(),
            by_kind[2].ratio(),
            all.refs as f64 / logical_mib,
            (all.refs * CHUNK_REF_BYTES) as f64 / logical_mib,
            (all.seen.len() as u64 * INDEX_ENTRY_BYTES) as f64 / all.unique as f64,
        );
    }

    println!();
    println!("Claims, at each size:");
    println!();
    println!("| avg KiB | 30 copies of one 5 MB file: stored / one copy | 100 versions of a 2 MB flat document: logical / stored | stored / (first version + edited bytes) | new stored KiB per version |");
    println!("|---|---|---|---|---|");
    for avg in &args.avg_kib {
        let avg = avg * 1024;
        let Ok(sizes) = ChunkSizes::new(avg / 4, avg, avg * 4) else {
            continue;
        };
        let mut rng = Rng::new(args.seed ^ 30);
        let file = rng.bytes(5_000_000);
        let mut copies = Store::default();
        for _ in 0..30 {
            copies.add(&sizes, &key, &file);
        }
        let mut versions = Store::default();
        let mut doc = rng.text(2_000_000);
        let first = doc.len() as u64;
        let mut edited = 0u64;
        versions.add(&sizes, &key, &doc);
        let after_first = versions.unique;
        for _ in 1..100 {
            edited += corpus::edit_flat(&mut rng, &mut doc) as u64;
            versions.add(&sizes, &key, &doc);
        }
        println!(
            "| {} | {:.3} | {:.1} | {:.2} | {:.1} |",
            avg / 1024,
            copies.unique as f64 / file.len() as f64,
            versions.ratio(),
            versions.unique as f64 / (first + edited) as f64,
            (versions.unique - after_first) as f64 / 99.0 / 1024.0,
        );
    }
}
