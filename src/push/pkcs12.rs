//! A PKCS#12 (`.p12`/`.pfx`, RFC 7292) reader for one identity: a private
//! key and its certificate, as Keychain Access and `openssl pkcs12 -export`
//! write them.
//!
//! Sans-IO and bounded: the input is at most [`MAX_PKCS12_BYTES`], holds at
//! most [`MAX_BAGS`] bags, and no key derivation runs more than
//! [`MAX_ITERATIONS`] rounds. BER input (indefinite lengths, chunked strings)
//! is normalised to DER first ([`crate::wire::ber`]).
//!
//! The MAC (HMAC-SHA-1/-256/-384/-512 keyed by the RFC 7292 appendix B KDF)
//! is checked before anything is decrypted, so a wrong password is
//! [`Pkcs12Error::WrongPassword`], never garbage. Bags may be encrypted with
//! PBES2 (PBKDF2-HMAC-SHA-1/-256 with AES-128/192/256-CBC or DES-EDE3-CBC;
//! the password as UTF-8, as OpenSSL does) or with the legacy PKCS#12 PBEs
//! `pbeWithSHAAnd3-KeyTripleDES-CBC`, `pbeWithSHAAnd128BitRC2-CBC` and
//! `pbeWithSHAAnd40BitRC2-CBC` (the password as a NUL-terminated BMPString),
//! which macOS Keychain and `openssl pkcs12 -legacy` use.
//!
//! Of the certificates in the file (exporters may add the chain), the one
//! whose public key is the key's is the identity's; the others are returned
//! as [`Pkcs12Identity::chain`].

use cbc::cipher::{BlockModeDecrypt, InnerIvInit, KeyIvInit, block_padding::Pkcs7};
use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence};
use hmac::{Mac, SimpleHmac};
use sha1::Sha1;
use sha2::digest::{Digest, common::BlockSizeUser};
use sha2::{Sha256, Sha384, Sha512};
use spki::AlgorithmIdentifierOwned;
use thiserror::Error;

use crate::cms::Certificate;
use crate::crypto::{RsaKey, Signer as _};
use crate::wire::ber::{self, BerLimits};

