//! A [`Store`](super::Store) in a PostgreSQL database (feature `postgres`,
//! the synchronous `postgres` client).
//!
//! Every write, and every step ([`StepStore::apply`]), is one transaction at
//! `SERIALIZABLE` isolation, retried when PostgreSQL reports a serialization
//! failure or a deadlock: the atomic operations stay linearizable across
//! connections *and* across processes (replicas) sharing the database, and a
//! crash leaves all or none of a transaction. Uniqueness (certificate
//! serials and fingerprints, command uuids per queue, one binding per
//! certificate hash) is also enforced by constraints. Reads run outside a
//! transaction on the primary, so they are fresh.
//!
//! The schema is embedded: [`PostgresStore::connect`] applies the
//! migrations this build knows under a transaction-scoped advisory lock (two
//! replicas starting at once apply them once) and refuses a database whose
//! schema is newer than the build ([`SCHEMA_VERSION`]).
//!
//! Records are versioned binary plists (a `v` layout version,
//! [`RECORD_VERSION`](super::RECORD_VERSION); rows written before it are
//! version 1) next to the key columns the queries need (the same encoding
//! as the SQLite store).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use postgres::error::SqlState;
use postgres::types::{FromSql, ToSql};
use postgres::{Client, GenericClient, IsolationLevel, NoTls, Row, Transaction};

use super::body_cache::{BodyCache, DEFAULT_BODY_CACHE_BYTES};
use super::codec::{corrupt, decode, encode, from_unix_millis, queue_key, unix_millis};
use super::records::{Record, decode_command, encode_command};
use super::{
    ActivationStore, Applied, Binding, BindingStore, Cancellation, CertificateStore,
    ChallengeRecord, ChallengeStore, Claim, IssuedCertificate, PushState, PushStore, QueueRows,
    QueueStore, StepFailed, StepStore, StoreError, UserStore, Versioned, Write, lease_start,
};
use crate::activation::{
    Activation, ActivationId, CertFingerprint, ChallengeDigest, CommandResult, CommandUuid,
    Connection, QueueKey, QueuedCommand, Step, TenantId, UserAccount,
};

/// The embedded migrations, applied in order to a database whose recorded
/// version is below their number (1-based).
const MIGRATIONS: &[&str] = &[
    // 1: every table of the store traits.
    "CREATE TABLE users (
         tenant TEXT NOT NULL, username TEXT NOT NULL, account BYTEA NOT NULL,
         PRIMARY KEY (tenant, username));
     CREATE TABLE user_devices (
         tenant TEXT NOT NULL, username TEXT NOT NULL, device_id TEXT NOT NULL,
         PRIMARY KEY (tenant, username, device_id));
     CREATE TABLE activations (
         tenant TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL, value BYTEA NOT NULL,
         created BIGINT NOT NULL, PRIMARY KEY (tenant, id));
     CREATE TABLE devices (
         tenant TEXT NOT NULL, device_id TEXT NOT NULL, activation TEXT NOT NULL,
         PRIMARY KEY (tenant, device_id));
     CREATE TABLE challenges (
         tenant TEXT NOT NULL, digest BYTEA NOT NULL, consumed BOOLEAN NOT NULL,
         record BYTEA NOT NULL, PRIMARY KEY (tenant, digest));
     CREATE TABLE bindings (
         fingerprint BYTEA PRIMARY KEY, tenant TEXT NOT NULL, retired BOOLEAN NOT NULL,
         value BYTEA NOT NULL);
     CREATE TABLE commands (
         seq BIGSERIAL PRIMARY KEY, qkey BYTEA NOT NULL, uuid TEXT NOT NULL,
         state SMALLINT NOT NULL, not_now BIGINT NOT NULL, delivered BIGINT,
         value BYTEA NOT NULL, UNIQUE (qkey, uuid));
     CREATE INDEX commands_pending ON commands (qkey, state, seq);
     CREATE TABLE results (
         seq BIGSERIAL PRIMARY KEY, qkey BYTEA NOT NULL, uuid TEXT NOT NULL,
         value BYTEA NOT NULL, UNIQUE (qkey, uuid));
     CREATE TABLE certificates (
         serial BYTEA PRIMARY KEY, fingerprint BYTEA NOT NULL UNIQUE, value BYTEA NOT NULL);
     CREATE TABLE push_state (
         qkey BYTEA PRIMARY KEY, tenant TEXT NOT NULL, key BYTEA NOT NULL,
         next_due BIGINT, token_invalid BOOLEAN NOT NULL, value BYTEA NOT NULL);
     CREATE INDEX push_state_due ON push_state (tenant, next_due);
     CREATE TABLE connections (qkey BYTEA PRIMARY KEY, value BYTEA NOT NULL);
     CREATE TABLE steps (
         tenant TEXT NOT NULL, activation TEXT NOT NULL, step SMALLINT NOT NULL,
         at BIGINT NOT NULL, PRIMARY KEY (tenant, activation, step));
     CREATE INDEX activations_created ON activations (created DESC, id);",
    // 2: delivery claims (one connection is handed a command); finished
    // commands keep only their result (state 1 was "finished").
    "ALTER TABLE commands ADD COLUMN claimed BIGINT;
     DELETE FROM commands WHERE state = 1;",
    // 3: a channel's results in order, so pruning to the newest N finds
    // where to cut by walking an index instead of sorting them all.
    "CREATE INDEX results_by_seq ON results (qkey, seq);",
    // 4: a large queued command's body beside its record (record layout
    // 3), not inside it. Rows queued before keep their bodies in their
    // records and are read as they are.
    "ALTER TABLE commands ADD COLUMN body BYTEA;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = 4;

/// Per-channel DDM documents ([`super::DeclarationStore`]).
const DDM_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS ddm_documents (
    qkey BYTEA NOT NULL, slot TEXT NOT NULL, document TEXT NOT NULL,
    PRIMARY KEY (qkey, slot))";

/// `pg_advisory_xact_lock` key serializing migrations across processes.
const MIGRATION_LOCK: i64 = 0x6d64_6d5f_656e_726c;

