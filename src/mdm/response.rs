//! Replies to check-in (and connect) requests, as [`Response`] values.
//!
//! | request | reply |
//! |---|---|
//! | Authenticate, TokenUpdate, CheckOut, SetBootstrapToken, DeclarativeManagement `status` | [`ok`] |
//! | UserAuthenticate (1st) | [`decline_user`] (410) or [`digest_challenge`] |
//! | GetBootstrapToken | [`bootstrap_token`] |
//! | GetToken | [`token_data`] |
//! | DeclarativeManagement (other endpoints) | [`declarative_management`] |
//! | unknown device (macOS 14+/iOS 17+) | [`unrecognized_device`] (403: the device unenrolls) |
//!
//! Never answer 401 unless you mean it: devices unenroll on 401.

use plist::{Dictionary, Value};

use crate::http::{Response, media_type};
use crate::wire::json::escape_into as json_escape_into;
use crate::wire::plist::{PlistError, encode_xml};

/// The `code` of the 403 reply that makes a device unenroll.
pub const UNRECOGNIZED_DEVICE: &str = "com.apple.unrecognized.device";

fn plist_reply(status: u16, dict: Dictionary) -> Result<Response, PlistError> {
    Ok(Response::with_body(
        status,
        media_type::XML,
        encode_xml(&Value::Dictionary(dict))?,
    ))
}

/// `200 OK` with an empty body (also ends a connect session).
pub fn ok() -> Response {
    Response::empty(200)
}

/// `200` with `{DigestChallenge: challenge}` for a first UserAuthenticate;
/// an empty `challenge` accepts the user without authentication.
pub fn digest_challenge(challenge: &str) -> Result<Response, PlistError> {
    let mut d = Dictionary::new();
    d.insert(
        "DigestChallenge".into(),
        Value::String(challenge.to_owned()),
    );
    plist_reply(200, d)
}

/// `410 Gone`: decline to manage this user (UserAuthenticate).
pub fn decline_user() -> Response {
    Response::empty(410)
}

/// The GetBootstrapToken reply: `{BootstrapToken: <data>}`, or an empty
/// `200` when no token is stored.
pub fn bootstrap_token(token: Option<&[u8]>) -> Result<Response, PlistError> {
    match token {
        None => Ok(ok()),
        Some(t) => {
            let mut d = Dictionary::new();
            d.insert("BootstrapToken".into(), Value::Data(t.to_vec()));
            plist_reply(200, d)
        }
    }
}

/// The GetToken reply: `{TokenData: <data>}` (UTF-8 bytes if the token is a string).
pub fn token_data(data: &[u8]) -> Result<Response, PlistError> {
    let mut d = Dictionary::new();
    d.insert("TokenData".into(), Value::Data(data.to_vec()));
    plist_reply(200, d)
}

/// A DeclarativeManagement reply: `200` with a JSON body the caller built
/// (tokens, declaration-items, or a declaration).
pub fn declarative_management(json: Vec<u8>) -> Response {
    Response::with_body(200, media_type::JSON, json)
}

/// Body format of an error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// An XML plist (`application/xml`).
    Plist,
    /// JSON (`application/json`).
    Json,
}

/// `403` with `{code: "com.apple.unrecognized.device", description?, message?}`:
/// the device unenrolls (macOS 14+, iOS 17+; irreversible for the device).
/// `description` is logged by the device, `message` may be shown to the user.
pub fn unrecognized_device(
    format: ErrorFormat,
    description: Option<&str>,
    message: Option<&str>,
) -> Result<Response, PlistError> {
    let fields = [
        ("code", Some(UNRECOGNIZED_DEVICE)),
        ("description", description),
        ("message", message),
    ];
    match format {
        ErrorFormat::Plist => {
            let mut d = Dictionary::new();
            for (k, v) in fields {
                if let Some(v) = v {
                    d.insert(k.into(), Value::String(v.to_owned()));
                }
            }
            plist_reply(403, d)
        }
        ErrorFormat::Json => {
            let mut s = String::from("{");
            for (k, v) in fields {
                if let Some(v) = v {
                    if s.len() > 1 {
                        s.push(',');
                    }
                    s.push('"');
                    s.push_str(k);
                    s.push_str("\":\"");
                    json_escape_into(&mut s, v);
                    s.push('"');
                }
            }
            s.push('}');
            Ok(Response::with_body(403, media_type::JSON, s.into_bytes()))
        }
    }
}
