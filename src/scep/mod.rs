//! SCEP (RFC 8894) server side, sans-IO.
//!
//! [`ScepResponder::handle`] takes an [`http::Request`](crate::http::Request)
//! and `now`, and returns a [`ScepOutcome`]: either a ready response
//! (GetCACaps, GetCACert, a signed FAILURE CertRep) or a decision the caller
//! resolves — [`CertificateRequest`] for PKCSReq/RenewalReq, [`PollRequest`]
//! for GetCertInitial — the way rustls hands back `Accepted`.
//!
//! | module | what it holds |
//! |---|---|
//! | [`caps`] | GetCACaps keywords |
//! | [`transport`] | the HTTP binding: operations, GET base64 / POST bodies |
//! | [`csr`] | PKCS#10 requests: self-signature, challengePassword |
//! | [`message`] | PKIMessage decoding and CertRep encoding |
//! | [`responder`] | the responder and its decision values |

pub mod caps;
pub mod csr;
pub mod message;
pub mod responder;
pub mod transport;

pub use caps::{Capabilities, Capability};
pub use csr::{Csr, CsrError};
pub use message::{CertRep, IssuerAndSubject, MessageError, PkiMessage};
pub use responder::{
    CertificateRequest, ChallengeVerdict, ChallengeVerifier, IssuanceRecord, Issued, PollRequest,
    RequestFingerprint, ScepError, ScepOutcome, ScepResponder,
};
pub use transport::{Operation, TransportError};

/// SCEP signed-attribute OIDs (RFC 8894 §3.2.1, VeriSign arc).
pub mod oid {
    use const_oid::ObjectIdentifier;
    /// `messageType` (PrintableString).
    pub const MESSAGE_TYPE: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.2");
    /// `pkiStatus` (PrintableString).
    pub const PKI_STATUS: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.3");
    /// `failInfo` (PrintableString).
    pub const FAIL_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.4");
    /// `senderNonce` (OCTET STRING).
    pub const SENDER_NONCE: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.5");
    /// `recipientNonce` (OCTET STRING).
    pub const RECIPIENT_NONCE: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.6");
    /// `transactionID` (PrintableString).
    pub const TRANSACTION_ID: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.7");
}

/// The SCEP `messageType` (RFC 8894 §3.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `3` CertRep.
    CertRep,
    /// `17` RenewalReq.
    RenewalReq,
    /// `18` UpdateReq (obsolete drafts; refused).
    UpdateReq,
    /// `19` PKCSReq.
    PkcsReq,
    /// `20` CertPoll / GetCertInitial.
    CertPoll,
    /// `21` GetCert.
    GetCert,
    /// `22` GetCRL.
    GetCrl,
    /// Any other number.
    Other(u32),
}

impl MessageType {
    /// The decimal number.
    pub fn number(self) -> u32 {
        match self {
            Self::CertRep => 3,
            Self::RenewalReq => 17,
            Self::UpdateReq => 18,
            Self::PkcsReq => 19,
            Self::CertPoll => 20,
            Self::GetCert => 21,
            Self::GetCrl => 22,
            Self::Other(n) => n,
        }
    }

    /// From the decimal number.
    pub fn from_number(n: u32) -> Self {
        match n {
            3 => Self::CertRep,
            17 => Self::RenewalReq,
            18 => Self::UpdateReq,
            19 => Self::PkcsReq,
            20 => Self::CertPoll,
            21 => Self::GetCert,
            22 => Self::GetCrl,
            n => Self::Other(n),
        }
    }
}

/// The `pkiStatus` of a CertRep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PkiStatus {
    /// `0`: the certificate is enclosed.
    Success,
    /// `2`: refused, see [`FailInfo`].
    Failure,
    /// `3`: the client should poll with GetCertInitial.
    Pending,
}

impl PkiStatus {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "0",
            Self::Failure => "2",
            Self::Pending => "3",
        }
    }

    /// From the wire value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "0" => Some(Self::Success),
            "2" => Some(Self::Failure),
            "3" => Some(Self::Pending),
            _ => None,
        }
    }
}

/// The `failInfo` of a FAILURE CertRep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailInfo {
    /// `0`: unrecognised or unsupported algorithm.
    BadAlg,
    /// `1`: integrity check (signature, digest) failed.
    BadMessageCheck,
    /// `2`: transaction not permitted or not supported.
    BadRequest,
    /// `3`: signingTime too far from the server's time.
    BadTime,
    /// `4`: no certificate matches the criteria.
    BadCertId,
}

impl FailInfo {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadAlg => "0",
            Self::BadMessageCheck => "1",
            Self::BadRequest => "2",
            Self::BadTime => "3",
            Self::BadCertId => "4",
        }
    }

    /// From the wire value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "0" => Some(Self::BadAlg),
            "1" => Some(Self::BadMessageCheck),
            "2" => Some(Self::BadRequest),
            "3" => Some(Self::BadTime),
            "4" => Some(Self::BadCertId),
            _ => None,
        }
    }
}

/// A challenge password presented by a client: a secret.
///
/// `Debug` never prints it; compare it with [`Challenge::matches`] (constant
/// time) or read it with [`Challenge::expose`] to look it up in a store.
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge(Vec<u8>);

impl Challenge {
    /// Wrap a presented challenge (UTF-8 bytes).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Constant-time comparison with the expected challenge.
    pub fn matches(&self, expected: &[u8]) -> bool {
        crate::crypto::constant_time_eq(&self.0, expected)
    }

    /// The challenge bytes (to hash or look up; handle as a secret).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Challenge(<{} bytes redacted>)", self.0.len())
    }
}
