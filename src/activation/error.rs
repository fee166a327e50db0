use thiserror::Error;

use super::{AttributesPhase, CommandUuid, OsVersion, Phase, Step};

/// Why the core refused an input. The state is unchanged after any error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ActivationError {
    /// A tenant id is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error("invalid tenant id")]
    InvalidTenant,
    /// An activation id is empty, too long or has characters outside `[A-Za-z0-9_-]`.
    #[error("invalid activation id")]
    InvalidActivationId,
    /// The input belongs to `step` but the activation is in `phase`.
    #[error("step {step:?} is out of order in phase {phase:?}")]
    OutOfOrder {
        /// The step the input would perform.
        step: Step,
        /// The activation's phase.
        phase: Phase,
    },
    /// A record of one tenant was presented at another tenant's URL.
    #[error("tenant mismatch")]
    TenantMismatch,
    /// The username is unknown in this tenant.
    #[error("unknown user")]
    UnknownUser,
    /// The directory refused the credentials.
    #[error("wrong credentials")]
    BadCredentials,
    /// The user's self-service activation password has expired.
    #[error("activation password expired")]
    PasswordExpired,
    /// The policy has an organisation notice and the user did not accept it.
    #[error("organisation notice not accepted")]
    NoticeNotAccepted,
    /// No activation with this id in this tenant.
    #[error("unknown activation")]
    UnknownActivation,
    /// The request carried no challenge.
    #[error("challenge missing")]
    MissingChallenge,
    /// No such challenge in this tenant (never issued, or another tenant's).
    #[error("unknown challenge")]
    UnknownChallenge,
    /// The challenge is not the one this activation expects at this step.
    #[error("wrong challenge")]
    WrongChallenge,
    /// The challenge has expired.
    #[error("challenge expired")]
    ChallengeExpired,
    /// The challenge was already used.
    #[error("challenge already used")]
    ChallengeReplayed,
    /// Device attributes signed in an unexpected OTA phase.
    #[error("device attributes from unexpected phase {0:?}")]
    UnexpectedPhase(AttributesPhase),
    /// The policy does not allow this model.
    #[error("model {product} not allowed")]
    ModelNotAllowed {
        /// The device's `PRODUCT`.
        product: String,
    },
    /// The device's OS is below the policy's floor (or unknown).
    #[error("OS version below {floor}")]
    OsBelowFloor {
        /// The floor.
        floor: OsVersion,
        /// The version the device reported, if any.
        found: Option<OsVersion>,
        /// The build the device reported, if any.
        build: Option<String>,
    },
    /// The user already has the maximum number of devices.
    #[error("device limit of {max} reached")]
    DeviceCapReached {
        /// The limit.
        max: u32,
    },
    /// The request was signed by an identity this server never issued or bound.
    #[error("unknown identity certificate")]
    UnknownIdentity,
    /// The identity certificate belongs to another activation or was retired.
    #[error("identity certificate not valid for this activation")]
    IdentityMismatch,
    /// The identity certificate is bound to another device (e.g. copied by
    /// Migration Assistant).
    #[error("identity certificate bound to another device")]
    DeviceMismatch,
    /// A command or report arrived before the device finished enrolment.
    #[error("device not enrolled")]
    NotEnrolled,
    /// A `CommandUUID` that is empty, too long or holds control characters.
    #[error("invalid CommandUUID")]
    InvalidCommandUuid,
    /// A non-`Idle` report without `CommandUUID`.
    #[error("report without CommandUUID")]
    MissingCommandUuid,
    /// A report for a command that is not queued for this channel.
    #[error("report for unknown command {0}")]
    UnknownCommand(CommandUuid),
    /// An undecodable report when no command was sent on this connection.
    #[error("undecodable report with no command outstanding")]
    UndecodableWithoutCommand,
    /// An identity renewal attempt is already in flight (or the renewal
    /// was given up): one renewal at a time per enrollment.
    #[error("identity renewal already in flight")]
    RenewalInFlight,
}
