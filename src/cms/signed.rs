//! CMS SignedData reader (RFC 5652 §5), tolerant of what Apple clients send.
//!
//! The whole message is walked once with the bounded BER reader, so indefinite
//! lengths, constructed (chunked) `eContent` and non-DER certificates are
//! accepted within [`BerLimits`]. Signatures are verified over the bytes the
//! signer hashed: the *original* `signedAttrs` encoding with its `[0]` tag
//! re-tagged as SET (`0x31`), or the content value octets when there are no
//! signed attributes — never over a re-encoding.
//!
//! Why this is not `cms::signed_data::SignedData` after normalisation: the
//! normaliser sorts SETs and rewrites lengths, so the signedAttrs bytes a
//! signer hashed would be lost; `CertificateSet` decodes certificates with
//! x509-cert's RFC 5280 profile (refusing the long serials devices send) and
//! sorts them, where SCEP relies on the signer's coming first; each
//! certificate is instead decoded by [`Certificate`] (x509-cert, lenient
//! profile); and normalising copies the whole message on the `Mdm-Signature`
//! hot path, where this reader borrows from the input in one pass.

use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use der::Decode;

use super::asn1::{self, Malformed};
use super::certificate::Certificate;
use super::certificate_cache::CertificateCache;
use super::error::CmsError;
use super::oid;
use crate::crypto::{self, DigestAlgorithm};
use crate::wire::ber::{BerLimits, Class, Element};

/// A parsed CMS SignedData (from a ContentInfo).
#[derive(Debug, Clone)]
pub struct SignedData {
    version: u32,
    content_type: ObjectIdentifier,
    content: Option<Vec<u8>>,
    certificates: Vec<Certificate>,
    /// Whether every certificate came from a [`CertificateCache`] (then
    /// there is nothing new to keep).
    all_cached: bool,
    signers: Vec<SignerInfo>,
}

/// How a SignerInfo names its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerIdentifier {
    /// `issuerAndSerialNumber`.
    IssuerAndSerialNumber {
        /// DER of the issuer Name.
        issuer: Vec<u8>,
        /// The serial number's INTEGER content octets.
        serial: Vec<u8>,
    },
    /// `[0] subjectKeyIdentifier`.
    SubjectKeyIdentifier(Vec<u8>),
}

impl SignerIdentifier {
    /// Whether `cert` is the certificate this identifier names.
    pub fn matches(&self, cert: &Certificate) -> bool {
        match self {
            Self::IssuerAndSerialNumber { issuer, serial } => {
                cert.issuer_der() == issuer.as_slice() && cert.serial() == serial.as_slice()
            }
            Self::SubjectKeyIdentifier(ski) => {
                cert.subject_key_identifier().as_deref() == Some(ski.as_slice())
            }
        }
    }
}

/// One signed attribute: its type and the DER of each value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// `attrType`.
    pub oid: ObjectIdentifier,
    /// DER of each `attrValues` element, in the order received.
    pub values: Vec<Vec<u8>>,
}

/// The `signedAttrs` of a SignerInfo, with their original encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAttributes {
    raw: Vec<u8>,
    attributes: Vec<Attribute>,
}

