//! `/admin/api/…`: the admin JSON API over the crate's command API, behind
//! the same basic-auth credentials as `/admin`.
//!
//! - `GET /admin/api/devices`: every enrolled device with its push state;
//! - `GET /admin/api/devices/{udid}`: one device, plus its step timeline,
//!   queue and results;
//! - `POST /admin/api/devices/{udid}/commands`: queue a command given as a
//!   command plist (XML, as Apple documents it) or as JSON
//!   `{"request_type": "...", "params": {...}}`, and push → 201
//!   `{"command_uuid": "..."}`;
//! - `DELETE /admin/api/devices/{udid}/commands/{uuid}`: cancel a command not
//!   yet delivered → 200, else 409;
//! - `POST /admin/api/devices/{udid}/push`: push now → 202.
//! - `PUT /admin/api/devices/{udid}/declarations` (with `--ddm`): replace
//!   the device channel's declaration set with a JSON array of declarations
//!   (`Type`, `Identifier`, `Payload`; the server computes `ServerToken`);
//!   when the set changed, the `DeclarativeManagement` command is queued and
//!   pushed → 200 `{"declarations_token": "...", "command_uuid": "..."|null}`.
//!
//! Each device also carries `renewal`, where its identity renewal stands
//! (`not_due`, `due`, `in_flight`, `given_up`, `expired`), and
//! `renewal_attempt` while one is in flight; one device's detail adds
//! `identity`: `{"serial": "<hex>", "not_after": RFC 3339}` of the
//! certificate currently bound.
//!
//! A device's `push` object also carries `last_reason` (APNs' reason) and
//! `unanswered` (pushes since the device last connected). Unknown device or
//! command 404, bad body 400 naming the problem, wrong or
//! missing credentials 401.

use mdm_enroll::activation::{Channel, CommandOutcome, CommandUuid};
use mdm_enroll::http::{Request, Response};
use mdm_enroll::mdm::Command;
use mdm_enroll::service::{CommandError, EnrollmentSummary, ServiceError};
use serde_json::{Value, json};

use crate::admin::{authorized, rfc3339, unauthorized};
use crate::routes::App;

/// The app seen from one tenant's admin API: `app.tenant` is the tenant
/// the path names (`/t/<id>/admin/api/…`, else the default tenant).
struct Scoped<'a> {
    app: &'a App,
    tenant: mdm_enroll::activation::TenantId,
}

impl std::ops::Deref for Scoped<'_> {
    type Target = App;
    fn deref(&self) -> &App {
        self.app
    }
}

/// Handle any `/admin/api/…` (or `/t/<id>/admin/api/…`) request.
pub fn handle(app: &App, req: &Request) -> Response {
    if !authorized(app, req) {
        return unauthorized();
    }
    let Some(route) = app.resolve(&req.path) else {
        return error(404, "no such tenant");
    };
    let app = &Scoped {
        app,
        tenant: route.tenant,
    };
    let Some(rest) = req
        .path
        .strip_prefix(route.prefix.as_str())
        .and_then(|p| p.strip_prefix("/admin/api/devices"))
        .filter(|r| r.is_empty() || r.starts_with('/'))
    else {
        return error(404, "no such endpoint");
    };
    let segments: Vec<String> = match rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(mdm_enroll::http::percent_decode)
        .collect::<Option<Vec<_>>>()
    {
        Some(s) => s,
        None => return error(400, "bad percent-encoding in the path"),
    };
    let method = req.method.as_str();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, segs.as_slice()) {
        ("GET", []) => list(app),
        ("GET", [udid]) => device(app, udid),
        ("POST", [udid, "commands"]) => enqueue(app, udid, req),
        ("DELETE", [udid, "commands", uuid]) => cancel(app, udid, uuid),
        ("POST", [udid, "push"]) => push(app, udid),
        ("PUT", [udid, "declarations"]) => put_declarations(app, udid, req),
        (
            _,
            [] | [_] | [_, "commands"] | [_, "commands", _] | [_, "push"] | [_, "declarations"],
        ) => error(405, "method not allowed"),
        _ => error(404, "no such endpoint"),
    }
}

fn json_response(status: u16, value: &Value) -> Response {
    let mut r = Response::with_body(status, "application/json", value.to_string().into_bytes());
    r.headers.push(("Cache-Control".into(), "no-store".into()));
    r
}

