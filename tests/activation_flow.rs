//! Steps 1–13 at the HTTP level: a simulated Mac (real RSA, CMS, SCEP and
//! Mdm-Signature) talks to `EnrollmentService::handle` through requests and
//! responses only. Negatives at each HTTP endpoint leave the store unchanged.
//!
//! RSA key generation dominates test time, so every key is 1024-bit and the
//! concurrency test shares a small pool of device keys (generated once)
//! between its devices: keys are not what it tests, distinct UDIDs,
//! challenges, certificates and bindings are.
#![cfg(feature = "test-support")]

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::{Activation, ActivationId};
use mdm_enroll::activation::{ActivationError, Phase, Step};
use mdm_enroll::crypto::RsaKey;
use mdm_enroll::http::{Method, Request, media_type};
use mdm_enroll::scep::FailInfo;
use mdm_enroll::service::{Event, EventKind};
use mdm_enroll::store::ActivationStore;
use mdm_enroll::testing::{
    CommandAnswer, DeviceError, Identity, SimulatedDevice, TestDeployment, TestDeviceCa,
};
use rand_core::UnwrapErr;

type Rng = UnwrapErr<getrandom::SysRng>;

fn rng() -> Rng {
    UnwrapErr(getrandom::SysRng)
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

const ALICE: (&str, &str, &str) = ("alice", "pw", "corp");

/// A pool of 1024-bit keys generated once per test binary.
fn keys() -> &'static [Arc<RsaKey>] {
    static KEYS: OnceLock<Vec<Arc<RsaKey>>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..6)
            .map(|_| Arc::new(RsaKey::generate(&mut rng(), 1024).unwrap()))
            .collect()
    })
}

fn key(i: usize) -> RsaKey {
    keys()[i].as_ref().clone()
}

struct Fx {
    d: TestDeployment,
    attributes: Identity,
}

fn fixture() -> Fx {
    let mut rng = rng();
    let d = TestDeployment::new(key(0), key(1), t0(), &mut rng).unwrap();
    let attributes = d
        .device_ca
        .issue(keys()[2].clone(), t0(), &mut rng)
        .unwrap();
    Fx { d, attributes }
}

impl Fx {
    fn device(&self, scep_key: usize) -> SimulatedDevice {
        SimulatedDevice::new(
            self.attributes.clone(),
            keys()[scep_key].clone(),
            self.d.server_certificate.clone(),
            &mut rng(),
        )
    }
}

fn load(fx: &Fx, id: &ActivationId) -> Activation {
    fx.d.service
        .engine()
        .store()
        .activation(&fx.d.tenant, id)
        .unwrap()
        .unwrap()
        .value
}

fn steps(events: &[Event]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Reached(s) => Some(s.number()),
            _ => None,
        })
        .collect()
}

#[test]
fn one_device_walks_steps_1_to_13_over_http() {
    let fx = fixture();
    let mut dev = fx.device(3);
    let mut events = Vec::new();
    let mut r = rng();
    let answered = {
        let mut t = fx.d.transport(t0(), &mut r, &mut events);
        dev.activate(&mut t, &fx.d.enroll_path(), ALICE, t0(), &mut rng())
            .unwrap()
    };
    // Every step, in order, once each (step 1 is reported at login).
    assert_eq!(steps(&events), (1..=13).collect::<Vec<u8>>());
    let types: Vec<&str> = answered.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["DeviceInformation", "SecurityInfo", "ProfileList"]);
    assert!(answered.iter().all(|(_, s)| s == "Acknowledged"));

    // Every event names the same activation, which the store holds Complete,
    // bound to the certificate SCEP issued for the device's own key.
    let id = events[0].activation.clone();
    assert!(events.iter().all(|e| e.activation == id));
    let stored = load(&fx, &id);
    assert_eq!(stored.phase, Phase::Complete);
    let cert = dev.identity().unwrap();
    cert.verify_issued_by(&fx.d.server_certificate).unwrap();
    let bound = stored.identity.as_ref().unwrap();
    assert_eq!(bound.serial, cert.serial());
    assert_eq!(stored.device.as_ref().unwrap().udid, dev.udid);
}

#[test]
fn wrong_password_is_403_and_stores_nothing() {
    let fx = fixture();
    let before = fx.d.service.engine().store().snapshot();
    let mut dev = fx.device(3);
    let mut events = Vec::new();
    let mut r = rng();
    let mut t = fx.d.transport(t0(), &mut r, &mut events);
    let err = dev
        .self_service(&mut t, &fx.d.enroll_path(), "alice", "nope", "corp")
        .unwrap_err();
    assert_eq!(
        err,
        DeviceError::Status {
            step: 4,
            status: 403
        }
    );
    let err = dev
        .self_service(&mut t, &fx.d.enroll_path(), "mallory", "pw", "corp")
        .unwrap_err();
    assert_eq!(
        err,
        DeviceError::Status {
            step: 4,
            status: 403
        }
    );
    drop(t);
    assert!(events.is_empty());
    assert_eq!(fx.d.service.engine().store().snapshot(), before);
}

