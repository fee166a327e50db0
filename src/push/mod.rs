//! Waking devices through APNs, sans-IO.
//!
//! A device acts on MDM commands only when it connects; after its first
//! TokenUpdate it connects when the server pushes to it. This module holds
//! everything about that push except the socket:
//!
//! - [`certificate`]: the MDM push certificate ([`PushCertificate`]): its
//!   topic, validity and key ([`PushIdentity`]).
//! - [`pkcs12`]: the identity from a `.p12` file ([`PushIdentity::from_pkcs12`]).
//! - [`request`]: the APNs request for a channel ([`PushRequest`]).
//! - [`response`]: what APNs answered ([`PushOutcome`], [`Reason`]).
//! - [`policy`]: when to retry or push again ([`Backoff`], [`RepushPolicy`]).
//! - `apns` (feature `apns`): an HTTP/2 client that sends [`PushRequest`]s.

pub mod certificate;
pub mod pkcs12;
pub mod policy;
pub mod request;
pub mod response;

#[cfg(feature = "apns")]
pub mod apns;

pub use certificate::{MDM_TOPIC_PREFIX, PushCertificate, PushCertificateError, PushIdentity};
pub use policy::{Backoff, RepushPolicy};
pub use request::{PushOptions, PushPriority, PushRequest};
pub use response::{PushOutcome, Reason};
