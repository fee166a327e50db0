//! A bounded cache of decoded certificates, keyed by their exact encoding.
//!
//! A device signs every check-in and command response with the same identity
//! certificate, so the `Mdm-Signature` and mTLS paths meet the same bytes
//! again and again. [`CertificateCache`] keeps the decoded [`Certificate`]
//! (and with it the parsed public key and the backend's key state) for each
//! encoding seen, so a repeat costs one hash and one comparison instead of a
//! certificate decode and a key parse.
//!
//! Only decoding is cached, never a decision: every signature is still
//! verified over its own message, and trust, validity and the binding to an
//! enrollment are checked by the caller on every request. An entry is found
//! only by its complete encoding, so a changed byte is a different entry.
//! What gets in: an `Mdm-Signature` signer's certificate once its signature
//! over the request verified (not the other certificates a SignedData
//! carries, nor any from a request that failed), and a TLS client
//! certificate (the TLS layer checked the client holds its key).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::certificate::{Certificate, CertificateError};

/// Decoded certificates by encoding; shared by clones (an `Arc` inside).
///
/// Bounded to [`capacity`](Self::capacity) entries: when full, an arbitrary
/// entry makes room. Equality is identity (two handles on the same cache).
#[derive(Clone)]
pub struct CertificateCache {
    entries: Arc<Mutex<HashMap<Box<[u8]>, Certificate>>>,
    capacity: usize,
}

impl CertificateCache {
    /// The capacity [`Default`] uses: 1024 certificates (about 5 MB).
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// A cache of at most `capacity` certificates (`0` caches nothing).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Arc::new(Mutex::new(HashMap::new())),
            capacity,
        }
    }

    /// The most certificates kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many certificates are kept now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forget every certificate.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The certificate encoded as `raw`, if kept.
    pub(crate) fn get(&self, raw: &[u8]) -> Option<Certificate> {
        if self.capacity == 0 {
            return None;
        }
        self.lock().get(raw).cloned()
    }

    /// Keep `certificate` (encoded as its DER), making room if full.
    pub(crate) fn insert(&self, certificate: &Certificate) {
        if self.capacity != 0 {
            self.keep(certificate.der(), certificate);
        }
    }

    /// The certificate encoded as `raw`: from the cache, else from `decode`
    /// (kept when it succeeds; failures are not cached).
    pub(crate) fn get_or_decode(
        &self,
        raw: &[u8],
        decode: impl FnOnce() -> Result<Certificate, CertificateError>,
    ) -> Result<Certificate, CertificateError> {
        if self.capacity == 0 {
            return decode();
        }
        if let Some(hit) = self.lock().get(raw) {
            return Ok(hit.clone());
        }
        // Decode outside the lock; two threads may both decode a new
        // certificate, and the second insert replaces an equal value.
        let certificate = decode()?;
        self.keep(raw, &certificate);
        Ok(certificate)
    }

    /// Store `certificate` under `raw`; when full and `raw` is new, an
    /// arbitrary entry makes room first.
    fn keep(&self, raw: &[u8], certificate: &Certificate) {
        let mut entries = self.lock();
        if entries.contains_key(raw) {
            // Equal encodings decode to equal certificates: keep the entry
            // (no copy of the key, no new allocation on every request).
            return;
        }
        if entries.len() >= self.capacity
            && let Some(victim) = entries.keys().next().cloned()
        {
            entries.remove(&victim);
        }
        entries.insert(raw.into(), certificate.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, Certificate>> {
        // A panic elsewhere while holding the lock leaves a map of whole
        // entries: keep using it.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for CertificateCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for CertificateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl PartialEq for CertificateCache {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.entries, &other.entries)
    }
}

impl Eq for CertificateCache {}
