//! One full activation (all 13 steps, in-memory store) beside the RSA
//! private-key operations it needs: at the evidence level (no crypto) and
//! over HTTP with real crypto (a `SimulatedDevice` against a
//! `TestDeployment`, every key RSA-2048). Run with
//! `cargo bench --features test-support --bench activation`.
//!
//! RSA private operations in one HTTP activation (server + device, 17):
//! server 5 = profile signatures at steps 4 and 6, SCEP key unwrap (7),
//! certificate and CertRep signatures (8); device 12 = attribute signature
//! (5), CSR, temporary certificate and PKCSReq signatures and the CertRep
//! key unwrap (7–8), two signed check-ins (9–10), four signed reports
//! (Idle + three acknowledgements, 11–13). `rsa2048_private_ops_of_one_activation`
//! runs exactly 15 signatures and 2 unwraps.
//!
//! `server_13_steps_real_crypto` is the same HTTP activation timing only the
//! server: `iter_custom` adds up the time spent inside
//! `EnrollmentService::handle` (profile signatures, attribute verification,
//! SCEP unwrap and verification, issuing, CertRep, every Mdm-Signature
//! verification, the store), never the device's own crypto between calls.
//! Beside it, `rsa2048_server_private_ops_of_one_activation`: the server's 5
//! private operations (4 signatures, 1 unwrap) on the same backend, and
//! `rsa2048_server_rsa_ops_of_one_activation`: those plus the 10 signature
//! verifications and the one encryption the server must also do, the floor
//! of any implementation of the flow. `server_13_steps_paired_with_private_ops`
//! times the 5 private operations right after each activation and prints
//! `RATIO (paired)`, the ratio to read on a host whose speed drifts.

use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
#[path = "support/mod.rs"]
mod support;
use mdm_enroll::activation::{LoginAttempt, Policy, Secret, TenantId, UserAccount};
use std::sync::Arc;

use mdm_enroll::crypto::{DigestAlgorithm, KeyUnwrapper, RsaKey, Signer};
use mdm_enroll::http::Request;
use mdm_enroll::service::{Engine, EngineConfig};
use mdm_enroll::store::MemoryStore;
use mdm_enroll::testing::{EvidenceDevice, RecordingPush, StaticDirectory};
use mdm_enroll::testing::{SimulatedDevice, TestDeployment};
use rand_core::UnwrapErr;

