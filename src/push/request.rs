//! The APNs request that wakes a device or user channel, as data.
//!
//! The caller sends it: HTTP/2 [`PushRequest::METHOD`] to the APNs gateway
//! (`https://api.push.apple.com`, or `api.sandbox.push.apple.com` for
//! development certificates) + [`PushRequest::path`], TLS client
//! authentication with the MDM push certificate, headers from
//! [`PushRequest::headers`], body [`PushRequest::body`]. The answer becomes a
//! [`PushOutcome`](super::PushOutcome).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::activation::PushTarget;
use crate::wire::json::escape_into;

/// `apns-priority`: how soon APNs delivers the push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PushPriority {
    /// `10`: deliver immediately (the default, and what MDM servers use).
    #[default]
    Immediate,
    /// `5`: deliver at a time that saves the device's power.
    PowerConsiderate,
}

impl PushPriority {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Immediate => "10",
            Self::PowerConsiderate => "5",
        }
    }
}

/// How pushes are sent: priority and how long APNs keeps an undelivered push.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PushOptions {
    /// `apns-priority` (default [`PushPriority::Immediate`]).
    pub priority: PushPriority,
    /// How long APNs stores the push while the device is offline: the
    /// `apns-expiration` header is `now` + this, in UNIX seconds. `None`
    /// (the default) sends `0`: deliver once, store nothing.
    pub time_to_live: Option<Duration>,
}

impl PushOptions {
    /// Options with `priority` and `time_to_live`.
    pub fn new(priority: PushPriority, time_to_live: Option<Duration>) -> Self {
        Self {
            priority,
            time_to_live,
        }
    }
}

/// One APNs push for MDM. `Debug` prints neither the device token (in
/// `path`) nor the push magic (in `body`).
#[derive(Clone, PartialEq, Eq)]
pub struct PushRequest {
    /// `/3/device/<lower-case hex token>`.
    pub path: String,
    /// The push topic (`apns-topic`), the `UID` of the push certificate.
    pub topic: String,
    /// The JSON body, exactly `{"mdm":"<PushMagic>"}`.
    pub body: Vec<u8>,
    /// `apns-priority`.
    pub priority: PushPriority,
    /// `apns-expiration`: UNIX seconds after which APNs drops the push; `0`
    /// means "try once, do not store".
    pub expiration: u64,
}

impl std::fmt::Debug for PushRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::redact::{Redacted, RedactedBytes};
        f.debug_struct("PushRequest")
            .field("path", &Redacted)
            .field("topic", &self.topic)
            .field("body", &RedactedBytes(self.body.len()))
            .field("priority", &self.priority)
            .field("expiration", &self.expiration)
            .finish()
    }
}

impl PushRequest {
    /// The HTTP method of every APNs push.
    pub const METHOD: &'static str = "POST";

    /// The push for a device `token` (from TokenUpdate `Token`), `topic` and
    /// `push_magic`, with priority 10 and expiration 0.
    pub fn new(token: &[u8], topic: &str, push_magic: &str) -> Self {
        Self::with_options(
            token,
            topic,
            push_magic,
            &PushOptions::default(),
            UNIX_EPOCH,
        )
    }

    /// The push with `options`; `now` anchors the expiration time.
    pub fn with_options(
        token: &[u8],
        topic: &str,
        push_magic: &str,
        options: &PushOptions,
        now: SystemTime,
    ) -> Self {
        let mut path = String::with_capacity(10 + token.len() * 2);
        path.push_str("/3/device/");
        path.push_str(&crate::wire::hex::lower(token));
        let mut body = String::with_capacity(12 + push_magic.len());
        body.push_str("{\"mdm\":\"");
        escape_into(&mut body, push_magic);
        body.push_str("\"}");
        let expiration = options
            .time_to_live
            .and_then(|ttl| now.checked_add(ttl))
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        Self {
            path,
            topic: topic.to_owned(),
            body: body.into_bytes(),
            priority: options.priority,
            expiration,
        }
    }

    /// The push that wakes the channel a [`PushTarget`] describes.
    pub fn for_target(target: &PushTarget, options: &PushOptions, now: SystemTime) -> Self {
        Self::with_options(
            &target.token,
            &target.topic,
            &target.push_magic,
            options,
            now,
        )
    }

    /// The request headers, in this order: `apns-topic`, `apns-push-type`
    /// (`mdm`), `apns-priority`, `apns-expiration`, `content-type`.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("apns-topic", self.topic.clone()),
            ("apns-push-type", "mdm".to_owned()),
            ("apns-priority", self.priority.as_str().to_owned()),
            ("apns-expiration", self.expiration.to_string()),
            ("content-type", "application/json".to_owned()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_path_headers_and_body() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let opts = PushOptions::new(
            PushPriority::PowerConsiderate,
            Some(Duration::from_secs(3600)),
        );
        let r =
            PushRequest::with_options(&[0x0a, 0xff, 0x10], "com.apple.mgmt.X", "m\"\\", &opts, now);
        assert_eq!(PushRequest::METHOD, "POST");
        assert_eq!(r.path, "/3/device/0aff10");
        assert_eq!(r.body, br#"{"mdm":"m\"\\"}"#);
        assert_eq!(
            r.headers(),
            vec![
                ("apns-topic", "com.apple.mgmt.X".to_owned()),
                ("apns-push-type", "mdm".to_owned()),
                ("apns-priority", "5".to_owned()),
                ("apns-expiration", "1800003600".to_owned()),
                ("content-type", "application/json".to_owned()),
            ]
        );
    }

    #[test]
    fn defaults_are_priority_10_and_no_storage() {
        let r = PushRequest::new(&[1], "t", "m");
        assert_eq!(r.priority.as_str(), "10");
        assert_eq!(r.expiration, 0);
        let target = PushTarget {
            topic: "t".into(),
            token: vec![1],
            push_magic: "m".into(),
        };
        let now = UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(
            PushRequest::for_target(&target, &PushOptions::default(), now),
            r
        );
    }
}
