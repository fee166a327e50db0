//! Commands (the body of a `200` reply to a connect PUT).
//!
//! ```text
//! { CommandUUID: "...", Command: { RequestType: "...", <params> } }
//! ```
//!
//! Typed builders cover the activation set; [`Command::new`] +
//! [`Command::param`] build any `RequestType`. One command per response.

use plist::{Dictionary, Value};

use super::{Error, Fields};
use crate::http::{Response, media_type};
use crate::wire::plist::PlistError;
use crate::wire::plist::{Node, encode_xml_node};
use crate::wire::{Limits, plist as wire_plist};

/// One MDM command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// `CommandUUID`: any unique string; echoed in the report.
    pub command_uuid: String,
    /// `Command.RequestType`.
    pub request_type: String,
    /// The other keys of `Command` (the parameters).
    pub params: Dictionary,
}

impl Command {
    /// A command of any `request_type`, without parameters.
    pub fn new(command_uuid: impl Into<String>, request_type: impl Into<String>) -> Self {
        Self {
            command_uuid: command_uuid.into(),
            request_type: request_type.into(),
            params: Dictionary::new(),
        }
    }

    /// Add (or replace) a parameter.
    pub fn param(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    /// `DeviceInformation` with `Queries` (query names such as `UDID`, `OSVersion`).
    pub fn device_information<S: AsRef<str>>(
        command_uuid: impl Into<String>,
        queries: &[S],
    ) -> Self {
        let queries = queries
            .iter()
            .map(|q| Value::String(q.as_ref().to_owned()))
            .collect::<Vec<_>>();
        Self::new(command_uuid, "DeviceInformation").param("Queries", Value::Array(queries))
    }

    /// `SecurityInfo`.
    pub fn security_info(command_uuid: impl Into<String>) -> Self {
        Self::new(command_uuid, "SecurityInfo")
    }

    /// `ProfileList` (add `ManagedOnly` with [`Command::param`] if wanted).
    pub fn profile_list(command_uuid: impl Into<String>) -> Self {
        Self::new(command_uuid, "ProfileList")
    }

    /// `InstallProfile` with `Payload` = the whole `.mobileconfig` bytes
    /// (signed and/or encrypted, as they are).
    pub fn install_profile(command_uuid: impl Into<String>, payload: Vec<u8>) -> Self {
        Self::new(command_uuid, "InstallProfile").param("Payload", Value::Data(payload))
    }

    /// `RemoveProfile` of the profile with `PayloadIdentifier` `identifier`.
    pub fn remove_profile(command_uuid: impl Into<String>, identifier: impl Into<String>) -> Self {
        Self::new(command_uuid, "RemoveProfile")
            .param("Identifier", Value::String(identifier.into()))
    }

    /// `InstalledApplicationList` (add `Identifiers`/`ManagedAppsOnly`/`Items` with [`Command::param`]).
    pub fn installed_application_list(command_uuid: impl Into<String>) -> Self {
        Self::new(command_uuid, "InstalledApplicationList")
    }

    /// `CertificateList`.
    pub fn certificate_list(command_uuid: impl Into<String>) -> Self {
        Self::new(command_uuid, "CertificateList")
    }

    /// `DeviceConfigured`: lets an ADE device leave Setup Assistant.
    pub fn device_configured(command_uuid: impl Into<String>) -> Self {
        Self::new(command_uuid, "DeviceConfigured")
    }

    /// `DeclarativeManagement`: turns declarative device management on and
    /// tells the device to synchronise; `Data` is the tokens response JSON
    /// ([`crate::ddm::TokensResponse::encode`]).
    pub fn declarative_management(command_uuid: impl Into<String>, tokens: Vec<u8>) -> Self {
        Self::new(command_uuid, "DeclarativeManagement").param("Data", Value::Data(tokens))
    }

    /// The command as a plist value.
    pub fn to_value(&self) -> Value {
        let mut inner = Dictionary::new();
        inner.insert(
            "RequestType".into(),
            Value::String(self.request_type.clone()),
        );
        for (k, v) in &self.params {
            if k != "RequestType" {
                inner.insert(k.clone(), v.clone());
            }
        }
        let mut outer = Dictionary::new();
        outer.insert(
            "CommandUUID".into(),
            Value::String(self.command_uuid.clone()),
        );
        outer.insert("Command".into(), Value::Dictionary(inner));
        Value::Dictionary(outer)
    }

    /// The command as an XML plist body (refused when a string holds
    /// U+0000, which XML cannot carry).
    ///
    /// The same bytes as [`encode_xml`](wire_plist::encode_xml) of
    /// [`Command::to_value`], written from the command's own fields: the
    /// parameters (an `InstallProfile`'s whole profile among them) are not
    /// cloned into a tree first.
    pub fn encode(&self) -> Result<Vec<u8>, PlistError> {
        let uuid = Value::String(self.command_uuid.clone());
        let request_type = Value::String(self.request_type.clone());
        let mut inner = Vec::with_capacity(self.params.len() + 1);
        inner.push(("RequestType", Node::Value(&request_type)));
        inner.extend(
            self.params
                .iter()
                .filter(|(k, _)| k.as_str() != "RequestType")
                .map(|(k, v)| (k.as_str(), Node::Value(v))),
        );
        encode_xml_node(&Node::Dict(vec![
            ("CommandUUID", Node::Value(&uuid)),
            ("Command", Node::Dict(inner)),
        ]))
    }

    /// The connect reply carrying this command (`200`, `application/xml`).
    pub fn to_response(&self) -> Result<Response, PlistError> {
        Ok(Response::with_body(200, media_type::XML, self.encode()?))
    }

    /// Decode a command body (bounded by `limits`); both `CommandUUID` and
    /// `Command.RequestType` are required.
    pub fn decode(body: &[u8], limits: &Limits) -> Result<Self, Error> {
        let mut f = Fields::from_entries(wire_plist::decode_dict_entries(body, limits)?);
        let command_uuid = f.string("CommandUUID")?;
        let mut inner = Fields::new(f.opt_dict("Command")?.ok_or(Error::MissingKey("Command"))?);
        let request_type = inner.string("RequestType")?;
        Ok(Self {
            command_uuid,
            request_type,
            params: inner.rest(),
        })
    }
}

/// A random (version 4) UUID in upper case, as Apple writes them; for
/// `CommandUUID`s and `PayloadUUID`s.
pub fn random_uuid<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02X}"));
    }
    s
}
