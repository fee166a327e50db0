//! The store conformance kit (feature `test-support`): every [`Store`]
//! implementation must pass [`run`]. It checks the atomic operations under
//! real thread races (exactly the expected winners, every loser with its
//! documented error, a racer that panics fails the run), tenant isolation of
//! every keyed read, the error each refused operation must return, and that
//! a step ([`StepStore::apply`](super::StepStore::apply)) failing at any of
//! its writes leaves every read as before the step.
//!
//! ```
//! use mdm_enroll::store::{MemoryStore, conformance};
//! conformance::assert_conforms(MemoryStore::new);
//! ```

use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use super::{
    Applied, Binding, Cancellation, ChallengeRecord, Claim, IssuedCertificate, StepFailed, Store,
    StoreError, Write,
};
use crate::activation::{
    Activation, ActivationId, CertFingerprint, ChallengeGrant, ChallengeKind, Channel,
    CommandOutcome, CommandResult, CommandUuid, Connection, IssuedIdentity, Policy, QueueKey,
    QueuedCommand, Secret, TenantId, UserAccount,
};

/// Threads used by the race checks.
pub const RACERS: usize = 8;

/// The outcome of [`run`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConformanceReport {
    /// Checks that passed.
    pub passed: Vec<&'static str>,
    /// Checks that failed, with what went wrong.
    pub failed: Vec<(&'static str, String)>,
}

impl ConformanceReport {
    /// Whether every check passed.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }

    /// Whether the named check failed.
    pub fn failed(&self, name: &str) -> bool {
        self.failed.iter().any(|(n, _)| *n == name)
    }
}

type Check<S> = (&'static str, fn(&S) -> Result<(), String>);

/// Run every check, each on a fresh store from `factory`.
///
/// # Panics
///
/// When the store panics, in a race check too: a panicking racer is
/// re-raised, never counted as a lost race.
pub fn run<S: Store, F: Fn() -> S>(factory: F) -> ConformanceReport {
    let checks: Vec<Check<S>> = vec![
        ("users_roundtrip_isolated", users_roundtrip_isolated),
        ("device_claims_respect_limit", device_claims_respect_limit),
        ("device_claims_race", device_claims_race),
        ("activation_versioning", activation_versioning),
        ("activation_cas_race", activation_cas_race),
        (
            "activation_isolated_by_tenant",
            activation_isolated_by_tenant,
        ),
        ("device_index", device_index),
        ("challenge_single_use", challenge_single_use),
        ("challenge_consume_race", challenge_consume_race),
        ("challenge_expiry_and_tenant", challenge_expiry_and_tenant),
        ("binding_bind_or_conflict", binding_bind_or_conflict),
        ("binding_race", binding_race),
        ("binding_retire", binding_retire),
        ("queue_fifo_and_finish_once", queue_fifo_and_finish_once),
        ("queue_finish_race", queue_finish_race),
        ("queue_defer", queue_defer),
        ("queue_head_and_lookup", queue_head_and_lookup),
        ("queue_large_bodies", queue_large_bodies),
        ("queue_clear_isolated", queue_clear_isolated),
        ("results_prune", results_prune),
        ("certificate_unique_serial", certificate_unique_serial),
        ("certificate_serial_race", certificate_serial_race),
        ("device_index_listing", device_index_listing),
        ("queue_deliver_and_cancel", queue_deliver_and_cancel),
        ("queue_cancel_deliver_race", queue_cancel_deliver_race),
        ("queue_claim_lease", queue_claim_lease),
        ("queue_claim_race", queue_claim_race),
        ("push_state_bookkeeping", push_state_bookkeeping),
        ("push_state_isolated", push_state_isolated),
        ("step_all_or_nothing", step_all_or_nothing),
        ("step_race", step_race),
        ("connection_per_channel", connection_per_channel),
        ("identity_switch_step", identity_switch_step),
    ];
    run_checks(checks, factory)
}

/// Run each check on a fresh store from `factory`.
fn run_checks<S, F: Fn() -> S>(checks: Vec<Check<S>>, factory: F) -> ConformanceReport {
    let mut report = ConformanceReport::default();
    for (name, check) in checks {
        let store = factory();
        match check(&store) {
            Ok(()) => report.passed.push(name),
            Err(why) => report.failed.push((name, why)),
        }
    }
    report
}

/// Run every check and panic listing the failures.
pub fn assert_conforms<S: Store, F: Fn() -> S>(factory: F) {
    let report = run(factory);
    assert!(
        report.is_ok(),
        "store fails conformance: {:#?}",
        report.failed
    );
}

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

fn e<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |err| format!("{what}: unexpected {err:?}")
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

// Ids below are literals known to be valid (the kit runs in tests only).
#[allow(clippy::expect_used)]
fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("literal tenant id is valid")
}

#[allow(clippy::expect_used)]
fn uuid(text: impl Into<String>) -> CommandUuid {
    CommandUuid::new(text).expect("literal command uuid is valid")
}

#[allow(clippy::expect_used)]
fn id(n: usize) -> ActivationId {
    ActivationId::new(format!("act{n}")).expect("literal activation id is valid")
}

fn user(t: &TenantId, name: &str) -> UserAccount {
    UserAccount {
        tenant: t.clone(),
        username: name.into(),
        domain: "corp".into(),
        policy: Policy::default(),
    }
}

fn activation(t: &TenantId, n: usize) -> Result<Activation, String> {
    Activation::start(id(n), &user(t, "alice"), t0())
        .map(|tr| tr.state)
        .map_err(|err| format!("{err}"))
}

fn fp(n: u8) -> CertFingerprint {
    CertFingerprint([n; 32])
}

fn challenge(t: &TenantId, secret: &str, ttl: u64) -> ChallengeRecord {
    ChallengeRecord {
        tenant: t.clone(),
        activation: id(1),
        grant: ChallengeGrant {
            kind: ChallengeKind::ProfileService,
            digest: Secret::new(secret).digest(),
            expires: t0() + Duration::from_secs(ttl),
        },
        consumed: false,
    }
}

fn binding(t: &TenantId, f: u8, device: &str) -> Binding {
    Binding {
        fingerprint: fp(f),
        tenant: t.clone(),
        device_id: device.into(),
        activation: id(1),
        retired: false,
    }
}

fn qkey(t: &TenantId, device: &str, user: Option<&str>) -> QueueKey {
    QueueKey {
        tenant: t.clone(),
        channel: Channel {
            device_id: device.into(),
            user_id: user.map(str::to_owned),
        },
    }
}

fn command(n: usize) -> QueuedCommand {
    QueuedCommand {
        uuid: uuid(format!("cmd-{n}")),
        request_type: "DeviceInformation".into(),
        body: vec![n as u8].into(),
        activation: None,
        not_now_count: 0,
        queued_at: t0(),
        delivered_at: None,
    }
}

fn result(n: usize) -> CommandResult {
    CommandResult {
        uuid: uuid(format!("cmd-{n}")),
        request_type: "DeviceInformation".into(),
        outcome: CommandOutcome::Acknowledged,
        body: b"ack".to_vec(),
        at: t0(),
    }
}

fn certificate(t: &TenantId, serial: u8, f: u8) -> IssuedCertificate {
    IssuedCertificate {
        tenant: t.clone(),
        activation: id(1),
        identity: IssuedIdentity {
            serial: vec![0x01, serial],
            fingerprint: fp(f),
            not_after: t0(),
            certificate: Vec::new(),
        },
    }
}

/// Run `f(i)` for each racer `i` in `0..RACERS` on threads released
/// together and return every racer's outcome, in racer order. A racer that panics fails the check: its
/// panic is re-raised here rather than counted as a lost race.
fn race<S: Store, T: Send, E: Send>(
    store: &S,
    f: impl Fn(&S, usize) -> Result<T, E> + Sync,
) -> Vec<Result<T, E>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // The barrier's last arrival (the last thread spawned) tends to run
    // first, most of all on a loaded machine: rotate which role it gets from
    // one race to the next, so each interleaving a check hopes for happens.
    static ROTATION: AtomicUsize = AtomicUsize::new(0);
    let offset = ROTATION.fetch_add(1, Ordering::Relaxed);
    let barrier = Barrier::new(RACERS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..RACERS)
            .map(|i| {
                let (barrier, f) = (&barrier, &f);
                let role = (i + offset) % RACERS;
                scope.spawn(move || {
                    barrier.wait();
                    f(store, role)
                })
            })
            .collect();
        let mut outcomes: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        // Thread i ran role (i + offset) % RACERS: put outcomes in role order.
        outcomes.rotate_right(offset % RACERS);
        outcomes
    })
}

