//! The data folder's keys and certificates, and the rustls configuration.
//!
//! On first start the server creates, under `--data`: a CA (`ca.pem`,
//! `ca.key.pem`: issues the TLS certificate, the profile signer and, through
//! SCEP, the device identities; it goes into the enrollment profile as a trust
//! payload), a TLS server certificate (`tls.pem`, `tls.key.pem`) and a profile
//! signing certificate (`signer.pem`, `signer.key.pem`). Later starts reuse
//! them. Keys are written with mode 0600.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use der::{Decode, Encode};
use mdm_enroll::cms::Certificate;
use mdm_enroll::crypto::{RsaKey, Signer};
use rsa::pkcs8::EncodePrivateKey;
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A key with its certificate (and the DER of the certificate).
pub struct Identity {
    pub key: RsaKey,
    pub cert: Certificate,
}

/// Everything the data folder holds.
pub struct Pki {
    pub ca: Identity,
    pub tls: Identity,
    pub signer: Identity,
}

/// The OID of id-kp-serverAuth.
const SERVER_AUTH: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
/// The OID of id-kp-clientAuth.
const CLIENT_AUTH: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// What a certificate is for.
pub enum Kind {
    Ca,
    TlsServer(Vec<String>),
    ProfileSigner,
    /// A device identity (SCEP): digitalSignature + keyEncipherment, clientAuth.
    #[allow(dead_code)] // issued by SCEP (pending) and by the tests' simulated device
    DeviceIdentity,
}

struct Profile {
    issuer: Name,
    subject: Name,
    kind: Kind,
}

fn key_id(spki: SubjectPublicKeyInfoRef<'_>) -> Result<der::asn1::OctetString, der::Error> {
    use sha1::Digest;
    der::asn1::OctetString::new(sha1::Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec())
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let subject = tbs.subject();
        let mut out: Vec<Extension> = Vec::new();
        let ca = matches!(self.kind, Kind::Ca);
        out.push(
            BasicConstraints {
                ca,
                path_len_constraint: None,
            }
            .to_extension(subject, &out)?,
        );
        let usages = match &self.kind {
            Kind::Ca => KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature,
            Kind::TlsServer(_) | Kind::DeviceIdentity => {
                KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment
            }
            Kind::ProfileSigner => KeyUsages::DigitalSignature.into(),
        };
        out.push(KeyUsage(usages).to_extension(subject, &out)?);
        match &self.kind {
            Kind::TlsServer(names) => {
                out.push(ExtendedKeyUsage(vec![SERVER_AUTH]).to_extension(subject, &out)?);
                let mut sans = Vec::new();
                for n in names {
                    if let Ok(ip) = n.parse::<std::net::IpAddr>() {
                        let bytes = match ip {
                            std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                            std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
                        };
                        sans.push(GeneralName::IpAddress(der::asn1::OctetString::new(bytes)?));
                    } else {
                        sans.push(GeneralName::DnsName(der::asn1::Ia5String::new(n)?));
                    }
                }
                out.push(SubjectAltName(sans).to_extension(subject, &out)?);
            }
            Kind::DeviceIdentity => {
                out.push(ExtendedKeyUsage(vec![CLIENT_AUTH]).to_extension(subject, &out)?);
            }
            Kind::Ca | Kind::ProfileSigner => {}
        }
        out.push(SubjectKeyIdentifier(key_id(spk)?).to_extension(subject, &out)?);
        if !ca {
            out.push(
                AuthorityKeyIdentifier {
                    key_identifier: Some(key_id(issuer_spk)?),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                }
                .to_extension(subject, &out)?,
            );
        }
        Ok(out)
    }
}

/// Issue a certificate for `subject_key` signed by `issuer` (self-signed when `None`).
pub fn issue(
    kind: Kind,
    subject: &str,
    subject_key: &rsa::PublicKey,
    issuer: Option<&Identity>,
    signing_key: &RsaKey,
    lifetime: Duration,
    serial: &[u8],
) -> Result<Certificate, BoxError> {
    let subject: Name = subject.parse()?;
    let issuer_name = match issuer {
        Some(i) => Name::from_der(i.cert.subject_der())?,
        None => subject.clone(),
    };
    let now = SystemTime::now();
    let validity = Validity::new(
        Time::try_from(now - Duration::from_secs(600))?,
        Time::try_from(now + lifetime)?,
    );
    let spki = SubjectPublicKeyInfoOwned::from_key(subject_key)?;
    let profile = Profile {
        issuer: issuer_name,
        subject,
        kind,
    };
    let builder = CertificateBuilder::new(profile, SerialNumber::new(serial)?, validity, spki)?;
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(signing_key.private_key().clone());
    let cert = builder.build::<_, rsa::pkcs1v15::Signature>(&signer)?;
    Ok(Certificate::from_der(&cert.to_der()?)?)
}

/// A random positive 16-byte serial.
pub fn random_serial() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(getrandom::SysRng), &mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    bytes
}

/// PEM of one DER certificate.
pub fn cert_pem(der: &[u8]) -> String {
    use base64ct::{Base64, Encoding};
    let b64 = Base64::encode_string(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
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
    Ok(Some(Identity { key, cert }))
}

fn create(
    dir: &Path,
    name: &str,
    kind: Kind,
    subject: &str,
    issuer: Option<&Identity>,
    lifetime: Duration,
) -> Result<Identity, BoxError> {
    let key = RsaKey::generate(&mut getrandom::SysRng, 2048)?;
    let signing = issuer.map(|i| &i.key).unwrap_or(&key);
    let cert = issue(
        kind,
        subject,
        key.public_key(),
        issuer,
        signing,
        lifetime,
        &random_serial(),
    )?;
    write_private(&dir.join(format!("{name}.key.pem")), &key.to_pkcs8_pem()?)?;
    std::fs::write(dir.join(format!("{name}.pem")), cert_pem(cert.der()))?;
    tracing::info!(file = %dir.join(format!("{name}.pem")).display(), "created {name} certificate");
    Ok(Identity { key, cert })
}

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// Load the data folder's keys and certificates, creating what is missing.
/// `hosts` are the TLS certificate's subject alternative names.
pub fn load_or_create(dir: &Path, hosts: &[String]) -> Result<Pki, BoxError> {
    std::fs::create_dir_all(dir)?;
    let ca = match load(dir, "ca")? {
        Some(ca) => ca,
        None => create(
            dir,
            "ca",
            Kind::Ca,
            "CN=mdm-enroll demo CA,O=mdm-enroll",
            None,
            10 * YEAR,
        )?,
    };
    let tls = match load(dir, "tls")? {
        Some(tls) => tls,
        None => create(
            dir,
            "tls",
            Kind::TlsServer(hosts.to_vec()),
            "CN=mdm-enroll server,O=mdm-enroll",
            Some(&ca),
            2 * YEAR,
        )?,
    };
    let signer = match load(dir, "signer")? {
        Some(s) => s,
        None => create(
            dir,
            "signer",
            Kind::ProfileSigner,
            "CN=mdm-enroll profile signer,O=mdm-enroll",
            Some(&ca),
            2 * YEAR,
        )?,
    };
    Ok(Pki { ca, tls, signer })
}

/// The rustls server configuration (ring provider): the TLS certificate and
/// an *optional* client certificate that must chain to the CA (device
/// identities issued through SCEP), for mTLS identity on check-in.
pub fn server_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, BoxError> {
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
