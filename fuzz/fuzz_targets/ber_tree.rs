//! Structure-aware BER fuzzing: an `arbitrary`-built BER tree (any class and
//! tag number, low- and high-form tags, short, long and padded long-form
//! lengths, definite and indefinite constructed elements, chunked strings)
//! serialised and fed to the BER → DER normaliser and the CMS parsers.
//!
//! Properties:
//! - never a panic;
//! - a well-formed tree within the limits is accepted;
//! - normalised output is strict DER (definite minimal lengths, minimal
//!   tags, primitive universal strings, canonical BOOLEAN, sorted SET) and
//!   normalises to itself.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mdm_enroll::cms::SignedData;
use mdm_enroll::cms::enveloped::EnvelopedData;
use mdm_enroll::scep::{Csr, PkiMessage};
use mdm_enroll::wire::BerLimits;
use mdm_enroll::wire::ber::{Element, to_der};

const STRING_TAGS: &[u32] = &[3, 4, 12, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 30];
const BUILD_DEPTH: usize = 80;

#[derive(Arbitrary, Debug)]
enum Node {
    Prim(Tag, Len, Vec<u8>),
    Cons(Tag, Len, Vec<Node>),
    /// A chunked universal string: constructed, with segments of its own type
    /// (BIT STRING segments carry an unused-bits octet).
    Chunked(u8, Len, Vec<(Len, Vec<u8>)>),
    /// A well-known shape: SEQUENCE { OID, [0] EXPLICIT { … } } (ContentInfo-like).
    ContentInfo(u8, Len, Box<Node>),
    Boolean(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Tag {
    class: u8,
    number: u32,
    /// Encode a number below 31 in the high form anyway (not DER).
    force_high: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    Minimal,
    /// Long form with this many extra leading zero octets (not DER).
    Padded(u8),
    Indefinite,
}

const OIDS: &[&[u8]] = &[
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02], // signedData
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03], // envelopedData
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01], // data
];

struct Built {
    bytes: Vec<u8>,
    /// The element is well formed (universal tag 0 and bad high tags are not).
    ok: bool,
    depth: usize,
    elements: usize,
}

fn tag_bytes(t: Tag, constructed: bool) -> (Vec<u8>, bool) {
    let class = (t.class % 4) << 6;
    let c = if constructed { 0x20 } else { 0 };
    let number = t.number % (1 << 21);
    let ok = !(class == 0 && number == 0);
    if number < 31 && !t.force_high {
        return (vec![class | c | number as u8], ok);
    }
    // X.690 8.1.2.2: a number below 31 in the high form is not BER.
    let ok = ok && number >= 31;
    let mut out = vec![class | c | 0x1f];
    let mut groups = Vec::new();
    let mut n = number;
    loop {
        groups.push((n & 0x7f) as u8);
        n >>= 7;
        if n == 0 {
            break;
        }
    }
    for (i, g) in groups.iter().rev().enumerate() {
        out.push(if i + 1 < groups.len() { g | 0x80 } else { *g });
    }
    (out, ok)
}

fn len_bytes(len: usize, form: Len, out: &mut Vec<u8>) -> bool {
    match form {
        Len::Minimal | Len::Indefinite if len < 0x80 => {
            out.push(len as u8);
            true
        }
        Len::Minimal | Len::Indefinite | Len::Padded(_) => {
            let pad = match form {
                Len::Padded(p) => usize::from(p % 3),
                _ => 0,
            };
            let be = len.to_be_bytes();
            // At least one length octet (`80` alone would be indefinite).
            let skip = be.iter().take_while(|b| **b == 0).count().min(be.len() - 1);
            let n = be.len() - skip + pad;
            out.push(0x80 | n as u8);
            out.extend(std::iter::repeat_n(0, pad));
            out.extend_from_slice(&be[skip..]);
            n <= 4
        }
    }
}

fn wrap(tag: &[u8], constructed: bool, form: Len, contents: Vec<u8>, out: &mut Vec<u8>) -> bool {
    out.extend_from_slice(tag);
    if constructed && matches!(form, Len::Indefinite) {
        out.push(0x80);
        out.extend_from_slice(&contents);
        out.extend_from_slice(&[0, 0]);
        true
    } else {
        let ok = len_bytes(contents.len(), form, out);
        out.extend_from_slice(&contents);
        ok
    }
}

