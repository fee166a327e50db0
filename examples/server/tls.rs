//! The data folder's keys and certificates, and the rustls configuration.
//!
//! On first start the server creates, under `--data`, with the crate's
//! [`mdm_enroll::pki`]: a CA (`ca.pem`, `ca.key.pem`: issues the TLS
//! certificate, the profile signer and, through SCEP, the device identities;
//! it goes into the enrollment profile as a trust payload), a TLS server
//! certificate (`tls.pem`, `tls.key.pem`) and a profile signing certificate
//! (`signer.pem`, `signer.key.pem`). Later starts reuse them, except a TLS
//! certificate that does not name every host the server is reached by (say
//! a new `--public-url`): that one is re-issued from the kept CA, so the Mac,
//! which trusts the CA, keeps trusting the server. Keys are written with
//! mode 0600.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mdm_enroll::cms::Certificate;
use mdm_enroll::crypto::{DigestAlgorithm, RsaKey, Signer};
use mdm_enroll::pki::{self, LeafPolicy};
use x509_cert::ext::pkix::{KeyUsage, KeyUsages};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A key with its certificate.
pub struct Identity {
    pub key: Arc<RsaKey>,
    pub cert: Certificate,
}

/// Everything the data folder holds.
pub struct Pki {
    pub ca: Identity,
    pub tls: Identity,
    pub signer: Identity,
}

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// Write a secret file readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(text.as_bytes())
}

fn load(dir: &Path, name: &str) -> Result<Option<Identity>, BoxError> {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key.pem")),
    );
    if !cert.exists() || !key.exists() {
        return Ok(None);
    }
    let key = RsaKey::from_pem_or_der(&std::fs::read(&key)?)?;
    let cert = Certificate::from_pem(&std::fs::read(&cert)?)?
        .into_iter()
        .next()
        .ok_or("no certificate in PEM")?;
    Ok(Some(Identity {
        key: Arc::new(key),
        cert,
    }))
}

/// Create `name` with a fresh 2048-bit key: self-signed CA when `issuer` is
/// `None`, else a leaf under `policy` issued by `issuer`.
fn create(
    dir: &Path,
    name: &str,
    subject: &str,
    issuer: Option<(&Identity, LeafPolicy)>,
    lifetime: Duration,
) -> Result<Identity, BoxError> {
    let key = RsaKey::generate(&mut getrandom::SysRng, 2048)?;
    let validity = pki::validity(SystemTime::now(), lifetime)?;
    let serial = pki::random_serial(&mut rng());
    let cert = match issuer {
        None => pki::create_ca(&key, subject.parse()?, serial, validity)?,
        Some((ca, policy)) => {
            let ca_cert = <x509_cert::Certificate as der::Decode>::from_der(ca.cert.der())?;
            let spki = spki::SubjectPublicKeyInfoOwned::from_key(key.public_key())?;
            pki::issue(&ca_cert, ca.key.as_ref(), spki, &policy, serial, validity)?
        }
    };
    let cert = Certificate::from_der(&pki::to_der(&cert)?)?;
    write_private(&dir.join(format!("{name}.key.pem")), &key.to_pkcs8_pem()?)?;
    std::fs::write(dir.join(format!("{name}.pem")), cert.to_pem())?;
    tracing::info!(file = %dir.join(format!("{name}.pem")).display(), "created {name} certificate");
    Ok(Identity {
        key: Arc::new(key),
        cert,
    })
}

/// Load the data folder's keys and certificates, creating what is missing.
/// `hosts` are the TLS certificate's subject alternative names (DNS names
/// or IP literals).
pub fn load_or_create(dir: &Path, hosts: &[String]) -> Result<Pki, BoxError> {
    std::fs::create_dir_all(dir)?;
    let ca = match load(dir, "ca")? {
        Some(ca) => ca,
        None => create(
            dir,
            "ca",
            "CN=mdm-enroll demo CA,O=mdm-enroll",
            None,
            10 * YEAR,
        )?,
    };
    let kept = load(dir, "tls")?;
    let stale = match &kept {
        Some(tls) if tls.cert.verify_issued_by(&ca.cert).is_err() => {
            Some("was not issued by the kept CA".to_owned())
        }
        Some(tls) => {
            let missing = unnamed_hosts(&tls.cert, hosts)?;
            (!missing.is_empty()).then(|| format!("did not name {}", missing.join(", ")))
        }
        None => None,
    };
    let tls = match kept {
        Some(tls) if stale.is_none() => tls,
        _ => {
            let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
            let policy =
                LeafPolicy::tls_server("CN=mdm-enroll server,O=mdm-enroll".parse()?, &names)?;
            let tls = create(
                dir,
                "tls",
                "CN=mdm-enroll server,O=mdm-enroll",
                Some((&ca, policy)),
                2 * YEAR,
            )?;
            if let Some(why) = stale {
                // A browser refuses a certificate that does not name the
                // host it asked for; say why the file changed.
                println!(
                    "TLS certificate re-issued from the kept CA for {}: the kept one {why}",
                    names.join(", ")
                );
            }
            tls
        }
    };
    let signer = match load(dir, "signer")? {
        Some(s) => s,
        None => {
            let subject = "CN=mdm-enroll profile signer,O=mdm-enroll";
            let policy = LeafPolicy {
                subject: subject.parse()?,
                subject_alt_names: Vec::new(),
                key_usage: KeyUsage(KeyUsages::DigitalSignature.into()),
                extended_key_usage: Vec::new(),
                digest: DigestAlgorithm::Sha256,
            };
            create(dir, "signer", subject, Some((&ca, policy)), 2 * YEAR)?
        }
    };
    Ok(Pki { ca, tls, signer })
}

/// The entries of `hosts` that `cert`'s subject alternative names do not
/// name (DNS names compared without regard to case, IP literals as addresses).
fn unnamed_hosts(cert: &Certificate, hosts: &[String]) -> Result<Vec<String>, BoxError> {
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let x509 = <x509_cert::Certificate as der::Decode>::from_der(cert.der())?;
    let named: Vec<GeneralName> = x509
        .tbs_certificate()
        .get_extension::<SubjectAltName>()?
        .map(|(_, san)| san.0)
        .unwrap_or_default();
    let same = |a: &GeneralName, b: &GeneralName| match (a, b) {
        (GeneralName::DnsName(a), GeneralName::DnsName(b)) => {
            a.as_str().eq_ignore_ascii_case(b.as_str())
        }
        (a, b) => a == b,
    };
    let mut missing = Vec::new();
    for host in hosts {
        let wanted = LeafPolicy::tls_server("CN=x".parse()?, &[host.as_str()])?.subject_alt_names;
        if !wanted.iter().all(|w| named.iter().any(|n| same(w, n))) {
            missing.push(host.clone());
        }
    }
    Ok(missing)
}

/// The rustls server configuration (ring provider): the TLS certificate and
/// an *optional* client certificate that must chain to the CA (device
/// identities issued through SCEP), for mTLS identity on check-in.
pub fn server_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, BoxError> {
    use rsa::pkcs8::EncodePrivateKey;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(pki.ca.cert.der().to_vec()))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let key = pki.tls.key.private_key().to_pkcs8_der()?;
    let chain = vec![
        CertificateDer::from(pki.tls.cert.der().to_vec()),
        CertificateDer::from(pki.ca.cert.der().to_vec()),
    ];
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            chain,
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.as_bytes().to_vec())),
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
