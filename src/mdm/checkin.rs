//! Check-in messages (`application/x-apple-aspen-mdm-checkin`, PUT to `CheckInURL`).
//!
//! Schemas: Apple `mdm/checkin/*.yaml`. Field names are Apple's key names in
//! snake case; keys not modelled here are kept in [`CheckinMessage::extra`].

use plist::{Dictionary, Value};

use super::{Channel, DictBuilder, Error, Fields};
use crate::push::PushRequest;
use crate::wire::plist::PlistError;
use crate::wire::{Limits, plist as wire_plist};

/// The eight check-in `MessageType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageType {
    /// `Authenticate`: the MDM payload is being installed.
    Authenticate,
    /// `TokenUpdate`: push token (first one completes enrollment).
    TokenUpdate,
    /// `CheckOut`: the MDM profile was removed.
    CheckOut,
    /// `UserAuthenticate`: macOS directory user digest exchange.
    UserAuthenticate,
    /// `SetBootstrapToken`: store (or clear) the bootstrap token.
    SetBootstrapToken,
    /// `GetBootstrapToken`: return the bootstrap token.
    GetBootstrapToken,
    /// `DeclarativeManagement`: a declarative-management request.
    DeclarativeManagement,
    /// `GetToken`: a token for a token service.
    GetToken,
}

impl MessageType {
    /// All eight, in Apple's documentation order.
    pub const ALL: [Self; 8] = [
        Self::Authenticate,
        Self::TokenUpdate,
        Self::CheckOut,
        Self::UserAuthenticate,
        Self::SetBootstrapToken,
        Self::GetBootstrapToken,
        Self::DeclarativeManagement,
        Self::GetToken,
    ];

    /// Apple's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authenticate => "Authenticate",
            Self::TokenUpdate => "TokenUpdate",
            Self::CheckOut => "CheckOut",
            Self::UserAuthenticate => "UserAuthenticate",
            Self::SetBootstrapToken => "SetBootstrapToken",
            Self::GetBootstrapToken => "GetBootstrapToken",
            Self::DeclarativeManagement => "DeclarativeManagement",
            Self::GetToken => "GetToken",
        }
    }

    /// Parse Apple's name (exact match).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// `Authenticate` (device channel).
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticate {
    /// `Topic`: must equal the push certificate's topic.
    pub topic: String,
    /// `DeviceName` (required on macOS).
    pub device_name: Option<String>,
    /// `Model`, e.g. `iMac14,2` (required on macOS).
    pub model: Option<String>,
    /// `ModelName`, e.g. `iMac` (required on macOS).
    pub model_name: Option<String>,
    /// `OSVersion`.
    pub os_version: Option<String>,
    /// `BuildVersion`.
    pub build_version: Option<String>,
    /// `ProductName`.
    pub product_name: Option<String>,
    /// `SerialNumber` (absent in User Enrollment).
    pub serial_number: Option<String>,
    /// `IMEI`.
    pub imei: Option<String>,
    /// `MEID`.
    pub meid: Option<String>,
}

/// `TokenUpdate` (device or user channel). `Debug` prints neither token nor
/// push magic.
#[derive(Clone, PartialEq)]
pub struct TokenUpdate {
    /// `Topic`.
    pub topic: String,
    /// `Token`: the APNs device token.
    pub token: Vec<u8>,
    /// `PushMagic`: goes in the push payload.
    pub push_magic: String,
    /// `UnlockToken` (iOS, first TokenUpdate only: keep it).
    pub unlock_token: Option<Vec<u8>>,
    /// `AwaitingConfiguration` (absent ⇒ do not change what is stored).
    pub awaiting_configuration: Option<bool>,
    /// `NotOnConsole` (macOS user channel).
    pub not_on_console: Option<bool>,
}

impl std::fmt::Debug for TokenUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::redact::{Redacted, RedactedBytes, opt_bytes};
        f.debug_struct("TokenUpdate")
            .field("topic", &self.topic)
            .field("token", &RedactedBytes(self.token.len()))
            .field("push_magic", &Redacted)
            .field("unlock_token", &opt_bytes(&self.unlock_token))
            .field("awaiting_configuration", &self.awaiting_configuration)
            .field("not_on_console", &self.not_on_console)
            .finish()
    }
}

impl TokenUpdate {
    /// The APNs request that wakes this channel.
    pub fn push_request(&self) -> PushRequest {
        PushRequest::new(&self.token, &self.topic, &self.push_magic)
    }
}

/// `CheckOut` (device channel).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOut {
    /// `Topic`.
    pub topic: String,
}

/// `UserAuthenticate` (macOS user channel). `Debug` does not print the
/// `DigestResponse`.
#[derive(Clone, PartialEq)]
pub struct UserAuthenticate {
    /// `DigestResponse`: absent on the first request, present on the second.
    pub digest_response: Option<String>,
}