/// Check a race's outcomes: exactly `wins` racers succeeded and every loser
/// got the error `lost` accepts. Returns the winners' racer indices.
fn settle<T, E: std::fmt::Debug>(
    what: &str,
    outcomes: &[Result<T, E>],
    wins: usize,
    lost: impl Fn(&E) -> bool,
) -> Result<Vec<usize>, String> {
    let winners: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, outcome)| outcome.is_ok())
        .map(|(i, _)| i)
        .collect();
    ensure!(
        winners.len() == wins,
        "{what}: {} of {RACERS} racers succeeded, expected {wins}",
        winners.len()
    );
    for (i, outcome) in outcomes.iter().enumerate() {
        if let Err(err) = outcome {
            ensure!(lost(err), "{what}: racer {i} lost with {err:?}");
        }
    }
    Ok(winners)
}

fn users_roundtrip_isolated<S: Store>(s: &S) -> Result<(), String> {
    let (a, b) = (tenant("a"), tenant("b"));
    s.put_user(&user(&a, "alice")).map_err(e("put_user"))?;
    let got = s.user(&a, "alice").map_err(e("user"))?;
    ensure!(got == Some(user(&a, "alice")), "user round trip: {got:?}");
    ensure!(
        s.user(&b, "alice").map_err(e("user"))?.is_none(),
        "a user of tenant a is visible in tenant b"
    );
    let mut changed = user(&a, "alice");
    changed.policy.max_devices = Some(2);
    s.put_user(&changed).map_err(e("put_user"))?;
    ensure!(
        s.user(&a, "alice").map_err(e("user"))? == Some(changed),
        "put_user does not replace"
    );
    Ok(())
}

fn device_claims_respect_limit<S: Store>(s: &S) -> Result<(), String> {
    let (a, b) = (tenant("a"), tenant("b"));
    s.put_user(&user(&a, "alice")).map_err(e("put_user"))?;
    s.put_user(&user(&b, "alice")).map_err(e("put_user"))?;
    let first = s
        .claim_device(&a, "alice", "d1", Some(2))
        .map_err(e("claim d1"))?;
    let again = s
        .claim_device(&a, "alice", "d1", Some(2))
        .map_err(e("re-claim d1 (idempotent)"))?;
    ensure!(
        first && !again,
        "claim reports 'newly counted' as {first}, then {again}"
    );
    s.claim_device(&a, "alice", "d2", Some(2))
        .map_err(e("claim d2"))?;
    let third = s.claim_device(&a, "alice", "d3", Some(2));
    ensure!(
        matches!(third, Err(StoreError::LimitReached)),
        "third device over limit 2: {third:?}"
    );
    ensure!(
        s.claim_device(&a, "alice", "d1", Some(2)).is_ok(),
        "a counted device must stay claimable at the limit"
    );
    ensure!(
        s.claim_device(&b, "alice", "d3", Some(1)).is_ok(),
        "tenant b's alice is limited by tenant a's devices"
    );
    s.release_device(&a, "alice", "d2").map_err(e("release"))?;
    s.claim_device(&a, "alice", "d3", Some(2))
        .map_err(e("claim after release"))?;
    let mut devices = s.devices(&a, "alice").map_err(e("devices"))?;
    devices.sort();
    ensure!(devices == ["d1", "d3"], "devices: {devices:?}");
    Ok(())
}

fn device_claims_race<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    s.put_user(&user(&a, "alice")).map_err(e("put_user"))?;
    let outcomes = race(s, |s, i| {
        s.claim_device(&a, "alice", &format!("d{i}"), Some(3))
    });
    let winners = settle("racing devices under a limit of 3", &outcomes, 3, |err| {
        matches!(err, StoreError::LimitReached)
    })?;
    let mut counted = s.devices(&a, "alice").map_err(e("devices"))?;
    counted.sort();
    let mut expected: Vec<String> = winners.iter().map(|i| format!("d{i}")).collect();
    expected.sort();
    ensure!(
        counted == expected,
        "devices counted {counted:?}, the racers that won {expected:?}"
    );
    Ok(())
}

fn activation_versioning<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let act = activation(&a, 1)?;
    s.insert_activation(&act).map_err(e("insert"))?;
    let dup = s.insert_activation(&act);
    ensure!(
        matches!(dup, Err(StoreError::AlreadyExists)),
        "duplicate insert: {dup:?}"
    );
    let got = s.activation(&a, &act.id).map_err(e("activation"))?;
    ensure!(
        got.as_ref().map(|v| (v.version, &v.value)) == Some((1, &act)),
        "after insert: {got:?}"
    );
    // The shared load the engine steps from: the same record, and one
    // handed out stays as it was when the store is updated after it.
    let load_shared = || {
        s.activation_shared(&a, &act.id)
            .map_err(e("activation_shared"))
    };
    let is = |loaded: &Option<super::Versioned<std::sync::Arc<Activation>>>, version, want| {
        loaded.as_ref().map(|v| (v.version, &*v.value)) == Some((version, want))
    };
    let shared = load_shared()?;
    ensure!(is(&shared, 1, &act), "shared load after insert: {shared:?}");
    let mut changed = act.clone();
    changed.language = Some("fr".into());
    let v = s.update_activation(&changed, 1).map_err(e("update v1"))?;
    ensure!(v == 2, "version after one update is {v}, not 2");
    ensure!(
        is(&shared, 1, &act),
        "an update changed a shared load handed out before it: {shared:?}"
    );
    let now = load_shared()?;
    ensure!(
        is(&now, 2, &changed),
        "shared load after the update: {now:?}"
    );
    let stale = s.update_activation(&act, 1);
    ensure!(
        matches!(stale, Err(StoreError::VersionConflict { .. })),
        "stale update accepted: {stale:?}"
    );
    let got = s.activation(&a, &act.id).map_err(e("activation"))?;
    ensure!(
        got.map(|v| v.value) == Some(changed),
        "a stale update overwrote the state"
    );
    let missing = s.update_activation(&activation(&a, 2)?, 1);
    ensure!(
        matches!(missing, Err(StoreError::NotFound)),
        "update of a missing activation: {missing:?}"
    );
    Ok(())
}

fn activation_cas_race<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let act = activation(&a, 1)?;
    s.insert_activation(&act).map_err(e("insert"))?;
    let outcomes = race(s, |s, i| {
        let mut mine = act.clone();
        mine.language = Some(format!("l{i}"));
        s.update_activation(&mine, 1)
    });
    let winners = settle("racing updates from version 1", &outcomes, 1, |err| {
        matches!(
            err,
            StoreError::VersionConflict {
                expected: 1,
                found: 2,
            }
        )
    })?;
    let language = winners.first().map(|i| format!("l{i}"));
    let stored = s.activation(&a, &act.id).map_err(e("activation"))?;
    ensure!(
        stored.as_ref().and_then(|v| v.value.language.clone()) == language,
        "the stored state is not the winner's: {stored:?}"
    );
    let v = s
        .activation(&a, &act.id)
        .map_err(e("activation"))?
        .map(|v| v.version);
    ensure!(v == Some(2), "version after the race: {v:?}");
    Ok(())
}

fn activation_isolated_by_tenant<S: Store>(s: &S) -> Result<(), String> {
    let (a, b) = (tenant("a"), tenant("b"));
    let act = activation(&a, 1)?;
    s.insert_activation(&act).map_err(e("insert"))?;
    ensure!(
        s.activation(&b, &act.id)
            .map_err(e("activation"))?
            .is_none(),
        "tenant b reads tenant a's activation"
    );
    let other = activation(&b, 1)?;
    s.insert_activation(&other)
        .map_err(e("same id in another tenant"))?;
    Ok(())
}

fn device_index<S: Store>(s: &S) -> Result<(), String> {
    let (a, b) = (tenant("a"), tenant("b"));
    ensure!(
        s.set_device_activation(&a, "udid", &id(1))
            .map_err(e("set"))?
            .is_none(),
        "first set returned a previous owner"
    );
    let prev = s
        .set_device_activation(&a, "udid", &id(2))
        .map_err(e("set"))?;
    ensure!(prev == Some(id(1)), "previous owner: {prev:?}");
    ensure!(
        s.device_activation(&a, "udid").map_err(e("get"))? == Some(id(2)),
        "device index not updated"
    );
    ensure!(
        s.device_activation(&b, "udid").map_err(e("get"))?.is_none(),
        "device index leaks across tenants"
    );
    Ok(())
}

