//! Device-attribute requests: the full verifier on arbitrary CMS, and the
//! attribute plist decoder on arbitrary bytes. Never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mdm_enroll::cms::{DeviceAttributes, DeviceAttributesVerifier, TrustAnchors};
use mdm_enroll::wire::Limits;

fuzz_target!(|data: &[u8]| {
    let verifier = DeviceAttributesVerifier::new(TrustAnchors::new());
    let _ = verifier.verify(data, None);
    let _ = DeviceAttributes::from_plist(data, &Limits::default());
});
