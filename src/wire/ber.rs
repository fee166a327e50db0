//! Bounded BER reader and BER → DER normaliser.
//!
//! Apple clients send CMS in BER: indefinite lengths, constructed (chunked)
//! OCTET STRINGs, non-canonical BOOLEANs. RustCrypto's `der` only accepts DER,
//! so every BER message is first walked here within [`BerLimits`] and then
//! re-encoded as DER for typed decoding. Signatures are never checked over the
//! re-encoding: [`Element`] keeps a slice of the *original* bytes of every
//! element so verifiers can hash exactly what the sender signed.

use thiserror::Error;

/// Bounds applied while walking BER input. Start from
/// [`BerLimits::default`] and change what you need with the `with_*`
/// methods (or by assigning the fields): more bounds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BerLimits {
    /// Maximum nesting depth of constructed elements (default 64, as fleet's guard).
    pub max_depth: usize,
    /// Maximum number of elements in one message (default 100 000).
    pub max_elements: usize,
    /// Maximum input size in bytes (default 4 MiB).
    pub max_size: usize,
}

impl Default for BerLimits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_elements: 100_000,
            max_size: 4 * 1024 * 1024,
        }
    }
}

impl BerLimits {
    /// These limits with [`max_depth`](Self::max_depth) set to `n`.
    pub const fn with_max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }

    /// These limits with [`max_elements`](Self::max_elements) set to `n`.
    pub const fn with_max_elements(mut self, n: usize) -> Self {
        self.max_elements = n;
        self
    }

    /// These limits with [`max_size`](Self::max_size) set to `n`.
    pub const fn with_max_size(mut self, n: usize) -> Self {
        self.max_size = n;
        self
    }
}

/// What was wrong with a BER encoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BerError {
    /// The input ended inside an element.
    #[error("BER truncated at offset {offset}")]
    Truncated {
        /// Byte offset where more data was expected.
        offset: usize,
    },
    /// Nesting deeper than [`BerLimits::max_depth`].
    #[error("BER nesting deeper than {limit}")]
    TooDeep {
        /// The configured limit.
        limit: usize,
    },
    /// More elements than [`BerLimits::max_elements`].
    #[error("BER has more than {limit} elements")]
    TooManyElements {
        /// The configured limit.
        limit: usize,
    },
    /// Input larger than [`BerLimits::max_size`].
    #[error("BER input of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Input size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A length that is reserved, longer than 4 bytes, or an indefinite length on a primitive.
    #[error("invalid BER length at offset {offset}")]
    InvalidLength {
        /// Byte offset of the length octets.
        offset: usize,
    },
    /// A tag X.690 does not allow: a number over 28 bits, or a high-form
    /// tag with a leading zero group or a number below 31.
    #[error("invalid BER tag at offset {offset}")]
    InvalidTag {
        /// Byte offset of the tag.
        offset: usize,
    },
    /// An end-of-contents marker where an element was expected.
    #[error("unexpected end-of-contents at offset {offset}")]
    UnexpectedEoc {
        /// Byte offset of the marker.
        offset: usize,
    },
    /// Bytes after the single top-level element.
    #[error("{count} trailing bytes after the BER element")]
    TrailingData {
        /// Number of trailing bytes.
        count: usize,
    },
    /// A segment of a constructed string is not of the string's own type.
    #[error("constructed string segment of wrong type at offset {offset}")]
    BadStringSegment {
        /// Byte offset of the segment.
        offset: usize,
    },
}

/// Tag class of an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// UNIVERSAL
    Universal,
    /// APPLICATION
    Application,
    /// context-specific (`[n]`)
    Context,
    /// PRIVATE
    Private,
}

/// One BER element, borrowed from the original input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element<'a> {
    /// Tag class.
    pub class: Class,
    /// Whether the constructed bit is set.
    pub constructed: bool,
    /// Tag number.
    pub number: u32,
    /// The whole original encoding: tag, length, contents and (if indefinite) the end-of-contents.
    pub raw: &'a [u8],
    /// The original content octets (without an end-of-contents marker).
    pub contents: &'a [u8],
    /// Whether the length was indefinite.
    pub indefinite: bool,
    /// Number of tag octets at the start of `raw`.
    tag_len: usize,
    /// Absolute offset of `contents` in the top-level input (for error messages).
    offset: usize,
    /// Depth of this element (top level = 0).
    depth: usize,
}