/// Attempts of a transaction that lost to a concurrent one.
const RETRIES: u32 = 64;

const PENDING: i16 = 0;
const CLEARED: i16 = 2;
const CANCELLED: i16 = 3;

/// A store in one PostgreSQL database, over a fixed set of connections.
pub struct PostgresStore {
    clients: Vec<Mutex<Client>>,
    next: AtomicUsize,
    /// Large command bodies queued or read, shared by later reads.
    bodies: BodyCache,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("connections", &self.clients.len())
            .finish_non_exhaustive()
    }
}

/// A PostgreSQL error as a store error, the error itself as its source.
///
/// Transient: a serialization failure or deadlock (40001, 40P01), a lost or
/// refused connection (class 08, a closed client, an IO error), too many
/// connections or other exhausted resources (class 53), an operator
/// intervention such as a shutdown or cancelled statement (class 57), a lock
/// not available (55P03). Anything else is permanent.
fn pg(e: postgres::Error) -> StoreError {
    if is_transient(&e) {
        StoreError::transient(e)
    } else {
        StoreError::permanent(e)
    }
}

fn is_transient(e: &postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            let c = code.code();
            is_retryable(e)
                || c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57")
                || *code == SqlState::LOCK_NOT_AVAILABLE
        }
        None => {
            e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        }
    }
}

fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn is_retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Apply the embedded migrations under the advisory lock; refuse a newer schema.
fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS mdm_schema (version INTEGER NOT NULL)")
        .map_err(pg)?;
    let current: i32 = tx
        .query_opt("SELECT version FROM mdm_schema", &[])
        .map_err(pg)?
        .map(|r| col(&r, 0))
        .transpose()
        .map_err(Failure::into_store)?
        .unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::permanent(format!(
            "database schema version {current} is newer than this build's {SCHEMA_VERSION}"
        )));
    }
    for (n, sql) in (1i32..).zip(MIGRATIONS) {
        if n > current {
            tx.batch_execute(sql).map_err(pg)?;
        }
    }
    // Added without a version: created when missing, under the same lock.
    tx.batch_execute(DDM_SCHEMA).map_err(pg)?;
    if current == 0 {
        tx.execute(
            "INSERT INTO mdm_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .map_err(pg)?;
    } else if current < SCHEMA_VERSION {
        tx.execute("UPDATE mdm_schema SET version = $1", &[&SCHEMA_VERSION])
            .map_err(pg)?;
    }
    tx.commit().map_err(pg)
}

impl PostgresStore {
    /// Connect `connections` clients (at least one) to `url`
    /// (`postgres://USER[:PASSWORD]@HOST:PORT/DB`, or a key-value string;
    /// without a password in it, `PGPASSWORD` is used), then bring the schema
    /// to [`SCHEMA_VERSION`].
    pub fn connect(url: &str, connections: usize) -> Result<Self, StoreError> {
        let mut config: postgres::Config = url.parse().map_err(pg)?;
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        let mut clients = Vec::new();
        for _ in 0..connections.max(1) {
            clients.push(config.connect(NoTls).map_err(pg)?);
        }
        if let Some(first) = clients.first_mut() {
            migrate(first)?;
        }
        Ok(Self {
            clients: clients.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            bodies: BodyCache::new(DEFAULT_BODY_CACHE_BYTES),
        })
    }

    /// Keep at most `bytes` of large command bodies (over 2 KiB) in memory
    /// once queued or read (default 16 MiB; 0: none), oldest dropped first.
    /// A command is read by the connection that delivers it and again by
    /// the one that reports its outcome: with the body kept, a replica that
    /// queued or read it sends no query for it again. A body is written
    /// with its row, whose number the sequence never hands out twice, so a
    /// kept body is never stale, whichever replica changed the queue.
    #[must_use]
    pub fn with_body_cache(self, bytes: usize) -> Self {
        self.bodies.set_capacity(bytes);
        self
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<i32, StoreError> {
        self.read(|c| col(&c.query_one("SELECT version FROM mdm_schema", &[])?, 0))
    }

    /// Record that `activation` reached `step` at `at` (first time only).
    pub fn record_step(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
        step: Step,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.op(|tx| {
            tx.execute(
                "INSERT INTO steps (tenant, activation, step, at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[
                    &tenant.as_str(),
                    &activation.as_str(),
                    &i16::from(step.number()),
                    &unix_millis(at),
                ],
            )?;
            Ok(())
        })
    }

    /// The steps `activation` reached, with when, in step order.
    pub fn steps(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
    ) -> Result<Vec<(Step, SystemTime)>, StoreError> {
        self.read(|c| {
            let mut out = Vec::new();
            for r in c.query(
                "SELECT step, at FROM steps WHERE tenant = $1 AND activation = $2 ORDER BY step",
                &[&tenant.as_str(), &activation.as_str()],
            )? {
                let step = u8::try_from(col::<i16>(&r, 0)?)
                    .ok()
                    .and_then(Step::from_number);
                if let Some(step) = step {
                    out.push((step, from_unix_millis(col(&r, 1)?)));
                }
            }
            Ok(out)
        })
    }

    /// How many command records and results the database holds ([`QueueRows`]).
    pub fn queue_rows(&self) -> Result<QueueRows, StoreError> {
        self.read(|c| {
            let row = c.query_one(
                "SELECT (SELECT COUNT(*) FROM commands), (SELECT COUNT(*) FROM results)",
                &[],
            )?;
            Ok(QueueRows {
                commands: count(col(&row, 0)?),
                results: count(col(&row, 1)?),
            })
        })
    }

