//! The data folder's keys and certificates, and the rustls configuration.
//!
//! On first start the server creates, under `--data`, with the crate's
//! [`mdm_enroll::pki`], one key per role, so that no key does two jobs (a
//! decryption oracle on the SCEP key could never sign anything):
//!
//! - the CA (`ca.pem`, `ca.key.pem`): signs certificates only — the TLS
//!   certificate, the profile signer, the RA and, through SCEP, the device
//!   identities; it goes into the enrollment profile as a trust payload;
//! - the SCEP RA (`ra.pem`, `ra.key.pem`, digitalSignature+keyEncipherment,
//!   issued by the CA): decrypts SCEP requests and signs CertReps; GetCACert
//!   serves `[RA, CA]`, and requests encrypted to the CA are refused;
//! - the TLS server certificate (`tls.pem`, `tls.key.pem`);
//! - the profile signer (`signer.pem`, `signer.key.pem`).
//!
//! Later starts reuse them (a data folder from before the RA gets one), except
//! a TLS certificate that does not name every host the server is reached by
//! (say a new `--public-url`): that one is re-issued from the kept CA, so the
//! Mac, which trusts the CA, keeps trusting the server. Keys are written with
//! mode 0600 (a kept key file readable by others is narrowed to 0600); with
//! `MDM_KEY_PASSPHRASE` set they are encrypted PKCS#8 (PBES2: scrypt and
//! AES-256-CBC), and kept unencrypted keys are re-written encrypted.

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

/// One tenant's keys: the SCEP CA (signs device identities), the RA
/// (decrypts SCEP requests, signs CertReps) and the profile signer.
pub struct TenantPki {
    pub ca: Identity,
    pub ra: Identity,
    pub signer: Identity,
}

/// Everything the data folder holds: the default tenant's keys and the TLS
/// certificate (issued by the default tenant's CA).
pub struct Pki {
    pub ca: Identity,
    pub ra: Identity,
    pub tls: Identity,
    pub signer: Identity,
}

/// The PEM label of an encrypted PKCS#8 key.
const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";

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

/// `key` as PEM: encrypted PKCS#8 with `passphrase`, else plain PKCS#8.
fn key_pem(key: &RsaKey, passphrase: Option<&str>) -> Result<String, BoxError> {
    let Some(passphrase) = passphrase else {
        return Ok(key.to_pkcs8_pem()?);
    };
    let der = key.to_pkcs8_der()?;
    let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice())?;
    let encrypted = info.encrypt_with_rng(&mut getrandom::SysRng, passphrase.as_bytes())?;
    Ok(encrypted
        .to_pem(ENCRYPTED_LABEL, der::pem::LineEnding::LF)?
        .to_string())
}

/// Read the key file at `path` (encrypted with `passphrase` or not), narrow
/// its mode to 0600, and re-write a plain one encrypted when a passphrase is
/// set. Errors name the file, never the passphrase.
fn read_key(path: &Path, passphrase: Option<&str>) -> Result<RsaKey, BoxError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            eprintln!(
                "warning: {} was readable by others (mode {:o}): narrowed to 0600",
                path.display(),
                mode & 0o777
            );
        }
    }
    let bytes = std::fs::read(path)?;
    let text = std::str::from_utf8(&bytes).unwrap_or_default();
    if text.contains(&format!("-----BEGIN {ENCRYPTED_LABEL}-----")) {
        let passphrase = passphrase.ok_or_else(|| {
            format!(
                "{} is encrypted: set {} to its passphrase",
                path.display(),
                crate::secrets::KEY_PASSPHRASE_ENV
            )
        })?;
        let (_, doc) =
            der::SecretDocument::from_pem(text).map_err(|e| format!("{}: {e}", path.display()))?;
        let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(doc.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let plain = info
            .decrypt(passphrase.as_bytes())
            .map_err(|_| format!("{}: wrong passphrase or damaged key", path.display()))?;
        return Ok(RsaKey::from_pem_or_der(plain.as_bytes())?);
    }
    let key = RsaKey::from_pem_or_der(&bytes)?;
    if passphrase.is_some() {
        write_private(path, &key_pem(&key, passphrase)?)?;
        tracing::info!(file = %path.display(), "key encrypted with the passphrase");
    }
    Ok(key)
}

fn load(dir: &Path, name: &str, passphrase: Option<&str>) -> Result<Option<Identity>, BoxError> {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key.pem")),
    );
    if !cert.exists() || !key.exists() {
        return Ok(None);
    }
    let key = read_key(&key, passphrase)?;
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
    passphrase: Option<&str>,
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
    write_private(
        &dir.join(format!("{name}.key.pem")),
        &key_pem(&key, passphrase)?,
    )?;
    std::fs::write(dir.join(format!("{name}.pem")), cert.to_pem())?;
    tracing::info!(file = %dir.join(format!("{name}.pem")).display(), "created {name} certificate");
    Ok(Identity {
        key: Arc::new(key),
        cert,
    })
}

