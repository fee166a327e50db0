//! `inspect profile <file>`: payload summary and signer chain as JSON.

mod example_binary;

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn inspect(file: &str) -> Output {
    // Refused when missing or older than its sources.
    let bin = example_binary::example_binary("inspect");
    Command::new(bin).args(["profile", file]).output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn vector(name: &str) -> String {
    let p = root().join("tests/vectors/profile").join(name);
    p.to_string_lossy().into_owned()
}

#[test]
fn unsigned_profile_lists_payloads() {
    let v = json(&inspect(&vector("nanomdm_enroll.mobileconfig")));
    assert_eq!(v["signed"], false);
    assert_eq!(v["PayloadType"], "Configuration");
    assert_eq!(v["PayloadIdentifier"], "com.github.micromdm.nanomdm");
    let payloads = v["PayloadContent"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = payloads
        .iter()
        .map(|p| {
            (
                p["PayloadType"].as_str().unwrap(),
                p["PayloadUUID"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "com.apple.security.scep",
                "CB90E976-AD44-4B69-8108-8095E6260978"
            ),
            ("com.apple.mdm", "96B11019-B54C-49DC-9480-43525834DE7B"),
        ]
    );
    assert_eq!(
        payloads[1]["IdentityCertificateUUID"],
        "CB90E976-AD44-4B69-8108-8095E6260978"
    );
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn signed_profile_shows_signer_chain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let openssl = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "k.pem",
        "-out",
        "c.pem",
        "-days",
        "2",
        "-subj",
        "/O=Example/CN=Inspect Signer",
    ]);
    let input = vector("zentral_test.mobileconfig");
    openssl(&[
        "cms",
        "-sign",
        "-nodetach",
        "-binary",
        "-in",
        &input,
        "-signer",
        "c.pem",
        "-inkey",
        "k.pem",
        "-outform",
        "DER",
        "-out",
        "signed.der",
    ]);
    let v = json(&inspect(&d.join("signed.der").to_string_lossy()));
    assert_eq!(v["signed"], true);
    assert!(
        v["signature"]["signer"]
            .as_str()
            .unwrap()
            .contains("CN=Inspect Signer")
    );
    assert_eq!(v["signature"]["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(v["PayloadIdentifier"], "com.example.my-profile");
    assert_eq!(
        v["PayloadContent"][0]["PayloadType"],
        "com.apple.applicationaccess"
    );
}

#[test]
fn malformed_profile_is_one_line_exit_1() {
    let out = inspect(&vector("cfgprofiles_multistring-error.mobileconfig"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("dictionary key without a value"), "{err}");
}

/// `zentral_test.mobileconfig` signed by a fresh CA-issued signer with the
/// crate's own profile signing: (signed bytes, signer subject).
fn library_signed_profile() -> (Vec<u8>, String) {
    use mdm_enroll::cms::Certificate;
    use mdm_enroll::crypto::RsaKey;
    use mdm_enroll::pki;
    use mdm_enroll::profile::SignedProfile;
    use std::time::{Duration, SystemTime};

    let key = RsaKey::generate(&mut getrandom::SysRng, 2048).unwrap();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let cert = pki::create_ca(
        &key,
        "CN=Inspect Profile Signer,O=Example".parse().unwrap(),
        pki::random_serial(&mut rng),
        pki::validity(SystemTime::now(), Duration::from_secs(86400)).unwrap(),
    )
    .unwrap();
    let cert = Certificate::from_der(&pki::to_der(&cert).unwrap()).unwrap();
    let xml = std::fs::read(vector("zentral_test.mobileconfig")).unwrap();
    let signed = SignedProfile::sign_xml(&xml, &key, &cert, &[]).unwrap();
    (signed.into_bytes(), cert.subject_string())
}

#[test]
fn signed_profile_verifies_and_a_tampered_one_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let (signed, subject) = library_signed_profile();
    let good = dir.path().join("good.mobileconfig");
    std::fs::write(&good, &signed).unwrap();
    let v = json(&inspect(&good.to_string_lossy()));
    assert_eq!(v["signed"], true);
    assert_eq!(v["signature"]["signer"], subject.as_str());
    assert_eq!(v["PayloadIdentifier"], "com.example.my-profile");

    // One byte of the attached profile changed after signing: the digest
    // no longer matches, and inspect says so instead of printing it.
    let mut tampered = signed;
    let at = tampered
        .windows(10)
        .position(|w| w == b"my-profile")
        .expect("identifier in the signed content");
    tampered[at] = b'M';
    let bad = dir.path().join("tampered.mobileconfig");
    std::fs::write(&bad, &tampered).unwrap();
    let out = inspect(&bad.to_string_lossy());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: signed profile does not verify"),
        "{err}"
    );
}
