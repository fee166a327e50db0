//! The per-activation state and its transition function.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::queue::{self, Disposition, QueuePolicy, QueuedCommand};
use super::renewal::IdentityRenewal;
use super::{
    ActivationError, ActivationId, AttributesPhase, CertFingerprint, ChallengeDigest, Channel,
    CheckinEvent, CheckinMessage, CommandOutcome, CommandUuid, DeviceFacts, IssuedIdentity, Policy,
    PushTarget, Report, ReportEvent, ReportStatus, Secret, Step, TenantId, UserAccount,
    VerifiedAttributes,
};

/// Where an activation stands. Each phase is reached by the step named in its doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// After step 2: the user logged in.
    LoggedIn,
    /// After step 4: the Profile Service profile with its challenge was issued.
    ProfileServiceIssued,
    /// After step 6: device attributes verified, enrollment profile with a
    /// SCEP challenge issued.
    DeviceVerified,
    /// After step 7: the SCEP challenge was accepted; a certificate may be issued.
    ScepAuthorized,
    /// After step 8: the MDM identity certificate was issued.
    IdentityIssued,
    /// After step 9: `Authenticate` bound the identity; not yet pushable.
    Authenticated,
    /// After step 10: first device-channel `TokenUpdate`; MDM activation complete.
    Enrolled,
    /// After step 11: the device connected; initial configuration in flight.
    Configuring,
    /// After step 13: every initial command was acknowledged.
    Complete,
    /// Every initial command finished but at least one was not acknowledged.
    ConfigurationFailed,
    /// The device checked out.
    Unenrolled,
    /// A newer activation of the same device authenticated.
    Superseded,
}

impl Phase {
    fn enrolled(self) -> bool {
        matches!(
            self,
            Self::Enrolled | Self::Configuring | Self::Complete | Self::ConfigurationFailed
        )
    }

    fn authenticated(self) -> bool {
        self == Self::Authenticated || self.enrolled()
    }
}

/// What a one-time challenge is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChallengeKind {
    /// The Profile Service `Challenge` (step 4 → step 5).
    ProfileService,
    /// The SCEP `Challenge` (step 6 → step 7).
    Scep,
    /// The SCEP `Challenge` of an identity renewal's enrollment profile.
    Renewal,
}

/// A one-time challenge an activation is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeGrant {
    /// Its purpose.
    pub kind: ChallengeKind,
    /// SHA-256 of the secret.
    pub digest: ChallengeDigest,
    /// It stops working at this instant.
    pub expires: SystemTime,
}

/// One command of the initial configuration (step 12) and how it finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitialCommand {
    /// `CommandUUID`.
    pub uuid: CommandUuid,
    /// `RequestType`.
    pub request_type: String,
    /// `None` while it is queued.
    pub outcome: Option<CommandOutcome>,
}

/// Declarative device management in the initial configuration: with a
/// `DeclarativeManagement` command among the initial commands, step 13
/// also waits for the device's status report on the initial declarations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclarativeProgress {
    /// The device fetched a declaration of its initial set.
    pub served: bool,
    /// Every declaration of the initial set was reported active and valid
    /// with its current `ServerToken`.
    pub applied: bool,
    /// Declarations reported invalid (with their current `ServerToken`):
    /// identifier and reasons (`code: description`).
    pub invalid: Vec<(String, Vec<String>)>,
}

/// Per-connection state of one channel: a connection starts with `Idle` and
/// ends when the server answers with an empty body. Kept in the channel's own
/// row ([`QueueStore::connection`](crate::store::QueueStore::connection)), not
/// in the activation, so that steady-state connects never rewrite the
/// activation record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Commands the device answered `NotNow` on this connection.
    pub skip: Vec<CommandUuid>,
    /// The command sent in the last response, if any.
    pub last_sent: Option<CommandUuid>,
}

