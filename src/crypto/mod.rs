//! Key operations behind traits, so a caller can keep keys in an HSM or use a
//! faster backend. The default backend is the pure-Rust [`rsa`] crate.
//!
//! - [`Signer`]: RSA PKCS#1 v1.5 signatures (profile signing, CertRep, test devices).
//! - [`KeyUnwrapper`]: RSA PKCS#1 v1.5 key-transport decryption with implicit
//!   rejection (SCEP EnvelopedData).
//! - [`DigestAlgorithm`]: the hashes CMS and SCEP negotiate.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912;
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Encrypt, PrivateKey, PublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::SubjectPublicKeyInfoOwned;
use thiserror::Error;

/// Errors from key operations.
#[derive(Debug, Error)]
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

    fn pkcs1v15(self) -> Pkcs1v15Sign {
        match self {
            Self::Sha1 => Pkcs1v15Sign::new::<Sha1>(),
            Self::Sha256 => Pkcs1v15Sign::new::<Sha256>(),
            Self::Sha384 => Pkcs1v15Sign::new::<Sha384>(),
            Self::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
        }
    }
}

/// Produces RSA PKCS#1 v1.5 signatures with a private key the crate never sees.
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
/// yields a pseudo-random key of `expected_len` bytes derived from the private
/// key and the ciphertext, in constant time, so the caller's content decryption
/// then fails the same way as for any wrong key (no padding oracle).
pub trait KeyUnwrapper: Send + Sync {
    /// The public key matching the decryption key.
    fn public_key(&self) -> &PublicKey;
    /// Decrypt `encrypted_key` to a key of exactly `expected_len` bytes.
    fn unwrap_key(&self, encrypted_key: &[u8], expected_len: usize)
    -> Result<Vec<u8>, CryptoError>;
}

/// Verify an RSA PKCS#1 v1.5 signature over `message`.
pub fn verify_rsa(
    key: &PublicKey,
    digest: DigestAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), CryptoError> {
    key.verify(digest.pkcs1v15(), &digest.digest(message), signature)
        .map_err(|_| CryptoError::BadSignature)
}

/// Parse the RSA public key of a certificate's SubjectPublicKeyInfo.
pub fn rsa_public_key(spki: &SubjectPublicKeyInfoOwned) -> Result<PublicKey, CryptoError> {
    use der::Encode;
    use spki::DecodePublicKey;
    let der = spki
        .to_der()
        .map_err(|e| CryptoError::UnsupportedKey(e.to_string()))?;
    PublicKey::from_public_key_der(&der).map_err(|e| CryptoError::UnsupportedKey(e.to_string()))
}

/// The default backend: an in-memory RSA private key from the `rsa` crate.
#[derive(Clone)]
pub struct RsaKey {
    private: PrivateKey,
    public: PublicKey,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKey")
            .field("bits", &(self.public.size() * 8))
            .finish_non_exhaustive()
    }
}

impl RsaKey {
    /// Wrap an existing private key.
    pub fn new(private: PrivateKey) -> Self {
        let public = private.to_public_key();
        Self { private, public }
    }

    /// Generate a fresh key of `bits` bits from `rng`.
    pub fn generate<R: rand_core::TryCryptoRng + ?Sized>(
        rng: &mut R,
        bits: usize,
    ) -> Result<Self, CryptoError> {
        PrivateKey::new(rng, bits)
            .map(Self::new)
            .map_err(|e| CryptoError::Backend(e.to_string()))
    }

    /// Load a PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) key, DER or PEM.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, CryptoError> {
        use pkcs1::DecodeRsaPrivateKey;
        use pkcs8::DecodePrivateKey;
        let bad = |e: String| CryptoError::UnsupportedKey(e);
        if let Ok(text) = std::str::from_utf8(bytes) {
            if text.contains("-----BEGIN PRIVATE KEY-----") {
                return PrivateKey::from_pkcs8_pem(text.trim())
                    .map(Self::new)
                    .map_err(|e| bad(e.to_string()));
            }
            if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
                return PrivateKey::from_pkcs1_pem(text.trim())
                    .map(Self::new)
                    .map_err(|e| bad(e.to_string()));
            }
        }
        PrivateKey::from_pkcs8_der(bytes)
            .or_else(|_| PrivateKey::from_pkcs1_der(bytes))
            .map(Self::new)
            .map_err(|e| bad(e.to_string()))
    }

    /// Serialise as PKCS#8 PEM (for a caller's key file).
    pub fn to_pkcs8_pem(&self) -> Result<String, CryptoError> {
        use pkcs8::EncodePrivateKey;
        self.private
            .to_pkcs8_pem(pkcs8::LineEnding::LF)
            .map(|s| s.to_string())
            .map_err(|e| CryptoError::Backend(e.to_string()))
    }

    /// The private key (for the backends in this crate and for tests).
    pub fn private_key(&self) -> &PrivateKey {
        &self.private
    }
}

impl Signer for RsaKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, digest: DigestAlgorithm, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.private
            .sign(digest.pkcs1v15(), &digest.digest(message))
            .map_err(|e| CryptoError::Backend(e.to_string()))
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
        // rsa 0.10's PKCS#1 v1.5 decryption uses implicit rejection: a bad
        // padding yields a synthetic message instead of an error.
        let msg = self
            .private
            .decrypt(Pkcs1v15Encrypt, encrypted_key)
            .map_err(|e| CryptoError::Backend(e.to_string()))?;
        // Length mismatch: derive a deterministic pseudo-random key instead of
        // reporting it (the content decryption will then fail uniformly).
        let synthetic = {
            let mut seed = Sha256::new();
            seed.update(b"mdm-enroll implicit rejection");
            seed.update(msg.as_slice());
            seed.update(encrypted_key);
            let mut out = Vec::with_capacity(expected_len);
            let mut counter = 0u32;
            let base = seed.finalize();
            while out.len() < expected_len {
                let mut h = Sha256::new();
                h.update(base);
                h.update(counter.to_be_bytes());
                out.extend_from_slice(&h.finalize());
                counter += 1;
            }
            out.truncate(expected_len);
            out
        };
        let ok = subtle_eq_len(msg.len(), expected_len);
        Ok(select(ok, &msg, &synthetic, expected_len))
    }
}

/// Constant-time equality of two lengths, as a mask byte (0xFF equal, 0x00 not).
fn subtle_eq_len(a: usize, b: usize) -> u8 {
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

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn mask_helpers() {
        assert_eq!(subtle_eq_len(5, 5), 0xff);
        assert_eq!(subtle_eq_len(5, 6), 0x00);
        assert_eq!(select(0xff, b"ab", b"cd", 2), b"ab");
        assert_eq!(select(0x00, b"ab", b"cd", 2), b"cd");
    }
}
