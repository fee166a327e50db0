//! Identity renewal at the HTTP level: a simulated Mac whose identity lives
//! 10 days (renewed 3 days before expiry) talks to
//! `EnrollmentService::handle` through requests and responses only; time is
//! passed in, so "later" is a larger `now`.
//!
//! Keys are 1024-bit and shared from a small pool (generated once): keys are
//! not what this tests.
#![cfg(feature = "test-support")]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::{
    Activation, ActivationError, ActivationId, CertFingerprint, Channel, CommandUuid, Phase, Secret,
};
use mdm_enroll::crypto::RsaKey;
use mdm_enroll::mdm::Command;
use mdm_enroll::scep::FailInfo;
use mdm_enroll::service::{Event, EventKind, NewCommand, RenewalPolicy, ServiceError};
use mdm_enroll::store::{ActivationStore, BindingStore};
use mdm_enroll::testing::{
    CommandAnswer, DeviceError, Identity, SimulatedDevice, TestDeployment, Transport,
};
use rand_core::UnwrapErr;

type Rng = UnwrapErr<getrandom::SysRng>;

fn rng() -> Rng {
    UnwrapErr(getrandom::SysRng)
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86400)
}

fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3600)
}

/// Due from day 7 (10-day identities, renewed 3 days ahead).
fn due() -> SystemTime {
    t0() + days(7) + hours(1)
}

const ALICE: (&str, &str, &str) = ("alice", "pw", "corp");

fn keys() -> &'static [Arc<RsaKey>] {
    static KEYS: OnceLock<Vec<Arc<RsaKey>>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..5)
            .map(|_| Arc::new(RsaKey::generate(&mut rng(), 1024).unwrap()))
            .collect()
    })
}

struct Fx {
    d: TestDeployment,
    attributes: Identity,
}

fn fixture(max_attempts: u32) -> Fx {
    let mut rng = rng();
    let key = |i: usize| keys()[i].as_ref().clone();
    let mut d = TestDeployment::new(key(0), key(1), t0(), &mut rng).unwrap();
    let config = d.service.config_mut();
    config.identity_lifetime = days(10);
    config.renewal = RenewalPolicy::new(days(3)).with_retries(days(1), hours(1), max_attempts);
    let attributes = d
        .device_ca
        .issue(keys()[2].clone(), t0(), &mut rng)
        .unwrap();
    Fx { d, attributes }
}

impl Fx {
    /// An activated Mac (steps 1–13 at `t0`) and its activation.
    fn activated(&self) -> (SimulatedDevice, ActivationId) {
        let mut dev = SimulatedDevice::new(
            self.attributes.clone(),
            keys()[3].clone(),
            self.d.server_certificate.clone(),
            &mut rng(),
        );
        let mut events = Vec::new();
        let mut r = rng();
        {
            let mut t = self.d.transport(t0(), &mut r, &mut events);
            dev.activate(&mut t, &self.d.enroll_path(), ALICE, t0(), &mut rng())
                .unwrap();
        }
        (dev, events[0].activation.clone())
    }

    fn load(&self, id: &ActivationId) -> Activation {
        self.d
            .service
            .engine()
            .store()
            .activation(&self.d.tenant, id)
            .unwrap()
            .unwrap()
            .value
    }

    /// Run `f` with a transport at `now`; returns its result and the events.
    fn at<T>(&self, now: SystemTime, f: impl FnOnce(&mut dyn Transport) -> T) -> (T, Vec<Event>) {
        let mut events = Vec::new();
        let mut r = rng();
        let value = {
            let mut t = self.d.transport(now, &mut r, &mut events);
            f(&mut t)
        };
        (value, events)
    }

    fn results(&self, dev: &SimulatedDevice) -> Vec<String> {
        self.d
            .service
            .engine()
            .results(&self.d.tenant, &Channel::device(dev.udid.clone()))
            .unwrap()
            .value
            .into_iter()
            .map(|r| r.request_type)
            .collect()
    }

    fn pushes(&self) -> usize {
        self.d.service.engine().push_sender().pushes().len()
    }
}

fn fingerprint(dev: &SimulatedDevice) -> CertFingerprint {
    CertFingerprint(dev.identity().unwrap().sha256_fingerprint())
}

fn kinds(events: &[Event]) -> Vec<&EventKind> {
    events.iter().map(|e| &e.kind).collect()
}

fn has(events: &[Event], want: impl Fn(&EventKind) -> bool) -> bool {
    events.iter().any(|e| want(&e.kind))
}

fn refused_400(result: Result<Vec<(String, String)>, DeviceError>) {
    assert_eq!(
        result.unwrap_err(),
        DeviceError::Status {
            step: 12,
            status: 400
        }
    );
}

