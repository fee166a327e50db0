//! Per-tenant identities: two tenants with their own APNs topic, SCEP CA/RA
//! and profile signer on one `EnrollmentService` over one store
//! (`EnrollmentService::with_tenants`). Simulated Macs talk to
//! `EnrollmentService::handle` through requests and responses only.
//!
//! Keys are 1024-bit and generated once: keys are not what this tests.
#![cfg(feature = "test-support")]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::{Phase, TenantId, UserAccount};
use mdm_enroll::cms::{Certificate, DeviceAttributesVerifier, TrustAnchors};
use mdm_enroll::crypto::RsaKey;
use mdm_enroll::http::{Method, Request, Response, media_type};
use mdm_enroll::pki;
use mdm_enroll::scep::{FailInfo, ScepResponder};
use mdm_enroll::service::{
    Endpoint, Engine, EngineConfig, EnrollmentConfig, EnrollmentService, Event,
    InitialConfiguration, MdmService, Route, ServiceError, TenantConfigs,
};
use mdm_enroll::store::{ActivationStore, MemoryStore};
use mdm_enroll::testing::{
    DeviceError, Identity, RecordingPush, SimulatedDevice, StaticDirectory, TestDeviceCa,
};
use rand_core::UnwrapErr;

type Rng = UnwrapErr<getrandom::SysRng>;
type Service = EnrollmentService<MemoryStore, StaticDirectory, RecordingPush>;

fn rng() -> Rng {
    UnwrapErr(getrandom::SysRng)
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

const TOPIC_A: &str = "com.apple.mgmt.External.aaaaaaaa-0000-4000-8000-000000000001";
const TOPIC_B: &str = "com.apple.mgmt.External.bbbbbbbb-0000-4000-8000-000000000002";
const CREDENTIALS: (&str, &str, &str) = ("alice", "pw", "corp");

fn keys() -> &'static [Arc<RsaKey>] {
    static KEYS: OnceLock<Vec<Arc<RsaKey>>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..6)
            .map(|_| Arc::new(RsaKey::generate(&mut rng(), 1024).unwrap()))
            .collect()
    })
}

fn self_signed(key: &RsaKey, subject: &str) -> Certificate {
    let c = pki::create_ca(
        key,
        subject.parse().unwrap(),
        pki::random_serial(&mut rng()),
        pki::validity(t0(), Duration::from_secs(365 * 86400)).unwrap(),
    )
    .unwrap();
    Certificate::from_der(&pki::to_der(&c).unwrap()).unwrap()
}

/// One tenant's identity: its key is its SCEP CA, RA and profile signer.
struct Tenant {
    id: TenantId,
    topic: &'static str,
    ca: Certificate,
    config: EnrollmentConfig,
}

fn tenant(name: &str, topic: &'static str, key: &Arc<RsaKey>) -> Tenant {
    let ca = self_signed(key, &format!("CN={name} MDM CA,O=mdm-enroll tests"));
    let scep = ScepResponder::new(ca.der(), key.clone(), key.clone()).unwrap();
    let mut config = EnrollmentConfig::new(
        "https://mdm.example.test",
        topic,
        key.clone(),
        ca.clone(),
        scep,
    );
    config.prefix = "/t".into();
    config.identifier = format!("test.{name}");
    Tenant {
        id: TenantId::new(name).unwrap(),
        topic,
        ca,
        config,
    }
}

struct Fx {
    svc: Service,
    a: Tenant,
    b: Tenant,
    attributes: Identity,
}

fn fixture() -> Fx {
    let mut rng = rng();
    let a = tenant("alpha", TOPIC_A, &keys()[0]);
    let b = tenant("beta", TOPIC_B, &keys()[1]);
    let device_ca = TestDeviceCa::new(keys()[2].as_ref().clone(), t0(), &mut rng).unwrap();
    let attributes = device_ca.issue(keys()[3].clone(), t0(), &mut rng).unwrap();
    let mut verifier = DeviceAttributesVerifier::new(TrustAnchors::from_certificates([
        a.ca.clone(),
        b.ca.clone(),
    ]));
    verifier.add_device_anchor(device_ca.certificate().clone());
    let dir = StaticDirectory::new();
    let engine = Engine::new(
        MemoryStore::new(),
        dir,
        RecordingPush::new(),
        EngineConfig::default(),
    );
    for t in [&a, &b] {
        engine
            .directory()
            .set_password(&t.id, CREDENTIALS.0, CREDENTIALS.1);
        engine
            .provision_user(&UserAccount {
                tenant: t.id.clone(),
                username: CREDENTIALS.0.into(),
                domain: CREDENTIALS.2.into(),
                policy: Default::default(),
            })
            .unwrap();
    }
    let mdm =
        MdmService::new(engine, InitialConfiguration::default()).with_attributes_verifier(verifier);
    let tenants: HashMap<TenantId, Arc<EnrollmentConfig>> = [&a, &b]
        .into_iter()
        .map(|t| (t.id.clone(), Arc::new(t.config.clone())))
        .collect();
    let svc = EnrollmentService::with_tenants(mdm, a.config.clone(), tenants);
    Fx {
        svc,
        a,
        b,
        attributes,
    }
}

