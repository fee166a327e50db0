//! The two pieces of JSON this crate speaks, without a JSON dependency.
//!
//! - [`escape_into`]: the inside of a JSON string literal (push bodies, JSON
//!   acknowledgements).
//! - [`flat_object`]: a bounded reader for a flat object of scalar members,
//!   such as an APNs error body `{"reason":"Unregistered","timestamp":1700000000000}`.
//!   Nested objects and arrays are refused, so the reader never recurses.
//! - [`parse`]: a bounded reader for a whole JSON document into a [`Json`]
//!   tree (declarative-management bodies), limited in size, depth and number
//!   of values by [`JsonLimits`]; [`Json::encode`] writes one back.

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
    /// Arrays and objects nest deeper than the limit.
    #[error("JSON nests deeper than {limit} levels")]
    TooDeep {
        /// The depth limit.
        limit: usize,
    },
    /// The document holds more values (members and elements) than the limit.
    #[error("JSON holds more than {limit} values")]
    TooManyValues {
        /// The value limit.
        limit: usize,
    },
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

/// Bounds for [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JsonLimits {
    /// Largest document accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
    /// Most values in one document (every member value and array element).
    pub max_values: usize,
}

with_setters!(JsonLimits {
    with_max_bytes: max_bytes: usize,
    with_max_depth: max_depth: usize,
    with_max_values: max_values: usize,
});

impl From<&super::Limits> for JsonLimits {
    /// The body size, depth and node bounds of the plist guard, applied to JSON.
    fn from(l: &super::Limits) -> Self {
        Self {
            max_bytes: l.max_body_bytes,
            max_depth: l.max_depth,
            max_values: l.max_nodes,
        }
    }
}

impl Default for JsonLimits {
    /// The same numbers as [`super::Limits::default`].
    fn default() -> Self {
        Self::from(&super::Limits::default())
    }
}

/// A JSON value read by [`parse`] or built for [`Json::encode`]. Object
/// members keep their order (a repeated key appears twice).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// A string, number, boolean or null.
    Scalar(Scalar),
    /// An array.
    Array(Vec<Json>),
    /// An object, members in document order.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// A string value.
    pub fn string(s: impl Into<String>) -> Self {
        Self::Scalar(Scalar::String(s.into()))
    }

    /// The first member named `key`, when this is an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Self::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Scalar(Scalar::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The boolean, when this is `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Scalar(Scalar::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// The integer, when this is an integer fitting `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Scalar(Scalar::Integer(i)) => Some(*i),
            _ => None,
        }
    }

    /// The elements, when this is an array.
    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The members, when this is an object.
    pub fn as_object(&self) -> Option<&[(String, Json)]> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Compact JSON text (no whitespace), members in order.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.write_into(&mut out);
        out
    }

    /// Append the compact JSON text of this value to `out`.
    pub fn write_into(&self, out: &mut String) {
        match self {
            Self::Scalar(Scalar::String(s)) => {
                out.push('"');
                escape_into(out, s);
                out.push('"');
            }
            Self::Scalar(Scalar::Integer(i)) => out.push_str(&i.to_string()),
            Self::Scalar(Scalar::Number(n)) => out.push_str(n),
            Self::Scalar(Scalar::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
            Self::Scalar(Scalar::Null) => out.push_str("null"),
            Self::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_into(out);
                }
                out.push(']');
            }
            Self::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('"');
                    escape_into(out, k);
                    out.push_str("\":");
                    v.write_into(out);
                }
                out.push('}');
            }
        }
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Self::string(s)
    }
}