fn error(status: u16, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

fn service_error(e: &ServiceError) -> Response {
    tracing::info!(error = %e, "admin API request refused");
    let status = match e {
        ServiceError::Command(_) | ServiceError::BadRequest(_) => e.http_status(),
        ServiceError::Activation(_) => 404,
        _ => 500,
    };
    let message = match e {
        ServiceError::Activation(_) => "device not enrolled".to_owned(),
        ServiceError::Store(_) | ServiceError::Internal(_) => "server error".to_owned(),
        other => other.to_string(),
    };
    error(status, &message)
}

fn summary_json(s: &EnrollmentSummary) -> Value {
    json!({
        "udid": s.device_id,
        "serial": s.serial,
        "user": s.user,
        "step": s.step.number(),
        "complete": s.complete,
        "enrolled": s.enrolled,
        "push": {
            "token_valid": s.has_push_token && !s.push.token_invalid,
            "last_status": s.push.last_status,
            "last_reason": s.push.last_reason,
            "last_push": s.push.last_push.map(rfc3339),
            "unanswered": s.push.attempts,
        },
        "queued": s.queued,
    })
}

/// `summary_json` plus the identity renewal state (and, for one device's
/// detail, the identity currently bound).
fn with_renewal(app: &Scoped, s: &EnrollmentSummary, detail: bool) -> Value {
    use mdm_enroll::service::RenewalStatus;
    use mdm_enroll::store::ActivationStore;
    let mut value = summary_json(s);
    let activation = app
        .service
        .engine()
        .store()
        .activation(&app.tenant, &s.activation)
        .ok()
        .flatten()
        .map(|v| v.value);
    let status = activation.as_ref().map(|a| {
        app.service
            .config()
            .renewal
            .status(a, std::time::SystemTime::now())
    });
    if let Value::Object(map) = &mut value {
        map.insert(
            "renewal".into(),
            status.map_or(Value::Null, |st| st.as_str().into()),
        );
        if let Some(RenewalStatus::InFlight { attempt }) = status {
            map.insert("renewal_attempt".into(), attempt.into());
        }
        if detail {
            let identity = activation.as_ref().and_then(|a| a.identity.as_ref());
            map.insert(
                "identity".into(),
                identity.map_or(Value::Null, |i| {
                    let serial: String = i.serial.iter().map(|b| format!("{b:02x}")).collect();
                    json!({ "serial": serial, "not_after": rfc3339(i.not_after) })
                }),
            );
        }
    }
    value
}

fn enrollment(app: &Scoped, udid: &str) -> Result<EnrollmentSummary, Response> {
    match app.service.engine().enrollment(&app.tenant, udid) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(error(404, "unknown device")),
        Err(e) => Err(service_error(&e)),
    }
}

fn list(app: &Scoped) -> Response {
    match app.service.engine().enrollments(&app.tenant) {
        Ok(all) => json_response(
            200,
            &Value::Array(all.iter().map(|s| with_renewal(app, s, false)).collect()),
        ),
        Err(e) => service_error(&e),
    }
}

fn status_name(o: &CommandOutcome) -> &'static str {
    match o {
        CommandOutcome::Acknowledged => "Acknowledged",
        CommandOutcome::Error(_) => "Error",
        CommandOutcome::CommandFormatError => "CommandFormatError",
        CommandOutcome::Undecodable(_) => "Undecodable",
        CommandOutcome::RetryBudgetExhausted => "NotNow",
        CommandOutcome::Expired => "Expired",
    }
}

