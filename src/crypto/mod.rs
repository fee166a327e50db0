//! Key and public-key operations behind one provider, so a caller can keep
//! keys in an HSM or pick a faster backend.
//!
//! - [`CryptoProvider`]: gathers every operation the crate performs with RSA
//!   keys: loading and generating private keys, parsing public keys, PKCS#1
//!   v1.5 verification (certificate chains, CSRs, Mdm-Signature, device
//!   attributes, CMS SignerInfo) and encryption to a recipient. Two backends:
//!   the pure-Rust [`rsa`](https://docs.rs/rsa) crate (always built) and
//!   aws-lc-rs (feature `aws-lc`, the default provider when enabled).
//!   Randomness: the `rsa` crate backend takes every random byte from the
//!   caller's `rng`; aws-lc draws the blinding of its private operations and
//!   the padding of [`PublicKey::encrypt_pkcs1v15`] from its own DRBG (its
//!   API takes no RNG there), so with `aws-lc` those outputs are not
//!   reproducible from a seeded `rng`.
//! - [`Signer`]: RSA PKCS#1 v1.5 signatures (profile signing, CertRep, test
//!   devices), implemented by [`RsaKey`] or by your HSM/KMS.
//! - [`KeyUnwrapper`]: RSA PKCS#1 v1.5 key-transport decryption with implicit
//!   rejection (SCEP EnvelopedData); [`ImplicitRejection`] is the helper a
//!   backend that reports padding errors wraps itself in.
//! - [`PublicKey`]: an RSA public key parsed by a provider; no backend type
//!   appears in this crate's public API.
//! - [`DigestAlgorithm`]: the hashes CMS and SCEP negotiate.
//!
//! # A signer whose key lives in an HSM or a KMS
//!
//! The crate never needs the private key itself: anything that can produce a
//! PKCS#1 v1.5 signature implements [`Signer`]. The public key comes from the
//! certificate (or the KMS's `GetPublicKey`) once, at configuration time.
//!
//! ```
//! use mdm_enroll::crypto::{CryptoError, CryptoProvider, DigestAlgorithm, PublicKey, Signer};
//!
//! /// What a KMS client offers: sign a digest with a named key.
//! trait Kms: Send + Sync {
//!     fn sign_digest(&self, key_id: &str, alg: &str, digest: &[u8]) -> Result<Vec<u8>, String>;
//! }
//!
//! struct KmsSigner<K> {
//!     kms: K,
//!     key_id: String,
//!     public: PublicKey,
//! }
//!
//! impl<K: Kms> KmsSigner<K> {
//!     /// `spki_der`: the key's SubjectPublicKeyInfo (e.g. `Certificate::spki_der`).
//!     fn new(kms: K, key_id: &str, spki_der: &[u8]) -> Result<Self, CryptoError> {
//!         let public = CryptoProvider::get_default().public_key_from_spki_der(spki_der)?;
//!         Ok(Self { kms, key_id: key_id.into(), public })
//!     }
//! }
//!
//! impl<K: Kms> Signer for KmsSigner<K> {
//!     fn public_key(&self) -> &PublicKey {
//!         &self.public
//!     }
//!     fn sign(&self, digest: DigestAlgorithm, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
//!         let alg = match digest {
//!             DigestAlgorithm::Sha256 => "RSASSA_PKCS1_V1_5_SHA_256",
//!             DigestAlgorithm::Sha384 => "RSASSA_PKCS1_V1_5_SHA_384",
//!             DigestAlgorithm::Sha512 => "RSASSA_PKCS1_V1_5_SHA_512",
//!             // The KMS refuses SHA-1: say so rather than sign something else.
//!             _ => return Err(CryptoError::Backend("KMS key does not sign with SHA-1".into())),
//!         };
//!         let signature = self
//!             .kms
//!             .sign_digest(&self.key_id, alg, &digest.digest(message))
//!             .map_err(CryptoError::Backend)?;
//!         // Cheap and worth it: a KMS bound to the wrong key is caught here.
//!         self.public.verify(digest, message, &signature)?;
//!         Ok(signature)
//!     }
//! }
//! # // A stand-in KMS so the example runs.
//! # struct Local(mdm_enroll::crypto::RsaKey);
//! # impl Kms for Local {
//! #     fn sign_digest(&self, _: &str, _: &str, _: &[u8]) -> Result<Vec<u8>, String> {
//! #         Err("offline".into())
//! #     }
//! # }
//! # let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
//! # let key = mdm_enroll::crypto::RsaKey::generate(&mut rng, 1024).unwrap();
//! # let spki = key.public_key().spki_der().to_vec();
//! # let signer = KmsSigner::new(Local(key), "alias/ca", &spki).unwrap();
//! # assert!(signer.sign(DigestAlgorithm::Sha1, b"x").is_err());
//! ```
//!
//! # An HSM that reports PKCS#1 v1.5 padding errors
//!
//! SCEP requests carry the content key encrypted to the CA/RA with PKCS#1
//! v1.5. Telling a client *why* decryption failed (or failing faster for bad
//! padding) is a Bleichenbacher padding oracle. Most HSMs (PKCS#11
//! `CKM_RSA_PKCS`), cloud KMSs and aws-lc report bad padding as an error. A
//! [`KeyUnwrapper`] over such a device must therefore:
//!
//! 1. derive a synthetic key from a secret only the server knows and the
//!    ciphertext **before** asking the device (same work on every path);
//! 2. ask the device to decrypt, and never return or log its error;
//! 3. choose, in constant time, the decrypted key if decryption succeeded
//!    *and* has the expected length, else the synthetic key, and always
//!    return exactly `expected_len` bytes.
//!
//! [`ImplicitRejection::unwrap`] does 1 and 3 around your call:
//!
//! ```
//! use mdm_enroll::crypto::{CryptoError, ImplicitRejection, KeyUnwrapper, PublicKey};
//!
//! struct HsmUnwrapper {
//!     public: PublicKey,
//!     // Secret, stable per key: e.g. an HMAC of a fixed label by a key in the HSM.
//!     rejection: ImplicitRejection,
//! }
//!
//! fn hsm_decrypt_pkcs1(ciphertext: &[u8]) -> Result<Vec<u8>, String> {
//!     Err("CKR_ENCRYPTED_DATA_INVALID".into()) // stand-in for the PKCS#11 call
//! }
//!
//! impl KeyUnwrapper for HsmUnwrapper {
//!     fn public_key(&self) -> &PublicKey {
//!         &self.public
//!     }
//!     fn unwrap_key(&self, encrypted: &[u8], expected_len: usize) -> Result<Vec<u8>, CryptoError> {
//!         Ok(self.rejection.unwrap(encrypted, expected_len, hsm_decrypt_pkcs1))
//!     }
//! }
//! # let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
//! # let key = mdm_enroll::crypto::RsaKey::generate(&mut rng, 1024).unwrap();
//! # let u = HsmUnwrapper { public: key.public_key().clone(), rejection: ImplicitRejection::new(b"per-key secret") };
//! # let a = u.unwrap_key(&[1; 128], 16).unwrap();
//! # assert_eq!(a.len(), 16);
//! # assert_eq!(a, u.unwrap_key(&[1; 128], 16).unwrap());
//! ```