impl SignedAttributes {
    /// All attributes, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = &Attribute> {
        self.attributes.iter()
    }

    /// The DER values of attribute `oid`, if present.
    pub fn get(&self, oid: &ObjectIdentifier) -> Option<&[Vec<u8>]> {
        self.attributes
            .iter()
            .find(|a| a.oid == *oid)
            .map(|a| a.values.as_slice())
    }

    /// The single value of attribute `oid` (error if it has several).
    pub fn single(&self, oid: &ObjectIdentifier) -> Result<Option<&[u8]>, CmsError> {
        match self.get(oid) {
            None => Ok(None),
            Some([one]) => Ok(Some(one.as_slice())),
            Some(_) => Err(CmsError::DuplicateAttribute { oid: *oid }),
        }
    }

    /// The single OCTET STRING value of attribute `oid`.
    pub fn octet_string(&self, oid: &ObjectIdentifier) -> Result<Option<Vec<u8>>, CmsError> {
        self.typed(oid, &[asn1::OCTET_STRING])
    }

    /// The single string value (PrintableString, UTF8String or IA5String) of attribute `oid`.
    pub fn string(&self, oid: &ObjectIdentifier) -> Result<Option<String>, CmsError> {
        self.typed(oid, &[19, 12, 22])?
            .map(|b| String::from_utf8(b).map_err(|_| CmsError::BadAttributeValue { oid: *oid }))
            .transpose()
    }

    fn typed(&self, oid: &ObjectIdentifier, tags: &[u32]) -> Result<Option<Vec<u8>>, CmsError> {
        let Some(der) = self.single(oid)? else {
            return Ok(None);
        };
        let bad = || CmsError::BadAttributeValue { oid: *oid };
        let el = Element::parse(der, &BerLimits::default()).map_err(|_| bad())?;
        if el.class != Class::Universal || el.constructed || !tags.contains(&el.number) {
            return Err(bad());
        }
        Ok(Some(el.contents.to_vec()))
    }

    /// The `contentType` attribute.
    pub fn content_type(&self) -> Result<Option<ObjectIdentifier>, CmsError> {
        let Some(der) = self.single(&oid::ID_CONTENT_TYPE)? else {
            return Ok(None);
        };
        ObjectIdentifier::from_der(der)
            .map(Some)
            .map_err(|_| CmsError::BadAttributeValue {
                oid: oid::ID_CONTENT_TYPE,
            })
    }

    /// The `messageDigest` attribute.
    pub fn message_digest(&self) -> Result<Option<Vec<u8>>, CmsError> {
        self.octet_string(&oid::ID_MESSAGE_DIGEST)
    }

    /// The `signingTime` attribute.
    pub fn signing_time(&self) -> Result<Option<SystemTime>, CmsError> {
        let Some(der) = self.single(&oid::ID_SIGNING_TIME)? else {
            return Ok(None);
        };
        x509_cert::time::Time::from_der(der)
            .map(|t| Some(t.to_system_time()))
            .map_err(|_| CmsError::BadAttributeValue {
                oid: oid::ID_SIGNING_TIME,
            })
    }

    /// The bytes the signature covers: the original encoding with the
    /// `[0] IMPLICIT` tag replaced by the SET tag (RFC 5652 §5.4).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = self.raw.clone();
        if let Some(tag) = out.first_mut() {
            *tag = 0x31;
        }
        out
    }
}

/// One SignerInfo.
#[derive(Debug, Clone)]
pub struct SignerInfo {
    version: u32,
    sid: SignerIdentifier,
    digest_algorithm: DigestAlgorithm,
    signature_algorithm: ObjectIdentifier,
    signed_attributes: Option<SignedAttributes>,
    signature: Vec<u8>,
}

impl SignerInfo {
    /// The SignerInfo version (1 for issuerAndSerialNumber, 3 for subjectKeyIdentifier).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Which certificate signed.
    pub fn signer_identifier(&self) -> &SignerIdentifier {
        &self.sid
    }

    /// The digest algorithm.
    pub fn digest_algorithm(&self) -> DigestAlgorithm {
        self.digest_algorithm
    }

    /// The signature algorithm as sent (`rsaEncryption` or `shaNNNWithRSAEncryption`).
    pub fn signature_algorithm(&self) -> ObjectIdentifier {
        self.signature_algorithm
    }

    /// The signed attributes, if any.
    pub fn signed_attributes(&self) -> Option<&SignedAttributes> {
        self.signed_attributes.as_ref()
    }

    /// The signature value.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

impl SignedData {
    /// Parse a ContentInfo holding SignedData, BER or DER, within `limits`.
    pub fn parse(bytes: &[u8], limits: &BerLimits) -> Result<Self, CmsError> {
        Self::parse_with_cache(bytes, limits, None)
    }

    /// [`Self::parse`], taking each certificate from `cache` when it holds
    /// that encoding. Nothing is added here: [`client_identity`] adds a
    /// signer's certificate once its signature has verified.
    ///
    /// [`client_identity`]: super::client_identity
    pub fn parse_with_cache(
        bytes: &[u8],
        limits: &BerLimits,
        cache: Option<&CertificateCache>,
    ) -> Result<Self, CmsError> {
        let ci = Element::parse(bytes, limits)?;
        let parts = asn1::sequence(&ci, asn1::SEQUENCE, "ContentInfo")?;
        let [ct, wrapped] = parts.as_slice() else {
            return Err(CmsError::Malformed("ContentInfo"));
        };
        let content_type = asn1::oid(ct, "ContentInfo.contentType")?;
        if content_type != oid::ID_SIGNED_DATA {
            return Err(CmsError::NotSignedData { content_type });
        }
        let sd = explicit(wrapped, 0, "ContentInfo.content")?;
        Self::from_element(&sd, cache)
    }

