//! 1,000 devices activated concurrently over one in-memory store on every
//! core: no lost report, no duplicate certificate serial, no double binding,
//! and racing replays of one challenge or one identity admit exactly one.
#![cfg(feature = "test-support")]

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::*;
use mdm_enroll::service::{Engine, EngineConfig, EventKind, ServiceError};
use mdm_enroll::store::{ActivationStore, BindingStore, CertificateStore, MemoryStore, QueueStore};
use mdm_enroll::testing::{EvidenceDevice, INITIAL_REQUEST_TYPES, RecordingPush, StaticDirectory};
use rand_core::UnwrapErr;

const DEVICES: usize = 1000;
const TENANTS: usize = 4;
const USERS: usize = 25;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

type Eng = Engine<MemoryStore, StaticDirectory, RecordingPush>;

fn engine() -> (Eng, Vec<TenantId>) {
    let dir = StaticDirectory::new();
    let tenants: Vec<TenantId> = (0..TENANTS)
        .map(|i| TenantId::new(format!("customer-{i}")).unwrap())
        .collect();
    let engine = Engine::new(
        MemoryStore::new(),
        dir,
        RecordingPush::new(),
        EngineConfig::default(),
    );
    for t in &tenants {
        for u in 0..USERS {
            let name = format!("user{u}");
            engine.directory().set_password(t, &name, "pw");
            engine
                .provision_user(&UserAccount {
                    tenant: t.clone(),
                    username: name,
                    domain: "corp".into(),
                    policy: Policy::default().with_max_devices(Some(1000)),
                })
                .unwrap();
        }
    }
    (engine, tenants)
}

#[test]
fn thousand_concurrent_activations() {
    let (engine, tenants) = engine();
    let engine = Arc::new(engine);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let per_thread = DEVICES.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let engine = Arc::clone(&engine);
            let tenants = tenants.clone();
            std::thread::spawn(move || {
                let mut rng = UnwrapErr(getrandom::SysRng);
                let mut done = Vec::new();
                for i in (t * per_thread)..((t + 1) * per_thread).min(DEVICES) {
                    let tenant = &tenants[i % TENANTS];
                    let login = LoginAttempt {
                        username: format!("user{}", i % USERS),
                        password: Secret::new("pw"),
                        domain: "corp".into(),
                    };
                    let mut dev = EvidenceDevice::random(&mut rng);
                    let events = dev
                        .activate(&engine, tenant, &login, t0(), &mut rng)
                        .unwrap();
                    let steps: Vec<u8> = events
                        .iter()
                        .filter_map(|e| match e.kind {
                            EventKind::Reached(s) => Some(s.number()),
                            _ => None,
                        })
                        .collect();
                    assert_eq!(steps, (1..=13).collect::<Vec<u8>>());
                    done.push((tenant.clone(), dev));
                }
                done
            })
        })
        .collect();
    let devices: Vec<(TenantId, EvidenceDevice)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(devices.len(), DEVICES);

    let store = engine.store();
    let mut serials = HashSet::new();
    let mut fingerprints = HashSet::new();
    for (tenant, dev) in &devices {
        let identity = dev.identity.clone().unwrap();
        // No duplicate serial: every device's certificate is recorded under its own serial.
        assert!(serials.insert(identity.serial.clone()));
        let cert = store
            .certificate_by_serial(&identity.serial)
            .unwrap()
            .unwrap();
        assert_eq!(cert.identity.fingerprint, identity.fingerprint);
        assert_eq!(Some(&cert.activation), dev.activation.as_ref());
        // No double binding: the identity is bound to exactly this device.
        assert!(fingerprints.insert(identity.fingerprint));
        let binding = store.identity(&identity.fingerprint).unwrap().unwrap();
        assert_eq!((&binding.tenant, &binding.device_id), (tenant, &dev.udid));
        assert!(!binding.retired);
        // No lost report: every initial command has exactly one stored result.
        let key = QueueKey {
            tenant: tenant.clone(),
            channel: dev.channel(),
        };
        let results = store.results(&key).unwrap();
        assert_eq!(results.len(), INITIAL_REQUEST_TYPES.len());
        assert!(
            results
                .iter()
                .all(|r| r.outcome == CommandOutcome::Acknowledged)
        );
        assert!(store.pending(&key).unwrap().is_empty());
        let act = store
            .activation(tenant, dev.activation.as_ref().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(act.value.phase, Phase::Complete);
    }
    assert_eq!(engine.push_sender().pushes().len(), DEVICES);
}

