//! Check-in decoding on arbitrary bytes: never a panic; an accepted
//! message re-encodes to a body that decodes to the same message.
//! Decoding straight from the bytes agrees with decoding the dictionary
//! first and interpreting it (the same message or the same refusal).
#![no_main]

mod support;

use libfuzzer_sys::fuzz_target;
use mdm_enroll::mdm::CheckinMessage;
use mdm_enroll::wire::Limits;
use plist::Value;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let direct = CheckinMessage::decode(data, &limits);
    let via_tree = mdm_enroll::wire::plist::decode_dict(data, &limits)
        .map_err(mdm_enroll::mdm::Error::from)
        .and_then(CheckinMessage::from_dictionary);
    support::assert_same_outcome(&direct, &via_tree, |m| Value::Dictionary(m.to_dictionary()));
    if let Ok(msg) = direct {
        let _ = msg.channel.id();
        let body = msg.encode().expect("a decoded message encodes");
        let again = CheckinMessage::decode(&body, &limits).expect("our encoding decodes");
        support::assert_round_trip(&msg, &again, |m| Value::Dictionary(m.to_dictionary()));
    }
});
