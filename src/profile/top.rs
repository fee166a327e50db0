//! The top level of a profile: `Configuration` or `Profile Service`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use plist::{Dictionary, Value};

use super::dict::{Fields, Out, strings};
use super::payload::Payload;
use super::{ProfileError, TYPE_CONFIGURATION, TYPE_PROFILE_SERVICE};
use crate::http::{Response, media_type};

/// A profile: the top-level dictionary of a `.mobileconfig`.
///
/// Build one with [`Profile::configuration`] or [`Profile::profile_service`]
/// and the `with_*` methods (or by setting the public fields), check it with
/// [`Profile::validate`](Profile::validate), and encode it with
/// [`Profile::to_xml`] or [`Profile::build`].
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// `PayloadIdentifier` (reverse DNS; decides replace-or-add on install).
    pub identifier: String,
    /// `PayloadUUID`.
    pub uuid: String,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
    /// `PayloadDescription`.
    pub description: Option<String>,
    /// `PayloadOrganization`.
    pub organization: Option<String>,
    /// `PayloadRemovalDisallowed`.
    pub removal_disallowed: Option<bool>,
    /// `HasRemovalPasscode`.
    pub has_removal_passcode: Option<bool>,
    /// `PayloadScope` (macOS).
    pub scope: Option<PayloadScope>,
    /// `TargetDeviceType` (0 any … 5 Mac, 6 Vision Pro).
    pub target_device_type: Option<i64>,
    /// `RemovalDate`.
    pub removal_date: Option<SystemTime>,
    /// `DurationUntilRemoval` in seconds.
    pub duration_until_removal: Option<f64>,
    /// `PayloadExpirationDate`.
    pub expiration_date: Option<SystemTime>,
    /// `ConsentText`: BCP 47 language (or `default`) → text.
    pub consent_text: Option<BTreeMap<String, String>>,
    /// `PayloadType` and `PayloadContent`.
    pub content: ProfileContent,
    /// Top-level keys not modelled above.
    pub extra: Dictionary,
}

/// What a profile carries, which also fixes its `PayloadType`.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileContent {
    /// `PayloadType` `Configuration`: an array of payloads.
    Configuration(Vec<Payload>),
    /// `PayloadType` `Configuration` with `IsEncrypted`: the
    /// `EncryptedPayloadContent` bytes (CMS EnvelopedData to the device).
    Encrypted(Vec<u8>),
    /// `PayloadType` `Profile Service`: OTA enrollment phase 1.
    ProfileService(ProfileService),
}

/// The `PayloadContent` dictionary of a `Profile Service` profile: asks the
/// device to POST its signed attributes to `url`. `Debug` does not print the
/// `Challenge`.
#[derive(Clone, PartialEq)]
pub struct ProfileService {
    /// `URL` the device posts its attributes to.
    pub url: String,
    /// `DeviceAttributes` requested (`UDID`, `VERSION`, `PRODUCT`, `SERIAL`,
    /// `MEID`, `IMEI`, …).
    pub device_attributes: Vec<String>,
    /// `Challenge` echoed back as `CHALLENGE` (single use).
    pub challenge: Option<String>,
    /// Keys not modelled above.
    pub extra: Dictionary,
}

impl std::fmt::Debug for ProfileService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileService")
            .field("url", &self.url)
            .field("device_attributes", &self.device_attributes)
            .field("challenge", &crate::redact::opt(&self.challenge))
            .field("extra", &self.extra)
            .finish()
    }
}

impl ProfileService {
    /// The attributes peers request: `UDID VERSION PRODUCT SERIAL MEID IMEI`.
    pub const DEFAULT_ATTRIBUTES: [&'static str; 6] =
        ["UDID", "VERSION", "PRODUCT", "SERIAL", "MEID", "IMEI"];

    /// A profile-service request to `url` for `attributes`.
    pub fn new<S: Into<String>>(
        url: impl Into<String>,
        attributes: impl IntoIterator<Item = S>,
        challenge: Option<String>,
    ) -> Self {
        Self {
            url: url.into(),
            device_attributes: attributes.into_iter().map(Into::into).collect(),
            challenge,
            extra: Dictionary::new(),
        }
    }

    fn decode(label: &str, dict: Dictionary) -> Result<Self, ProfileError> {
        let mut f = Fields::new(label, "PayloadContent.", dict);
        Ok(Self {
            url: f.req_string("URL")?,
            device_attributes: f.required("DeviceAttributes", Fields::strings)?,
            challenge: f.string("Challenge")?,
            extra: f.rest(),
        })
    }

    fn to_value(&self) -> Value {
        let mut out = Out::new();
        out.str("URL", &self.url);
        out.value("DeviceAttributes", strings(&self.device_attributes));
        out.opt_str("Challenge", &self.challenge);
        out.extra(&self.extra);
        Value::Dictionary(out.finish())
    }
}

/// `PayloadScope` (macOS): install for the system or the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadScope {
    /// `System`.
    System,
    /// `User`.
    User,
}

