//! The MDM push certificate: its topic, its validity, and the key that goes
//! with it.
//!
//! Apple's Push Certificates portal issues the certificate; its subject `UID`
//! attribute (OID 0.9.2342.19200300.100.1.1) is the push topic,
//! `com.apple.mgmt.External.<uuid>`, which every enrolled device stores in
//! its MDM payload. A renewed certificate must keep that topic, or the
//! enrolled devices no longer answer: [`PushCertificate::ensure_topic`].
//!
//! PEM and DER are read here, and PKCS#12 (`.p12` as exported by Keychain
//! Access or `openssl pkcs12 -export`) with [`PushIdentity::from_pkcs12`]
//! (the crate's own reader, [`super::pkcs12`]: the RustCrypto `pkcs12` and
//! `p12-keystore` crates pin `cms` =0.3.0-pre.1 against this crate's `cms`
//! =0.3.0-rc.0).

use std::time::{Duration, SystemTime};

use const_oid::db::rfc4519;
use der::Decode;
use thiserror::Error;
use x509_cert::ext::pkix::name::DirectoryString;
use x509_cert::name::Name;

use crate::cms::{Certificate, CertificateError};
use crate::crypto::{RsaKey, Signer};

/// The prefix every MDM push topic starts with.
pub const MDM_TOPIC_PREFIX: &str = "com.apple.mgmt.";

/// Why a push certificate or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PushCertificateError {
    /// The bytes are not a certificate.
    #[error("push certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// The subject could not be decoded.
    #[error("push certificate subject: {0}")]
    Subject(String),
    /// The subject has no `UID` attribute, so there is no topic.
    #[error("push certificate has no UID (topic) in its subject")]
    NoTopic,
    /// The `UID` does not start with `com.apple.mgmt.`: not an MDM push certificate.
    #[error("push certificate topic {0:?} does not start with {MDM_TOPIC_PREFIX:?}")]
    NotMdmTopic(String),
    /// The certificate's topic differs from the one devices enrolled with.
    #[error(
        "push certificate topic {certificate:?} differs from the enrolled topic {enrolled:?}; \
         renew the certificate that has the enrolled topic (same Apple ID in the Push Certificates portal)"
    )]
    TopicMismatch {
        /// The certificate's topic.
        certificate: String,
        /// The topic enrolled devices use.
        enrolled: String,
    },
    /// The private key could not be read.
    #[error("push key: {0}")]
    Key(String),
    /// The private key is not the certificate's.
    #[error("push key does not match the push certificate's public key")]
    KeyMismatch,
    /// The PKCS#12 file could not be read.
    #[error("push identity: {0}")]
    Pkcs12(#[from] super::pkcs12::Pkcs12Error),
}

/// An MDM push certificate with its topic and validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushCertificate {
    certificate: Certificate,
    topic: String,
}