fn device(app: &Scoped, udid: &str) -> Response {
    let summary = match enrollment(app, udid) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let engine = app.service.engine();
    let channel = Channel::device(udid);
    let (queue, results) = match (
        engine.queue(&app.tenant, &channel),
        engine.results(&app.tenant, &channel),
    ) {
        (Ok(q), Ok(r)) => (q.value, r.value),
        (Err(e), _) | (_, Err(e)) => return service_error(&e),
    };
    let timeline = engine
        .store()
        .steps(&app.tenant, &summary.activation)
        .unwrap_or_default();
    let mut value = with_renewal(app, &summary, true);
    if let Value::Object(map) = &mut value {
        map.insert(
            "timeline".into(),
            timeline
                .iter()
                .map(|(step, at)| json!({ "step": step.number(), "at": rfc3339(*at) }))
                .collect(),
        );
        map.insert(
            "queue".into(),
            queue
                .iter()
                .map(|c| {
                    json!({
                        "command_uuid": c.uuid.as_str(),
                        "request_type": c.request_type,
                        "delivered": c.delivered_at.is_some(),
                    })
                })
                .collect(),
        );
        if let Some(ddm) = app.service.mdm().declaration_store() {
            match declarations_json(ddm, &app.tenant, &channel) {
                Ok(d) => {
                    map.insert("declarations".into(), d);
                }
                Err(e) => return service_error(&e),
            }
        }
        map.insert(
            "results".into(),
            results
                .iter()
                .map(|r| {
                    json!({
                        "command_uuid": r.uuid.as_str(),
                        "request_type": r.request_type,
                        "status": status_name(&r.outcome),
                        "at": rfc3339(r.at),
                    })
                })
                .collect(),
        );
    }
    json_response(200, &value)
}

/// `PUT …/declarations`: replace the device channel's declaration set.
fn put_declarations(app: &Scoped, udid: &str, req: &Request) -> Response {
    use mdm_enroll::ddm::{Declaration, DeclarationSet};
    use mdm_enroll::wire::json::{self, Json, JsonLimits};
    let Some(ddm) = app.service.mdm().declaration_store() else {
        return error(404, "declarative management is off (start with --ddm)");
    };
    if let Err(r) = enrollment(app, udid) {
        return r;
    }
    let limits = JsonLimits::default().with_max_bytes(1024 * 1024);
    let items = match json::parse(&req.body, limits) {
        Ok(Json::Array(items)) => items,
        Ok(_) => return error(400, "the body must be a JSON array of declarations"),
        Err(e) => return error(400, &format!("invalid JSON: {e}")),
    };
    let mut set = DeclarationSet::new();
    for (n, item) in items.into_iter().enumerate() {
        // The server computes ServerToken; one given is ignored.
        let Json::Object(mut members) = item else {
            return error(400, &format!("declaration {n}: not an object"));
        };
        members.retain(|(k, _)| k != "ServerToken");
        members.push(("ServerToken".into(), Json::string("")));
        match Declaration::from_json(&Json::Object(members)) {
            Ok(d) => {
                if set.insert(d.declaration).is_some() {
                    return error(400, &format!("declaration {n}: identifier repeated"));
                }
            }
            Err(e) => return error(400, &format!("declaration {n}: {e}")),
        }
    }
    let token = set.declarations_token();
    let out = app.service.engine().set_declarations(
        ddm,
        &app.tenant,
        &Channel::device(udid),
        set,
        std::time::SystemTime::now(),
        &mut crate::routes::rng(),
    );
    match out {
        Ok(out) => json_response(
            200,
            &json!({
                "declarations_token": token.as_str(),
                "command_uuid": out.value.as_ref().map(CommandUuid::as_str),
            }),
        ),
        Err(e) => service_error(&e),
    }
}

/// The channel's declarations with what the device last reported for
/// each at its current `ServerToken` (`null` until it has).
fn declarations_json(
    ddm: &dyn mdm_enroll::store::DeclarationStore,
    tenant: &mdm_enroll::activation::TenantId,
    channel: &Channel,
) -> Result<Value, ServiceError> {
    let key = mdm_enroll::activation::QueueKey {
        tenant: tenant.clone(),
        channel: channel.clone(),
    };
    let Some(stored) = ddm.declarations(&key)? else {
        return Ok(json!([]));
    };
    let statuses = ddm.declaration_statuses(&key)?;
    Ok(stored
        .set
        .iter()
        .map(|d| {
            let token = d.server_token();
            let status = statuses
                .iter()
                .find(|s| s.identifier == d.identifier() && s.server_token == token);
            json!({
                "identifier": d.identifier(),
                "type": d.declaration_type(),
                "server_token": token.as_str(),
                "active": status.map(|s| s.active),
                "valid": status.map(|s| s.valid.as_str()),
                "reasons": status.map(|s| s
                    .reasons
                    .iter()
                    .map(|r| json!({ "code": r.code, "description": r.description }))
                    .collect::<Vec<_>>()),
            })
        })
        .collect())
}

