//! Hex encoding: the one helper behind every fingerprint, serial number,
//! digest prefix and device token the crate prints or puts in a URL.

const LOWER: &[u8; 16] = b"0123456789abcdef";
const UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn encode(bytes: &[u8], digits: &[u8; 16]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0F] {
            out.push(char::from(
                *digits.get(usize::from(nibble)).unwrap_or(&b'0'),
            ));
        }
    }
    out
}

/// `bytes` as lower-case hex, two digits a byte (`[0xAB, 0x01]` → `"ab01"`).
pub fn lower(bytes: &[u8]) -> String {
    encode(bytes, LOWER)
}

/// `bytes` as upper-case hex, two digits a byte (`[0xAB, 0x01]` → `"AB01"`).
pub fn upper(bytes: &[u8]) -> String {
    encode(bytes, UPPER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_both_cases() {
        let all: Vec<u8> = (0..=255).collect();
        let expected: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(lower(&all), expected);
        assert_eq!(upper(&all), expected.to_ascii_uppercase());
        assert_eq!(lower(&[]), "");
    }
}
