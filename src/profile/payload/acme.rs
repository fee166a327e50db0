//! The `com.apple.security.acme` payload ([`AcmePayload`], macOS 13.1+, iOS
//! 16+): the device obtains its identity over ACME.

use plist::{Dictionary, Value};

use super::{Subject, SubjectAltName};
use crate::profile::ProfileError;
use crate::profile::dict::{Fields, Out};

/// The `com.apple.security.acme` payload (macOS 13.1+, iOS 16+): the device
/// obtains its identity over ACME, optionally with device attestation.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmePayload {
    /// `DirectoryURL` of the ACME server.
    pub directory_url: String,
    /// `ClientIdentifier`: unique per device, single use.
    pub client_identifier: String,
    /// `KeySize` in bits.
    pub key_size: u32,
    /// `KeyType`: `RSA` or `ECSECPrimeRandom`.
    pub key_type: String,
    /// `HardwareBound`: key generated in the Secure Enclave.
    pub hardware_bound: bool,
    /// `Subject`.
    pub subject: Subject,
    /// `SubjectAltName`.
    pub subject_alt_name: Option<SubjectAltName>,
    /// `UsageFlags`: 1 signing, 4 encryption.
    pub usage_flags: Option<u32>,
    /// `ExtendedKeyUsage` OIDs.
    pub extended_key_usage: Option<Vec<String>>,
    /// `Attest`: answer `device-attest-01`.
    pub attest: Option<bool>,
    /// `KeyIsExtractable`.
    pub key_is_extractable: Option<bool>,
    /// `AllowAllAppsAccess`.
    pub allow_all_apps_access: Option<bool>,
    /// Keys not modelled above.
    pub extra: Dictionary,
}

impl AcmePayload {
    pub(super) fn decode(mut f: Fields<'_>) -> Result<Self, ProfileError> {
        let label = f.label();
        let subject = f.required("Subject", Fields::array)?;
        let subject = Subject::decode(&f, "Subject", subject)?;
        let subject_alt_name = match f.dict("SubjectAltName")? {
            Some(d) => Some(SubjectAltName::decode(label, d)?),
            None => None,
        };
        Ok(Self {
            directory_url: f.req_string("DirectoryURL")?,
            client_identifier: f.req_string("ClientIdentifier")?,
            key_size: f.required("KeySize", Fields::u32)?,
            key_type: f.req_string("KeyType")?,
            hardware_bound: f.required("HardwareBound", Fields::boolean)?,
            subject,
            subject_alt_name,
            usage_flags: f.u32("UsageFlags")?,
            extended_key_usage: f.strings("ExtendedKeyUsage")?,
            attest: f.boolean("Attest")?,
            key_is_extractable: f.boolean("KeyIsExtractable")?,
            allow_all_apps_access: f.boolean("AllowAllAppsAccess")?,
            extra: f.rest(),
        })
    }

    pub(super) fn encode(&self, out: &mut Out) {
        out.str("DirectoryURL", &self.directory_url);
        out.str("ClientIdentifier", &self.client_identifier);
        out.int("KeySize", i64::from(self.key_size));
        out.str("KeyType", &self.key_type);
        out.value("HardwareBound", Value::Boolean(self.hardware_bound));
        out.value("Subject", self.subject.to_value());
        if let Some(san) = &self.subject_alt_name {
            out.value("SubjectAltName", san.to_value());
        }
        out.opt_u32("UsageFlags", self.usage_flags);
        out.opt_strings("ExtendedKeyUsage", &self.extended_key_usage);
        out.opt_bool("Attest", self.attest);
        out.opt_bool("KeyIsExtractable", self.key_is_extractable);
        out.opt_bool("AllowAllAppsAccess", self.allow_all_apps_access);
        out.extra(&self.extra);
    }
}
