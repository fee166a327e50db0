//! Signed profiles: CMS SignedData with the XML plist attached.

use super::top::{Profile, response};
use super::{ProfileError, ValidationOptions};
use crate::cms::{Certificate, SignedDataBuilder, oid};
use crate::crypto::{DigestAlgorithm, Signer};
use crate::http::Response;

/// A signed `.mobileconfig`: DER CMS SignedData (attached content, SHA-256,
/// signed attributes) carrying the signer certificate and its chain, so
/// macOS shows the profile as verified when the chain reaches a trusted root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedProfile(Vec<u8>);

impl SignedProfile {
    /// Sign already-encoded profile bytes (a template stored as XML, say).
    ///
    /// `chain` holds the intermediates (and optionally the root) above
    /// `signer_cert`; the signer's key must match `signer_cert`.
    pub fn sign_xml(
        xml: &[u8],
        signer: &dyn Signer,
        signer_cert: &Certificate,
        chain: &[Certificate],
    ) -> Result<Self, ProfileError> {
        SignedDataBuilder::new(oid::ID_DATA, xml, signer, signer_cert)
            .digest(DigestAlgorithm::Sha256)
            .certificates(chain)
            .build()
            .map(Self)
            .map_err(ProfileError::Signed)
    }

    /// The DER bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The DER bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// An HTTP 200 response serving the signed profile as
    /// `application/x-apple-aspen-config`.
    pub fn into_response(self, file_name: Option<&str>) -> Response {
        response(self.0, file_name)
    }
}

impl Profile {
    /// Validate, encode and sign: the bytes to serve for enrollment.
    ///
    /// `chain` holds the certificates above `signer_cert` (intermediates
    /// first); the signer certificate itself is always included.
    pub fn sign(
        &self,
        options: &ValidationOptions,
        signer: &dyn Signer,
        signer_cert: &Certificate,
        chain: &[Certificate],
    ) -> Result<SignedProfile, ProfileError> {
        let xml = self.build(options)?;
        SignedProfile::sign_xml(&xml, signer, signer_cert, chain)
    }
}

/// Cache entries, oldest first: key digest and signed profile.
type Entries = std::collections::VecDeque<([u8; 32], std::sync::Arc<SignedProfile>)>;

/// Signs configuration profiles that are the same for every device once per
/// version instead of once per device: a small bounded cache of signed
/// bytes keyed by a SHA-256 digest of the unsigned XML, the signer
/// certificate and the chain. A change of any of them signs afresh; when
/// full, the oldest entry goes. Share it (it is `Sync`) between requests.
///
/// Only for content without per-device secrets or identifiers (a profile
/// carrying a one-time challenge is never the same twice and would only
/// evict the shared ones).
#[derive(Debug)]
pub struct ProfileSigningCache {
    capacity: usize,
    entries: std::sync::Mutex<Entries>,
}

impl ProfileSigningCache {
    /// A cache holding at most `capacity` signed profiles (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// The signed form of `xml` (as [`SignedProfile::sign_xml`]): from the
    /// cache when the same content was signed by the same certificate and
    /// chain before, else signed now and kept.
    pub fn sign_xml(
        &self,
        xml: &[u8],
        signer: &dyn Signer,
        signer_cert: &Certificate,
        chain: &[Certificate],
    ) -> Result<std::sync::Arc<SignedProfile>, ProfileError> {
        let key = cache_key(xml, signer_cert, chain);
        if let Some(hit) = self.lock().iter().find(|(k, _)| *k == key) {
            return Ok(std::sync::Arc::clone(&hit.1));
        }
        // Signed outside the lock: a concurrent miss signs twice, harmlessly.
        let signed = std::sync::Arc::new(SignedProfile::sign_xml(xml, signer, signer_cert, chain)?);
        let mut entries = self.lock();
        if !entries.iter().any(|(k, _)| *k == key) {
            while entries.len() >= self.capacity {
                entries.pop_front();
            }
            entries.push_back((key, std::sync::Arc::clone(&signed)));
        }
        Ok(signed)
    }

    /// [`Profile::sign`] through the cache.
    pub fn sign(
        &self,
        profile: &Profile,
        options: &ValidationOptions,
        signer: &dyn Signer,
        signer_cert: &Certificate,
        chain: &[Certificate],
    ) -> Result<std::sync::Arc<SignedProfile>, ProfileError> {
        let xml = profile.build(options)?;
        self.sign_xml(&xml, signer, signer_cert, chain)
    }

    /// How many signed profiles the cache holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache holds none.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic elsewhere cannot leave an entry half-written: keep going.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// SHA-256 over length-prefixed XML, signer certificate and chain.
fn cache_key(xml: &[u8], signer_cert: &Certificate, chain: &[Certificate]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in std::iter::once(xml)
        .chain(std::iter::once(signer_cert.der()))
        .chain(chain.iter().map(Certificate::der))
    {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}
