//! `inspect ota <request.p7> [--scep-ca <pem>] [--device-ca <pem>]`: show an
//! OTA Profile Service request (phase 2 or 3): signer chain, verification,
//! phase and attributes.

use mdm_enroll::cms::{
    Certificate, DeviceAttributes, DeviceAttributesVerifier, SignedData, TrustAnchors,
};
use mdm_enroll::wire::Limits;

/// Print one certificate's identifying fields.
pub fn print_certificate(c: &Certificate) {
    let hex: String = c
        .sha256_fingerprint()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    println!("  certificate v{} serial {}", c.version(), c.serial_hex());
    println!("    subject  {:?}", c.subject_string());
    println!("    issuer   {:?}", c.issuer_string());
    println!("    validity {} .. {}", c.not_before(), c.not_after());
    println!("    sha256   {hex}");
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
    let limits = Limits::default();
    let sd = SignedData::parse(&body, &limits.ber).map_err(|e| format!("CMS: {e}"))?;
    println!(
        "CMS SignedData: {} bytes, {} certificates, {} signers",
        body.len(),
        sd.certificates().len(),
        sd.signers().len()
    );
    for c in sd.certificates() {
        print_certificate(c);
    }
    let mut verifier = DeviceAttributesVerifier::new(scep);
    for c in device {
        verifier.add_device_anchor(c);
    }
    match verifier.verify(&body, None) {
        Ok(v) => {
            println!(
                "VERIFIED: {:?} (signer {:?})",
                v.phase,
                v.signer.subject_string()
            );
            print_attributes(&v.attributes);
        }
        Err(e) => {
            println!("NOT VERIFIED: {e}");
            if let Some(content) = sd.content() {
                println!("attributes (UNVERIFIED):");
                match DeviceAttributes::from_plist(content, &limits) {
                    Ok(a) => print_attributes(&a),
                    Err(e) => println!("  unreadable: {e}"),
                }
            }
        }
    }
    Ok(())
}

fn print_attributes(a: &DeviceAttributes) {
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
    for (k, v) in fields {
        if let Some(v) = v {
            println!("  {k} = {v:?}");
        }
    }
    if let Some(n) = a.not_on_console {
        println!("  NotOnConsole = {n}");
    }
    for (k, v) in &a.other {
        println!("  {k} = {v:?} (other)");
    }
}