#[test]
fn due_identity_is_renewed_on_idle_as_the_same_enrollment() {
    let fx = fixture(10);
    let (mut dev, id) = fx.activated();
    let old_device = dev.clone();
    let old = fingerprint(&dev);
    let old_challenge = dev.scep_challenge().unwrap().to_owned();

    // Not due yet: an Idle gets nothing.
    let (answered, events) = fx.at(t0() + days(6), |t| {
        dev.run_commands_renewing(t, t0(), &mut rng())
    });
    assert_eq!(answered.unwrap(), []);
    assert!(!has(&events, |k| matches!(
        k,
        EventKind::RenewalQueued { .. }
    )));

    // A command queued before the renewal and the results so far survive it.
    let engine = fx.d.service.engine();
    let channel = Channel::device(dev.udid.clone());
    let pushes = fx.pushes();
    engine
        .enqueue_command(
            &fx.d.tenant,
            &channel,
            &Command::new("kept-1", "CertificateList"),
            t0() + days(6),
        )
        .unwrap();
    let results_before = fx.results(&dev);
    assert_eq!(
        results_before,
        ["DeviceInformation", "SecurityInfo", "ProfileList"]
    );

    // Due: the next Idle gets the queued command, then the renewal.
    let (answered, events) = fx.at(due(), |t| dev.run_commands_renewing(t, due(), &mut rng()));
    let answered = answered.unwrap();
    assert_eq!(
        answered,
        [
            ("CertificateList".to_owned(), "Acknowledged".to_owned()),
            ("InstallProfile".to_owned(), "Acknowledged".to_owned())
        ]
    );
    assert!(has(&events, |k| *k == EventKind::RenewalQueued { attempt: 1 }));
    assert!(fx.pushes() > pushes + 1, "the renewal was pushed");
    let new = fingerprint(&dev);
    assert_ne!(new, old);
    assert!(has(&events, |k| *k == EventKind::IdentityRenewed { old, new }));
    // The profile carried a fresh challenge; the identity is the CA's.
    assert_ne!(dev.scep_challenge().unwrap(), old_challenge);
    dev.identity()
        .unwrap()
        .verify_issued_by(&fx.d.server_certificate)
        .unwrap();

    // The same enrollment: same activation, phase, queue and results.
    let stored = fx.load(&id);
    assert_eq!(stored.phase, Phase::Complete);
    assert_eq!(stored.identity.as_ref().unwrap().fingerprint, new);
    assert!(stored.renewal.is_none());
    assert!(stored.push.is_some(), "push target kept");
    let store = engine.store();
    assert_eq!(
        store.device_activation(&fx.d.tenant, &dev.udid).unwrap(),
        Some(id.clone())
    );
    assert_eq!(
        fx.results(&dev),
        [
            "DeviceInformation",
            "SecurityInfo",
            "ProfileList",
            "CertificateList",
            "InstallProfile"
        ]
    );
    assert!(store.identity(&old).unwrap().unwrap().retired);
    assert!(!store.identity(&new).unwrap().unwrap().retired);

    // The old identity is refused from now on (400, never 401).
    let mut old_device = old_device;
    let (result, _) = fx.at(due() + hours(1), |t| old_device.run_commands(t));
    refused_400(result);

    // The renewal challenge cannot be used twice, even with another key.
    let mut replay = dev.clone();
    replay.scep_key = keys()[4].clone();
    let (result, _) = fx.at(due() + hours(1), |t| {
        replay.scep_enroll(t, due(), &mut rng())
    });
    assert_eq!(
        result.unwrap_err(),
        DeviceError::ScepFailure(Some(FailInfo::BadRequest))
    );

    // Authenticate with the renewed identity is the same enrollment: no
    // re-enrollment, the queue is not cleared.
    engine
        .enqueue_command(
            &fx.d.tenant,
            &channel,
            &Command::new("kept-2", "CertificateList"),
            due(),
        )
        .unwrap();
    let (result, events) = fx.at(due() + hours(2), |t| {
        dev.check_in(t, "Authenticate")?;
        dev.check_in(t, "TokenUpdate")
    });
    result.unwrap();
    assert!(
        !has(&events, |k| *k == EventKind::ReEnrolled),
        "{:?}",
        kinds(&events)
    );
    let stored = fx.load(&id);
    assert_eq!(stored.phase, Phase::Complete);
    assert_eq!(stored.identity.as_ref().unwrap().fingerprint, new);
    let (answered, _) = fx.at(due() + hours(2), |t| dev.run_commands(t));
    assert_eq!(
        answered.unwrap(),
        [("CertificateList".to_owned(), "Acknowledged".to_owned())]
    );
    // Renewed 10 days from the renewal: not due again yet.
    let (answered, _) = fx.at(due() + days(5), |t| {
        dev.run_commands_renewing(t, due(), &mut rng())
    });
    assert_eq!(answered.unwrap(), []);
}

