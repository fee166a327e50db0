//! Check-in messages of all eight types, channel resolution, check-in
//! responses and the APNs push.

use mdm_enroll::mdm::channel::SHARED_IPAD_USER_ID;
use mdm_enroll::mdm::checkin::CheckinPayload;
use mdm_enroll::mdm::response::{self, ErrorFormat};
use mdm_enroll::mdm::{Channel, CheckinMessage, Error, MessageType};
use mdm_enroll::push::PushRequest;
use mdm_enroll::wire::Limits;
use mdm_enroll::wire::plist::PlistError;
use plist::{Dictionary, Value};

/// A check-in body written by hand (not by our encoder).
fn body(message_type: &str, extra: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>MessageType</key>
	<string>{message_type}</string>
{extra}
</dict>
</plist>
"#
    )
    .into_bytes()
}

const UDID: &str = "<key>UDID</key><string>66ADE930-5FDF-5EC4-8429-15640684C489</string>";
const TOPIC: &str = "<key>Topic</key><string>com.apple.mgmt.External.x</string>";

fn decode(message_type: &str, extra: &str) -> Result<CheckinMessage, Error> {
    CheckinMessage::decode(&body(message_type, extra), &Limits::default())
}

#[test]
fn all_eight_message_types_decode() {
    let cases = [
        (
            "Authenticate",
            format!(
                "{UDID}{TOPIC}<key>DeviceName</key><string>Mac</string><key>Model</key><string>Mac14,2</string><key>ModelName</key><string>MacBook Air</string>"
            ),
        ),
        (
            "TokenUpdate",
            format!(
                "{UDID}{TOPIC}<key>Token</key><data>AQID</data><key>PushMagic</key><string>PM</string><key>NotOnConsole</key><false/>"
            ),
        ),
        ("CheckOut", format!("{UDID}{TOPIC}")),
        (
            "UserAuthenticate",
            format!("{UDID}<key>UserID</key><string>U1</string>"),
        ),
        (
            "SetBootstrapToken",
            format!(
                "{UDID}<key>BootstrapToken</key><data>c2VjcmV0</data><key>AwaitingConfiguration</key><true/>"
            ),
        ),
        (
            "GetBootstrapToken",
            format!("{UDID}<key>AwaitingConfiguration</key><false/>"),
        ),
        (
            "DeclarativeManagement",
            format!(
                "{UDID}<key>Endpoint</key><string>tokens</string><key>Data</key><data>e30=</data>"
            ),
        ),
        (
            "GetToken",
            format!(
                "{UDID}<key>TokenServiceType</key><string>com.apple.maid</string><key>TokenParameters</key><dict><key>SecurityToken</key><string>s</string></dict>"
            ),
        ),
    ];
    assert_eq!(cases.len(), MessageType::ALL.len());
    for (name, extra) in &cases {
        let msg = decode(name, extra).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(msg.message_type().as_str(), *name);
        assert!(msg.extra.is_empty(), "{name}: {:?}", msg.extra);
        // Encode → decode is the identity.
        let again = CheckinMessage::decode(&msg.encode().unwrap(), &Limits::default()).unwrap();
        assert_eq!(again, msg, "{name}");
    }
    let m = decode("SetBootstrapToken", &cases[4].1).unwrap();
    let CheckinPayload::SetBootstrapToken(s) = m.payload else {
        panic!()
    };
    assert_eq!(s.bootstrap_token.as_deref(), Some(&b"secret"[..]));
    assert_eq!(s.awaiting_configuration, Some(true));
    let m = decode("GetToken", &cases[7].1).unwrap();
    let CheckinPayload::GetToken(g) = m.payload else {
        panic!()
    };
    assert_eq!(g.token_service_type, "com.apple.maid");
    assert_eq!(
        g.token_parameters
            .unwrap()
            .get("SecurityToken")
            .and_then(Value::as_string),
        Some("s")
    );
    let m = decode("DeclarativeManagement", &cases[6].1).unwrap();
    let CheckinPayload::DeclarativeManagement(d) = m.payload else {
        panic!()
    };
    assert_eq!(
        (d.endpoint.as_str(), d.data.as_deref()),
        ("tokens", Some(&b"{}"[..]))
    );
}