/// Largest PKCS#12 input accepted (an identity with a chain is a few KiB).
pub const MAX_PKCS12_BYTES: usize = 256 * 1024;
/// Most safe bags in one file, all safe contents together.
pub const MAX_BAGS: usize = 64;
/// Most key-derivation rounds accepted for the MAC or a PBE (OpenSSL writes 2048).
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// `id-data` (PKCS#7 data).
pub const OID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// `id-encryptedData` (PKCS#7 encrypted data).
pub const OID_ENCRYPTED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
/// `keyBag`: an unencrypted PKCS#8 private key.
pub const OID_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
/// `pkcs8ShroudedKeyBag`: an encrypted PKCS#8 private key.
pub const OID_SHROUDED_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
/// `certBag`.
pub const OID_CERT_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
/// `x509Certificate` (the certificate type inside a cert bag).
pub const OID_X509_CERTIFICATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
/// `pbeWithSHAAnd128BitRC2-CBC`.
pub const OID_PBE_SHA_RC2_128: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.5");
/// `pbeWithSHAAnd40BitRC2-CBC`.
pub const OID_PBE_SHA_RC2_40: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6");
/// `pbeWithSHAAnd3-KeyTripleDES-CBC`.
pub const OID_PBE_SHA_3DES: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
/// `id-PBES2` (PKCS#5).
pub const OID_PBES2: ObjectIdentifier = pkcs5::pbes2::PBES2_OID;
/// SHA-1.
pub const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// SHA-256.
pub const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// SHA-384.
pub const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
/// SHA-512.
pub const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// Why a PKCS#12 file was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Pkcs12Error {
    /// The input is larger than [`MAX_PKCS12_BYTES`].
    #[error("PKCS#12 input of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Input size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The input is not a BER element (truncated, garbage).
    #[error("PKCS#12 encoding: {0}")]
    Ber(#[from] ber::BerError),
    /// A structure could not be decoded.
    #[error("PKCS#12 {what}: {reason}")]
    Malformed {
        /// Which structure.
        what: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The PFX version is not 3.
    #[error("PKCS#12 version {0} is not 3")]
    Version(u8),
    /// The file uses public-key integrity or privacy mode, or an unknown content type.
    #[error("PKCS#12 content type {0} is not supported (only password mode)")]
    UnsupportedContent(String),
    /// An algorithm (MAC digest, PBE, PBES2 part) that is not supported.
    #[error("PKCS#12 algorithm {0} is not supported")]
    UnsupportedAlgorithm(String),
    /// More key-derivation rounds than [`MAX_ITERATIONS`].
    #[error("PKCS#12 iteration count {count} exceeds the limit {limit}")]
    TooManyIterations {
        /// The file's count.
        count: u64,
        /// The limit.
        limit: u32,
    },
    /// More safe bags than [`MAX_BAGS`].
    #[error("PKCS#12 holds more than {limit} bags")]
    TooManyBags {
        /// The limit.
        limit: usize,
    },
    /// The MAC did not verify: the password is wrong (or the file was altered).
    #[error("PKCS#12 MAC mismatch: wrong password, or the file was altered")]
    WrongPassword,
    /// Decryption failed (bad padding) in a file without MAC: wrong password or corrupt.
    #[error("PKCS#12 {0} did not decrypt: wrong password, or the file is corrupt")]
    Decrypt(&'static str),
    /// The private key could not be read.
    #[error("PKCS#12 private key: {0}")]
    Key(String),
    /// No private key bag.
    #[error("PKCS#12 holds no private key")]
    NoKey,
    /// More than one private key.
    #[error("PKCS#12 holds more than one private key")]
    SeveralKeys,
    /// No certificate has the key's public key.
    #[error("PKCS#12 holds no certificate for its private key")]
    NoCertificate,
}

/// The identity read from a PKCS#12 file.
#[derive(Clone)]
#[non_exhaustive]
pub struct Pkcs12Identity {
    /// The private key.
    pub key: RsaKey,
    /// The certificate whose public key is the key's.
    pub certificate: Certificate,
    /// The other certificates in the file, in file order.
    pub chain: Vec<Certificate>,
}

impl std::fmt::Debug for Pkcs12Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs12Identity")
            .field("certificate", &self.certificate)
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// `PFX ::= SEQUENCE { version, authSafe ContentInfo, macData MacData OPTIONAL }`.
#[derive(Sequence)]
struct Pfx {
    version: u8,
    auth_safe: ContentInfo,
    mac_data: Option<MacData>,
}

/// `ContentInfo ::= SEQUENCE { contentType, content [0] EXPLICIT ANY OPTIONAL }`.
#[derive(Sequence)]
struct ContentInfo {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    content: Option<Any>,
}

/// `AuthenticatedSafe ::= SEQUENCE OF ContentInfo`.
type AuthenticatedSafe = Vec<ContentInfo>;

/// `MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }`.
#[derive(Sequence)]
struct MacData {
    mac: DigestInfo,
    mac_salt: OctetString,
    #[asn1(default = "one")]
    iterations: u64,
}

fn one() -> u64 {
    1
}

/// `DigestInfo ::= SEQUENCE { digestAlgorithm, digest OCTET STRING }`.
#[derive(Sequence)]
struct DigestInfo {
    algorithm: AlgorithmIdentifierOwned,
    digest: OctetString,
}

/// `SafeBag ::= SEQUENCE { bagId, bagValue [0] EXPLICIT ANY, bagAttributes SET OF OPTIONAL }`.
#[derive(Sequence)]
struct SafeBag {
    bag_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    bag_value: Any,
    attributes: Option<Any>,
}

/// `SafeContents ::= SEQUENCE OF SafeBag`.
type SafeContents = Vec<SafeBag>;

/// `CertBag ::= SEQUENCE { certId, certValue [0] EXPLICIT ANY }`.
#[derive(Sequence)]
struct CertBag {
    cert_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    cert_value: OctetString,
}

/// `EncryptedData ::= SEQUENCE { version, encryptedContentInfo }`.
#[derive(Sequence)]
struct EncryptedData {
    _version: u8,
    encrypted_content_info: EncryptedContentInfo,
}

/// `EncryptedContentInfo ::= SEQUENCE { contentType, contentEncryptionAlgorithm,
/// encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }`; the content is kept
/// as it came (BER may leave it constructed) and read with [`ber`].
#[derive(Sequence)]
struct EncryptedContentInfo {
    _content_type: ObjectIdentifier,
    algorithm: AlgorithmIdentifierOwned,
    encrypted_content: Option<Any>,
}

/// `EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm, encryptedData OCTET STRING }`.
#[derive(Sequence)]
struct EncryptedPrivateKeyInfo {
    algorithm: AlgorithmIdentifierOwned,
    encrypted_data: OctetString,
}

/// `pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER }`.
#[derive(Sequence)]
struct PbeParams {
    salt: OctetString,
    iterations: u64,
}

fn malformed(what: &'static str) -> impl Fn(der::Error) -> Pkcs12Error {
    move |e| Pkcs12Error::Malformed {
        what,
        reason: e.to_string(),
    }
}

fn check_iterations(count: u64) -> Result<u32, Pkcs12Error> {
    u32::try_from(count)
        .ok()
        .filter(|c| (1..=MAX_ITERATIONS).contains(c))
        .ok_or(Pkcs12Error::TooManyIterations {
            count,
            limit: MAX_ITERATIONS,
        })
}

/// The password forms: BMPString with trailing NUL for the PKCS#12 KDF,
/// UTF-8 for PBES2.
struct Password<'a> {
    utf8: &'a [u8],
    bmp: Vec<u8>,
}

impl<'a> Password<'a> {
    fn new(password: &'a str) -> Self {
        let mut bmp: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
        bmp.extend_from_slice(&[0, 0]);
        Self {
            utf8: password.as_bytes(),
            bmp,
        }
    }
}

/// Read the one identity (key and certificate) of a PKCS#12 file.
pub fn parse(bytes: &[u8], password: &str) -> Result<Pkcs12Identity, Pkcs12Error> {
    if bytes.len() > MAX_PKCS12_BYTES {
        return Err(Pkcs12Error::TooLarge {
            size: bytes.len(),
            limit: MAX_PKCS12_BYTES,
        });
    }
    let pfx: Pfx = decode_ber(bytes, "PFX")?;
    if pfx.version != 3 {
        return Err(Pkcs12Error::Version(pfx.version));
    }
    if pfx.auth_safe.content_type != OID_DATA {
        return Err(Pkcs12Error::UnsupportedContent(
            pfx.auth_safe.content_type.to_string(),
        ));
    }
    let auth_safe = data_content(&pfx.auth_safe)?;
    let mut password = Password::new(password);
    if let Some(mac) = &pfx.mac_data {
        verify_mac(mac, &auth_safe, &mut password)?;
    }
    let safes: AuthenticatedSafe = decode_ber(&auth_safe, "AuthenticatedSafe")?;
    let mut bags = Vec::new();
    for info in &safes {
        let contents = if info.content_type == OID_DATA {
            data_content(info)?
        } else if info.content_type == OID_ENCRYPTED_DATA {
            encrypted_content(info, &password)?
        } else {
            return Err(Pkcs12Error::UnsupportedContent(
                info.content_type.to_string(),
            ));
        };
        let more: SafeContents = decode_ber(&contents, "SafeContents")?;
        if bags.len() + more.len() > MAX_BAGS {
            return Err(Pkcs12Error::TooManyBags { limit: MAX_BAGS });
        }
        bags.extend(more);
    }
    let mut key = None;
    let mut certificates = Vec::new();
    for bag in &bags {
        let pkcs8 = if bag.bag_id == OID_KEY_BAG {
            Some(bag.bag_value.to_der().map_err(malformed("key bag"))?)
        } else if bag.bag_id == OID_SHROUDED_KEY_BAG {
            let info = bag
                .bag_value
                .decode_as::<EncryptedPrivateKeyInfo>()
                .map_err(malformed("shrouded key bag"))?;
            Some(decrypt(
                &info.algorithm,
                info.encrypted_data.as_bytes(),
                &password,
                "private key",
            )?)
        } else if bag.bag_id == OID_CERT_BAG {
            let cert = bag
                .bag_value
                .decode_as::<CertBag>()
                .map_err(malformed("certificate bag"))?;
            if cert.cert_id == OID_X509_CERTIFICATE {
                certificates.push(Certificate::from_der(cert.cert_value.as_bytes()).map_err(
                    |e| Pkcs12Error::Malformed {
                        what: "certificate",
                        reason: e.to_string(),
                    },
                )?);
            }
            None
        } else {
            // CRL, secret and nested bags carry nothing an identity needs.
            None
        };
        if let Some(pkcs8) = pkcs8 {
            if key.is_some() {
                return Err(Pkcs12Error::SeveralKeys);
            }
            key =
                Some(RsaKey::from_pem_or_der(&pkcs8).map_err(|e| Pkcs12Error::Key(e.to_string()))?);
        }
    }
    let key = key.ok_or(Pkcs12Error::NoKey)?;
    let position = certificates
        .iter()
        .position(|c| c.has_public_key(key.public_key()))
        .ok_or(Pkcs12Error::NoCertificate)?;
    let certificate = certificates.remove(position);
    Ok(Pkcs12Identity {
        key,
        certificate,
        chain: certificates,
    })
}

/// Bounds for every BER walk (the whole file, and each encapsulated or
/// decrypted structure in it).
const LIMITS: BerLimits = BerLimits {
    max_depth: 32,
    max_elements: 20_000,
    max_size: MAX_PKCS12_BYTES,
};

/// Normalise BER (some exporters write it, outside and inside the
/// encapsulated contents) to DER and decode `T`.
fn decode_ber<T: for<'a> Decode<'a>>(bytes: &[u8], what: &'static str) -> Result<T, Pkcs12Error> {
    let der = ber::to_der(bytes, &LIMITS)?;
    T::from_der(&der).map_err(|e| Pkcs12Error::Malformed {
        what,
        reason: e.to_string(),
    })
}

/// The octets of a `data` ContentInfo.
fn data_content(info: &ContentInfo) -> Result<Vec<u8>, Pkcs12Error> {
    let content = info.content.as_ref().ok_or(Pkcs12Error::Malformed {
        what: "ContentInfo",
        reason: "no content".into(),
    })?;
    content
        .decode_as::<OctetString>()
        .map(|o| o.into_bytes().into_vec())
        .map_err(malformed("data content"))
}

/// The decrypted octets of an `encryptedData` ContentInfo.
fn encrypted_content(info: &ContentInfo, password: &Password<'_>) -> Result<Vec<u8>, Pkcs12Error> {
    let content = info.content.as_ref().ok_or(Pkcs12Error::Malformed {
        what: "ContentInfo",
        reason: "no content".into(),
    })?;
    let data = content
        .decode_as::<EncryptedData>()
        .map_err(malformed("EncryptedData"))?;
    let eci = data.encrypted_content_info;
    let Some(raw) = eci.encrypted_content else {
        return Ok(Vec::new());
    };
    let raw = raw.to_der().map_err(malformed("encrypted content"))?;
    let element = ber::Element::parse(&raw, &LIMITS)?;
    if !element.is(ber::Class::Context, 0) {
        return Err(Pkcs12Error::Malformed {
            what: "EncryptedContentInfo",
            reason: "encryptedContent is not [0]".into(),
        });
    }
    let ciphertext = element.string_value()?;
    decrypt(&eci.algorithm, &ciphertext, password, "certificates")
}

fn verify_mac(
    mac: &MacData,
    auth_safe: &[u8],
    password: &mut Password<'_>,
) -> Result<(), Pkcs12Error> {
    let iterations = check_iterations(mac.iterations)?;
    let oid = mac.mac.algorithm.oid;
    let salt = mac.mac_salt.as_bytes();
    let expected = mac.mac.digest.as_bytes();
    let check = |pass: &[u8]| -> Result<bool, Pkcs12Error> {
        Ok(if oid == OID_SHA1 {
            hmac_matches::<Sha1>(pass, salt, iterations, auth_safe, expected)
        } else if oid == OID_SHA256 {
            hmac_matches::<Sha256>(pass, salt, iterations, auth_safe, expected)
        } else if oid == OID_SHA384 {
            hmac_matches::<Sha384>(pass, salt, iterations, auth_safe, expected)
        } else if oid == OID_SHA512 {
            hmac_matches::<Sha512>(pass, salt, iterations, auth_safe, expected)
        } else {
            return Err(Pkcs12Error::UnsupportedAlgorithm(format!(
                "MAC digest {oid}"
            )));
        })
    };
    if check(&password.bmp)? {
        return Ok(());
    }
    // An empty password may have been applied as no password at all (no
    // BMP NUL), as OpenSSL does when it is given none.
    if password.utf8.is_empty() && check(&[])? {
        password.bmp.clear();
        return Ok(());
    }
    Err(Pkcs12Error::WrongPassword)
}

fn hmac_matches<D>(pass: &[u8], salt: &[u8], iterations: u32, data: &[u8], expected: &[u8]) -> bool
where
    D: Digest + BlockSizeUser + Clone,
{
    let key = kdf::<D>(pass, salt, 3, iterations, <D as Digest>::output_size());
    let Ok(mut mac) = <SimpleHmac<D> as hmac::KeyInit>::new_from_slice(&key) else {
        return false;
    };
    mac.update(data);
    mac.verify_slice(expected).is_ok()
}

/// RFC 7292 appendix B.2: derive `n` bytes of purpose `id` (1 key, 2 IV, 3 MAC).
fn kdf<D: Digest + BlockSizeUser>(
    pass: &[u8],
    salt: &[u8],
    id: u8,
    iterations: u32,
    n: usize,
) -> Vec<u8> {
    let v = D::block_size();
    let u = <D as Digest>::output_size();
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let len = v * src.len().div_ceil(v);
        src.iter().copied().cycle().take(len).collect()
    };
    let diversifier = vec![id; v];
    let mut i = fill(salt);
    i.extend(fill(pass));
    let mut out = Vec::with_capacity(n + u);
    while out.len() < n {
        let mut a = D::new()
            .chain_update(&diversifier)
            .chain_update(&i)
            .finalize();
        for _ in 1..iterations {
            a = D::digest(&a);
        }
        out.extend_from_slice(&a);
        if out.len() >= n {
            break;
        }
        let b: Vec<u8> = a.iter().copied().cycle().take(v).collect();
        for block in i.chunks_mut(v) {
            // block = (block + b + 1) mod 2^(8v)
            let mut carry = 1u16;
            for (x, y) in block.iter_mut().rev().zip(b.iter().rev()) {
                let sum = u16::from(*x) + u16::from(*y) + carry;
                *x = sum.to_le_bytes()[0];
                carry = sum >> 8;
            }
        }
    }
    out.truncate(n);
    out
}

