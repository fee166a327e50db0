//! Declarative device management over [`Engine`]: the answer to a
//! `DeclarativeManagement` check-in, a changed declaration set (queue the
//! `DeclarativeManagement` command and push), and the activation's steps
//! 12–13 over DDM.

use std::time::SystemTime;

use crate::activation::{
    ActivationError, CertFingerprint, Channel, CommandUuid, Input, Phase, QueueKey, TenantId,
};
use crate::ddm::{self, DdmAnswer, DeclarationSet, Endpoint, Validity};
use crate::mdm::Command;
use crate::store::{DeclarationStore, Directory, PushSender, Store, StoredDeclarations};
use crate::wire::Limits;

use super::{Engine, Outcome, ServiceError};

impl<S: Store, D: Directory, P: PushSender> Engine<S, D, P> {
    /// Answer one `DeclarativeManagement` check-in from `channel` (sent
    /// with `identity`): `endpoint` and `data` as in the message. A
    /// `status` report is merged into the stored statuses and may complete
    /// (or fail) the activation's configuration; the first declaration of
    /// the initial set served is step 12.
    #[allow(clippy::too_many_arguments)]
    pub fn declarative_management(
        &self,
        declarations: &dyn DeclarationStore,
        tenant: &TenantId,
        identity: &CertFingerprint,
        channel: &Channel,
        endpoint: &str,
        data: Option<&[u8]>,
        now: SystemTime,
        limits: &Limits,
    ) -> Result<Outcome<DdmAnswer>, ServiceError> {
        let current = self.sender_activation(tenant, identity, channel)?;
        if matches!(current.value.phase, Phase::Unenrolled | Phase::Superseded)
            || current.value.push.is_none()
        {
            return Err(ActivationError::NotEnrolled.into());
        }
        let endpoint =
            Endpoint::parse(endpoint).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let key = QueueKey {
            tenant: tenant.clone(),
            channel: channel.clone(),
        };
        let stored = declarations
            .declarations(&key)?
            .unwrap_or(StoredDeclarations {
                set: DeclarationSet::new(),
                changed_at: SystemTime::UNIX_EPOCH,
                initial: Vec::new(),
            });
        let answer = ddm::respond(&stored.set, &endpoint, data, stored.changed_at, limits)
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let mut events = Vec::new();
        let waiting = channel.is_device() && current.value.declarative.is_some();
        match (&answer, &endpoint) {
            (DdmAnswer::Json(_), Endpoint::Declaration { identifier, .. })
                if waiting
                    && stored.initial.contains(identifier)
                    && current
                        .value
                        .declarative
                        .as_ref()
                        .is_some_and(|d| !d.served) =>
            {
                let (_, ev) = self.run_input(tenant, current, Input::DeclarationsServed, now)?;
                events = ev;
            }
            (DdmAnswer::Status(report), _) => {
                // Only declarations this server gave the channel are kept:
                // a device reporting identifiers of its own (or thousands of
                // made-up ones) must not grow the stored statuses.
                let known: Vec<_> = report
                    .declarations
                    .iter()
                    .flatten()
                    .filter(|r| {
                        stored.set.get(&r.identifier).is_some()
                            || stored.initial.contains(&r.identifier)
                    })
                    .cloned()
                    .collect();
                let statuses = if report.declarations.is_some() {
                    declarations.merge_declaration_statuses(&key, &known)?
                } else {
                    declarations.declaration_statuses(&key)?
                };
                if waiting {
                    let (applied, invalid) = initial_state(&stored, &statuses);
                    let d = current.value.declarative.as_ref();
                    if d.is_some_and(|d| d.applied != applied || d.invalid != invalid) {
                        let input = Input::DeclarationStatus { applied, invalid };
                        let (_, ev) = self.run_input(tenant, current, input, now)?;
                        events = ev;
                    }
                }
            }
            _ => {}
        }
        Ok(Outcome {
            value: answer,
            events,
        })
    }

