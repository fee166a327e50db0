//! Typed payloads: each type decodes from and encodes to its plist dictionary.
//!
//! [`Payload`] holds the keys common to every payload and dispatches on
//! `PayloadType` to one file per payload family: `mdm` ([`MdmPayload`],
//! [`AccessRights`]), `scep` ([`ScepPayload`]), `acme` ([`AcmePayload`]),
//! `certificate` ([`CertificatePayload`]: root, PKCS#1, PEM, PKCS#12),
//! `subject` ([`Subject`], [`SubjectAltName`], shared by SCEP and ACME). Any
//! other configuration payload stays a dictionary ([`PayloadKind::Other`]).

mod acme;
mod certificate;
mod mdm;
mod scep;
mod subject;

use plist::{Dictionary, Value};

pub use acme::AcmePayload;
pub use certificate::{CertificateKind, CertificatePayload};
pub use mdm::{
    AccessRights, CAPABILITY_BOOTSTRAP_TOKEN, CAPABILITY_PER_USER_CONNECTIONS, CAPABILITY_TOKEN,
    MdmPayload,
};
pub use scep::ScepPayload;
pub use subject::{Subject, SubjectAltName};

use super::dict::{Fields, Out};
use super::{ProfileError, TYPE_ACME, TYPE_MDM, TYPE_SCEP};

/// One entry of a configuration profile's `PayloadContent` array: the keys
/// common to every payload plus the payload-specific part.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// `PayloadIdentifier` (reverse DNS, unique in the profile).
    pub identifier: String,
    /// `PayloadUUID`.
    pub uuid: String,
    /// `PayloadVersion` (1).
    pub version: i64,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
    /// `PayloadDescription`.
    pub description: Option<String>,
    /// `PayloadOrganization`.
    pub organization: Option<String>,
    /// `PayloadType` and the payload's own keys.
    pub kind: PayloadKind,
}

/// The payload-specific part of a [`Payload`], by `PayloadType`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PayloadKind {
    /// `com.apple.mdm`.
    Mdm(MdmPayload),
    /// `com.apple.security.scep`.
    Scep(ScepPayload),
    /// `com.apple.security.acme`.
    Acme(AcmePayload),
    /// `com.apple.security.root` / `.pkcs1` / `.pem` / `.pkcs12`.
    Certificate(CertificatePayload),
    /// Any other payload: its type and every key except the common ones.
    Other {
        /// `PayloadType`.
        payload_type: String,
        /// The payload's keys other than `PayloadType`, `PayloadIdentifier`,
        /// `PayloadUUID`, `PayloadVersion`, `PayloadDisplayName`,
        /// `PayloadDescription` and `PayloadOrganization`.
        content: Dictionary,
    },
}

impl PayloadKind {
    /// The `PayloadType` string.
    pub fn payload_type(&self) -> &str {
        match self {
            Self::Mdm(_) => TYPE_MDM,
            Self::Scep(_) => TYPE_SCEP,
            Self::Acme(_) => TYPE_ACME,
            Self::Certificate(c) => c.kind.payload_type(),
            Self::Other { payload_type, .. } => payload_type,
        }
    }
}

impl From<MdmPayload> for PayloadKind {
    fn from(p: MdmPayload) -> Self {
        Self::Mdm(p)
    }
}
impl From<ScepPayload> for PayloadKind {
    fn from(p: ScepPayload) -> Self {
        Self::Scep(p)
    }
}
impl From<AcmePayload> for PayloadKind {
    fn from(p: AcmePayload) -> Self {
        Self::Acme(p)
    }
}
impl From<CertificatePayload> for PayloadKind {
    fn from(p: CertificatePayload) -> Self {
        Self::Certificate(p)
    }
}

const COMMON_KEYS: [&str; 7] = [
    "PayloadType",
    "PayloadIdentifier",
    "PayloadUUID",
    "PayloadVersion",
    "PayloadDisplayName",
    "PayloadDescription",
    "PayloadOrganization",
];

impl Payload {
    /// A payload with `PayloadVersion` 1 and no display keys.
    pub fn new(
        identifier: impl Into<String>,
        uuid: impl Into<String>,
        kind: impl Into<PayloadKind>,
    ) -> Self {
        Self {
            identifier: identifier.into(),
            uuid: uuid.into(),
            version: 1,
            display_name: None,
            description: None,
            organization: None,
            kind: kind.into(),
        }
    }

    /// Set `PayloadDisplayName`.
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// Set `PayloadDescription`.
    pub fn with_description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// Set `PayloadOrganization`.
    pub fn with_organization(mut self, name: impl Into<String>) -> Self {
        self.organization = Some(name.into());
        self
    }

    /// The `PayloadType` string.
    pub fn payload_type(&self) -> &str {
        self.kind.payload_type()
    }

    /// Decode entry `index` of `PayloadContent`.
    pub(crate) fn from_value(index: usize, value: Value) -> Result<Self, ProfileError> {
        let position = format!("PayloadContent[{index}]");
        let Value::Dictionary(dict) = value else {
            return Err(ProfileError::WrongType {
                payload: "profile".into(),
                key: position,
                expected: "a dictionary",
            });
        };
        // Name the payload by its identifier when it is a usable string.
        let label = match dict.get("PayloadIdentifier") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => position,
        };
        let mut f = Fields::new(&label, "", dict);
        let payload_type = f.req_string("PayloadType")?;
        let identifier = f.req_string("PayloadIdentifier")?;
        let uuid = f.req_string("PayloadUUID")?;
        let version = f.required("PayloadVersion", Fields::version)?;
        let display_name = f.string("PayloadDisplayName")?;
        let description = f.string("PayloadDescription")?;
        let organization = f.string("PayloadOrganization")?;
        let kind = match payload_type.as_str() {
            TYPE_MDM => PayloadKind::Mdm(MdmPayload::decode(f)?),
            TYPE_SCEP => PayloadKind::Scep(ScepPayload::decode(f)?),
            TYPE_ACME => PayloadKind::Acme(AcmePayload::decode(f)?),
            other => match CertificateKind::from_payload_type(other) {
                Some(kind) => PayloadKind::Certificate(CertificatePayload::decode(kind, f)?),
                None => PayloadKind::Other {
                    payload_type,
                    content: f.rest(),
                },
            },
        };
        Ok(Self {
            identifier,
            uuid,
            version,
            display_name,
            description,
            organization,
            kind,
        })
    }

    /// Encode as a payload dictionary.
    pub(crate) fn to_value(&self) -> Value {
        let mut out = Out::new();
        out.str("PayloadType", self.payload_type());
        out.str("PayloadIdentifier", &self.identifier);
        out.str("PayloadUUID", &self.uuid);
        out.int("PayloadVersion", self.version);
        out.opt_str("PayloadDisplayName", &self.display_name);
        out.opt_str("PayloadDescription", &self.description);
        out.opt_str("PayloadOrganization", &self.organization);
        match &self.kind {
            PayloadKind::Mdm(p) => p.encode(&mut out),
            PayloadKind::Scep(p) => p.encode(&mut out),
            PayloadKind::Acme(p) => p.encode(&mut out),
            PayloadKind::Certificate(p) => p.encode(&mut out),
            PayloadKind::Other { content, .. } => {
                let mut content = content.clone();
                content.retain(|k, _| !COMMON_KEYS.contains(&k.as_str()));
                out.extra(&content);
            }
        }
        Value::Dictionary(out.finish())
    }
}