#[test]
fn device_answering_error_stays_managed_and_renews_on_retry() {
    let fx = fixture(10);
    let (dev, id) = fx.activated();
    let mut dev = dev.answering("InstallProfile", CommandAnswer::Error);
    let old = fingerprint(&dev);

    let (answered, events) = fx.at(due(), |t| dev.run_commands_renewing(t, due(), &mut rng()));
    assert_eq!(
        answered.unwrap(),
        [("InstallProfile".to_owned(), "Error".to_owned())]
    );
    assert!(has(&events, |k| *k == EventKind::RenewalFailed { attempt: 1 }));
    assert_eq!(fingerprint(&dev), old);
    // Still managed with the old identity.
    let (answered, _) = fx.at(due() + hours(0), |t| dev.run_commands(t));
    assert_eq!(answered.unwrap(), []);

    // Within the retry delay the sweep waits; after it, attempt 2 and a push.
    let sweep = |now| {
        fx.d.service
            .sweep_renewals(&fx.d.tenant, now, &mut rng())
            .unwrap()
    };
    let out = sweep(due() + Duration::from_secs(1800));
    assert_eq!(out.value.in_flight, [dev.udid.clone()]);
    assert!(out.value.queued.is_empty());
    let pushes = fx.pushes();
    let out = sweep(due() + hours(2));
    assert_eq!(out.value.queued, [(dev.udid.clone(), 2)]);
    assert_eq!(fx.pushes(), pushes + 1);

    dev.answers.remove("InstallProfile");
    let later = due() + hours(3);
    let (answered, events) = fx.at(later, |t| dev.run_commands_renewing(t, later, &mut rng()));
    assert_eq!(
        answered.unwrap(),
        [("InstallProfile".to_owned(), "Acknowledged".to_owned())]
    );
    assert!(has(&events, |k| matches!(
        k,
        EventKind::IdentityRenewed { .. }
    )));
    assert_ne!(fingerprint(&dev), old);
    assert_eq!(
        fx.load(&id).identity.unwrap().fingerprint,
        fingerprint(&dev)
    );
}

#[test]
fn silent_device_is_pushed_by_the_sweep_and_renews_when_it_connects() {
    let fx = fixture(10);
    let (mut dev, id) = fx.activated();
    let old = fingerprint(&dev);
    let sweep = |now| {
        fx.d.service
            .sweep_renewals(&fx.d.tenant, now, &mut rng())
            .unwrap()
    };
    assert!(sweep(t0() + days(6)).value.queued.is_empty());
    let pushes = fx.pushes();
    let out = sweep(due());
    assert_eq!(out.value.queued, [(dev.udid.clone(), 1)]);
    assert_eq!(fx.pushes(), pushes + 1, "the device is woken");
    // One renewal in flight: the next sweep queues nothing more.
    assert!(sweep(due() + hours(1)).value.queued.is_empty());
    // No answer within the timeout: attempt 2, with a fresh challenge.
    let out = sweep(due() + days(1) + hours(1));
    assert_eq!(out.value.queued, [(dev.udid.clone(), 2)]);
    let queue =
        fx.d.service
            .engine()
            .queue(&fx.d.tenant, &Channel::device(dev.udid.clone()))
            .unwrap()
            .value;
    assert_eq!(queue.len(), 2);

    // The device wakes: attempt 1's challenge is no longer accepted (that
    // install fails), attempt 2's is.
    let now = due() + days(1) + hours(2);
    let (answered, events) = fx.at(now, |t| dev.run_commands_renewing(t, now, &mut rng()));
    assert_eq!(
        answered.unwrap(),
        [
            ("InstallProfile".to_owned(), "Error".to_owned()),
            ("InstallProfile".to_owned(), "Acknowledged".to_owned())
        ]
    );
    assert!(has(&events, |k| matches!(
        k,
        EventKind::IdentityRenewed { .. }
    )));
    assert_ne!(fingerprint(&dev), old);
    assert_eq!(
        fx.load(&id).identity.unwrap().fingerprint,
        fingerprint(&dev)
    );
    assert!(fx.load(&id).renewal.is_none());
}

