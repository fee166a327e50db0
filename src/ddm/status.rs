//! The status report a device sends to the `status` endpoint (schemas
//! `declarative/protocol/statusreport.yaml` and
//! `declarative/status/management.declarations.yaml`).
//!
//! Status items arrive as nested objects with kebab-case keys
//! (`management` → `declarations` → `configurations` → `[{identifier,
//! server-token, active, valid, reasons}]`). This module keeps, per
//! declaration, what the device applied; every status item is also kept
//! as JSON in [`StatusReport::status_items`].

use super::declaration::{DeclarationKind, Fields};
use super::token::ServerToken;
use super::{DdmError, schema};
use crate::wire::Limits;
use crate::wire::json::{self, Json, JsonLimits};

/// `valid` of a declaration's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Validity {
    /// `valid`.
    Valid,
    /// `invalid`: `reasons` says why.
    Invalid,
    /// `unknown`.
    Unknown,
}

impl Validity {
    /// Apple's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Unknown => "unknown",
        }
    }

    /// Parse Apple's value.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Valid, Self::Invalid, Self::Unknown]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A reason given with an invalid declaration or a status error.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReason {
    /// `code` (`Code` in `Errors`), e.g. `Error.ConfigurationCannotBeApplied`.
    pub code: String,
    /// `description`.
    pub description: Option<String>,
    /// `details`, as sent.
    pub details: Option<Json>,
}

/// What the device reported for one declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclarationStatus {
    /// The class array it came in.
    pub kind: DeclarationKind,
    /// `identifier`.
    pub identifier: String,
    /// `server-token`: the revision the device holds.
    pub server_token: ServerToken,
    /// `active`.
    pub active: bool,
    /// `valid`.
    pub valid: Validity,
    /// `reasons` (empty when absent).
    pub reasons: Vec<StatusReason>,
}

impl DeclarationStatus {
    /// Applied: active, valid, and the revision is `current`.
    pub fn is_applied(&self, current: &ServerToken) -> bool {
        self.active && self.valid == Validity::Valid && &self.server_token == current
    }
}

/// An entry of `Errors`: a status item the device could not return.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusError {
    /// `StatusItem`.
    pub status_item: String,
    /// `Reasons`.
    pub reasons: Vec<StatusReason>,
}

/// A parsed status report.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// The `management.declarations` item, when the report carries it
    /// (a partial report may not).
    pub declarations: Option<Vec<DeclarationStatus>>,
    /// `Errors` (empty when absent).
    pub errors: Vec<StatusError>,
    /// `FullReport`: `true` when the report holds every subscribed item.
    pub full_report: Option<bool>,
    /// `StatusItems`, as sent.
    pub status_items: Json,
}

impl StatusReport {
    /// Parse a status report body (the `Data` of a `status` check-in),
    /// bounded by `limits` (size, depth, value count).
    pub fn decode(body: &[u8], limits: &Limits) -> Result<Self, DdmError> {
        Self::from_json(json::parse(body, JsonLimits::from(limits))?)
    }

    /// Interpret an already-parsed report.
    pub fn from_json(doc: Json) -> Result<Self, DdmError> {
        let top = doc.as_object().ok_or_else(|| schema("$", "a dictionary"))?;
        let mut f = Fields::new("", top);
        let items = f.object("StatusItems")?;
        let full_report = f.opt_bool("FullReport")?;
        let errors = match f.opt_array("Errors")? {
            None => Vec::new(),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(n, e)| status_error(format!("Errors[{n}]"), e))
                .collect::<Result<_, _>>()?,
        };
        let declarations = match items
            .iter()
            .find(|(k, _)| k == "management")
            .and_then(|(_, m)| m.get("declarations"))
        {
            None => None,
            Some(d) => Some(declarations(d)?),
        };
        Ok(Self {
            declarations,
            errors,
            full_report,
            status_items: Json::Object(items.to_vec()),
        })
    }

    /// The status of one declaration, when reported.
    pub fn declaration(&self, identifier: &str) -> Option<&DeclarationStatus> {
        self.declarations
            .as_deref()
            .and_then(|d| d.iter().find(|s| s.identifier == identifier))
    }
}

fn declarations(d: &Json) -> Result<Vec<DeclarationStatus>, DdmError> {
    const AT: &str = "StatusItems.management.declarations";
    let obj = d.as_object().ok_or_else(|| schema(AT, "a dictionary"))?;
    let mut f = Fields::new(AT, obj);
    let mut out = Vec::new();
    for kind in DeclarationKind::ALL {
        let key = kind.status_key();
        // Required by the schema, but a device reporting a partial item may
        // leave a class out; an absent class holds nothing.
        for (n, item) in f.opt_array(key)?.unwrap_or_default().iter().enumerate() {
            let path = format!("{AT}.{key}[{n}]");
            let obj = item
                .as_object()
                .ok_or_else(|| schema(&path, "a dictionary"))?;
            let mut i = Fields::new(&path, obj);
            let identifier = i.string("identifier")?;
            let server_token = ServerToken::new(i.string("server-token")?)?;
            let active = i
                .opt_bool("active")?
                .ok_or_else(|| schema(format!("{path}.active"), "a boolean"))?;
            let valid = Validity::parse(&i.string("valid")?)
                .ok_or_else(|| schema(format!("{path}.valid"), "valid, invalid or unknown"))?;
            let reasons = reasons(&path, "reasons", ["code", "description", "details"], &mut i)?;
            out.push(DeclarationStatus {
                kind,
                identifier,
                server_token,
                active,
                valid,
                reasons,
            });
        }
    }
    Ok(out)
}

fn status_error(path: String, e: &Json) -> Result<StatusError, DdmError> {
    let obj = e.as_object().ok_or_else(|| schema(&path, "a dictionary"))?;
    let mut f = Fields::new(&path, obj);
    Ok(StatusError {
        status_item: f.string("StatusItem")?,
        reasons: reasons(&path, "Reasons", ["Code", "Description", "Details"], &mut f)?,
    })
}

/// The reasons array `key` of `f`; `names` are the code, description and
/// details keys (lower case in status items, capitalised in `Errors`).
fn reasons(
    path: &str,
    key: &str,
    [code, description, details]: [&str; 3],
    f: &mut Fields<'_>,
) -> Result<Vec<StatusReason>, DdmError> {
    let Some(list) = f.opt_array(key)? else {
        return Ok(Vec::new());
    };
    list.iter()
        .enumerate()
        .map(|(n, r)| {
            let at = format!("{path}.{key}[{n}]");
            let obj = r.as_object().ok_or_else(|| schema(&at, "a dictionary"))?;
            let mut rf = Fields::new(&at, obj);
            let details = match rf.take(details) {
                None => None,
                Some(v) if v.as_object().is_some() => Some(v.clone()),
                Some(_) => return Err(schema(format!("{at}.{details}"), "a dictionary")),
            };
            Ok(StatusReason {
                code: rf.string(code)?,
                description: rf.opt_string(description)?,
                details,
            })
        })
        .collect()
}
