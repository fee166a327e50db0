//! Payload UUIDs: random version 4, formatted upper-case as Apple's tools do.

use std::fmt;

/// A UUID for `PayloadUUID` and the references to it.
///
/// The crate is sans-IO: UUIDs come from the caller ([`PayloadUuid::from_bytes`],
/// [`PayloadUuid::parse`]) or from an injected RNG ([`PayloadUuid::random`]).
/// Displayed as upper-case `XXXXXXXX-XXXX-4XXX-YXXX-XXXXXXXXXXXX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PayloadUuid([u8; 16]);

impl PayloadUuid {
    /// A random (version 4, RFC 9562 variant) UUID drawn from `rng`.
    pub fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Self(bytes)
    }

    /// A UUID with exactly these bytes (no version bits are changed).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parse the hyphenated hex form (either case); `None` if malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let groups: Vec<&str> = text.split('-').collect();
        if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
            return None;
        }
        let hex: String = groups.concat();
        if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2)?;
            *b = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Display for PayloadUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl From<PayloadUuid> for String {
    fn from(u: PayloadUuid) -> Self {
        u.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_round_trip_upper_case() {
        let u = PayloadUuid::parse("cbdc6238-feec-4171-8784-98e576bbb814").unwrap();
        assert_eq!(u.to_string(), "CBDC6238-FEEC-4171-8784-98E576BBB814");
        assert_eq!(PayloadUuid::parse(&u.to_string()), Some(u));
    }

    #[test]
    fn malformed_is_none() {
        for bad in [
            "",
            "CBDC6238FEEC4171878498E576BBB814",
            "CBDC6238-FEEC-4171-8784-98E576BBB81",
            "CBDC6238-FEEC-4171-8784-98E576BBB81G",
            "+BDC6238-FEEC-4171-8784-98E576BBB814",
            "CBDC6238-FEEC-4171-8784-98E576BBB814-",
            "ÄBDC623-FEEC-4171-8784-98E576BBB814",
        ] {
            assert_eq!(PayloadUuid::parse(bad), None, "{bad}");
        }
    }
}
