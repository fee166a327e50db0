//! Synchronisation tokens and the two server documents built from the
//! declaration set: the tokens response (schema
//! `declarative/protocol/tokensresponse.yaml`) and the declaration-items
//! response (`declarative/protocol/declarationitemsresponse.yaml`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::declaration::{Declaration, DeclarationKind, Fields};
use super::{DdmError, schema};
use crate::wire::Limits;
use crate::wire::hex::lower as hex;
use crate::wire::json::{self, Json, JsonLimits};

/// A declaration's `ServerToken`: at most 64 octets. This crate derives it
/// from the declaration's content ([`Declaration::server_token`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerToken(String);

impl ServerToken {
    /// Longest token accepted, in octets.
    pub const MAX_LEN: usize = 64;

    /// A token as received (for example in a status report); refused when
    /// longer than [`Self::MAX_LEN`].
    pub fn new(token: impl Into<String>) -> Result<Self, DdmError> {
        bounded(token.into(), "ServerToken", Self::MAX_LEN).map(Self)
    }

    pub(crate) fn from_digest(digest: &[u8]) -> Self {
        Self(hex(digest))
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `DeclarationsToken`: at most 256 octets, derived from the whole set
/// so it changes whenever a declaration is added, removed or changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeclarationsToken(String);

impl DeclarationsToken {
    /// Longest token accepted, in octets.
    pub const MAX_LEN: usize = 256;

    /// A token as received; refused when longer than [`Self::MAX_LEN`].
    pub fn new(token: impl Into<String>) -> Result<Self, DdmError> {
        bounded(token.into(), "DeclarationsToken", Self::MAX_LEN).map(Self)
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The declarations served to one channel, keyed by identifier (an
/// identifier is unique across the four classes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeclarationSet {
    by_id: BTreeMap<String, Declaration>,
}

impl DeclarationSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace (same identifier) a declaration; returns the one replaced.
    pub fn insert(&mut self, declaration: Declaration) -> Option<Declaration> {
        self.by_id
            .insert(declaration.identifier().to_owned(), declaration)
    }

    /// Remove a declaration by identifier.
    pub fn remove(&mut self, identifier: &str) -> Option<Declaration> {
        self.by_id.remove(identifier)
    }

    /// The declaration with this identifier.
    pub fn get(&self, identifier: &str) -> Option<&Declaration> {
        self.by_id.get(identifier)
    }

    /// The declaration served at `declaration/<kind>/<identifier>`: `None`
    /// (answer 404) when absent or of another class.
    pub fn get_kind(&self, kind: DeclarationKind, identifier: &str) -> Option<&Declaration> {
        self.get(identifier).filter(|d| d.kind() == kind)
    }

    /// Every declaration, by identifier.
    pub fn iter(&self) -> impl Iterator<Item = &Declaration> {
        self.by_id.values()
    }

    /// How many declarations.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// No declarations.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The `DeclarationsToken`: hex SHA-256 over every identifier and
    /// `ServerToken`, in identifier order (64 octets).
    pub fn declarations_token(&self) -> DeclarationsToken {
        let mut h = Sha256::new();
        for d in self.by_id.values() {
            for part in [d.identifier(), d.server_token().as_str()] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part.as_bytes());
            }
        }
        DeclarationsToken(hex(&h.finalize()))
    }

    /// The tokens response with `timestamp` (when the set last changed).
    pub fn tokens_response(&self, timestamp: SystemTime) -> TokensResponse {
        TokensResponse {
            declarations_token: self.declarations_token(),
            timestamp: whole_seconds(timestamp),
        }
    }

    /// The declaration-items response: each declaration's `Identifier` and
    /// `ServerToken` in its class's array.
    pub fn declaration_items(&self) -> DeclarationItemsResponse {
        let mut items = DeclarationItemsResponse {
            declarations_token: self.declarations_token(),
            activations: Vec::new(),
            configurations: Vec::new(),
            assets: Vec::new(),
            management: Vec::new(),
        };
        for d in self.by_id.values() {
            items.class_mut(d.kind()).push(DeclarationItem {
                identifier: d.identifier().to_owned(),
                server_token: d.server_token(),
            });
        }
        items
    }
}

/// `SyncTokens` of the tokens response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokensResponse {
    /// `SyncTokens.DeclarationsToken`.
    pub declarations_token: DeclarationsToken,
    /// `SyncTokens.Timestamp`, in whole seconds.
    pub timestamp: SystemTime,
}