#[test]
fn unknown_keys_are_preserved() {
    let m = decode(
        "CheckOut",
        &format!("{UDID}{TOPIC}<key>FutureKey</key><dict><key>x</key><integer>1</integer></dict>"),
    )
    .unwrap();
    assert_eq!(
        m.extra
            .get("FutureKey")
            .and_then(Value::as_dictionary)
            .and_then(|d| d.get("x"))
            .and_then(Value::as_signed_integer),
        Some(1)
    );
    assert!(m.to_dictionary().contains_key("FutureKey"));
    // Unknown keys keep the order the device sent them in.
    let m = decode(
        "CheckOut",
        &format!("<key>Zeta</key><true/>{UDID}<key>Alpha</key><true/>{TOPIC}<key>Mu</key><true/>"),
    )
    .unwrap();
    assert_eq!(m.extra.keys().collect::<Vec<_>>(), ["Zeta", "Alpha", "Mu"]);
}

#[test]
fn unknown_and_missing_message_types_are_typed_errors() {
    assert_eq!(
        decode("Bogus", UDID),
        Err(Error::UnknownMessageType("Bogus".into()))
    );
    let no_type = b"<plist><dict><key>UDID</key><string>x</string></dict></plist>";
    assert_eq!(
        CheckinMessage::decode(no_type, &Limits::default()),
        Err(Error::MissingKey("MessageType"))
    );
    let int_type = b"<plist><dict><key>MessageType</key><integer>1</integer></dict></plist>";
    assert_eq!(
        CheckinMessage::decode(int_type, &Limits::default()),
        Err(Error::WrongType {
            key: "MessageType",
            expected: "string"
        })
    );
    assert_eq!(
        decode(
            "TokenUpdate",
            &format!("{UDID}{TOPIC}<key>PushMagic</key><string>p</string>")
        ),
        Err(Error::MissingKey("Token"))
    );
    assert_eq!(
        decode(
            "TokenUpdate",
            &format!(
                "{UDID}{TOPIC}<key>Token</key><string>AQID</string><key>PushMagic</key><string>p</string>"
            )
        ),
        Err(Error::WrongType {
            key: "Token",
            expected: "data"
        })
    );
    assert!(matches!(
        CheckinMessage::decode(b"<plist><array/></plist>", &Limits::default()),
        Err(Error::Plist(PlistError::UnexpectedRoot { .. }))
    ));
    assert!(matches!(
        decode(
            "TokenUpdate",
            &format!("{UDID}{TOPIC}<key>Token</key><data>AAAA=</data>")
        ),
        Err(Error::Plist(PlistError::BadBase64 { .. }))
    ));
}

#[test]
fn channel_resolution() {
    let user = decode(
        "TokenUpdate",
        &format!("{UDID}{TOPIC}<key>Token</key><data>AQID</data><key>PushMagic</key><string>PM</string><key>UserID</key><string>A-B</string><key>UserShortName</key><string>jo</string><key>UserLongName</key><string>Jo Doe</string>"),
    )
    .unwrap();
    assert_eq!(
        user.channel,
        Channel::User {
            udid: "66ADE930-5FDF-5EC4-8429-15640684C489".into(),
            user_id: "A-B".into(),
            user_short_name: Some("jo".into()),
            user_long_name: Some("Jo Doe".into()),
        }
    );
    assert_eq!(
        user.channel.id(),
        "66ADE930-5FDF-5EC4-8429-15640684C489:A-B"
    );
    assert!(user.channel.is_user());

    let shared = decode(
        "UserAuthenticate",
        &format!("{UDID}<key>UserID</key><string>{SHARED_IPAD_USER_ID}</string><key>UserShortName</key><string>jo@example.com</string>"),
    )
    .unwrap();
    assert_eq!(shared.channel.kind(), "shared-ipad-user");
    assert_eq!(shared.channel.user_id(), Some("jo@example.com"));
    assert_ne!(shared.channel.user_id(), Some(SHARED_IPAD_USER_ID));
    assert_eq!(
        decode(
            "UserAuthenticate",
            &format!("{UDID}<key>UserID</key><string>{SHARED_IPAD_USER_ID}</string>")
        ),
        Err(Error::MissingKey("UserShortName"))
    );

    let ue = decode(
        "Authenticate",
        &format!("{TOPIC}<key>EnrollmentID</key><string>E1</string>"),
    )
    .unwrap();
    assert_eq!(
        ue.channel,
        Channel::UserEnrollmentDevice {
            enrollment_id: "E1".into()
        }
    );
    assert!(ue.channel.is_user_enrollment() && !ue.channel.is_user());
    let ue_user = decode(
        "CheckOut",
        &format!("{TOPIC}<key>EnrollmentID</key><string>E1</string><key>EnrollmentUserID</key><string>EU</string>"),
    )
    .unwrap();
    assert_eq!(ue_user.channel.id(), "E1:EU");
    assert_eq!(ue_user.channel.kind(), "user-enrollment-user");

    assert_eq!(decode("CheckOut", TOPIC), Err(Error::NoIdentity));
    assert_eq!(
        decode(
            "CheckOut",
            &format!("{TOPIC}<key>UDID</key><string></string>")
        ),
        Err(Error::NoIdentity)
    );
}

