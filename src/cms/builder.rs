//! CMS SignedData builder (DER output), signing through [`crypto::Signer`](crate::crypto::Signer).
//!
//! Used for signed profiles (attached `id-data` content, full chain), SCEP
//! PKIMessages and CertReps (signed attributes with SCEP's own attributes),
//! and certs-only ("degenerate") SignedData.

use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use der::Encode;

use super::asn1::{der_algorithm, der_algorithm_null, der_oid, der_sequence, der_set_of};
use super::certificate::Certificate;
use super::error::CmsError;
use super::oid;
use crate::crypto::{DigestAlgorithm, Signer};
use crate::wire::ber::encode_tlv;

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
            let set = self.signed_attributes_der()?;
            let signature = self
                .signer
                .sign(self.digest, &set)
                .map_err(CmsError::Signing)?;
            // [0] IMPLICIT in the SignerInfo; the signature covers the SET encoding.
            let mut tagged = set;
            if let Some(tag) = tagged.first_mut() {
                *tag = 0xA0;
            }
            (Some(tagged), signature)
        } else {
            let signature = self
                .signer
                .sign(self.digest, self.content)
                .map_err(CmsError::Signing)?;
            (None, signature)
        };

        let sid = der_sequence(&[
            self.signer_cert.issuer_der(),
            &encode_tlv(0x02, self.signer_cert.serial()),
        ]);
        let signer_info = der_sequence(&[
            &[0x02, 0x01, 0x01],
            &sid,
            &der_algorithm(&self.digest.oid()),
            signed_attrs.as_deref().unwrap_or_default(),
            &der_algorithm_null(&oid::RSA_ENCRYPTION),
            &encode_tlv(0x04, &signature),
        ]);

        let mut certs: Vec<&[u8]> = vec![self.signer_cert.der()];
        for c in &self.chain {
            if c.der() != self.signer_cert.der() {
                certs.push(c.der());
            }
        }
        let encap = if self.detached {
            der_sequence(&[&der_oid(&self.content_type)])
        } else {
            der_sequence(&[
                &der_oid(&self.content_type),
                &encode_tlv(0xA0, &encode_tlv(0x04, self.content)),
            ])
        };
        let version: u8 = if self.content_type == oid::ID_DATA {
            1
        } else {
            3
        };
        Ok(content_info(&der_sequence(&[
            &[0x02, 0x01, version],
            &der_set_of(vec![der_algorithm(&self.digest.oid())]),
            &encap,
            &encode_tlv(0xA0, &certs.concat()),
            &der_set_of(vec![signer_info]),
        ])))
    }

    fn signed_attributes_der(&self) -> Result<Vec<u8>, CmsError> {
        let attr = |oid: &ObjectIdentifier, value: &[u8]| {
            der_sequence(&[&der_oid(oid), &der_set_of(vec![value.to_vec()])])
        };
        let mut attrs = vec![
            attr(&oid::ID_CONTENT_TYPE, &der_oid(&self.content_type)),
            attr(
                &oid::ID_MESSAGE_DIGEST,
                &encode_tlv(0x04, &self.digest.digest(self.content)),
            ),
        ];
        let mut seen = vec![oid::ID_CONTENT_TYPE, oid::ID_MESSAGE_DIGEST];
        if let Some(time) = self.signing_time {
            // RFC 5652 §11.3: UTCTime through 2049, GeneralizedTime after.
            let time = x509_cert::time::Time::try_from(time)
                .and_then(|t| t.to_der())
                .map_err(|_| CmsError::TimeOutOfRange)?;
            attrs.push(attr(&oid::ID_SIGNING_TIME, &time));
            seen.push(oid::ID_SIGNING_TIME);
        }
        for (oid, value) in &self.extra_attrs {
            if seen.contains(oid) {
                return Err(CmsError::DuplicateAttribute { oid: *oid });
            }
            seen.push(*oid);
            attrs.push(attr(oid, value));
        }
        Ok(der_set_of(attrs))
    }
}

fn content_info(signed_data: &[u8]) -> Vec<u8> {
    der_sequence(&[
        &der_oid(&oid::ID_SIGNED_DATA),
        &encode_tlv(0xA0, signed_data),
    ])
}

/// A certs-only ("degenerate") SignedData holding `certs` in the order given:
/// no content, no signers (SCEP GetCACert CA/RA chains and CertRep payloads).
pub fn degenerate(certs: &[Certificate]) -> Vec<u8> {
    let ders: Vec<&[u8]> = certs.iter().map(Certificate::der).collect();
    let certificates = if ders.is_empty() {
        Vec::new()
    } else {
        encode_tlv(0xA0, &ders.concat())
    };
    content_info(&der_sequence(&[
        &[0x02, 0x01, 0x01],
        &der_set_of(Vec::new()),
        &der_sequence(&[&der_oid(&oid::ID_DATA)]),
        &certificates,
        &der_set_of(Vec::new()),
    ]))
}
