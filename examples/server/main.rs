//! `cargo run --example server`: an activation server over the crate —
//! self-service portal, Profile Service, SCEP, MDM check-in and connect, an
//! admin timeline — on axum/hyper with rustls (ring) and a SQLite store.
//!
//! See `--help` for the flags. Production pieces the sans-IO core leaves to
//! the server live here: per-endpoint body limits, request and TLS-handshake
//! timeouts, header-read timeout, graceful shutdown on Ctrl-C/SIGTERM,
//! structured logs via `tracing` (`RUST_LOG=debug` for more).

mod admin;
mod admin_api;
mod cli;
mod html;
mod login_tokens;
mod permits;
mod push;
mod routes;
mod secrets;
mod store;
mod tenants;
mod throttle;
mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::{any, get, post, put};
use hyper_util::rt::{TokioIo, TokioTimer};
use mdm_enroll::activation::{Policy, QueuePolicy, Retention, Secret, TenantId, UserAccount};
use mdm_enroll::cms::{Certificate, DeviceAttributesVerifier, IdentityOptions, TrustAnchors};
use mdm_enroll::crypto::PublicKey;
use mdm_enroll::crypto::{CryptoError, KeyUnwrapper};
use mdm_enroll::http::{Method, Request, Response};
use mdm_enroll::profile::ValidationOptions;
use mdm_enroll::scep::ScepResponder;
use mdm_enroll::service::{
    Engine, EngineConfig, EnrollmentConfig, EnrollmentService, InitialConfiguration, MdmService,
    SingleTenantPaths,
};
use tokio::net::TcpListener;

use routes::{App, ServerPush, Users};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Body limits per endpoint (bytes).
mod limits {
    /// Portal forms.
    pub const FORM: usize = 8 * 1024;
    /// Signed device attributes (a CMS message with the device's certificates).
    pub const ENROLL: usize = 64 * 1024;
    /// SCEP PKIOperation (CSR in an enveloped, signed message).
    pub const SCEP: usize = 64 * 1024;
    /// Check-in messages.
    pub const CHECKIN: usize = 64 * 1024;
    /// Command reports (ProfileList and friends can be large).
    pub const CONNECT: usize = 4 * 1024 * 1024;
    /// Admin API bodies (a command plist may carry a profile).
    pub const ADMIN_API: usize = 4 * 1024 * 1024;
}

/// Whole-request timeout (read body, handle, respond).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// TLS handshake and request-header timeouts (slow-loris guard).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long graceful shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long an unauthenticated RSA request waits for a permit before 503.
const RSA_QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Sustained permits for unauthenticated RSA work: one fewer than the cores
/// (at least one), so a flood of SCEP or `/enroll` requests always leaves a
/// core for check-ins, the portal and `/healthz` (plus one burst permit while
/// nobody queues: `permits.rs`).
fn rsa_permits() -> usize {
    cores().saturating_sub(1).max(1)
}

/// The cores this process may use.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Per-connection facts handed to handlers.
#[derive(Clone, Debug)]
struct ConnInfo {
    peer: SocketAddr,
    client_certificate: Option<Vec<u8>>,
}

fn random_secret() -> String {
    Secret::random(&mut rand_core::UnwrapErr(getrandom::SysRng))
        .expose()
        .chars()
        .take(20)
        .collect()
}

/// A handler: the app, the request and the client's address.
type Handler = fn(&App, &Request, IpAddr) -> Response;

/// 503 with `Retry-After` when the RSA permits stay taken.
fn busy() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [("Retry-After", RSA_QUEUE_WAIT.as_secs().to_string())],
        "busy, retry later\n",
    )
        .into_response()
}

/// How an endpoint's handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// Unauthenticated RSA work (`/scep`, `/enroll`): under an RSA permit
    /// (see `permits.rs`), on the worker that read the request when the
    /// permit allows it.
    Rsa,
    /// Everything else (check-ins, pages, sign-ins, the admin API):
    /// `block_in_place`.
    Other,
}

