//! What an APNs answer means: [`PushOutcome`].
//!
//! APNs answers 200 with an `apns-id` header, or an error status with a small
//! JSON body `{"reason":"…"}` (410 adds `"timestamp"`: when the token stopped
//! being valid, in milliseconds since the UNIX epoch). The body is read by the
//! bounded [`crate::wire::json::flat_object`] reader, at most
//! [`MAX_BODY_BYTES`]; a body that cannot be read leaves the outcome to the
//! status alone ([`Reason::Missing`]).

use std::time::Duration;

use super::policy::Backoff;
use crate::wire::json::{Scalar, flat_object};

/// The largest APNs error body read (APNs sends well under 200 bytes).
pub const MAX_BODY_BYTES: usize = 4096;

/// Declares [`Reason`] with its wire names.
macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// An APNs error `reason`, as Apple documents them.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Reason {
            $($(#[$doc])* $name,)*
            /// The body held no readable `reason`.
            Missing,
            /// A reason this crate does not know, as sent.
            Other(String),
        }

        impl Reason {
            /// The reason for the wire name `s`.
            pub fn parse(s: &str) -> Self {
                match s {
                    $(stringify!($name) => Self::$name,)*
                    _ => Self::Other(s.to_owned()),
                }
            }

            /// The wire name (empty for [`Reason::Missing`]).
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$name => stringify!($name),)*
                    Self::Missing => "",
                    Self::Other(s) => s,
                }
            }
        }
    };
}

reasons! {
    /// 400: the collapse identifier is too long.
    BadCollapseId,
    /// 400: the device token is invalid (the token is not usable again).
    BadDeviceToken,
    /// 400: the `apns-expiration` value is invalid.
    BadExpirationDate,
    /// 400: the `apns-id` value is invalid.
    BadMessageId,
    /// 400: the `apns-priority` value is invalid.
    BadPriority,
    /// 400: the `apns-topic` value is invalid.
    BadTopic,
    /// 400: the token does not match the topic (the token is not usable for it).
    DeviceTokenNotForTopic,
    /// 400: a header was repeated.
    DuplicateHeaders,
    /// 400: idle timeout.
    IdleTimeout,
    /// 400: the `apns-push-type` value is invalid.
    InvalidPushType,
    /// 400: no device token in the path.
    MissingDeviceToken,
    /// 400: no `apns-topic`, and the certificate has several topics.
    MissingTopic,
    /// 400: the body is empty.
    PayloadEmpty,
    /// 400: pushing to this topic is not allowed.
    TopicDisallowed,
    /// 403: the certificate is invalid.
    BadCertificate,
    /// 403: the certificate is for the other environment (sandbox/production).
    BadCertificateEnvironment,
    /// 403: the provider token is stale.
    ExpiredProviderToken,
    /// 403: the action is not allowed.
    Forbidden,
    /// 403: the provider token is invalid.
    InvalidProviderToken,
    /// 403: no certificate and no provider token.
    MissingProviderToken,
    /// 404: the request path is wrong.
    BadPath,
    /// 405: only POST is accepted.
    MethodNotAllowed,
    /// 410: the device token has expired.
    ExpiredToken,
    /// 410: the token is no longer active for the topic.
    Unregistered,
    /// 413: the body is too large.
    PayloadTooLarge,
    /// 429: the provider token was updated too often.
    TooManyProviderTokenUpdates,
    /// 429: too many requests to the same device token.
    TooManyRequests,
    /// 500: APNs failed internally.
    InternalServerError,
    /// 503: APNs is unavailable.
    ServiceUnavailable,
    /// 503: APNs is shutting down.
    Shutdown,
}

/// What happened to one push.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// 200: APNs accepted the push.
    Delivered {
        /// The `apns-id` response header, if sent.
        apns_id: Option<String>,
    },
    /// APNs refused the request (400, 404, 405, 413 and other client errors);
    /// sending it again will not help.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Why.
        reason: Reason,
    },
    /// 403: the push certificate is not accepted (expired, revoked, wrong
    /// environment). No push with it will succeed.
    CertificateProblem {
        /// Why.
        reason: Reason,
    },
    /// 410: the device token is no longer valid; push again only after the
    /// channel's next TokenUpdate.
    Unregistered {
        /// When APNs found the token invalid, in milliseconds since the UNIX epoch.
        timestamp: Option<u64>,
        /// Why ([`Reason::Unregistered`] or [`Reason::ExpiredToken`]).
        reason: Reason,
    },
    /// 429, 500, 503 (and other 5xx): try again after `after`.
    Retry {
        /// The HTTP status.
        status: u16,
        /// Why.
        reason: Reason,
        /// The wait before the next attempt: `Retry-After` (delta-seconds,
        /// at most the backoff's cap) if present, else the backoff for this
        /// attempt. An HTTP-date `Retry-After` is not read (APNs sends none).
        after: Duration,
    },
}

