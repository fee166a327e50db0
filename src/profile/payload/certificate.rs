//! Certificate and identity payloads ([`CertificatePayload`], by
//! [`CertificateKind`]): `com.apple.security.root`, `.pkcs1`, `.pem` and
//! `.pkcs12`.

use plist::{Dictionary, Value};

use crate::profile::dict::{Fields, Out};
use crate::profile::{ProfileError, TYPE_PEM, TYPE_PKCS1, TYPE_PKCS12, TYPE_ROOT};

/// Which certificate payload a [`CertificatePayload`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateKind {
    /// `com.apple.security.root`: a trusted root, DER.
    Root,
    /// `com.apple.security.pkcs1`: a certificate, DER.
    Pkcs1,
    /// `com.apple.security.pem`: a certificate, PEM.
    Pem,
    /// `com.apple.security.pkcs12`: an identity (certificate and key).
    Pkcs12,
}

impl CertificateKind {
    /// The `PayloadType` string.
    pub fn payload_type(self) -> &'static str {
        match self {
            Self::Root => TYPE_ROOT,
            Self::Pkcs1 => TYPE_PKCS1,
            Self::Pem => TYPE_PEM,
            Self::Pkcs12 => TYPE_PKCS12,
        }
    }

    /// Look a kind up by `PayloadType`.
    pub fn from_payload_type(payload_type: &str) -> Option<Self> {
        [Self::Root, Self::Pkcs1, Self::Pem, Self::Pkcs12]
            .into_iter()
            .find(|k| k.payload_type() == payload_type)
    }
}

/// A certificate or identity payload: `PayloadContent` is the certificate
/// (DER for root/pkcs1) or PKCS#12 bytes. `Debug` prints the content's
/// length only (PKCS#12 holds a key) and not the `Password`.
#[derive(Clone, PartialEq)]
pub struct CertificatePayload {
    /// Which payload type.
    pub kind: CertificateKind,
    /// `PayloadContent`: the certificate or PKCS#12 bytes.
    pub content: Vec<u8>,
    /// `PayloadCertificateFileName`.
    pub file_name: Option<String>,
    /// `Password` (PKCS#12 only).
    pub password: Option<String>,
    /// Keys not modelled above.
    pub extra: Dictionary,
}

impl std::fmt::Debug for CertificatePayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::redact::{RedactedBytes, opt};
        f.debug_struct("CertificatePayload")
            .field("kind", &self.kind)
            .field("content", &RedactedBytes(self.content.len()))
            .field("file_name", &self.file_name)
            .field("password", &opt(&self.password))
            .field("extra", &self.extra)
            .finish()
    }
}

impl CertificatePayload {
    /// A trusted root certificate (`com.apple.security.root`) from its DER.
    pub fn root(der: impl Into<Vec<u8>>) -> Self {
        Self::new(CertificateKind::Root, der)
    }

    /// A certificate (`com.apple.security.pkcs1`) from its DER.
    pub fn pkcs1(der: impl Into<Vec<u8>>) -> Self {
        Self::new(CertificateKind::Pkcs1, der)
    }

    /// A payload of `kind` holding `content`.
    pub fn new(kind: CertificateKind, content: impl Into<Vec<u8>>) -> Self {
        Self {
            kind,
            content: content.into(),
            file_name: None,
            password: None,
            extra: Dictionary::new(),
        }
    }

    pub(super) fn decode(kind: CertificateKind, mut f: Fields<'_>) -> Result<Self, ProfileError> {
        Ok(Self {
            kind,
            content: f.required("PayloadContent", Fields::data)?,
            file_name: f.string("PayloadCertificateFileName")?,
            password: f.string("Password")?,
            extra: f.rest(),
        })
    }

    pub(super) fn encode(&self, out: &mut Out) {
        out.value("PayloadContent", Value::Data(self.content.clone()));
        out.opt_str("PayloadCertificateFileName", &self.file_name);
        out.opt_str("Password", &self.password);
        out.extra(&self.extra);
    }
}
