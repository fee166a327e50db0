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
