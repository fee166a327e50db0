//! `inspect profile`: a `.mobileconfig`, signed (CMS, signature verified
//! against the signer certificate it carries; one that fails is exit 1) or
//! not: the signer chain and a summary of every payload.

use mdm_enroll::profile::{self, PayloadKind, ProfileContent};
use mdm_enroll::wire::Limits;
use serde_json::{Value, json};

/// The profile summary as JSON.
pub fn inspect(bytes: &[u8]) -> Result<Value, String> {
    let parsed = profile::parse(bytes, &Limits::default()).map_err(|e| {
        if bytes.first() == Some(&0x30) {
            format!("signed profile does not verify or decode: {e}")
        } else {
            e.to_string()
        }
    })?;
    let p = &parsed.profile;
    let signature = parsed.signature.as_ref().map(|sig| {
        json!({
            "signer": sig.signer.subject_string(),
            "certificates": sig.certificates.iter().map(|c| json!({
                "subject": c.subject_string(),
                "issuer": c.issuer_string(),
            })).collect::<Vec<_>>(),
        })
    });
    let validation = match p.validate(&Default::default()) {
        Ok(()) => Value::Null,
        Err(e) => Value::String(e.to_string()),
    };
    let mut out = json!({
        "signed": parsed.signature.is_some(),
        "signature": signature,
        "PayloadType": p.payload_type(),
        "PayloadIdentifier": p.identifier,
        "PayloadUUID": p.uuid,
        "PayloadDisplayName": p.display_name,
        "PayloadOrganization": p.organization,
        "validation_error": validation,
    });
    let content = match &p.content {
        ProfileContent::Configuration(payloads) => json!({
            "PayloadContent": payloads.iter().map(|pl| {
                let mut item = json!({
                    "PayloadType": pl.payload_type(),
                    "PayloadIdentifier": pl.identifier,
                    "PayloadUUID": pl.uuid,
                });
                let detail = match &pl.kind {
                    PayloadKind::Mdm(m) => json!({
                        "ServerURL": m.server_url,
                        "Topic": m.topic,
                        "IdentityCertificateUUID": m.identity_certificate_uuid,
                    }),
                    PayloadKind::Scep(s) => json!({ "URL": s.url }),
                    PayloadKind::Acme(a) => json!({ "DirectoryURL": a.directory_url }),
                    _ => json!({}),
                };
                if let (Some(item), Value::Object(detail)) = (item.as_object_mut(), detail) {
                    item.extend(detail);
                }
                item
            }).collect::<Vec<_>>(),
        }),
        ProfileContent::Encrypted(data) => json!({ "EncryptedPayloadContent_bytes": data.len() }),
        ProfileContent::ProfileService(s) => json!({
            "PayloadContent": {
                "URL": s.url,
                "DeviceAttributes": s.device_attributes,
                "Challenge_present": s.challenge.is_some(),
            }
        }),
    };
    if let (Some(out), Value::Object(content)) = (out.as_object_mut(), content) {
        out.extend(content);
    }
    Ok(out)
}
