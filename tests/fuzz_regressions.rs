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