/// The state of one activation: a plain value the caller's store keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    /// Its id.
    pub id: ActivationId,
    /// The customer.
    pub tenant: TenantId,
    /// The user who logged in.
    pub username: String,
    /// The user's domain.
    pub domain: String,
    /// The policy as it was at login.
    pub policy: Policy,
    /// Where it stands.
    pub phase: Phase,
    /// The last step reached.
    pub last_step: Step,
    /// When the user logged in.
    pub created: SystemTime,
    /// Language from the activation request, if any.
    pub language: Option<String>,
    /// The challenge the activation waits for.
    pub challenge: Option<ChallengeGrant>,
    /// The device, from step 6 on.
    pub device: Option<DeviceFacts>,
    /// The MDM identity, from step 8 on.
    pub identity: Option<IssuedIdentity>,
    /// SHA-256 of the SCEP request (its CSR) the SCEP challenge was consumed
    /// for, from step 7 on: a resend of that same request is answered again
    /// instead of being refused as a replay.
    #[serde(default)]
    pub scep_request: Option<[u8; 32]>,
    /// The device channel's push target, from step 10 on.
    pub push: Option<PushTarget>,
    /// User channels that sent a `TokenUpdate`: user id and push target.
    pub user_channels: Vec<(String, PushTarget)>,
    /// The initial configuration (step 12).
    pub initial: Vec<InitialCommand>,
    /// Declarative management in the initial configuration, if any.
    #[serde(default)]
    pub declarative: Option<DeclarativeProgress>,
    /// The identity renewal in flight, if any.
    #[serde(default)]
    pub renewal: Option<IdentityRenewal>,
    /// The identity the last renewal switched to: an `Authenticate` with it
    /// is the same enrollment, not a re-enrollment.
    #[serde(default)]
    pub renewed: Option<CertFingerprint>,
}

/// An input to [`Activation::apply`]. Secrets and ids are minted by the
/// caller from injected randomness.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Input {
    /// Step 3: the user (having seen the notice) asks for the profile.
    ActivationRequest {
        /// Whether the user accepted the organisation notice.
        notice_accepted: bool,
        /// Language of the request (e.g. `Accept-Language`), if any.
        language: Option<String>,
        /// The Profile Service challenge to issue.
        challenge: Secret,
        /// How long it stays valid.
        ttl: Duration,
    },
    /// Steps 5–6: verified device attributes.
    DeviceAttributes {
        /// The attributes.
        attributes: VerifiedAttributes,
        /// The SCEP challenge to issue in the enrollment profile.
        scep_challenge: Secret,
        /// How long it stays valid.
        ttl: Duration,
    },
    /// Step 7: a SCEP PKCSReq presented this challenge.
    ScepRequest {
        /// The CSR's challengePassword.
        challenge: Secret,
        /// SHA-256 of the CSR, when known (kept to recognise a resend).
        request: Option<[u8; 32]>,
    },
    /// Step 8: the certificate was issued.
    CertificateIssued(IssuedIdentity),
    /// Steps 9–10 and `CheckOut`.
    Checkin {
        /// The check-in.
        event: CheckinEvent,
        /// The initial configuration to queue if this is the first
        /// device-channel `TokenUpdate`: `CommandUUID` and `RequestType`.
        initial_configuration: Vec<(CommandUuid, String)>,
    },
    /// Steps 11–13: a connect request.
    Connect {
        /// The report.
        event: ReportEvent,
        /// The head of the channel's queue, oldest first, as the store has
        /// it, then the reported command if it is queued past the head. The
        /// head must hold at least every command in `connection.skip` plus
        /// two (the reported one and the next to deliver), or all of the
        /// queue: the next command is chosen from it, so a shorter head
        /// could end the connection while deliverable commands wait. The
        /// engine reads exactly that, so a connection's cost does not grow
        /// with the backlog; the whole queue is a valid head too.
        pending: Vec<QueuedCommand>,
        /// Outcomes the store already holds for initial commands this state
        /// still waits for. The queue is the source of truth for outcomes: a
        /// report whose result was stored but whose activation update was
        /// lost (a crash between the two writes, or a lost race) is taken
        /// from here instead of leaving the activation waiting forever.
        finished: Vec<(CommandUuid, CommandOutcome)>,
        /// Queue tuning.
        policy: QueuePolicy,
        /// The channel's connection state as the store has it.
        connection: Connection,
    },
    /// A newer activation of the same device authenticated.
    Superseded {
        /// The user of the newer activation.
        by_user: String,
    },
    /// Step 12 over DDM: the device fetched a declaration of its initial set.
    DeclarationsServed,
    /// Step 13 over DDM: what the device's latest status report says of
    /// the initial declaration set.
    DeclarationStatus {
        /// Every initial declaration is active and valid with its current
        /// `ServerToken`.
        applied: bool,
        /// Initial declarations reported invalid: identifier and reasons.
        invalid: Vec<(String, Vec<String>)>,
    },
    /// Renewal: queue attempt `attempt` of the identity renewal (an
    /// `InstallProfile` of the enrollment profile with `challenge`).
    RenewalQueued {
        /// The attempt's number: 1, or one more than the current attempt.
        attempt: u32,
        /// The renewal's one-time SCEP challenge.
        challenge: Secret,
        /// How long it stays valid.
        ttl: Duration,
        /// The `InstallProfile` command's `CommandUUID`.
        command: CommandUuid,
    },
    /// Renewal: a SCEP PKCSReq presented the renewal challenge.
    RenewalScep {
        /// The CSR's challengePassword.
        challenge: Secret,
        /// SHA-256 of the CSR, when known.
        request: Option<[u8; 32]>,
    },
    /// Renewal: the certificate was issued under the renewal challenge.
    RenewalIssued(IssuedIdentity),
    /// Renewal: the attempt budget ran out.
    RenewalGivenUp,
    /// The identity has expired (reported once).
    IdentityExpired,
}