#[test]
fn replayed_scep_challenge_gets_a_failure_certrep_a_resend_the_same_certificate() {
    let fx = fixture();
    let mut dev = fx.device(3);
    let mut events = Vec::new();
    let mut r = rng();
    let mut t = fx.d.transport(t0(), &mut r, &mut events);
    let svc = dev
        .self_service(&mut t, &fx.d.enroll_path(), "alice", "pw", "corp")
        .unwrap();
    dev.send_attributes(&mut t, &svc).unwrap();
    let issued = dev.scep_enroll(&mut t, t0(), &mut rng()).unwrap();
    drop(t);
    let before = fx.d.service.engine().store().snapshot();
    // The same challenge in another request (another key, so another CSR):
    // refused.
    let mut other = dev.clone();
    other.scep_key = keys()[4].clone();
    let mut t = fx.d.transport(t0(), &mut r, &mut events);
    assert_eq!(
        other.scep_enroll(&mut t, t0(), &mut rng()).unwrap_err(),
        DeviceError::ScepFailure(Some(FailInfo::BadRequest))
    );
    // The very same request again (the answer was lost): the same
    // certificate, nothing new issued or stored.
    let mut resend = dev.clone();
    let again = resend.scep_enroll(&mut t, t0(), &mut rng()).unwrap();
    assert_eq!(again.der(), issued.der());
    drop(t);
    assert_eq!(fx.d.service.engine().store().snapshot(), before);
    // And the device goes on with that identity.
    let mut t = fx.d.transport(t0(), &mut r, &mut events);
    resend.check_in(&mut t, "Authenticate").unwrap();
    resend.check_in(&mut t, "TokenUpdate").unwrap();
    assert_eq!(resend.run_commands(&mut t).unwrap().len(), 3);
}

#[test]
fn attributes_signed_by_an_untrusted_ca_are_refused() {
    let fx = fixture();
    let mut r = rng();
    let rogue = TestDeviceCa::new(key(4), t0(), &mut r).unwrap();
    let mut dev = fx.device(3);
    dev.attributes_identity = rogue.issue(keys()[5].clone(), t0(), &mut r).unwrap();
    let mut events = Vec::new();
    let mut r2 = rng();
    let mut t = fx.d.transport(t0(), &mut r2, &mut events);
    let svc = dev
        .self_service(&mut t, &fx.d.enroll_path(), "alice", "pw", "corp")
        .unwrap();
    let before = fx.d.service.engine().store().snapshot();
    // Keep the signed attributes the device sends, to replay them below.
    let mut sent = None;
    let mut spy = |req: Request| {
        sent = Some(req.clone());
        t(req)
    };
    assert_eq!(
        dev.send_attributes(&mut spy, &svc).unwrap_err(),
        DeviceError::Status {
            step: 6,
            status: 400
        }
    );
    drop(t);
    assert_eq!(fx.d.service.engine().store().snapshot(), before);
    // Through the driver, the same signed body is a typed bad request that
    // names the untrusted signer, not a policy error.
    let req = sent.expect("the device sent its attributes");
    let err =
        fx.d.service
            .profile_service(&fx.d.tenant, &req, t0(), &mut rng())
            .unwrap_err();
    assert!(
        matches!(
            &err,
            mdm_enroll::service::ServiceError::BadRequest(why)
                if why.starts_with("device attributes signed by an untrusted certificate")
        ),
        "{err:?}"
    );
    assert_eq!(fx.d.service.engine().store().snapshot(), before);
}

#[test]
fn checkin_signed_by_another_devices_identity_is_400() {
    let fx = fixture();
    let mut a = fx.device(3);
    let mut b = fx.device(4);
    let mut events = Vec::new();
    let mut r = rng();
    let mut t = fx.d.transport(t0(), &mut r, &mut events);
    for dev in [&mut a, &mut b] {
        let svc = dev
            .self_service(&mut t, &fx.d.enroll_path(), "alice", "pw", "corp")
            .unwrap();
        dev.send_attributes(&mut t, &svc).unwrap();
        dev.scep_enroll(&mut t, t0(), &mut rng()).unwrap();
        dev.check_in(&mut t, "Authenticate").unwrap();
    }
    drop(t);
    let before = fx.d.service.engine().store().snapshot();
    // B signs A's TokenUpdate (Migration-Assistant style identity reuse).
    let forged = b
        .mdm_request(media_type::CHECKIN, a.checkin_body("TokenUpdate").unwrap())
        .unwrap();
    let (resp, ev) = fx.d.service.handle(&forged, t0(), &mut rng());
    assert_eq!(resp.status, 400);
    assert!(ev.is_empty());
    // A tampered body under A's own signature is refused the same way.
    let mut tampered = a
        .mdm_request(media_type::CHECKIN, a.checkin_body("TokenUpdate").unwrap())
        .unwrap();
    let n = tampered.body.len() - 20;
    tampered.body[n] ^= 1;
    assert_eq!(
        fx.d.service.handle(&tampered, t0(), &mut rng()).0.status,
        400
    );
    assert_eq!(fx.d.service.engine().store().snapshot(), before);
    // A's own TokenUpdate still works afterwards.
    let mut t = fx.d.transport(t0(), &mut r, &mut events);
    a.check_in(&mut t, "TokenUpdate").unwrap();
}

