//! Check-in decoding on arbitrary bytes: never a panic; an accepted
//! message re-encodes to a body that decodes to the same message.
#![no_main]

mod support;

use libfuzzer_sys::fuzz_target;
use mdm_enroll::mdm::CheckinMessage;
use mdm_enroll::wire::Limits;
use plist::Value;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(msg) = CheckinMessage::decode(data, &limits) {
        let _ = msg.channel.id();
        let body = msg.encode().expect("a decoded message encodes");
        let again = CheckinMessage::decode(&body, &limits).expect("our encoding decodes");
        support::assert_round_trip(&msg, &again, |m| Value::Dictionary(m.to_dictionary()));
    }
});