/// What the caller must do, in order, to carry out a transition. Outputs that
/// can fail in the store (`Consume…`, `Claim…`, `Bind…`, `Record…`, `Finish`)
/// come before the state is saved; the driver stops at the first failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// The activation reached a step (an event for the caller's log).
    Reached(Step),
    /// Show this organisation notice before the activation request.
    ShowNotice(String),
    /// Store a new one-time challenge.
    IssueChallenge(ChallengeGrant),
    /// Atomically consume this challenge (fails if already used).
    ConsumeChallenge(ChallengeGrant),
    /// Count the device against the user's device limit (atomic, idempotent).
    ClaimDevice {
        /// Device id.
        device_id: String,
        /// The limit.
        max: Option<u32>,
    },
    /// Stop counting the device against the user.
    ReleaseDevice {
        /// Device id.
        device_id: String,
    },
    /// Record the issued certificate (unique serial).
    RecordCertificate(IssuedIdentity),
    /// Bind the identity to the device (atomic bind-or-conflict).
    BindIdentity {
        /// The identity.
        fingerprint: CertFingerprint,
        /// The device.
        device_id: String,
    },
    /// Retire an identity: it no longer authenticates anything.
    RetireIdentity(CertFingerprint),
    /// Drop every queued command of a channel.
    ClearQueue(Channel),
    /// Queue the initial configuration.
    EnqueueInitial(Vec<CommandUuid>),
    /// Finish a queued command (atomic: fails if no longer queued).
    Finish {
        /// The command.
        uuid: CommandUuid,
        /// How it finished.
        outcome: CommandOutcome,
    },
    /// Record a `NotNow` for a queued command.
    Defer(CommandUuid),
    /// Answer with this command.
    Deliver(CommandUuid),
    /// Answer with an empty body: the connection ends.
    EndConnection,
    /// Store the channel's new connection state (it changed).
    SaveConnection(Connection),
    /// Wake the channel with a push.
    Push(Channel),
    /// The initial configuration finished with failures.
    ConfigurationFailed(Vec<CommandUuid>),
    /// Initial declarations the device reported invalid (identifiers); the
    /// configuration failed.
    DeclarationsInvalid(Vec<String>),
    /// Re-enrolment: the device authenticated again and its queue was cleared.
    ReEnrolled,
    /// The device is no longer enrolled.
    Unenrolled,
    /// Queue the identity renewal's `InstallProfile` on the device channel.
    EnqueueRenewal(CommandUuid),
    /// Renewal attempt `n` was queued.
    RenewalQueued(u32),
    /// The device refused or deferred the renewal attempt.
    RenewalFailed(u32),
    /// The device signed with its renewed identity: it replaced `old`.
    IdentityRenewed {
        /// The retired identity.
        old: CertFingerprint,
        /// The identity now bound.
        new: CertFingerprint,
    },
    /// The renewal's attempt budget ran out.
    RenewalGivenUp,
    /// The identity has expired.
    IdentityExpired,
}

/// The result of a transition: the new state and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The new state.
    pub state: Activation,
    /// Outputs, in order.
    pub outputs: Vec<Output>,
}

