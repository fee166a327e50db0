//! The layout of the SQL stores' rows, versioned apart from the public
//! types they carry.
//!
//! A row's value is a binary plist dictionary: a `v` key, the layout's
//! version, and the fields of that version's record type here (`...V1`).
//! Each record type lists its fields itself and converts from and to its
//! public type by destructuring it whole, so a field added to a public type
//! does not compile until its record says how it is stored: add it to the
//! record with `#[serde(default)]` (older rows decode without it), or, when
//! a stored field changes meaning, add a version 2 layout and convert
//! version 1 rows to it in [`decode`]. Values nested inside a record (a
//! `Policy`, a `ChallengeGrant`, times) keep their serde encoding; the
//! vectors under `tests/vectors/store/` pin it.
//!
//! Rows written before records were versioned have no `v`: they are
//! version 1, whose fields are exactly theirs. A row of a version this build
//! does not know is refused with [`RecordError::UnknownVersion`], a
//! permanent [`StoreError`].

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

/// The newest record layout this build reads and the one it writes.
pub const RECORD_VERSION: u64 = 1;

/// Why a stored record was refused before its fields were read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record's layout version is one this build does not know (written
    /// by a newer build, or damaged).
    #[error(
        "stored {record} record has layout version {version}; this build reads 1 to {RECORD_VERSION}"
    )]
    UnknownVersion {
        /// Which record.
        record: &'static str,
        /// The version it carries.
        version: u64,
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
    /// The layout of [`RECORD_VERSION`].
    type V1: Serialize + DeserializeOwned + for<'a> From<&'a Self> + Into<Self> + Layout;
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
    plist::to_writer_binary(&mut out, &T::V1::from(value)).map_err(StoreError::permanent)?;
    Ok(out)
}

/// Decode a stored record of any version this build knows.
pub(crate) fn decode<T: Record>(bytes: &[u8]) -> Result<T, StoreError> {
    // The common case, a row of the current layout: straight into its
    // record type, without a tree of the whole row first. Anything else (a
    // row of another version, or not a record at all) takes the path
    // below, which says what is wrong with it.
    if let Ok(record) = plist::from_bytes::<T::V1>(bytes)
        && record.version() == RECORD_VERSION
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
        1 => plist::from_value::<T::V1>(&value)
            .map(Into::into)
            .map_err(StoreError::permanent),
        version => Err(StoreError::permanent(RecordError::UnknownVersion {
            record: T::NAME,
            version,
        })),
    }
}

/// A record type of version 1 with `v` and the listed fields, and its
/// conversions from and to the public type (both exhaustive).
macro_rules! record_v1 {
    (
        $(#[$doc:meta])*
        $record:ident for $public:ident ($name:literal) {
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
                Self { v: 1, $($field),* }
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
            type V1 = $record;
        }

        impl Layout for $record {
            fn version(&self) -> u64 {
                self.v
            }
        }
    };
}

record_v1! {
    /// `activations.value`.
    ActivationV1 for Activation ("activation") {
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

record_v1! {
    /// `users.account`.
    UserAccountV1 for UserAccount ("user account") {
        tenant: TenantId,
        username: String,
        domain: String,
        policy: Policy,
    }
}

record_v1! {
    /// `challenges.record`.
    ChallengeV1 for ChallengeRecord ("challenge") {
        tenant: TenantId,
        activation: ActivationId,
        grant: ChallengeGrant,
        consumed: bool,
    }
}

record_v1! {
    /// `bindings.value`.
    BindingV1 for Binding ("binding") {
        fingerprint: CertFingerprint,
        tenant: TenantId,
        device_id: String,
        activation: ActivationId,
        retired: bool,
    }
}

record_v1! {
    /// `commands.value`.
    QueuedCommandV1 for QueuedCommand ("queued command") {
        uuid: CommandUuid,
        request_type: String,
        body: Vec<u8>,
        activation: Option<ActivationId>,
        not_now_count: u32,
        queued_at: std::time::SystemTime,
        #[serde(default)]
        delivered_at: Option<std::time::SystemTime>,
    }
}

record_v1! {
    /// `results.value`.
    CommandResultV1 for CommandResult ("command result") {
        uuid: CommandUuid,
        request_type: String,
        outcome: CommandOutcome,
        body: Vec<u8>,
        at: std::time::SystemTime,
    }
}

record_v1! {
    /// `certificates.value`.
    IssuedCertificateV1 for IssuedCertificate ("issued certificate") {
        tenant: TenantId,
        activation: ActivationId,
        identity: IssuedIdentity,
    }
}

record_v1! {
    /// `connections.value`.
    ConnectionV1 for Connection ("connection") {
        skip: Vec<CommandUuid>,
        last_sent: Option<CommandUuid>,
    }
}

record_v1! {
    /// `push_state.value`.
    PushStateV1 for PushState ("push state") {
        last_push: Option<std::time::SystemTime>,
        last_status: Option<u16>,
        last_reason: Option<String>,
        last_response: Option<std::time::SystemTime>,
        token_invalid: bool,
        attempts: u32,
        next_due: Option<std::time::SystemTime>,
    }
}

record_v1! {
    /// `push_state.key`: the channel a due push is for.
    QueueKeyV1 for QueueKey ("queue key") {
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
        let command = QueuedCommand {
            uuid: CommandUuid::new("CMD-1").unwrap(),
            request_type: "InstallProfile".into(),
            body: b"<plist/>".to_vec(),
            activation: Some(id()),
            not_now_count: 2,
            queued_at: at(1_750_000_010),
            delivered_at: Some(at(1_750_000_020)),
        };
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

    /// New rows carry `v = 1`, keep the old rows' fields, and decode back.
    #[test]
    fn records_are_written_with_their_version_and_read_back() {
        struct New;
        impl Check for New {
            fn check<T: Record + PartialEq + Debug>(&mut self, name: &str, value: &T) {
                let bytes = encode(value).unwrap();
                let written: plist::Value = plist::from_bytes(&bytes).unwrap();
                let mut written = written.into_dictionary().unwrap();
                assert_eq!(
                    written.remove("v").and_then(|v| v.as_unsigned_integer()),
                    Some(RECORD_VERSION),
                    "{name}"
                );
                let old: plist::Value = plist::from_bytes(&vector(name)).unwrap();
                assert_eq!(Some(&written), old.as_dictionary(), "{name}: same fields");
                assert_eq!(&decode::<T>(&bytes).unwrap(), value, "{name}");
            }
        }
        samples(&mut New);
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
        for version in [0, 2, u64::MAX] {
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