/// JSON → plist for command parameters (`null` has no plist form).
fn plist_value(path: &str, v: &Value) -> Result<plist::Value, String> {
    Ok(match v {
        Value::Null => return Err(format!("{path}: null is not a plist value")),
        Value::Bool(b) => plist::Value::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => plist::Value::Integer(i.into()),
            (_, Some(u), _) => plist::Value::Integer(u.into()),
            (_, _, Some(f)) => plist::Value::Real(f),
            _ => return Err(format!("{path}: number out of range")),
        },
        Value::String(s) => plist::Value::String(s.clone()),
        Value::Array(items) => plist::Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| plist_value(&format!("{path}[{i}]"), x))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => plist::Value::Dictionary(
            map.iter()
                .map(|(k, x)| Ok((k.clone(), plist_value(&format!("{path}.{k}"), x)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// A command from the JSON form, with a fresh `CommandUUID`.
fn json_command(body: &[u8]) -> Result<Command, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("the body must be a JSON object".into());
    };
    let request_type = match obj.get("request_type") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 => s.clone(),
        Some(_) => return Err("request_type must be a non-empty string".into()),
        None => return Err("request_type missing".into()),
    };
    if let Some(key) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "request_type" | "params"))
    {
        return Err(format!("unknown key {key}"));
    }
    let uuid = mdm_enroll::mdm::command::random_uuid(&mut crate::routes::rng());
    let mut cmd = Command::new(uuid, request_type);
    match obj.get("params") {
        None => {}
        Some(Value::Object(params)) => {
            for (k, v) in params {
                cmd = cmd.param(k.clone(), plist_value(&format!("params.{k}"), v)?);
            }
        }
        Some(_) => return Err("params must be a JSON object".into()),
    }
    Ok(cmd)
}

fn enqueue(app: &Scoped, udid: &str, req: &Request) -> Response {
    if let Err(r) = enrollment(app, udid) {
        return r;
    }
    let engine = app.service.engine();
    let channel = Channel::device(udid);
    let now = std::time::SystemTime::now();
    let json = req
        .header("content-type")
        .is_some_and(|t| t.contains("json"))
        || req.body.trim_ascii_start().starts_with(b"{");
    let result = if json {
        match json_command(&req.body) {
            Ok(cmd) => engine.enqueue_command(&app.tenant, &channel, &cmd, now),
            Err(why) => return error(400, &why),
        }
    } else {
        engine.enqueue_raw(&app.tenant, &channel, &req.body, now)
    };
    match result {
        Ok(out) => {
            app.record(&app.tenant, &out.events);
            json_response(201, &json!({ "command_uuid": out.value.as_str() }))
        }
        Err(ServiceError::Command(CommandError::Duplicate(u))) => error(
            409,
            &format!("command {} is already queued or finished", u.as_str()),
        ),
        Err(e) => service_error(&e),
    }
}

fn cancel(app: &Scoped, udid: &str, uuid: &str) -> Response {
    if let Err(r) = enrollment(app, udid) {
        return r;
    }
    let Ok(uuid) = CommandUuid::new(uuid) else {
        return error(400, "invalid command uuid");
    };
    match app
        .service
        .engine()
        .cancel(&app.tenant, &Channel::device(udid), &uuid)
    {
        Ok(out) => {
            app.record(&app.tenant, &out.events);
            json_response(
                200,
                &json!({ "command_uuid": uuid.as_str(), "cancelled": true }),
            )
        }
        Err(e) => service_error(&e),
    }
}

fn push(app: &Scoped, udid: &str) -> Response {
    if let Err(r) = enrollment(app, udid) {
        return r;
    }
    let now = std::time::SystemTime::now();
    match app
        .service
        .engine()
        .push_now(&app.tenant, &Channel::device(udid), now)
    {
        Ok(out) => {
            let pushed = out
                .events
                .iter()
                .any(|e| matches!(e.kind, mdm_enroll::service::EventKind::Pushed { .. }));
            app.record(&app.tenant, &out.events);
            json_response(202, &json!({ "pushed": pushed }))
        }
        Err(e) => service_error(&e),
    }
}