impl Activation {
    /// Step 2: start an activation for `user`, whose credentials the caller's
    /// directory accepted (step 1 is the account existing). Refuses an
    /// expired activation password.
    pub fn start(
        id: ActivationId,
        user: &UserAccount,
        now: SystemTime,
    ) -> Result<Transition, ActivationError> {
        if user.policy.password_expires.is_some_and(|t| now >= t) {
            return Err(ActivationError::PasswordExpired);
        }
        let state = Self {
            id,
            tenant: user.tenant.clone(),
            username: user.username.clone(),
            domain: user.domain.clone(),
            policy: user.policy.clone(),
            phase: Phase::LoggedIn,
            last_step: Step::SelfServiceLogin,
            created: now,
            language: None,
            challenge: None,
            device: None,
            identity: None,
            scep_request: None,
            push: None,
            user_channels: Vec::new(),
            initial: Vec::new(),
            declarative: None,
            renewal: None,
            renewed: None,
        };
        let mut outputs = vec![
            Output::Reached(Step::AccountReady),
            Output::Reached(Step::SelfServiceLogin),
        ];
        if let Some(notice) = &user.policy.organisation_notice {
            outputs.push(Output::ShowNotice(notice.clone()));
        }
        Ok(Transition { state, outputs })
    }

    /// The transition function: the new state and outputs, or a typed error
    /// (and `self` unchanged — it is borrowed).
    pub fn apply(&self, input: Input, now: SystemTime) -> Result<Transition, ActivationError> {
        let mut next = self.clone();
        let mut out = Vec::new();
        match input {
            Input::ActivationRequest {
                notice_accepted,
                language,
                challenge,
                ttl,
            } => {
                self.require_phase(Step::ActivationRequest, &[Phase::LoggedIn])?;
                if self.policy.organisation_notice.is_some() && !notice_accepted {
                    return Err(ActivationError::NoticeNotAccepted);
                }
                let grant = ChallengeGrant {
                    kind: ChallengeKind::ProfileService,
                    digest: challenge.digest(),
                    expires: now + ttl,
                };
                next.language = language;
                next.challenge = Some(grant);
                next.phase = Phase::ProfileServiceIssued;
                out.push(Output::Reached(Step::ActivationRequest));
                out.push(Output::IssueChallenge(grant));
                out.push(Output::Reached(Step::ProfileServiceProfile));
            }
            Input::DeviceAttributes {
                attributes,
                scep_challenge,
                ttl,
            } => {
                self.require_phase(Step::DeviceAttributes, &[Phase::ProfileServiceIssued])?;
                if attributes.phase != AttributesPhase::DeviceIdentity {
                    return Err(ActivationError::UnexpectedPhase(attributes.phase));
                }
                let presented = attributes
                    .challenge
                    .as_ref()
                    .ok_or(ActivationError::MissingChallenge)?;
                let grant = self.check_challenge(ChallengeKind::ProfileService, presented, now)?;
                let facts = attributes.facts();
                self.policy.check_device(&facts)?;
                let scep = ChallengeGrant {
                    kind: ChallengeKind::Scep,
                    digest: scep_challenge.digest(),
                    expires: now + ttl,
                };
                out.push(Output::Reached(Step::DeviceAttributes));
                out.push(Output::ClaimDevice {
                    device_id: facts.udid.clone(),
                    max: self.policy.max_devices,
                });
                out.push(Output::ConsumeChallenge(grant));
                out.push(Output::IssueChallenge(scep));
                out.push(Output::Reached(Step::DeviceVerified));
                next.device = Some(facts);
                next.challenge = Some(scep);
                next.phase = Phase::DeviceVerified;
            }
            Input::ScepRequest { challenge, request } => {
                self.require_phase(Step::ScepRequest, &[Phase::DeviceVerified])?;
                let grant = self.check_challenge(ChallengeKind::Scep, &challenge, now)?;
                out.push(Output::ConsumeChallenge(grant));
                out.push(Output::Reached(Step::ScepRequest));
                next.challenge = None;
                next.scep_request = request;
                next.phase = Phase::ScepAuthorized;
            }
            Input::CertificateIssued(identity) => {
                self.require_phase(Step::CertificateIssued, &[Phase::ScepAuthorized])?;
                out.push(Output::RecordCertificate(identity.clone()));
                out.push(Output::Reached(Step::CertificateIssued));
                next.identity = Some(identity);
                next.phase = Phase::IdentityIssued;
            }
            Input::Checkin {
                event,
                initial_configuration,
            } => self.checkin(&mut next, &mut out, event, initial_configuration)?,
            Input::Connect {
                event,
                pending,
                finished,
                policy,
                connection,
            } => self.connect(
                &mut next,
                &mut out,
                event,
                (&pending, &finished),
                connection,
                &policy,
                now,
            )?,
            Input::RenewalQueued {
                attempt,
                challenge,
                ttl,
                command,
            } => {
                self.renewal_queued(&mut next, &mut out, attempt, &challenge, ttl, command, now)?
            }
            Input::RenewalScep { challenge, request } => {
                let renewal = next
                    .renewal
                    .as_mut()
                    .ok_or(ActivationError::WrongChallenge)?;
                let grant = renewal.challenge;
                if grant.kind != ChallengeKind::Renewal
                    || !grant.digest.matches(&challenge.digest())
                {
                    return Err(ActivationError::WrongChallenge);
                }
                if now >= grant.expires {
                    return Err(ActivationError::ChallengeExpired);
                }
                if !self.phase.enrolled() {
                    return Err(ActivationError::NotEnrolled);
                }
                renewal.scep_request = Some(request.unwrap_or_default());
                out.push(Output::ConsumeChallenge(grant));
            }
            Input::RenewalIssued(identity) => {
                let renewal = next.renewal.as_mut().filter(|r| r.issuing()).ok_or(
                    ActivationError::OutOfOrder {
                        step: Step::CertificateIssued,
                        phase: self.phase,
                    },
                )?;
                renewal.scep_request = None;
                renewal.issued.push(identity.clone());
                out.push(Output::RecordCertificate(identity));
            }
            Input::RenewalGivenUp => {
                let renewal = next.renewal.as_mut().ok_or(ActivationError::NotEnrolled)?;
                if !renewal.exhausted {
                    renewal.exhausted = true;
                    out.push(Output::RenewalGivenUp);
                }
            }
            Input::IdentityExpired => {
                if let Some(renewal) = next.renewal.as_mut()
                    && !renewal.expiry_reported
                {
                    renewal.expiry_reported = true;
                    out.push(Output::IdentityExpired);
                }
            }
            Input::Superseded { by_user } => {
                if let Some(identity) = &self.identity {
                    out.push(Output::RetireIdentity(identity.fingerprint));
                }
                if by_user != self.username
                    && let Some(device) = &self.device
                {
                    out.push(Output::ReleaseDevice {
                        device_id: device.udid.clone(),
                    });
                }
                out.push(Output::Unenrolled);
                next.phase = Phase::Superseded;
                next.push = None;
                next.user_channels.clear();
            }
            Input::DeclarationsServed => {
                if !self.phase.enrolled() {
                    return Err(ActivationError::NotEnrolled);
                }
                if let Some(d) = next.declarative.as_mut().filter(|d| !d.served) {
                    d.served = true;
                    if self.last_step < Step::ConfigurationSent {
                        out.push(Output::Reached(Step::ConfigurationSent));
                    }
                }
            }
            Input::DeclarationStatus { applied, invalid } => {
                if !self.phase.enrolled() {
                    return Err(ActivationError::NotEnrolled);
                }
                if let Some(d) = next.declarative.as_mut() {
                    d.applied = applied;
                    d.invalid = invalid;
                    next.settle(&mut out);
                }
            }
        }
        if let Some(step) = out.iter().rev().find_map(|o| match o {
            Output::Reached(s) => Some(*s),
            _ => None,
        }) {
            next.last_step = step;
        }
        Ok(Transition {
            state: next,
            outputs: out,
        })
    }

