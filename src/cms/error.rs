//! The CMS error type.

use const_oid::ObjectIdentifier;
use thiserror::Error;

use super::asn1::{Malformed, WalkError};
use super::certificate::CertificateError;
use crate::crypto::CryptoError;
use crate::wire::ber::BerError;

/// What was wrong with a CMS message, or why building one failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CmsError {
    /// The encoding is not valid BER within limits.
    #[error("CMS encoding: {0}")]
    Ber(#[from] BerError),
    /// A field is missing or of the wrong type.
    #[error("malformed CMS: {0}")]
    Malformed(&'static str),
    /// The ContentInfo holds something other than SignedData.
    #[error("ContentInfo holds {content_type}, not SignedData")]
    NotSignedData {
        /// The ContentInfo's contentType.
        content_type: ObjectIdentifier,
    },
    /// A digest or signature algorithm this crate does not support.
    #[error("unsupported algorithm {oid}")]
    UnsupportedAlgorithm {
        /// The algorithm.
        oid: ObjectIdentifier,
    },
    /// The signature algorithm names a different digest than the SignerInfo.
    #[error("signature algorithm {signature} does not match digest algorithm {digest}")]
    AlgorithmMismatch {
        /// SignerInfo `signatureAlgorithm`.
        signature: ObjectIdentifier,
        /// SignerInfo `digestAlgorithm`.
        digest: ObjectIdentifier,
    },
    /// No SignerInfo at this index.
    #[error("no signer at index {index}")]
    NoSuchSigner {
        /// The requested index.
        index: usize,
    },
    /// No certificate in the message matches the signer identifier.
    #[error("signer certificate not found in the message")]
    SignerCertificateNotFound,
    /// The content is neither attached nor supplied as detached content.
    #[error("no content: the message is detached and no content was supplied")]
    MissingContent,
    /// Detached content was supplied for a message that carries its own.
    #[error("content supplied for a message that already carries attached content")]
    ContentAlreadyAttached,
    /// A signed attribute that must be present is missing.
    #[error("signed attribute {oid} missing")]
    MissingAttribute {
        /// The attribute type.
        oid: ObjectIdentifier,
    },
    /// A signed attribute occurs twice, or has the wrong number of values.
    #[error("signed attribute {oid} repeated or multi-valued")]
    DuplicateAttribute {
        /// The attribute type.
        oid: ObjectIdentifier,
    },
    /// A signed attribute's value is not of its required type.
    #[error("signed attribute {oid} has a malformed value")]
    BadAttributeValue {
        /// The attribute type.
        oid: ObjectIdentifier,
    },
    /// The contentType signed attribute differs from eContentType.
    #[error("contentType attribute does not match eContentType")]
    ContentTypeMismatch,
    /// The messageDigest signed attribute does not match the content.
    #[error("message digest does not match the content")]
    DigestMismatch,
    /// The RSA signature does not verify with the signer certificate's key.
    #[error("signature does not verify")]
    BadSignature,
    /// A certificate in (or given for) the message is unusable.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// The signer's key does not match the signer certificate given to the builder.
    #[error("signer key does not match the signer certificate")]
    SignerKeyMismatch,
    /// The signing backend failed.
    #[error("signing failed: {0}")]
    Signing(#[source] CryptoError),
    /// A time could not be encoded (before 1970 or after 9999).
    #[error("time out of range for ASN.1")]
    TimeOutOfRange,
    /// A value could not be DER-encoded (e.g. over the `der` crate's length limit).
    #[error("CMS DER encoding: {0}")]
    Encode(#[from] der::Error),
}

impl From<WalkError> for CmsError {
    fn from(e: WalkError) -> Self {
        match e {
            WalkError::Ber(b) => Self::Ber(b),
            WalkError::Malformed(m) => Self::Malformed(m),
        }
    }
}

impl From<Malformed> for CmsError {
    fn from(m: Malformed) -> Self {
        Self::Malformed(m.0)
    }
}