#[test]
fn push_request_from_token_update() {
    let m = decode(
        "TokenUpdate",
        &format!("{UDID}{TOPIC}<key>Token</key><data>AAH/</data><key>PushMagic</key><string>MAGIC\"1</string>"),
    )
    .unwrap();
    let CheckinPayload::TokenUpdate(t) = &m.payload else {
        panic!()
    };
    let push = t.push_request();
    assert_eq!(push.path, "/3/device/0001ff");
    assert_eq!(push.topic, "com.apple.mgmt.External.x");
    assert_eq!(push.body, br#"{"mdm":"MAGIC\"1"}"#);
    assert_eq!(
        PushRequest::new(&[0xAB], "t", "m").headers(),
        vec![
            ("apns-topic", "t".to_owned()),
            ("apns-push-type", "mdm".to_owned()),
            ("apns-priority", "10".to_owned()),
            ("apns-expiration", "0".to_owned()),
            ("content-type", "application/json".to_owned())
        ]
    );
}

/// Python's view of a plist body, as a sorted `key=repr(value)` listing.
fn python_dict(body: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import plistlib,sys; d=plistlib.loads(sys.stdin.buffer.read()); print(';'.join(f'{k}={d[k]!r}' for k in sorted(d)))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
#[cfg_attr(
    not(mdm_have_python3),
    ignore = "needs python3 (plistlib): apt-get install python3"
)]
fn checkin_responses() {
    let r = response::ok();
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(response::decline_user().status, 410);

    let r = response::digest_challenge("abc").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/xml"));
    assert_eq!(python_dict(&r.body), "DigestChallenge='abc'");

    let r = response::bootstrap_token(Some(b"tok")).unwrap();
    assert_eq!(python_dict(&r.body), "BootstrapToken=b'tok'");
    assert_eq!(response::bootstrap_token(None).unwrap().body.len(), 0);

    let r = response::token_data(b"\x00\x01").unwrap();
    assert_eq!(python_dict(&r.body), r"TokenData=b'\x00\x01'");

    let r = response::declarative_management(br#"{"SyncTokens":{}}"#.to_vec());
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.body, br#"{"SyncTokens":{}}"#);

    let r = response::unrecognized_device(ErrorFormat::Plist, Some("gone"), None).unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        python_dict(&r.body),
        "code='com.apple.unrecognized.device';description='gone'"
    );
    let r = response::unrecognized_device(ErrorFormat::Json, None, Some("say \"hi\"")).unwrap();
    assert_eq!(r.header("content-type"), Some("application/json"));
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sys; d=json.loads(sys.argv[1]); print(d['code'], d['message'], len(d))",
            std::str::from_utf8(&r.body).unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "com.apple.unrecognized.device say \"hi\" 2"
    );
}

#[test]
fn dictionary_api_matches_decode() {
    let mut d = Dictionary::new();
    d.insert(
        "MessageType".into(),
        Value::String("GetBootstrapToken".into()),
    );
    d.insert("UDID".into(), Value::String("U".into()));
    let m = CheckinMessage::from_dictionary(d.clone()).unwrap();
    assert_eq!(m.message_type(), MessageType::GetBootstrapToken);
    assert_eq!(Channel::resolve(&d).unwrap().device_id(), "U");
    assert_eq!(m.to_dictionary(), d);
}

