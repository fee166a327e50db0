//! X.509 certificates: `x509-cert` with a lenient profile, owning their DER.
//!
//! Real devices present certificates that RFC 5280's strict profile refuses:
//! X.509 v1 (no extensions), serial numbers longer than 20 octets (certmonger
//! sends 32), an empty Subject. [`Certificate`] decodes with
//! `x509_cert::certificate::CertificateInner<`[`Lenient`]`>`, whose only
//! relaxation is the serial length (v1 and empty names are plain X.509).
//!
//! What stays ours, and why:
//! - **BER input.** `x509-cert` reads DER only; a certificate inside Apple's
//!   BER CMS is first normalised by the crate's bounded reader
//!   ([`crate::wire::ber`]).
//! - **The signed bytes.** The issuer signed the `TBSCertificate` exactly as
//!   it was encoded; re-encoding a normalised (or decoded) value could change
//!   those bytes, so the original `TBSCertificate` element is kept for
//!   [`Certificate::verify_signature_with`]. That element, and for DER input
//!   the byte ranges of issuer, subject and key (so they are compared as
//!   bytes without re-encoding), are located by the reader's walk; every
//!   value is decoded by `x509-cert`.
//!
//! Inside the DER, `x509-cert`'s rules apply: minimal INTEGER encodings,
//! UTCTime/GeneralizedTime in the RFC 5280 forms, a version of v1–v3.

use std::ops::Range;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use der::Decode;
use sha2::{Digest, Sha256};
use thiserror::Error;
use x509_cert::certificate::{CertificateInner, Profile, Version};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

pub use x509_cert::ext::Extension;

use super::asn1;
use super::oid;
use crate::crypto::{self, DigestAlgorithm, PublicKey};
use crate::wire::ber::{BerError, BerLimits, Class, Element};
use crate::wire::hex;

