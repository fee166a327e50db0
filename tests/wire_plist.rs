//! The plist guard: real vectors decode, hostile documents are refused with
//! the right error kind before the `plist` crate sees them, and `encode_xml`
//! output is read back identically by Python's `plistlib`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use mdm_enroll::wire::Limits;
use mdm_enroll::wire::plist::{PlistError, decode, decode_dict, encode_xml};
use plist::Value;

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(vectors().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every XML plist among the vectors (check-in, report, command, signature body, profiles).
fn plist_vectors() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["checkin", "report", "command", "signature", "profile"] {
        let mut names: Vec<_> = std::fs::read_dir(vectors().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".plist") || n.ends_with(".mobileconfig"))
            .collect();
        names.sort();
        for n in names {
            let rel = format!("{dir}/{n}");
            let bytes = read(&rel);
            out.push((rel, bytes));
        }
    }
    assert!(
        out.len() >= 20,
        "expected the captured vectors, found {}",
        out.len()
    );
    out
}

const MALFORMED: [&str; 2] = [
    "profile/cfgprofiles_multistring-error.mobileconfig",
    "profile/cfgprofiles_multiple-nt-principals-error.mobileconfig",
];

#[test]
fn every_plist_vector_decodes_and_malformed_ones_are_dangling_keys() {
    let limits = Limits::default();
    for (name, bytes) in plist_vectors() {
        let res = decode(&bytes, &limits);
        if MALFORMED.contains(&name.as_str()) {
            assert!(
                matches!(res, Err(PlistError::DanglingKey { .. })),
                "{name}: {res:?}"
            );
        } else {
            let v = res.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(v.as_dictionary().is_some(), "{name}");
            // The guard accepts exactly what the plist crate decodes.
            assert_eq!(Value::from_reader_xml(&bytes[..]).unwrap(), v, "{name}");
        }
    }
}

#[test]
fn multiline_data_decodes() {
    let d = decode_dict(
        &read("checkin/nanomdm_TokenUpdate.1.plist"),
        &Limits::default(),
    )
    .unwrap();
    let token = d.get("Token").and_then(Value::as_data).unwrap();
    assert_eq!(
        token.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "47e8eec062c2f729ec1703c1b3e18f1971d85f00be76445d34080baa701b5f51"
    );
    assert!(d.get("UnlockToken").and_then(Value::as_data).unwrap().len() > 100);
}

#[test]
fn deep_array_is_too_deep() {
    let doc = format!(
        "<plist version=\"1.0\">{}{}</plist>",
        "<array>".repeat(20_000),
        "</array>".repeat(20_000)
    );
    assert_eq!(
        decode(doc.as_bytes(), &Limits::default()),
        Err(PlistError::TooDeep { max: 128 })
    );
}

#[test]
fn deep_dict_is_too_deep() {
    // 100k nested dictionaries, never closed: refused at depth 129.
    let doc = format!(
        "<plist version=\"1.0\">{}",
        "<dict><key>a</key>".repeat(100_000)
    );
    assert_eq!(
        decode(doc.as_bytes(), &Limits::default()),
        Err(PlistError::TooDeep { max: 128 })
    );
}

#[test]
fn depth_limit_is_exact() {
    let limits = Limits::default().with_max_depth(3);
    let ok = "<plist><array><array><array/></array></array></plist>";
    assert!(decode(ok.as_bytes(), &limits).is_ok());
    let deep = "<plist><array><array><array><array/></array></array></array></plist>";
    assert_eq!(
        decode(deep.as_bytes(), &limits),
        Err(PlistError::TooDeep { max: 3 })
    );
}

#[test]
fn node_and_decoded_budgets() {
    let limits = Limits::default()
        .with_max_nodes(10)
        .with_max_decoded_bytes(8);
    let many = format!("<plist><array>{}</array></plist>", "<true/>".repeat(10));
    assert_eq!(
        decode(many.as_bytes(), &limits),
        Err(PlistError::TooManyNodes { max: 10 })
    );
    let big = "<plist><array><string>123456789</string></array></plist>";
    assert_eq!(
        decode(big.as_bytes(), &limits),
        Err(PlistError::DecodedTooLarge { max: 8 })
    );
    // Entities count as what they decode to; base64 as its decoded length.
    let ok =
        "<plist><array><string>&amp;&lt;&#x41;&#66;</string><data>AAAAAA==</data></array></plist>";
    assert!(decode(ok.as_bytes(), &limits).is_ok());
}