mod rustcrypto;

#[cfg(feature = "aws-lc")]
mod awslc;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::SubjectPublicKeyInfoOwned;
use thiserror::Error;

/// Errors from key operations.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The backend refused or failed the operation.
    #[error("key operation failed: {0}")]
    Backend(String),
    /// The key is not an RSA key this backend can use.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// A signature did not verify.
    #[error("signature does not verify")]
    BadSignature,
}

/// A message digest algorithm used in CMS and SCEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DigestAlgorithm {
    /// SHA-1 (legacy; Apple's Mdm-Signature and device attributes still use it).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// The algorithm's object identifier.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => rfc5912::ID_SHA_1,
            Self::Sha256 => rfc5912::ID_SHA_256,
            Self::Sha384 => rfc5912::ID_SHA_384,
            Self::Sha512 => rfc5912::ID_SHA_512,
        }
    }

    /// The `shaNNNWithRSAEncryption` signature algorithm for this digest.
    pub fn rsa_signature_oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => rfc5912::SHA_1_WITH_RSA_ENCRYPTION,
            Self::Sha256 => rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            Self::Sha384 => rfc5912::SHA_384_WITH_RSA_ENCRYPTION,
            Self::Sha512 => rfc5912::SHA_512_WITH_RSA_ENCRYPTION,
        }
    }

    /// Look a digest up by its OID.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        [Self::Sha1, Self::Sha256, Self::Sha384, Self::Sha512]
            .into_iter()
            .find(|d| d.oid() == *oid)
    }

    /// Look a digest up by a `shaNNNWithRSAEncryption` OID.
    pub fn from_rsa_signature_oid(oid: &ObjectIdentifier) -> Option<Self> {
        [Self::Sha1, Self::Sha256, Self::Sha384, Self::Sha512]
            .into_iter()
            .find(|d| d.rsa_signature_oid() == *oid)
    }

    /// Hash `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => Sha1::digest(data).to_vec(),
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha384 => Sha384::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// Which implementation performs the RSA operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// The pure-Rust `rsa` crate (constant-time, slower private operations).
    RustCrypto,
    /// aws-lc-rs (feature `aws-lc`).
    #[cfg(feature = "aws-lc")]
    AwsLc,
}

