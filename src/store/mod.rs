//! Caller storage and transport behind traits, an in-memory store, and the
//! public conformance kit (feature `test-support`).
//!
//! Storage is the caller's: the driver reads and writes only through
//! [`UserStore`], [`ActivationStore`], [`ChallengeStore`], [`BindingStore`],
//! [`QueueStore`], [`CertificateStore`], [`PushStore`] and [`StepStore`]
//! (together: [`Store`]), checks
//! credentials through a [`Directory`] and wakes devices through a
//! [`PushSender`].
//!
//! # Atomicity and freshness
//!
//! Every operation documented as *atomic* must be linearizable: when two
//! callers race, exactly one wins and the other gets the documented error.
//! The driver relies on these as gates (a challenge consumed twice, one
//! identity bound to two devices, one command finished twice would each be a
//! security or delivery bug).
//!
//! Reads marked **fresh** must observe every write that completed before
//! them (read from the primary, not a lagging replica):
//! [`BindingStore::identity`] (a stale read lets a retired identity in),
//! [`QueueStore::pending`] (a stale queue re-delivers finished commands, the
//! double delivery peers see behind read replicas; two fresh readers racing
//! for one command are settled by the atomic [`QueueStore::claim_delivery`]),
//! [`CertificateStore::certificate_by_fingerprint`] (step 9 must see step 8's
//! write) and [`ActivationStore::device_activation`]. Other reads may lag:
//! a stale [`ActivationStore::activation`] only makes the versioned update
//! fail with [`StoreError::VersionConflict`], and a stale
//! [`ChallengeStore::challenge`] is caught by the atomic consume.
//!
//! # Steps commit whole
//!
//! The writes one request causes (consume a challenge, claim a device slot,
//! bind an identity, finish a command, update the activation, ...) reach the
//! store as one value, a list of [`Write`]s, through [`StepStore::apply`]:
//! the store applies them in order, all or none. A crash or a refused write
//! in the middle leaves the store as before the step, so a device is never
//! left with a consumed challenge and an activation that did not move on.
//! The conformance kit checks this by failing each position of a step.
//!
//! # Blocking
//!
//! The traits are synchronous. Each driver call performs a handful of short
//! store operations; an async server either backs the traits with an
//! in-process store (as [`MemoryStore`]) and calls the driver directly, or
//! runs the call on its blocking pool (`tokio::task::spawn_blocking`) when
//! the store does network IO. [`PushSender::push`] must only hand the push
//! to a queue, never perform the APNs request inline.

mod declarations;
mod memory;

#[cfg(feature = "test-support")]
pub mod conformance;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod body_cache;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod codec;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod records;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_dispatch;

#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "postgres")]
pub mod postgres;

pub use declarations::{DdmSlot, DeclarationStore, StoredDeclarations};
pub use memory::MemoryStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use records::{RECORD_VERSION, RecordError};

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::activation::{
    Activation, ActivationId, CertFingerprint, ChallengeDigest, ChallengeGrant, Channel,
    CommandResult, CommandUuid, Connection, IssuedIdentity, LoginAttempt, PushTarget, QueueKey,
    QueuedCommand, TenantId, UserAccount,
};

/// A failure's cause, as carried by [`StoreError::Backend`] and
/// [`DirectoryError::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether retrying an operation that failed in its backend may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// Retrying may succeed: a busy or locked database, a serialization
    /// failure or deadlock, a lost connection, a pool timeout.
    Transient,
    /// Retrying the same operation fails again: a stored record that no
    /// longer decodes, a schema mismatch, a poisoned lock, a constraint the
    /// code did not expect.
    Permanent,
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
        })
    }
}

/// `transient`, `permanent` and `is_transient` of an error with a
/// `Backend { kind, source }` variant.
macro_rules! backend_failure {
    ($error:ident) => {
        impl $error {
            /// A backend failure that retrying may fix (busy, locked, a lost
            /// connection, a timeout).
            pub fn transient(source: impl Into<BoxError>) -> Self {
                Self::Backend {
                    kind: FailureKind::Transient,
                    source: source.into(),
                }
            }

            /// A backend failure that retrying will not fix (a record that
            /// does not decode, a schema mismatch, a poisoned lock).
            pub fn permanent(source: impl Into<BoxError>) -> Self {
                Self::Backend {
                    kind: FailureKind::Permanent,
                    source: source.into(),
                }
            }

            /// Whether this is a [`FailureKind::Transient`] backend failure:
            /// the operation may succeed if retried. Every other variant
            /// answers `false`.
            pub fn is_transient(&self) -> bool {
                matches!(
                    self,
                    Self::Backend {
                        kind: FailureKind::Transient,
                        ..
                    }
                )
            }
        }
    };
}

/// Whether two backend failures compare equal: the same kind and the same
/// message (sources themselves are not comparable).
fn same_failure(a: (&FailureKind, &BoxError), b: (&FailureKind, &BoxError)) -> bool {
    a.0 == b.0 && a.1.to_string() == b.1.to_string()
}

