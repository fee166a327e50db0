//! Typed payloads: each type decodes from and encodes to its plist dictionary.

use plist::{Dictionary, Value};

use super::dict::{Fields, Out, strings};
use super::{
    ProfileError, TYPE_ACME, TYPE_MDM, TYPE_PEM, TYPE_PKCS1, TYPE_PKCS12, TYPE_ROOT, TYPE_SCEP,
};

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

/// `AccessRights` of the `com.apple.mdm` payload: a bitmask of what the
/// server may do. Never 0; `2` needs `1`, `128` needs `64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccessRights(pub u32);

impl AccessRights {
    /// Inspect installed configuration profiles.
    pub const INSPECT_PROFILES: Self = Self(1);
    /// Install and remove configuration profiles (needs `INSPECT_PROFILES`).
    pub const INSTALL_PROFILES: Self = Self(2);
    /// Lock the device and remove its passcode.
    pub const LOCK: Self = Self(4);
    /// Erase the device.
    pub const ERASE: Self = Self(8);
    /// Query device information.
    pub const DEVICE_INFO: Self = Self(16);
    /// Query network information.
    pub const NETWORK_INFO: Self = Self(32);
    /// Inspect installed provisioning profiles.
    pub const INSPECT_PROVISIONING_PROFILES: Self = Self(64);
    /// Install and remove provisioning profiles (needs `INSPECT_PROVISIONING_PROFILES`).
    pub const INSTALL_PROVISIONING_PROFILES: Self = Self(128);
    /// Inspect installed applications.
    pub const INSPECT_APPS: Self = Self(256);
    /// Restriction-related queries.
    pub const RESTRICTIONS: Self = Self(512);
    /// Security-related queries.
    pub const SECURITY: Self = Self(1024);
    /// Manipulate settings.
    pub const SETTINGS: Self = Self(2048);
    /// App management.
    pub const APP_MANAGEMENT: Self = Self(4096);
    /// Every right (8191).
    pub const ALL: Self = Self(8191);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for AccessRights {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// The `com.apple.mdm` payload: enrolls the device in MDM.
#[derive(Debug, Clone, PartialEq)]
pub struct MdmPayload {
    /// `ServerURL` (https): where the device fetches commands.
    pub server_url: String,
    /// `Topic`: the APNs push topic, `com.apple.mgmt.…`.
    pub topic: String,
    /// `IdentityCertificateUUID`: the SCEP, ACME or PKCS#12 payload of this
    /// profile holding the device identity.
    pub identity_certificate_uuid: String,
    /// `CheckInURL` (https; defaults to `ServerURL`).
    pub check_in_url: Option<String>,
    /// `SignMessage`: send an `Mdm-Signature` header on every request.
    pub sign_message: Option<bool>,
    /// `AccessRights`.
    pub access_rights: Option<AccessRights>,
    /// `CheckOutWhenRemoved`.
    pub check_out_when_removed: Option<bool>,
    /// `ServerCapabilities` (`com.apple.mdm.per-user-connections`, …).
    pub server_capabilities: Option<Vec<String>>,
    /// `UseDevelopmentAPNS`.
    pub use_development_apns: Option<bool>,
    /// `ServerURLPinningCertificateUUIDs`: certificate payloads of this profile.
    pub server_url_pinning_certificate_uuids: Option<Vec<String>>,
    /// `CheckInURLPinningCertificateUUIDs`: certificate payloads of this profile.
    pub check_in_url_pinning_certificate_uuids: Option<Vec<String>>,
    /// `PinningRevocationCheckRequired`.
    pub pinning_revocation_check_required: Option<bool>,
    /// `ManagedAppleID` (user enrollment, removed in iOS 18 / macOS 15).
    pub managed_apple_id: Option<String>,
    /// `AssignedManagedAppleID` (account-driven enrollment).
    pub assigned_managed_apple_id: Option<String>,
    /// `EnrollmentMode`: `BYOD` or `ADDE`.
    pub enrollment_mode: Option<String>,
    /// `RequiredAppIDForMDM` (iOS account-driven enrollment).
    pub required_app_id_for_mdm: Option<i64>,
    /// `PromptUserToAllowBootstrapTokenForAuthentication` (macOS 11+).
    pub prompt_user_to_allow_bootstrap_token_for_authentication: Option<bool>,
    /// Keys not modelled above, kept as they are.
    pub extra: Dictionary,
}

/// `ServerCapabilities` value: the server supports user channels.
pub const CAPABILITY_PER_USER_CONNECTIONS: &str = "com.apple.mdm.per-user-connections";
/// `ServerCapabilities` value: the server escrows the Bootstrap Token.
pub const CAPABILITY_BOOTSTRAP_TOKEN: &str = "com.apple.mdm.bootstraptoken";
/// `ServerCapabilities` value: the server answers `GetToken`.
pub const CAPABILITY_TOKEN: &str = "com.apple.mdm.token";

impl MdmPayload {
    /// A payload with the required keys and nothing else.
    pub fn new(
        server_url: impl Into<String>,
        topic: impl Into<String>,
        identity_certificate_uuid: impl Into<String>,
    ) -> Self {
        Self {
            server_url: server_url.into(),
            topic: topic.into(),
            identity_certificate_uuid: identity_certificate_uuid.into(),
            check_in_url: None,
            sign_message: None,
            access_rights: None,
            check_out_when_removed: None,
            server_capabilities: None,
            use_development_apns: None,
            server_url_pinning_certificate_uuids: None,
            check_in_url_pinning_certificate_uuids: None,
            pinning_revocation_check_required: None,
            managed_apple_id: None,
            assigned_managed_apple_id: None,
            enrollment_mode: None,
            required_app_id_for_mdm: None,
            prompt_user_to_allow_bootstrap_token_for_authentication: None,
            extra: Dictionary::new(),
        }
    }

    fn decode(mut f: Fields<'_>) -> Result<Self, ProfileError> {
        let access_rights = f.u32("AccessRights")?.map(AccessRights);
        Ok(Self {
            server_url: f.req_string("ServerURL")?,
            topic: f.req_string("Topic")?,
            identity_certificate_uuid: f.req_string("IdentityCertificateUUID")?,
            check_in_url: f.string("CheckInURL")?,
            sign_message: f.boolean("SignMessage")?,
            access_rights,
            check_out_when_removed: f.boolean("CheckOutWhenRemoved")?,
            server_capabilities: f.strings("ServerCapabilities")?,
            use_development_apns: f.boolean("UseDevelopmentAPNS")?,
            server_url_pinning_certificate_uuids: f.strings("ServerURLPinningCertificateUUIDs")?,
            check_in_url_pinning_certificate_uuids: f
                .strings("CheckInURLPinningCertificateUUIDs")?,
            pinning_revocation_check_required: f.boolean("PinningRevocationCheckRequired")?,
            managed_apple_id: f.string("ManagedAppleID")?,
            assigned_managed_apple_id: f.string("AssignedManagedAppleID")?,
            enrollment_mode: f.string("EnrollmentMode")?,
            required_app_id_for_mdm: f.integer("RequiredAppIDForMDM")?,
            prompt_user_to_allow_bootstrap_token_for_authentication: f
                .boolean("PromptUserToAllowBootstrapTokenForAuthentication")?,
            extra: f.rest(),
        })
    }

    fn encode(&self, out: &mut Out) {
        out.str("ServerURL", &self.server_url);
        out.str("Topic", &self.topic);
        out.str("IdentityCertificateUUID", &self.identity_certificate_uuid);
        out.opt_str("CheckInURL", &self.check_in_url);
        out.opt_bool("SignMessage", self.sign_message);
        out.opt_u32("AccessRights", self.access_rights.map(|a| a.0));
        out.opt_bool("CheckOutWhenRemoved", self.check_out_when_removed);
        out.opt_strings("ServerCapabilities", &self.server_capabilities);
        out.opt_bool("UseDevelopmentAPNS", self.use_development_apns);
        out.opt_strings(
            "ServerURLPinningCertificateUUIDs",
            &self.server_url_pinning_certificate_uuids,
        );
        out.opt_strings(
            "CheckInURLPinningCertificateUUIDs",
            &self.check_in_url_pinning_certificate_uuids,
        );
        out.opt_bool(
            "PinningRevocationCheckRequired",
            self.pinning_revocation_check_required,
        );
        out.opt_str("ManagedAppleID", &self.managed_apple_id);
        out.opt_str("AssignedManagedAppleID", &self.assigned_managed_apple_id);
        out.opt_str("EnrollmentMode", &self.enrollment_mode);
        out.opt_int("RequiredAppIDForMDM", self.required_app_id_for_mdm);
        out.opt_bool(
            "PromptUserToAllowBootstrapTokenForAuthentication",
            self.prompt_user_to_allow_bootstrap_token_for_authentication,
        );
        out.extra(&self.extra);
    }
}

/// An X.500 name as SCEP and ACME payloads write it: a list of RDNs, each a
/// list of `[type, value]` pairs, where type is `C`, `L`, `ST`, `O`, `OU`,
/// `CN` or a dotted OID (`[[["C","US"]],[["O","Org"]],[["CN","x"]]]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subject(pub Vec<Vec<(String, String)>>);

impl Subject {
    /// An empty name.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append an RDN holding one attribute.
    pub fn with(mut self, attribute: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.push(vec![(attribute.into(), value.into())]);
        self
    }

    fn decode(f: &Fields<'_>, key: &str, value: Vec<Value>) -> Result<Self, ProfileError> {
        let shape = || {
            f.invalid(
                key,
                "must be an array of arrays of [type, value] string pairs",
            )
        };
        value
            .into_iter()
            .map(|rdn| {
                let Value::Array(pairs) = rdn else {
                    return Err(shape());
                };
                pairs
                    .into_iter()
                    .map(|pair| match pair {
                        Value::Array(items) => match <[Value; 2]>::try_from(items) {
                            Ok([Value::String(t), Value::String(v)]) => Ok((t, v)),
                            _ => Err(shape()),
                        },
                        _ => Err(shape()),
                    })
                    .collect()
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn to_value(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|rdn| {
                    Value::Array(
                        rdn.iter()
                            .map(|(t, v)| {
                                Value::Array(vec![
                                    Value::String(t.clone()),
                                    Value::String(v.clone()),
                                ])
                            })
                            .collect(),
                    )
                })
                .collect(),
        )
    }
}

/// `SubjectAltName` of SCEP and ACME payloads. Each name type may hold one
/// string or several (written as an array); `ntPrincipalName` is one string.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubjectAltName {
    /// `rfc822Name` (e-mail addresses).
    pub rfc822_name: Vec<String>,
    /// `dNSName`.
    pub dns_name: Vec<String>,
    /// `uniformResourceIdentifier`.
    pub uniform_resource_identifier: Vec<String>,
    /// `ntPrincipalName`.
    pub nt_principal_name: Option<String>,
    /// Keys not modelled above.
    pub extra: Dictionary,
}

impl SubjectAltName {
    fn decode(label: &str, dict: Dictionary) -> Result<Self, ProfileError> {
        // Nested keys are reported as `SubjectAltName.<key>` (`PayloadContent.` for SCEP is
        // added by the caller's label path).
        let mut f = Fields::new(label, "SubjectAltName.", dict);
        Ok(Self {
            rfc822_name: f.one_or_more_strings("rfc822Name")?,
            dns_name: f.one_or_more_strings("dNSName")?,
            uniform_resource_identifier: f.one_or_more_strings("uniformResourceIdentifier")?,
            nt_principal_name: f.string("ntPrincipalName")?,
            extra: f.rest(),
        })
    }

    fn to_value(&self) -> Value {
        let one_or_more = |items: &[String]| match items {
            [one] => Value::String(one.clone()),
            many => strings(many),
        };
        let mut out = Out::new();
        for (key, items) in [
            ("rfc822Name", &self.rfc822_name),
            ("dNSName", &self.dns_name),
            (
                "uniformResourceIdentifier",
                &self.uniform_resource_identifier,
            ),
        ] {
            if !items.is_empty() {
                out.value(key, one_or_more(items));
            }
        }
        out.opt_str("ntPrincipalName", &self.nt_principal_name);
        out.extra(&self.extra);
        Value::Dictionary(out.finish())
    }
}

/// The `com.apple.security.scep` payload: the device enrolls for a
/// certificate over SCEP. Its keys live in the payload's `PayloadContent`
/// dictionary.
#[derive(Debug, Clone, PartialEq)]
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

    fn decode(mut outer: Fields<'_>) -> Result<Self, ProfileError> {
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

    fn encode(&self, out: &mut Out) {
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
    fn decode(mut f: Fields<'_>) -> Result<Self, ProfileError> {
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

    fn encode(&self, out: &mut Out) {
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

/// Which certificate payload a [`CertificatePayload`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateKind {
    /// `com.apple.security.root`: a trusted root, DER.
    Root,
    /// `com.apple.security.pkcs1`: a certificate, DER.
    Pkcs1,
    /// `com.apple.security.pem`: a certificate, PEM.
    Pem,
    /// `com.apple.security.pkcs12`: an identity (certificate and key).
    Pkcs12,
}

impl CertificateKind {
    /// The `PayloadType` string.
    pub fn payload_type(self) -> &'static str {
        match self {
            Self::Root => TYPE_ROOT,
            Self::Pkcs1 => TYPE_PKCS1,
            Self::Pem => TYPE_PEM,
            Self::Pkcs12 => TYPE_PKCS12,
        }
    }

    /// Look a kind up by `PayloadType`.
    pub fn from_payload_type(payload_type: &str) -> Option<Self> {
        [Self::Root, Self::Pkcs1, Self::Pem, Self::Pkcs12]
            .into_iter()
            .find(|k| k.payload_type() == payload_type)
    }
}

/// A certificate or identity payload: `PayloadContent` is the certificate
/// (DER for root/pkcs1) or PKCS#12 bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificatePayload {
    /// Which payload type.
    pub kind: CertificateKind,
    /// `PayloadContent`: the certificate or PKCS#12 bytes.
    pub content: Vec<u8>,
    /// `PayloadCertificateFileName`.
    pub file_name: Option<String>,
    /// `Password` (PKCS#12 only).
    pub password: Option<String>,
    /// Keys not modelled above.
    pub extra: Dictionary,
}

impl CertificatePayload {
    /// A trusted root certificate (`com.apple.security.root`) from its DER.
    pub fn root(der: impl Into<Vec<u8>>) -> Self {
        Self::new(CertificateKind::Root, der)
    }

    /// A certificate (`com.apple.security.pkcs1`) from its DER.
    pub fn pkcs1(der: impl Into<Vec<u8>>) -> Self {
        Self::new(CertificateKind::Pkcs1, der)
    }

    /// A payload of `kind` holding `content`.
    pub fn new(kind: CertificateKind, content: impl Into<Vec<u8>>) -> Self {
        Self {
            kind,
            content: content.into(),
            file_name: None,
            password: None,
            extra: Dictionary::new(),
        }
    }

    fn decode(kind: CertificateKind, mut f: Fields<'_>) -> Result<Self, ProfileError> {
        Ok(Self {
            kind,
            content: f.required("PayloadContent", Fields::data)?,
            file_name: f.string("PayloadCertificateFileName")?,
            password: f.string("Password")?,
            extra: f.rest(),
        })
    }

    fn encode(&self, out: &mut Out) {
        out.value("PayloadContent", Value::Data(self.content.clone()));
        out.opt_str("PayloadCertificateFileName", &self.file_name);
        out.opt_str("Password", &self.password);
        out.extra(&self.extra);
    }
}
