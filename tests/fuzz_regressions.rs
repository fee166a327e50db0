//! Inputs the fuzzers found, kept as tests (see `fuzz/README.md`).

use mdm_enroll::wire::BerLimits;
use mdm_enroll::wire::ber::{BerError, to_der};

/// `ber_tree`: a context tag [5] written in the high-tag form (`9F 05`)
/// passed through the normaliser unchanged, so its "DER" output was not DER
/// (X.690 8.1.2.2: numbers below 31 use the one-octet form).
#[test]
fn high_form_tag_below_31_is_refused() {
    let limits = BerLimits::default();
    for ber in [
        &[0x9f, 0x05, 0x00][..],
        &[0x9f, 0x00, 0x00],
        &[0x30, 0x03, 0x9f, 0x1e, 0x00],
        &[0x30, 0x80, 0x1f, 0x02, 0x01, 0x07, 0x00, 0x00],
    ] {
        assert!(
            matches!(to_der(ber, &limits), Err(BerError::InvalidTag { .. })),
            "{ber:02x?} was accepted"
        );
    }
}

/// `ber_tree`: a high-form tag whose first number octet is `80` (a leading
/// zero group) is not BER either (X.690 8.1.2.4.2 c).
#[test]
fn high_form_tag_with_leading_zero_group_is_refused() {
    let ber = [0x9f, 0x80, 0x1f, 0x00];
    assert!(matches!(
        to_der(&ber, &BerLimits::default()),
        Err(BerError::InvalidTag { offset: 0 })
    ));
}

/// The boundary: tag numbers from 31 up in the high form are DER and come
/// back unchanged.
#[test]
fn high_form_tags_from_31_are_kept() {
    let limits = BerLimits::default();
    for der in [
        &[0x9f, 0x1f, 0x01, 0xaa][..],
        &[0xbf, 0x81, 0x00, 0x02, 0x05, 0x00],
        &[0x30, 0x04, 0x5f, 0x7f, 0x01, 0x00],
    ] {
        assert_eq!(to_der(der, &limits).as_deref(), Ok(der));
    }
}

/// `plist_tree`: a check-in wrapping an array (`Payload`, `Status`, `UDID`)
/// of 59 nodes is 65 nodes with the root dictionary, its three keys and two
/// string values; the guard refused it under a 64-node limit, as it must,
/// while the fuzz target's own count had left out the root and the values
/// (the target was wrong, not the guard). Binary and XML count alike.
#[test]
fn keys_values_and_the_root_all_count_as_plist_nodes() {
    use mdm_enroll::wire::Limits;
    use mdm_enroll::wire::plist::{PlistError, decode};
    let mut payload = vec![plist::Value::Dictionary(plist::Dictionary::new())];
    payload.extend((0..56).map(|_| plist::Value::Boolean(true)));
    payload.push(plist::Value::String("x".into()));
    let mut root = plist::Dictionary::new();
    root.insert("Payload".into(), plist::Value::Array(payload));
    root.insert("Status".into(), "Idle".into());
    root.insert("UDID".into(), "UDID-1".into());
    let root = plist::Value::Dictionary(root);
    let (mut xml, mut binary) = (Vec::new(), Vec::new());
    root.to_writer_xml(&mut xml).expect("xml");
    root.to_writer_binary(&mut binary).expect("binary");
    for bytes in [&xml, &binary] {
        let limits = |n| Limits::default().with_binary_plist(true).with_max_nodes(n);
        assert!(
            matches!(
                decode(bytes, &limits(64)),
                Err(PlistError::TooManyNodes { max: 64 })
            ),
            "65 nodes under a 64-node limit"
        );
        assert!(
            decode(bytes, &limits(65)).is_ok(),
            "65 nodes at a 65-node limit"
        );
    }
}

/// `plist_tree`: a binary plist stores a string with any non-ASCII
/// character as UTF-16, and the guard charges such a string three bytes per
/// UTF-16 unit (the most UTF-8 one unit can become) without transcoding it
/// first. The fuzz target had counted the UTF-8 length: a tree of 4 087
/// UTF-8 bytes passed its "within a 4 KiB limit" check, but the guard charged
/// 4 120 and refused it (the target was wrong; `Limits::max_decoded_bytes`
/// now documents the charge). XML and ASCII strings are charged their UTF-8
/// length, so the same tree as XML fits.
#[test]
fn binary_utf16_strings_are_charged_three_bytes_per_unit() {
    use mdm_enroll::wire::Limits;
    use mdm_enroll::wire::plist::{PlistError, decode};
    // 17 UTF-16 units, 18 UTF-8 bytes: one two-byte character.
    let accented = "caf\u{e9} au lait, s'i";
    assert_eq!((accented.encode_utf16().count(), accented.len()), (17, 18));
    let tree = plist::Value::Array(vec![
        plist::Value::Data(vec![0x5a; 4032]),
        plist::Value::Array(vec![
            "x".repeat(22).into(),
            accented.into(),
            "y".repeat(15).into(),
            "".into(),
        ]),
    ]);
    let (mut xml, mut binary) = (Vec::new(), Vec::new());
    tree.to_writer_xml(&mut xml).expect("xml");
    tree.to_writer_binary(&mut binary).expect("binary");
    let limits = |n| {
        Limits::default()
            .with_binary_plist(true)
            .with_max_decoded_bytes(n)
    };
    let utf8 = 4032 + 22 + 18 + 15;
    let charged = 4032 + 22 + 3 * 17 + 15;
    assert_eq!(decode(&xml, &limits(utf8)).as_ref(), Ok(&tree));
    assert_eq!(
        decode(&xml, &limits(utf8 - 1)),
        Err(PlistError::DecodedTooLarge { max: utf8 - 1 })
    );
    assert_eq!(decode(&binary, &limits(charged)).as_ref(), Ok(&tree));
    assert_eq!(
        decode(&binary, &limits(charged - 1)),
        Err(PlistError::DecodedTooLarge { max: charged - 1 })
    );
    assert!(
        utf8 <= 4096 && 4096 < charged,
        "the finding's 4 KiB limit lies between the two counts"
    );
}
