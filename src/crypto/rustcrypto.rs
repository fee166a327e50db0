//! The `rsa` crate backend (pure Rust, always built). Nothing here is public:
//! the crate's API carries [`super::PublicKey`] and [`super::RsaKey`] only.

use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::{Pkcs1v15Encrypt, PrivateKey, PublicKey};
use sha1::Sha1;
use sha2::{Sha256, Sha384, Sha512};

use super::{CryptoError, DigestAlgorithm};

fn pkcs1v15(digest: DigestAlgorithm) -> Pkcs1v15Sign {
    match digest {
        DigestAlgorithm::Sha1 => Pkcs1v15Sign::new::<Sha1>(),
        DigestAlgorithm::Sha256 => Pkcs1v15Sign::new::<Sha256>(),
        DigestAlgorithm::Sha384 => Pkcs1v15Sign::new::<Sha384>(),
        DigestAlgorithm::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
    }
}

/// A public key of the `rsa` crate.
#[derive(Clone)]
pub(super) struct Public(PublicKey);

impl Public {
    pub(super) fn from_spki(der: &[u8]) -> Result<Self, CryptoError> {
        use spki::DecodePublicKey;
        PublicKey::from_public_key_der(der)
            .map(Self)
            .map_err(|e| CryptoError::UnsupportedKey(e.to_string()))
    }

    pub(super) fn verify(
        &self,
        digest: DigestAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        self.0
            .verify(pkcs1v15(digest), &digest.digest(message), signature)
            .map_err(|_| CryptoError::BadSignature)
    }

    pub(super) fn encrypt<R: rand_core::TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        data: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.0
            .encrypt(rng, Pkcs1v15Encrypt, data)
            .map_err(|e| CryptoError::Backend(e.to_string()))
    }
}

/// A private key of the `rsa` crate.
#[derive(Clone)]
pub(super) struct Private(PrivateKey);

pub(super) fn generate<R: rand_core::TryCryptoRng + ?Sized>(
    rng: &mut R,
    bits: usize,
) -> Result<Private, CryptoError> {
    PrivateKey::new(rng, bits)
        .map(Private)
        .map_err(|e| CryptoError::Backend(e.to_string()))
}

/// Largest private key file accepted (an RSA-16384 PKCS#8 PEM is ~13 KB).
const MAX_KEY_FILE: usize = 64 * 1024;

impl Private {
    /// PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`), DER or PEM.
    pub(super) fn load(bytes: &[u8]) -> Result<Self, CryptoError> {
        use pkcs1::DecodeRsaPrivateKey;
        use pkcs8::DecodePrivateKey;
        let bad = |e: String| CryptoError::UnsupportedKey(e);
        if bytes.len() > MAX_KEY_FILE {
            return Err(bad(format!(
                "key of {} bytes (limit {MAX_KEY_FILE})",
                bytes.len()
            )));
        }
        if let Ok(text) = std::str::from_utf8(bytes) {
            if text.contains("-----BEGIN PRIVATE KEY-----") {
                return PrivateKey::from_pkcs8_pem(text.trim())
                    .map(Self)
                    .map_err(|e| bad(e.to_string()));
            }
            if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
                return PrivateKey::from_pkcs1_pem(text.trim())
                    .map(Self)
                    .map_err(|e| bad(e.to_string()));
            }
        }
        PrivateKey::from_pkcs8_der(bytes)
            .or_else(|_| PrivateKey::from_pkcs1_der(bytes))
            .map(Self)
            .map_err(|e| bad(e.to_string()))
    }

    pub(super) fn public_spki_der(&self) -> Result<Vec<u8>, CryptoError> {
        use spki::EncodePublicKey;
        self.0
            .to_public_key()
            .to_public_key_der()
            .map(|d| d.into_vec())
            .map_err(|e| CryptoError::Backend(e.to_string()))
    }

    pub(super) fn to_pkcs8_der(&self) -> Result<Vec<u8>, CryptoError> {
        use pkcs8::EncodePrivateKey;
        self.0
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .map_err(|e| CryptoError::Backend(e.to_string()))
    }

    pub(super) fn to_pkcs8_pem(&self) -> Result<String, CryptoError> {
        use pkcs8::EncodePrivateKey;
        self.0
            .to_pkcs8_pem(pkcs8::LineEnding::LF)
            .map(|s| s.to_string())
            .map_err(|e| CryptoError::Backend(e.to_string()))
    }

    pub(super) fn sign(
        &self,
        digest: DigestAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.0
            .sign(pkcs1v15(digest), &digest.digest(message))
            .map_err(|e| CryptoError::Backend(e.to_string()))
    }

    /// PKCS#1 v1.5 decryption; rsa 0.10 rejects implicitly (a bad padding
    /// yields a synthetic message, not an error).
    pub(super) fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.0
            .decrypt(Pkcs1v15Encrypt, ciphertext)
            .map_err(|e| CryptoError::Backend(e.to_string()))
    }
}
