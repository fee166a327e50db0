//! The conformance kit passes on the in-memory store and catches real bugs:
//! each deliberately broken store below fails the check aimed at its flaw.
#![cfg(feature = "test-support")]

use std::time::{Duration, SystemTime};

use mdm_enroll::activation::*;
use mdm_enroll::store::conformance::{self, ConformanceReport};
use mdm_enroll::store::*;

#[test]
fn memory_store_conforms() {
    let report = conformance::run(MemoryStore::new);
    assert!(report.is_ok(), "{:#?}", report.failed);
    assert_eq!(report.passed.len(), 33);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flaw {
    ConsumeNeverMarks,
    RacyConsume,
    CasIgnoresVersion,
    RacyCas,
    BindOverwrites,
    FinishTwice,
    DuplicateSerialAccepted,
    ChallengeIgnoresTenant,
    ClaimIgnoresLimit,
    ClearClearsAllChannels,
    PruneIgnored,
    /// A racer that loses answers `Backend("busy")`, not the documented error.
    LosersBusy,
    /// A racer that loses panics.
    LosersPanic,
    CancelIgnoresDelivery,
    RacyCancel,
    TokenUpdateKeepsInvalid,
    /// A delivery claim that checks "not delivered" and then marks it, as
    /// two statements: racing connections are all handed the command.
    ClaimUnlocked,
    /// A step's writes are applied one by one, each committed alone: a
    /// failing write leaves the ones before it.
    StepOneByOne,
    /// The head of a queue taken from its newest end.
    HeadFromTheNewestEnd,
    /// A lookup that finds a finished command (by its stored result).
    LookupFindsFinished,
    /// A queue count that also counts the finished commands' results.
    CountIncludesFinished,
}

/// A store that delegates to [`MemoryStore`] except for one flaw.
struct Broken {
    inner: MemoryStore,
    flaw: Flaw,
    /// The thread the kit runs on; its race checks call from other threads.
    home: std::thread::ThreadId,
}

impl Broken {
    /// The racers' flaws: a refusal on a racing thread comes out wrong.
    fn racing<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        if outcome.is_ok() || std::thread::current().id() == self.home {
            return outcome;
        }
        match self.flaw {
            Flaw::LosersBusy => Err(StoreError::transient("busy")),
            Flaw::LosersPanic => panic!("store panicked in a lost race"),
            _ => outcome,
        }
    }
}

fn pause() {
    std::thread::sleep(Duration::from_millis(5));
}

impl UserStore for Broken {
    fn put_user(&self, user: &UserAccount) -> Result<(), StoreError> {
        self.inner.put_user(user)
    }
    fn user(&self, t: &TenantId, u: &str) -> Result<Option<UserAccount>, StoreError> {
        self.inner.user(t, u)
    }
    fn claim_device(
        &self,
        t: &TenantId,
        u: &str,
        d: &str,
        max: Option<u32>,
    ) -> Result<bool, StoreError> {
        let max = if self.flaw == Flaw::ClaimIgnoresLimit {
            None
        } else {
            max
        };
        self.racing(self.inner.claim_device(t, u, d, max))
    }
    fn release_device(&self, t: &TenantId, u: &str, d: &str) -> Result<(), StoreError> {
        self.inner.release_device(t, u, d)
    }
    fn devices(&self, t: &TenantId, u: &str) -> Result<Vec<String>, StoreError> {
        self.inner.devices(t, u)
    }
}

impl ActivationStore for Broken {
    fn insert_activation(&self, a: &Activation) -> Result<(), StoreError> {
        self.inner.insert_activation(a)
    }
    fn activation(
        &self,
        t: &TenantId,
        id: &ActivationId,
    ) -> Result<Option<Versioned<Activation>>, StoreError> {
        self.inner.activation(t, id)
    }
    fn update_activation(&self, a: &Activation, expected: u64) -> Result<u64, StoreError> {
        match self.flaw {
            Flaw::CasIgnoresVersion | Flaw::RacyCas => {
                // Check, then act on a fresh read: a classic lost update.
                let current = self
                    .inner
                    .activation(&a.tenant, &a.id)?
                    .ok_or(StoreError::NotFound)?;
                if self.flaw == Flaw::RacyCas && current.version != expected {
                    return Err(StoreError::VersionConflict {
                        expected,
                        found: current.version,
                    });
                }
                pause();
                let now = self
                    .inner
                    .activation(&a.tenant, &a.id)?
                    .ok_or(StoreError::NotFound)?;
                self.inner.update_activation(a, now.version)
            }
            _ => self.racing(self.inner.update_activation(a, expected)),
        }
    }
    fn device_activation(&self, t: &TenantId, d: &str) -> Result<Option<ActivationId>, StoreError> {
        self.inner.device_activation(t, d)
    }
    fn set_device_activation(
        &self,
        t: &TenantId,
        d: &str,
        id: &ActivationId,
    ) -> Result<Option<ActivationId>, StoreError> {
        self.inner.set_device_activation(t, d, id)
    }
    fn device_activations(&self, t: &TenantId) -> Result<Vec<(String, ActivationId)>, StoreError> {
        self.inner.device_activations(t)
    }
}

