//! The captured `.mobileconfig` vectors parse exactly as `PROVENANCE.tsv` says.

use mdm_enroll::profile::{
    self, AccessRights, CertificateKind, PayloadKind, PayloadScope, Profile, ProfileContent,
    ProfileError,
};
use mdm_enroll::wire::Limits;
use mdm_enroll::wire::plist::PlistError;

fn file(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn vector(name: &str) -> Profile {
    let bytes = file(&format!("vectors/profile/{name}"));
    profile::parse(&bytes, &Limits::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .profile
}

#[test]
fn nanomdm_enroll_is_scep_plus_mdm() {
    let p = vector("nanomdm_enroll.mobileconfig");
    assert_eq!(p.payload_type(), "Configuration");
    assert_eq!(p.identifier, "com.github.micromdm.nanomdm");
    assert_eq!(p.display_name.as_deref(), Some("Enrollment Profile"));
    let [scep, mdm] = p.payloads() else {
        panic!("expected 2 payloads, got {:?}", p.payloads().len())
    };
    assert_eq!(scep.uuid, "CB90E976-AD44-4B69-8108-8095E6260978");
    let PayloadKind::Scep(s) = &scep.kind else {
        panic!("first payload is {:?}", scep.payload_type())
    };
    assert_eq!(s.url, "https://mdm.example.org/scep");
    assert_eq!(s.challenge.as_deref(), Some("SCEP-CHALLENGE-HERE"));
    assert_eq!(s.key_type.as_deref(), Some("RSA"));
    assert_eq!(s.key_usage, Some(5));
    assert_eq!(s.key_size, Some(2048));
    assert!(s.extra.is_empty());

    let PayloadKind::Mdm(m) = &mdm.kind else {
        panic!("second payload is {:?}", mdm.payload_type())
    };
    assert_eq!(m.identity_certificate_uuid, scep.uuid);
    assert_eq!(m.access_rights, Some(AccessRights::ALL));
    assert_eq!(m.check_out_when_removed, Some(true));
    assert_eq!(m.sign_message, Some(true));
    assert_eq!(
        m.server_capabilities.as_deref(),
        Some(
            &[
                "com.apple.mdm.per-user-connections".to_owned(),
                "com.apple.mdm.bootstraptoken".to_owned(),
                "com.apple.mdm.token".to_owned()
            ][..]
        )
    );
    assert_eq!(m.server_url, "https://mdm.example.org/mdm");
    assert_eq!(m.topic, "com.apple.mgmt.External.YOUR-PUSH-TOPIC-HERE");
    assert!(m.extra.is_empty());
    // A real template: Apple would install it.
    p.validate(&Default::default()).unwrap();
}

#[test]
fn zentral_restrictions_profile_is_generic() {
    let p = vector("zentral_test.mobileconfig");
    assert_eq!(p.identifier, "com.example.my-profile");
    assert_eq!(p.target_device_type, Some(1));
    assert_eq!(p.organization.as_deref(), Some("Zentral Pro Services"));
    // `&amp;` in the XML is a plain `&` in the value.
    assert!(
        p.description
            .as_deref()
            .unwrap()
            .starts_with("Auto-date&time,")
    );
    let [restrictions] = p.payloads() else {
        panic!("expected 1 payload")
    };
    let PayloadKind::Other {
        payload_type,
        content,
    } = &restrictions.kind
    else {
        panic!("restrictions payload should be generic")
    };
    assert_eq!(payload_type, "com.apple.applicationaccess");
    assert_eq!(
        content
            .get("forceAutomaticDateAndTime")
            .and_then(|v| v.as_boolean()),
        Some(true)
    );
    assert_eq!(
        content.get("allowAirPrint").and_then(|v| v.as_boolean()),
        Some(false)
    );
    assert!(!content.contains_key("PayloadUUID"));
    p.validate(&Default::default()).unwrap();
}

#[test]
fn sceptest_keeps_its_peer_drift() {
    let p = vector("scep_sceptest.mobileconfig");
    let [scep, root] = p.payloads() else {
        panic!("expected 2 payloads")
    };
    // PayloadVersion is <real>1</real> in this file.
    assert_eq!(scep.version, 1);
    let PayloadKind::Scep(s) = &scep.kind else {
        panic!("not scep")
    };
    assert_eq!(s.url, "http://localhost:9001/scep");
    assert_eq!(s.key_size, Some(1024));
    assert_eq!(s.retries, Some(3));
    assert_eq!(s.retry_delay, Some(10));
    assert_eq!(s.challenge, None);
    assert_eq!(s.subject, None);
    // `KeyType` without the space is not Apple's key: kept aside, not mistaken for `Key Type`.
    assert_eq!(s.key_type, None);
    assert_eq!(
        s.extra.get("KeyType").and_then(|v| v.as_string()),
        Some("RSA")
    );
    let PayloadKind::Certificate(c) = &root.kind else {
        panic!("not a certificate payload")
    };
    assert_eq!(c.kind, CertificateKind::Root);
    assert_eq!(c.file_name.as_deref(), Some("ca.crt"));
    // This peer put PEM text in <data>.
    assert!(c.content.starts_with(b"-----BEGIN CERTIFICATE-----"));
    assert_eq!(p.removal_disallowed, Some(false));
    // http SCEP URL: refused by default, accepted when the caller opts in.
    let err = p.validate(&Default::default()).unwrap_err();
    assert!(
        matches!(&err, ProfileError::InvalidValue { payload, key, .. }
            if payload == &scep.identifier && key == "PayloadContent.URL"),
        "{err}"
    );
    p.validate(&profile::ValidationOptions::allowing_http())
        .unwrap();
}

#[test]
fn cfgprofiles_pkcs1_holds_entrust_der() {
    use der::Decode;
    let p = vector("cfgprofiles_1.mobileconfig");
    assert_eq!(p.uuid, "2689BE77-60CE-4588-83F7-7CDC494DB1AA");
    assert_eq!(p.scope, Some(PayloadScope::User));
    let [cert] = p.payloads() else {
        panic!("expected 1 payload")
    };
    let PayloadKind::Certificate(c) = &cert.kind else {
        panic!("not a certificate payload")
    };
    assert_eq!(c.kind, CertificateKind::Pkcs1);
    let x509 = x509_cert::Certificate::from_der(&c.content).expect("DER certificate");
    let subject = x509.tbs_certificate().subject().to_string();
    assert!(
        subject.contains("Entrust Root Certification Authority - G2"),
        "{subject}"
    );
    assert_eq!(cert.organization.as_deref(), Some(""));
}

#[test]
fn acme_da_profile_is_typed() {
    let p = vector("cfgprofiles_acme-da.mobileconfig");
    let [acme] = p.payloads() else {
        panic!("expected 1 payload")
    };
    let PayloadKind::Acme(a) = &acme.kind else {
        panic!("not acme")
    };
    assert_eq!(a.attest, Some(true));
    assert!(a.hardware_bound);
    assert_eq!(a.key_type, "ECSECPrimeRandom");
    assert_eq!(a.key_size, 384);
    assert_eq!(a.client_identifier, "2678F47F-7A0B-4E7E-BEBC-29C1DCAF28C6");
    assert_eq!(
        a.directory_url,
        "https://127.0.0.1:8443/acme/appleacmesim/directory"
    );
    assert_eq!(
        a.extended_key_usage.as_deref(),
        Some(&["1.3.6.1.5.5.7.3.2".to_owned()][..])
    );
    assert_eq!(
        a.subject.0,
        vec![
            vec![("C".to_owned(), "NL".to_owned())],
            vec![("O".to_owned(), "Smallstep ACME DA Demo".to_owned())]
        ]
    );
    let san = a.subject_alt_name.as_ref().unwrap();
    assert_eq!(san.dns_name, ["site.example.com"]);
    assert_eq!(san.rfc822_name, ["alice@example.com", "bob@example.com"]);
    // KeyUsage (not the schema's UsageFlags) is kept as an unknown key.
    assert_eq!(
        a.extra.get("KeyUsage").and_then(|v| v.as_signed_integer()),
        Some(5)
    );
}

#[test]
fn malformed_vectors_are_plist_errors() {
    for name in [
        "cfgprofiles_multistring-error.mobileconfig",
        "cfgprofiles_multiple-nt-principals-error.mobileconfig",
    ] {
        let bytes = file(&format!("vectors/profile/{name}"));
        let err = profile::parse(&bytes, &Limits::default()).unwrap_err();
        assert!(
            matches!(err, ProfileError::Plist(PlistError::DanglingKey { .. })),
            "{name}: {err:?}"
        );
    }
}

/// With the dangling `<key>Subject</key>` removed, the remaining type errors
/// of the malformed vectors are typed errors naming payload and key.
#[test]
fn malformed_vectors_type_errors_name_the_key() {
    let cases = [
        (
            "cfgprofiles_multistring-error.mobileconfig",
            "SubjectAltName.uniformResourceIdentifier",
        ),
        (
            "cfgprofiles_multiple-nt-principals-error.mobileconfig",
            "SubjectAltName.ntPrincipalName",
        ),
    ];
    for (name, bad_key) in cases {
        let text = String::from_utf8(file(&format!("vectors/profile/{name}"))).unwrap();
        // Give Subject a valid value so only the SubjectAltName error remains.
        let fixed = text.replace(
            "<key>Subject</key>\n\t\t\t</dict>",
            "<key>Subject</key><array/>\n\t\t\t</dict>",
        );
        assert_ne!(fixed, text, "{name}: fixture edit did not apply");
        let err = profile::parse(fixed.as_bytes(), &Limits::default()).unwrap_err();
        match err {
            ProfileError::WrongType { payload, key, .. } => {
                assert_eq!(
                    payload,
                    "com.apple.security.acme.cbdc6238-feec-4171-8784-98e576bbb814"
                );
                assert_eq!(key, bad_key);
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn install_profile_command_payload_is_not_a_profile() {
    let cmd = file("vectors/command/micromdm_InstallProfile.plist");
    let v = plist::Value::from_reader_xml(std::io::Cursor::new(cmd)).unwrap();
    let payload = v
        .as_dictionary()
        .and_then(|d| d.get("Command"))
        .and_then(|c| c.as_dictionary())
        .and_then(|c| c.get("Payload"))
        .and_then(|p| p.as_data())
        .unwrap();
    assert_eq!(payload, b"foobarbaz");
    let err = profile::parse(payload, &Limits::default()).unwrap_err();
    assert!(matches!(err, ProfileError::Plist(_)), "{err:?}");
}

#[test]
fn vectors_round_trip_through_the_encoder() {
    for name in [
        "nanomdm_enroll.mobileconfig",
        "zentral_test.mobileconfig",
        "scep_sceptest.mobileconfig",
        "cfgprofiles_1.mobileconfig",
        "cfgprofiles_acme-da.mobileconfig",
    ] {
        let bytes = file(&format!("vectors/profile/{name}"));
        let original = plist::Value::from_reader_xml(std::io::Cursor::new(&bytes)).unwrap();
        let p = vector(name);
        let again =
            plist::Value::from_reader_xml(std::io::Cursor::new(p.to_xml().unwrap())).unwrap();
        let mut original = original;
        // Known normalisation: <real>1</real> PayloadVersion is written as <integer>.
        if name == "scep_sceptest.mobileconfig" {
            let scep = original
                .as_dictionary_mut()
                .and_then(|d| d.get_mut("PayloadContent"))
                .and_then(|c| c.as_array_mut())
                .and_then(|a| a.first_mut())
                .and_then(|s| s.as_dictionary_mut())
                .unwrap();
            scep.insert("PayloadVersion".into(), plist::Value::Integer(1.into()));
        }
        assert_eq!(sorted(original), sorted(again), "{name}");
        assert_eq!(
            Profile::from_plist(p.to_plist()).unwrap(),
            p,
            "{name}: decode(encode(p)) != p"
        );
    }
}

/// The same plist with every dictionary's keys sorted (key order carries no meaning).
fn sorted(v: plist::Value) -> plist::Value {
    match v {
        plist::Value::Dictionary(d) => {
            let mut d: plist::Dictionary = d.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            d.sort_keys();
            plist::Value::Dictionary(d)
        }
        plist::Value::Array(a) => plist::Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[test]
fn encrypted_profile_content_is_kept() {
    let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.enc</string>
<key>PayloadUUID</key><string>0B0C54C0-4A0B-4C86-9E5A-2A2E0D2E1C11</string>
<key>IsEncrypted</key><true/>
<key>EncryptedPayloadContent</key><data>MIAGCSqGSIb3DQEHA6CAMIACAQA=</data>
</dict></plist>"#;
    let p = profile::parse(xml, &Limits::default()).unwrap().profile;
    let ProfileContent::Encrypted(data) = &p.content else {
        panic!("{:?}", p.content)
    };
    assert_eq!(data.first(), Some(&0x30));
    assert!(p.payloads().is_empty());
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let bytes = file("vectors/profile/nanomdm_enroll.mobileconfig");
    let limits = Limits::default().with_max_body_bytes(100);
    assert!(matches!(
        profile::parse(&bytes, &limits),
        Err(ProfileError::TooLarge { max: 100, .. })
    ));
}
