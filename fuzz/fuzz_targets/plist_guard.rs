//! The plist guard on arbitrary bytes: never a panic, stack overflow or
//! runaway allocation; whatever XML it accepts, `encode_xml` writes a
//! document it accepts again, with the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mdm_enroll::wire::Limits;
use mdm_enroll::wire::plist::{decode, encode_xml};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(value) = decode(data, &limits) {
        let again = decode(
            &encode_xml(&value),
            &Limits {
                max_body_bytes: usize::MAX,
                ..limits
            },
        )
        .expect("encode_xml output must decode");
        // NaN reals are the only values not equal to themselves.
        if !format!("{value:?}").contains("NaN") {
            assert_eq!(again, value);
        }
    }
    // Binary plists, budgeted, with small limits so bombs hit them quickly.
    let small = Limits {
        allow_binary_plist: true,
        max_nodes: 10_000,
        max_decoded_bytes: 1 << 20,
        max_depth: 32,
        ..Limits::default()
    };
    let _ = decode(data, &small);
});
