//! Command reports (`application/x-apple-aspen-mdm`, PUT to `ServerURL`).
//!
//! A device reports `Idle` (nothing to report: send the next command) or the
//! result of the command named by `CommandUUID`. Result keys
//! (`QueryResponses`, `SecurityInfo`, `ProfileList`, ...) are kept as plist
//! values in [`Report::results`].

use plist::{Dictionary, Value};

use super::{Channel, DictBuilder, Error, Fields};
use crate::wire::plist::PlistError;
use crate::wire::{Limits, plist as wire_plist};

/// A report's `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `Idle`: ready for a command.
    Idle,
    /// `Acknowledged`: the command ran.
    Acknowledged,
    /// `Error`: the command failed (see [`Report::error_chain`]).
    Error,
    /// `CommandFormatError`: the command was not understood.
    CommandFormatError,
    /// `NotNow`: cannot run now; keep it queued, do not resend in this session.
    NotNow,
}

impl Status {
    /// Apple's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Acknowledged => "Acknowledged",
            Self::Error => "Error",
            Self::CommandFormatError => "CommandFormatError",
            Self::NotNow => "NotNow",
        }
    }

    /// Parse Apple's name (exact match).
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Idle,
            Self::Acknowledged,
            Self::Error,
            Self::CommandFormatError,
            Self::NotNow,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// Whether the command is finished (dequeue it): Acknowledged, Error, CommandFormatError.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Acknowledged | Self::Error | Self::CommandFormatError
        )
    }
}

/// One entry of `ErrorChain`.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorChainItem {
    /// `ErrorCode`.
    pub error_code: Option<i64>,
    /// `ErrorDomain`, e.g. `MCMDMErrorDomain`.
    pub error_domain: Option<String>,
    /// `LocalizedDescription`.
    pub localized_description: Option<String>,
    /// `USEnglishDescription`.
    pub us_english_description: Option<String>,
    /// Other keys, unchanged.
    pub extra: Dictionary,
}

/// A report from a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The channel the report came on.
    pub channel: Channel,
    /// `Status`.
    pub status: Status,
    /// `CommandUUID`: an opaque string (not necessarily a UUID); absent only when `Idle`.
    pub command_uuid: Option<String>,
    /// `ErrorChain` (usually with `Status` `Error`).
    pub error_chain: Vec<ErrorChainItem>,
    /// `RequestType`, echoed by older macOS.
    pub request_type: Option<String>,
    /// Every other key (command results such as `QueryResponses`), unchanged.
    pub results: Dictionary,
}

impl Report {
    /// Decode a report body (bounded by `limits`).
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
        let status = f.string("Status")?;
        let status = Status::parse(&status).ok_or(Error::UnknownStatus(status))?;
        let channel = Channel::take(&mut f)?;
        let command_uuid = f.opt_string("CommandUUID")?;
        if command_uuid.is_none() && status != Status::Idle {
            return Err(Error::MissingKey("CommandUUID"));
        }
        let error_chain = f
            .opt_array("ErrorChain")?
            .unwrap_or_default()
            .into_iter()
            .map(|v| match v {
                Value::Dictionary(d) => ErrorChainItem::from_dictionary(d),
                _ => Err(Error::WrongType {
                    key: "ErrorChain",
                    expected: "array of dictionaries",
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            channel,
            status,
            command_uuid,
            error_chain,
            request_type: f.opt_string("RequestType")?,
            results: f.rest(),
        })
    }

    /// A result key (for example `QueryResponses`).
    pub fn result(&self, key: &str) -> Option<&Value> {
        self.results.get(key)
    }

    /// The report as a dictionary with Apple's key names.
    pub fn to_dictionary(&self) -> Dictionary {
        let mut b = DictBuilder::new();
        b.put("Status", self.status.as_str());
        self.channel.put(&mut b);
        b.opt("CommandUUID", self.command_uuid.as_ref())
            .opt("RequestType", self.request_type.as_ref());
        if !self.error_chain.is_empty() {
            b.put(
                "ErrorChain",
                Value::Array(
                    self.error_chain
                        .iter()
                        .map(|e| Value::Dictionary(e.to_dictionary()))
                        .collect(),
                ),
            );
        }
        b.extend(&self.results).build()
    }

    /// Encode as an XML plist body (what a device would send); refused when
    /// a string holds U+0000, which XML cannot carry.
    pub fn encode(&self) -> Result<Vec<u8>, PlistError> {
        wire_plist::encode_xml(&Value::Dictionary(self.to_dictionary()))
    }
}

impl ErrorChainItem {
    fn from_dictionary(d: Dictionary) -> Result<Self, Error> {
        let mut f = Fields::new(d);
        Ok(Self {
            error_code: f.opt_integer("ErrorCode")?,
            error_domain: f.opt_string("ErrorDomain")?,
            localized_description: f.opt_string("LocalizedDescription")?,
            us_english_description: f.opt_string("USEnglishDescription")?,
            extra: f.rest(),
        })
    }

    fn to_dictionary(&self) -> Dictionary {
        let mut b = DictBuilder::new();
        b.opt("ErrorCode", self.error_code.as_ref())
            .opt("ErrorDomain", self.error_domain.as_ref())
            .opt("LocalizedDescription", self.localized_description.as_ref())
            .opt("USEnglishDescription", self.us_english_description.as_ref());
        b.extend(&self.extra).build()
    }
}
