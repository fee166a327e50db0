//! A lenient X.509 certificate that owns its DER.
//!
//! Real devices present certificates that strict RFC 5280 decoders refuse:
//! X.509 v1 (no extensions), serial numbers longer than 20 bytes, an empty
//! Subject. [`Certificate`] walks the structure with the crate's bounded BER
//! reader, keeps the original `TBSCertificate` bytes for signature checks and
//! decodes only the pieces it exposes.
//!
//! Why not `x509_cert::Certificate`: its RFC 5280 profile refuses serials
//! over 21 octets, and it decodes DER only (a BER certificate would have to be
//! re-encoded, changing the bytes its signature covers). Extensions, times
//! and keys are handed to `x509-cert`/`spki` once located
//! ([`Certificate::key_usage`], [`Certificate::to_x509`]).

use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use der::Decode;
use sha2::{Digest, Sha256};
use thiserror::Error;
use x509_cert::time::Time;

use super::asn1::{self, Malformed, WalkError};
use super::oid;
use crate::crypto::{self, DigestAlgorithm, PublicKey};
use crate::wire::ber::{BerError, BerLimits, Class, Element};
use crate::wire::hex;

/// What was wrong with a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CertificateError {
    /// The encoding is not valid BER within limits.
    #[error("certificate encoding: {0}")]
    Ber(#[from] BerError),
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

impl From<WalkError> for CertificateError {
    fn from(e: WalkError) -> Self {
        match e {
            WalkError::Ber(b) => Self::Ber(b),
            WalkError::Malformed(m) => Self::Malformed(m),
        }
    }
}

impl From<Malformed> for CertificateError {
    fn from(m: Malformed) -> Self {
        Self::Malformed(m.0)
    }
}

/// One certificate extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// `extnID`.
    pub oid: ObjectIdentifier,
    /// `critical` (default false).
    pub critical: bool,
    /// The `extnValue` octets (the DER of the extension's own type).
    pub value: Vec<u8>,
}

