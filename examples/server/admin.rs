//! `GET /admin`: every activation with its 13-step timeline, push state,
//! queue and results (HTTP basic auth).

use std::time::{SystemTime, UNIX_EPOCH};

use mdm_enroll::activation::{Channel, CommandOutcome, Phase, QueueKey, Step};
use mdm_enroll::http::{Request, Response};
use mdm_enroll::store::{PushStore, QueueStore};

use crate::html::{esc, page};
use crate::routes::App;

/// Whether `req` carries the admin's basic-auth credentials (constant-time).
pub fn authorized(app: &App, req: &Request) -> bool {
    use base64ct::{Base64, Encoding};
    let Some(value) = req.header("authorization") else {
        return false;
    };
    let Some(b64) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(decoded) = Base64::decode_vec(b64.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", app.admin.0, app.admin.1);
    mdm_enroll::crypto::constant_time_eq(&decoded, expected.as_bytes())
}

/// The 401 answer asking for the admin credentials.
pub fn unauthorized() -> Response {
    let mut r = Response::with_body(401, "text/plain", b"authentication required".to_vec());
    r.headers.push((
        "WWW-Authenticate".into(),
        "Basic realm=\"mdm-enroll admin\", charset=\"UTF-8\"".into(),
    ));
    r
}

/// `t` as an RFC 3339 UTC timestamp (`2025-06-15T12:00:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    civil(t, 'T')
}

fn when(t: SystemTime) -> String {
    civil(t, ' ')
}

