//! `xensim serve` over a real unix socket: the server (bind, poll loop, session, core)
//! runs in process on its own thread, as the `xensim serve` binary would in its own
//! process; clients are plain `UnixStream`s on the bench thread.
//! - `one_client_read`: one client, one `XS_READ` at a time (send, wait for the reply);
//!   an element is one round trip. Target: at least 50 k requests/s.
//! - `hundred_clients_read`: 100 connected clients each send one `XS_READ`, then every
//!   reply is read; an element is one request. Every client is served in every round.
//! - `echo_baseline`: the same request and a 16-byte reply over a `UnixStream` pair with a
//!   bare echo thread: the round-trip floor of two threads on this machine (its thread
//!   wake-ups), next to which `one_client_read` is read as a ratio.

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xensim::record::Recorder;
use xensim::serve::{ServeSession, Server, SessionOptions};

/// Concurrent clients in the second bench.
const CLIENT_COUNT: usize = 100;

fn read_request(req_id: u32) -> Vec<u8> {
    let payload = b"/tool/xenstored\0";
    let mut bytes = Vec::new();
    for word in [2u32, req_id, 0, u32::try_from(payload.len()).unwrap_or(0)] {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    bytes.extend_from_slice(payload);
    bytes
}

/// Reads one reply frame (an empty `XS_READ` value: the header alone).
fn read_reply(stream: &mut UnixStream) {
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).expect("reply");
    assert_eq!(header[12..16], [0, 0, 0, 0], "an empty value");
}

fn clients(c: &mut Criterion, socket: &Path) {
    let mut group = c.benchmark_group("serve");
    let request = read_request(7);
    let mut one = UnixStream::connect(socket).expect("connect");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_client_read", |b| {
        b.iter(|| {
            one.write_all(&request).expect("send");
            read_reply(black_box(&mut one));
        })
    });
    let mut many: Vec<UnixStream> = (0..CLIENT_COUNT)
        .map(|_| UnixStream::connect(socket).expect("connect"))
        .collect();
    group.throughput(Throughput::Elements(
        u64::try_from(CLIENT_COUNT).unwrap_or(0),
    ));
    group.bench_function("hundred_clients_read", |b| {
        b.iter(|| {
            for stream in &mut many {
                stream.write_all(&request).expect("send");
            }
            for stream in &mut many {
                read_reply(stream);
            }
        })
    });
    group.finish();
}

/// Boots the quickstart scenario and serves `server` until `stop` is set.
fn serve(mut server: Server, stop: &AtomicBool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scenario = xensim::app::load(&root.join("scenarios/quickstart.toml"), None, false)
        .expect("quickstart loads");
    let opts = SessionOptions {
        host: 0,
        at_ns: 0,
        run: false,
    };
    let mut session = ServeSession::start(&scenario, opts, Recorder::new()).expect("session");
    let _stats = server
        .run(&mut session, stop, &mut || None)
        .expect("serve loop");
}

/// The bare floor: one thread answers each request's 16-byte header with a 16-byte reply.
fn echo_baseline(c: &mut Criterion) {
    let (mut client, mut server) = UnixStream::pair().expect("socket pair");
    let request = read_request(7);
    let len = request.len();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut buf = vec![0u8; len];
            while server.read_exact(&mut buf).is_ok() {
                if server.write_all(&[0u8; 16]).is_err() {
                    break;
                }
            }
        });
        let mut group = c.benchmark_group("serve");
        group.throughput(Throughput::Elements(1));
        group.bench_function("echo_baseline", |b| {
            b.iter(|| {
                client.write_all(&request).expect("send");
                read_reply(black_box(&mut client));
            })
        });
        group.finish();
        drop(client);
    });
}

fn bench(c: &mut Criterion) {
    echo_baseline(c);
    let dir = std::env::temp_dir().join(format!("xensim-bench-serve-{}", std::process::id()));
    let socket = dir.join("xs.sock");
    let server = Server::bind(&socket).expect("bind");
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // The server is one thread, as in `xensim serve` (its own process there); clients
        // connect at once and wait in the listen backlog until it serves.
        let serving = scope.spawn(|| serve(server, &stop));
        clients(c, &socket);
        stop.store(true, Ordering::Relaxed);
        let _ = serving.join();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