    fn from_element(sd: &Element<'_>, cache: Option<&CertificateCache>) -> Result<Self, CmsError> {
        let parts = asn1::sequence(sd, asn1::SEQUENCE, "SignedData")?;
        let mut it = parts.iter().peekable();
        let mut next = |what: &'static str| it.next().ok_or(Malformed(what));
        let version = asn1::small_integer(next("SignedData.version")?, "SignedData.version")?;
        asn1::sequence(next("digestAlgorithms")?, asn1::SET, "digestAlgorithms")?;
        let encap = asn1::sequence(
            next("encapContentInfo")?,
            asn1::SEQUENCE,
            "encapContentInfo",
        )?;
        let (content_type, content) = match encap.as_slice() {
            [ct] => (asn1::oid(ct, "eContentType")?, None),
            [ct, wrapped] => {
                let inner = explicit(wrapped, 0, "eContent")?;
                if !inner.is(Class::Universal, asn1::OCTET_STRING) {
                    return Err(CmsError::Malformed("eContent"));
                }
                (asn1::oid(ct, "eContentType")?, Some(inner.string_value()?))
            }
            _ => return Err(CmsError::Malformed("encapContentInfo")),
        };

        let mut certificates = Vec::new();
        let mut all_cached = true;
        let mut signer_infos = None;
        for el in it {
            if el.is(Class::Context, 0) && el.constructed && signer_infos.is_none() {
                for choice in el.children()? {
                    // Only plain certificates; other CertificateChoices are skipped.
                    if choice.is(Class::Universal, asn1::SEQUENCE) {
                        let kept = cache.and_then(|c| c.get(choice.raw));
                        all_cached &= kept.is_some();
                        certificates.push(match kept {
                            Some(certificate) => certificate,
                            None => Certificate::from_element(&choice)?,
                        });
                    }
                }
            } else if el.is(Class::Context, 1) && signer_infos.is_none() {
                // CRLs: not used here.
            } else if el.is(Class::Universal, asn1::SET) && signer_infos.is_none() {
                signer_infos = Some(el.children()?);
            } else {
                return Err(CmsError::Malformed("SignedData trailing field"));
            }
        }
        let signers = signer_infos
            .ok_or(CmsError::Malformed("signerInfos"))?
            .iter()
            .map(signer_info)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            version,
            content_type,
            content,
            certificates,
            all_cached,
            signers,
        })
    }

    /// SignedData version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// `eContentType`.
    pub fn content_type(&self) -> ObjectIdentifier {
        self.content_type
    }

    /// The `eContent` value octets (chunks concatenated); `None` when detached.
    pub fn content(&self) -> Option<&[u8]> {
        self.content.as_deref()
    }

    /// Take the content out (avoids a copy).
    pub fn into_content(self) -> Option<Vec<u8>> {
        self.content
    }

    /// The certificates the message carries (untrusted until verified).
    pub fn certificates(&self) -> &[Certificate] {
        &self.certificates
    }

    /// Whether [`Self::parse_with_cache`] took every certificate from its
    /// cache (so none of them is new to it).
    pub(crate) fn all_certificates_cached(&self) -> bool {
        self.all_cached
    }

    /// The SignerInfos.
    pub fn signers(&self) -> &[SignerInfo] {
        &self.signers
    }

    /// The certificate SignerInfo `index` names, if the message carries it.
    pub fn signer_certificate(&self, index: usize) -> Result<&Certificate, CmsError> {
        let signer = self
            .signers
            .get(index)
            .ok_or(CmsError::NoSuchSigner { index })?;
        self.certificates
            .iter()
            .find(|c| signer.sid.matches(c))
            .ok_or(CmsError::SignerCertificateNotFound)
    }

    /// Verify SignerInfo `index` cryptographically and return its certificate.
    ///
    /// `detached_content` is the content for a detached message (e.g. the HTTP
    /// body of an `Mdm-Signature`); pass `None` for attached content. Checks
    /// the messageDigest and contentType attributes when signed attributes are
    /// present. Makes **no trust decision** about the certificate.
    pub fn verify_signer(
        &self,
        index: usize,
        detached_content: Option<&[u8]>,
    ) -> Result<&Certificate, CmsError> {
        let signer = self
            .signers
            .get(index)
            .ok_or(CmsError::NoSuchSigner { index })?;
        let content = match (self.content.as_deref(), detached_content) {
            (Some(_), Some(_)) => return Err(CmsError::ContentAlreadyAttached),
            (Some(c), None) | (None, Some(c)) => c,
            (None, None) => return Err(CmsError::MissingContent),
        };
        let cert = self.signer_certificate(index)?;
        let digest = signer.digest_algorithm;
        if signer.signature_algorithm != oid::RSA_ENCRYPTION {
            match DigestAlgorithm::from_rsa_signature_oid(&signer.signature_algorithm) {
                Some(d) if d == digest => {}
                Some(_) => {
                    return Err(CmsError::AlgorithmMismatch {
                        signature: signer.signature_algorithm,
                        digest: digest.oid(),
                    });
                }
                None => {
                    return Err(CmsError::UnsupportedAlgorithm {
                        oid: signer.signature_algorithm,
                    });
                }
            }
        }
        let key = cert.public_key()?;
        match &signer.signed_attributes {
            Some(attrs) => {
                let ct = attrs.content_type()?.ok_or(CmsError::MissingAttribute {
                    oid: oid::ID_CONTENT_TYPE,
                })?;
                if ct != self.content_type {
                    return Err(CmsError::ContentTypeMismatch);
                }
                let md = attrs.message_digest()?.ok_or(CmsError::MissingAttribute {
                    oid: oid::ID_MESSAGE_DIGEST,
                })?;
                if !crypto::constant_time_eq(&md, &digest.digest(content)) {
                    return Err(CmsError::DigestMismatch);
                }
                crypto::verify_rsa(&key, digest, &attrs.signed_bytes(), &signer.signature)
            }
            None => crypto::verify_rsa(&key, digest, content, &signer.signature),
        }
        .map_err(|_| CmsError::BadSignature)?;
        Ok(cert)
    }
}

