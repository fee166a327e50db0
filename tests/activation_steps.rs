//! The thirteen steps at the evidence level: the step-numbered event sequence
//! of one activation, and at least two refused inputs per step, each a typed
//! error that leaves the store unchanged (or the documented outcome).
#![cfg(feature = "test-support")]

use std::time::{Duration, SystemTime};

use mdm_enroll::activation::*;
use mdm_enroll::service::{Engine, EngineConfig, EventKind, NewCommand, ServiceError};
use mdm_enroll::store::{
    ActivationStore, BindingStore, CertificateStore, MemoryStore, QueueStore, StoreError, UserStore,
};
use mdm_enroll::testing::{
    EvidenceDevice, INITIAL_REQUEST_TYPES, RecordingPush, StaticDirectory,
    placeholder_configuration,
};
use rand_core::UnwrapErr;

type Rng = UnwrapErr<getrandom::SysRng>;
type Eng = Engine<MemoryStore, StaticDirectory, RecordingPush>;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

struct Fx {
    engine: Eng,
    a: TenantId,
    b: TenantId,
    rng: Rng,
}

fn fixture(policy: Policy) -> Fx {
    fixture_with(policy, EngineConfig::default())
}

fn fixture_with(policy: Policy, config: EngineConfig) -> Fx {
    let a = TenantId::new("customer-a").unwrap();
    let b = TenantId::new("customer-b").unwrap();
    let dir = StaticDirectory::new();
    for t in [&a, &b] {
        dir.set_password(t, "alice", "pw");
    }
    let engine = Engine::new(MemoryStore::new(), dir, RecordingPush::new(), config);
    for t in [&a, &b] {
        engine
            .provision_user(&UserAccount {
                tenant: t.clone(),
                username: "alice".into(),
                domain: "corp".into(),
                policy: policy.clone(),
            })
            .unwrap();
    }
    Fx {
        engine,
        a,
        b,
        rng: UnwrapErr(getrandom::SysRng),
    }
}

fn attempt(user: &str, password: &str, domain: &str) -> LoginAttempt {
    LoginAttempt {
        username: user.into(),
        password: Secret::new(password),
        domain: domain.into(),
    }
}

fn login(fx: &mut Fx, tenant: &TenantId, password: &str) -> Result<ActivationId, ServiceError> {
    fx.engine
        .login(
            tenant,
            &attempt("alice", password, "corp"),
            t0(),
            &mut fx.rng,
        )
        .map(|o| o.value.activation)
}

/// An activation advanced through `step` (2, 4, 6, 7, 8, 9 or 10), with its device.
struct At {
    id: ActivationId,
    dev: EvidenceDevice,
    profile_challenge: Option<Secret>,
    scep_challenge: Option<Secret>,
}

fn advance(fx: &mut Fx, tenant: &TenantId, step: u8) -> At {
    let dev = EvidenceDevice::random(&mut fx.rng);
    advance_device(fx, tenant, step, dev)
}

fn advance_device(fx: &mut Fx, tenant: &TenantId, step: u8, mut dev: EvidenceDevice) -> At {
    let tenant = tenant.clone();
    let id = login(fx, &tenant, "pw").unwrap();
    dev.activation = Some(id.clone());
    let mut at = At {
        id: id.clone(),
        dev: dev.clone(),
        profile_challenge: None,
        scep_challenge: None,
    };
    if step < 4 {
        return at;
    }
    let c = fx
        .engine
        .request_activation(&tenant, &id, true, None, t0(), &mut fx.rng)
        .unwrap()
        .value;
    at.profile_challenge = Some(c.clone());
    if step < 6 {
        return at;
    }
    let g = fx
        .engine
        .device_attributes(&tenant, dev.attributes(&c), t0(), &mut fx.rng)
        .unwrap()
        .value;
    at.scep_challenge = Some(g.scep_challenge.clone());
    if step < 7 {
        return at;
    }
    fx.engine
        .authorize_scep(&tenant, &g.scep_challenge, t0())
        .unwrap();
    if step < 8 {
        return at;
    }
    let identity = EvidenceDevice::fresh_identity(&mut fx.rng, t0());
    dev.identity = Some(identity.clone());
    fx.engine
        .certificate_issued(&tenant, &id, identity, t0())
        .unwrap();
    at.dev = dev.clone();
    if step < 9 {
        return at;
    }
    authenticate(fx, &tenant, &dev).unwrap();
    if step < 10 {
        return at;
    }
    token_update(fx, &tenant, &dev).unwrap();
    at
}

fn authenticate(fx: &mut Fx, tenant: &TenantId, dev: &EvidenceDevice) -> Result<(), ServiceError> {
    fx.engine
        .checkin(
            tenant,
            dev.checkin(CheckinMessage::Authenticate {
                topic: "com.apple.mgmt.External.test".into(),
                serial: None,
            }),
            t0(),
            |_| Vec::new(),
        )
        .map(|_| ())
}

