//! Trust anchors and certificate path verification.
//!
//! A path is built from the leaf through caller-supplied intermediates to a
//! [`TrustAnchors`] certificate. Each link is checked by issuer/subject name
//! and by the issuer key's signature; intermediates must not say `cA=false`.
//! The anchor acts as a pinned key: its own signature is not checked. Time
//! checks are optional because Apple's device CAs expired long ago.

use std::time::SystemTime;

use thiserror::Error;

use super::certificate::{Certificate, CertificateError};

/// Longest accepted path, anchor included.
pub const MAX_CHAIN_LENGTH: usize = 8;

/// Why a certificate is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TrustError {
    /// No path from the certificate to any trust anchor.
    #[error("certificate issued by {issuer:?} does not chain to a trust anchor")]
    Untrusted {
        /// Issuer (RFC 4514) of the last certificate reached.
        issuer: String,
    },
    /// A certificate on the path is outside its validity period at `now`.
    #[error("certificate {subject:?} is not valid at the given time")]
    OutsideValidity {
        /// Subject (RFC 4514) of the certificate.
        subject: String,
    },
    /// The path is longer than [`MAX_CHAIN_LENGTH`].
    #[error("certificate path longer than {MAX_CHAIN_LENGTH}")]
    PathTooLong,
    /// A certificate on the path could not be used.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

/// A set of trusted certificates (roots, pinned CAs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustAnchors {
    anchors: Vec<Certificate>,
}

impl TrustAnchors {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set holding `certs`.
    pub fn from_certificates(certs: impl IntoIterator<Item = Certificate>) -> Self {
        Self {
            anchors: certs.into_iter().collect(),
        }
    }

    /// A set holding every certificate of a PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertificateError> {
        Certificate::from_pem(pem).map(Self::from_certificates)
    }

    /// Add an anchor.
    pub fn add(&mut self, cert: Certificate) {
        if !self.anchors.contains(&cert) {
            self.anchors.push(cert);
        }
    }

    /// The anchors.
    pub fn certificates(&self) -> &[Certificate] {
        &self.anchors
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// The anchor that issued `cert` (matching name and verifying signature), if any.
    pub fn issuer_of(&self, cert: &Certificate) -> Option<&Certificate> {
        self.anchors.iter().find(|a| issued(cert, a))
    }
}

fn issued(cert: &Certificate, issuer: &Certificate) -> bool {
    cert.issuer_der() == issuer.subject_der() && cert.verify_issued_by(issuer).is_ok()
}

/// Verify that `leaf` chains to one of `anchors`, possibly through
/// `intermediates` (untrusted, e.g. from the message). Returns the path, leaf
/// first, anchor last. With `now`, every certificate on the path must be
/// within its validity period; with `None`, dates are ignored.
pub fn verify_chain<'a>(
    leaf: &'a Certificate,
    intermediates: &'a [Certificate],
    anchors: &'a TrustAnchors,
    now: Option<SystemTime>,
) -> Result<Vec<&'a Certificate>, TrustError> {
    let mut path = vec![leaf];
    let mut current = leaf;
    loop {
        if let Some(t) = now
            && !current.is_valid_at(t)
        {
            return Err(TrustError::OutsideValidity {
                subject: current.subject_string(),
            });
        }
        if anchors.anchors.contains(current) {
            // A pinned certificate: trusted as it is.
            return Ok(path);
        }
        if path.len() >= MAX_CHAIN_LENGTH {
            return Err(TrustError::PathTooLong);
        }
        if let Some(anchor) = anchors.issuer_of(current) {
            path.push(anchor);
            if let Some(t) = now
                && !anchor.is_valid_at(t)
            {
                return Err(TrustError::OutsideValidity {
                    subject: anchor.subject_string(),
                });
            }
            return Ok(path);
        }
        let next = intermediates.iter().find(|c| {
            !path.contains(c) && matches!(c.is_ca(), Ok(None | Some(true))) && issued(current, c)
        });
        match next {
            Some(c) => {
                path.push(c);
                current = c;
            }
            None => {
                return Err(TrustError::Untrusted {
                    issuer: current.issuer_string(),
                });
            }
        }
    }
}
