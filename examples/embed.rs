//! `cargo run --example embed --features http`: the smallest complete
//! activation server over the crate, for reading. One axum handler hands
//! every request to [`EnrollmentService::handle`]; the crate does the rest
//! (self-service, Profile Service, SCEP, check-in, commands).
//!
//! What it leaves out, on purpose: TLS (a real Mac needs HTTPS, from a
//! TLS-terminating proxy or as in `examples/server/`), persistence (the
//! [`MemoryStore`] and the keys generated at start are gone on restart),
//! APNs (pushes are printed), body and time limits per endpoint, a portal.
//! `examples/server/` is the same wiring with all of those.
//!
//! Try it: steps 2–4 answer with a signed Profile Service profile,
//! `curl -sd 'username=demo&password=demo&domain=example.com'
//! http://127.0.0.1:8080/demo/enroll | cargo run -q --example inspect -- profile /dev/stdin`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use mdm_enroll::activation::{
    Channel, LoginAttempt, Policy, PushTarget, Secret, TenantId, UserAccount,
};
use mdm_enroll::cms::{Certificate, DeviceAttributesVerifier, TrustAnchors};
use mdm_enroll::crypto::{RsaKey, constant_time_eq};
use mdm_enroll::http::Body;
use mdm_enroll::pki;
use mdm_enroll::profile::ValidationOptions;
use mdm_enroll::scep::ScepResponder;
use mdm_enroll::service::{
    Engine, EngineConfig, EnrollmentConfig, EnrollmentService, InitialConfiguration, MdmService,
};
use mdm_enroll::store::{Directory, DirectoryError, MemoryStore, PushError, PushSender};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Service = EnrollmentService<MemoryStore, OneUser, PrintPush>;

/// The directory (step 2): one user, compared in constant time.
struct OneUser {
    username: String,
    password: Secret,
}

impl Directory for OneUser {
    fn check_credentials(&self, _: &TenantId, a: &LoginAttempt) -> Result<bool, DirectoryError> {
        let same = constant_time_eq(
            self.password.expose().as_bytes(),
            a.password.expose().as_bytes(),
        );
        Ok(same && a.username == self.username)
    }
}

/// The push transport: a real server hands this to an APNs client.
struct PrintPush;

impl PushSender for PrintPush {
    fn push(&self, _: &TenantId, channel: &Channel, t: &PushTarget) -> Result<(), PushError> {
        println!("push for {} on {} (not sent)", channel.device_id, t.topic);
        Ok(())
    }
}

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// A CA (signs profiles, issues identities through SCEP) and the service.
fn service(base_url: String) -> Result<Service, BoxError> {
    let key = Arc::new(RsaKey::generate(&mut getrandom::SysRng, 2048)?);
    let validity = pki::validity(SystemTime::now(), Duration::from_secs(365 * 86400))?;
    let serial = pki::random_serial(&mut rng());
    let ca = pki::create_ca(key.as_ref(), "CN=embed demo CA".parse()?, serial, validity)?;
    let ca = Certificate::from_der(&pki::to_der(&ca)?)?;

    let tenant = TenantId::new("demo")?;
    let users = OneUser {
        username: "demo".into(),
        password: Secret::new("demo"),
    };
    let engine = Engine::new(
        MemoryStore::new(),
        users,
        PrintPush,
        EngineConfig::default(),
    );
    engine.provision_user(&UserAccount {
        tenant,
        username: "demo".into(),
        domain: "example.com".into(),
        policy: Policy::default(),
    })?;
    // Phase 2: Apple's device CA (built in); phase 3: identities we issued.
    let verifier = DeviceAttributesVerifier::new(TrustAnchors::from_certificates([ca.clone()]));
    let mdm =
        MdmService::new(engine, InitialConfiguration::default()).with_attributes_verifier(verifier);
    let scep = ScepResponder::new(ca.der(), key.clone(), key.clone())?;
    let mut config = EnrollmentConfig::new(base_url, "com.apple.mgmt.External.demo", key, ca, scep);
    config.validation = ValidationOptions::allowing_http(); // no TLS here
    Ok(EnrollmentService::new(mdm, config))
}

/// Every route: `<tenant>/enroll`, `/profile-service`, `/scep`, `/mdm`.
async fn handle(State(service): State<Arc<Service>>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 4 << 20).await else {
        return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let request = axum::http::Request::from_parts(parts, body.to_vec()).into();
    // RSA signing and decryption happen inside: keep them off the reactor.
    let work = move || service.handle(&request, SystemTime::now(), &mut rng());
    let Ok((response, events)) = tokio::task::spawn_blocking(work).await else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    for e in events {
        println!("activation {}: {:?}", e.activation.as_str(), e.kind);
    }
    // The body as it is: a delivered command's is the store's own buffer.
    match axum::http::Response::<Body>::try_from(response) {
        Ok(r) => r.map(|b| axum::body::Body::from(axum::body::Bytes::from_owner(b))),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

const FORM: &str = "<form method=post action=/demo/enroll>\
<input name=username value=demo><input name=password type=password>\
<input name=domain value=example.com><button>Activate this Mac</button></form>";

/// `embed [ADDR]`: listen on ADDR (default 127.0.0.1:8080).
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let listen = std::env::args().nth(1);
    let listener =
        tokio::net::TcpListener::bind(listen.as_deref().unwrap_or("127.0.0.1:8080")).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { Html(FORM) }))
        .fallback(handle)
        .with_state(Arc::new(service(base_url.clone())?));
    println!("{base_url}/ (user demo, password demo)");
    axum::serve(listener, app).await?;
    Ok(())
}