/// Read the body (at most `limit` bytes), then run `f`. [`Work::Rsa`]
/// requests first take an RSA permit, waiting at most [`RSA_QUEUE_WAIT`],
/// else answer 503.
///
/// Where `f` runs: `block_in_place` (the runtime must be multi-threaded, as
/// `#[tokio::main]` makes it) hands the worker's other tasks to another
/// thread, so a handler that blocks (argon2 sign-ins, a store waiting out
/// another process's lock) never stalls the runtime. A handler whose RSA
/// permit says [`permits::RsaPermit::on_worker`] runs directly on the worker
/// instead: its work is bounded (a few RSA operations and store calls), and
/// once requests queue no new handler takes a worker (a request that waited
/// runs under `block_in_place`; no burst permit is given), so the workers
/// are free again as soon as the handlers already running finish. Skipping
/// the hand-off is worth ~30 % of SCEP throughput with two clients on two
/// cores (`benches/README.md`).
///
/// A request timeout (the `TimeoutLayer`) drops this future only between
/// polls, never inside `f`: `f` runs to completion within one poll, so a
/// store lock taken inside `f` is always released by `f` itself, and the RSA
/// permit, moved into `f`, is returned only when the work is really done.
async fn dispatch(
    app: Arc<App>,
    req: axum::extract::Request,
    limit: usize,
    work: Work,
    f: Handler,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let conn = parts.extensions.get::<ConnInfo>().cloned();
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return (
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {limit} bytes"),
            )
                .into_response();
        }
    };
    let request = Request {
        method: Method::parse(parts.method.as_str()),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        tls_client_certificate: conn.as_ref().and_then(|c| c.client_certificate.clone()),
    };
    // The permit is taken once the body is in: a slow upload holds none.
    let permit = match work {
        Work::Rsa => match app.rsa_work.acquire(RSA_QUEUE_WAIT).await {
            Some(p) => Some(p),
            None => return busy(),
        },
        Work::Other => None,
    };
    let on_worker = permit.as_ref().is_some_and(|p| p.on_worker);
    let burst = permit.as_ref().is_some_and(|p| p.burst);
    let peer = conn.map(|c| c.peer);
    let ip = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip());
    // A panic in `f` (a bug) answers 500.
    let run = move || {
        let response =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&app, &request, ip)));
        drop(permit);
        response
    };
    let response = if on_worker {
        run()
    } else {
        tokio::task::block_in_place(run)
    }
    .unwrap_or_else(|_| {
        tracing::error!("handler panicked");
        Response::with_body(500, "text/plain", b"internal error".to_vec())
    });
    tracing::debug!(?peer, status = response.status, burst, "handled");
    let mut builder = axum::http::Response::builder().status(response.status);
    for (k, v) in &response.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    // `from_owner` keeps the body as it is: a delivered command's body is
    // the store's buffer, sent without a copy.
    builder
        .body(axum::body::Body::from(axum::body::Bytes::from_owner(
            response.body,
        )))
        .unwrap_or_else(|_| {
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "bad response",
            )
                .into_response()
        })
}

/// An axum handler running `f` with a body limit of `limit` bytes;
/// `rsa` endpoints (unauthenticated RSA work) run under the RSA permits;
/// `peer` handlers also get the client's address.
macro_rules! endpoint {
    (rsa $limit:expr, $f:expr) => {
        move |State(app): State<Arc<App>>, req: axum::extract::Request| async move {
            dispatch(app, req, $limit, Work::Rsa, |a, r, _| ($f)(a, r)).await
        }
    };
    (peer $limit:expr, $f:expr) => {
        move |State(app): State<Arc<App>>, req: axum::extract::Request| async move {
            dispatch(app, req, $limit, Work::Other, $f).await
        }
    };
    ($limit:expr, $f:expr) => {
        move |State(app): State<Arc<App>>, req: axum::extract::Request| async move {
            dispatch(app, req, $limit, Work::Other, |a, r, _| ($f)(a, r)).await
        }
    };
}