/// A storage failure or a lost race.
///
/// Not `Clone`: [`StoreError::Backend`] carries its cause. Two `Backend`
/// errors compare equal when their kinds and their sources' messages are.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such record.
    #[error("not found")]
    NotFound,
    /// A record with this key exists.
    #[error("already exists")]
    AlreadyExists,
    /// The versioned update lost: the record is at another version.
    #[error("version conflict: expected {expected}, found {found}")]
    VersionConflict {
        /// The version the caller read.
        expected: u64,
        /// The version stored.
        found: u64,
    },
    /// The challenge was already consumed.
    #[error("challenge already consumed")]
    ChallengeConsumed,
    /// The challenge has expired.
    #[error("challenge expired")]
    ChallengeExpired,
    /// The identity is bound to another device or activation.
    #[error("identity bound elsewhere")]
    BindingConflict(Box<Binding>),
    /// The identity was retired and cannot be bound again.
    #[error("identity retired")]
    IdentityRetired,
    /// A certificate with this serial was already recorded.
    #[error("duplicate certificate serial")]
    DuplicateSerial,
    /// The user's device limit is reached.
    #[error("device limit reached")]
    LimitReached,
    /// The backend failed: `kind` says whether retrying may succeed,
    /// `source` is the backend's own error (reachable through
    /// [`std::error::Error::source`]).
    #[error("store backend ({kind}): {source}")]
    Backend {
        /// Transient or permanent.
        kind: FailureKind,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        use StoreError as E;
        match (self, other) {
            (E::Backend { kind, source }, E::Backend { kind: k, source: s }) => {
                same_failure((kind, source), (k, s))
            }
            (
                E::VersionConflict { expected, found },
                E::VersionConflict {
                    expected: e,
                    found: f,
                },
            ) => expected == e && found == f,
            (E::BindingConflict(a), E::BindingConflict(b)) => a == b,
            (a, b) => {
                !matches!(
                    a,
                    E::Backend { .. } | E::VersionConflict { .. } | E::BindingConflict(_)
                ) && std::mem::discriminant(a) == std::mem::discriminant(b)
            }
        }
    }
}

impl Eq for StoreError {}

backend_failure!(StoreError);

/// A value with its optimistic-concurrency version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version: 1 after insert, +1 per successful update.
    pub version: u64,
}

/// A stored one-time challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRecord {
    /// The tenant it was issued in.
    pub tenant: TenantId,
    /// The activation it belongs to.
    pub activation: ActivationId,
    /// Kind, digest and expiry.
    pub grant: ChallengeGrant,
    /// Whether it was used.
    pub consumed: bool,
}

/// An identity certificate bound to a device (at `Authenticate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// SHA-256 of the certificate.
    pub fingerprint: CertFingerprint,
    /// The tenant.
    pub tenant: TenantId,
    /// The device id (UDID or EnrollmentID).
    pub device_id: String,
    /// The activation that issued the identity.
    pub activation: ActivationId,
    /// Retired identities authenticate nothing.
    pub retired: bool,
}

/// A certificate the SCEP CA issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCertificate {
    /// The tenant.
    pub tenant: TenantId,
    /// The activation it was issued for.
    pub activation: ActivationId,
    /// Serial, fingerprint and validity.
    pub identity: IssuedIdentity,
}

/// Users and their device counts (step 1, step 6's device limit).
pub trait UserStore: Send + Sync {
    /// Create or replace a user account.
    fn put_user(&self, user: &UserAccount) -> Result<(), StoreError>;
    /// The account of `username` in `tenant`.
    fn user(&self, tenant: &TenantId, username: &str) -> Result<Option<UserAccount>, StoreError>;
    /// **Atomic**: count `device_id` against the user. Returns `true` if it
    /// was newly counted, `false` if it already was (idempotent);
    /// [`StoreError::LimitReached`] if `max` other devices are counted;
    /// [`StoreError::NotFound`] for an unknown user.
    fn claim_device(
        &self,
        tenant: &TenantId,
        username: &str,
        device_id: &str,
        max: Option<u32>,
    ) -> Result<bool, StoreError>;
    /// Stop counting `device_id` against the user (no error if not counted).
    fn release_device(
        &self,
        tenant: &TenantId,
        username: &str,
        device_id: &str,
    ) -> Result<(), StoreError>;
    /// The devices counted against the user.
    fn devices(&self, tenant: &TenantId, username: &str) -> Result<Vec<String>, StoreError>;
}