impl TokensResponse {
    /// `{"SyncTokens":{"DeclarationsToken":…,"Timestamp":"YYYY-MM-DDTHH:MM:SSZ"}}`.
    pub fn to_json(&self) -> Json {
        Json::Object(vec![(
            "SyncTokens".into(),
            Json::Object(vec![
                (
                    "DeclarationsToken".into(),
                    self.declarations_token.as_str().into(),
                ),
                ("Timestamp".into(), format_timestamp(self.timestamp).into()),
            ]),
        )])
    }

    /// The JSON body (also the `Data` of the `DeclarativeManagement` command).
    pub fn encode(&self) -> Vec<u8> {
        self.to_json().encode().into_bytes()
    }

    /// Read a tokens response (bounded by `limits`).
    pub fn decode(body: &[u8], limits: &Limits) -> Result<Self, DdmError> {
        let doc = json::parse(body, JsonLimits::from(limits))?;
        let top = doc.as_object().ok_or_else(|| schema("$", "a dictionary"))?;
        let mut f = Fields::new("", top);
        let sync = f.object("SyncTokens")?;
        let mut s = Fields::new("SyncTokens", sync);
        let declarations_token = DeclarationsToken::new(s.string("DeclarationsToken")?)?;
        let timestamp = parse_timestamp(&s.string("Timestamp")?)
            .ok_or_else(|| schema("SyncTokens.Timestamp", "YYYY-MM-DDTHH:MM:SSZ"))?;
        Ok(Self {
            declarations_token,
            timestamp,
        })
    }
}

/// One entry of the declaration-items response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclarationItem {
    /// `Identifier`.
    pub identifier: String,
    /// `ServerToken`.
    pub server_token: ServerToken,
}

/// The declaration-items response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclarationItemsResponse {
    /// `DeclarationsToken` (the same as the tokens response's).
    pub declarations_token: DeclarationsToken,
    /// `Declarations.Activations`.
    pub activations: Vec<DeclarationItem>,
    /// `Declarations.Configurations`.
    pub configurations: Vec<DeclarationItem>,
    /// `Declarations.Assets`.
    pub assets: Vec<DeclarationItem>,
    /// `Declarations.Management`.
    pub management: Vec<DeclarationItem>,
}

impl DeclarationItemsResponse {
    /// The items of one class.
    pub fn class(&self, kind: DeclarationKind) -> &[DeclarationItem] {
        match kind {
            DeclarationKind::Activation => &self.activations,
            DeclarationKind::Configuration => &self.configurations,
            DeclarationKind::Asset => &self.assets,
            DeclarationKind::Management => &self.management,
        }
    }

    fn class_mut(&mut self, kind: DeclarationKind) -> &mut Vec<DeclarationItem> {
        match kind {
            DeclarationKind::Activation => &mut self.activations,
            DeclarationKind::Configuration => &mut self.configurations,
            DeclarationKind::Asset => &mut self.assets,
            DeclarationKind::Management => &mut self.management,
        }
    }

    /// The document: all four arrays present (empty ones too), each item
    /// only `Identifier` and `ServerToken`.
    pub fn to_json(&self) -> Json {
        let classes = DeclarationKind::ALL
            .into_iter()
            .map(|k| {
                let items = self
                    .class(k)
                    .iter()
                    .map(|i| {
                        Json::Object(vec![
                            ("Identifier".into(), i.identifier.as_str().into()),
                            ("ServerToken".into(), i.server_token.as_str().into()),
                        ])
                    })
                    .collect();
                (k.items_key().to_owned(), Json::Array(items))
            })
            .collect();
        Json::Object(vec![
            ("Declarations".into(), Json::Object(classes)),
            (
                "DeclarationsToken".into(),
                self.declarations_token.as_str().into(),
            ),
        ])
    }

