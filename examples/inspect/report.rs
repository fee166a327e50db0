//! `inspect report`: a command report body (`application/x-apple-aspen-mdm`).

use mdm_enroll::mdm::Report;
use mdm_enroll::wire::Limits;

use crate::json;

/// The report with Apple's key names (results included), plus `"channel"`.
pub fn inspect(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let report = Report::decode(bytes, &Limits::default()).map_err(|e| e.to_string())?;
    let mut out = json::object(&report.to_dictionary());
    out.insert("channel".into(), json::channel(&report.channel));
    Ok(serde_json::Value::Object(out))
}