impl From<String> for Json {
    fn from(s: String) -> Self {
        Self::string(s)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Self {
        Self::Scalar(Scalar::Bool(b))
    }
}

impl From<i64> for Json {
    fn from(i: i64) -> Self {
        Self::Scalar(Scalar::Integer(i))
    }
}

/// Read `input` as one JSON document (RFC 8259) within `limits`: at most
/// `max_bytes` bytes, arrays/objects at most `max_depth` deep, at most
/// `max_values` values. The reader recurses only up to `max_depth`.
pub fn parse(input: &[u8], limits: JsonLimits) -> Result<Json, JsonError> {
    if input.len() > limits.max_bytes {
        return Err(JsonError::TooLarge {
            len: input.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(input).map_err(|_| JsonError::NotUtf8)?;
    let mut t = TreeReader {
        r: Reader {
            s: text.as_bytes(),
            pos: 0,
        },
        limits,
        values: 0,
    };
    t.r.ws();
    let value = t.value(0)?;
    t.r.ws();
    if t.r.pos != t.r.s.len() {
        return Err(t.r.err("end of input"));
    }
    Ok(value)
}

struct TreeReader<'a> {
    r: Reader<'a>,
    limits: JsonLimits,
    values: usize,
}

impl TreeReader<'_> {
    fn count(&mut self) -> Result<(), JsonError> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(JsonError::TooManyValues {
                limit: self.limits.max_values,
            });
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        self.count()?;
        match self.r.peek() {
            Some(open @ (b'[' | b'{')) => {
                if depth >= self.limits.max_depth {
                    return Err(JsonError::TooDeep {
                        limit: self.limits.max_depth,
                    });
                }
                self.r.pos += 1;
                self.r.ws();
                if open == b'[' {
                    self.array(depth + 1)
                } else {
                    self.object(depth + 1)
                }
            }
            _ => self.r.scalar().map(Json::Scalar),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, JsonError> {
        let mut items = Vec::new();
        if self.r.peek() == Some(b']') {
            self.r.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.r.ws();
            items.push(self.value(depth)?);
            self.r.ws();
            match self.r.peek() {
                Some(b',') => self.r.pos += 1,
                Some(b']') => {
                    self.r.pos += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.r.err("',' or ']'")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, JsonError> {
        let mut members = Vec::new();
        if self.r.peek() == Some(b'}') {
            self.r.pos += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.r.ws();
            let key = self.r.string()?;
            self.r.ws();
            self.r.expect(b':', "':'")?;
            self.r.ws();
            members.push((key, self.value(depth)?));
            self.r.ws();
            match self.r.peek() {
                Some(b',') => self.r.pos += 1,
                Some(b'}') => {
                    self.r.pos += 1;
                    return Ok(Json::Object(members));
                }
                _ => return Err(self.r.err("',' or '}'")),
            }
        }
    }
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

    #[test]
    fn parses_and_re_encodes_a_nested_document() {
        let text = br#" {"a": [1, -2.5, "x\u00e9", {"b": null}], "c": {}, "d": [], "e": false} "#;
        let v = parse(text, JsonLimits::default()).unwrap();
        assert_eq!(v.get("e").and_then(Json::as_bool), Some(false));
        assert_eq!(
            v.get("a").and_then(Json::as_array).map(|a| a.len()),
            Some(4)
        );
        let enc = v.encode();
        assert_eq!(
            enc,
            r#"{"a":[1,-2.5,"xé",{"b":null}],"c":{},"d":[],"e":false}"#
        );
        assert_eq!(parse(enc.as_bytes(), JsonLimits::default()).unwrap(), v);
    }

    #[test]
    fn tree_reader_enforces_size_depth_and_value_count() {
        let limits = JsonLimits {
            max_bytes: 64,
            max_depth: 3,
            max_values: 5,
        };
        assert!(parse(b"[[[1]]]", limits).is_ok());
        assert_eq!(
            parse(b"[[[[1]]]]", limits),
            Err(JsonError::TooDeep { limit: 3 })
        );
        assert_eq!(
            parse(b"[1,2,3,4,5]", limits),
            Err(JsonError::TooManyValues { limit: 5 })
        );
        assert!(matches!(
            parse(&[b' '; 65], limits),
            Err(JsonError::TooLarge { len: 65, limit: 64 })
        ));
        // A deep prefix is refused at the limit, not by exhausting the stack.
        let deep = vec![b'['; 100_000];
        assert_eq!(
            parse(&deep, JsonLimits::default()),
            Err(JsonError::TooDeep { limit: 128 })
        );
        for bad in [
            &b"[1,]"[..],
            b"{\"a\"}",
            b"[1 2]",
            b"{} {}",
            b"",
            b"{\"a\":1,}",
        ] {
            assert!(parse(bad, JsonLimits::default()).is_err(), "{:?}", bad);
        }
    }
}
