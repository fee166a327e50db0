//! PKIMessage decoding, signature verification and envelope decoding, plus
//! the HTTP binding (the `message=` query), on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mdm_enroll::cms::enveloped::EnvelopedData;
use mdm_enroll::http::{Method, Request};
use mdm_enroll::scep::transport::parse_request;
use mdm_enroll::scep::{IssuerAndSubject, PkiMessage};
use mdm_enroll::wire::BerLimits;

fuzz_target!(|data: &[u8]| {
    let limits = BerLimits::default();
    if let Ok(msg) = PkiMessage::decode(data, &limits) {
        let _ = msg.verify();
        let _ = msg.signer_certificate();
        if let Ok(env) = msg.envelope(&limits) {
            let _ = env.recipients.len();
        }
    }
    let _ = EnvelopedData::parse(data, &limits);
    let _ = IssuerAndSubject::decode(data, &limits);
    if let Ok(text) = std::str::from_utf8(data) {
        let mut req = Request::new(Method::Get, "/scep");
        req.query = Some(text.to_owned());
        let _ = parse_request(&req, 1 << 16);
    }
});
