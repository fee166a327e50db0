//! How long a Mac that waits for its push waits: the time from the response
//! to its first TokenUpdate (step 10) until the APNs stand-in receives the
//! push that wakes it, i.e. the latency push adds before the device's first
//! `Idle` connect. Not a test: it prints p50/p90/p99/max over N devices.
//!
//! Runs the built example server (`cargo build --all-features --examples`
//! first) with a test push certificate against the local HTTP/2 TLS APNs
//! stand-in of `tests/push_support/standin.rs`, and walks N simulated Macs
//! (default 50) through steps 2–13, one after another:
//!
//! `cargo run --all-features --example push_wakeup -- [N]`

#[path = "../tests/server_support/mod.rs"]
mod server_support;
#[path = "../tests/push_support/standin.rs"]
mod standin;

use std::time::{Duration, Instant};

use server_support::{HttpTransport, Server, device_ca, simulated_device, walk_to_step_10};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: a number of devices"))
        .unwrap_or(50);
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let pki = standin::Pki::new();
    let standin = rt.block_on(standin::StandIn::start(pki.server.clone()));
    let (ca, ca_pem) = device_ca(dir.path());
    let (cert, key, apns_ca) = (
        dir.path().join("push.pem"),
        dir.path().join("push.key"),
        dir.path().join("apns-ca.pem"),
    );
    std::fs::write(&cert, pki.identity.certificate().certificate().to_pem()).expect("cert");
    std::fs::write(&key, pki.identity.key().to_pkcs8_pem().expect("key")).expect("key");
    std::fs::write(&apns_ca, pki.ca.to_pem()).expect("CA");
    let url = standin.url();
    let path = |p: &std::path::Path| p.display().to_string();
    let args = [
        "--http".to_owned(),
        "--user".into(),
        "alice:pw@corp.example".into(),
        "--device-ca".into(),
        path(&ca_pem),
        "--push-cert".into(),
        path(&cert),
        "--push-key".into(),
        path(&key),
        "--apns-ca".into(),
        path(&apns_ca),
        "--apns-url".into(),
        url,
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&dir.path().join("data"), &args);

    // Signed: the push may reach the stand-in before the device has read
    // the TokenUpdate response (the server queues it while answering).
    let mut waits_us: Vec<i64> = Vec::with_capacity(n);
    for i in 0..n {
        let mut t = HttpTransport::new(server.addr);
        let mut device = simulated_device(&ca, &server.data);
        walk_to_step_10(&mut t, &mut device, ("alice", "pw", "corp.example"));
        let answered = Instant::now();
        let hex = mdm_enroll::wire::hex::lower(device.udid.as_bytes());
        let want = format!("/3/device/{hex}");
        let deadline = answered + Duration::from_secs(30);
        let pushed = loop {
            if let Some(s) = standin.seen().into_iter().find(|s| s.path == want) {
                break s.at;
            }
            assert!(Instant::now() < deadline, "device {i}: no push in 30 s");
            std::thread::sleep(Duration::from_micros(200));
        };
        let wait = match pushed.checked_duration_since(answered) {
            Some(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            None => -i64::try_from((answered - pushed).as_micros()).unwrap_or(i64::MAX),
        };
        waits_us.push(wait);
        device.run_commands(&mut t).expect("steps 11-13");
    }
    waits_us.sort_unstable();
    let pct = |p: usize| waits_us[(waits_us.len() * p / 100).min(waits_us.len() - 1)];
    let ms = |us: i64| us as f64 / 1000.0;
    println!(
        "TokenUpdate answered -> push at the APNs stand-in, {n} devices (ms; negative: the push \
         arrived before the device read its response): p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2}, min {:.2}",
        ms(pct(50)),
        ms(pct(90)),
        ms(pct(99)),
        ms(*waits_us.last().expect("n > 0")),
        ms(waits_us[0]),
    );
    println!(
        "added wait before the first Idle (max(0, ·)): p50 {:.2} ms, p99 {:.2} ms",
        ms(pct(50).max(0)),
        ms(pct(99).max(0))
    );
}
