//! BER → DER normaliser: never panics; DER output is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mdm_enroll::wire::BerLimits;
use mdm_enroll::wire::ber::{Element, to_der};

fuzz_target!(|data: &[u8]| {
    let limits = BerLimits::default();
    if let Ok(der) = to_der(data, &limits) {
        // Normalising DER again changes nothing.
        let again = to_der(&der, &limits).expect("DER output must parse");
        assert_eq!(again, der);
        let el = Element::parse(&der, &limits).expect("DER output must parse");
        assert_eq!(el.raw, der.as_slice());
    }
});