impl PushOutcome {
    /// The outcome of attempt number `attempt` (1 = first) that APNs answered
    /// with `status`, `headers` (names matched case-insensitively) and `body`;
    /// `backoff` gives the retry delay when the answer names none.
    pub fn from_response(
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
        attempt: u32,
        backoff: &Backoff,
    ) -> Self {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim())
        };
        if status == 200 {
            return Self::Delivered {
                apns_id: header("apns-id").map(str::to_owned),
            };
        }
        let (reason, timestamp) = read_body(body);
        match status {
            403 => Self::CertificateProblem { reason },
            410 => Self::Unregistered { timestamp, reason },
            429 | 500..=599 => Self::Retry {
                status,
                reason,
                after: header("retry-after")
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(backoff.cap))
                    .unwrap_or_else(|| backoff.delay(attempt)),
            },
            _ => Self::Rejected { status, reason },
        }
    }

    /// Whether APNs accepted the push.
    pub fn is_delivered(&self) -> bool {
        matches!(self, Self::Delivered { .. })
    }

    /// Whether the device token must not be pushed again until the channel's
    /// next TokenUpdate: 410, and 400 `BadDeviceToken` / `DeviceTokenNotForTopic`.
    pub fn token_invalid(&self) -> bool {
        match self {
            Self::Unregistered { .. } => true,
            Self::Rejected { reason, .. } => {
                matches!(
                    reason,
                    Reason::BadDeviceToken | Reason::DeviceTokenNotForTopic
                )
            }
            _ => false,
        }
    }

    /// The delay before another attempt, if the push may be retried.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retry { after, .. } => Some(*after),
            _ => None,
        }
    }

    /// The HTTP status this outcome came from.
    pub fn status(&self) -> u16 {
        match self {
            Self::Delivered { .. } => 200,
            Self::Rejected { status, .. } | Self::Retry { status, .. } => *status,
            Self::CertificateProblem { .. } => 403,
            Self::Unregistered { .. } => 410,
        }
    }

    /// The APNs reason, if the answer was an error.
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Self::Delivered { .. } => None,
            Self::Rejected { reason, .. }
            | Self::CertificateProblem { reason }
            | Self::Unregistered { reason, .. }
            | Self::Retry { reason, .. } => Some(reason),
        }
    }
}

/// `reason` and `timestamp` of an APNs error body; unreadable ⇒ nothing.
fn read_body(body: &[u8]) -> (Reason, Option<u64>) {
    let Ok(members) = flat_object(body, MAX_BODY_BYTES) else {
        return (Reason::Missing, None);
    };
    let mut reason = Reason::Missing;
    let mut timestamp = None;
    for (k, v) in members {
        match (k.as_str(), v) {
            ("reason", Scalar::String(s)) => reason = Reason::parse(&s),
            ("timestamp", Scalar::Integer(t)) => timestamp = u64::try_from(t).ok(),
            _ => {}
        }
    }
    (reason, timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: u16, headers: &[(&str, &str)], body: &str, attempt: u32) -> PushOutcome {
        let b = Backoff::new(Duration::from_secs(1), 2, Duration::from_secs(30));
        PushOutcome::from_response(status, headers, body.as_bytes(), attempt, &b)
    }

    #[test]
    fn delivered_keeps_the_apns_id() {
        let o = outcome(200, &[("APNS-ID", "abc")], "", 1);
        assert_eq!(
            o,
            PushOutcome::Delivered {
                apns_id: Some("abc".into())
            }
        );
        assert!(o.is_delivered() && !o.token_invalid() && o.reason().is_none());
    }

    #[test]
    fn bad_tokens_invalidate_other_rejections_do_not() {
        let o = outcome(400, &[], r#"{"reason":"BadDeviceToken"}"#, 1);
        assert_eq!(
            o,
            PushOutcome::Rejected {
                status: 400,
                reason: Reason::BadDeviceToken
            }
        );
        assert!(o.token_invalid());
        assert!(outcome(400, &[], r#"{"reason":"DeviceTokenNotForTopic"}"#, 1).token_invalid());
        let t = outcome(400, &[], r#"{"reason":"TopicDisallowed"}"#, 1);
        assert!(!t.token_invalid() && t.retry_after().is_none());
        assert_eq!(
            outcome(400, &[], r#"{"reason":"SomethingNew"}"#, 1).reason(),
            Some(&Reason::Other("SomethingNew".into()))
        );
        assert_eq!(
            outcome(413, &[], "not json", 1).reason(),
            Some(&Reason::Missing)
        );
    }

    #[test]
    fn certificate_problems_and_unregistered() {
        assert_eq!(
            outcome(403, &[], r#"{"reason":"BadCertificateEnvironment"}"#, 1),
            PushOutcome::CertificateProblem {
                reason: Reason::BadCertificateEnvironment
            }
        );
        let o = outcome(
            410,
            &[],
            r#"{"reason":"Unregistered","timestamp":1700000000123}"#,
            1,
        );
        assert_eq!(
            o,
            PushOutcome::Unregistered {
                timestamp: Some(1_700_000_000_123),
                reason: Reason::Unregistered
            }
        );
        assert!(o.token_invalid() && o.status() == 410);
    }

    #[test]
    fn retries_honour_retry_after_else_back_off() {
        let o = outcome(
            429,
            &[("retry-after", "7")],
            r#"{"reason":"TooManyRequests"}"#,
            1,
        );
        assert_eq!(o.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(o.reason(), Some(&Reason::TooManyRequests));
        assert_eq!(
            outcome(503, &[], "", 3).retry_after(),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            outcome(500, &[("Retry-After", "9999")], "", 1).retry_after(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            outcome(502, &[("Retry-After", "soon")], "", 10).retry_after(),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn reasons_round_trip() {
        for r in [
            "BadDeviceToken",
            "Unregistered",
            "Shutdown",
            "TopicDisallowed",
        ] {
            assert_eq!(Reason::parse(r).as_str(), r);
            assert!(!matches!(Reason::parse(r), Reason::Other(_)));
        }
    }
}