/// Universal tag numbers of the string types that BER may send constructed.
const STRING_TAGS: &[u32] = &[3, 4, 12, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 30];

struct Walker<'l> {
    limits: &'l BerLimits,
    elements: usize,
    /// Descend into definite-length constructed elements to validate them.
    /// Off when listing the children of an already validated element: its
    /// whole subtree was checked when it was parsed, so one level suffices
    /// (otherwise walking a tree top-down costs O(size × depth)).
    validate: bool,
}

impl Walker<'_> {
    /// Parse one element starting at `input[0]`; `base` is its absolute offset.
    fn element<'a>(
        &mut self,
        input: &'a [u8],
        base: usize,
        depth: usize,
    ) -> Result<Element<'a>, BerError> {
        if depth > self.limits.max_depth {
            return Err(BerError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(BerError::TooManyElements {
                limit: self.limits.max_elements,
            });
        }
        let first = *input.first().ok_or(BerError::Truncated { offset: base })?;
        let class = match first >> 6 {
            0 => Class::Universal,
            1 => Class::Application,
            2 => Class::Context,
            _ => Class::Private,
        };
        let constructed = first & 0x20 != 0;
        let mut pos = 1usize;
        let mut number = u32::from(first & 0x1f);
        if number == 0x1f {
            number = 0;
            loop {
                let b = *input
                    .get(pos)
                    .ok_or(BerError::Truncated { offset: base + pos })?;
                pos += 1;
                // X.690 8.1.2.4.2: the first subsequent octet is never 0x80
                // (no leading zero bits), and at most 28 bits of tag number.
                if number > (u32::MAX >> 7) || pos > 5 || (pos == 2 && b == 0x80) {
                    return Err(BerError::InvalidTag { offset: base });
                }
                number = (number << 7) | u32::from(b & 0x7f);
                if b & 0x80 == 0 {
                    break;
                }
            }
            // X.690 8.1.2.2: numbers 0 to 30 only in the one-octet form
            // (anything else would pass through to "DER" that is not).
            if number < 0x1f {
                return Err(BerError::InvalidTag { offset: base });
            }
        }
        let tag_len = pos;
        let len_byte = *input
            .get(pos)
            .ok_or(BerError::Truncated { offset: base + pos })?;
        pos += 1;
        if first == 0 && len_byte == 0 {
            return Err(BerError::UnexpectedEoc { offset: base });
        }
        if class == Class::Universal && number == 0 {
            // Universal tag 0 is reserved for end-of-contents; any other use
            // (e.g. `00 81 00`) would re-encode as an end-of-contents marker.
            return Err(BerError::InvalidTag { offset: base });
        }
        let definite_len = match len_byte {
            0x80 => None,
            l if l < 0x80 => Some(usize::from(l)),
            0x81..=0x84 => {
                let n = usize::from(len_byte & 0x7f);
                let bytes = input
                    .get(pos..pos + n)
                    .ok_or(BerError::Truncated { offset: base + pos })?;
                pos += n;
                Some(
                    bytes
                        .iter()
                        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
                )
            }
            _ => {
                return Err(BerError::InvalidLength {
                    offset: base + pos - 1,
                });
            }
        };
        match definite_len {
            Some(len) => {
                let end = pos
                    .checked_add(len)
                    .filter(|end| *end <= input.len())
                    .ok_or(BerError::Truncated {
                        offset: base + input.len(),
                    })?;
                let (Some(raw), Some(contents)) = (input.get(..end), input.get(pos..end)) else {
                    return Err(BerError::Truncated {
                        offset: base + input.len(),
                    });
                };
                let el = Element {
                    class,
                    constructed,
                    number,
                    raw,
                    contents,
                    indefinite: false,
                    tag_len,
                    offset: base + pos,
                    depth,
                };
                if constructed && self.validate {
                    // Validate (and count) the children now so that every
                    // Element handed out is known to be well formed (without
                    // keeping them: callers list the levels they read).
                    self.each_child(&el, drop)?;
                }
                Ok(el)
            }
            None => {
                if !constructed {
                    return Err(BerError::InvalidLength {
                        offset: base + tag_len,
                    });
                }
                // Walk children until the end-of-contents marker.
                let mut cur = pos;
                loop {
                    let rest = input.get(cur..).unwrap_or_default();
                    match rest {
                        [0, 0, ..] => break,
                        [_, _, ..] => {}
                        _ => {
                            return Err(BerError::Truncated {
                                offset: base + input.len(),
                            });
                        }
                    }
                    let child = self.element(rest, base + cur, depth + 1)?;
                    cur += child.raw.len();
                }
                let (Some(raw), Some(contents)) = (input.get(..cur + 2), input.get(pos..cur))
                else {
                    return Err(BerError::Truncated {
                        offset: base + input.len(),
                    });
                };
                Ok(Element {
                    class,
                    constructed,
                    number,
                    raw,
                    contents,
                    indefinite: true,
                    tag_len,
                    offset: base + pos,
                    depth,
                })
            }
        }
    }

    /// Parse the children of `el` in order, handing each to `f`.
    fn each_child<'a>(
        &mut self,
        el: &Element<'a>,
        mut f: impl FnMut(Element<'a>),
    ) -> Result<(), BerError> {
        let mut cur = 0usize;
        while cur < el.contents.len() {
            let rest = el.contents.get(cur..).unwrap_or_default();
            let child = self.element(rest, el.offset + cur, el.depth + 1)?;
            cur += child.raw.len();
            f(child);
        }
        Ok(())
    }
}

