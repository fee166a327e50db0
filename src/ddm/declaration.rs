//! Declarations: `Type`, `Identifier`, `ServerToken`, `Payload`
//! (schema `declarative/declarations/declarationbase.yaml`).
//!
//! [`DeclarationPayload`] types what activation needs; every other type is
//! [`DeclarationPayload::Generic`]. Payload keys a typed form does not model
//! are kept in [`Declaration::extra`], so a decoded declaration encodes to
//! the same content (and the same [`ServerToken`]).

use sha2::{Digest, Sha256};

use super::token::ServerToken;
use super::{DdmError, schema};
use crate::wire::Limits;
use crate::wire::json::{self, Json, JsonLimits};

/// The four declaration classes: the path segment of
/// `declaration/<kind>/<identifier>` and the arrays of the
/// declaration-items response and of the status report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DeclarationKind {
    /// `com.apple.activation.*`.
    Activation,
    /// `com.apple.configuration.*`.
    Configuration,
    /// `com.apple.asset.*`.
    Asset,
    /// `com.apple.management.*`.
    Management,
}

impl DeclarationKind {
    /// All four, in the order of the declaration-items response.
    pub const ALL: [Self; 4] = [
        Self::Activation,
        Self::Configuration,
        Self::Asset,
        Self::Management,
    ];

    /// The endpoint path segment: `activation`, `configuration`, `asset`, `management`.
    pub fn path_segment(self) -> &'static str {
        match self {
            Self::Activation => "activation",
            Self::Configuration => "configuration",
            Self::Asset => "asset",
            Self::Management => "management",
        }
    }

    /// Parse an endpoint path segment.
    pub fn from_path_segment(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.path_segment() == s)
    }

    /// The array name in the declaration-items response (`Activations`, …).
    pub fn items_key(self) -> &'static str {
        match self {
            Self::Activation => "Activations",
            Self::Configuration => "Configurations",
            Self::Asset => "Assets",
            Self::Management => "Management",
        }
    }

    /// The array name in the `management.declarations` status item (`activations`, …).
    pub fn status_key(self) -> &'static str {
        match self {
            Self::Activation => "activations",
            Self::Configuration => "configurations",
            Self::Asset => "assets",
            Self::Management => "management",
        }
    }

    /// The class of a declaration `Type` (`com.apple.<kind>.…`); `None` for
    /// a type outside the four prefixes.
    pub fn of_type(declaration_type: &str) -> Option<Self> {
        let rest = declaration_type.strip_prefix("com.apple.")?;
        let (head, tail) = rest.split_once('.')?;
        if tail.is_empty() {
            return None;
        }
        match head {
            "activation" => Some(Self::Activation),
            "configuration" => Some(Self::Configuration),
            "asset" => Some(Self::Asset),
            "management" => Some(Self::Management),
            _ => None,
        }
    }
}

/// `ReturnStatus` of `com.apple.configuration.management.test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestReturnStatus {
    /// `Installed` (the default).
    Installed,
    /// `Failed`: the device reports the configuration invalid.
    Failed,
    /// `Unlocked`.
    Unlocked,
}

impl TestReturnStatus {
    /// Apple's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installed => "Installed",
            Self::Failed => "Failed",
            Self::Unlocked => "Unlocked",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Installed, Self::Failed, Self::Unlocked]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// `Authentication.Type` of an asset reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetAuthentication {
    /// `MDM`: fetched with the device identity, like a check-in.
    Mdm,
    /// `None`: a plain GET.
    None,
}

impl AssetAuthentication {
    fn as_str(self) -> &'static str {
        match self {
            Self::Mdm => "MDM",
            Self::None => "None",
        }
    }
}

