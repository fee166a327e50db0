//! A linear parser for the XML plist subset: one pass over the bytes, no
//! recursion, checking the subset of XML a plist uses (no CDATA, no
//! processing instructions but the declaration, no DOCTYPE internal subset,
//! the five predefined entities and character references), nesting depth,
//! node count, decoded bytes (including strict `<data>` base64) and `<dict>`
//! key/value structure against [`Limits`], and building the
//! [`plist::Value`] as it goes: each string is copied once, from the body
//! into its `String`, and `<data>` is decoded in the same pass that checks
//! it. The values are those the `plist` crate's own XML reader gives for
//! the same document (`tests/wire_plist.rs` compares them).

use plist::{Dictionary, Integer, Value};

use super::PlistError;
use crate::wire::{Limits, base64};

/// An open element and the value it is building.
enum Frame {
    /// `<plist>`, with its value once read.
    Plist(Option<Value>),
    Array(Vec<Value>),
    /// `<dict>`: its entries in document order (made a [`Dictionary`] in
    /// one step when it closes), and the key waiting for its value.
    Dict(Vec<(String, Value)>, Option<String>),
}

struct Scanner<'a> {
    b: &'a [u8],
    /// The same bytes, known to be UTF-8.
    text: &'a str,
    pos: usize,
    limits: &'a Limits,
    stack: Vec<Frame>,
    depth: usize,
    nodes: usize,
    decoded: usize,
    root_seen: bool,
    /// The root value once complete.
    root: Option<Value>,
    /// Keep a root `<dict>`'s entries as a list ([`parse_root_entries`])
    /// instead of building a [`Dictionary`] of them.
    keep_root_entries: bool,
    /// Those entries, once the root `<dict>` closed (keys unique).
    root_entries: Option<Vec<(String, Value)>>,
    /// The first value the structure allowed but whose content is not a
    /// valid `<integer>`, `<real>` or `<date>`; reported after the whole
    /// document passed every bound, as the `plist` crate's refusal was.
    invalid: Option<PlistError>,
}

fn malformed(offset: usize, reason: &'static str) -> PlistError {
    PlistError::Malformed { offset, reason }
}

/// Parse an XML plist (already known to be UTF-8) within `limits`.
pub(super) fn parse(text: &str, limits: &Limits) -> Result<Value, PlistError> {
    let mut s = scanner(text, limits, false);
    s.run()?;
    if let Some(e) = s.invalid {
        return Err(e);
    }
    // `run` succeeds only once the root value is complete.
    s.root.ok_or(PlistError::Truncated { offset: s.b.len() })
}

/// [`parse`] a plist whose root must be a dictionary, and return that
/// dictionary's entries in document order, keys unique (a duplicate key
/// keeps its first position and its last value, as [`Dictionary`] does),
/// without building the [`Dictionary`]: a caller that takes a known set of
/// fields out of a small root (a check-in, a report) looks them up in the
/// list and hashes nothing. Nested dictionaries are built as in [`parse`].
pub(super) fn parse_root_entries(
    text: &str,
    limits: &Limits,
) -> Result<Vec<(String, Value)>, PlistError> {
    let mut s = scanner(text, limits, true);
    s.run()?;
    if let Some(e) = s.invalid {
        return Err(e);
    }
    match (s.root_entries, s.root) {
        (Some(entries), Some(_)) => Ok(entries),
        (None, Some(_)) => Err(PlistError::UnexpectedRoot {
            expected: "dictionary",
        }),
        (_, None) => Err(PlistError::Truncated { offset: s.b.len() }),
    }
}

/// Up to this many entries, duplicate keys are found by comparing each key
/// with the ones before it; past it, through a [`Dictionary`]'s hash map.
const LINEAR_DEDUP: usize = 64;

/// `entries` with each key once: at its first position, with its last value.
fn unique_keys(entries: Vec<(String, Value)>) -> Vec<(String, Value)> {
    if entries.len() > LINEAR_DEDUP {
        return entries
            .into_iter()
            .collect::<Dictionary>()
            .into_iter()
            .collect();
    }
    let mut out: Vec<(String, Value)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
    }
    out
}