    /// Every activation, newest first, at most `limit`.
    pub fn activations(&self, limit: usize) -> Result<Vec<Versioned<Activation>>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            c.query(
                "SELECT value, version FROM activations ORDER BY created DESC, id LIMIT $1",
                &[&limit],
            )?
            .iter()
            .map(versioned)
            .collect()
        })
    }

    /// Run raw SQL (maintenance) on one of the store's connections.
    pub fn batch_execute(&self, sql: &str) -> Result<(), StoreError> {
        self.client()?.batch_execute(sql).map_err(pg)
    }

    fn client(&self) -> Result<MutexGuard<'_, Client>, StoreError> {
        let n = self.clients.len().max(1);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Some(m) = self.clients.get((start + i) % n)
                && let Ok(guard) = m.try_lock()
            {
                return Ok(guard);
            }
        }
        self.clients
            .get(start % n)
            .ok_or_else(|| StoreError::permanent("no connection"))?
            .lock()
            .map_err(|_| StoreError::permanent("connection lock poisoned"))
    }

    /// Run `f` in one serializable transaction, retrying lost races.
    fn write<T>(
        &self,
        mut f: impl FnMut(&mut Transaction<'_>) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let mut client = self.client().map_err(Failure::Store)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = (|| {
                let mut tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start()
                    .map_err(Failure::Pg)?;
                let value = f(&mut tx)?;
                tx.commit().map_err(Failure::Pg)?;
                Ok(value)
            })();
            match outcome {
                Err(Failure::Pg(e)) if is_retryable(&e) && attempt < RETRIES => {
                    std::thread::sleep(Duration::from_millis(u64::from(attempt % 8) + 1));
                }
                other => return other,
            }
        }
    }

    fn op<T>(
        &self,
        mut f: impl FnMut(&mut Transaction<'_>) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        self.write(&mut f).map_err(Failure::into_store)
    }

    /// Run `f` on one connection outside a transaction (reads).
    fn read<T>(&self, f: impl FnOnce(&mut Client) -> R<T>) -> Result<T, StoreError> {
        f(&mut *self.client()?).map_err(Failure::into_store)
    }
}

/// A failed operation: a PostgreSQL error (maybe a lost race to retry) or
/// the store's answer.
#[derive(Debug)]
enum Failure {
    Pg(postgres::Error),
    Store(StoreError),
}

