//! Building profiles: Python's `plistlib` reads what we write, and
//! validation refuses what Apple refuses.

use std::io::Write;
use std::process::{Command, Stdio};

use mdm_enroll::profile::{
    self, AccessRights, CertificatePayload, MdmPayload, Payload, PayloadKind, PayloadUuid, Profile,
    ProfileError, ProfileService, ScepPayload, Subject, SubjectAltName, ValidationOptions,
};
use mdm_enroll::wire::Limits;

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

const FINGERPRINT: [u8; 32] = [0xAB; 32];

/// The enrollment profile the activation flow serves: SCEP + root + MDM.
fn enrollment() -> Profile {
    let mut rng = rng();
    let scep_uuid = PayloadUuid::random(&mut rng);
    let root_uuid = PayloadUuid::random(&mut rng);
    let scep = ScepPayload {
        name: Some("example-ca".into()),
        subject: Some(
            Subject::new()
                .with("O", "Example & Co <test>")
                .with("CN", "device-1")
                .with("2.5.4.5", "SERIAL1"),
        ),
        challenge: Some("s3cret-challenge".into()),
        key_size: Some(2048),
        key_type: Some("RSA".into()),
        key_usage: Some(5),
        ca_fingerprint: Some(FINGERPRINT.to_vec()),
        retries: Some(3),
        retry_delay: Some(10),
        subject_alt_name: Some(SubjectAltName {
            dns_name: vec!["device-1.example.com".into()],
            rfc822_name: vec!["a@example.com".into(), "b@example.com".into()],
            ..Default::default()
        }),
        ..ScepPayload::new("https://mdm.example.com/scep")
    };
    let mdm = MdmPayload {
        check_in_url: Some("https://mdm.example.com/checkin".into()),
        sign_message: Some(true),
        access_rights: Some(AccessRights::ALL),
        check_out_when_removed: Some(true),
        server_capabilities: Some(vec![
            profile::CAPABILITY_PER_USER_CONNECTIONS.into(),
            profile::CAPABILITY_BOOTSTRAP_TOKEN.into(),
        ]),
        server_url_pinning_certificate_uuids: Some(vec![root_uuid.into()]),
        ..MdmPayload::new(
            "https://mdm.example.com/mdm",
            "com.apple.mgmt.External.0a1b2c3d",
            scep_uuid,
        )
    };
    Profile::configuration("com.example.enroll", PayloadUuid::random(&mut rng), vec![])
        .with_display_name("Example MDM enrollment")
        .with_organization("Example")
        .with_description("Enrolls this Mac in Example MDM")
        .with_removal_disallowed(false)
        .with_payload(
            Payload::new(
                "com.example.enroll.root",
                root_uuid,
                CertificatePayload::root(vec![0x30, 0x03, 0x02, 0x01, 0x05]),
            )
            .with_display_name("Example TLS root"),
        )
        .with_payload(Payload::new("com.example.enroll.scep", scep_uuid, scep))
        .with_payload(
            Payload::new("com.example.enroll.mdm", PayloadUuid::random(&mut rng), mdm)
                .with_display_name("MDM"),
        )
}

