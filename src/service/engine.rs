//! [`Engine`]: the evidence-level driver over the caller's store,
//! directory and push sender.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::activation::{
    Activation, ActivationError, ActivationId, AttributesPhase, ChallengeKind, Channel,
    CheckinEvent, CheckinMessage, CommandOutcome, CommandResult, CommandUuid, Connection, Input,
    IssuedIdentity, LoginAttempt, Output, Phase, QueueKey, QueuePolicy, QueuedCommand, Report,
    ReportEvent, Secret, TenantId, Transition, UserAccount, VerifiedAttributes,
};
use crate::store::{
    Applied, Binding, ChallengeRecord, Claim, Directory, IssuedCertificate, PushSender, Store,
    StoreError, Versioned, Write,
};

use super::{Event, EventKind, Outcome, ServiceError};

/// Queued commands a connection reads beyond those it deferred: the one it
/// reports (finished or deferred now) and the next to deliver. The rest of
/// the backlog stays in the store.
const CONNECT_HEAD: usize = 2;

/// Whether a connection drops `command` as expired: queued past the
/// policy's expiry, and not part of the initial configuration (which never
/// expires: the activation waits for its outcomes).
fn dropped_as_expired(policy: &QueuePolicy, command: &QueuedCommand, now: SystemTime) -> bool {
    command.activation.is_none() && policy.expired(command, now)
}

/// Driver tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Lifetime of the Profile Service challenge (step 4 → 5).
    pub profile_challenge_ttl: Duration,
    /// Lifetime of the SCEP challenge (step 6 → 7).
    pub scep_challenge_ttl: Duration,
    /// Queue tuning.
    pub queue: QueuePolicy,
    /// When to push again after an unanswered push or a `NotNow`.
    pub repush: RepushPolicy,
}

with_setters!(EngineConfig {
    with_profile_challenge_ttl: profile_challenge_ttl: Duration,
    with_scep_challenge_ttl: scep_challenge_ttl: Duration,
    with_queue: queue: QueuePolicy,
    with_repush: repush: RepushPolicy,
});

/// When to push a channel again, as pure arithmetic over plain values.
///
/// After the `n`-th push the device has not answered, the next push is due
/// `first_delay · 2ⁿ⁻¹` later (at most `max_delay`), until `max_attempts`
/// unanswered pushes; after a `NotNow` it is due `not_now_delay` later (the
/// queue's retry budget caps those). Kept minimal on purpose: it is meant to
/// merge with the APNs-side retry policy of the push client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepushPolicy {
    /// Delay after the first unanswered push (default 1 minute).
    pub first_delay: Duration,
    /// Longest delay between re-pushes (default 1 hour).
    pub max_delay: Duration,
    /// Unanswered pushes after which re-pushing stops (default 8; 0 never re-pushes).
    pub max_attempts: u32,
    /// Delay before pushing a deferred (`NotNow`) command again (default 5 minutes).
    pub not_now_delay: Duration,
}

impl Default for RepushPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(3600),
            max_attempts: 8,
            not_now_delay: Duration::from_secs(300),
        }
    }
}

impl RepushPolicy {
    /// A policy with these delays and cap.
    pub fn new(
        first_delay: Duration,
        max_delay: Duration,
        max_attempts: u32,
        not_now_delay: Duration,
    ) -> Self {
        Self {
            first_delay,
            max_delay,
            max_attempts,
            not_now_delay,
        }
    }

    /// When to push again after the `attempts`-th unanswered push sent at
    /// `at` (`attempts` ≥ 1); `None` once the cap is reached.
    pub fn after_push(&self, attempts: u32, at: SystemTime) -> Option<SystemTime> {
        if attempts == 0 || attempts >= self.max_attempts {
            return None;
        }
        let factor = 1u32.checked_shl(attempts - 1).unwrap_or(u32::MAX);
        let delay = self
            .first_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        at.checked_add(delay)
    }

    /// When to push again after a `NotNow` answered at `at`.
    pub fn after_not_now(&self, at: SystemTime) -> Option<SystemTime> {
        at.checked_add(self.not_now_delay)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            profile_challenge_ttl: Duration::from_secs(15 * 60),
            scep_challenge_ttl: Duration::from_secs(15 * 60),
            queue: QueuePolicy::default(),
            repush: RepushPolicy::default(),
        }
    }
}

/// Result of step 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginGrant {
    /// The new activation.
    pub activation: ActivationId,
    /// The organisation notice to show before step 3.
    pub notice: Option<String>,
}

/// Result of steps 5–6: what the enrollment profile needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentGrant {
    /// The activation.
    pub activation: ActivationId,
    /// The SCEP challenge to put into the profile.
    pub scep_challenge: Secret,
}

/// A command to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    /// `CommandUUID`.
    pub uuid: CommandUuid,
    /// `RequestType`.
    pub request_type: String,
    /// The complete command plist.
    pub body: Vec<u8>,
}

/// The evidence-level driver.
#[derive(Debug)]
pub struct Engine<S, D, P> {
    pub(super) store: S,
    directory: D,
    pub(super) push: P,
    pub(super) config: EngineConfig,
}