impl<'a> Element<'a> {
    /// Parse exactly one element that must span all of `input`.
    pub fn parse(input: &'a [u8], limits: &BerLimits) -> Result<Self, BerError> {
        let (el, rest) = Self::parse_prefix(input, limits)?;
        if !rest.is_empty() {
            return Err(BerError::TrailingData { count: rest.len() });
        }
        Ok(el)
    }

    /// Parse one element from the start of `input`, returning it and the remaining bytes.
    pub fn parse_prefix(input: &'a [u8], limits: &BerLimits) -> Result<(Self, &'a [u8]), BerError> {
        if input.len() > limits.max_size {
            return Err(BerError::TooLarge {
                size: input.len(),
                limit: limits.max_size,
            });
        }
        let mut walker = Walker {
            limits,
            elements: 0,
            validate: true,
        };
        let el = walker.element(input, 0, 0)?;
        Ok((el, input.get(el.raw.len()..).unwrap_or_default()))
    }

    /// The children of a constructed element (empty for a primitive one).
    ///
    /// The element was validated when it was parsed, so this only fails if the
    /// caller built an element from another limit set; limits are the defaults here.
    pub fn children(&self) -> Result<Vec<Element<'a>>, BerError> {
        let mut out = Vec::new();
        self.for_each_child(|child| out.push(child))?;
        Ok(out)
    }

    /// [`Self::children`] handed to `f` one by one, without collecting them.
    fn for_each_child(&self, f: impl FnMut(Element<'a>)) -> Result<(), BerError> {
        if !self.constructed {
            return Ok(());
        }
        // The subtree was validated (and counted) when it was parsed.
        let limits = BerLimits {
            max_depth: usize::MAX,
            max_elements: usize::MAX,
            max_size: usize::MAX,
        };
        Walker {
            limits: &limits,
            elements: 0,
            validate: false,
        }
        .each_child(self, f)
    }

    /// True if this element has the given class and number.
    pub fn is(&self, class: Class, number: u32) -> bool {
        self.class == class && self.number == number
    }

    /// The value octets of a string element, concatenating the segments of a
    /// constructed string (RFC 5652 §5.4: the message digest covers the value
    /// octets, not the chunking). For a primitive element these are its contents.
    pub fn string_value(&self) -> Result<Vec<u8>, BerError> {
        let mut out = Vec::with_capacity(self.contents.len());
        self.collect_segments(&mut out)?;
        Ok(out)
    }

    fn collect_segments(&self, out: &mut Vec<u8>) -> Result<(), BerError> {
        if !self.constructed {
            out.extend_from_slice(self.contents);
            return Ok(());
        }
        for seg in self.children()? {
            // Segments of a universal string carry its tag; segments of an
            // IMPLICIT-tagged string (e.g. `[0] IMPLICIT OCTET STRING`) are
            // OCTET STRINGs.
            let expected = if self.class == Class::Universal {
                self.number
            } else {
                4
            };
            if !seg.is(Class::Universal, expected) {
                return Err(BerError::BadStringSegment { offset: seg.offset });
            }
            seg.collect_segments(out)?;
        }
        Ok(())
    }

    /// The DER encoding of this element (see [`to_der`]).
    pub fn to_der(&self) -> Result<Vec<u8>, BerError> {
        // DER comes back unchanged: check instead of re-encoding (one walk,
        // no allocation per element).
        if self.is_der()? {
            return Ok(self.raw.to_vec());
        }
        self.der_encoding()
    }

    /// The re-encoding [`Self::to_der`] falls back to for BER.
    fn der_encoding(&self) -> Result<Vec<u8>, BerError> {
        let mut out = Vec::with_capacity(self.raw.len());
        self.write_der(&mut out)?;
        Ok(out)
    }

    /// Whether `write_der` would reproduce `raw`: definite minimal lengths,
    /// no constructed strings, BOOLEANs of `0x00`/`0xFF`, SET elements in
    /// order, throughout.
    fn is_der(&self) -> Result<bool, BerError> {
        let minimal_header = self.tag_len + len_octets(self.contents.len());
        if self.indefinite || self.raw.len() != minimal_header + self.contents.len() {
            return Ok(false);
        }
        if !self.constructed {
            let bad_boolean = self.is(Class::Universal, 1)
                && self.contents.len() == 1
                && !matches!(self.contents.first(), Some(0 | 0xff));
            return Ok(!bad_boolean);
        }
        if self.class == Class::Universal && STRING_TAGS.contains(&self.number) {
            return Ok(false);
        }
        let is_set = self.is(Class::Universal, 17);
        let mut der = Ok(true);
        let mut previous: Option<&[u8]> = None;
        self.for_each_child(|child| {
            if !matches!(der, Ok(true)) {
                return;
            }
            // SET: DER orders the encodings.
            if is_set && previous.is_some_and(|p| p > child.raw) {
                der = Ok(false);
            }
            previous = Some(child.raw);
            if matches!(der, Ok(true)) {
                der = child.is_der();
            }
        })?;
        der
    }

    fn write_der(&self, out: &mut Vec<u8>) -> Result<(), BerError> {
        let tag = self.raw.get(..self.tag_len).unwrap_or_default();
        if !self.constructed {
            out.extend_from_slice(tag);
            if self.is(Class::Universal, 1) && self.contents.len() == 1 {
                // BOOLEAN: DER says TRUE is 0xFF.
                write_len(out, 1);
                out.push(if self.contents.first() == Some(&0) {
                    0
                } else {
                    0xff
                });
            } else {
                write_len(out, self.contents.len());
                out.extend_from_slice(self.contents);
            }
            return Ok(());
        }
        if self.class == Class::Universal && STRING_TAGS.contains(&self.number) {
            let value = if self.number == 3 {
                self.bit_string_value()?
            } else {
                self.string_value()?
            };
            if let Some((first, rest)) = tag.split_first() {
                out.push(first & !0x20);
                out.extend_from_slice(rest);
            }
            write_len(out, value.len());
            out.extend_from_slice(&value);
            return Ok(());
        }
        let mut parts = Vec::new();
        for child in self.children()? {
            parts.push(child.der_encoding()?);
        }
        if self.is(Class::Universal, 17) {
            // SET / SET OF: DER orders the encodings.
            parts.sort();
        }
        out.extend_from_slice(tag);
        write_len(out, parts.iter().map(Vec::len).sum());
        for p in parts {
            out.extend_from_slice(&p);
        }
        Ok(())
    }

    /// Constructed BIT STRING: each segment starts with an unused-bits octet;
    /// only the last may be non-zero.
    fn bit_string_value(&self) -> Result<Vec<u8>, BerError> {
        let segs = self.children()?;
        let mut bits = Vec::new();
        let mut unused = 0u8;
        for seg in &segs {
            if !seg.is(Class::Universal, 3) || seg.constructed {
                return Err(BerError::BadStringSegment { offset: seg.offset });
            }
            let (first, rest) = seg
                .contents
                .split_first()
                .ok_or(BerError::BadStringSegment { offset: seg.offset })?;
            unused = *first;
            bits.extend_from_slice(rest);
        }
        let mut out = Vec::with_capacity(bits.len() + 1);
        out.push(unused);
        out.extend_from_slice(&bits);
        Ok(out)
    }
}

