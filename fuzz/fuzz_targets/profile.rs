//! Profile parsing: unsigned XML and CMS-signed `.mobileconfig` bytes.
//!
//! Properties: no panic; a profile that parses re-encodes to bytes that
//! parse back to the same profile; validation never panics.
#![no_main]

mod support;

use libfuzzer_sys::fuzz_target;
use mdm_enroll::profile::{self, Profile, ValidationOptions};
use mdm_enroll::wire::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default().with_max_body_bytes(1 << 20);
    let Ok(parsed) = profile::parse(data, &limits) else {
        return;
    };
    let p = parsed.profile;
    let _ = p.validate(&ValidationOptions::default());
    let _ = p.validate(&ValidationOptions::allowing_http());
    let xml = p.to_xml().expect("a parsed profile encodes");
    let again = match Profile::from_xml(&xml, &Limits::default()) {
        Ok(again) => again,
        Err(e) => panic!("our own output does not parse: {e}"),
    };
    support::assert_round_trip(&p, &again, Profile::to_plist);
});