fn challenge_single_use<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let rec = challenge(&a, "s1", 60);
    s.insert_challenge(&rec).map_err(e("insert"))?;
    ensure!(
        matches!(s.insert_challenge(&rec), Err(StoreError::AlreadyExists)),
        "duplicate challenge insert accepted"
    );
    let got = s
        .consume_challenge(&a, &rec.grant.digest, t0())
        .map_err(e("first consume"))?;
    ensure!(
        got.activation == rec.activation,
        "consume returned another record"
    );
    let again = s.consume_challenge(&a, &rec.grant.digest, t0());
    ensure!(
        matches!(again, Err(StoreError::ChallengeConsumed)),
        "second consume: {again:?}"
    );
    let seen = s.challenge(&a, &rec.grant.digest).map_err(e("challenge"))?;
    ensure!(
        seen.is_some_and(|r| r.consumed),
        "a consumed challenge does not read as consumed"
    );
    Ok(())
}

fn challenge_consume_race<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let rec = challenge(&a, "race", 60);
    s.insert_challenge(&rec).map_err(e("insert"))?;
    let outcomes = race(s, |s, _| s.consume_challenge(&a, &rec.grant.digest, t0()));
    settle("racing consumers of one challenge", &outcomes, 1, |err| {
        matches!(err, StoreError::ChallengeConsumed)
    })?;
    Ok(())
}

fn challenge_expiry_and_tenant<S: Store>(s: &S) -> Result<(), String> {
    let (a, b) = (tenant("a"), tenant("b"));
    let rec = challenge(&a, "s2", 60);
    s.insert_challenge(&rec).map_err(e("insert"))?;
    let other = s.consume_challenge(&b, &rec.grant.digest, t0());
    ensure!(
        matches!(other, Err(StoreError::NotFound)),
        "consumed from another tenant: {other:?}"
    );
    ensure!(
        s.challenge(&b, &rec.grant.digest)
            .map_err(e("challenge"))?
            .is_none(),
        "challenge visible in another tenant"
    );
    let late = s.consume_challenge(&a, &rec.grant.digest, rec.grant.expires);
    ensure!(
        matches!(late, Err(StoreError::ChallengeExpired)),
        "consume at expiry: {late:?}"
    );
    let unknown = s.consume_challenge(&a, &Secret::new("nope").digest(), t0());
    ensure!(
        matches!(unknown, Err(StoreError::NotFound)),
        "unknown challenge: {unknown:?}"
    );
    Ok(())
}

fn binding_bind_or_conflict<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    s.bind_identity(&binding(&a, 1, "dev1"))
        .map_err(e("bind"))?;
    s.bind_identity(&binding(&a, 1, "dev1"))
        .map_err(e("same bind again"))?;
    let other = s.bind_identity(&binding(&a, 1, "dev2"));
    ensure!(
        matches!(&other, Err(StoreError::BindingConflict(b)) if b.device_id == "dev1"),
        "one identity bound to a second device: {other:?}"
    );
    let got = s.identity(&fp(1)).map_err(e("identity"))?;
    ensure!(
        got.is_some_and(|b| b.device_id == "dev1" && !b.retired),
        "binding overwritten"
    );
    s.bind_identity(&binding(&a, 2, "dev2"))
        .map_err(e("second identity"))?;
    Ok(())
}

fn binding_race<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let outcomes = race(s, |s, i| {
        s.bind_identity(&binding(&a, 7, &format!("dev{i}")))
    });
    // Each loser is told who holds the identity: the winner.
    let stored = s.identity(&fp(7)).map_err(e("identity"))?;
    let winners = settle(
        "devices binding one identity",
        &outcomes,
        1,
        |err| matches!(err, StoreError::BindingConflict(b) if Some(b.as_ref()) == stored.as_ref()),
    )?;
    let holder = winners.first().map(|i| format!("dev{i}"));
    ensure!(
        stored.as_ref().map(|b| b.device_id.clone()) == holder,
        "the identity is bound to {stored:?}, not to the winner"
    );
    Ok(())
}

fn binding_retire<S: Store>(s: &S) -> Result<(), String> {
    let (a, b) = (tenant("a"), tenant("b"));
    s.bind_identity(&binding(&a, 3, "dev")).map_err(e("bind"))?;
    let wrong = s.retire_identity(&fp(3), &b);
    ensure!(
        matches!(wrong, Err(StoreError::NotFound)),
        "retired from another tenant: {wrong:?}"
    );
    s.retire_identity(&fp(3), &a).map_err(e("retire"))?;
    let got = s.identity(&fp(3)).map_err(e("identity"))?;
    ensure!(
        got.is_some_and(|b| b.retired),
        "retired binding does not read as retired"
    );
    let rebind = s.bind_identity(&binding(&a, 3, "dev"));
    ensure!(
        matches!(rebind, Err(StoreError::IdentityRetired)),
        "retired identity re-bound: {rebind:?}"
    );
    Ok(())
}

/// The identity renewal's switch: one step binds the renewed identity,
/// retires the old one and stores the activation (with its renewal state,
/// which reads back as written). A switch that fails at its last write
/// leaves the old identity bound and usable and the new one unbound: never
/// neither, never both.
fn identity_switch_step<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let mut act = activation(&a, 1)?;
    s.insert_activation(&act).map_err(e("insert"))?;
    s.bind_identity(&binding(&a, 1, "dev"))
        .map_err(e("bind old"))?;
    act.renewal = Some(crate::activation::IdentityRenewal {
        attempt: 2,
        challenge: ChallengeGrant {
            kind: ChallengeKind::Renewal,
            digest: Secret::new("renewal").digest(),
            expires: t0() + Duration::from_secs(60),
        },
        command: uuid("renew-2"),
        queued: t0(),
        failed_at: Some(t0() + Duration::from_secs(1)),
        scep_request: None,
        issued: vec![IssuedIdentity {
            serial: vec![2],
            fingerprint: fp(2),
            not_after: t0() + Duration::from_secs(3600),
            certificate: vec![0x30, 0],
        }],
        exhausted: false,
        expiry_reported: true,
    });
    act.renewed = Some(fp(9));
    let switch = |expected: u64| {
        [
            Write::BindIdentity(binding(&a, 2, "dev")),
            Write::RetireIdentity {
                fingerprint: fp(1),
                tenant: a.clone(),
            },
            Write::UpdateActivation {
                activation: Arc::new(act.clone()),
                expected,
            },
        ]
    };
    let failed = s.apply(&switch(7));
    ensure!(
        matches!(&failed, Err(StepFailed { index: 2, .. })),
        "a switch at a stale version applied: {failed:?}"
    );
    let old = s.identity(&fp(1)).map_err(e("identity"))?;
    let new = s.identity(&fp(2)).map_err(e("identity"))?;
    ensure!(
        old.as_ref().is_some_and(|b| !b.retired) && new.is_none(),
        "a failed switch left old {old:?}, new {new:?}"
    );
    s.apply(&switch(1)).map_err(|f| format!("switch: {f}"))?;
    let old = s.identity(&fp(1)).map_err(e("identity"))?;
    let new = s.identity(&fp(2)).map_err(e("identity"))?;
    ensure!(
        old.as_ref().is_some_and(|b| b.retired) && new.as_ref().is_some_and(|b| !b.retired),
        "after the switch old {old:?}, new {new:?}"
    );
    let stored = s
        .activation(&a, &act.id)
        .map_err(e("activation"))?
        .map(|v| v.value);
    ensure!(
        stored.as_ref() == Some(&act),
        "renewal state did not read back: {stored:?}"
    );
    Ok(())
}