/// `com.apple.configuration.passcode.settings`: the keys this crate types
/// (all optional; others go to [`Declaration::extra`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasscodeSettings {
    /// `RequirePasscode`.
    pub require_passcode: Option<bool>,
    /// `RequireAlphanumericPasscode`.
    pub require_alphanumeric_passcode: Option<bool>,
    /// `RequireComplexPasscode`.
    pub require_complex_passcode: Option<bool>,
    /// `MinimumLength`.
    pub minimum_length: Option<i64>,
    /// `MinimumComplexCharacters`.
    pub minimum_complex_characters: Option<i64>,
    /// `MaximumFailedAttempts`.
    pub maximum_failed_attempts: Option<i64>,
    /// `MaximumInactivityInMinutes`.
    pub maximum_inactivity_in_minutes: Option<i64>,
    /// `MaximumPasscodeAgeInDays`.
    pub maximum_passcode_age_in_days: Option<i64>,
    /// `PasscodeReuseLimit`.
    pub passcode_reuse_limit: Option<i64>,
    /// `ChangeAtNextAuth`.
    pub change_at_next_auth: Option<bool>,
}

const PASSCODE_BOOLS: [&str; 4] = [
    "RequirePasscode",
    "RequireAlphanumericPasscode",
    "RequireComplexPasscode",
    "ChangeAtNextAuth",
];
const PASSCODE_INTS: [&str; 6] = [
    "MinimumLength",
    "MinimumComplexCharacters",
    "MaximumFailedAttempts",
    "MaximumInactivityInMinutes",
    "MaximumPasscodeAgeInDays",
    "PasscodeReuseLimit",
];

impl PasscodeSettings {
    fn bools(&self) -> [Option<bool>; 4] {
        [
            self.require_passcode,
            self.require_alphanumeric_passcode,
            self.require_complex_passcode,
            self.change_at_next_auth,
        ]
    }

    fn ints(&self) -> [Option<i64>; 6] {
        [
            self.minimum_length,
            self.minimum_complex_characters,
            self.maximum_failed_attempts,
            self.maximum_inactivity_in_minutes,
            self.maximum_passcode_age_in_days,
            self.passcode_reuse_limit,
        ]
    }
}

/// The typed payload of a declaration, by `Type`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DeclarationPayload {
    /// `com.apple.activation.simple`: install these configurations.
    ActivationSimple {
        /// `StandardConfigurations`: identifiers of configurations.
        standard_configurations: Vec<String>,
        /// `Predicate`: install only when it evaluates true.
        predicate: Option<String>,
    },
    /// `com.apple.configuration.legacy`: an MDM profile fetched from `ProfileURL` (https).
    Legacy {
        /// `ProfileURL`.
        profile_url: String,
    },
    /// `com.apple.configuration.passcode.settings`.
    PasscodeSettings(PasscodeSettings),
    /// `com.apple.configuration.management.status-subscriptions`.
    StatusSubscriptions {
        /// `StatusItems[].Name`, e.g. `management.declarations`.
        status_items: Vec<String>,
    },
    /// `com.apple.configuration.management.test`: echoes `Echo` in its status.
    ManagementTest {
        /// `Echo`.
        echo: String,
        /// `ReturnStatus` (absent: `Installed`).
        return_status: Option<TestReturnStatus>,
    },
    /// `com.apple.asset.data`: a reference to data at an https URL.
    AssetData {
        /// `Reference.DataURL` (https).
        data_url: String,
        /// `Reference.ContentType`.
        content_type: Option<String>,
        /// `Reference.Size`.
        size: Option<i64>,
        /// `Reference.Hash-SHA-256`.
        hash_sha256: Option<String>,
        /// `Authentication.Type`.
        authentication: Option<AssetAuthentication>,
    },
    /// `com.apple.management.server-capabilities`.
    ServerCapabilities {
        /// `Version`.
        version: String,
        /// `SupportedFeatures`, members as given.
        supported_features: Vec<(String, Json)>,
    },
    /// `com.apple.management.organization-info`.
    OrganizationInfo {
        /// `Name`.
        name: String,
        /// `Email`.
        email: Option<String>,
        /// `URL`.
        url: Option<String>,
    },
    /// `com.apple.management.properties`: arbitrary properties for predicates.
    Properties(Vec<(String, Json)>),
    /// Any other declaration type, payload as given.
    Generic {
        /// `Type`, e.g. `com.apple.configuration.safari.settings`.
        declaration_type: String,
        /// `Payload` members.
        payload: Vec<(String, Json)>,
    },
}

