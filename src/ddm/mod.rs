//! Declarative device management (DDM): declarations, synchronisation
//! tokens, the status report and the four check-in endpoints of the
//! `DeclarativeManagement` message.
//!
//! Schemas: Apple `declarative/protocol/*.yaml` (tokens response,
//! declaration-items response, status report), `declarative/declarations/`
//! (each declaration type) and `declarative/status/management.declarations.yaml`.
//!
//! - [`declaration`]: [`Declaration`] with a typed [`DeclarationPayload`]
//!   for what activation needs, and a generic form for every other type.
//! - [`token`]: [`ServerToken`] (from a declaration's content, 64 octets),
//!   [`DeclarationsToken`] (from the set), [`DeclarationSet`],
//!   [`TokensResponse`] and [`DeclarationItemsResponse`].
//! - [`status`]: [`StatusReport`], the device's report of what it applied.
//! - [`endpoint`]: [`Endpoint`] (`tokens`, `declaration-items`,
//!   `declaration/<kind>/<identifier>`, `status`) and [`respond`], the
//!   sans-IO answer to one `DeclarativeManagement` check-in.
//!
//! Every JSON body from a device is read by the bounded reader
//! [`crate::wire::json::parse`] (size, depth and value count from
//! [`crate::wire::Limits`]).

pub mod declaration;
pub mod endpoint;
pub mod status;
pub mod token;

pub use declaration::{
    AssetAuthentication, Declaration, DeclarationKind, DeclarationPayload, DecodedDeclaration,
    PasscodeSettings, TestReturnStatus,
};
pub use endpoint::{DdmAnswer, Endpoint, respond};
pub use status::{DeclarationStatus, StatusError, StatusReason, StatusReport, Validity};
pub use token::{
    DeclarationItem, DeclarationItemsResponse, DeclarationSet, DeclarationsToken, ServerToken,
    TokensResponse,
};

use thiserror::Error;

use crate::wire::json::JsonError;

/// Why a DDM document or request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DdmError {
    /// The body is not acceptable JSON (too large, too deep, syntax).
    #[error("DDM JSON: {0}")]
    Json(#[from] JsonError),
    /// A key is missing or holds the wrong type; `path` names where.
    #[error("DDM document: {path}: expected {expected}")]
    Schema {
        /// Where in the document, e.g. `Payload.StandardConfigurations[2]`.
        path: String,
        /// What the schema requires there.
        expected: &'static str,
    },
    /// A declaration identifier that is empty, too long or not URL-path safe.
    #[error(
        "declaration identifier {0:?} is empty, longer than 256 bytes or has characters outside A-Z a-z 0-9 . _ -"
    )]
    InvalidIdentifier(String),
    /// A token longer than the protocol allows.
    #[error("{what} of {len} octets exceeds {limit}")]
    TokenTooLong {
        /// `ServerToken` or `DeclarationsToken`.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A URL the schema requires to be `https://`.
    #[error("{key} must be an https:// URL, got {value:?}")]
    NotHttps {
        /// The payload key.
        key: &'static str,
        /// The value given.
        value: String,
    },
    /// An `Endpoint` value this crate does not know.
    #[error("unknown DeclarativeManagement endpoint {0:?}")]
    UnknownEndpoint(String),
    /// The `status` endpoint was called without `Data`.
    #[error("DeclarativeManagement status without Data")]
    MissingData,
}

/// Schema error at `path`.
pub(crate) fn schema(path: impl Into<String>, expected: &'static str) -> DdmError {
    DdmError::Schema {
        path: path.into(),
        expected,
    }
}