fn queue_fifo_and_finish_once<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let k = qkey(&a, "dev", None);
    for n in 0..3 {
        s.enqueue(&k, &command(n)).map_err(e("enqueue"))?;
    }
    ensure!(
        matches!(s.enqueue(&k, &command(1)), Err(StoreError::AlreadyExists)),
        "duplicate uuid enqueued"
    );
    let order: Vec<_> = s
        .pending(&k)
        .map_err(e("pending"))?
        .into_iter()
        .map(|c| c.uuid.into_string())
        .collect();
    ensure!(
        order == ["cmd-0", "cmd-1", "cmd-2"],
        "queue order: {order:?}"
    );
    s.finish_command(&k, &result(1)).map_err(e("finish"))?;
    let again = s.finish_command(&k, &result(1));
    ensure!(
        matches!(again, Err(StoreError::NotFound)),
        "finished twice: {again:?}"
    );
    let order: Vec<_> = s
        .pending(&k)
        .map_err(e("pending"))?
        .into_iter()
        .map(|c| c.uuid.into_string())
        .collect();
    ensure!(
        order == ["cmd-0", "cmd-2"],
        "after finishing cmd-1: {order:?}"
    );
    let results = s.results(&k).map_err(e("results"))?;
    ensure!(results == [result(1)], "results: {results:?}");
    ensure!(
        matches!(s.enqueue(&k, &command(1)), Err(StoreError::AlreadyExists)),
        "a finished uuid was enqueued again"
    );
    let never = s.finish_command(&k, &result(9));
    ensure!(
        matches!(never, Err(StoreError::NotFound)),
        "finished a command never queued: {never:?}"
    );
    Ok(())
}

fn queue_finish_race<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let k = qkey(&a, "dev", None);
    s.enqueue(&k, &command(0)).map_err(e("enqueue"))?;
    let outcomes = race(s, |s, _| s.finish_command(&k, &result(0)));
    settle(
        "racing reports finishing one command",
        &outcomes,
        1,
        |err| matches!(err, StoreError::NotFound),
    )?;
    let n = s.results(&k).map_err(e("results"))?.len();
    ensure!(n == 1, "{n} results recorded for one command");
    Ok(())
}

fn queue_defer<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let k = qkey(&a, "dev", None);
    s.enqueue(&k, &command(0)).map_err(e("enqueue"))?;
    let one = s.defer_command(&k, &command(0).uuid).map_err(e("defer"))?;
    let two = s.defer_command(&k, &command(0).uuid).map_err(e("defer"))?;
    ensure!((one, two) == (1, 2), "NotNow counts {one}, {two}");
    let head = s.pending(&k).map_err(e("pending"))?;
    ensure!(
        head.first().map(|c| c.not_now_count) == Some(2),
        "NotNow count not stored: {head:?}"
    );
    let missing = s.defer_command(&k, &uuid("x"));
    ensure!(
        matches!(missing, Err(StoreError::NotFound)),
        "deferred an unknown command: {missing:?}"
    );
    Ok(())
}

/// `pending_head` is a prefix of `pending`, `pending_count` is its length,
/// and `queued_command` finds exactly what `pending` holds (counts and
/// delivery marks included), on this key only.
fn queue_head_and_lookup<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let (k, other) = (qkey(&a, "dev", None), qkey(&a, "other", None));
    for n in 0..5 {
        s.enqueue(&k, &command(n)).map_err(e("enqueue"))?;
    }
    s.enqueue(&other, &command(7)).map_err(e("enqueue"))?;
    s.finish_command(&k, &result(1)).map_err(e("finish"))?;
    s.defer_command(&k, &command(2).uuid).map_err(e("defer"))?;
    s.mark_delivered(&k, &command(3).uuid, t0())
        .map_err(e("mark_delivered"))?;
    let all = s.pending(&k).map_err(e("pending"))?;
    ensure!(all.len() == 4, "queue: {all:?}");
    for (key, want) in [(&k, 4), (&other, 1), (&qkey(&a, "none", None), 0)] {
        let n = s.pending_count(key).map_err(e("pending_count"))?;
        ensure!(n == want, "pending_count is {n}, pending has {want}");
    }
    for limit in 0..=all.len() + 1 {
        let head = s.pending_head(&k, limit).map_err(e("pending_head"))?;
        let want = all.get(..limit.min(all.len())).unwrap_or_default();
        ensure!(
            head == want,
            "pending_head({limit}) is {head:?}, not the first {limit} of {all:?}"
        );
    }
    let empty = s
        .pending_head(&qkey(&a, "none", None), 3)
        .map_err(e("pending_head"))?;
    ensure!(empty.is_empty(), "head of a queue never used: {empty:?}");
    for queued in &all {
        let got = s
            .queued_command(&k, &queued.uuid)
            .map_err(e("queued_command"))?;
        ensure!(
            got.as_ref() == Some(queued),
            "queued_command({}) is {got:?}, pending has {queued:?}",
            queued.uuid.as_str()
        );
    }
    for (gone, what) in [
        (command(1).uuid, "a finished command"),
        (command(7).uuid, "another queue's command"),
        (uuid("never"), "a command never queued"),
    ] {
        let got = s.queued_command(&k, &gone).map_err(e("queued_command"))?;
        ensure!(got.is_none(), "queued_command found {what}: {got:?}");
    }
    Ok(())
}

fn queue_clear_isolated<S: Store>(s: &S) -> Result<(), String> {
    let (a, b) = (tenant("a"), tenant("b"));
    let dev = qkey(&a, "dev", None);
    let usr = qkey(&a, "dev", Some("user"));
    let other = qkey(&b, "dev", None);
    for k in [&dev, &usr, &other] {
        s.enqueue(k, &command(0)).map_err(e("enqueue"))?;
        s.enqueue(k, &command(1)).map_err(e("enqueue"))?;
    }
    let cleared = s.clear_queue(&dev).map_err(e("clear"))?;
    ensure!(cleared.len() == 2, "cleared {cleared:?}");
    ensure!(
        s.pending(&dev).map_err(e("pending"))?.is_empty(),
        "queue not cleared"
    );
    ensure!(
        s.pending(&usr).map_err(e("pending"))?.len() == 2,
        "clearing the device channel cleared the user channel"
    );
    ensure!(
        s.pending(&other).map_err(e("pending"))?.len() == 2,
        "clearing tenant a's queue cleared tenant b's"
    );
    Ok(())
}

/// A command of `len` bytes of body, all different from those of another
/// `fill`, with uuid `name`.
fn large_command(name: &str, len: usize, fill: u8) -> QueuedCommand {
    QueuedCommand {
        uuid: uuid(name),
        request_type: "InstallProfile".into(),
        body: (0..len)
            .map(|i| (i % 251) as u8 ^ fill)
            .collect::<Vec<u8>>()
            .into(),
        ..command(0)
    }
}

/// Large bodies (which a store may keep apart from their records, or in
/// memory once read) come back whole through every read and every delivery
/// mark, and a uuid queued again after its result was pruned brings its new
/// body, never the one it had before.
fn queue_large_bodies<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let k = qkey(&a, "dev", None);
    let (big, other) = (
        large_command("big", 300_000, 0x11),
        large_command("other", 5_000, 0x22),
    );
    s.enqueue(&k, &big).map_err(e("enqueue"))?;
    s.enqueue(&k, &other).map_err(e("enqueue"))?;
    s.enqueue(&k, &command(1)).map_err(e("enqueue"))?;
    let body_of = |c: Option<&QueuedCommand>| c.map(|c| c.body.clone());
    for round in 0..3 {
        let head = s.pending_head(&k, 2).map_err(e("pending_head"))?;
        ensure!(
            body_of(head.first()) == Some(big.body.clone())
                && body_of(head.get(1)) == Some(other.body.clone()),
            "read {round}: the head's bodies are not the ones queued"
        );
        let got = s
            .queued_command(&k, &big.uuid)
            .map_err(e("queued_command"))?;
        ensure!(
            body_of(got.as_ref()) == Some(big.body.clone()),
            "read {round}: queued_command's body is not the one queued"
        );
        match round {
            0 => {
                let claim = s
                    .claim_delivery(&k, &big.uuid, t0(), Duration::from_secs(60))
                    .map_err(e("claim_delivery"))?;
                ensure!(
                    claim == Claim::Claimed,
                    "claim of the large command: {claim:?}"
                );
            }
            1 => {
                s.defer_command(&k, &big.uuid).map_err(e("defer"))?;
            }
            _ => {}
        }
    }
    let all = s.pending(&k).map_err(e("pending"))?;
    ensure!(
        all.iter().map(|c| c.body.len()).collect::<Vec<_>>() == [300_000, 5_000, 1],
        "pending's bodies have the wrong sizes"
    );
    match s.cancel_command(&k, &other.uuid).map_err(e("cancel"))? {
        Cancellation::Cancelled(c) => ensure!(
            c.body == other.body,
            "the cancelled command came back with another body"
        ),
        c => return Err(format!("cancel of a command never delivered: {c:?}")),
    }
    // Finished, its result pruned: the uuid is free, and queued again with
    // another body of the same size.
    let finished = CommandResult {
        uuid: big.uuid.clone(),
        ..result(0)
    };
    s.finish_command(&k, &finished).map_err(e("finish"))?;
    s.prune_results(&k, 0).map_err(e("prune"))?;
    let again = large_command("big", 300_000, 0x33);
    s.enqueue(&k, &again).map_err(e("enqueue again"))?;
    for _ in 0..2 {
        let got = s
            .queued_command(&k, &again.uuid)
            .map_err(e("queued_command"))?;
        ensure!(
            body_of(got.as_ref()) == Some(again.body.clone()),
            "a uuid queued again came back with its earlier body"
        );
        let head = s.pending_head(&k, 2).map_err(e("pending_head"))?;
        let bodies: Vec<_> = head.iter().map(|c| c.body.clone()).collect();
        ensure!(
            bodies == [command(1).body, again.body.clone()],
            "the head after queueing the uuid again has the wrong bodies"
        );
    }
    Ok(())
}