fn router(app: Arc<App>) -> Router {
    use tower_http::timeout::TimeoutLayer;
    use tower_http::trace::TraceLayer;
    // Each route's handlers, once: the default tenant's single-tenant
    // paths and every tenant's /t/<id>/ paths (see tenants.rs; the handlers
    // take the tenant from the path and answer 404 for one not served).
    let portal =
        get(endpoint!(0, App::portal)).post(endpoint!(peer limits::FORM, App::portal_login));
    let activate = post(endpoint!(peer limits::FORM, App::activate));
    let profile_service = post(endpoint!(rsa limits::ENROLL, App::device));
    let scep = get(endpoint!(rsa limits::SCEP, App::device))
        .post(endpoint!(rsa limits::SCEP, App::device));
    let admin_page = get(endpoint!(0, admin::page_for));
    let admin_api = any(endpoint!(limits::ADMIN_API, admin_api::handle));
    Router::new()
        .route("/", portal.clone())
        .route("/self-service/activate", activate.clone())
        .route("/enroll", profile_service.clone())
        .route("/scep", scep.clone())
        .route("/mdm/checkin", put(endpoint!(limits::CHECKIN, App::device)))
        .route("/mdm/connect", put(endpoint!(limits::CONNECT, App::device)))
        .route("/admin", admin_page.clone())
        .route("/admin/api/{*rest}", admin_api.clone())
        .route("/t/{tenant}/", portal.clone())
        .route("/t/{tenant}", portal)
        .route("/t/{tenant}/enroll", activate)
        .route("/t/{tenant}/profile-service", profile_service)
        .route("/t/{tenant}/scep", scep)
        // Check-in and connect share one URL, told apart by Content-Type.
        .route(
            "/t/{tenant}/mdm",
            put(endpoint!(limits::CONNECT, App::device)),
        )
        .route("/t/{tenant}/admin", admin_page)
        .route("/t/{tenant}/admin/api/{*rest}", admin_api)
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Accept connections until the shutdown signal, then drain in-flight requests.
async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connections: permits::Connections,
) -> Result<(), BoxError> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let open = connections.open();
        tokio::spawn(async move {
            let _open = open;
            let builder = {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(TokioTimer::new())
                    .header_read_timeout(HANDSHAKE_TIMEOUT)
                    .max_buf_size(64 * 1024);
                b
            };
            let serve_io = |io, client_certificate: Option<Vec<u8>>| {
                let info = ConnInfo {
                    peer,
                    client_certificate,
                };
                let svc = tower::ServiceExt::map_request(
                    router,
                    move |mut req: axum::http::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(info.clone());
                        req
                    },
                );
                let svc = hyper_util::service::TowerToHyperService::new(svc);
                watcher.watch(builder.serve_connection(TokioIo::new(io), svc))
            };
            let result = match tls {
                None => serve_io(Box::new(tcp) as Box<dyn Io>, None).await,
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.as_ref().to_vec());
                    serve_io(Box::new(stream) as Box<dyn Io>, cert).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down: waiting for in-flight requests");
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time");
    }
    Ok(())
}

/// A connection's byte stream (TCP or TLS).
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A generated password kept in `<data>/<file>` (mode 0600) so it survives
/// restarts. Announced on stdout as `<who>, password …`: the password itself
/// only when it was created now, afterwards where it is kept.
fn remembered_password(data: &std::path::Path, file: &str, who: &str) -> Result<String, BoxError> {
    let path = data.join(file);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => {
            println!("{who}, password in {}", path.display());
            Ok(s.trim().to_owned())
        }
        _ => {
            let password = random_secret();
            tls::write_private(&path, &format!("{password}\n"))?;
            println!("{who}, password {password}");
            Ok(password)
        }
    }
}

