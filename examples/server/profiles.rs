//! The two profiles the server hands out, as plists signed with the profile
//! signer (CMS SignedData, content attached, signer chain included).
//!
//! Minimal builders over `plist::Dictionary`; they give way to the crate's
//! `profile` module once it lands.

use mdm_enroll::cms::{SignedDataBuilder, oid};
use mdm_enroll::mdm::command::random_uuid;
use plist::{Dictionary, Value};

use crate::tls::Pki;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

fn payload(kind: &str, identifier: &str, name: &str) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("PayloadType".into(), kind.into());
    d.insert("PayloadVersion".into(), 1.into());
    d.insert("PayloadIdentifier".into(), identifier.into());
    d.insert("PayloadUUID".into(), random_uuid(&mut rng()).into());
    d.insert("PayloadDisplayName".into(), name.into());
    d
}

fn xml(d: Dictionary) -> Result<Vec<u8>, BoxError> {
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, &Value::Dictionary(d))?;
    Ok(out)
}

/// Sign a profile plist with the profile signer.
pub fn sign(pki: &Pki, plist: &[u8]) -> Result<Vec<u8>, BoxError> {
    let chain = [pki.ca.cert.clone()];
    Ok(
        SignedDataBuilder::new(oid::ID_DATA, plist, &pki.signer.key, &pki.signer.cert)
            .certificates(&chain)
            .signing_time(std::time::SystemTime::now())
            .build()?,
    )
}

/// Step 4: the Profile Service profile: where to post the device attributes,
/// which attributes, and the one-time challenge.
pub fn profile_service(base_url: &str, challenge: &str) -> Result<Vec<u8>, BoxError> {
    let mut content = Dictionary::new();
    content.insert("URL".into(), format!("{base_url}/enroll").into());
    content.insert(
        "DeviceAttributes".into(),
        Value::Array(
            ["UDID", "SERIAL", "PRODUCT", "VERSION", "IMEI", "MEID"]
                .iter()
                .map(|s| Value::from(*s))
                .collect(),
        ),
    );
    content.insert("Challenge".into(), challenge.into());
    let mut p = payload(
        "Profile Service",
        "dev.mdm-enroll.profile-service",
        "Activate this Mac",
    );
    p.insert("PayloadContent".into(), Value::Dictionary(content));
    p.insert(
        "PayloadDescription".into(),
        "Sends this Mac's identity to the enrollment server".into(),
    );
    xml(p)
}

/// Step 6: the enrollment profile: the CA as a trust payload, SCEP with the
/// activation's one-time challenge, and the MDM payload (SignMessage on).
pub fn enrollment(
    base_url: &str,
    pki: &Pki,
    scep_challenge: &str,
    topic: &str,
) -> Result<Vec<u8>, BoxError> {
    let mut root = payload(
        "com.apple.security.root",
        "dev.mdm-enroll.ca",
        "mdm-enroll CA",
    );
    root.insert(
        "PayloadContent".into(),
        Value::Data(pki.ca.cert.der().to_vec()),
    );

    let mut scep = payload(
        "com.apple.security.scep",
        "dev.mdm-enroll.scep",
        "Device identity",
    );
    let scep_uuid = scep
        .get("PayloadUUID")
        .and_then(Value::as_string)
        .unwrap_or_default()
        .to_owned();
    let mut sc = Dictionary::new();
    sc.insert("URL".into(), format!("{base_url}/scep").into());
    sc.insert("Challenge".into(), scep_challenge.into());
    sc.insert("Keysize".into(), 2048.into());
    sc.insert("Key Type".into(), "RSA".into());
    sc.insert("Key Usage".into(), 5.into());
    sc.insert(
        "Subject".into(),
        Value::Array(vec![Value::Array(vec![Value::Array(vec![
            "CN".into(),
            "mdm-enroll device".into(),
        ])])]),
    );
    scep.insert("PayloadContent".into(), Value::Dictionary(sc));

    let mut mdm = payload("com.apple.mdm", "dev.mdm-enroll.mdm", "Device management");
    mdm.insert("IdentityCertificateUUID".into(), scep_uuid.into());
    mdm.insert("Topic".into(), topic.into());
    mdm.insert("ServerURL".into(), format!("{base_url}/mdm/connect").into());
    mdm.insert(
        "CheckInURL".into(),
        format!("{base_url}/mdm/checkin").into(),
    );
    mdm.insert("SignMessage".into(), true.into());
    mdm.insert("CheckOutWhenRemoved".into(), true.into());
    mdm.insert("AccessRights".into(), 8191.into());
    mdm.insert(
        "ServerCapabilities".into(),
        Value::Array(vec!["com.apple.mdm.per-user-connections".into()]),
    );

    let mut top = payload(
        "Configuration",
        "dev.mdm-enroll.enrollment",
        "mdm-enroll enrollment",
    );
    top.insert(
        "PayloadContent".into(),
        Value::Array(vec![
            Value::Dictionary(root),
            Value::Dictionary(scep),
            Value::Dictionary(mdm),
        ]),
    );
    xml(top)
}
