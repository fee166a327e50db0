//! Renewal of an enrollment's MDM identity before it expires: a state of the
//! enrollment ([`Activation::renewal`](super::Activation::renewal)), not a
//! re-enrollment.
//!
//! macOS never renews the identity of an MDM profile by itself. The server
//! sends `InstallProfile` with the enrollment profile again (the same root
//! `PayloadIdentifier`, `Topic`, `ServerURL` and `CheckInURL`) carrying a
//! fresh one-time SCEP challenge ([`ChallengeKind::Renewal`]); the Mac
//! enrolls a new identity with it and signs with that one from then on.
//! The old identity keeps working until the new one is first seen; then it
//! is retired in the same step that binds the new one.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{CertFingerprint, ChallengeGrant, CommandUuid, IssuedIdentity};

#[cfg(doc)]
use super::ChallengeKind;

/// One enrollment's identity renewal in flight (or given up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRenewal {
    /// The current attempt, from 1.
    pub attempt: u32,
    /// The attempt's one-time SCEP challenge ([`ChallengeKind::Renewal`]);
    /// only this one is accepted, earlier attempts' challenges are not.
    pub challenge: ChallengeGrant,
    /// The attempt's `InstallProfile` command.
    pub command: CommandUuid,
    /// When the attempt was queued.
    pub queued: SystemTime,
    /// When the device refused or deferred the attempt (`Error`,
    /// `CommandFormatError`, `NotNow`); the policy retries some time later.
    pub failed_at: Option<SystemTime>,
    /// SHA-256 of the SCEP request the challenge was consumed for, until
    /// its certificate is issued.
    pub scep_request: Option<[u8; 32]>,
    /// Certificates issued under this renewal's challenges and not yet seen
    /// (at most one per attempt). The first one the device signs with
    /// becomes the enrollment's identity.
    pub issued: Vec<IssuedIdentity>,
    /// The attempt budget ran out: no further attempt is made.
    pub exhausted: bool,
    /// The identity's expiry was reported (once).
    pub expiry_reported: bool,
}

impl IdentityRenewal {
    /// The issued, not yet seen certificate with this fingerprint.
    pub fn issued_identity(&self, fingerprint: &CertFingerprint) -> Option<&IssuedIdentity> {
        self.issued.iter().find(|i| i.fingerprint == *fingerprint)
    }

    /// Whether the attempt's SCEP challenge was used and its certificate
    /// is being issued.
    pub fn issuing(&self) -> bool {
        self.scep_request.is_some()
    }
}