/// The APNs client and the queue its task drains, when a push certificate is given.
type ApnsWorker = (
    mdm_enroll::push::apns::ApnsClient,
    tokio::sync::mpsc::Receiver<push::Job>,
);

/// The engine tuning the queue flags ask for.
fn engine_config(config: &cli::Config) -> EngineConfig {
    let defaults = QueuePolicy::default();
    let mut queue = defaults.with_expiry(config.command_expiry);
    if let Some(n) = config.keep_results {
        queue = queue.with_retention(if n == 0 {
            Retention::DeleteOnFinish
        } else {
            Retention::KeepLast(n)
        });
    }
    if let Some(lease) = config.delivery_lease {
        queue = queue.with_delivery_lease(lease);
    }
    EngineConfig::default().with_queue(queue)
}

/// Every tenant served: the default (`--tenant`, first), the other
/// `--tenant`s, then the tenants file's.
fn tenant_specs(config: &cli::Config) -> Result<Vec<tenants::TenantSpec>, BoxError> {
    let mut specs = vec![tenants::TenantSpec::new(TenantId::new(
        config.tenant.clone(),
    )?)];
    for id in &config.extra_tenants {
        specs.push(tenants::TenantSpec::new(TenantId::new(id.clone())?));
    }
    if let Some(path) = &config.tenants_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("tenants file {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        for spec in tenants::parse_tenants_file(&text, base)? {
            if specs.iter().any(|s| s.id == spec.id) {
                return Err(format!(
                    "tenant {} is named by --tenant and in the tenants file",
                    spec.id
                )
                .into());
            }
            specs.push(spec);
        }
    }
    Ok(specs)
}

/// The default tenant's self-service users: `--user`, then `--users-file`,
/// else the demo user (password kept in `<data>/demo-password`).
fn default_users(config: &cli::Config) -> Result<Vec<secrets::UserLine>, BoxError> {
    let mut specs: Vec<secrets::UserLine> = config
        .users
        .iter()
        .map(|u| {
            (
                u.name.clone(),
                secrets::Password::Plain(u.password.clone()),
                u.domain.clone(),
            )
        })
        .collect();
    if let Some(path) = &config.users_file {
        specs.extend(users_file(path)?);
    }
    if specs.is_empty() {
        specs.push(demo_user(&config.data, "demo user")?);
    }
    Ok(specs)
}

fn users_file(path: &std::path::Path) -> Result<Vec<secrets::UserLine>, BoxError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("users file {}: {e}", path.display()))?;
    Ok(secrets::parse_users_file(&text)?)
}

/// The demo user `demo@example.com`, its password generated once and kept
/// in `<dir>/demo-password`.
fn demo_user(dir: &std::path::Path, who: &str) -> Result<secrets::UserLine, BoxError> {
    let password = remembered_password(
        dir,
        "demo-password",
        &format!("{who}: username demo, domain example.com"),
    )?;
    Ok((
        "demo".into(),
        secrets::Password::Plain(password),
        "example.com".into(),
    ))
}