/// Load the data folder's keys and certificates, creating what is missing.
/// `hosts` are the TLS certificate's subject alternative names (DNS names
/// or IP literals). `passphrase` encrypts the keys at rest.
pub fn load_or_create(
    dir: &Path,
    hosts: &[String],
    passphrase: Option<&str>,
) -> Result<Pki, BoxError> {
    std::fs::create_dir_all(dir)?;
    let load = |name: &str| load(dir, name, passphrase);
    let create =
        |name: &str, subject: &str, issuer: Option<(&Identity, LeafPolicy)>, lifetime: Duration| {
            create(dir, passphrase, name, subject, issuer, lifetime)
        };
    let TenantPki { ca, ra, signer } = tenant_pki(dir, passphrase, "mdm-enroll")?;
    let kept = load("tls")?;
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
    Ok(Pki {
        ca,
        ra,
        tls,
        signer,
    })
}

/// Load the keys of a tenant that has its own folder (`<data>/tenants/<id>`),
/// creating them the first time. Replicas may start at once: a new folder is
/// filled beside it and renamed into place, so one set of keys wins and
/// every replica loads that one.
pub fn tenant_folder_pki(
    dir: &Path,
    passphrase: Option<&str>,
    name: &str,
) -> Result<TenantPki, BoxError> {
    if !dir.join("ca.pem").exists() {
        let parent = dir.parent().ok_or("tenant folder has no parent")?;
        std::fs::create_dir_all(parent)?;
        let mut tag = [0u8; 8];
        rand_core::Rng::fill_bytes(&mut rng(), &mut tag);
        let staging = parent.join(format!(
            ".{name}.{}.new",
            mdm_enroll::wire::hex::lower(&tag)
        ));
        let _ = std::fs::remove_dir_all(&staging);
        tenant_pki(&staging, passphrase, name)?;
        // Fails when another replica's folder is already there: keep theirs.
        if std::fs::rename(&staging, dir).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
    }
    tenant_pki(dir, passphrase, name)
}

/// Load one tenant's SCEP CA, RA and profile signer from `dir`, creating
/// what is missing (`name` goes into the subjects: `CN=<name> CA`, …).
pub fn tenant_pki(dir: &Path, passphrase: Option<&str>, name: &str) -> Result<TenantPki, BoxError> {
    std::fs::create_dir_all(dir)?;
    let load = |file: &str| load(dir, file, passphrase);
    let create =
        |file: &str, subject: &str, issuer: Option<(&Identity, LeafPolicy)>, lifetime: Duration| {
            create(dir, passphrase, file, subject, issuer, lifetime)
        };
    // The default tenant keeps the subjects it always had.
    let ca_subject = if name == "mdm-enroll" {
        "CN=mdm-enroll demo CA,O=mdm-enroll".to_owned()
    } else {
        format!("CN={name} CA,O=mdm-enroll")
    };
    let ca = match load("ca")? {
        Some(ca) => ca,
        None => create("ca", &ca_subject, None, 10 * YEAR)?,
    };
    let signer = match load("signer")? {
        Some(s) => s,
        None => {
            let subject = format!("CN={name} profile signer,O=mdm-enroll");
            let mut policy = LeafPolicy::client_auth(subject.parse()?);
            policy.key_usage = KeyUsage(KeyUsages::DigitalSignature.into());
            policy.extended_key_usage = Vec::new();
            policy.digest = DigestAlgorithm::Sha256;
            create("signer", &subject, Some((&ca, policy)), 2 * YEAR)?
        }
    };
    let ra = match load("ra")? {
        Some(ra) if ra.cert.verify_issued_by(&ca.cert).is_ok() => ra,
        _ => {
            let subject = format!("CN={name} SCEP RA,O=mdm-enroll");
            // Signs CertReps and decrypts requests; no extended key usage.
            let mut policy = LeafPolicy::client_auth(subject.parse()?);
            policy.extended_key_usage = Vec::new();
            create("ra", &subject, Some((&ca, policy)), 2 * YEAR)?
        }
    };
    Ok(TenantPki { ca, ra, signer })
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
/// an *optional* client certificate that must chain to the CA or one of
/// `tenant_cas` (device identities issued through SCEP), for mTLS identity
/// on check-in.
pub fn server_config(
    pki: &Pki,
    tenant_cas: &[Certificate],
) -> Result<Arc<rustls::ServerConfig>, BoxError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(pki.ca.cert.der().to_vec()))?;
    for ca in tenant_cas {
        roots.add(CertificateDer::from(ca.der().to_vec()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let key = pki.tls.key.to_pkcs8_der()?;
    let chain = vec![
        CertificateDer::from(pki.tls.cert.der().to_vec()),
        CertificateDer::from(pki.ca.cert.der().to_vec()),
    ];
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_created_at_once_end_with_one_set_of_keys() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("tenants").join("acme");
        let cas: Vec<Vec<u8>> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| tenant_folder_pki(&folder, None, "acme").unwrap()))
                .collect();
            runs.into_iter()
                .map(|r| r.join().unwrap().ca.cert.der().to_vec())
                .collect()
        });
        let kept = load(&folder, "ca", None).unwrap().unwrap().cert;
        for ca in &cas {
            assert_eq!(ca, kept.der(), "a creator kept a CA that is not on disk");
        }
        let entries = std::fs::read_dir(dir.path().join("tenants"))
            .unwrap()
            .count();
        assert_eq!(entries, 1, "staging folders left behind");
    }
}