/// Decrypt `data` under a PBES2 or PKCS#12 PBE `algorithm`.
fn decrypt(
    algorithm: &AlgorithmIdentifierOwned,
    data: &[u8],
    password: &Password<'_>,
    what: &'static str,
) -> Result<Vec<u8>, Pkcs12Error> {
    let params = algorithm
        .parameters
        .as_ref()
        .ok_or(Pkcs12Error::Malformed {
            what: "encryption parameters",
            reason: "missing".into(),
        })?;
    let oid = algorithm.oid;
    if oid == OID_PBES2 {
        let params = params
            .decode_as::<pkcs5::pbes2::Parameters>()
            .map_err(malformed("PBES2 parameters"))?;
        match params.kdf.pbkdf2() {
            Some(p) => {
                check_iterations(u64::from(p.iteration_count))?;
            }
            None => {
                return Err(Pkcs12Error::UnsupportedAlgorithm(format!(
                    "PBES2 KDF {}",
                    params.kdf.oid()
                )));
            }
        }
        return params.decrypt(password.utf8, data).map_err(|e| match e {
            pkcs5::Error::UnsupportedAlgorithm { oid } => {
                Pkcs12Error::UnsupportedAlgorithm(format!("PBES2 part {oid}"))
            }
            _ => Pkcs12Error::Decrypt(what),
        });
    }
    let pbe = params
        .decode_as::<PbeParams>()
        .map_err(malformed("PBE parameters"))?;
    let iterations = check_iterations(pbe.iterations)?;
    let salt = pbe.salt.as_bytes();
    let derive = |id: u8, n: usize| kdf::<Sha1>(&password.bmp, salt, id, iterations, n);
    let iv = derive(2, 8);
    let bad = |_| Pkcs12Error::Decrypt(what);
    if oid == OID_PBE_SHA_3DES {
        cbc::Decryptor::<des::TdesEde3>::new_from_slices(&derive(1, 24), &iv)
            .map_err(|_| Pkcs12Error::Decrypt(what))?
            .decrypt_padded_vec::<Pkcs7>(data)
            .map_err(bad)
    } else if oid == OID_PBE_SHA_RC2_40 || oid == OID_PBE_SHA_RC2_128 {
        let bytes = if oid == OID_PBE_SHA_RC2_40 { 5 } else { 16 };
        let cipher = rc2::Rc2::new_with_eff_key_len(&derive(1, bytes), bytes * 8);
        cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(cipher, &iv)
            .map_err(|_| Pkcs12Error::Decrypt(what))?
            .decrypt_padded_vec::<Pkcs7>(data)
            .map_err(bad)
    } else {
        Err(Pkcs12Error::UnsupportedAlgorithm(format!(
            "encryption {oid}"
        )))
    }
}