fn token_update(
    fx: &mut Fx,
    tenant: &TenantId,
    dev: &EvidenceDevice,
) -> Result<Vec<NewCommand>, ServiceError> {
    let config = placeholder_configuration(&mut fx.rng);
    let c2 = config.clone();
    fx.engine
        .checkin(
            tenant,
            dev.checkin(CheckinMessage::TokenUpdate {
                push: dev.push_target(),
                awaiting_configuration: None,
            }),
            t0(),
            move |_| c2,
        )
        .map(|_| config)
}

fn connect(
    fx: &Fx,
    tenant: &TenantId,
    dev: &EvidenceDevice,
    status: ReportStatus,
    uuid: Option<&CommandUuid>,
) -> Result<Option<QueuedCommand>, ServiceError> {
    fx.engine
        .connect(tenant, dev.report(status, uuid.cloned()), t0())
        .map(|o| o.value)
}

fn delivered(r: Result<Option<QueuedCommand>, ServiceError>) -> Option<CommandUuid> {
    r.unwrap().map(|c| c.uuid)
}

fn phase(fx: &Fx, tenant: &TenantId, id: &ActivationId) -> Phase {
    fx.engine
        .store()
        .activation(tenant, id)
        .unwrap()
        .unwrap()
        .value
        .phase
}

fn queue_is_empty(fx: &Fx, tenant: &TenantId, dev: &EvidenceDevice) -> bool {
    fx.engine
        .store()
        .pending(&key(tenant, dev))
        .unwrap()
        .is_empty()
}

fn key(tenant: &TenantId, dev: &EvidenceDevice) -> QueueKey {
    QueueKey {
        tenant: tenant.clone(),
        channel: dev.channel(),
    }
}

/// Assert `f` fails with `expected` and leaves the store exactly as it was.
fn refused<T: std::fmt::Debug>(
    fx: &mut Fx,
    expected: ActivationError,
    f: impl FnOnce(&mut Fx) -> Result<T, ServiceError>,
) {
    let before = fx.engine.store().snapshot();
    match f(fx) {
        Err(e) => assert_eq!(e, ServiceError::Activation(expected)),
        Ok(v) => panic!("expected {expected:?}, got Ok({v:?})"),
    }
    assert_eq!(
        fx.engine.store().snapshot(),
        before,
        "a refused input changed the store"
    );
}

#[test]
fn one_activation_reaches_all_thirteen_steps_in_order() {
    let mut fx = fixture(Policy::default());
    let mut dev = EvidenceDevice::random(&mut fx.rng);
    let tenant = fx.a.clone();
    let events = dev
        .activate(
            &fx.engine,
            &tenant,
            &attempt("alice", "pw", "corp"),
            t0(),
            &mut fx.rng,
        )
        .unwrap();
    let steps: Vec<u8> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Reached(s) => Some(s.number()),
            _ => None,
        })
        .collect();
    assert_eq!(steps, (1..=13).collect::<Vec<u8>>());
    let id = dev.activation.clone().unwrap();
    assert!(events.iter().all(|e| e.activation == id));
    assert_eq!(phase(&fx, &tenant, &id), Phase::Complete);
    let results = fx.engine.store().results(&key(&tenant, &dev)).unwrap();
    assert_eq!(
        results
            .iter()
            .map(|r| r.request_type.as_str())
            .collect::<Vec<_>>(),
        INITIAL_REQUEST_TYPES
    );
    assert!(
        results
            .iter()
            .all(|r| r.outcome == CommandOutcome::Acknowledged)
    );
    assert!(
        fx.engine
            .store()
            .pending(&key(&tenant, &dev))
            .unwrap()
            .is_empty()
    );
    let pushes = fx.engine.push_sender().pushes();
    assert_eq!(pushes.len(), 1, "TokenUpdate pushes the device once");
    assert_eq!(pushes[0].1, dev.channel());
    assert_eq!(pushes[0].2, dev.push_target());
}

// ---- step 1: account ------------------------------------------------------

#[test]
fn step1_tenant_ids_are_validated() {
    assert_eq!(TenantId::new(""), Err(ActivationError::InvalidTenant));
    assert_eq!(TenantId::new("a/b"), Err(ActivationError::InvalidTenant));
    assert_eq!(
        TenantId::new("x".repeat(65)),
        Err(ActivationError::InvalidTenant)
    );
    assert!(TenantId::new("Customer_1.eu-west").is_ok());
}

#[test]
fn step1_user_not_provisioned_cannot_log_in() {
    let mut fx = fixture(Policy::default());
    let t = fx.a.clone();
    fx.engine.directory().set_password(&t, "bob", "pw");
    refused(&mut fx, ActivationError::BadCredentials, |fx| {
        fx.engine
            .login(&t, &attempt("bob", "pw", "corp"), t0(), &mut fx.rng)
    });
}

// ---- step 2: login ----------------------------------------------------------

#[test]
fn step2_wrong_password_and_wrong_domain() {
    let mut fx = fixture(Policy::default());
    let t = fx.a.clone();
    refused(&mut fx, ActivationError::BadCredentials, |fx| {
        login(fx, &t, "PW")
    });
    refused(&mut fx, ActivationError::BadCredentials, |fx| {
        fx.engine
            .login(&t, &attempt("alice", "pw", "other"), t0(), &mut fx.rng)
    });
}

