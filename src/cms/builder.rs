//! CMS SignedData builder (DER output), signing through [`crypto::Signer`](crate::crypto::Signer).
//!
//! Used for signed profiles (attached `id-data` content, full chain), SCEP
//! PKIMessages and CertReps (signed attributes with SCEP's own attributes),
//! and certs-only ("degenerate") SignedData.
//!
//! The structures are the `cms` crate's (`SignedAttributes`, `CmsVersion`)
//! encoded with [`der::Encode`]. Some parts are our own DER types (in
//! `asn1`), because the crate's cannot carry what this crate accepts or
//! would copy what it writes: the signer identifier keeps the certificate's
//! issuer and serial bytes as they are (x509-cert refuses serials over 21
//! octets); the certificate set keeps the given certificates, unchanged and
//! in order (the crate's `CertificateSet` would re-encode and sort them);
//! and the encapsulated content and the outer `ContentInfo` borrow what
//! they wrap and write it once, in place (the crate's hold it as an owned
//! `Any`, an encoded copy). Signing goes through our
//! [`Signer`] (which may be an HSM or KMS) over the
//! DER of the signed-attributes SET, not through the crate's
//! `signature`-trait builder.

use std::time::SystemTime;

use cms::content_info::CmsVersion;
use cms::signed_data::SignedAttributes;
use const_oid::ObjectIdentifier;
use der::asn1::{Any, AnyRef, OctetString, OctetStringRef, SetOfVec};
use der::{Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;

use super::asn1::{
    EncapsulatedContentOut, InOrder, IssuerAndSerial, SignedDataOut, SignerInfoOut, content_info,
};
use super::certificate::Certificate;
use super::error::CmsError;
use super::oid;
use crate::crypto::{DigestAlgorithm, Signer};

/// Builds one CMS SignedData with a single signer, as a DER ContentInfo.
///
/// ```no_run
/// # use mdm_enroll::cms::{SignedDataBuilder, Certificate, oid};
/// # use mdm_enroll::crypto::{RsaKey, DigestAlgorithm};
/// # fn f(key: &RsaKey, cert: &Certificate, chain: &[Certificate], plist: &[u8]) -> Result<(), mdm_enroll::cms::CmsError> {
/// let der = SignedDataBuilder::new(oid::ID_DATA, plist, key, cert)
///     .digest(DigestAlgorithm::Sha256)
///     .certificates(chain)
///     .signing_time(std::time::SystemTime::now())
///     .build()?;
/// # Ok(()) }
/// ```
pub struct SignedDataBuilder<'a> {
    content_type: ObjectIdentifier,
    content: &'a [u8],
    detached: bool,
    digest: DigestAlgorithm,
    signer: &'a dyn Signer,
    signer_cert: &'a Certificate,
    chain: Vec<&'a Certificate>,
    signed_attrs: bool,
    signing_time: Option<SystemTime>,
    extra_attrs: Vec<(ObjectIdentifier, Vec<u8>)>,
}

impl std::fmt::Debug for SignedDataBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedDataBuilder")
            .field("content_type", &self.content_type)
            .field("content_len", &self.content.len())
            .field("detached", &self.detached)
            .field("digest", &self.digest)
            .field("signer_cert", self.signer_cert)
            .field("signed_attrs", &self.signed_attrs)
            .finish_non_exhaustive()
    }
}

impl<'a> SignedDataBuilder<'a> {
    /// Sign `content` of type `content_type` with `signer`, whose certificate
    /// is `signer_cert`. Defaults: attached content, SHA-256, signed
    /// attributes on (contentType, messageDigest), no signingTime, no chain.
    pub fn new(
        content_type: ObjectIdentifier,
        content: &'a [u8],
        signer: &'a dyn Signer,
        signer_cert: &'a Certificate,
    ) -> Self {
        Self {
            content_type,
            content,
            detached: false,
            digest: DigestAlgorithm::Sha256,
            signer,
            signer_cert,
            chain: Vec::new(),
            signed_attrs: true,
            signing_time: None,
            extra_attrs: Vec::new(),
        }
    }

    /// Leave the content out of the message (detached signature).
    pub fn detached(mut self, detached: bool) -> Self {
        self.detached = detached;
        self
    }

    /// The digest algorithm (default SHA-256).
    pub fn digest(mut self, digest: DigestAlgorithm) -> Self {
        self.digest = digest;
        self
    }

    /// Add certificates (intermediates, root) after the signer certificate, in order.
    pub fn certificates(mut self, chain: &'a [Certificate]) -> Self {
        self.chain.extend(chain.iter());
        self
    }

    /// Add one certificate after the signer certificate.
    pub fn add_certificate(mut self, cert: &'a Certificate) -> Self {
        self.chain.push(cert);
        self
    }

    /// Sign the content directly, without signed attributes (as Apple devices
    /// do). Extra attributes and signing time are then ignored.
    pub fn without_signed_attributes(mut self) -> Self {
        self.signed_attrs = false;
        self
    }

    /// Include a signingTime attribute with this (caller-supplied) time.
    pub fn signing_time(mut self, time: SystemTime) -> Self {
        self.signing_time = Some(time);
        self
    }

    /// Add a signed attribute with one value, given as its DER encoding
    /// (e.g. SCEP's messageType, transactionID, senderNonce).
    pub fn signed_attribute(mut self, oid: ObjectIdentifier, value_der: Vec<u8>) -> Self {
        self.extra_attrs.push((oid, value_der));
        self
    }