impl Fx {
    /// A Mac trusting `anchor` as the server's CA.
    fn device(&self, anchor: &Certificate, scep_key: usize) -> SimulatedDevice {
        SimulatedDevice::new(
            self.attributes.clone(),
            keys()[scep_key].clone(),
            anchor.clone(),
            &mut rng(),
        )
    }

    fn send(&self, req: Request, events: &mut Vec<Event>) -> Response {
        let (resp, ev) = self.svc.handle(&req, t0(), &mut rng());
        events.extend(ev);
        resp
    }

    fn transport<'a>(&'a self, events: &'a mut Vec<Event>) -> impl FnMut(Request) -> Response + 'a {
        move |req| self.send(req, events)
    }

    /// A Mac of `tenant` through steps 2–6: it holds the tenant's
    /// enrollment profile.
    fn enrollment_profile_installed(
        &self,
        tenant: &Tenant,
        scep_key: usize,
        events: &mut Vec<Event>,
    ) -> SimulatedDevice {
        let mut dev = self.device(&tenant.ca, scep_key);
        let (user, password, domain) = CREDENTIALS;
        let mut t = self.transport(events);
        let service = dev
            .self_service(&mut t, &enroll_path(tenant), user, password, domain)
            .unwrap();
        dev.send_attributes(&mut t, &service).unwrap();
        dev
    }

    fn snapshot(&self) -> Vec<String> {
        self.svc.engine().store().snapshot()
    }

    fn phase(&self, tenant: &Tenant, events: &[Event]) -> Phase {
        let id = &events
            .first()
            .expect("an event names the activation")
            .activation;
        self.svc
            .engine()
            .store()
            .activation(&tenant.id, id)
            .unwrap()
            .expect("the activation is stored")
            .value
            .phase
    }
}

fn enroll_path(t: &Tenant) -> String {
    Route::path("/t", &t.id, Endpoint::Enroll)
}

#[test]
fn each_tenant_gets_its_own_topic_ca_and_signer_and_completes_activation() {
    let fx = fixture();
    for (tenant, key) in [(&fx.a, 4), (&fx.b, 5)] {
        let mut events = Vec::new();
        // The device trusts only this tenant's CA: a profile signed by the
        // other tenant's signer would be refused.
        let mut dev = fx.device(&tenant.ca, key);
        let answers = dev
            .activate(
                &mut fx.transport(&mut events),
                &enroll_path(tenant),
                CREDENTIALS,
                t0(),
                &mut rng(),
            )
            .unwrap();
        assert!(!answers.is_empty());
        assert!(
            answers.iter().all(|(_, s)| s == "Acknowledged"),
            "{answers:?}"
        );
        assert_eq!(dev.enrollment_topic(), Some(tenant.topic));
        assert_eq!(
            dev.enrollment_root().map(Certificate::der),
            Some(tenant.ca.der())
        );
        let identity = dev.identity().expect("an MDM identity was issued");
        identity
            .verify_issued_by(&tenant.ca)
            .expect("the identity is issued by the tenant's SCEP CA");
        assert_eq!(fx.phase(tenant, &events), Phase::Complete);
    }
}

#[test]
fn a_profile_is_not_signed_by_another_tenants_signer() {
    let fx = fixture();
    let mut events = Vec::new();
    // A Mac that trusts only B's CA refuses A's Profile Service profile.
    let mut dev = fx.device(&fx.b.ca, 4);
    let err = dev
        .self_service(
            &mut fx.transport(&mut events),
            &enroll_path(&fx.a),
            CREDENTIALS.0,
            CREDENTIALS.1,
            CREDENTIALS.2,
        )
        .unwrap_err();
    assert_eq!(
        err,
        DeviceError::Protocol("profile signer is not trusted".into())
    );
}