/// The single child of an `[n] EXPLICIT` element.
fn explicit<'a>(el: &Element<'a>, n: u32, what: &'static str) -> Result<Element<'a>, CmsError> {
    if !el.is(Class::Context, n) || !el.constructed {
        return Err(CmsError::Malformed(what));
    }
    match el.children()?.as_slice() {
        [one] => Ok(*one),
        _ => Err(CmsError::Malformed(what)),
    }
}

fn signer_info(el: &Element<'_>) -> Result<SignerInfo, CmsError> {
    let parts = asn1::sequence(el, asn1::SEQUENCE, "SignerInfo")?;
    let mut it = parts.iter().peekable();
    let mut next = |what: &'static str| it.next().ok_or(Malformed(what));
    let version = asn1::small_integer(next("SignerInfo.version")?, "SignerInfo.version")?;
    let sid_el = next("sid")?;
    let sid = if sid_el.is(Class::Universal, asn1::SEQUENCE) {
        let ias = sid_el.children()?;
        let [issuer, serial] = ias.as_slice() else {
            return Err(CmsError::Malformed("issuerAndSerialNumber"));
        };
        asn1::expect_universal(issuer, asn1::SEQUENCE, "issuerAndSerialNumber.issuer")?;
        SignerIdentifier::IssuerAndSerialNumber {
            issuer: issuer.to_der()?,
            serial: asn1::integer(serial, "issuerAndSerialNumber.serialNumber")?.to_vec(),
        }
    } else if sid_el.is(Class::Context, 0) {
        SignerIdentifier::SubjectKeyIdentifier(sid_el.string_value()?)
    } else {
        return Err(CmsError::Malformed("sid"));
    };
    let digest_oid = asn1::algorithm(next("digestAlgorithm")?, "digestAlgorithm")?;
    let digest_algorithm = DigestAlgorithm::from_oid(&digest_oid)
        .ok_or(CmsError::UnsupportedAlgorithm { oid: digest_oid })?;
    let signed_attributes = match it.next_if(|e| e.is(Class::Context, 0)) {
        Some(sa) => Some(signed_attributes(sa)?),
        None => None,
    };
    let mut next = |what: &'static str| it.next().ok_or(Malformed(what));
    let signature_algorithm = asn1::algorithm(next("signatureAlgorithm")?, "signatureAlgorithm")?;
    let sig_el = next("signature")?;
    if !sig_el.is(Class::Universal, asn1::OCTET_STRING) {
        return Err(CmsError::Malformed("signature"));
    }
    let signature = sig_el.string_value()?;
    match it.next() {
        None => {}
        Some(u) if u.is(Class::Context, 1) && it.next().is_none() => {}
        Some(_) => return Err(CmsError::Malformed("SignerInfo trailing field")),
    }
    Ok(SignerInfo {
        version,
        sid,
        digest_algorithm,
        signature_algorithm,
        signed_attributes,
        signature,
    })
}

fn signed_attributes(el: &Element<'_>) -> Result<SignedAttributes, CmsError> {
    if !el.constructed {
        return Err(CmsError::Malformed("signedAttrs"));
    }
    let mut attributes: Vec<Attribute> = Vec::new();
    for attr in el.children()? {
        let parts = asn1::sequence(&attr, asn1::SEQUENCE, "Attribute")?;
        let [ty, vals] = parts.as_slice() else {
            return Err(CmsError::Malformed("Attribute"));
        };
        let oid = asn1::oid(ty, "Attribute.attrType")?;
        if attributes.iter().any(|a| a.oid == oid) {
            return Err(CmsError::DuplicateAttribute { oid });
        }
        let values = asn1::sequence(vals, asn1::SET, "Attribute.attrValues")?
            .iter()
            .map(|v| v.to_der())
            .collect::<Result<Vec<_>, _>>()?;
        attributes.push(Attribute { oid, values });
    }
    Ok(SignedAttributes {
        raw: el.raw.to_vec(),
        attributes,
    })
}