#[test]
fn step2_expired_activation_password() {
    let mut fx = fixture(Policy::default().with_password_expires(Some(t0())));
    let t = fx.a.clone();
    refused(&mut fx, ActivationError::PasswordExpired, |fx| {
        login(fx, &t, "pw")
    });
}

#[test]
fn step2_user_of_customer_a_at_customer_b() {
    let mut fx = fixture(Policy::default());
    let b = fx.b.clone();
    // Only tenant A knows carol.
    let a = fx.a.clone();
    fx.engine.directory().set_password(&a, "carol", "pw");
    fx.engine
        .provision_user(&UserAccount {
            tenant: a,
            username: "carol".into(),
            domain: "corp".into(),
            policy: Policy::default(),
        })
        .unwrap();
    refused(&mut fx, ActivationError::BadCredentials, |fx| {
        fx.engine
            .login(&b, &attempt("carol", "pw", "corp"), t0(), &mut fx.rng)
    });
}

// ---- step 3: activation request -------------------------------------------

#[test]
fn step3_notice_must_be_accepted() {
    let mut fx = fixture(
        Policy::default()
            .with_organisation_notice(Some("This Mac is managed by Example Corp.".into())),
    );
    let t = fx.a.clone();
    let grant = fx
        .engine
        .login(&t, &attempt("alice", "pw", "corp"), t0(), &mut fx.rng)
        .unwrap()
        .value;
    assert_eq!(
        grant.notice.as_deref(),
        Some("This Mac is managed by Example Corp.")
    );
    let id = grant.activation;
    refused(&mut fx, ActivationError::NoticeNotAccepted, |fx| {
        fx.engine
            .request_activation(&t, &id, false, None, t0(), &mut fx.rng)
    });
    assert!(
        fx.engine
            .request_activation(&t, &id, true, None, t0(), &mut fx.rng)
            .is_ok()
    );
}

#[test]
fn step3_twice_or_at_another_tenant() {
    let mut fx = fixture(Policy::default());
    let (a, b) = (fx.a.clone(), fx.b.clone());
    let at = advance(&mut fx, &a, 4);
    refused(
        &mut fx,
        ActivationError::OutOfOrder {
            step: Step::ActivationRequest,
            phase: Phase::ProfileServiceIssued,
        },
        |fx| {
            fx.engine
                .request_activation(&a, &at.id, true, None, t0(), &mut fx.rng)
        },
    );
    let fresh = login(&mut fx, &a, "pw").unwrap();
    refused(&mut fx, ActivationError::UnknownActivation, |fx| {
        fx.engine
            .request_activation(&b, &fresh, true, None, t0(), &mut fx.rng)
    });
}

// ---- step 4: the Profile Service challenge ----------------------------------

#[test]
fn step4_challenge_expires() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 4);
    let late = t0() + EngineConfig::default().profile_challenge_ttl;
    let attrs = at.dev.attributes(at.profile_challenge.as_ref().unwrap());
    refused(&mut fx, ActivationError::ChallengeExpired, |fx| {
        fx.engine.device_attributes(&a, attrs, late, &mut fx.rng)
    });
}

#[test]
fn step4_profile_challenge_is_not_a_scep_challenge() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 4);
    let c = at.profile_challenge.unwrap();
    refused(&mut fx, ActivationError::WrongChallenge, |fx| {
        fx.engine.authorize_scep(&a, &c, t0())
    });
}

// ---- step 5: device attributes ---------------------------------------------

#[test]
fn step5_device_of_customer_a_at_customer_b() {
    let mut fx = fixture(Policy::default());
    let (a, b) = (fx.a.clone(), fx.b.clone());
    let at = advance(&mut fx, &a, 4);
    let attrs = at.dev.attributes(at.profile_challenge.as_ref().unwrap());
    refused(&mut fx, ActivationError::UnknownChallenge, |fx| {
        fx.engine.device_attributes(&b, attrs, t0(), &mut fx.rng)
    });
}

#[test]
fn step5_missing_forged_or_phase3_challenge() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 4);
    let mut attrs = at.dev.attributes(at.profile_challenge.as_ref().unwrap());
    attrs.challenge = None;
    refused(&mut fx, ActivationError::MissingChallenge, |fx| {
        fx.engine.device_attributes(&a, attrs, t0(), &mut fx.rng)
    });
    let forged = at.dev.attributes(&Secret::new("guess"));
    refused(&mut fx, ActivationError::UnknownChallenge, |fx| {
        fx.engine.device_attributes(&a, forged, t0(), &mut fx.rng)
    });
    let mut phase3 = at.dev.attributes(at.profile_challenge.as_ref().unwrap());
    phase3.phase = AttributesPhase::ScepIdentity;
    refused(
        &mut fx,
        ActivationError::UnexpectedPhase(AttributesPhase::ScepIdentity),
        |fx| fx.engine.device_attributes(&a, phase3, t0(), &mut fx.rng),
    );
}