#[test]
fn a_challenge_of_tenant_a_is_refused_at_tenant_b_scep_url() {
    let fx = fixture();
    let mut events = Vec::new();
    let mut dev_a = fx.enrollment_profile_installed(&fx.a, 4, &mut events);
    // A Mac holding B's enrollment profile (so it encrypts to B's CA and
    // posts to B's SCEP URL) but presenting A's one-time challenge.
    let mut dev_b = fx.enrollment_profile_installed(&fx.b, 5, &mut Vec::new());
    let a_challenge = dev_a.scep_challenge().unwrap().to_owned();
    assert_ne!(dev_b.scep_challenge(), Some(a_challenge.as_str()));
    dev_b.override_scep_challenge(&a_challenge).unwrap();
    let before = fx.snapshot();
    let b_scep = Route::path("/t", &fx.b.id, Endpoint::Scep);
    let mut at_b = |req: Request| {
        assert_eq!(req.path, b_scep, "the request goes to B's SCEP URL");
        fx.send(req, &mut Vec::new())
    };
    let err = dev_b.scep_enroll(&mut at_b, t0(), &mut rng()).unwrap_err();
    assert_eq!(err, DeviceError::ScepFailure(Some(FailInfo::BadRequest)));
    assert!(dev_b.identity().is_none());
    assert_eq!(fx.snapshot(), before, "B's SCEP URL stored nothing");
    // The challenge was not consumed: it still works at A.
    let cert = dev_a
        .scep_enroll(&mut fx.transport(&mut events), t0(), &mut rng())
        .unwrap();
    cert.verify_issued_by(&fx.a.ca).unwrap();
}

#[test]
fn a_check_in_with_another_tenants_topic_is_refused_and_stores_nothing() {
    let fx = fixture();
    let mut events = Vec::new();
    let mut dev = fx.enrollment_profile_installed(&fx.a, 4, &mut events);
    dev.scep_enroll(&mut fx.transport(&mut events), t0(), &mut rng())
        .unwrap();
    let with_topic_b = |dev: &SimulatedDevice, message_type: &str| {
        let body = String::from_utf8(dev.checkin_body(message_type).unwrap()).unwrap();
        assert!(body.contains(TOPIC_A));
        dev.mdm_request(
            media_type::CHECKIN,
            body.replace(TOPIC_A, TOPIC_B).into_bytes(),
        )
        .unwrap()
    };

    let before = fx.snapshot();
    let resp = fx.send(with_topic_b(&dev, "Authenticate"), &mut Vec::new());
    assert_eq!(resp.status, 400);
    assert_eq!(
        fx.snapshot(),
        before,
        "a refused Authenticate stores nothing"
    );
    assert_eq!(fx.phase(&fx.a, &events), Phase::IdentityIssued);

    dev.check_in(&mut fx.transport(&mut events), "Authenticate")
        .unwrap();
    let before = fx.snapshot();
    let resp = fx.send(with_topic_b(&dev, "TokenUpdate"), &mut Vec::new());
    assert_eq!(resp.status, 400);
    assert_eq!(
        fx.snapshot(),
        before,
        "a refused TokenUpdate stores nothing"
    );
    assert_eq!(fx.phase(&fx.a, &events), Phase::Authenticated);

    let mut t = fx.transport(&mut events);
    dev.check_in(&mut t, "TokenUpdate").unwrap();
    dev.run_commands(&mut t).unwrap();
    drop(t);
    assert_eq!(fx.phase(&fx.a, &events), Phase::Complete);
}

#[test]
fn an_unknown_tenant_is_404_and_a_typed_error() {
    let fx = fixture();
    let gamma = TenantId::new("gamma").unwrap();
    assert_eq!(
        fx.svc.tenant_config(&gamma).unwrap_err(),
        ServiceError::UnknownTenant(gamma.clone())
    );
    assert_eq!(
        ServiceError::UnknownTenant(gamma.clone()).http_status(),
        404
    );
    let before = fx.snapshot();
    for endpoint in [
        Endpoint::Enroll,
        Endpoint::ProfileService,
        Endpoint::Scep,
        Endpoint::Mdm,
    ] {
        let mut req = Request::new(Method::Post, Route::path("/t", &gamma, endpoint));
        req.body = b"username=alice&password=pw&domain=corp".to_vec();
        assert_eq!(fx.send(req, &mut Vec::new()).status, 404, "{endpoint:?}");
    }
    assert_eq!(fx.snapshot(), before);
    // The served tenants resolve to their own configurations.
    assert_eq!(fx.svc.tenant_config(&fx.a.id).unwrap().topic, TOPIC_A);
    assert_eq!(fx.svc.tenant_config(&fx.b.id).unwrap().topic, TOPIC_B);
}

#[test]
fn one_config_serves_every_tenant_and_a_map_only_its_own() {
    let fx = fixture();
    let gamma = TenantId::new("gamma").unwrap();
    let one: &dyn TenantConfigs = &fx.a.config;
    for t in [&fx.a.id, &fx.b.id, &gamma] {
        assert_eq!(one.config(t).map(|c| c.topic.as_str()), Some(TOPIC_A));
    }
    let map: HashMap<TenantId, Arc<EnrollmentConfig>> =
        HashMap::from([(fx.b.id.clone(), Arc::new(fx.b.config.clone()))]);
    assert_eq!(
        map.config(&fx.b.id).map(|c| c.topic.as_str()),
        Some(TOPIC_B)
    );
    assert!(map.config(&fx.a.id).is_none());
    assert!(map.config(&gamma).is_none());
}
