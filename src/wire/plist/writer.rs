//! The Apple-style XML plist writer, [`encode_xml`]: iterative (any depth is
//! safe), and it writes only what [`decode`](super::decode) reads back.

use plist::Value;

use super::PlistError;

/// Serialise `value` as an Apple-style XML plist (XML declaration, Apple
/// DOCTYPE, `<plist version="1.0">`, tab indentation, trailing newline).
///
/// Dictionary keys keep their order. C0 controls other than tab, LF, CR and
/// U+0000 are written as character references, which
/// [`decode`](super::decode) reads back (strict XML readers such as expat
/// refuse them). U+0000 has no XML form at all, raw or as a reference, and
/// every reader refuses it, [`decode`](super::decode) included: a string or key holding it is refused with
/// [`PlistError::NulCharacter`] rather than written. The writer is
/// iterative, so any depth of `value` is safe.
pub fn encode_xml(value: &Value) -> Result<Vec<u8>, PlistError> {
    encode_xml_node(&Node::Value(value))
}

/// A plist to write whose dictionaries may be lists of borrowed entries,
/// so a caller that holds the parts of a document (a command's parameters,
/// a 1 MiB profile among them) writes it without first building, and
/// cloning into, a [`Value`] of the whole.
pub(crate) enum Node<'a> {
    /// A value as it is.
    Value(&'a Value),
    /// A dictionary of these entries, in this order (keys are not
    /// deduplicated: the caller gives each once).
    Dict(Vec<(&'a str, Node<'a>)>),
}