// ---- step 6: verification and policy ----------------------------------------

#[test]
fn step6_os_below_floor_and_model_not_allowed() {
    let mut fx = fixture(
        Policy::default()
            .with_min_os_version(Some(OsVersion::new(14, 2, 0)))
            .with_allowed_models(vec!["MacBookPro".into(), "Mac14,".into()]),
    );
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 4);
    let c = at.profile_challenge.clone().unwrap();
    let mut old = at.dev.attributes(&c);
    old.os_version = Some(OsVersion::new(13, 6, 0));
    refused(
        &mut fx,
        ActivationError::OsBelowFloor {
            floor: OsVersion::new(14, 2, 0),
            found: Some(OsVersion::new(13, 6, 0)),
            build: Some("23E214".into()),
        },
        |fx| fx.engine.device_attributes(&a, old, t0(), &mut fx.rng),
    );
    // Only a build, and its major (Darwin 22 = macOS 13) is below the floor.
    let mut build_only = at.dev.attributes(&c);
    build_only.os_version = None;
    build_only.build = Some("22A380".into());
    assert!(matches!(
        fx.engine
            .device_attributes(&a, build_only, t0(), &mut fx.rng),
        Err(ServiceError::Activation(
            ActivationError::OsBelowFloor { .. }
        ))
    ));
    let mut imac = at.dev.attributes(&c);
    imac.product = "iMac21,1".into();
    refused(
        &mut fx,
        ActivationError::ModelNotAllowed {
            product: "iMac21,1".into(),
        },
        |fx| fx.engine.device_attributes(&a, imac, t0(), &mut fx.rng),
    );
    // The refused attempts did not burn the challenge: the compliant device proceeds.
    let ok = at.dev.attributes(&c);
    assert!(
        fx.engine
            .device_attributes(&a, ok, t0(), &mut fx.rng)
            .is_ok()
    );
}

#[test]
fn step6_device_cap_reached() {
    let mut fx = fixture(Policy::default().with_max_devices(Some(1)));
    let a = fx.a.clone();
    let first = advance(&mut fx, &a, 6);
    let second = advance(&mut fx, &a, 4);
    let attrs = second
        .dev
        .attributes(second.profile_challenge.as_ref().unwrap());
    refused(
        &mut fx,
        ActivationError::DeviceCapReached { max: 1 },
        |fx| fx.engine.device_attributes(&a, attrs, t0(), &mut fx.rng),
    );
    // The same device re-activating does not count twice.
    let again = advance_device(&mut fx, &a, 6, first.dev.clone());
    assert_eq!(phase(&fx, &a, &again.id), Phase::DeviceVerified);
    assert_eq!(
        fx.engine.store().devices(&a, "alice").unwrap(),
        vec![first.dev.udid.clone()]
    );
}

#[test]
fn step6_replayed_profile_challenge() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 6);
    let attrs = at.dev.attributes(at.profile_challenge.as_ref().unwrap());
    refused(&mut fx, ActivationError::ChallengeReplayed, |fx| {
        fx.engine.device_attributes(&a, attrs, t0(), &mut fx.rng)
    });
    // Another device replaying it is refused the same way.
    let other = EvidenceDevice::random(&mut fx.rng);
    let attrs = other.attributes(at.profile_challenge.as_ref().unwrap());
    refused(&mut fx, ActivationError::ChallengeReplayed, |fx| {
        fx.engine.device_attributes(&a, attrs, t0(), &mut fx.rng)
    });
}

// ---- steps 7–8: SCEP ----------------------------------------------------------

#[test]
fn step7_unknown_replayed_and_cross_tenant_scep_challenge() {
    let mut fx = fixture(Policy::default());
    let (a, b) = (fx.a.clone(), fx.b.clone());
    let at = advance(&mut fx, &a, 6);
    let c = at.scep_challenge.clone().unwrap();
    refused(&mut fx, ActivationError::UnknownChallenge, |fx| {
        fx.engine.authorize_scep(&b, &c, t0())
    });
    refused(&mut fx, ActivationError::UnknownChallenge, |fx| {
        fx.engine.authorize_scep(&a, &Secret::new("nope"), t0())
    });
    fx.engine.authorize_scep(&a, &c, t0()).unwrap();
    refused(&mut fx, ActivationError::ChallengeReplayed, |fx| {
        fx.engine.authorize_scep(&a, &c, t0())
    });
}

