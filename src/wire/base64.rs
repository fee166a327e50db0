//! Strict standard base64 (RFC 4648 alphabet, `=` padding), written once for
//! the crate: plist `<data>` and the base64 of CMS and certificates
//! (`Mdm-Signature`, PEM, forwarded client certificates).
//!
//! ASCII whitespace (space, tab, line feed, form feed, carriage return)
//! anywhere is ignored. Anything else is refused: characters outside the
//! alphabet, a length that is not a multiple of four, more than two `=` or
//! `=` before the end, and non-zero bits after the last byte. The input is
//! checked and decoded in one pass, a quantum of four characters at a time
//! where no whitespace interrupts them; the output is at most ¾ of the input.

/// Why base64 was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base64Error {
    /// A byte that is neither alphabet, whitespace nor allowed padding.
    Invalid {
        /// Its offset in the input.
        offset: usize,
    },
    /// The characters do not form whole quanta, or the last one has
    /// non-zero bits past the end of the data.
    Length,
}

/// [`CLASS`] values beyond the alphabet values 0–63.
const WS: u8 = 64;
const PAD: u8 = 65;
const BAD: u8 = 255;

/// Byte → base64 value (0–63), ASCII whitespace, `=`, or invalid.
// Evaluated at compile time: an index out of bounds is a build error.
#[allow(clippy::indexing_slicing)]
static CLASS: [u8; 256] = {
    let mut t = [BAD; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    // u8::is_ascii_whitespace: space, \t, \n, form feed, \r.
    t[b' ' as usize] = WS;
    t[b'\t' as usize] = WS;
    t[b'\n' as usize] = WS;
    t[0x0C] = WS;
    t[b'\r' as usize] = WS;
    t[b'=' as usize] = PAD;
    t
};

fn class(c: u8) -> u8 {
    // A u8 indexes a 256-entry table: never out of bounds.
    CLASS.get(usize::from(c)).copied().unwrap_or(BAD)
}

/// Decode `text` strictly (see the module documentation).
pub(crate) fn decode(text: &[u8]) -> Result<Vec<u8>, Base64Error> {
    decode_until(text, None).map(|(bytes, _)| bytes)
}

/// [`decode`] up to the first `stop` byte (a byte outside the alphabet, e.g.
/// the `<` that ends a plist `<data>`), or all of `text` when there is none
/// or `stop` is `None`. Returns the bytes and where the encoding ended (the
/// offset of `stop`, else `text.len()`), so the caller needs no scan of its
/// own for the end.
pub(crate) fn decode_until(text: &[u8], stop: Option<u8>) -> Result<(Vec<u8>, usize), Base64Error> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let mut n = 0usize; // significant characters, padding included
    let mut pad = 0usize;
    let mut last = 0u8; // value of the last alphabet character
    let mut acc = 0u32; // pending bits, `bits` of them
    let mut bits = 0u32;
    let mut i = 0;
    let end = loop {
        // Fast path: whole quanta of four alphabet characters, as long as
        // they last (a line of a plist or PEM, or all of a header). It
        // stops at the first quantum holding anything else, which the
        // character-by-character path below then takes, so a line break
        // costs one failed quantum, not a failed block.
        if bits == 0 && pad == 0 {
            let mut taken = 0usize;
            for quantum in text.get(i..).unwrap_or_default().chunks_exact(4) {
                let &[a, b, c, d] = quantum else { break };
                let (a, b, c, d) = (class(a), class(b), class(c), class(d));
                // Values 0–63 keep bits 6 and 7 clear; whitespace, `=` and
                // invalid bytes set one of them.
                if (a | b | c | d) >= 64 {
                    break;
                }
                let q = (u32::from(a) << 18)
                    | (u32::from(b) << 12)
                    | (u32::from(c) << 6)
                    | u32::from(d);
                let [_, x, y, z] = q.to_be_bytes();
                out.extend_from_slice(&[x, y, z]);
                last = d;
                taken += 4;
            }
            n += taken;
            i += taken;
        }
        let Some(&c) = text.get(i) else { break i };
        match class(c) {
            v @ 0..=63 if pad == 0 => {
                last = v;
                n += 1;
                acc = (acc << 6) | u32::from(v);
                bits += 6;
                if bits >= 8 {
                    bits -= 8;
                    // Truncation keeps the 8 bits just completed.
                    out.push((acc >> bits) as u8);
                }
            }
            WS => {}
            PAD if pad < 2 => {
                pad += 1;
                n += 1;
            }
            // The end the caller asked for (never an alphabet character,
            // whitespace or `=`: those are taken above).
            _ if stop == Some(c) => break i,
            // Invalid, a third `=`, or alphabet after padding.
            _ => return Err(Base64Error::Invalid { offset: i }),
        }
        i += 1;
    };
    let trailing_bits_clear = match pad {
        0 => true,
        1 => last & 0b11 == 0,
        _ => last & 0b1111 == 0,
    };
    if !n.is_multiple_of(4) || !trailing_bits_clear {
        return Err(Base64Error::Length);
    }
    Ok((out, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64ct::{Base64, Encoding};

    /// base64ct's strict decoder on `text` with its whitespace removed.
    fn base64ct_verdict(text: &[u8]) -> Option<Vec<u8>> {
        let compact: String = text
            .iter()
            .filter(|c| !c.is_ascii_whitespace())
            .map(|&c| char::from(c))
            .collect();
        Base64::decode_vec(&compact).ok()
    }

    #[test]
    fn agrees_with_base64ct_on_every_short_input() {
        // Every string of up to 5 characters over letters with and without
        // trailing bits, padding, whitespace and an invalid byte: the same
        // verdict and bytes as base64ct's strict decoder on the input
        // without whitespace.
        const ALPHABET: &[u8] = b"AB/= \n*";
        for len in 0..=5u32 {
            for mut code in 0..ALPHABET.len().pow(len) {
                let mut text = Vec::new();
                for _ in 0..len {
                    text.push(ALPHABET[code % ALPHABET.len()]);
                    code /= ALPHABET.len();
                }
                assert_eq!(decode(&text).ok(), base64ct_verdict(&text), "{text:?}");
            }
        }
        let long = Base64::encode_string(&(0..=255u8).collect::<Vec<_>>());
        assert_eq!(
            decode(long.as_bytes()).unwrap(),
            (0..=255u8).collect::<Vec<_>>()
        );
        assert_eq!(decode(b"AB*C"), Err(Base64Error::Invalid { offset: 2 }));
        // A stop byte ends the input; without it asked for, it is invalid.
        assert_eq!(decode_until(b"QQ==<", Some(b'<')), Ok((b"A".to_vec(), 4)));
        assert_eq!(decode_until(b"QQ<=", Some(b'<')), Err(Base64Error::Length));
        assert_eq!(decode(b"QQ==<"), Err(Base64Error::Invalid { offset: 4 }));
        assert_eq!(decode(b"AAAA="), Err(Base64Error::Length));
        assert_eq!(decode(b"AA==A"), Err(Base64Error::Invalid { offset: 4 }));
    }

    #[test]
    fn long_inputs_agree_with_base64ct_whatever_interrupts_a_block() {
        // Encodings of 0–120 bytes (the 32-character blocks and the
        // character-by-character path both run), each also with one
        // whitespace, padding, invalid or alphabet byte put at every
        // position, and with the last character changed (trailing bits):
        // the same verdict and bytes as base64ct on the input without
        // whitespace, and an invalid byte reported where it is.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in 0..=120usize {
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let encoded = Base64::encode_string(&data).into_bytes();
            assert_eq!(decode(&encoded).unwrap(), data);
            for at in 0..=encoded.len() {
                for extra in [b'\n', b' ', b'=', b'*', b'A', b'/'] {
                    let mut text = encoded.clone();
                    text.insert(at, extra);
                    let ours = decode(&text);
                    assert_eq!(ours.clone().ok(), base64ct_verdict(&text), "{text:?}");
                    if extra == b'*' {
                        assert_eq!(ours, Err(Base64Error::Invalid { offset: at }));
                    }
                }
            }
            // Followed by the end of a plist `<data>`: the same bytes, and
            // the end found where the `<` is.
            let mut ended = encoded.clone();
            ended.extend_from_slice(b"\n</data><key>");
            assert_eq!(
                decode_until(&ended, Some(b'<')),
                Ok((data.clone(), encoded.len() + 1))
            );
            assert_eq!(
                decode_until(&encoded, Some(b'<')),
                Ok((data.clone(), encoded.len()))
            );
            // Wrapped as plists and PEM wrap it, at every width.
            for width in 1..=80 {
                let wrapped: Vec<u8> = encoded
                    .chunks(width)
                    .flat_map(|line| [line, b"\n\t\t"].concat())
                    .collect();
                assert_eq!(decode(&wrapped).unwrap(), data, "width {width}");
            }
            if let Some(last) = encoded.iter().rposition(|&c| c != b'=') {
                let mut text = encoded.clone();
                text[last] = if text[last] == b'B' { b'C' } else { b'B' };
                let theirs = Base64::decode_vec(std::str::from_utf8(&text).unwrap()).ok();
                assert_eq!(decode(&text).ok(), theirs);
            }
        }
    }
}