impl Failure {
    fn into_store(self) -> StoreError {
        match self {
            Failure::Pg(e) => pg(e),
            Failure::Store(e) => e,
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<postgres::Error> for Failure {
    fn from(e: postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

/// A unique violation as the store error it stands for; a lost race stays
/// retryable.
fn unique(e: postgres::Error, as_: StoreError) -> Failure {
    if is_unique_violation(&e) {
        Failure::Store(as_)
    } else {
        Failure::Pg(e)
    }
}

type Tx<'a, 'b> = &'a mut Transaction<'b>;
type R<T> = Result<T, Failure>;
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

// The one query sequence of this store, on a connection or a transaction:
// PostgreSQL's errors stay `Failure::Pg` (a transaction retries lost races),
// a column of an unexpected type is an error, not a panic.

/// Column `i` of `row`.
fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> R<T> {
    Ok(row.try_get(i)?)
}

/// The record stored in the first column of the row `sql` returns, if any.
fn record<T: Record>(c: &mut impl GenericClient, sql: &str, params: Params<'_>) -> R<Option<T>> {
    match c.query_opt(sql, params)? {
        Some(row) => Ok(Some(decode(col(&row, 0)?)?)),
        None => Ok(None),
    }
}

/// Every record stored in the first column of the rows `sql` returns.
fn records<T: Record>(c: &mut impl GenericClient, sql: &str, params: Params<'_>) -> R<Vec<T>> {
    c.query(sql, params)?
        .iter()
        .map(|row| Ok(decode(col(row, 0)?)?))
        .collect()
}

/// An activation row's record and version.
fn versioned(row: &Row) -> R<Versioned<Activation>> {
    Ok(Versioned {
        value: decode(col(row, 0)?)?,
        version: count(col(row, 1)?),
    })
}

fn claim_device(
    tx: Tx<'_, '_>,
    tenant: &TenantId,
    username: &str,
    device_id: &str,
    max: Option<u32>,
) -> R<bool> {
    let exists = tx
        .query_opt(
            "SELECT 1 FROM users WHERE tenant = $1 AND username = $2",
            &[&tenant.as_str(), &username],
        )?
        .is_some();
    if !exists {
        return Err(StoreError::NotFound.into());
    }
    let counted = tx
        .query_opt(
            "SELECT 1 FROM user_devices WHERE tenant = $1 AND username = $2 AND device_id = $3",
            &[&tenant.as_str(), &username, &device_id],
        )?
        .is_some();
    if counted {
        return Ok(false);
    }
    if let Some(max) = max {
        let row = tx.query_one(
            "SELECT COUNT(*) FROM user_devices WHERE tenant = $1 AND username = $2",
            &[&tenant.as_str(), &username],
        )?;
        let n: i64 = col(&row, 0)?;
        if n >= i64::from(max) {
            return Err(StoreError::LimitReached.into());
        }
    }
    tx.execute(
        "INSERT INTO user_devices (tenant, username, device_id) VALUES ($1, $2, $3)",
        &[&tenant.as_str(), &username, &device_id],
    )?;
    Ok(true)
}

fn release_device(tx: Tx<'_, '_>, tenant: &TenantId, username: &str, device_id: &str) -> R<()> {
    tx.execute(
        "DELETE FROM user_devices WHERE tenant = $1 AND username = $2 AND device_id = $3",
        &[&tenant.as_str(), &username, &device_id],
    )?;
    Ok(())
}

fn insert_activation(tx: Tx<'_, '_>, activation: &Activation) -> R<()> {
    let value = encode(activation)?;
    tx.execute(
        "INSERT INTO activations (tenant, id, version, value, created) VALUES ($1, $2, 1, $3, $4)",
        &[
            &activation.tenant.as_str(),
            &activation.id.as_str(),
            &value,
            &unix_millis(activation.created),
        ],
    )
    .map_err(|e| unique(e, StoreError::AlreadyExists))?;
    Ok(())
}

fn update_activation(tx: Tx<'_, '_>, activation: &Activation, expected: u64) -> R<u64> {
    let value = encode(activation)?;
    let found = tx
        .query_opt(
            "SELECT version FROM activations WHERE tenant = $1 AND id = $2",
            &[&activation.tenant.as_str(), &activation.id.as_str()],
        )?
        .ok_or(StoreError::NotFound)?;
    let found = count(col(&found, 0)?);
    if found != expected {
        return Err(StoreError::VersionConflict { expected, found }.into());
    }
    let next = found.saturating_add(1);
    tx.execute(
        "UPDATE activations SET value = $1, version = $2 WHERE tenant = $3 AND id = $4",
        &[
            &value,
            &i64::try_from(next).unwrap_or(i64::MAX),
            &activation.tenant.as_str(),
            &activation.id.as_str(),
        ],
    )?;
    Ok(next)
}

fn set_device_activation(
    tx: Tx<'_, '_>,
    tenant: &TenantId,
    device_id: &str,
    id: &ActivationId,
) -> R<Option<ActivationId>> {
    let previous: Option<String> = tx
        .query_opt(
            "SELECT activation FROM devices WHERE tenant = $1 AND device_id = $2",
            &[&tenant.as_str(), &device_id],
        )?
        .map(|r| col(&r, 0))
        .transpose()?;
    tx.execute(
        "INSERT INTO devices (tenant, device_id, activation) VALUES ($1, $2, $3)
         ON CONFLICT (tenant, device_id) DO UPDATE SET activation = excluded.activation",
        &[&tenant.as_str(), &device_id, &id.as_str()],
    )?;
    Ok(previous
        .map(|p| ActivationId::new(p).map_err(corrupt))
        .transpose()?)
}

fn insert_challenge(tx: Tx<'_, '_>, record: &ChallengeRecord) -> R<()> {
    let value = encode(record)?;
    tx.execute(
        "INSERT INTO challenges (tenant, digest, consumed, record) VALUES ($1, $2, $3, $4)",
        &[
            &record.tenant.as_str(),
            &&record.grant.digest.0[..],
            &record.consumed,
            &value,
        ],
    )
    .map_err(|e| unique(e, StoreError::AlreadyExists))?;
    Ok(())
}

fn consume_challenge(
    tx: Tx<'_, '_>,
    tenant: &TenantId,
    digest: &ChallengeDigest,
    now: SystemTime,
) -> R<ChallengeRecord> {
    let row = tx
        .query_opt(
            "SELECT record, consumed FROM challenges WHERE tenant = $1 AND digest = $2",
            &[&tenant.as_str(), &&digest.0[..]],
        )?
        .ok_or(StoreError::NotFound)?;
    if col::<bool>(&row, 1)? {
        return Err(StoreError::ChallengeConsumed.into());
    }
    let mut record: ChallengeRecord = decode(col(&row, 0)?)?;
    if now >= record.grant.expires {
        return Err(StoreError::ChallengeExpired.into());
    }
    record.consumed = true;
    tx.execute(
        "UPDATE challenges SET consumed = TRUE, record = $1 WHERE tenant = $2 AND digest = $3",
        &[&encode(&record)?, &tenant.as_str(), &&digest.0[..]],
    )?;
    Ok(record)
}

fn bind_identity(tx: Tx<'_, '_>, binding: &Binding) -> R<()> {
    let mut fresh = binding.clone();
    fresh.retired = false;
    let existing: Option<Binding> = record(
        tx,
        "SELECT value FROM bindings WHERE fingerprint = $1",
        &[&&binding.fingerprint.0[..]],
    )?;
    match existing {
        Some(existing) if existing.retired => Err(StoreError::IdentityRetired.into()),
        Some(existing)
            if existing.tenant == binding.tenant
                && existing.device_id == binding.device_id
                && existing.activation == binding.activation =>
        {
            Ok(())
        }
        Some(existing) => Err(StoreError::BindingConflict(Box::new(existing)).into()),
        None => {
            tx.execute(
                "INSERT INTO bindings (fingerprint, tenant, retired, value) VALUES ($1, $2, FALSE, $3)",
                &[&&binding.fingerprint.0[..], &binding.tenant.as_str(), &encode(&fresh)?],
            )?;
            Ok(())
        }
    }
}

fn retire_identity(tx: Tx<'_, '_>, fingerprint: &CertFingerprint, tenant: &TenantId) -> R<()> {
    let mut binding: Binding = record(
        tx,
        "SELECT value FROM bindings WHERE fingerprint = $1 AND tenant = $2",
        &[&&fingerprint.0[..], &tenant.as_str()],
    )?
    .ok_or(StoreError::NotFound)?;
    binding.retired = true;
    tx.execute(
        "UPDATE bindings SET retired = TRUE, value = $1 WHERE fingerprint = $2",
        &[&encode(&binding)?, &&fingerprint.0[..]],
    )?;
    Ok(())
}

/// Queue `command`; returns its row's number when its body is kept beside
/// the record.
fn enqueue(tx: Tx<'_, '_>, key: &QueueKey, command: &QueuedCommand) -> R<Option<i64>> {
    // A finished command leaves only its result: its uuid stays taken
    // while the result is kept.
    if has_result(tx, &queue_key(key), &command.uuid)? {
        return Err(StoreError::AlreadyExists.into());
    }
    let (value, body) = encode_command(command)?;
    let row = tx
        .query_one(
            "INSERT INTO commands (qkey, uuid, state, not_now, value, body)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
            &[
                &queue_key(key),
                &command.uuid.as_str(),
                &PENDING,
                &i64::from(command.not_now_count),
                &value,
                &body,
            ],
        )
        .map_err(|e| unique(e, StoreError::AlreadyExists))?;
    Ok(match body {
        Some(_) => Some(col(&row, 0)?),
        None => None,
    })
}

fn has_result(tx: Tx<'_, '_>, qkey: &[u8], uuid: &CommandUuid) -> R<bool> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM results WHERE qkey = $1 AND uuid = $2",
            &[&qkey, &uuid.as_str()],
        )?
        .is_some())
}

/// A queued command from its row (`SELECT value, not_now, delivered, body`:
/// record, `NotNow` count, first delivery, the body when kept beside the
/// record).
fn queued_command(r: &Row) -> R<QueuedCommand> {
    let beside = col::<Option<&[u8]>>(r, 3)?.map(Arc::from);
    command_from_row(r, beside)
}

/// A queued command from its record, `NotNow` count and first delivery
/// (columns 0 to 2) and its body beside the record, if any.
fn command_from_row(r: &Row, beside: Option<Arc<[u8]>>) -> R<QueuedCommand> {
    let mut command = decode_command(col(r, 0)?, beside)?;
    command.not_now_count = u32::try_from(col::<i64>(r, 1)?).unwrap_or(u32::MAX);
    command.delivered_at = col::<Option<i64>>(r, 2)?.map(from_unix_millis);
    Ok(command)
}

/// How often a read of queued commands starts again when a body it listed
/// went (its command finished, cancelled or cleared between the read's two
/// statements) before it gives up with a transient error.
const BODY_READ_TRIES: usize = 8;

/// The queued commands of a `SELECT value, not_now, delivered, seq, body IS
/// NOT NULL FROM commands ...` (`sql`), their large bodies taken from
/// `bodies` or read in a second statement (and kept there).
///
/// The two statements see two snapshots: a body the first listed may be
/// gone by the second. The read then starts again, so what it returns is
/// what one moment's queue held.
fn read_queued(
    c: &mut Client,
    bodies: &BodyCache,
    sql: &str,
    params: Params<'_>,
) -> R<Vec<QueuedCommand>> {
    for _ in 0..BODY_READ_TRIES {
        let rows = c.query(sql, params)?;
        // The bodies this read hands out, by row number: those kept are
        // taken now (so a body dropped from the cache meanwhile is still
        // here), the others read below.
        let mut found: HashMap<i64, Arc<[u8]>> = HashMap::new();
        let mut missing = Vec::new();
        for r in &rows {
            if col::<bool>(r, 4)? {
                let seq: i64 = col(r, 3)?;
                match bodies.get(seq) {
                    Some(body) => {
                        found.insert(seq, body);
                    }
                    None => missing.push(seq),
                }
            }
        }
        if !missing.is_empty() {
            let read = c.query(
                "SELECT seq, body FROM commands WHERE seq = ANY($1) AND body IS NOT NULL",
                &[&missing],
            )?;
            if read.len() < missing.len() {
                continue;
            }
            for r in &read {
                let (seq, body) = (col::<i64>(r, 0)?, Arc::from(col::<&[u8]>(r, 1)?));
                bodies.insert(seq, &body);
                found.insert(seq, body);
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let beside = if col::<bool>(r, 4)? {
                let seq: i64 = col(r, 3)?;
                let body = found
                    .get(&seq)
                    .ok_or_else(|| corrupt("a command body read is not the one listed"))?;
                Some(Arc::clone(body))
            } else {
                None
            };
            out.push(command_from_row(r, beside)?);
        }
        return Ok(out);
    }
    Err(StoreError::transient("queued commands kept changing while being read").into())
}

/// The oldest `limit` queued commands of `key` (`None`: all of them).
fn pending_head(
    c: &mut Client,
    bodies: &BodyCache,
    key: &QueueKey,
    limit: Option<i64>,
) -> R<Vec<QueuedCommand>> {
    read_queued(
        c,
        bodies,
        "SELECT value, not_now, delivered, seq, body IS NOT NULL FROM commands
         WHERE qkey = $1 AND state = $2 ORDER BY seq LIMIT $3",
        &[&queue_key(key), &PENDING, &limit],
    )
}

fn defer_command(tx: Tx<'_, '_>, key: &QueueKey, uuid: &CommandUuid) -> R<u32> {
    let row = tx
        .query_opt(
            "UPDATE commands SET not_now = LEAST(not_now + 1, 4294967295), claimed = NULL
             WHERE qkey = $1 AND uuid = $2 AND state = $3 RETURNING not_now",
            &[&queue_key(key), &uuid.as_str(), &PENDING],
        )?
        .ok_or(StoreError::NotFound)?;
    Ok(u32::try_from(col::<i64>(&row, 0)?).unwrap_or(u32::MAX))
}

fn finish_command(tx: Tx<'_, '_>, key: &QueueKey, result: &CommandResult) -> R<()> {
    let qkey = queue_key(key);
    // The command's row goes: its result is all that stays.
    let n = tx.execute(
        "DELETE FROM commands WHERE qkey = $1 AND uuid = $2 AND state = $3",
        &[&qkey, &result.uuid.as_str(), &PENDING],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound.into());
    }
    tx.execute(
        "INSERT INTO results (qkey, uuid, value) VALUES ($1, $2, $3)",
        &[&qkey, &result.uuid.as_str(), &encode(result)?],
    )
    .map_err(|e| unique(e, StoreError::NotFound))?;
    Ok(())
}

fn mark_delivered(tx: Tx<'_, '_>, key: &QueueKey, uuid: &CommandUuid, at: SystemTime) -> R<()> {
    let n = tx.execute(
        "UPDATE commands SET delivered = COALESCE(delivered, $1)
         WHERE qkey = $2 AND uuid = $3 AND state = $4",
        &[&unix_millis(at), &queue_key(key), &uuid.as_str(), &PENDING],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound.into());
    }
    Ok(())
}

/// One conditional `UPDATE … RETURNING`: only a command no delivery holds
/// is claimed; a racing claim on the same row waits for this one's commit,
/// then fails serialization and is retried, seeing the claim.
fn claim_delivery(
    tx: Tx<'_, '_>,
    key: &QueueKey,
    uuid: &CommandUuid,
    at: SystemTime,
    lease: Duration,
) -> R<Claim> {
    let qkey = queue_key(key);
    let claimed = tx.query_opt(
        "UPDATE commands SET delivered = COALESCE(delivered, $1), claimed = $1
         WHERE qkey = $2 AND uuid = $3 AND state = $4
           AND (claimed IS NULL OR claimed <= $5)
         RETURNING seq",
        &[
            &unix_millis(at),
            &qkey,
            &uuid.as_str(),
            &PENDING,
            &unix_millis(lease_start(at, lease)),
        ],
    )?;
    if claimed.is_some() {
        return Ok(Claim::Claimed);
    }
    let queued = tx.query_opt(
        "SELECT 1 FROM commands WHERE qkey = $1 AND uuid = $2 AND state = $3",
        &[&qkey, &uuid.as_str(), &PENDING],
    )?;
    Ok(if queued.is_some() {
        Claim::Held
    } else {
        Claim::Gone
    })
}

fn cancel_command(tx: Tx<'_, '_>, key: &QueueKey, uuid: &CommandUuid) -> R<Cancellation> {
    let qkey = queue_key(key);
    let row = tx.query_opt(
        "SELECT value, not_now, delivered, body, state FROM commands
         WHERE qkey = $1 AND uuid = $2",
        &[&qkey, &uuid.as_str()],
    )?;
    let Some(row) = row else {
        return Ok(if has_result(tx, &qkey, uuid)? {
            Cancellation::AlreadyFinished
        } else {
            Cancellation::Unknown
        });
    };
    let state: i16 = col(&row, 4)?;
    let delivered: Option<i64> = col(&row, 2)?;
    Ok(match (state, delivered) {
        (PENDING, Some(_)) => Cancellation::AlreadyDelivered,
        (PENDING, None) => {
            let command = queued_command(&row)?;
            // The cancelled command's uuid stays taken; its body goes.
            tx.execute(
                "UPDATE commands SET state = $1, body = NULL WHERE qkey = $2 AND uuid = $3",
                &[&CANCELLED, &qkey, &uuid.as_str()],
            )?;
            Cancellation::Cancelled(command)
        }
        _ => Cancellation::AlreadyFinished,
    })
}

fn clear_queue(tx: Tx<'_, '_>, key: &QueueKey) -> R<Vec<CommandUuid>> {
    let qkey = queue_key(key);
    let rows = tx.query(
        "UPDATE commands SET state = $1, body = NULL
         WHERE qkey = $2 AND state = $3 RETURNING seq, uuid",
        &[&CLEARED, &qkey, &PENDING],
    )?;
    let mut cleared = rows
        .iter()
        .map(|r| Ok((col::<i64>(r, 0)?, col::<String>(r, 1)?)))
        .collect::<R<Vec<_>>>()?;
    cleared.sort();
    tx.execute("DELETE FROM connections WHERE qkey = $1", &[&qkey])?;
    Ok(cleared
        .into_iter()
        .map(|(_, u)| CommandUuid::new(u).map_err(corrupt))
        .collect::<Result<_, _>>()?)
}

fn prune_results(tx: Tx<'_, '_>, key: &QueueKey, keep: usize) -> R<()> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    tx.execute(
        // Everything up to the newest result past the `keep` newest; nothing
        // when there are no more than `keep` (the bound is NULL).
        "DELETE FROM results WHERE qkey = $1 AND seq <=
         (SELECT seq FROM results WHERE qkey = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)",
        &[&queue_key(key), &keep],
    )?;
    Ok(())
}