impl DeclarationPayload {
    /// The declaration `Type`.
    pub fn declaration_type(&self) -> &str {
        match self {
            Self::ActivationSimple { .. } => "com.apple.activation.simple",
            Self::Legacy { .. } => "com.apple.configuration.legacy",
            Self::PasscodeSettings(_) => "com.apple.configuration.passcode.settings",
            Self::StatusSubscriptions { .. } => {
                "com.apple.configuration.management.status-subscriptions"
            }
            Self::ManagementTest { .. } => "com.apple.configuration.management.test",
            Self::AssetData { .. } => "com.apple.asset.data",
            Self::ServerCapabilities { .. } => "com.apple.management.server-capabilities",
            Self::OrganizationInfo { .. } => "com.apple.management.organization-info",
            Self::Properties(_) => "com.apple.management.properties",
            Self::Generic {
                declaration_type, ..
            } => declaration_type,
        }
    }

    /// The modelled members of `Payload`, in schema order.
    fn members(&self) -> Vec<(String, Json)> {
        let mut m = Members::default();
        match self {
            Self::ActivationSimple {
                standard_configurations,
                predicate,
            } => {
                m.put("StandardConfigurations", strings(standard_configurations));
                m.opt("Predicate", predicate.as_deref());
            }
            Self::Legacy { profile_url } => m.put("ProfileURL", profile_url.as_str()),
            Self::PasscodeSettings(p) => {
                for (k, v) in PASSCODE_BOOLS.iter().zip(p.bools()) {
                    m.opt(k, v);
                }
                for (k, v) in PASSCODE_INTS.iter().zip(p.ints()) {
                    m.opt(k, v);
                }
            }
            Self::StatusSubscriptions { status_items } => m.put(
                "StatusItems",
                Json::Array(
                    status_items
                        .iter()
                        .map(|n| Json::Object(vec![("Name".into(), n.as_str().into())]))
                        .collect(),
                ),
            ),
            Self::ManagementTest {
                echo,
                return_status,
            } => {
                m.put("Echo", echo.as_str());
                m.opt("ReturnStatus", return_status.map(TestReturnStatus::as_str));
            }
            Self::AssetData {
                data_url,
                content_type,
                size,
                hash_sha256,
                authentication,
            } => {
                let mut r = Members::default();
                r.put("DataURL", data_url.as_str());
                r.opt("ContentType", content_type.as_deref());
                r.opt("Size", *size);
                r.opt("Hash-SHA-256", hash_sha256.as_deref());
                m.put("Reference", Json::Object(r.0));
                if let Some(a) = authentication {
                    m.put(
                        "Authentication",
                        Json::Object(vec![("Type".into(), a.as_str().into())]),
                    );
                }
            }
            Self::ServerCapabilities {
                version,
                supported_features,
            } => {
                m.put("Version", version.as_str());
                m.put(
                    "SupportedFeatures",
                    Json::Object(supported_features.clone()),
                );
            }
            Self::OrganizationInfo { name, email, url } => {
                m.put("Name", name.as_str());
                m.opt("Email", email.as_deref());
                m.opt("URL", url.as_deref());
            }
            Self::Properties(p) | Self::Generic { payload: p, .. } => m.0.extend(p.iter().cloned()),
        }
        m.0
    }