/// What was wrong with a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The encoding is not valid BER within limits.
    #[error("certificate encoding: {0}")]
    Ber(#[from] BerError),
    /// The (normalised) DER is not an X.509 certificate.
    #[error("not an X.509 certificate: {0}")]
    X509(der::Error),
    /// A field is missing or of the wrong type.
    #[error("malformed certificate: {0}")]
    Malformed(&'static str),
    /// No `-----BEGIN CERTIFICATE-----` block, or a block that is not valid base64.
    #[error("invalid PEM: {0}")]
    Pem(&'static str),
    /// The subject public key is not an RSA key this crate can use.
    #[error("unsupported public key: {0}")]
    UnsupportedKey(String),
    /// The certificate is signed with an algorithm this crate does not verify.
    #[error("unsupported certificate signature algorithm {oid}")]
    UnsupportedAlgorithm {
        /// The signature algorithm.
        oid: ObjectIdentifier,
    },
    /// The signature does not verify with the issuer's key.
    #[error("certificate signature does not verify with the issuer's key")]
    BadSignature,
}

impl From<asn1::WalkError> for CertificateError {
    fn from(e: asn1::WalkError) -> Self {
        match e {
            asn1::WalkError::Ber(b) => Self::Ber(b),
            asn1::WalkError::Malformed(m) => Self::Malformed(m),
        }
    }
}

/// The longest serial number [`Lenient`] accepts, in content octets.
///
/// RFC 5280 allows 20; certmonger sends 32. 64 leaves room for any real
/// issuer while keeping the field bounded.
pub const MAX_SERIAL_OCTETS: usize = 64;

/// The `x509-cert` profile for certificates devices and SCEP clients
/// present: RFC 5280 apart from serial numbers up to
/// [`MAX_SERIAL_OCTETS`] (not 20), and no re-encoding of times.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy, Default)]
pub struct Lenient;

impl Profile for Lenient {
    fn check_serial_number(serial: &SerialNumber<Self>) -> der::Result<()> {
        if serial.as_bytes().len() > MAX_SERIAL_OCTETS {
            Err(der::Tag::Integer.length_error().into())
        } else {
            Ok(())
        }
    }

    fn time_encoding(time: Time) -> der::Result<Time> {
        Ok(time)
    }
}

/// The `x509-cert` certificate type [`Certificate`] wraps.
pub type X509Certificate = CertificateInner<Lenient>;

/// An X.509 certificate decoded with the [`Lenient`] profile; owns its DER.
///
/// Cloning is cheap (the decoded value is shared), and the subject's public
/// key is parsed once, on first use, and kept with it. Equality compares the
/// DER.
#[derive(Clone)]
pub struct Certificate(Arc<Decoded>);

struct Decoded {
    der: Vec<u8>,
    x509: X509Certificate,
    /// The `TBSCertificate` as originally encoded (what the issuer signed),
    /// when the input was BER; for DER input it is `der[spans.tbs]`.
    tbs_ber: Option<Vec<u8>>,
    spans: Spans,
    public_key: OnceLock<Result<PublicKey, CertificateError>>,
    /// SHA-256 of `der`, computed on first use.
    fingerprint: OnceLock<[u8; 32]>,
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.0.der == other.0.der
    }
}

impl Eq for Certificate {}

/// Where the pieces callers compare as bytes lie in the DER.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Spans {
    tbs: Range<usize>,
    issuer: Range<usize>,
    subject: Range<usize>,
    spki: Range<usize>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject_string())
            .field("issuer", &self.issuer_string())
            .field("serial", &hex::upper(self.serial()))
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Parse a DER certificate (BER is accepted and normalised), within default [`BerLimits`].
    pub fn from_der(bytes: &[u8]) -> Result<Self, CertificateError> {
        Self::from_der_with_limits(bytes, &BerLimits::default())
    }

    /// Parse a DER (or BER) certificate within `limits`.
    pub fn from_der_with_limits(
        bytes: &[u8],
        limits: &BerLimits,
    ) -> Result<Self, CertificateError> {
        let el = Element::parse(bytes, limits)?;
        Self::from_element(&el)
    }

    /// Parse every `CERTIFICATE` block of a PEM text, in order.
    pub fn from_pem(text: &[u8]) -> Result<Vec<Self>, CertificateError> {
        let blocks = pem_blocks(text, "CERTIFICATE")?;
        if blocks.is_empty() {
            return Err(CertificateError::Pem("no CERTIFICATE block"));
        }
        blocks.iter().map(|der| Self::from_der(der)).collect()
    }

    pub(crate) fn from_element(original: &Element<'_>) -> Result<Self, CertificateError> {
        let der = original.to_der()?;
        let x509 = X509Certificate::from_der(&der).map_err(CertificateError::X509)?;
        if x509.signature().as_bytes().is_none() {
            return Err(CertificateError::Malformed("signatureValue"));
        }
        // The signed bytes: the outer SEQUENCE's first element, as encoded.
        let outer = asn1::sequence(original, asn1::SEQUENCE, "Certificate")?;
        let tbs = outer
            .first()
            .ok_or(CertificateError::Malformed("Certificate"))?;
        let (tbs_ber, spans) = if der.as_slice() == original.raw {
            // DER input (the usual case): x509-cert accepted this very
            // encoding, so the fields' byte ranges are those of the element
            // tree in hand; no copy and no re-encoding.
            (None, Spans::of(original, tbs)?)
        } else {
            let tbs_ber = tbs.raw.to_vec();
            let reparsed = Element::parse(&der, &BerLimits::default())?;
            let outer = asn1::sequence(&reparsed, asn1::SEQUENCE, "Certificate")?;
            let tbs = outer
                .first()
                .ok_or(CertificateError::Malformed("Certificate"))?;
            (Some(tbs_ber), Spans::of(&reparsed, tbs)?)
        };
        Ok(Self(Arc::new(Decoded {
            der,
            x509,
            tbs_ber,
            spans,
            public_key: OnceLock::new(),
            fingerprint: OnceLock::new(),
        })))
    }

    fn tbs(&self) -> &[u8] {
        match &self.0.tbs_ber {
            Some(original) => original,
            None => self.span(&self.0.spans.tbs),
        }
    }

    fn span(&self, range: &Range<usize>) -> &[u8] {
        self.0.der.get(range.clone()).unwrap_or_default()
    }

    /// The decoded certificate (`x509-cert` types, [`Lenient`] profile).
    pub fn x509(&self) -> &X509Certificate {
        &self.0.x509
    }

    /// The DER encoding (BER input comes back normalised).
    pub fn der(&self) -> &[u8] {
        &self.0.der
    }

    /// The X.509 version: 1, 2 or 3.
    pub fn version(&self) -> u8 {
        match self.0.x509.tbs_certificate().version() {
            Version::V1 => 1,
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }

    /// The serial number's INTEGER content octets, as encoded (may exceed 20 bytes).
    pub fn serial(&self) -> &[u8] {
        self.0.x509.tbs_certificate().serial_number().as_bytes()
    }

    /// The serial number as upper-case hex.
    pub fn serial_hex(&self) -> String {
        hex::upper(self.serial())
    }

    /// The DER of the issuer Name.
    pub fn issuer_der(&self) -> &[u8] {
        self.span(&self.0.spans.issuer)
    }

    /// The DER of the subject Name (`30 00` when empty).
    pub fn subject_der(&self) -> &[u8] {
        self.span(&self.0.spans.subject)
    }

    /// The subject as an RFC 4514 string (empty for an empty Subject).
    pub fn subject_string(&self) -> String {
        self.0.x509.tbs_certificate().subject().to_string()
    }

    /// The issuer as an RFC 4514 string.
    pub fn issuer_string(&self) -> String {
        self.0.x509.tbs_certificate().issuer().to_string()
    }

    /// Start of the validity period.
    pub fn not_before(&self) -> Time {
        self.0.x509.tbs_certificate().validity().not_before
    }

    /// End of the validity period.
    pub fn not_after(&self) -> Time {
        self.0.x509.tbs_certificate().validity().not_after
    }

    /// Whether `now` lies within the validity period (bounds inclusive).
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.not_before().to_system_time() <= now && now <= self.not_after().to_system_time()
    }

    /// The DER of the SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        self.span(&self.0.spans.spki)
    }

    /// The subject's RSA public key (parsed by the default provider on
    /// first use, then kept).
    pub fn public_key(&self) -> Result<PublicKey, CertificateError> {
        self.0
            .public_key
            .get_or_init(|| {
                PublicKey::from_spki_der(self.spki_der())
                    .map_err(|e| CertificateError::UnsupportedKey(e.to_string()))
            })
            .clone()
    }

    /// Whether the certificate holds the same RSA public key as `key`.
    pub fn has_public_key(&self, key: &PublicKey) -> bool {
        self.public_key().is_ok_and(|own| own == *key)
    }

    /// SHA-256 of the DER (the fingerprint used to bind an identity to an enrollment).
    pub fn sha256_fingerprint(&self) -> [u8; 32] {
        *self
            .0
            .fingerprint
            .get_or_init(|| Sha256::digest(&self.0.der).into())
    }

    /// The outer signature algorithm.
    pub fn signature_algorithm(&self) -> ObjectIdentifier {
        self.0.x509.signature_algorithm().oid
    }

    /// Check that `issuer`'s key signed this certificate (signature only: no
    /// name, validity or constraint check).
    pub fn verify_issued_by(&self, issuer: &Certificate) -> Result<(), CertificateError> {
        self.verify_signature_with(&issuer.public_key()?)
    }

    /// Check this certificate's signature with a (pinned) RSA public key.
    pub fn verify_signature_with(&self, key: &PublicKey) -> Result<(), CertificateError> {
        let algorithm = self.signature_algorithm();
        let digest = DigestAlgorithm::from_rsa_signature_oid(&algorithm)
            .ok_or(CertificateError::UnsupportedAlgorithm { oid: algorithm })?;
        let signature = self
            .0
            .x509
            .signature()
            .as_bytes()
            .ok_or(CertificateError::Malformed("signatureValue"))?;
        crypto::verify_rsa(key, digest, self.tbs(), signature)
            .map_err(|_| CertificateError::BadSignature)
    }

    /// The extensions (empty for v1/v2 certificates).
    pub fn extensions(&self) -> &[Extension] {
        self.0
            .x509
            .tbs_certificate()
            .extensions()
            .map_or(&[], Vec::as_slice)
    }

    /// The extension with `oid`, if present.
    pub fn extension(&self, oid: &ObjectIdentifier) -> Option<&Extension> {
        self.extensions().iter().find(|e| e.extn_id == *oid)
    }

    /// Decode the extension with `oid` as `T`, if present.
    fn decoded<T: for<'a> Decode<'a>>(
        &self,
        oid: &ObjectIdentifier,
        what: &'static str,
    ) -> Result<Option<T>, CertificateError> {
        self.extension(oid)
            .map(|e| {
                T::from_der(e.extn_value.as_bytes()).map_err(|_| CertificateError::Malformed(what))
            })
            .transpose()
    }

    /// The subjectKeyIdentifier, if present and well formed.
    pub fn subject_key_identifier(&self) -> Option<Vec<u8>> {
        self.decoded::<x509_cert::ext::pkix::SubjectKeyIdentifier>(
            &oid::SUBJECT_KEY_IDENTIFIER,
            "subjectKeyIdentifier",
        )
        .ok()
        .flatten()
        .map(|ski| ski.0.as_bytes().to_vec())
    }

    /// The keyUsage extension, if present.
    pub fn key_usage(&self) -> Result<Option<x509_cert::ext::pkix::KeyUsage>, CertificateError> {
        self.decoded(&oid::KEY_USAGE, "keyUsage")
    }

    /// The extKeyUsage purposes, if the extension is present.
    pub fn extended_key_usage(&self) -> Result<Option<Vec<ObjectIdentifier>>, CertificateError> {
        self.decoded::<x509_cert::ext::pkix::ExtendedKeyUsage>(&oid::EXT_KEY_USAGE, "extKeyUsage")
            .map(|eku| eku.map(|eku| eku.0))
    }

    /// basicConstraints `cA`, if the extension is present.
    pub fn is_ca(&self) -> Result<Option<bool>, CertificateError> {
        self.decoded::<x509_cert::ext::pkix::BasicConstraints>(
            &oid::BASIC_CONSTRAINTS,
            "basicConstraints",
        )
        .map(|bc| bc.map(|bc| bc.ca))
    }

    /// Decode with `x509-cert`'s strict RFC 5280 profile (fails for the
    /// quirks this type tolerates).
    pub fn to_x509(&self) -> Result<x509_cert::Certificate, CertificateError> {
        x509_cert::Certificate::from_der(&self.0.der)
            .map_err(|_| CertificateError::Malformed("not an RFC 5280 certificate"))
    }

    /// PEM encoding.
    pub fn to_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.0.der)
    }
}

