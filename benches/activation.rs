//! One full activation (all 13 steps, evidence level, in-memory store) beside
//! the RSA private-key operations a real activation needs. Run with
//! `cargo bench --features test-support --bench activation`.

use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use mdm_enroll::activation::{LoginAttempt, Policy, Secret, TenantId, UserAccount};
use mdm_enroll::crypto::{DigestAlgorithm, RsaKey, Signer};
use mdm_enroll::service::{Engine, EngineConfig};
use mdm_enroll::store::MemoryStore;
use mdm_enroll::testing::{EvidenceDevice, RecordingPush, StaticDirectory};
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
    let mut group = c.benchmark_group("activation");
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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
