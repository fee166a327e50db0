//! The MDM push certificate: topic, validity, renewal check, key pairing.

use std::time::{Duration, UNIX_EPOCH};

use mdm_enroll::crypto::RsaKey;
use mdm_enroll::push::{PushCertificate, PushCertificateError, PushIdentity};

const GOOD: &[u8] = include_bytes!("vectors/certs/micromdm_mock_push_cert.pem");
const NO_UID: &[u8] = include_bytes!("vectors/certs/micromdm_mock_push_cert_no_uid.pem");
const WRONG_PREFIX: &[u8] =
    include_bytes!("vectors/certs/micromdm_mock_push_cert_wrong_uid_prefix.pem");
const TOPIC: &str = "com.apple.mgmt.External.18a16429-886b-41f1-9c30-2bd04ae4fc37";

#[test]
fn topic_and_validity_from_pem_and_der() {
    let c = PushCertificate::from_pem(GOOD).unwrap();
    assert_eq!(c.topic(), TOPIC);
    // notBefore 2018-01-25T08:33:25Z, notAfter 2068-01-25T08:33:25Z.
    assert_eq!(
        c.not_before(),
        UNIX_EPOCH + Duration::from_secs(1_516_869_205)
    );
    assert_eq!(
        c.not_after(),
        UNIX_EPOCH + Duration::from_secs(3_094_706_005)
    );
    let der = c.certificate().der().to_vec();
    assert_eq!(PushCertificate::from_der(&der).unwrap(), c);
    assert_eq!(PushCertificate::from_pem_or_der(&der).unwrap(), c);
    assert_eq!(PushCertificate::from_pem_or_der(GOOD).unwrap(), c);
    let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert!(c.is_valid_at(at));
    assert!(!c.expires_within(at, Duration::from_secs(30 * 86_400)));
}

#[test]
fn refuses_certificates_without_an_mdm_topic() {
    assert_eq!(
        PushCertificate::from_pem(NO_UID),
        Err(PushCertificateError::NoTopic)
    );
    assert_eq!(
        PushCertificate::from_pem(WRONG_PREFIX),
        Err(PushCertificateError::NotMdmTopic(
            "wrong.prefix.18a16429-886b-41f1-9c30-2bd04ae4fc37".into()
        ))
    );
    assert!(matches!(
        PushCertificate::from_pem(b"not a certificate"),
        Err(PushCertificateError::Certificate(_))
    ));
    assert!(matches!(
        PushCertificate::from_der(&[0x30, 0x03, 0x02, 0x01, 0x01]),
        Err(PushCertificateError::Certificate(_))
    ));
}

#[test]
fn renewal_must_keep_the_topic() {
    let c = PushCertificate::from_pem(GOOD).unwrap();
    assert_eq!(c.ensure_topic(TOPIC), Ok(()));
    let err = c.ensure_topic("com.apple.mgmt.External.other").unwrap_err();
    assert_eq!(
        err,
        PushCertificateError::TopicMismatch {
            certificate: TOPIC.into(),
            enrolled: "com.apple.mgmt.External.other".into(),
        }
    );
    assert!(err.to_string().contains("com.apple.mgmt.External.other"));
}

#[test]
fn identity_needs_the_certificates_key() {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let other = RsaKey::generate(&mut rng, 2048).unwrap();
    let c = PushCertificate::from_pem(GOOD).unwrap();
    assert!(matches!(
        PushIdentity::new(c, other),
        Err(PushCertificateError::KeyMismatch)
    ));
    assert!(matches!(
        PushIdentity::from_pem_or_der(
            GOOD,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        ),
        Err(PushCertificateError::Key(_))
    ));
}