#[test]
fn hundred_megabyte_body_is_too_large() {
    let body = vec![0u8; 100 * 1024 * 1024];
    assert_eq!(
        decode(&body, &Limits::default()),
        Err(PlistError::TooLarge {
            len: 100 * 1024 * 1024,
            max: 8 * 1024 * 1024
        })
    );
}

#[test]
fn every_truncation_is_truncated() {
    let limits = Limits::default();
    for rel in [
        "checkin/nanomdm_TokenUpdate.1.plist",
        "report/nanomdm_DeviceInformation.1.plist",
    ] {
        let bytes = read(rel);
        let end = bytes.windows(8).rposition(|w| w == b"</plist>").unwrap() + 8;
        for cut in 0..end {
            let res = decode(&bytes[..cut], &limits);
            assert!(
                matches!(res, Err(PlistError::Truncated { .. })),
                "{rel} cut at {cut}: {res:?}"
            );
        }
    }
}

#[test]
fn byte_order_marks_are_refused() {
    let doc = read("checkin/nanomdm_Authenticate.2.plist");
    for bom in [&[0xEF, 0xBB, 0xBF][..], &[0xFF, 0xFE], &[0xFE, 0xFF]] {
        let mut body = bom.to_vec();
        body.extend_from_slice(&doc);
        assert_eq!(
            decode(&body, &Limits::default()),
            Err(PlistError::ByteOrderMark)
        );
    }
}

#[test]
fn non_utf8_is_refused() {
    let doc = "<plist><string>caf\u{e9}</string></plist>";
    let latin1: Vec<u8> = doc.chars().map(|c| c as u8).collect();
    assert_eq!(
        decode(&latin1, &Limits::default()),
        Err(PlistError::NotUtf8 { offset: 18 })
    );
    // UTF-16 without a BOM is not UTF-8 either (or not a plist).
    let utf16: Vec<u8> = doc.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    assert!(decode(&utf16, &Limits::default()).is_err());
}

#[test]
fn base64_is_strict_but_whitespace_tolerant() {
    let limits = Limits::default();
    let with = |data: &str| format!("<plist><data>{data}</data></plist>");
    for bad in ["AAAA=", "Base64=", "base64==", "AAA", "AA=A", "AA!A"] {
        assert!(
            matches!(
                decode(with(bad).as_bytes(), &limits),
                Err(PlistError::BadBase64 { .. })
            ),
            "{bad}"
        );
    }
    let v = decode(with("\n\tZm9v\n\tYmFy\r\n YQ==\n").as_bytes(), &limits).unwrap();
    assert_eq!(v.as_data(), Some(&b"foobara"[..]));
}

#[test]
fn markup_outside_the_plist_subset_is_malformed() {
    let limits = Limits::default();
    for doc in [
        "<plist><string><![CDATA[x]]></string></plist>",
        "<!DOCTYPE plist [<!ENTITY a \"b\">]><plist><string>&a;</string></plist>",
        "<plist><string>&unknown;</string></plist>",
        "<plist><foo:array/></plist>",
        "<plist><array/><array/></plist>",
        "<plist><dict><string>v</string></dict></plist>",
        "<plist><array></dict></plist>",
        "<plist>text</plist>",
        "<?pi x?><plist><true/></plist>",
    ] {
        assert!(
            matches!(
                decode(doc.as_bytes(), &limits),
                Err(PlistError::Malformed { .. })
            ),
            "{doc}: {:?}",
            decode(doc.as_bytes(), &limits)
        );
    }
    assert!(matches!(
        decode(b"<plist><dict><key>a</key></dict></plist>", &limits),
        Err(PlistError::DanglingKey { .. })
    ));
    assert!(matches!(
        decode(b"<plist><integer>12x</integer></plist>", &limits),
        Err(PlistError::Invalid(_))
    ));
    assert_eq!(
        decode_dict(b"<plist><array/></plist>", &limits),
        Err(PlistError::UnexpectedRoot {
            expected: "dictionary"
        })
    );
}

/// A minimal `bplist00` writer for hostile test documents.
fn bplist(objects: &[Vec<u8>], top: u64) -> Vec<u8> {
    let mut out = b"bplist00".to_vec();
    let mut offsets = Vec::new();
    for o in objects {
        offsets.push(out.len() as u16);
        out.extend_from_slice(o);
    }
    let table = out.len() as u64;
    for off in offsets {
        out.extend_from_slice(&off.to_be_bytes());
    }
    out.extend_from_slice(&[0; 6]);
    out.push(2); // offset size
    out.push(1); // ref size
    out.extend_from_slice(&(objects.len() as u64).to_be_bytes());
    out.extend_from_slice(&top.to_be_bytes());
    out.extend_from_slice(&table.to_be_bytes());
    out
}

