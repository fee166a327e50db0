//! The layout of the SQL stores' rows, versioned apart from the public
//! types they carry.
//!
//! A row's value is a binary plist dictionary: a `v` key, the layout's
//! version, and the fields of that record's row type here (`...Row`).
//! Each record type lists its fields itself and converts from and to its
//! public type by destructuring it whole, so a field added to a public type
//! does not compile until its record says how it is stored: add it to the
//! record with `#[serde(default)]` (older rows decode without it), or, when
//! a stored field changes its encoding or meaning, raise that record's
//! version and make its record type read the older versions too. Values
//! nested inside a record (a `Policy`, a `ChallengeGrant`, times) keep their
//! serde encoding; the vectors under `tests/vectors/store/` pin it.
//!
//! Versions, per record:
//! - 1: every record. Rows written before records were versioned have no
//!   `v`: they are version 1, whose fields are exactly theirs.
//! - 2: the activation, the issued certificate, the queued command and the
//!   command result, whose byte fields (bodies, an identity's serial and
//!   certificate, push tokens) are plist `data` objects; version 1 wrote
//!   them as serde writes a `Vec<u8>`, an array with one integer object per
//!   byte (larger, and a slow decode).
//!   This build reads both; a build older than version 2 refuses these rows
//!   with [`RecordError::UnknownVersion`] instead of misreading them, so
//!   replicas of mixed builds fail loudly, not silently.
//! - 3: the SQL stores' queued command with a body over 2 KiB, written
//!   without its body, which the store keeps beside it (SQLite: a table of
//!   its own, so a delivery mark does not rewrite it; PostgreSQL: a column).
//!   Smaller bodies stay inline in version 2 rows, and rows of versions 1
//!   and 2 are read as before; a build older than version 3 refuses the new
//!   rows the same way.
//!
//! A row of a version this build does not know is refused with
//! [`RecordError::UnknownVersion`], a permanent [`StoreError`].

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{Binding, ChallengeRecord, IssuedCertificate, PushState, StoreError};
use crate::activation::{
    Activation, ActivationId, CertFingerprint, ChallengeGrant, Channel, CommandOutcome,
    CommandResult, CommandUuid, Connection, DeclarativeProgress, DeviceFacts, IdentityRenewal,
    InitialCommand, IssuedIdentity, Phase, Policy, PushTarget, QueueKey, QueuedCommand, Step,
    TenantId, UserAccount,
};

/// The newest record layout this build reads (each record writes its own
/// newest: 3 for queued commands whose bodies are kept beside them; 2 for
/// activations, issued certificates, the other queued commands and command
/// results; 1 for the rest).
pub const RECORD_VERSION: u64 = 3;

/// Why a stored record was refused before its fields were read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record's layout version is one this build does not know (written
    /// by a newer build, or damaged).
    #[error("stored {record} record has layout version {version}, which this build does not read")]
    UnknownVersion {
        /// Which record.
        record: &'static str,
        /// The version it carries.
        version: u64,
    },
    /// A queued command's record and its body disagree on where the body
    /// is: a record written without its body has none stored beside it, or
    /// a record that carries its own has another beside it.
    #[error(
        "stored {record} record (layout version {version}) {}",
        if *beside { "has a second body stored beside it" } else { "has no body stored beside it" }
    )]
    BodyPlacement {
        /// Which record.
        record: &'static str,
        /// The record's layout version.
        version: u64,
        /// Whether a body was stored beside the record.
        beside: bool,
    },
    /// The record is not a dictionary, or its `v` is not an unsigned integer.
    #[error("stored {record} record is not a versioned dictionary")]
    Malformed {
        /// Which record.
        record: &'static str,
    },
}

/// A public type stored as a versioned record.
pub(crate) trait Record: Sized {
    /// Its name in errors.
    const NAME: &'static str;
    /// The version it writes, the newest it reads (it reads 1 to this).
    const VERSION: u64;
    /// Its record type, which reads every version up to [`Self::VERSION`].
    type Layout: Serialize + DeserializeOwned + for<'a> From<&'a Self> + Into<Self> + Layout;
}

/// A record layout's own version (its `v`, 1 when the row has none).
pub(crate) trait Layout {
    /// The version the decoded row carried.
    fn version(&self) -> u64;
}

