//! The test device CA, standing in for Apple's device identity CA, and the
//! key-and-certificate pairs ([`Identity`]) it issues.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::device::{DeviceError, proto};
use crate::cms::Certificate;
use crate::crypto::{RsaKey, Signer};

/// A key and the certificate naming it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The private key.
    pub key: Arc<RsaKey>,
    /// Its certificate.
    pub certificate: Certificate,
}

pub(super) fn cms_cert(c: &x509_cert::Certificate) -> Result<Certificate, DeviceError> {
    Certificate::from_der(&crate::pki::to_der(c).map_err(proto)?).map_err(proto)
}

pub(super) fn name(text: &str) -> Result<x509_cert::name::Name, DeviceError> {
    text.parse().map_err(proto)
}

/// A test "device CA" standing in for Apple's device identity CA: the
/// server trusts it with [`DeviceAttributesVerifier::add_device_anchor`](crate::cms::DeviceAttributesVerifier::add_device_anchor).
#[derive(Debug, Clone)]
pub struct TestDeviceCa {
    ca: Identity,
}

impl TestDeviceCa {
    /// A self-signed CA for `key`, valid for a year from `now`.
    pub fn new<R: rand_core::CryptoRng + ?Sized>(
        key: RsaKey,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Self, DeviceError> {
        let cert = crate::pki::create_ca(
            &key,
            name("CN=Test Device CA,O=mdm-enroll tests")?,
            crate::pki::random_serial(rng),
            crate::pki::validity(now, Duration::from_secs(365 * 86400)).map_err(proto)?,
        )
        .map_err(proto)?;
        Ok(Self {
            ca: Identity {
                key: Arc::new(key),
                certificate: cms_cert(&cert)?,
            },
        })
    }

    /// The CA certificate to trust.
    pub fn certificate(&self) -> &Certificate {
        &self.ca.certificate
    }

    /// A device identity for `key` (what a Mac's attribute signature carries).
    pub fn issue<R: rand_core::CryptoRng + ?Sized>(
        &self,
        key: Arc<RsaKey>,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Identity, DeviceError> {
        let x509 = x509_cert::Certificate::from_der_bytes(self.ca.certificate.der())?;
        let spki = spki::SubjectPublicKeyInfoOwned::from_key(Signer::public_key(key.as_ref()))
            .map_err(proto)?;
        let cert = crate::pki::issue(
            &x509,
            self.ca.key.as_ref(),
            spki,
            &crate::pki::LeafPolicy::client_auth(name("CN=Test Device Identity")?),
            crate::pki::random_serial(rng),
            crate::pki::validity(now, Duration::from_secs(365 * 86400)).map_err(proto)?,
        )
        .map_err(proto)?;
        Ok(Identity {
            key,
            certificate: cms_cert(&cert)?,
        })
    }
}

pub(super) trait FromDerBytes: Sized {
    fn from_der_bytes(der: &[u8]) -> Result<Self, DeviceError>;
}

impl FromDerBytes for x509_cert::Certificate {
    fn from_der_bytes(der: &[u8]) -> Result<Self, DeviceError> {
        use der::Decode;
        Self::from_der(der).map_err(proto)
    }
}
