//! The two pieces of JSON this crate speaks, without a JSON dependency.
//!
//! - [`escape_into`]: the inside of a JSON string literal (push bodies, JSON
//!   acknowledgements).
//! - [`flat_object`]: a bounded reader for a flat object of scalar members,
//!   such as an APNs error body `{"reason":"Unregistered","timestamp":1700000000000}`.
//!   Nested objects and arrays are refused, so the reader never recurses.

use thiserror::Error;

/// Append `s` as the inside of a JSON string literal (RFC 8259 §7).
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str("\\u00");
                out.push_str(&crate::wire::hex::lower(&[c as u8])); // c < 0x20
            }
            c => out.push(c),
        }
    }
}

/// A scalar JSON value of a flat object.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Scalar {
    /// A string, unescaped.
    String(String),
    /// A number that is an integer fitting `i64`.
    Integer(i64),
    /// Any other number (fraction, exponent or out of `i64` range), as written.
    Number(String),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// Why a flat JSON object was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The input is longer than the caller's limit.
    #[error("JSON body of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The input length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The input is not valid UTF-8.
    #[error("JSON body is not UTF-8")]
    NotUtf8,
    /// The input is not a flat JSON object; the text names what was expected.
    #[error("invalid JSON at byte {at}: expected {expected}")]
    Syntax {
        /// Byte offset of the problem.
        at: usize,
        /// What the reader expected there.
        expected: &'static str,
    },
    /// A member holds an object or an array.
    #[error("JSON member {0:?} is nested (only scalar members are accepted)")]
    Nested(String),
}

/// Read `input` as one JSON object whose members are all scalars, in order
/// (a repeated key appears twice). At most `limit` bytes are accepted.
pub fn flat_object(input: &[u8], limit: usize) -> Result<Vec<(String, Scalar)>, JsonError> {
    if input.len() > limit {
        return Err(JsonError::TooLarge {
            len: input.len(),
            limit,
        });
    }
    let text = std::str::from_utf8(input).map_err(|_| JsonError::NotUtf8)?;
    let mut r = Reader {
        s: text.as_bytes(),
        pos: 0,
    };
    let mut members = Vec::new();
    r.ws();
    r.expect(b'{', "'{'")?;
    r.ws();
    if r.peek() == Some(b'}') {
        r.pos += 1;
    } else {
        loop {
            r.ws();
            let key = r.string()?;
            r.ws();
            r.expect(b':', "':'")?;
            r.ws();
            let value = match r.peek() {
                Some(b'{') | Some(b'[') => return Err(JsonError::Nested(key)),
                _ => r.scalar()?,
            };
            members.push((key, value));
            r.ws();
            match r.peek() {
                Some(b',') => r.pos += 1,
                Some(b'}') => {
                    r.pos += 1;
                    break;
                }
                _ => return Err(r.err("',' or '}'")),
            }
        }
    }
    r.ws();
    if r.pos != r.s.len() {
        return Err(r.err("end of input"));
    }
    Ok(members)
}

struct Reader<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn err(&self, expected: &'static str) -> JsonError {
        JsonError::Syntax {
            at: self.pos,
            expected,
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    fn literal(&mut self, word: &'static str, value: Scalar) -> Result<Scalar, JsonError> {
        let end = self.pos + word.len();
        if self.s.get(self.pos..end) == Some(word.as_bytes()) {
            self.pos = end;
            Ok(value)
        } else {
            Err(self.err(word))
        }
    }

    fn scalar(&mut self) -> Result<Scalar, JsonError> {
        match self.peek() {
            Some(b'"') => self.string().map(Scalar::String),
            Some(b't') => self.literal("true", Scalar::Bool(true)),
            Some(b'f') => self.literal("false", Scalar::Bool(false)),
            Some(b'n') => self.literal("null", Scalar::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err("a value")),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Scalar, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let n = self.digits();
        if n == 0 || (n > 1 && self.s.get(int_start) == Some(&b'0')) {
            return Err(self.err("a number"));
        }
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            integral = false;
            if self.digits() == 0 {
                return Err(self.err("a fraction digit"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            integral = false;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("an exponent digit"));
            }
        }
        let text = self
            .s
            .get(start..self.pos)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default();
        if integral && let Ok(i) = text.parse::<i64>() {
            return Ok(Scalar::Integer(i));
        }
        Ok(Scalar::Number(text.to_owned()))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.err("four hex digits"))?;
            v = (v << 4) | d;
            self.pos += 1;
        }
        Ok(v)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.expect(b'"', "'\"'")?;
        let mut out = Vec::new();
        loop {
            let b = self.peek().ok_or_else(|| self.err("closing '\"'"))?;
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or_else(|| self.err("an escape"))?;
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(self.err("a valid escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0x00..=0x1F => return Err(self.err("no control character in a string")),
                b => out.push(b),
            }
        }
        // The input is UTF-8 and escapes were encoded as UTF-8.
        String::from_utf8(out).map_err(|_| JsonError::NotUtf8)
    }

    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            self.expect(b'\\', "a low surrogate escape")?;
            self.expect(b'u', "a low surrogate escape")?;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.err("a low surrogate"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.err("a Unicode scalar value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        let mut s = String::new();
        escape_into(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "a\\\"b\\\\c\\nd\\u0001é");
    }

    #[test]
    fn reads_an_apns_error_body() {
        let m = flat_object(
            br#" {"reason" : "Unregistered", "timestamp": 1700000000123} "#,
            4096,
        )
        .unwrap();
        assert_eq!(
            m,
            vec![
                ("reason".into(), Scalar::String("Unregistered".into())),
                ("timestamp".into(), Scalar::Integer(1_700_000_000_123)),
            ]
        );
    }

    #[test]
    fn unescapes_strings_and_keeps_odd_numbers() {
        let m = flat_object(
            br#"{"a":"x\"\u00e9\ud83d\ude00\n","b":-1.5e3,"c":null,"d":true,"e":99999999999999999999}"#,
            4096,
        )
        .unwrap();
        assert_eq!(m[0].1, Scalar::String("x\"é😀\n".into()));
        assert_eq!(m[1].1, Scalar::Number("-1.5e3".into()));
        assert_eq!(m[2].1, Scalar::Null);
        assert_eq!(m[3].1, Scalar::Bool(true));
        assert_eq!(m[4].1, Scalar::Number("99999999999999999999".into()));
        assert_eq!(flat_object(b"{}", 2).unwrap(), vec![]);
    }

    #[test]
    fn refuses_what_is_not_a_flat_object() {
        assert!(matches!(
            flat_object(b"{\"a\":1}", 3),
            Err(JsonError::TooLarge { len: 7, limit: 3 })
        ));
        assert_eq!(
            flat_object(br#"{"a":{"b":1}}"#, 100),
            Err(JsonError::Nested("a".into()))
        );
        for bad in [
            &b""[..],
            b"[]",
            b"{\"a\" 1}",
            b"{\"a\":1,}",
            b"{\"a\":01}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":1} x",
            b"{\"a\":tru}",
            b"{\"a\":\"open",
        ] {
            assert!(flat_object(bad, 100).is_err(), "{:?}", bad);
        }
        assert_eq!(flat_object(b"{\"\xff\":1}", 100), Err(JsonError::NotUtf8));
    }
}