fn results_prune<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let k = qkey(&a, "dev", None);
    let other = qkey(&a, "dev", Some("u"));
    for n in 0..5 {
        s.enqueue(&k, &command(n)).map_err(e("enqueue"))?;
        s.finish_command(&k, &result(n)).map_err(e("finish"))?;
    }
    for n in 7..9 {
        s.enqueue(&other, &command(n)).map_err(e("enqueue"))?;
        s.finish_command(&other, &result(n)).map_err(e("finish"))?;
    }
    let uuids = |key: &QueueKey| -> Result<Vec<String>, String> {
        Ok(s.results(key)
            .map_err(e("results"))?
            .into_iter()
            .map(|r| r.uuid.into_string())
            .collect())
    };
    let all = ["cmd-0", "cmd-1", "cmd-2", "cmd-3", "cmd-4"];
    // Keeping as many as there are, or more, keeps them all.
    for keep in [5, 9] {
        s.prune_results(&k, keep).map_err(e("prune"))?;
        let kept = uuids(&k)?;
        ensure!(kept == all, "prune to {keep} of 5 kept {kept:?}");
    }
    s.prune_results(&k, 2).map_err(e("prune"))?;
    let kept = uuids(&k)?;
    ensure!(
        kept == ["cmd-3", "cmd-4"],
        "kept {kept:?} instead of the newest two"
    );
    s.prune_results(&k, 0).map_err(e("prune"))?;
    ensure!(uuids(&k)?.is_empty(), "prune to 0 kept results");
    let untouched = uuids(&other)?;
    ensure!(
        untouched == ["cmd-7", "cmd-8"],
        "pruning one channel changed another's results: {untouched:?}"
    );
    Ok(())
}

fn certificate_unique_serial<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    s.record_certificate(&certificate(&a, 1, 1))
        .map_err(e("record"))?;
    let dup = s.record_certificate(&certificate(&a, 1, 2));
    ensure!(
        matches!(dup, Err(StoreError::DuplicateSerial)),
        "duplicate serial: {dup:?}"
    );
    let by_fp = s
        .certificate_by_fingerprint(&fp(1))
        .map_err(e("by fingerprint"))?;
    ensure!(
        by_fp == Some(certificate(&a, 1, 1)),
        "by fingerprint: {by_fp:?}"
    );
    ensure!(
        s.certificate_by_fingerprint(&fp(2))
            .map_err(e("by fingerprint"))?
            .is_none(),
        "the refused duplicate is visible by fingerprint"
    );
    let by_serial = s
        .certificate_by_serial(&[0x01, 1])
        .map_err(e("by serial"))?;
    ensure!(
        by_serial == Some(certificate(&a, 1, 1)),
        "by serial: {by_serial:?}"
    );
    Ok(())
}

fn certificate_serial_race<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let outcomes = race(s, |s, i| {
        s.record_certificate(&certificate(&a, 9, 100 + i as u8))
    });
    let winners = settle(
        "certificates recorded with one serial",
        &outcomes,
        1,
        |err| matches!(err, StoreError::DuplicateSerial),
    )?;
    let stored = s
        .certificate_by_serial(&[0x01, 9])
        .map_err(e("by serial"))?;
    let expected = winners.first().map(|&i| certificate(&a, 9, 100 + i as u8));
    ensure!(
        stored == expected,
        "the serial holds {stored:?}, not the winner's certificate"
    );
    Ok(())
}

fn device_index_listing<S: Store>(s: &S) -> Result<(), String> {
    let (a, b) = (tenant("a"), tenant("b"));
    s.set_device_activation(&a, "udid-2", &id(2))
        .map_err(e("set"))?;
    s.set_device_activation(&a, "udid-1", &id(1))
        .map_err(e("set"))?;
    s.set_device_activation(&b, "udid-3", &id(3))
        .map_err(e("set"))?;
    let listed = s.device_activations(&a).map_err(e("list"))?;
    ensure!(
        listed == vec![("udid-1".to_owned(), id(1)), ("udid-2".to_owned(), id(2))],
        "tenant a lists {listed:?}"
    );
    let listed = s.device_activations(&b).map_err(e("list"))?;
    ensure!(listed.len() == 1, "tenant b lists {listed:?}");
    Ok(())
}

fn queue_deliver_and_cancel<S: Store>(s: &S) -> Result<(), String> {
    let (a, b) = (tenant("a"), tenant("b"));
    let k = qkey(&a, "udid", None);
    for n in 0..3 {
        s.enqueue(&k, &command(n)).map_err(e("enqueue"))?;
    }
    let later = t0() + Duration::from_secs(5);
    s.mark_delivered(&k, &command(1).uuid, t0())
        .map_err(e("mark_delivered"))?;
    s.mark_delivered(&k, &command(1).uuid, later)
        .map_err(e("mark_delivered again"))?;
    let pending = s.pending(&k).map_err(e("pending"))?;
    let delivered: Vec<_> = pending.iter().map(|c| c.delivered_at).collect();
    ensure!(
        delivered == vec![None, Some(t0()), None],
        "delivery marks (the first counts): {delivered:?}"
    );
    let got = s
        .cancel_command(&k, &command(1).uuid)
        .map_err(e("cancel"))?;
    ensure!(
        got == Cancellation::AlreadyDelivered,
        "cancel of a delivered command: {got:?}"
    );
    let got = s
        .cancel_command(&k, &command(2).uuid)
        .map_err(e("cancel"))?;
    ensure!(
        got == Cancellation::Cancelled(command(2)),
        "cancel of a queued command: {got:?}"
    );
    let uuids: Vec<_> = s
        .pending(&k)
        .map_err(e("pending"))?
        .into_iter()
        .map(|c| c.uuid)
        .collect();
    ensure!(
        uuids == vec![command(0).uuid, command(1).uuid],
        "cancelled command still queued: {uuids:?}"
    );
    let got = s
        .cancel_command(&k, &command(2).uuid)
        .map_err(e("cancel"))?;
    ensure!(
        got == Cancellation::AlreadyFinished,
        "second cancel: {got:?}"
    );
    ensure!(
        matches!(
            s.mark_delivered(&k, &command(2).uuid, t0()),
            Err(StoreError::NotFound)
        ),
        "a cancelled command was marked delivered"
    );
    ensure!(
        matches!(s.enqueue(&k, &command(2)), Err(StoreError::AlreadyExists)),
        "a cancelled command's uuid was reused"
    );
    s.finish_command(&k, &result(0)).map_err(e("finish"))?;
    let got = s
        .cancel_command(&k, &command(0).uuid)
        .map_err(e("cancel"))?;
    ensure!(
        got == Cancellation::AlreadyFinished,
        "cancel of a finished command: {got:?}"
    );
    let got = s
        .cancel_command(&k, &command(9).uuid)
        .map_err(e("cancel"))?;
    ensure!(got == Cancellation::Unknown, "cancel of unknown: {got:?}");
    let other = qkey(&b, "udid", None);
    let got = s
        .cancel_command(&other, &command(1).uuid)
        .map_err(e("cancel"))?;
    ensure!(
        got == Cancellation::Unknown,
        "cancel across tenants: {got:?}"
    );
    Ok(())
}