/// [`encode_xml`] of a [`Node`]: the same bytes as for the [`Value`] it
/// stands for.
pub(crate) fn encode_xml_node(root: &Node<'_>) -> Result<Vec<u8>, PlistError> {
    enum Item<'a> {
        Value(&'a Value),
        Entries(&'a [(&'a str, Node<'a>)]),
        Key(&'a str),
        Close(&'static str),
    }
    fn item<'a>(node: &'a Node<'a>) -> Item<'a> {
        match node {
            Node::Value(v) => Item::Value(v),
            Node::Dict(entries) => Item::Entries(entries),
        }
    }
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
          <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
          <plist version=\"1.0\">\n",
    );
    let mut stack: Vec<(Item<'_>, usize)> = vec![(item(root), 0)];
    while let Some((next, depth)) = stack.pop() {
        indent(&mut out, depth);
        match next {
            Item::Close(tag) => {
                out.extend_from_slice(b"</");
                out.extend_from_slice(tag.as_bytes());
                out.extend_from_slice(b">\n");
            }
            Item::Key(k) => text_element(&mut out, "key", k)?,
            Item::Entries([]) => out.extend_from_slice(b"<dict/>\n"),
            Item::Entries(entries) => {
                out.extend_from_slice(b"<dict>\n");
                stack.push((Item::Close("dict"), depth));
                for (k, v) in entries.iter().rev() {
                    stack.push((item(v), depth + 1));
                    stack.push((Item::Key(k), depth + 1));
                }
            }
            Item::Value(v) => match v {
                Value::Array(a) if a.is_empty() => out.extend_from_slice(b"<array/>\n"),
                Value::Array(a) => {
                    out.extend_from_slice(b"<array>\n");
                    stack.push((Item::Close("array"), depth));
                    for v in a.iter().rev() {
                        stack.push((Item::Value(v), depth + 1));
                    }
                }
                Value::Dictionary(d) if d.is_empty() => out.extend_from_slice(b"<dict/>\n"),
                Value::Dictionary(d) => {
                    out.extend_from_slice(b"<dict>\n");
                    stack.push((Item::Close("dict"), depth));
                    let entries: Vec<_> = d.iter().collect();
                    for (k, v) in entries.into_iter().rev() {
                        stack.push((Item::Value(v), depth + 1));
                        stack.push((Item::Key(k), depth + 1));
                    }
                }
                Value::Boolean(true) => out.extend_from_slice(b"<true/>\n"),
                Value::Boolean(false) => out.extend_from_slice(b"<false/>\n"),
                Value::Data(d) if d.is_empty() => out.extend_from_slice(b"<data></data>\n"),
                Value::Data(d) => data_element(&mut out, d, depth),
                Value::Date(d) => text_element(&mut out, "date", &d.to_xml_format())?,
                Value::Real(r) => text_element(&mut out, "real", &format_real(*r))?,
                Value::Integer(i) => text_element(&mut out, "integer", &i.to_string())?,
                Value::String(s) => text_element(&mut out, "string", s)?,
                Value::Uid(u) => {
                    out.extend_from_slice(b"<dict>\n");
                    indent(&mut out, depth + 1);
                    text_element(&mut out, "key", "CF$UID")?;
                    indent(&mut out, depth + 1);
                    text_element(&mut out, "integer", &u.get().to_string())?;
                    stack.push((Item::Close("dict"), depth));
                }
                _ => out.extend_from_slice(b"<string></string>\n"),
            },
        }
    }
    out.extend_from_slice(b"</plist>\n");
    Ok(out)
}

/// Bytes per base64 line of a `<data>` element: 51 bytes, 68 characters.
const DATA_LINE_BYTES: usize = 51;

/// A non-empty `<data>` element at `depth` (its opening tag's indentation
/// already written): base64 (constant-time, base64ct) in lines of 68
/// characters, each indented as the tags are, written straight into `out`
/// with room for all of it opened once.
fn data_element(out: &mut Vec<u8>, data: &[u8], depth: usize) {
    let lines = data.len().div_ceil(DATA_LINE_BYTES);
    out.reserve(
        data.len().div_ceil(3).saturating_mul(4)
            + lines.saturating_mul(depth + 1)
            + depth
            + b"<data>\n</data>\n".len(),
    );
    out.extend_from_slice(b"<data>\n");
    let mut line = [0u8; DATA_LINE_BYTES / 3 * 4];
    for chunk in data.chunks(DATA_LINE_BYTES) {
        indent(out, depth);
        // A chunk of at most 51 bytes always fits the 68 characters.
        if let Ok(text) = <base64ct::Base64 as base64ct::Encoding>::encode(chunk, &mut line) {
            out.extend_from_slice(text.as_bytes());
        }
        out.push(b'\n');
    }
    indent(out, depth);
    out.extend_from_slice(b"</data>\n");
}

fn indent(out: &mut Vec<u8>, depth: usize) {
    out.extend(std::iter::repeat_n(b'\t', depth));
}

fn format_real(r: f64) -> String {
    if r.is_nan() {
        "nan".to_owned()
    } else if r.is_infinite() {
        if r > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{r:?}")
    }
}

fn text_element(out: &mut Vec<u8>, tag: &'static str, text: &str) -> Result<(), PlistError> {
    out.push(b'<');
    out.extend_from_slice(tag.as_bytes());
    out.push(b'>');
    // Every byte that needs escaping is ASCII, and no byte of a multi-byte
    // UTF-8 sequence is: copy the runs between them whole.
    let bytes = text.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            0 => return Err(PlistError::NulCharacter { element: tag }),
            b'&' | b'<' | b'>' => {}
            b'\t' | b'\n' | b'\r' => continue,
            0x01..=0x1F => {}
            _ => continue,
        }
        out.extend_from_slice(bytes.get(run..i).unwrap_or_default());
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            // C0 controls: character references (only `decode` reads them).
            _ => out.extend_from_slice(format!("&#x{b:X};").as_bytes()),
        }
        run = i + 1;
    }
    out.extend_from_slice(bytes.get(run..).unwrap_or_default());
    out.extend_from_slice(b"</");
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b">\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Limits;
    use crate::wire::plist::decode;

    /// Whatever the writer emits, the reader reads back as the same value;
    /// what no reader accepts (U+0000) the writer refuses with a typed error.
    #[test]
    fn the_writer_emits_only_what_the_reader_reads_back() {
        for c in (0u32..0x20).chain([0x7F, 0xFFFD]) {
            let c = char::from_u32(c).unwrap();
            for (key, string) in [
                (format!("k{c}"), "s".to_owned()),
                ("k".into(), format!("a{c}b")),
            ] {
                let mut d = plist::Dictionary::new();
                d.insert(key.clone(), Value::String(string.clone()));
                let value = Value::Dictionary(d);
                match encode_xml(&value) {
                    Ok(xml) => assert_eq!(
                        decode(&xml, &Limits::default()),
                        Ok(value),
                        "U+{:04X}",
                        c as u32
                    ),
                    Err(e) => {
                        assert_eq!(c, '\0');
                        let element = if key.contains('\0') { "key" } else { "string" };
                        assert_eq!(e, PlistError::NulCharacter { element });
                    }
                }
            }
        }
        assert!(encode_xml(&Value::String("\0".into())).is_err());
    }

    /// The run-copying escaper writes exactly what escaping one character
    /// at a time writes.
    #[test]
    fn text_escaping_matches_the_per_character_rule() {
        fn per_char(text: &str) -> String {
            let mut s = String::new();
            for c in text.chars() {
                match c {
                    '&' => s.push_str("&amp;"),
                    '<' => s.push_str("&lt;"),
                    '>' => s.push_str("&gt;"),
                    '\t' | '\n' | '\r' => s.push(c),
                    c if (c as u32) < 0x20 => s.push_str(&format!("&#x{:X};", c as u32)),
                    c => s.push(c),
                }
            }
            format!("<string>{s}</string>\n")
        }
        let every_ascii: String = (1u8..0x80).map(char::from).collect();
        for text in [
            "",
            "plain",
            "&",
            "a<b>c&d",
            "<<>>&&",
            "\u{1}x\u{1f}",
            "é<ü>€&😀\u{7}",
            "trailing&",
            every_ascii.as_str(),
        ] {
            let mut out = Vec::new();
            text_element(&mut out, "string", text).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), per_char(text), "{text:?}");
        }
    }

    #[test]
    fn real_formatting_round_trips() {
        for r in [1.0, 1.5, -0.25, 1e300, 5e-324] {
            let back = decode(&encode_xml(&Value::Real(r)).unwrap(), &Limits::default()).unwrap();
            assert_eq!(back.as_real(), Some(r));
        }
    }

    /// A `<data>` element is base64ct's whole encoding cut every 68
    /// characters, each line indented as its tags: for every length around
    /// the line and quantum boundaries, at several depths, and for 1 MiB.
    #[test]
    fn data_lines_are_the_whole_encoding_cut_every_68_characters() {
        fn expected(data: &[u8], depth: usize) -> Vec<u8> {
            let tabs = "\t".repeat(depth);
            let text = <base64ct::Base64 as base64ct::Encoding>::encode_string(data);
            let mut out = String::from("<data>\n");
            for line in text.as_bytes().chunks(68) {
                out.push_str(&tabs);
                out.push_str(std::str::from_utf8(line).unwrap());
                out.push('\n');
            }
            out.push_str(&tabs);
            out.push_str("</data>\n");
            out.into_bytes()
        }
        let big: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 256) as u8).collect();
        let lengths = (1..=210).chain([1 << 20, (1 << 20) - 1, 51 * 1000, 51 * 1000 + 1]);
        for len in lengths {
            for depth in [0, 1, 3] {
                let mut out = Vec::new();
                data_element(&mut out, &big[..len], depth);
                assert_eq!(out, expected(&big[..len], depth), "{len} bytes at {depth}");
            }
        }
        // In a document: nested, read back as the same bytes.
        let mut d = plist::Dictionary::new();
        d.insert(
            "k".into(),
            Value::Array(vec![Value::Data(big[..777].to_vec())]),
        );
        let value = Value::Dictionary(d);
        let xml = encode_xml(&value).unwrap();
        assert_eq!(decode(&xml, &Limits::default()), Ok(value));
    }

    /// A [`Node`] of borrowed entries writes the bytes its [`Value`] writes.
    #[test]
    fn borrowed_entries_write_what_their_value_writes() {
        let data = Value::Data(vec![7; 100]);
        let s = Value::String("a<b".into());
        let empty = plist::Dictionary::new();
        let empty = Value::Dictionary(empty);
        let node = Node::Dict(vec![
            ("one", Node::Value(&s)),
            (
                "two",
                Node::Dict(vec![("d", Node::Value(&data)), ("e", Node::Value(&empty))]),
            ),
            ("three", Node::Dict(Vec::new())),
        ]);
        let mut two = plist::Dictionary::new();
        two.insert("d".into(), data.clone());
        two.insert("e".into(), empty.clone());
        let mut root = plist::Dictionary::new();
        root.insert("one".into(), s.clone());
        root.insert("two".into(), Value::Dictionary(two));
        root.insert("three".into(), Value::Dictionary(plist::Dictionary::new()));
        assert_eq!(
            encode_xml_node(&node).unwrap(),
            encode_xml(&Value::Dictionary(root)).unwrap()
        );
        let nul = Value::String("\0".into());
        assert_eq!(
            encode_xml_node(&Node::Dict(vec![("k", Node::Value(&nul))])),
            Err(PlistError::NulCharacter { element: "string" })
        );
    }
}