impl PushCertificate {
    /// Parse a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, PushCertificateError> {
        Self::new(Certificate::from_der(der)?)
    }

    /// Parse the first `CERTIFICATE` block of a PEM text (further blocks,
    /// such as an intermediate, are ignored).
    pub fn from_pem(pem: &[u8]) -> Result<Self, PushCertificateError> {
        let first = Certificate::from_pem(pem)?
            .into_iter()
            .next()
            .ok_or(CertificateError::Pem("no CERTIFICATE block"))?;
        Self::new(first)
    }

    /// Parse PEM if the bytes hold a PEM header, else DER.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, PushCertificateError> {
        if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            Self::from_pem(bytes)
        } else {
            Self::from_der(bytes)
        }
    }

    /// Take a parsed certificate; its subject must name an MDM topic.
    pub fn new(certificate: Certificate) -> Result<Self, PushCertificateError> {
        let subject = Name::from_der(certificate.subject_der())
            .map_err(|e| PushCertificateError::Subject(e.to_string()))?;
        let topic = subject
            .iter()
            .find(|atv| atv.oid == rfc4519::UID)
            .ok_or(PushCertificateError::NoTopic)?;
        let topic = match DirectoryString::try_from(&topic.value) {
            Ok(s) => String::from(s),
            // Some tools write the UID as an IA5String.
            Err(_) => topic
                .value
                .decode_as::<der::asn1::Ia5String>()
                .map(|s| s.to_string())
                .map_err(|e| PushCertificateError::Subject(e.to_string()))?,
        };
        if !topic.starts_with(MDM_TOPIC_PREFIX) || topic.len() == MDM_TOPIC_PREFIX.len() {
            return Err(PushCertificateError::NotMdmTopic(topic));
        }
        Ok(Self { certificate, topic })
    }

    /// The push topic (`apns-topic`, and `Topic` in the MDM payload).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// Start of the validity period.
    pub fn not_before(&self) -> SystemTime {
        self.certificate.not_before().to_system_time()
    }

    /// End of the validity period.
    pub fn not_after(&self) -> SystemTime {
        self.certificate.not_after().to_system_time()
    }

    /// Whether `now` lies within the validity period.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.certificate.is_valid_at(now)
    }

    /// Whether the certificate has expired by `now + within` (true when
    /// already expired): warn when this holds for 30 days.
    pub fn expires_within(&self, now: SystemTime, within: Duration) -> bool {
        now.checked_add(within)
            .is_none_or(|limit| self.not_after() <= limit)
    }

    /// Refuse a certificate whose topic is not `enrolled`, the topic devices
    /// already enrolled with (renewal must keep the topic).
    pub fn ensure_topic(&self, enrolled: &str) -> Result<(), PushCertificateError> {
        if self.topic == enrolled {
            Ok(())
        } else {
            Err(PushCertificateError::TopicMismatch {
                certificate: self.topic.clone(),
                enrolled: enrolled.to_owned(),
            })
        }
    }
}

/// A push certificate and its private key: the APNs TLS client identity.
#[derive(Clone)]
pub struct PushIdentity {
    certificate: PushCertificate,
    key: RsaKey,
}

impl std::fmt::Debug for PushIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushIdentity")
            .field("topic", &self.certificate.topic)
            .finish_non_exhaustive()
    }
}

impl PushIdentity {
    /// Pair `certificate` with `key`; the key must be the certificate's.
    pub fn new(certificate: PushCertificate, key: RsaKey) -> Result<Self, PushCertificateError> {
        if !certificate.certificate.has_public_key(key.public_key()) {
            return Err(PushCertificateError::KeyMismatch);
        }
        Ok(Self { certificate, key })
    }

    /// Read a certificate (PEM or DER) and a key (PKCS#8 or PKCS#1, PEM or DER).
    pub fn from_pem_or_der(certificate: &[u8], key: &[u8]) -> Result<Self, PushCertificateError> {
        let key =
            RsaKey::from_pem_or_der(key).map_err(|e| PushCertificateError::Key(e.to_string()))?;
        Self::new(PushCertificate::from_pem_or_der(certificate)?, key)
    }

    /// Read a PKCS#12 file (`.p12`) holding the push certificate and its key;
    /// further certificates in it (a chain) are ignored. See [`super::pkcs12`].
    pub fn from_pkcs12(bytes: &[u8], password: &str) -> Result<Self, PushCertificateError> {
        let identity = super::pkcs12::parse(bytes, password)?;
        Self::new(PushCertificate::new(identity.certificate)?, identity.key)
    }

    /// The certificate.
    pub fn certificate(&self) -> &PushCertificate {
        &self.certificate
    }

    /// The private key.
    pub fn key(&self) -> &RsaKey {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_window() {
        let pem = include_bytes!("../../tests/vectors/certs/micromdm_mock_push_cert.pem");
        let c = PushCertificate::from_pem(pem).unwrap();
        let end = c.not_after();
        let day = Duration::from_secs(86_400);
        assert!(!c.expires_within(end - 31 * day, 30 * day));
        assert!(c.expires_within(end - 29 * day, 30 * day));
        assert!(c.expires_within(end + day, Duration::ZERO));
    }
}
