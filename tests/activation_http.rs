//! Steps 11–12 through the HTTP driver with a real Mdm-Signature captured
//! from a device (nanomdm test vector): the signature is verified, the
//! identity resolved to its activation, the report decoded and the first
//! initial command answered. Tampering or a foreign tenant is refused with
//! 400, never 401, and changes nothing.
#![cfg(feature = "test-support")]

use std::time::{Duration, SystemTime};

use mdm_enroll::activation::*;
use mdm_enroll::cms::{
    CmsError, IdentityError, IdentityOptions, client_identity, verify_mdm_signature,
};
use mdm_enroll::http::{Method, Request, media_type};
use mdm_enroll::mdm::command::Command;
use mdm_enroll::service::{
    Endpoint, Engine, EngineConfig, EventKind, InitialConfiguration, MdmService, Route,
    ServiceError,
};
use mdm_enroll::store::MemoryStore;
use mdm_enroll::testing::{EvidenceDevice, RecordingPush, StaticDirectory};
use mdm_enroll::wire::Limits;
use rand_core::UnwrapErr;

const UDID: &str = "D4D56083-BFB0-5047-8BDF-2727BACDC59B";

fn vector(path: &str) -> Vec<u8> {
    let p = format!("{}/tests/vectors/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

struct Fx {
    svc: MdmService<MemoryStore, StaticDirectory, RecordingPush>,
    a: TenantId,
    b: TenantId,
    request: Request,
    dev: EvidenceDevice,
}

fn fixture() -> Fx {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let header =
        String::from_utf8(vector("signature/nanomdm_mdmSignatureHeader2.b64.txt")).unwrap();
    let header = header.trim().to_owned();
    let body = vector("signature/nanomdm_mdmSignatureBody2.plist");
    let cert = verify_mdm_signature(&header, &body, &Limits::default().ber).unwrap();
    let identity = IssuedIdentity {
        serial: cert.serial().to_vec(),
        fingerprint: CertFingerprint::of_der(cert.der()),
        not_after: t0() + Duration::from_secs(86400),
        certificate: cert.der().to_vec(),
    };
    assert_eq!(identity.fingerprint.0, cert.sha256_fingerprint());

    let a = TenantId::new("acme").unwrap();
    let b = TenantId::new("globex").unwrap();
    let dir = StaticDirectory::new();
    dir.set_password(&a, "alice", "pw");
    let engine = Engine::new(
        MemoryStore::new(),
        dir,
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
    // Steps 1–8 at the evidence level for the vector's device and identity.
    let login = LoginAttempt {
        username: "alice".into(),
        password: Secret::new("pw"),
        domain: "corp".into(),
    };
    let id = engine
        .login(&a, &login, t0(), &mut rng)
        .unwrap()
        .value
        .activation;
    let c = engine
        .request_activation(&a, &id, true, None, t0(), &mut rng)
        .unwrap()
        .value;
    let mut dev = EvidenceDevice::random(&mut rng);
    dev.udid = UDID.into();
    let scep = engine
        .device_attributes(&a, dev.attributes(&c), t0(), &mut rng)
        .unwrap()
        .value
        .scep_challenge;
    engine.authorize_scep(&a, &scep, t0()).unwrap();
    engine
        .certificate_issued(&a, &id, identity.clone(), t0())
        .unwrap();
    dev.identity = Some(identity);
    dev.activation = Some(id);
    let svc = MdmService::new(engine, InitialConfiguration::default());
    // Steps 9–10 (the vector holds no check-ins; its key is not ours to sign with).
    svc.engine()
        .checkin(
            &a,
            dev.checkin(CheckinMessage::Authenticate {
                topic: "com.apple.mgmt.test".into(),
                serial: None,
            }),
            t0(),
            |_| Vec::new(),
        )
        .unwrap();
    let config = InitialConfiguration::default().commands(&mut rng).unwrap();
    svc.engine()
        .checkin(
            &a,
            dev.checkin(CheckinMessage::TokenUpdate {
                push: dev.push_target(),
                awaiting_configuration: None,
            }),
            t0(),
            move |_| config,
        )
        .unwrap();
    let mut request = Request::new(Method::Put, Route::path("/t", &a, Endpoint::Mdm));
    request.headers = vec![
        ("Content-Type".into(), media_type::CONNECT.into()),
        ("Mdm-Signature".into(), header),
    ];
    request.body = body;
    Fx {
        svc,
        a,
        b,
        request,
        dev,
    }
}

#[test]
fn signed_idle_gets_the_first_initial_command() {
    let fx = fixture();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let (resp, events) = fx.svc.handle(&fx.a, &fx.request, t0(), &mut rng);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some(media_type::XML));
    let cmd = Command::decode(&resp.body, &Limits::default()).unwrap();
    assert_eq!(cmd.request_type, "DeviceInformation");
    let steps: Vec<u8> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Reached(s) => Some(s.number()),
            _ => None,
        })
        .collect();
    assert_eq!(steps, [11, 12]);
    assert_eq!(Some(&events[0].activation), fx.dev.activation.as_ref());
}

