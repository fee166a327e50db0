//! Report decoding on arbitrary bytes: never a panic; an accepted report
//! re-encodes to a body that decodes to the same report.
#![no_main]

mod support;

use libfuzzer_sys::fuzz_target;
use mdm_enroll::mdm::Report;
use mdm_enroll::wire::Limits;
use plist::Value;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(report) = Report::decode(data, &limits) {
        let body = report.encode().expect("a decoded report encodes");
        let again = Report::decode(&body, &limits).expect("our encoding decodes");
        support::assert_round_trip(&report, &again, |r| Value::Dictionary(r.to_dictionary()));
    }
});
