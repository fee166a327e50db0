//! Check-in decoding on arbitrary bytes: never a panic; an accepted
//! message re-encodes to a body that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mdm_enroll::mdm::CheckinMessage;
use mdm_enroll::wire::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(msg) = CheckinMessage::decode(data, &limits) {
        let _ = msg.channel.id();
        let again = CheckinMessage::decode(&msg.encode(), &limits);
        if !format!("{msg:?}").contains("NaN") {
            assert_eq!(again.as_ref(), Ok(&msg));
        }
    }
});
