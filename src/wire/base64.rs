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

/// Quanta the fast path decodes per batch of room opened in the output.
const BATCH_QUANTA: usize = 256;

/// Set in a [`QUANTUM`] entry for a byte that is not alphabet.
const NOT_ALPHABET: u32 = 1 << 31;

/// One table per position in a quantum: the character's bits already in
/// their places among the three output bytes, laid out so that the sum of
/// the four entries, written little-endian, is those bytes in order; any
/// byte that is not alphabet sets [`NOT_ALPHABET`]. A quantum is then four
/// lookups and three `|`s.
// Evaluated at compile time: an index out of bounds is a build error.
#[allow(clippy::indexing_slicing)]
static QUANTUM: [[u32; 256]; 4] = {
    let mut t = [[NOT_ALPHABET; 256]; 4];
    let mut c = 0;
    while c < 256 {
        let v = CLASS[c] as u32;
        if v < 64 {
            // First byte: a's 6 bits, then b's top 2. Second: b's low 4,
            // then c's top 4. Third: c's low 2, then d's 6.
            t[0][c] = v << 2;
            t[1][c] = (v >> 4) | ((v & 0xf) << 12);
            t[2][c] = ((v >> 2) << 8) | ((v & 0x3) << 22);
            t[3][c] = v << 16;
        }
        c += 1;
    }
    t
};

/// A quantum of four characters: its three bytes, little-endian in the low
/// 24 bits, with [`NOT_ALPHABET`] set if one of them is not alphabet.
fn quantum([a, b, c, d]: [u8; 4]) -> u32 {
    let [ta, tb, tc, td] = &QUANTUM;
    // A u8 indexes a 256-entry table: never out of bounds.
    let at = |t: &[u32; 256], c: u8| t.get(usize::from(c)).copied().unwrap_or(NOT_ALPHABET);
    at(ta, a) | at(tb, b) | at(tc, c) | at(td, d)
}

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
    // Written in place: the fast path opens room for a batch of quanta at a
    // time and writes through paired iterators (no capacity or bounds check
    // per quantum); the result is cut to what was written. The room grows
    // with what is decoded, never with `text`: a plist `<data>` hands over
    // the whole rest of its document, and sizing for that on every element
    // made many small ones cost time and memory quadratic in the document.
    let mut out = Vec::with_capacity((text.len() / 4 * 3 + 2).min(BATCH_QUANTA * 3 + 2));
    let mut w = 0usize; // bytes written
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
            loop {
                let batch = (text.len().saturating_sub(i) / 4).min(BATCH_QUANTA);
                if batch == 0 {
                    break;
                }
                out.resize(w + batch * 3, 0);
                let mut taken = 0usize;
                let src = text.get(i..).unwrap_or_default().chunks_exact(4);
                let dst = out.get_mut(w..).unwrap_or_default().chunks_exact_mut(3);
                for (chars, slot) in src.zip(dst) {
                    let &[a, b, c, d] = chars else { break };
                    let q = quantum([a, b, c, d]);
                    if q & NOT_ALPHABET != 0 {
                        break;
                    }
                    let [x, y, z, _] = q.to_le_bytes();
                    slot.copy_from_slice(&[x, y, z]);
                    taken += 4;
                }
                // `last` is left alone: padding can only end a quantum the
                // loop below takes, and so does the character before it.
                n += taken;
                i += taken;
                w += taken / 4 * 3;
                if taken < batch * 4 {
                    break;
                }
            }
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
                    let byte = (acc >> bits) as u8;
                    // A slot the fast path opened and did not fill, or a
                    // new one.
                    match out.get_mut(w) {
                        Some(slot) => *slot = byte,
                        None => out.push(byte),
                    }
                    w += 1;
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
    out.truncate(w);
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

    /// The room the output takes grows with what is decoded, not with the
    /// text after the stop byte: a short `<data>` early in a large plist
    /// costs little (sizing for the rest made many small elements cost
    /// time and memory quadratic in the document).
    #[test]
    fn output_room_follows_the_decoded_bytes_not_the_text() {
        let mut text = b"QUJD<".to_vec();
        text.extend(std::iter::repeat_n(b'A', 1 << 20));
        let (out, end) = decode_until(&text, Some(b'<')).unwrap();
        assert_eq!((out.as_slice(), end), (&b"ABC"[..], 4));
        assert!(out.capacity() <= BATCH_QUANTA * 3 + 2, "{}", out.capacity());
    }

    /// Inputs of many batches of quanta, whole and wrapped in lines, agree
    /// with base64ct.
    #[test]
    fn inputs_of_many_batches_agree_with_base64ct() {
        use base64ct::Encoding;
        for len in [BATCH_QUANTA * 3 - 1, BATCH_QUANTA * 3, BATCH_QUANTA * 9 + 2] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let text = base64ct::Base64::encode_string(&bytes).into_bytes();
            assert_eq!(decode(&text).unwrap(), bytes, "{len}");
            let wrapped: Vec<u8> = text.chunks(68).collect::<Vec<_>>().join(&b"\n"[..]);
            assert_eq!(decode(&wrapped).unwrap(), bytes, "{len} wrapped");
        }
    }

    #[test]
    fn every_byte_at_every_position_of_a_quantum() {
        // The whole-quantum path reads a table per position: each of the
        // 256 byte values at each of the four positions, between whole
        // quanta (so the fast path meets it) and alone, gets base64ct's
        // verdict and bytes, and a refused byte is reported where it is.
        for position in 0..4 {
            for byte in 0..=255u8 {
                let mut quantum = *b"Zm9v";
                quantum[position] = byte;
                for text in [[&b"QUJD"[..], &quantum, b"REVG"].concat(), quantum.to_vec()] {
                    let ours = decode(&text);
                    assert_eq!(ours.clone().ok(), base64ct_verdict(&text), "{text:?}");
                    if CLASS[usize::from(byte)] == BAD {
                        let at = text.iter().position(|&c| c == byte);
                        assert_eq!(
                            ours,
                            Err(Base64Error::Invalid {
                                offset: at.unwrap()
                            })
                        );
                    }
                }
            }
        }
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
