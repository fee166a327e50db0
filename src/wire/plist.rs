//! Bounded plist decoding, and an Apple-style XML plist writer.
//!
//! The `plist` crate is not safe on untrusted input by itself: deeply nested
//! XML overflows the stack and shared references in a binary plist expand
//! exponentially. [`decode`] therefore checks every document against
//! [`Limits`] with a cheap linear scan **before** the `plist` crate sees it:
//!
//! - body size ([`Limits::max_body_bytes`]), checked first;
//! - XML: UTF-8 only, no byte-order mark, a strict plist subset of XML (no
//!   CDATA, no processing instructions other than the XML declaration, no
//!   DOCTYPE internal subset, only the five predefined entities and character
//!   references), nesting depth, node count (values and keys), decoded bytes
//!   (strings, keys and `<data>`), and `<dict>` structure (every `<key>` has a
//!   value);
//! - binary (only if [`Limits::allow_binary_plist`]): trailer, offset table
//!   and every object reference are validated, and depth, node count and
//!   decoded bytes are computed for the document **as expanded** (shared
//!   references counted each time they are used), without expanding it.
//!
//! `<data>` is standard base64 (RFC 4648 alphabet with `=` padding). ASCII
//! whitespace anywhere inside it is ignored. Anything else is refused with
//! [`PlistError::BadBase64`]: characters outside the alphabet, a length that
//! is not a multiple of four, more than two `=` or `=` before the end (such as
//! the over-padded `AAAA=`), and non-zero bits after the last byte (such as
//! the placeholder `base64==`). This matches the strict decoder inside the
//! `plist` crate; Python's `plistlib` is more lenient.

use std::io::Cursor;

use plist::Value;

use super::Limits;

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
    /// The document passed the guard but the `plist` crate rejected it
    /// (for example an unparseable `<integer>` or `<date>`).
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

/// Decode an untrusted plist within `limits`.
///
/// XML is always accepted; binary plists only if `limits.allow_binary_plist`.
/// See the [module documentation](self) for what is checked.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Value, PlistError> {
    if bytes.len() > limits.max_body_bytes {
        return Err(PlistError::TooLarge {
            len: bytes.len(),
            max: limits.max_body_bytes,
        });
    }
    if bytes.starts_with(b"bplist") {
        if !limits.allow_binary_plist {
            return Err(PlistError::BinaryNotAllowed);
        }
        binary::check(bytes, limits)?;
        return Value::from_reader(Cursor::new(bytes))
            .map_err(|e| PlistError::Invalid(e.to_string()));
    }
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF])
        || bytes.starts_with(&[0xFE, 0xFF])
        || bytes.starts_with(&[0xFF, 0xFE])
    {
        return Err(PlistError::ByteOrderMark);
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(PlistError::NotUtf8 {
            offset: e.valid_up_to(),
        });
    }
    xml::check(bytes, limits)?;
    Value::from_reader_xml(bytes).map_err(|e| PlistError::Invalid(e.to_string()))
}

/// [`decode`], then require the top-level value to be a dictionary.
pub fn decode_dict(bytes: &[u8], limits: &Limits) -> Result<plist::Dictionary, PlistError> {
    match decode(bytes, limits)? {
        Value::Dictionary(d) => Ok(d),
        _ => Err(PlistError::UnexpectedRoot {
            expected: "dictionary",
        }),
    }
}

mod xml {
    //! A linear scanner for the XML plist subset.

    use super::{Limits, PlistError};

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Frame {
        /// `<plist>`; `true` once it holds its value.
        Plist(bool),
        Array,
        /// `<dict>`; `true` while a key waits for its value.
        Dict(bool),
    }