fn racers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2)
        * 4
}

#[test]
fn racing_replays_of_one_scep_challenge_admit_one() {
    let (engine, tenants) = engine();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let tenant = &tenants[0];
    let login = LoginAttempt {
        username: "user0".into(),
        password: Secret::new("pw"),
        domain: "corp".into(),
    };
    let id = engine
        .login(tenant, &login, t0(), &mut rng)
        .unwrap()
        .value
        .activation;
    let c = engine
        .request_activation(tenant, &id, true, None, t0(), &mut rng)
        .unwrap()
        .value;
    let dev = EvidenceDevice::random(&mut rng);
    let scep = engine
        .device_attributes(tenant, dev.attributes(&c), t0(), &mut rng)
        .unwrap()
        .value
        .scep_challenge;
    let n = racers();
    let barrier = Barrier::new(n);
    let results: Vec<Result<_, ServiceError>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    engine.authorize_scep(tenant, &scep, t0()).map(|_| ())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(matches!(
            r,
            Err(ServiceError::Activation(
                ActivationError::ChallengeReplayed | ActivationError::OutOfOrder { .. }
            )) | Err(ServiceError::Store(
                mdm_enroll::store::StoreError::VersionConflict { .. }
            ))
        ));
    }
    let act = engine.store().activation(tenant, &id).unwrap().unwrap();
    assert_eq!(act.value.phase, Phase::ScepAuthorized);
}

#[test]
fn racing_identical_authenticates_bind_the_device_once() {
    let (engine, tenants) = engine();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let tenant = &tenants[1];
    let login = LoginAttempt {
        username: "user1".into(),
        password: Secret::new("pw"),
        domain: "corp".into(),
    };
    // Walk one device to step 8, then let it and copies race to Authenticate.
    let mut dev = EvidenceDevice::random(&mut rng);
    let id = engine
        .login(tenant, &login, t0(), &mut rng)
        .unwrap()
        .value
        .activation;
    let c = engine
        .request_activation(tenant, &id, true, None, t0(), &mut rng)
        .unwrap()
        .value;
    let scep = engine
        .device_attributes(tenant, dev.attributes(&c), t0(), &mut rng)
        .unwrap()
        .value
        .scep_challenge;
    engine.authorize_scep(tenant, &scep, t0()).unwrap();
    let identity = EvidenceDevice::fresh_identity(&mut rng, t0());
    dev.identity = Some(identity.clone());
    engine
        .certificate_issued(tenant, &id, identity.clone(), t0())
        .unwrap();
    // A device with another UDID presenting the same identity is refused
    // even alone: the identity names its activation's device.
    let mut foreign = EvidenceDevice::random(&mut rng);
    foreign.identity = Some(identity.clone());
    let alone = engine.checkin(tenant, authenticate(&foreign), t0(), |_| Vec::new());
    assert!(
        matches!(
            alone,
            Err(ServiceError::Activation(ActivationError::DeviceMismatch))
        ),
        "{alone:?}"
    );
    // The race: identical Authenticates, each valid on its own. The first
    // to write wins; a racer that read the activation before that write
    // loses the versioned update, one that read after it is a repeated
    // Authenticate of the same device. Nothing else may happen.
    let n = racers();
    let barrier = Barrier::new(n);
    let results: Vec<Result<_, ServiceError>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let (engine, barrier, dev) = (&engine, &barrier, &dev);
                s.spawn(move || {
                    barrier.wait();
                    engine
                        .checkin(tenant, authenticate(dev), t0(), |_| Vec::new())
                        .map(|_| ())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().any(Result::is_ok), "{results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(
                r,
                Err(ServiceError::Store(
                    mdm_enroll::store::StoreError::VersionConflict { .. }
                ))
            ),
            "a racer lost other than by the versioned update: {r:?}"
        );
    }
    let act = engine.store().activation(tenant, &id).unwrap().unwrap();
    assert_eq!(act.value.phase, Phase::Authenticated);
    assert_eq!(
        engine.store().device_activation(tenant, &dev.udid).unwrap(),
        Some(id.clone())
    );
    let binding = engine
        .store()
        .identity(&identity.fingerprint)
        .unwrap()
        .unwrap();
    assert_eq!(binding.device_id, dev.udid);
    assert!(!binding.retired);
}

fn authenticate(dev: &EvidenceDevice) -> CheckinEvent {
    dev.checkin(CheckinMessage::Authenticate {
        topic: "t".into(),
        serial: None,
    })
}