/// One tenant's enrollment configuration: its SCEP CA and RA, profile
/// signer and push topic; the URLs, lifetimes and renewal policy from the
/// flags. Every tenant is routed under [`tenants::PREFIX`]; the default one
/// also keeps the single-tenant paths.
fn enrollment_config(
    config: &cli::Config,
    base_url: &str,
    topic: String,
    keys: (&tls::Identity, &tls::Identity, &tls::Identity),
    default: &TenantId,
) -> Result<EnrollmentConfig, BoxError> {
    let (ca, ra, signer) = keys;
    // One key per role: the CA key signs certificates and never decrypts;
    // the RA key decrypts requests and signs CertReps.
    let scep = ScepResponder::new(
        ca.cert.der(),
        ca.key.clone(),
        Arc::new(NoDecryption(ca.key.public_key().clone())),
    )?
    .with_ra(ra.cert.der(), ra.key.clone(), ra.key.clone())?;
    let mut enrollment = EnrollmentConfig::new(
        base_url,
        topic,
        signer.key.clone(),
        signer.cert.clone(),
        scep,
    );
    enrollment.profile_chain = vec![ca.cert.clone()];
    enrollment.identity_lifetime = config.identity_lifetime;
    // The challenge lives as long as an attempt may take.
    enrollment.renewal = mdm_enroll::service::RenewalPolicy::new(config.renew_before)
        .with_retries(config.renewal_timeout, config.renewal_retry, 10)
        .with_challenge_ttl(config.renewal_timeout);
    enrollment.organization = Some("mdm-enroll".into());
    enrollment.prefix = tenants::PREFIX.into();
    enrollment.single_tenant = Some(SingleTenantPaths {
        tenant: default.clone(),
        self_service: "/self-service/activate".into(),
        profile_service: "/enroll".into(),
        scep: "/scep".into(),
        server: "/mdm/connect".into(),
        check_in: "/mdm/checkin".into(),
    });
    if enrollment.base_url.starts_with("http://") {
        enrollment.validation = ValidationOptions::allowing_http();
    }
    Ok(enrollment)
}

/// A tenant's push sender from its push setup: an APNs queue (and the
/// worker to spawn) with a push certificate, else the log.
fn tenant_push(
    config: &cli::Config,
    store: &store::ServerStore,
    tenant: &TenantId,
    setup: push::PushSetup,
) -> Result<(push::TenantPush, Option<ApnsWorker>), BoxError> {
    match setup.identity {
        Some(identity) => {
            push::check_enrolled_topic(store, tenant, identity.certificate())?;
            let client = push::client(identity, config)?;
            let (sender, jobs) = push::apns_queue(setup.topic);
            Ok((sender, Some((client, jobs))))
        }
        None => Ok((push::TenantPush::Log, None)),
    }
}