impl PayloadScope {
    /// The plist string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "System",
            Self::User => "User",
        }
    }
}

impl Profile {
    /// A profile with `content` and no optional keys.
    pub fn new(
        identifier: impl Into<String>,
        uuid: impl Into<String>,
        content: ProfileContent,
    ) -> Self {
        Self {
            identifier: identifier.into(),
            uuid: uuid.into(),
            display_name: None,
            description: None,
            organization: None,
            removal_disallowed: None,
            has_removal_passcode: None,
            scope: None,
            target_device_type: None,
            removal_date: None,
            duration_until_removal: None,
            expiration_date: None,
            consent_text: None,
            content,
            extra: Dictionary::new(),
        }
    }

    /// A `Configuration` profile holding `payloads`.
    pub fn configuration(
        identifier: impl Into<String>,
        uuid: impl Into<String>,
        payloads: Vec<Payload>,
    ) -> Self {
        Self::new(identifier, uuid, ProfileContent::Configuration(payloads))
    }

    /// A `Profile Service` profile (OTA enrollment phase 1).
    pub fn profile_service(
        identifier: impl Into<String>,
        uuid: impl Into<String>,
        service: ProfileService,
    ) -> Self {
        Self::new(identifier, uuid, ProfileContent::ProfileService(service))
    }

