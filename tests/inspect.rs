//! `examples/inspect`: JSON on stdout with Apple's keys, exit 0/1/2, one-line
//! errors, never a panic.

mod example_binary;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The built example, refused when missing or older than its sources.
fn inspect_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| example_binary::example_binary("inspect"))
}

fn run(args: &[&str]) -> Output {
    Command::new(inspect_bin()).args(args).output().unwrap()
}

fn vector(rel: &str) -> String {
    root()
        .join("tests/vectors")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

fn json(out: &Output) -> serde_json::Map<String, serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "one JSON object on one line");
    match serde_json::from_str(&text).unwrap() {
        serde_json::Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn checkins_print_apple_keys_and_channel() {
    let m = json(&run(&[
        "checkin",
        &vector("checkin/nanomdm_Authenticate.1.plist"),
    ]));
    assert_eq!(m["MessageType"], "Authenticate");
    assert_eq!(m["UDID"], "663b07bb783e9ade1dae4fbb92ea12afc0ce5b69");
    assert_eq!(m["SerialNumber"], "F5JM992LF193");
    assert_eq!(m["channel"]["kind"], "device");
    assert_eq!(
        m["channel"]["id"],
        "663b07bb783e9ade1dae4fbb92ea12afc0ce5b69"
    );

    let m = json(&run(&[
        "checkin",
        &vector("checkin/nanomdm_Authenticate.2.plist"),
    ]));
    assert_eq!(
        m["Challenge"], "YXBwbGU=",
        "unknown <data> key kept, as base64"
    );

    let m = json(&run(&[
        "checkin",
        &vector("checkin/nanomdm_TokenUpdate.1.plist"),
    ]));
    assert_eq!(m["PushMagic"], "CEFDF0BD-E342-4A27-8742-E930EA116B0A");
    assert_eq!(m["AwaitingConfiguration"], false);
    assert_eq!(m["Token"], "R+juwGLC9ynsFwPBs+GPGXHYXwC+dkRdNAgLqnAbX1E=");
}

#[test]
fn reports_print_apple_keys() {
    let m = json(&run(&[
        "report",
        &vector("report/zentral_certificate_list.plist"),
    ]));
    assert_eq!(m["Status"], "Acknowledged");
    assert_eq!(m["CommandUUID"], "0001-CertificateList");
    assert_eq!(m["UDID"], "00008020-000915083C80012E");
    assert!(
        m["CertificateList"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );

    let m = json(&run(&[
        "report",
        &vector("signature/nanomdm_mdmSignatureBody2.plist"),
    ]));
    assert_eq!(m["Status"], "Idle");
    assert!(!m.contains_key("CommandUUID"));
    assert_eq!(
        m["channel"]["device_id"],
        "D4D56083-BFB0-5047-8BDF-2727BACDC59B"
    );
}

fn assert_bad_input(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

#[test]
fn bad_input_is_exit_1_with_one_line() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inspect-bad");
    std::fs::create_dir_all(&dir).unwrap();
    let deep = format!("<plist>{}", "<array>".repeat(20_000));
    let mut binary = Vec::new();
    plist::Value::Boolean(true)
        .to_writer_binary(&mut binary)
        .unwrap();
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("checkin", "empty", vec![], "truncated"),
        ("checkin", "deep", deep.into_bytes(), "deeper than 128"),
        ("checkin", "binary", binary, "binary"),
        ("checkin", "garbage", vec![0xFF, 0x00, 0x13, 0x37], "UTF-8"),
        ("checkin", "bom", b"\xEF\xBB\xBF<plist/>".to_vec(), "byte-order mark"),
        (
            "checkin",
            "unknown-type",
            b"<plist><dict><key>MessageType</key><string>Nope</string></dict></plist>".to_vec(),
            "Nope",
        ),
        (
            "checkin",
            "bad-base64",
            b"<plist><dict><key>Token</key><data>AAAA=</data></dict></plist>".to_vec(),
            "base64",
        ),
        (
            "report",
            "dangling",
            b"<plist><dict><key>Status</key></dict></plist>".to_vec(),
            "without a value",
        ),
        (
            "report",
            "no-uuid",
            b"<plist><dict><key>Status</key><string>Error</string><key>UDID</key><string>u</string></dict></plist>"
                .to_vec(),
            "CommandUUID",
        ),
    ];
    for (kind, name, bytes, needle) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        assert_bad_input(&run(&[kind, path.to_str().unwrap()]), needle);
    }
    assert_bad_input(
        &run(&["report", &vector("checkin/nanomdm_Authenticate.1.plist")]),
        "Status",
    );
    assert_bad_input(&run(&["checkin", "/nonexistent/file"]), "cannot read");
}

