//! Certificate authority helpers: create a CA and an RA certificate, issue
//! leaf certificates under caller policy.
//!
//! Keys stay behind [`crypto::Signer`]; certificates are built with
//! `x509-cert`'s [`CertificateBuilder`]. Nothing here reads the clock: every
//! validity starts from a caller-supplied `now`.
//!
//! - [`create_ca`]: self-signed root with the key usages SCEP clients need
//!   (RFC 8894 §2.1.2: digitalSignature and keyEncipherment besides
//!   keyCertSign/cRLSign; OpenSSL-based clients refuse a CertRep signer without them).
//! - [`create_ra`]: an RA (SCEP encryption + signing) certificate issued by the CA.
//! - [`issue`]: a leaf for a public key under a [`LeafPolicy`] the caller decides.
//! - [`random_serial`]: a 127-bit random positive serial from the injected RNG.
//! - [`certification_request`]: a PKCS#10 request (SCEP clients, the push certificate CSR).

use std::time::{Duration, SystemTime};

use const_oid::db::rfc5280::{ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH};
use der::Encode;
use der::asn1::OctetString;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use thiserror::Error;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::{Certificate, TbsCertificate};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::crypto::{self, DigestAlgorithm, Signer};

/// Errors from building certificates.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A time could not be represented in a certificate (before 1950 or after 9999).
    #[error("time not representable in a certificate: {0}")]
    Time(String),
    /// A value could not be encoded.
    #[error("certificate encoding failed: {0}")]
    Encoding(String),
    /// The signer failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// A key is not usable (not RSA, or does not match).
    #[error("unusable key: {0}")]
    Key(String),
}

impl From<der::Error> for PkiError {
    fn from(e: der::Error) -> Self {
        Self::Encoding(e.to_string())
    }
}

/// Backdating applied to every `notBefore` (clock skew between server and
/// device; micromdm's 600 ns grace broke devices whose clock ran behind).
pub const NOT_BEFORE_BACKDATE: Duration = Duration::from_secs(10 * 60);

/// A validity period starting [`NOT_BEFORE_BACKDATE`] before `now` and lasting
/// `lifetime` after `now`.
pub fn validity(now: SystemTime, lifetime: Duration) -> Result<Validity, PkiError> {
    let start = now.checked_sub(NOT_BEFORE_BACKDATE).unwrap_or(now);
    let end = now
        .checked_add(lifetime)
        .ok_or_else(|| PkiError::Time("lifetime overflows".into()))?;
    let t = |s: SystemTime| Time::try_from(s).map_err(|e| PkiError::Time(e.to_string()));
    Ok(Validity::new(t(start)?, t(end)?))
}

/// A random positive serial number of 16 bytes (127 random bits) from `rng`.
///
/// RFC 5280 asks for at least 64 bits of entropy; uniqueness across issuances
/// is the caller's store's job (it must refuse a serial it already recorded,
/// and the caller then draws again — with 127 bits that never happens in practice).
pub fn random_serial<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> SerialNumber {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    // Positive (top bit clear) and of full length (second-highest bit set),
    // so the DER INTEGER is always exactly 16 octets.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    // 16 octets is below SerialNumber::MAX_LEN (20) and the value is positive,
    // so this cannot fail; fall back to a fixed-length value to stay panic-free.
    SerialNumber::new(&bytes).unwrap_or_else(|_| SerialNumber::from(1u32))
}

/// What a leaf certificate says, decided by the caller (never copied blindly
/// from a CSR).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LeafPolicy {
    /// The subject name.
    pub subject: Name,
    /// Subject alternative names (none: no SAN extension).
    pub subject_alt_names: Vec<GeneralName>,
    /// Key usages (critical extension).
    pub key_usage: KeyUsage,
    /// Extended key usages (none: no EKU extension).
    pub extended_key_usage: Vec<const_oid::ObjectIdentifier>,
    /// Signature digest used by the issuing CA.
    pub digest: DigestAlgorithm,
}

impl LeafPolicy {
    /// A device identity: KeyUsage digitalSignature + keyEncipherment, EKU
    /// clientAuth, SHA-256 (what MDM identities and SCEP clients expect).
    pub fn client_auth(subject: Name) -> Self {
        Self {
            subject,
            subject_alt_names: Vec::new(),
            key_usage: KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
            extended_key_usage: vec![ID_KP_CLIENT_AUTH],
            digest: DigestAlgorithm::Sha256,
        }
    }

