//! An APNs answer (status, headers, body) never panics and never reads past
//! the body limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mdm_enroll::push::{Backoff, PushOutcome};

fuzz_target!(|data: &[u8]| {
    let (status, rest) = match data {
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
        _ => return,
    };
    let (retry_after, body) = rest.split_at(rest.len().min(4));
    let retry_after = String::from_utf8_lossy(retry_after);
    let headers = [("retry-after", retry_after.as_ref()), ("apns-id", "x")];
    let o = PushOutcome::from_response(
        status,
        &headers,
        body,
        u32::from(status),
        &Backoff::default(),
    );
    let _ = (o.token_invalid(), o.retry_after(), o.status(), o.reason());
    let _ = mdm_enroll::wire::json::flat_object(body, 4096);
});
