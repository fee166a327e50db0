//! `inspect scep <file> [--ca-key KEY]` on captured messages.

mod example_binary;

use std::path::PathBuf;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    // Refused when missing or older than its sources.
    let bin = example_binary::example_binary("inspect");
    Command::new(bin).args(args).output().unwrap()
}

fn captured(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/scep/captured")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn request_with_ca_key_shows_the_csr() {
    let out = run(&[
        "scep",
        &captured("14-pkcsreq.certmonger.get.der"),
        "--ca-key",
        &captured("ca/rfcku-ca.key.pem"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["messageType"], 19);
    assert_eq!(
        v["transactionID"],
        "1326541450493766817507002179480804601679868756435622654815718371151062444123"
    );
    assert_eq!(v["envelope"]["contentCipher"], "AES-256-CBC");
    assert_eq!(v["digest"], "Sha256");
    assert_eq!(v["signatureVerifies"], true);
    assert_eq!(v["decrypted"]["csrSubject"], "CN=cm-device-6");
    // The challenge is a secret: only its length is shown.
    assert_eq!(v["decrypted"]["challengePassword"], "<9 bytes>");
}

#[test]
fn certrep_and_errors() {
    let out = run(&[
        "scep",
        &captured("06-certrep-failure-badrequest.micromdm-scepserver.der"),
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["messageTypeName"], "CertRep");
    assert_eq!(v["pkiStatus"], "2");
    assert_eq!(v["failInfo"], "2");

    let bad = run(&["scep", &captured("01-getcacaps.micromdm-scepserver.txt")]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);
    assert_eq!(run(&["scep"]).status.code(), Some(2));
}

fn vector(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/scep")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn assert_exit_1(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

#[test]
fn a_message_whose_signature_fails_is_exit_1() {
    let original = std::fs::read(vector("smallstep_PKCSReq.der")).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&run(&["scep", &vector("smallstep_PKCSReq.der")]).stdout).unwrap();
    assert_eq!(v["signatureVerifies"], true);
    assert_eq!(
        v["transactionID"],
        "A13090761A30F66664F85D37433D2065E1112BA1"
    );

    // The SignerInfo's signature is the message's last field: flip its last byte.
    let mut tampered = original;
    *tampered.last_mut().unwrap() ^= 0x01;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tampered.der");
    std::fs::write(&path, &tampered).unwrap();
    assert_exit_1(&run(&["scep", &path.to_string_lossy()]), "does not verify");

    // No signer certificate in the message: nothing to verify against.
    assert_exit_1(
        &run(&[
            "scep",
            &vector("smallstep_CertRep_NoCertificatesForSigners.der"),
        ]),
        "does not verify",
    );
}
