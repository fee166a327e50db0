//! A response body: bytes the crate produced, or a buffer it shares with the
//! store (a queued command's body), so delivering a command copies nothing.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// The bytes of a [`Response`](super::Response).
///
/// It reads as a `[u8]` (`Deref`, `AsRef`) whichever way it is held. A
/// command delivered from the queue is the store's own buffer
/// ([`QueuedCommand::body`](crate::activation::QueuedCommand::body)); everything
/// else is a `Vec<u8>` the response owns. To send it without a copy, hand
/// the `Body` itself to anything taking `AsRef<[u8]> + Send + 'static`, such
/// as `bytes::Bytes::from_owner`.
///
/// ```
/// use mdm_enroll::http::Body;
/// use std::sync::Arc;
///
/// let shared: Arc<[u8]> = Arc::from(&b"<plist/>"[..]);
/// let body = Body::from(Arc::clone(&shared));
/// assert_eq!(&*body, b"<plist/>");
/// assert_eq!(body, Body::from(b"<plist/>".to_vec()));
/// ```
#[derive(Clone, Default)]
pub struct Body(Repr);

#[derive(Clone)]
enum Repr {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Default for Repr {
    fn default() -> Self {
        Self::Owned(Vec::new())
    }
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The bytes as a `Vec<u8>`: free for an owned body, one copy for a
    /// shared one.
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Owned(v) => v,
            Repr::Shared(a) => a.to_vec(),
        }
    }

    /// The shared buffer this body reads from, if it is one (a delivered
    /// command's body).
    pub fn shared(&self) -> Option<&Arc<[u8]>> {
        match &self.0 {
            Repr::Owned(_) => None,
            Repr::Shared(a) => Some(a),
        }
    }
}

impl Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(v) => v,
            Repr::Shared(a) => a,
        }
    }
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Self(Repr::Owned(bytes))
    }
}

impl From<Arc<[u8]>> for Body {
    fn from(bytes: Arc<[u8]>) -> Self {
        Self(Repr::Shared(bytes))
    }
}

impl From<Body> for Vec<u8> {
    fn from(body: Body) -> Self {
        body.into_vec()
    }
}

/// Equal when the bytes are, however each is held.
impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Body {}

impl PartialEq<[u8]> for Body {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<Vec<u8>> for Body {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == **other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Body {
    fn eq(&self, other: &[u8; N]) -> bool {
        **self == other[..]
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Body {
    fn eq(&self, other: &&[u8; N]) -> bool {
        **self == other[..]
    }
}

/// The bytes, as a `[u8]` prints them.
impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_body_reads_the_shared_buffer() {
        let buf: Arc<[u8]> = Arc::from(&b"abc"[..]);
        let body = Body::from(Arc::clone(&buf));
        assert!(body.shared().is_some_and(|a| Arc::ptr_eq(a, &buf)));
        assert_eq!(body.as_ptr(), buf.as_ptr());
        assert_eq!(body.into_vec(), b"abc");
    }

    #[test]
    fn owned_and_shared_compare_by_bytes() {
        let owned = Body::from(b"abc".to_vec());
        assert!(owned.shared().is_none());
        assert_eq!(owned, Body::from(Arc::<[u8]>::from(&b"abc"[..])));
        assert_ne!(owned, Body::from(b"abd".to_vec()));
        assert_eq!(owned, b"abc");
        assert_eq!(format!("{owned:?}"), format!("{:?}", b"abc".as_slice()));
        assert!(Body::empty().is_empty());
    }
}