/// An X.509 certificate, parsed leniently; owns its DER.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    tbs: Vec<u8>,
    version: u8,
    serial: Vec<u8>,
    issuer: Vec<u8>,
    subject: Vec<u8>,
    not_before: Time,
    not_after: Time,
    spki: Vec<u8>,
    signature_algorithm: ObjectIdentifier,
    signature: Vec<u8>,
    extensions: Vec<Extension>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject_string())
            .field("issuer", &self.issuer_string())
            .field("serial", &hex::upper(&self.serial))
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
        // Normalise once, then take every piece as a slice of the DER; only
        // the TBSCertificate is kept as originally encoded (it is what the
        // issuer signed).
        let der = original.to_der()?;
        let reparsed;
        let el = if der == original.raw {
            // Already DER (the usual case): the element in hand is the same tree.
            original
        } else {
            reparsed = Element::parse(&der, &BerLimits::default())?;
            &reparsed
        };
        let original_tbs = asn1::sequence(original, asn1::SEQUENCE, "Certificate")?
            .first()
            .map(|t| t.raw.to_vec())
            .ok_or(CertificateError::Malformed("Certificate"))?;
        let parts = asn1::sequence(el, asn1::SEQUENCE, "Certificate")?;
        let [tbs_el, alg_el, sig_el] = parts.as_slice() else {
            return Err(CertificateError::Malformed("Certificate"));
        };
        let signature_algorithm = asn1::algorithm(alg_el, "signatureAlgorithm")?;
        let signature = bit_string(sig_el, "signatureValue")?;

        let tbs = asn1::sequence(tbs_el, asn1::SEQUENCE, "TBSCertificate")?;
        let mut fields = tbs.iter().peekable();
        let mut version = 1u8;
        if let Some(v) = fields.next_if(|e| e.is(Class::Context, 0)) {
            let inner = v.children()?;
            let [int] = inner.as_slice() else {
                return Err(CertificateError::Malformed("version"));
            };
            version = match asn1::small_integer(int, "version")? {
                0 => 1,
                1 => 2,
                2 => 3,
                _ => return Err(CertificateError::Malformed("version")),
            };
        }
        let mut next = |what: &'static str| fields.next().ok_or(Malformed(what));
        let serial = asn1::integer(next("serialNumber")?, "serialNumber")?.to_vec();
        let _inner_alg = asn1::algorithm(next("signature")?, "signature")?;
        let issuer_el = next("issuer")?;
        asn1::expect_universal(issuer_el, asn1::SEQUENCE, "issuer")?;
        let validity = asn1::sequence(next("validity")?, asn1::SEQUENCE, "validity")?;
        let subject_el = next("subject")?;
        asn1::expect_universal(subject_el, asn1::SEQUENCE, "subject")?;
        let spki_el = next("subjectPublicKeyInfo")?;
        asn1::sequence(spki_el, asn1::SEQUENCE, "subjectPublicKeyInfo")?;
        let [nb, na] = validity.as_slice() else {
            return Err(CertificateError::Malformed("validity"));
        };
        let time = |e: &Element<'_>, what: &'static str| -> Result<Time, CertificateError> {
            Time::from_der(e.raw).map_err(|_| CertificateError::Malformed(what))
        };
        let not_before = time(nb, "notBefore")?;
        let not_after = time(na, "notAfter")?;

        let mut extensions = Vec::new();
        for f in fields {
            if f.is(Class::Context, 3) {
                let wrapped = f.children()?;
                let [seq] = wrapped.as_slice() else {
                    return Err(CertificateError::Malformed("extensions"));
                };
                for ext in asn1::sequence(seq, asn1::SEQUENCE, "extensions")? {
                    extensions.push(extension(&ext)?);
                }
            } else if !(f.is(Class::Context, 1) || f.is(Class::Context, 2)) {
                return Err(CertificateError::Malformed("TBSCertificate trailing field"));
            }
        }

        let (issuer, subject, spki) = (
            issuer_el.raw.to_vec(),
            subject_el.raw.to_vec(),
            spki_el.raw.to_vec(),
        );
        Ok(Self {
            tbs: original_tbs,
            der,
            version,
            serial,
            issuer,
            subject,
            not_before,
            not_after,
            spki,
            signature_algorithm,
            signature,
            extensions,
        })
    }

    /// The DER encoding (BER input comes back normalised).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The X.509 version: 1, 2 or 3.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The serial number's INTEGER content octets, as encoded (may exceed 20 bytes).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The serial number as upper-case hex.
    pub fn serial_hex(&self) -> String {
        hex::upper(&self.serial)
    }

    /// The DER of the issuer Name.
    pub fn issuer_der(&self) -> &[u8] {
        &self.issuer
    }

    /// The DER of the subject Name (`30 00` when empty).
    pub fn subject_der(&self) -> &[u8] {
        &self.subject
    }

    /// The subject as an RFC 4514 string (empty for an empty Subject).
    pub fn subject_string(&self) -> String {
        name_string(&self.subject)
    }

    /// The issuer as an RFC 4514 string.
    pub fn issuer_string(&self) -> String {
        name_string(&self.issuer)
    }

    /// Start of the validity period.
    pub fn not_before(&self) -> Time {
        self.not_before
    }

    /// End of the validity period.
    pub fn not_after(&self) -> Time {
        self.not_after
    }

    /// Whether `now` lies within the validity period (bounds inclusive).
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.not_before.to_system_time() <= now && now <= self.not_after.to_system_time()
    }

    /// The DER of the SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The subject's RSA public key.
    pub fn public_key(&self) -> Result<PublicKey, CertificateError> {
        PublicKey::from_spki_der(&self.spki)
            .map_err(|e| CertificateError::UnsupportedKey(e.to_string()))
    }

    /// Whether the certificate holds the same RSA public key as `key`.
    pub fn has_public_key(&self, key: &PublicKey) -> bool {
        self.public_key().is_ok_and(|own| own == *key)
    }

    /// SHA-256 of the DER (the fingerprint used to bind an identity to an enrollment).
    pub fn sha256_fingerprint(&self) -> [u8; 32] {
        Sha256::digest(&self.der).into()
    }

    /// The outer signature algorithm.
    pub fn signature_algorithm(&self) -> ObjectIdentifier {
        self.signature_algorithm
    }

    /// Check that `issuer`'s key signed this certificate (signature only: no
    /// name, validity or constraint check).
    pub fn verify_issued_by(&self, issuer: &Certificate) -> Result<(), CertificateError> {
        self.verify_signature_with(&issuer.public_key()?)
    }

    /// Check this certificate's signature with a (pinned) RSA public key.
    pub fn verify_signature_with(&self, key: &PublicKey) -> Result<(), CertificateError> {
        let digest = DigestAlgorithm::from_rsa_signature_oid(&self.signature_algorithm).ok_or(
            CertificateError::UnsupportedAlgorithm {
                oid: self.signature_algorithm,
            },
        )?;
        crypto::verify_rsa(key, digest, &self.tbs, &self.signature)
            .map_err(|_| CertificateError::BadSignature)
    }

    /// The extensions (empty for v1/v2 certificates).
    pub fn extensions(&self) -> &[Extension] {
        &self.extensions
    }

    /// The extension with `oid`, if present.
    pub fn extension(&self, oid: &ObjectIdentifier) -> Option<&Extension> {
        self.extensions.iter().find(|e| e.oid == *oid)
    }

    /// The subjectKeyIdentifier, if present and well formed.
    pub fn subject_key_identifier(&self) -> Option<Vec<u8>> {
        let ext = self.extension(&oid::SUBJECT_KEY_IDENTIFIER)?;
        let el = Element::parse(&ext.value, &BerLimits::default()).ok()?;
        el.is(Class::Universal, asn1::OCTET_STRING)
            .then(|| el.string_value().ok())
            .flatten()
    }

    /// The keyUsage extension, if present.
    pub fn key_usage(&self) -> Result<Option<x509_cert::ext::pkix::KeyUsage>, CertificateError> {
        self.extension(&oid::KEY_USAGE)
            .map(|e| {
                x509_cert::ext::pkix::KeyUsage::from_der(&e.value)
                    .map_err(|_| CertificateError::Malformed("keyUsage"))
            })
            .transpose()
    }

    /// The extKeyUsage purposes, if the extension is present.
    pub fn extended_key_usage(&self) -> Result<Option<Vec<ObjectIdentifier>>, CertificateError> {
        self.extension(&oid::EXT_KEY_USAGE)
            .map(|e| {
                x509_cert::ext::pkix::ExtendedKeyUsage::from_der(&e.value)
                    .map(|eku| eku.0)
                    .map_err(|_| CertificateError::Malformed("extKeyUsage"))
            })
            .transpose()
    }

    /// basicConstraints `cA`, if the extension is present.
    pub fn is_ca(&self) -> Result<Option<bool>, CertificateError> {
        self.extension(&oid::BASIC_CONSTRAINTS)
            .map(|e| {
                x509_cert::ext::pkix::BasicConstraints::from_der(&e.value)
                    .map(|bc| bc.ca)
                    .map_err(|_| CertificateError::Malformed("basicConstraints"))
            })
            .transpose()
    }

    /// Decode with `x509-cert`'s strict RFC 5280 profile (fails for the
    /// quirks this type tolerates).
    pub fn to_x509(&self) -> Result<x509_cert::Certificate, CertificateError> {
        x509_cert::Certificate::from_der(&self.der)
            .map_err(|_| CertificateError::Malformed("not an RFC 5280 certificate"))
    }

    /// PEM encoding.
    pub fn to_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }
}