/// Activation state with optimistic concurrency, and the device index.
pub trait ActivationStore: Send + Sync {
    /// Insert a new activation at version 1; [`StoreError::AlreadyExists`] if the id is taken.
    fn insert_activation(&self, activation: &Activation) -> Result<(), StoreError>;
    /// The activation `id` of `tenant` (may lag; see module docs).
    fn activation(
        &self,
        tenant: &TenantId,
        id: &ActivationId,
    ) -> Result<Option<Versioned<Activation>>, StoreError>;
    /// **Atomic** compare-and-set: store `activation` if the stored version is
    /// `expected`, returning the new version; else [`StoreError::VersionConflict`]
    /// ([`StoreError::NotFound`] if absent).
    fn update_activation(&self, activation: &Activation, expected: u64) -> Result<u64, StoreError>;
    /// [`activation`](Self::activation), shared: what the engine loads a
    /// step from (it only reads it). The default wraps `activation`'s fresh
    /// copy; a store that keeps its records in memory can hand out the one
    /// it holds instead of copying it ([`MemoryStore`] does).
    fn activation_shared(
        &self,
        tenant: &TenantId,
        id: &ActivationId,
    ) -> Result<Option<Versioned<std::sync::Arc<Activation>>>, StoreError> {
        Ok(self.activation(tenant, id)?.map(|v| Versioned {
            value: std::sync::Arc::new(v.value),
            version: v.version,
        }))
    }
    /// **Fresh**: the activation currently owning `device_id` in `tenant`.
    fn device_activation(
        &self,
        tenant: &TenantId,
        device_id: &str,
    ) -> Result<Option<ActivationId>, StoreError>;
    /// **Atomic**: make `id` the activation owning `device_id`; returns the previous one.
    fn set_device_activation(
        &self,
        tenant: &TenantId,
        device_id: &str,
        id: &ActivationId,
    ) -> Result<Option<ActivationId>, StoreError>;
    /// The device index of `tenant`: every `(device_id, activation)` pair,
    /// ordered by device id (for admin listings).
    fn device_activations(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(String, ActivationId)>, StoreError>;
}

/// One-time challenges, stored by digest.
pub trait ChallengeStore: Send + Sync {
    /// Store a new challenge; [`StoreError::AlreadyExists`] if its digest is taken in the tenant.
    fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError>;
    /// The challenge with `digest` in `tenant` (may lag).
    fn challenge(
        &self,
        tenant: &TenantId,
        digest: &ChallengeDigest,
    ) -> Result<Option<ChallengeRecord>, StoreError>;
    /// **Atomic**: mark the challenge used and return it. Exactly one of any
    /// number of racing callers succeeds; the others get
    /// [`StoreError::ChallengeConsumed`]. [`StoreError::ChallengeExpired`] at
    /// or after its expiry, [`StoreError::NotFound`] if absent in this tenant.
    fn consume_challenge(
        &self,
        tenant: &TenantId,
        digest: &ChallengeDigest,
        now: std::time::SystemTime,
    ) -> Result<ChallengeRecord, StoreError>;
}

/// Identity certificate ↔ device bindings, unique per certificate hash.
pub trait BindingStore: Send + Sync {
    /// **Atomic** bind-or-conflict: bind `binding.fingerprint` to its device
    /// and activation. Idempotent for the same (tenant, device, activation);
    /// [`StoreError::BindingConflict`] carrying the existing binding if the
    /// fingerprint is bound to anything else; [`StoreError::IdentityRetired`]
    /// if it was retired.
    fn bind_identity(&self, binding: &Binding) -> Result<(), StoreError>;
    /// **Fresh**: the binding of `fingerprint`, retired or not.
    fn identity(&self, fingerprint: &CertFingerprint) -> Result<Option<Binding>, StoreError>;
    /// Retire the binding of `fingerprint` in `tenant` so the identity
    /// authenticates nothing and cannot be bound again; [`StoreError::NotFound`]
    /// if it has no binding in this tenant.
    fn retire_identity(
        &self,
        fingerprint: &CertFingerprint,
        tenant: &TenantId,
    ) -> Result<(), StoreError>;
}

/// Command queues and results, one queue per [`QueueKey`].
pub trait QueueStore: Send + Sync {
    /// Append a command; [`StoreError::AlreadyExists`] if its uuid is queued,
    /// was cancelled or cleared, or finished with its result still kept on
    /// this key (a finished command leaves nothing but its result, so the
    /// queue tables stay the size of the work in flight).
    fn enqueue(&self, key: &QueueKey, command: &QueuedCommand) -> Result<(), StoreError>;
    /// **Fresh**: the queued commands, oldest first.
    fn pending(&self, key: &QueueKey) -> Result<Vec<QueuedCommand>, StoreError>;
    /// **Fresh**: the oldest `limit` queued commands, oldest first: the
    /// first `limit` of [`Self::pending`]. A connection reads only this head
    /// of its queue, so its cost does not grow with the backlog; a store
    /// answers it without reading the rest (the default reads everything,
    /// for stores written before this method).
    fn pending_head(&self, key: &QueueKey, limit: usize) -> Result<Vec<QueuedCommand>, StoreError> {
        let mut all = self.pending(key)?;
        all.truncate(limit);
        Ok(all)
    }
    /// **Fresh**: how many commands are queued: `pending(key)?.len()`
    /// without reading them (a store counts; the default reads
    /// [`Self::pending`], for stores written before this method).
    fn pending_count(&self, key: &QueueKey) -> Result<usize, StoreError> {
        Ok(self.pending(key)?.len())
    }
    /// **Fresh**: the queued command `uuid`, as [`Self::pending`] has it;
    /// `None` when it is not queued (finished, cancelled, cleared or never
    /// queued). The default scans [`Self::pending`].
    fn queued_command(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
    ) -> Result<Option<QueuedCommand>, StoreError> {
        Ok(self.pending(key)?.into_iter().find(|c| c.uuid == *uuid))
    }
    /// **Atomic**: add one `NotNow` to a queued command and release its
    /// delivery claim ([`Self::claim_delivery`]: the device answered, so the
    /// next connection may be handed it again); returns its new count.
    fn defer_command(&self, key: &QueueKey, uuid: &CommandUuid) -> Result<u32, StoreError>;
    /// **Atomic**: remove a queued command (nothing of it stays but the
    /// result) and record its result.
    /// [`StoreError::NotFound`] if it is not queued (already finished by a
    /// racing report, or never queued): a result is recorded at most once.
    fn finish_command(&self, key: &QueueKey, result: &CommandResult) -> Result<(), StoreError>;
    /// **Atomic**: mark a queued command as sent to the device at `at` (the
    /// first delivery counts; a later one keeps it). [`StoreError::NotFound`]
    /// if it is not queued (cancelled or finished by a racing call): the
    /// caller must then not send it.
    fn mark_delivered(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
        at: std::time::SystemTime,
    ) -> Result<(), StoreError>;
    /// **Atomic**: claim a queued command for one response sent at `at`, so
    /// that of two connections of one device (on two replicas, say) only one
    /// is handed it. The command is claimable when no delivery holds it:
    /// never claimed, claimed at or before `at - lease` (the device lost the
    /// response; a later connection gets it again), or released by a
    /// `NotNow` ([`Self::defer_command`]). A successful claim marks it
    /// delivered as [`Self::mark_delivered`] does (the first delivery time
    /// stays) and holds it until `at + lease`. Of any number of racing
    /// claims exactly one gets [`Claim::Claimed`], the others
    /// [`Claim::Held`]; [`Claim::Gone`] if it is not queued.
    fn claim_delivery(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
        at: std::time::SystemTime,
        lease: std::time::Duration,
    ) -> Result<Claim, StoreError>;
    /// **Atomic**: remove a queued command that was never delivered, as if it
    /// had never been queued (its uuid stays taken on this key). Racing a
    /// [`Self::mark_delivered`], exactly one of the two wins.
    fn cancel_command(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
    ) -> Result<Cancellation, StoreError>;
    /// Drop every queued command and reset the channel's connection state;
    /// returns the dropped commands' uuids.
    fn clear_queue(&self, key: &QueueKey) -> Result<Vec<CommandUuid>, StoreError>;
    /// **Fresh**: the channel's connection state (the default if none was stored).
    fn connection(&self, key: &QueueKey) -> Result<Connection, StoreError>;
    /// Store the channel's connection state (the last write wins: it is the
    /// device's own session, never the activation record).
    fn set_connection(&self, key: &QueueKey, connection: &Connection) -> Result<(), StoreError>;
    /// Recorded results, oldest first.
    fn results(&self, key: &QueueKey) -> Result<Vec<CommandResult>, StoreError>;
    /// Keep only the newest `keep` results.
    fn prune_results(&self, key: &QueueKey, keep: usize) -> Result<(), StoreError>;
}

/// Certificates the SCEP CA issued.
pub trait CertificateStore: Send + Sync {
    /// **Atomic**: record a certificate; [`StoreError::DuplicateSerial`] if the
    /// serial is taken ([`StoreError::AlreadyExists`] if the fingerprint is).
    fn record_certificate(&self, certificate: &IssuedCertificate) -> Result<(), StoreError>;
    /// **Fresh**: the certificate with this fingerprint.
    fn certificate_by_fingerprint(
        &self,
        fingerprint: &CertFingerprint,
    ) -> Result<Option<IssuedCertificate>, StoreError>;
    /// The certificate with this serial.
    fn certificate_by_serial(&self, serial: &[u8])
    -> Result<Option<IssuedCertificate>, StoreError>;
}

/// How many command records and results a store holds, over every queue
/// (`queue_rows` of [`MemoryStore`] and the SQL stores): with a
/// [`Retention`](crate::activation::Retention) other than `KeepAll`, finished
/// commands leave only their kept results, so `commands` stays the work in
/// flight (queued commands, plus the uuids of cancelled and cleared ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueRows {
    /// Command records: queued, cancelled or cleared.
    pub commands: u64,
    /// Stored results.
    pub results: u64,
}

