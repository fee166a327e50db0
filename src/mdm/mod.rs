//! MDM check-in and command/report messages (the push is in [`crate::push`]).
//!
//! - [`checkin`]: the eight check-in `MessageType`s ([`CheckinMessage`]).
//! - [`channel`]: who a message is for ([`Channel`]): device, user, Shared iPad, User Enrollment.
//! - [`response`]: the replies a check-in expects.
//! - [`report`]: what a device sends on `ServerURL` ([`Report`]).
//! - [`command`]: what the server answers with ([`Command`]).
//!
//! Every decoder goes through [`crate::wire::plist::decode`], so the bounds
//! in [`crate::wire::Limits`] hold. Keys this crate does not model are kept
//! (`extra` / `results`), never dropped.

pub mod channel;
pub mod checkin;
pub mod command;
pub mod report;
pub mod response;

pub use channel::Channel;
pub use checkin::{CheckinMessage, CheckinPayload, MessageType};
pub use command::Command;
pub use report::{ErrorChainItem, Report, Status};

use plist::{Dictionary, Value};

use crate::wire::plist::PlistError;

/// Why an MDM message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The body is not an acceptable plist.
    #[error(transparent)]
    Plist(#[from] PlistError),
    /// A required key is absent.
    #[error("missing required key {0}")]
    MissingKey(&'static str),
    /// A key holds a value of the wrong plist type.
    #[error("key {key} must be a {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// The expected plist type.
        expected: &'static str,
    },
    /// A check-in `MessageType` this crate does not know.
    #[error("unknown check-in MessageType {0:?}")]
    UnknownMessageType(String),
    /// A report `Status` outside Apple's five values.
    #[error("unknown report Status {0:?}")]
    UnknownStatus(String),
    /// Neither `UDID` nor `EnrollmentID` is present (or both are empty).
    #[error("message names no device (no UDID or EnrollmentID)")]
    NoIdentity,
}

/// A dictionary's entries, from which a message takes its typed fields one
/// by one; what is left over is kept as the message's unknown keys.
///
/// A list, not a hash map: a message has a few dozen keys, so a lookup
/// compares a few short strings and hashes nothing. A taken entry stays in
/// place, empty, so taking costs one pass and no shifting: a hostile body
/// with many keys costs each of the (fixed set of) lookups one pass over
/// them. Keys are unique.
pub(crate) struct Fields(Vec<(String, Option<Value>)>);

impl Fields {
    pub(crate) fn new(d: Dictionary) -> Self {
        Self(d.into_iter().map(|(k, v)| (k, Some(v))).collect())
    }

    /// Entries with unique keys, e.g. from `wire::plist::decode_dict_entries`.
    pub(crate) fn from_entries(entries: Vec<(String, Value)>) -> Self {
        Self(entries.into_iter().map(|(k, v)| (k, Some(v))).collect())
    }

    /// Put back a value taken out (where it was; a new key goes last).
    pub(crate) fn put(&mut self, key: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = Some(value),
            None => self.0.push((key.to_owned(), Some(value))),
        }
    }

    /// Take `key`'s value out.
    fn take(&mut self, key: &str) -> Option<Value> {
        self.0.iter_mut().find(|(k, _)| k == key)?.1.take()
    }

    pub(crate) fn opt_string(&mut self, key: &'static str) -> Result<Option<String>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::WrongType {
                key,
                expected: "string",
            }),
        }
    }

    pub(crate) fn string(&mut self, key: &'static str) -> Result<String, Error> {
        self.opt_string(key)?.ok_or(Error::MissingKey(key))
    }

    pub(crate) fn opt_data(&mut self, key: &'static str) -> Result<Option<Vec<u8>>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Data(d)) => Ok(Some(d)),
            Some(_) => Err(Error::WrongType {
                key,
                expected: "data",
            }),
        }
    }

    pub(crate) fn data(&mut self, key: &'static str) -> Result<Vec<u8>, Error> {
        self.opt_data(key)?.ok_or(Error::MissingKey(key))
    }

    pub(crate) fn opt_bool(&mut self, key: &'static str) -> Result<Option<bool>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(b)),
            Some(_) => Err(Error::WrongType {
                key,
                expected: "boolean",
            }),
        }
    }

    pub(crate) fn opt_integer(&mut self, key: &'static str) -> Result<Option<i64>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => i.as_signed().map(Some).ok_or(Error::WrongType {
                key,
                expected: "64-bit signed integer",
            }),
            Some(_) => Err(Error::WrongType {
                key,
                expected: "integer",
            }),
        }
    }

    pub(crate) fn opt_dict(&mut self, key: &'static str) -> Result<Option<Dictionary>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Dictionary(d)) => Ok(Some(d)),
            Some(_) => Err(Error::WrongType {
                key,
                expected: "dictionary",
            }),
        }
    }

    pub(crate) fn opt_array(&mut self, key: &'static str) -> Result<Option<Vec<Value>>, Error> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(Error::WrongType {
                key,
                expected: "array",
            }),
        }
    }

    pub(crate) fn rest(self) -> Dictionary {
        self.0
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect()
    }
}

/// Builds a dictionary in Apple key order, skipping absent optional values.
pub(crate) struct DictBuilder(Dictionary);

impl DictBuilder {
    pub(crate) fn new() -> Self {
        Self(Dictionary::new())
    }

    pub(crate) fn put(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    pub(crate) fn opt<V: Into<Value> + Clone>(
        &mut self,
        key: &str,
        value: Option<&V>,
    ) -> &mut Self {
        if let Some(v) = value {
            self.0.insert(key.to_owned(), v.clone().into());
        }
        self
    }

    pub(crate) fn opt_data(&mut self, key: &str, value: Option<&Vec<u8>>) -> &mut Self {
        if let Some(v) = value {
            self.0.insert(key.to_owned(), Value::Data(v.clone()));
        }
        self
    }

    pub(crate) fn extend(&mut self, extra: &Dictionary) -> &mut Self {
        for (k, v) in extra {
            if !self.0.contains_key(k) {
                self.0.insert(k.clone(), v.clone());
            }
        }
        self
    }

    pub(crate) fn build(&mut self) -> Dictionary {
        std::mem::take(&mut self.0)
    }
}