impl std::fmt::Debug for UserAuthenticate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAuthenticate")
            .field(
                "digest_response",
                &crate::redact::opt(&self.digest_response),
            )
            .finish()
    }
}

/// `SetBootstrapToken` (macOS device channel). `Debug` does not print the
/// token.
#[derive(Clone, PartialEq)]
pub struct SetBootstrapToken {
    /// `BootstrapToken`: absent or empty means delete the stored token.
    pub bootstrap_token: Option<Vec<u8>>,
    /// `AwaitingConfiguration`.
    pub awaiting_configuration: Option<bool>,
}

impl std::fmt::Debug for SetBootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetBootstrapToken")
            .field(
                "bootstrap_token",
                &crate::redact::opt_bytes(&self.bootstrap_token),
            )
            .field("awaiting_configuration", &self.awaiting_configuration)
            .finish()
    }
}

/// `GetBootstrapToken` (macOS device channel).
#[derive(Debug, Clone, PartialEq)]
pub struct GetBootstrapToken {
    /// `AwaitingConfiguration`.
    pub awaiting_configuration: Option<bool>,
}

/// `DeclarativeManagement`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclarativeManagement {
    /// `Endpoint`: `tokens`, `declaration-items`, `status`, `declaration/<type>/<id>`.
    pub endpoint: String,
    /// `Data`: UTF-8 JSON (for example the status report).
    pub data: Option<Vec<u8>>,
}

/// `GetToken`.
#[derive(Debug, Clone, PartialEq)]
pub struct GetToken {
    /// `TokenServiceType`, e.g. `com.apple.maid`, `com.apple.watch.pairing`.
    pub token_service_type: String,
    /// `TokenParameters` (`SecurityToken`, `PhoneUDID`, `WatchUDID`).
    pub token_parameters: Option<Dictionary>,
}

/// The typed content of a check-in, by `MessageType`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CheckinPayload {
    /// `Authenticate`.
    Authenticate(Authenticate),
    /// `TokenUpdate`.
    TokenUpdate(TokenUpdate),
    /// `CheckOut`.
    CheckOut(CheckOut),
    /// `UserAuthenticate`.
    UserAuthenticate(UserAuthenticate),
    /// `SetBootstrapToken`.
    SetBootstrapToken(SetBootstrapToken),
    /// `GetBootstrapToken`.
    GetBootstrapToken(GetBootstrapToken),
    /// `DeclarativeManagement`.
    DeclarativeManagement(DeclarativeManagement),
    /// `GetToken`.
    GetToken(GetToken),
}

/// One check-in message: who sent it, what it says, and every other key.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckinMessage {
    /// The channel resolved from `UDID`/`UserID`/`EnrollmentID`/...
    pub channel: Channel,
    /// The typed content.
    pub payload: CheckinPayload,
    /// Keys not modelled above (for example macOS's undocumented `Challenge`), unchanged.
    pub extra: Dictionary,
}

impl CheckinMessage {
    /// Decode a check-in body (bounded by `limits`).
    pub fn decode(body: &[u8], limits: &Limits) -> Result<Self, Error> {
        // The root's entries straight into the fields: no hash map built
        // for the few keys a message has.
        Self::from_fields(Fields::from_entries(wire_plist::decode_dict_entries(
            body, limits,
        )?))
    }

    /// Interpret an already-decoded dictionary.
    pub fn from_dictionary(dict: Dictionary) -> Result<Self, Error> {
        Self::from_fields(Fields::new(dict))
    }

    fn from_fields(mut f: Fields) -> Result<Self, Error> {
        let message_type = f.string("MessageType")?;
        let message_type =
            MessageType::parse(&message_type).ok_or(Error::UnknownMessageType(message_type))?;
        let channel = Channel::take(&mut f)?;
        let payload = match message_type {
            MessageType::Authenticate => CheckinPayload::Authenticate(Authenticate {
                topic: f.string("Topic")?,
                device_name: f.opt_string("DeviceName")?,
                model: f.opt_string("Model")?,
                model_name: f.opt_string("ModelName")?,
                os_version: f.opt_string("OSVersion")?,
                build_version: f.opt_string("BuildVersion")?,
                product_name: f.opt_string("ProductName")?,
                serial_number: f.opt_string("SerialNumber")?,
                imei: f.opt_string("IMEI")?,
                meid: f.opt_string("MEID")?,
            }),
            MessageType::TokenUpdate => CheckinPayload::TokenUpdate(TokenUpdate {
                topic: f.string("Topic")?,
                token: f.data("Token")?,
                push_magic: f.string("PushMagic")?,
                unlock_token: f.opt_data("UnlockToken")?,
                awaiting_configuration: f.opt_bool("AwaitingConfiguration")?,
                not_on_console: f.opt_bool("NotOnConsole")?,
            }),
            MessageType::CheckOut => CheckinPayload::CheckOut(CheckOut {
                topic: f.string("Topic")?,
            }),
            MessageType::UserAuthenticate => CheckinPayload::UserAuthenticate(UserAuthenticate {
                digest_response: f.opt_string("DigestResponse")?,
            }),
            MessageType::SetBootstrapToken => {
                CheckinPayload::SetBootstrapToken(SetBootstrapToken {
                    bootstrap_token: f.opt_data("BootstrapToken")?,
                    awaiting_configuration: f.opt_bool("AwaitingConfiguration")?,
                })
            }
            MessageType::GetBootstrapToken => {
                CheckinPayload::GetBootstrapToken(GetBootstrapToken {
                    awaiting_configuration: f.opt_bool("AwaitingConfiguration")?,
                })
            }
            MessageType::DeclarativeManagement => {
                CheckinPayload::DeclarativeManagement(DeclarativeManagement {
                    endpoint: f.string("Endpoint")?,
                    data: f.opt_data("Data")?,
                })
            }
            MessageType::GetToken => CheckinPayload::GetToken(GetToken {
                token_service_type: f.string("TokenServiceType")?,
                token_parameters: f.opt_dict("TokenParameters")?,
            }),
        };
        Ok(Self {
            channel,
            payload,
            extra: f.rest(),
        })
    }

