//! The crypto providers agree with each other: what one signs the other
//! verifies, a key encrypted to one unwraps on the other, and a bad
//! ciphertext yields a key of the expected length on every provider.
//! Run with and without `--features aws-lc` (the second adds aws-lc-rs).

use mdm_enroll::crypto::{CryptoProvider, DigestAlgorithm, KeyUnwrapper, PublicKey, Signer};
use rand_core::UnwrapErr;

const DIGESTS: [DigestAlgorithm; 4] = [
    DigestAlgorithm::Sha1,
    DigestAlgorithm::Sha256,
    DigestAlgorithm::Sha384,
    DigestAlgorithm::Sha512,
];

#[test]
fn providers_sign_verify_and_unwrap_interchangeably() {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let pem = CryptoProvider::rust_crypto()
        .generate_key(&mut rng, 2048)
        .unwrap()
        .to_pkcs8_pem()
        .unwrap();
    let providers = CryptoProvider::all();
    assert_eq!(providers[0], CryptoProvider::get_default());
    let keys: Vec<_> = providers
        .iter()
        .map(|p| p.load_private_key(pem.as_bytes()).unwrap())
        .collect();
    for (p, k) in providers.iter().zip(&keys) {
        assert_eq!(k.provider(), *p);
        assert_eq!(Signer::public_key(k).bits(), 2048);
    }
    let message = b"a profile to sign";
    for signer in &keys {
        for verifier in &providers {
            let public = verifier
                .public_key_from_spki_der(Signer::public_key(signer).spki_der())
                .unwrap();
            assert_eq!(&public, Signer::public_key(signer));
            for digest in DIGESTS {
                let sig = signer.sign(digest, message).unwrap();
                assert_eq!(sig.len(), 256);
                public.verify(digest, message, &sig).unwrap();
                assert!(public.verify(digest, b"another message", &sig).is_err());
                let mut bad = sig.clone();
                bad[100] ^= 1;
                assert!(public.verify(digest, message, &bad).is_err());
            }
        }
    }
    // PKCS#1 v1.5 signatures are deterministic: every provider signs alike.
    for digest in DIGESTS {
        let first = keys[0].sign(digest, message).unwrap();
        for k in &keys[1..] {
            assert_eq!(k.sign(digest, message).unwrap(), first, "{digest:?}");
        }
    }

    let public = PublicKey::from_spki_der(Signer::public_key(&keys[0]).spki_der()).unwrap();
    let cek = [0x5au8; 16];
    let wrapped = public.encrypt_pkcs1v15(&mut rng, &cek).unwrap();
    for k in &keys {
        assert_eq!(k.unwrap_key(&wrapped, 16).unwrap(), cek);
        // Asked for another length: a synthetic key of that length, not an error.
        let other = k.unwrap_key(&wrapped, 24).unwrap();
        assert_eq!(other.len(), 24);
        assert_ne!(&other[..16], &cek);
        // Garbage (bad padding) and a ciphertext of the wrong size: a
        // deterministic key of the expected length.
        for garbage in [vec![0x01u8; 256], vec![0x02u8; 255], Vec::new()] {
            let a = k.unwrap_key(&garbage, 16).unwrap();
            assert_eq!(a.len(), 16);
            assert_eq!(a, k.unwrap_key(&garbage, 16).unwrap());
        }
    }
}

#[test]
fn public_keys_refuse_what_is_not_rsa() {
    for p in CryptoProvider::all() {
        assert!(p.public_key_from_spki_der(b"").is_err());
        assert!(
            p.public_key_from_spki_der(&[0x30, 0x03, 0x02, 0x01, 0x00])
                .is_err()
        );
        assert!(p.public_key_from_spki_der(&vec![0x30; 10_000]).is_err());
        assert!(
            p.load_private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
    }
}