fn set_connection(tx: Tx<'_, '_>, key: &QueueKey, connection: &Connection) -> R<()> {
    tx.execute(
        "INSERT INTO connections (qkey, value) VALUES ($1, $2)
         ON CONFLICT (qkey) DO UPDATE SET value = excluded.value",
        &[&queue_key(key), &encode(connection)?],
    )?;
    Ok(())
}

fn record_certificate(tx: Tx<'_, '_>, certificate: &IssuedCertificate) -> R<()> {
    let serial = &certificate.identity.serial;
    let fingerprint = &certificate.identity.fingerprint.0[..];
    if tx
        .query_opt("SELECT 1 FROM certificates WHERE serial = $1", &[serial])?
        .is_some()
    {
        return Err(StoreError::DuplicateSerial.into());
    }
    if tx
        .query_opt(
            "SELECT 1 FROM certificates WHERE fingerprint = $1",
            &[&fingerprint],
        )?
        .is_some()
    {
        return Err(StoreError::AlreadyExists.into());
    }
    tx.execute(
        "INSERT INTO certificates (serial, fingerprint, value) VALUES ($1, $2, $3)",
        &[serial, &fingerprint, &encode(certificate)?],
    )
    .map_err(|e| unique(e, StoreError::DuplicateSerial))?;
    Ok(())
}

