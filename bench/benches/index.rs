//! Namespace tree (`SpaceTree`) insert, lookup and list rates, beside a plain HashMap anchor.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use skab_engine::ns::{ChunkRef, Content, Name, NsOp, SpaceTree};
use skab_engine::{ChunkId, ContentHash, NodeId};

const DIRS: usize = 100;
const FILES_PER_DIR: usize = 100;

fn content(i: usize) -> Content {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Content {
        hash: ContentHash(h),
        size: 1000,
        chunks: vec![ChunkRef {
            id: ChunkId(h),
            len: 1000,
        }]
        .into(),
    }
}

fn name(s: String) -> Name {
    Name::new(&s).expect("valid bench name")
}

fn dir_name(d: usize) -> String {
    format!("Klasse 7.{d} - Dansk og matematik")
}

fn file_name(f: usize) -> String {
    format!("opgave-{f:04} aflevering.docx")
}

/// Ops building `DIRS` x `FILES_PER_DIR` files (10,000 entries + dirs).
fn build_ops() -> Vec<NsOp> {
    let mut ops = Vec::new();
    for d in 0..DIRS {
        ops.push(NsOp::Mkdir {
            path: vec![name(dir_name(d))],
            now: 1,
        });
        for f in 0..FILES_PER_DIR {
            ops.push(NsOp::PutFile {
                path: vec![name(dir_name(d)), name(file_name(f))],
                content: content(f),
                now: 2,
                keep_versions: 5,
            });
        }
    }
    ops
}

fn bench(c: &mut Criterion) {
    let ops = build_ops();
    let mut g = c.benchmark_group("ns");
    g.throughput(Throughput::Elements(ops.len() as u64));
    g.bench_function("insert_10k", |b| {
        b.iter_batched(
            SpaceTree::new,
            |mut t| {
                for op in &ops {
                    t.apply(op).expect("apply");
                }
                t
            },
            BatchSize::LargeInput,
        )
    });

    let mut t = SpaceTree::new();
    for op in &ops {
        t.apply(op).expect("apply");
    }
    let paths: Vec<Vec<Name>> = (0..1000)
        .map(|i| {
            vec![
                name(dir_name(i * 7 % DIRS)),
                name(file_name(i * 13 % FILES_PER_DIR)),
            ]
        })
        .collect();
    let anchor: HashMap<String, u32> = (0..DIRS * FILES_PER_DIR)
        .map(|i| {
            (
                format!(
                    "/{}/{}",
                    dir_name(i / FILES_PER_DIR),
                    file_name(i % FILES_PER_DIR)
                ),
                i as u32,
            )
        })
        .collect();
    let anchor_keys: Vec<String> = paths
        .iter()
        .map(|p| format!("/{}/{}", p[0], p[1]))
        .collect();
    g.throughput(Throughput::Elements(paths.len() as u64));
    g.bench_function("lookup_2_deep", |b| {
        b.iter(|| {
            for p in &paths {
                black_box(t.resolve(p));
            }
        })
    });
    g.bench_function("anchor_std_hashmap_full_path", |b| {
        b.iter(|| {
            for k in &anchor_keys {
                black_box(anchor.get(k.as_str()));
            }
        })
    });
    let dir = t.resolve(&paths[0][..1]).expect("dir");
    g.throughput(Throughput::Elements(FILES_PER_DIR as u64));
    g.bench_function("list_100", |b| b.iter(|| black_box(t.list(dir))));
    g.bench_function("children_100", |b| {
        b.iter(|| black_box(t.children(dir).count()))
    });
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("rename_dir_with_100_children", |b| {
        b.iter(|| {
            let from = vec![name(dir_name(0))];
            i += 1;
            let to = vec![name(format!("renamed {i}"))];
            t.apply(&NsOp::Move {
                from: from.clone(),
                to: to.clone(),
                overwrite: false,
                now: 3,
            })
            .expect("move");
            t.apply(&NsOp::Move {
                from: to,
                to: from,
                overwrite: false,
                now: 4,
            })
            .expect("move");
        })
    });
    black_box(t.stat(NodeId::ROOT));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