    /// A TLS server certificate for `dns_names` (SANs; IP literals such as
    /// `127.0.0.1` or `::1` become iPAddress SANs), EKU serverAuth.
    pub fn tls_server(subject: Name, dns_names: &[&str]) -> Result<Self, PkiError> {
        let sans = dns_names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => {
                    let octets = match ip {
                        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
                    };
                    der::asn1::OctetString::new(octets)
                        .map(GeneralName::IpAddress)
                        .map_err(PkiError::from)
                }
                Err(_) => der::asn1::Ia5String::new(n)
                    .map(GeneralName::DnsName)
                    .map_err(PkiError::from),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            subject,
            subject_alt_names: sans,
            key_usage: KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
            extended_key_usage: vec![ID_KP_SERVER_AUTH],
            digest: DigestAlgorithm::Sha256,
        })
    }
}

/// Create a self-signed CA certificate for the key behind `signer`.
///
/// Extensions: BasicConstraints CA (critical), KeyUsage digitalSignature,
/// keyEncipherment, keyCertSign, cRLSign (critical), SubjectKeyIdentifier.
/// The CA can thus also sign CertReps and receive SCEP envelopes itself.
pub fn create_ca(
    signer: &dyn Signer,
    subject: Name,
    serial: SerialNumber,
    validity: Validity,
) -> Result<Certificate, PkiError> {
    let spki = spki_of(signer.public_key())?;
    let profile = Profile {
        issuer: subject.clone(),
        subject,
        ca: true,
        key_usage: KeyUsage(
            KeyUsages::DigitalSignature
                | KeyUsages::KeyEncipherment
                | KeyUsages::KeyCertSign
                | KeyUsages::CRLSign,
        ),
        ekus: Vec::new(),
        sans: Vec::new(),
    };
    build(
        profile,
        serial,
        validity,
        spki,
        signer,
        DigestAlgorithm::Sha256,
    )
}

/// Create an RA certificate for `ra_key`, issued by `ca` (whose key is behind
/// `ca_signer`): KeyUsage digitalSignature + keyEncipherment, not a CA.
///
/// Apple accepts such a dual-use RA in an `application/x-x509-ca-ra-cert` bag:
/// it encrypts to it and expects CertReps signed by it.
pub fn create_ra(
    ca: &Certificate,
    ca_signer: &dyn Signer,
    ra_key: &crate::crypto::PublicKey,
    subject: Name,
    serial: SerialNumber,
    validity: Validity,
) -> Result<Certificate, PkiError> {
    check_issuer_key(ca, ca_signer)?;
    let profile = Profile {
        issuer: ca.tbs_certificate().subject().clone(),
        subject,
        ca: false,
        key_usage: KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
        ekus: Vec::new(),
        sans: Vec::new(),
    };
    build(
        profile,
        serial,
        validity,
        spki_of(ra_key)?,
        ca_signer,
        DigestAlgorithm::Sha256,
    )
}

/// Issue a leaf certificate for `subject_public_key` under `policy`, signed by
/// `ca` (key behind `ca_signer`). The serial and validity come from the caller
/// (see [`random_serial`], [`validity`]).
pub fn issue(
    ca: &Certificate,
    ca_signer: &dyn Signer,
    subject_public_key: SubjectPublicKeyInfoOwned,
    policy: &LeafPolicy,
    serial: SerialNumber,
    validity: Validity,
) -> Result<Certificate, PkiError> {
    check_issuer_key(ca, ca_signer)?;
    let profile = Profile {
        issuer: ca.tbs_certificate().subject().clone(),
        subject: policy.subject.clone(),
        ca: false,
        key_usage: policy.key_usage,
        ekus: policy.extended_key_usage.clone(),
        sans: policy.subject_alt_names.clone(),
    };
    build(
        profile,
        serial,
        validity,
        subject_public_key,
        ca_signer,
        policy.digest,
    )
}

