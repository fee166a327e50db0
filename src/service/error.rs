//! Driver errors, the events a call reports and its result wrapper.

use thiserror::Error;

use crate::activation::{
    ActivationError, ActivationId, Channel, CommandOutcome, CommandUuid, Step, TenantId,
};
use crate::store::{DirectoryError, PushError, StoreError};

/// Why a driver call failed.
#[derive(Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The core (or a lost atomic gate) refused the input.
    #[error(transparent)]
    Activation(#[from] ActivationError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The [`Directory`](crate::store::Directory) could not check the
    /// credentials (503 when transient, else 500).
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The request could not be decoded or its signature did not verify.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The server could not build, sign or encode what it answers with (its
    /// configuration is wrong). What the call did before that is **not**
    /// undone: self-service has stored the login's activation and its
    /// challenge, the Profile Service has consumed the device's challenge
    /// and stored the SCEP challenge, a `TokenUpdate` may have stored the
    /// channel's initial declarations. A renewal is refused before anything
    /// is queued.
    #[error("server error: {0}")]
    Internal(String),
    /// The command API refused a command.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The request names a tenant the caller's
    /// [`TenantConfigs`](super::TenantConfigs) does not serve (404).
    #[error("unknown tenant {0}")]
    UnknownTenant(TenantId),
    /// An `Authenticate` or `TokenUpdate` carried a push `Topic` other than
    /// the tenant's (400; nothing was stored).
    #[error("check-in topic {presented:?} is not the tenant's topic {expected:?}")]
    TopicMismatch {
        /// The tenant's configured topic.
        expected: String,
        /// The topic in the message.
        presented: String,
    },
}

/// Why the command API refused to queue or cancel a command.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The raw command plist is larger than the limit.
    #[error("command plist is {len} bytes, the limit is {max}")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The raw command plist is not a command: not a plist, not a
    /// dictionary, or without a `CommandUUID` string or a `Command`
    /// dictionary with a `RequestType` string (the message names which).
    #[error("invalid command plist: {0}")]
    Invalid(String),
    /// A command with this uuid is or was queued on this channel.
    #[error("command {0} is already queued or finished on this channel")]
    Duplicate(CommandUuid),
    /// The command was already sent to the device: too late to cancel.
    #[error("command {0} was already delivered")]
    AlreadyDelivered(CommandUuid),
    /// The command already finished, was cancelled or was cleared.
    #[error("command {0} already finished")]
    AlreadyFinished(CommandUuid),
    /// No command with this uuid was queued on this channel.
    #[error("no command {0} on this channel")]
    Unknown(CommandUuid),
    /// The command belongs to the activation's initial configuration, whose
    /// answers the activation waits for: not the caller's to cancel.
    #[error("command {0} belongs to the initial configuration")]
    InitialConfiguration(CommandUuid),
}

/// Something notable that happened to an activation, for the caller's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The activation.
    pub activation: ActivationId,
    /// What happened.
    pub kind: EventKind,
}

/// Kinds of [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A step was reached.
    Reached(Step),
    /// A command finished.
    CommandFinished {
        /// The command.
        uuid: CommandUuid,
        /// How.
        outcome: CommandOutcome,
    },
    /// The initial configuration finished with these commands not acknowledged.
    ConfigurationFailed(Vec<CommandUuid>),
    /// The initial configuration failed: the device reported these initial
    /// declarations invalid (their reasons are in the stored statuses).
    DeclarationsInvalid(Vec<String>),
    /// The device authenticated again (re-enrolment).
    ReEnrolled,
    /// The activation no longer has an enrolled device (CheckOut or superseded).
    Unenrolled,
    /// A command was queued through the command API.
    CommandQueued {
        /// The channel.
        channel: Channel,
        /// The command.
        uuid: CommandUuid,
        /// Its `RequestType`.
        request_type: String,
    },
    /// A queued command was cancelled before it was delivered.
    CommandCancelled {
        /// The channel.
        channel: Channel,
        /// The command.
        uuid: CommandUuid,
    },
    /// A push was handed to the [`PushSender`](crate::store::PushSender).
    Pushed {
        /// The channel.
        channel: Channel,
        /// Pushes sent since the device last answered, this one included.
        attempt: u32,
    },
    /// No push was sent: APNs said the channel's token is invalid, and no
    /// `TokenUpdate` has arrived since.
    PushSkippedTokenInvalid {
        /// The channel.
        channel: Channel,
    },
    /// The push sender refused the push (the command stays queued).
    PushFailed {
        /// The channel.
        channel: Channel,
        /// Why.
        error: PushError,
    },
    /// The re-push policy's cap was reached without an answer: no more
    /// re-pushes until the device answers or a new command is queued.
    RepushGaveUp {
        /// The channel.
        channel: Channel,
        /// Unanswered pushes.
        attempts: u32,
    },
    /// Identity renewal attempt `attempt` was queued (an `InstallProfile`
    /// of the enrollment profile with a fresh SCEP challenge).
    RenewalQueued {
        /// The attempt, from 1.
        attempt: u32,
    },
    /// The device refused or deferred renewal attempt `attempt`; it is
    /// retried later.
    RenewalFailed {
        /// The attempt.
        attempt: u32,
    },
    /// The device signed with its renewed identity: `old` is retired.
    IdentityRenewed {
        /// The retired identity.
        old: crate::activation::CertFingerprint,
        /// The identity now bound.
        new: crate::activation::CertFingerprint,
    },
    /// The renewal's attempt budget ran out: the identity will expire
    /// unless an administrator acts.
    RenewalGivenUp,
    /// The enrollment's identity has expired without being renewed.
    IdentityExpired,
}

