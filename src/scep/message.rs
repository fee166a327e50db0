//! PKIMessage (RFC 8894 §3): a CMS SignedData whose signed attributes carry
//! the SCEP fields and whose content is an EnvelopedData (or nothing).
//!
//! [`PkiMessage::decode`] reads any PKIMessage (requests and CertReps, BER
//! tolerated) without trusting it; [`PkiMessage::verify`] checks the
//! signature. [`CertRep`] encodes a reply.

use std::time::SystemTime;

use thiserror::Error;

use crate::cms::enveloped::{EnvelopedData, EnvelopedError};
use crate::cms::{self, CmsError, SignedData, SignedDataBuilder};
use crate::crypto::{DigestAlgorithm, Signer};
use crate::wire::ber::{BerLimits, Element};

use super::{Challenge, FailInfo, MessageType, PkiStatus, oid};

/// `challengePassword` (PKCS#9), which Apple also sends as an outer signed attribute.
const CHALLENGE_PASSWORD: const_oid::ObjectIdentifier =
    const_oid::db::rfc2985::PKCS_9_AT_CHALLENGE_PASSWORD;

/// Why a PKIMessage could not be read or verified.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The CMS layer refused it.
    #[error("PKIMessage CMS: {0}")]
    Cms(#[from] CmsError),
    /// Not exactly one SignerInfo.
    #[error("PKIMessage must have exactly one signer, has {0}")]
    SignerCount(usize),
    /// No signed attributes (SCEP needs them).
    #[error("PKIMessage has no signed attributes")]
    NoSignedAttributes,
    /// A required SCEP attribute is missing or empty.
    #[error("PKIMessage attribute {0} missing or empty")]
    MissingAttribute(&'static str),
    /// An attribute has an unreadable value.
    #[error("PKIMessage attribute {0} malformed")]
    BadAttribute(&'static str),
}

/// A decoded (not yet verified) PKIMessage.
#[derive(Debug, Clone)]
pub struct PkiMessage {
    signed: SignedData,
    message_type: MessageType,
    transaction_id: String,
    transaction_id_der: Vec<u8>,
    sender_nonce: Option<Vec<u8>>,
    recipient_nonce: Option<Vec<u8>>,
    pki_status: Option<PkiStatus>,
    fail_info: Option<FailInfo>,
    outer_challenge: Option<Challenge>,
}

impl PkiMessage {
    /// Decode a PKIMessage and its SCEP attributes (BER or DER). Requires
    /// exactly one signer with signed attributes, a messageType and a
    /// non-empty transactionID. Nothing is verified yet.
    pub fn decode(bytes: &[u8], limits: &BerLimits) -> Result<Self, MessageError> {
        let signed = SignedData::parse(bytes, limits)?;
        let signer = match signed.signers() {
            [one] => one,
            other => return Err(MessageError::SignerCount(other.len())),
        };
        let attrs = signer
            .signed_attributes()
            .ok_or(MessageError::NoSignedAttributes)?;
        let string = |o, name| {
            attrs
                .string(&o)
                .map_err(|_| MessageError::BadAttribute(name))
        };
        let message_type = string(oid::MESSAGE_TYPE, "messageType")?
            .ok_or(MessageError::MissingAttribute("messageType"))?;
        let message_type = message_type
            .trim()
            .parse::<u32>()
            .map(MessageType::from_number)
            .map_err(|_| MessageError::BadAttribute("messageType"))?;
        let transaction_id = string(oid::TRANSACTION_ID, "transactionID")?
            .filter(|t| !t.is_empty())
            .ok_or(MessageError::MissingAttribute("transactionID"))?;
        let transaction_id_der = attrs
            .single(&oid::TRANSACTION_ID)
            .ok()
            .flatten()
            .map(<[u8]>::to_vec)
            .ok_or(MessageError::MissingAttribute("transactionID"))?;
        let octets = |o, name| {
            attrs
                .octet_string(&o)
                .map_err(|_| MessageError::BadAttribute(name))
        };
        let sender_nonce = octets(oid::SENDER_NONCE, "senderNonce")?;
        let recipient_nonce = octets(oid::RECIPIENT_NONCE, "recipientNonce")?;
        let pki_status = string(oid::PKI_STATUS, "pkiStatus")?
            .map(|s| PkiStatus::parse(s.trim()).ok_or(MessageError::BadAttribute("pkiStatus")))
            .transpose()?;
        let fail_info = string(oid::FAIL_INFO, "failInfo")?
            .map(|s| FailInfo::parse(s.trim()).ok_or(MessageError::BadAttribute("failInfo")))
            .transpose()?;
        let outer_challenge = attrs
            .single(&CHALLENGE_PASSWORD)
            .ok()
            .flatten()
            .and_then(|der| Element::parse(der, limits).ok().map(|el| (der, el)))
            .and_then(|(_, el)| super::csr::directory_string(&el).ok())
            .map(Challenge::new);
        Ok(Self {
            signed,
            message_type,
            transaction_id,
            transaction_id_der,
            sender_nonce,
            recipient_nonce,
            pki_status,
            fail_info,
            outer_challenge,
        })
    }

    /// Verify the signature (digest, signed attributes, RSA) and return the
    /// signer certificate. Makes no trust decision about that certificate.
    pub fn verify(&self) -> Result<&cms::Certificate, MessageError> {
        if self.signed.content().is_none() {
            return Err(MessageError::Cms(CmsError::MissingContent));
        }
        Ok(self.signed.verify_signer(0, None)?)
    }

    /// The signer certificate named by the SignerInfo (not verified).
    pub fn signer_certificate(&self) -> Result<&cms::Certificate, MessageError> {
        Ok(self.signed.signer_certificate(0)?)
    }

    /// The parsed SignedData.
    pub fn signed_data(&self) -> &SignedData {
        &self.signed
    }

    /// The messageType.
    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    /// The transactionID.
    pub fn transaction_id(&self) -> &str {
        &self.transaction_id
    }

    /// The senderNonce, if present.
    pub fn sender_nonce(&self) -> Option<&[u8]> {
        self.sender_nonce.as_deref()
    }

    /// The recipientNonce, if present (CertReps).
    pub fn recipient_nonce(&self) -> Option<&[u8]> {
        self.recipient_nonce.as_deref()
    }

    /// The pkiStatus, if present (CertReps).
    pub fn pki_status(&self) -> Option<PkiStatus> {
        self.pki_status
    }

    /// The failInfo, if present (FAILURE CertReps).
    pub fn fail_info(&self) -> Option<FailInfo> {
        self.fail_info
    }

    /// A challengePassword sent as an outer signed attribute (Apple does).
    pub fn outer_challenge(&self) -> Option<&Challenge> {
        self.outer_challenge.as_ref()
    }

    /// The digest algorithm of the signer.
    pub fn digest(&self) -> DigestAlgorithm {
        self.signed
            .signers()
            .first()
            .map(|s| s.digest_algorithm())
            .unwrap_or(DigestAlgorithm::Sha256)
    }

    /// The encapsulated content (the EnvelopedData bytes), if any and non-empty.
    pub fn content(&self) -> Option<&[u8]> {
        self.signed.content().filter(|c| !c.is_empty())
    }

    /// Decode the enveloped content.
    pub fn envelope(&self, limits: &BerLimits) -> Result<EnvelopedData, EnvelopedError> {
        let content = self
            .content()
            .ok_or(EnvelopedError::Malformed("no enveloped content"))?;
        EnvelopedData::parse(content, limits)
    }

    fn transaction_id_der(&self) -> &[u8] {
        &self.transaction_id_der
    }
}

/// A CertRep to encode: the reply fields, bound to the request they answer.
#[derive(Debug, Clone)]
pub struct CertRep {
    /// SUCCESS, FAILURE or PENDING.
    pub status: PkiStatus,
    /// Set for FAILURE.
    pub fail_info: Option<FailInfo>,
    /// DER of the request's transactionID attribute value (copied verbatim).
    pub transaction_id_der: Vec<u8>,
    /// The request's senderNonce (becomes recipientNonce), if it had one.
    pub recipient_nonce: Option<Vec<u8>>,
    /// A fresh nonce.
    pub sender_nonce: [u8; 16],
    /// The request's digest algorithm.
    pub digest: DigestAlgorithm,
    /// For SUCCESS: DER ContentInfo(EnvelopedData) of the degenerate PKCS#7.
    pub envelope: Option<Vec<u8>>,
}

impl CertRep {
    /// A reply to `request` with `status`, a fresh nonce from `rng`.
    pub fn for_request<R: rand_core::CryptoRng + ?Sized>(
        request: &PkiMessage,
        status: PkiStatus,
        fail_info: Option<FailInfo>,
        rng: &mut R,
    ) -> Self {
        let mut sender_nonce = [0u8; 16];
        rng.fill_bytes(&mut sender_nonce);
        Self {
            status,
            fail_info,
            transaction_id_der: request.transaction_id_der().to_vec(),
            recipient_nonce: request.sender_nonce.clone(),
            sender_nonce,
            digest: request.digest(),
            envelope: None,
        }
    }

    /// Sign and encode (DER). `signer_cert` is the CA or RA certificate the
    /// client got from GetCACert; `signing_time` is the caller's `now`.
    pub fn encode(
        &self,
        signer: &dyn Signer,
        signer_cert: &cms::Certificate,
        signing_time: SystemTime,
    ) -> Result<Vec<u8>, CmsError> {
        use der::Encode;
        let printable = |s: &str| der::asn1::PrintableStringRef::new(s)?.to_der();
        let octets = |b: &[u8]| der::asn1::OctetStringRef::new(b)?.to_der();
        let content = self.envelope.as_deref().unwrap_or_default();
        let mut b = SignedDataBuilder::new(cms::oid::ID_DATA, content, signer, signer_cert)
            .digest(self.digest)
            .signing_time(signing_time)
            .signed_attribute(oid::MESSAGE_TYPE, printable("3")?)
            .signed_attribute(oid::PKI_STATUS, printable(self.status.as_str())?)
            .signed_attribute(oid::TRANSACTION_ID, self.transaction_id_der.clone())
            .signed_attribute(oid::SENDER_NONCE, octets(&self.sender_nonce)?);
        if let Some(n) = &self.recipient_nonce {
            b = b.signed_attribute(oid::RECIPIENT_NONCE, octets(n)?);
        }
        if let Some(f) = self.fail_info {
            b = b.signed_attribute(oid::FAIL_INFO, printable(f.as_str())?);
        }
        b.build()
    }
}

/// `IssuerAndSubject ::= SEQUENCE { issuer Name, subject Name }` (GetCertInitial).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerAndSubject {
    /// DER of the issuer Name (the CA).
    pub issuer: Vec<u8>,
    /// DER of the requested subject Name.
    pub subject: Vec<u8>,
}

impl IssuerAndSubject {
    /// Decode (BER tolerated; names are returned as DER).
    pub fn decode(bytes: &[u8], limits: &BerLimits) -> Result<Self, EnvelopedError> {
        /// The ASN.1 shape; names stay as encoded (after normalisation).
        #[derive(der::Sequence)]
        struct Shape<'a> {
            issuer: der::asn1::AnyRef<'a>,
            subject: der::asn1::AnyRef<'a>,
        }
        use der::{Decode, Encode, Tag, Tagged};
        let der = crate::wire::ber::to_der(bytes, limits)?;
        match Shape::from_der(&der) {
            Ok(Shape { issuer, subject })
                if issuer.tag() == Tag::Sequence && subject.tag() == Tag::Sequence =>
            {
                Ok(Self {
                    issuer: issuer.to_der()?,
                    subject: subject.to_der()?,
                })
            }
            _ => Err(EnvelopedError::Malformed("IssuerAndSubject")),
        }
    }
}