impl ChallengeStore for Broken {
    fn insert_challenge(&self, r: &ChallengeRecord) -> Result<(), StoreError> {
        self.inner.insert_challenge(r)
    }
    fn challenge(
        &self,
        t: &TenantId,
        d: &ChallengeDigest,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        self.inner.challenge(t, d)
    }
    fn consume_challenge(
        &self,
        t: &TenantId,
        d: &ChallengeDigest,
        now: SystemTime,
    ) -> Result<ChallengeRecord, StoreError> {
        match self.flaw {
            Flaw::ConsumeNeverMarks => {
                let r = self.inner.challenge(t, d)?.ok_or(StoreError::NotFound)?;
                if now >= r.grant.expires {
                    return Err(StoreError::ChallengeExpired);
                }
                Ok(r)
            }
            Flaw::RacyConsume => {
                let r = self.inner.challenge(t, d)?.ok_or(StoreError::NotFound)?;
                if r.consumed {
                    return Err(StoreError::ChallengeConsumed);
                }
                pause();
                // Marks it, but trusts the earlier check.
                match self.inner.consume_challenge(t, d, now) {
                    Err(StoreError::ChallengeConsumed) => Ok(r),
                    other => other,
                }
            }
            Flaw::ChallengeIgnoresTenant => {
                for other in ["a", "b"] {
                    let other = TenantId::new(other).unwrap();
                    if let Ok(r) = self.inner.consume_challenge(&other, d, now) {
                        return Ok(r);
                    }
                }
                self.inner.consume_challenge(t, d, now)
            }
            _ => self.racing(self.inner.consume_challenge(t, d, now)),
        }
    }
}

impl BindingStore for Broken {
    fn bind_identity(&self, b: &Binding) -> Result<(), StoreError> {
        match self.flaw {
            // An upsert that swallows the conflict and reports success.
            Flaw::BindOverwrites => match self.inner.bind_identity(b) {
                Err(StoreError::BindingConflict(_)) => Ok(()),
                other => other,
            },
            _ => self.racing(self.inner.bind_identity(b)),
        }
    }
    fn identity(&self, f: &CertFingerprint) -> Result<Option<Binding>, StoreError> {
        self.inner.identity(f)
    }
    fn retire_identity(&self, f: &CertFingerprint, t: &TenantId) -> Result<(), StoreError> {
        self.inner.retire_identity(f, t)
    }
}