/// Run Python's `plistlib` on `xml`: it asserts the spellings Apple relies
/// on, and writes the plist back out (sorted keys) for us to compare.
fn python_round_trip(xml: &[u8], checks: &str) -> Vec<u8> {
    let script = format!(
        "import plistlib, sys\n\
         p = plistlib.loads(sys.stdin.buffer.read())\n\
         {checks}\n\
         sys.stdout.buffer.write(plistlib.dumps(p, fmt=plistlib.FMT_XML, sort_keys=True))\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 on PATH");
    child.stdin.take().unwrap().write_all(xml).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "plistlib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
#[cfg_attr(
    not(mdm_have_python3),
    ignore = "needs python3 (plistlib): apt-get install python3"
)]
fn plistlib_reads_the_enrollment_profile_back() {
    let p = enrollment();
    let xml = p.build(&ValidationOptions::default()).unwrap();
    assert!(xml.starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist"));
    let checks = r#"
assert p['PayloadType'] == 'Configuration'
assert p['PayloadVersion'] == 1 and type(p['PayloadVersion']) is int
assert p['PayloadRemovalDisallowed'] is False
root, scep, mdm = p['PayloadContent']
assert root['PayloadType'] == 'com.apple.security.root'
assert root['PayloadContent'] == bytes([0x30, 0x03, 0x02, 0x01, 0x05])
sc = scep['PayloadContent']
assert scep['PayloadType'] == 'com.apple.security.scep'
assert sc['Key Type'] == 'RSA' and sc['Key Usage'] == 5 and sc['Keysize'] == 2048
assert 'KeyType' not in sc and 'KeyUsage' not in sc
assert sc['CAFingerprint'] == bytes([0xAB] * 32)
assert sc['Subject'] == [[['O', 'Example & Co <test>']], [['CN', 'device-1']], [['2.5.4.5', 'SERIAL1']]]
assert sc['SubjectAltName'] == {'dNSName': 'device-1.example.com', 'rfc822Name': ['a@example.com', 'b@example.com']}
assert sc['Challenge'] == 's3cret-challenge' and sc['Retries'] == 3 and sc['RetryDelay'] == 10
assert mdm['PayloadType'] == 'com.apple.mdm'
assert mdm['IdentityCertificateUUID'] == scep['PayloadUUID']
assert mdm['ServerURLPinningCertificateUUIDs'] == [root['PayloadUUID']]
assert mdm['AccessRights'] == 8191 and mdm['SignMessage'] is True and mdm['CheckOutWhenRemoved'] is True
assert mdm['Topic'] == 'com.apple.mgmt.External.0a1b2c3d'
assert mdm['ServerCapabilities'] == ['com.apple.mdm.per-user-connections', 'com.apple.mdm.bootstraptoken']
import re
uuids = [p['PayloadUUID']] + [x['PayloadUUID'] for x in p['PayloadContent']]
assert len(set(uuids)) == 4
for u in uuids:
    assert re.fullmatch(r'[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}', u), u
"#;
    let back = python_round_trip(&xml, checks);
    // Python's re-serialisation decodes to the same plist as ours, and to the same profile.
    let ours = plist::Value::from_reader_xml(std::io::Cursor::new(&xml)).unwrap();
    let theirs = plist::Value::from_reader_xml(std::io::Cursor::new(&back)).unwrap();
    assert_eq!(ours, theirs);
    let reparsed = profile::parse(&back, &Limits::default()).unwrap().profile;
    assert_eq!(reparsed, p);
}

#[test]
#[cfg_attr(
    not(mdm_have_python3),
    ignore = "needs python3 (plistlib): apt-get install python3"
)]
fn profile_service_payload_content_is_a_dictionary() {
    let mut rng = rng();
    let challenge = "one-time-7f3a".to_owned();
    let p = Profile::profile_service(
        "com.example.ota",
        PayloadUuid::random(&mut rng),
        ProfileService::new(
            "https://mdm.example.com/ota/enroll",
            ProfileService::DEFAULT_ATTRIBUTES,
            Some(challenge),
        ),
    )
    .with_display_name("Example device enrollment")
    .with_organization("Example");
    let xml = p.build(&ValidationOptions::default()).unwrap();
    let checks = r#"
assert p['PayloadType'] == 'Profile Service'
assert p['PayloadVersion'] == 1
c = p['PayloadContent']
assert isinstance(c, dict), type(c)
assert c['URL'] == 'https://mdm.example.com/ota/enroll'
assert c['DeviceAttributes'] == ['UDID', 'VERSION', 'PRODUCT', 'SERIAL', 'MEID', 'IMEI']
assert c['Challenge'] == 'one-time-7f3a'
"#;
    let back = python_round_trip(&xml, checks);
    assert_eq!(
        profile::parse(&back, &Limits::default()).unwrap().profile,
        p
    );
}

#[test]
fn uuids_are_random_v4_upper_case() {
    let mut rng = rng();
    let a = PayloadUuid::random(&mut rng).to_string();
    let b = PayloadUuid::random(&mut rng).to_string();
    assert_ne!(a, b);
    for u in [&a, &b] {
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4', "{u}");
        assert!(matches!(u.as_bytes()[19], b'8' | b'9' | b'A' | b'B'), "{u}");
        assert!(!u.chars().any(|c| c.is_ascii_lowercase()), "{u}");
    }
}

fn mdm_of(p: &mut Profile) -> &mut MdmPayload {
    match &mut p.content {
        profile::ProfileContent::Configuration(payloads) => payloads
            .iter_mut()
            .find_map(|x| match &mut x.kind {
                PayloadKind::Mdm(m) => Some(m),
                _ => None,
            })
            .unwrap(),
        _ => unreachable!(),
    }
}