/// A PKCS#10 certification request (RFC 2986) for the key behind `signer`,
/// naming `subject`, with a `challengePassword` attribute when `challenge`
/// is given, signed with SHA-256; DER.
pub fn certification_request(
    signer: &dyn Signer,
    subject: Name,
    challenge: Option<&str>,
) -> Result<Vec<u8>, PkiError> {
    use der::asn1::{Any, BitString, SetOfVec};
    use x509_cert::attr::Attribute;
    use x509_cert::request::{CertReq, CertReqInfo, Version};
    let mut attributes = SetOfVec::new();
    if let Some(c) = challenge {
        let mut values = SetOfVec::new();
        values.insert(Any::encode_from(&der::asn1::Utf8StringRef::new(c)?)?)?;
        attributes.insert(Attribute {
            oid: const_oid::db::rfc2985::PKCS_9_AT_CHALLENGE_PASSWORD,
            values,
        })?;
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key: spki_of(signer.public_key())?,
        attributes,
    };
    let signature = signer
        .sign(DigestAlgorithm::Sha256, &info.to_der()?)
        .map_err(|e| PkiError::Signing(e.to_string()))?;
    let request = CertReq {
        info,
        algorithm: AlgorithmIdentifierOwned {
            oid: DigestAlgorithm::Sha256.rsa_signature_oid(),
            parameters: Some(Any::null()),
        },
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(request.to_der()?)
}

/// Refuse to sign with a key that is not the issuer certificate's.
fn check_issuer_key(ca: &Certificate, signer: &dyn Signer) -> Result<(), PkiError> {
    let ca_key = crypto::rsa_public_key(ca.tbs_certificate().subject_public_key_info())
        .map_err(|e| PkiError::Key(e.to_string()))?;
    if &ca_key != signer.public_key() {
        return Err(PkiError::Key(
            "signer key does not match the issuer certificate".into(),
        ));
    }
    Ok(())
}

fn spki_of(key: &crate::crypto::PublicKey) -> Result<SubjectPublicKeyInfoOwned, PkiError> {
    key.to_spki().map_err(|e| PkiError::Key(e.to_string()))
}

/// SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2 method 1).
fn key_identifier(spki: SubjectPublicKeyInfoRef<'_>) -> Result<OctetString, PkiError> {
    let bits = spki.subject_public_key.raw_bytes();
    Ok(OctetString::new(DigestAlgorithm::Sha1.digest(bits))?)
}

fn build(
    profile: Profile,
    serial: SerialNumber,
    validity: Validity,
    spki: SubjectPublicKeyInfoOwned,
    signer: &dyn Signer,
    digest: DigestAlgorithm,
) -> Result<Certificate, PkiError> {
    let builder = CertificateBuilder::new(profile, serial, validity, spki)
        .map_err(|e| PkiError::Encoding(e.to_string()))?;
    builder
        .build::<_, rsa::pkcs1v15::Signature>(&BuilderSigner { signer, digest })
        .map_err(|e| PkiError::Signing(e.to_string()))
}

/// The extensions of the certificates this module makes.
struct Profile {
    issuer: Name,
    subject: Name,
    ca: bool,
    key_usage: KeyUsage,
    ekus: Vec<const_oid::ObjectIdentifier>,
    sans: Vec<GeneralName>,
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
        let ext_err = |e: der::Error| x509_cert::builder::Error::from(e);
        let subject = tbs.subject();
        let mut out: Vec<Extension> = Vec::new();
        let bc = BasicConstraints {
            ca: self.ca,
            path_len_constraint: None,
        };
        out.push(bc.to_extension(subject, &out).map_err(ext_err)?);
        out.push(
            self.key_usage
                .to_extension(subject, &out)
                .map_err(ext_err)?,
        );
        if !self.ekus.is_empty() {
            let eku = ExtendedKeyUsage(self.ekus.clone());
            out.push(eku.to_extension(subject, &out).map_err(ext_err)?);
        }
        if !self.sans.is_empty() {
            let san = SubjectAltName(self.sans.clone());
            out.push(san.to_extension(subject, &out).map_err(ext_err)?);
        }
        let ski = key_identifier(spk).map_err(|_| der::Error::from(der::ErrorKind::Failed))?;
        out.push(
            SubjectKeyIdentifier(ski)
                .to_extension(subject, &out)
                .map_err(ext_err)?,
        );
        if !self.ca || self.issuer != self.subject {
            let aki = AuthorityKeyIdentifier {
                key_identifier: Some(
                    key_identifier(issuer_spk)
                        .map_err(|_| der::Error::from(der::ErrorKind::Failed))?,
                ),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            };
            out.push(aki.to_extension(subject, &out).map_err(ext_err)?);
        }
        Ok(out)
    }
}

/// Adapter from [`crypto::Signer`] to the traits `x509-cert`'s builder wants.
struct BuilderSigner<'a> {
    signer: &'a dyn Signer,
    digest: DigestAlgorithm,
}

impl signature::Keypair for BuilderSigner<'_> {
    type VerifyingKey = crate::crypto::PublicKey;

    fn verifying_key(&self) -> crate::crypto::PublicKey {
        self.signer.public_key().clone()
    }
}

impl spki::DynSignatureAlgorithmIdentifier for BuilderSigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(AlgorithmIdentifierOwned {
            oid: self.digest.rsa_signature_oid(),
            parameters: Some(der::asn1::Null.into()),
        })
    }
}

impl signature::Signer<rsa::pkcs1v15::Signature> for BuilderSigner<'_> {
    fn try_sign(&self, msg: &[u8]) -> Result<rsa::pkcs1v15::Signature, signature::Error> {
        let sig = self
            .signer
            .sign(self.digest, msg)
            .map_err(signature::Error::from_source)?;
        rsa::pkcs1v15::Signature::try_from(sig.as_slice())
    }
}

