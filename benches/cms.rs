//! CMS verification cost against the raw RSA verifications it contains.
//!
//! Each measured operation sits beside a baseline in the same run, so the
//! overhead of parsing (BER walk, certificate decode, plist decode) reads as
//! a ratio: `mdm_signature/verify` ÷ `mdm_signature/rsa_baseline` etc.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
#[path = "support/mod.rs"]
mod support;
use mdm_enroll::cms::mdm_signature::MDM_SIGNATURE_HEADER;
use mdm_enroll::cms::{
    DeviceAttributesVerifier, IdentityOptions, SignedData, TrustAnchors, client_identity,
    device_attributes, verify_mdm_signature,
};
use mdm_enroll::crypto::{DigestAlgorithm, verify_rsa};
use mdm_enroll::http::{Method, Request};
use mdm_enroll::mdm::Report;
use mdm_enroll::wire::BerLimits;
use mdm_enroll::wire::Limits;

fn vector(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn mdm_signature(c: &mut Criterion) {
    let header =
        String::from_utf8(vector("signature/nanomdm_mdmSignatureHeader2.b64.txt")).unwrap();
    let body = vector("signature/nanomdm_mdmSignatureBody2.plist");
    let limits = BerLimits::default();
    let sd = SignedData::parse(
        &vector("signature/nanomdm_mdmSignatureHeader2.der"),
        &limits,
    )
    .unwrap();
    let key = sd.signer_certificate(0).unwrap().public_key().unwrap();
    let sig = sd.signers()[0].signature().to_vec();

    let name = support::group("mdm_signature");
    let mut g = c.benchmark_group(&name);
    g.bench_function("verify", |b| {
        b.iter(|| verify_mdm_signature(black_box(&header), black_box(&body), &limits).unwrap())
    });
    g.bench_function("rsa_baseline", |b| {
        b.iter(|| verify_rsa(&key, DigestAlgorithm::Sha1, black_box(&body), &sig).unwrap())
    });
    // What the MDM service does per request: `client_identity` with its
    // options' certificate cache, warm after the device's first request
    // (the certificate decode and key parse are then skipped; the signature
    // over this body is still verified).
    let mut request = Request::new(Method::Put, "/mdm/connect");
    request
        .headers
        .push((MDM_SIGNATURE_HEADER.into(), header.trim().to_owned()));
    request.body = body.clone();
    let options = IdentityOptions::default();
    g.bench_function("identity_repeat_signer", |b| {
        b.iter(|| client_identity(black_box(&request), &options).unwrap())
    });
    // The same plus decoding the body it signs (a report): one whole
    // authenticated request before the engine.
    let plist_limits = Limits::default();
    g.bench_function("identity_and_report_decode", |b| {
        b.iter(|| {
            client_identity(black_box(&request), &options).unwrap();
            Report::decode(black_box(&request.body), &plist_limits).unwrap()
        })
    });
    g.finish();
    support::ratio(&name, "verify", "rsa_baseline");
    support::ratio(&name, "identity_repeat_signer", "rsa_baseline");
    support::ratio(&name, "identity_and_report_decode", "rsa_baseline");
}

fn device_attributes(c: &mut Criterion) {
    let p7 = vector("ota/zentral_ota_payload_phase_2.p7");
    let verifier = DeviceAttributesVerifier::new(TrustAnchors::new());
    let sd = SignedData::parse(&p7, &BerLimits::default()).unwrap();
    let leaf = sd.signer_certificate(0).unwrap().clone();
    let leaf_key = leaf.public_key().unwrap();
    let ca_key = device_attributes::apple_iphone_device_ca()
        .unwrap()
        .public_key()
        .unwrap();
    let content = sd.content().unwrap().to_vec();
    let sig = sd.signers()[0].signature().to_vec();

    let name = support::group("device_attributes");
    let mut g = c.benchmark_group(&name);
    g.bench_function("verify", |b| {
        b.iter(|| verifier.verify(black_box(&p7), None).unwrap())
    });
    // The two RSA verifications the above contains: the CMS signature and
    // the device certificate's signature under the pinned Apple key.
    g.bench_function("rsa_baseline_2x", |b| {
        b.iter(|| {
            verify_rsa(&leaf_key, DigestAlgorithm::Sha1, black_box(&content), &sig).unwrap();
            leaf.verify_signature_with(&ca_key).unwrap();
        })
    });
    // Breakdown of the overhead.
    g.bench_function("parse_signed_data", |b| {
        b.iter(|| SignedData::parse(black_box(&p7), &BerLimits::default()).unwrap())
    });
    g.bench_function("parse_certificate", |b| {
        b.iter(|| mdm_enroll::cms::Certificate::from_der(black_box(leaf.der())).unwrap())
    });
    g.bench_function("parse_certificate_x509_only", |b| {
        use der::Decode;
        b.iter(|| {
            mdm_enroll::cms::certificate::X509Certificate::from_der(black_box(leaf.der())).unwrap()
        })
    });
    g.bench_function("parse_public_key", |b| {
        b.iter(|| black_box(&leaf).public_key().unwrap())
    });
    g.bench_function("parse_plist", |b| {
        b.iter(|| {
            mdm_enroll::cms::DeviceAttributes::from_plist(
                black_box(&content),
                &mdm_enroll::wire::Limits::default(),
            )
            .unwrap()
        })
    });
    g.finish();
    support::ratio(&name, "verify", "rsa_baseline_2x");
}

criterion_group!(benches, mdm_signature, device_attributes);
criterion_main!(benches);
