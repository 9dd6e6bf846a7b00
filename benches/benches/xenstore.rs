//! XenStore request throughput through the dispatch API, in process: a privileged socket
//! connection sends `XS_READ` / `XS_WRITE` frames for 64 leaf nodes under
//! `/local/domain/1/data`, and the reply is taken from the connection's queue each time.
//! An element is one request handled and its reply taken; the target is at least 1 M/s.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hypervisor_model::xenstore::{Frame, MsgType, XenStore, XsConfig};

/// Leaf nodes the requests cycle through.
const KEY_COUNT: usize = 64;
/// Requests per measured batch.
const BATCH: usize = 1024;

fn keys() -> Vec<Vec<u8>> {
    (0..KEY_COUNT)
        .map(|i| format!("/local/domain/1/data/key{i}\0").into_bytes())
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut xs = XenStore::new(XsConfig::default());
    let conn = xs.connect_socket();
    let reads: Vec<Frame> = keys()
        .iter()
        .map(|k| Frame::request(MsgType::Read, 1, 0, k))
        .collect();
    let writes: Vec<Frame> = keys()
        .iter()
        .map(|k| {
            let mut p = k.clone();
            p.extend_from_slice(b"some-value-1234");
            Frame::request(MsgType::Write, 2, 0, &p)
        })
        .collect();
    for w in &writes {
        xs.handle(conn, w);
    }
    while xs.take_output(conn).is_some() {}

    let mut group = c.benchmark_group("xenstore");
    group.throughput(Throughput::Elements(
        u64::try_from(BATCH).unwrap_or(u64::MAX),
    ));
    group.bench_function("read", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                xs.handle(conn, &reads[i % KEY_COUNT]);
                black_box(xs.take_output(conn));
            }
        })
    });
    group.bench_function("write", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                xs.handle(conn, &writes[i % KEY_COUNT]);
                black_box(xs.take_output(conn));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
