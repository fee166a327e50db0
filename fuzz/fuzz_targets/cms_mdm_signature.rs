//! Mdm-Signature header verification and forwarded client certificates:
//! never panic. Input: header bytes, a 0xFF separator, body bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mdm_enroll::cms::mdm_signature::forwarded_certificate;
use mdm_enroll::cms::verify_mdm_signature;
use mdm_enroll::wire::BerLimits;

fuzz_target!(|data: &[u8]| {
    let limits = BerLimits::default();
    let (header, body) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    let _ = verify_mdm_signature(&header, body, &limits);
    let _ = forwarded_certificate(&header, &limits);
});