/// Every key and public-key operation the crate performs, on one backend.
///
/// Parse keys with a provider and they keep it: [`PublicKey::verify`] and
/// the [`Signer`]/[`KeyUnwrapper`] impls of [`RsaKey`] run on the backend that
/// loaded them. Keys the crate parses itself (from certificates, CSRs and
/// signatures on the wire) use [`CryptoProvider::get_default`]: aws-lc-rs when
/// the `aws-lc` feature is on, else the `rsa` crate. Private keys outside
/// [`RsaKey`] (HSM, KMS) plug in through [`Signer`] and [`KeyUnwrapper`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CryptoProvider {
    backend: Backend,
}

impl Default for CryptoProvider {
    fn default() -> Self {
        Self::get_default()
    }
}

impl CryptoProvider {
    /// The provider the crate uses for keys it parses itself: aws-lc-rs with
    /// feature `aws-lc`, else the `rsa` crate.
    pub const fn get_default() -> Self {
        #[cfg(feature = "aws-lc")]
        {
            Self::aws_lc()
        }
        #[cfg(not(feature = "aws-lc"))]
        {
            Self::rust_crypto()
        }
    }

    /// The pure-Rust `rsa` crate backend.
    pub const fn rust_crypto() -> Self {
        Self {
            backend: Backend::RustCrypto,
        }
    }

    /// The aws-lc-rs backend.
    ///
    /// It signs and decrypts keys of 2048–8192 bits and verifies keys of
    /// 1024–8192 bits; smaller keys and PKCS#1 v1.5 signing with SHA-1 (which
    /// aws-lc-rs does not offer) fall back to the `rsa` crate for that key.
    /// Encryption to a recipient uses the `rsa` crate with the caller's
    /// randomness (aws-lc-rs draws its own).
    #[cfg(feature = "aws-lc")]
    pub const fn aws_lc() -> Self {
        Self {
            backend: Backend::AwsLc,
        }
    }

    /// Every provider compiled in, the default first (for benchmarks and tests).
    pub fn all() -> Vec<Self> {
        let mut all = vec![Self::get_default()];
        for p in [
            Self::rust_crypto(),
            #[cfg(feature = "aws-lc")]
            Self::aws_lc(),
        ] {
            if !all.contains(&p) {
                all.push(p);
            }
        }
        all
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A short name for logs and benchmark labels (`"rustcrypto"`, `"aws-lc"`).
    pub fn name(&self) -> &'static str {
        match self.backend {
            Backend::RustCrypto => "rustcrypto",
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => "aws-lc",
        }
    }

