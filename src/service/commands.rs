//! The command API over [`Engine`]: queue, cancel and list a channel's
//! commands after activation, push channels and keep their push
//! bookkeeping, and list enrollments for admin views.

use std::time::SystemTime;

use crate::activation::{
    Activation, ActivationError, ActivationId, Channel, CommandResult, CommandUuid, Phase,
    QueueKey, QueuedCommand, Step, TenantId,
};
use crate::mdm::Command;
use crate::store::{Cancellation, Directory, PushSender, PushState, Store, StoreError};
use crate::wire::Limits;

use super::{CommandError, Engine, Event, EventKind, NewCommand, Outcome, ServiceError};

/// One enrolled device, for admin listings ([`Engine::enrollments`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnrollmentSummary {
    /// The device id (UDID).
    pub device_id: String,
    /// The activation owning the device.
    pub activation: ActivationId,
    /// The serial number from the device attributes.
    pub serial: Option<String>,
    /// The user who activated it.
    pub user: String,
    /// The last step reached.
    pub step: Step,
    /// The activation's phase.
    pub phase: Phase,
    /// All 13 steps done.
    pub complete: bool,
    /// The device holds the MDM enrollment (steps 10+ and not unenrolled).
    pub enrolled: bool,
    /// Whether the device channel has a push token.
    pub has_push_token: bool,
    /// The device channel's push bookkeeping.
    pub push: PushState,
    /// Commands queued on the device channel.
    pub queued: usize,
}

fn key(tenant: &TenantId, channel: &Channel) -> QueueKey {
    QueueKey {
        tenant: tenant.clone(),
        channel: channel.clone(),
    }
}

fn is_enrolled(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Enrolled | Phase::Configuring | Phase::Complete | Phase::ConfigurationFailed
    )
}

impl<S: Store, D: Directory, P: PushSender> Engine<S, D, P> {
    /// Queue a command built with [`crate::mdm::Command`] for `channel` of an
    /// enrolled device and push the channel. Its `CommandUUID` and
    /// `RequestType` come from the command.
    pub fn enqueue_command(
        &self,
        tenant: &TenantId,
        channel: &Channel,
        command: &Command,
        now: SystemTime,
    ) -> Result<Outcome<CommandUuid>, ServiceError> {
        if command.command_uuid.is_empty() {
            return Err(CommandError::Invalid("empty CommandUUID".into()).into());
        }
        if command.request_type.is_empty() {
            return Err(CommandError::Invalid("empty RequestType".into()).into());
        }
        self.enqueue(
            tenant,
            channel,
            NewCommand {
                uuid: CommandUuid::new(command.command_uuid.clone())
                    .map_err(|e| CommandError::Invalid(e.to_string()))?,
                request_type: command.request_type.clone(),
                body: command
                    .encode()
                    .map_err(|e| CommandError::Invalid(e.to_string()))?,
            },
            now,
        )
    }

    /// Queue a raw command plist (as Apple documents commands: a dictionary
    /// with a `CommandUUID` string and a `Command` dictionary holding
    /// `RequestType`) and push the channel. The plist is checked against
    /// [`Limits::default`] and sent to the device byte for byte.
    pub fn enqueue_raw(
        &self,
        tenant: &TenantId,
        channel: &Channel,
        plist: &[u8],
        now: SystemTime,
    ) -> Result<Outcome<CommandUuid>, ServiceError> {
        let limits = Limits::default();
        if plist.len() > limits.max_body_bytes {
            return Err(CommandError::TooLarge {
                len: plist.len(),
                max: limits.max_body_bytes,
            }
            .into());
        }
        let command =
            Command::decode(plist, &limits).map_err(|e| CommandError::Invalid(e.to_string()))?;
        if command.command_uuid.is_empty() || command.request_type.is_empty() {
            return Err(CommandError::Invalid("empty CommandUUID or RequestType".into()).into());
        }
        self.enqueue(
            tenant,
            channel,
            NewCommand {
                uuid: CommandUuid::new(command.command_uuid)
                    .map_err(|e| CommandError::Invalid(e.to_string()))?,
                request_type: command.request_type,
                body: plist.to_vec(),
            },
            now,
        )
    }

    /// Queue a command for a channel of an enrolled device and push the
    /// channel (unless its token is marked invalid: then the events say so
    /// and the command waits for the device's next connect).
    pub fn enqueue(
        &self,
        tenant: &TenantId,
        channel: &Channel,
        command: NewCommand,
        now: SystemTime,
    ) -> Result<Outcome<CommandUuid>, ServiceError> {
        let activation = self.channel_activation(tenant, channel)?;
        let uuid = command.uuid.clone();
        self.store
            .enqueue(
                &key(tenant, channel),
                &QueuedCommand {
                    uuid: command.uuid,
                    request_type: command.request_type.clone(),
                    body: command.body.into(),
                    activation: None,
                    not_now_count: 0,
                    queued_at: now,
                    delivered_at: None,
                },
            )
            .map_err(|e| match e {
                StoreError::AlreadyExists => CommandError::Duplicate(uuid.clone()).into(),
                other => ServiceError::Store(other),
            })?;
        let mut events = vec![Event {
            activation: activation.id.clone(),
            kind: EventKind::CommandQueued {
                channel: channel.clone(),
                uuid: uuid.clone(),
                request_type: command.request_type,
            },
        }];
        self.push_channel(&activation, channel, now, &mut events)?;
        Ok(Outcome {
            value: uuid,
            events,
        })
    }