fn update_push(tx: Tx<'_, '_>, key: &QueueKey, f: &dyn Fn(&mut PushState)) -> R<PushState> {
    let qkey = queue_key(key);
    let mut state: PushState =
        record(tx, "SELECT value FROM push_state WHERE qkey = $1", &[&qkey])?.unwrap_or_default();
    f(&mut state);
    tx.execute(
        "INSERT INTO push_state (qkey, tenant, key, next_due, token_invalid, value)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (qkey) DO UPDATE SET next_due = excluded.next_due,
             token_invalid = excluded.token_invalid, value = excluded.value",
        &[
            &qkey,
            &key.tenant.as_str(),
            &encode(key)?,
            &state.next_due.map(unix_millis),
            &state.token_invalid,
            &encode(&state)?,
        ],
    )?;
    Ok(state)
}

/// One write of a step, inside the step's transaction.
fn apply_write(tx: Tx<'_, '_>, write: &Write) -> R<Applied> {
    super::sql_dispatch::apply_write!(tx, write, Failure::Store(StoreError::NotFound))
}

impl StepStore for PostgresStore {
    /// One serializable transaction (retried whole after a lost race);
    /// rolled back on the first failing write.
    fn apply(&self, writes: &[Write]) -> Result<Vec<Applied>, StepFailed> {
        let mut failed_at = writes.len();
        let outcome = self.write(|tx| {
            let mut applied = Vec::with_capacity(writes.len());
            for (index, write) in writes.iter().enumerate() {
                failed_at = index;
                applied.push(apply_write(tx, write)?);
            }
            failed_at = writes.len();
            Ok(applied)
        });
        outcome.map_err(|f| StepFailed {
            index: match f {
                Failure::Store(_) => failed_at,
                Failure::Pg(_) => writes.len().min(failed_at),
            },
            error: f.into_store(),
        })
    }
}

