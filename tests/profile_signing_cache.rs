//! `ProfileSigningCache`: a profile that is the same for every device is
//! signed once and served byte-identical; changed content is signed afresh.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use mdm_enroll::cms::Certificate;
use mdm_enroll::crypto::{CryptoError, DigestAlgorithm, PublicKey, RsaKey, Signer};
use mdm_enroll::pki;
use mdm_enroll::profile::{
    CertificatePayload, Payload, PayloadUuid, Profile, ProfileSigningCache, SignedProfile,
    ValidationOptions,
};

/// Counts the private-key operations it performs.
struct Counting {
    key: RsaKey,
    signatures: AtomicUsize,
}

impl Signer for Counting {
    fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }
    fn sign(&self, digest: DigestAlgorithm, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.signatures.fetch_add(1, Ordering::SeqCst);
        self.key.sign(digest, message)
    }
}

fn signer() -> (Counting, Certificate) {
    let key = RsaKey::generate(&mut getrandom::SysRng, 2048).unwrap();
    let cert = certificate(&key, "CN=Profile Signer,O=Example");
    let signer = Counting {
        key,
        signatures: AtomicUsize::new(0),
    };
    (signer, cert)
}

/// A trust profile (for `root`), the same for every device; `name` is its
/// version.
fn trust(name: &str, uuids: [PayloadUuid; 2], root: &Certificate) -> Profile {
    Profile::configuration(
        "com.example.trust",
        uuids[0],
        vec![Payload::new(
            "com.example.trust.root",
            uuids[1],
            CertificatePayload::root(root.der().to_vec()),
        )],
    )
    .with_display_name(name)
}

#[test]
fn same_profile_for_two_devices_is_signed_once_and_byte_identical() {
    let (signer, cert) = signer();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let uuids = [PayloadUuid::random(&mut rng), PayloadUuid::random(&mut rng)];
    let cache = ProfileSigningCache::new(8);
    let opts = ValidationOptions::default();

    let first_device = cache
        .sign(&trust("Corp", uuids, &cert), &opts, &signer, &cert, &[])
        .unwrap();
    let second_device = cache
        .sign(&trust("Corp", uuids, &cert), &opts, &signer, &cert, &[])
        .unwrap();
    assert_eq!(first_device.as_bytes(), second_device.as_bytes());
    assert_eq!(signer.signatures.load(Ordering::SeqCst), 1);
    // What the cache serves is what signing directly gives.
    let xml = trust("Corp", uuids, &cert).build(&opts).unwrap();
    let direct = SignedProfile::sign_xml(&xml, &signer, &cert, &[]).unwrap();
    assert_eq!(direct.as_bytes(), first_device.as_bytes());

    // New content (a new version of the profile): signed afresh.
    let changed = cache
        .sign(&trust("Corp-5G", uuids, &cert), &opts, &signer, &cert, &[])
        .unwrap();
    assert_ne!(changed.as_bytes(), first_device.as_bytes());
    assert_eq!(signer.signatures.load(Ordering::SeqCst), 3);
    assert_eq!(cache.len(), 2);
}

#[test]
fn another_signer_certificate_signs_afresh_and_the_cache_stays_bounded() {
    let (signer, cert) = signer();
    // A second certificate for the same key (another subject).
    let other_cert = certificate(&signer.key, "CN=Other Profile Signer,O=Example");
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let cache = ProfileSigningCache::new(2);
    let opts = ValidationOptions::default();
    let uuids = [PayloadUuid::random(&mut rng), PayloadUuid::random(&mut rng)];
    let a = cache
        .sign(&trust("A", uuids, &cert), &opts, &signer, &cert, &[])
        .unwrap();
    let b = cache
        .sign(&trust("A", uuids, &cert), &opts, &signer, &other_cert, &[])
        .unwrap();
    assert_ne!(a.as_bytes(), b.as_bytes());
    assert_eq!(signer.signatures.load(Ordering::SeqCst), 2);
    for ssid in ["B", "C", "D"] {
        cache
            .sign(&trust(ssid, uuids, &cert), &opts, &signer, &cert, &[])
            .unwrap();
    }
    assert_eq!(cache.len(), 2);
    // "A" was evicted: serving it again signs again.
    cache
        .sign(&trust("A", uuids, &cert), &opts, &signer, &cert, &[])
        .unwrap();
    assert_eq!(signer.signatures.load(Ordering::SeqCst), 6);
}

/// A self-signed certificate for `key` with subject `subject`.
fn certificate(key: &RsaKey, subject: &str) -> Certificate {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let cert = pki::create_ca(
        key,
        subject.parse().unwrap(),
        pki::random_serial(&mut rng),
        pki::validity(SystemTime::now(), Duration::from_secs(86400)).unwrap(),
    )
    .unwrap();
    Certificate::from_der(&pki::to_der(&cert).unwrap()).unwrap()
}