    /// Sign and encode the DER ContentInfo.
    pub fn build(self) -> Result<Vec<u8>, CmsError> {
        if !self.signer_cert.has_public_key(self.signer.public_key()) {
            return Err(CmsError::SignerKeyMismatch);
        }
        let (signed_attrs, signature) = if self.signed_attrs {
            let attrs = self.signed_attributes()?;
            // The signature covers the DER of the SET OF (RFC 5652 §5.4); in
            // the SignerInfo the same contents are tagged [0] IMPLICIT.
            let signature = self
                .signer
                .sign(self.digest, &attrs.to_der()?)
                .map_err(CmsError::Signing)?;
            (Some(attrs), signature)
        } else {
            let signature = self
                .signer
                .sign(self.digest, self.content)
                .map_err(CmsError::Signing)?;
            (None, signature)
        };
        let digest_alg = AlgorithmIdentifierOwned {
            oid: self.digest.oid(),
            parameters: None,
        };
        let signer_info = SignerInfoOut {
            version: CmsVersion::V1,
            sid: IssuerAndSerial::new(self.signer_cert.issuer_der(), self.signer_cert.serial())?,
            digest_alg: digest_alg.clone(),
            signed_attrs,
            // rsaEncryption takes NULL parameters (RFC 3370 §3.2).
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: oid::RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
            signature: OctetString::new(signature)?,
        };

        let mut certs = vec![AnyRef::try_from(self.signer_cert.der())?];
        for c in &self.chain {
            if c.der() != self.signer_cert.der() {
                certs.push(AnyRef::try_from(c.der())?);
            }
        }
        let econtent = if self.detached {
            None
        } else {
            Some(OctetStringRef::new(self.content)?)
        };
        // RFC 5652 §5.1: version 3 when eContentType is not id-data.
        let version = if self.content_type == oid::ID_DATA {
            CmsVersion::V1
        } else {
            CmsVersion::V3
        };
        let signed_data = SignedDataOut {
            version,
            digest_algorithms: SetOfVec::try_from(vec![digest_alg])?,
            encap_content_info: EncapsulatedContentOut {
                econtent_type: self.content_type,
                econtent,
            },
            certificates: Some(InOrder(certs)),
            signer_infos: SetOfVec::try_from(vec![signer_info])?,
        };
        Ok(content_info(oid::ID_SIGNED_DATA, &signed_data)?)
    }

    fn signed_attributes(&self) -> Result<SignedAttributes, CmsError> {
        let attr = |oid: ObjectIdentifier, value: Any| -> Result<Attribute, CmsError> {
            Ok(Attribute {
                oid,
                values: SetOfVec::try_from(vec![value])?,
            })
        };
        let mut attrs = vec![
            attr(oid::ID_CONTENT_TYPE, Any::encode_from(&self.content_type)?)?,
            attr(
                oid::ID_MESSAGE_DIGEST,
                Any::encode_from(&OctetString::new(self.digest.digest(self.content))?)?,
            )?,
        ];
        let mut seen = vec![oid::ID_CONTENT_TYPE, oid::ID_MESSAGE_DIGEST];
        if let Some(time) = self.signing_time {
            // RFC 5652 §11.3: UTCTime through 2049, GeneralizedTime after.
            let time = x509_cert::time::Time::try_from(time)
                .and_then(|t| Any::encode_from(&t))
                .map_err(|_| CmsError::TimeOutOfRange)?;
            attrs.push(attr(oid::ID_SIGNING_TIME, time)?);
            seen.push(oid::ID_SIGNING_TIME);
        }
        for (oid, value) in &self.extra_attrs {
            if seen.contains(oid) {
                return Err(CmsError::DuplicateAttribute { oid: *oid });
            }
            seen.push(*oid);
            let value =
                Any::from_der(value).map_err(|_| CmsError::BadAttributeValue { oid: *oid })?;
            attrs.push(attr(*oid, value)?);
        }
        // SetOfVec sorts the attributes as DER requires (X.690 §11.6).
        Ok(SetOfVec::try_from(attrs)?)
    }
}

/// A certs-only ("degenerate") SignedData holding `certs` in the order given:
/// no content, no signers (SCEP GetCACert CA/RA chains and CertRep payloads).
pub fn degenerate(certs: &[Certificate]) -> Result<Vec<u8>, CmsError> {
    let ders: Vec<&[u8]> = certs.iter().map(Certificate::der).collect();
    degenerate_der(&ders)
}

/// [`degenerate`] over certificates as DER the crate encoded or parsed
/// itself: each must be one well-formed TLV (checked), and is not parsed
/// again.
pub(crate) fn degenerate_der(certs: &[&[u8]]) -> Result<Vec<u8>, CmsError> {
    let signed_data = SignedDataOut {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentOut {
            econtent_type: oid::ID_DATA,
            econtent: None,
        },
        certificates: if certs.is_empty() {
            None
        } else {
            let ders = certs.iter().map(|der| AnyRef::try_from(*der));
            Some(InOrder(ders.collect::<Result<_, _>>()?))
        },
        signer_infos: SetOfVec::new(),
    };
    Ok(content_info(oid::ID_SIGNED_DATA, &signed_data)?)
}