fn one() -> u64 {
    1
}

/// The record of `value` in the current layout, as a binary plist.
pub(crate) fn encode<T: Record>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    plist::to_writer_binary(&mut out, &T::Layout::from(value)).map_err(StoreError::permanent)?;
    Ok(out)
}

/// Decode a stored record of any version this build knows.
pub(crate) fn decode<T: Record>(bytes: &[u8]) -> Result<T, StoreError> {
    // The common case, a row of a version this build reads: straight into
    // its record type, without a tree of the whole row first. Anything else
    // (a row of another version, or not a record at all) takes the path
    // below, which says what is wrong with it.
    let known = 1..=T::VERSION;
    if let Ok(record) = plist::from_bytes::<T::Layout>(bytes)
        && known.contains(&record.version())
    {
        return Ok(record.into());
    }
    let value: plist::Value = plist::from_bytes(bytes).map_err(StoreError::permanent)?;
    let malformed = || StoreError::permanent(RecordError::Malformed { record: T::NAME });
    let version = match value.as_dictionary().ok_or_else(malformed)?.get("v") {
        None => 1,
        Some(v) => v.as_unsigned_integer().ok_or_else(malformed)?,
    };
    match version {
        version if known.contains(&version) => plist::from_value::<T::Layout>(&value)
            .map(Into::into)
            .map_err(StoreError::permanent),
        version => Err(StoreError::permanent(RecordError::UnknownVersion {
            record: T::NAME,
            version,
        })),
    }
}