    struct Scanner<'a> {
        b: &'a [u8],
        pos: usize,
        limits: &'a Limits,
        stack: Vec<Frame>,
        depth: usize,
        nodes: usize,
        decoded: usize,
        root_seen: bool,
    }

    fn malformed(offset: usize, reason: &'static str) -> PlistError {
        PlistError::Malformed { offset, reason }
    }

    pub(super) fn check(b: &[u8], limits: &Limits) -> Result<(), PlistError> {
        let mut s = Scanner {
            b,
            pos: 0,
            limits,
            stack: Vec::with_capacity(limits.max_depth.min(64) + 1),
            depth: 0,
            nodes: 0,
            decoded: 0,
            root_seen: false,
        };
        s.run()
    }

    impl Scanner<'_> {
        fn at(&self, i: usize) -> Option<u8> {
            self.b.get(i).copied()
        }

        fn starts(&self, lit: &[u8]) -> bool {
            self.b.get(self.pos..).is_some_and(|r| r.starts_with(lit))
        }

        fn truncated(&self) -> PlistError {
            PlistError::Truncated {
                offset: self.b.len(),
            }
        }

        /// Move past the next occurrence of `lit`.
        fn skip_past(&mut self, lit: &[u8]) -> Result<(), PlistError> {
            let rest = self.b.get(self.pos..).unwrap_or_default();
            match rest.windows(lit.len()).position(|w| w == lit) {
                Some(i) => {
                    self.pos += i + lit.len();
                    Ok(())
                }
                None => Err(self.truncated()),
            }
        }

        /// The input ends inside one of the multi-byte markup openers.
        fn truncated_literal(&self) -> bool {
            let rest = self.b.get(self.pos..).unwrap_or_default();
            [&b"<?xml"[..], b"<!--", b"<!DOCTYPE"]
                .iter()
                .any(|lit| rest.len() < lit.len() && lit.starts_with(rest))
        }

        fn skip_ws(&mut self) {
            while matches!(self.at(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.pos += 1;
            }
        }

        fn run(&mut self) -> Result<(), PlistError> {
            loop {
                self.skip_ws();
                let Some(c) = self.at(self.pos) else {
                    if !self.stack.is_empty() || !self.root_seen {
                        return Err(self.truncated());
                    }
                    return Ok(());
                };
                if c != b'<' {
                    return Err(malformed(self.pos, "text outside of a value"));
                }
                if self.truncated_literal() {
                    return Err(self.truncated());
                }
                if self.starts(b"<?") {
                    if self.pos != 0 || !self.starts(b"<?xml") {
                        return Err(malformed(self.pos, "processing instruction"));
                    }
                    self.skip_past(b"?>")?;
                } else if self.starts(b"<!--") {
                    self.pos += 4;
                    self.skip_past(b"-->")?;
                } else if self.starts(b"<!DOCTYPE") {
                    if self.root_seen || !self.stack.is_empty() {
                        return Err(malformed(self.pos, "DOCTYPE after the root element"));
                    }
                    self.doctype()?;
                } else if self.starts(b"<!") {
                    return Err(malformed(self.pos, "CDATA or declaration"));
                } else if self.starts(b"</") {
                    self.close_tag()?;
                } else {
                    self.open_tag()?;
                }
            }
        }

        fn doctype(&mut self) -> Result<(), PlistError> {
            let mut quote = None;
            while let Some(c) = self.at(self.pos) {
                self.pos += 1;
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, b'"' | b'\'') => quote = Some(c),
                    (None, b'[') => {
                        return Err(malformed(self.pos - 1, "DOCTYPE internal subset"));
                    }
                    (None, b'>') => return Ok(()),
                    (None, _) => {}
                }
            }
            Err(self.truncated())
        }

        /// Read a tag name at `pos`.
        fn name(&mut self) -> Result<&'static str, PlistError> {
            let start = self.pos;
            while self.at(self.pos).is_some_and(|c| c.is_ascii_alphanumeric()) {
                self.pos += 1;
            }
            let name = self.b.get(start..self.pos).unwrap_or_default();
            const NAMES: [&str; 11] = [
                "plist", "array", "dict", "key", "string", "data", "date", "integer", "real",
                "true", "false",
            ];
            match NAMES.iter().find(|n| n.as_bytes() == name) {
                Some(n) => match self.at(self.pos) {
                    None => Err(self.truncated()),
                    Some(b' ' | b'\t' | b'\n' | b'\r' | b'>' | b'/') => Ok(n),
                    Some(_) => Err(malformed(start, "unknown element")),
                },
                None if self.pos >= self.b.len() => Err(self.truncated()),
                None => Err(malformed(start, "unknown element")),
            }
        }

        /// Skip attributes up to `>` or `/>`; returns whether the tag is empty.
        fn tag_end(&mut self) -> Result<bool, PlistError> {
            let mut quote = None;
            while let Some(c) = self.at(self.pos) {
                self.pos += 1;
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), b'<') => return Err(malformed(self.pos - 1, "'<' in attribute")),
                    (Some(_), _) => {}
                    (None, b'"' | b'\'') => quote = Some(c),
                    (None, b'>') => return Ok(false),
                    (None, b'/') => {
                        return match self.at(self.pos) {
                            Some(b'>') => {
                                self.pos += 1;
                                Ok(true)
                            }
                            None => Err(self.truncated()),
                            Some(_) => Err(malformed(self.pos, "'/' inside a tag")),
                        };
                    }
                    (None, b'<') => return Err(malformed(self.pos - 1, "'<' inside a tag")),
                    (None, _) => {}
                }
            }
            Err(self.truncated())
        }

        fn close_tag(&mut self) -> Result<(), PlistError> {
            let at = self.pos;
            self.pos += 2;
            let name = self.name()?;
            self.skip_ws();
            match self.at(self.pos) {
                Some(b'>') => self.pos += 1,
                None => return Err(self.truncated()),
                Some(_) => return Err(malformed(self.pos, "junk in a closing tag")),
            }
            match (self.stack.pop(), name) {
                (Some(Frame::Array), "array") => self.depth -= 1,
                (Some(Frame::Dict(false)), "dict") => self.depth -= 1,
                (Some(Frame::Dict(true)), "dict") => {
                    return Err(PlistError::DanglingKey { offset: at });
                }
                (Some(Frame::Plist(true)), "plist") => {}
                (Some(Frame::Plist(false)), "plist") => {
                    return Err(malformed(at, "empty <plist>"));
                }
                _ => return Err(malformed(at, "mismatched closing tag")),
            }
            Ok(())
        }

        fn count_node(&mut self) -> Result<(), PlistError> {
            self.nodes += 1;
            if self.nodes > self.limits.max_nodes {
                return Err(PlistError::TooManyNodes {
                    max: self.limits.max_nodes,
                });
            }
            Ok(())
        }

        fn add_decoded(&mut self, n: usize) -> Result<(), PlistError> {
            self.decoded = self.decoded.saturating_add(n);
            if self.decoded > self.limits.max_decoded_bytes {
                return Err(PlistError::DecodedTooLarge {
                    max: self.limits.max_decoded_bytes,
                });
            }
            Ok(())
        }

        /// A value starts at `at`: check that one is allowed here.
        fn value_position(&mut self, at: usize) -> Result<(), PlistError> {
            match self.stack.last_mut() {
                None if self.root_seen => return Err(malformed(at, "more than one root value")),
                None => self.root_seen = true,
                Some(Frame::Plist(full)) if *full => {
                    return Err(malformed(at, "more than one value in <plist>"));
                }
                Some(Frame::Plist(full)) => *full = true,
                Some(Frame::Array) => {}
                Some(Frame::Dict(awaiting)) if *awaiting => *awaiting = false,
                Some(Frame::Dict(_)) => {
                    return Err(malformed(at, "dictionary value without a key"));
                }
            }
            self.count_node()
        }

        fn open_tag(&mut self) -> Result<(), PlistError> {
            let at = self.pos;
            self.pos += 1;
            let name = self.name()?;
            let empty = self.tag_end()?;
            match name {
                "plist" => {
                    if self.root_seen || !self.stack.is_empty() {
                        return Err(malformed(at, "misplaced <plist>"));
                    }
                    if empty {
                        return Err(malformed(at, "empty <plist>"));
                    }
                    self.root_seen = true;
                    self.stack.push(Frame::Plist(false));
                }
                "array" | "dict" => {
                    self.value_position(at)?;
                    if self.depth >= self.limits.max_depth {
                        return Err(PlistError::TooDeep {
                            max: self.limits.max_depth,
                        });
                    }
                    if !empty {
                        self.depth += 1;
                        self.stack.push(if name == "array" {
                            Frame::Array
                        } else {
                            Frame::Dict(false)
                        });
                    }
                }
                "key" => {
                    match self.stack.last_mut() {
                        Some(Frame::Dict(awaiting)) if !*awaiting => *awaiting = true,
                        Some(Frame::Dict(_)) => return Err(PlistError::DanglingKey { offset: at }),
                        _ => return Err(malformed(at, "<key> outside a dictionary")),
                    }
                    self.count_node()?;
                    if !empty {
                        self.text(name)?;
                    }
                }
                "true" | "false" => {
                    self.value_position(at)?;
                    if !empty {
                        self.skip_ws();
                        if !self.starts(b"</") {
                            if self.pos + 1 >= self.b.len() {
                                return Err(self.truncated());
                            }
                            return Err(malformed(self.pos, "content in a boolean"));
                        }
                        self.pos += 2;
                        if self.name()? != name {
                            return Err(malformed(self.pos, "mismatched closing tag"));
                        }
                        self.skip_ws();
                        match self.at(self.pos) {
                            Some(b'>') => self.pos += 1,
                            None => return Err(self.truncated()),
                            Some(_) => return Err(malformed(self.pos, "junk in a closing tag")),
                        }
                    }
                }
                "data" => {
                    self.value_position(at)?;
                    if !empty {
                        self.data()?;
                    }
                }
                _ => {
                    // string, date, integer, real
                    self.value_position(at)?;
                    if !empty {
                        self.text(name)?;
                    }
                }
            }
            Ok(())
        }

        /// Expect `</name>` at `pos` (just after the text of an element).
        fn end_of_text(&mut self, name: &str) -> Result<(), PlistError> {
            if !self.starts(b"</") {
                if self.pos + 1 >= self.b.len() {
                    return Err(self.truncated());
                }
                return Err(malformed(self.pos, "markup inside a text element"));
            }
            self.pos += 2;
            let n = self.name()?;
            if n != name {
                return Err(malformed(self.pos, "mismatched closing tag"));
            }
            self.skip_ws();
            match self.at(self.pos) {
                Some(b'>') => {
                    self.pos += 1;
                    Ok(())
                }
                None => Err(self.truncated()),
                Some(_) => Err(malformed(self.pos, "junk in a closing tag")),
            }
        }

        /// Text content of a `key`/`string`/`date`/`integer`/`real` element.
        fn text(&mut self, name: &str) -> Result<(), PlistError> {
            let mut len = 0usize;
            loop {
                // Plain text up to the next byte of interest, in one step.
                let rest = self.b.get(self.pos..).unwrap_or_default();
                let plain = rest
                    .iter()
                    .position(|&c| matches!(c, b'<' | b'&' | 0))
                    .unwrap_or(rest.len());
                self.pos += plain;
                len += plain;
                match self.at(self.pos) {
                    None => return Err(self.truncated()),
                    Some(b'<') => break,
                    Some(b'&') => len += self.entity()?,
                    Some(_) => return Err(malformed(self.pos, "NUL character")),
                }
            }
            self.add_decoded(len)?;
            self.end_of_text(name)
        }

        /// An entity or character reference at `pos`; returns its UTF-8 length.
        fn entity(&mut self) -> Result<usize, PlistError> {
            let at = self.pos;
            let rest = self.b.get(at + 1..).unwrap_or_default();
            let Some(semi) = rest.iter().take(12).position(|&c| c == b';') else {
                if rest.len() < 12 && !rest.contains(&b'<') {
                    return Err(self.truncated());
                }
                return Err(malformed(at, "unterminated entity reference"));
            };
            let body = rest.get(..semi).unwrap_or_default();
            let len = match body {
                b"lt" | b"gt" | b"amp" | b"quot" | b"apos" => 1,
                [b'#', b'x', hex @ ..] => {
                    char_ref(hex, 16).ok_or(malformed(at, "bad character reference"))?
                }
                [b'#', dec @ ..] => {
                    char_ref(dec, 10).ok_or(malformed(at, "bad character reference"))?
                }
                _ => return Err(malformed(at, "unknown entity")),
            };
            self.pos = at + semi + 2;
            Ok(len)
        }

        /// Content of a `<data>` element: strict base64 with ASCII whitespace ignored.
        fn data(&mut self) -> Result<(), PlistError> {
            let start = self.pos;
            let rest = self.b.get(start..).unwrap_or_default();
            let mut n = 0usize; // significant characters, padding included
            let mut pad = 0usize;
            let mut last = 0u8; // value of the last alphabet character
            let mut end = None;
            for (i, &c) in rest.iter().enumerate() {
                // A u8 indexes a 256-entry table: never out of bounds.
                match B64.get(usize::from(c)).copied().unwrap_or(B64_BAD) {
                    v @ 0..=63 if pad == 0 => {
                        last = v;
                        n += 1;
                    }
                    B64_WS => {}
                    B64_PAD if pad < 2 => {
                        pad += 1;
                        n += 1;
                    }
                    B64_END => {
                        end = Some(start + i);
                        break;
                    }
                    // Invalid, a third `=`, or alphabet after padding.
                    _ => return Err(PlistError::BadBase64 { offset: start + i }),
                }
            }
            let Some(end) = end else {
                return Err(self.truncated());
            };
            self.pos = end;
            let trailing_bits_clear = match pad {
                0 => true,
                1 => last & 0b11 == 0,
                _ => last & 0b1111 == 0,
            };
            if !n.is_multiple_of(4) || !trailing_bits_clear {
                return Err(PlistError::BadBase64 { offset: end });
            }
            self.add_decoded(n / 4 * 3 - pad)?;
            self.end_of_text("data")
        }
    }

    /// [`B64`] classes beyond the alphabet values 0–63.
    const B64_WS: u8 = 64;
    const B64_PAD: u8 = 65;
    const B64_END: u8 = 66;
    const B64_BAD: u8 = 255;

    /// Byte → base64 value (0–63), ASCII whitespace, `=`, `<`, or invalid.
    // Evaluated at compile time: an index out of bounds is a build error.
    #[allow(clippy::indexing_slicing)]
    static B64: [u8; 256] = {
        let mut t = [B64_BAD; 256];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut i = 0;
        while i < 64 {
            t[alphabet[i] as usize] = i as u8;
            i += 1;
        }
        // u8::is_ascii_whitespace: space, \t, \n, form feed, \r.
        t[b' ' as usize] = B64_WS;
        t[b'\t' as usize] = B64_WS;
        t[b'\n' as usize] = B64_WS;
        t[0x0C] = B64_WS;
        t[b'\r' as usize] = B64_WS;
        t[b'=' as usize] = B64_PAD;
        t[b'<' as usize] = B64_END;
        t
    };

    fn char_ref(digits: &[u8], radix: u32) -> Option<usize> {
        if digits.is_empty() || digits.len() > 8 {
            return None;
        }
        let s = std::str::from_utf8(digits).ok()?;
        let v = u32::from_str_radix(s, radix).ok()?;
        let c = char::from_u32(v)?;
        // quick-xml (inside the plist crate) refuses U+0000.
        (v != 0).then(|| c.len_utf8())
    }
}

