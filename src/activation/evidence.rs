//! Verified evidence: what the message, CMS and SCEP layers hand the core
//! once signatures, chains and encodings have been checked. The core never
//! sees bytes it would have to trust.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{CertFingerprint, CommandUuid, DeviceFacts, OsVersion, Secret};

/// Step 2: credentials typed into self-service.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginAttempt {
    /// Username.
    pub username: String,
    /// Password (checked by the caller's directory, never stored).
    pub password: Secret,
    /// Directory domain.
    pub domain: String,
}

impl std::fmt::Debug for LoginAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginAttempt")
            .field("username", &self.username)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// Which OTA phase signed the device attributes, decided by the signer's issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AttributesPhase {
    /// Phase 2: signed by an Apple device identity (Apple device CA).
    DeviceIdentity,
    /// Phase 3: signed by an identity our SCEP CA issued.
    ScepIdentity,
}

/// Steps 5–6: device attributes whose CMS signature and signer chain were verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAttributes {
    /// `UDID`.
    pub udid: String,
    /// `SERIAL`.
    pub serial: String,
    /// `PRODUCT`.
    pub product: String,
    /// `OS_VERSION` when present.
    pub os_version: Option<OsVersion>,
    /// `VERSION` (build).
    pub build: Option<String>,
    /// `CHALLENGE` (phase 2).
    pub challenge: Option<Secret>,
    /// The phase the signer's issuer implies.
    pub phase: AttributesPhase,
}

impl VerifiedAttributes {
    /// The facts the policy looks at.
    pub fn facts(&self) -> DeviceFacts {
        DeviceFacts {
            udid: self.udid.clone(),
            serial: self.serial.clone(),
            product: self.product.clone(),
            os_version: self.os_version,
            build: self.build.clone(),
        }
    }
}

/// Step 8: the MDM identity certificate the SCEP CA issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedIdentity {
    /// Certificate serial number (big-endian bytes), unique per CA.
    #[serde(with = "crate::wire::plist_data")]
    pub serial: Vec<u8>,
    /// SHA-256 of the certificate DER.
    pub fingerprint: CertFingerprint,
    /// End of validity.
    pub not_after: SystemTime,
    /// The certificate (DER), kept to answer a resend of the SCEP request
    /// that produced it; empty when the caller does not keep it.
    #[serde(default, with = "crate::wire::plist_data")]
    pub certificate: Vec<u8>,
}

/// The channel a check-in or report came in on (protocol §1.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Channel {
    /// Device-channel id: `UDID`, or `EnrollmentID` for User Enrollment.
    pub device_id: String,
    /// User-channel id (`UserID`/`EnrollmentUserID`) when this is a user channel.
    pub user_id: Option<String>,
}

impl Channel {
    /// The device channel of `device_id`.
    pub fn device(device_id: impl Into<String>) -> Self {
        Self {
            device_id: device_id.into(),
            user_id: None,
        }
    }

    /// Whether this is the device channel.
    pub fn is_device(&self) -> bool {
        self.user_id.is_none()
    }
}

/// Where to push a channel: token and magic from its TokenUpdate. `Debug`
/// prints neither.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTarget {
    /// The push topic (`com.apple.mgmt.…`).
    pub topic: String,
    /// APNs device token.
    #[serde(with = "crate::wire::plist_data")]
    pub token: Vec<u8>,
    /// `PushMagic` for the payload.
    pub push_magic: String,
}

impl std::fmt::Debug for PushTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::redact::{Redacted, RedactedBytes};
        f.debug_struct("PushTarget")
            .field("topic", &self.topic)
            .field("token", &RedactedBytes(self.token.len()))
            .field("push_magic", &Redacted)
            .finish()
    }
}

/// A check-in message whose sender was authenticated (Mdm-Signature or mTLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinEvent {
    /// Fingerprint of the identity certificate that signed the request.
    pub identity: CertFingerprint,
    /// The channel.
    pub channel: Channel,
    /// The message.
    pub message: CheckinMessage,
}

/// The check-in messages the activation cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckinMessage {
    /// `Authenticate` (step 9).
    Authenticate {
        /// `Topic`.
        topic: String,
        /// `SerialNumber` if sent.
        serial: Option<String>,
    },
    /// `TokenUpdate` (step 10 when it is the first on the device channel).
    TokenUpdate {
        /// `Topic`, `Token` and `PushMagic`.
        push: PushTarget,
        /// `AwaitingConfiguration` if sent.
        awaiting_configuration: Option<bool>,
    },
    /// `CheckOut`: the device removed the MDM profile.
    CheckOut,
}

/// A report's `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReportStatus {
    /// Nothing to report; send the next command.
    Idle,
    /// The command ran.
    Acknowledged,
    /// The command failed.
    Error,
    /// The device could not parse the command.
    CommandFormatError,
    /// The device cannot run the command now; offer it again on a later connection.
    NotNow,
}

/// One `ErrorChain` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// `ErrorCode`.
    pub code: i64,
    /// `ErrorDomain`.
    pub domain: String,
    /// `LocalizedDescription`.
    pub description: String,
}

/// A connect request (steps 11–13) whose sender was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEvent {
    /// Fingerprint of the identity certificate that signed the request.
    pub identity: CertFingerprint,
    /// The channel.
    pub channel: Channel,
    /// What the device said.
    pub report: Report,
}

/// The body of a connect request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A decodable report.
    Status {
        /// `Status`.
        status: ReportStatus,
        /// `CommandUUID` (absent for `Idle`).
        command_uuid: Option<CommandUuid>,
        /// `ErrorChain` (for `Error`).
        error_chain: Vec<ErrorInfo>,
        /// The raw report body, stored as the command's result.
        body: Vec<u8>,
    },
    /// The body could not be decoded. It answers the command last sent on
    /// this connection, which is recorded as [`CommandOutcome::Undecodable`](super::CommandOutcome::Undecodable)
    /// so a bad report never blocks the queue head.
    Undecodable {
        /// Why decoding failed.
        reason: String,
    },
}