    /// Cancel a queued command that was not yet delivered. Refused with
    /// [`CommandError::AlreadyDelivered`], [`CommandError::AlreadyFinished`]
    /// or [`CommandError::Unknown`], and a command of the initial
    /// configuration with [`CommandError::InitialConfiguration`]. A racing
    /// connect either delivers it or never sees it.
    pub fn cancel(
        &self,
        tenant: &TenantId,
        channel: &Channel,
        uuid: &CommandUuid,
    ) -> Result<Outcome<QueuedCommand>, ServiceError> {
        let id = self
            .store
            .device_activation(tenant, &channel.device_id)?
            .ok_or(ActivationError::NotEnrolled)?;
        let k = key(tenant, channel);
        if self
            .store
            .queued_command(&k, uuid)?
            .is_some_and(|c| c.activation.is_some() && c.delivered_at.is_none())
        {
            return Err(CommandError::InitialConfiguration(uuid.clone()).into());
        }
        let cancelled = match self.store.cancel_command(&k, uuid)? {
            Cancellation::Cancelled(c) => c,
            Cancellation::AlreadyDelivered => {
                return Err(CommandError::AlreadyDelivered(uuid.clone()).into());
            }
            Cancellation::AlreadyFinished => {
                return Err(CommandError::AlreadyFinished(uuid.clone()).into());
            }
            Cancellation::Unknown => return Err(CommandError::Unknown(uuid.clone()).into()),
        };
        Ok(Outcome {
            value: cancelled,
            events: vec![Event {
                activation: id,
                kind: EventKind::CommandCancelled {
                    channel: channel.clone(),
                    uuid: uuid.clone(),
                },
            }],
        })
    }

    /// The channel's queued commands, oldest first (delivered ones carry
    /// [`QueuedCommand::delivered_at`]).
    pub fn queue(
        &self,
        tenant: &TenantId,
        channel: &Channel,
    ) -> Result<Outcome<Vec<QueuedCommand>>, ServiceError> {
        Ok(Outcome {
            value: self.store.pending(&key(tenant, channel))?,
            events: Vec::new(),
        })
    }

    /// The channel's stored command results, oldest first.
    pub fn results(
        &self,
        tenant: &TenantId,
        channel: &Channel,
    ) -> Result<Outcome<Vec<CommandResult>>, ServiceError> {
        Ok(Outcome {
            value: self.store.results(&key(tenant, channel))?,
            events: Vec::new(),
        })
    }

    /// Push `channel` now (an admin's "wake the device").
    pub fn push_now(
        &self,
        tenant: &TenantId,
        channel: &Channel,
        now: SystemTime,
    ) -> Result<Outcome<()>, ServiceError> {
        let activation = self.channel_activation(tenant, channel)?;
        let mut events = Vec::new();
        self.push_channel(&activation, channel, now, &mut events)?;
        Ok(Outcome { value: (), events })
    }

    /// Record APNs' answer to a push of `channel` (from the push sender):
    /// the HTTP status, its `reason`, and whether the token is now invalid
    /// (410 `Unregistered`, 400 `BadDeviceToken`), which stops pushes to the
    /// channel until its next `TokenUpdate`.
    pub fn push_response(
        &self,
        tenant: &TenantId,
        channel: &Channel,
        status: u16,
        reason: Option<&str>,
        token_invalid: bool,
        now: SystemTime,
    ) -> Result<(), ServiceError> {
        Ok(self.store.record_push_response(
            &key(tenant, channel),
            status,
            reason,
            token_invalid,
            now,
        )?)
    }