fn extension(el: &Element<'_>) -> Result<Extension, CertificateError> {
    let parts = asn1::sequence(el, asn1::SEQUENCE, "Extension")?;
    let mut it = parts.iter();
    let oid = asn1::oid(it.next().ok_or(Malformed("extnID"))?, "extnID")?;
    let mut item = it.next().ok_or(Malformed("extnValue"))?;
    let mut critical = false;
    if item.is(Class::Universal, 1) {
        critical = item.contents.first().is_some_and(|b| *b != 0);
        item = it.next().ok_or(Malformed("extnValue"))?;
    }
    if !item.is(Class::Universal, asn1::OCTET_STRING) || it.next().is_some() {
        return Err(CertificateError::Malformed("extnValue"));
    }
    Ok(Extension {
        oid,
        critical,
        value: item.string_value()?,
    })
}

fn bit_string(el: &Element<'_>, what: &'static str) -> Result<Vec<u8>, CertificateError> {
    // Called on DER: the BIT STRING is primitive.
    if !el.is(Class::Universal, asn1::BIT_STRING) || el.constructed {
        return Err(CertificateError::Malformed(what));
    }
    match el.contents.split_first() {
        Some((0, bits)) => Ok(bits.to_vec()),
        _ => Err(CertificateError::Malformed(what)),
    }
}

fn name_string(der: &[u8]) -> String {
    match x509_cert::name::Name::from_der(der) {
        Ok(name) => name.to_string(),
        Err(_) => format!("#{}", hex::upper(der)),
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
