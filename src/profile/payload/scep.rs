//! The `com.apple.security.scep` payload ([`ScepPayload`]): the device enrolls
//! for its identity certificate over SCEP.

use plist::{Dictionary, Value};

use super::{Subject, SubjectAltName};
use crate::profile::ProfileError;
use crate::profile::dict::{Fields, Out};

/// The `com.apple.security.scep` payload: the device enrolls for a
/// certificate over SCEP. Its keys live in the payload's `PayloadContent`
/// dictionary. `Debug` does not print the `Challenge`.
#[derive(Clone, PartialEq)]
pub struct ScepPayload {
    /// `URL` of the SCEP service.
    pub url: String,
    /// `Name`: CA instance name understood by the server.
    pub name: Option<String>,
    /// `Subject` of the requested certificate.
    pub subject: Option<Subject>,
    /// `Challenge`: pre-shared secret, sent as the CSR challengePassword.
    pub challenge: Option<String>,
    /// `Keysize`: 1024, 2048 or 4096 (device default 1024).
    pub key_size: Option<u32>,
    /// `Key Type` (with its space): always `RSA`.
    pub key_type: Option<String>,
    /// `Key Usage` (with its space): 1 signing, 4 encryption, 5 both.
    pub key_usage: Option<u32>,
    /// `CAFingerprint`: digest of the CA certificate to pin.
    pub ca_fingerprint: Option<Vec<u8>>,
    /// `Retries` after a PENDING reply (default 3).
    pub retries: Option<u32>,
    /// `RetryDelay` in seconds (default 10).
    pub retry_delay: Option<u32>,
    /// `SubjectAltName`.
    pub subject_alt_name: Option<SubjectAltName>,
    /// `KeyIsExtractable` (macOS 10.13.4+, default true).
    pub key_is_extractable: Option<bool>,
    /// `AllowAllAppsAccess` (macOS).
    pub allow_all_apps_access: Option<bool>,
    /// Keys of `PayloadContent` not modelled above (e.g. the non-canonical
    /// `KeyType` some tools write).
    pub extra: Dictionary,
    /// Keys beside `PayloadContent` other than the common payload keys (not
    /// in Apple's schema; kept so nothing is lost in a round trip).
    pub payload_extra: Dictionary,
}

impl std::fmt::Debug for ScepPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScepPayload")
            .field("url", &self.url)
            .field("name", &self.name)
            .field("subject", &self.subject)
            .field("challenge", &crate::redact::opt(&self.challenge))
            .field("key_size", &self.key_size)
            .field("key_type", &self.key_type)
            .field("key_usage", &self.key_usage)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("retries", &self.retries)
            .field("retry_delay", &self.retry_delay)
            .field("subject_alt_name", &self.subject_alt_name)
            .field("key_is_extractable", &self.key_is_extractable)
            .field("allow_all_apps_access", &self.allow_all_apps_access)
            .field("extra", &self.extra)
            .field("payload_extra", &self.payload_extra)
            .finish()
    }
}

impl ScepPayload {
    /// A payload with just the SCEP `URL`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: None,
            subject: None,
            challenge: None,
            key_size: None,
            key_type: None,
            key_usage: None,
            ca_fingerprint: None,
            retries: None,
            retry_delay: None,
            subject_alt_name: None,
            key_is_extractable: None,
            allow_all_apps_access: None,
            extra: Dictionary::new(),
            payload_extra: Dictionary::new(),
        }
    }

    pub(super) fn decode(mut outer: Fields<'_>) -> Result<Self, ProfileError> {
        let label = outer.label();
        let content = outer.required("PayloadContent", Fields::dict)?;
        let mut f = Fields::new(label, "PayloadContent.", content);
        let subject = match f.array("Subject")? {
            Some(v) => Some(Subject::decode(&f, "Subject", v)?),
            None => None,
        };
        let subject_alt_name = match f.dict("SubjectAltName")? {
            Some(d) => {
                Some(SubjectAltName::decode(label, d).map_err(|e| nest(e, "PayloadContent."))?)
            }
            None => None,
        };
        Ok(Self {
            url: f.req_string("URL")?,
            name: f.string("Name")?,
            subject,
            challenge: f.string("Challenge")?,
            key_size: f.u32("Keysize")?,
            key_type: f.string("Key Type")?,
            key_usage: f.u32("Key Usage")?,
            ca_fingerprint: f.data("CAFingerprint")?,
            retries: f.u32("Retries")?,
            retry_delay: f.u32("RetryDelay")?,
            subject_alt_name,
            key_is_extractable: f.boolean("KeyIsExtractable")?,
            allow_all_apps_access: f.boolean("AllowAllAppsAccess")?,
            extra: f.rest(),
            payload_extra: outer.rest(),
        })
    }

    pub(super) fn encode(&self, out: &mut Out) {
        let mut c = Out::new();
        c.str("URL", &self.url);
        c.opt_str("Name", &self.name);
        if let Some(s) = &self.subject {
            c.value("Subject", s.to_value());
        }
        c.opt_str("Challenge", &self.challenge);
        c.opt_u32("Keysize", self.key_size);
        c.opt_str("Key Type", &self.key_type);
        c.opt_u32("Key Usage", self.key_usage);
        c.opt_data("CAFingerprint", &self.ca_fingerprint);
        c.opt_u32("Retries", self.retries);
        c.opt_u32("RetryDelay", self.retry_delay);
        if let Some(san) = &self.subject_alt_name {
            c.value("SubjectAltName", san.to_value());
        }
        c.opt_bool("KeyIsExtractable", self.key_is_extractable);
        c.opt_bool("AllowAllAppsAccess", self.allow_all_apps_access);
        c.extra(&self.extra);
        out.value("PayloadContent", Value::Dictionary(c.finish()));
        out.extra(&self.payload_extra);
    }
}

/// Prefix the key of a nested error with `prefix`.
fn nest(e: ProfileError, prefix: &str) -> ProfileError {
    match e {
        ProfileError::WrongType {
            payload,
            key,
            expected,
        } => ProfileError::WrongType {
            payload,
            key: format!("{prefix}{key}"),
            expected,
        },
        ProfileError::InvalidValue {
            payload,
            key,
            reason,
        } => ProfileError::InvalidValue {
            payload,
            key: format!("{prefix}{key}"),
            reason,
        },
        ProfileError::MissingKey { payload, key } => ProfileError::MissingKey {
            payload,
            key: format!("{prefix}{key}"),
        },
        other => other,
    }
}
