//! PKCSReq → CertRep on the server, beside the raw RSA private-key operations
//! it must perform (unwrap the CEK, sign the certificate, sign the CertRep),
//! so `overhead = pkcsreq_to_certrep / rsa_floor` reads off one run.
//! `pkcsreq_to_certrep_paired_with_floor` times the floor right after each
//! request and prints `RATIO (paired)`, the ratio to read on a host whose
//! speed drifts between criterion's functions.
//!
//! Input: the captured Apple-emulator PKCSReq (AES-128-CBC, SHA-256, RSA-2048
//! CA `rfcku-ca`) from `tests/vectors/scep/captured/`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
#[path = "support/mod.rs"]
mod support;
use mdm_enroll::cms::Certificate;
use mdm_enroll::cms::enveloped::EnvelopedData;
use mdm_enroll::crypto::{DigestAlgorithm, KeyUnwrapper, RsaKey, Signer};
use mdm_enroll::http::{Method, Request};
use mdm_enroll::pki::{self, LeafPolicy};
use mdm_enroll::scep::{FailInfo, PkiMessage, ScepOutcome, ScepResponder};
use mdm_enroll::wire::BerLimits;
use rand_core::UnwrapErr;

fn captured(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors/scep/captured")
            .join(name),
    )
    .expect("captured vector (tests/vectors/scep/captured)")
}

fn bench(c: &mut Criterion) {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let key = Arc::new(RsaKey::from_pem_or_der(&captured("ca/rfcku-ca.key.pem")).unwrap());
    let ca = Certificate::from_pem(&captured("ca/rfcku-ca.pem"))
        .unwrap()
        .remove(0);
    let responder = ScepResponder::new(
        ca.der(),
        key.clone() as Arc<dyn Signer>,
        key.clone() as Arc<dyn KeyUnwrapper>,
    )
    .unwrap();
    let body = captured("22-pkcsreq.apple-emu.post-aes128-sha256.der");
    let signer = Certificate::from_pem(&captured("inner/22-signer-cert.pem"))
        .unwrap()
        .remove(0);
    let now = SystemTime::from(signer.not_before()) + Duration::from_secs(600);
    let mut request = Request::new(Method::Post, "/scep");
    request.query = Some("operation=PKIOperation".into());
    request.body = body.clone();

    let name = support::group("scep");
    let mut g = c.benchmark_group(&name);
    g.sample_size(30);

    // One PKCSReq answered with an issued certificate; the CertRep's length.
    let certrep = |rng: &mut UnwrapErr<getrandom::SysRng>| {
        let ScepOutcome::Certificate(cr) = responder.handle(&request, now, rng) else {
            panic!("not a certificate request")
        };
        let policy = LeafPolicy::client_auth(cr.csr().subject().clone());
        let issued = cr
            .issue(
                &policy,
                pki::random_serial(rng),
                pki::validity(now, Duration::from_secs(86400)).unwrap(),
                now,
                rng,
            )
            .unwrap();
        issued.response.body.len()
    };
    g.bench_function("pkcsreq_to_certrep", |b| {
        b.iter(|| black_box(certrep(&mut rng)))
    });

    // The floor: one RSA-2048 PKCS#1 v1.5 decryption (CEK) and two RSA-2048
    // signatures (certificate, CertRep), nothing else.
    let limits = BerLimits::default();
    let msg = PkiMessage::decode(&body, &limits).unwrap();
    let env: EnvelopedData = msg.envelope(&limits).unwrap();
    let ek = env.recipients[0].encrypted_key.clone();
    let tbs = vec![0x42u8; 700];
    let floor = || {
        let cek = key.unwrap_key(black_box(&ek), 16).unwrap();
        let s1 = key.sign(DigestAlgorithm::Sha256, black_box(&tbs)).unwrap();
        let s2 = key
            .sign(DigestAlgorithm::Sha256, black_box(&tbs[..300]))
            .unwrap();
        black_box((cek, s1, s2));
    };
    // The same request, each followed on the same thread by the floor:
    // `RATIO (paired)` after the group is the figure to read on a host whose
    // speed drifts between criterion's functions.
    let mut paired = support::Paired::default();
    g.bench_function("pkcsreq_to_certrep_paired_with_floor", |b| {
        b.iter_custom(|iters| {
            let mut measured = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                black_box(certrep(&mut rng));
                let this = start.elapsed();
                paired.add(this, floor);
                measured += this;
            }
            measured
        })
    });

    g.bench_function("pkcsreq_to_failure", |b| {
        b.iter(|| {
            let ScepOutcome::Certificate(cr) = responder.handle(&request, now, &mut rng) else {
                panic!("not a certificate request")
            };
            black_box(cr.reject(FailInfo::BadRequest, now, &mut rng).body.len())
        })
    });

    g.bench_function("rsa_floor", |b| b.iter(floor));
    g.bench_function("rsa_floor_failure", |b| {
        b.iter(|| {
            let cek = key.unwrap_key(black_box(&ek), 16).unwrap();
            let s = key
                .sign(DigestAlgorithm::Sha256, black_box(&tbs[..300]))
                .unwrap();
            black_box((cek, s))
        })
    });
    // Part of the CertRep outside the floor: encrypting the content key to
    // the requester's (new each time) key with the `rsa` crate, which the
    // crate uses on every backend so the padding comes from the caller's RNG.
    let spki = signer.spki_der().to_vec();
    g.bench_function("key_transport_fresh_key", |b| {
        b.iter(|| {
            let key = mdm_enroll::crypto::PublicKey::from_spki_der(black_box(&spki)).unwrap();
            black_box(key.encrypt_pkcs1v15(&mut rng, &[7u8; 16]).unwrap())
        })
    });
    g.finish();
    support::ratio(&name, "pkcsreq_to_certrep", "rsa_floor");
    support::ratio(&name, "pkcsreq_to_failure", "rsa_floor_failure");
    paired.print(&name, "pkcsreq_to_certrep / rsa_floor");
}

criterion_group!(benches, bench);
criterion_main!(benches);