fn build_app(
    config: &cli::Config,
    base_url: String,
    push_setup: push::PushSetup,
) -> Result<(App, Vec<ApnsWorker>), BoxError> {
    let specs = tenant_specs(config)?;
    let tenant = TenantId::new(config.tenant.clone())?;
    let host = url_host(&base_url);
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if let Some(h) = host.filter(|h| !hosts.contains(h)) {
        hosts.push(h);
    }
    let passphrase = secrets::env_secret(secrets::KEY_PASSPHRASE_ENV);
    let pki = tls::load_or_create(&config.data, &hosts, passphrase.as_deref())?;
    let store = store::ServerStore::open(config)?;

    let mut sender = ServerPush::default();
    let mut workers = Vec::new();
    let mut users = Users::new()?;
    let mut accounts: Vec<UserAccount> = Vec::new();
    let mut infos = Vec::new();
    let mut configs: HashMap<TenantId, Arc<EnrollmentConfig>> = HashMap::new();
    let mut default_push = Some(push_setup);
    for spec in &specs {
        let is_default = spec.id == tenant;
        let own;
        let keys = if is_default {
            (&pki.ca, &pki.ra, &pki.signer)
        } else {
            let dir = tenants::data_dir(&config.data, &spec.id, &tenant);
            own = tls::tenant_folder_pki(&dir, passphrase.as_deref(), spec.id.as_str())?;
            (&own.ca, &own.ra, &own.signer)
        };
        let setup = match default_push.take().filter(|_| is_default) {
            Some(setup) => setup,
            None => push::setup_tenant(config, spec)?,
        };
        let push_certificate = setup.identity.as_ref().map(|i| i.certificate().clone());
        let topic = setup.topic.clone();
        let (tenant_sender, worker) = tenant_push(config, &store, &spec.id, setup)?;
        sender.insert(spec.id.clone(), tenant_sender);
        workers.extend(worker);

        let lines = if is_default {
            default_users(config)?
        } else if let Some(path) = &spec.users_file {
            users_file(path)?
        } else {
            let dir = tenants::data_dir(&config.data, &spec.id, &tenant);
            vec![demo_user(&dir, &format!("tenant {} demo user", spec.id))?]
        };
        for (name, password, domain) in &lines {
            users.add(&spec.id, name, password)?;
            accounts.push(UserAccount {
                tenant: spec.id.clone(),
                username: name.clone(),
                domain: domain.clone(),
                policy: Policy::default(),
            });
        }

        let mut enrollment = enrollment_config(config, &base_url, topic, keys, &tenant)?;
        if is_default {
            enrollment.static_scep_challenge = static_challenge(config)?.map(Secret::new);
        }
        infos.push(routes::TenantInfo {
            id: spec.id.clone(),
            ca: keys.0.cert.clone(),
            push_certificate,
        });
        configs.insert(spec.id.clone(), Arc::new(enrollment));
    }

    let engine = Engine::new(store, users, sender, engine_config(config));
    for account in &accounts {
        engine.provision_user(account)?;
    }

    let admin_user = config.admin_user.clone().unwrap_or_else(|| "admin".into());
    let admin = match (&config.admin, &config.admin_password_file) {
        (Some(a), _) => a.clone(),
        (None, Some(path)) => (
            admin_user,
            secrets::read_secret_file(path, "admin password")?,
        ),
        (None, None) => match secrets::env_secret(secrets::ADMIN_PASSWORD_ENV) {
            Some(p) => (admin_user, p),
            None => {
                let password = remembered_password(
                    &config.data,
                    "admin-password",
                    &format!("admin: username {admin_user}"),
                )?;
                (admin_user, password)
            }
        },
    };

    // Device attributes: Apple's device CA (built in), test device CAs from
    // --device-ca, and every tenant's CA for phase-3 (re-enrollment) answers.
    let mut verifier = DeviceAttributesVerifier::new(TrustAnchors::from_certificates(
        infos.iter().map(|t| t.ca.clone()),
    ));
    for path in &config.device_cas {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for cert in Certificate::from_pem(&pem)? {
            verifier.add_device_anchor(cert);
        }
    }
    // A forwarded certificate header only when asked for
    // (--client-cert-header, with --http behind a TLS proxy that sets it and
    // strips any client-sent one): otherwise any client could name any
    // device's certificate in a header.
    let identity = IdentityOptions::default()
        .with_forwarded_certificate_header(config.client_cert_header.clone());
    let mut mdm = MdmService::new(engine, InitialConfiguration::default())
        .with_attributes_verifier(verifier)
        .with_identity_options(identity);
    if config.ddm {
        // A second connection to the same store for the DDM documents.
        let declarations = Arc::new(store::ServerStore::open(config)?);
        mdm = mdm.with_declarations(declarations, demo_declarations()?);
    }
    if static_challenge(config)?.is_some() {
        tracing::warn!(
            "a static SCEP challenge is on: any SCEP client knowing it gets a certificate \
             (bound to no device; device activations still use one-time challenges)"
        );
        println!("warning: a static SCEP challenge is on");
    }
    let routing = configs
        .get(&tenant)
        .map(|c| EnrollmentConfig::clone(c))
        .ok_or("the default tenant has no configuration")?;
    let push_certificate = infos.first().and_then(|t| t.push_certificate.clone());
    let app = App {
        tenant,
        tenants: infos,
        service: EnrollmentService::with_tenants(mdm, routing, configs),
        pki,
        admin,
        throttle: throttle::Throttle::default(),
        login_tokens: login_tokens::LoginTokens::default(),
        rsa_work: permits::RsaPermits::new(config.rsa_permits.unwrap_or_else(rsa_permits), cores()),
        push_certificate,
    };
    Ok((app, workers))
}

