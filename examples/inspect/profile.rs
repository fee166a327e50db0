//! `inspect profile <file>`: a `.mobileconfig`, signed or not, as JSON:
//! the signer chain (subjects) when signed and a summary of every payload.

use mdm_enroll::profile::{self, PayloadKind, ProfileContent};
use mdm_enroll::wire::Limits;

/// Summarise profile `bytes` as a JSON document.
pub fn inspect(bytes: &[u8]) -> Result<String, String> {
    let parsed = profile::parse(bytes, &Limits::default()).map_err(|e| e.to_string())?;
    let p = &parsed.profile;
    let mut o = Obj::default();
    o.str("kind", "profile");
    match &parsed.signature {
        Some(sig) => {
            o.raw("signed", "true");
            o.str("signer", &sig.signer.subject_string());
            let chain: Vec<String> = sig
                .certificates
                .iter()
                .map(|c| {
                    let mut e = Obj::default();
                    e.str("subject", &c.subject_string());
                    e.str("issuer", &c.issuer_string());
                    e.finish()
                })
                .collect();
            o.raw("certificates", &array(chain));
        }
        None => o.raw("signed", "false"),
    }
    o.str("payload_type", p.payload_type());
    o.str("identifier", &p.identifier);
    o.str("uuid", &p.uuid);
    if let Some(name) = &p.display_name {
        o.str("display_name", name);
    }
    if let Some(org) = &p.organization {
        o.str("organization", org);
    }
    o.raw(
        "valid",
        match p.validate(&Default::default()) {
            Ok(()) => "true".to_owned(),
            Err(e) => json_string(&e.to_string()),
        }
        .as_str(),
    );
    match &p.content {
        ProfileContent::Configuration(payloads) => {
            let items = payloads
                .iter()
                .map(|pl| {
                    let mut e = Obj::default();
                    e.str("type", pl.payload_type());
                    e.str("identifier", &pl.identifier);
                    e.str("uuid", &pl.uuid);
                    match &pl.kind {
                        PayloadKind::Mdm(m) => {
                            e.str("server_url", &m.server_url);
                            e.str("topic", &m.topic);
                            e.str("identity_certificate_uuid", &m.identity_certificate_uuid);
                        }
                        PayloadKind::Scep(s) => e.str("url", &s.url),
                        PayloadKind::Acme(a) => e.str("directory_url", &a.directory_url),
                        _ => {}
                    }
                    e.finish()
                })
                .collect();
            o.raw("payloads", &array(items));
        }
        ProfileContent::Encrypted(data) => {
            o.raw("encrypted_bytes", &data.len().to_string());
        }
        ProfileContent::ProfileService(s) => {
            let mut e = Obj::default();
            e.str("url", &s.url);
            e.raw(
                "device_attributes",
                &array(s.device_attributes.iter().map(|a| json_string(a)).collect()),
            );
            e.raw("has_challenge", &s.challenge.is_some().to_string());
            o.raw("profile_service", &e.finish());
        }
    }
    Ok(o.finish())
}

#[derive(Default)]
struct Obj(Vec<String>);

impl Obj {
    fn raw(&mut self, key: &str, json: &str) {
        self.0.push(format!("{}: {json}", json_string(key)));
    }
    fn str(&mut self, key: &str, value: &str) {
        self.raw(key, &json_string(value));
    }
    fn finish(self) -> String {
        format!("{{{}}}", self.0.join(", "))
    }
}

fn array(items: Vec<String>) -> String {
    format!("[{}]", items.join(", "))
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
