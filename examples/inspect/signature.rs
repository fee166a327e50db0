//! `inspect signature <header-file> --body <body-file>`: decode an
//! `Mdm-Signature` header value, show its structure and signer, and verify
//! it over the body.

use mdm_enroll::cms::{SignedData, verify_mdm_signature};
use mdm_enroll::wire::BerLimits;

use super::ota::print_certificate;

/// Run the `signature` kind.
pub fn run(args: &[String]) -> Result<(), String> {
    let (header_path, body_path) = match args {
        [h, flag, b] if flag == "--body" => (h, Some(b)),
        [h] => (h, None),
        _ => return Err("usage: inspect signature <header-file> [--body <body-file>]".into()),
    };
    let header = std::fs::read_to_string(header_path).map_err(|e| format!("{header_path}: {e}"))?;
    let header = header
        .trim()
        .strip_prefix("Mdm-Signature:")
        .unwrap_or(header.trim());
    let limits = BerLimits::default();
    let der = decode_base64(header)?;
    let sd = SignedData::parse(&der, &limits).map_err(|e| format!("CMS: {e}"))?;
    println!(
        "CMS SignedData: {} bytes, {}",
        der.len(),
        if der.get(1) == Some(&0x80) {
            "BER indefinite"
        } else {
            "definite length"
        }
    );
    println!("eContentType: {}", sd.content_type());
    println!(
        "content: {}",
        match sd.content() {
            Some(c) => format!("attached, {} bytes", c.len()),
            None => "detached".into(),
        }
    );
    for (i, s) in sd.signers().iter().enumerate() {
        println!(
            "signer {i}: digest {:?}, signature algorithm {}, signedAttrs {}",
            s.digest_algorithm(),
            s.signature_algorithm(),
            if s.signed_attributes().is_some() {
                "present"
            } else {
                "absent"
            }
        );
    }
    for c in sd.certificates() {
        print_certificate(c);
    }
    match body_path {
        None => println!("no --body given: signature not verified"),
        Some(p) => {
            let body = std::fs::read(p).map_err(|e| format!("{p}: {e}"))?;
            match verify_mdm_signature(header, &body, &limits) {
                Ok(cert) => println!(
                    "VERIFIED over {} body bytes; signer serial {} issuer {:?} (authorisation is up to the server)",
                    body.len(),
                    cert.serial_hex(),
                    cert.issuer_string()
                ),
                Err(e) => println!("NOT VERIFIED: {e}"),
            }
        }
    }
    Ok(())
}

fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    use base64ct::{Base64, Encoding};
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    Base64::decode_vec(&compact).map_err(|e| format!("base64: {e}"))
}
