//! Pushes per second through `push::apns::ApnsClient` against the local
//! HTTP/2 TLS stand-in of `tests/push_support/standin.rs` (127.0.0.1, client
//! certificate required, every push answered 200), and the sans-IO pieces.
//!
//! `cargo bench --features apns --bench push`
//!
//! - `apns/sequential`: one push at a time (round trip on an open connection).
//! - `apns/concurrent/N`: N pushes in flight on the one connection.
//! - `sans_io/*`: building a request, reading a 410 answer.

#[path = "../tests/push_support/standin.rs"]
mod standin;

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mdm_enroll::push::apns::{ApnsClient, ApnsConfig};
use mdm_enroll::push::{Backoff, PushOptions, PushOutcome, PushRequest};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pki = standin::Pki::new();
    let standin = rt.block_on(standin::StandIn::start(pki.server.clone()));
    let mut config = ApnsConfig::default();
    config.base_url = standin.url();
    config.public_roots = false;
    config.extra_roots = vec![pki.ca.clone()];
    config.max_concurrent = 1000;
    let client = ApnsClient::new(pki.identity.clone(), config).unwrap();
    let token = [0x5a; 32];
    assert!(
        rt.block_on(client.push(&token, "warm-up"))
            .unwrap()
            .is_delivered()
    );

    let mut g = c.benchmark_group("apns");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("sequential", |b| {
        b.iter(|| {
            let o = rt.block_on(client.push(&token, "magic")).unwrap();
            assert!(o.is_delivered());
        })
    });
    for n in [100usize, 1000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("concurrent/{n}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..n {
                        let client = client.clone();
                        set.spawn(async move { client.push(&token, "magic").await });
                    }
                    while let Some(r) = set.join_next().await {
                        assert!(r.unwrap().unwrap().is_delivered());
                    }
                })
            })
        });
    }
    g.finish();
    assert_eq!(
        standin.connections(),
        1,
        "every push used the one connection"
    );

    let mut g = c.benchmark_group("sans_io");
    let opts = PushOptions::default();
    g.bench_function("request", |b| {
        b.iter(|| {
            black_box(PushRequest::with_options(
                black_box(&token),
                "com.apple.mgmt.External.x",
                "8B1A5C7E-0000-4000-8000-000000000000",
                &opts,
                SystemTime::now(),
            ))
        })
    });
    let body = br#"{"reason":"Unregistered","timestamp":1754000000123}"#;
    g.bench_function("outcome_410", |b| {
        b.iter(|| {
            black_box(PushOutcome::from_response(
                410,
                &[],
                black_box(body),
                1,
                &Backoff::default(),
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