/// The DER encoding of a certificate.
pub fn to_der(cert: &Certificate) -> Result<Vec<u8>, PkiError> {
    Ok(cert.to_der()?)
}

/// Whether `cert` is inside its validity period at `now`.
pub fn is_valid_at(cert: &Certificate, now: SystemTime) -> bool {
    let v = cert.tbs_certificate().validity();
    v.not_before.to_system_time() <= now && now <= v.not_after.to_system_time()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::RsaKey;
    use rand_core::UnwrapErr;
    use std::time::UNIX_EPOCH;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn serials_are_16_positive_bytes_and_differ() {
        let mut rng = UnwrapErr(getrandom::SysRng);
        let a = random_serial(&mut rng);
        let b = random_serial(&mut rng);
        assert_eq!(a.as_bytes().len(), 16);
        assert!(a.as_bytes()[0] & 0x80 == 0 && a.as_bytes()[0] & 0x40 != 0);
        assert_ne!(a, b);
    }

    #[test]
    fn ca_ra_leaf_chain() {
        let mut rng = UnwrapErr(getrandom::SysRng);
        let ca_key = RsaKey::generate(&mut rng, 2048).unwrap();
        let ra_key = RsaKey::generate(&mut rng, 2048).unwrap();
        let v = validity(now(), Duration::from_secs(3600)).unwrap();
        assert_eq!(v.not_before.to_system_time(), now() - NOT_BEFORE_BACKDATE);
        let ca = create_ca(
            &ca_key,
            "CN=Test CA".parse().unwrap(),
            random_serial(&mut rng),
            v,
        )
        .unwrap();
        let ku = ca
            .tbs_certificate()
            .get_extension::<KeyUsage>()
            .unwrap()
            .unwrap()
            .1;
        assert!(ku.digital_signature() && ku.key_encipherment() && ku.key_cert_sign());
        let bc = ca
            .tbs_certificate()
            .get_extension::<BasicConstraints>()
            .unwrap()
            .unwrap()
            .1;
        assert!(bc.ca);
        let ra = create_ra(
            &ca,
            &ca_key,
            crate::crypto::Signer::public_key(&ra_key),
            "CN=Test RA".parse().unwrap(),
            random_serial(&mut rng),
            v,
        )
        .unwrap();
        let ca_c = crate::cms::Certificate::from_der(&to_der(&ca).unwrap()).unwrap();
        let ra_c = crate::cms::Certificate::from_der(&to_der(&ra).unwrap()).unwrap();
        ra_c.verify_issued_by(&ca_c).unwrap();
        ca_c.verify_issued_by(&ca_c).unwrap();
        assert_eq!(ra_c.is_ca().unwrap(), Some(false));
        assert!(is_valid_at(&ra, now()));
        assert!(!is_valid_at(&ra, now() + Duration::from_secs(7200)));

        // Signing with a key that is not the issuer's is refused.
        let spki = spki_of(crate::crypto::Signer::public_key(&ra_key)).unwrap();
        let policy =
            LeafPolicy::tls_server("CN=mdm.example".parse().unwrap(), &["mdm.example"]).unwrap();
        assert!(matches!(
            issue(
                &ca,
                &ra_key,
                spki.clone(),
                &policy,
                random_serial(&mut rng),
                v
            ),
            Err(PkiError::Key(_))
        ));
        let leaf = issue(&ca, &ca_key, spki, &policy, random_serial(&mut rng), v).unwrap();
        let leaf_c = crate::cms::Certificate::from_der(&to_der(&leaf).unwrap()).unwrap();
        leaf_c.verify_issued_by(&ca_c).unwrap();
        assert_eq!(
            leaf_c.extended_key_usage().unwrap().unwrap(),
            vec![ID_KP_SERVER_AUTH]
        );
        assert!(
            leaf.tbs_certificate()
                .get_extension::<SubjectAltName>()
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn tls_server_names_ip_literals_as_ip_sans() {
        let policy = LeafPolicy::tls_server(
            "CN=localhost".parse().unwrap(),
            &["localhost", "127.0.0.1", "::1"],
        )
        .unwrap();
        let sans = &policy.subject_alt_names;
        assert!(matches!(&sans[0], GeneralName::DnsName(n) if n.as_str() == "localhost"));
        assert!(matches!(&sans[1], GeneralName::IpAddress(o) if o.as_bytes() == [127, 0, 0, 1]));
        assert!(
            matches!(&sans[2], GeneralName::IpAddress(o) if o.as_bytes().len() == 16 && o.as_bytes()[15] == 1)
        );
    }
}
