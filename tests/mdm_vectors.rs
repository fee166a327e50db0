//! Every check-in, report and command vector parses to what its
//! `PROVENANCE.tsv` row says. The expected values are read from the row
//! itself; every item of the row must be understood by this test.

use std::path::PathBuf;

use mdm_enroll::mdm::checkin::CheckinPayload;
use mdm_enroll::mdm::{Channel, CheckinMessage, Command, MessageType, Report, Status};
use mdm_enroll::wire::Limits;
use plist::{Dictionary, Value};

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// A vector's bytes; a missing file names its path.
fn read(rel: impl AsRef<std::path::Path>) -> Vec<u8> {
    let path = vectors().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (file, expected_parse_result) for rows whose file starts with `prefix`.
fn rows(prefix: &str) -> Vec<(String, String)> {
    let tsv = String::from_utf8(read("PROVENANCE.tsv")).expect("PROVENANCE.tsv is UTF-8");
    let mut out = Vec::new();
    for line in tsv.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols[0].starts_with(prefix) {
            out.push((cols[0].to_owned(), cols[6].to_owned()));
        }
    }
    assert!(!out.is_empty(), "no PROVENANCE rows for {prefix}");
    out
}

/// Split a row's expectation on `; ` outside of braces.
fn items(expected: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut depth = 0;
    let chars: Vec<char> = expected.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ';' if depth == 0 => {
                out.push(String::new());
                i += 1;
                while chars.get(i) == Some(&' ') {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        out.last_mut().unwrap().push(c);
        i += 1;
    }
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// Check one `Key=Value ...` item against a dictionary; `false` if the key is absent.
fn check_value(dict: &Dictionary, key: &str, expected: &str, file: &str) -> bool {
    let Some(v) = dict.get(key) else {
        return false;
    };
    let token = expected.split_whitespace().next().unwrap_or("");
    match v {
        Value::String(s) => assert_eq!(s, token, "{file}: {key}"),
        Value::Boolean(b) => assert_eq!(b.to_string(), token, "{file}: {key}"),
        Value::Data(d) => {
            if let Some(q) = expected.strip_prefix("<data>\"") {
                let content = &q[..q.find('"').unwrap()];
                assert_eq!(d, content.as_bytes(), "{file}: {key}");
            } else {
                let n: usize = token.parse().unwrap();
                assert_eq!(d.len(), n, "{file}: {key}");
                if let Some(hex) = expected.split("(hex ").nth(1) {
                    let hex = hex.trim_end_matches(')');
                    let ours: String = d.iter().map(|b| format!("{b:02x}")).collect();
                    assert_eq!(ours, hex, "{file}: {key}");
                }
            }
        }
        other => panic!("{file}: {key} has unexpected type {other:?}"),
    }
    true
}

#[test]
fn checkin_vectors_match_provenance() {
    let limits = Limits::default();
    for (file, expected) in rows("checkin/") {
        let body = read(&file);
        let msg = CheckinMessage::decode(&body, &limits).unwrap_or_else(|e| panic!("{file}: {e}"));
        // Nothing is lost: the typed message re-encodes to the same dictionary.
        let original = mdm_enroll::wire::plist::decode_dict(&body, &limits).unwrap();
        let dict = msg.to_dictionary();
        assert_eq!(dict, original, "{file}");
        for item in items(&expected) {
            if let Some((key, value)) = item.split_once('=') {
                if key == "enrollment" {
                    assert_eq!(value, "Device");
                    assert!(matches!(msg.channel, Channel::Device { .. }), "{file}");
                    continue;
                }
                assert!(check_value(&dict, key, value, &file), "{file}: {item}");
            } else if item.starts_with("device channel") {
                assert_eq!(msg.channel.kind(), "device", "{file}");
                assert!(msg.channel.user_id().is_none(), "{file}");
            } else if let Some(key) = item.strip_suffix(" present (multi-line base64)") {
                assert!(
                    matches!(dict.get(key), Some(Value::Data(d)) if !d.is_empty()),
                    "{file}"
                );
            } else {
                panic!("{file}: expectation not understood: {item}");
            }
        }
        // The typed view agrees with the dictionary.
        match (&msg.payload, msg.message_type()) {
            (CheckinPayload::Authenticate(a), MessageType::Authenticate) => {
                assert_eq!(
                    Some(a.topic.as_str()),
                    dict.get("Topic").and_then(Value::as_string)
                );
            }
            (CheckinPayload::TokenUpdate(t), MessageType::TokenUpdate) => {
                assert_eq!(t.token.len(), 32, "{file}");
                assert_eq!(t.awaiting_configuration, Some(false), "{file}");
            }
            other => panic!("{file}: unexpected {other:?}"),
        }
    }
}

#[test]
fn authenticate_keeps_the_undocumented_challenge() {
    let body = read("checkin/nanomdm_Authenticate.2.plist");
    let msg = CheckinMessage::decode(&body, &Limits::default()).unwrap();
    assert_eq!(
        msg.extra.get("Challenge").and_then(Value::as_data),
        Some(&b"apple"[..])
    );
    assert_eq!(
        msg.channel.device_id(),
        "66ADE930-5FDF-5EC4-8429-15640684C489"
    );
    let CheckinPayload::Authenticate(a) = &msg.payload else {
        panic!()
    };
    assert_eq!(a.device_name.as_deref(), Some("Fruit"));
    assert_eq!(a.model.as_deref(), Some("iMac14,2"));
    assert_eq!(a.model_name.as_deref(), Some("iMac"));
}

#[test]
fn report_vectors_match_provenance() {
    let limits = Limits::default();
    let mut all = rows("report/");
    all.extend(rows("signature/nanomdm_mdmSignatureBody2.plist"));
    for (file, expected) in all {
        let body = read(&file);
        let report = Report::decode(&body, &limits).unwrap_or_else(|e| panic!("{file}: {e}"));
        let original = mdm_enroll::wire::plist::decode_dict(&body, &limits).unwrap();
        let dict = report.to_dictionary();
        assert_eq!(dict, original, "{file}");
        for item in items(&expected) {
            let first = item.split([' ', '{', '=']).next().unwrap();
            if first == "connect" {
                // "connect report: Status=Idle"
                let rest = item.trim_start_matches("connect report: ");
                let (k, v) = rest.split_once('=').unwrap();
                assert!(check_value(&dict, k, v, &file));
            } else if let Some((key, value)) = item.split_once('=')
                && !key.contains(' ')
                && !key.contains('{')
            {
                assert!(check_value(&dict, key, value, &file), "{file}: {item}");
            } else if item == "no CommandUUID" {
                assert_eq!(report.command_uuid, None);
            } else if item
                .ends_with("bytes incl. trailing LF - signature is over these exact bytes")
            {
                let n: usize = item.split(' ').next().unwrap().parse().unwrap();
                assert_eq!(body.len(), n);
            } else if report.result(first).is_some() {
                // A result key named by the row: kept as a plist value.
                assert!(
                    report.result(first).unwrap().as_dictionary().is_some()
                        || report.result(first).unwrap().as_array().is_some()
                );
            } else if first == "SecurityInfo" || first == "ProfileList" {
                panic!("{file}: missing result {first}");
            } else {
                panic!("{file}: expectation not understood: {item}");
            }
        }
        match report.status {
            Status::Idle => assert_eq!(report.command_uuid, None),
            Status::Acknowledged => assert!(report.command_uuid.is_some()),
            s => panic!("{file}: unexpected {s:?}"),
        }
    }
}

#[test]
fn device_information_results_are_plist_values() {
    let limits = Limits::default();
    let body = read("report/nanomdm_DeviceInformation.1.plist");
    let r = Report::decode(&body, &limits).unwrap();
    assert_eq!(r.request_type.as_deref(), Some("DeviceInformation"));
    let q = r.result("QueryResponses").unwrap().as_dictionary().unwrap();
    assert_eq!(
        q.get("HostName").and_then(Value::as_string),
        Some("fruit.example.com")
    );
    assert!(q.get("UDID").is_some());

    let body = read("report/zentral_device_information.plist");
    let r = Report::decode(&body, &limits).unwrap();
    let q = r.result("QueryResponses").unwrap().as_dictionary().unwrap();
    assert_eq!(
        q.get("Model").and_then(Value::as_string),
        Some("VirtualMac2,1")
    );
    assert_eq!(
        q.get("BuildVersion").and_then(Value::as_string),
        Some("22A5321d")
    );
    assert_eq!(
        q.get("IsAppleSilicon").and_then(Value::as_boolean),
        Some(true)
    );
    assert_eq!(
        q.get("IsSupervised").and_then(Value::as_boolean),
        Some(true)
    );
    assert_eq!(
        q.get("MDMOptions")
            .and_then(Value::as_dictionary)
            .map(Dictionary::len),
        Some(0)
    );

    let body = read("report/zentral_certificate_list.plist");
    let r = Report::decode(&body, &limits).unwrap();
    assert_eq!(r.command_uuid.as_deref(), Some("0001-CertificateList"));
    let list = r.result("CertificateList").unwrap().as_array().unwrap();
    for c in list {
        let der = c
            .as_dictionary()
            .unwrap()
            .get("Data")
            .unwrap()
            .as_data()
            .unwrap();
        assert_eq!(der[0], 0x30, "certificate DER starts with SEQUENCE");
    }
}

#[test]
fn command_vector_matches_provenance() {
    let (file, expected) = rows("command/").remove(0);
    let body = read(&file);
    let cmd = Command::decode(&body, &Limits::default()).unwrap();
    assert!(expected.contains(&format!("CommandUUID={}", cmd.command_uuid)));
    assert!(expected.contains(&format!("Command.RequestType={}", cmd.request_type)));
    assert_eq!(
        cmd.params.get("Payload").and_then(Value::as_data),
        Some(&b"foobarbaz"[..])
    );
    // Re-built with the typed builder, it is the same command.
    let rebuilt = Command::install_profile(cmd.command_uuid.clone(), b"foobarbaz".to_vec());
    assert_eq!(rebuilt, cmd);
    assert_eq!(
        plist::Value::from_reader_xml(&rebuilt.encode().unwrap()[..]).unwrap(),
        plist::Value::from_reader_xml(&body[..]).unwrap()
    );
}
