//! The four endpoints of the `DeclarativeManagement` check-in message and
//! the sans-IO answer to each ([`respond`]). The caller keeps one
//! [`DeclarationSet`] per channel (device, and the macOS user channel) and
//! stores what a status report says.

use std::time::SystemTime;

use super::DdmError;
use super::declaration::DeclarationKind;
use super::status::StatusReport;
use super::token::DeclarationSet;
use crate::wire::Limits;

/// A `DeclarativeManagement` `Endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// `tokens`: the synchronisation tokens.
    Tokens,
    /// `declaration-items`: identifier and server token of every declaration.
    DeclarationItems,
    /// `declaration/<kind>/<identifier>`: one declaration.
    Declaration {
        /// The class path segment.
        kind: DeclarationKind,
        /// The identifier.
        identifier: String,
    },
    /// `status`: the device's status report in `Data`.
    Status,
}

impl Endpoint {
    /// Parse an `Endpoint` value; the identifier may hold any character but `/`.
    pub fn parse(s: &str) -> Result<Self, DdmError> {
        let unknown = || DdmError::UnknownEndpoint(s.chars().take(300).collect());
        match s {
            "tokens" => Ok(Self::Tokens),
            "declaration-items" => Ok(Self::DeclarationItems),
            "status" => Ok(Self::Status),
            _ => {
                let rest = s.strip_prefix("declaration/").ok_or_else(unknown)?;
                let (kind, identifier) = rest.split_once('/').ok_or_else(unknown)?;
                let kind = DeclarationKind::from_path_segment(kind).ok_or_else(unknown)?;
                if identifier.is_empty() || identifier.contains('/') {
                    return Err(unknown());
                }
                Ok(Self::Declaration {
                    kind,
                    identifier: identifier.to_owned(),
                })
            }
        }
    }

    /// The `Endpoint` value.
    pub fn as_string(&self) -> String {
        match self {
            Self::Tokens => "tokens".into(),
            Self::DeclarationItems => "declaration-items".into(),
            Self::Status => "status".into(),
            Self::Declaration { kind, identifier } => {
                format!("declaration/{}/{identifier}", kind.path_segment())
            }
        }
    }
}

/// The answer to one `DeclarativeManagement` check-in.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DdmAnswer {
    /// 200 with this `application/json` body.
    Json(Vec<u8>),
    /// 404: no such declaration (the device deletes its copy).
    NotFound,
    /// 200 with an empty body; the caller stores the report.
    Status(StatusReport),
}

/// Answer `endpoint` for `set`. `changed_at` is when the set last changed
/// (the tokens response's `Timestamp`); `data` is the message's `Data`
/// (required by `status`, bounded by `limits`).
pub fn respond(
    set: &DeclarationSet,
    endpoint: &Endpoint,
    data: Option<&[u8]>,
    changed_at: SystemTime,
    limits: &Limits,
) -> Result<DdmAnswer, DdmError> {
    Ok(match endpoint {
        Endpoint::Tokens => DdmAnswer::Json(set.tokens_response(changed_at).encode()),
        Endpoint::DeclarationItems => DdmAnswer::Json(set.declaration_items().encode()),
        Endpoint::Declaration { kind, identifier } => match set.get_kind(*kind, identifier) {
            Some(d) => DdmAnswer::Json(d.encode()),
            None => DdmAnswer::NotFound,
        },
        Endpoint::Status => {
            let body = data.ok_or(DdmError::MissingData)?;
            DdmAnswer::Status(StatusReport::decode(body, limits)?)
        }
    })
}
