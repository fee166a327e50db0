//! The endpoints as synchronous functions over the crate's neutral
//! `http::Request`/`Response` (the axum glue in `main.rs` runs them on the
//! blocking pool: they sign with RSA and write to SQLite).

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::{ActivationError, LoginAttempt, Secret, TenantId};
use mdm_enroll::http::{Request, Response};
use mdm_enroll::service::{EnrollmentService, Event, EventKind, ServiceError};
use mdm_enroll::store::{Directory, StoreError, UserStore};

pub use crate::secrets::Users;

use crate::html::{esc, page};
use crate::login_tokens::LoginTokens;
use crate::throttle::Throttle;
use crate::tls::Pki;

/// The crate's driver for every device-facing endpoint, as this server uses it.
pub type Service = EnrollmentService<crate::store::ServerStore, Users, ServerPush>;

pub use crate::push::ServerPush;

/// What the server keeps per tenant besides its enrollment configuration.
pub struct TenantInfo {
    pub id: TenantId,
    /// The tenant's SCEP CA certificate (shown on the admin page).
    pub ca: mdm_enroll::cms::Certificate,
    /// The tenant's push certificate, if it has one.
    pub push_certificate: Option<mdm_enroll::push::PushCertificate>,
}

/// Everything a request needs.
pub struct App {
    /// The default tenant: the single-tenant paths are its.
    pub tenant: TenantId,
    /// Every tenant served, the default first.
    pub tenants: Vec<TenantInfo>,
    pub service: Service,
    pub pki: Pki,
    pub admin: (String, String),
    /// Failed logins per (username, address).
    pub throttle: Throttle,
    /// Portal sign-ins waiting for their activation.
    pub login_tokens: LoginTokens,
    /// Permits for unauthenticated RSA work (`/scep`, `/enroll`).
    pub rsa_work: crate::permits::RsaPermits,
    /// The default tenant's push certificate (`--push-cert`), shown on the admin page.
    pub push_certificate: Option<mdm_enroll::push::PushCertificate>,
}

/// A request's tenant and the path prefix its links keep (`` for the
/// default tenant's single-tenant paths, `/t/<id>` under the tenant routes).
pub struct TenantRoute {
    pub tenant: TenantId,
    pub prefix: String,
}

pub fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn html(status: u16, body: String) -> Response {
    let mut r = Response::with_body(status, "text/html; charset=utf-8", body.into_bytes());
    r.headers.push(("Cache-Control".into(), "no-store".into()));
    r.headers.push((
        "Content-Security-Policy".into(),
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'".into(),
    ));
    r
}

fn error_page(status: u16, message: &str) -> Response {
    html(
        status,
        page(
            "Activation refused",
            &format!(
                "<p class=\"err\">{}</p><p><a href=\"/\">Back</a></p>",
                esc(message)
            ),
        ),
    )
}

/// Parse an `application/x-www-form-urlencoded` body.
fn form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| mdm_enroll::http::percent_decode(&s.replace('+', " "));
            Some((dec(k)?, dec(v)?))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