/// Object 0 is `leaf`; object i+1 is an array of `fan` references to object i.
fn shared_reference_bomb(leaf: Vec<u8>, levels: u8, fan: u8) -> Vec<u8> {
    let mut objects = vec![leaf];
    for i in 0..levels {
        let mut a = vec![0xA0 | 0x0F, 0x10, fan];
        a.extend(std::iter::repeat_n(i, fan as usize));
        objects.push(a);
    }
    bplist(&objects, u64::from(levels))
}

fn binary_ok() -> Limits {
    Limits::default().with_binary_plist(true)
}

#[test]
fn binary_is_refused_unless_allowed() {
    let v = decode(
        &read("checkin/nanomdm_Authenticate.2.plist"),
        &Limits::default(),
    )
    .unwrap();
    let mut bin = Vec::new();
    v.to_writer_binary(&mut bin).unwrap();
    assert_eq!(
        decode(&bin, &Limits::default()),
        Err(PlistError::BinaryNotAllowed)
    );
    assert_eq!(decode(&bin, &binary_ok()), Ok(v));
}

#[test]
fn every_vector_round_trips_through_binary_under_the_guard() {
    for (name, bytes) in plist_vectors() {
        let Ok(v) = decode(&bytes, &Limits::default()) else {
            continue;
        };
        let mut bin = Vec::new();
        v.to_writer_binary(&mut bin).unwrap();
        assert_eq!(decode(&bin, &binary_ok()).as_ref(), Ok(&v), "{name}");
    }
}

#[test]
fn shared_reference_bomb_is_refused_by_decoded_budget() {
    // ~300 bytes; expands to 16^5 copies of 200 bytes = 200 MiB.
    let mut leaf = vec![0x4F, 0x10, 200];
    leaf.extend_from_slice(&[0x41; 200]);
    let bomb = shared_reference_bomb(leaf, 5, 16);
    assert!(bomb.len() < 400, "{}", bomb.len());
    assert_eq!(
        decode(&bomb, &binary_ok()),
        Err(PlistError::DecodedTooLarge {
            max: 64 * 1024 * 1024
        })
    );
}

#[test]
fn shared_reference_bomb_is_refused_by_node_budget() {
    // 244 bytes; 16^7 = 268 M strings of 3 bytes (~850 MB once expanded).
    let bomb = shared_reference_bomb(vec![0x53, b'a', b'b', b'c'], 7, 16);
    assert!(bomb.len() <= 244, "{}", bomb.len());
    assert_eq!(
        decode(&bomb, &binary_ok()),
        Err(PlistError::TooManyNodes { max: 2_100_000 })
    );
}

#[test]
fn binary_depth_cycles_and_bad_refs() {
    // A chain of 200 single-element arrays.
    let mut objects = vec![vec![0x09]];
    for i in 0..200u8 {
        objects.push(vec![0xA1, i]);
    }
    assert_eq!(
        decode(&bplist(&objects, 200), &binary_ok()),
        Err(PlistError::TooDeep { max: 128 })
    );
    // An array that contains itself.
    let cyc = bplist(&[vec![0xA1, 0]], 0);
    assert!(matches!(
        decode(&cyc, &binary_ok()),
        Err(PlistError::Malformed { .. })
    ));
    // A reference past the object table.
    let bad = bplist(&[vec![0xA1, 7]], 0);
    assert!(matches!(
        decode(&bad, &binary_ok()),
        Err(PlistError::Malformed { .. })
    ));
    // An array claiming more refs than the file holds.
    let long = bplist(
        &[vec![
            0xAF, 0x13, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ]],
        0,
    );
    assert!(matches!(
        decode(&long, &binary_ok()),
        Err(PlistError::Malformed { .. })
    ));
    // Every truncation of a valid binary plist is an error, never a panic.
    let v = decode(
        &read("report/nanomdm_DeviceInformation.1.plist"),
        &Limits::default(),
    )
    .unwrap();
    let mut bin = Vec::new();
    v.to_writer_binary(&mut bin).unwrap();
    for cut in 0..bin.len() {
        assert!(decode(&bin[..cut], &binary_ok()).is_err(), "cut {cut}");
    }
}

/// Ask Python's plistlib whether `ours` (stdin) equals the plist in `reference`.
fn python_equal(ours: &[u8], reference: &[u8]) -> bool {
    let script = r#"
import plistlib, sys
ours = plistlib.loads(sys.stdin.buffer.read())
ref = plistlib.loads(bytes.fromhex(sys.argv[1]))
sys.exit(0 if ours == ref else 3)
"#;
    let hex: String = reference.iter().map(|b| format!("{b:02x}")).collect();
    let mut child = Command::new("python3")
        .args(["-c", script, &hex])
        .stdin(Stdio::piped())
        .spawn()
        .expect("python3 is required for interop tests");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(ours).unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.code() == Some(0) || status.code() == Some(3),
        "python failed: {status}"
    );
    status.success()
}