/// What [`QueueStore::claim_delivery`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// This caller holds the delivery: send the command.
    Claimed,
    /// Another delivery holds it (claimed within the lease): do not send it.
    Held,
    /// It is not queued (finished, cancelled, cleared or unknown): do not send it.
    Gone,
}

/// The instant a claim made `lease` before `at` would have been made; a
/// claim at or before it no longer holds the command.
pub(crate) fn lease_start(
    at: std::time::SystemTime,
    lease: std::time::Duration,
) -> std::time::SystemTime {
    at.checked_sub(lease).unwrap_or(std::time::UNIX_EPOCH)
}

/// What [`QueueStore::cancel_command`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancellation {
    /// The command was queued and never delivered: it is gone.
    Cancelled(QueuedCommand),
    /// The command was already sent to the device (it stays queued until the
    /// device answers).
    AlreadyDelivered,
    /// The command already finished (its result is stored), was cancelled
    /// or was cleared.
    AlreadyFinished,
    /// No command with this uuid was ever queued on this key.
    Unknown,
}

/// Push bookkeeping of one channel (kept apart from the activation record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushState {
    /// When a push was last handed to the [`PushSender`].
    pub last_push: Option<std::time::SystemTime>,
    /// The HTTP status of the last APNs answer.
    pub last_status: Option<u16>,
    /// The APNs `reason` of the last answer, if any.
    pub last_reason: Option<String>,
    /// When the last APNs answer arrived.
    pub last_response: Option<std::time::SystemTime>,
    /// APNs said the token is no longer valid (410, or 400 `BadDeviceToken`):
    /// no pushes until the device's next `TokenUpdate`.
    pub token_invalid: bool,
    /// Pushes sent since the device last answered on this channel.
    pub attempts: u32,
    /// When to push again if the device has not answered (unanswered push)
    /// or deferred a command (`NotNow`); `None`: no re-push scheduled.
    pub next_due: Option<std::time::SystemTime>,
}