    /// Parse a DER SubjectPublicKeyInfo holding an RSA key.
    pub fn public_key_from_spki_der(&self, der: &[u8]) -> Result<PublicKey, CryptoError> {
        PublicKey::parse(*self, der)
    }

    /// Load a PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) RSA key, DER or PEM.
    pub fn load_private_key(&self, bytes: &[u8]) -> Result<RsaKey, CryptoError> {
        RsaKey::load(*self, bytes)
    }

    /// Generate a fresh RSA key of `bits` bits from `rng` (the `rsa` crate
    /// generates it on every backend, so `rng` alone determines the key).
    pub fn generate_key<R: rand_core::TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        bits: usize,
    ) -> Result<RsaKey, CryptoError> {
        let private = rustcrypto::generate(rng, bits)?;
        RsaKey::from_rust(*self, private)
    }
}

/// An RSA public key, parsed by a [`CryptoProvider`].
///
/// Equality compares the modulus and exponent. Clones share one parsed key:
/// what a backend prepares on the first verification (aws-lc's parsed key
/// and Montgomery context, the `rsa` crate's key) serves every clone after
/// it, so a key kept with a certificate is prepared once, not per request.
#[derive(Clone)]
pub struct PublicKey(std::sync::Arc<KeyState>);

/// The shared state behind a [`PublicKey`].
struct KeyState {
    provider: CryptoProvider,
    spki: Vec<u8>,
    /// The subjectPublicKey bits: a DER `RSAPublicKey` (PKCS#1).
    #[cfg(feature = "aws-lc")]
    pkcs1: Vec<u8>,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
    /// The `rsa` crate's key: parsed eagerly on that backend, else on first
    /// use (e.g. aws-lc encryption) and then kept.
    rust: std::sync::OnceLock<rustcrypto::Public>,
    #[cfg(feature = "aws-lc")]
    aws: awslc::ParsedKeys,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("bits", &self.bits())
            .field("provider", &self.0.provider.name())
            .finish_non_exhaustive()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.modulus == other.0.modulus && self.0.exponent == other.0.exponent
    }
}

impl Eq for PublicKey {}

impl spki::EncodePublicKey for PublicKey {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        Ok(der::Document::try_from(self.0.spki.as_slice())?)
    }
}

/// Largest SubjectPublicKeyInfo accepted (an RSA-16384 key is ~2.1 KB).
const MAX_SPKI_LEN: usize = 4096;

