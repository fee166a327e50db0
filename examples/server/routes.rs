//! The endpoints as synchronous functions over the crate's neutral
//! `http::Request`/`Response` (the axum glue in `main.rs` runs them on the
//! blocking pool: they sign with RSA and write to SQLite).

use std::time::SystemTime;

use mdm_enroll::activation::{
    self, AttributesPhase, CertFingerprint, CheckinEvent, ErrorInfo, LoginAttempt, OsVersion,
    PushTarget, ReportEvent, ReportStatus, Secret, TenantId, VerifiedAttributes,
};
use mdm_enroll::cms::{DeviceAttributesVerifier, IdentityOptions, client_identity};
use mdm_enroll::http::{Request, Response, media_type};
use mdm_enroll::mdm::{self, checkin::CheckinPayload};
use mdm_enroll::service::{Engine, Event, EventKind, NewCommand, ServiceError};
use mdm_enroll::store::sqlite::SqliteStore;
use mdm_enroll::store::{Directory, PushSender, StoreError, UserStore};
use mdm_enroll::wire::Limits;

use crate::html::{esc, page};
use crate::profiles;
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

/// A push sender that logs: the demo has no APNs certificate.
pub struct LogPush;

impl PushSender for LogPush {
    fn push(
        &self,
        tenant: &TenantId,
        channel: &activation::Channel,
        target: &PushTarget,
    ) -> Result<(), StoreError> {
        tracing::info!(%tenant, device = %channel.device_id, topic = %target.topic, "push (not sent: no APNs certificate configured)");
        Ok(())
    }
}

