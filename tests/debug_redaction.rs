//! `Debug` never prints push magic, device tokens, challenges, passwords or
//! key material: each type that carries one prints a stand-in (`<redacted>`
//! or `<redacted, N bytes>`) and still prints its other fields.

use mdm_enroll::activation::PushTarget;
use mdm_enroll::cms::DeviceAttributes;
use mdm_enroll::mdm::checkin::{SetBootstrapToken, TokenUpdate, UserAuthenticate};
use mdm_enroll::profile::{CertificateKind, CertificatePayload, ProfileService, ScepPayload};
use mdm_enroll::push::request::PushRequest;

const TOKEN: [u8; 8] = [0xDE, 0xAD, 0xBE, 0xEF, 0x13, 0x37, 0xC0, 0xDE];
const MAGIC: &str = "magic-7f3a9c1e-4b2d";
const CHALLENGE: &str = "challenge-91b2c3d4e5";
const PASSWORD: &str = "password-x8y7z6";

/// `debug` holds none of the forms `secret` could be printed in: as text,
/// as a `Debug` byte list, or as hex in either case.
fn assert_hidden(debug: &str, secret: &[u8]) {
    let list = format!("{secret:?}");
    let forms = [
        String::from_utf8_lossy(secret).into_owned(),
        list.trim_matches(['[', ']']).to_owned(),
        mdm_enroll::wire::hex::lower(secret),
        mdm_enroll::wire::hex::upper(secret),
    ];
    for form in forms {
        assert!(!debug.contains(&form), "{debug} shows {form}");
    }
    assert!(debug.contains("<redacted"), "{debug}");
}

#[test]
fn push_target_hides_token_and_magic() {
    let target = PushTarget {
        topic: "com.apple.mgmt.test".into(),
        token: TOKEN.to_vec(),
        push_magic: MAGIC.into(),
    };
    let debug = format!("{target:?}");
    assert_hidden(&debug, &TOKEN);
    assert_hidden(&debug, MAGIC.as_bytes());
    assert!(debug.contains("com.apple.mgmt.test"), "{debug}");
    assert!(debug.contains("8 bytes"), "{debug}");
}

#[test]
fn push_request_hides_token_and_magic() {
    let request = PushRequest::new(&TOKEN, "com.apple.mgmt.test", MAGIC);
    let debug = format!("{request:?}");
    assert_hidden(&debug, &TOKEN);
    assert_hidden(&debug, MAGIC.as_bytes());
    assert!(debug.contains("com.apple.mgmt.test"), "{debug}");
}

#[test]
fn token_update_hides_token_magic_and_unlock_token() {
    let unlock = b"unlock-token-bytes-5c6d".to_vec();
    let update = TokenUpdate {
        topic: "com.apple.mgmt.test".into(),
        token: TOKEN.to_vec(),
        push_magic: MAGIC.into(),
        unlock_token: Some(unlock.clone()),
        awaiting_configuration: Some(true),
        not_on_console: None,
    };
    let debug = format!("{update:?}");
    assert_hidden(&debug, &TOKEN);
    assert_hidden(&debug, MAGIC.as_bytes());
    assert_hidden(&debug, &unlock);
    assert!(
        debug.contains("awaiting_configuration: Some(true)"),
        "{debug}"
    );
}

#[test]
fn set_bootstrap_token_hides_the_token() {
    let token = b"bootstrap-token-e4f5a6".to_vec();
    let message = SetBootstrapToken {
        bootstrap_token: Some(token.clone()),
        awaiting_configuration: None,
    };
    assert_hidden(&format!("{message:?}"), &token);
}

#[test]
fn user_authenticate_hides_the_digest_response() {
    let message = UserAuthenticate {
        digest_response: Some(PASSWORD.into()),
    };
    assert_hidden(&format!("{message:?}"), PASSWORD.as_bytes());
}

#[test]
fn scep_payload_hides_the_challenge() {
    let mut payload = ScepPayload::new("https://mdm.example/scep");
    payload.challenge = Some(CHALLENGE.into());
    let debug = format!("{payload:?}");
    assert_hidden(&debug, CHALLENGE.as_bytes());
    assert!(debug.contains("https://mdm.example/scep"), "{debug}");
}

#[test]
fn profile_service_hides_the_challenge() {
    let service = ProfileService::new(
        "https://mdm.example/enroll",
        ProfileService::DEFAULT_ATTRIBUTES,
        Some(CHALLENGE.into()),
    );
    let debug = format!("{service:?}");
    assert_hidden(&debug, CHALLENGE.as_bytes());
    assert!(debug.contains("UDID"), "{debug}");
}

#[test]
fn device_attributes_hide_the_challenge() {
    let attributes = DeviceAttributes {
        challenge: Some(CHALLENGE.into()),
        udid: Some("UDID-1234".into()),
        ..DeviceAttributes::default()
    };
    let debug = format!("{attributes:?}");
    assert_hidden(&debug, CHALLENGE.as_bytes());
    assert!(debug.contains("UDID-1234"), "{debug}");
}

#[test]
fn certificate_payload_hides_pkcs12_bytes_and_password() {
    let p12 = b"pkcs12-identity-with-a-key-9a8b".to_vec();
    let mut payload = CertificatePayload::new(CertificateKind::Pkcs12, p12.clone());
    payload.password = Some(PASSWORD.into());
    let debug = format!("{payload:?}");
    assert_hidden(&debug, &p12);
    assert_hidden(&debug, PASSWORD.as_bytes());
    assert!(debug.contains("Pkcs12"), "{debug}");
}