fn bench(c: &mut Criterion) {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let tenant = TenantId::new("bench").unwrap();
    let dir = StaticDirectory::new();
    dir.set_password(&tenant, "alice", "pw");
    let engine = Engine::new(
        MemoryStore::new(),
        dir,
        RecordingPush::new(),
        EngineConfig::default(),
    );
    engine
        .provision_user(&UserAccount {
            tenant: tenant.clone(),
            username: "alice".into(),
            domain: "corp".into(),
            policy: Policy::default(),
        })
        .unwrap();
    let login = LoginAttempt {
        username: "alice".into(),
        password: Secret::new("pw"),
        domain: "corp".into(),
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let name = support::group("activation");
    let mut group = c.benchmark_group(&name);
    group.bench_function("core_13_steps_memory_store", |b| {
        b.iter(|| {
            let mut dev = EvidenceDevice::random(&mut rng);
            dev.activate(&engine, &tenant, &login, now, &mut rng)
                .unwrap()
        })
    });
    // Baseline: one RSA-2048 PKCS#1 v1.5 signature. A real activation needs
    // several (profile signatures at steps 4 and 6, the certificate and the
    // CertRep at step 8, signed InstallProfile payloads at step 12) plus one
    // RSA decryption (the SCEP EnvelopedData at step 7).
    let key = RsaKey::generate(&mut rng, 2048).unwrap();
    group.bench_function("rsa2048_sign_sha256", |b| {
        b.iter(|| key.sign(DigestAlgorithm::Sha256, b"message").unwrap())
    });
    let ops = |b: &mut criterion::Bencher<'_>| {
        let garbage = vec![1u8; 256];
        b.iter(|| {
            for _ in 0..15 {
                key.sign(DigestAlgorithm::Sha256, b"message").unwrap();
            }
            for _ in 0..2 {
                key.unwrap_key(&garbage, 16).unwrap();
            }
        })
    };
    group.bench_function("rsa2048_private_ops_of_one_activation", ops);

    // The same activation over HTTP with real crypto.
    let gen2048 = |rng: &mut UnwrapErr<getrandom::SysRng>| RsaKey::generate(rng, 2048).unwrap();
    let d = TestDeployment::new(gen2048(&mut rng), gen2048(&mut rng), now, &mut rng).unwrap();
    let attributes = d
        .device_ca
        .issue(Arc::new(gen2048(&mut rng)), now, &mut rng)
        .unwrap();
    let scep_key = Arc::new(gen2048(&mut rng));
    let enroll = d.enroll_path();
    group.bench_function("http_13_steps_real_crypto", |b| {
        b.iter(|| {
            let mut dev = SimulatedDevice::new(
                attributes.clone(),
                scep_key.clone(),
                d.server_certificate.clone(),
                &mut rng,
            );
            let mut events = Vec::new();
            let mut r = UnwrapErr(getrandom::SysRng);
            let mut t = d.transport(now, &mut r, &mut events);
            dev.activate(&mut t, &enroll, ("alice", "pw", "corp"), now, &mut rng)
                .unwrap()
        })
    });

    // The server's share of the same activation, and its private operations.
    // One activation; returns the time spent inside the server.
    let server_activation = |rng: &mut UnwrapErr<getrandom::SysRng>| {
        let mut server = Duration::ZERO;
        let mut dev = SimulatedDevice::new(
            attributes.clone(),
            scep_key.clone(),
            d.server_certificate.clone(),
            rng,
        );
        let mut r = UnwrapErr(getrandom::SysRng);
        let mut t = |req: Request| {
            let start = Instant::now();
            let (resp, events) = d.service.handle(&req, now, &mut r);
            server += start.elapsed();
            drop(events);
            resp
        };
        dev.activate(&mut t, &enroll, ("alice", "pw", "corp"), now, rng)
            .unwrap();
        server
    };
    let private_ops = |garbage: &[u8]| {
        for _ in 0..4 {
            key.sign(DigestAlgorithm::Sha256, b"message").unwrap();
        }
        key.unwrap_key(garbage, 16).unwrap();
    };
    group.bench_function("server_13_steps_real_crypto", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| server_activation(&mut rng)).sum())
    });
    // The same, with the server's 5 private operations timed right after
    // each activation on the same thread: on a shared host whose speed
    // drifts between criterion's functions, a ratio of two separate
    // functions moves with the drift; this one pairs every activation with
    // its own baseline. Criterion reports the server time; the ratio of the
    // two sums is printed after the group (`RATIO (paired)`).
    let mut paired = support::Paired::default();
    group.bench_function("server_13_steps_paired_with_private_ops", |b| {
        let garbage = vec![1u8; 256];
        b.iter_custom(|iters| {
            let mut server = Duration::ZERO;
            for _ in 0..iters {
                let this = server_activation(&mut rng);
                paired.add(this, || private_ops(&garbage));
                server += this;
            }
            server
        })
    });
    group.bench_function("rsa2048_server_private_ops_of_one_activation", |b| {
        let garbage = vec![1u8; 256];
        b.iter(|| private_ops(&garbage))
    });
    // Every RSA operation the server does in one activation: the 5 private
    // ones above, plus 10 verifications (device attributes and their
    // certificate at step 5; the PKCSReq and its CSR at step 7; six
    // Mdm-Signatures, steps 9-13) and the CertRep's key transport to the
    // requester (step 8). No implementation can go below this.
    group.bench_function("rsa2048_server_rsa_ops_of_one_activation", |b| {
        let garbage = vec![1u8; 256];
        let public = Signer::public_key(&key).clone();
        let signature = key.sign(DigestAlgorithm::Sha256, b"message").unwrap();
        let mut r = UnwrapErr(getrandom::SysRng);
        b.iter(|| {
            for _ in 0..4 {
                key.sign(DigestAlgorithm::Sha256, b"message").unwrap();
            }
            key.unwrap_key(&garbage, 16).unwrap();
            for _ in 0..10 {
                public
                    .verify(DigestAlgorithm::Sha256, b"message", &signature)
                    .unwrap();
            }
            public.encrypt_pkcs1v15(&mut r, &[7u8; 16]).unwrap()
        })
    });
    group.finish();
    support::ratio(
        &name,
        "http_13_steps_real_crypto",
        "rsa2048_private_ops_of_one_activation",
    );
    support::ratio(
        &name,
        "server_13_steps_real_crypto",
        "rsa2048_server_private_ops_of_one_activation",
    );
    support::ratio(
        &name,
        "server_13_steps_real_crypto",
        "rsa2048_server_rsa_ops_of_one_activation",
    );
    paired.print(&name, "server_13_steps / its 5 private ops");
}

criterion_group!(benches, bench);
criterion_main!(benches);
