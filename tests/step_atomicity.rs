//! Every step of the engine commits its writes as one unit: a crash just
//! before a step's commit (simulated by a write that fails after all of the
//! step's writes) leaves the store exactly as before the step, and the device
//! can repeat the request: a consumed challenge never outlives a step that
//! did not finish.
#![cfg(feature = "test-support")]

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::*;
use mdm_enroll::service::{EngineConfig, ServiceError};
use mdm_enroll::store::*;
use mdm_enroll::testing::{EvidenceDevice, engine_with_alice};
use rand_core::UnwrapErr;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

/// The store's snapshots before and after the crashed step, and its number of writes.
type Around = (Vec<String>, Vec<String>, usize);

/// A [`MemoryStore`] whose `crash_at`-th step (1-based) fails after all its
/// writes, before the commit; it keeps the store's snapshots around it.
#[derive(Default)]
struct Crashing {
    inner: MemoryStore,
    steps: AtomicUsize,
    crash_at: AtomicUsize,
    around: Mutex<Option<Around>>,
}

impl StepStore for Crashing {
    fn apply(&self, writes: &[Write]) -> Result<Vec<Applied>, StepFailed> {
        let n = self.steps.fetch_add(1, Ordering::SeqCst) + 1;
        if n != self.crash_at.load(Ordering::SeqCst) {
            return self.inner.apply(writes);
        }
        let before = self.inner.snapshot();
        let mut crashing = writes.to_vec();
        // No challenge has this digest: the write fails on every store.
        crashing.push(Write::ConsumeChallenge {
            tenant: TenantId::new("nowhere").unwrap(),
            digest: Secret::new("crash").digest(),
            now: t0(),
        });
        let outcome = self.inner.apply(&crashing);
        *self.around.lock().unwrap() = Some((before, self.inner.snapshot(), writes.len()));
        outcome.map(|_| unreachable!("a crashing step committed"))
    }
}