    /// The `MessageType`.
    pub fn message_type(&self) -> MessageType {
        match &self.payload {
            CheckinPayload::Authenticate(_) => MessageType::Authenticate,
            CheckinPayload::TokenUpdate(_) => MessageType::TokenUpdate,
            CheckinPayload::CheckOut(_) => MessageType::CheckOut,
            CheckinPayload::UserAuthenticate(_) => MessageType::UserAuthenticate,
            CheckinPayload::SetBootstrapToken(_) => MessageType::SetBootstrapToken,
            CheckinPayload::GetBootstrapToken(_) => MessageType::GetBootstrapToken,
            CheckinPayload::DeclarativeManagement(_) => MessageType::DeclarativeManagement,
            CheckinPayload::GetToken(_) => MessageType::GetToken,
        }
    }

    /// The message as a dictionary with Apple's key names (extra keys included).
    pub fn to_dictionary(&self) -> Dictionary {
        let mut b = DictBuilder::new();
        b.put("MessageType", self.message_type().as_str());
        self.channel.put(&mut b);
        match &self.payload {
            CheckinPayload::Authenticate(a) => {
                b.put("Topic", a.topic.as_str())
                    .opt("DeviceName", a.device_name.as_ref())
                    .opt("Model", a.model.as_ref())
                    .opt("ModelName", a.model_name.as_ref())
                    .opt("OSVersion", a.os_version.as_ref())
                    .opt("BuildVersion", a.build_version.as_ref())
                    .opt("ProductName", a.product_name.as_ref())
                    .opt("SerialNumber", a.serial_number.as_ref())
                    .opt("IMEI", a.imei.as_ref())
                    .opt("MEID", a.meid.as_ref());
            }
            CheckinPayload::TokenUpdate(t) => {
                b.put("Topic", t.topic.as_str())
                    .put("Token", Value::Data(t.token.clone()))
                    .put("PushMagic", t.push_magic.as_str())
                    .opt_data("UnlockToken", t.unlock_token.as_ref())
                    .opt("AwaitingConfiguration", t.awaiting_configuration.as_ref())
                    .opt("NotOnConsole", t.not_on_console.as_ref());
            }
            CheckinPayload::CheckOut(c) => {
                b.put("Topic", c.topic.as_str());
            }
            CheckinPayload::UserAuthenticate(u) => {
                b.opt("DigestResponse", u.digest_response.as_ref());
            }
            CheckinPayload::SetBootstrapToken(s) => {
                b.opt_data("BootstrapToken", s.bootstrap_token.as_ref())
                    .opt("AwaitingConfiguration", s.awaiting_configuration.as_ref());
            }
            CheckinPayload::GetBootstrapToken(g) => {
                b.opt("AwaitingConfiguration", g.awaiting_configuration.as_ref());
            }
            CheckinPayload::DeclarativeManagement(d) => {
                b.put("Endpoint", d.endpoint.as_str())
                    .opt_data("Data", d.data.as_ref());
            }
            CheckinPayload::GetToken(g) => {
                b.put("TokenServiceType", g.token_service_type.as_str());
                if let Some(p) = &g.token_parameters {
                    b.put("TokenParameters", Value::Dictionary(p.clone()));
                }
            }
        }
        b.extend(&self.extra).build()
    }

    /// Encode as an XML plist body (what a device would send); refused when
    /// a string holds U+0000, which XML cannot carry.
    pub fn encode(&self) -> Result<Vec<u8>, PlistError> {
        wire_plist::encode_xml(&Value::Dictionary(self.to_dictionary()))
    }
}
