//! Chunking and chunk+hash ingest throughput, each beside its anchor (`fastcdc` v2020, BLAKE3).

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use skab_bench::cputime::ThreadCpuTime;
use skab_engine::chunk::{
    cut_points, ChunkIds, ChunkSizes, ContentHasher, DomainKey, Ingest, StreamChunker,
};

/// Size of the benchmark buffer, bytes.
const BUF_LEN: usize = 64 << 20;
/// Size of one `push` in the streaming benches, bytes (a large network read).
const PUSH_LEN: usize = 1 << 20;

fn buffer() -> Bytes {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut v = Vec::with_capacity(BUF_LEN);
    while v.len() < BUF_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(v)
}

fn pieces(data: &Bytes) -> Vec<Bytes> {
    (0..data.len())
        .step_by(PUSH_LEN)
        .map(|i| data.slice(i..(i + PUSH_LEN).min(data.len())))
        .collect()
}

fn label(s: &ChunkSizes) -> String {
    format!("{}K-{}K-{}K", s.min >> 10, s.avg >> 10, s.max >> 10)
}

fn fastcdc_iter<'a>(s: &ChunkSizes, data: &'a [u8]) -> fastcdc::v2020::FastCDC<'a> {
    fastcdc::v2020::FastCDC::new(data, s.min as u32, s.avg as u32, s.max as u32)
}

fn chunking(c: &mut Criterion<ThreadCpuTime>) {
    let data = buffer();
    let parts = pieces(&data);
    for s in [
        ChunkSizes::new(16 << 10, 64 << 10, 256 << 10).unwrap(),
        ChunkSizes::new(4 << 10, 16 << 10, 64 << 10).unwrap(),
    ] {
        // Same input, same boundaries: the comparison is like for like.
        let ours = cut_points(&s, &data);
        let theirs: Vec<usize> = fastcdc_iter(&s, &data)
            .map(|c| c.offset + c.length)
            .collect();
        assert_eq!(ours, theirs);

        let mut g = c.benchmark_group("chunking");
        g.sample_size(10);
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(BenchmarkId::new("fastcdc_v2020", label(&s)), |b| {
            b.iter(|| fastcdc_iter(&s, &data).count())
        });
        g.bench_function(BenchmarkId::new("skab_cut_points", label(&s)), |b| {
            b.iter(|| cut_points(&s, &data).len())
        });
        g.bench_function(
            BenchmarkId::new("skab_stream_1MiB_pushes", label(&s)),
            |b| {
                let mut out = Vec::with_capacity(data.len() / s.min);
                b.iter(|| {
                    out.clear();
                    let mut ch = StreamChunker::new(s);
                    for p in &parts {
                        ch.push(p.clone(), &mut out);
                    }
                    out.extend(ch.finish());
                    out.len()
                })
            },
        );
        g.finish();
    }
}

fn ingest(c: &mut Criterion<ThreadCpuTime>) {
    let data = buffer();
    let parts = pieces(&data);
    let s = ChunkSizes::new(16 << 10, 64 << 10, 256 << 10).unwrap();
    let key = DomainKey::derive(&[3; 32], "bench");
    let raw_key = blake3::derive_key("bench", b"bench");

    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function(
        BenchmarkId::new("blake3_whole_buffer_limit", label(&s)),
        |b| b.iter(|| blake3::hash(&data)),
    );
    g.bench_function(
        BenchmarkId::new("naive_fastcdc_keyed_blake3", label(&s)),
        |b| {
            b.iter(|| {
                fastcdc_iter(&s, &data)
                    .map(|c| blake3::keyed_hash(&raw_key, &data[c.offset..c.offset + c.length]))
                    .fold(0u8, |a, h| a ^ h.as_bytes()[0])
            })
        },
    );
    g.bench_function(
        BenchmarkId::new("naive_fastcdc_keyed_blake3_plus_content", label(&s)),
        |b| {
            b.iter(|| {
                let mut content = ContentHasher::new();
                let x = fastcdc_iter(&s, &data)
                    .map(|c| {
                        let chunk = &data[c.offset..c.offset + c.length];
                        content.update(chunk);
                        blake3::keyed_hash(&raw_key, chunk)
                    })
                    .fold(0u8, |a, h| a ^ h.as_bytes()[0]);
                (x, content.finalize())
            })
        },
    );
    g.bench_function(BenchmarkId::new("skab_chunk_ids", label(&s)), |b| {
        let mut out = Vec::with_capacity(data.len() / s.min);
        b.iter(|| {
            out.clear();
            let mut ing = ChunkIds::new(s, key.clone());
            for p in &parts {
                ing.push(p.clone(), &mut out);
            }
            black_box(ing.finish(&mut out))
        })
    });
    g.bench_function(
        BenchmarkId::new("skab_ingest_ids_and_content", label(&s)),
        |b| {
            let mut out = Vec::with_capacity(data.len() / s.min);
            b.iter(|| {
                out.clear();
                let mut ing = Ingest::new(s, key.clone());
                for p in &parts {
                    ing.push(p.clone(), &mut out);
                }
                black_box(ing.finish(&mut out))
            })
        },
    );
    g.finish();
}

criterion_group! {
    name = benches;
    // CPU time of the benchmark thread: the shared build machine is oversubscribed.
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = chunking, ingest
}
criterion_main!(benches);
