//! [`PlistError`]: why a plist was refused by the guard or the writer.

#[cfg(doc)]
use crate::wire::Limits;

/// Why a plist was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlistError {
    /// The body is longer than [`Limits::max_body_bytes`].
    #[error("plist body of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the body.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body starts with a Unicode byte-order mark (devices never send one).
    #[error("plist body starts with a byte-order mark")]
    ByteOrderMark,
    /// An XML body is not valid UTF-8.
    #[error("plist body is not valid UTF-8 (at byte {offset})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// A binary plist was sent where only XML is accepted.
    #[error("binary plists are not accepted here")]
    BinaryNotAllowed,
    /// Arrays and dictionaries nest deeper than [`Limits::max_depth`].
    #[error("plist nests deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// More values and keys than [`Limits::max_nodes`].
    #[error("plist has more than {max} nodes")]
    TooManyNodes {
        /// The limit.
        max: usize,
    },
    /// Strings, keys and data would decode to more than [`Limits::max_decoded_bytes`].
    #[error("plist would decode to more than {max} bytes of strings and data")]
    DecodedTooLarge {
        /// The limit.
        max: usize,
    },
    /// The document ends in the middle of a construct (or is empty).
    #[error("plist is truncated at byte {offset}")]
    Truncated {
        /// Offset where more input was needed.
        offset: usize,
    },
    /// A `<key>` in a `<dict>` has no value.
    #[error("dictionary key without a value before byte {offset}")]
    DanglingKey {
        /// Offset of the end of the dictionary.
        offset: usize,
    },
    /// The content of a `<data>` element is not valid base64.
    #[error("invalid base64 in <data> at byte {offset}")]
    BadBase64 {
        /// Offset of the offending character (or of the end of the element).
        offset: usize,
    },
    /// The document is not a well-formed plist.
    #[error("malformed plist at byte {offset}: {reason}")]
    Malformed {
        /// Offset of the problem.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// The document is within every bound but a value in it cannot be read
    /// (an unparseable `<integer>`, `<real>` or `<date>`, or a binary plist
    /// the `plist` crate rejects).
    #[error("invalid plist value: {0}")]
    Invalid(String),
    /// A string or key to encode holds U+0000, which no XML plist can carry
    /// (XML 1.0 forbids it, even as `&#x0;`; every reader refuses it).
    #[error("a {element} holds U+0000, which an XML plist cannot carry")]
    NulCharacter {
        /// The element it would have been written in (`"string"`, `"key"`).
        element: &'static str,
    },
    /// The top-level value is not of the expected type.
    #[error("expected a top-level {expected}")]
    UnexpectedRoot {
        /// The type that was expected (`"dictionary"`).
        expected: &'static str,
    },
}
