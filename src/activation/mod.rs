//! The thirteen activation steps as a pure, sans-IO state machine.
//!
//! The core works on *verified evidence* ([`LoginAttempt`],
//! [`VerifiedAttributes`], [`IssuedIdentity`], [`CheckinEvent`],
//! [`ReportEvent`]): the HTTP, CMS and SCEP layers check bytes and
//! signatures, the core decides. Per-activation state is a plain value,
//! [`Activation`]; [`Activation::apply`] takes it, an [`Input`] and `now` and
//! returns a [`Transition`] (new state + ordered [`Output`]s: steps reached,
//! challenges to store or consume, identities to bind, commands to queue,
//! deliver or finish, pushes) or an [`ActivationError`], leaving the state
//! untouched. The [`service`](crate::service) driver applies outputs to the
//! caller's [`store`](crate::store).
//!
//! | Step | What happens | Handled by |
//! |---|---|---|
//! | 1 | Administrator creates the user, credentials and policy | [`UserAccount`], [`Policy`], [`store::UserStore::put_user`](crate::store::UserStore::put_user) |
//! | 2 | Self-service login → an activation bound to the user and tenant | [`LoginAttempt`], [`store::Directory`](crate::store::Directory), [`Activation::start`] |
//! | 3 | Activation request (notice accepted) | [`Input::ActivationRequest`] |
//! | 4 | Signed Profile Service profile with a one-time challenge | [`Output::IssueChallenge`] ([`ChallengeKind::ProfileService`]); profile built by the driver |
//! | 5 | Device posts signed attributes (UDID, SERIAL, PRODUCT, VERSION, CHALLENGE) | [`Input::DeviceAttributes`] with [`VerifiedAttributes`] |
//! | 6 | Signature, challenge and policy checked; enrollment profile with a SCEP challenge | [`Policy::check_device`], [`Output::ConsumeChallenge`], [`Output::ClaimDevice`], [`Output::IssueChallenge`] ([`ChallengeKind::Scep`]) |
//! | 7 | SCEP PKCSReq with the activation's SCEP challenge | [`Input::ScepRequest`] |
//! | 8 | Identity certificate issued | [`Input::CertificateIssued`], [`Output::RecordCertificate`] |
//! | 9 | MDM profile installed: `Authenticate` | [`CheckinMessage::Authenticate`], [`Output::BindIdentity`] |
//! | 10 | First device-channel `TokenUpdate`: MDM activation complete | [`CheckinMessage::TokenUpdate`], [`Output::EnqueueInitial`], [`Output::Push`] |
//! | 11 | Device connects (`Idle`) | [`Input::Connect`], [`Phase::Configuring`] |
//! | 12 | Device information stored, initial configuration sent one command per response | [`Output::Deliver`], [`queue::next_command`] |
//! | 13 | Every initial command acknowledged: activation complete | [`queue::dispose`], [`Output::Finish`], [`Phase::Complete`] (or [`Phase::ConfigurationFailed`]) |
//!
//! Queue semantics are in [`queue`]. Re-`Authenticate` of an enrolled device
//! is a re-enrolment (queue cleared, identity re-bound, a superseded
//! activation's identity retired, [`Output::ReEnrolled`]); `CheckOut` ends in
//! [`Phase::Unenrolled`].
//!
//! Identity renewal is a state of the enrollment ([`IdentityRenewal`],
//! [`Input::RenewalQueued`], [`Input::RenewalScep`], [`Input::RenewalIssued`]):
//! the certificate issued under a [`ChallengeKind::Renewal`] challenge
//! becomes the enrollment's identity the first time the device signs with
//! it ([`Output::IdentityRenewed`]: bound, the old one retired, in one step).

mod error;
mod evidence;
mod ids;
mod machine;
mod policy;
pub mod queue;
mod renewal;

pub use error::ActivationError;
pub use evidence::{
    AttributesPhase, Channel, CheckinEvent, CheckinMessage, ErrorInfo, IssuedIdentity,
    LoginAttempt, PushTarget, Report, ReportEvent, ReportStatus, VerifiedAttributes,
};
pub use ids::{ActivationId, CertFingerprint, ChallengeDigest, CommandUuid, Secret, TenantId};
pub use machine::{
    Activation, ChallengeGrant, ChallengeKind, Connection, DeclarativeProgress, InitialCommand,
    Input, Output, Phase, Transition,
};
pub use policy::{DeviceFacts, OsVersion, Ownership, Policy, UserAccount};
pub use queue::{CommandOutcome, CommandResult, QueueKey, QueuePolicy, QueuedCommand, Retention};
pub use renewal::IdentityRenewal;

use serde::{Deserialize, Serialize};

/// The thirteen steps of activating a macOS device, numbered as in the
/// vendor's data flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Step {
    /// 1. The user has an account, self-service credentials and a policy.
    AccountReady = 1,
    /// 2. The user logged in to self-service; an activation exists.
    SelfServiceLogin = 2,
    /// 3. The activation request.
    ActivationRequest = 3,
    /// 4. The signed Profile Service profile with a one-time challenge.
    ProfileServiceProfile = 4,
    /// 5. The device sent its signed attributes.
    DeviceAttributes = 5,
    /// 6. The attributes were verified and the policy applied; the enrollment profile was sent.
    DeviceVerified = 6,
    /// 7. SCEP: the device asked for a certificate with its one-time challenge.
    ScepRequest = 7,
    /// 8. SCEP: the identity certificate was issued.
    CertificateIssued = 8,
    /// 9. The MDM profile was installed (`Authenticate`).
    MdmProfileInstalled = 9,
    /// 10. MDM activation complete (first device-channel `TokenUpdate`).
    MdmActivationComplete = 10,
    /// 11. The device asked for its configuration (first connect).
    ConfigurationRequested = 11,
    /// 12. Device information stored and the initial configuration sent.
    ConfigurationSent = 12,
    /// 13. The device acknowledged every initial command: activation complete.
    ConfigurationApplied = 13,
}

impl Step {
    /// All steps in order.
    pub const ALL: [Step; 13] = [
        Step::AccountReady,
        Step::SelfServiceLogin,
        Step::ActivationRequest,
        Step::ProfileServiceProfile,
        Step::DeviceAttributes,
        Step::DeviceVerified,
        Step::ScepRequest,
        Step::CertificateIssued,
        Step::MdmProfileInstalled,
        Step::MdmActivationComplete,
        Step::ConfigurationRequested,
        Step::ConfigurationSent,
        Step::ConfigurationApplied,
    ];

    /// The step's number, 1–13.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The step with this number.
    pub fn from_number(n: u8) -> Option<Self> {
        Self::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }
}