mod binary {
    //! Validation and expanded-size accounting of `bplist00` documents.

    use super::{Limits, PlistError};

    fn malformed(offset: usize, reason: &'static str) -> PlistError {
        PlistError::Malformed { offset, reason }
    }

    fn be(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    }

    /// Expanded totals of one object (itself and everything it references).
    #[derive(Clone, Copy, Default)]
    struct Totals {
        nodes: u64,
        decoded: u64,
        depth: u64,
    }

    #[derive(Clone, Copy)]
    enum State {
        Unvisited,
        OnStack,
        Done(Totals),
    }

    struct Doc<'a> {
        b: &'a [u8],
        offsets: Vec<u64>,
        ref_size: usize,
        table_start: usize,
    }

    /// A parsed object header: own totals and the range of child references.
    struct Object {
        own_decoded: u64,
        container: bool,
        /// Byte range of the child reference list, and the number of refs.
        refs_at: usize,
        refs: usize,
    }

    pub(super) fn check(b: &[u8], limits: &Limits) -> Result<(), PlistError> {
        if !b.starts_with(b"bplist00") {
            return Err(malformed(0, "unsupported binary plist version"));
        }
        if b.len() < 8 + 32 + 1 {
            return Err(PlistError::Truncated { offset: b.len() });
        }
        let t = b.len() - 32;
        let trailer = b.get(t..).unwrap_or_default();
        let field = |r: std::ops::Range<usize>| trailer.get(r).map(be).unwrap_or(0);
        let offset_size = field(6..7) as usize;
        let ref_size = field(7..8) as usize;
        let num_objects = field(8..16);
        let top = field(16..24);
        let table = field(24..32);
        if !matches!(offset_size, 1 | 2 | 3 | 4 | 8) || !matches!(ref_size, 1 | 2 | 3 | 4 | 8) {
            return Err(malformed(t + 6, "bad offset or reference size"));
        }
        let table_len = num_objects
            .checked_mul(offset_size as u64)
            .ok_or(malformed(t + 8, "object count overflows"))?;
        let table_end = table
            .checked_add(table_len)
            .ok_or(malformed(t + 24, "offset table overflows"))?;
        if table < 8 || table_end > t as u64 {
            return Err(malformed(t + 24, "offset table outside the document"));
        }
        if top >= num_objects {
            return Err(malformed(t + 16, "top object out of range"));
        }
        let table = table as usize;
        let offsets: Vec<u64> = b
            .get(table..table_end as usize)
            .unwrap_or_default()
            .chunks_exact(offset_size)
            .map(be)
            .collect();
        let doc = Doc {
            b,
            offsets,
            ref_size,
            table_start: table,
        };
        let totals = doc.walk(top as usize, limits)?;
        if totals.decoded > limits.max_decoded_bytes as u64 {
            return Err(PlistError::DecodedTooLarge {
                max: limits.max_decoded_bytes,
            });
        }
        Ok(())
    }

    impl Doc<'_> {
        fn byte(&self, at: usize) -> Result<u8, PlistError> {
            if at >= self.table_start {
                return Err(malformed(at, "object runs into the offset table"));
            }
            self.b
                .get(at)
                .copied()
                .ok_or(PlistError::Truncated { offset: at })
        }

        /// Check that `len` bytes from `at` lie before the offset table.
        fn span(&self, at: usize, len: u64) -> Result<(), PlistError> {
            let end = (at as u64).checked_add(len);
            match end {
                Some(end) if end <= self.table_start as u64 => Ok(()),
                _ => Err(malformed(at, "object runs past the object area")),
            }
        }

        /// A length field: the low nibble, or a following integer object when it is 0xF.
        fn length(&self, at: usize, nibble: u8) -> Result<(u64, usize), PlistError> {
            if nibble != 0x0F {
                return Ok((u64::from(nibble), at + 1));
            }
            let marker = self.byte(at + 1)?;
            if marker >> 4 != 0x1 || marker & 0x0F > 3 {
                return Err(malformed(at + 1, "bad length integer"));
            }
            let n = 1usize << (marker & 0x0F);
            self.span(at + 2, n as u64)?;
            let v = be(self.b.get(at + 2..at + 2 + n).unwrap_or_default());
            Ok((v, at + 2 + n))
        }

        fn object(&self, index: usize) -> Result<Object, PlistError> {
            let off = *self
                .offsets
                .get(index)
                .ok_or(malformed(0, "object reference out of range"))?;
            if off < 8 || off >= self.table_start as u64 {
                return Err(malformed(0, "object offset out of range"));
            }
            let at = off as usize;
            let marker = self.byte(at)?;
            let (kind, nibble) = (marker >> 4, marker & 0x0F);
            let leaf = |own_decoded: u64| Object {
                own_decoded,
                container: false,
                refs_at: 0,
                refs: 0,
            };
            Ok(match kind {
                0x0 if nibble == 0x8 || nibble == 0x9 => leaf(0),
                0x1 if nibble <= 4 => {
                    self.span(at + 1, 1 << nibble)?;
                    leaf(0)
                }
                0x2 if nibble == 2 || nibble == 3 => {
                    self.span(at + 1, 1 << nibble)?;
                    leaf(0)
                }
                0x3 if nibble == 3 => {
                    self.span(at + 1, 8)?;
                    leaf(0)
                }
                0x4 | 0x5 => {
                    let (len, start) = self.length(at, nibble)?;
                    self.span(start, len)?;
                    leaf(len)
                }
                0x6 => {
                    let (len, start) = self.length(at, nibble)?;
                    let bytes = len
                        .checked_mul(2)
                        .ok_or(malformed(at, "string length overflows"))?;
                    self.span(start, bytes)?;
                    // Up to three UTF-8 bytes per UTF-16 unit.
                    leaf(len.saturating_mul(3))
                }
                0x8 if nibble < 8 => {
                    self.span(at + 1, u64::from(nibble) + 1)?;
                    leaf(0)
                }
                0xA | 0xD => {
                    let (len, start) = self.length(at, nibble)?;
                    let refs = if kind == 0xD {
                        len.checked_mul(2)
                            .ok_or(malformed(at, "dictionary length overflows"))?
                    } else {
                        len
                    };
                    let bytes = refs
                        .checked_mul(self.ref_size as u64)
                        .ok_or(malformed(at, "container length overflows"))?;
                    self.span(start, bytes)?;
                    Object {
                        own_decoded: 0,
                        container: true,
                        refs_at: start,
                        refs: refs as usize,
                    }
                }
                _ => return Err(malformed(at, "unsupported object type")),
            })
        }

        fn child(&self, obj: &Object, i: usize) -> Result<usize, PlistError> {
            let at = obj.refs_at + i * self.ref_size;
            let r = be(self.b.get(at..at + self.ref_size).unwrap_or_default());
            if r >= self.offsets.len() as u64 {
                return Err(malformed(at, "object reference out of range"));
            }
            Ok(r as usize)
        }

        /// Depth-first, memoised walk from `top`, bounded by the limits.
        fn walk(&self, top: usize, limits: &Limits) -> Result<Totals, PlistError> {
            let mut state = vec![State::Unvisited; self.offsets.len()];
            // (object index, parsed object, next child, accumulated totals)
            let mut stack: Vec<(usize, Object, usize, Totals)> = Vec::new();
            let max_nodes = limits.max_nodes as u64;
            let max_decoded = limits.max_decoded_bytes as u64;
            let mut pending = Some(top);
            loop {
                if let Some(index) = pending.take() {
                    match state.get(index).copied() {
                        Some(State::Unvisited) => {}
                        Some(State::OnStack) => {
                            return Err(malformed(0, "reference cycle"));
                        }
                        Some(State::Done(t)) => {
                            self.finish_child(&mut stack, t, limits)?;
                            continue;
                        }
                        None => return Err(malformed(0, "object reference out of range")),
                    }
                    let obj = self.object(index)?;
                    let own = Totals {
                        nodes: 1,
                        decoded: obj.own_decoded,
                        depth: u64::from(obj.container),
                    };
                    if obj.container {
                        if stack.iter().filter(|f| f.1.container).count() >= limits.max_depth {
                            return Err(PlistError::TooDeep {
                                max: limits.max_depth,
                            });
                        }
                        if let Some(s) = state.get_mut(index) {
                            *s = State::OnStack;
                        }
                        stack.push((index, obj, 0, own));
                    } else {
                        if let Some(s) = state.get_mut(index) {
                            *s = State::Done(own);
                        }
                        if stack.is_empty() {
                            return Ok(own);
                        }
                        self.finish_child(&mut stack, own, limits)?;
                    }
                    continue;
                }
                let Some(frame) = stack.last_mut() else {
                    return Err(malformed(0, "empty walk"));
                };
                if frame.2 < frame.1.refs {
                    let child = self.child(&frame.1, frame.2)?;
                    frame.2 += 1;
                    pending = Some(child);
                    continue;
                }
                let Some((index, _, _, totals)) = stack.pop() else {
                    return Err(malformed(0, "empty walk"));
                };
                if totals.nodes > max_nodes {
                    return Err(PlistError::TooManyNodes {
                        max: limits.max_nodes,
                    });
                }
                if totals.decoded > max_decoded {
                    return Err(PlistError::DecodedTooLarge {
                        max: limits.max_decoded_bytes,
                    });
                }
                if let Some(s) = state.get_mut(index) {
                    *s = State::Done(totals);
                }
                if stack.is_empty() {
                    return Ok(totals);
                }
                self.finish_child(&mut stack, totals, limits)?;
            }
        }

        /// Add a finished child's totals to the frame on top of the stack.
        fn finish_child(
            &self,
            stack: &mut [(usize, Object, usize, Totals)],
            child: Totals,
            limits: &Limits,
        ) -> Result<(), PlistError> {
            let Some(frame) = stack.last_mut() else {
                return Ok(());
            };
            let t = &mut frame.3;
            t.nodes = t.nodes.saturating_add(child.nodes);
            t.decoded = t.decoded.saturating_add(child.decoded);
            t.depth = t.depth.max(child.depth.saturating_add(1));
            if t.nodes > limits.max_nodes as u64 {
                return Err(PlistError::TooManyNodes {
                    max: limits.max_nodes,
                });
            }
            if t.decoded > limits.max_decoded_bytes as u64 {
                return Err(PlistError::DecodedTooLarge {
                    max: limits.max_decoded_bytes,
                });
            }
            if t.depth > limits.max_depth as u64 {
                return Err(PlistError::TooDeep {
                    max: limits.max_depth,
                });
            }
            Ok(())
        }
    }
}