fn scep_of(p: &mut Profile) -> &mut ScepPayload {
    match &mut p.content {
        profile::ProfileContent::Configuration(payloads) => payloads
            .iter_mut()
            .find_map(|x| match &mut x.kind {
                PayloadKind::Scep(s) => Some(s),
                _ => None,
            })
            .unwrap(),
        _ => unreachable!(),
    }
}

fn refused(p: &Profile) -> ProfileError {
    let err = p.validate(&ValidationOptions::default()).unwrap_err();
    // Build refuses the same way.
    assert_eq!(
        p.build(&ValidationOptions::default())
            .unwrap_err()
            .to_string(),
        err.to_string()
    );
    err
}

fn assert_invalid(err: ProfileError, want_payload: &str, want_key: &str) {
    match &err {
        ProfileError::InvalidValue { payload, key, .. } => {
            assert_eq!(
                (payload.as_str(), key.as_str()),
                (want_payload, want_key),
                "{err}"
            );
        }
        other => panic!("expected InvalidValue for {want_key}, got {other:?}"),
    }
}

#[test]
fn identity_certificate_uuid_must_name_an_identity_payload_here() {
    let mut p = enrollment();
    mdm_of(&mut p).identity_certificate_uuid = "00000000-0000-4000-8000-000000000000".into();
    let err = refused(&p);
    assert!(
        matches!(&err, ProfileError::DanglingReference { payload, key, .. }
            if payload == "com.example.enroll.mdm" && key == "IdentityCertificateUUID"),
        "{err:?}"
    );
    // Naming the root certificate payload is no better: it holds no private key.
    let root_uuid = p.payloads()[0].uuid.clone();
    mdm_of(&mut p).identity_certificate_uuid = root_uuid;
    assert!(matches!(
        refused(&p),
        ProfileError::DanglingReference { .. }
    ));
}

#[test]
fn pinning_uuids_must_name_certificate_payloads() {
    let mut p = enrollment();
    mdm_of(&mut p).server_url_pinning_certificate_uuids = Some(vec!["nope".into()]);
    assert!(matches!(
        refused(&p),
        ProfileError::DanglingReference { key, .. } if key == "ServerURLPinningCertificateUUIDs"
    ));
}

#[test]
fn topic_must_be_an_mdm_push_topic() {
    for bad in [
        "io.micromdm.topic.x",
        "com.apple.mgmt.",
        "COM.APPLE.MGMT.External.x",
        "",
    ] {
        let mut p = enrollment();
        mdm_of(&mut p).topic = bad.into();
        assert_invalid(refused(&p), "com.example.enroll.mdm", "Topic");
    }
}

#[test]
fn urls_must_be_https_unless_the_caller_allows_http() {
    let mut p = enrollment();
    mdm_of(&mut p).server_url = "http://localhost:8080/mdm".into();
    assert_invalid(refused(&p), "com.example.enroll.mdm", "ServerURL");
    p.validate(&ValidationOptions::allowing_http()).unwrap();

    for bad in [
        "ftp://x/mdm",
        "https://",
        "https:///path",
        "https://host/a b",
        "mdm.example.com",
    ] {
        let mut p = enrollment();
        mdm_of(&mut p).check_in_url = Some(bad.into());
        assert_invalid(refused(&p), "com.example.enroll.mdm", "CheckInURL");
        assert!(
            p.validate(&ValidationOptions::allowing_http()).is_err(),
            "{bad}"
        );
    }

    let mut p = enrollment();
    scep_of(&mut p).url = "http://ca.example.com/scep".into();
    assert_invalid(refused(&p), "com.example.enroll.scep", "PayloadContent.URL");

    let mut rng = rng();
    let ota = Profile::profile_service(
        "com.example.ota",
        PayloadUuid::random(&mut rng),
        ProfileService::new("http://x/ota", ["UDID"], None),
    );
    assert_invalid(refused(&ota), "com.example.ota", "PayloadContent.URL");
}

#[test]
fn access_rights_zero_outside_or_inconsistent_are_refused() {
    for bits in [0, 8192, 0x10000, 2, 128, 2 | 64 | 128] {
        let mut p = enrollment();
        mdm_of(&mut p).access_rights = Some(AccessRights(bits));
        assert_invalid(refused(&p), "com.example.enroll.mdm", "AccessRights");
    }
    for bits in [1, 3, 16, 64 | 128, 8191] {
        let mut p = enrollment();
        mdm_of(&mut p).access_rights = Some(AccessRights(bits));
        p.validate(&ValidationOptions::default())
            .unwrap_or_else(|e| panic!("{bits}: {e}"));
    }
}