    /// The JSON body.
    pub fn encode(&self) -> Vec<u8> {
        self.to_json().encode().into_bytes()
    }

    /// Read a declaration-items response (bounded by `limits`).
    pub fn decode(body: &[u8], limits: &Limits) -> Result<Self, DdmError> {
        let doc = json::parse(body, JsonLimits::from(limits))?;
        let top = doc.as_object().ok_or_else(|| schema("$", "a dictionary"))?;
        let mut f = Fields::new("", top);
        let declarations = f.object("Declarations")?;
        let declarations_token = DeclarationsToken::new(f.string("DeclarationsToken")?)?;
        let mut out = Self {
            declarations_token,
            activations: Vec::new(),
            configurations: Vec::new(),
            assets: Vec::new(),
            management: Vec::new(),
        };
        let mut d = Fields::new("Declarations", declarations);
        for kind in DeclarationKind::ALL {
            let key = kind.items_key();
            for (n, item) in d.array(key)?.iter().enumerate() {
                let path = format!("Declarations.{key}[{n}]");
                let obj = item
                    .as_object()
                    .ok_or_else(|| schema(&path, "a dictionary"))?;
                let mut i = Fields::new(path, obj);
                out.class_mut(kind).push(DeclarationItem {
                    identifier: i.string("Identifier")?,
                    server_token: ServerToken::new(i.string("ServerToken")?)?,
                });
            }
        }
        Ok(out)
    }
}

/// `token` when at most `limit` octets.
fn bounded(token: String, what: &'static str, limit: usize) -> Result<String, DdmError> {
    if token.len() > limit {
        return Err(DdmError::TokenTooLong {
            what,
            len: token.len(),
            limit,
        });
    }
    Ok(token)
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, no fractional seconds); times before 1970
/// are written as the epoch.
pub fn format_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Read `YYYY-MM-DDTHH:MM:SSZ` (the form [`format_timestamp`] writes).
pub fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
        || b.get(19) != Some(&b'Z')
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u64> {
        let part = s.get(from..to)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, se) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if y < 1970
        || !(1..=12).contains(&mo)
        || d < 1
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || se > 59
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + mi * 60 + se))
}

fn is_leap(y: u64) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year ≥ 1970).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let mut days = 0;
    for year in 1970..y {
        days += if is_leap(year) { 366 } else { 365 };
    }
    for month in 1..m {
        days += days_in_month(y, month);
    }
    days + d - 1
}

/// The date `days` after 1970-01-01.
fn civil_from_days(mut days: u64) -> (u64, u64, u64) {
    let mut y = 1970;
    loop {
        let len = if is_leap(y) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        y += 1;
    }
    let mut m = 1;
    while m < 12 && days >= days_in_month(y, m) {
        days -= days_in_month(y, m);
        m += 1;
    }
    (y, m, days + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_whole_seconds_and_round_trip() {
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_750); // 2024-02-29T23:59:59.750Z
        assert_eq!(format_timestamp(t), "2024-02-29T23:59:59Z");
        assert_eq!(
            parse_timestamp("2024-02-29T23:59:59Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_709_251_199))
        );
        assert_eq!(format_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_timestamp(UNIX_EPOCH + Duration::from_secs(4_102_444_800)),
            "2100-01-01T00:00:00Z"
        );
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.5Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00+00:00",
            "+024-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn tokens_refuse_their_protocol_lengths() {
        assert!(ServerToken::new("a".repeat(64)).is_ok());
        assert!(matches!(
            ServerToken::new("a".repeat(65)),
            Err(DdmError::TokenTooLong {
                len: 65,
                limit: 64,
                ..
            })
        ));
        assert!(DeclarationsToken::new("a".repeat(256)).is_ok());
        assert!(DeclarationsToken::new("a".repeat(257)).is_err());
    }
}