impl PublicKey {
    /// Parse a DER SubjectPublicKeyInfo with the default provider.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        CryptoProvider::get_default().public_key_from_spki_der(der)
    }

    fn parse(provider: CryptoProvider, der: &[u8]) -> Result<Self, CryptoError> {
        use der::Decode;
        let bad = |e: String| CryptoError::UnsupportedKey(e);
        if der.len() > MAX_SPKI_LEN {
            return Err(bad(format!(
                "SubjectPublicKeyInfo of {} bytes (limit {MAX_SPKI_LEN})",
                der.len()
            )));
        }
        let info = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|e| bad(e.to_string()))?;
        if info.algorithm.oid != rfc5912::RSA_ENCRYPTION {
            return Err(bad(format!("{} is not rsaEncryption", info.algorithm.oid)));
        }
        let pkcs1 = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| bad("subjectPublicKey has unused bits".into()))?;
        let parts = pkcs1::RsaPublicKey::<der::asn1::UintRef<'_>>::from_der(pkcs1)
            .map_err(|e| bad(e.to_string()))?;
        let mut key = KeyState {
            provider,
            spki: der.to_vec(),
            #[cfg(feature = "aws-lc")]
            pkcs1: pkcs1.to_vec(),
            modulus: parts.modulus.as_bytes().to_vec(),
            exponent: parts.public_exponent.as_bytes().to_vec(),
            rust: std::sync::OnceLock::new(),
            #[cfg(feature = "aws-lc")]
            aws: awslc::ParsedKeys::default(),
        };
        if provider.backend == Backend::RustCrypto {
            key.rust = std::sync::OnceLock::from(rustcrypto::Public::from_spki(der)?);
        }
        Ok(Self(std::sync::Arc::new(key)))
    }

    /// The provider that parsed this key (and performs its operations).
    pub fn provider(&self) -> CryptoProvider {
        self.0.provider
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.0.spki
    }

    /// The modulus, big-endian without leading zeros.
    pub fn modulus(&self) -> &[u8] {
        &self.0.modulus
    }

    /// The public exponent, big-endian without leading zeros.
    pub fn exponent(&self) -> &[u8] {
        &self.0.exponent
    }

    /// The modulus size in bytes (the length of a signature or ciphertext).
    pub fn size(&self) -> usize {
        self.0.modulus.len()
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        let lead = self
            .0
            .modulus
            .first()
            .map_or(0, |b| b.leading_zeros() as usize);
        (self.0.modulus.len() * 8).saturating_sub(lead)
    }

    /// Verify an RSA PKCS#1 v1.5 signature over `message` (hashed with `digest`).
    pub fn verify(
        &self,
        digest: DigestAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        match self.0.provider.backend {
            Backend::RustCrypto => self.rust()?.verify(digest, message, signature),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => match awslc::verify(self, digest, message, signature) {
                Some(result) => result,
                None => self.rust()?.verify(digest, message, signature),
            },
        }
    }

    /// Encrypt `data` (a content-encryption key) to this key with RSA PKCS#1
    /// v1.5.
    ///
    /// The padding's random bytes come from `rng` on the `rsa` crate backend.
    /// With `aws-lc` they come from aws-lc's own DRBG instead (aws-lc-rs takes
    /// no caller RNG here, just as its private operations draw their blinding
    /// from it): the output is then not reproducible from `rng`, and costs
    /// ~15 µs instead of ~100 µs for a key seen for the first time (every
    /// SCEP requester's). Keys aws-lc refuses fall back to the `rsa` crate.
    pub fn encrypt_pkcs1v15<R: rand_core::TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        data: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        #[cfg(feature = "aws-lc")]
        if self.0.provider.backend == Backend::AwsLc
            && let Some(result) = awslc::encrypt_pkcs1v15(&self.0.spki, data)
        {
            return result;
        }
        self.rust()?.encrypt(rng, data)
    }

    /// The `rsa` crate's key: the one parsed at construction or at first
    /// use (fallbacks on other backends), parsed once per key.
    fn rust(&self) -> Result<&rustcrypto::Public, CryptoError> {
        if let Some(k) = self.0.rust.get() {
            return Ok(k);
        }
        let parsed = rustcrypto::Public::from_spki(&self.0.spki)?;
        Ok(self.0.rust.get_or_init(|| parsed))
    }

    /// The SubjectPublicKeyInfo as the `spki` crate's type (certificate builders).
    pub fn to_spki(&self) -> Result<SubjectPublicKeyInfoOwned, CryptoError> {
        use der::Decode;
        SubjectPublicKeyInfoOwned::from_der(&self.0.spki)
            .map_err(|e| CryptoError::UnsupportedKey(e.to_string()))
    }

    #[cfg(feature = "aws-lc")]
    fn pkcs1_der(&self) -> &[u8] {
        &self.0.pkcs1
    }

    #[cfg(feature = "aws-lc")]
    fn aws_parsed(&self) -> &awslc::ParsedKeys {
        &self.0.aws
    }
}

/// Produces RSA PKCS#1 v1.5 signatures with a private key the crate never sees.
///
/// See the [module docs](self) for a KMS-backed implementation.
pub trait Signer: Send + Sync {
    /// The public key matching the private key, as it appears in certificates.
    fn public_key(&self) -> &PublicKey;
    /// Sign `message` (not a digest: the implementation hashes it with `digest`).
    fn sign(&self, digest: DigestAlgorithm, message: &[u8]) -> Result<Vec<u8>, CryptoError>;
}

