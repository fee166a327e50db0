//! Report decoding on arbitrary bytes: never a panic; an accepted report
//! re-encodes to a body that decodes to the same report.
//! Decoding straight from the bytes agrees with decoding the dictionary
//! first and interpreting it (the same message or the same refusal).
#![no_main]

mod support;

use libfuzzer_sys::fuzz_target;
use mdm_enroll::mdm::Report;
use mdm_enroll::wire::Limits;
use plist::Value;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let direct = Report::decode(data, &limits);
    let via_tree = mdm_enroll::wire::plist::decode_dict(data, &limits)
        .map_err(mdm_enroll::mdm::Error::from)
        .and_then(Report::from_dictionary);
    support::assert_same_outcome(&direct, &via_tree, |r| Value::Dictionary(r.to_dictionary()));
    if let Ok(report) = direct {
        let body = report.encode().expect("a decoded report encodes");
        let again = Report::decode(&body, &limits).expect("our encoding decodes");
        support::assert_round_trip(&report, &again, |r| Value::Dictionary(r.to_dictionary()));
    }
});