macro_rules! delegate {
    ($($tr:ident { $(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* })*) => {
        $(impl $tr for Crashing {
            $(fn $name(&self $(, $arg: $ty)*) -> $ret { self.inner.$name($($arg),*) })*
        })*
    };
}

delegate! {
    UserStore {
        fn put_user(&self, u: &UserAccount) -> Result<(), StoreError>;
        fn user(&self, t: &TenantId, u: &str) -> Result<Option<UserAccount>, StoreError>;
        fn claim_device(&self, t: &TenantId, u: &str, d: &str, m: Option<u32>) -> Result<bool, StoreError>;
        fn release_device(&self, t: &TenantId, u: &str, d: &str) -> Result<(), StoreError>;
        fn devices(&self, t: &TenantId, u: &str) -> Result<Vec<String>, StoreError>;
    }
    ActivationStore {
        fn insert_activation(&self, a: &Activation) -> Result<(), StoreError>;
        fn activation(&self, t: &TenantId, i: &ActivationId) -> Result<Option<Versioned<Activation>>, StoreError>;
        fn update_activation(&self, a: &Activation, v: u64) -> Result<u64, StoreError>;
        fn device_activation(&self, t: &TenantId, d: &str) -> Result<Option<ActivationId>, StoreError>;
        fn set_device_activation(&self, t: &TenantId, d: &str, i: &ActivationId) -> Result<Option<ActivationId>, StoreError>;
        fn device_activations(&self, t: &TenantId) -> Result<Vec<(String, ActivationId)>, StoreError>;
    }
    ChallengeStore {
        fn insert_challenge(&self, r: &ChallengeRecord) -> Result<(), StoreError>;
        fn challenge(&self, t: &TenantId, d: &ChallengeDigest) -> Result<Option<ChallengeRecord>, StoreError>;
        fn consume_challenge(&self, t: &TenantId, d: &ChallengeDigest, n: SystemTime) -> Result<ChallengeRecord, StoreError>;
    }
    BindingStore {
        fn bind_identity(&self, b: &Binding) -> Result<(), StoreError>;
        fn identity(&self, f: &CertFingerprint) -> Result<Option<Binding>, StoreError>;
        fn retire_identity(&self, f: &CertFingerprint, t: &TenantId) -> Result<(), StoreError>;
    }
    QueueStore {
        fn enqueue(&self, k: &QueueKey, c: &QueuedCommand) -> Result<(), StoreError>;
        fn pending(&self, k: &QueueKey) -> Result<Vec<QueuedCommand>, StoreError>;
        fn defer_command(&self, k: &QueueKey, u: &CommandUuid) -> Result<u32, StoreError>;
        fn finish_command(&self, k: &QueueKey, r: &CommandResult) -> Result<(), StoreError>;
        fn mark_delivered(&self, k: &QueueKey, u: &CommandUuid, a: SystemTime) -> Result<(), StoreError>;
        fn claim_delivery(&self, k: &QueueKey, u: &CommandUuid, a: SystemTime, l: Duration) -> Result<Claim, StoreError>;
        fn cancel_command(&self, k: &QueueKey, u: &CommandUuid) -> Result<Cancellation, StoreError>;
        fn clear_queue(&self, k: &QueueKey) -> Result<Vec<CommandUuid>, StoreError>;
        fn results(&self, k: &QueueKey) -> Result<Vec<CommandResult>, StoreError>;
        fn prune_results(&self, k: &QueueKey, n: usize) -> Result<(), StoreError>;
        fn connection(&self, k: &QueueKey) -> Result<Connection, StoreError>;
        fn set_connection(&self, k: &QueueKey, c: &Connection) -> Result<(), StoreError>;
    }
    CertificateStore {
        fn record_certificate(&self, c: &IssuedCertificate) -> Result<(), StoreError>;
        fn certificate_by_fingerprint(&self, f: &CertFingerprint) -> Result<Option<IssuedCertificate>, StoreError>;
        fn certificate_by_serial(&self, s: &[u8]) -> Result<Option<IssuedCertificate>, StoreError>;
    }
    PushStore {
        fn push_state(&self, k: &QueueKey) -> Result<Option<PushState>, StoreError>;
        fn record_push(&self, k: &QueueKey, a: SystemTime, n: Option<SystemTime>) -> Result<PushState, StoreError>;
        fn record_push_response(&self, k: &QueueKey, s: u16, r: Option<&str>, i: bool, a: SystemTime) -> Result<(), StoreError>;
        fn record_answer(&self, k: &QueueKey, n: Option<SystemTime>) -> Result<(), StoreError>;
        fn record_token_update(&self, k: &QueueKey) -> Result<(), StoreError>;
        fn due_pushes(&self, t: &TenantId, n: SystemTime) -> Result<Vec<QueueKey>, StoreError>;
    }
}

/// Crash each step of a whole activation in turn: the crashed step changed
/// nothing, whichever step it was.
#[test]
fn a_crash_before_any_steps_commit_leaves_the_store_as_before() {
    let tenant = TenantId::new("customer-a").unwrap();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let mut crashed_steps = Vec::new();
    for crash_at in 1.. {
        let store = Crashing::default();
        store.crash_at.store(crash_at, Ordering::SeqCst);
        let (engine, login) = engine_with_alice(store, &tenant, EngineConfig::default()).unwrap();
        let mut dev = EvidenceDevice::random(&mut rng);
        let outcome = dev.activate(&engine, &tenant, &login, t0(), &mut rng);
        let around = engine.store().around.lock().unwrap().take();
        let Some((before, after, writes)) = around else {
            outcome.expect("no crash: the activation completes");
            break;
        };
        assert!(
            outcome.is_err(),
            "step {crash_at} crashed yet the activation completed"
        );
        assert_eq!(
            before, after,
            "step {crash_at} ({writes} writes) left a change"
        );
        crashed_steps.push(writes);
    }
    // The activation has steps of several writes, each crashed once.
    assert!(crashed_steps.len() >= 8, "{crashed_steps:?}");
    assert!(crashed_steps.iter().any(|&w| w >= 4), "{crashed_steps:?}");
}

/// The lock-out the issue describes: a crash while the device's attributes
/// are handled (challenge consumed, slot claimed, SCEP challenge issued,
/// activation moved on) leaves the Profile Service challenge usable, so the
/// device's retry succeeds.
#[test]
fn the_device_retries_its_attributes_after_a_crash() {
    let tenant = TenantId::new("customer-a").unwrap();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let (engine, login) =
        engine_with_alice(Crashing::default(), &tenant, EngineConfig::default()).unwrap();
    let mut dev = EvidenceDevice::random(&mut rng);
    let id = engine
        .login(&tenant, &login, t0(), &mut rng)
        .unwrap()
        .value
        .activation;
    dev.activation = Some(id.clone());
    let challenge = engine
        .request_activation(&tenant, &id, true, None, t0(), &mut rng)
        .unwrap()
        .value;
    let store = engine.store();
    store
        .crash_at
        .store(store.steps.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
    let crashed = engine.device_attributes(&tenant, dev.attributes(&challenge), t0(), &mut rng);
    assert_eq!(
        crashed.unwrap_err(),
        ServiceError::Store(StoreError::NotFound)
    );
    let (before, after, writes) = store.around.lock().unwrap().take().unwrap();
    assert!(writes >= 4, "the step has {writes} writes");
    assert_eq!(before, after);
    let record = store
        .challenge(&tenant, &challenge.digest())
        .unwrap()
        .unwrap();
    assert!(!record.consumed, "the crashed step consumed the challenge");
    assert!(store.devices(&tenant, "alice").unwrap().is_empty());
    let grant = engine
        .device_attributes(&tenant, dev.attributes(&challenge), t0(), &mut rng)
        .expect("the retry after the crash");
    assert_eq!(grant.value.activation, id);
    assert_eq!(store.devices(&tenant, "alice").unwrap(), [dev.udid.clone()]);
}
