//! Percent-decoding (`%XX` escapes, RFC 3986 §2.1) of URL query components:
//! one byte-level decoder, and the UTF-8 string form on top of it. `+` is
//! kept as `+`; form decoding, where it means a space, is the caller's.

/// Decode `%XX` escapes into bytes; `None` if an escape is malformed (fewer
/// than two characters after `%`, or one that is not a hex digit).
pub fn decode_bytes(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let digit = |at: usize| char::from(*bytes.get(at)?).to_digit(16);
            out.push(u8::try_from(digit(i + 1)? << 4 | digit(i + 2)?).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// Decode `%XX` escapes; `None` if an escape is malformed or the result is not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    String::from_utf8(decode_bytes(s)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_and_plus_stays() {
        assert_eq!(decode("a%20b+c%2Fd"), Some("a b+c/d".into()));
        assert_eq!(decode_bytes("%FF%00x"), Some(vec![0xFF, 0x00, b'x']));
    }

    #[test]
    fn malformed_escape_or_utf8_is_none() {
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%"), None);
        assert_eq!(decode("%FF"), None);
        assert_eq!(decode_bytes("%4"), None);
        // Exactly two hex digits: no sign, as `u8::from_str_radix` would take.
        assert_eq!(decode_bytes("%+1"), None);
        assert_eq!(decode_bytes("%-1"), None);
        assert_eq!(decode_bytes("%1é"), None);
    }
}
