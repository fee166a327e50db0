//! Stand-ins that `Debug` implementations print in place of secrets (push
//! magic, device tokens, challenges, passwords, keys): they say whether a
//! secret is there and how long it is, never what it is.

use std::fmt;

/// Prints `<redacted>`.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Prints `<redacted, N bytes>`.
pub(crate) struct RedactedBytes(pub(crate) usize);

impl fmt::Debug for RedactedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted, {} bytes>", self.0)
    }
}

/// `Some(<redacted>)` or `None`.
pub(crate) fn opt<T>(value: &Option<T>) -> Option<Redacted> {
    value.as_ref().map(|_| Redacted)
}

/// `Some(<redacted, N bytes>)` or `None`.
pub(crate) fn opt_bytes(value: &Option<Vec<u8>>) -> Option<RedactedBytes> {
    value.as_ref().map(|v| RedactedBytes(v.len()))
}
