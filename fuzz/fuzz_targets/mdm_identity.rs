//! `client_identity` with a certificate cache shared across executions,
//! against the same call without one: the cache may only save decoding,
//! never change an answer. Input: as `cms_mdm_signature` (header bytes, a
//! 0xFF separator, body bytes) for the Mdm-Signature path; the whole input is
//! also presented as a TLS client certificate.
//!
//! Properties:
//! - never a panic;
//! - cached and uncached calls agree (the same certificate, or the same
//!   error), on a miss and again on a likely hit;
//! - the cache never holds more than its capacity.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mdm_enroll::cms::{CertificateCache, IdentityOptions, client_identity};
use mdm_enroll::http::{Method, Request};

/// Small, so entries are evicted and replaced all the time.
const CAPACITY: usize = 4;

fn cached() -> &'static IdentityOptions {
    static O: OnceLock<IdentityOptions> = OnceLock::new();
    O.get_or_init(|| IdentityOptions::default().with_certificates(CertificateCache::new(CAPACITY)))
}

fn uncached() -> &'static IdentityOptions {
    static O: OnceLock<IdentityOptions> = OnceLock::new();
    O.get_or_init(|| IdentityOptions::default().with_certificates(CertificateCache::new(0)))
}

/// Both calls' answers, comparable: the certificate's DER or the error.
fn answer(request: &Request, options: &IdentityOptions) -> Result<Option<Vec<u8>>, String> {
    client_identity(request, options)
        .map(|id| id.map(|id| id.certificate.der().to_vec()))
        .map_err(|e| format!("{e:?}"))
}

fn agree(request: &Request) {
    let expected = answer(request, uncached());
    for round in 0..2 {
        assert_eq!(
            answer(request, cached()),
            expected,
            "the cache changed the answer (round {round})"
        );
    }
    assert!(cached().certificates.len() <= CAPACITY);
    assert!(uncached().certificates.is_empty());
}

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut signed = Request::new(Method::Put, "/mdm/connect");
    signed.headers.push((
        "Mdm-Signature".into(),
        String::from_utf8_lossy(header).into_owned(),
    ));
    signed.body = body.to_vec();
    agree(&signed);

    let mut tls = Request::new(Method::Put, "/mdm/connect");
    tls.tls_client_certificate = Some(data.to_vec());
    agree(&tls);
});