/// The static SCEP challenge: `--scep-static-challenge`, its file, or the
/// environment; none by default.
fn static_challenge(config: &cli::Config) -> Result<Option<String>, BoxError> {
    Ok(
        match (
            &config.scep_static_challenge,
            &config.scep_static_challenge_file,
        ) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(path)) => Some(secrets::read_secret_file(path, "SCEP static challenge")?),
            (None, None) => secrets::env_secret(secrets::SCEP_CHALLENGE_ENV),
        },
    )
}

/// The CA's stand-in decryption key: it refuses, so the CA key is never a
/// decryption oracle (SCEP requests are for the RA).
struct NoDecryption(PublicKey);

impl KeyUnwrapper for NoDecryption {
    fn public_key(&self) -> &PublicKey {
        &self.0
    }

    fn unwrap_key(&self, _: &[u8], _: usize) -> Result<Vec<u8>, CryptoError> {
        Err(CryptoError::Backend(
            "the CA key does not decrypt: encrypt to the RA".into(),
        ))
    }
}

/// `server hash-password`: the argon2id PHC string of the password on stdin.
fn hash_password_command() -> Result<(), BoxError> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err("no password on stdin".into());
    }
    println!("{}", secrets::hash_password(password)?);
    Ok(())
}

/// The banner's walk-through for a newcomer with a Mac: reaching the
/// server, trusting the CA, installing the profile, and what the missing
/// push certificate means.
fn mac_steps(
    config: &cli::Config,
    base_url: &str,
    local: SocketAddr,
    push_certificate: Option<&mdm_enroll::push::PushCertificate>,
) -> Vec<String> {
    let host = url_host(base_url).unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    let reach = if loopback {
        format!(
            "  1. reach: {host} is this machine only. For a Mac on the network restart with \
             --listen 0.0.0.0:{port} --public-url https://<name the Mac resolves to this machine>:{port} \
             (the TLS certificate is re-issued to name it)",
            port = local.port()
        )
    } else if local.ip().is_loopback() {
        format!(
            "  1. reach: the Mac opens {base_url}, but this server listens on {local} only: \
             add --listen 0.0.0.0:{} so the Mac can connect",
            local.port()
        )
    } else {
        format!(
            "  1. reach: the Mac opens {base_url} ({host} must resolve to this machine; the TLS certificate names it)"
        )
    };
    let ca = config.data.join("ca.pem");
    vec![
        "on the Mac:".to_owned(),
        reach,
        if config.http {
            format!(
                "  2. trust: with --http the TLS proxy in front must present a certificate for {host} \
                 that the Mac trusts (the enrollment profile carries {} as its trust payload)",
                ca.display()
            )
        } else {
            format!(
                "  2. trust the CA: copy {} to the Mac, open it in Keychain Access (System keychain) \
                 and set Trust to Always Trust, or run: sudo security add-trusted-cert -d -r trustRoot \
                 -k /Library/Keychains/System.keychain ca.pem",
                ca.display()
            )
        },
        "  3. open the portal in Safari, sign in, click \"Activate this Mac\", then install the downloaded \
         profile in System Settings > Privacy & Security > Profiles (\"Device Management\" on recent macOS)"
            .to_owned(),
        match push_certificate {
            None => "  4. no APNs push certificate here: pushes are only logged. After the check-in (step 10) a real \
                     Mac waits for a push, so steps 11-13 wait for the Mac's own next check-in (to send pushes: \
                     --push-cert/--push-key or --push-p12; see the README's push section)"
                .to_owned(),
            Some(cert) => format!(
                "  4. pushes go to APNs at {} with topic {} (push certificate valid until {}): after the \
                 check-in (step 10) the Mac is woken for steps 11-13",
                config.apns_url,
                cert.topic(),
                admin::rfc3339(cert.not_after())
            ),
        },
    ]
}

fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    // DNS names are case-insensitive; browsers ask for them in lower case.
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match cli::parse(std::env::args().skip(1)) {
        Ok(cli::Command::Run(c)) => c,
        Ok(cli::Command::Help) => {
            print!("{}", cli::USAGE);
            return;
        }
        Ok(cli::Command::HashPassword) => {
            if let Err(e) = hash_password_command() {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
            return;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{}", cli::USAGE);
            std::process::exit(2);
        }
    };
    for flag in &config.secret_flags {
        eprintln!(
            "warning: {flag} puts a secret on the command line (visible to other users in ps \
             and kept in shell history): use --users-file, --admin-password-file or \
             MDM_ADMIN_PASSWORD, --scep-static-challenge-file or MDM_SCEP_STATIC_CHALLENGE"
        );
    }
    if let Err(e) = run(&config).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(config: &cli::Config) -> Result<(), BoxError> {
    println!(
        "data: {} (the CA and signer private keys: keep this folder private and out of version control)",
        config.data.display()
    );
    let listener = TcpListener::bind(config.listen).await?;
    let local = listener.local_addr()?;
    let base_url = match &config.public_url {
        Some(_) => config.base_url(),
        None => format!("{}://{local}", if config.http { "http" } else { "https" }),
    };
    let push_setup = push::setup(config)?;
    let (app, workers) = build_app(config, base_url.clone(), push_setup)?;
    let app = Arc::new(app);
    for (client, jobs) in workers {
        push::spawn_apns(app.clone(), client, jobs);
    }
    if let Some(warning) = app
        .push_certificate
        .as_ref()
        .and_then(|c| push::expiry_warning(c, std::time::SystemTime::now()))
    {
        tracing::warn!("{warning}");
        println!("warning: {warning}");
    }
    push::spawn_repush(app.clone(), Duration::from_secs(30));
    push::spawn_renewal_sweep(app.clone(), Duration::from_secs(30));
    let tls = if config.http {
        None
    } else {
        let tenant_cas: Vec<Certificate> =
            app.tenants.iter().skip(1).map(|t| t.ca.clone()).collect();
        Some(tokio_rustls::TlsAcceptor::from(tls::server_config(
            &app.pki,
            &tenant_cas,
        )?))
    };
    println!("portal: {base_url}/");
    for line in mac_steps(config, &base_url, local, app.push_certificate.as_ref()) {
        println!("{line}");
    }
    println!("admin: {base_url}/admin");
    for t in app.tenants.iter().skip(1) {
        println!(
            "tenant {id}: portal {base_url}{prefix}/{id}/, admin {base_url}{prefix}/{id}/admin, topic {topic}",
            id = t.id,
            prefix = tenants::PREFIX,
            topic = app
                .service
                .tenant_config(&t.id)
                .map(|c| c.topic.as_str())
                .unwrap_or("-"),
        );
    }
    println!("listening on {local}");
    tracing::info!(%local, tls = !config.http, data = %config.data.display(), "serving");
    let connections = app.rsa_work.connections();
    serve(listener, router(app), tls, connections).await
}

/// `--ddm`: the initial declaration set, an activation of one
/// `management.test` configuration (the device echoes it in its status).
fn demo_declarations() -> Result<mdm_enroll::ddm::DeclarationSet, mdm_enroll::ddm::DdmError> {
    use mdm_enroll::ddm::{Declaration, DeclarationPayload, DeclarationSet};
    let mut set = DeclarationSet::new();
    set.insert(Declaration::new(
        "mdm-enroll.activation",
        DeclarationPayload::ActivationSimple {
            standard_configurations: vec!["mdm-enroll.test".into()],
            predicate: None,
        },
    )?);
    set.insert(Declaration::new(
        "mdm-enroll.test",
        DeclarationPayload::ManagementTest {
            echo: "mdm-enroll".into(),
            return_status: None,
        },
    )?);
    Ok(set)
}
