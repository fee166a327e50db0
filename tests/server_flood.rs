//! A flood of unauthenticated SCEP requests cannot starve check-ins: 200
//! concurrent workers post garbage and well-formed but wrongly-encrypted
//! PKIOperations (the server spends an RSA decryption on each of those)
//! while simulated devices check in. The check-ins' latency stays under 10x
//! its idle value measured first in the same test (a robustness property
//! with a generous bound, not a speed benchmark), `/healthz` answers, every
//! flood request gets an answer, and the devices complete with a
//! consistent store.
#![cfg(all(feature = "sqlite", feature = "test-support"))]

mod server_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use mdm_enroll::cms::enveloped::{ContentCipher, EnvelopedData, RecipientIdentity};
use mdm_enroll::cms::{self, Certificate, SignedDataBuilder};
use mdm_enroll::crypto::{DigestAlgorithm, RsaKey, Signer};
use mdm_enroll::pki;
use mdm_enroll::scep::oid;
use mdm_enroll::testing::{SimulatedDevice, TestDeviceCa};
use rand_core::Rng;
use server_support::http::try_http;
use server_support::{HttpTransport, Server, admin_page, admin_section, device_ca, rng};

const USER: (&str, &str, &str) = ("alice", "s3cret pw", "corp.example");
const WORKERS: usize = 200;

fn new_device(ca: &TestDeviceCa, server: &Server) -> SimulatedDevice {
    server_support::simulated_device(ca, &server.data)
}

fn through_scep(device: &mut SimulatedDevice, t: &mut HttpTransport) {
    server_support::through_scep(device, t, USER);
}