    /// Out-of-order input is a typed error: the current phase must be one of `phases`.
    fn require_phase(&self, step: Step, phases: &[Phase]) -> Result<(), ActivationError> {
        if phases.contains(&self.phase) {
            Ok(())
        } else {
            Err(ActivationError::OutOfOrder {
                step,
                phase: self.phase,
            })
        }
    }

    fn check_challenge(
        &self,
        kind: ChallengeKind,
        presented: &Secret,
        now: SystemTime,
    ) -> Result<ChallengeGrant, ActivationError> {
        let grant = self
            .challenge
            .filter(|g| g.kind == kind)
            .ok_or(ActivationError::WrongChallenge)?;
        if !grant.digest.matches(&presented.digest()) {
            return Err(ActivationError::WrongChallenge);
        }
        if now >= grant.expires {
            return Err(ActivationError::ChallengeExpired);
        }
        Ok(grant)
    }

    /// Queue renewal attempt `attempt` (see [`Input::RenewalQueued`]).
    #[allow(clippy::too_many_arguments)]
    fn renewal_queued(
        &self,
        next: &mut Self,
        out: &mut Vec<Output>,
        attempt: u32,
        challenge: &Secret,
        ttl: Duration,
        command: CommandUuid,
        now: SystemTime,
    ) -> Result<(), ActivationError> {
        let device = match (&self.device, &self.identity) {
            (Some(device), Some(_)) if self.phase.enrolled() => device,
            _ => return Err(ActivationError::NotEnrolled),
        };
        let expected = self
            .renewal
            .as_ref()
            .map_or(1, |r| r.attempt.saturating_add(1));
        if attempt != expected || self.renewal.as_ref().is_some_and(|r| r.exhausted) {
            return Err(ActivationError::RenewalInFlight);
        }
        let grant = ChallengeGrant {
            kind: ChallengeKind::Renewal,
            digest: challenge.digest(),
            expires: now
                .checked_add(ttl)
                .ok_or(ActivationError::ChallengeExpired)?,
        };
        let previous = self.renewal.as_ref();
        next.renewal = Some(IdentityRenewal {
            attempt,
            challenge: grant,
            command: command.clone(),
            queued: now,
            failed_at: None,
            scep_request: None,
            issued: previous.map(|r| r.issued.clone()).unwrap_or_default(),
            exhausted: false,
            expiry_reported: previous.is_some_and(|r| r.expiry_reported),
        });
        out.push(Output::IssueChallenge(grant));
        out.push(Output::EnqueueRenewal(command));
        out.push(Output::RenewalQueued(attempt));
        out.push(Output::Push(Channel::device(device.udid.clone())));
        Ok(())
    }