fn build(n: &Node, depth: usize) -> Built {
    let mut out = Vec::new();
    if depth >= BUILD_DEPTH {
        out.extend_from_slice(&[0x05, 0x00]);
        return Built {
            bytes: out,
            ok: true,
            depth,
            elements: 1,
        };
    }
    match n {
        Node::Prim(t, l, content) => {
            let (tag, tag_ok) = tag_bytes(*t, false);
            let ok = wrap(&tag, false, *l, content.clone(), &mut out) && tag_ok;
            Built {
                bytes: out,
                ok,
                depth,
                elements: 1,
            }
        }
        Node::Cons(t, l, children) => {
            let (tag, mut ok) = tag_bytes(*t, true);
            let mut contents = Vec::new();
            let (mut d, mut e) = (depth, 1);
            let universal_string =
                t.class % 4 == 0 && STRING_TAGS.contains(&(t.number % (1 << 21)));
            for c in children {
                let b = build(c, depth + 1);
                // A universal string's segments must be of its type.
                ok &= b.ok && !universal_string;
                d = d.max(b.depth);
                e += b.elements;
                contents.extend_from_slice(&b.bytes);
            }
            ok &= wrap(&tag, true, *l, contents, &mut out);
            Built {
                bytes: out,
                ok,
                depth: d,
                elements: e,
            }
        }
        Node::Chunked(which, l, segments) => {
            let number = STRING_TAGS[usize::from(*which) % STRING_TAGS.len()];
            let tag = Tag {
                class: 0,
                number,
                force_high: false,
            };
            let (outer, _) = tag_bytes(tag, true);
            let (inner, _) = tag_bytes(tag, false);
            let mut contents = Vec::new();
            let mut ok = true;
            let last = segments.len().saturating_sub(1);
            for (i, (sl, bytes)) in segments.iter().enumerate() {
                let mut bytes = bytes.clone();
                if number == 3 {
                    // Unused-bits octet: zero except possibly on the last segment.
                    let unused = if i == last {
                        bytes.first().map_or(0, |b| b % 8)
                    } else {
                        0
                    };
                    bytes.insert(0, unused);
                }
                ok &= wrap(&inner, false, *sl, bytes, &mut contents);
            }
            if number == 3 && segments.is_empty() {
                ok = false;
            }
            ok &= wrap(&outer, true, *l, contents, &mut out);
            Built {
                bytes: out,
                ok,
                depth: depth + 1,
                elements: 1 + segments.len(),
            }
        }
        Node::ContentInfo(oid, l, inner) => {
            let oid = OIDS[usize::from(*oid) % OIDS.len()];
            let b = build(inner, depth + 2);
            let mut explicit = Vec::new();
            let mut ok = wrap(&[0xa0], true, *l, b.bytes, &mut explicit) && b.ok;
            let mut contents = vec![0x06, oid.len() as u8];
            contents.extend_from_slice(oid);
            contents.extend_from_slice(&explicit);
            ok &= wrap(&[0x30], true, *l, contents, &mut out);
            Built {
                bytes: out,
                ok,
                depth: b.depth,
                elements: b.elements + 3,
            }
        }
        Node::Boolean(v) => {
            out.extend_from_slice(&[0x01, 0x01, *v]);
            Built {
                bytes: out,
                ok: true,
                depth,
                elements: 1,
            }
        }
    }
}

/// Strict DER check of one element spanning `input`; returns its length.
fn check_der(input: &[u8]) -> usize {
    let first = input[0];
    let constructed = first & 0x20 != 0;
    let mut pos = 1;
    let mut number = u32::from(first & 0x1f);
    if number == 0x1f {
        assert_ne!(
            input[1], 0x80,
            "DER: high-form tag with a leading 0x80 octet"
        );
        number = 0;
        loop {
            let b = input[pos];
            pos += 1;
            number = (number << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        assert!(number >= 31, "DER: tag number {number} in the high form");
    }
    let l = input[pos];
    pos += 1;
    assert_ne!(l, 0x80, "DER: indefinite length");
    let len = if l < 0x80 {
        usize::from(l)
    } else {
        let n = usize::from(l & 0x7f);
        let bytes = &input[pos..pos + n];
        pos += n;
        assert_ne!(bytes[0], 0, "DER: long-form length with a leading zero");
        let len = bytes.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b));
        assert!(len >= 0x80, "DER: long form for a length below 128");
        len
    };
    let contents = &input[pos..pos + len];
    let universal = first >> 6 == 0;
    if universal && constructed {
        assert!(
            !STRING_TAGS.contains(&number),
            "DER: constructed string {number}"
        );
    }
    if universal && number == 1 && !constructed && len == 1 {
        assert!(
            contents[0] == 0 || contents[0] == 0xff,
            "DER: BOOLEAN {:#x}",
            contents[0]
        );
    }
    if constructed {
        let mut cur = 0;
        let mut prev: Option<&[u8]> = None;
        while cur < contents.len() {
            let n = check_der(&contents[cur..]);
            let child = &contents[cur..cur + n];
            if universal
                && number == 17
                && let Some(p) = prev
            {
                assert!(p <= child, "DER: SET elements out of order");
            }
            prev = Some(child);
            cur += n;
        }
    }
    pos + len
}

fuzz_target!(|root: Node| {
    let built = build(&root, 0);
    let limits = BerLimits::default();
    let input = &built.bytes;
    let within = built.depth <= limits.max_depth
        && built.elements <= limits.max_elements
        && input.len() <= limits.max_size;
    match to_der(input, &limits) {
        Ok(der) => {
            assert_eq!(check_der(&der), der.len());
            assert_eq!(
                to_der(&der, &limits).as_ref(),
                Ok(&der),
                "DER is not a fixed point"
            );
            let el = Element::parse(&der, &limits).expect("DER output must parse");
            assert_eq!(el.raw, der.as_slice());
        }
        Err(e) => assert!(
            !(built.ok && within),
            "well-formed BER within the limits refused: {e:?}"
        ),
    }
    // The CMS and SCEP readers on the BER form: never a panic.
    if let Ok(sd) = SignedData::parse(input, &limits) {
        for i in 0..sd.signers().len() {
            let _ = sd.verify_signer(i, None);
        }
    }
    let _ = EnvelopedData::parse(input, &limits);
    let _ = PkiMessage::decode(input, &limits);
    let _ = Csr::parse(input, &limits);
});