#[test]
fn step7_resend_of_the_same_request_is_recognised_another_is_not() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 6);
    let challenge = at.scep_challenge.clone().unwrap();
    let (csr, other) = ([7u8; 32], [8u8; 32]);
    fx.engine
        .authorize_scep_request(&a, &challenge, Some(csr), t0())
        .unwrap();
    // Consumed: a second authorization is a replay whatever the request.
    refused(&mut fx, ActivationError::ChallengeReplayed, |fx| {
        fx.engine
            .authorize_scep_request(&a, &challenge, Some(csr), t0())
    });
    // The same request is recognised as a resend (the certificate is not
    // issued yet: the caller issues it now), another one is not, and
    // neither is the same request at another tenant or with another secret.
    let resend = fx.engine.scep_resend(&a, &challenge, &csr, t0()).unwrap();
    assert_eq!(resend.map(|r| r.phase), Some(Phase::ScepAuthorized));
    // Not once the challenge would have expired: nothing was issued yet.
    let late = t0() + Duration::from_secs(30 * 86400);
    assert!(
        fx.engine
            .scep_resend(&a, &challenge, &csr, late)
            .unwrap()
            .is_none()
    );
    assert!(
        fx.engine
            .scep_resend(&a, &challenge, &other, t0())
            .unwrap()
            .is_none()
    );
    let b = fx.b.clone();
    assert!(
        fx.engine
            .scep_resend(&b, &challenge, &csr, t0())
            .unwrap()
            .is_none()
    );
    let wrong = Secret::new("not-the-challenge");
    assert!(
        fx.engine
            .scep_resend(&a, &wrong, &csr, t0())
            .unwrap()
            .is_none()
    );
    // After issuance the activation (with its certificate) still answers.
    let identity = EvidenceDevice::fresh_identity(&mut fx.rng, t0());
    fx.engine
        .certificate_issued(&a, &at.id, identity.clone(), t0())
        .unwrap();
    let resend = fx
        .engine
        .scep_resend(&a, &challenge, &csr, t0())
        .unwrap()
        .unwrap();
    assert_eq!(resend.identity, Some(identity));
}

#[test]
fn step7_scep_challenge_expires() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 6);
    let c = at.scep_challenge.clone().unwrap();
    let late = t0() + EngineConfig::default().scep_challenge_ttl + Duration::from_secs(1);
    refused(&mut fx, ActivationError::ChallengeExpired, |fx| {
        fx.engine.authorize_scep(&a, &c, late)
    });
}

#[test]
fn step8_certificate_before_authorization_or_with_duplicate_serial() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let early = advance(&mut fx, &a, 6);
    let identity = EvidenceDevice::fresh_identity(&mut fx.rng, t0());
    refused(
        &mut fx,
        ActivationError::OutOfOrder {
            step: Step::CertificateIssued,
            phase: Phase::DeviceVerified,
        },
        |fx| fx.engine.certificate_issued(&a, &early.id, identity, t0()),
    );
    let done = advance(&mut fx, &a, 8);
    let issued = done.dev.identity.clone().unwrap();
    let next = advance(&mut fx, &a, 7);
    let mut dup = EvidenceDevice::fresh_identity(&mut fx.rng, t0());
    dup.serial = issued.serial.clone();
    let before = fx.engine.store().snapshot();
    assert_eq!(
        fx.engine.certificate_issued(&a, &next.id, dup, t0()),
        Err(ServiceError::Store(StoreError::DuplicateSerial))
    );
    assert_eq!(fx.engine.store().snapshot(), before);
    assert_eq!(phase(&fx, &a, &next.id), Phase::ScepAuthorized);
}

// ---- step 9: Authenticate -------------------------------------------------------

#[test]
fn step9_unknown_identity_and_cross_tenant() {
    let mut fx = fixture(Policy::default());
    let (a, b) = (fx.a.clone(), fx.b.clone());
    let at = advance(&mut fx, &a, 8);
    let mut stranger = at.dev.clone();
    stranger.identity = Some(EvidenceDevice::fresh_identity(&mut fx.rng, t0()));
    refused(&mut fx, ActivationError::UnknownIdentity, |fx| {
        authenticate(fx, &a, &stranger)
    });
    let dev = at.dev.clone();
    refused(&mut fx, ActivationError::TenantMismatch, |fx| {
        authenticate(fx, &b, &dev)
    });
}

#[test]
fn step9_migration_assistant_identity_reuse() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 8);
    // A second Mac carrying the first one's identity, before and after the
    // first one bound it.
    let mut copy = EvidenceDevice::random(&mut fx.rng);
    copy.identity = at.dev.identity.clone();
    refused(&mut fx, ActivationError::DeviceMismatch, |fx| {
        authenticate(fx, &a, &copy)
    });
    authenticate(&mut fx, &a, &at.dev).unwrap();
    refused(&mut fx, ActivationError::DeviceMismatch, |fx| {
        authenticate(fx, &a, &copy)
    });
    refused(&mut fx, ActivationError::DeviceMismatch, |fx| {
        connect(fx, &a, &copy, ReportStatus::Idle, None)
    });
    let fp = at.dev.identity.as_ref().unwrap().fingerprint;
    let binding = fx.engine.store().identity(&fp).unwrap().unwrap();
    assert_eq!(binding.device_id, at.dev.udid);
}

// ---- step 10: TokenUpdate -------------------------------------------------------

#[test]
fn step10_token_update_before_authenticate() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 8);
    let dev = at.dev.clone();
    refused(
        &mut fx,
        ActivationError::OutOfOrder {
            step: Step::MdmActivationComplete,
            phase: Phase::IdentityIssued,
        },
        |fx| token_update(fx, &a, &dev),
    );
}