fn queue_cancel_deliver_race<S: Store>(s: &S) -> Result<(), String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let k = qkey(&tenant("a"), "udid", None);
    for round in 0..10 {
        let c = command(round);
        s.enqueue(&k, &c).map_err(e("enqueue"))?;
        let (cancelled, delivered) = (AtomicUsize::new(0), AtomicUsize::new(0));
        race(s, |s, i| -> Result<(), ()> {
            if i % 2 == 0 {
                if let Ok(Cancellation::Cancelled(_)) = s.cancel_command(&k, &c.uuid) {
                    cancelled.fetch_add(1, Ordering::SeqCst);
                }
            } else if s.mark_delivered(&k, &c.uuid, t0()).is_ok() {
                delivered.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        });
        let (cancelled, delivered) = (cancelled.into_inner(), delivered.into_inner());
        ensure!(
            (cancelled == 1 && delivered == 0) || (cancelled == 0 && delivered > 0),
            "round {round}: {cancelled} cancels and {delivered} deliveries both won"
        );
    }
    Ok(())
}

/// The delivery lease the claim checks use.
const LEASE: Duration = Duration::from_secs(60);

fn queue_claim_lease<S: Store>(s: &S) -> Result<(), String> {
    let (a, b) = (tenant("a"), tenant("b"));
    let k = qkey(&a, "udid", None);
    for n in 0..2 {
        s.enqueue(&k, &command(n)).map_err(e("enqueue"))?;
    }
    let u = command(0).uuid;
    let claim = |at: SystemTime| s.claim_delivery(&k, &u, at, LEASE).map_err(e("claim"));
    let secs = |n: u64| t0() + Duration::from_secs(n);
    ensure!(claim(t0())? == Claim::Claimed, "first claim refused");
    ensure!(
        claim(secs(59))? == Claim::Held,
        "claimed again within the lease"
    );
    let other = qkey(&b, "udid", None);
    ensure!(
        matches!(
            s.claim_delivery(&other, &u, secs(1), LEASE),
            Ok(Claim::Gone)
        ),
        "claimed across tenants"
    );
    ensure!(
        matches!(
            s.claim_delivery(&k, &command(1).uuid, secs(1), LEASE),
            Ok(Claim::Claimed)
        ),
        "a claim held another command"
    );
    ensure!(
        claim(secs(60))? == Claim::Claimed,
        "not claimable once the lease ran out"
    );
    ensure!(claim(secs(61))? == Claim::Held, "the renewed claim holds");
    let delivered = s
        .pending(&k)
        .map_err(e("pending"))?
        .first()
        .and_then(|c| c.delivered_at);
    ensure!(
        delivered == Some(t0()),
        "a claim marks the first delivery: {delivered:?}"
    );
    ensure!(
        matches!(s.cancel_command(&k, &u), Ok(Cancellation::AlreadyDelivered)),
        "a claimed command was cancelled"
    );
    s.defer_command(&k, &u).map_err(e("defer"))?;
    ensure!(
        claim(secs(62))? == Claim::Claimed,
        "a NotNow did not release the claim"
    );
    s.finish_command(&k, &result(0)).map_err(e("finish"))?;
    ensure!(
        claim(secs(200))? == Claim::Gone,
        "a finished command claimed"
    );
    let step = s
        .apply(&[Write::ClaimDelivery {
            key: k.clone(),
            uuid: command(1).uuid,
            at: secs(2),
            lease: LEASE,
        }])
        .map_err(e("step"))?;
    ensure!(
        step == vec![Applied::Claim(Claim::Held)],
        "a step claimed a held command: {step:?}"
    );
    Ok(())
}

fn queue_claim_race<S: Store>(s: &S) -> Result<(), String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let k = qkey(&tenant("a"), "udid", None);
    for round in 0..10 {
        let c = command(round);
        s.enqueue(&k, &c).map_err(e("enqueue"))?;
        let claimed = AtomicUsize::new(0);
        let outcomes = race(s, |s, i| {
            // Half the racers claim alone, half inside a step.
            let claim = if i % 2 == 0 {
                s.claim_delivery(&k, &c.uuid, t0(), LEASE)
            } else {
                let write = Write::ClaimDelivery {
                    key: k.clone(),
                    uuid: c.uuid.clone(),
                    at: t0(),
                    lease: LEASE,
                };
                match s.apply(&[write]).map_err(|f| f.error)?.first() {
                    Some(Applied::Claim(claim)) => Ok(*claim),
                    other => Err(StoreError::permanent(format!("step answered {other:?}"))),
                }
            };
            if matches!(claim, Ok(Claim::Claimed)) {
                claimed.fetch_add(1, Ordering::SeqCst);
            }
            claim
        });
        for (i, outcome) in outcomes.iter().enumerate() {
            ensure!(
                matches!(outcome, Ok(Claim::Claimed | Claim::Held)),
                "round {round}: racer {i} got {outcome:?}"
            );
        }
        let claimed = claimed.into_inner();
        ensure!(
            claimed == 1,
            "round {round}: {claimed} of {RACERS} racers were handed the command"
        );
        s.finish_command(&k, &result(round)).map_err(e("finish"))?;
    }
    Ok(())
}

fn push_state_bookkeeping<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let k = qkey(&a, "udid", None);
    ensure!(
        s.push_state(&k).map_err(e("push_state"))?.is_none(),
        "push state before any push"
    );
    let due = t0() + Duration::from_secs(60);
    let st = s
        .record_push(&k, t0(), Some(due))
        .map_err(e("record_push"))?;
    ensure!(
        st.attempts == 1 && st.last_push == Some(t0()) && st.next_due == Some(due),
        "after one push: {st:?}"
    );
    ensure!(
        s.due_pushes(&a, t0()).map_err(e("due"))?.is_empty(),
        "due before its time"
    );
    ensure!(
        s.due_pushes(&a, due).map_err(e("due"))? == vec![k.clone()],
        "not due at its time"
    );
    let st = s.record_push(&k, due, None).map_err(e("record_push"))?;
    ensure!(st.attempts == 2, "attempts not counted: {st:?}");
    s.record_push_response(&k, 200, None, false, due)
        .map_err(e("response"))?;
    s.record_answer(&k, Some(due)).map_err(e("answer"))?;
    let st = s
        .push_state(&k)
        .map_err(e("push_state"))?
        .unwrap_or_default();
    ensure!(
        st.attempts == 0 && st.next_due == Some(due) && st.last_status == Some(200),
        "after an answer: {st:?}"
    );
    s.record_push_response(&k, 410, Some("Unregistered"), true, due)
        .map_err(e("response"))?;
    let st = s
        .push_state(&k)
        .map_err(e("push_state"))?
        .unwrap_or_default();
    ensure!(
        st.token_invalid
            && st.last_status == Some(410)
            && st.last_reason.as_deref() == Some("Unregistered"),
        "410 not recorded: {st:?}"
    );
    ensure!(
        s.due_pushes(&a, due).map_err(e("due"))?.is_empty(),
        "an invalid token is due for a push"
    );
    s.record_push_response(&k, 200, None, false, due)
        .map_err(e("response"))?;
    let st = s
        .push_state(&k)
        .map_err(e("push_state"))?
        .unwrap_or_default();
    ensure!(
        st.token_invalid,
        "only a TokenUpdate clears an invalid token"
    );
    s.record_token_update(&k).map_err(e("token_update"))?;
    let st = s
        .push_state(&k)
        .map_err(e("push_state"))?
        .unwrap_or_default();
    ensure!(
        !st.token_invalid && st.attempts == 0 && st.next_due.is_none(),
        "TokenUpdate did not clear: {st:?}"
    );
    ensure!(
        st.last_push == Some(due),
        "TokenUpdate lost history: {st:?}"
    );
    Ok(())
}

fn push_state_isolated<S: Store>(s: &S) -> Result<(), String> {
    let (a, b) = (tenant("a"), tenant("b"));
    let device = qkey(&a, "udid", None);
    let user = qkey(&a, "udid", Some("user-1"));
    let foreign = qkey(&b, "udid", None);
    let due = t0() + Duration::from_secs(1);
    s.record_push(&device, t0(), Some(due))
        .map_err(e("record_push"))?;
    s.record_push_response(&device, 410, None, true, t0())
        .map_err(e("response"))?;
    s.record_push(&user, t0(), Some(due))
        .map_err(e("record_push"))?;
    ensure!(
        s.push_state(&foreign).map_err(e("push_state"))?.is_none(),
        "push state leaks across tenants"
    );
    let st = s
        .push_state(&user)
        .map_err(e("push_state"))?
        .unwrap_or_default();
    ensure!(
        !st.token_invalid,
        "the device token's 410 hit the user channel"
    );
    ensure!(
        s.due_pushes(&a, due).map_err(e("due"))? == vec![user],
        "due pushes of tenant a"
    );
    ensure!(
        s.due_pushes(&b, due).map_err(e("due"))?.is_empty(),
        "due pushes leak across tenants"
    );
    Ok(())
}