/// A driver result with the events it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    /// The result.
    pub value: T,
    /// Events, in order.
    pub events: Vec<Event>,
}

impl ServiceError {
    /// The seconds a client is told to wait (`Retry-After`) before retrying
    /// after a transient failure.
    pub const RETRY_AFTER_SECS: u32 = 1;

    /// Whether the same request may succeed if retried: a transient store
    /// or directory failure ([`StoreError::is_transient`],
    /// [`DirectoryError::is_transient`]) or a lost race (a version conflict,
    /// a random serial that was taken).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store(e) => {
                e.is_transient()
                    || matches!(
                        e,
                        StoreError::VersionConflict { .. } | StoreError::DuplicateSerial
                    )
            }
            Self::Directory(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The response to answer a device or browser with: [`Self::http_status`]
    /// and no body; a transient failure ([`Self::is_transient`], 503) also
    /// carries `Retry-After`.
    pub fn response(&self) -> crate::http::Response {
        let mut response = crate::http::Response::empty(self.http_status());
        if self.is_transient() {
            response
                .headers
                .push(("Retry-After".into(), Self::RETRY_AFTER_SECS.to_string()));
        }
        response
    }

    /// The HTTP status to answer a device or browser with.
    ///
    /// Never 401 on the MDM endpoints: to a device a 401 means "unenroll".
    /// Authentication failures are 400 (as nanomdm), policy refusals 403,
    /// lost races and replays 409, transient store trouble 503 (the device
    /// retries; see [`Self::response`]), a permanent store failure 500.
    pub fn http_status(&self) -> u16 {
        use ActivationError as A;
        match self {
            Self::Activation(e) => match e {
                A::BadCredentials | A::PasswordExpired => 403,
                A::NoticeNotAccepted
                | A::ModelNotAllowed { .. }
                | A::OsBelowFloor { .. }
                | A::DeviceCapReached { .. } => 403,
                A::ChallengeReplayed | A::OutOfOrder { .. } | A::RenewalInFlight => 409,
                A::UnknownActivation => 404,
                A::InvalidTenant
                | A::InvalidActivationId
                | A::InvalidCommandUuid
                | A::TenantMismatch
                | A::UnknownUser
                | A::MissingChallenge
                | A::UnknownChallenge
                | A::WrongChallenge
                | A::ChallengeExpired
                | A::UnexpectedPhase(_)
                | A::UnknownIdentity
                | A::IdentityMismatch
                | A::DeviceMismatch
                | A::NotEnrolled
                | A::MissingCommandUuid
                | A::UnknownCommand(_)
                | A::UndecodableWithoutCommand => 400,
            },
            Self::Store(_) if self.is_transient() => 503,
            // The user's device limit: a policy refusal, like the others.
            Self::Store(StoreError::LimitReached) => 403,
            Self::Store(_) => 500,
            Self::Directory(_) if self.is_transient() => 503,
            Self::Directory(_) => 500,
            Self::BadRequest(_) => 400,
            Self::Internal(_) => 500,
            Self::Command(e) => match e {
                CommandError::TooLarge { .. } | CommandError::Invalid(_) => 400,
                CommandError::Duplicate(_)
                | CommandError::AlreadyDelivered(_)
                | CommandError::AlreadyFinished(_)
                | CommandError::InitialConfiguration(_) => 409,
                CommandError::Unknown(_) => 404,
            },
            Self::UnknownTenant(_) => 404,
            Self::TopicMismatch { .. } => 400,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_store_failures_answer_503_with_retry_after() {
        let retry = |e: ServiceError| {
            let r = e.response();
            let after = r
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                .map(|(_, v)| v.clone());
            (r.status, after)
        };
        let one = Some("1".to_owned());
        assert_eq!(
            retry(StoreError::transient("database is locked").into()),
            (503, one.clone())
        );
        assert_eq!(
            retry(
                StoreError::VersionConflict {
                    expected: 1,
                    found: 2
                }
                .into()
            ),
            (503, one)
        );
        assert_eq!(
            retry(StoreError::permanent("record does not decode").into()),
            (500, None)
        );
        assert_eq!(
            retry(DirectoryError::transient("ldap timed out").into()),
            (503, Some("1".to_owned()))
        );
        assert_eq!(
            retry(DirectoryError::permanent("no such directory").into()),
            (500, None)
        );
        assert_eq!(retry(ServiceError::BadRequest("x".into())), (400, None));
    }

    #[test]
    fn device_facing_errors_never_unenroll() {
        let all = [
            ActivationError::UnknownIdentity,
            ActivationError::IdentityMismatch,
            ActivationError::DeviceMismatch,
            ActivationError::NotEnrolled,
            ActivationError::BadCredentials,
            ActivationError::RenewalInFlight,
        ];
        for e in all {
            assert_ne!(ServiceError::Activation(e).http_status(), 401);
        }
    }
}
