//! Byte fields in serde as a plist `data` object, read back from `data`
//! or from an array of byte values (how serde spells a `Vec<u8>` by
//! default, and how the SQL stores' version 1 records hold bytes). Other
//! formats see `serialize_bytes`: JSON, for one, still writes an array.

use serde::de::{Error, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

/// Serialize `bytes` as bytes (`data` in a plist).
pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(bytes)
}

/// Read bytes written as bytes or as an array of byte values.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    d.deserialize_byte_buf(Bytes)
}

/// The same for a shared buffer (`Arc<[u8]>`), such as a queued command's
/// body.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod shared {
    use std::sync::Arc;

    use serde::Deserializer;

    pub(crate) use super::serialize;

    /// Read bytes written as bytes or as an array of byte values.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[u8]>, D::Error> {
        super::deserialize(d).map(Arc::from)
    }
}

struct Bytes;

impl<'de> Visitor<'de> for Bytes {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("data, or an array of byte values")
    }

    fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // The size hint comes from the input, so it is capped: the vector
        // grows only with the elements actually read.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(byte) = seq.next_element::<u8>()? {
            out.push(byte);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::activation::{CertFingerprint, IssuedIdentity};
    use std::time::{Duration, UNIX_EPOCH};

    fn identity() -> IssuedIdentity {
        IssuedIdentity {
            serial: vec![1, 127, 255],
            fingerprint: CertFingerprint([0; 32]),
            not_after: UNIX_EPOCH + Duration::from_secs(1),
            certificate: vec![0x30, 0x00],
        }
    }

    #[test]
    fn plist_writes_data_and_reads_data_or_integers() {
        let mut out = Vec::new();
        plist::to_writer_binary(&mut out, &identity()).unwrap();
        let value: plist::Value = plist::from_bytes(&out).unwrap();
        let dict = value.as_dictionary().unwrap();
        assert_eq!(
            dict.get("serial").and_then(|v| v.as_data()),
            Some(&[1u8, 127, 255][..])
        );
        assert_eq!(
            plist::from_bytes::<IssuedIdentity>(&out).unwrap(),
            identity()
        );
        let mut dict = dict.clone();
        dict.insert(
            "serial".into(),
            plist::Value::Array(vec![1u64.into(), 127u64.into(), 255u64.into()]),
        );
        let mut old = Vec::new();
        plist::to_writer_binary(&mut old, &dict).unwrap();
        assert_eq!(
            plist::from_bytes::<IssuedIdentity>(&old).unwrap(),
            identity()
        );
        dict.insert("serial".into(), plist::Value::Array(vec![256u64.into()]));
        let mut bad = Vec::new();
        plist::to_writer_binary(&mut bad, &dict).unwrap();
        assert!(
            plist::from_bytes::<IssuedIdentity>(&bad).is_err(),
            "256 is no byte"
        );
    }

    #[test]
    fn json_keeps_its_arrays() {
        let json = serde_json::to_string(&identity()).unwrap();
        assert!(json.contains("\"serial\":[1,127,255]"), "{json}");
        assert_eq!(
            serde_json::from_str::<IssuedIdentity>(&json).unwrap(),
            identity()
        );
    }
}