impl PushState {
    /// Apply [`PushStore::record_push`].
    pub fn pushed(&mut self, at: std::time::SystemTime, next_due: Option<std::time::SystemTime>) {
        self.last_push = Some(at);
        self.attempts = self.attempts.saturating_add(1);
        self.next_due = next_due;
    }

    /// Apply [`PushStore::record_push_response`].
    pub fn responded(
        &mut self,
        status: u16,
        reason: Option<&str>,
        token_invalid: bool,
        at: std::time::SystemTime,
    ) {
        self.last_status = Some(status);
        self.last_reason = reason.map(str::to_owned);
        self.last_response = Some(at);
        if token_invalid {
            self.token_invalid = true;
            self.next_due = None;
        }
    }

    /// Apply [`PushStore::record_answer`].
    pub fn answered(&mut self, next_due: Option<std::time::SystemTime>) {
        self.attempts = 0;
        self.next_due = next_due;
    }

    /// Apply [`PushStore::record_token_update`].
    pub fn token_updated(&mut self) {
        self.token_invalid = false;
        self.attempts = 0;
        self.next_due = None;
    }

    /// Whether a re-push is due at `now` ([`PushStore::due_pushes`]).
    pub fn due(&self, now: std::time::SystemTime) -> bool {
        !self.token_invalid && self.next_due.is_some_and(|d| d <= now)
    }
}

/// Push bookkeeping per channel ([`QueueKey`]): every write is **atomic**
/// (a read-modify-write of one channel's record under the store's lock or
/// transaction); reads may lag.
pub trait PushStore: Send + Sync {
    /// The channel's record (`None`: never pushed nor answered).
    fn push_state(&self, key: &QueueKey) -> Result<Option<PushState>, StoreError>;
    /// A push was handed to the sender at `at`: set `last_push`, add one to
    /// `attempts`, set `next_due`. Returns the new record.
    fn record_push(
        &self,
        key: &QueueKey,
        at: std::time::SystemTime,
        next_due: Option<std::time::SystemTime>,
    ) -> Result<PushState, StoreError>;
    /// APNs answered a push at `at` with `status` (and `reason`); if
    /// `token_invalid`, mark the token invalid (only a `TokenUpdate` clears it).
    fn record_push_response(
        &self,
        key: &QueueKey,
        status: u16,
        reason: Option<&str>,
        token_invalid: bool,
        at: std::time::SystemTime,
    ) -> Result<(), StoreError>;
    /// The device answered on the channel (it connected): reset `attempts`
    /// and set `next_due` (a re-push for a deferred command, or `None`).
    fn record_answer(
        &self,
        key: &QueueKey,
        next_due: Option<std::time::SystemTime>,
    ) -> Result<(), StoreError>;
    /// A `TokenUpdate` arrived: the token is valid again, `attempts` and
    /// `next_due` are reset (the status history stays).
    fn record_token_update(&self, key: &QueueKey) -> Result<(), StoreError>;
    /// Channels of `tenant` whose `next_due` is at or before `now` and whose
    /// token is not marked invalid, ordered by `next_due`.
    fn due_pushes(
        &self,
        tenant: &TenantId,
        now: std::time::SystemTime,
    ) -> Result<Vec<QueueKey>, StoreError>;
}

