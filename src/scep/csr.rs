//! PKCS#10 certification requests as SCEP clients send them.
//!
//! [`Csr::parse`] decodes (BER tolerated), checks the self-signature over the
//! original `certificationRequestInfo` bytes, and extracts the
//! challengePassword whichever string type the client used.
//!
//! The subject, key and requested extensions are `x509-cert`/`spki` types;
//! the outer three fields and the attributes are located by hand because
//! `x509_cert::request::CertReq` reads DER only (the signature covers the
//! `certificationRequestInfo` as the client encoded it) and requires the
//! `[0]` attributes field, which requests without a challenge may omit.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc2985::PKCS_9_AT_CHALLENGE_PASSWORD;
use const_oid::db::rfc5912::ID_EXTENSION_REQ;
use der::Decode;
use spki::SubjectPublicKeyInfoOwned;
use thiserror::Error;
use x509_cert::ext::Extension;
use x509_cert::name::Name;

use crate::crypto::{self, DigestAlgorithm};
use crate::wire::ber::{BerError, BerLimits, Class, Element};

use super::Challenge;

/// What was wrong with a CSR.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CsrError {
    /// The BER structure is broken or over the limits.
    #[error("CSR BER: {0}")]
    Ber(#[from] BerError),
    /// Not a PKCS#10 CertificationRequest.
    #[error("malformed CSR: {0}")]
    Malformed(String),
    /// The signature algorithm is not `shaNNNWithRSAEncryption`.
    #[error("unsupported CSR signature algorithm {0}")]
    UnsupportedSignature(ObjectIdentifier),
    /// The key is not an RSA key.
    #[error("unsupported CSR key: {0}")]
    UnsupportedKey(String),
    /// The self-signature does not verify.
    #[error("CSR self-signature does not verify")]
    BadSignature,
    /// A challengePassword attribute is present but unreadable or repeated.
    #[error("malformed challengePassword: {0}")]
    BadChallenge(&'static str),
}

/// A PKCS#10 request whose self-signature has been verified.
#[derive(Clone)]
pub struct Csr {
    raw: Vec<u8>,
    subject: Name,
    public_key: SubjectPublicKeyInfoOwned,
    extensions: Vec<Extension>,
    challenge: Option<Challenge>,
}

impl std::fmt::Debug for Csr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Csr")
            .field("subject", &self.subject.to_string())
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

impl Csr {
    /// Decode `bytes` (DER or BER), verify the self-signature, read the
    /// challengePassword.
    pub fn parse(bytes: &[u8], limits: &BerLimits) -> Result<Self, CsrError> {
        let malformed = |m: &str| CsrError::Malformed(m.to_owned());
        let top = Element::parse(bytes, limits)?;
        let parts = top.children()?;
        let (info, alg, sig) = match parts.as_slice() {
            [info, alg, sig]
                if top.is(Class::Universal, 16)
                    && info.is(Class::Universal, 16)
                    && alg.is(Class::Universal, 16)
                    && sig.is(Class::Universal, 3) =>
            {
                (*info, *alg, *sig)
            }
            _ => return Err(malformed("not a CertificationRequest")),
        };
        let alg_oid = alg
            .children()?
            .first()
            .filter(|e| e.is(Class::Universal, 6))
            .and_then(|e| ObjectIdentifier::from_bytes(e.contents).ok())
            .ok_or_else(|| malformed("signatureAlgorithm"))?;
        let digest = DigestAlgorithm::from_rsa_signature_oid(&alg_oid)
            .ok_or(CsrError::UnsupportedSignature(alg_oid))?;
        let sig = sig.string_value()?;
        let sig = match sig.split_first() {
            Some((0, rest)) => rest,
            _ => return Err(malformed("signature BIT STRING")),
        };
        let fields = info.children()?;
        let (subject, spki) = match fields.as_slice() {
            [version, subject, spki, ..] if version.is(Class::Universal, 2) => (subject, spki),
            _ => return Err(malformed("certificationRequestInfo")),
        };
        let subject = Name::from_der(&subject.to_der()?)
            .map_err(|e| CsrError::Malformed(format!("subject: {e}")))?;
        let public_key = SubjectPublicKeyInfoOwned::from_der(&spki.to_der()?)
            .map_err(|e| CsrError::Malformed(format!("subjectPKInfo: {e}")))?;
        let key = crypto::rsa_public_key(&public_key)
            .map_err(|e| CsrError::UnsupportedKey(e.to_string()))?;
        // The signer hashed the info as it encoded it: use the original bytes.
        crypto::verify_rsa(&key, digest, info.raw, sig).map_err(|_| CsrError::BadSignature)?;
        let mut challenge = None;
        let mut extensions = Vec::new();
        if let Some(attrs) = fields.get(3).filter(|e| e.is(Class::Context, 0)) {
            for attr in attrs.children()? {
                let (oid, values) = attribute(&attr)?;
                if oid == PKCS_9_AT_CHALLENGE_PASSWORD {
                    let [value] = values.as_slice() else {
                        return Err(CsrError::BadChallenge("attribute must have one value"));
                    };
                    if challenge.is_some() {
                        return Err(CsrError::BadChallenge("attribute repeated"));
                    }
                    challenge = Some(Challenge::new(directory_string(value)?));
                } else if oid == ID_EXTENSION_REQ {
                    for v in &values {
                        if let Ok(exts) = Vec::<Extension>::from_der(&v.to_der()?) {
                            extensions.extend(exts);
                        }
                    }
                }
            }
        }
        Ok(Self {
            raw: bytes.to_vec(),
            subject,
            public_key,
            extensions,
            challenge,
        })
    }

    /// The bytes as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The requested subject (the caller decides the issued one).
    pub fn subject(&self) -> &Name {
        &self.subject
    }

    /// The public key to certify.
    pub fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public_key
    }

    /// The challengePassword, if the CSR carries one.
    pub fn challenge_password(&self) -> Option<&Challenge> {
        self.challenge.as_ref()
    }

    /// The extensions asked for in an extensionRequest attribute (ignored
    /// unless the caller's policy copies some).
    pub fn requested_extensions(&self) -> &[Extension] {
        &self.extensions
    }
}