impl UserStore for PostgresStore {
    fn put_user(&self, user: &UserAccount) -> Result<(), StoreError> {
        let value = encode(user)?;
        self.op(|tx| {
            tx.execute(
                "INSERT INTO users (tenant, username, account) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, username) DO UPDATE SET account = excluded.account",
                &[&user.tenant.as_str(), &user.username, &value],
            )?;
            Ok(())
        })
    }

    fn user(&self, tenant: &TenantId, username: &str) -> Result<Option<UserAccount>, StoreError> {
        self.read(|c| {
            record(
                c,
                "SELECT account FROM users WHERE tenant = $1 AND username = $2",
                &[&tenant.as_str(), &username],
            )
        })
    }

    fn claim_device(
        &self,
        tenant: &TenantId,
        username: &str,
        device_id: &str,
        max: Option<u32>,
    ) -> Result<bool, StoreError> {
        self.op(|tx| claim_device(tx, tenant, username, device_id, max))
    }

    fn release_device(
        &self,
        tenant: &TenantId,
        username: &str,
        device_id: &str,
    ) -> Result<(), StoreError> {
        self.op(|tx| release_device(tx, tenant, username, device_id))
    }

    fn devices(&self, tenant: &TenantId, username: &str) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            c.query(
                "SELECT device_id FROM user_devices WHERE tenant = $1 AND username = $2
                 ORDER BY device_id",
                &[&tenant.as_str(), &username],
            )?
            .iter()
            .map(|r| col(r, 0))
            .collect()
        })
    }
}

impl ActivationStore for PostgresStore {
    fn insert_activation(&self, activation: &Activation) -> Result<(), StoreError> {
        self.op(|tx| insert_activation(tx, activation))
    }

    fn activation(
        &self,
        tenant: &TenantId,
        id: &ActivationId,
    ) -> Result<Option<Versioned<Activation>>, StoreError> {
        self.read(|c| {
            c.query_opt(
                "SELECT value, version FROM activations WHERE tenant = $1 AND id = $2",
                &[&tenant.as_str(), &id.as_str()],
            )?
            .as_ref()
            .map(versioned)
            .transpose()
        })
    }

    fn update_activation(&self, activation: &Activation, expected: u64) -> Result<u64, StoreError> {
        self.op(|tx| update_activation(tx, activation, expected))
    }

    fn device_activation(
        &self,
        tenant: &TenantId,
        device_id: &str,
    ) -> Result<Option<ActivationId>, StoreError> {
        self.read(|c| {
            c.query_opt(
                "SELECT activation FROM devices WHERE tenant = $1 AND device_id = $2",
                &[&tenant.as_str(), &device_id],
            )?
            .map(|r| Ok(ActivationId::new(col::<String>(&r, 0)?).map_err(corrupt)?))
            .transpose()
        })
    }

    fn set_device_activation(
        &self,
        tenant: &TenantId,
        device_id: &str,
        id: &ActivationId,
    ) -> Result<Option<ActivationId>, StoreError> {
        self.op(|tx| set_device_activation(tx, tenant, device_id, id))
    }

    fn device_activations(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(String, ActivationId)>, StoreError> {
        self.read(|c| {
            c.query(
                "SELECT device_id, activation FROM devices WHERE tenant = $1 ORDER BY device_id",
                &[&tenant.as_str()],
            )?
            .iter()
            .map(|r| {
                Ok((
                    col::<String>(r, 0)?,
                    ActivationId::new(col::<String>(r, 1)?).map_err(corrupt)?,
                ))
            })
            .collect()
        })
    }
}

impl ChallengeStore for PostgresStore {
    fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        self.op(|tx| insert_challenge(tx, record))
    }

    fn challenge(
        &self,
        tenant: &TenantId,
        digest: &ChallengeDigest,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        self.read(|c| {
            record(
                c,
                "SELECT record FROM challenges WHERE tenant = $1 AND digest = $2",
                &[&tenant.as_str(), &&digest.0[..]],
            )
        })
    }

    fn consume_challenge(
        &self,
        tenant: &TenantId,
        digest: &ChallengeDigest,
        now: SystemTime,
    ) -> Result<ChallengeRecord, StoreError> {
        self.op(|tx| consume_challenge(tx, tenant, digest, now))
    }
}

impl BindingStore for PostgresStore {
    fn bind_identity(&self, binding: &Binding) -> Result<(), StoreError> {
        self.op(|tx| bind_identity(tx, binding))
    }

    fn identity(&self, fingerprint: &CertFingerprint) -> Result<Option<Binding>, StoreError> {
        self.read(|c| {
            record(
                c,
                "SELECT value FROM bindings WHERE fingerprint = $1",
                &[&&fingerprint.0[..]],
            )
        })
    }

    fn retire_identity(
        &self,
        fingerprint: &CertFingerprint,
        tenant: &TenantId,
    ) -> Result<(), StoreError> {
        self.op(|tx| retire_identity(tx, fingerprint, tenant))
    }
}

impl QueueStore for PostgresStore {
    fn enqueue(&self, key: &QueueKey, command: &QueuedCommand) -> Result<(), StoreError> {
        let beside = self.op(|tx| enqueue(tx, key, command))?;
        // Kept once committed.
        if let Some(seq) = beside {
            self.bodies.insert(seq, &command.body);
        }
        Ok(())
    }

    fn pending(&self, key: &QueueKey) -> Result<Vec<QueuedCommand>, StoreError> {
        // LIMIT NULL: no limit.
        self.read(|c| pending_head(c, &self.bodies, key, None))
    }