/// The command in the HTTP response is the store's buffer, not a copy of it:
/// the last step of "no body copied on the way out" (a multi-megabyte
/// `InstallProfile` is sent as it is stored).
#[test]
fn delivered_command_body_is_the_stored_buffer() {
    let fx = fixture();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let (resp, _) = fx.svc.handle(&fx.a, &fx.request, t0(), &mut rng);
    assert_eq!(resp.status, 200);
    let key = mdm_enroll::activation::queue::QueueKey {
        tenant: fx.a.clone(),
        channel: fx.dev.channel(),
    };
    let pending = mdm_enroll::store::QueueStore::pending(fx.svc.engine().store(), &key).unwrap();
    let head = pending
        .first()
        .expect("the delivered command is still pending");
    let shared = resp.body.shared().expect("a delivered command is shared");
    assert!(std::sync::Arc::ptr_eq(shared, &head.body));
}

#[test]
fn tampered_body_missing_signature_and_foreign_tenant_are_400() {
    let fx = fixture();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let before = fx.svc.engine().store().snapshot();
    let identity = |req: &Request| client_identity(req, &IdentityOptions::default());

    // Each refusal is 400 for the reason named, never another one. The
    // vector signs without signed attributes: a changed body fails the
    // signature itself.
    let mut tampered = fx.request.clone();
    let last = tampered.body.len() - 2;
    tampered.body[last] ^= 1;
    assert_eq!(
        fx.svc.handle(&fx.a, &tampered, t0(), &mut rng).0.status,
        400
    );
    assert!(
        matches!(
            identity(&tampered),
            Err(IdentityError::Cms(CmsError::BadSignature))
        ),
        "{:?}",
        identity(&tampered)
    );

    let mut unsigned = fx.request.clone();
    unsigned.headers.retain(|(k, _)| k != "Mdm-Signature");
    assert_eq!(
        fx.svc.handle(&fx.a, &unsigned, t0(), &mut rng).0.status,
        400
    );
    assert!(matches!(identity(&unsigned), Ok(None)));

    let mut garbage = fx.request.clone();
    garbage.headers[1].1 = "MIAGCSqGSIb3DQEHAqCAMIACAQEx".into();
    assert_eq!(fx.svc.handle(&fx.a, &garbage, t0(), &mut rng).0.status, 400);
    assert!(
        matches!(
            identity(&garbage),
            Err(IdentityError::Cms(CmsError::Ber(_)))
        ),
        "{:?}",
        identity(&garbage)
    );

    // The vector's identity verifies but belongs to tenant a.
    assert_eq!(
        fx.svc.handle(&fx.b, &fx.request, t0(), &mut rng).0.status,
        400
    );
    let foreign = fx
        .svc
        .engine()
        .connect(&fx.b, fx.dev.report(ReportStatus::Idle, None), t0());
    assert_eq!(
        foreign.map(|o| o.value),
        Err(ServiceError::Activation(ActivationError::TenantMismatch))
    );
    assert_eq!(fx.svc.engine().store().snapshot(), before);
}

/// Steps 5–6 with the real macOS 13 phase-2 body (signed by an Apple device
/// identity): the signature and Apple issuer verify, so the refusal is about
/// the challenge (this server never issued it). A body with one flipped byte
/// fails signature verification first. Neither changes the store.
#[test]
fn real_phase2_attributes_verify_then_meet_the_challenge_check() {
    let fx = fixture();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let before = fx.svc.engine().store().snapshot();
    let mut request = Request::new(
        Method::Post,
        Route::path("/t", &fx.a, Endpoint::ProfileService),
    );
    request.body = vector("ota/zentral_ota_payload_phase_2.p7");
    let got = fx.svc.device_attributes(&fx.a, &request, t0(), &mut rng);
    assert_eq!(
        got.unwrap_err(),
        mdm_enroll::service::ServiceError::Activation(ActivationError::UnknownChallenge)
    );
    // Flip a byte inside the signed plist ("VirtualMac2,1" → "VirtualMac2,0").
    let pos = request
        .body
        .windows(13)
        .position(|w| w == b"VirtualMac2,1")
        .unwrap();
    request.body[pos + 12] = b'0';
    let got = fx.svc.device_attributes(&fx.a, &request, t0(), &mut rng);
    let err = got.unwrap_err();
    assert!(
        matches!(err, mdm_enroll::service::ServiceError::BadRequest(_)),
        "{err:?}"
    );
    assert_eq!(err.http_status(), 400);
    assert_eq!(fx.svc.engine().store().snapshot(), before);
}