    /// Re-push every channel of `tenant` whose re-push is due at `now`
    /// ([`super::RepushPolicy`]) and still has queued commands; returns
    /// the channels pushed. Call it periodically.
    pub fn repush_due(
        &self,
        tenant: &TenantId,
        now: SystemTime,
    ) -> Result<Outcome<Vec<Channel>>, ServiceError> {
        let mut events = Vec::new();
        let mut pushed = Vec::new();
        for k in self.store.due_pushes(tenant, now)? {
            let activation = match self.channel_activation(tenant, &k.channel) {
                Ok(a) => a,
                Err(ServiceError::Activation(_)) => {
                    // Unenrolled meanwhile: nothing to wake.
                    self.store.record_answer(&k, None)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if self.store.pending_head(&k, 1)?.is_empty() {
                self.store.record_answer(&k, None)?;
                continue;
            }
            if self.push_channel(&activation, &k.channel, now, &mut events)? {
                pushed.push(k.channel);
            }
        }
        Ok(Outcome {
            value: pushed,
            events,
        })
    }

    /// Every enrolled device of `tenant` (the device index), by device id.
    pub fn enrollments(&self, tenant: &TenantId) -> Result<Vec<EnrollmentSummary>, ServiceError> {
        let mut out = Vec::new();
        for (device, id) in self.store.device_activations(tenant)? {
            if let Some(a) = self.store.activation(tenant, &id)? {
                out.push(self.summary(tenant, device, a.value)?);
            }
        }
        Ok(out)
    }

    /// The enrolled device `device_id` of `tenant`, if the index has it.
    pub fn enrollment(
        &self,
        tenant: &TenantId,
        device_id: &str,
    ) -> Result<Option<EnrollmentSummary>, ServiceError> {
        let Some(id) = self.store.device_activation(tenant, device_id)? else {
            return Ok(None);
        };
        match self.store.activation(tenant, &id)? {
            Some(a) => Ok(Some(self.summary(tenant, device_id.to_owned(), a.value)?)),
            None => Ok(None),
        }
    }

    fn summary(
        &self,
        tenant: &TenantId,
        device_id: String,
        a: Activation,
    ) -> Result<EnrollmentSummary, ServiceError> {
        let k = key(tenant, &Channel::device(device_id.clone()));
        Ok(EnrollmentSummary {
            push: self.store.push_state(&k)?.unwrap_or_default(),
            queued: self.store.pending_count(&k)?,
            serial: a.device.as_ref().map(|d| d.serial.clone()),
            has_push_token: a.push.is_some(),
            complete: a.phase == Phase::Complete,
            enrolled: is_enrolled(a.phase),
            step: a.last_step,
            phase: a.phase,
            user: a.username,
            activation: a.id,
            device_id,
        })
    }

    /// The activation owning `channel`'s device, if the channel can be pushed.
    fn channel_activation(
        &self,
        tenant: &TenantId,
        channel: &Channel,
    ) -> Result<Activation, ServiceError> {
        let id = self
            .store
            .device_activation(tenant, &channel.device_id)?
            .ok_or(ActivationError::NotEnrolled)?;
        let activation = self.load(tenant, &id)?.value;
        if !is_enrolled(activation.phase) || target(&activation, channel).is_none() {
            return Err(ActivationError::NotEnrolled.into());
        }
        Ok(std::sync::Arc::unwrap_or_clone(activation))
    }

    /// Push `channel` of `activation` unless its token is marked invalid;
    /// record the push and schedule the re-push. Returns whether a push was
    /// handed to the sender; a refusing sender is an event, not an error.
    pub(super) fn push_channel(
        &self,
        activation: &Activation,
        channel: &Channel,
        now: SystemTime,
        events: &mut Vec<Event>,
    ) -> Result<bool, ServiceError> {
        let Some(target) = target(activation, channel) else {
            return Ok(false);
        };
        let k = key(&activation.tenant, channel);
        let state = self.store.push_state(&k)?.unwrap_or_default();
        let event = |kind| Event {
            activation: activation.id.clone(),
            kind,
        };
        if state.token_invalid {
            events.push(event(EventKind::PushSkippedTokenInvalid {
                channel: channel.clone(),
            }));
            return Ok(false);
        }
        if let Err(error) = self.push.push(&activation.tenant, channel, target) {
            events.push(event(EventKind::PushFailed {
                channel: channel.clone(),
                error,
            }));
            return Ok(false);
        }
        let attempt = state.attempts.saturating_add(1);
        let next_due = self.config.repush.after_push(attempt, now);
        let recorded = self.store.record_push(&k, now, next_due)?;
        events.push(event(EventKind::Pushed {
            channel: channel.clone(),
            attempt: recorded.attempts,
        }));
        if next_due.is_none() && self.config.repush.max_attempts > 0 {
            events.push(event(EventKind::RepushGaveUp {
                channel: channel.clone(),
                attempts: recorded.attempts,
            }));
        }
        Ok(true)
    }

    /// A `TokenUpdate` on the channel: clear a token-invalid mark and the
    /// re-push schedule (writes only when there is something to clear).
    pub(super) fn note_token_update(&self, k: &QueueKey) -> Result<(), ServiceError> {
        if let Some(s) = self.store.push_state(k)?
            && (s.token_invalid || s.attempts > 0 || s.next_due.is_some())
        {
            self.store.record_token_update(k)?;
        }
        Ok(())
    }

    /// The device answered on the channel: reset the unanswered count and
    /// schedule `next_due` (writes only on a change).
    pub(super) fn note_answer(
        &self,
        k: &QueueKey,
        next_due: Option<SystemTime>,
    ) -> Result<(), ServiceError> {
        let changed = match self.store.push_state(k)? {
            Some(s) => s.attempts > 0 || s.next_due != next_due,
            None => next_due.is_some(),
        };
        if changed {
            self.store.record_answer(k, next_due)?;
        }
        Ok(())
    }
}

fn target<'a>(
    activation: &'a Activation,
    channel: &Channel,
) -> Option<&'a crate::activation::PushTarget> {
    match &channel.user_id {
        None => activation.push.as_ref(),
        Some(user) => activation
            .user_channels
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, t)| t),
    }
}