/// Decrypts RSA PKCS#1 v1.5 key transport (the CEK of an EnvelopedData).
///
/// Contract: **implicit rejection**. An implementation never reports a padding
/// error and never returns a key of another length: a malformed ciphertext
/// yields a pseudo-random key of `expected_len` bytes derived from a secret
/// and the ciphertext, with the same work as a good one, so the caller's
/// content decryption then fails the same way as for any wrong key (no
/// padding oracle). Backends that report padding errors wrap their call in
/// [`ImplicitRejection::unwrap`].
pub trait KeyUnwrapper: Send + Sync {
    /// The public key matching the decryption key.
    fn public_key(&self) -> &PublicKey;
    /// Decrypt `encrypted_key` to a key of exactly `expected_len` bytes.
    fn unwrap_key(&self, encrypted_key: &[u8], expected_len: usize)
    -> Result<Vec<u8>, CryptoError>;
}

/// Implicit rejection around a PKCS#1 v1.5 decryption that reports padding
/// errors (aws-lc, PKCS#11 HSMs, KMSs).
///
/// Holds a secret key-derivation key; [`unwrap`](Self::unwrap) derives the
/// synthetic key from it and the ciphertext *before* decrypting, then picks
/// the real or the synthetic key with a constant-time select.
#[derive(Clone)]
pub struct ImplicitRejection {
    kdk: [u8; 32],
}

impl std::fmt::Debug for ImplicitRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImplicitRejection").finish_non_exhaustive()
    }
}

impl ImplicitRejection {
    /// A rejection key derived from `secret`: something only the server knows
    /// and that stays the same for the key (the same ciphertext must always
    /// yield the same synthetic key), e.g. the private key's encoding or an
    /// HMAC computed inside the HSM.
    pub fn new(secret: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"mdm-enroll implicit rejection kdk");
        h.update(secret);
        Self {
            kdk: h.finalize().into(),
        }
    }

    /// The synthetic key for `ciphertext`: HMAC-SHA-256(kdk, counter ‖ ciphertext)
    /// blocks, truncated to `len`.
    fn synthetic(&self, ciphertext: &[u8], len: usize) -> Vec<u8> {
        use hmac::{KeyInit, Mac, SimpleHmac};
        let mut out = Vec::with_capacity(len + 32);
        let mut counter = 0u32;
        while out.len() < len {
            // HMAC accepts keys of any length: `new_from_slice` cannot fail here.
            let Ok(mut mac) = SimpleHmac::<Sha256>::new_from_slice(&self.kdk) else {
                break;
            };
            mac.update(&counter.to_be_bytes());
            mac.update(ciphertext);
            out.extend_from_slice(&mac.finalize().into_bytes());
            counter = counter.wrapping_add(1);
        }
        out.resize(len, 0);
        out
    }

    /// Derive the synthetic key, run `decrypt` on `encrypted_key`, and return
    /// its plaintext if it succeeded with exactly `expected_len` bytes, else
    /// the synthetic key; always `expected_len` bytes, selected without a
    /// branch on the outcome. `decrypt`'s error is dropped unseen.
    pub fn unwrap<E>(
        &self,
        encrypted_key: &[u8],
        expected_len: usize,
        decrypt: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    ) -> Vec<u8> {
        let synthetic = self.synthetic(encrypted_key, expected_len);
        let outcome = decrypt(encrypted_key);
        let ok = u8::from(outcome.is_ok()).wrapping_neg();
        let plain = outcome.unwrap_or_default();
        select(
            ok & eq_len_mask(plain.len(), expected_len),
            &plain,
            &synthetic,
            expected_len,
        )
    }

    /// As [`unwrap`](Self::unwrap) for a decryption into a caller buffer:
    /// `decrypt` returns the plaintext length written at the start of `buf`.
    #[cfg(any(feature = "aws-lc", test))]
    fn unwrap_into<E>(
        &self,
        encrypted_key: &[u8],
        expected_len: usize,
        buf: &mut [u8],
        decrypt: impl FnOnce(&[u8], &mut [u8]) -> Result<usize, E>,
    ) -> Vec<u8> {
        let synthetic = self.synthetic(encrypted_key, expected_len);
        let outcome = decrypt(encrypted_key, buf);
        let ok = u8::from(outcome.is_ok()).wrapping_neg();
        let len = outcome.unwrap_or(0);
        let plain = buf.get(..len).unwrap_or_default();
        select(
            ok & eq_len_mask(len, expected_len),
            plain,
            &synthetic,
            expected_len,
        )
    }
}