    /// If `identity` is a certificate issued by the renewal in flight, make
    /// it the enrollment's identity: bind it and retire the old one in this
    /// same step (from now on only the new one works).
    fn take_renewed(
        &self,
        next: &mut Self,
        out: &mut Vec<Output>,
        identity: &CertFingerprint,
        device_id: &str,
    ) {
        let Some(new) = self
            .renewal
            .as_ref()
            .and_then(|r| r.issued_identity(identity))
        else {
            return;
        };
        out.push(Output::BindIdentity {
            fingerprint: *identity,
            device_id: device_id.to_owned(),
        });
        if let Some(old) = &self.identity {
            out.push(Output::RetireIdentity(old.fingerprint));
            out.push(Output::IdentityRenewed {
                old: old.fingerprint,
                new: *identity,
            });
        }
        next.identity = Some(new.clone());
        next.renewal = None;
        next.renewed = Some(*identity);
    }

    /// Whether `identity` is a renewed identity of this enrollment (issued
    /// by the renewal in flight, or switched to by the last one).
    fn is_renewed(&self, identity: &CertFingerprint) -> bool {
        self.renewed == Some(*identity)
            || self
                .renewal
                .as_ref()
                .is_some_and(|r| r.issued_identity(identity).is_some())
    }

    /// Check that `identity` on `channel` is this activation's device identity.
    fn check_sender(
        &self,
        identity: &CertFingerprint,
        channel: &Channel,
    ) -> Result<(), ActivationError> {
        let ours = self
            .identity
            .as_ref()
            .ok_or(ActivationError::IdentityMismatch)?;
        let renewed = self
            .renewal
            .as_ref()
            .is_some_and(|r| r.issued_identity(identity).is_some());
        if ours.fingerprint != *identity && !renewed {
            return Err(ActivationError::IdentityMismatch);
        }
        match &self.device {
            Some(d) if d.udid == channel.device_id => Ok(()),
            _ => Err(ActivationError::DeviceMismatch),
        }
    }