    fn pending_head(&self, key: &QueueKey, limit: usize) -> Result<Vec<QueuedCommand>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| pending_head(c, &self.bodies, key, Some(limit)))
    }

    fn pending_count(&self, key: &QueueKey) -> Result<usize, StoreError> {
        self.read(|c| {
            let row = c.query_one(
                "SELECT COUNT(*) FROM commands WHERE qkey = $1 AND state = $2",
                &[&queue_key(key), &PENDING],
            )?;
            Ok(usize::try_from(col::<i64>(&row, 0)?).unwrap_or(usize::MAX))
        })
    }

    fn queued_command(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
    ) -> Result<Option<QueuedCommand>, StoreError> {
        self.read(|c| {
            let found = read_queued(
                c,
                &self.bodies,
                "SELECT value, not_now, delivered, seq, body IS NOT NULL FROM commands
                 WHERE qkey = $1 AND uuid = $2 AND state = $3",
                &[&queue_key(key), &uuid.as_str(), &PENDING],
            )?;
            Ok(found.into_iter().next())
        })
    }

    fn defer_command(&self, key: &QueueKey, uuid: &CommandUuid) -> Result<u32, StoreError> {
        self.op(|tx| defer_command(tx, key, uuid))
    }

    fn finish_command(&self, key: &QueueKey, result: &CommandResult) -> Result<(), StoreError> {
        self.op(|tx| finish_command(tx, key, result))
    }

    fn mark_delivered(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.op(|tx| mark_delivered(tx, key, uuid, at))
    }

    fn claim_delivery(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
        at: SystemTime,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        self.op(|tx| claim_delivery(tx, key, uuid, at, lease))
    }

    fn cancel_command(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
    ) -> Result<Cancellation, StoreError> {
        self.op(|tx| cancel_command(tx, key, uuid))
    }

    fn clear_queue(&self, key: &QueueKey) -> Result<Vec<CommandUuid>, StoreError> {
        self.op(|tx| clear_queue(tx, key))
    }

    fn connection(&self, key: &QueueKey) -> Result<Connection, StoreError> {
        self.read(|c| {
            Ok(record(
                c,
                "SELECT value FROM connections WHERE qkey = $1",
                &[&queue_key(key)],
            )?
            .unwrap_or_default())
        })
    }

    fn set_connection(&self, key: &QueueKey, connection: &Connection) -> Result<(), StoreError> {
        self.op(|tx| set_connection(tx, key, connection))
    }

    fn results(&self, key: &QueueKey) -> Result<Vec<CommandResult>, StoreError> {
        self.read(|c| {
            records(
                c,
                "SELECT value FROM results WHERE qkey = $1 ORDER BY seq",
                &[&queue_key(key)],
            )
        })
    }

    fn prune_results(&self, key: &QueueKey, keep: usize) -> Result<(), StoreError> {
        self.op(|tx| prune_results(tx, key, keep))
    }
}

impl CertificateStore for PostgresStore {
    fn record_certificate(&self, certificate: &IssuedCertificate) -> Result<(), StoreError> {
        self.op(|tx| record_certificate(tx, certificate))
    }

    fn certificate_by_fingerprint(
        &self,
        fingerprint: &CertFingerprint,
    ) -> Result<Option<IssuedCertificate>, StoreError> {
        self.read(|c| {
            record(
                c,
                "SELECT value FROM certificates WHERE fingerprint = $1",
                &[&&fingerprint.0[..]],
            )
        })
    }

    fn certificate_by_serial(
        &self,
        serial: &[u8],
    ) -> Result<Option<IssuedCertificate>, StoreError> {
        self.read(|c| {
            record(
                c,
                "SELECT value FROM certificates WHERE serial = $1",
                &[&serial],
            )
        })
    }
}

impl PushStore for PostgresStore {
    fn push_state(&self, key: &QueueKey) -> Result<Option<PushState>, StoreError> {
        self.read(|c| {
            record(
                c,
                "SELECT value FROM push_state WHERE qkey = $1",
                &[&queue_key(key)],
            )
        })
    }

    fn record_push(
        &self,
        key: &QueueKey,
        at: SystemTime,
        next_due: Option<SystemTime>,
    ) -> Result<PushState, StoreError> {
        self.op(|tx| update_push(tx, key, &|s| s.pushed(at, next_due)))
    }

    fn record_push_response(
        &self,
        key: &QueueKey,
        status: u16,
        reason: Option<&str>,
        token_invalid: bool,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.op(|tx| update_push(tx, key, &|s| s.responded(status, reason, token_invalid, at)))
            .map(drop)
    }

    fn record_answer(
        &self,
        key: &QueueKey,
        next_due: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.op(|tx| update_push(tx, key, &|s| s.answered(next_due)))
            .map(drop)
    }

    fn record_token_update(&self, key: &QueueKey) -> Result<(), StoreError> {
        self.op(|tx| update_push(tx, key, &PushState::token_updated))
            .map(drop)
    }

    fn due_pushes(&self, tenant: &TenantId, now: SystemTime) -> Result<Vec<QueueKey>, StoreError> {
        self.read(|c| {
            records(
                c,
                "SELECT key FROM push_state WHERE tenant = $1 AND NOT token_invalid
                 AND next_due IS NOT NULL AND next_due <= $2 ORDER BY next_due, qkey",
                &[&tenant.as_str(), &unix_millis(now)],
            )
        })
    }
}

impl super::DeclarationStore for PostgresStore {
    fn ddm_document(
        &self,
        key: &QueueKey,
        slot: super::DdmSlot,
    ) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            c.query_opt(
                "SELECT document FROM ddm_documents WHERE qkey = $1 AND slot = $2",
                &[&queue_key(key), &slot.as_str()],
            )?
            .map(|r| col(&r, 0))
            .transpose()
        })
    }

    fn put_ddm_document(
        &self,
        key: &QueueKey,
        slot: super::DdmSlot,
        document: &str,
    ) -> Result<(), StoreError> {
        self.op(|tx| {
            tx.execute(
                "INSERT INTO ddm_documents (qkey, slot, document) VALUES ($1, $2, $3)
                 ON CONFLICT (qkey, slot) DO UPDATE SET document = EXCLUDED.document",
                &[&queue_key(key), &slot.as_str(), &document],
            )
            .map(|_| ())
            .map_err(Failure::Pg)
        })
    }
}