impl QueueStore for Broken {
    fn enqueue(&self, k: &QueueKey, c: &QueuedCommand) -> Result<(), StoreError> {
        self.inner.enqueue(k, c)
    }
    fn pending(&self, k: &QueueKey) -> Result<Vec<QueuedCommand>, StoreError> {
        self.inner.pending(k)
    }
    fn pending_count(&self, k: &QueueKey) -> Result<usize, StoreError> {
        let n = self.inner.pending_count(k)?;
        if self.flaw == Flaw::CountIncludesFinished {
            return Ok(n + self.inner.results(k)?.len());
        }
        Ok(n)
    }
    fn pending_head(&self, k: &QueueKey, limit: usize) -> Result<Vec<QueuedCommand>, StoreError> {
        let mut all = self.inner.pending(k)?;
        if self.flaw == Flaw::HeadFromTheNewestEnd {
            let cut = all.len().saturating_sub(limit);
            return Ok(all.split_off(cut));
        }
        all.truncate(limit);
        Ok(all)
    }
    fn queued_command(
        &self,
        k: &QueueKey,
        u: &CommandUuid,
    ) -> Result<Option<QueuedCommand>, StoreError> {
        let queued = self.inner.queued_command(k, u)?;
        if queued.is_none() && self.flaw == Flaw::LookupFindsFinished {
            return Ok(self
                .inner
                .results(k)?
                .into_iter()
                .find(|r| r.uuid == *u)
                .map(|r| QueuedCommand {
                    uuid: r.uuid,
                    request_type: r.request_type,
                    body: Vec::new().into(),
                    activation: None,
                    not_now_count: 0,
                    queued_at: r.at,
                    delivered_at: None,
                }));
        }
        Ok(queued)
    }
    fn defer_command(&self, k: &QueueKey, u: &CommandUuid) -> Result<u32, StoreError> {
        self.inner.defer_command(k, u)
    }
    fn finish_command(&self, k: &QueueKey, r: &CommandResult) -> Result<(), StoreError> {
        match self.flaw {
            Flaw::FinishTwice => {
                let queued = self.inner.pending(k)?.iter().any(|c| c.uuid == r.uuid);
                if !queued && self.inner.results(k)?.iter().all(|x| x.uuid != r.uuid) {
                    return Err(StoreError::NotFound);
                }
                pause();
                // Records again even if another report already finished it.
                let _ = self.inner.finish_command(k, r);
                Ok(())
            }
            _ => self.racing(self.inner.finish_command(k, r)),
        }
    }
    fn clear_queue(&self, k: &QueueKey) -> Result<Vec<CommandUuid>, StoreError> {
        if self.flaw == Flaw::ClearClearsAllChannels {
            let user = QueueKey {
                tenant: k.tenant.clone(),
                channel: Channel {
                    device_id: k.channel.device_id.clone(),
                    user_id: Some("user".into()),
                },
            };
            self.inner.clear_queue(&user)?;
        }
        self.inner.clear_queue(k)
    }
    fn mark_delivered(
        &self,
        k: &QueueKey,
        u: &CommandUuid,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.inner.mark_delivered(k, u, at)
    }
    fn claim_delivery(
        &self,
        k: &QueueKey,
        u: &CommandUuid,
        at: SystemTime,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        if self.flaw != Flaw::ClaimUnlocked {
            return self.inner.claim_delivery(k, u, at, lease);
        }
        let Some(command) = self.inner.pending(k)?.into_iter().find(|c| c.uuid == *u) else {
            return Ok(Claim::Gone);
        };
        if command.delivered_at.is_some() {
            return Ok(Claim::Held);
        }
        pause();
        // Marks it without checking again.
        self.inner.mark_delivered(k, u, at)?;
        Ok(Claim::Claimed)
    }
    fn cancel_command(&self, k: &QueueKey, u: &CommandUuid) -> Result<Cancellation, StoreError> {
        match self.flaw {
            Flaw::CancelIgnoresDelivery | Flaw::RacyCancel => {
                // Checks "not delivered" in one step and removes in another.
                let found = self.inner.pending(k)?.into_iter().find(|c| c.uuid == *u);
                let Some(command) = found else {
                    return self.inner.cancel_command(k, u);
                };
                if self.flaw == Flaw::RacyCancel && command.delivered_at.is_some() {
                    return Ok(Cancellation::AlreadyDelivered);
                }
                // Hold the window open until a racing delivery lands (or
                // 50 ms pass), so the race is lost reliably when it can be.
                let deadline = std::time::Instant::now() + Duration::from_millis(50);
                while std::time::Instant::now() < deadline
                    && !self
                        .inner
                        .pending(k)?
                        .iter()
                        .any(|c| c.uuid == *u && c.delivered_at.is_some())
                {
                    pause();
                }
                let finished = CommandResult {
                    uuid: u.clone(),
                    request_type: command.request_type.clone(),
                    outcome: CommandOutcome::Acknowledged,
                    body: Vec::new(),
                    at: SystemTime::UNIX_EPOCH,
                };
                // Removes it whether or not it was delivered meanwhile.
                let _ = self.inner.finish_command(k, &finished);
                Ok(Cancellation::Cancelled(command))
            }
            _ => self.inner.cancel_command(k, u),
        }
    }
    fn connection(&self, k: &QueueKey) -> Result<Connection, StoreError> {
        self.inner.connection(k)
    }
    fn set_connection(&self, k: &QueueKey, c: &Connection) -> Result<(), StoreError> {
        self.inner.set_connection(k, c)
    }
    fn results(&self, k: &QueueKey) -> Result<Vec<CommandResult>, StoreError> {
        self.inner.results(k)
    }
    fn prune_results(&self, k: &QueueKey, keep: usize) -> Result<(), StoreError> {
        if self.flaw == Flaw::PruneIgnored {
            return Ok(());
        }
        self.inner.prune_results(k, keep)
    }
}