/// An Attribute `SEQUENCE { type OID, values SET }`.
fn attribute<'a>(attr: &Element<'a>) -> Result<(ObjectIdentifier, Vec<Element<'a>>), CsrError> {
    let bad = || CsrError::Malformed("attribute".into());
    let parts = attr.children()?;
    match parts.as_slice() {
        [oid, values]
            if attr.is(Class::Universal, 16)
                && oid.is(Class::Universal, 6)
                && values.is(Class::Universal, 17) =>
        {
            let oid = ObjectIdentifier::from_bytes(oid.contents).map_err(|_| bad())?;
            Ok((oid, values.children()?))
        }
        _ => Err(bad()),
    }
}

/// Decode a DirectoryString (or IA5String) value to UTF-8 bytes.
pub(crate) fn directory_string(el: &Element<'_>) -> Result<Vec<u8>, CsrError> {
    let bad = CsrError::BadChallenge("not a DirectoryString");
    if el.class != Class::Universal {
        return Err(bad);
    }
    let value = el.string_value()?;
    match el.number {
        // UTF8String, PrintableString, IA5String
        12 | 19 | 22 => {
            std::str::from_utf8(&value).map_err(|_| bad)?;
            Ok(value)
        }
        // TeletexString (T.61): treat as Latin-1 (clients only put ASCII here).
        20 => Ok(value
            .iter()
            .map(|b| char::from(*b))
            .collect::<String>()
            .into_bytes()),
        // BMPString: UCS-2 big-endian.
        30 => {
            if value.len() % 2 != 0 {
                return Err(bad);
            }
            let units = value
                .chunks_exact(2)
                .filter_map(|c| c.try_into().ok())
                .map(u16::from_be_bytes);
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map(String::into_bytes)
                .map_err(|_| bad)
        }
        // UniversalString: UCS-4 big-endian.
        28 => {
            if value.len() % 4 != 0 {
                return Err(bad);
            }
            value
                .chunks_exact(4)
                .map(|c| {
                    c.try_into()
                        .ok()
                        .map(u32::from_be_bytes)
                        .and_then(char::from_u32)
                })
                .collect::<Option<String>>()
                .map(String::into_bytes)
                .ok_or(bad)
        }
        _ => Err(bad),
    }
}