#[test]
fn both_identities_work_until_the_new_one_is_first_seen() {
    let fx = fixture(10);
    let (mut dev, id) = fx.activated();
    let old_device = dev.clone();
    let old = fingerprint(&dev);
    // The renewal is queued; the device installs it (SCEP issues the new
    // certificate) and then nothing reaches the server: its answer is lost.
    fx.d.service
        .sweep_renewals(&fx.d.tenant, due(), &mut rng())
        .unwrap();
    let queued =
        fx.d.service
            .engine()
            .queue(&fx.d.tenant, &Channel::device(dev.udid.clone()))
            .unwrap()
            .value;
    let cmd = Command::decode(&queued[0].body, &Default::default()).unwrap();
    let Some(plist::Value::Data(payload)) = cmd.params.get("Payload") else {
        panic!("InstallProfile without Payload");
    };
    let (issued, _) = fx.at(due(), |t| {
        dev.install_enrollment_update(t, payload, due(), &mut rng())
    });
    issued.unwrap();
    let new = fingerprint(&dev);
    let stored = fx.load(&id);
    assert_eq!(stored.identity.as_ref().unwrap().fingerprint, old);
    assert_eq!(stored.renewal.as_ref().unwrap().issued.len(), 1);

    // Meanwhile the old identity still works...
    let mut old_device = old_device;
    let now = due() + hours(1);
    let (answered, _) = fx.at(now, |t| old_device.run_commands(t));
    // (the undelivered renewal is delivered again; the old profile's
    // device acknowledges nothing it cannot install)
    assert!(answered.is_ok());
    // ...and the first request signed with the new one switches.
    let (answered, events) = fx.at(now, |t| dev.run_commands(t));
    answered.unwrap();
    assert!(has(&events, |k| *k == EventKind::IdentityRenewed { old, new }));
    assert_eq!(fx.load(&id).identity.unwrap().fingerprint, new);
    let (result, _) = fx.at(now, |t| old_device.run_commands(t));
    refused_400(result);
}

#[test]
fn renewal_budget_runs_out_with_an_event_and_expiry_is_reported() {
    let fx = fixture(2);
    let (dev, id) = fx.activated();
    let mut dev = dev.answering("InstallProfile", CommandAnswer::Error);
    let old = fingerprint(&dev);
    let mut all = Vec::new();
    for (i, now) in [due(), due() + hours(2), due() + hours(4)]
        .into_iter()
        .enumerate()
    {
        let out =
            fx.d.service
                .sweep_renewals(&fx.d.tenant, now, &mut rng())
                .unwrap();
        all.extend(out.events);
        if i < 2 {
            assert_eq!(out.value.queued, [(dev.udid.clone(), i as u32 + 1)]);
            let (answered, events) = fx.at(now, |t| dev.run_commands_renewing(t, now, &mut rng()));
            assert_eq!(answered.unwrap().len(), 1);
            all.extend(events);
        } else {
            assert_eq!(out.value.given_up, [dev.udid.clone()]);
        }
    }
    assert_eq!(
        all.iter()
            .filter(|e| e.kind == EventKind::RenewalGivenUp)
            .count(),
        1
    );
    // Still managed with the old identity until it expires.
    let (answered, _) = fx.at(due() + hours(5), |t| dev.run_commands(t));
    answered.unwrap();
    assert_eq!(fx.load(&id).identity.unwrap().fingerprint, old);
    let expired = t0() + days(10) + hours(1);
    let out =
        fx.d.service
            .sweep_renewals(&fx.d.tenant, expired, &mut rng())
            .unwrap();
    assert_eq!(out.value.expired, [dev.udid.clone()]);
    assert!(has(&out.events, |k| *k == EventKind::IdentityExpired));
    let again =
        fx.d.service
            .sweep_renewals(&fx.d.tenant, expired + hours(1), &mut rng())
            .unwrap();
    assert_eq!(again.value.expired, [dev.udid.clone()], "still listed");
    assert!(
        !has(&again.events, |k| *k == EventKind::IdentityExpired),
        "reported once"
    );
}

#[test]
fn one_renewal_in_flight_per_enrollment() {
    let fx = fixture(10);
    let (_dev, id) = fx.activated();
    let engine = fx.d.service.engine();
    let command = |n: &str| NewCommand {
        uuid: CommandUuid::new(n).unwrap(),
        request_type: "InstallProfile".into(),
        body: Command::install_profile(n, Vec::new()).encode().unwrap(),
    };
    let queue = |attempt, n: &str| {
        engine.queue_renewal(
            &fx.d.tenant,
            &id,
            attempt,
            &Secret::new(n),
            hours(1),
            command(n),
            due(),
        )
    };
    queue(1, "first").unwrap();
    for (attempt, n) in [(1, "second"), (3, "third")] {
        assert!(matches!(
            queue(attempt, n),
            Err(ServiceError::Activation(ActivationError::RenewalInFlight))
        ));
    }
    assert_eq!(
        fx.load(&id).renewal.unwrap().command,
        CommandUuid::new("first").unwrap()
    );
}