#[test]
#[cfg_attr(
    not(mdm_have_python3),
    ignore = "needs python3 (plistlib): apt-get install python3"
)]
fn encode_xml_is_read_back_identically_by_plistlib() {
    for (name, bytes) in plist_vectors() {
        // Refused by design (see the test above); every other vector must
        // decode, so none drops out of this check unnoticed.
        if MALFORMED.contains(&name.as_str()) {
            continue;
        }
        let v = decode(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours = encode_xml(&v).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(python_equal(&ours, &bytes), "{name}");
        // And by ourselves.
        assert_eq!(decode(&ours, &Limits::default()), Ok(v), "{name}");
    }
}

#[test]
#[cfg_attr(
    not(mdm_have_python3),
    ignore = "needs python3 (plistlib): apt-get install python3"
)]
fn encode_xml_escapes_markup() {
    let mut d = plist::Dictionary::new();
    d.insert(
        "a<b>&c".into(),
        Value::String("</string>&amp;\u{e9}".into()),
    );
    d.insert("empty".into(), Value::Array(vec![]));
    d.insert("data".into(), Value::Data(vec![0xFF; 100]));
    let v = Value::Dictionary(d);
    let ours = encode_xml(&v).unwrap();
    assert!(ours.starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist"));
    assert_eq!(decode(&ours, &Limits::default()), Ok(v.clone()));
    let mut reference = Vec::new();
    v.to_writer_xml(&mut reference).unwrap();
    assert!(python_equal(&ours, &reference));
}

/// The guard's base64 verdict agrees with the `plist` crate's own decoder on
/// every `<data>` content of up to six characters drawn from letters with
/// and without trailing bits, padding, whitespace and an invalid byte: the
/// guard neither lets through what the parser would refuse nor refuses what
/// it would take (beyond its documented strictness, which this alphabet
/// does not reach).
#[test]
fn data_verdicts_match_the_plist_crate_exhaustively() {
    const ALPHABET: &[u8] = b"AB= *\n";
    let mut checked = 0;
    for len in 0..=6u32 {
        for mut code in 0..ALPHABET.len().pow(len) {
            let mut content = Vec::new();
            for _ in 0..len {
                content.push(ALPHABET[code % ALPHABET.len()]);
                code /= ALPHABET.len();
            }
            let mut doc = b"<plist version=\"1.0\"><data>".to_vec();
            doc.extend_from_slice(&content);
            doc.extend_from_slice(b"</data></plist>");
            let ours = decode(&doc, &Limits::default());
            let theirs = Value::from_reader_xml(&doc[..]);
            assert_eq!(
                ours.is_ok(),
                theirs.is_ok(),
                "{:?}: guard {ours:?}, plist crate {theirs:?}",
                String::from_utf8_lossy(&content)
            );
            if let (Ok(a), Ok(b)) = (&ours, &theirs) {
                assert_eq!(a, b);
            }
            if ours.is_err() {
                assert!(
                    matches!(ours, Err(PlistError::BadBase64 { .. })),
                    "{ours:?}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 55_987);
}

/// The guard's own XML reader gives the value the `plist` crate's reader
/// gives, on the corners where a hand-written reader could drift: line ends
/// kept raw, references, integers (signed, unsigned, `0x`), reals, dates,
/// empty elements, duplicate keys, attributes and comments.
#[test]
fn xml_values_match_the_plist_crate() {
    let limits = Limits::default();
    for body in [
        "<string>a\r\nb\rc\n</string>",
        "<string>  padded\t</string>",
        "<string>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#x1F600;&#233;</string>",
        "<string>héllo — ✓</string>",
        "<string/>",
        "<string></string>",
        "<data/>",
        "<array><integer>0</integer><integer>-9223372036854775808</integer><integer>18446744073709551615</integer><integer>0xdeadBEEF</integer><integer>+7</integer><integer>007</integer></array>",
        "<array><real>1.5</real><real>-0.0</real><real>1e300</real><real>inf</real><real>NaN</real></array>",
        "<array><date>2026-11-30T12:34:56Z</date><date>1981-05-16T11:32:06+02:00</date></array>",
        "<array><true/><false/><true> </true><array/><dict/><dict></dict></array>",
        "<dict><key>a</key><string>1</string><key>b</key><true/><key>a</key><string>2</string></dict>",
        "<dict><key/><string>empty key</string><key>&amp;</key><data>AAE=</data></dict>",
        "<dict a=\"1\"><!-- c --><key x='y'>k</key><!-- d --><integer>1</integer></dict>",
    ] {
        let doc = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">{body}</plist>"
        );
        let theirs = Value::from_reader_xml(doc.as_bytes())
            .unwrap_or_else(|e| panic!("{body}: plist crate: {e}"));
        let ours = decode(doc.as_bytes(), &limits).unwrap_or_else(|e| panic!("{body}: {e}"));
        // NaN is not equal to itself: compare the written form.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        ours.to_writer_xml(&mut a).unwrap();
        theirs.to_writer_xml(&mut b).unwrap();
        assert_eq!(a, b, "{body}");
    }
    // What the `plist` crate cannot read is refused as invalid, after the
    // bounds: a limit further on still wins.
    for bad in [
        "<integer>12x</integer>",
        "<integer/>",
        "<integer>18446744073709551616</integer>",
        "<integer> 1</integer>",
        "<real>one</real>",
        "<date>yesterday</date>",
        "<date/>",
    ] {
        let doc = format!("<plist>{bad}</plist>");
        assert!(Value::from_reader_xml(doc.as_bytes()).is_err(), "{bad}");
        assert!(
            matches!(decode(doc.as_bytes(), &limits), Err(PlistError::Invalid(_))),
            "{bad}: {:?}",
            decode(doc.as_bytes(), &limits)
        );
    }
    let over = format!(
        "<plist><array><integer>x</integer>{}</array></plist>",
        "<true/>".repeat(10)
    );
    assert_eq!(
        decode(over.as_bytes(), &Limits::default().with_max_nodes(5)),
        Err(PlistError::TooManyNodes { max: 5 })
    );
    // Signed character references are not XML (quick-xml refuses them too).
    assert!(decode(b"<plist><string>&#+65;</string></plist>", &limits).is_err());
}

/// The SQL stores' version 2 rows (`tests/vectors/store/*_v2.bplist`, which
/// the crate's unit tests hold equal to what it writes) are ordinary binary
/// plists to Python's plistlib: byte fields are `data` objects holding the
/// bytes the version 1 row spelled as integers, every other field the same.
#[test]
fn version_2_store_rows_are_read_by_plistlib() {
    let script = r#"
import plistlib, sys
new = plistlib.loads(bytes.fromhex(sys.argv[1]))
old = plistlib.loads(bytes.fromhex(sys.argv[2]))
assert new.pop("v") == 2, "version"
found = []
def spelled_as_v1(x):
    if isinstance(x, bytes):
        found.append(x)
        return list(x)
    if isinstance(x, list):
        return [spelled_as_v1(i) for i in x]
    if isinstance(x, dict):
        return {k: spelled_as_v1(v) for k, v in x.items()}
    return x
assert spelled_as_v1(new) == old, (new, old)
assert found or sys.argv[3] == "none", "no data object"
"#;
    for (name, bytes) in [
        ("queued_command", "some"),
        ("command_result", "some"),
        ("issued_certificate", "some"),
        ("activation", "some"),
        ("activation_started", "none"),
    ] {
        let new = hex_of(&format!("store/{name}_v2.bplist"));
        let old = hex_of(&format!("store/{name}.bplist"));
        python(name, script, &[&new, &old, bytes]);
    }
}

/// A vector's bytes in hex, for a script's command line.
fn hex_of(name: &str) -> String {
    read(name).iter().map(|b| format!("{b:02x}")).collect()
}

/// Run the Python `script` with `args`; it must succeed.
fn python(what: &str, script: &str, args: &[&str]) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is required for interop tests");
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The SQLite store's queued command without its body
/// (`tests/vectors/store/queued_command_head_v3.bplist`, pinned by the
/// crate's unit tests) is, to Python's plistlib, the version 2 record with
/// `v` 3 and no `body`.
#[test]
fn version_3_command_heads_are_read_by_plistlib() {
    let script = r#"
import plistlib, sys
head = plistlib.loads(bytes.fromhex(sys.argv[1]))
v2 = plistlib.loads(bytes.fromhex(sys.argv[2]))
assert head.pop("v") == 3, "version"
assert v2.pop("v") == 2
assert isinstance(v2.pop("body"), bytes)
assert head == v2, (head, v2)
"#;
    let head = hex_of("store/queued_command_head_v3.bplist");
    let v2 = hex_of("store/queued_command_v2.bplist");
    python("command head", script, &[&head, &v2]);
}