#[test]
fn step10_user_channel_before_device_channel_and_foreign_udid() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 9);
    let mut user = at.dev.checkin(CheckinMessage::TokenUpdate {
        push: at.dev.push_target(),
        awaiting_configuration: None,
    });
    user.channel.user_id = Some("501-GUID".into());
    refused(
        &mut fx,
        ActivationError::OutOfOrder {
            step: Step::MdmActivationComplete,
            phase: Phase::Authenticated,
        },
        |fx| fx.engine.checkin(&a, user, t0(), |_| Vec::new()),
    );
    let mut other = at.dev.clone();
    other.udid = "00008020-000915083C80012E".into();
    refused(&mut fx, ActivationError::DeviceMismatch, |fx| {
        token_update(fx, &a, &other)
    });
}

// ---- step 11: first connect -------------------------------------------------------

#[test]
fn step11_connect_before_enrolment() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 9);
    let dev = at.dev.clone();
    refused(&mut fx, ActivationError::NotEnrolled, |fx| {
        connect(fx, &a, &dev, ReportStatus::Idle, None)
    });
    let unknown = EvidenceDevice::random(&mut fx.rng);
    refused(&mut fx, ActivationError::UnknownIdentity, |fx| {
        connect(fx, &a, &unknown, ReportStatus::Idle, None)
    });
}

#[test]
fn step11_retired_identity_after_checkout() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 10);
    let out = fx
        .engine
        .checkin(&a, at.dev.checkin(CheckinMessage::CheckOut), t0(), |_| {
            Vec::new()
        })
        .unwrap();
    assert!(out.events.iter().any(|e| e.kind == EventKind::Unenrolled));
    assert_eq!(phase(&fx, &a, &at.id), Phase::Unenrolled);
    assert!(queue_is_empty(&fx, &a, &at.dev));
    assert!(fx.engine.store().devices(&a, "alice").unwrap().is_empty());
    let dev = at.dev.clone();
    refused(&mut fx, ActivationError::IdentityMismatch, |fx| {
        connect(fx, &a, &dev, ReportStatus::Idle, None)
    });
    refused(&mut fx, ActivationError::IdentityMismatch, |fx| {
        authenticate(fx, &a, &dev)
    });
}

// ---- step 12: configuration sent, queue semantics ------------------------------------

#[test]
fn step12_one_command_per_response_in_order() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 9);
    let config = token_update(&mut fx, &a, &at.dev).unwrap();
    let mut sent = vec![delivered(connect(&fx, &a, &at.dev, ReportStatus::Idle, None)).unwrap()];
    loop {
        let last = sent.last().unwrap().clone();
        match delivered(connect(
            &fx,
            &a,
            &at.dev,
            ReportStatus::Acknowledged,
            Some(&last),
        )) {
            Some(u) => sent.push(u),
            None => break,
        }
    }
    assert_eq!(
        sent,
        config.iter().map(|c| c.uuid.clone()).collect::<Vec<_>>()
    );
}

#[test]
fn step12_unknown_command_and_missing_uuid() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 10);
    connect(&fx, &a, &at.dev, ReportStatus::Idle, None).unwrap();
    let bogus = CommandUuid::new("0001-CertificateList").unwrap();
    let dev = at.dev.clone();
    refused(
        &mut fx,
        ActivationError::UnknownCommand(bogus.clone()),
        |fx| connect(fx, &a, &dev, ReportStatus::Acknowledged, Some(&bogus)),
    );
    refused(&mut fx, ActivationError::MissingCommandUuid, |fx| {
        connect(fx, &a, &dev, ReportStatus::Acknowledged, None)
    });
}

#[test]
fn step12_not_now_skipped_on_this_connection_offered_on_next() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 9);
    let config = token_update(&mut fx, &a, &at.dev).unwrap();
    let u: Vec<CommandUuid> = config.iter().map(|c| c.uuid.clone()).collect();
    let d = &at.dev;
    assert_eq!(
        delivered(connect(&fx, &a, d, ReportStatus::Idle, None)),
        Some(u[0].clone())
    );
    // NotNow for every command: each is skipped for the rest of the connection.
    for i in 0..u.len() {
        let next = delivered(connect(&fx, &a, d, ReportStatus::NotNow, Some(&u[i])));
        assert_eq!(next, u.get(i + 1).cloned());
    }
    // Next connection: offered again, in order.
    assert_eq!(
        delivered(connect(&fx, &a, d, ReportStatus::Idle, None)),
        Some(u[0].clone())
    );
    let pending = fx.engine.store().pending(&key(&a, d)).unwrap();
    assert!(pending.iter().all(|c| c.not_now_count == 1));
    assert_eq!(phase(&fx, &a, &at.id), Phase::Configuring);
}

// ---- step 13: acknowledgements ----------------------------------------------------------

