//! `inspect signature <header-file> --body <body-file>`: decode an
//! `Mdm-Signature` header value and verify it over the body. Prints the
//! signer and the message's structure as JSON only when the signature
//! verifies; a signature that does not is an error (exit 1).

use mdm_enroll::cms::{SignedData, verify_mdm_signature};
use mdm_enroll::wire::BerLimits;
use serde_json::{Value, json};

use super::ota::certificate_json;

const USAGE: &str = "usage: inspect signature <header-file> --body <body-file>";

/// Run the `signature` kind.
pub fn run(args: &[String]) -> Result<(), String> {
    let (header_path, body_path) = match args {
        [h, flag, b] if flag == "--body" => (h, b),
        [_] => return Err(format!("{USAGE} (a signature is verified over its body)")),
        _ => return Err(USAGE.into()),
    };
    let header = std::fs::read_to_string(header_path).map_err(|e| format!("{header_path}: {e}"))?;
    let body = std::fs::read(body_path).map_err(|e| format!("{body_path}: {e}"))?;
    println!("{}", inspect(&header, &body)?);
    Ok(())
}

/// Verify `header` (the header value, optionally with its `Mdm-Signature:`
/// name) over `body` and describe it.
pub fn inspect(header: &str, body: &[u8]) -> Result<Value, String> {
    let header = header.trim();
    let header = header.strip_prefix("Mdm-Signature:").unwrap_or(header);
    let limits = BerLimits::default();
    let signer = verify_mdm_signature(header, body, &limits)
        .map_err(|e| format!("{e} (over the {} body bytes)", body.len()))?;
    // Verified, so the header decodes; describe its structure.
    let der = decode_base64(header)?;
    let sd = SignedData::parse(&der, &limits).map_err(|e| format!("CMS: {e}"))?;
    let signers: Vec<Value> = sd
        .signers()
        .iter()
        .map(|s| {
            json!({
                "digest": format!("{:?}", s.digest_algorithm()),
                "signatureAlgorithm": s.signature_algorithm().to_string(),
                "signedAttributes": s.signed_attributes().is_some(),
            })
        })
        .collect();
    Ok(json!({
        "verified": true,
        "bodyBytes": body.len(),
        "cmsBytes": der.len(),
        "berIndefinite": der.get(1) == Some(&0x80),
        "eContentType": sd.content_type().to_string(),
        "signer": certificate_json(&signer),
        "signerInfos": signers,
        "certificates": sd.certificates().iter().map(certificate_json).collect::<Vec<_>>(),
    }))
}

fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    use base64ct::{Base64, Encoding};
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    Base64::decode_vec(&compact).map_err(|e| format!("base64: {e}"))
}