#[test]
fn empty_identity_values_are_absent_but_kept() {
    let m = decode(
        "CheckOut",
        &format!(
            "{TOPIC}<key>UDID</key><string></string><key>EnrollmentID</key><string>E</string>"
        ),
    )
    .unwrap();
    assert_eq!(m.channel.kind(), "user-enrollment-device");
    assert_eq!(m.extra.get("UDID").and_then(Value::as_string), Some(""));
    let again = CheckinMessage::decode(&m.encode().unwrap(), &Limits::default()).unwrap();
    assert_eq!(again, m);
}

/// Check-ins and reports decode their root's entries straight into the
/// message (no dictionary built); the result, and every refusal, is the
/// same as decoding the dictionary first and interpreting it: on every
/// captured check-in and report, and on bodies with duplicate keys (a few,
/// and past the point where duplicates are found through a hash map),
/// unknown keys, nested dictionaries, a non-dictionary root and damage.
#[test]
fn direct_decode_agrees_with_the_dictionary_path() {
    use mdm_enroll::mdm::Report;
    use mdm_enroll::wire::plist::decode_dict;
    let limits = Limits::default();
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    for dir in ["tests/vectors/checkin", "tests/vectors/report"] {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for path in paths {
            bodies.push(std::fs::read(path).unwrap());
        }
    }
    assert!(bodies.len() >= 10, "the captured vectors are there");
    let many: String = (0..100)
        .map(|i| format!("<key>K{}</key><integer>{i}</integer>", i % 70))
        .collect();
    for extra in [
        format!("{UDID}{TOPIC}"),
        format!("{UDID}{TOPIC}<key>Topic</key><string>second</string>"),
        format!("{TOPIC}{UDID}<key>UDID</key><string>OTHER</string>{TOPIC}"),
        format!("{UDID}{TOPIC}<key>MessageType</key><string>CheckOut</string>"),
        format!("{UDID}{TOPIC}{many}"),
        format!(
            "{UDID}{TOPIC}<key>Nested</key><dict><key>a</key><string>1</string><key>a</key><string>2</string></dict>"
        ),
        format!("{UDID}<key>Topic</key><integer>1</integer>"),
        format!("<key>UDID</key><string></string><key>EnrollmentID</key><string>E</string>{TOPIC}"),
        format!(
            "{UDID}{TOPIC}<key>Status</key><string>Acknowledged</string><key>CommandUUID</key><string>C</string>"
        ),
    ] {
        for message_type in ["Authenticate", "TokenUpdate", "CheckOut", "Nonsense"] {
            bodies.push(body(message_type, &extra));
        }
        bodies.push(
            format!("<plist><dict><key>Status</key><string>Idle</string>{extra}</dict></plist>")
                .into_bytes(),
        );
    }
    bodies.push(b"<plist><array><string>MessageType</string></array></plist>".to_vec());
    bodies.push(b"<plist><dict><key>MessageType</key></dict></plist>".to_vec());
    // An empty root closed by its own tag (found by the `report` fuzz target).
    bodies.push(b"<?xml version=\"1.0\"?>\n\t<dict/>\n".to_vec());
    bodies.push(b"<plist><dict/></plist>".to_vec());
    bodies.push(b"<plist><dict><key>MessageType</key><string>CheckOut".to_vec());
    let captured = bodies.len();
    for i in 0..captured {
        let whole = bodies[i].clone();
        for cut in [
            whole.len() / 3,
            whole.len() / 2,
            whole.len().saturating_sub(9),
        ] {
            bodies.push(whole[..cut].to_vec());
        }
    }
    /// Both paths: the same message, or the same refusal; whether accepted.
    fn agree<T: PartialEq + std::fmt::Debug>(
        direct: Result<T, Error>,
        via_tree: Result<T, Error>,
    ) -> usize {
        match (&direct, &via_tree) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            _ => panic!("decode paths disagree: {direct:?} / {via_tree:?}"),
        }
        usize::from(direct.is_ok())
    }
    let (mut accepted_checkins, mut accepted_reports) = (0, 0);
    for body in &bodies {
        let tree = || decode_dict(body, &limits).map_err(Error::from);
        accepted_checkins += agree(
            CheckinMessage::decode(body, &limits),
            tree().and_then(CheckinMessage::from_dictionary),
        );
        accepted_reports += agree(
            Report::decode(body, &limits),
            tree().and_then(Report::from_dictionary),
        );
    }
    assert!(
        accepted_checkins >= 20 && accepted_reports >= 10,
        "{accepted_checkins} {accepted_reports}"
    );
}
