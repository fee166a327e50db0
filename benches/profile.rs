//! Profile build and build+sign, beside baselines measured in the same run:
//! - `plist_encode_baseline`: writing the same plist value as XML (no typed model, no validation);
//! - `rsa2048_sign_baseline`: one RSA-2048 PKCS#1 v1.5 SHA-256 signature over the profile bytes;
//! - `profile_build`: typed model → validate → XML;
//! - `profile_build_sign`: the same, then CMS SignedData (attached, signer + chain).
//!
//! Overheads are the ratios `profile_build / plist_encode_baseline` and
//! `profile_build_sign / (profile_build + rsa2048_sign_baseline)`.

use std::hint::black_box;
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};
#[path = "support/mod.rs"]
mod support;
use mdm_enroll::cms::Certificate;
use mdm_enroll::crypto::{DigestAlgorithm, RsaKey, Signer};
use mdm_enroll::profile::{
    AccessRights, MdmPayload, Payload, PayloadUuid, Profile, ScepPayload, Subject,
    ValidationOptions,
};

fn enrollment(uuids: &[PayloadUuid; 3]) -> Profile {
    let [top, scep_uuid, mdm_uuid] = *uuids;
    let scep = ScepPayload {
        subject: Some(Subject::new().with("O", "Example").with("CN", "device")),
        challenge: Some("challenge-0123456789".into()),
        key_size: Some(2048),
        key_type: Some("RSA".into()),
        key_usage: Some(5),
        ..ScepPayload::new("https://mdm.example.com/scep")
    };
    let mdm = MdmPayload {
        sign_message: Some(true),
        access_rights: Some(AccessRights::ALL),
        check_out_when_removed: Some(true),
        server_capabilities: Some(vec!["com.apple.mdm.per-user-connections".into()]),
        ..MdmPayload::new(
            "https://mdm.example.com/mdm",
            "com.apple.mgmt.External.0a1b2c3d",
            scep_uuid,
        )
    };
    Profile::configuration("com.example.enroll", top, vec![])
        .with_display_name("Example enrollment")
        .with_organization("Example")
        .with_payload(Payload::new("com.example.enroll.scep", scep_uuid, scep))
        .with_payload(Payload::new("com.example.enroll.mdm", mdm_uuid, mdm))
}

/// A CA and a leaf signed by it, made with the openssl CLI (setup only).
fn openssl_chain() -> (RsaKey, Certificate, Certificate) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let run = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .expect("openssl on PATH")
            .status
            .success();
        assert!(ok, "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "30",
        "-subj",
        "/CN=Bench Root",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=Bench Profile Signer",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "30",
    ]);
    let read = |name: &str| std::fs::read(d.join(name)).expect("read openssl output");
    let key = RsaKey::from_pem_or_der(&read("leaf.key")).expect("leaf key");
    let leaf = Certificate::from_pem(&read("leaf.pem")).expect("leaf")[0].clone();
    let ca = Certificate::from_pem(&read("ca.pem")).expect("ca")[0].clone();
    (key, leaf, ca)
}

fn bench(c: &mut Criterion) {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let uuids = [(); 3].map(|_| PayloadUuid::random(&mut rng));
    let options = ValidationOptions::default();
    let profile = enrollment(&uuids);
    let value = profile.to_plist();
    let xml = profile.build(&options).expect("valid");
    let (key, leaf, ca) = openssl_chain();
    let chain = [ca];

    let name = support::group("profile");
    let mut g = c.benchmark_group(&name);
    g.bench_function("plist_encode_baseline", |b| {
        b.iter(|| mdm_enroll::wire::plist::encode_xml(black_box(&value)))
    });
    g.bench_function("profile_build", |b| {
        b.iter(|| {
            enrollment(black_box(&uuids))
                .build(&options)
                .expect("valid")
        })
    });
    g.bench_function("rsa2048_sign_baseline", |b| {
        b.iter(|| {
            key.sign(DigestAlgorithm::Sha256, black_box(&xml))
                .expect("sign")
        })
    });
    g.bench_function("profile_build_sign", |b| {
        b.iter(|| {
            enrollment(black_box(&uuids))
                .sign(&options, &key, &leaf, &chain)
                .expect("sign")
        })
    });
    g.finish();
    support::ratio(&name, "profile_build", "plist_encode_baseline");
    support::ratio(&name, "profile_build_sign", "rsa2048_sign_baseline");
}

criterion_group!(benches, bench);
criterion_main!(benches);
