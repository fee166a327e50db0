//! `inspect checkin`: a check-in body (`application/x-apple-aspen-mdm-checkin`).

use mdm_enroll::mdm::CheckinMessage;
use mdm_enroll::wire::Limits;

use crate::json;

/// The message with Apple's key names, plus `"channel"`.
pub fn inspect(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let msg = CheckinMessage::decode(bytes, &Limits::default()).map_err(|e| e.to_string())?;
    let mut out = json::object(&msg.to_dictionary());
    out.insert("channel".into(), json::channel(&msg.channel));
    Ok(serde_json::Value::Object(out))
}