    /// Replace `channel`'s declaration set (changed at `now`). When its
    /// `DeclarationsToken` changes and the channel is enrolled, queue the
    /// `DeclarativeManagement` command carrying the new tokens and push;
    /// returns the command's UUID. `initial` marks the set as the
    /// activation's initial declarations (step 13 waits for them); later
    /// sets keep the initial identifiers stored first.
    pub fn set_declarations<R: rand_core::CryptoRng + ?Sized>(
        &self,
        declarations: &dyn DeclarationStore,
        tenant: &TenantId,
        channel: &Channel,
        set: DeclarationSet,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Outcome<Option<CommandUuid>>, ServiceError> {
        let key = QueueKey {
            tenant: tenant.clone(),
            channel: channel.clone(),
        };
        let before = declarations.declarations(&key)?;
        if before
            .as_ref()
            .is_some_and(|b| b.set.declarations_token() == set.declarations_token())
        {
            return Ok(Outcome {
                value: None,
                events: Vec::new(),
            });
        }
        let stored = StoredDeclarations {
            initial: before.map(|b| b.initial).unwrap_or_default(),
            changed_at: now,
            set,
        };
        declarations.put_declarations(&key, &stored)?;
        let command = Command::declarative_management(
            CommandUuid::random(rng).into_string(),
            stored.set.tokens_response(now).encode(),
        );
        match self.enqueue_command(tenant, channel, &command, now) {
            Ok(out) => Ok(Outcome {
                value: Some(out.value),
                events: out.events,
            }),
            // Not enrolled yet: the set is served once it is.
            Err(ServiceError::Activation(ActivationError::NotEnrolled)) => Ok(Outcome {
                value: None,
                events: Vec::new(),
            }),
            Err(e) => Err(e),
        }
    }

    /// The `DeclarativeManagement` command of the initial configuration
    /// (first `TokenUpdate`): stores `set` as `channel`'s initial
    /// declarations unless a set is already stored, and carries the stored
    /// set's tokens.
    pub(super) fn initial_declarations<R: rand_core::CryptoRng + ?Sized>(
        &self,
        declarations: &dyn DeclarationStore,
        tenant: &TenantId,
        channel: &Channel,
        set: &DeclarationSet,
        now: SystemTime,
        rng: &mut R,
    ) -> Result<Command, ServiceError> {
        let key = QueueKey {
            tenant: tenant.clone(),
            channel: channel.clone(),
        };
        let stored = match declarations.declarations(&key)? {
            Some(stored) => stored,
            None => {
                let stored = StoredDeclarations {
                    initial: set.iter().map(|d| d.identifier().to_owned()).collect(),
                    changed_at: now,
                    set: set.clone(),
                };
                declarations.put_declarations(&key, &stored)?;
                stored
            }
        };
        Ok(Command::declarative_management(
            CommandUuid::random(rng).into_string(),
            stored.set.tokens_response(stored.changed_at).encode(),
        ))
    }
}

/// Whether every initial declaration still in the set is applied with its
/// current `ServerToken`, and which are reported invalid at that token
/// (with their reasons as `code: description`).
fn initial_state(
    stored: &StoredDeclarations,
    statuses: &[ddm::DeclarationStatus],
) -> (bool, Vec<(String, Vec<String>)>) {
    let mut applied = true;
    let mut invalid = Vec::new();
    for id in &stored.initial {
        // Removed from the set since: nothing to wait for.
        let Some(d) = stored.set.get(id) else {
            continue;
        };
        let token = d.server_token();
        match statuses.iter().find(|s| s.identifier == *id) {
            Some(s) if s.is_applied(&token) => {}
            Some(s) if s.valid == Validity::Invalid && s.server_token == token => {
                applied = false;
                let reasons = s
                    .reasons
                    .iter()
                    .map(|r| match &r.description {
                        Some(d) => format!("{}: {d}", r.code),
                        None => r.code.clone(),
                    })
                    .collect();
                invalid.push((id.clone(), reasons));
            }
            _ => applied = false,
        }
    }
    (applied, invalid)
}
