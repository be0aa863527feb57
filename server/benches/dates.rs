//! The hand-written hot-path formatters beside the crates they replace on the PROPFIND path:
//! IMF-fixdate (`skab_server::http::date`) vs `httpdate`, and the per-thread content-type
//! memo vs `mime_guess` (docs/benchmarks.md, "PROPFIND formatting").

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Dates spread over 30 years, one per listed file.
fn times() -> Vec<SystemTime> {
    (0..1000u64)
        .map(|i| UNIX_EPOCH + Duration::from_secs(1_000_000_000 + i * 946_717))
        .collect()
}

fn dates(c: &mut Criterion) {
    let ts = times();
    let mut g = c.benchmark_group("imf_fixdate_x1000");
    g.throughput(Throughput::Elements(ts.len() as u64));
    g.bench_function("httpdate_fmt_http_date", |b| {
        let mut buf = String::with_capacity(32 * ts.len());
        b.iter(|| {
            buf.clear();
            for t in &ts {
                buf.push_str(&httpdate::fmt_http_date(black_box(*t)));
            }
            black_box(buf.len())
        })
    });
    g.bench_function("skab_push_imf_fixdate", |b| {
        let mut buf = String::with_capacity(32 * ts.len());
        b.iter(|| {
            buf.clear();
            for t in &ts {
                skab_server::http::date::push_imf_fixdate(&mut buf, black_box(*t));
            }
            black_box(buf.len())
        })
    });
    g.finish();
}

fn content_types(c: &mut Criterion) {
    let exts = ["docx", "pdf", "txt", "odt", "png", "jpg"];
    let names: Vec<String> = (0..1000)
        .map(|i| format!("aflevering-{i}.{}", exts[i % exts.len()]))
        .collect();
    let mut g = c.benchmark_group("content_type_x1000");
    g.throughput(Throughput::Elements(names.len() as u64));
    g.bench_function("mime_guess_from_path", |b| {
        b.iter(|| {
            names
                .iter()
                .map(|n| {
                    mime_guess::from_path(black_box(n))
                        .first_raw()
                        .unwrap_or("application/octet-stream")
                        .len()
                })
                .sum::<usize>()
        })
    });
    g.bench_function("skab_content_type", |b| {
        b.iter(|| {
            names
                .iter()
                .map(|n| skab_server::methods::common::content_type(black_box(n)).len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, dates, content_types);
criterion_main!(benches);