#[test]
fn step13_result_stored_but_activation_update_lost_is_recovered() {
    // A crash (or a lost race) between the two writes of a report: the queue
    // recorded the last result, the activation never heard of it. The next
    // connect takes the outcome from the queue and completes the activation.
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 10);
    let mut next = delivered(connect(&fx, &a, &at.dev, ReportStatus::Idle, None));
    let mut before_last = None;
    while let Some(uuid) = next {
        before_last = fx.engine.store().activation(&a, &at.id).unwrap();
        next = delivered(connect(
            &fx,
            &a,
            &at.dev,
            ReportStatus::Acknowledged,
            Some(&uuid),
        ));
    }
    assert_eq!(phase(&fx, &a, &at.id), Phase::Complete);
    // Roll the activation back to before the last report (the queue keeps
    // the result and no longer holds the command).
    let stale = before_last.unwrap().value;
    let current = fx.engine.store().activation(&a, &at.id).unwrap().unwrap();
    fx.engine
        .store()
        .update_activation(&stale, current.version)
        .unwrap();
    assert_eq!(phase(&fx, &a, &at.id), Phase::Configuring);
    assert!(queue_is_empty(&fx, &a, &at.dev));

    let out = fx
        .engine
        .connect(&a, at.dev.report(ReportStatus::Idle, None), t0())
        .unwrap();
    assert_eq!(out.value, None);
    assert!(
        out.events
            .iter()
            .any(|e| e.kind == EventKind::Reached(Step::ConfigurationApplied)),
        "{:?}",
        out.events
    );
    assert_eq!(phase(&fx, &a, &at.id), Phase::Complete);
    let results = fx.engine.store().results(&key(&a, &at.dev)).unwrap();
    assert_eq!(
        results.len(),
        INITIAL_REQUEST_TYPES.len(),
        "nothing applied twice"
    );
}

#[test]
fn step13_error_is_not_ignored() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 10);
    let d = at.dev.clone();
    let mut cur = delivered(connect(&fx, &a, &d, ReportStatus::Idle, None));
    let mut first = true;
    let mut failed = None;
    while let Some(u) = cur {
        let status = if first {
            ReportStatus::Error
        } else {
            ReportStatus::Acknowledged
        };
        if first {
            failed = Some(u.clone());
        }
        first = false;
        cur = delivered(connect(&fx, &a, &d, status, Some(&u)));
    }
    assert_eq!(phase(&fx, &a, &at.id), Phase::ConfigurationFailed);
    let results = fx.engine.store().results(&key(&a, &d)).unwrap();
    let r = results
        .iter()
        .find(|r| Some(&r.uuid) == failed.as_ref())
        .unwrap();
    assert!(matches!(r.outcome, CommandOutcome::Error(_)));
}

#[test]
fn step13_not_now_loop_exhausts_retry_budget() {
    // The device below leaves the command handed after each NotNow
    // unanswered and starts over; without a delivery lease it is offered
    // again at once (the lease itself: tests/queue_hygiene.rs).
    let config = EngineConfig::default().with_queue(
        QueuePolicy::default()
            .with_retry_budget(2)
            .with_retention(Retention::KeepAll)
            .with_delivery_lease(std::time::Duration::ZERO),
    );
    let mut fx = fixture_with(Policy::default(), config);
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 10);
    let d = at.dev.clone();
    let head = delivered(connect(&fx, &a, &d, ReportStatus::Idle, None)).unwrap();
    // Two NotNow spend the budget; the third finishes the command.
    for round in 0..3 {
        if round > 0 {
            assert_eq!(
                delivered(connect(&fx, &a, &d, ReportStatus::Idle, None)),
                Some(head.clone())
            );
        }
        let next = delivered(connect(&fx, &a, &d, ReportStatus::NotNow, Some(&head)));
        assert_ne!(next, Some(head.clone()));
    }
    let results = fx.engine.store().results(&key(&a, &d)).unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].uuid, head);
    assert_eq!(results[0].outcome, CommandOutcome::RetryBudgetExhausted);
    // The others are acknowledged: the activation still ends failed, not complete.
    let mut cur = delivered(connect(&fx, &a, &d, ReportStatus::Idle, None));
    while let Some(u) = cur {
        cur = delivered(connect(&fx, &a, &d, ReportStatus::Acknowledged, Some(&u)));
    }
    assert_eq!(phase(&fx, &a, &at.id), Phase::ConfigurationFailed);
}

#[test]
fn step13_undecodable_report_recorded_and_queue_advanced() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 10);
    let d = at.dev.clone();
    let head = delivered(connect(&fx, &a, &d, ReportStatus::Idle, None)).unwrap();
    let mut bad = d.report(ReportStatus::Acknowledged, None);
    bad.report = Report::Undecodable {
        reason: "not a plist".into(),
    };
    let next = fx
        .engine
        .connect(&a, bad.clone(), t0())
        .unwrap()
        .value
        .unwrap();
    assert_ne!(next.uuid, head);
    let results = fx.engine.store().results(&key(&a, &d)).unwrap();
    assert_eq!(results[0].uuid, head);
    assert_eq!(
        results[0].outcome,
        CommandOutcome::Undecodable("not a plist".into())
    );
    // With nothing outstanding on the connection, an undecodable body is refused.
    let mut fx2 = fixture(Policy::default());
    let a2 = fx2.a.clone();
    let at2 = advance(&mut fx2, &a2, 10);
    let mut bad2 = at2.dev.report(ReportStatus::Idle, None);
    bad2.report = Report::Undecodable { reason: "x".into() };
    refused(&mut fx2, ActivationError::UndecodableWithoutCommand, |fx| {
        fx.engine.connect(&a2, bad2, t0())
    });
}

