//! The APNs request that wakes a device or user channel, as data.
//!
//! The caller sends it: HTTP/2 `POST https://api.push.apple.com` (or
//! `api.development.push.apple.com`) + [`PushRequest::path`], TLS client
//! authentication with the MDM push certificate, headers from
//! [`PushRequest::headers`], body [`PushRequest::body`]. APNs answers 200, or
//! JSON `{"reason": ...}` (410: the token is no longer valid).

/// One APNs push for MDM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRequest {
    /// `/3/device/<lower-case hex token>`.
    pub path: String,
    /// The push topic (`apns-topic`), the `UID` of the push certificate.
    pub topic: String,
    /// The JSON body, exactly `{"mdm":"<PushMagic>"}`.
    pub body: Vec<u8>,
}

impl PushRequest {
    /// The push for a device `token` (from TokenUpdate `Token`), `topic` and `push_magic`.
    pub fn new(token: &[u8], topic: &str, push_magic: &str) -> Self {
        let mut path = String::with_capacity(10 + token.len() * 2);
        path.push_str("/3/device/");
        for b in token {
            path.push(hex_digit(b >> 4));
            path.push(hex_digit(b & 0x0F));
        }
        let mut body = String::with_capacity(12 + push_magic.len());
        body.push_str("{\"mdm\":\"");
        json_escape_into(&mut body, push_magic);
        body.push_str("\"}");
        Self {
            path,
            topic: topic.to_owned(),
            body: body.into_bytes(),
        }
    }

    /// The request headers: `apns-topic` and `content-type`.
    pub fn headers(&self) -> Vec<(String, String)> {
        vec![
            ("apns-topic".to_owned(), self.topic.clone()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ]
    }
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n & 0x0F), 16).unwrap_or('0')
}

/// Append `s` as the inside of a JSON string literal.
pub(crate) fn json_escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}