    /// Append a payload (turning encrypted or profile-service content into an
    /// unencrypted configuration holding just this payload).
    pub fn with_payload(mut self, payload: Payload) -> Self {
        match &mut self.content {
            ProfileContent::Configuration(p) => p.push(payload),
            other => *other = ProfileContent::Configuration(vec![payload]),
        }
        self
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

    /// Set `PayloadRemovalDisallowed`.
    pub fn with_removal_disallowed(mut self, disallowed: bool) -> Self {
        self.removal_disallowed = Some(disallowed);
        self
    }

    /// Set `PayloadScope`.
    pub fn with_scope(mut self, scope: PayloadScope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// The top-level `PayloadType`.
    pub fn payload_type(&self) -> &'static str {
        match self.content {
            ProfileContent::ProfileService(_) => TYPE_PROFILE_SERVICE,
            _ => TYPE_CONFIGURATION,
        }
    }

    /// The payloads of a `Configuration` profile (empty otherwise).
    pub fn payloads(&self) -> &[Payload] {
        match &self.content {
            ProfileContent::Configuration(p) => p,
            _ => &[],
        }
    }

    /// The profile as a plist dictionary (keys sorted).
    pub fn to_plist(&self) -> Value {
        let mut out = Out::new();
        out.str("PayloadType", self.payload_type());
        out.int("PayloadVersion", 1);
        out.str("PayloadIdentifier", &self.identifier);
        out.str("PayloadUUID", &self.uuid);
        out.opt_str("PayloadDisplayName", &self.display_name);
        out.opt_str("PayloadDescription", &self.description);
        out.opt_str("PayloadOrganization", &self.organization);
        out.opt_bool("PayloadRemovalDisallowed", self.removal_disallowed);
        out.opt_bool("HasRemovalPasscode", self.has_removal_passcode);
        if let Some(scope) = self.scope {
            out.str("PayloadScope", scope.as_str());
        }
        out.opt_int("TargetDeviceType", self.target_device_type);
        out.opt_date("RemovalDate", self.removal_date);
        out.opt_real("DurationUntilRemoval", self.duration_until_removal);
        out.opt_date("PayloadExpirationDate", self.expiration_date);
        if let Some(text) = &self.consent_text {
            let dict = text
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            out.value("ConsentText", Value::Dictionary(dict));
        }
        match &self.content {
            ProfileContent::Configuration(payloads) => out.value(
                "PayloadContent",
                Value::Array(payloads.iter().map(Payload::to_value).collect()),
            ),
            ProfileContent::Encrypted(data) => {
                out.value("IsEncrypted", Value::Boolean(true));
                out.value("EncryptedPayloadContent", Value::Data(data.clone()));
            }
            ProfileContent::ProfileService(service) => {
                out.value("PayloadContent", service.to_value());
            }
        }
        out.extra(&self.extra);
        Value::Dictionary(out.finish())
    }

    /// The profile as XML plist bytes, as Apple's tools write it (no
    /// validation; see [`Profile::build`]). Refused when a string holds
    /// U+0000, which XML cannot carry.
    pub fn to_xml(&self) -> Result<Vec<u8>, ProfileError> {
        Ok(crate::wire::plist::encode_xml(&self.to_plist())?)
    }

    /// Validate, then encode as XML plist bytes.
    pub fn build(&self, options: &super::ValidationOptions) -> Result<Vec<u8>, ProfileError> {
        self.validate(options)?;
        self.to_xml()
    }

    /// Decode a top-level plist value.
    pub fn from_plist(value: Value) -> Result<Self, ProfileError> {
        let Value::Dictionary(dict) = value else {
            return Err(ProfileError::WrongType {
                payload: "profile".into(),
                key: "(root)".into(),
                expected: "a dictionary",
            });
        };
        let label = match dict.get("PayloadIdentifier") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => "profile".to_owned(),
        };
        let mut f = Fields::new(&label, "", dict);
        let payload_type = f.req_string("PayloadType")?;
        let version = f.required("PayloadVersion", Fields::version)?;
        if version != 1 {
            return Err(f.invalid("PayloadVersion", format!("must be 1, not {version}")));
        }
        let identifier = f.req_string("PayloadIdentifier")?;
        let uuid = f.req_string("PayloadUUID")?;
        let content = match payload_type.as_str() {
            TYPE_CONFIGURATION => {
                if f.boolean("IsEncrypted")? == Some(true) {
                    ProfileContent::Encrypted(f.required("EncryptedPayloadContent", Fields::data)?)
                } else {
                    let items = f.required("PayloadContent", Fields::array)?;
                    ProfileContent::Configuration(
                        items
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| Payload::from_value(i, v))
                            .collect::<Result<_, _>>()?,
                    )
                }
            }
            TYPE_PROFILE_SERVICE => {
                let dict = f.required("PayloadContent", Fields::dict)?;
                ProfileContent::ProfileService(ProfileService::decode(&label, dict)?)
            }
            other => {
                return Err(f.invalid(
                    "PayloadType",
                    format!("{other:?} is neither Configuration nor Profile Service"),
                ));
            }
        };
        let scope = match f.string("PayloadScope")?.as_deref() {
            None => None,
            Some("System") => Some(PayloadScope::System),
            Some("User") => Some(PayloadScope::User),
            Some(other) => {
                return Err(f.invalid("PayloadScope", format!("{other:?} is not System or User")));
            }
        };
        let consent_text = match f.dict("ConsentText")? {
            None => None,
            Some(d) => Some(
                d.into_iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => Ok((k, s)),
                        _ => Err(ProfileError::WrongType {
                            payload: label.clone(),
                            key: format!("ConsentText.{k}"),
                            expected: "a string",
                        }),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Self {
            identifier,
            uuid,
            display_name: f.string("PayloadDisplayName")?,
            description: f.string("PayloadDescription")?,
            organization: f.string("PayloadOrganization")?,
            removal_disallowed: f.boolean("PayloadRemovalDisallowed")?,
            has_removal_passcode: f.boolean("HasRemovalPasscode")?,
            scope,
            target_device_type: f.integer("TargetDeviceType")?,
            removal_date: f.date("RemovalDate")?,
            duration_until_removal: f.real("DurationUntilRemoval")?,
            expiration_date: f.date("PayloadExpirationDate")?,
            consent_text,
            content,
            extra: f.rest(),
        })
    }
}

/// An HTTP 200 response serving profile bytes (signed or not) as
/// `application/x-apple-aspen-config`, optionally as a download named
/// `file_name` (`Content-Disposition: attachment`).
pub fn response(body: Vec<u8>, file_name: Option<&str>) -> Response {
    let mut r = Response::with_body(200, media_type::CONFIG, body);
    if let Some(name) = file_name {
        // Keep the header value safe: no quotes, control characters or path separators.
        let clean: String = name
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control() && !matches!(c, '"' | '\\' | '/'))
            .collect();
        r.headers.push((
            "Content-Disposition".to_owned(),
            format!("attachment; filename=\"{clean}\""),
        ));
    }
    r
}
