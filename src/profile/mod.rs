//! `.mobileconfig` configuration profiles: typed payloads, building,
//! validation and parsing.
//!
//! - [`Profile`]: the top level (`Configuration`, or the OTA `Profile Service`
//!   profile whose `PayloadContent` is a dictionary), encoded with
//!   [`Profile::to_xml`] and decoded with [`Profile::from_xml`] / [`parse`].
//! - [`Payload`] / [`PayloadKind`]: the payloads activation needs
//!   ([`MdmPayload`], [`ScepPayload`], [`AcmePayload`], [`CertificatePayload`])
//!   typed, every other payload as a dictionary.
//! - [`Profile::validate`]: what Apple's installer would refuse, as typed
//!   [`ProfileError`]s naming the payload and key.
//! - [`Profile::sign`] / [`SignedProfile`]: CMS SignedData, content attached,
//!   signer chain included, served as `application/x-apple-aspen-config`.
//! - [`PayloadUuid`]: upper-case UUID v4 from an injected RNG.
//!
//! Unknown keys of a typed payload are kept in its `extra` dictionary, so a
//! parsed profile re-encodes without losing anything.

mod dict;
mod parse;
mod payload;
mod sign;
mod top;
mod uuid;
mod validate;

pub use parse::{ParsedProfile, ProfileSignature, parse};
pub use payload::{
    AccessRights, AcmePayload, CAPABILITY_BOOTSTRAP_TOKEN, CAPABILITY_PER_USER_CONNECTIONS,
    CAPABILITY_TOKEN, CertificateKind, CertificatePayload, MdmPayload, Payload, PayloadKind,
    ScepPayload, Subject, SubjectAltName,
};
pub use sign::{ProfileSigningCache, SignedProfile};
pub use top::{PayloadScope, Profile, ProfileContent, ProfileService, response};
pub use uuid::PayloadUuid;
pub use validate::ValidationOptions;

use thiserror::Error;

/// `PayloadType` of a top-level configuration profile.
pub const TYPE_CONFIGURATION: &str = "Configuration";
/// `PayloadType` of the top-level OTA profile-service profile.
pub const TYPE_PROFILE_SERVICE: &str = "Profile Service";
/// `PayloadType` of the MDM enrollment payload.
pub const TYPE_MDM: &str = "com.apple.mdm";
/// `PayloadType` of a SCEP enrollment payload.
pub const TYPE_SCEP: &str = "com.apple.security.scep";
/// `PayloadType` of an ACME enrollment payload (macOS 13.1+).
pub const TYPE_ACME: &str = "com.apple.security.acme";
/// `PayloadType` of a trusted root certificate (DER).
pub const TYPE_ROOT: &str = "com.apple.security.root";
/// `PayloadType` of a certificate (DER, alias of root for CA certificates).
pub const TYPE_PKCS1: &str = "com.apple.security.pkcs1";
/// `PayloadType` of a PEM certificate.
pub const TYPE_PEM: &str = "com.apple.security.pem";
/// `PayloadType` of a PKCS#12 identity.
pub const TYPE_PKCS12: &str = "com.apple.security.pkcs12";

/// The prefix every MDM push topic carries.
pub const TOPIC_PREFIX: &str = "com.apple.mgmt.";

/// What was wrong with a profile, naming the payload and key involved.
///
/// `payload` is the payload's `PayloadIdentifier` when it has one, otherwise
/// its position (`PayloadContent[2]`) or `profile` for the top level. `key`
/// is a dotted path below that payload (`PayloadContent.Subject`).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The input exceeds `Limits::max_body_bytes`.
    #[error("profile is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a well-formed plist within limits (dangling
    /// `<key>`, bad XML, too deep, ...).
    #[error("profile plist: {0}")]
    Plist(#[from] crate::wire::plist::PlistError),
    /// Signed profile (first byte 0x30): the CMS does not parse or its
    /// signature does not verify; or signing failed.
    #[error("signed profile: {0}")]
    Signed(#[from] crate::cms::CmsError),
    /// Signed profile: the CMS is valid but does not carry one profile.
    #[error("signed profile: {0}")]
    SignedContent(&'static str),
    /// A required key is absent.
    #[error("{payload}: missing required key {key}")]
    MissingKey {
        /// The payload.
        payload: String,
        /// The key.
        key: String,
    },
    /// A key holds a value of the wrong plist type.
    #[error("{payload}: {key} must be {expected}")]
    WrongType {
        /// The payload.
        payload: String,
        /// The key.
        key: String,
        /// The plist type expected.
        expected: &'static str,
    },
    /// A key holds a value Apple refuses.
    #[error("{payload}: {key}: {reason}")]
    InvalidValue {
        /// The payload.
        payload: String,
        /// The key.
        key: String,
        /// Why the value is refused.
        reason: String,
    },
    /// Two payloads (or a payload and the profile) share a `PayloadUUID`.
    #[error("{payload}: PayloadUUID {uuid} is not unique in the profile")]
    DuplicateUuid {
        /// The second payload carrying the UUID.
        payload: String,
        /// The UUID.
        uuid: String,
    },
    /// Two payloads share a `PayloadIdentifier`.
    #[error("{payload}: PayloadIdentifier is not unique in the profile")]
    DuplicateIdentifier {
        /// The identifier (also the payload's name).
        payload: String,
    },
    /// A UUID reference does not name a suitable payload of the same profile.
    #[error("{payload}: {key} {uuid} does not name {expected} payload in this profile")]
    DanglingReference {
        /// The payload holding the reference.
        payload: String,
        /// The key.
        key: String,
        /// The UUID referenced.
        uuid: String,
        /// What kind of payload it must name.
        expected: &'static str,
    },
}