    /// Read a typed payload of `declaration_type` from `payload`; returns
    /// the members it did not model.
    fn read(
        declaration_type: &str,
        payload: &[(String, Json)],
    ) -> Result<(Self, Vec<(String, Json)>), DdmError> {
        let mut p = Fields::new("Payload", payload);
        let typed = match declaration_type {
            "com.apple.activation.simple" => Self::ActivationSimple {
                standard_configurations: p.string_array("StandardConfigurations")?,
                predicate: p.opt_string("Predicate")?,
            },
            "com.apple.configuration.legacy" => Self::Legacy {
                profile_url: https("ProfileURL", p.string("ProfileURL")?)?,
            },
            "com.apple.configuration.passcode.settings" => {
                let mut s = PasscodeSettings::default();
                let mut b = [None; 4];
                for (slot, k) in b.iter_mut().zip(PASSCODE_BOOLS) {
                    *slot = p.opt_bool(k)?;
                }
                let mut i = [None; 6];
                for (slot, k) in i.iter_mut().zip(PASSCODE_INTS) {
                    *slot = p.opt_int(k)?;
                }
                [
                    s.require_passcode,
                    s.require_alphanumeric_passcode,
                    s.require_complex_passcode,
                    s.change_at_next_auth,
                ] = b;
                [
                    s.minimum_length,
                    s.minimum_complex_characters,
                    s.maximum_failed_attempts,
                    s.maximum_inactivity_in_minutes,
                    s.maximum_passcode_age_in_days,
                    s.passcode_reuse_limit,
                ] = i;
                Self::PasscodeSettings(s)
            }
            "com.apple.configuration.management.status-subscriptions" => {
                let items = p.array("StatusItems")?;
                let mut names = Vec::with_capacity(items.len());
                for (n, item) in items.iter().enumerate() {
                    let path = format!("Payload.StatusItems[{n}]");
                    let obj = item
                        .as_object()
                        .ok_or_else(|| schema(&path, "a dictionary"))?;
                    names.push(Fields::new(path, obj).string("Name")?);
                }
                Self::StatusSubscriptions {
                    status_items: names,
                }
            }
            "com.apple.configuration.management.test" => Self::ManagementTest {
                echo: p.string("Echo")?,
                return_status: match p.opt_string("ReturnStatus")? {
                    None => None,
                    Some(s) => Some(TestReturnStatus::parse(&s).ok_or_else(|| {
                        schema("Payload.ReturnStatus", "one of Installed, Failed, Unlocked")
                    })?),
                },
            },
            "com.apple.asset.data" => {
                let reference = p.object("Reference")?;
                let mut r = Fields::new("Payload.Reference", reference);
                let data_url = https("DataURL", r.string("DataURL")?)?;
                let content_type = r.opt_string("ContentType")?;
                let size = r.opt_int("Size")?;
                let hash_sha256 = r.opt_string("Hash-SHA-256")?;
                if !r.rest().is_empty() {
                    return Err(schema("Payload.Reference", "only modelled keys"));
                }
                let authentication = match p.opt_object("Authentication")? {
                    None => None,
                    Some(a) => {
                        let mut a = Fields::new("Payload.Authentication", a);
                        let t = a.string("Type")?;
                        if !a.rest().is_empty() {
                            return Err(schema("Payload.Authentication", "only Type"));
                        }
                        Some(match t.as_str() {
                            "MDM" => AssetAuthentication::Mdm,
                            "None" => AssetAuthentication::None,
                            _ => return Err(schema("Payload.Authentication.Type", "MDM or None")),
                        })
                    }
                };
                Self::AssetData {
                    data_url,
                    content_type,
                    size,
                    hash_sha256,
                    authentication,
                }
            }
            "com.apple.management.server-capabilities" => Self::ServerCapabilities {
                version: p.string("Version")?,
                supported_features: p.object("SupportedFeatures")?.to_vec(),
            },
            "com.apple.management.organization-info" => Self::OrganizationInfo {
                name: p.string("Name")?,
                email: p.opt_string("Email")?,
                url: p.opt_string("URL")?,
            },
            "com.apple.management.properties" => return Ok((Self::Properties(p.rest()), vec![])),
            other => {
                return Ok((
                    Self::Generic {
                        declaration_type: other.to_owned(),
                        payload: p.rest(),
                    },
                    vec![],
                ));
            }
        };
        Ok((typed, p.rest()))
    }
}

/// One declaration: identifier, typed payload and the payload keys the
/// typed form does not model. Its [`ServerToken`] is derived from all of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    identifier: String,
    payload: DeclarationPayload,
    extra: Vec<(String, Json)>,
}

/// A declaration read from JSON with the `ServerToken` it carried.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedDeclaration {
    /// The declaration.
    pub declaration: Declaration,
    /// The `ServerToken` in the document (equal to
    /// [`Declaration::server_token`] when this crate wrote it).
    pub server_token: ServerToken,
}