/// DER-encode one element with a single-octet `tag` (e.g. `0x30` SEQUENCE,
/// `0xA0` `[0]` constructed) around `contents`, using the minimal length form.
pub fn encode_tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    out.push(tag);
    write_len(&mut out, contents.len());
    out.extend_from_slice(contents);
    out
}

/// How many octets `write_len` uses for `len`.
fn len_octets(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        1 + len.to_be_bytes().iter().skip_while(|b| **b == 0).count()
    }
}

fn write_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8); // fits: checked above
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8); // at most 8
        out.extend_from_slice(bytes.get(skip..).unwrap_or_default());
    }
}

/// Normalise one BER element (spanning all of `input`) to DER, within `limits`.
///
/// Indefinite lengths become definite, constructed strings become primitive,
/// BOOLEAN TRUE becomes `0xFF`, SET elements are sorted, long-form lengths are
/// minimal. DER input comes back byte-for-byte unchanged.
pub fn to_der(input: &[u8], limits: &BerLimits) -> Result<Vec<u8>, BerError> {
    Element::parse(input, limits)?.to_der()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_and_chunked_become_der() {
        // SEQUENCE(indef) { OCTET STRING constructed(indef) { "ab", "c" }, BOOLEAN 0x01 }
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0x00, 0x00, 0x01,
            0x01, 0x01, 0x00, 0x00,
        ];
        let der = to_der(&ber, &BerLimits::default()).unwrap();
        assert_eq!(
            der,
            [0x30, 0x08, 0x04, 0x03, b'a', b'b', b'c', 0x01, 0x01, 0xff]
        );
    }

    /// `to_der`'s shortcut for DER input gives exactly what re-encoding
    /// gives, on DER and on each kind of BER it normalises, and on every
    /// DER/BER vector of the test suite.
    #[test]
    fn der_shortcut_matches_the_re_encoding() {
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![0x30, 0x03, 0x01, 0x01, 0xff],       // DER BOOLEAN TRUE
            vec![0x30, 0x03, 0x01, 0x01, 0x01],       // BER BOOLEAN TRUE
            vec![0x30, 0x81, 0x03, 0x01, 0x01, 0x00], // long form, not minimal
            vec![0x30, 0x80, 0x05, 0x00, 0x00, 0x00], // indefinite
            vec![0x24, 0x06, 0x04, 0x01, 0x61, 0x04, 0x01, 0x62], // constructed string
            vec![0x31, 0x06, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01], // unsorted SET
            vec![0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02], // sorted SET
            vec![0x23, 0x04, 0x03, 0x02, 0x00, 0x61], // constructed BIT STRING
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
        for sub in ["signature", "ota", "scep", "certs", "profile"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for e in entries {
                let path = e.unwrap().path();
                if matches!(
                    path.extension().and_then(|x| x.to_str()),
                    Some("der" | "p7" | "p7m" | "cer" | "crt")
                ) {
                    inputs.push(std::fs::read(path).unwrap());
                }
            }
        }
        assert!(inputs.len() > 12, "vectors found: {}", inputs.len());
        for input in &inputs {
            let Ok(el) = Element::parse(input, &BerLimits::default()) else {
                continue;
            };
            let slow = el.der_encoding();
            assert_eq!(el.to_der(), slow, "{input:02x?}");
            if let Ok(der) = slow {
                assert_eq!(el.is_der().unwrap(), der == el.raw, "{input:02x?}");
            }
        }
    }

    #[test]
    fn der_is_unchanged() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0x07];
        assert_eq!(to_der(&der, &BerLimits::default()).unwrap(), der);
    }

    #[test]
    fn set_is_sorted() {
        let ber = [0x31, 0x06, 0x02, 0x01, 0x09, 0x02, 0x01, 0x01];
        let der = to_der(&ber, &BerLimits::default()).unwrap();
        assert_eq!(der, [0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x09]);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut ber = Vec::new();
        for _ in 0..100 {
            ber.extend_from_slice(&[0x30, 0x80]);
        }
        for _ in 0..100 {
            ber.extend_from_slice(&[0x00, 0x00]);
        }
        assert_eq!(
            to_der(&ber, &BerLimits::default()),
            Err(BerError::TooDeep { limit: 64 })
        );
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let limits = BerLimits::default();
        assert!(matches!(
            to_der(&[0x30, 0x80, 0x04], &limits),
            Err(BerError::Truncated { .. })
        ));
        assert!(matches!(
            to_der(&[0x04, 0x85, 1, 2, 3, 4, 5], &limits),
            Err(BerError::InvalidLength { .. })
        ));
        assert!(matches!(
            to_der(&[0x04, 0x80, 0, 0], &limits),
            Err(BerError::InvalidLength { .. })
        ));
        assert!(matches!(
            to_der(&[0x04, 0x01, 1, 9], &limits),
            Err(BerError::TrailingData { count: 1 })
        ));
        assert!(matches!(
            to_der(&[], &limits),
            Err(BerError::Truncated { .. })
        ));
        assert!(matches!(
            to_der(&[0x00, 0x00], &limits),
            Err(BerError::UnexpectedEoc { .. })
        ));
        assert!(matches!(
            to_der(&[0x24, 0x03, 0x02, 0x01, 0x00], &limits),
            Err(BerError::BadStringSegment { .. })
        ));
    }

    #[test]
    fn reserved_tag_zero_is_refused() {
        // Found by fuzzing: `00 81 00` is tag 0 with a non-minimal zero length,
        // which DER would write as an end-of-contents marker.
        let ber = [0x30, 0x80, 0x00, 0x81, 0x00, 0x00, 0x00];
        assert!(matches!(
            to_der(&ber, &BerLimits::default()),
            Err(BerError::InvalidTag { offset: 2 })
        ));
        let fuzz = [
            0x6a, 0x80, 0x03, 0x00, 0x92, 0x00, 0x2d, 0x80, 0x01, 0x00, 0x80, 0x03, 0x01, 0x00,
            0x06, 0x00, 0x81, 0x00, 0x06, 0x00, 0x81, 0x81, 0x00, 0x06, 0x00, 0x81, 0x00, 0x00,
            0x00, 0x00, 0x00,
        ];
        // The fuzzer's input: refused at its first reserved tag 0 (`00 81 00`
        // at byte 15), not re-encoded into something else.
        let got = to_der(&fuzz, &BerLimits::default());
        assert!(
            matches!(got, Err(BerError::InvalidTag { offset: 15 })),
            "{got:?}"
        );
    }

    #[test]
    fn original_bytes_are_kept() {
        let ber = [0x30, 0x80, 0x04, 0x01, 0x41, 0x00, 0x00];
        let el = Element::parse(&ber, &BerLimits::default()).unwrap();
        assert!(el.indefinite);
        assert_eq!(el.raw, &ber);
        let kids = el.children().unwrap();
        assert_eq!(kids.len(), 1);
        assert_eq!(kids[0].raw, &[0x04, 0x01, 0x41]);
    }
}
