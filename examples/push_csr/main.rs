//! Create the key and CSR for an MDM push certificate, and (given the
//! vendor's MDM signing certificate and key) the signed request Apple's Push
//! Certificates portal accepts.
//!
//! ```text
//! cargo run --example push-csr -- --cn "Example Corp MDM" --country US --email admin@example.com
//!     → push.key (PKCS#8 PEM, mode 0600), push.csr (PEM)
//! cargo run --example push-csr -- --key push.key --cn ... \
//!     --vendor-cert mdm_vendor.pem --vendor-key mdm_vendor.key --chain apple_wwdr_and_root.pem
//!     → push.csr, push_request.plist.b64 (upload this to https://identity.apple.com)
//! ```
//!
//! See README "Getting a push certificate".

mod request;

use std::path::{Path, PathBuf};

use mdm_enroll::cms::Certificate;
use mdm_enroll::crypto::RsaKey;
use request::Subject;

const USAGE: &str = "usage: push-csr [--out DIR] [--key EXISTING.key | --csr EXISTING.csr]
                [--cn NAME] [--country CC] [--email ADDR]
                [--vendor-cert PEM --vendor-key PEM --chain PEM]

Writes DIR/push.key (a new RSA-2048 key, unless --key names one; an existing
file is never overwritten) and DIR/push.csr, or takes a customer's CSR with
--csr; with --vendor-cert/--vendor-key/--chain it also writes
DIR/push_request.plist.b64 for Apple's Push Certificates portal. --chain:
Apple's WWDR intermediate and root certificates (PEM, in that order), from
https://www.apple.com/certificateauthority/.";

#[derive(Default)]
struct Args {
    out: PathBuf,
    key: Option<PathBuf>,
    csr: Option<PathBuf>,
    cn: String,
    country: String,
    email: Option<String>,
    vendor_cert: Option<PathBuf>,
    vendor_key: Option<PathBuf>,
    chain: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: PathBuf::from("."),
        cn: "mdm-enroll push".into(),
        country: "US".into(),
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--out" => a.out = value.into(),
            "--key" => a.key = Some(value.into()),
            "--csr" => a.csr = Some(value.into()),
            "--cn" => a.cn = value,
            "--country" => a.country = value,
            "--email" => a.email = Some(value),
            "--vendor-cert" => a.vendor_cert = Some(value.into()),
            "--vendor-key" => a.vendor_key = Some(value.into()),
            "--chain" => a.chain = Some(value.into()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write(path: &Path, data: &[u8], secret: bool) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    #[cfg(unix)]
    if secret {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(fail)?;
        return f.write_all(data).map_err(fail);
    }
    let _ = secret;
    std::fs::write(path, data).map_err(fail)
}

fn certificates(path: &Path) -> Result<Vec<Certificate>, String> {
    let bytes = read(path)?;
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        Certificate::from_pem(&bytes)
    } else {
        Certificate::from_der(&bytes).map(|c| vec![c])
    }
    .map_err(|e| format!("{}: {e}", path.display()))
}

fn run(a: Args) -> Result<(), String> {
    let vendor_flags = [&a.vendor_cert, &a.vendor_key, &a.chain];
    let given = vendor_flags.iter().filter(|f| f.is_some()).count();
    if given != 0 && given != vendor_flags.len() {
        return Err("--vendor-cert, --vendor-key and --chain go together".into());
    }
    if a.csr.is_some() && a.key.is_some() {
        return Err("--key and --csr exclude each other".into());
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let csr = match &a.csr {
        Some(p) => request::read_csr(&read(p)?).map_err(|e| format!("{}: {e}", p.display()))?,
        None => {
            let key = match &a.key {
                Some(p) => RsaKey::from_pem_or_der(&read(p)?)
                    .map_err(|e| format!("{}: {e}", p.display()))?,
                None => {
                    let path = a.out.join("push.key");
                    if path.exists() {
                        return Err(format!(
                            "{} exists: pass --key {0} to make a CSR for it (a key is never overwritten)",
                            path.display()
                        ));
                    }
                    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
                    let key = RsaKey::generate(&mut rng, 2048).map_err(|e| e.to_string())?;
                    let pem = key.to_pkcs8_pem().map_err(|e| e.to_string())?;
                    write(&path, pem.as_bytes(), true)?;
                    println!(
                        "wrote {} (keep it: the push certificate is useless without it)",
                        path.display()
                    );
                    key
                }
            };
            let subject = Subject {
                common_name: a.cn,
                country: a.country,
                email: a.email,
            };
            let csr = request::csr(&key, &subject)?;
            let path = a.out.join("push.csr");
            write(&path, request::csr_pem(&csr)?.as_bytes(), false)?;
            println!("wrote {}", path.display());
            csr
        }
    };

    match (&a.vendor_cert, &a.vendor_key, &a.chain) {
        (None, None, None) => {
            println!(
                "to get it signed, run again with --key {} and --vendor-cert/--vendor-key/--chain",
                a.out.join("push.key").display()
            );
            Ok(())
        }
        (Some(cert), Some(vkey), Some(chain)) => {
            let vendor = certificates(cert)?
                .into_iter()
                .next()
                .ok_or_else(|| format!("{}: no certificate", cert.display()))?;
            let vendor_key = RsaKey::from_pem_or_der(&read(vkey)?)
                .map_err(|e| format!("{}: {e}", vkey.display()))?;
            let chain = certificates(chain)?;
            let b64 = request::signed_request(&csr, &vendor, &vendor_key, &chain)?;
            let path = a.out.join("push_request.plist.b64");
            write(&path, b64.as_bytes(), false)?;
            println!(
                "wrote {}: upload it at https://identity.apple.com (Create a Certificate, or Renew for the same topic)",
                path.display()
            );
            Ok(())
        }
        _ => Err("--vendor-cert, --vendor-key and --chain go together".into()),
    }
}

fn main() {
    let code = match parse_args().and_then(run) {
        Ok(()) => 0,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            0
        }
        Err(e) => {
            eprintln!("push-csr: {e}\n\n{USAGE}");
            2
        }
    };
    std::process::exit(code);
}