fn form_encode(pairs: &[(&str, &str)]) -> Vec<u8> {
    let enc = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

fn attempt(fields: &[(String, String)]) -> LoginAttempt {
    LoginAttempt {
        username: field(fields, "username").trim().to_owned(),
        password: Secret::new(field(fields, "password")),
        domain: field(fields, "domain").trim().to_owned(),
    }
}

impl App {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    /// Every tenant served, the default first.
    pub fn tenant_ids(&self) -> impl Iterator<Item = &TenantId> {
        self.tenants.iter().map(|t| &t.id)
    }

    /// The tenant `path` is for: `/t/<id>/…` names a served tenant (`None`
    /// for any other: 404), every other path is the default tenant's.
    pub fn resolve(&self, path: &str) -> Option<TenantRoute> {
        match crate::tenants::split_path(path) {
            None => Some(TenantRoute {
                tenant: self.tenant.clone(),
                prefix: String::new(),
            }),
            Some((id, _)) => {
                let tenant = self.tenant_ids().find(|t| t.as_str() == id)?.clone();
                Some(TenantRoute {
                    prefix: format!("{}/{tenant}", crate::tenants::PREFIX),
                    tenant,
                })
            }
        }
    }

    /// Write the steps reached into `tenant`'s timeline and log every event.
    pub fn record(&self, tenant: &TenantId, events: &[Event]) {
        let now = self.now();
        for e in events {
            tracing::info!(%tenant, activation = %e.activation.as_str(), event = ?e.kind, "activation event");
            if let EventKind::Reached(step) = e.kind
                && let Err(err) =
                    self.service
                        .engine()
                        .store()
                        .record_step(tenant, &e.activation, step, now)
            {
                tracing::warn!(%err, "could not record step");
            }
        }
    }

    /// `GET /` (and `/t/<id>/`): the login form.
    pub fn portal(&self, req: &Request) -> Response {
        let Some(route) = self.resolve(&req.path) else {
            return error_page(404, "no such tenant");
        };
        html(
            200,
            page("Activate your Mac", &portal_form(&route.prefix, "", "")),
        )
    }

    /// `POST /`: check the credentials, list the user's devices, offer
    /// activation. The directory is asked before the store, so an unknown
    /// username costs the same password-hash work as a known one.
    pub fn portal_login(&self, req: &Request, peer: IpAddr) -> Response {
        let Some(TenantRoute { tenant, prefix }) = self.resolve(&req.path) else {
            return error_page(404, "no such tenant");
        };
        let fields = form(&req.body);
        let attempt = attempt(&fields);
        let now = self.now();
        let throttled = throttle_key(&tenant, &attempt.username);
        if let Some(wait) = self.throttle.check(&throttled, peer, now) {
            return too_many_attempts(wait);
        }
        let store = self.service.engine().store();
        let verified = match self
            .service
            .engine()
            .directory()
            .check_credentials(&tenant, &attempt)
        {
            Ok(v) => v,
            Err(e) => return internal_error(&e, e.is_transient()),
        };
        let user = match store.user(&tenant, &attempt.username) {
            Ok(Some(u)) if verified && u.domain.eq_ignore_ascii_case(&attempt.domain) => u,
            Ok(_) => {
                self.throttle.failed(&throttled, peer, now);
                return login_failed(&prefix, &attempt);
            }
            Err(e) => return internal_error(&e, e.is_transient()),
        };
        self.throttle.succeeded(&throttled, peer);
        let devices = store.devices(&tenant, &user.username).unwrap_or_default();
        let mut body = format!(
            "<p>Signed in as <b>{}</b>@{}.</p><h2>Your devices</h2>",
            esc(&user.username),
            esc(&user.domain)
        );
        if devices.is_empty() {
            body.push_str("<p id=\"devices\">No devices yet.</p>");
        } else {
            body.push_str("<ul id=\"devices\">");
            for d in &devices {
                body.push_str(&format!("<li>{}</li>", esc(d)));
            }
            body.push_str("</ul>");
        }
        if let Some(max) = user.policy.max_devices {
            body.push_str(&format!(
                "<p>{} of {} devices used.</p>",
                devices.len(),
                max
            ));
        }
        body.push_str(&format!(
            "<form method=\"post\" action=\"{}\">",
            esc(&activate_path(&prefix))
        ));
        // A sign-in token, never the password, goes back into the page.
        body.push_str(&format!(
            "<input type=\"hidden\" name=\"login_token\" value=\"{}\">",
            esc(&self.login_tokens.issue(&tenant, &attempt, now))
        ));
        // The activation's language: the browser's first Accept-Language
        // tag, if it is one (the crate refuses anything else).
        let language = req
            .header("accept-language")
            .and_then(|l| l.split([',', ';']).next())
            .map(str::trim)
            .filter(|l| {
                (1..=35).contains(&l.len())
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .unwrap_or_default();
        body.push_str(&format!(
            "<input type=\"hidden\" name=\"language\" value=\"{}\">",
            esc(language)
        ));
        if let Some(notice) = &user.policy.organisation_notice {
            body.push_str(&format!(
                "<p class=\"notice\">{}</p><p><label><input type=\"checkbox\" name=\"accept_notice\" value=\"1\" required> I accept</label></p>",
                esc(notice)
            ));
        } else {
            body.push_str("<input type=\"hidden\" name=\"accept_notice\" value=\"1\">");
        }
        body.push_str(
            "<p><button id=\"activate\" type=\"submit\">Activate this Mac</button></p></form>",
        );
        html(200, page("Activate your Mac", &body))
    }

    /// `POST /self-service/activate`: steps 2–4, through
    /// [`EnrollmentService::self_service`]; a refusal is an HTML page. It
    /// checks the password too, so it shares the portal's login throttle.
    ///
    /// The portal's form carries a sign-in token ([`LoginTokens`]): its
    /// credentials are put back into the form the crate reads. A form with
    /// the credentials themselves (a script, the simulated device) works too.
    pub fn activate(&self, req: &Request, peer: IpAddr) -> Response {
        let Some(TenantRoute { tenant, .. }) = self.resolve(&req.path) else {
            return error_page(404, "no such tenant");
        };
        let fields = form(&req.body);
        let now = self.now();
        let token = field(&fields, "login_token").to_owned();
        let signed_in = if token.is_empty() {
            None
        } else {
            match self.login_tokens.get(&tenant, &token, now) {
                Some(a) => Some(a),
                None => return error_page(403, "Your sign-in expired: sign in again."),
            }
        };
        let username = match &signed_in {
            Some(a) => a.username.clone(),
            None => attempt(&fields).username,
        };
        let username = throttle_key(&tenant, &username);
        if let Some(wait) = self.throttle.check(&username, peer, now) {
            return too_many_attempts(wait);
        }
        let rebuilt;
        let req = match &signed_in {
            None => req,
            Some(a) => {
                let mut pairs = vec![
                    ("username", a.username.as_str()),
                    ("password", a.password.expose()),
                    ("domain", a.domain.as_str()),
                ];
                pairs.extend(
                    fields
                        .iter()
                        .filter(|(k, _)| k == "accept_notice" || k == "language")
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
                let mut r = req.clone();
                r.body = form_encode(&pairs);
                rebuilt = r;
                &rebuilt
            }
        };
        match self.service.self_service(&tenant, req, now, &mut rng()) {
            Ok(out) => {
                self.login_tokens.forget(&token);
                self.throttle.succeeded(&username, peer);
                self.record(&tenant, &out.events);
                let mut r = out.value;
                r.headers.push((
                    "Content-Disposition".into(),
                    "attachment; filename=\"activate.mobileconfig\"".into(),
                ));
                r
            }
            Err(e) => {
                if matches!(e, ServiceError::Activation(ActivationError::BadCredentials)) {
                    self.throttle.failed(&username, peer, now);
                }
                tracing::info!(error = %e, "self-service activation refused");
                if e.is_transient() {
                    return retry_later(Duration::from_secs(u64::from(
                        ServiceError::RETRY_AFTER_SECS,
                    )));
                }
                error_page(e.http_status(), &refusal(&e))
            }
        }
    }

    /// `POST /enroll` (steps 5–6), `GET|POST /scep` (7–8), `PUT /mdm/checkin`
    /// and `PUT /mdm/connect` (9–13): the crate's driver routes them by the
    /// single-tenant paths it was configured with.
    pub fn device(&self, req: &Request) -> Response {
        let (response, events) = self.service.handle(req, self.now(), &mut rng());
        if let Ok(route) = self.service.config().route(&req.path) {
            self.record(&route.tenant, &events);
        }
        if response.status >= 400 {
            tracing::info!(path = %req.path, status = response.status, "device request refused");
        }
        response
    }
}

/// The self-service activation path under `prefix`: the default tenant's
/// `/self-service/activate`, or `/t/<id>/enroll`.
fn activate_path(prefix: &str) -> String {
    if prefix.is_empty() {
        "/self-service/activate".into()
    } else {
        format!("{prefix}/enroll")
    }
}

/// The throttle counts failed logins per tenant and username (and address).
fn throttle_key(tenant: &TenantId, username: &str) -> String {
    format!("{tenant}/{username}")
}

fn portal_form(prefix: &str, username: &str, domain: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}/\">\
<p><label for=\"username\">Username</label><input id=\"username\" name=\"username\" value=\"{}\" required></p>\
<p><label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" required></p>\
<p><label for=\"domain\">Domain</label><input id=\"domain\" name=\"domain\" value=\"{}\" required></p>\
<p><button id=\"login\" type=\"submit\">Sign in</button></p></form>",
        esc(prefix),
        esc(username),
        esc(domain)
    )
}

/// A store or directory failure: logged, never shown; 503 with
/// `Retry-After` when retrying may succeed (`transient`), else 500.
fn internal_error(e: &dyn std::fmt::Display, transient: bool) -> Response {
    tracing::error!(error = %e, transient, "portal request failed");
    if transient {
        return retry_later(Duration::from_secs(u64::from(
            ServiceError::RETRY_AFTER_SECS,
        )));
    }
    error_page(500, "the server could not complete the request")
}

/// 503 with `Retry-After` (whole seconds).
fn retry_later(wait: Duration) -> Response {
    let mut r = error_page(503, "the server is busy: try again in a moment");
    r.headers
        .push(("Retry-After".into(), wait.as_secs().max(1).to_string()));
    r
}

/// 429 with `Retry-After` (whole seconds, rounded up).
pub fn too_many_attempts(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut r = error_page(
        429,
        "Too many failed sign-ins for this username from your address. Try again later.",
    );
    r.headers.push(("Retry-After".into(), secs.to_string()));
    r
}

fn login_failed(prefix: &str, attempt: &LoginAttempt) -> Response {
    html(
        403,
        page(
            "Activate your Mac",
            &format!(
                "<p class=\"err\">Wrong username, password or domain.</p>{}",
                portal_form(prefix, &attempt.username, &attempt.domain)
            ),
        ),
    )
}

/// A user-facing reason (no internals).
fn refusal(e: &ServiceError) -> String {
    match e {
        ServiceError::Activation(a) => a.to_string(),
        ServiceError::Store(StoreError::LimitReached) => "device limit reached".into(),
        ServiceError::BadRequest(why) => why.clone(),
        ServiceError::Command(c) => c.to_string(),
        e @ (ServiceError::UnknownTenant(_) | ServiceError::TopicMismatch { .. }) => e.to_string(),
        // Store and internal failures, and anything a later version adds:
        // no internals in the answer.
        _ => "the server could not complete the request".into(),
    }
}