/// Everything a request needs.
pub struct App {
    pub tenant: TenantId,
    pub base_url: String,
    pub topic: String,
    pub engine: Engine<SqliteStore, Users, LogPush>,
    pub pki: Pki,
    pub verifier: DeviceAttributesVerifier,
    pub identity: IdentityOptions,
    pub limits: Limits,
    pub admin: (String, String),
    pub scep_static_challenge: Option<Secret>,
}

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
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
    fn record(&self, events: &[Event]) {
        let now = self.now();
        for e in events {
            tracing::info!(activation = %e.activation.as_str(), event = ?e.kind, "activation event");
            if let EventKind::Reached(step) = e.kind
                && let Err(err) =
                    self.engine
                        .store()
                        .record_step(&self.tenant, &e.activation, step, now)
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
        let store = self.engine.store();
        let user = match store.user(&self.tenant, &attempt.username) {
            Ok(Some(u)) if u.domain.eq_ignore_ascii_case(&attempt.domain) => u,
            Ok(_) => return login_failed(&attempt),
            Err(e) => return error_page(500, &e.to_string()),
        };
        match self
            .engine
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
        if let Some(notice) = &user.policy.organisation_notice {
            body.push_str(&format!(
                "<p class=\"notice\">{}</p><p><label><input type=\"checkbox\" name=\"accept\" value=\"1\" required> I accept</label></p>",
                esc(notice)
            ));
        } else {
            body.push_str("<input type=\"hidden\" name=\"accept\" value=\"1\">");
        }
        body.push_str(
            "<p><button id=\"activate\" type=\"submit\">Activate this Mac</button></p></form>",
        );
        html(200, page("Activate your Mac", &body))
    }

    /// `POST /self-service/activate`: steps 2–4.
    pub fn activate(&self, req: &Request) -> Response {
        let fields = form(&req.body);
        let attempt = attempt(&fields);
        let now = self.now();
        let grant = match self.engine.login(&self.tenant, &attempt, now, &mut rng()) {
            Ok(g) => g,
            Err(e) => {
                tracing::info!(username = %attempt.username, error = %e, "self-service login refused");
                return error_page(403, &refusal(&e));
            }
        };
        self.record(&grant.events);
        let language = req
            .header("accept-language")
            .and_then(|l| l.split([',', ';']).next())
            .map(|l| l.trim().chars().take(35).collect::<String>())
            .filter(|l| !l.is_empty());
        let accepted = field(&fields, "accept") == "1";
        let challenge = match self.engine.request_activation(
            &self.tenant,
            &grant.value.activation,
            accepted,
            language,
            now,
            &mut rng(),
        ) {
            Ok(c) => c,
            Err(e) => return error_page(403, &refusal(&e)),
        };
        self.record(&challenge.events);
        let signed = profiles::profile_service(&self.base_url, challenge.value.expose())
            .and_then(|p| profiles::sign(&self.pki, &p));
        match signed {
            Ok(der) => {
                let mut r = Response::with_body(200, media_type::CONFIG, der);
                r.headers.push((
                    "Content-Disposition".into(),
                    "attachment; filename=\"activate.mobileconfig\"".into(),
                ));
                r
            }
            Err(e) => error_page(500, &format!("could not sign the profile: {e}")),
        }
    }

    /// `POST /enroll`: steps 5–6.
    pub fn enroll(&self, req: &Request) -> Response {
        let now = self.now();
        let verified = match self.verifier.verify(&req.body, Some(now)) {
            Ok(v) => v,
            Err(e) => {
                tracing::info!(error = %e, "device attributes refused");
                return Response::with_body(403, "text/plain", e.to_string().into_bytes());
            }
        };
        let a = &verified.attributes;
        let build = a.version.clone();
        let attributes = VerifiedAttributes {
            udid: a.udid.clone().unwrap_or_default(),
            serial: a.serial.clone().unwrap_or_default(),
            product: a.product.clone().unwrap_or_default(),
            os_version: build
                .as_deref()
                .and_then(OsVersion::macos_major_from_build)
                .map(|m| OsVersion::new(m, 0, 0)),
            build,
            challenge: a.challenge.clone().map(Secret::new),
            phase: match verified.phase {
                mdm_enroll::cms::device_attributes::Phase::DeviceIdentity => {
                    AttributesPhase::DeviceIdentity
                }
                _ => AttributesPhase::ScepIdentity,
            },
        };
        let grant = match self
            .engine
            .device_attributes(&self.tenant, attributes, now, &mut rng())
        {
            Ok(g) => g,
            Err(e) => {
                tracing::info!(error = %e, "device refused");
                return Response::with_body(403, "text/plain", e.to_string().into_bytes());
            }
        };
        self.record(&grant.events);
        let signed = profiles::enrollment(
            &self.base_url,
            &self.pki,
            grant.value.scep_challenge.expose(),
            &self.topic,
        )
        .and_then(|p| profiles::sign(&self.pki, &p));
        match signed {
            Ok(der) => Response::with_body(200, media_type::CONFIG, der),
            Err(e) => Response::with_body(500, "text/plain", e.to_string().into_bytes()),
        }
    }

    /// `GET|POST /scep`: steps 7–8.
    pub fn scep(&self, _req: &Request) -> Response {
        // The SCEP responder (crate module `scep`) has not landed yet; the
        // static challenge (if configured) will be accepted beside the
        // per-activation ones.
        let _ = &self.scep_static_challenge;
        Response::with_body(
            501,
            "text/plain",
            b"SCEP responder not available in this build".to_vec(),
        )
    }

    fn sender(&self, req: &Request) -> Result<CertFingerprint, Response> {
        match client_identity(req, &self.identity) {
            Ok(Some(id)) => Ok(CertFingerprint::of_der(id.certificate.der())),
            Ok(None) => Err(Response::with_body(
                401,
                "text/plain",
                b"no client identity (Mdm-Signature or TLS client certificate)".to_vec(),
            )),
            Err(e) => Err(Response::with_body(
                401,
                "text/plain",
                e.to_string().into_bytes(),
            )),
        }
    }

    /// `PUT /mdm/checkin`: steps 9–10 and CheckOut.
    pub fn checkin(&self, req: &Request) -> Response {
        let identity = match self.sender(req) {
            Ok(i) => i,
            Err(r) => return r,
        };
        let message = match mdm::CheckinMessage::decode(&req.body, &self.limits) {
            Ok(m) => m,
            Err(e) => return Response::with_body(400, "text/plain", e.to_string().into_bytes()),
        };
        let channel = activation::Channel {
            device_id: message.channel.device_id().to_owned(),
            user_id: message.channel.user_id().map(str::to_owned),
        };
        let message = match message.payload {
            CheckinPayload::Authenticate(a) => activation::CheckinMessage::Authenticate {
                topic: a.topic,
                serial: a.serial_number,
            },
            CheckinPayload::TokenUpdate(t) => activation::CheckinMessage::TokenUpdate {
                push: PushTarget {
                    topic: t.topic,
                    token: t.token,
                    push_magic: t.push_magic,
                },
                awaiting_configuration: t.awaiting_configuration,
            },
            CheckinPayload::CheckOut(_) => activation::CheckinMessage::CheckOut,
            // Bootstrap tokens, DDM and the rest are not part of activation.
            _ => return Response::empty(200),
        };
        let event = CheckinEvent {
            identity,
            channel,
            message,
        };
        let outcome = self
            .engine
            .checkin(&self.tenant, event, self.now(), |_| initial_configuration());
        match outcome {
            Ok(o) => {
                self.record(&o.events);
                Response::empty(200)
            }
            Err(e) => mdm_refusal(&e),
        }
    }

    /// `PUT /mdm/connect`: steps 11–13.
    pub fn connect(&self, req: &Request) -> Response {
        let identity = match self.sender(req) {
            Ok(i) => i,
            Err(r) => return r,
        };
        let (channel, report) = match mdm::Report::decode(&req.body, &self.limits) {
            Ok(r) => (
                activation::Channel {
                    device_id: r.channel.device_id().to_owned(),
                    user_id: r.channel.user_id().map(str::to_owned),
                },
                activation::Report::Status {
                    status: match r.status {
                        mdm::Status::Idle => ReportStatus::Idle,
                        mdm::Status::Acknowledged => ReportStatus::Acknowledged,
                        mdm::Status::Error => ReportStatus::Error,
                        mdm::Status::CommandFormatError => ReportStatus::CommandFormatError,
                        mdm::Status::NotNow => ReportStatus::NotNow,
                    },
                    command_uuid: r.command_uuid.map(activation::CommandUuid),
                    error_chain: r
                        .error_chain
                        .iter()
                        .map(|e| ErrorInfo {
                            code: e.error_code.unwrap_or_default(),
                            domain: e.error_domain.clone().unwrap_or_default(),
                            description: e.localized_description.clone().unwrap_or_default(),
                        })
                        .collect(),
                    body: req.body.clone(),
                },
            ),
            // An undecodable report still names no channel we can trust.
            Err(e) => return Response::with_body(400, "text/plain", e.to_string().into_bytes()),
        };
        let event = ReportEvent {
            identity,
            channel,
            report,
        };
        match self.engine.connect(&self.tenant, event, self.now()) {
            Ok(o) => {
                self.record(&o.events);
                match o.value {
                    Some(cmd) => Response::with_body(200, media_type::XML, cmd.body),
                    None => Response::empty(200),
                }
            }
            Err(e) => mdm_refusal(&e),
        }
    }
}

