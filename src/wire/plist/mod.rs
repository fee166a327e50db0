//! Bounded plist decoding, and an Apple-style XML plist writer.
//!
//! The `plist` crate is not safe on untrusted input by itself: deeply nested
//! XML overflows the stack and shared references in a binary plist expand
//! exponentially. [`decode`] therefore checks every document against
//! [`Limits`](crate::wire::Limits) in a linear pass of its own: an XML
//! document is parsed by this module in that same pass (straight from the
//! body into [`plist::Value`], each string copied once; the `plist` crate's
//! XML reader is not used), a binary one is scanned **before** the `plist`
//! crate reads it:
//!
//! - body size ([`Limits::max_body_bytes`](crate::wire::Limits::max_body_bytes)),
//!   checked first;
//! - XML: UTF-8 only, no byte-order mark, a strict plist subset of XML (no
//!   CDATA, no processing instructions other than the XML declaration, no
//!   DOCTYPE internal subset, only the five predefined entities and character
//!   references), nesting depth, node count (values and keys), decoded bytes
//!   (strings, keys and `<data>`), and `<dict>` structure (every `<key>` has a
//!   value);
//! - binary (only if [`Limits::allow_binary_plist`](crate::wire::Limits::allow_binary_plist)):
//!   trailer, offset table and every object reference are validated, and
//!   depth, node count and decoded bytes are computed for the document **as
//!   expanded** (shared references counted each time they are used), without
//!   expanding it.
//!
//! `<data>` is standard base64 (RFC 4648 alphabet with `=` padding). ASCII
//! whitespace anywhere inside it is ignored. Anything else is refused with
//! [`PlistError::BadBase64`]: characters outside the alphabet, a length that
//! is not a multiple of four, more than two `=` or `=` before the end (such as
//! the over-padded `AAAA=`), and non-zero bits after the last byte (such as
//! the placeholder `base64==`). This matches the strict decoder inside the
//! `plist` crate; Python's `plistlib` is more lenient.
//!
//! One concern a file: `error` (the [`PlistError`] type), `guard` ([`decode`],
//! [`decode_dict`]: size, byte-order mark and encoding checks, then the
//! reader for the format), `xml` (the one-pass XML parser) and `binary` (the
//! binary scanner in front of the `plist` crate), both private, `writer`
//! ([`encode_xml`]).

mod binary;
mod error;
mod guard;
mod writer;
mod xml;

pub use error::PlistError;
pub(crate) use guard::decode_dict_entries;
pub use guard::{decode, decode_dict};
pub use writer::encode_xml;
pub(crate) use writer::{Node, encode_xml_node};