/// The store's observable state around a step's records, through the
/// trait's reads (one line per read).
fn observe<S: Store>(s: &S, a: &TenantId) -> Result<Vec<String>, String> {
    let q = qkey(a, "dev1", None);
    let q2 = qkey(a, "dev1", Some("u"));
    Ok(vec![
        format!("{:?}", s.devices(a, "alice").map_err(e("devices"))?),
        format!("{:?}", s.activation(a, &id(1)).map_err(e("activation"))?),
        format!("{:?}", s.activation(a, &id(2)).map_err(e("activation"))?),
        format!(
            "{:?}",
            s.device_activations(a).map_err(e("device_activations"))?
        ),
        format!(
            "{:?}",
            s.challenge(a, &Secret::new("c1").digest())
                .map_err(e("challenge"))?
        ),
        format!(
            "{:?}",
            s.challenge(a, &Secret::new("c2").digest())
                .map_err(e("challenge"))?
        ),
        format!("{:?}", s.identity(&fp(1)).map_err(e("identity"))?),
        format!("{:?}", s.identity(&fp(2)).map_err(e("identity"))?),
        format!("{:?}", s.pending(&q).map_err(e("pending"))?),
        format!("{:?}", s.results(&q).map_err(e("results"))?),
        format!("{:?}", s.pending(&q2).map_err(e("pending"))?),
        format!("{:?}", s.connection(&q).map_err(e("connection"))?),
        format!(
            "{:?}",
            s.certificate_by_fingerprint(&fp(1))
                .map_err(e("certificate_by_fingerprint"))?
        ),
        format!(
            "{:?}",
            s.certificate_by_serial(&[0x01, 1])
                .map_err(e("certificate_by_serial"))?
        ),
    ])
}

/// Records a step of [`step_writes`] builds on, and the step: one write of
/// every kind.
fn step_fixture<S: Store>(s: &S, a: &TenantId) -> Result<Vec<Write>, String> {
    s.put_user(&user(a, "alice")).map_err(e("put_user"))?;
    s.claim_device(a, "alice", "dev0", None)
        .map_err(e("claim_device"))?;
    let first = activation(a, 1)?;
    s.insert_activation(&first)
        .map_err(e("insert_activation"))?;
    s.insert_challenge(&challenge(a, "c1", 60))
        .map_err(e("insert_challenge"))?;
    s.bind_identity(&binding(a, 2, "dev0"))
        .map_err(e("bind_identity"))?;
    let q = qkey(a, "dev1", None);
    let q2 = qkey(a, "dev1", Some("u"));
    for n in 1..=2 {
        s.enqueue(&q, &command(n)).map_err(e("enqueue"))?;
    }
    s.enqueue(&q2, &command(9)).map_err(e("enqueue"))?;
    let mut moved = first.clone();
    moved.language = Some("fr".into());
    Ok(vec![
        Write::ConsumeChallenge {
            tenant: a.clone(),
            digest: Secret::new("c1").digest(),
            now: t0(),
        },
        Write::ClaimDevice {
            tenant: a.clone(),
            username: "alice".into(),
            device_id: "dev1".into(),
            max: Some(5),
        },
        Write::InsertChallenge(challenge(a, "c2", 60)),
        Write::RecordCertificate(certificate(a, 1, 1)),
        Write::BindIdentity(binding(a, 1, "dev1")),
        Write::SetDeviceActivation {
            tenant: a.clone(),
            device_id: "dev1".into(),
            activation: id(1),
        },
        Write::Enqueue(q.clone(), command(3)),
        Write::MarkDelivered(q.clone(), uuid("cmd-1"), t0()),
        Write::FinishCommand(q.clone(), result(1)),
        Write::DeferCommand(q.clone(), uuid("cmd-2")),
        Write::PruneResults(q.clone(), 1),
        Write::RetireIdentity {
            fingerprint: fp(2),
            tenant: a.clone(),
        },
        Write::ReleaseDevice {
            tenant: a.clone(),
            username: "alice".into(),
            device_id: "dev0".into(),
        },
        Write::InsertActivation(Arc::new(activation(a, 2)?)),
        Write::ClearQueue(q2),
        Write::UpdateActivation {
            activation: Arc::new(moved),
            expected: 1,
        },
        Write::SetConnection(q, session(7)),
    ])
}

fn step_all_or_nothing<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    let writes = step_fixture(s, &a)?;
    let before = observe(s, &a)?;
    // A write that fails on every store: there is no activation 99.
    let failing = Write::UpdateActivation {
        activation: Arc::new(activation(&a, 99)?),
        expected: 1,
    };
    for k in 0..=writes.len() {
        let mut step = writes.clone();
        step.insert(k, failing.clone());
        match s.apply(&step) {
            Ok(_) => return Err(format!("a step failing at write {k} was applied")),
            Err(StepFailed {
                index,
                error: StoreError::NotFound,
            }) if index == k => {}
            Err(other) => {
                return Err(format!(
                    "a step failing at write {k}: expected NotFound at {k}, got {other:?}"
                ));
            }
        }
        let after = observe(s, &a)?;
        for (was, is) in before.iter().zip(&after) {
            ensure!(
                was == is,
                "a failure after {k} writes of the step left a change: {was} became {is}"
            );
        }
    }
    let applied = s
        .apply(&writes)
        .map_err(|f| format!("the whole step, after the failed ones: {f:?}"))?;
    ensure!(
        applied.len() == writes.len(),
        "{} results for {} writes",
        applied.len(),
        writes.len()
    );
    let expect = |i: usize, want: &dyn Fn(&Applied) -> bool| -> Result<(), String> {
        let got = applied.get(i);
        ensure!(
            got.is_some_and(want),
            "write {i} ({:?}): result {got:?}",
            writes.get(i)
        );
        Ok(())
    };
    expect(0, &|r| matches!(r, Applied::Consumed(c) if c.consumed))?;
    expect(1, &|r| *r == Applied::Claimed(true))?;
    expect(5, &|r| *r == Applied::Previous(None))?;
    expect(7, &|r| *r == Applied::Delivered(true))?;
    expect(9, &|r| *r == Applied::Deferred(1))?;
    expect(11, &|r| *r == Applied::Retired(true))?;
    expect(14, &|r| *r == Applied::Cleared(vec![uuid("cmd-9")]))?;
    expect(15, &|r| *r == Applied::Version(2))?;
    let devices = s.devices(&a, "alice").map_err(e("devices"))?;
    ensure!(devices == ["dev1"], "devices after the step: {devices:?}");
    let pending = s.pending(&qkey(&a, "dev1", None)).map_err(e("pending"))?;
    let uuids: Vec<_> = pending.iter().map(|c| c.uuid.as_str()).collect();
    ensure!(
        uuids == ["cmd-2", "cmd-3"],
        "queue after the step: {uuids:?}"
    );
    // Applying the step again fails at its first write and changes nothing.
    let done = observe(s, &a)?;
    match s.apply(&writes) {
        Err(StepFailed {
            index: 0,
            error: StoreError::ChallengeConsumed,
        }) => {}
        other => return Err(format!("the step applied twice: {other:?}")),
    }
    ensure!(
        observe(s, &a)? == done,
        "a refused replay changed the store"
    );
    Ok(())
}

fn step_race<S: Store>(s: &S) -> Result<(), String> {
    let a = tenant("a");
    s.put_user(&user(&a, "alice")).map_err(e("put_user"))?;
    s.insert_challenge(&challenge(&a, "c1", 60))
        .map_err(e("insert_challenge"))?;
    // Each racer claims its own device, then consumes the one challenge:
    // the losers' claims must not stay counted.
    let outcomes = race(s, |s, i| {
        s.apply(&[
            Write::ClaimDevice {
                tenant: a.clone(),
                username: "alice".into(),
                device_id: format!("d{i}"),
                max: None,
            },
            Write::ConsumeChallenge {
                tenant: a.clone(),
                digest: Secret::new("c1").digest(),
                now: t0(),
            },
        ])
    });
    let winners = settle("racing steps over one challenge", &outcomes, 1, |f| {
        f.index == 1 && matches!(f.error, StoreError::ChallengeConsumed)
    })?;
    let counted = s.devices(&a, "alice").map_err(e("devices"))?;
    let expected: Vec<String> = winners.iter().map(|i| format!("d{i}")).collect();
    ensure!(
        counted == expected,
        "devices counted {counted:?}, only the winner's {expected:?}"
    );
    Ok(())
}

