//! [`DeclarationStore`]: per channel, the declaration set served over
//! declarative device management and the last status the device reported
//! for each declaration.
//!
//! A backend stores two text documents per channel ([`DdmSlot`]); the typed
//! methods, provided here, encode them as JSON: the set as the declaration
//! documents themselves (so what is stored is exactly what is served) and
//! the statuses in the status report's own key names.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::StoreError;
use crate::activation::QueueKey;
use crate::ddm::{
    Declaration, DeclarationKind, DeclarationSet, DeclarationStatus, ServerToken, StatusReason,
    Validity,
};
use crate::wire::json::{self, Json, JsonLimits};

/// Which of a channel's two DDM documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DdmSlot {
    /// The declaration set and when it last changed.
    Declarations,
    /// The last reported status per declaration.
    Statuses,
}

impl DdmSlot {
    /// A stable name for the backend's key column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Declarations => "declarations",
            Self::Statuses => "statuses",
        }
    }
}

/// A channel's declaration set as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDeclarations {
    /// The set.
    pub set: DeclarationSet,
    /// When it last changed (the tokens response's `Timestamp`).
    pub changed_at: SystemTime,
    /// Identifiers of the set the device was first given: the activation
    /// completes over DDM once each of these is applied.
    pub initial: Vec<String>,
}

/// Per-channel DDM storage. Implement the two document methods; the typed
/// methods are provided. A status write replaces the whole document (the
/// device reports one channel at a time; the last write wins).
pub trait DeclarationStore: Send + Sync {
    /// The stored document of `slot` for `key`'s channel.
    fn ddm_document(&self, key: &QueueKey, slot: DdmSlot) -> Result<Option<String>, StoreError>;

    /// Replace the document of `slot` for `key`'s channel.
    fn put_ddm_document(
        &self,
        key: &QueueKey,
        slot: DdmSlot,
        document: &str,
    ) -> Result<(), StoreError>;

    /// The channel's declaration set, if one was stored.
    fn declarations(&self, key: &QueueKey) -> Result<Option<StoredDeclarations>, StoreError> {
        self.ddm_document(key, DdmSlot::Declarations)?
            .map(|d| decode_declarations(&d))
            .transpose()
    }

    /// Store the channel's declaration set.
    fn put_declarations(
        &self,
        key: &QueueKey,
        stored: &StoredDeclarations,
    ) -> Result<(), StoreError> {
        self.put_ddm_document(key, DdmSlot::Declarations, &encode_declarations(stored))
    }

    /// The last reported status of each declaration, by identifier.
    fn declaration_statuses(&self, key: &QueueKey) -> Result<Vec<DeclarationStatus>, StoreError> {
        self.ddm_document(key, DdmSlot::Statuses)?
            .map(|d| decode_statuses(&d))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Merge `reported` into the stored statuses (a reported identifier
    /// replaces its entry); returns the merged list.
    fn merge_declaration_statuses(
        &self,
        key: &QueueKey,
        reported: &[DeclarationStatus],
    ) -> Result<Vec<DeclarationStatus>, StoreError> {
        let mut all = self.declaration_statuses(key)?;
        for s in reported {
            match all.iter_mut().find(|o| o.identifier == s.identifier) {
                Some(o) => *o = s.clone(),
                None => all.push(s.clone()),
            }
        }
        all.sort_by(|a, b| a.identifier.cmp(&b.identifier));
        self.put_ddm_document(key, DdmSlot::Statuses, &encode_statuses(&all))?;
        Ok(all)
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::permanent(format!("stored DDM document: {what}"))
}

fn limits() -> JsonLimits {
    // Written by us: no size bound beyond memory; depth and count as usual.
    JsonLimits {
        max_bytes: usize::MAX,
        ..JsonLimits::default()
    }
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn encode_declarations(s: &StoredDeclarations) -> String {
    Json::Object(vec![
        ("changed_at_ms".into(), millis(s.changed_at).into()),
        (
            "initial".into(),
            Json::Array(s.initial.iter().map(|i| i.as_str().into()).collect()),
        ),
        (
            "declarations".into(),
            Json::Array(s.set.iter().map(Declaration::to_json).collect()),
        ),
    ])
    .encode()
}

fn decode_declarations(doc: &str) -> Result<StoredDeclarations, StoreError> {
    let v = json::parse(doc.as_bytes(), limits()).map_err(|e| corrupt(&e.to_string()))?;
    let ms = v
        .get("changed_at_ms")
        .and_then(Json::as_i64)
        .ok_or_else(|| corrupt("changed_at_ms"))?;
    let changed_at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    let initial = v
        .get("initial")
        .and_then(Json::as_array)
        .ok_or_else(|| corrupt("initial"))?
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_owned)
                .ok_or_else(|| corrupt("initial"))
        })
        .collect::<Result<_, _>>()?;
    let mut set = DeclarationSet::new();
    for d in v
        .get("declarations")
        .and_then(Json::as_array)
        .ok_or_else(|| corrupt("declarations"))?
    {
        let decoded = Declaration::from_json(d).map_err(|e| corrupt(&e.to_string()))?;
        set.insert(decoded.declaration);
    }
    Ok(StoredDeclarations {
        set,
        changed_at,
        initial,
    })
}

fn encode_statuses(all: &[DeclarationStatus]) -> String {
    let reason = |r: &StatusReason| {
        let mut m = vec![("code".to_owned(), Json::from(r.code.as_str()))];
        if let Some(d) = &r.description {
            m.push(("description".into(), d.as_str().into()));
        }
        if let Some(d) = &r.details {
            m.push(("details".into(), d.clone()));
        }
        Json::Object(m)
    };
    Json::Array(
        all.iter()
            .map(|s| {
                Json::Object(vec![
                    ("kind".into(), s.kind.path_segment().into()),
                    ("identifier".into(), s.identifier.as_str().into()),
                    ("server-token".into(), s.server_token.as_str().into()),
                    ("active".into(), s.active.into()),
                    ("valid".into(), s.valid.as_str().into()),
                    (
                        "reasons".into(),
                        Json::Array(s.reasons.iter().map(reason).collect()),
                    ),
                ])
            })
            .collect(),
    )
    .encode()
}

fn decode_statuses(doc: &str) -> Result<Vec<DeclarationStatus>, StoreError> {
    let v = json::parse(doc.as_bytes(), limits()).map_err(|e| corrupt(&e.to_string()))?;
    let items = v.as_array().ok_or_else(|| corrupt("statuses"))?;
    let text = |o: &Json, k: &str| {
        o.get(k)
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| corrupt(k))
    };
    items
        .iter()
        .map(|o| {
            let reasons = o
                .get("reasons")
                .and_then(Json::as_array)
                .ok_or_else(|| corrupt("reasons"))?
                .iter()
                .map(|r| {
                    Ok(StatusReason {
                        code: text(r, "code")?,
                        description: r
                            .get("description")
                            .and_then(Json::as_str)
                            .map(str::to_owned),
                        details: r.get("details").cloned(),
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            Ok(DeclarationStatus {
                kind: DeclarationKind::from_path_segment(&text(o, "kind")?)
                    .ok_or_else(|| corrupt("kind"))?,
                identifier: text(o, "identifier")?,
                server_token: ServerToken::new(text(o, "server-token")?)
                    .map_err(|e| corrupt(&e.to_string()))?,
                active: o
                    .get("active")
                    .and_then(Json::as_bool)
                    .ok_or_else(|| corrupt("active"))?,
                valid: Validity::parse(&text(o, "valid")?).ok_or_else(|| corrupt("valid"))?,
                reasons,
            })
        })
        .collect()
}