/// The initial configuration (step 12): device information, security info
/// and the installed profiles.
fn initial_configuration() -> Vec<NewCommand> {
    let mut rng = rng();
    let mut out = Vec::new();
    let commands = [
        mdm::Command::device_information(
            mdm::command::random_uuid(&mut rng),
            &[
                "UDID",
                "SerialNumber",
                "Model",
                "ModelName",
                "OSVersion",
                "BuildVersion",
                "DeviceName",
            ],
        ),
        mdm::Command::security_info(mdm::command::random_uuid(&mut rng)),
        mdm::Command::profile_list(mdm::command::random_uuid(&mut rng)),
    ];
    for c in commands {
        out.push(NewCommand {
            uuid: activation::CommandUuid(c.command_uuid.clone()),
            request_type: c.request_type.clone(),
            body: c.encode(),
        });
    }
    out
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
        ServiceError::Store(_) | ServiceError::Internal(_) => {
            "the server could not complete the request".into()
        }
    }
}

/// Check-in/connect refusals: 401 for identity problems, 409 for lost
/// races (the device retries), 400 otherwise.
fn mdm_refusal(e: &ServiceError) -> Response {
    use activation::ActivationError as A;
    let status = match e {
        ServiceError::Activation(
            A::UnknownIdentity | A::IdentityMismatch | A::DeviceMismatch | A::TenantMismatch,
        ) => 401,
        ServiceError::Store(StoreError::VersionConflict { .. }) => 409,
        ServiceError::Store(StoreError::Backend(_)) => 500,
        _ => 400,
    };
    tracing::info!(status, error = %e, "mdm request refused");
    Response::with_body(status, "text/plain", e.to_string().into_bytes())
}