impl CertificateStore for Broken {
    fn record_certificate(&self, c: &IssuedCertificate) -> Result<(), StoreError> {
        if self.flaw == Flaw::DuplicateSerialAccepted {
            let mut c = c.clone();
            // Appends a discriminator so the inner map never sees a duplicate.
            c.identity
                .serial
                .extend_from_slice(&c.identity.fingerprint.0[..4]);
            return self.inner.record_certificate(&c);
        }
        self.racing(self.inner.record_certificate(c))
    }
    fn certificate_by_fingerprint(
        &self,
        f: &CertFingerprint,
    ) -> Result<Option<IssuedCertificate>, StoreError> {
        self.inner.certificate_by_fingerprint(f)
    }
    fn certificate_by_serial(&self, s: &[u8]) -> Result<Option<IssuedCertificate>, StoreError> {
        self.inner.certificate_by_serial(s)
    }
}

impl PushStore for Broken {
    fn push_state(&self, k: &QueueKey) -> Result<Option<PushState>, StoreError> {
        self.inner.push_state(k)
    }
    fn record_push(
        &self,
        k: &QueueKey,
        at: SystemTime,
        due: Option<SystemTime>,
    ) -> Result<PushState, StoreError> {
        self.inner.record_push(k, at, due)
    }
    fn record_push_response(
        &self,
        k: &QueueKey,
        status: u16,
        reason: Option<&str>,
        invalid: bool,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.inner
            .record_push_response(k, status, reason, invalid, at)
    }
    fn record_answer(&self, k: &QueueKey, due: Option<SystemTime>) -> Result<(), StoreError> {
        self.inner.record_answer(k, due)
    }
    fn record_token_update(&self, k: &QueueKey) -> Result<(), StoreError> {
        if self.flaw == Flaw::TokenUpdateKeepsInvalid {
            return self.inner.record_answer(k, None);
        }
        self.inner.record_token_update(k)
    }
    fn due_pushes(&self, t: &TenantId, now: SystemTime) -> Result<Vec<QueueKey>, StoreError> {
        self.inner.due_pushes(t, now)
    }
}

impl StepStore for Broken {
    fn apply(&self, writes: &[Write]) -> Result<Vec<Applied>, StepFailed> {
        // An unlocked claim is unlocked inside a step too. (With only the
        // direct calls flawed, the race hinged on which racer the barrier
        // woke first: its last arrival, a step racer, always won on a loaded
        // machine and the flaw went unseen.)
        if let (
            Flaw::ClaimUnlocked,
            [
                Write::ClaimDelivery {
                    key,
                    uuid,
                    at,
                    lease,
                },
            ],
        ) = (self.flaw, writes)
        {
            return self
                .claim_delivery(key, uuid, *at, *lease)
                .map(|claim| vec![Applied::Claim(claim)])
                .map_err(|error| StepFailed { index: 0, error });
        }
        if self.flaw != Flaw::StepOneByOne {
            return self.inner.apply(writes);
        }
        let mut applied = Vec::new();
        for (index, write) in writes.iter().enumerate() {
            applied.push(
                write
                    .apply_alone(&self.inner)
                    .map_err(|error| StepFailed { index, error })?,
            );
        }
        Ok(applied)
    }
}

fn run_broken(flaw: Flaw) -> ConformanceReport {
    conformance::run(|| Broken {
        inner: MemoryStore::new(),
        flaw,
        home: std::thread::current().id(),
    })
}