fn scanner<'a>(text: &'a str, limits: &'a Limits, keep_root_entries: bool) -> Scanner<'a> {
    Scanner {
        b: text.as_bytes(),
        text,
        pos: 0,
        limits,
        stack: Vec::with_capacity(limits.max_depth.min(16) + 1),
        depth: 0,
        nodes: 0,
        decoded: 0,
        root_seen: false,
        root: None,
        keep_root_entries,
        root_entries: None,
        invalid: None,
    }
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
        let known = match self.b.get(start..self.pos).unwrap_or_default() {
            b"plist" => Some("plist"),
            b"array" => Some("array"),
            b"dict" => Some("dict"),
            b"key" => Some("key"),
            b"string" => Some("string"),
            b"data" => Some("data"),
            b"date" => Some("date"),
            b"integer" => Some("integer"),
            b"real" => Some("real"),
            b"true" => Some("true"),
            b"false" => Some("false"),
            _ => None,
        };
        match known {
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
            (Some(Frame::Array(items)), "array") => {
                self.depth -= 1;
                self.place(Value::Array(items));
            }
            (Some(Frame::Dict(entries, None)), "dict") => {
                self.depth -= 1;
                self.close_dict(entries);
            }
            (Some(Frame::Dict(_, Some(_))), "dict") => {
                return Err(PlistError::DanglingKey { offset: at });
            }
            (Some(Frame::Plist(Some(v))), "plist") => self.root = Some(v),
            (Some(Frame::Plist(None)), "plist") => {
                return Err(malformed(at, "empty <plist>"));
            }
            _ => return Err(malformed(at, "mismatched closing tag")),
        }
        Ok(())
    }

    /// A `<dict>` is complete (closed by `</dict>`, or written `<dict/>`):
    /// place it in its parent. The root's entries are kept as a list when
    /// [`parse_root_entries`] asked, with an empty stand-in as the root
    /// value so the document completes as usual.
    fn close_dict(&mut self, entries: Vec<(String, Value)>) {
        let is_root = matches!(self.stack.last(), None | Some(Frame::Plist(_)));
        if is_root && self.keep_root_entries {
            self.root_entries = Some(unique_keys(entries));
            self.place(Value::Dictionary(Dictionary::new()));
        } else {
            // A duplicate key keeps its first position and the last value,
            // as the `plist` crate's builder does.
            self.place(Value::Dictionary(entries.into_iter().collect()));
        }
    }

    /// Put a complete value where [`Self::value_position`] allowed it.
    fn place(&mut self, v: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(v),
            Some(Frame::Plist(slot)) => *slot = Some(v),
            Some(Frame::Array(items)) => items.push(v),
            Some(Frame::Dict(entries, key)) => {
                entries.push((key.take().unwrap_or_default(), v));
            }
        }
    }

    /// Remember the first invalid value (see [`Scanner::invalid`]).
    fn invalid(&mut self, at: usize, what: &str) {
        if self.invalid.is_none() {
            self.invalid = Some(PlistError::Invalid(format!("{what} at byte {at}")));
        }
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
        match self.stack.last() {
            None if self.root_seen => return Err(malformed(at, "more than one root value")),
            None => self.root_seen = true,
            Some(Frame::Plist(Some(_))) => {
                return Err(malformed(at, "more than one value in <plist>"));
            }
            Some(Frame::Plist(None) | Frame::Array(_) | Frame::Dict(_, Some(_))) => {}
            Some(Frame::Dict(_, None)) => {
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
                self.stack.push(Frame::Plist(None));
            }
            "array" | "dict" => {
                self.value_position(at)?;
                if self.depth >= self.limits.max_depth {
                    return Err(PlistError::TooDeep {
                        max: self.limits.max_depth,
                    });
                }
                let is_array = name == "array";
                if empty && is_array {
                    self.place(Value::Array(Vec::new()));
                } else if empty {
                    self.close_dict(Vec::new());
                } else {
                    self.depth += 1;
                    self.stack.push(if is_array {
                        Frame::Array(Vec::new())
                    } else {
                        Frame::Dict(Vec::new(), None)
                    });
                }
            }
            "key" => {
                match self.stack.last() {
                    Some(Frame::Dict(_, None)) => {}
                    Some(Frame::Dict(_, Some(_))) => {
                        return Err(PlistError::DanglingKey { offset: at });
                    }
                    _ => return Err(malformed(at, "<key> outside a dictionary")),
                }
                self.count_node()?;
                let key = if empty {
                    String::new()
                } else {
                    self.text(name)?
                };
                if let Some(Frame::Dict(_, slot)) = self.stack.last_mut() {
                    *slot = Some(key);
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
                self.place(Value::Boolean(name == "true"));
            }
            "data" => {
                self.value_position(at)?;
                let data = if empty { Vec::new() } else { self.data()? };
                self.place(Value::Data(data));
            }
            "string" => {
                self.value_position(at)?;
                let s = if empty {
                    String::new()
                } else {
                    self.text(name)?
                };
                self.place(Value::String(s));
            }
            _ => {
                // date, integer, real: text parsed as the `plist` crate does.
                self.value_position(at)?;
                let s = if empty {
                    String::new()
                } else {
                    self.text(name)?
                };
                let v = match name {
                    "integer" => integer(&s).map(Value::Integer),
                    "real" => s.parse::<f64>().ok().map(Value::Real),
                    _ => plist::Date::from_xml_format(&s).ok().map(Value::Date),
                };
                match v {
                    Some(v) => self.place(v),
                    None => {
                        self.invalid(at, name);
                        // A stand-in keeps the structure; the document is refused.
                        self.place(Value::Boolean(false));
                    }
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

    /// Text content of a `key`/`string`/`date`/`integer`/`real` element,
    /// with references resolved (raw otherwise: line ends are kept as sent).
    fn text(&mut self, name: &str) -> Result<String, PlistError> {
        let mut out = String::new();
        loop {
            // Plain text up to the next byte of interest, in one step.
            let start = self.pos;
            let rest = self.b.get(start..).unwrap_or_default();
            let plain = rest
                .iter()
                .position(|&c| matches!(c, b'<' | b'&' | 0))
                .unwrap_or(rest.len());
            self.pos += plain;
            // `<`, `&` and NUL are ASCII, so both ends are character boundaries.
            out.push_str(self.text.get(start..self.pos).unwrap_or_default());
            match self.at(self.pos) {
                None => return Err(self.truncated()),
                Some(b'<') => break,
                Some(b'&') => self.entity(&mut out)?,
                Some(_) => return Err(malformed(self.pos, "NUL character")),
            }
        }
        self.add_decoded(out.len())?;
        self.end_of_text(name)?;
        Ok(out)
    }

    /// An entity or character reference at `pos`, appended to `out`.
    fn entity(&mut self, out: &mut String) -> Result<(), PlistError> {
        let at = self.pos;
        let rest = self.b.get(at + 1..).unwrap_or_default();
        let Some(semi) = rest.iter().take(12).position(|&c| c == b';') else {
            if rest.len() < 12 && !rest.contains(&b'<') {
                return Err(self.truncated());
            }
            return Err(malformed(at, "unterminated entity reference"));
        };
        let body = rest.get(..semi).unwrap_or_default();
        let c = match body {
            b"lt" => '<',
            b"gt" => '>',
            b"amp" => '&',
            b"quot" => '"',
            b"apos" => '\'',
            [b'#', b'x', hex @ ..] => {
                char_ref(hex, 16).ok_or(malformed(at, "bad character reference"))?
            }
            [b'#', dec @ ..] => {
                char_ref(dec, 10).ok_or(malformed(at, "bad character reference"))?
            }
            _ => return Err(malformed(at, "unknown entity")),
        };
        out.push(c);
        self.pos = at + semi + 2;
        Ok(())
    }

    /// Content of a `<data>` element: strict base64 with ASCII whitespace
    /// ignored, checked and decoded in one pass.
    fn data(&mut self) -> Result<Vec<u8>, PlistError> {
        let start = self.pos;
        let rest = self.b.get(start..).unwrap_or_default();
        // The content ends at the first `<`, which is not base64: the
        // decoder stops there and says where (no scan of its own).
        let (out, len) = match base64::decode_until(rest, Some(b'<')) {
            Ok((out, len)) if rest.get(len) == Some(&b'<') => (out, len),
            Ok(_) => return Err(self.truncated()),
            Err(base64::Base64Error::Invalid { offset }) => {
                return Err(PlistError::BadBase64 {
                    offset: start + offset,
                });
            }
            Err(base64::Base64Error::Length) => {
                return Err(match rest.iter().position(|&c| c == b'<') {
                    Some(len) => PlistError::BadBase64 {
                        offset: start + len,
                    },
                    None => self.truncated(),
                });
            }
        };
        self.pos = start + len;
        self.add_decoded(out.len())?;
        self.end_of_text("data")?;
        Ok(out)
    }
}

/// A character reference's digits (no sign, as XML and quick-xml require).
fn char_ref(digits: &[u8], radix: u32) -> Option<char> {
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let mut v = 0u32;
    for &d in digits {
        v = v * radix + char::from(d).to_digit(radix)?;
    }
    // quick-xml (inside the plist crate) refuses U+0000.
    char::from_u32(v).filter(|_| v != 0)
}

/// An `<integer>` as the `plist` crate reads it: `0x` hexadecimal
/// (unsigned), else a signed 64-bit value, else an unsigned one.
fn integer(s: &str) -> Option<Integer> {
    if s.starts_with("0x") {
        let hex = s.trim_start_matches("0x");
        return u64::from_str_radix(hex, 16).ok().map(Integer::from);
    }
    match s.parse::<i64>() {
        Ok(v) => Some(v.into()),
        Err(_) => s.parse::<u64>().ok().map(Integer::from),
    }
}