#[test]
fn step13_duplicate_acknowledgement_is_refused() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 10);
    let d = at.dev.clone();
    let head = delivered(connect(&fx, &a, &d, ReportStatus::Idle, None)).unwrap();
    connect(&fx, &a, &d, ReportStatus::Acknowledged, Some(&head)).unwrap();
    refused(
        &mut fx,
        ActivationError::UnknownCommand(head.clone()),
        |fx| connect(fx, &a, &d, ReportStatus::Acknowledged, Some(&head)),
    );
}

// ---- re-enrolment ------------------------------------------------------------------------

#[test]
fn re_authenticate_is_re_enrolment() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let at = advance(&mut fx, &a, 10);
    let out = fx
        .engine
        .checkin(
            &a,
            at.dev.checkin(CheckinMessage::Authenticate {
                topic: "t".into(),
                serial: None,
            }),
            t0(),
            |_| Vec::new(),
        )
        .unwrap();
    assert!(out.events.iter().any(|e| e.kind == EventKind::ReEnrolled));
    assert!(queue_is_empty(&fx, &a, &at.dev));
    assert_eq!(phase(&fx, &a, &at.id), Phase::Authenticated);
    let dev = at.dev.clone();
    refused(&mut fx, ActivationError::NotEnrolled, |fx| {
        connect(fx, &a, &dev, ReportStatus::Idle, None)
    });
    // TokenUpdate re-queues the initial configuration and re-completes step 10.
    token_update(&mut fx, &a, &at.dev).unwrap();
    assert_eq!(
        fx.engine.store().pending(&key(&a, &at.dev)).unwrap().len(),
        4
    );
}

#[test]
fn new_activation_of_an_enrolled_device_retires_the_old_identity() {
    let mut fx = fixture(Policy::default());
    let a = fx.a.clone();
    let old = advance(&mut fx, &a, 10);
    let mut fresh_dev = old.dev.clone();
    fresh_dev.identity = None;
    let new = advance_device(&mut fx, &a, 9, fresh_dev);
    assert_eq!(phase(&fx, &a, &old.id), Phase::Superseded);
    assert_eq!(phase(&fx, &a, &new.id), Phase::Authenticated);
    let old_fp = old.dev.identity.as_ref().unwrap().fingerprint;
    assert!(
        fx.engine
            .store()
            .identity(&old_fp)
            .unwrap()
            .unwrap()
            .retired
    );
    assert!(
        fx.engine
            .store()
            .pending(&key(&a, &old.dev))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        fx.engine
            .store()
            .device_activation(&a, &old.dev.udid)
            .unwrap(),
        Some(new.id.clone())
    );
    let dev = old.dev.clone();
    refused(&mut fx, ActivationError::IdentityMismatch, |fx| {
        connect(fx, &a, &dev, ReportStatus::Idle, None)
    });
    assert!(
        fx.engine
            .store()
            .certificate_by_fingerprint(&old_fp)
            .unwrap()
            .is_some()
    );
}

/// A directory whose server does not answer.
struct UnreachableDirectory;

impl mdm_enroll::store::Directory for UnreachableDirectory {
    fn check_credentials(
        &self,
        _: &TenantId,
        _: &LoginAttempt,
    ) -> Result<bool, mdm_enroll::store::DirectoryError> {
        Err(mdm_enroll::store::DirectoryError::transient(
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        ))
    }
}

/// Step 2 with a directory that cannot answer: the login fails with the
/// directory's own error (not a store error, not bad credentials), stores
/// nothing, and is answered 503 so the browser may retry.
#[test]
fn step2_directory_failure_is_its_own_retryable_error() {
    let a = TenantId::new("customer-a").unwrap();
    let engine = Engine::new(
        MemoryStore::new(),
        UnreachableDirectory,
        RecordingPush::new(),
        EngineConfig::default(),
    );
    engine
        .provision_user(&UserAccount {
            tenant: a.clone(),
            username: "alice".into(),
            domain: "corp".into(),
            policy: Policy::default(),
        })
        .unwrap();
    let before = engine.store().snapshot();
    let attempt = LoginAttempt {
        username: "alice".into(),
        password: Secret::new("pw"),
        domain: "corp".into(),
    };
    let err = engine
        .login(&a, &attempt, t0(), &mut UnwrapErr(getrandom::SysRng))
        .unwrap_err();
    let ServiceError::Directory(cause) = &err else {
        panic!("expected a directory error, got {err:?}");
    };
    assert!(cause.is_transient());
    let io = std::error::Error::source(cause)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the directory's own error");
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(err.http_status(), 503);
    assert_eq!(engine.store().snapshot(), before);
}