fn session(n: usize) -> Connection {
    Connection {
        skip: vec![uuid(format!("cmd-{n}"))],
        last_sent: Some(uuid(format!("cmd-{}", n + 1))),
    }
}

fn connection_per_channel<S: Store>(s: &S) -> Result<(), String> {
    let (a, b) = (tenant("a"), tenant("b"));
    let keys = [
        qkey(&a, "dev1", None),
        qkey(&a, "dev1", Some("u")),
        qkey(&a, "dev2", None),
        qkey(&b, "dev1", None),
    ];
    for k in &keys {
        let c = s.connection(k).map_err(e("connection"))?;
        ensure!(c == Connection::default(), "{k:?} starts with {c:?}");
    }
    for (n, k) in keys.iter().enumerate() {
        s.set_connection(k, &session(n))
            .map_err(e("set_connection"))?;
    }
    for (n, k) in keys.iter().enumerate() {
        let c = s.connection(k).map_err(e("connection"))?;
        ensure!(c == session(n), "{k:?}: {c:?}, stored {:?}", session(n));
    }
    s.set_connection(&keys[0], &session(9))
        .map_err(e("set_connection"))?;
    let c = s.connection(&keys[0]).map_err(e("connection"))?;
    ensure!(c == session(9), "the last write did not win: {c:?}");
    // Clearing a channel's queue ends its session, and only its.
    s.enqueue(&keys[0], &command(1)).map_err(e("enqueue"))?;
    s.clear_queue(&keys[0]).map_err(e("clear_queue"))?;
    let c = s.connection(&keys[0]).map_err(e("connection"))?;
    ensure!(c == Connection::default(), "cleared queue kept {c:?}");
    for (n, k) in keys.iter().enumerate().skip(1) {
        let c = s.connection(k).map_err(e("connection"))?;
        ensure!(
            c == session(n),
            "clearing another channel changed {k:?}: {c:?}"
        );
    }
    Ok(())
}

/// Run the [`DeclarationStore`](super::DeclarationStore) checks, each on a
/// fresh store from `factory`: documents are kept per tenant, device,
/// user channel and slot, the last write wins, and the typed set and
/// status methods read back what was written.
pub fn run_declarations<S: super::DeclarationStore, F: Fn() -> S>(factory: F) -> ConformanceReport {
    let checks: Vec<Check<S>> = vec![
        ("ddm_documents_per_channel", ddm_documents_per_channel),
        ("ddm_typed_round_trip", ddm_typed_round_trip),
    ];
    run_checks(checks, factory)
}

fn ddm_documents_per_channel<S: super::DeclarationStore>(s: &S) -> Result<(), String> {
    use super::DdmSlot;
    let (a, b) = (tenant("a"), tenant("b"));
    let keys = [
        qkey(&a, "dev1", None),
        qkey(&a, "dev1", Some("u")),
        qkey(&a, "dev2", None),
        qkey(&b, "dev1", None),
    ];
    let slots = [DdmSlot::Declarations, DdmSlot::Statuses];
    for k in &keys {
        for slot in slots {
            let d = s.ddm_document(k, slot).map_err(e("ddm_document"))?;
            ensure!(d.is_none(), "{k:?} {slot:?} starts with {d:?}");
        }
    }
    let doc = |n: usize, slot: DdmSlot| {
        format!(
            "{{\"n\":{n},\"slot\":\"{}\",\"é\":\"\\u0000\"}}",
            slot.as_str()
        )
    };
    for (n, k) in keys.iter().enumerate() {
        for slot in slots {
            s.put_ddm_document(k, slot, &doc(n, slot))
                .map_err(e("put_ddm_document"))?;
        }
    }
    for (n, k) in keys.iter().enumerate() {
        for slot in slots {
            let d = s.ddm_document(k, slot).map_err(e("ddm_document"))?;
            ensure!(d == Some(doc(n, slot)), "{k:?} {slot:?}: {d:?}");
        }
    }
    s.put_ddm_document(&keys[0], DdmSlot::Statuses, "[]")
        .map_err(e("put_ddm_document"))?;
    let d = s
        .ddm_document(&keys[0], DdmSlot::Statuses)
        .map_err(e("ddm_document"))?;
    ensure!(
        d.as_deref() == Some("[]"),
        "the last write did not win: {d:?}"
    );
    let d = s
        .ddm_document(&keys[0], DdmSlot::Declarations)
        .map_err(e("ddm_document"))?;
    ensure!(
        d == Some(doc(0, DdmSlot::Declarations)),
        "another slot changed: {d:?}"
    );
    Ok(())
}

fn ddm_typed_round_trip<S: super::DeclarationStore>(s: &S) -> Result<(), String> {
    use crate::ddm::{
        Declaration, DeclarationKind, DeclarationPayload, DeclarationSet, DeclarationStatus,
        ServerToken, StatusReason, Validity,
    };
    let k = qkey(&tenant("a"), "dev1", None);
    ensure!(
        s.declarations(&k).map_err(e("declarations"))?.is_none(),
        "a set before any was stored"
    );
    let mut set = DeclarationSet::new();
    for (id, payload) in [
        (
            "x.activation",
            DeclarationPayload::ActivationSimple {
                standard_configurations: vec!["x.test".into()],
                predicate: None,
            },
        ),
        (
            "x.test",
            DeclarationPayload::ManagementTest {
                echo: "hello".into(),
                return_status: None,
            },
        ),
    ] {
        set.insert(Declaration::new(id, payload).map_err(e("declaration"))?);
    }
    let stored = super::StoredDeclarations {
        set,
        changed_at: t0(),
        initial: vec!["x.activation".into(), "x.test".into()],
    };
    s.put_declarations(&k, &stored)
        .map_err(e("put_declarations"))?;
    let back = s.declarations(&k).map_err(e("declarations"))?;
    ensure!(back.as_ref() == Some(&stored), "read back {back:?}");
    let back = back.ok_or("no set")?;
    ensure!(
        back.set.declarations_token() == stored.set.declarations_token(),
        "the DeclarationsToken changed in the store"
    );
    let status = |id: &str, token: &str, valid: Validity| -> Result<DeclarationStatus, String> {
        Ok(DeclarationStatus {
            kind: DeclarationKind::Configuration,
            identifier: id.into(),
            server_token: ServerToken::new(token).map_err(e("token"))?,
            active: valid == Validity::Valid,
            valid,
            reasons: if valid == Validity::Invalid {
                vec![StatusReason {
                    code: "Error.Test".into(),
                    description: Some("why".into()),
                    details: None,
                }]
            } else {
                Vec::new()
            },
        })
    };
    let first = vec![
        status("x.test", "t1", Validity::Invalid)?,
        status("x.other", "t2", Validity::Valid)?,
    ];
    s.merge_declaration_statuses(&k, &first)
        .map_err(e("merge_declaration_statuses"))?;
    let merged = s
        .merge_declaration_statuses(&k, &[status("x.test", "t3", Validity::Valid)?])
        .map_err(e("merge_declaration_statuses"))?;
    let read = s
        .declaration_statuses(&k)
        .map_err(e("declaration_statuses"))?;
    ensure!(read == merged, "read {read:?}, merged {merged:?}");
    ensure!(
        read.len() == 2,
        "merge lost or duplicated an entry: {read:?}"
    );
    let t = read
        .iter()
        .find(|s| s.identifier == "x.test")
        .ok_or("x.test")?;
    ensure!(
        t.server_token.as_str() == "t3" && t.valid == Validity::Valid && t.reasons.is_empty(),
        "the newer status did not replace the older: {t:?}"
    );
    ensure!(
        read.iter().any(|s| s.identifier == "x.other"),
        "an unreported declaration was dropped"
    );
    let other = qkey(&tenant("b"), "dev1", None);
    ensure!(
        s.declaration_statuses(&other)
            .map_err(e("declaration_statuses"))?
            .is_empty(),
        "statuses leaked across tenants"
    );
    Ok(())
}
