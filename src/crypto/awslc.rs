//! The aws-lc-rs backend (feature `aws-lc`). Nothing here is public.
//!
//! aws-lc-rs signs with SHA-256/384/512 only and handles private keys of
//! 2048–8192 bits; the callers fall back to the `rsa` crate for the rest
//! (`None` from these functions).

use std::sync::OnceLock;

use aws_lc_rs::rsa::{
    KeyPair, Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey,
};
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters};

use super::{CryptoError, DigestAlgorithm, PublicKey};

/// Verify with aws-lc; `None` when aws-lc has no algorithm for this key size
/// and digest (the caller then uses the `rsa` crate).
pub(super) fn verify(
    key: &PublicKey,
    digest: DigestAlgorithm,
    message: &[u8],
    sig: &[u8],
) -> Option<Result<(), CryptoError>> {
    let bits = key.bits();
    if !(1024..=8192).contains(&bits) {
        return None;
    }
    let alg: &'static RsaParameters = match digest {
        DigestAlgorithm::Sha1 => &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
        DigestAlgorithm::Sha256 => &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
        DigestAlgorithm::Sha512 => &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        DigestAlgorithm::Sha384 if bits >= 2048 => &signature::RSA_PKCS1_2048_8192_SHA384,
        DigestAlgorithm::Sha384 => return None,
    };
    let slot = key.aws_parsed().slot(digest);
    let parsed = slot.get_or_init(|| ParsedPublicKey::new(alg, key.pkcs1_der()).ok());
    Some(match parsed {
        Some(parsed) => parsed
            .verify_sig(message, sig)
            .map_err(|_| CryptoError::BadSignature),
        // A key aws-lc refuses verifies nothing.
        None => Err(CryptoError::BadSignature),
    })
}

/// PKCS#1 v1.5 encryption to the key in `spki`; `None` when aws-lc refuses
/// the key (the caller then uses the `rsa` crate). The padding comes from
/// aws-lc's DRBG.
pub(super) fn encrypt_pkcs1v15(spki: &[u8], data: &[u8]) -> Option<Result<Vec<u8>, CryptoError>> {
    let key = PublicEncryptingKey::from_der(spki).ok()?;
    let key = Pkcs1PublicEncryptingKey::new(key).ok()?;
    let mut out = vec![0u8; key.ciphertext_size()];
    Some(match key.encrypt(data, &mut out) {
        Ok(written) => {
            let len = written.len();
            out.truncate(len);
            Ok(out)
        }
        Err(_) => Err(CryptoError::Backend(
            "aws-lc PKCS#1 v1.5 encryption failed".into(),
        )),
    })
}

/// aws-lc's parsed form of a public key, one per digest (its verification
/// algorithms are per digest), made on first use and kept with the key so
/// later verifications skip parsing and reuse aws-lc's Montgomery context.
#[derive(Clone, Default)]
pub(super) struct ParsedKeys([OnceLock<Option<ParsedPublicKey>>; 4]);

impl ParsedKeys {
    pub(super) fn slot(&self, digest: DigestAlgorithm) -> &OnceLock<Option<ParsedPublicKey>> {
        let [sha1, sha256, sha384, sha512] = &self.0;
        match digest {
            DigestAlgorithm::Sha1 => sha1,
            DigestAlgorithm::Sha256 => sha256,
            DigestAlgorithm::Sha384 => sha384,
            DigestAlgorithm::Sha512 => sha512,
        }
    }
}

/// An aws-lc private key, for signing and for decryption.
pub(super) struct Private {
    sign: KeyPair,
    decrypt: Pkcs1PrivateDecryptingKey,
}

impl Private {
    /// `None` for keys aws-lc does not take (outside 2048–8192 bits).
    pub(super) fn from_pkcs8(pkcs8: &[u8]) -> Option<Self> {
        let sign = KeyPair::from_pkcs8(pkcs8).ok()?;
        let decrypt = PrivateDecryptingKey::from_pkcs8(pkcs8).ok()?;
        let decrypt = Pkcs1PrivateDecryptingKey::new(decrypt).ok()?;
        Some(Self { sign, decrypt })
    }

    /// Sign; `None` for SHA-1, which aws-lc-rs does not sign with.
    pub(super) fn sign(
        &self,
        digest: DigestAlgorithm,
        message: &[u8],
    ) -> Option<Result<Vec<u8>, CryptoError>> {
        let encoding: &'static dyn signature::RsaEncoding = match digest {
            DigestAlgorithm::Sha1 => return None,
            DigestAlgorithm::Sha256 => &signature::RSA_PKCS1_SHA256,
            DigestAlgorithm::Sha384 => &signature::RSA_PKCS1_SHA384,
            DigestAlgorithm::Sha512 => &signature::RSA_PKCS1_SHA512,
        };
        let mut out = vec![0u8; self.sign.public_modulus_len()];
        // aws-lc-rs ignores the RNG argument (PKCS#1 v1.5 is deterministic).
        let rng = aws_lc_rs::rand::SystemRandom::new();
        Some(
            self.sign
                .sign(encoding, &rng, message, &mut out)
                .map(|()| out)
                .map_err(|e| CryptoError::Backend(format!("aws-lc sign: {e}"))),
        )
    }

    /// The plaintext buffer [`decrypt`](Self::decrypt) needs.
    pub(super) fn output_len(&self) -> usize {
        self.decrypt.min_output_size()
    }

    /// PKCS#1 v1.5 decryption into `out`; bad padding is an error here (the
    /// caller wraps this in [`super::ImplicitRejection`]).
    pub(super) fn decrypt(&self, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, ()> {
        self.decrypt
            .decrypt(ciphertext, out)
            .map(|p| p.len())
            .map_err(|_| ())
    }
}
