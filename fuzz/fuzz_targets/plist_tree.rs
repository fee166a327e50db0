//! Structure-aware plist fuzzing: an `arbitrary`-built tree (dict, array,
//! string, data, integer, real, bool, date, nested) written by the `plist`
//! crate as XML and as binary, then fed to the guarded decoder, the check-in
//! decoder and the report decoder.
//!
//! Properties:
//! - never a panic, stack overflow or runaway allocation;
//! - differential: a tree within the limits that the `plist` crate reads back
//!   is accepted by `wire::plist::decode` with the same value; a tree the
//!   guard refuses is over a limit or is refused by the `plist` crate too;
//! - a check-in or report that decodes re-encodes to itself.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mdm_enroll::mdm::{CheckinMessage, Report};
use mdm_enroll::wire::Limits;
use mdm_enroll::wire::plist::{PlistError, decode};
use plist::{Dictionary, Value};

/// Deeper than the limits under test, shallow enough for the `plist`
/// crate's recursive writer.
const BUILD_DEPTH: usize = 40;

/// Most decoded bytes `BigData` nodes add to one tree: twice the 4 KiB
/// `small_limits` budget, so both sides of that limit are reached.
const BIG_DATA_BUDGET: usize = 8 * 1024;

#[derive(Arbitrary, Debug)]
enum Node {
    Dict(Vec<(Key, Node)>),
    Array(Vec<Node>),
    Str(String),
    Data(Vec<u8>),
    BigData(u8),
    Int(i64),
    UInt(u64),
    Real(f64),
    Bool(bool),
    Date(u32),
    /// A run of nested single-element arrays, `n` deep (a nesting bomb).
    Deep(u8, Box<Node>),
}

/// Keys: mostly the ones the typed decoders look for.
#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Other(String),
}

const KNOWN_KEYS: &[&str] = &[
    "MessageType",
    "UDID",
    "EnrollmentID",
    "Topic",
    "Token",
    "PushMagic",
    "UnlockToken",
    "CommandUUID",
    "Status",
    "ErrorChain",
    "UserID",
    "UserShortName",
    "UserLongName",
    "EnrollmentUserID",
    "AwaitingConfiguration",
    "BootstrapToken",
    "Endpoint",
    "Data",
    "DigestChallenge",
    "NotOnConsole",
    "QueryResponses",
    "TokenServiceType",
    "RequestType",
    "Authenticate",
    "TokenUpdate",
    "CheckOut",
    "Acknowledged",
    "Error",
    "Idle",
    "NotNow",
    "CommandFormatError",
];

#[derive(Arbitrary, Debug)]
struct Input {
    root: Node,
    /// Wrap the root in a check-in/report-shaped dictionary.
    message: Option<(u8, bool)>,
    binary: bool,
    small_limits: bool,
}

#[derive(Default)]
struct Size {
    depth: usize,
    nodes: usize,
    bytes: usize,
    /// Written as a binary plist: see [`Size::text`].
    binary: bool,
}

impl Size {
    /// Count a string (value or key) the way the guard charges it. In XML
    /// and for ASCII strings in a binary plist that is its UTF-8 length; a
    /// binary plist stores any other string as UTF-16, which the guard
    /// charges at three bytes per unit without transcoding it (the most
    /// UTF-8 one unit can become; documented on `Limits::max_decoded_bytes`).
    fn text(&mut self, s: &str) {
        self.bytes += if self.binary && !s.is_ascii() {
            3 * s.encode_utf16().count()
        } else {
            s.len()
        };
    }
}

fn key(k: &Key) -> String {
    match k {
        Key::Known(i) => KNOWN_KEYS[usize::from(*i) % KNOWN_KEYS.len()].to_owned(),
        Key::Other(s) => s.clone(),
    }
}

/// Build the `plist` value, counting depth (containers), nodes and decoded
/// bytes the way `Limits` documents them.
fn build(n: &Node, depth: usize, size: &mut Size) -> Value {
    size.nodes += 1;
    if depth >= BUILD_DEPTH {
        return Value::Boolean(true);
    }
    match n {
        Node::Dict(items) => {
            size.depth = size.depth.max(depth + 1);
            let mut d = Dictionary::new();
            for (k, v) in items {
                let k = key(k);
                let value = build(v, depth + 1, size);
                if d.insert(k.clone(), value).is_none() {
                    size.nodes += 1;
                    size.text(&k);
                }
            }
            Value::Dictionary(d)
        }
        Node::Array(items) => {
            size.depth = size.depth.max(depth + 1);
            Value::Array(items.iter().map(|v| build(v, depth + 1, size)).collect())
        }
        Node::Str(s) => {
            size.text(s);
            Value::String(s.clone())
        }
        Node::Data(d) => {
            size.bytes += d.len();
            Value::Data(d.clone())
        }
        Node::BigData(n) => {
            // Up to 16 KiB each, but at most BIG_DATA_BUDGET in all: a few
            // input bytes can name thousands of these, and megabytes of
            // base64 per input slowed the campaign to ~100 executions/s
            // without reaching anything new (the limits under test are far
            // smaller; `small_limits` caps decoded bytes at 4 KiB). A 64 KiB
            // budget still spent over half of each execution reading
            // base64 (~600 executions/s); 8 KiB is enough to cross 4 KiB.
            let want = usize::from(*n) * 64;
            let len = if size.bytes + want > BIG_DATA_BUDGET {
                0
            } else {
                want
            };
            let d = vec![0x5a; len];
            size.bytes += d.len();
            Value::Data(d)
        }
        // The guard counts the text of every leaf element: bound it from
        // above (a sign and 20 digits; a real written out in full can take
        // over 300; 20 for a date).
        Node::Int(i) => {
            size.bytes += 21;
            Value::Integer((*i).into())
        }
        Node::UInt(u) => {
            size.bytes += 21;
            Value::Integer((*u).into())
        }
        Node::Real(r) => {
            size.bytes += 400;
            Value::Real(*r)
        }
        Node::Bool(b) => Value::Boolean(*b),
        Node::Date(s) => {
            size.bytes += 20;
            Value::Date((SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(*s))).into())
        }
        Node::Deep(n, inner) => {
            let n = usize::from(*n).min(BUILD_DEPTH.saturating_sub(depth));
            size.nodes += n;
            size.depth = size.depth.max(depth + n);
            let mut v = build(inner, depth + n, size);
            for _ in 0..n {
                v = Value::Array(vec![v]);
            }
            v
        }
    }
}

