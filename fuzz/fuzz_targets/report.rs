//! Report decoding on arbitrary bytes: never a panic; an accepted report
//! re-encodes to a body that decodes to the same report.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mdm_enroll::mdm::Report;
use mdm_enroll::wire::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(report) = Report::decode(data, &limits) {
        let again = Report::decode(&report.encode(), &limits);
        if !format!("{report:?}").contains("NaN") {
            assert_eq!(again.as_ref(), Ok(&report));
        }
    }
});