impl Declaration {
    /// A declaration; refused when the identifier is not usable in an
    /// endpoint path (1–256 bytes of `A-Z a-z 0-9 . _ -`), when a URL the
    /// schema requires to be https is not, or when a generic payload's type
    /// is outside `com.apple.{activation,configuration,asset,management}.*`.
    pub fn new(
        identifier: impl Into<String>,
        payload: DeclarationPayload,
    ) -> Result<Self, DdmError> {
        let identifier = identifier.into();
        check_identifier(&identifier)?;
        match &payload {
            DeclarationPayload::Legacy { profile_url } => {
                https("ProfileURL", profile_url.clone())?;
            }
            DeclarationPayload::AssetData { data_url, .. } => {
                https("DataURL", data_url.clone())?;
            }
            DeclarationPayload::Generic {
                declaration_type, ..
            } if DeclarationKind::of_type(declaration_type).is_none() => {
                return Err(schema(
                    "Type",
                    "com.apple.<activation|configuration|asset|management>.<name>",
                ));
            }
            _ => {}
        }
        Ok(Self {
            identifier,
            payload,
            extra: Vec::new(),
        })
    }

    /// Add payload members the typed form does not model (for example a
    /// passcode key this crate has no field for). A key the typed form
    /// writes itself is refused.
    pub fn with_extra(mut self, extra: Vec<(String, Json)>) -> Result<Self, DdmError> {
        let modelled = self.payload.members();
        if let Some((k, _)) = extra
            .iter()
            .find(|(k, _)| modelled.iter().any(|(m, _)| m == k))
        {
            return Err(schema(
                format!("Payload.{k}"),
                "a key the typed payload does not write",
            ));
        }
        self.extra = extra;
        Ok(self)
    }

    /// `Identifier`.
    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    /// The typed payload.
    pub fn payload(&self) -> &DeclarationPayload {
        &self.payload
    }

    /// Payload members kept beside the typed form.
    pub fn extra(&self) -> &[(String, Json)] {
        &self.extra
    }

    /// `Type`.
    pub fn declaration_type(&self) -> &str {
        self.payload.declaration_type()
    }

    /// Its class (activation, configuration, asset, management).
    pub fn kind(&self) -> DeclarationKind {
        // `new` refuses a type outside the four classes.
        DeclarationKind::of_type(self.declaration_type()).unwrap_or(DeclarationKind::Configuration)
    }

    /// The whole `Payload` object.
    pub fn payload_json(&self) -> Json {
        let mut members = self.payload.members();
        members.extend(self.extra.iter().cloned());
        Json::Object(members)
    }

    /// `ServerToken`: the lower-case hex SHA-256 of the declaration's
    /// content (`Type`, `Identifier`, `Payload`), so it changes whenever
    /// any of them changes (64 octets).
    pub fn server_token(&self) -> ServerToken {
        let content = Json::Object(vec![
            ("Type".into(), self.declaration_type().into()),
            ("Identifier".into(), self.identifier.as_str().into()),
            ("Payload".into(), self.payload_json()),
        ])
        .encode();
        ServerToken::from_digest(&Sha256::digest(content.as_bytes()))
    }

    /// The declaration document (`Type`, `Identifier`, `ServerToken`, `Payload`).
    pub fn to_json(&self) -> Json {
        Json::Object(vec![
            ("Type".into(), self.declaration_type().into()),
            ("Identifier".into(), self.identifier.as_str().into()),
            ("ServerToken".into(), self.server_token().as_str().into()),
            ("Payload".into(), self.payload_json()),
        ])
    }

    /// The declaration document as a JSON body.
    pub fn encode(&self) -> Vec<u8> {
        self.to_json().encode().into_bytes()
    }

    /// Read a declaration document (bounded by `limits`).
    pub fn decode(body: &[u8], limits: &Limits) -> Result<DecodedDeclaration, DdmError> {
        Self::from_json(&json::parse(body, JsonLimits::from(limits))?)
    }

    /// Interpret an already-parsed declaration document.
    pub fn from_json(doc: &Json) -> Result<DecodedDeclaration, DdmError> {
        let top = doc.as_object().ok_or_else(|| schema("$", "a dictionary"))?;
        let mut f = Fields::new("", top);
        let declaration_type = f.string("Type")?;
        let identifier = f.string("Identifier")?;
        let server_token = ServerToken::new(f.string("ServerToken")?)?;
        let payload = f.object("Payload")?;
        let (typed, extra) = DeclarationPayload::read(&declaration_type, payload)?;
        let declaration = Self::new(identifier, typed)?.with_extra(extra)?;
        Ok(DecodedDeclaration {
            declaration,
            server_token,
        })
    }
}