/// One write of a step ([`StepStore::apply`]). Each variant has exactly the
/// semantics of the single-operation method it names, except where noted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Write {
    /// [`ActivationStore::insert_activation`]. Shared, so a store that keeps
    /// activations in memory keeps this very value instead of a copy.
    InsertActivation(Arc<Activation>),
    /// [`ActivationStore::update_activation`] (compare-and-set on `expected`).
    UpdateActivation {
        /// The new state (shared, as in [`Write::InsertActivation`]).
        activation: Arc<Activation>,
        /// The version it was read at.
        expected: u64,
    },
    /// [`ActivationStore::set_device_activation`].
    SetDeviceActivation {
        /// The tenant.
        tenant: TenantId,
        /// The device id.
        device_id: String,
        /// The activation that now owns the device.
        activation: ActivationId,
    },
    /// [`ChallengeStore::insert_challenge`].
    InsertChallenge(ChallengeRecord),
    /// [`ChallengeStore::consume_challenge`].
    ConsumeChallenge {
        /// The tenant.
        tenant: TenantId,
        /// The challenge's digest.
        digest: ChallengeDigest,
        /// The time the challenge is presented.
        now: std::time::SystemTime,
    },
    /// [`UserStore::claim_device`].
    ClaimDevice {
        /// The tenant.
        tenant: TenantId,
        /// The user the slot is counted against.
        username: String,
        /// The device.
        device_id: String,
        /// The user's device limit.
        max: Option<u32>,
    },
    /// [`UserStore::release_device`].
    ReleaseDevice {
        /// The tenant.
        tenant: TenantId,
        /// The user.
        username: String,
        /// The device.
        device_id: String,
    },
    /// [`CertificateStore::record_certificate`].
    RecordCertificate(IssuedCertificate),
    /// [`BindingStore::bind_identity`].
    BindIdentity(Binding),
    /// [`BindingStore::retire_identity`], except that an identity without a
    /// binding in the tenant is not an error ([`Applied::Retired`]`(false)`).
    RetireIdentity {
        /// The identity.
        fingerprint: CertFingerprint,
        /// The tenant.
        tenant: TenantId,
    },
    /// [`QueueStore::enqueue`].
    Enqueue(QueueKey, QueuedCommand),
    /// [`QueueStore::finish_command`].
    FinishCommand(QueueKey, CommandResult),
    /// [`QueueStore::prune_results`].
    PruneResults(QueueKey, usize),
    /// [`QueueStore::defer_command`].
    DeferCommand(QueueKey, CommandUuid),
    /// [`QueueStore::mark_delivered`], except that a command no longer
    /// queued is not an error ([`Applied::Delivered`]`(false)`: do not send it).
    MarkDelivered(QueueKey, CommandUuid, std::time::SystemTime),
    /// [`QueueStore::claim_delivery`].
    ClaimDelivery {
        /// The queue.
        key: QueueKey,
        /// The command.
        uuid: CommandUuid,
        /// When the response is sent.
        at: std::time::SystemTime,
        /// How long the claim holds the command.
        lease: std::time::Duration,
    },
    /// [`QueueStore::clear_queue`].
    ClearQueue(QueueKey),
    /// [`QueueStore::set_connection`].
    SetConnection(QueueKey, Connection),
}

/// What one [`Write`] did, in the order of the step's writes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// The write returns nothing.
    Done,
    /// [`Write::UpdateActivation`]: the new version.
    Version(u64),
    /// [`Write::SetDeviceActivation`]: the activation that owned the device before.
    Previous(Option<ActivationId>),
    /// [`Write::ConsumeChallenge`]: the consumed challenge.
    Consumed(ChallengeRecord),
    /// [`Write::ClaimDevice`]: whether the device was newly counted.
    Claimed(bool),
    /// [`Write::RetireIdentity`]: whether a binding was retired.
    Retired(bool),
    /// [`Write::DeferCommand`]: the command's new `NotNow` count.
    Deferred(u32),
    /// [`Write::MarkDelivered`]: whether the command was still queued.
    Delivered(bool),
    /// [`Write::ClearQueue`]: the dropped commands.
    Cleared(Vec<CommandUuid>),
    /// [`Write::ClaimDelivery`]: whether this step holds the delivery.
    Claim(Claim),
}

/// A step that was not applied: the store is as before it.
#[derive(Debug, PartialEq, Eq, Error)]
#[error("write {index} of the step failed: {error}")]
pub struct StepFailed {
    /// The position of the write that failed ([`Write`]s before it were
    /// undone); the number of writes when the commit itself failed.
    pub index: usize,
    /// Why.
    pub error: StoreError,
}

impl Write {
    /// Carry out this write alone, as the single-operation call it names
    /// (atomic by itself, not together with the other writes of a step).
    /// For stores whose single operations run inside a transaction the
    /// store has already opened for [`StepStore::apply`].
    pub fn apply_alone<S: Store + ?Sized>(&self, store: &S) -> Result<Applied, StoreError> {
        Ok(match self {
            Write::InsertActivation(a) => {
                store.insert_activation(a)?;
                Applied::Done
            }
            Write::UpdateActivation {
                activation,
                expected,
            } => Applied::Version(store.update_activation(activation, *expected)?),
            Write::SetDeviceActivation {
                tenant,
                device_id,
                activation,
            } => Applied::Previous(store.set_device_activation(tenant, device_id, activation)?),
            Write::InsertChallenge(r) => {
                store.insert_challenge(r)?;
                Applied::Done
            }
            Write::ConsumeChallenge {
                tenant,
                digest,
                now,
            } => Applied::Consumed(store.consume_challenge(tenant, digest, *now)?),
            Write::ClaimDevice {
                tenant,
                username,
                device_id,
                max,
            } => Applied::Claimed(store.claim_device(tenant, username, device_id, *max)?),
            Write::ReleaseDevice {
                tenant,
                username,
                device_id,
            } => {
                store.release_device(tenant, username, device_id)?;
                Applied::Done
            }
            Write::RecordCertificate(c) => {
                store.record_certificate(c)?;
                Applied::Done
            }
            Write::BindIdentity(b) => {
                store.bind_identity(b)?;
                Applied::Done
            }
            Write::RetireIdentity {
                fingerprint,
                tenant,
            } => match store.retire_identity(fingerprint, tenant) {
                Ok(()) => Applied::Retired(true),
                Err(StoreError::NotFound) => Applied::Retired(false),
                Err(e) => return Err(e),
            },
            Write::Enqueue(k, c) => {
                store.enqueue(k, c)?;
                Applied::Done
            }
            Write::FinishCommand(k, r) => {
                store.finish_command(k, r)?;
                Applied::Done
            }
            Write::PruneResults(k, keep) => {
                store.prune_results(k, *keep)?;
                Applied::Done
            }
            Write::DeferCommand(k, u) => Applied::Deferred(store.defer_command(k, u)?),
            Write::MarkDelivered(k, u, at) => match store.mark_delivered(k, u, *at) {
                Ok(()) => Applied::Delivered(true),
                Err(StoreError::NotFound) => Applied::Delivered(false),
                Err(e) => return Err(e),
            },
            Write::ClaimDelivery {
                key,
                uuid,
                at,
                lease,
            } => Applied::Claim(store.claim_delivery(key, uuid, *at, *lease)?),
            Write::ClearQueue(k) => Applied::Cleared(store.clear_queue(k)?),
            Write::SetConnection(k, c) => {
                store.set_connection(k, c)?;
                Applied::Done
            }
        })
    }
}