/// Steps 9–10, timed.
fn timed_check_ins(device: &mut SimulatedDevice, t: &mut HttpTransport) -> Duration {
    let start = Instant::now();
    device.check_in(t, "Authenticate").expect("step 9");
    device.check_in(t, "TokenUpdate").expect("step 10");
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn printable(s: &str) -> Vec<u8> {
    let mut v = vec![0x13, s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

/// A PKIOperation that parses and verifies, names the server's RA as its
/// recipient, but whose content key is encrypted to another key: the server
/// spends an RSA decryption and fails.
fn wrongly_encrypted(ra: &Certificate) -> Vec<u8> {
    let other = RsaKey::generate(&mut rng(), 2048).expect("key");
    let mut content = vec![0u8; 300];
    rng().fill_bytes(&mut content);
    let envelope = EnvelopedData::encrypt(
        &content,
        &RecipientIdentity::of(ra),
        Signer::public_key(&other),
        ContentCipher::Aes128Cbc,
        &mut rng(),
    )
    .expect("envelope");
    let now = SystemTime::now();
    let signer_cert = pki::create_ca(
        &other,
        "CN=flood".parse().expect("name"),
        pki::random_serial(&mut rng()),
        pki::validity(now, Duration::from_secs(3600)).expect("validity"),
    )
    .expect("self-signed");
    let signer_cert =
        Certificate::from_der(&pki::to_der(&signer_cert).expect("der")).expect("cert");
    SignedDataBuilder::new(cms::oid::ID_DATA, &envelope, &other, &signer_cert)
        .digest(DigestAlgorithm::Sha256)
        .signed_attribute(oid::MESSAGE_TYPE, printable("19"))
        .signed_attribute(oid::TRANSACTION_ID, printable("FLOOD"))
        .signed_attribute(oid::SENDER_NONCE, {
            let mut n = vec![0x04, 16];
            n.extend_from_slice(&[9u8; 16]);
            n
        })
        .build()
        .expect("signed")
}

/// The flood's bodies: one in five wrongly encrypted, the rest garbage
/// (random bytes, and truncations of the well-formed message).
fn flood_bodies(ra: &Certificate) -> Vec<Vec<u8>> {
    let good = wrongly_encrypted(ra);
    (0..WORKERS)
        .map(|i| match i % 5 {
            0 => good.clone(),
            1 => good[..good.len() / 2].to_vec(),
            _ => {
                let mut b = vec![0u8; 64 + (i * 97) % 4000];
                rng().fill_bytes(&mut b);
                b
            }
        })
        .collect()
}

#[test]
fn a_scep_flood_does_not_starve_check_ins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_pem) = device_ca(dir.path());
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--http",
            "--user",
            "alice:s3cret pw@corp.example",
            "--admin",
            "root:adminpw",
            "--device-ca",
            ca_pem.to_str().expect("utf-8"),
        ],
    );
    let mut t = HttpTransport::new(server.addr);

    // Idle: three devices' check-ins, nothing else running.
    let mut idle = Vec::new();
    let mut devices = Vec::new();
    for _ in 0..3 {
        let mut d = new_device(&ca, &server);
        through_scep(&mut d, &mut t);
        idle.push(timed_check_ins(&mut d, &mut t));
        devices.push(d);
    }
    // Three more, enrolled up to their check-ins before the flood.
    let mut flooded_devices = Vec::new();
    for _ in 0..3 {
        let mut d = new_device(&ca, &server);
        through_scep(&mut d, &mut t);
        flooded_devices.push(d);
    }

    let ra = Certificate::from_pem(&std::fs::read(server.data.join("ra.pem")).expect("ra.pem"))
        .expect("PEM")
        .remove(0);
    let bodies = flood_bodies(&ra);
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(std::sync::Barrier::new(WORKERS + 1));
    let workers: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (stop, sent, started) = (stop.clone(), sent.clone(), started.clone());
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                started.wait();
                // At least one request each, and on until the devices are done.
                loop {
                    let r = try_http(
                        addr,
                        "POST",
                        "/scep?operation=PKIOperation",
                        &[("Content-Type", "application/x-pki-message")],
                        &body,
                    );
                    sent.fetch_add(1, Ordering::Relaxed);
                    statuses.push(r.map(|r| r.status).map_err(|e| e.to_string()));
                    if stop.load(Ordering::Relaxed) {
                        break statuses;
                    }
                }
            })
        })
        .collect();
    started.wait();
    std::thread::sleep(Duration::from_millis(100));

    // Under the flood: the other three devices' check-ins, and /healthz.
    let mut flooded = Vec::new();
    for d in &mut flooded_devices {
        flooded.push(timed_check_ins(d, &mut t));
        let health = try_http(addr, "GET", "/healthz", &[], b"").expect("healthz");
        assert_eq!(health.status, 200);
    }
    let sent_during = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut counts = std::collections::BTreeMap::new();
    for w in workers {
        for status in w.join().expect("worker") {
            let status = status.unwrap_or_else(|e| panic!("a flood request got no answer: {e}"));
            *counts.entry(status).or_insert(0usize) += 1;
        }
    }
    let (idle, flooded) = (median(idle), median(flooded));
    println!(
        "check-ins (Authenticate + TokenUpdate), median of 3: idle {idle:?}, under the flood \
         {flooded:?} ({:.1}x); flood requests answered while they ran: {sent_during}; \
         statuses: {counts:?}",
        flooded.as_secs_f64() / idle.as_secs_f64()
    );
    assert!(
        flooded < idle * 10,
        "check-ins under the flood took {flooded:?}, idle {idle:?}"
    );
    // Every flood request was answered: a FAILURE CertRep (200), a refusal
    // (400) or "busy" (503), never a server error.
    assert!(
        counts.keys().all(|s| [200, 400, 503].contains(s)),
        "{counts:?}"
    );

    // Nothing lost: every device completes, the store is consistent, and
    // SCEP still works (the permits came back).
    for d in devices.iter_mut().chain(flooded_devices.iter_mut()) {
        d.run_commands(&mut t).expect("steps 11-13");
    }
    let page = admin_page(&server);
    for d in devices.iter().chain(&flooded_devices) {
        let section = admin_section(&page, &d.udid);
        assert!(section.contains("data-complete=\"true\""), "{section}");
        assert_eq!(section.matches("<tr class=\"done\">").count(), 13);
    }
    let mut late = new_device(&ca, &server);
    through_scep(&mut late, &mut t);
}

#[test]
fn slow_scep_uploads_hold_no_rsa_permit() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_pem) = device_ca(dir.path());
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--http",
            "--user",
            "alice:s3cret pw@corp.example",
            "--device-ca",
            ca_pem.to_str().expect("utf-8"),
        ],
    );
    // More half-sent SCEP bodies than any machine has cores (permits are
    // cores−1), held open for the whole enrollment below.
    let slow: Vec<std::net::TcpStream> = (0..40)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(server.addr).expect("connect");
            s.write_all(
                b"POST /scep?operation=PKIOperation HTTP/1.1\r\nHost: x\r\n\
                  Content-Type: application/x-pki-message\r\nContent-Length: 10000\r\n\r\nabc",
            )
            .expect("write");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut t = HttpTransport::new(server.addr);
    let mut device = new_device(&ca, &server);
    let start = Instant::now();
    // SCEP (step 8 would be a 503 after the permit wait if the uploads held
    // the permits) and the check-ins go through.
    through_scep(&mut device, &mut t);
    timed_check_ins(&mut device, &mut t);
    println!("enrollment beside 40 slow uploads: {:?}", start.elapsed());
    drop(slow);
}