impl Spans {
    /// The byte ranges of the TBSCertificate and of its issuer, subject and
    /// subjectPublicKeyInfo within `root`'s encoding (`root` is DER that
    /// `x509-cert` has decoded, so the field order is known to hold).
    fn of(root: &Element<'_>, tbs: &Element<'_>) -> Result<Self, CertificateError> {
        let base = root.raw.as_ptr() as usize;
        let range = |e: &Element<'_>| {
            let start = (e.raw.as_ptr() as usize).wrapping_sub(base);
            start..start + e.raw.len()
        };
        let fields = tbs.children()?;
        let skip = usize::from(fields.first().is_some_and(|v| v.is(Class::Context, 0)));
        let field = |i: usize| {
            fields
                .get(skip + i)
                .map(range)
                .ok_or(CertificateError::Malformed("TBSCertificate"))
        };
        // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
        Ok(Self {
            tbs: range(tbs),
            issuer: field(2)?,
            subject: field(4)?,
            spki: field(5)?,
        })
    }
}

/// Decode every PEM block labelled `label` (whitespace inside is ignored).
pub(crate) fn pem_blocks(text: &[u8], label: &str) -> Result<Vec<Vec<u8>>, CertificateError> {
    let text = std::str::from_utf8(text).map_err(|_| CertificateError::Pem("not UTF-8"))?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let stop = after
            .find(&end)
            .ok_or(CertificateError::Pem("missing END line"))?;
        let der = super::base64_decode(&after[..stop])
            .map_err(|_| CertificateError::Pem("invalid base64"))?;
        out.push(der);
        rest = &after[stop + end.len()..];
    }
    Ok(out)
}

pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64ct::{Base64, Encoding};
    let b64 = Base64::encode_string(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