/// Steps as one unit of work.
pub trait StepStore: Send + Sync {
    /// **Atomic**: apply `writes` in order, each seeing the ones before it,
    /// and commit them together; on the first failing write undo the ones
    /// before it and return its position and error. Racing steps and single
    /// operations see either none or all of a step's writes.
    fn apply(&self, writes: &[Write]) -> Result<Vec<Applied>, StepFailed>;
}

/// Everything the driver stores.
pub trait Store:
    UserStore
    + ActivationStore
    + ChallengeStore
    + BindingStore
    + QueueStore
    + CertificateStore
    + PushStore
    + StepStore
{
}

impl<T> Store for T where
    T: UserStore
        + ActivationStore
        + ChallengeStore
        + BindingStore
        + QueueStore
        + CertificateStore
        + PushStore
        + StepStore
{
}

/// Checks self-service credentials (step 2).
pub trait Directory: Send + Sync {
    /// Whether `attempt` holds valid credentials for a user of `tenant`. Must
    /// compare secrets in constant time. Wrong credentials are `Ok(false)`,
    /// not an error.
    fn check_credentials(
        &self,
        tenant: &TenantId,
        attempt: &LoginAttempt,
    ) -> Result<bool, DirectoryError>;
}

/// Why a [`Directory`] could not check credentials (wrong credentials are
/// not an error).
///
/// Not `Clone`: it carries its cause. Two errors compare equal when their
/// kinds and their sources' messages are.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The directory's backend failed (an LDAP server that did not answer,
    /// a poisoned lock, an unreadable user file): `kind` says whether
    /// retrying may succeed, `source` is the backend's own error.
    #[error("directory backend ({kind}): {source}")]
    Backend {
        /// Transient or permanent.
        kind: FailureKind,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

backend_failure!(DirectoryError);

impl PartialEq for DirectoryError {
    fn eq(&self, other: &Self) -> bool {
        let (Self::Backend { kind, source }, Self::Backend { kind: k, source: s }) = (self, other);
        same_failure((kind, source), (k, s))
    }
}

impl Eq for DirectoryError {}

/// Why a [`PushSender`] could not take a push.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PushError {
    /// The sender is not configured for this push (no certificate, wrong topic).
    #[error("push not configured: {0}")]
    NotConfigured(String),
    /// The sender's queue or transport is unavailable; try again later.
    #[error("push sender unavailable: {0}")]
    Unavailable(String),
}

/// Wakes a device channel through APNs.
///
/// The sender reports APNs' answer later, through
/// [`PushStore::record_push_response`] (or
/// [`Engine::push_response`](crate::service::Engine::push_response)), with
/// plain values: status, reason, whether the token is now invalid.
pub trait PushSender: Send + Sync {
    /// Hand a push for `channel` to the caller's sender. Must not block on the
    /// network: queue it and return.
    fn push(
        &self,
        tenant: &TenantId,
        channel: &Channel,
        target: &PushTarget,
    ) -> Result<(), PushError>;
}