struct Ctx<'a> {
    tenant: &'a TenantId,
    now: SystemTime,
    initial: HashMap<CommandUuid, NewCommand>,
    pending: Vec<QueuedCommand>,
    report_body: Vec<u8>,
    channel: Option<Channel>,
    events: Vec<Event>,
    deliver: Option<QueuedCommand>,
    deferred: bool,
    lost_delivery: bool,
    /// The command this step chose but could not claim (a racing
    /// connection holds it, or it is gone).
    unclaimed: Option<CommandUuid>,
    /// A `TokenUpdate` whose push-state reset is still to be written.
    token_update: bool,
    /// The activation that owned the device before this `Authenticate`.
    previous: Option<ActivationId>,
}

impl<'a> Ctx<'a> {
    fn new(tenant: &'a TenantId, now: SystemTime) -> Self {
        Self {
            tenant,
            now,
            initial: HashMap::new(),
            pending: Vec::new(),
            report_body: Vec::new(),
            channel: None,
            events: Vec::new(),
            deliver: None,
            deferred: false,
            lost_delivery: false,
            unclaimed: None,
            token_update: false,
            previous: None,
        }
    }
}

impl<S: Store, D: Directory, P: PushSender> Engine<S, D, P> {
    /// A driver over the caller's store, directory and push sender.
    pub fn new(store: S, directory: D, push: P, config: EngineConfig) -> Self {
        Self {
            store,
            directory,
            push,
            config,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The directory.
    pub fn directory(&self) -> &D {
        &self.directory
    }

    /// The push sender.
    pub fn push_sender(&self) -> &P {
        &self.push
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Step 1: create or update a user account and its policy.
    pub fn provision_user(&self, user: &UserAccount) -> Result<(), ServiceError> {
        Ok(self.store.put_user(user)?)
    }

    /// Step 2: self-service login. Unknown users and wrong passwords are the
    /// same error ([`ActivationError::BadCredentials`]), and the directory is
    /// asked first in both cases, so a directory that spends the same work on
    /// unknown names (a dummy hash) keeps their existence out of the timing.
    pub fn login<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        attempt: &LoginAttempt,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Outcome<LoginGrant>, ServiceError> {
        let credentials_ok = self.directory.check_credentials(tenant, attempt)?;
        let user = self
            .store
            .user(tenant, &attempt.username)?
            .filter(|u| u.domain.eq_ignore_ascii_case(&attempt.domain))
            .ok_or(ActivationError::BadCredentials)?;
        if !credentials_ok {
            return Err(ActivationError::BadCredentials.into());
        }
        let t = Activation::start(ActivationId::random(rng), &user, now)?;
        let mut ctx = Ctx::new(tenant, now);
        let notice = t.outputs.iter().find_map(|o| match o {
            Output::ShowNotice(n) => Some(n.clone()),
            _ => None,
        });
        self.store.insert_activation(&t.state)?;
        self.record_events(&t.state.id, &t.outputs, &mut ctx);
        Ok(Outcome {
            value: LoginGrant {
                activation: t.state.id,
                notice,
            },
            events: ctx.events,
        })
    }

    /// Steps 3–4: the activation request; returns the Profile Service challenge.
    pub fn request_activation<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
        notice_accepted: bool,
        language: Option<String>,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Outcome<Secret>, ServiceError> {
        let current = self.load(tenant, activation)?;
        let challenge = Secret::random(rng);
        let input = Input::ActivationRequest {
            notice_accepted,
            language,
            challenge: challenge.clone(),
            ttl: self.config.profile_challenge_ttl,
        };
        let mut ctx = Ctx::new(tenant, now);
        self.run(current, input, &mut ctx)?;
        Ok(Outcome {
            value: challenge,
            events: ctx.events,
        })
    }

    /// Steps 5–6: verified device attributes; returns what the enrollment profile needs.
    pub fn device_attributes<R: rand_core::CryptoRng + ?Sized>(
        &self,
        tenant: &TenantId,
        attributes: VerifiedAttributes,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Outcome<EnrollmentGrant>, ServiceError> {
        if attributes.phase != AttributesPhase::DeviceIdentity {
            return Err(ActivationError::UnexpectedPhase(attributes.phase).into());
        }
        let presented = attributes
            .challenge
            .as_ref()
            .ok_or(ActivationError::MissingChallenge)?;
        let record = self.find_challenge(tenant, presented, ChallengeKind::ProfileService)?;
        let current = self.load(tenant, &record.activation)?;
        let scep_challenge = Secret::random(rng);
        let input = Input::DeviceAttributes {
            attributes,
            scep_challenge: scep_challenge.clone(),
            ttl: self.config.scep_challenge_ttl,
        };
        let mut ctx = Ctx::new(tenant, now);
        self.run(current, input, &mut ctx)?;
        Ok(Outcome {
            value: EnrollmentGrant {
                activation: record.activation,
                scep_challenge,
            },
            events: ctx.events,
        })
    }

    /// Step 7: a SCEP request presented `challenge`; on success the caller's
    /// CA may issue a certificate for the returned activation.
    pub fn authorize_scep(
        &self,
        tenant: &TenantId,
        challenge: &Secret,
        now: SystemTime,
    ) -> Result<Outcome<Activation>, ServiceError> {
        self.authorize_scep_request(tenant, challenge, None, now)
    }

    /// Step 7 for a known request: as [`Self::authorize_scep`], keeping
    /// `request` (SHA-256 of the CSR, [`crate::scep::RequestFingerprint`]) so
    /// that a resend of the same request is recognised by
    /// [`Self::scep_resend`].
    pub fn authorize_scep_request(
        &self,
        tenant: &TenantId,
        challenge: &Secret,
        request: Option<[u8; 32]>,
        now: SystemTime,
    ) -> Result<Outcome<Activation>, ServiceError> {
        let record = self.find_challenge(tenant, challenge, ChallengeKind::Scep)?;
        let input = Input::ScepRequest {
            challenge: challenge.clone(),
            request,
        };
        self.run_stored(tenant, &record.activation, input, now)
    }

    /// A resend of the SCEP request that consumed `challenge` (the client
    /// never got the answer): the activation it belongs to, if `request` is
    /// the very request the challenge was consumed for and the activation
    /// is still waiting for or holding that certificate. Changes nothing;
    /// the caller answers with the certificate again, or issues it if the
    /// first attempt never got that far (only while the challenge would
    /// still be valid at `now`).
    pub fn scep_resend(
        &self,
        tenant: &TenantId,
        challenge: &Secret,
        request: &[u8; 32],
        now: SystemTime,
    ) -> Result<Option<Activation>, ServiceError> {
        let Some(record) = self.store.challenge(tenant, &challenge.digest())? else {
            return Ok(None);
        };
        if record.tenant != *tenant || record.grant.kind != ChallengeKind::Scep || !record.consumed
        {
            return Ok(None);
        }
        let activation = self.load(tenant, &record.activation)?.value;
        let same_request = activation
            .scep_request
            .is_some_and(|r| crate::crypto::constant_time_eq(&r, request));
        let current = (activation.phase == Phase::ScepAuthorized && now < record.grant.expires)
            || (activation.identity.is_some()
                && !matches!(activation.phase, Phase::Unenrolled | Phase::Superseded));
        Ok((same_request && current).then(|| Arc::unwrap_or_clone(activation)))
    }

    /// Step 8: the CA issued `identity` for `activation`.
    pub fn certificate_issued(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
        identity: IssuedIdentity,
        now: SystemTime,
    ) -> Result<Outcome<()>, ServiceError> {
        let current = self.load(tenant, activation)?;
        let mut ctx = Ctx::new(tenant, now);
        // A certificate under a renewal challenge renews the enrollment's
        // identity; it does not start a new one.
        let renewing = current.value.phase != Phase::ScepAuthorized
            && current.value.renewal.as_ref().is_some_and(|r| r.issuing());
        let input = if renewing {
            Input::RenewalIssued(identity)
        } else {
            Input::CertificateIssued(identity)
        };
        self.run(current, input, &mut ctx)?;
        Ok(Outcome {
            value: (),
            events: ctx.events,
        })
    }

    /// Steps 9–10 and `CheckOut`. `initial` builds the initial configuration;
    /// it is called only for the first device-channel `TokenUpdate`.
    pub fn checkin(
        &self,
        tenant: &TenantId,
        event: CheckinEvent,
        now: SystemTime,
        initial: impl FnOnce(&Activation) -> Vec<NewCommand>,
    ) -> Result<Outcome<()>, ServiceError> {
        let current = self.sender_activation(tenant, &event.identity, &event.channel)?;
        let mut ctx = Ctx::new(tenant, now);
        let mut initial_configuration = Vec::new();
        if event.channel.is_device()
            && current.value.phase == Phase::Authenticated
            && matches!(event.message, CheckinMessage::TokenUpdate { .. })
        {
            for cmd in initial(&current.value) {
                initial_configuration.push((cmd.uuid.clone(), cmd.request_type.clone()));
                ctx.initial.insert(cmd.uuid.clone(), cmd);
            }
        }
        let authenticate = matches!(event.message, CheckinMessage::Authenticate { .. });
        ctx.token_update = matches!(event.message, CheckinMessage::TokenUpdate { .. });
        let device_id = event.channel.device_id.clone();
        let push_key = QueueKey {
            tenant: tenant.clone(),
            channel: event.channel.clone(),
        };
        ctx.channel = Some(event.channel.clone());
        let input = Input::Checkin {
            event,
            initial_configuration,
        };
        // Authenticate makes this activation the device's in the same step.
        let extra = if authenticate {
            vec![Write::SetDeviceActivation {
                tenant: tenant.clone(),
                device_id,
                activation: current.value.id.clone(),
            }]
        } else {
            Vec::new()
        };
        let state = self.run_with(current, input, &mut ctx, extra)?;
        if ctx.token_update {
            // An accepted TokenUpdate: the token is valid again.
            self.note_token_update(&push_key)?;
        }
        if let Some(previous) = ctx.previous.take().filter(|p| *p != state.id) {
            self.supersede(tenant, &previous, &state.username, &mut ctx)?;
        }
        Ok(Outcome {
            value: (),
            events: ctx.events,
        })
    }

    /// Steps 11–13: a connect request; returns the command to answer with
    /// (`None`: answer with an empty body).
    pub fn connect(
        &self,
        tenant: &TenantId,
        mut event: ReportEvent,
        now: SystemTime,
    ) -> Result<Outcome<Option<QueuedCommand>>, ServiceError> {
        let current = self.sender_activation(tenant, &event.identity, &event.channel)?;
        let key = QueueKey {
            tenant: tenant.clone(),
            channel: event.channel.clone(),
        };
        let mut ctx = Ctx::new(tenant, now);
        let connection = self.store.connection(&key)?;
        // Commands queued past the policy's expiry are dropped in this step,
        // never delivered (the initial configuration never expires: the
        // activation waits for its outcomes).
        let policy = self.config.queue;
        let (mut expired, pending) = self.queue_head(&key, &connection, now)?;
        ctx.pending = pending;
        // The reported command, should it be queued past the head (sent
        // behind commands the device deferred, on a connection since
        // ended): looked up by its uuid, and dropped as the head's are if
        // it expired.
        if let Report::Status {
            command_uuid: Some(uuid),
            ..
        } = &event.report
            && !ctx.pending.iter().any(|c| c.uuid == *uuid)
            && !expired.iter().any(|c| c.uuid == *uuid)
            && let Some(reported) = self.store.queued_command(&key, uuid)?
        {
            if dropped_as_expired(&policy, &reported, now) {
                expired.push(reported);
            } else {
                ctx.pending.push(reported);
            }
        }
        let mut extra = Vec::new();
        for c in &expired {
            extra.push(Write::FinishCommand(
                key.clone(),
                CommandResult {
                    uuid: c.uuid.clone(),
                    request_type: c.request_type.clone(),
                    outcome: CommandOutcome::Expired,
                    body: Vec::new(),
                    at: now,
                },
            ));
        }
        if let (false, Some(keep)) = (expired.is_empty(), policy.retention.keep()) {
            extra.push(Write::PruneResults(key.clone(), keep));
        }
        // The body is stored as the command's result; the state machine
        // never reads it, so it moves here instead of being copied.
        ctx.report_body = match &mut event.report {
            Report::Status { body, .. } => std::mem::take(body),
            Report::Undecodable { .. } => Vec::new(),
        };
        ctx.channel = Some(event.channel.clone());
        // Initial commands gone from the queue that the activation still
        // waits for: their stored results (normally none; see Input::Connect).
        let waiting = |c: &&crate::activation::InitialCommand| {
            c.outcome.is_none() && !ctx.pending.iter().any(|p| p.uuid == c.uuid)
        };
        let finished =
            if event.channel.is_device() && current.value.initial.iter().any(|c| waiting(&c)) {
                self.store
                    .results(&key)?
                    .into_iter()
                    .filter(|r| {
                        current
                            .value
                            .initial
                            .iter()
                            .any(|c| waiting(&c) && c.uuid == r.uuid)
                    })
                    .map(|r| (r.uuid, r.outcome))
                    .collect()
            } else {
                Vec::new()
            };
        let input = Input::Connect {
            event,
            pending: ctx.pending.clone(),
            finished,
            policy: self.config.queue,
            connection,
        };
        let id = current.value.id.clone();
        let state = self.run_with(current, input, &mut ctx, extra)?;
        for c in expired {
            ctx.events.push(Event {
                activation: id.clone(),
                kind: EventKind::CommandFinished {
                    uuid: c.uuid,
                    outcome: CommandOutcome::Expired,
                },
            });
        }
        // Held: every command this connection could get is held by another
        // delivery; wake the device again when the lease runs out, in case
        // that delivery's response never arrived.
        let mut held = false;
        if let Some(lost) = ctx.unclaimed.take() {
            match self.claim_next(&key, &lost, now)? {
                Some(next) => {
                    ctx.deliver = Some(next);
                    ctx.lost_delivery = false;
                }
                None => held = !ctx.lost_delivery,
            }
        }
        let next_due = if ctx.deferred {
            self.config.repush.after_not_now(now)
        } else if held {
            now.checked_add(self.config.queue.delivery_lease)
        } else {
            None
        };
        self.note_answer(&key, next_due)?;
        if ctx.lost_delivery {
            // The command chosen was cancelled meanwhile: wake the device
            // again for whatever else is queued.
            if !self.store.pending_head(&key, 1)?.is_empty() {
                self.push_channel(&state, &key.channel, now, &mut ctx.events)?;
            }
        }
        Ok(Outcome {
            value: ctx.deliver.take(),
            events: ctx.events,
        })
    }

    /// The head of a channel's queue that a connection needs, oldest first,
    /// split into the commands past the queue policy's expiry (dropped by
    /// this connection) and the rest: enough of the rest that, with every
    /// command the connection deferred and the one it reports skipped, one
    /// is left to deliver if the queue has one. Reads grow past
    /// [`CONNECT_HEAD`] only by what expired or was deferred, so a
    /// connection's cost does not follow the channel's backlog.
    fn queue_head(
        &self,
        key: &QueueKey,
        connection: &Connection,
        now: SystemTime,
    ) -> Result<(Vec<QueuedCommand>, Vec<QueuedCommand>), ServiceError> {
        let policy = self.config.queue;
        let wanted = CONNECT_HEAD.saturating_add(connection.skip.len());
        let mut limit = wanted;
        loop {
            let head = self.store.pending_head(key, limit)?;
            let complete = head.len() < limit;
            let (expired, live): (Vec<_>, Vec<_>) = head
                .into_iter()
                .partition(|c| dropped_as_expired(&policy, c, now));
            if complete || live.len() >= wanted {
                return Ok((expired, live));
            }
            // Expired commands took places in the head: read further.
            limit = limit
                .saturating_mul(2)
                .max(wanted.saturating_add(expired.len()));
        }
    }

    /// This connection's chosen command went to a racing connection (or
    /// away): hand it the next queued command no delivery holds and that
    /// the connection has not deferred, if any (a bounded number of tries).
    fn claim_next(
        &self,
        key: &QueueKey,
        lost: &CommandUuid,
        now: SystemTime,
    ) -> Result<Option<QueuedCommand>, ServiceError> {
        const TRIES: usize = 16;
        let mut connection = self.store.connection(key)?;
        let candidates = self
            .store
            .pending_head(key, TRIES + connection.skip.len() + 1)?
            .into_iter()
            .filter(|c| c.uuid != *lost && !connection.skip.contains(&c.uuid))
            .take(TRIES);
        for command in candidates {
            let lease = self.config.queue.delivery_lease;
            if self.store.claim_delivery(key, &command.uuid, now, lease)? == Claim::Claimed {
                connection.last_sent = Some(command.uuid.clone());
                self.store.set_connection(key, &connection)?;
                return Ok(Some(command));
            }
        }
        Ok(None)
    }

    /// Identity renewal: queue attempt `attempt` for `activation` (see
    /// [`crate::service::RenewalPolicy::action`]): store the one-time
    /// renewal `challenge` (valid `ttl`), queue `command` (the
    /// `InstallProfile` of the enrollment profile carrying it) on the
    /// device channel and push. One attempt at a time:
    /// [`ActivationError::RenewalInFlight`] unless `attempt` is the next.
    #[allow(clippy::too_many_arguments)]
    pub fn queue_renewal(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
        attempt: u32,
        challenge: &Secret,
        ttl: Duration,
        command: NewCommand,
        now: SystemTime,
    ) -> Result<Outcome<()>, ServiceError> {
        let current = self.load(tenant, activation)?;
        let device = current
            .value
            .device
            .as_ref()
            .ok_or(ActivationError::NotEnrolled)?;
        let mut ctx = Ctx::new(tenant, now);
        ctx.channel = Some(Channel::device(device.udid.clone()));
        let input = Input::RenewalQueued {
            attempt,
            challenge: challenge.clone(),
            ttl,
            command: command.uuid.clone(),
        };
        ctx.initial.insert(command.uuid.clone(), command);
        self.run(current, input, &mut ctx)?;
        Ok(Outcome {
            value: (),
            events: ctx.events,
        })
    }

    /// Identity renewal, step 7 again: a SCEP request presented a renewal
    /// `challenge` (one-time, bound to its enrollment, expiring, and only
    /// the current attempt's). On success the CA may issue the certificate,
    /// reported with [`Self::certificate_issued`].
    pub fn authorize_renewal_request(
        &self,
        tenant: &TenantId,
        challenge: &Secret,
        request: Option<[u8; 32]>,
        now: SystemTime,
    ) -> Result<Outcome<Activation>, ServiceError> {
        let record = self.find_challenge(tenant, challenge, ChallengeKind::Renewal)?;
        let input = Input::RenewalScep {
            challenge: challenge.clone(),
            request,
        };
        self.run_stored(tenant, &record.activation, input, now)
    }

    /// Identity renewal: record that the attempt budget ran out (one
    /// [`EventKind::RenewalGivenUp`]).
    pub fn give_up_renewal(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
        now: SystemTime,
    ) -> Result<Outcome<()>, ServiceError> {
        self.simple_input(tenant, activation, Input::RenewalGivenUp, now)
    }

    /// Record that the enrollment's identity expired (one
    /// [`EventKind::IdentityExpired`] per renewal).
    pub fn report_identity_expired(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
        now: SystemTime,
    ) -> Result<Outcome<()>, ServiceError> {
        self.simple_input(tenant, activation, Input::IdentityExpired, now)
    }

    fn simple_input(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
        input: Input,
        now: SystemTime,
    ) -> Result<Outcome<()>, ServiceError> {
        let out = self.run_stored(tenant, activation, input, now)?;
        Ok(Outcome {
            value: (),
            events: out.events,
        })
    }

    /// Apply `input` to the stored `activation`; the new state and events.
    fn run_stored(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
        input: Input,
        now: SystemTime,
    ) -> Result<Outcome<Activation>, ServiceError> {
        let current = self.load(tenant, activation)?;
        let (value, events) = self.run_input(tenant, current, input, now)?;
        Ok(Outcome {
            value: Arc::unwrap_or_clone(value),
            events,
        })
    }

    pub(super) fn load(
        &self,
        tenant: &TenantId,
        id: &ActivationId,
    ) -> Result<Versioned<Arc<Activation>>, ServiceError> {
        let found = self
            .store
            .activation_shared(tenant, id)?
            .ok_or(ActivationError::UnknownActivation)?;
        if found.value.tenant != *tenant {
            return Err(ActivationError::TenantMismatch.into());
        }
        Ok(found)
    }

    fn find_challenge(
        &self,
        tenant: &TenantId,
        presented: &Secret,
        kind: ChallengeKind,
    ) -> Result<ChallengeRecord, ServiceError> {
        let record = self
            .store
            .challenge(tenant, &presented.digest())?
            .ok_or(ActivationError::UnknownChallenge)?;
        if record.tenant != *tenant {
            return Err(ActivationError::TenantMismatch.into());
        }
        if record.grant.kind != kind {
            return Err(ActivationError::WrongChallenge.into());
        }
        if record.consumed {
            return Err(ActivationError::ChallengeReplayed.into());
        }
        Ok(record)
    }

    /// The activation an identity belongs to, after checking its binding.
    pub(super) fn sender_activation(
        &self,
        tenant: &TenantId,
        identity: &crate::activation::CertFingerprint,
        channel: &Channel,
    ) -> Result<Versioned<Arc<Activation>>, ServiceError> {
        let cert = self
            .store
            .certificate_by_fingerprint(identity)?
            .ok_or(ActivationError::UnknownIdentity)?;
        if cert.tenant != *tenant {
            return Err(ActivationError::TenantMismatch.into());
        }
        if let Some(binding) = self.store.identity(identity)? {
            if binding.retired {
                return Err(ActivationError::IdentityMismatch.into());
            }
            if binding.device_id != channel.device_id || binding.tenant != *tenant {
                return Err(ActivationError::DeviceMismatch.into());
            }
        }
        self.load(tenant, &cert.activation)
    }

    fn supersede(
        &self,
        tenant: &TenantId,
        previous: &ActivationId,
        by_user: &str,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ServiceError> {
        for _ in 0..3 {
            let Some(current) = self.store.activation_shared(tenant, previous)? else {
                return Ok(());
            };
            if matches!(current.value.phase, Phase::Superseded | Phase::Unenrolled) {
                return Ok(());
            }
            let input = Input::Superseded {
                by_user: by_user.to_owned(),
            };
            match self.run(current, input, ctx) {
                Err(ServiceError::Store(StoreError::VersionConflict { .. })) => continue,
                other => return other.map(|_| ()),
            }
        }
        Err(StoreError::VersionConflict {
            expected: 0,
            found: 0,
        }
        .into())
    }

    fn record_events(&self, id: &ActivationId, outputs: &[Output], ctx: &mut Ctx<'_>) {
        for o in outputs {
            let kind = match o {
                Output::Reached(step) => EventKind::Reached(*step),
                Output::Finish { uuid, outcome } => EventKind::CommandFinished {
                    uuid: uuid.clone(),
                    outcome: outcome.clone(),
                },
                Output::ConfigurationFailed(failed) => {
                    EventKind::ConfigurationFailed(failed.clone())
                }
                Output::DeclarationsInvalid(ids) => EventKind::DeclarationsInvalid(ids.clone()),
                Output::ReEnrolled => EventKind::ReEnrolled,
                Output::Unenrolled => EventKind::Unenrolled,
                Output::RenewalQueued(attempt) => EventKind::RenewalQueued { attempt: *attempt },
                Output::RenewalFailed(attempt) => EventKind::RenewalFailed { attempt: *attempt },
                Output::IdentityRenewed { old, new } => EventKind::IdentityRenewed {
                    old: *old,
                    new: *new,
                },
                Output::RenewalGivenUp => EventKind::RenewalGivenUp,
                Output::IdentityExpired => EventKind::IdentityExpired,
                _ => continue,
            };
            ctx.events.push(Event {
                activation: id.clone(),
                kind,
            });
        }
    }

    /// Run one input on `current` (no connection context) and return the
    /// new state with the events it produced.
    pub(super) fn run_input(
        &self,
        tenant: &TenantId,
        current: Versioned<Arc<Activation>>,
        input: Input,
        now: SystemTime,
    ) -> Result<(Arc<Activation>, Vec<Event>), ServiceError> {
        let mut ctx = Ctx::new(tenant, now);
        let state = self.run(current, input, &mut ctx)?;
        Ok((state, ctx.events))
    }

    /// Apply one input: transition, then commit the step's writes (with
    /// `extra` ones and the activation update) as one unit, then push.
    fn run(
        &self,
        current: Versioned<Arc<Activation>>,
        input: Input,
        ctx: &mut Ctx<'_>,
    ) -> Result<Arc<Activation>, ServiceError> {
        self.run_with(current, input, ctx, Vec::new())
    }

    fn run_with(
        &self,
        current: Versioned<Arc<Activation>>,
        input: Input,
        ctx: &mut Ctx<'_>,
        extra: Vec<Write>,
    ) -> Result<Arc<Activation>, ServiceError> {
        let Versioned {
            value: state,
            version,
        } = current;
        let Transition {
            state: next,
            outputs,
        } = state.apply(input, ctx.now)?;
        let mut writes = Vec::new();
        let mut pushes = Vec::new();
        for output in &outputs {
            self.plan(&state, &next, output, ctx, &mut writes, &mut pushes)?;
        }
        writes.extend(extra);
        // The update is the step's last write; it shares the new state with
        // the store (which may keep that very value) and gives it back after
        // the commit (no copy).
        let next = Arc::new(next);
        let kept = if *next != *state {
            writes.push(Write::UpdateActivation {
                activation: next,
                expected: version,
            });
            None
        } else {
            Some(next)
        };
        let applied = if writes.is_empty() {
            Vec::new()
        } else {
            self.store
                .apply(&writes)
                .map_err(|f| step_error(writes.get(f.index), f.error))?
        };
        for (write, applied) in writes.iter().zip(applied) {
            match (write, applied) {
                (Write::ClaimDelivery { uuid, .. }, Applied::Claim(Claim::Claimed)) => {
                    ctx.deliver = ctx.pending.iter().find(|c| c.uuid == *uuid).cloned();
                }
                (Write::ClaimDelivery { uuid, .. }, Applied::Claim(claim)) => {
                    // Held by a racing connection, or cancelled/finished
                    // meanwhile: not sent on this one.
                    ctx.deliver = None;
                    ctx.unclaimed = Some(uuid.clone());
                    ctx.lost_delivery = claim == Claim::Gone;
                }
                (Write::MarkDelivered(_, uuid, _), Applied::Delivered(true)) => {
                    ctx.deliver = ctx.pending.iter().find(|c| c.uuid == *uuid).cloned();
                }
                (Write::MarkDelivered(..), Applied::Delivered(false)) => {
                    // Cancelled or finished by a racing call: not sent.
                    ctx.deliver = None;
                    ctx.lost_delivery = true;
                }
                (Write::DeferCommand(..), _) => ctx.deferred = true,
                (Write::SetDeviceActivation { .. }, Applied::Previous(previous)) => {
                    ctx.previous = previous;
                }
                _ => {}
            }
        }
        let next = match kept {
            Some(next) => next,
            None => match writes.pop() {
                Some(Write::UpdateActivation { activation, .. }) => activation,
                _ => return Err(ServiceError::Internal("step lost its update".into())),
            },
        };
        for channel in pushes {
            if ctx.token_update {
                // The new token is valid again before its first push.
                ctx.token_update = false;
                self.note_token_update(&self.queue_key(ctx)?)?;
            }
            let mut events = Vec::new();
            self.push_channel(&next, &channel, ctx.now, &mut events)?;
            ctx.events.extend(events);
        }
        self.record_events(&next.id, &outputs, ctx);
        Ok(next)
    }

    /// The store write an output asks for (pushes wait until the step committed).
    fn plan(
        &self,
        before: &Activation,
        after: &Activation,
        output: &Output,
        ctx: &mut Ctx<'_>,
        writes: &mut Vec<Write>,
        pushes: &mut Vec<Channel>,
    ) -> Result<(), ServiceError> {
        let tenant = ctx.tenant;
        let write = match output {
            Output::Reached(_)
            | Output::ShowNotice(_)
            | Output::ConfigurationFailed(_)
            | Output::DeclarationsInvalid(_)
            | Output::ReEnrolled
            | Output::Unenrolled
            | Output::RenewalQueued(_)
            | Output::RenewalFailed(_)
            | Output::IdentityRenewed { .. }
            | Output::RenewalGivenUp
            | Output::IdentityExpired => return Ok(()),
            Output::EndConnection => {
                ctx.deliver = None;
                return Ok(());
            }
            Output::SaveConnection(connection) => {
                Write::SetConnection(self.queue_key(ctx)?, connection.clone())
            }
            Output::Push(channel) => {
                pushes.push(channel.clone());
                return Ok(());
            }
            Output::IssueChallenge(grant) => Write::InsertChallenge(ChallengeRecord {
                tenant: tenant.clone(),
                activation: after.id.clone(),
                grant: *grant,
                consumed: false,
            }),
            Output::ConsumeChallenge(grant) => Write::ConsumeChallenge {
                tenant: tenant.clone(),
                digest: grant.digest,
                now: ctx.now,
            },
            Output::ClaimDevice { device_id, max } => Write::ClaimDevice {
                tenant: tenant.clone(),
                username: before.username.clone(),
                device_id: device_id.clone(),
                max: *max,
            },
            Output::ReleaseDevice { device_id } => Write::ReleaseDevice {
                tenant: tenant.clone(),
                username: before.username.clone(),
                device_id: device_id.clone(),
            },
            Output::RecordCertificate(identity) => Write::RecordCertificate(IssuedCertificate {
                tenant: tenant.clone(),
                activation: after.id.clone(),
                identity: identity.clone(),
            }),
            Output::BindIdentity {
                fingerprint,
                device_id,
            } => Write::BindIdentity(Binding {
                fingerprint: *fingerprint,
                tenant: tenant.clone(),
                device_id: device_id.clone(),
                activation: after.id.clone(),
                retired: false,
            }),
            Output::RetireIdentity(fingerprint) => Write::RetireIdentity {
                fingerprint: *fingerprint,
                tenant: tenant.clone(),
            },
            Output::ClearQueue(channel) => Write::ClearQueue(QueueKey {
                tenant: tenant.clone(),
                channel: channel.clone(),
            }),
            Output::EnqueueInitial(_) | Output::EnqueueRenewal(_) => {
                let uuids = match output {
                    Output::EnqueueInitial(uuids) => uuids.as_slice(),
                    Output::EnqueueRenewal(uuid) => std::slice::from_ref(uuid),
                    _ => &[],
                };
                let key = self.queue_key(ctx)?;
                for uuid in uuids {
                    if let Some(cmd) = ctx.initial.remove(uuid) {
                        writes.push(Write::Enqueue(
                            key.clone(),
                            QueuedCommand {
                                uuid: cmd.uuid,
                                request_type: cmd.request_type,
                                body: cmd.body.into(),
                                activation: Some(after.id.clone()),
                                not_now_count: 0,
                                queued_at: ctx.now,
                                delivered_at: None,
                            },
                        ));
                    }
                }
                return Ok(());
            }
            Output::Finish { uuid, outcome } => {
                let key = self.queue_key(ctx)?;
                let request_type = ctx
                    .pending
                    .iter()
                    .find(|c| c.uuid == *uuid)
                    .map(|c| c.request_type.clone())
                    .unwrap_or_default();
                let body = if matches!(outcome, CommandOutcome::Undecodable(_)) {
                    Vec::new()
                } else {
                    ctx.report_body.clone()
                };
                writes.push(Write::FinishCommand(
                    key.clone(),
                    CommandResult {
                        uuid: uuid.clone(),
                        request_type,
                        outcome: outcome.clone(),
                        body,
                        at: ctx.now,
                    },
                ));
                match self.config.queue.retention.keep() {
                    Some(keep) => Write::PruneResults(key, keep),
                    None => return Ok(()),
                }
            }
            Output::Defer(uuid) => Write::DeferCommand(self.queue_key(ctx)?, uuid.clone()),
            // The atomic gate against a racing cancel and a racing
            // connection: only a command still queued and held by no other
            // delivery is sent, and once claimed it cannot be cancelled.
            Output::Deliver(uuid) => Write::ClaimDelivery {
                key: self.queue_key(ctx)?,
                uuid: uuid.clone(),
                at: ctx.now,
                lease: self.config.queue.delivery_lease,
            },
        };
        writes.push(write);
        Ok(())
    }

    fn queue_key(&self, ctx: &Ctx<'_>) -> Result<QueueKey, ServiceError> {
        Ok(QueueKey {
            tenant: ctx.tenant.clone(),
            channel: ctx.channel.clone().ok_or(ActivationError::NotEnrolled)?,
        })
    }
}

/// The protocol error a refused write of a step stands for.
fn step_error(write: Option<&Write>, error: StoreError) -> ServiceError {
    match (write, error) {
        (Some(Write::ConsumeChallenge { .. }), StoreError::ChallengeConsumed) => {
            ActivationError::ChallengeReplayed.into()
        }
        (Some(Write::ConsumeChallenge { .. }), StoreError::ChallengeExpired) => {
            ActivationError::ChallengeExpired.into()
        }
        (Some(Write::ConsumeChallenge { .. }), StoreError::NotFound) => {
            ActivationError::UnknownChallenge.into()
        }
        (Some(Write::ClaimDevice { max, .. }), StoreError::LimitReached) => {
            ActivationError::DeviceCapReached {
                max: max.unwrap_or(0),
            }
            .into()
        }
        (Some(Write::BindIdentity(_)), StoreError::BindingConflict(_)) => {
            ActivationError::DeviceMismatch.into()
        }
        (Some(Write::BindIdentity(_)), StoreError::IdentityRetired) => {
            ActivationError::IdentityMismatch.into()
        }
        (Some(Write::FinishCommand(_, result)), StoreError::NotFound) => {
            ActivationError::UnknownCommand(result.uuid.clone()).into()
        }
        (Some(Write::DeferCommand(_, uuid)), StoreError::NotFound) => {
            ActivationError::UnknownCommand(uuid.clone()).into()
        }
        (_, other) => ServiceError::Store(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repush_backs_off_doubling_up_to_the_cap() {
        let t = SystemTime::UNIX_EPOCH;
        let s = Duration::from_secs;
        let p = RepushPolicy::new(s(10), s(35), 5, s(7));
        let due: Vec<_> = (1..=5).map(|n| p.after_push(n, t)).collect();
        assert_eq!(
            due,
            [
                Some(t + s(10)),
                Some(t + s(20)),
                Some(t + s(35)),
                Some(t + s(35)),
                None
            ]
        );
        assert_eq!(p.after_push(0, t), None);
        assert_eq!(p.after_push(u32::MAX, t), None);
        let many = RepushPolicy::new(s(10), s(3600), u32::MAX, s(7));
        assert_eq!(many.after_push(64, t), Some(t + s(3600)), "no overflow");
        assert_eq!(p.after_not_now(t), Some(t + s(7)));
        assert_eq!(
            RepushPolicy::new(s(1), s(1), 0, s(1)).after_push(1, t),
            None
        );
    }
}
