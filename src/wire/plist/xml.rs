//! A linear scanner for the XML plist subset: one pass over the bytes, no
//! recursion, checking the subset of XML a plist uses (no CDATA, no
//! processing instructions but the declaration, no DOCTYPE internal subset,
//! the five predefined entities and character references), nesting depth,
//! node count, decoded bytes (including strict `<data>` base64) and `<dict>`
//! key/value structure against [`Limits`].

use super::PlistError;
use crate::wire::Limits;

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
            "plist", "array", "dict", "key", "string", "data", "date", "integer", "real", "true",
            "false",
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