fn has_nan(v: &Value) -> bool {
    match v {
        Value::Real(r) => r.is_nan(),
        Value::Array(a) => a.iter().any(has_nan),
        Value::Dictionary(d) => d.values().any(has_nan),
        _ => false,
    }
}

fn has_non_xml_char(v: &Value) -> bool {
    let bad = |s: &str| {
        s.chars().any(|c| {
            (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
        })
    };
    match v {
        Value::String(s) => bad(s),
        Value::Array(a) => a.iter().any(has_non_xml_char),
        Value::Dictionary(d) => d.iter().any(|(k, v)| bad(k) || has_non_xml_char(v)),
        _ => false,
    }
}

fn is_limit(e: &PlistError) -> bool {
    matches!(
        e,
        PlistError::TooLarge { .. }
            | PlistError::TooDeep { .. }
            | PlistError::TooManyNodes { .. }
            | PlistError::DecodedTooLarge { .. }
    )
}

fuzz_target!(|input: Input| {
    let mut size = Size {
        binary: input.binary,
        ..Size::default()
    };
    let mut value = build(&input.root, 0, &mut size);
    if let Some((kind, udid)) = input.message {
        let mut d = match value {
            Value::Dictionary(d) => d,
            other => {
                let mut d = Dictionary::new();
                d.insert("Payload".into(), other);
                // The new root dictionary and its key are nodes too.
                size.nodes += 2;
                size.bytes += "Payload".len();
                size.depth += 1;
                d
            }
        };
        let names = [
            "Authenticate",
            "TokenUpdate",
            "CheckOut",
            "Acknowledged",
            "Idle",
        ];
        let name = names[usize::from(kind) % names.len()];
        let field = if kind % 2 == 0 {
            "MessageType"
        } else {
            "Status"
        };
        for (k, v) in [(field, name), ("UDID", if udid { "UDID-1" } else { "" })] {
            // A new key and its string value are two nodes; a replaced
            // value leaves the old one's count in (an over-count only makes
            // the limit check below less strict, never wrong).
            if d.insert(k.into(), Value::String(v.into())).is_none() {
                size.nodes += 2;
            }
            size.bytes += k.len() + v.len();
        }
        size.depth = size.depth.max(1);
        value = Value::Dictionary(d);
    }

    let mut bytes = Vec::new();
    let written = if input.binary {
        value.to_writer_binary(&mut bytes)
    } else {
        value.to_writer_xml(&mut bytes)
    };
    if written.is_err() {
        return;
    }

    let limits = if input.small_limits {
        Limits::default()
            .with_binary_plist(true)
            .with_max_depth(8)
            .with_max_nodes(64)
            .with_max_decoded_bytes(4096)
    } else {
        Limits::default().with_binary_plist(true)
    };
    let theirs = if input.binary {
        Value::from_reader(std::io::Cursor::new(&bytes))
    } else {
        Value::from_reader_xml(bytes.as_slice())
    };
    let within = size.depth <= limits.max_depth
        && size.nodes <= limits.max_nodes
        && size.bytes <= limits.max_decoded_bytes;
    match decode(&bytes, &limits) {
        Ok(ours) => {
            let theirs = theirs.expect("the guard accepted what the plist crate refuses");
            if !has_nan(&ours) {
                assert_eq!(ours, theirs, "guard and plist crate disagree");
            }
        }
        Err(e) if is_limit(&e) => {
            assert!(!within, "limit error {e:?} on a tree within the limits");
        }
        // XML 1.0 has no way to carry these characters; the `plist` crate
        // writes and reads them raw, the guard refuses them.
        Err(PlistError::Malformed { .. }) if !input.binary && has_non_xml_char(&value) => {}
        Err(e) => {
            if let Ok(v) = theirs {
                panic!("guard refused ({e:?}) a document the plist crate reads as {v:?}");
            }
        }
    }

    // The typed decoders on the same bytes: never a panic; what they accept
    // survives a round trip (except characters XML cannot carry, which a
    // binary plist can: `encode_xml` writes them as character references
    // the guard refuses — a known gap, see the fuzz notes).
    let xml_safe = !has_non_xml_char(&value);
    if let Ok(msg) = CheckinMessage::decode(&bytes, &limits)
        && xml_safe
        && !has_nan(&Value::Dictionary(msg.extra.clone()))
    {
        let again = CheckinMessage::decode(
            &msg.encode().expect("XML-safe values encode"),
            &Limits::default(),
        );
        assert_eq!(again.as_ref(), Ok(&msg));
    }
    if let Ok(report) = Report::decode(&bytes, &limits)
        && xml_safe
        && !format!("{report:?}").contains("NaN")
    {
        let again = Report::decode(
            &report.encode().expect("XML-safe values encode"),
            &Limits::default(),
        );
        assert_eq!(again.as_ref(), Ok(&report));
    }
});