fn check_identifier(id: &str) -> Result<(), DdmError> {
    let ok = !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(DdmError::InvalidIdentifier(id.to_owned()))
    }
}

/// `value` when it is an `https://` URL.
fn https(key: &'static str, value: String) -> Result<String, DdmError> {
    if value
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        && value.len() > 8
    {
        Ok(value)
    } else {
        Err(DdmError::NotHttps { key, value })
    }
}

fn strings(items: &[String]) -> Json {
    Json::Array(items.iter().map(|s| s.as_str().into()).collect())
}

/// Object members in order, for building documents.
#[derive(Default)]
pub(crate) struct Members(pub(crate) Vec<(String, Json)>);

impl Members {
    pub(crate) fn put(&mut self, key: &str, value: impl Into<Json>) {
        self.0.push((key.to_owned(), value.into()));
    }

    pub(crate) fn opt<V: Into<Json>>(&mut self, key: &str, value: Option<V>) {
        if let Some(v) = value {
            self.put(key, v);
        }
    }
}

/// Reads members of one JSON object, naming the path in each error; what
/// was not taken is left for [`Fields::rest`].
pub(crate) struct Fields<'a> {
    path: String,
    members: Vec<&'a (String, Json)>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(path: impl Into<String>, members: &'a [(String, Json)]) -> Self {
        Self {
            path: path.into(),
            members: members.iter().collect(),
        }
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Remove and return the member `key` (first occurrence).
    pub(crate) fn take(&mut self, key: &str) -> Option<&'a Json> {
        let i = self.members.iter().position(|(k, _)| k == key)?;
        Some(&self.members.remove(i).1)
    }

    fn typed<T>(
        &mut self,
        key: &str,
        expected: &'static str,
        get: impl Fn(&'a Json) -> Option<T>,
    ) -> Result<Option<T>, DdmError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => get(v)
                .map(Some)
                .ok_or_else(|| schema(self.at(key), expected)),
        }
    }

    fn required<T>(&self, key: &str, expected: &'static str, v: Option<T>) -> Result<T, DdmError> {
        v.ok_or_else(|| schema(self.at(key), expected))
    }

    pub(crate) fn opt_string(&mut self, key: &str) -> Result<Option<String>, DdmError> {
        self.typed(key, "a string", |v| v.as_str().map(str::to_owned))
    }

    pub(crate) fn string(&mut self, key: &str) -> Result<String, DdmError> {
        let v = self.opt_string(key)?;
        self.required(key, "a string", v)
    }

    pub(crate) fn opt_bool(&mut self, key: &str) -> Result<Option<bool>, DdmError> {
        self.typed(key, "a boolean", Json::as_bool)
    }

    pub(crate) fn opt_int(&mut self, key: &str) -> Result<Option<i64>, DdmError> {
        self.typed(key, "an integer", Json::as_i64)
    }

    pub(crate) fn opt_array(&mut self, key: &str) -> Result<Option<&'a [Json]>, DdmError> {
        self.typed(key, "an array", Json::as_array)
    }

    pub(crate) fn array(&mut self, key: &str) -> Result<&'a [Json], DdmError> {
        let v = self.opt_array(key)?;
        self.required(key, "an array", v)
    }

    pub(crate) fn opt_object(
        &mut self,
        key: &str,
    ) -> Result<Option<&'a [(String, Json)]>, DdmError> {
        self.typed(key, "a dictionary", Json::as_object)
    }

    pub(crate) fn object(&mut self, key: &str) -> Result<&'a [(String, Json)], DdmError> {
        let v = self.opt_object(key)?;
        self.required(key, "a dictionary", v)
    }

    pub(crate) fn string_array(&mut self, key: &str) -> Result<Vec<String>, DdmError> {
        let items = self.array(key)?;
        items
            .iter()
            .enumerate()
            .map(|(n, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| schema(format!("{}[{n}]", self.at(key)), "a string"))
            })
            .collect()
    }

    /// The members not taken, in order.
    pub(crate) fn rest(&self) -> Vec<(String, Json)> {
        self.members.iter().map(|m| (*m).clone()).collect()
    }
}
