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

/// Everything a request needs.
pub struct App {
    pub tenant: TenantId,
    pub service: Service,
    pub pki: Pki,
    pub admin: (String, String),
    /// Failed logins per (username, address).
    pub throttle: Throttle,
    /// Portal sign-ins waiting for their activation.
    pub login_tokens: LoginTokens,
    /// Permits for unauthenticated RSA work (`/scep`, `/enroll`).
    pub rsa_work: std::sync::Arc<tokio::sync::Semaphore>,
    /// The push certificate (`--push-cert`), shown on the admin page.
    pub push_certificate: Option<mdm_enroll::push::PushCertificate>,
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

    /// Write the steps reached into the timeline and log every event.
    pub fn record(&self, events: &[Event]) {
        let now = self.now();
        for e in events {
            tracing::info!(activation = %e.activation.as_str(), event = ?e.kind, "activation event");
            if let EventKind::Reached(step) = e.kind
                && let Err(err) = self.service.engine().store().record_step(
                    &self.tenant,
                    &e.activation,
                    step,
                    now,
                )
            {
                tracing::warn!(%err, "could not record step");
            }
        }
    }

    /// `GET /`: the login form.
    pub fn portal(&self) -> Response {
        html(200, page("Activate your Mac", &portal_form("", "")))
    }

    /// `POST /`: check the credentials, list the user's devices, offer
    /// activation. The directory is asked before the store, so an unknown
    /// username costs the same password-hash work as a known one.
    pub fn portal_login(&self, req: &Request, peer: IpAddr) -> Response {
        let fields = form(&req.body);
        let attempt = attempt(&fields);
        let now = self.now();
        if let Some(wait) = self.throttle.check(&attempt.username, peer, now) {
            return too_many_attempts(wait);
        }
        let store = self.service.engine().store();
        let verified = match self
            .service
            .engine()
            .directory()
            .check_credentials(&self.tenant, &attempt)
        {
            Ok(v) => v,
            Err(e) => return internal_error(&e),
        };
        let user = match store.user(&self.tenant, &attempt.username) {
            Ok(Some(u)) if verified && u.domain.eq_ignore_ascii_case(&attempt.domain) => u,
            Ok(_) => {
                self.throttle.failed(&attempt.username, peer, now);
                return login_failed(&attempt);
            }
            Err(e) => return internal_error(&e),
        };
        self.throttle.succeeded(&attempt.username, peer);
        let devices = store
            .devices(&self.tenant, &user.username)
            .unwrap_or_default();
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
        body.push_str("<form method=\"post\" action=\"/self-service/activate\">");
        // A sign-in token, never the password, goes back into the page.
        body.push_str(&format!(
            "<input type=\"hidden\" name=\"login_token\" value=\"{}\">",
            esc(&self.login_tokens.issue(&attempt, now))
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
        let fields = form(&req.body);
        let now = self.now();
        let token = field(&fields, "login_token").to_owned();
        let signed_in = if token.is_empty() {
            None
        } else {
            match self.login_tokens.get(&token, now) {
                Some(a) => Some(a),
                None => return error_page(403, "Your sign-in expired: sign in again."),
            }
        };
        let username = match &signed_in {
            Some(a) => a.username.clone(),
            None => attempt(&fields).username,
        };
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
        match self
            .service
            .self_service(&self.tenant, req, now, &mut rng())
        {
            Ok(out) => {
                self.login_tokens.forget(&token);
                self.throttle.succeeded(&username, peer);
                self.record(&out.events);
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
                error_page(e.http_status(), &refusal(&e))
            }
        }
    }

    /// `POST /enroll` (steps 5–6), `GET|POST /scep` (7–8), `PUT /mdm/checkin`
    /// and `PUT /mdm/connect` (9–13): the crate's driver routes them by the
    /// single-tenant paths it was configured with.
    pub fn device(&self, req: &Request) -> Response {
        let (response, events) = self.service.handle(req, self.now(), &mut rng());
        self.record(&events);
        if response.status >= 400 {
            tracing::info!(path = %req.path, status = response.status, "device request refused");
        }
        response
    }
}

fn portal_form(username: &str, domain: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/\">\
<p><label for=\"username\">Username</label><input id=\"username\" name=\"username\" value=\"{}\" required></p>\
<p><label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" required></p>\
<p><label for=\"domain\">Domain</label><input id=\"domain\" name=\"domain\" value=\"{}\" required></p>\
<p><button id=\"login\" type=\"submit\">Sign in</button></p></form>",
        esc(username),
        esc(domain)
    )
}

/// 500 for a store or directory failure: logged, never shown.
fn internal_error(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "portal request failed");
    error_page(500, "the server could not complete the request")
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

fn login_failed(attempt: &LoginAttempt) -> Response {
    html(
        403,
        page(
            "Activate your Mac",
            &format!(
                "<p class=\"err\">Wrong username, password or domain.</p>{}",
                portal_form(&attempt.username, &attempt.domain)
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
