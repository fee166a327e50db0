//! DDM status report decoding on arbitrary bytes: never a panic; an
//! accepted report keeps tokens within the protocol's 64 octets, and its
//! status items re-encode to JSON that parses to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mdm_enroll::ddm::StatusReport;
use mdm_enroll::wire::Limits;
use mdm_enroll::wire::json::{self, JsonLimits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(report) = StatusReport::decode(data, &limits) {
        for d in report.declarations.iter().flatten() {
            assert!(d.server_token.as_str().len() <= 64);
        }
        let text = report.status_items.encode();
        // Re-encoding may lengthen escapes (`\b` → `\u0008`): no size bound here.
        let again_limits = JsonLimits::from(&limits).with_max_bytes(usize::MAX);
        let again = json::parse(text.as_bytes(), again_limits).expect("our encoding parses");
        assert_eq!(again, report.status_items);
    }
});