fn civil(t: SystemTime, separator: char) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}{separator}{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn step_name(step: Step) -> String {
    format!("{step:?}")
}

fn outcome(o: &CommandOutcome) -> String {
    format!("{o:?}")
}

/// The push certificate's topic and expiry, with the 30-day warning.
fn push_certificate_section(cert: Option<&mdm_enroll::push::PushCertificate>) -> String {
    let Some(cert) = cert else {
        return "<p class=\"push-certificate\" data-configured=\"false\">No push certificate: \
                pushes are only logged; devices run steps 11–13 at their own next check-in.</p>"
            .to_owned();
    };
    let warning = crate::push::expiry_warning(cert, SystemTime::now());
    format!(
        "<p class=\"push-certificate\" data-configured=\"true\" data-topic=\"{topic}\" \
         data-expires=\"{expires}\">Push certificate: topic <code>{topic}</code>, valid until {until}.</p>{warning}",
        topic = esc(cert.topic()),
        expires = rfc3339(cert.not_after()),
        until = when(cert.not_after()),
        warning = warning
            .map(|w| format!("<p class=\"err push-expiry\">Warning: {}</p>", esc(&w)))
            .unwrap_or_default()
    )
}

/// `GET /admin`: every tenant's activations; `GET /t/<id>/admin`: that
/// tenant's only.
pub fn page_for(app: &App, req: &Request) -> Response {
    if !authorized(app, req) {
        return unauthorized();
    }
    let Some(route) = app.resolve(&req.path) else {
        return Response::with_body(404, "text/plain", b"no such tenant".to_vec());
    };
    // Under /t/<id>/ only that tenant; at /admin every tenant.
    let only = (!route.prefix.is_empty()).then_some(&route.tenant);
    let store = app.service.engine().store();
    let activations = match store.activations(200) {
        Ok(a) => a
            .into_iter()
            .filter(|v| only.is_none_or(|t| v.value.tenant == *t))
            .collect::<Vec<_>>(),
        Err(e) => {
            // Logged, never shown: store errors name files and SQL.
            tracing::error!(error = %e, "admin page: store failed");
            return Response::with_body(500, "text/plain", b"server error".to_vec());
        }
    };
    let mut body = String::new();
    for t in app
        .tenants
        .iter()
        .filter(|t| only.is_none_or(|o| t.id == *o))
    {
        if app.tenants.len() > 1 {
            body.push_str(&format!(
                "<h2 class=\"tenant\" data-tenant=\"{id}\">Tenant {id}</h2>",
                id = esc(t.id.as_str())
            ));
        }
        body.push_str(&push_certificate_section(t.push_certificate.as_ref()));
    }
    body.push_str(&format!(
        "<p>{} activation(s), newest first.</p>",
        activations.len()
    ));
    for v in &activations {
        let a = &v.value;
        // The activation record is authoritative; the timeline adds when
        // each step was reached (a crash between the two writes can leave a
        // step without its time, never the other way round).
        let steps = store.steps(&a.tenant, &a.id).unwrap_or_default();
        let complete = a.phase == Phase::Complete;
        body.push_str(&format!(
            "<section class=\"activation\" data-tenant=\"{}\" data-id=\"{}\" data-phase=\"{:?}\" data-complete=\"{}\">",
            esc(a.tenant.as_str()),
            esc(a.id.as_str()),
            a.phase,
            complete
        ));
        let device = a
            .device
            .as_ref()
            .map(|d| {
                format!(
                    "{} (serial {}, {}, {})",
                    d.udid,
                    d.serial,
                    d.product,
                    d.build.as_deref().unwrap_or("?")
                )
            })
            .unwrap_or_else(|| "no device yet".into());
        body.push_str(&format!(
            "<h2>{}@{} — {}</h2><p>Activation <code>{}</code>, phase <b class=\"phase\">{:?}</b>, started {}.</p>",
            esc(&a.username),
            esc(&a.domain),
            esc(&device),
            esc(a.id.as_str()),
            a.phase,
            when(a.created)
        ));
        body.push_str("<table class=\"timeline\"><tr><th>#</th><th>Step</th><th>Reached</th></tr>");
        for step in Step::ALL {
            let reached = steps.iter().find(|(s, _)| *s == step).map(|(_, t)| *t);
            let done = reached.is_some() || step <= a.last_step;
            body.push_str(&format!(
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                if done { "done" } else { "todo" },
                step.number(),
                esc(&step_name(step)),
                reached.map(when).unwrap_or_default()
            ));
        }
        body.push_str("</table>");
        if let Some(d) = &a.device {
            let key = QueueKey {
                tenant: a.tenant.clone(),
                channel: Channel::device(d.udid.clone()),
            };
            let push = store
                .push_state(&key)
                .unwrap_or_default()
                .unwrap_or_default();
            let token_valid = a.push.is_some() && !push.token_invalid;
            body.push_str(&format!(
                "<p class=\"push\" data-token-valid=\"{token_valid}\">Push: token {}, last push {}, last APNs status {}{}.</p>",
                if token_valid { "valid" } else { "not valid" },
                push.last_push.map(when).unwrap_or_else(|| "never".into()),
                push.last_status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "none".into()),
                push.last_reason
                    .as_deref()
                    .map(|r| format!(" ({})", esc(r)))
                    .unwrap_or_default()
            ));
            let pending = store.pending(&key).unwrap_or_default();
            body.push_str(&format!(
                "<h3>Queue ({})</h3><ul class=\"queue\">",
                pending.len()
            ));
            for c in &pending {
                body.push_str(&format!(
                    "<li>{} <code>{}</code> (NotNow ×{})</li>",
                    esc(&c.request_type),
                    esc(c.uuid.as_str()),
                    c.not_now_count
                ));
            }
            body.push_str("</ul>");
            let results = store.results(&key).unwrap_or_default();
            body.push_str(&format!(
                "<h3>Results ({})</h3><table class=\"results\"><tr><th>Command</th><th>UUID</th><th>Outcome</th><th>At</th></tr>",
                results.len()
            ));
            for r in &results {
                body.push_str(&format!(
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    esc(&r.request_type),
                    esc(r.uuid.as_str()),
                    esc(&outcome(&r.outcome)),
                    when(r.at)
                ));
            }
            body.push_str("</table>");
        }
        body.push_str("</section>");
    }
    let mut r = Response::with_body(
        200,
        "text/html; charset=utf-8",
        page("mdm-enroll admin", &body).into_bytes(),
    );
    r.headers.push(("Cache-Control".into(), "no-store".into()));
    r
}