    fn checkin(
        &self,
        next: &mut Self,
        out: &mut Vec<Output>,
        event: CheckinEvent,
        initial_configuration: Vec<(CommandUuid, String)>,
    ) -> Result<(), ActivationError> {
        let CheckinEvent {
            identity,
            channel,
            message,
        } = event;
        match message {
            CheckinMessage::Authenticate { .. } => {
                if !channel.is_device() {
                    return Err(ActivationError::DeviceMismatch);
                }
                if !(self.phase == Phase::IdentityIssued || self.phase.authenticated()) {
                    return Err(ActivationError::OutOfOrder {
                        step: Step::MdmProfileInstalled,
                        phase: self.phase,
                    });
                }
                self.check_sender(&identity, &channel)?;
                if self.phase.enrolled() && self.is_renewed(&identity) {
                    // The renewed identity authenticating: the same
                    // enrollment (queue, results, push state untouched).
                    self.take_renewed(next, out, &identity, &channel.device_id);
                    return Ok(());
                }
                let again = self.phase.authenticated();
                out.push(Output::BindIdentity {
                    fingerprint: identity,
                    device_id: channel.device_id.clone(),
                });
                out.push(Output::ClearQueue(channel.clone()));
                for (user, _) in &self.user_channels {
                    out.push(Output::ClearQueue(Channel {
                        device_id: channel.device_id.clone(),
                        user_id: Some(user.clone()),
                    }));
                }
                if again {
                    out.push(Output::ReEnrolled);
                }
                out.push(Output::Reached(Step::MdmProfileInstalled));
                next.phase = Phase::Authenticated;
                next.push = None;
                next.user_channels.clear();
                next.initial.clear();
                next.declarative = None;
            }
            CheckinMessage::TokenUpdate { push, .. } => {
                if !self.phase.authenticated() {
                    return Err(ActivationError::OutOfOrder {
                        step: Step::MdmActivationComplete,
                        phase: self.phase,
                    });
                }
                self.check_sender(&identity, &channel)?;
                self.take_renewed(next, out, &identity, &channel.device_id);
                match &channel.user_id {
                    None if self.phase == Phase::Authenticated => {
                        next.initial = initial_configuration
                            .iter()
                            .map(|(uuid, request_type)| InitialCommand {
                                uuid: uuid.clone(),
                                request_type: request_type.clone(),
                                outcome: None,
                            })
                            .collect();
                        next.declarative = initial_configuration
                            .iter()
                            .any(|(_, request_type)| request_type == "DeclarativeManagement")
                            .then(DeclarativeProgress::default);
                        out.push(Output::EnqueueInitial(
                            initial_configuration.into_iter().map(|(u, _)| u).collect(),
                        ));
                        out.push(Output::Reached(Step::MdmActivationComplete));
                        out.push(Output::Push(channel));
                        next.push = Some(push);
                        next.phase = Phase::Enrolled;
                    }
                    None => next.push = Some(push),
                    Some(_) if self.phase == Phase::Authenticated => {
                        return Err(ActivationError::OutOfOrder {
                            step: Step::MdmActivationComplete,
                            phase: self.phase,
                        });
                    }
                    Some(user) => {
                        next.user_channels.retain(|(u, _)| u != user);
                        next.user_channels.push((user.clone(), push));
                    }
                }
            }
            CheckinMessage::CheckOut => {
                if !self.phase.authenticated() {
                    return Err(ActivationError::NotEnrolled);
                }
                self.check_sender(&identity, &channel)?;
                self.take_renewed(next, out, &identity, &channel.device_id);
                out.push(Output::RetireIdentity(identity));
                out.push(Output::ClearQueue(channel.clone()));
                out.push(Output::ReleaseDevice {
                    device_id: channel.device_id.clone(),
                });
                out.push(Output::Unenrolled);
                next.phase = Phase::Unenrolled;
                next.push = None;
                next.user_channels.clear();
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn connect(
        &self,
        next: &mut Self,
        out: &mut Vec<Output>,
        event: ReportEvent,
        (pending, finished_earlier): (&[QueuedCommand], &[(CommandUuid, CommandOutcome)]),
        connection: Connection,
        policy: &QueuePolicy,
        now: SystemTime,
    ) -> Result<(), ActivationError> {
        if !self.phase.enrolled() {
            return Err(ActivationError::NotEnrolled);
        }
        self.check_sender(&event.identity, &event.channel)?;
        self.take_renewed(next, out, &event.identity, &event.channel.device_id);
        let device_channel = event.channel.is_device();
        if device_channel {
            // Outcomes stored in the queue but not yet here (see Input::Connect).
            for cmd in next.initial.iter_mut().filter(|c| c.outcome.is_none()) {
                if pending.iter().any(|p| p.uuid == cmd.uuid) {
                    continue;
                }
                if let Some((_, outcome)) = finished_earlier.iter().find(|(u, _)| *u == cmd.uuid) {
                    cmd.outcome = Some(outcome.clone());
                }
            }
        }
        if let Some(user) = &event.channel.user_id
            && !self.user_channels.iter().any(|(u, _)| u == user)
        {
            return Err(ActivationError::NotEnrolled);
        }
        // Each channel has its own queue and connection (its own rows).
        let before = connection.clone();
        let mut connection = connection;
        let mut finished: Option<(CommandUuid, CommandOutcome)> = None;
        let mut deferred: Option<CommandUuid> = None;
        match event.report {
            Report::Status {
                status: ReportStatus::Idle,
                ..
            } => connection = Connection::default(),
            Report::Status {
                status,
                command_uuid,
                error_chain,
                ..
            } => {
                let uuid = command_uuid.ok_or(ActivationError::MissingCommandUuid)?;
                let queued = pending
                    .iter()
                    .find(|c| c.uuid == uuid)
                    .ok_or_else(|| ActivationError::UnknownCommand(uuid.clone()))?;
                match queue::dispose(status, &uuid, queued, &error_chain, policy) {
                    Disposition::None => {}
                    Disposition::Finish(uuid, outcome) => {
                        out.push(Output::Finish {
                            uuid: uuid.clone(),
                            outcome: outcome.clone(),
                        });
                        finished = Some((uuid, outcome));
                    }
                    Disposition::Defer(uuid) => {
                        deferred = Some(uuid.clone());
                        out.push(Output::Defer(uuid.clone()));
                        if !connection.skip.contains(&uuid) {
                            connection.skip.push(uuid);
                        }
                    }
                }
            }
            Report::Undecodable { reason } => {
                let uuid = connection
                    .last_sent
                    .clone()
                    .filter(|u| pending.iter().any(|c| c.uuid == *u))
                    .ok_or(ActivationError::UndecodableWithoutCommand)?;
                let outcome = CommandOutcome::Undecodable(reason);
                out.push(Output::Finish {
                    uuid: uuid.clone(),
                    outcome: outcome.clone(),
                });
                finished = Some((uuid, outcome));
            }
        }
        if let Some(renewal) = next.renewal.as_mut()
            && renewal.failed_at.is_none()
        {
            let refused = finished
                .as_ref()
                .is_some_and(|(u, o)| *u == renewal.command && !o.is_acknowledged());
            if refused || deferred.as_ref() == Some(&renewal.command) {
                renewal.failed_at = Some(now);
                out.push(Output::RenewalFailed(renewal.attempt));
            }
        }
        if device_channel && self.phase == Phase::Enrolled {
            out.push(Output::Reached(Step::ConfigurationRequested));
            next.phase = Phase::Configuring;
        }
        if let Some((uuid, outcome)) = &finished
            && let Some(cmd) = next.initial.iter_mut().find(|c| c.uuid == *uuid)
        {
            cmd.outcome = Some(outcome.clone());
        }
        let mut skip = connection.skip.clone();
        if let Some((uuid, _)) = &finished {
            skip.push(uuid.clone());
        }
        match queue::next_command(pending, &skip) {
            Some(cmd) => {
                if device_channel
                    && self.last_step < Step::ConfigurationSent
                    && next.initial.iter().any(|c| c.uuid == cmd.uuid)
                {
                    out.push(Output::Reached(Step::ConfigurationSent));
                }
                out.push(Output::Deliver(cmd.uuid.clone()));
                connection.last_sent = Some(cmd.uuid.clone());
            }
            None => {
                out.push(Output::EndConnection);
                connection = Connection::default();
            }
        }
        if connection != before {
            out.push(Output::SaveConnection(connection));
        }
        if device_channel {
            next.settle(out);
        }
        Ok(())
    }

    /// Step 13 or the configuration's failure, once every initial command
    /// finished (and, with DDM, the initial declarations were reported).
    fn settle(&mut self, out: &mut Vec<Output>) {
        if self.phase != Phase::Configuring {
            return;
        }
        if self.initial.is_empty() {
            // No initial configuration: nothing to send, nothing to wait for.
            out.push(Output::Reached(Step::ConfigurationSent));
            out.push(Output::Reached(Step::ConfigurationApplied));
            self.phase = Phase::Complete;
            return;
        }
        if !self.initial.iter().all(|c| c.outcome.is_some()) {
            return;
        }
        let failed: Vec<CommandUuid> = self
            .initial
            .iter()
            .filter(|c| {
                !c.outcome
                    .as_ref()
                    .is_some_and(CommandOutcome::is_acknowledged)
            })
            .map(|c| c.uuid.clone())
            .collect();
        let invalid: Vec<String> = self
            .declarative
            .iter()
            .flat_map(|d| d.invalid.iter().map(|(id, _)| id.clone()))
            .collect();
        if !failed.is_empty() || !invalid.is_empty() {
            out.push(Output::ConfigurationFailed(failed));
            if !invalid.is_empty() {
                out.push(Output::DeclarationsInvalid(invalid));
            }
            self.phase = Phase::ConfigurationFailed;
        } else if self.declarative.as_ref().is_none_or(|d| d.applied) {
            out.push(Output::Reached(Step::ConfigurationApplied));
            self.phase = Phase::Complete;
        }
    }
}
