//! A PKCS#12 file never panics: any input is an identity or a typed error.
//! Files without MAC reach bag decoding and decryption.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mdm_enroll::push::PushIdentity;
use mdm_enroll::push::pkcs12;

fuzz_target!(|data: &[u8]| {
    if let Ok(identity) = pkcs12::parse(data, "") {
        let _ = identity.chain.len();
    }
    let _ = PushIdentity::from_pkcs12(data, "pw");
});
