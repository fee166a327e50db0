//! The endpoints as synchronous functions over the crate's neutral
//! `http::Request`/`Response` (the axum glue in `main.rs` runs them on the
//! blocking pool: they sign with RSA and write to SQLite).

use std::time::SystemTime;

use mdm_enroll::activation::{LoginAttempt, Secret, TenantId};
use mdm_enroll::http::{Request, Response};
use mdm_enroll::service::{EnrollmentService, Event, EventKind, ServiceError};
use mdm_enroll::store::{Directory, StoreError, UserStore};

use crate::html::{esc, page};
use crate::tls::Pki;

/// Self-service credentials (the demo's directory): constant-time compare.
#[derive(Default)]
pub struct Users {
    pub passwords: Vec<(TenantId, String, Secret)>,
}

impl Directory for Users {
    fn check_credentials(
        &self,
        tenant: &TenantId,
        attempt: &LoginAttempt,
    ) -> Result<bool, StoreError> {
        let mut ok = false;
        for (t, name, password) in &self.passwords {
            let same = mdm_enroll::crypto::constant_time_eq(
                password.expose().as_bytes(),
                attempt.password.expose().as_bytes(),
            );
            ok |= t == tenant && *name == attempt.username && same;
        }
        Ok(ok)
    }
}

/// The crate's driver for every device-facing endpoint, as this server uses it.
pub type Service = EnrollmentService<crate::store::ServerStore, Users, LogPush>;

pub use crate::push::LogPush;

/// Everything a request needs.
pub struct App {
    pub tenant: TenantId,
    pub service: Service,
    pub pki: Pki,
    pub admin: (String, String),
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

    /// `POST /`: check the credentials, list the user's devices, offer activation.
    pub fn portal_login(&self, req: &Request) -> Response {
        let fields = form(&req.body);
        let attempt = attempt(&fields);
        let store = self.service.engine().store();
        let user = match store.user(&self.tenant, &attempt.username) {
            Ok(Some(u)) if u.domain.eq_ignore_ascii_case(&attempt.domain) => u,
            Ok(_) => return login_failed(&attempt),
            Err(e) => return error_page(500, &e.to_string()),
        };
        match self
            .service
            .engine()
            .directory()
            .check_credentials(&self.tenant, &attempt)
        {
            Ok(true) => {}
            Ok(false) => return login_failed(&attempt),
            Err(e) => return error_page(500, &e.to_string()),
        }
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
        for name in ["username", "password", "domain"] {
            body.push_str(&format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                esc(field(&fields, name))
            ));
        }
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
    /// [`EnrollmentService::self_service`]; a refusal is an HTML page.
    pub fn activate(&self, req: &Request) -> Response {
        match self
            .service
            .self_service(&self.tenant, req, self.now(), &mut rng())
        {
            Ok(out) => {
                self.record(&out.events);
                let mut r = out.value;
                r.headers.push((
                    "Content-Disposition".into(),
                    "attachment; filename=\"activate.mobileconfig\"".into(),
                ));
                r
            }
            Err(e) => {
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
        ServiceError::Store(_) | ServiceError::Internal(_) => {
            "the server could not complete the request".into()
        }
    }
}