/// Serialise `value` as an Apple-style XML plist (XML declaration, Apple
/// DOCTYPE, `<plist version="1.0">`, tab indentation, trailing newline).
///
/// Dictionary keys keep their order. C0 controls other than tab, LF, CR and
/// U+0000 are written as character references, which [`decode`] reads back
/// (strict XML readers such as expat refuse them). U+0000 has no XML form at
/// all, raw or as a reference, and every reader refuses it, [`decode`]
/// included: a string or key holding it is refused with
/// [`PlistError::NulCharacter`] rather than written. The writer is
/// iterative, so any depth of `value` is safe.
pub fn encode_xml(value: &Value) -> Result<Vec<u8>, PlistError> {
    enum Item<'a> {
        Value(&'a Value),
        Key(&'a str),
        Close(&'static str),
    }
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
          <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
          <plist version=\"1.0\">\n",
    );
    let mut stack: Vec<(Item<'_>, usize)> = vec![(Item::Value(value), 0)];
    while let Some((item, depth)) = stack.pop() {
        indent(&mut out, depth);
        match item {
            Item::Close(tag) => {
                out.extend_from_slice(b"</");
                out.extend_from_slice(tag.as_bytes());
                out.extend_from_slice(b">\n");
            }
            Item::Key(k) => text_element(&mut out, "key", k)?,
            Item::Value(v) => match v {
                Value::Array(a) if a.is_empty() => out.extend_from_slice(b"<array/>\n"),
                Value::Array(a) => {
                    out.extend_from_slice(b"<array>\n");
                    stack.push((Item::Close("array"), depth));
                    for v in a.iter().rev() {
                        stack.push((Item::Value(v), depth + 1));
                    }
                }
                Value::Dictionary(d) if d.is_empty() => out.extend_from_slice(b"<dict/>\n"),
                Value::Dictionary(d) => {
                    out.extend_from_slice(b"<dict>\n");
                    stack.push((Item::Close("dict"), depth));
                    let entries: Vec<_> = d.iter().collect();
                    for (k, v) in entries.into_iter().rev() {
                        stack.push((Item::Value(v), depth + 1));
                        stack.push((Item::Key(k), depth + 1));
                    }
                }
                Value::Boolean(true) => out.extend_from_slice(b"<true/>\n"),
                Value::Boolean(false) => out.extend_from_slice(b"<false/>\n"),
                Value::Data(d) if d.is_empty() => out.extend_from_slice(b"<data></data>\n"),
                Value::Data(d) => {
                    out.extend_from_slice(b"<data>\n");
                    let encoded = <base64ct::Base64 as base64ct::Encoding>::encode_string(d);
                    for line in encoded.as_bytes().chunks(68) {
                        indent(&mut out, depth);
                        out.extend_from_slice(line);
                        out.push(b'\n');
                    }
                    indent(&mut out, depth);
                    out.extend_from_slice(b"</data>\n");
                }
                Value::Date(d) => text_element(&mut out, "date", &d.to_xml_format())?,
                Value::Real(r) => text_element(&mut out, "real", &format_real(*r))?,
                Value::Integer(i) => text_element(&mut out, "integer", &i.to_string())?,
                Value::String(s) => text_element(&mut out, "string", s)?,
                Value::Uid(u) => {
                    out.extend_from_slice(b"<dict>\n");
                    indent(&mut out, depth + 1);
                    text_element(&mut out, "key", "CF$UID")?;
                    indent(&mut out, depth + 1);
                    text_element(&mut out, "integer", &u.get().to_string())?;
                    stack.push((Item::Close("dict"), depth));
                }
                _ => out.extend_from_slice(b"<string></string>\n"),
            },
        }
    }
    out.extend_from_slice(b"</plist>\n");
    Ok(out)
}

fn indent(out: &mut Vec<u8>, depth: usize) {
    out.extend(std::iter::repeat_n(b'\t', depth));
}

fn format_real(r: f64) -> String {
    if r.is_nan() {
        "nan".to_owned()
    } else if r.is_infinite() {
        if r > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{r:?}")
    }
}

fn text_element(out: &mut Vec<u8>, tag: &'static str, text: &str) -> Result<(), PlistError> {
    if text.contains('\0') {
        return Err(PlistError::NulCharacter { element: tag });
    }
    out.push(b'<');
    out.extend_from_slice(tag.as_bytes());
    out.push(b'>');
    for c in text.chars() {
        match c {
            '&' => out.extend_from_slice(b"&amp;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '>' => out.extend_from_slice(b"&gt;"),
            '\t' | '\n' | '\r' => out.push(c as u8),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("&#x{:X};", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.extend_from_slice(b"</");
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b">\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the writer emits, the reader reads back as the same value;
    /// what no reader accepts (U+0000) the writer refuses with a typed error.
    #[test]
    fn the_writer_emits_only_what_the_reader_reads_back() {
        for c in (0u32..0x20).chain([0x7F, 0xFFFD]) {
            let c = char::from_u32(c).unwrap();
            for (key, string) in [
                (format!("k{c}"), "s".to_owned()),
                ("k".into(), format!("a{c}b")),
            ] {
                let mut d = plist::Dictionary::new();
                d.insert(key.clone(), Value::String(string.clone()));
                let value = Value::Dictionary(d);
                match encode_xml(&value) {
                    Ok(xml) => assert_eq!(
                        decode(&xml, &Limits::default()),
                        Ok(value),
                        "U+{:04X}",
                        c as u32
                    ),
                    Err(e) => {
                        assert_eq!(c, '\0');
                        let element = if key.contains('\0') { "key" } else { "string" };
                        assert_eq!(e, PlistError::NulCharacter { element });
                    }
                }
            }
        }
        assert!(encode_xml(&Value::String("\0".into())).is_err());
    }

    fn xml(body: &str) -> Vec<u8> {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">{body}</plist>")
            .into_bytes()
    }

    #[test]
    fn simple_dict_decodes() {
        let v = decode(
            &xml("<dict><key>a</key><string>x &amp; y</string><key>b</key><data> AA\nE= </data></dict>"),
            &Limits::default(),
        )
        .unwrap();
        let d = v.as_dictionary().unwrap();
        assert_eq!(d.get("a").and_then(Value::as_string), Some("x & y"));
        assert_eq!(d.get("b").and_then(Value::as_data), Some(&[0, 1][..]));
    }

    #[test]
    fn base64_strictness() {
        for bad in [
            "AAAA=", "Base64=", "base64==", "A===", "====", "AB=C", "AB*C", "A",
        ] {
            let err = decode(&xml(&format!("<data>{bad}</data>")), &Limits::default()).unwrap_err();
            assert!(
                matches!(err, PlistError::BadBase64 { .. }),
                "{bad}: {err:?}"
            );
        }
        for good in ["", "AA==", "AAA=", "AAAA", " A A\tA\r\nA "] {
            decode(&xml(&format!("<data>{good}</data>")), &Limits::default()).unwrap();
        }
    }

    #[test]
    fn real_formatting_round_trips() {
        for r in [1.0, 1.5, -0.25, 1e300, 5e-324] {
            let back = decode(&encode_xml(&Value::Real(r)).unwrap(), &Limits::default()).unwrap();
            assert_eq!(back.as_real(), Some(r));
        }
    }
}
