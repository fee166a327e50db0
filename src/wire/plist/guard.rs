//! The guard: [`decode`] and [`decode_dict`] check size, byte-order mark and
//! encoding, then read the document within [`Limits`]: XML with the crate's
//! own one-pass parser (`xml`), which checks and builds the value together;
//! binary with the `binary` scanner first, and only then the `plist` crate.

use std::io::Cursor;

use plist::Value;

use super::PlistError;
use super::{binary, xml};
use crate::wire::Limits;

/// Decode an untrusted plist within `limits`.
///
/// XML is always accepted; binary plists only if `limits.allow_binary_plist`.
/// See the [module documentation](super) for what is checked.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Value, PlistError> {
    match checked_document(bytes, limits)? {
        Document::Xml(text) => xml::parse(text, limits),
        Document::Binary(value) => Ok(value),
    }
}

/// [`decode_dict`], as the dictionary's entries in document order with
/// unique keys (see `xml::parse_root_entries`): what a caller taking a known
/// set of fields out of the root wants, with no hash map built for it.
pub(crate) fn decode_dict_entries(
    bytes: &[u8],
    limits: &Limits,
) -> Result<Vec<(String, Value)>, PlistError> {
    match checked_document(bytes, limits)? {
        Document::Xml(text) => xml::parse_root_entries(text, limits),
        Document::Binary(Value::Dictionary(d)) => Ok(d.into_iter().collect()),
        Document::Binary(_) => Err(PlistError::UnexpectedRoot {
            expected: "dictionary",
        }),
    }
}

/// A document past the guard's checks: XML text still to parse, or a binary
/// plist already decoded.
enum Document<'a> {
    Xml(&'a str),
    Binary(Value),
}

/// Size, byte-order mark and encoding checks; a binary plist (if allowed)
/// passes its scanner and is decoded here.
fn checked_document<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Document<'a>, PlistError> {
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
            .map(Document::Binary)
            .map_err(|e| PlistError::Invalid(e.to_string()));
    }
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF])
        || bytes.starts_with(&[0xFE, 0xFF])
        || bytes.starts_with(&[0xFF, 0xFE])
    {
        return Err(PlistError::ByteOrderMark);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| PlistError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    Ok(Document::Xml(text))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