/// An RSA private key in memory, on the backend of the provider that loaded it.
#[derive(Clone)]
pub struct RsaKey {
    provider: CryptoProvider,
    public: PublicKey,
    rust: rustcrypto::Private,
    rejection: ImplicitRejection,
    #[cfg(feature = "aws-lc")]
    aws: Option<std::sync::Arc<awslc::Private>>,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKey")
            .field("bits", &self.public.bits())
            .field("provider", &self.provider.name())
            .finish_non_exhaustive()
    }
}

impl RsaKey {
    /// Generate a fresh key of `bits` bits from `rng`, on the default provider.
    pub fn generate<R: rand_core::TryCryptoRng + ?Sized>(
        rng: &mut R,
        bits: usize,
    ) -> Result<Self, CryptoError> {
        CryptoProvider::get_default().generate_key(rng, bits)
    }

    /// Load a PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) key, DER or
    /// PEM, on the default provider.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, CryptoError> {
        CryptoProvider::get_default().load_private_key(bytes)
    }

    fn load(provider: CryptoProvider, bytes: &[u8]) -> Result<Self, CryptoError> {
        Self::from_rust(provider, rustcrypto::Private::load(bytes)?)
    }

    fn from_rust(provider: CryptoProvider, rust: rustcrypto::Private) -> Result<Self, CryptoError> {
        let pkcs8 = rust.to_pkcs8_der()?;
        let public = provider.public_key_from_spki_der(&rust.public_spki_der()?)?;
        Ok(Self {
            provider,
            public,
            rejection: ImplicitRejection::new(&pkcs8),
            #[cfg(feature = "aws-lc")]
            aws: match provider.backend {
                Backend::AwsLc => awslc::Private::from_pkcs8(&pkcs8).map(std::sync::Arc::new),
                Backend::RustCrypto => None,
            },
            rust,
        })
    }

    /// The provider that loaded this key.
    pub fn provider(&self) -> CryptoProvider {
        self.provider
    }

    /// Serialise as PKCS#8 PEM (for a caller's key file).
    pub fn to_pkcs8_pem(&self) -> Result<String, CryptoError> {
        self.rust.to_pkcs8_pem()
    }

    /// Serialise as PKCS#8 DER (e.g. for a TLS library).
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, CryptoError> {
        self.rust.to_pkcs8_der()
    }
}

impl Signer for RsaKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, digest: DigestAlgorithm, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        #[cfg(feature = "aws-lc")]
        if let Some(aws) = &self.aws
            && let Some(signature) = aws.sign(digest, message)
        {
            return signature;
        }
        self.rust.sign(digest, message)
    }
}

impl KeyUnwrapper for RsaKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn unwrap_key(
        &self,
        encrypted_key: &[u8],
        expected_len: usize,
    ) -> Result<Vec<u8>, CryptoError> {
        #[cfg(feature = "aws-lc")]
        if let Some(aws) = &self.aws {
            let mut buf = vec![0u8; aws.output_len()];
            return Ok(self.rejection.unwrap_into(
                encrypted_key,
                expected_len,
                &mut buf,
                |ct, out| aws.decrypt(ct, out),
            ));
        }
        // The `rsa` crate already rejects implicitly (a bad padding yields a
        // synthetic message); the wrapper adds the length check and turns
        // its remaining errors (ciphertext of the wrong size) into a key too.
        Ok(self
            .rejection
            .unwrap(encrypted_key, expected_len, |ct| self.rust.decrypt(ct)))
    }
}

/// Verify an RSA PKCS#1 v1.5 signature over `message` with `key`'s provider.
pub fn verify_rsa(
    key: &PublicKey,
    digest: DigestAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), CryptoError> {
    key.verify(digest, message, signature)
}