#[test]
fn usage_errors_are_exit_2() {
    for args in [
        &[][..],
        &["checkin"][..],
        &["checkin", "a", "b"][..],
        &["nosuchkind", "file"][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: inspect <kind> <file>"));
    }
}

fn tmp_file(name: &str, bytes: &[u8]) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inspect-verify");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn mdm_signature_verifies_over_its_body_only() {
    let header = vector("signature/nanomdm_mdmSignatureHeader2.b64.txt");
    let body = vector("signature/nanomdm_mdmSignatureBody2.plist");
    let m = json(&run(&["signature", &header, "--body", &body]));
    assert_eq!(m["verified"], true);
    assert_eq!(m["bodyBytes"], 302);
    assert_eq!(m["berIndefinite"], true);
    assert_eq!(m["signer"]["serial"], "22");
    assert_eq!(m["signer"]["issuer"], "CN=ca,OU=SCEP CA,O=scep,C=US");
    assert_eq!(m["signerInfos"][0]["digest"], "Sha1");

    // The same signature over a body with one byte changed is a forgery.
    let mut tampered = std::fs::read(&body).unwrap();
    let at = tampered
        .windows(4)
        .position(|w| w == b"Idle")
        .expect("Idle in the body");
    tampered[at] = b'J';
    let tampered = tmp_file("tampered-body.plist", &tampered);
    assert_bad_input(
        &run(&["signature", &header, "--body", &tampered]),
        "does not verify",
    );
    // Without a body nothing can be verified: a usage error, not a JSON "maybe".
    let out = run(&["signature", &header]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn ota_from_apples_device_ca_verifies() {
    let m = json(&run(&[
        "ota",
        &vector("ota/zentral_ota_payload_phase_2.p7"),
    ]));
    assert_eq!(m["verified"], true);
    assert_eq!(m["phase"], "DeviceIdentity");
    assert_eq!(
        m["signer"]["issuer"],
        "CN=Apple iPhone Device CA,OU=Apple iPhone,O=Apple Inc.,C=US"
    );
    assert_eq!(
        m["attributes"]["UDID"],
        "78897E40-F532-5DE0-A7DC-56BAC5CEEB9C"
    );
    assert_eq!(m["attributes"]["SERIAL"], "ZDL2M9PTJ3");
    assert_eq!(m["attributes"]["PRODUCT"], "VirtualMac2,1");
    assert_eq!(m["attributes"]["NotOnConsole"], false);
}

/// A CA with the subject of Apple's iPhone Device CA and a key of its own,
/// a device identity it issued, and attributes signed the way macOS signs
/// them (SHA-1, no signed attributes, the chain attached).
fn look_alike_ota_payload() -> Vec<u8> {
    use mdm_enroll::cms::{Certificate, SignedDataBuilder, oid};
    use mdm_enroll::crypto::{DigestAlgorithm, RsaKey, Signer};
    use mdm_enroll::pki;
    use std::time::{Duration, SystemTime};

    let apple = Certificate::from_pem(
        &std::fs::read(vector("certs/zentral_Apple_iPhone_Device_CA_Fullchain.pem")).unwrap(),
    )
    .unwrap()
    .remove(0);
    assert_eq!(
        apple.subject_string(),
        "CN=Apple iPhone Device CA,OU=Apple iPhone,O=Apple Inc.,C=US"
    );
    let apple_name = <x509_cert::name::Name as der::Decode>::from_der(apple.subject_der()).unwrap();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let now = SystemTime::now();
    let year = Duration::from_secs(365 * 86400);
    let ca_key = RsaKey::generate(&mut getrandom::SysRng, 2048).unwrap();
    let ca = pki::create_ca(
        &ca_key,
        apple_name,
        pki::random_serial(&mut rng),
        pki::validity(now, year).unwrap(),
    )
    .unwrap();
    let device_key = RsaKey::generate(&mut getrandom::SysRng, 2048).unwrap();
    let spki = spki::SubjectPublicKeyInfoOwned::from_key(Signer::public_key(&device_key)).unwrap();
    let device = pki::issue(
        &ca,
        &ca_key,
        spki,
        &pki::LeafPolicy::client_auth("CN=0B5938EB-A130-466F-BFA5-BFA950500D03".parse().unwrap()),
        pki::random_serial(&mut rng),
        pki::validity(now, year).unwrap(),
    )
    .unwrap();
    let ca = Certificate::from_der(&pki::to_der(&ca).unwrap()).unwrap();
    assert_eq!(ca.subject_der(), apple.subject_der(), "a true look-alike");
    let device = Certificate::from_der(&pki::to_der(&device).unwrap()).unwrap();
    let attributes = b"<plist><dict><key>UDID</key><string>LOOK-ALIKE</string>\
        <key>SERIAL</key><string>FAKE</string><key>PRODUCT</key><string>Mac14,2</string>\
        <key>VERSION</key><string>23A344</string></dict></plist>";
    SignedDataBuilder::new(oid::ID_DATA, attributes, &device_key, &device)
        .digest(DigestAlgorithm::Sha1)
        .without_signed_attributes()
        .add_certificate(&ca)
        .build()
        .unwrap()
}

#[test]
fn ota_under_a_look_alike_device_ca_is_exit_1() {
    let payload = tmp_file("look-alike.p7", &look_alike_ota_payload());
    assert_bad_input(&run(&["ota", &payload]), "untrusted");
}

#[test]
fn a_random_file_is_exit_1_for_every_kind() {
    // Fixed pseudo-random bytes (xorshift), so a failure reproduces.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let random = tmp_file("random.bin", &bytes);
    let body = vector("signature/nanomdm_mdmSignatureBody2.plist");
    for args in [
        vec!["checkin", random.as_str()],
        vec!["report", random.as_str()],
        vec!["profile", random.as_str()],
        vec!["ota", random.as_str()],
        vec!["scep", random.as_str()],
        vec!["signature", random.as_str(), "--body", body.as_str()],
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
}