#[test]
fn kit_catches_each_flaw() {
    let cases = [
        (Flaw::ConsumeNeverMarks, "challenge_single_use"),
        (Flaw::RacyConsume, "challenge_consume_race"),
        (Flaw::CasIgnoresVersion, "activation_versioning"),
        (Flaw::RacyCas, "activation_cas_race"),
        (Flaw::BindOverwrites, "binding_bind_or_conflict"),
        (Flaw::FinishTwice, "queue_finish_race"),
        (Flaw::DuplicateSerialAccepted, "certificate_unique_serial"),
        (Flaw::ChallengeIgnoresTenant, "challenge_expiry_and_tenant"),
        (Flaw::ClaimIgnoresLimit, "device_claims_respect_limit"),
        (Flaw::ClearClearsAllChannels, "queue_clear_isolated"),
        (Flaw::PruneIgnored, "results_prune"),
        (Flaw::CancelIgnoresDelivery, "queue_deliver_and_cancel"),
        (Flaw::RacyCancel, "queue_cancel_deliver_race"),
        (Flaw::TokenUpdateKeepsInvalid, "push_state_bookkeeping"),
        (Flaw::ClaimUnlocked, "queue_claim_race"),
        (Flaw::StepOneByOne, "step_all_or_nothing"),
        (Flaw::StepOneByOne, "step_race"),
        (Flaw::HeadFromTheNewestEnd, "queue_head_and_lookup"),
        (Flaw::LookupFindsFinished, "queue_head_and_lookup"),
        (Flaw::CountIncludesFinished, "queue_head_and_lookup"),
    ];
    for (flaw, check) in cases {
        // A race is lost only when the threads interleave badly: a racy
        // flaw gets a few runs to show itself (a deterministic one, one).
        let mut report = run_broken(flaw);
        for _ in 0..4 {
            if report.failed(check) {
                break;
            }
            report = run_broken(flaw);
        }
        assert!(
            report.failed(check),
            "{flaw:?} not caught by {check}: failed = {:?}",
            report.failed
        );
        // The flaw is specific: most checks still pass.
        assert!(report.passed.len() >= 14, "{flaw:?}: {:?}", report.failed);
    }
}

/// The race checks assert each loser's error: a store that answers
/// a transient `Backend("busy")` to every loser (with the right number of winners) fails
/// all six of them and nothing else.
#[test]
fn kit_checks_each_losers_error() {
    let report = run_broken(Flaw::LosersBusy);
    let mut failed: Vec<_> = report.failed.iter().map(|(n, _)| *n).collect();
    failed.sort();
    assert_eq!(
        failed,
        [
            "activation_cas_race",
            "binding_race",
            "certificate_serial_race",
            "challenge_consume_race",
            "device_claims_race",
            "queue_finish_race",
        ],
        "{:#?}",
        report.failed
    );
    for (name, why) in &report.failed {
        assert!(
            why.contains("lost with Backend { kind: Transient, source: \"busy\" }"),
            "{name}: {why}"
        );
    }
}

/// A racer that panics is re-raised, never counted as a lost race.
#[test]
fn kit_reraises_a_racers_panic() {
    let payload = std::panic::catch_unwind(|| run_broken(Flaw::LosersPanic))
        .expect_err("a store whose racers panic passed the kit");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"store panicked in a lost race")
    );
}

#[test]
fn memory_store_keeps_declarations_per_channel() {
    let report = conformance::run_declarations(MemoryStore::new);
    assert!(report.is_ok(), "{:#?}", report.failed);
    assert_eq!(report.passed.len(), 2);
}

/// A DDM store that keys documents by device only: the user channel and
/// the tenant share the device channel's documents.
#[derive(Default)]
struct DeviceKeyed(std::sync::Mutex<std::collections::HashMap<(String, DdmSlot), String>>);

impl DeclarationStore for DeviceKeyed {
    fn ddm_document(&self, key: &QueueKey, slot: DdmSlot) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(&(key.channel.device_id.clone(), slot))
            .cloned())
    }

    fn put_ddm_document(
        &self,
        key: &QueueKey,
        slot: DdmSlot,
        document: &str,
    ) -> Result<(), StoreError> {
        self.0
            .lock()
            .unwrap()
            .insert((key.channel.device_id.clone(), slot), document.to_owned());
        Ok(())
    }
}

#[test]
fn declaration_checks_catch_a_store_that_ignores_the_channel() {
    let report = conformance::run_declarations(DeviceKeyed::default);
    assert!(report.failed("ddm_documents_per_channel"), "{report:#?}");
    assert!(report.failed("ddm_typed_round_trip"), "{report:#?}");
}
