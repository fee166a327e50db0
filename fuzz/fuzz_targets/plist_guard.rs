//! The plist guard on arbitrary bytes: never a panic, stack overflow or
//! runaway allocation; whatever XML it accepts, `encode_xml` writes a
//! document it accepts again, with the same value; and whatever reads as a
//! command, `Command::encode` writes as `encode_xml` writes its value.
#![no_main]

mod support;

use libfuzzer_sys::fuzz_target;
use mdm_enroll::mdm::Command;
use mdm_enroll::wire::Limits;
use mdm_enroll::wire::plist::{decode, encode_xml};
use plist::Value;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(value) = decode(data, &limits) {
        // The guard refuses U+0000, the one character encode_xml refuses.
        let xml = encode_xml(&value).expect("a decoded value encodes");
        let again = decode(&xml, &limits.with_max_body_bytes(usize::MAX))
            .expect("encode_xml output must decode");
        support::assert_round_trip(&value, &again, Value::clone);
        if let Ok(command) = Command::decode(data, &limits) {
            assert_eq!(
                command.encode(),
                encode_xml(&command.to_value()),
                "a command written from its fields"
            );
        }
    }
    // Binary plists, budgeted, with small limits so bombs hit them quickly.
    let small = Limits::default()
        .with_binary_plist(true)
        .with_max_nodes(10_000)
        .with_max_decoded_bytes(1 << 20)
        .with_max_depth(32);
    let _ = decode(data, &small);
});