#[test]
fn error_and_not_now_answers_are_handled() {
    let fx = fixture();
    let mut dev = fx
        .device(3)
        .answering("SecurityInfo", CommandAnswer::NotNow(2))
        .answering("ProfileList", CommandAnswer::Error);
    let mut events = Vec::new();
    let mut r = rng();
    let answered = {
        let mut t = fx.d.transport(t0(), &mut r, &mut events);
        dev.activate(&mut t, &fx.d.enroll_path(), ALICE, t0(), &mut rng())
            .unwrap()
    };
    let security: Vec<&str> = answered
        .iter()
        .filter(|(t, _)| t == "SecurityInfo")
        .map(|(_, s)| s.as_str())
        .collect();
    assert_eq!(security, ["NotNow", "NotNow", "Acknowledged"]);
    let id = events[0].activation.clone();
    let stored = load(&fx, &id);
    // ProfileList failed: the configuration did not apply.
    assert_eq!(stored.phase, Phase::ConfigurationFailed);
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ConfigurationFailed(ref v) if v.len() == 1))
    );
    assert!(!steps(&events).contains(&13));
}

#[test]
fn unknown_paths_and_foreign_tenants_are_refused() {
    let fx = fixture();
    let mut r = rng();
    let mut req = Request::new(Method::Post, "/t/acme/nowhere");
    assert_eq!(fx.d.service.handle(&req, t0(), &mut r).0.status, 404);
    req.path = "/t/globex/enroll".into();
    req.body = b"username=alice&password=pw&domain=corp".to_vec();
    assert_eq!(fx.d.service.handle(&req, t0(), &mut r).0.status, 403);
    let _ = ActivationError::BadCredentials;
}

/// 50 devices on 4 threads (sharing 4 pooled SCEP keys): every activation completes, no serial or
/// certificate is issued twice, every identity is bound to one device.
#[test]
fn fifty_devices_concurrently() {
    let fx = fixture();
    let devices: Vec<SimulatedDevice> = (0..50).map(|i| fx.device(2 + i % 4)).collect();
    let chunks: Vec<Vec<SimulatedDevice>> = devices.chunks(13).map(|c| c.to_vec()).collect();
    let results: Vec<(Vec<Event>, Vec<SimulatedDevice>)> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|mut chunk| {
                let d = &fx.d;
                s.spawn(move || {
                    let mut events = Vec::new();
                    let mut r = rng();
                    for dev in &mut chunk {
                        let mut t = d.transport(t0(), &mut r, &mut events);
                        dev.activate(&mut t, &d.enroll_path(), ALICE, t0(), &mut rng())
                            .unwrap();
                    }
                    (events, chunk)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let events: Vec<Event> = results.iter().flat_map(|(e, _)| e.clone()).collect();
    let done = events
        .iter()
        .filter(|e| e.kind == EventKind::Reached(Step::ConfigurationApplied))
        .count();
    assert_eq!(done, 50);
    let ids: HashSet<ActivationId> = events.iter().map(|e| e.activation.clone()).collect();
    assert_eq!(ids.len(), 50);
    let stored: Vec<Activation> = ids.iter().map(|id| load(&fx, id)).collect();
    assert!(stored.iter().all(|a| a.phase == Phase::Complete));
    let certs: Vec<Vec<u8>> = results
        .iter()
        .flat_map(|(_, devs)| devs.iter().map(|d| d.identity().unwrap().serial().to_vec()))
        .collect();
    assert_eq!(certs.iter().collect::<HashSet<_>>().len(), 50);
    let udids: HashSet<_> = stored
        .iter()
        .map(|a| a.device.as_ref().unwrap().udid.clone())
        .collect();
    assert_eq!(udids.len(), 50);
    let fps: HashSet<_> = stored
        .iter()
        .map(|a| a.identity.as_ref().unwrap().fingerprint)
        .collect();
    assert_eq!(fps.len(), 50, "no identity bound twice");
}