#[test]
fn payload_uuids_and_identifiers_must_be_unique() {
    let mut p = enrollment();
    let top = p.uuid.clone();
    if let profile::ProfileContent::Configuration(payloads) = &mut p.content {
        payloads[0].uuid = top.clone();
    }
    assert!(matches!(
        refused(&p),
        ProfileError::DuplicateUuid { payload, uuid } if payload == "com.example.enroll.root" && uuid == top
    ));

    let mut p = enrollment();
    if let profile::ProfileContent::Configuration(payloads) = &mut p.content {
        payloads[2].identifier = payloads[1].identifier.clone();
    }
    assert!(matches!(
        refused(&p),
        ProfileError::DuplicateIdentifier { payload } if payload == "com.example.enroll.scep"
    ));
}

#[test]
fn scep_values_outside_apples_ranges_are_refused() {
    type Edit = fn(&mut ScepPayload);
    let cases: [(&str, Edit); 5] = [
        ("PayloadContent.Keysize", |s| s.key_size = Some(3072)),
        ("PayloadContent.Key Type", |s| {
            s.key_type = Some("EC".into())
        }),
        ("PayloadContent.Key Usage", |s| s.key_usage = Some(2)),
        ("PayloadContent.Subject", |s| {
            s.subject = Some(Subject::new().with("commonName", "x"))
        }),
        ("PayloadContent.CAFingerprint", |s| {
            s.ca_fingerprint = Some(vec![])
        }),
    ];
    for (key, edit) in cases {
        let mut p = enrollment();
        edit(scep_of(&mut p));
        assert_invalid(refused(&p), "com.example.enroll.scep", key);
    }
}

#[test]
fn required_strings_must_not_be_empty() {
    let mut p = enrollment();
    p.identifier = String::new();
    assert_invalid(refused(&p), "profile", "PayloadIdentifier");

    let mut rng = rng();
    let ota = Profile::profile_service(
        "com.example.ota",
        PayloadUuid::random(&mut rng),
        ProfileService::new("https://x/ota", Vec::<String>::new(), None),
    );
    assert_invalid(
        refused(&ota),
        "com.example.ota",
        "PayloadContent.DeviceAttributes",
    );
}

#[test]
fn missing_required_keys_on_parse_name_payload_and_key() {
    let p = enrollment();
    let mut v = p.to_plist();
    let mdm = v
        .as_dictionary_mut()
        .and_then(|d| d.get_mut("PayloadContent"))
        .and_then(|c| c.as_array_mut())
        .and_then(|a| a.get_mut(2))
        .and_then(|m| m.as_dictionary_mut())
        .unwrap();
    mdm.remove("Topic");
    assert!(matches!(
        Profile::from_plist(v.clone()).unwrap_err(),
        ProfileError::MissingKey { payload, key }
            if payload == "com.example.enroll.mdm" && key == "Topic"
    ));
    let mdm = v
        .as_dictionary_mut()
        .and_then(|d| d.get_mut("PayloadContent"))
        .and_then(|c| c.as_array_mut())
        .and_then(|a| a.get_mut(2))
        .and_then(|m| m.as_dictionary_mut())
        .unwrap();
    mdm.insert("Topic".into(), plist::Value::Integer(3.into()));
    assert!(matches!(
        Profile::from_plist(v).unwrap_err(),
        ProfileError::WrongType { payload, key, expected: "a string" }
            if payload == "com.example.enroll.mdm" && key == "Topic"
    ));
}

#[test]
fn response_serves_aspen_config() {
    let body = enrollment().to_xml().unwrap();
    let r = profile::response(body.clone(), Some("enroll\".mobileconfig"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/x-apple-aspen-config")
    );
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"enroll.mobileconfig\"")
    );
    assert_eq!(r.body, body);
}

#[test]
fn only_one_mdm_payload_per_profile() {
    let mut p = enrollment();
    let mut second = p.payloads()[2].clone();
    second.identifier = "com.example.enroll.mdm2".into();
    second.uuid = PayloadUuid::random(&mut rng()).into();
    p = p.with_payload(second);
    assert_invalid(refused(&p), "com.example.enroll.mdm2", "PayloadType");
}
