//! PKCS#10 parsing, self-signature verification and challengePassword
//! extraction on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mdm_enroll::scep::Csr;
use mdm_enroll::wire::BerLimits;

fuzz_target!(|data: &[u8]| {
    if let Ok(csr) = Csr::parse(data, &BerLimits::default()) {
        let _ = csr.challenge_password().map(|c| c.expose().len());
        let _ = csr.requested_extensions().len();
        let _ = csr.subject().to_string();
    }
});
