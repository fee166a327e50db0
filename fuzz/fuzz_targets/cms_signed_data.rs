//! CMS SignedData reader and signer verification: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mdm_enroll::cms::SignedData;
use mdm_enroll::wire::BerLimits;

fuzz_target!(|data: &[u8]| {
    if let Ok(sd) = SignedData::parse(data, &BerLimits::default()) {
        let _ = sd.content();
        for c in sd.certificates() {
            let _ = (c.subject_string(), c.issuer_string(), c.public_key());
            let _ = (c.key_usage(), c.extended_key_usage(), c.is_ca());
        }
        for (i, s) in sd.signers().iter().enumerate() {
            if let Some(a) = s.signed_attributes() {
                let _ = (a.content_type(), a.message_digest(), a.signing_time());
            }
            let _ = sd.verify_signer(i, None);
            let _ = sd.verify_signer(i, Some(b"detached"));
        }
    }
});