/// Parse the RSA public key of a certificate's SubjectPublicKeyInfo (default provider).
pub fn rsa_public_key(spki: &SubjectPublicKeyInfoOwned) -> Result<PublicKey, CryptoError> {
    use der::Encode;
    let der = spki
        .to_der()
        .map_err(|e| CryptoError::UnsupportedKey(e.to_string()))?;
    PublicKey::from_spki_der(&der)
}

/// Constant-time equality of two lengths, as a mask byte (0xFF equal, 0x00 not).
fn eq_len_mask(a: usize, b: usize) -> u8 {
    let x = (a ^ b) as u64;
    // x == 0 → 0xFF, else 0x00, without branching.
    let nonzero = ((x | x.wrapping_neg()) >> 63) as u8;
    nonzero.wrapping_sub(1)
}

/// Branch-free select of `len` bytes: `a` where mask is 0xFF, `b` otherwise.
fn select(mask: u8, a: &[u8], b: &[u8], len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            (x & mask) | (y & !mask)
        })
        .collect()
}

/// Compare two byte strings in time that depends only on their lengths
/// (`subtle`'s `ConstantTimeEq`, whose optimisation barrier keeps the
/// compiler from turning the loop into an early exit).
///
/// Used for challenges and other secrets.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key kept with a certificate hands out clones (one per request):
    /// what the first verification prepared must serve the later ones, or
    /// every `Mdm-Signature` pays for a key parse and a Montgomery setup.
    #[test]
    fn clones_share_what_the_first_verification_prepared() {
        let ca = crate::cms::Certificate::from_der(
            crate::cms::device_attributes::APPLE_IPHONE_DEVICE_CA_DER,
        )
        .expect("embedded CA");
        for provider in CryptoProvider::all() {
            let kept = provider
                .public_key_from_spki_der(ca.spki_der())
                .expect("CA key");
            let per_request = kept.clone();
            // A wrong signature still makes the backend prepare the key.
            assert!(
                per_request
                    .verify(DigestAlgorithm::Sha256, b"message", &[1u8; 128])
                    .is_err()
            );
            let prepared = match provider.backend {
                Backend::RustCrypto => kept.0.rust.get().is_some(),
                #[cfg(feature = "aws-lc")]
                Backend::AwsLc => kept.0.aws.slot(DigestAlgorithm::Sha256).get().is_some(),
            };
            assert!(prepared, "{provider:?}: the kept key was not prepared");
            assert!(std::sync::Arc::ptr_eq(&kept.0, &per_request.0));
        }
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn mask_helpers() {
        assert_eq!(eq_len_mask(5, 5), 0xff);
        assert_eq!(eq_len_mask(5, 6), 0x00);
        assert_eq!(select(0xff, b"ab", b"cd", 2), b"ab");
        assert_eq!(select(0x00, b"ab", b"cd", 2), b"cd");
    }

    #[test]
    fn implicit_rejection_same_shape_on_every_path() {
        let r = ImplicitRejection::new(b"k");
        let good = r.unwrap(b"ct", 16, |_| Ok::<_, ()>(vec![7; 16]));
        assert_eq!(good, vec![7; 16]);
        let bad = r.unwrap(b"ct", 16, |_| Err::<Vec<u8>, _>(()));
        let short = r.unwrap(b"ct", 16, |_| Ok::<_, ()>(vec![7; 15]));
        assert_eq!(bad.len(), 16);
        assert_eq!(bad, short, "synthetic key depends on the ciphertext only");
        assert_ne!(bad, r.unwrap(b"other", 16, |_| Err::<Vec<u8>, _>(())));
        assert_ne!(
            bad,
            ImplicitRejection::new(b"j").unwrap(b"ct", 16, |_| Err::<Vec<u8>, _>(()))
        );
        let mut buf = [0u8; 32];
        let into = r.unwrap_into(b"ct", 16, &mut buf, |_, _| Err::<usize, _>(()));
        assert_eq!(into, bad);
    }
}