/// A record type with `v` and the listed fields, written as version
/// `$version`, and its conversions from and to the public type (both
/// exhaustive).
macro_rules! record {
    (
        $(#[$doc:meta])*
        $record:ident for $public:ident ($name:literal, version $version:literal) {
            $( $(#[$attr:meta])* $field:ident: $ty:ty, )*
        }
    ) => {
        $(#[$doc])*
        #[derive(Serialize, Deserialize)]
        pub(crate) struct $record {
            #[serde(default = "one")]
            v: u64,
            $( $(#[$attr])* $field: $ty, )*
        }

        impl From<&$public> for $record {
            fn from(value: &$public) -> Self {
                let $public { $($field),* } = value.clone();
                Self { v: $version, $($field),* }
            }
        }

        impl From<$record> for $public {
            fn from(record: $record) -> Self {
                let $record { v: _, $($field),* } = record;
                Self { $($field),* }
            }
        }

        impl Record for $public {
            const NAME: &'static str = $name;
            const VERSION: u64 = $version;
            type Layout = $record;
        }

        impl Layout for $record {
            fn version(&self) -> u64 {
                self.v
            }
        }
    };
}

record! {
    /// `activations.value`.
    ActivationRow for Activation ("activation", version 2) {
        id: ActivationId,
        tenant: TenantId,
        username: String,
        domain: String,
        policy: Policy,
        phase: Phase,
        last_step: Step,
        created: std::time::SystemTime,
        language: Option<String>,
        challenge: Option<ChallengeGrant>,
        device: Option<DeviceFacts>,
        identity: Option<IssuedIdentity>,
        #[serde(default)]
        scep_request: Option<[u8; 32]>,
        push: Option<PushTarget>,
        user_channels: Vec<(String, PushTarget)>,
        initial: Vec<InitialCommand>,
        #[serde(default)]
        declarative: Option<DeclarativeProgress>,
        #[serde(default)]
        renewal: Option<IdentityRenewal>,
        #[serde(default)]
        renewed: Option<CertFingerprint>,
    }
}

record! {
    /// `users.account`.
    UserAccountRow for UserAccount ("user account", version 1) {
        tenant: TenantId,
        username: String,
        domain: String,
        policy: Policy,
    }
}

record! {
    /// `challenges.record`.
    ChallengeRow for ChallengeRecord ("challenge", version 1) {
        tenant: TenantId,
        activation: ActivationId,
        grant: ChallengeGrant,
        consumed: bool,
    }
}

record! {
    /// `bindings.value`.
    BindingRow for Binding ("binding", version 1) {
        fingerprint: CertFingerprint,
        tenant: TenantId,
        device_id: String,
        activation: ActivationId,
        retired: bool,
    }
}

record! {
    /// `commands.value`.
    QueuedCommandRow for QueuedCommand ("queued command", version 2) {
        uuid: CommandUuid,
        request_type: String,
        #[serde(with = "crate::wire::plist_data::shared")]
        body: Arc<[u8]>,
        activation: Option<ActivationId>,
        not_now_count: u32,
        queued_at: std::time::SystemTime,
        #[serde(default)]
        delivered_at: Option<std::time::SystemTime>,
    }
}

/// `commands.value` in the SQL stores (SQLite schema 5, PostgreSQL schema
/// 4): a queued command with a body over [`INLINE_BODY_MAX`], without its
/// body, which the store keeps beside it (SQLite: a table of its own,
/// `command_bodies`, so that marking the command delivered or deferred
/// rewrites a small row, not the body; PostgreSQL: a `body` column, so the
/// body is neither hashed by the binary plist writer nor copied out of a
/// decoded record). Layout version [`HEAD_VERSION`].
#[derive(Serialize, Deserialize)]
struct QueuedCommandHeadRow {
    #[serde(default = "one")]
    v: u64,
    uuid: CommandUuid,
    request_type: String,
    activation: Option<ActivationId>,
    not_now_count: u32,
    queued_at: std::time::SystemTime,
    #[serde(default)]
    delivered_at: Option<std::time::SystemTime>,
}

/// The layout version of a queued command stored without its body.
const HEAD_VERSION: u64 = 3;

/// The largest body the SQL stores keep inside its command's record
/// (layout 2) rather than beside it: such a SQLite row still fits in one
/// page, so a delivery mark rewrites no more than it would anyway, and a
/// read finds the whole command in one row (measured: the second row cost
/// a small command's round trip 5–9 % on SQLite).
pub(crate) const INLINE_BODY_MAX: usize = 2048;

/// A queued command as a SQL store writes it: its record, and its body
/// when that is kept beside the record (over [`INLINE_BODY_MAX`]).
pub(crate) fn encode_command(
    command: &QueuedCommand,
) -> Result<(Vec<u8>, Option<&[u8]>), StoreError> {
    if command.body.len() <= INLINE_BODY_MAX {
        Ok((encode(command)?, None))
    } else {
        Ok((encode_command_head(command)?, Some(&command.body[..])))
    }
}

/// The record of `command` without its body (layout [`HEAD_VERSION`]), for
/// a store that keeps the body beside it. A build older than that layout
/// refuses the row ([`RecordError::UnknownVersion`]) instead of reading a
/// command with no body.
pub(crate) fn encode_command_head(command: &QueuedCommand) -> Result<Vec<u8>, StoreError> {
    let QueuedCommand {
        uuid,
        request_type,
        body: _,
        activation,
        not_now_count,
        queued_at,
        delivered_at,
    } = command.clone();
    let head = QueuedCommandHeadRow {
        v: HEAD_VERSION,
        uuid,
        request_type,
        activation,
        not_now_count,
        queued_at,
        delivered_at,
    };
    let mut out = Vec::new();
    plist::to_writer_binary(&mut out, &head).map_err(StoreError::permanent)?;
    Ok(out)
}

/// A queued command from its stored record and, when the store keeps it
/// apart, its body (`beside`). A record of layout [`HEAD_VERSION`] needs
/// the body beside it; a record of an older layout carries its own and
/// must have none beside it; either mismatch is
/// [`RecordError::BodyPlacement`]. The body is taken as it is, shared:
/// a store that keeps bodies it read ([`super::body_cache`]) hands the same
/// buffer to every read.
pub(crate) fn decode_command(
    record: &[u8],
    beside: Option<Arc<[u8]>>,
) -> Result<QueuedCommand, StoreError> {
    let placement = |version, beside| {
        StoreError::permanent(RecordError::BodyPlacement {
            record: QueuedCommand::NAME,
            version,
            beside,
        })
    };
    let Some(body) = beside else {
        return decode::<QueuedCommand>(record).map_err(|e| {
            match plist::from_bytes::<QueuedCommandHeadRow>(record) {
                Ok(head) if head.v == HEAD_VERSION => placement(head.v, false),
                _ => e,
            }
        });
    };
    let head: QueuedCommandHeadRow = plist::from_bytes(record).map_err(StoreError::permanent)?;
    if head.v != HEAD_VERSION {
        return Err(placement(head.v, true));
    }
    let QueuedCommandHeadRow {
        v: _,
        uuid,
        request_type,
        activation,
        not_now_count,
        queued_at,
        delivered_at,
    } = head;
    Ok(QueuedCommand {
        uuid,
        request_type,
        body,
        activation,
        not_now_count,
        queued_at,
        delivered_at,
    })
}

record! {
    /// `results.value`.
    CommandResultRow for CommandResult ("command result", version 2) {
        uuid: CommandUuid,
        request_type: String,
        outcome: CommandOutcome,
        #[serde(with = "crate::wire::plist_data")]
        body: Vec<u8>,
        at: std::time::SystemTime,
    }
}

record! {
    /// `certificates.value`.
    IssuedCertificateRow for IssuedCertificate ("issued certificate", version 2) {
        tenant: TenantId,
        activation: ActivationId,
        identity: IssuedIdentity,
    }
}

record! {
    /// `connections.value`.
    ConnectionRow for Connection ("connection", version 1) {
        skip: Vec<CommandUuid>,
        last_sent: Option<CommandUuid>,
    }
}

record! {
    /// `push_state.value`.
    PushStateRow for PushState ("push state", version 1) {
        last_push: Option<std::time::SystemTime>,
        last_status: Option<u16>,
        last_reason: Option<String>,
        last_response: Option<std::time::SystemTime>,
        token_invalid: bool,
        attempts: u32,
        next_due: Option<std::time::SystemTime>,
    }
}

record! {
    /// `push_state.key`: the channel a due push is for.
    QueueKeyRow for QueueKey ("queue key", version 1) {
        tenant: TenantId,
        channel: Channel,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use std::fmt::Debug;

    use super::super::{Binding, ChallengeRecord, IssuedCertificate, PushState};
    use super::*;
    use crate::activation::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(secs * 1000 + 250)
    }

    fn tenant() -> TenantId {
        TenantId::new("acme").unwrap()
    }

    fn id() -> ActivationId {
        ActivationId::new("act-0001").unwrap()
    }

    fn identity() -> IssuedIdentity {
        IssuedIdentity {
            serial: vec![0x01, 0x7f, 0xff],
            fingerprint: CertFingerprint([0xab; 32]),
            not_after: at(1_800_000_000),
            certificate: vec![0x30, 0x03, 0x02, 0x01, 0x05],
        }
    }

    fn grant(kind: ChallengeKind) -> ChallengeGrant {
        ChallengeGrant {
            kind,
            digest: ChallengeDigest([0x5c; 32]),
            expires: at(1_750_000_600),
        }
    }

    fn policy() -> Policy {
        Policy {
            password_expires: Some(at(1_760_000_000)),
            max_devices: Some(3),
            min_os_version: Some(OsVersion {
                major: 14,
                minor: 2,
                patch: 0,
            }),
            allowed_models: vec!["Mac14,2".into()],
            ownership: Ownership::Personal,
            organisation_notice: Some("Managed by ACME".into()),
        }
    }

    fn push_target(token: u8) -> PushTarget {
        PushTarget {
            topic: "com.apple.mgmt.External.acme".into(),
            token: vec![token; 32],
            push_magic: "MAGIC-1".into(),
        }
    }

    fn key() -> QueueKey {
        QueueKey {
            tenant: tenant(),
            channel: Channel {
                device_id: "UDID-1".into(),
                user_id: Some("USER-1".into()),
            },
        }
    }

    /// The vector `tests/vectors/store/{name}.bplist`: the row the crate
    /// wrote for [`Samples`]' value before records were versioned.
    fn vector(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/vectors/store/{name}.bplist",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Calls `check` with one value of every type the SQL stores encode
    /// into a row (with its optional fields set, and a fresh activation with
    /// them empty), named as its vector file.
    trait Check {
        fn check<T: Record + PartialEq + Debug>(&mut self, name: &str, value: &T);
    }

    /// The queued command of the vectors (`queued_command*.bplist`).
    fn queued_command() -> QueuedCommand {
        QueuedCommand {
            uuid: CommandUuid::new("CMD-1").unwrap(),
            request_type: "InstallProfile".into(),
            body: b"<plist/>"[..].into(),
            activation: Some(id()),
            not_now_count: 2,
            queued_at: at(1_750_000_010),
            delivered_at: Some(at(1_750_000_020)),
        }
    }

    fn samples(c: &mut impl Check) {
        let activation = Activation {
            id: id(),
            tenant: tenant(),
            username: "alice".into(),
            domain: "corp".into(),
            policy: policy(),
            phase: Phase::Configuring,
            last_step: Step::ConfigurationSent,
            created: at(1_750_000_000),
            language: Some("fr-CA".into()),
            challenge: Some(grant(ChallengeKind::Scep)),
            device: Some(DeviceFacts {
                udid: "UDID-1".into(),
                serial: "C02XYZ".into(),
                product: "Mac14,2".into(),
                os_version: Some(OsVersion {
                    major: 14,
                    minor: 5,
                    patch: 1,
                }),
                build: Some("23F79".into()),
            }),
            identity: Some(identity()),
            scep_request: Some([0x11; 32]),
            push: Some(push_target(7)),
            user_channels: vec![("USER-1".into(), push_target(8))],
            initial: vec![InitialCommand {
                uuid: CommandUuid::new("INIT-1").unwrap(),
                request_type: "DeviceInformation".into(),
                outcome: Some(CommandOutcome::Error(vec![ErrorInfo {
                    code: 12021,
                    domain: "MCMDMErrorDomain".into(),
                    description: "Unknown command".into(),
                }])),
            }],
            declarative: Some(DeclarativeProgress {
                served: true,
                applied: false,
                invalid: vec![("decl.a".into(), vec!["Error.Invalid".into()])],
            }),
            renewal: Some(IdentityRenewal {
                attempt: 2,
                challenge: grant(ChallengeKind::Renewal),
                command: CommandUuid::new("RENEW-1").unwrap(),
                queued: at(1_790_000_000),
                failed_at: Some(at(1_790_000_100)),
                scep_request: Some([0x22; 32]),
                issued: vec![identity()],
                exhausted: false,
                expiry_reported: true,
            }),
            renewed: Some(CertFingerprint([0xcd; 32])),
        };
        let user = UserAccount {
            tenant: tenant(),
            username: "alice".into(),
            domain: "corp".into(),
            policy: policy(),
        };
        let challenge = ChallengeRecord {
            tenant: tenant(),
            activation: id(),
            grant: grant(ChallengeKind::ProfileService),
            consumed: true,
        };
        let binding = Binding {
            fingerprint: CertFingerprint([0xab; 32]),
            tenant: tenant(),
            device_id: "UDID-1".into(),
            activation: id(),
            retired: true,
        };
        let command = queued_command();
        let result = CommandResult {
            uuid: CommandUuid::new("CMD-0").unwrap(),
            request_type: "DeviceInformation".into(),
            outcome: CommandOutcome::Undecodable("not a plist".into()),
            body: b"report".to_vec(),
            at: at(1_750_000_030),
        };
        let certificate = IssuedCertificate {
            tenant: tenant(),
            activation: id(),
            identity: identity(),
        };
        let connection = Connection {
            skip: vec![CommandUuid::new("CMD-2").unwrap()],
            last_sent: Some(CommandUuid::new("CMD-3").unwrap()),
        };
        let push = PushState {
            last_push: Some(at(1_750_000_040)),
            last_status: Some(410),
            last_reason: Some("Unregistered".into()),
            last_response: Some(at(1_750_000_041)),
            token_invalid: true,
            attempts: 4,
            next_due: Some(at(1_750_000_900)),
        };
        // Just logged in: every optional field empty.
        let started = Activation::start(id(), &user, at(1_750_000_000))
            .unwrap()
            .state;
        c.check("activation", &activation);
        c.check("activation_started", &started);
        c.check("user_account", &user);
        c.check("challenge_record", &challenge);
        c.check("binding", &binding);
        c.check("queued_command", &command);
        c.check("command_result", &result);
        c.check("issued_certificate", &certificate);
        c.check("connection", &connection);
        c.check("push_state", &push);
        c.check("queue_key", &key());
    }

    /// Rows as the crate wrote them at commit 0d16f1f (un-versioned serde
    /// plists of the public types) decode to the values they were written
    /// from: existing databases keep working.
    #[test]
    fn unversioned_rows_decode_as_version_1() {
        struct Old(usize);
        impl Check for Old {
            fn check<T: Record + PartialEq + Debug>(&mut self, name: &str, value: &T) {
                let bytes = vector(name);
                let stored: plist::Value = plist::from_bytes(&bytes).unwrap();
                assert!(
                    stored.as_dictionary().unwrap().get("v").is_none(),
                    "{name}: the vector predates versioning"
                );
                assert_eq!(&decode::<T>(&bytes).unwrap(), value, "{name}");
                self.0 += 1;
            }
        }
        let mut old = Old(0);
        samples(&mut old);
        assert_eq!(old.0, 11);
    }

    /// `value` with every `data` object spelled as version 1 spells bytes:
    /// an array of integers.
    fn bytes_as_integers(value: plist::Value) -> plist::Value {
        match value {
            plist::Value::Data(bytes) => plist::Value::Array(
                bytes
                    .into_iter()
                    .map(|b| plist::Value::from(u64::from(b)))
                    .collect(),
            ),
            plist::Value::Array(items) => {
                plist::Value::Array(items.into_iter().map(bytes_as_integers).collect())
            }
            plist::Value::Dictionary(dict) => plist::Value::Dictionary(
                dict.into_iter()
                    .map(|(k, v)| (k, bytes_as_integers(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    /// New rows carry their record's version, keep the old rows' fields
    /// (version 2: the same bytes, as `data`), and decode back.
    #[test]
    fn records_are_written_with_their_version_and_read_back() {
        struct New(Vec<(&'static str, u64)>);
        impl Check for New {
            fn check<T: Record + PartialEq + Debug>(&mut self, name: &str, value: &T) {
                let bytes = encode(value).unwrap();
                let written: plist::Value = plist::from_bytes(&bytes).unwrap();
                let mut written = written.into_dictionary().unwrap();
                assert_eq!(
                    written.remove("v").and_then(|v| v.as_unsigned_integer()),
                    Some(T::VERSION),
                    "{name}"
                );
                // (A fresh activation has no byte field set.)
                if T::VERSION == 2 && name != "activation_started" {
                    assert!(
                        format!("{written:?}").contains("Data("),
                        "{name}: bytes as data"
                    );
                }
                let written = bytes_as_integers(plist::Value::Dictionary(written));
                let old: plist::Value = plist::from_bytes(&vector(name)).unwrap();
                assert_eq!(Some(&written), Some(&old), "{name}: same fields");
                assert_eq!(&decode::<T>(&bytes).unwrap(), value, "{name}");
                self.0.push((T::NAME, T::VERSION));
            }
        }
        let mut new = New(Vec::new());
        samples(&mut new);
        let newer: Vec<_> = new.0.iter().filter(|(_, v)| *v != 1).collect();
        assert_eq!(
            newer,
            [
                &("activation", 2),
                &("activation", 2),
                &("queued command", 2),
                &("command result", 2),
                &("issued certificate", 2),
            ],
            "records past version 1"
        );
        assert!(new.0.iter().all(|(_, v)| *v <= RECORD_VERSION));
    }

    /// Version 2 rows as this build wrote them (`tests/vectors/store/*_v2.bplist`)
    /// decode to the values they were written from, and are what it writes.
    #[test]
    fn version_2_rows_are_pinned() {
        struct V2(usize);
        impl Check for V2 {
            fn check<T: Record + PartialEq + Debug>(&mut self, name: &str, value: &T) {
                if T::VERSION != 2 {
                    return;
                }
                let pinned = vector(&format!("{name}_v2"));
                assert_eq!(&decode::<T>(&pinned).unwrap(), value, "{name}");
                assert_eq!(encode(value).unwrap(), pinned, "{name}: layout moved");
                self.0 += 1;
            }
        }
        let mut v2 = V2(0);
        samples(&mut v2);
        assert_eq!(v2.0, 5);
    }

    /// A queued command stored without its body (version 3,
    /// `tests/vectors/store/queued_command_head_v3.bplist`): the version 2
    /// record's fields but the body, read back whole only with its body
    /// beside it; the older layouts only without one.
    #[test]
    fn command_heads_are_pinned_and_need_their_body_beside_them() {
        let command = queued_command();
        let head = encode_command_head(&command).unwrap();
        assert_eq!(head, vector("queued_command_head_v3"), "layout moved");
        let mut fields = plist::from_bytes::<plist::Dictionary>(&head).unwrap();
        assert_eq!(
            fields.remove("v").and_then(|v| v.as_unsigned_integer()),
            Some(3)
        );
        let mut v2 = plist::from_bytes::<plist::Dictionary>(&vector("queued_command_v2")).unwrap();
        v2.remove("v");
        assert!(v2.remove("body").is_some());
        assert_eq!(fields, v2, "the version 2 fields, less the body");
        assert_eq!(
            decode_command(&head, Some(Arc::from(&b"<plist/>"[..]))),
            Ok(command.clone())
        );
        let v2 = vector("queued_command_v2");
        assert_eq!(decode_command(&v2, None), Ok(command));
        let placement =
            |r: Result<QueuedCommand, StoreError>| record_error(&r.unwrap_err()).clone();
        assert_eq!(
            placement(decode_command(&head, None)),
            RecordError::BodyPlacement {
                record: "queued command",
                version: 3,
                beside: false
            }
        );
        assert_eq!(
            placement(decode_command(&v2, Some(Arc::from(&b"x"[..])))),
            RecordError::BodyPlacement {
                record: "queued command",
                version: 2,
                beside: true
            }
        );
        // What a build of version 2 made of the head: a refusal.
        assert_eq!(
            placement(decode::<QueuedCommand>(&head)),
            RecordError::UnknownVersion {
                record: "queued command",
                version: 3
            }
        );
        assert!(decode_command(b"bplist00", Some(Arc::from(&b"x"[..]))).is_err());
    }

    fn with_version(name: &str, v: plist::Value) -> Vec<u8> {
        let stored: plist::Value = plist::from_bytes(&vector(name)).unwrap();
        let mut dict = stored.into_dictionary().unwrap();
        dict.insert("v".into(), v);
        let mut out = Vec::new();
        plist::to_writer_binary(&mut out, &dict).unwrap();
        out
    }

    fn record_error(err: &StoreError) -> &RecordError {
        assert!(!err.is_transient(), "{err:?}");
        std::error::Error::source(err)
            .and_then(|s| s.downcast_ref::<RecordError>())
            .unwrap_or_else(|| panic!("not a record error: {err:?}"))
    }

    /// A row of a layout this build does not know is a typed, permanent
    /// error, not a guess at its fields.
    #[test]
    fn unknown_versions_are_refused() {
        for version in [0, 3, u64::MAX] {
            let bytes = with_version("activation", plist::Value::from(version));
            let err = decode::<Activation>(&bytes).unwrap_err();
            assert_eq!(
                record_error(&err),
                &RecordError::UnknownVersion {
                    record: "activation",
                    version
                }
            );
        }
        for version in [0, 3] {
            let bytes = with_version("queued_command", plist::Value::from(version));
            let err = decode::<QueuedCommand>(&bytes).unwrap_err();
            assert_eq!(
                record_error(&err),
                &RecordError::UnknownVersion {
                    record: "queued command",
                    version
                }
            );
        }
        let bytes = with_version("user_account", plist::Value::from(2u64));
        let err = decode::<UserAccount>(&bytes).unwrap_err();
        assert_eq!(
            record_error(&err),
            &RecordError::UnknownVersion {
                record: "user account",
                version: 2
            }
        );
        let bytes = with_version("binding", plist::Value::from("1"));
        let err = decode::<Binding>(&bytes).unwrap_err();
        assert_eq!(
            record_error(&err),
            &RecordError::Malformed { record: "binding" }
        );
        let mut list = Vec::new();
        plist::to_writer_binary(&mut list, &vec![1u8]).unwrap();
        let err = decode::<Connection>(&list).unwrap_err();
        assert_eq!(
            record_error(&err),
            &RecordError::Malformed {
                record: "connection"
            }
        );
    }
}