/// Forward every method of a store trait through `&T` and `Arc<T>`, so one
/// store (one pool, one connection) serves many services: pass
/// `Arc::clone(&store)` or `&store` where a [`Store`] is wanted.
macro_rules! forward_store {
    ($($trait:ident { $(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* })*) => {$(
        impl<T: $trait + ?Sized> $trait for &T {
            $(fn $name(&self $(, $arg: $ty)*) -> $ret {
                (**self).$name($($arg),*)
            })*
        }
        impl<T: $trait + ?Sized> $trait for std::sync::Arc<T> {
            $(fn $name(&self $(, $arg: $ty)*) -> $ret {
                (**self).$name($($arg),*)
            })*
        }
    )*};
}

forward_store! {
    DeclarationStore {
        fn ddm_document(&self, key: &QueueKey, slot: DdmSlot) -> Result<Option<String>, StoreError>;
        fn put_ddm_document(&self, key: &QueueKey, slot: DdmSlot, document: &str) -> Result<(), StoreError>;
    }
    UserStore {
        fn put_user(&self, user: &UserAccount) -> Result<(), StoreError>;
        fn user(&self, tenant: &TenantId, username: &str) -> Result<Option<UserAccount>, StoreError>;
        fn claim_device(&self, tenant: &TenantId, username: &str, device_id: &str, max: Option<u32>) -> Result<bool, StoreError>;
        fn release_device(&self, tenant: &TenantId, username: &str, device_id: &str) -> Result<(), StoreError>;
        fn devices(&self, tenant: &TenantId, username: &str) -> Result<Vec<String>, StoreError>;
    }
    ActivationStore {
        fn insert_activation(&self, activation: &Activation) -> Result<(), StoreError>;
        fn activation(&self, tenant: &TenantId, id: &ActivationId) -> Result<Option<Versioned<Activation>>, StoreError>;
        fn update_activation(&self, activation: &Activation, expected: u64) -> Result<u64, StoreError>;
        fn activation_shared(&self, tenant: &TenantId, id: &ActivationId) -> Result<Option<Versioned<std::sync::Arc<Activation>>>, StoreError>;
        fn device_activation(&self, tenant: &TenantId, device_id: &str) -> Result<Option<ActivationId>, StoreError>;
        fn set_device_activation(&self, tenant: &TenantId, device_id: &str, id: &ActivationId) -> Result<Option<ActivationId>, StoreError>;
        fn device_activations(&self, tenant: &TenantId) -> Result<Vec<(String, ActivationId)>, StoreError>;
    }
    ChallengeStore {
        fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError>;
        fn challenge(&self, tenant: &TenantId, digest: &ChallengeDigest) -> Result<Option<ChallengeRecord>, StoreError>;
        fn consume_challenge(&self, tenant: &TenantId, digest: &ChallengeDigest, now: std::time::SystemTime) -> Result<ChallengeRecord, StoreError>;
    }
    BindingStore {
        fn bind_identity(&self, binding: &Binding) -> Result<(), StoreError>;
        fn identity(&self, fingerprint: &CertFingerprint) -> Result<Option<Binding>, StoreError>;
        fn retire_identity(&self, fingerprint: &CertFingerprint, tenant: &TenantId) -> Result<(), StoreError>;
    }
    QueueStore {
        fn enqueue(&self, key: &QueueKey, command: &QueuedCommand) -> Result<(), StoreError>;
        fn pending(&self, key: &QueueKey) -> Result<Vec<QueuedCommand>, StoreError>;
        fn pending_head(&self, key: &QueueKey, limit: usize) -> Result<Vec<QueuedCommand>, StoreError>;
        fn pending_count(&self, key: &QueueKey) -> Result<usize, StoreError>;
        fn queued_command(&self, key: &QueueKey, uuid: &CommandUuid) -> Result<Option<QueuedCommand>, StoreError>;
        fn defer_command(&self, key: &QueueKey, uuid: &CommandUuid) -> Result<u32, StoreError>;
        fn finish_command(&self, key: &QueueKey, result: &CommandResult) -> Result<(), StoreError>;
        fn mark_delivered(&self, key: &QueueKey, uuid: &CommandUuid, at: std::time::SystemTime) -> Result<(), StoreError>;
        fn claim_delivery(&self, key: &QueueKey, uuid: &CommandUuid, at: std::time::SystemTime, lease: std::time::Duration) -> Result<Claim, StoreError>;
        fn cancel_command(&self, key: &QueueKey, uuid: &CommandUuid) -> Result<Cancellation, StoreError>;
        fn clear_queue(&self, key: &QueueKey) -> Result<Vec<CommandUuid>, StoreError>;
        fn connection(&self, key: &QueueKey) -> Result<Connection, StoreError>;
        fn set_connection(&self, key: &QueueKey, connection: &Connection) -> Result<(), StoreError>;
        fn results(&self, key: &QueueKey) -> Result<Vec<CommandResult>, StoreError>;
        fn prune_results(&self, key: &QueueKey, keep: usize) -> Result<(), StoreError>;
    }
    CertificateStore {
        fn record_certificate(&self, certificate: &IssuedCertificate) -> Result<(), StoreError>;
        fn certificate_by_fingerprint(&self, fingerprint: &CertFingerprint) -> Result<Option<IssuedCertificate>, StoreError>;
        fn certificate_by_serial(&self, serial: &[u8]) -> Result<Option<IssuedCertificate>, StoreError>;
    }
    PushStore {
        fn push_state(&self, key: &QueueKey) -> Result<Option<PushState>, StoreError>;
        fn record_push(&self, key: &QueueKey, at: std::time::SystemTime, next_due: Option<std::time::SystemTime>) -> Result<PushState, StoreError>;
        fn record_push_response(&self, key: &QueueKey, status: u16, reason: Option<&str>, token_invalid: bool, at: std::time::SystemTime) -> Result<(), StoreError>;
        fn record_answer(&self, key: &QueueKey, next_due: Option<std::time::SystemTime>) -> Result<(), StoreError>;
        fn record_token_update(&self, key: &QueueKey) -> Result<(), StoreError>;
        fn due_pushes(&self, tenant: &TenantId, now: std::time::SystemTime) -> Result<Vec<QueueKey>, StoreError>;
    }
    StepStore {
        fn apply(&self, writes: &[Write]) -> Result<Vec<Applied>, StepFailed>;
    }
}
