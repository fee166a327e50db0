//! `inspect ota <request.p7> [--scep-ca <pem>] [--device-ca <pem>]`: an OTA
//! Profile Service request (phase 2 or 3). Its signer must chain to Apple's
//! device CA (built in), a `--device-ca` or, for phase 3, a `--scep-ca`;
//! then its phase, signer and attributes are printed as JSON. A request that
//! does not verify is an error (exit 1): its attributes are not shown.

use mdm_enroll::cms::{
    Certificate, DeviceAttributes, DeviceAttributesVerifier, SignedData, TrustAnchors,
};
use mdm_enroll::wire::Limits;
use serde_json::{Map, Value, json};

/// One certificate's identifying fields.
pub fn certificate_json(c: &Certificate) -> Value {
    let sha256 = mdm_enroll::wire::hex::upper(&c.sha256_fingerprint());
    json!({
        "subject": c.subject_string(),
        "issuer": c.issuer_string(),
        "serial": c.serial_hex(),
        "notBefore": c.not_before().to_string(),
        "notAfter": c.not_after().to_string(),
        "sha256": sha256,
    })
}

fn read_pem(path: &str) -> Result<Vec<Certificate>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    Certificate::from_pem(&bytes).map_err(|e| format!("{path}: {e}"))
}

/// Run the `ota` kind.
pub fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: inspect ota <request.p7> [--scep-ca <pem>] [--device-ca <pem>]";
    let (path, rest) = args.split_first().ok_or(usage)?;
    let mut scep = TrustAnchors::new();
    let mut device = Vec::new();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(usage)?;
        match flag.as_str() {
            "--scep-ca" => read_pem(value)?.into_iter().for_each(|c| scep.add(c)),
            "--device-ca" => device.extend(read_pem(value)?),
            _ => return Err(usage.into()),
        }
    }
    let body = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let mut verifier = DeviceAttributesVerifier::new(scep);
    for c in device {
        verifier.add_device_anchor(c);
    }
    println!("{}", inspect(&body, &verifier)?);
    Ok(())
}

/// Verify `body` with `verifier` and describe it.
pub fn inspect(body: &[u8], verifier: &DeviceAttributesVerifier) -> Result<Value, String> {
    let limits = Limits::default();
    let sd = SignedData::parse(body, &limits.ber).map_err(|e| format!("CMS: {e}"))?;
    let v = verifier
        .verify(body, None)
        .map_err(|e| format!("device attributes do not verify: {e}"))?;
    Ok(json!({
        "verified": true,
        "phase": format!("{:?}", v.phase),
        "signer": certificate_json(&v.signer),
        "certificates": sd.certificates().iter().map(certificate_json).collect::<Vec<_>>(),
        "attributes": attributes_json(&v.attributes),
    }))
}

/// The attributes under Apple's keys.
fn attributes_json(a: &DeviceAttributes) -> Value {
    let fields = [
        ("CHALLENGE", &a.challenge),
        ("UDID", &a.udid),
        ("SERIAL", &a.serial),
        ("PRODUCT", &a.product),
        ("VERSION", &a.version),
        ("IMEI", &a.imei),
        ("MEID", &a.meid),
        ("UserID", &a.user_id),
        ("UserShortName", &a.user_short_name),
        ("UserLongName", &a.user_long_name),
    ];
    let mut m = Map::new();
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert(k.into(), Value::from(v.as_str()));
        }
    }
    if let Some(n) = a.not_on_console {
        m.insert("NotOnConsole".into(), Value::Bool(n));
    }
    m.extend(super::json::object(&a.other));
    Value::Object(m)
}
