//! A [`Store`](super::Store) in one SQLite database (feature `sqlite`,
//! bundled SQLite through `rusqlite`).
//!
//! Every atomic operation of the store traits is one `BEGIN IMMEDIATE`
//! transaction: the challenge consume, the identity bind-or-conflict, the
//! versioned activation update, the device-slot claim, the command finish and
//! the certificate record each read and write under SQLite's write lock, so
//! they stay linearizable across threads *and* across processes sharing the
//! file, and a crash (even `kill -9`) leaves either all or none of a
//! transaction. Uniqueness (certificate serials and fingerprints, command
//! uuids per queue, one binding per certificate hash) is also enforced by
//! `UNIQUE` constraints.
//!
//! The database runs in WAL mode with `synchronous = NORMAL`: a committed
//! transaction survives the process dying; after power loss the last
//! transactions may roll back (set `PRAGMA synchronous = FULL` through
//! [`SqliteStore::execute_batch`] to also survive that). All reads are
//! fresh (one connection, serialized by a mutex).
//!
//! Records are stored as versioned binary plists (a `v` layout version,
//! [`RECORD_VERSION`](super::RECORD_VERSION); rows written before it are
//! version 1), next to the key columns the queries need. A queued
//! command's body larger than 2 KiB has a row of its own (`command_bodies`,
//! schema 5): the delivery marks change the command's row, and SQLite
//! rewrites a whole row (a large body's overflow pages included) when one
//! of its columns changes. Such bodies, once queued or read, are kept in
//! memory up to a bound ([`SqliteStore::with_body_cache`]), so the
//! connections that deliver a command and report its outcome share one
//! buffer instead of each copying the body out of the database. Besides
//! the traits the store keeps a per-activation event log
//! ([`SqliteStore::record_step`]) and lists activations
//! ([`SqliteStore::activations`]) for admin views.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rusqlite::config::DbConfig;
use rusqlite::{
    Connection, OptionalExtension, Params, Row, Transaction, TransactionBehavior, params,
};

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
    Connection as ChannelConnection, QueueKey, QueuedCommand, Step, TenantId, UserAccount,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    tenant TEXT NOT NULL, username TEXT NOT NULL, account BLOB NOT NULL,
    PRIMARY KEY (tenant, username));
CREATE TABLE IF NOT EXISTS user_devices (
    tenant TEXT NOT NULL, username TEXT NOT NULL, device_id TEXT NOT NULL,
    PRIMARY KEY (tenant, username, device_id));
CREATE TABLE IF NOT EXISTS activations (
    tenant TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, value BLOB NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (tenant, id));
CREATE TABLE IF NOT EXISTS devices (
    tenant TEXT NOT NULL, device_id TEXT NOT NULL, activation TEXT NOT NULL,
    PRIMARY KEY (tenant, device_id));
CREATE TABLE IF NOT EXISTS challenges (
    tenant TEXT NOT NULL, digest BLOB NOT NULL, consumed INTEGER NOT NULL, record BLOB NOT NULL,
    PRIMARY KEY (tenant, digest));
CREATE TABLE IF NOT EXISTS bindings (
    fingerprint BLOB PRIMARY KEY, tenant TEXT NOT NULL, retired INTEGER NOT NULL,
    value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, qkey BLOB NOT NULL, uuid TEXT NOT NULL,
    state INTEGER NOT NULL, not_now INTEGER NOT NULL, value BLOB NOT NULL,
    UNIQUE (qkey, uuid));
CREATE INDEX IF NOT EXISTS commands_pending ON commands (qkey, state, seq);
CREATE TABLE IF NOT EXISTS results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, qkey BLOB NOT NULL, uuid TEXT NOT NULL,
    value BLOB NOT NULL,
    UNIQUE (qkey, uuid));
CREATE TABLE IF NOT EXISTS certificates (
    serial BLOB PRIMARY KEY, fingerprint BLOB NOT NULL UNIQUE, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, activation TEXT NOT NULL,
    step INTEGER NOT NULL, at INTEGER NOT NULL,
    UNIQUE (tenant, activation, step));
CREATE TABLE IF NOT EXISTS ddm_documents (
    qkey BLOB NOT NULL, slot TEXT NOT NULL, document TEXT NOT NULL,
    PRIMARY KEY (qkey, slot));
";

/// Schema changes after the first release, applied in order to databases
/// whose `PRAGMA user_version` is below their number (1-based). Existing
/// databases keep their data: columns are added, tables created.
const MIGRATIONS: &[&str] = &[
    // 1: delivery marks (cancel before delivery) and per-channel push bookkeeping.
    "ALTER TABLE commands ADD COLUMN delivered INTEGER;
     CREATE TABLE IF NOT EXISTS push_state (
         qkey BLOB PRIMARY KEY, tenant TEXT NOT NULL, key BLOB NOT NULL,
         next_due INTEGER, token_invalid INTEGER NOT NULL, value BLOB NOT NULL);
     CREATE INDEX IF NOT EXISTS push_state_due ON push_state (tenant, next_due);",
    // 2: per-channel connection state, out of the activation record.
    "CREATE TABLE IF NOT EXISTS connections (qkey BLOB PRIMARY KEY, value BLOB NOT NULL);",
    // 3: delivery claims (one connection is handed a command); finished
    // commands keep only their result (state 1 was "finished").
    "ALTER TABLE commands ADD COLUMN claimed INTEGER;
     DELETE FROM commands WHERE state = 1;",
    // 4: a channel's results in order, so pruning to the newest N finds
    // where to cut by walking an index instead of sorting them all.
    "CREATE INDEX IF NOT EXISTS results_by_seq ON results (qkey, seq);",
    // 5: a large queued command's body in a row of its own, which the delivery
    // marks never rewrite (SQLite rewrites a whole row, overflow pages
    // included, when one column changes). Rows queued before keep their
    // bodies in their records and are read as they are.
    "CREATE TABLE IF NOT EXISTS command_bodies (
         seq INTEGER PRIMARY KEY REFERENCES commands (seq) ON DELETE CASCADE,
         body BLOB NOT NULL);",
];

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: u32 = 5;

const PENDING: i64 = 0;
const CLEARED: i64 = 2;
const CANCELLED: i64 = 3;

/// A store in one SQLite database file (or in memory).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Large command bodies queued or read, shared by later reads.
    bodies: BodyCache,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// A SQLite error as a store error: busy or locked is transient (another
/// connection holds the write lock past the busy timeout), anything else
/// permanent.
fn db_err(e: rusqlite::Error) -> StoreError {
    let busy = matches!(
        &e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
    );
    if busy {
        StoreError::transient(e)
    } else {
        StoreError::permanent(e)
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

// The one query sequence of this store: run a statement on a connection (or
// a transaction, which derefs to one), read each row's columns, map SQLite's
// errors with `db_err`, decode stored records. Statements come from the
// connection's cache ([`STATEMENT_CACHE`]): preparing one costs more than
// running it.

/// Prepared statements kept per connection: more than this store has.
const STATEMENT_CACHE: usize = 128;

/// Run a cached statement that returns no rows (SQLite's error kept, for
/// callers that tell a unique violation apart).
fn execute(conn: &Connection, sql: &str, params: impl Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// At most one row of `sql`, its columns read by `row`.
fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    row: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row(params, row))
        .optional()
        .map_err(db_err)
}

/// Whether `sql` returns a row.
fn exists(conn: &Connection, sql: &str, params: impl Params) -> Result<bool, StoreError> {
    Ok(one(conn, sql, params, |_| Ok(()))?.is_some())
}

/// Every row of `sql`, each made into a value by `f` while it is the
/// current row: a stored record is decoded from SQLite's own buffer
/// ([`blob`]) instead of a copy taken first (a queued command's row holds
/// its whole body).
fn each<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = stmt.query(params).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push(f(row)?);
    }
    Ok(out)
}

/// The first row of `sql`, if any, made into a value by `f` as in [`each`].
fn first<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = stmt.query(params).map_err(db_err)?;
    rows.next().map_err(db_err)?.map(f).transpose()
}

/// Column `i` of `row` as the bytes SQLite holds (a column of another type
/// is a damaged row: a permanent error).
fn blob<'r>(row: &'r Row<'_>, i: usize) -> Result<&'r [u8], StoreError> {
    row.get_ref(i).map_err(db_err)?.as_blob().map_err(corrupt)
}

/// Column `i` of `row` as in [`blob`], or `None` when it is `NULL`.
fn blob_or_null<'r>(row: &'r Row<'_>, i: usize) -> Result<Option<&'r [u8]>, StoreError> {
    row.get_ref(i)
        .map_err(db_err)?
        .as_blob_or_null()
        .map_err(corrupt)
}

/// The record stored in the first column of the row `sql` returns, if any.
fn record<T: Record>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Option<T>, StoreError> {
    first(conn, sql, params, |r| decode(blob(r, 0)?))
}

/// Every row of `sql`: its columns read by `row`, then finished by `then`.
fn all<R, T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<R>,
    mut then: impl FnMut(R) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt.query_map(params, row).map_err(db_err)?;
    rows.map(|r| then(r.map_err(db_err)?)).collect()
}

/// Every record stored in the first column of the rows `sql` returns.
fn records<T: Record>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> Result<Vec<T>, StoreError> {
    each(conn, sql, params, |r| decode(blob(r, 0)?))
}

/// Run a statement that returns no rows; how many rows it changed.
fn exec(conn: &Connection, sql: &str, params: impl Params) -> Result<usize, StoreError> {
    execute(conn, sql, params).map_err(db_err)
}

// The write operations over a connection inside a transaction: each
// single operation runs one in its own transaction, `StepStore::apply` a
// step's in one.

fn claim_device(
    tx: &Connection,
    tenant: &TenantId,
    username: &str,
    device_id: &str,
    max: Option<u32>,
) -> Result<bool, StoreError> {
    if !exists(
        tx,
        "SELECT 1 FROM users WHERE tenant = ?1 AND username = ?2",
        params![tenant.as_str(), username],
    )? {
        return Err(StoreError::NotFound);
    }
    if exists(
        tx,
        "SELECT 1 FROM user_devices WHERE tenant = ?1 AND username = ?2 AND device_id = ?3",
        params![tenant.as_str(), username, device_id],
    )? {
        return Ok(false);
    }
    if let Some(max) = max {
        let n: i64 = one(
            tx,
            "SELECT COUNT(*) FROM user_devices WHERE tenant = ?1 AND username = ?2",
            params![tenant.as_str(), username],
            |r| r.get(0),
        )?
        .unwrap_or(0);
        if n >= i64::from(max) {
            return Err(StoreError::LimitReached);
        }
    }
    exec(
        tx,
        "INSERT INTO user_devices (tenant, username, device_id) VALUES (?1, ?2, ?3)",
        params![tenant.as_str(), username, device_id],
    )?;
    Ok(true)
}

fn release_device(
    tx: &Connection,
    tenant: &TenantId,
    username: &str,
    device_id: &str,
) -> Result<(), StoreError> {
    exec(
        tx,
        "DELETE FROM user_devices WHERE tenant = ?1 AND username = ?2 AND device_id = ?3",
        params![tenant.as_str(), username, device_id],
    )?;
    Ok(())
}

fn insert_activation(tx: &Connection, activation: &Activation) -> Result<(), StoreError> {
    let value = encode(activation)?;
    let r = execute(
        tx,
        "INSERT INTO activations (tenant, id, version, value, created) VALUES (?1, ?2, 1, ?3, ?4)",
        params![
            activation.tenant.as_str(),
            activation.id.as_str(),
            value,
            unix_millis(activation.created)
        ],
    );
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
        Err(e) => Err(db_err(e)),
    }
}

fn update_activation(
    tx: &Connection,
    activation: &Activation,
    expected: u64,
) -> Result<u64, StoreError> {
    let value = encode(activation)?;
    let found: Option<i64> = one(
        tx,
        "SELECT version FROM activations WHERE tenant = ?1 AND id = ?2",
        params![activation.tenant.as_str(), activation.id.as_str()],
        |r| r.get(0),
    )?;
    let found = u64::try_from(found.ok_or(StoreError::NotFound)?).unwrap_or(0);
    if found != expected {
        return Err(StoreError::VersionConflict { expected, found });
    }
    let next = found.saturating_add(1);
    exec(
        tx,
        "UPDATE activations SET value = ?1, version = ?2 WHERE tenant = ?3 AND id = ?4",
        params![
            value,
            i64::try_from(next).unwrap_or(i64::MAX),
            activation.tenant.as_str(),
            activation.id.as_str()
        ],
    )?;
    Ok(next)
}

fn set_device_activation(
    tx: &Connection,
    tenant: &TenantId,
    device_id: &str,
    id: &ActivationId,
) -> Result<Option<ActivationId>, StoreError> {
    let previous = device_activation(tx, tenant, device_id)?;
    exec(
        tx,
        "INSERT INTO devices (tenant, device_id, activation) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant, device_id) DO UPDATE SET activation = excluded.activation",
        params![tenant.as_str(), device_id, id.as_str()],
    )?;
    Ok(previous)
}

fn device_activation(
    conn: &Connection,
    tenant: &TenantId,
    device_id: &str,
) -> Result<Option<ActivationId>, StoreError> {
    one(
        conn,
        "SELECT activation FROM devices WHERE tenant = ?1 AND device_id = ?2",
        params![tenant.as_str(), device_id],
        |r| r.get::<_, String>(0),
    )?
    .map(|p| ActivationId::new(p).map_err(corrupt))
    .transpose()
}

fn insert_challenge(tx: &Connection, record: &ChallengeRecord) -> Result<(), StoreError> {
    let value = encode(record)?;
    let r = execute(
        tx,
        "INSERT INTO challenges (tenant, digest, consumed, record) VALUES (?1, ?2, ?3, ?4)",
        params![
            record.tenant.as_str(),
            &record.grant.digest.0[..],
            record.consumed,
            value
        ],
    );
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
        Err(e) => Err(db_err(e)),
    }
}

fn consume_challenge(
    tx: &Connection,
    tenant: &TenantId,
    digest: &ChallengeDigest,
    now: SystemTime,
) -> Result<ChallengeRecord, StoreError> {
    let mut record = challenge(tx, tenant, digest)?.ok_or(StoreError::NotFound)?;
    if record.consumed {
        return Err(StoreError::ChallengeConsumed);
    }
    if now >= record.grant.expires {
        return Err(StoreError::ChallengeExpired);
    }
    record.consumed = true;
    exec(
        tx,
        "UPDATE challenges SET consumed = 1, record = ?1 WHERE tenant = ?2 AND digest = ?3",
        params![encode(&record)?, tenant.as_str(), &digest.0[..]],
    )?;
    Ok(record)
}

/// The challenge with its `consumed` column (the authority over the record's flag).
fn challenge(
    conn: &Connection,
    tenant: &TenantId,
    digest: &ChallengeDigest,
) -> Result<Option<ChallengeRecord>, StoreError> {
    one(
        conn,
        "SELECT record, consumed FROM challenges WHERE tenant = ?1 AND digest = ?2",
        params![tenant.as_str(), &digest.0[..]],
        |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, bool>(1)?)),
    )?
    .map(|(value, consumed)| {
        let mut record: ChallengeRecord = decode(&value)?;
        record.consumed = consumed;
        Ok(record)
    })
    .transpose()
}

fn bind_identity(tx: &Connection, binding: &Binding) -> Result<(), StoreError> {
    let mut fresh = binding.clone();
    fresh.retired = false;
    let value = encode(&fresh)?;
    match identity(tx, &binding.fingerprint)? {
        Some(existing) if existing.retired => Err(StoreError::IdentityRetired),
        Some(existing)
            if existing.tenant == binding.tenant
                && existing.device_id == binding.device_id
                && existing.activation == binding.activation =>
        {
            Ok(())
        }
        Some(existing) => Err(StoreError::BindingConflict(Box::new(existing))),
        None => {
            exec(
                tx,
                "INSERT INTO bindings (fingerprint, tenant, retired, value) VALUES (?1, ?2, 0, ?3)",
                params![&binding.fingerprint.0[..], binding.tenant.as_str(), value],
            )?;
            Ok(())
        }
    }
}

fn identity(
    conn: &Connection,
    fingerprint: &CertFingerprint,
) -> Result<Option<Binding>, StoreError> {
    record(
        conn,
        "SELECT value FROM bindings WHERE fingerprint = ?1",
        params![&fingerprint.0[..]],
    )
}

fn retire_identity(
    tx: &Connection,
    fingerprint: &CertFingerprint,
    tenant: &TenantId,
) -> Result<(), StoreError> {
    let mut binding: Binding = record(
        tx,
        "SELECT value FROM bindings WHERE fingerprint = ?1 AND tenant = ?2",
        params![&fingerprint.0[..], tenant.as_str()],
    )?
    .ok_or(StoreError::NotFound)?;
    binding.retired = true;
    exec(
        tx,
        "UPDATE bindings SET retired = 1, value = ?1 WHERE fingerprint = ?2",
        params![encode(&binding)?, &fingerprint.0[..]],
    )?;
    Ok(())
}

/// Queue `command`; returns the number of its body's row when the body is
/// kept beside the record.
fn enqueue(
    tx: &Connection,
    key: &QueueKey,
    command: &QueuedCommand,
) -> Result<Option<i64>, StoreError> {
    let qkey = queue_key(key);
    // A finished command leaves only its result: its uuid stays taken
    // while the result is kept.
    if has_result(tx, &qkey, &command.uuid)? {
        return Err(StoreError::AlreadyExists);
    }
    let (value, beside) = encode_command(command)?;
    let r = execute(
        tx,
        "INSERT INTO commands (qkey, uuid, state, not_now, value) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            qkey,
            command.uuid.as_str(),
            PENDING,
            command.not_now_count,
            value
        ],
    );
    match r {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists),
        Err(e) => return Err(db_err(e)),
    }
    let Some(body) = beside else {
        return Ok(None);
    };
    let seq = tx.last_insert_rowid();
    exec(
        tx,
        "INSERT INTO command_bodies (seq, body) VALUES (?1, ?2)",
        params![seq, body],
    )?;
    Ok(Some(seq))
}

fn has_result(tx: &Connection, qkey: &[u8], uuid: &CommandUuid) -> Result<bool, StoreError> {
    exists(
        tx,
        "SELECT 1 FROM results WHERE qkey = ?1 AND uuid = ?2",
        params![qkey, uuid.as_str()],
    )
}

/// A `SELECT` of queued commands: their record, `NotNow` count and first
/// delivery (columns 0 to 2), and `$body` (column 3) from the body's row
/// (`b`, absent when the body is in the record: 2 KiB or less, or queued
/// before schema 5), then `$rest` over `c`, the command's row. `$body` is
/// `b.body` for [`queued_command`] (inside a write transaction) or `b.seq`
/// for [`QueuedReader`], which takes the body from its cache or reads it
/// alone.
macro_rules! queued_select {
    ($body:literal, $($rest:literal),*) => {
        concat!(
            "SELECT c.value, c.not_now, c.delivered, ", $body,
            " FROM commands c LEFT JOIN command_bodies b ON b.seq = c.seq ",
            $($rest),*
        )
    };
}

/// A queued command from its record, `NotNow` count and first delivery
/// (columns 0 to 2) and its body beside the record, if any.
fn command_from_row(r: &Row<'_>, beside: Option<Arc<[u8]>>) -> Result<QueuedCommand, StoreError> {
    let mut command = decode_command(blob(r, 0)?, beside)?;
    command.not_now_count = r.get(1).map_err(db_err)?;
    command.delivered_at = r
        .get::<_, Option<i64>>(2)
        .map_err(db_err)?
        .map(from_unix_millis);
    Ok(command)
}

/// A queued command from a row of [`queued_select`] with `b.body`.
fn queued_command(r: &Row<'_>) -> Result<QueuedCommand, StoreError> {
    let beside = blob_or_null(r, 3)?.map(Arc::from);
    command_from_row(r, beside)
}

/// Reads queued commands outside a write transaction, sharing the bodies
/// the store's [`BodyCache`] holds and keeping those it reads.
struct QueuedReader<'a> {
    conn: &'a Connection,
    bodies: &'a BodyCache,
}

impl QueuedReader<'_> {
    /// The commands of `sql`'s rows ([`queued_select`] with `b.seq`).
    ///
    /// A body is read while the statement listing its command is still
    /// stepping, so both reads share one read transaction (SQLite keeps a
    /// connection's snapshot while any of its statements is active) and
    /// the body is the one of the command listed.
    fn read(&self, sql: &str, params: impl Params) -> Result<Vec<QueuedCommand>, StoreError> {
        each(self.conn, sql, params, |r| {
            let beside = match r.get::<_, Option<i64>>(3).map_err(db_err)? {
                None => None,
                Some(seq) => Some(self.body(seq)?),
            };
            command_from_row(r, beside)
        })
    }

    /// The body of command row `seq`: kept, or read and kept.
    fn body(&self, seq: i64) -> Result<Arc<[u8]>, StoreError> {
        if let Some(body) = self.bodies.get(seq) {
            return Ok(body);
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT body FROM command_bodies WHERE seq = ?1")
            .map_err(db_err)?;
        let mut rows = stmt.query(params![seq]).map_err(db_err)?;
        let row = rows
            .next()
            .map_err(db_err)?
            .ok_or_else(|| corrupt("a command body listed by its command is missing"))?;
        let body: Arc<[u8]> = Arc::from(blob(row, 0)?);
        self.bodies.insert(seq, &body);
        Ok(body)
    }

    /// The oldest `limit` queued commands of `key` (`-1`: all of them).
    fn pending_head(&self, key: &QueueKey, limit: i64) -> Result<Vec<QueuedCommand>, StoreError> {
        self.read(
            queued_select!(
                "b.seq",
                "WHERE c.qkey = ?1 AND c.state = ?2 ORDER BY c.seq LIMIT ?3"
            ),
            params![queue_key(key), PENDING, limit],
        )
    }
}

fn defer_command(tx: &Connection, key: &QueueKey, uuid: &CommandUuid) -> Result<u32, StoreError> {
    let n = exec(
        tx,
        "UPDATE commands SET not_now = MIN(not_now + 1, 4294967295), claimed = NULL
         WHERE qkey = ?1 AND uuid = ?2 AND state = ?3",
        params![queue_key(key), uuid.as_str(), PENDING],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    one(
        tx,
        "SELECT not_now FROM commands WHERE qkey = ?1 AND uuid = ?2",
        params![queue_key(key), uuid.as_str()],
        |r| r.get(0),
    )?
    .ok_or(StoreError::NotFound)
}

fn finish_command(
    tx: &Connection,
    key: &QueueKey,
    result: &CommandResult,
) -> Result<(), StoreError> {
    let value = encode(result)?;
    let qkey = queue_key(key);
    // The command's row goes: its result is all that stays.
    let n = exec(
        tx,
        "DELETE FROM commands WHERE qkey = ?1 AND uuid = ?2 AND state = ?3",
        params![qkey, result.uuid.as_str(), PENDING],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    execute(
        tx,
        "INSERT INTO results (qkey, uuid, value) VALUES (?1, ?2, ?3)",
        params![qkey, result.uuid.as_str(), value],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::NotFound
        } else {
            db_err(e)
        }
    })?;
    Ok(())
}

fn mark_delivered(
    tx: &Connection,
    key: &QueueKey,
    uuid: &CommandUuid,
    at: SystemTime,
) -> Result<(), StoreError> {
    let n = exec(
        tx,
        "UPDATE commands SET delivered = COALESCE(delivered, ?1)
         WHERE qkey = ?2 AND uuid = ?3 AND state = ?4",
        params![unix_millis(at), queue_key(key), uuid.as_str(), PENDING],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// One conditional `UPDATE`: only a command no delivery holds is claimed.
fn claim_delivery(
    tx: &Connection,
    key: &QueueKey,
    uuid: &CommandUuid,
    at: SystemTime,
    lease: Duration,
) -> Result<Claim, StoreError> {
    let qkey = queue_key(key);
    let n = exec(
        tx,
        "UPDATE commands SET delivered = COALESCE(delivered, ?1), claimed = ?1
         WHERE qkey = ?2 AND uuid = ?3 AND state = ?4
           AND (claimed IS NULL OR claimed <= ?5)",
        params![
            unix_millis(at),
            qkey,
            uuid.as_str(),
            PENDING,
            unix_millis(lease_start(at, lease))
        ],
    )?;
    if n > 0 {
        return Ok(Claim::Claimed);
    }
    let queued = exists(
        tx,
        "SELECT 1 FROM commands WHERE qkey = ?1 AND uuid = ?2 AND state = ?3",
        params![qkey, uuid.as_str(), PENDING],
    )?;
    Ok(if queued { Claim::Held } else { Claim::Gone })
}

fn clear_queue(tx: &Connection, key: &QueueKey) -> Result<Vec<CommandUuid>, StoreError> {
    let qkey = queue_key(key);
    let uuids = all(
        tx,
        "SELECT uuid FROM commands WHERE qkey = ?1 AND state = ?2 ORDER BY seq",
        params![qkey, PENDING],
        |r| r.get::<_, String>(0),
        |u| CommandUuid::new(u).map_err(corrupt),
    )?;
    // Only the uuids of cleared commands stay (taken while they are kept).
    exec(
        tx,
        "DELETE FROM command_bodies
         WHERE seq IN (SELECT seq FROM commands WHERE qkey = ?1 AND state = ?2)",
        params![qkey, PENDING],
    )?;
    exec(
        tx,
        "UPDATE commands SET state = ?1 WHERE qkey = ?2 AND state = ?3",
        params![CLEARED, qkey, PENDING],
    )?;
    exec(tx, "DELETE FROM connections WHERE qkey = ?1", params![qkey])?;
    Ok(uuids)
}

fn prune_results(tx: &Connection, key: &QueueKey, keep: usize) -> Result<(), StoreError> {
    let qkey = queue_key(key);
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    exec(
        tx,
        // Everything up to the newest result past the `keep` newest; nothing
        // when there are no more than `keep` (the bound is NULL).
        "DELETE FROM results WHERE qkey = ?1 AND seq <=
             (SELECT seq FROM results WHERE qkey = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
        params![qkey, keep],
    )?;
    Ok(())
}

fn record_certificate(tx: &Connection, certificate: &IssuedCertificate) -> Result<(), StoreError> {
    let value = encode(certificate)?;
    let serial = &certificate.identity.serial;
    let fingerprint = &certificate.identity.fingerprint.0[..];
    if exists(
        tx,
        "SELECT 1 FROM certificates WHERE serial = ?1",
        params![serial],
    )? {
        return Err(StoreError::DuplicateSerial);
    }
    if exists(
        tx,
        "SELECT 1 FROM certificates WHERE fingerprint = ?1",
        params![fingerprint],
    )? {
        return Err(StoreError::AlreadyExists);
    }
    exec(
        tx,
        "INSERT INTO certificates (serial, fingerprint, value) VALUES (?1, ?2, ?3)",
        params![serial, fingerprint, value],
    )?;
    Ok(())
}

fn set_connection(
    tx: &Connection,
    key: &QueueKey,
    connection: &ChannelConnection,
) -> Result<(), StoreError> {
    exec(
        tx,
        "INSERT INTO connections (qkey, value) VALUES (?1, ?2)
         ON CONFLICT (qkey) DO UPDATE SET value = excluded.value",
        params![queue_key(key), encode(connection)?],
    )?;
    Ok(())
}

/// The columns of an activation row: its record and its version.
fn versioned_row(r: &Row<'_>) -> rusqlite::Result<(Vec<u8>, i64)> {
    Ok((r.get(0)?, r.get(1)?))
}

fn versioned((value, version): (Vec<u8>, i64)) -> Result<Versioned<Activation>, StoreError> {
    Ok(Versioned {
        value: decode(&value)?,
        version: u64::try_from(version).unwrap_or(0),
    })
}

fn push_state(conn: &Connection, qkey: &[u8]) -> Result<Option<PushState>, StoreError> {
    record(
        conn,
        "SELECT value FROM push_state WHERE qkey = ?1",
        params![qkey],
    )
}

/// One write of a step, inside the step's transaction.
fn apply_write(tx: &Connection, write: &Write) -> Result<Applied, StoreError> {
    super::sql_dispatch::apply_write!(tx, write, StoreError::NotFound)
}

/// Bring the schema to [`SCHEMA_VERSION`], one transaction per migration.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    let current: u32 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    for (n, sql) in (1u32..).zip(MIGRATIONS) {
        if n > current {
            tx.execute_batch(sql).map_err(db_err)?;
            tx.pragma_update(None, "user_version", n).map_err(db_err)?;
        }
    }
    tx.commit().map_err(db_err)
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(db_err)?;
        Self::init(conn, true)
    }

    /// A private in-memory database (for tests).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(db_err)?;
        Self::init(conn, false)
    }

    fn init(mut conn: Connection, file: bool) -> Result<Self, StoreError> {
        conn.busy_timeout(Duration::from_secs(10)).map_err(db_err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // The query planner stability guarantee: a cached statement keeps
        // its plan whatever is bound to it. Without it SQLite re-prepares a
        // statement (parse and plan again) each time a bound `LIMIT` differs
        // from the value it was planned with, and the engine reads a
        // queue's head with alternating limits.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(db_err)?;
        if file {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(db_err)?;
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(db_err)?;
        }
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            bodies: BodyCache::new(DEFAULT_BODY_CACHE_BYTES),
        })
    }

    /// Keep at most `bytes` of large command bodies (over 2 KiB) in memory
    /// once queued or read (default 16 MiB; 0: none), oldest dropped
    /// first. A command
    /// is read by the connection that delivers it and again by the one
    /// that reports its outcome: with the body kept, the second read shares
    /// the first's buffer instead of copying a profile of megabytes out of
    /// the database again. A body's row is written once and its number
    /// never reused, so a kept body is never stale, even with other
    /// processes writing the same file (a body rewritten behind the store's
    /// back, by raw SQL, is not seen while it is kept).
    #[must_use]
    pub fn with_body_cache(self, bytes: usize) -> Self {
        self.bodies.set_capacity(bytes);
        self
    }

    /// Run raw SQL (pragmas, maintenance) on the store's connection.
    pub fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        self.lock()?.execute_batch(sql).map_err(db_err)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::permanent("connection lock poisoned"))
    }

    /// Run `f` on the connection outside an explicit transaction: reads, and
    /// single statements that commit alone.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&*self.lock()?)
    }

    /// Run `f` with a reader of queued commands over the connection,
    /// outside an explicit transaction.
    fn with_queued<T>(
        &self,
        f: impl FnOnce(&QueuedReader<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.lock()?;
        f(&QueuedReader {
            conn: &conn,
            bodies: &self.bodies,
        })
    }

    /// Run `f` in one `BEGIN IMMEDIATE` transaction; commit on `Ok`.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let value = f(&tx)?;
        tx.commit().map_err(db_err)?;
        Ok(value)
    }

    /// Record that `activation` reached `step` at `at` (first time only).
    pub fn record_step(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
        step: Step,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.with_conn(|c| {
            exec(
                c,
                "INSERT OR IGNORE INTO steps (tenant, activation, step, at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    tenant.as_str(),
                    activation.as_str(),
                    step.number(),
                    unix_millis(at)
                ],
            )
        })?;
        Ok(())
    }

    /// The steps `activation` reached, with when, in step order.
    pub fn steps(
        &self,
        tenant: &TenantId,
        activation: &ActivationId,
    ) -> Result<Vec<(Step, SystemTime)>, StoreError> {
        let steps = self.with_conn(|c| {
            all(
                c,
                "SELECT step, at FROM steps WHERE tenant = ?1 AND activation = ?2 ORDER BY step",
                params![tenant.as_str(), activation.as_str()],
                |r| Ok((r.get::<_, u8>(0)?, r.get::<_, i64>(1)?)),
                |(n, at)| Ok(Step::from_number(n).map(|step| (step, from_unix_millis(at)))),
            )
        })?;
        Ok(steps.into_iter().flatten().collect())
    }

    /// How many command records and results the database holds ([`QueueRows`]).
    pub fn queue_rows(&self) -> Result<QueueRows, StoreError> {
        self.with_conn(|c| {
            let count = |sql: &str| -> Result<u64, StoreError> {
                let n = one(c, sql, [], |r| r.get::<_, i64>(0))?;
                Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
            };
            Ok(QueueRows {
                commands: count("SELECT COUNT(*) FROM commands")?,
                results: count("SELECT COUNT(*) FROM results")?,
            })
        })
    }

    /// Every activation, newest first, at most `limit`.
    pub fn activations(&self, limit: usize) -> Result<Vec<Versioned<Activation>>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(|c| {
            all(
                c,
                "SELECT value, version FROM activations ORDER BY created DESC, id LIMIT ?1",
                params![limit],
                versioned_row,
                versioned,
            )
        })
    }
}

impl UserStore for SqliteStore {
    fn put_user(&self, user: &UserAccount) -> Result<(), StoreError> {
        let account = encode(user)?;
        self.with_conn(|c| {
            exec(
                c,
                "INSERT INTO users (tenant, username, account) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, username) DO UPDATE SET account = excluded.account",
                params![user.tenant.as_str(), user.username, account],
            )
        })?;
        Ok(())
    }

    fn user(&self, tenant: &TenantId, username: &str) -> Result<Option<UserAccount>, StoreError> {
        self.with_conn(|c| {
            record(
                c,
                "SELECT account FROM users WHERE tenant = ?1 AND username = ?2",
                params![tenant.as_str(), username],
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
        self.write(|tx| claim_device(tx, tenant, username, device_id, max))
    }

    fn release_device(
        &self,
        tenant: &TenantId,
        username: &str,
        device_id: &str,
    ) -> Result<(), StoreError> {
        self.write(|tx| release_device(tx, tenant, username, device_id))
    }

    fn devices(&self, tenant: &TenantId, username: &str) -> Result<Vec<String>, StoreError> {
        self.with_conn(|c| {
            all(
                c,
                "SELECT device_id FROM user_devices WHERE tenant = ?1 AND username = ?2 ORDER BY device_id",
                params![tenant.as_str(), username],
                |r| r.get(0),
                Ok,
            )
        })
    }
}

impl ActivationStore for SqliteStore {
    fn insert_activation(&self, activation: &Activation) -> Result<(), StoreError> {
        self.write(|tx| insert_activation(tx, activation))
    }

    fn activation(
        &self,
        tenant: &TenantId,
        id: &ActivationId,
    ) -> Result<Option<Versioned<Activation>>, StoreError> {
        self.with_conn(|c| {
            one(
                c,
                "SELECT value, version FROM activations WHERE tenant = ?1 AND id = ?2",
                params![tenant.as_str(), id.as_str()],
                versioned_row,
            )?
            .map(versioned)
            .transpose()
        })
    }

    fn update_activation(&self, activation: &Activation, expected: u64) -> Result<u64, StoreError> {
        self.write(|tx| update_activation(tx, activation, expected))
    }

    fn device_activation(
        &self,
        tenant: &TenantId,
        device_id: &str,
    ) -> Result<Option<ActivationId>, StoreError> {
        self.with_conn(|c| device_activation(c, tenant, device_id))
    }

    fn set_device_activation(
        &self,
        tenant: &TenantId,
        device_id: &str,
        id: &ActivationId,
    ) -> Result<Option<ActivationId>, StoreError> {
        self.write(|tx| set_device_activation(tx, tenant, device_id, id))
    }

    fn device_activations(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(String, ActivationId)>, StoreError> {
        self.with_conn(|c| {
            all(
                c,
                "SELECT device_id, activation FROM devices WHERE tenant = ?1 ORDER BY device_id",
                params![tenant.as_str()],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                |(device, activation)| {
                    Ok((device, ActivationId::new(activation).map_err(corrupt)?))
                },
            )
        })
    }
}

impl ChallengeStore for SqliteStore {
    fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        self.write(|tx| insert_challenge(tx, record))
    }

    fn challenge(
        &self,
        tenant: &TenantId,
        digest: &ChallengeDigest,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        self.with_conn(|c| challenge(c, tenant, digest))
    }

    fn consume_challenge(
        &self,
        tenant: &TenantId,
        digest: &ChallengeDigest,
        now: SystemTime,
    ) -> Result<ChallengeRecord, StoreError> {
        self.write(|tx| consume_challenge(tx, tenant, digest, now))
    }
}

impl BindingStore for SqliteStore {
    fn bind_identity(&self, binding: &Binding) -> Result<(), StoreError> {
        self.write(|tx| bind_identity(tx, binding))
    }

    fn identity(&self, fingerprint: &CertFingerprint) -> Result<Option<Binding>, StoreError> {
        self.with_conn(|c| identity(c, fingerprint))
    }

    fn retire_identity(
        &self,
        fingerprint: &CertFingerprint,
        tenant: &TenantId,
    ) -> Result<(), StoreError> {
        self.write(|tx| retire_identity(tx, fingerprint, tenant))
    }
}

impl QueueStore for SqliteStore {
    fn enqueue(&self, key: &QueueKey, command: &QueuedCommand) -> Result<(), StoreError> {
        let beside = self.write(|tx| enqueue(tx, key, command))?;
        // Kept once committed (a number handed out by a transaction rolled
        // back is handed out again).
        if let Some(seq) = beside {
            self.bodies.insert(seq, &command.body);
        }
        Ok(())
    }

    fn pending(&self, key: &QueueKey) -> Result<Vec<QueuedCommand>, StoreError> {
        // LIMIT -1: no limit.
        self.with_queued(|r| r.pending_head(key, -1))
    }

    fn pending_head(&self, key: &QueueKey, limit: usize) -> Result<Vec<QueuedCommand>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_queued(|r| r.pending_head(key, limit))
    }

    fn pending_count(&self, key: &QueueKey) -> Result<usize, StoreError> {
        self.with_conn(|c| {
            let n = one(
                c,
                "SELECT COUNT(*) FROM commands WHERE qkey = ?1 AND state = ?2",
                params![queue_key(key), PENDING],
                |r| r.get::<_, i64>(0),
            )?;
            Ok(usize::try_from(n.unwrap_or(0)).unwrap_or(usize::MAX))
        })
    }

    fn queued_command(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
    ) -> Result<Option<QueuedCommand>, StoreError> {
        self.with_queued(|r| {
            let found = r.read(
                queued_select!(
                    "b.seq",
                    "WHERE c.qkey = ?1 AND c.uuid = ?2 AND c.state = ?3"
                ),
                params![queue_key(key), uuid.as_str(), PENDING],
            )?;
            Ok(found.into_iter().next())
        })
    }

    fn defer_command(&self, key: &QueueKey, uuid: &CommandUuid) -> Result<u32, StoreError> {
        self.write(|tx| defer_command(tx, key, uuid))
    }

    fn finish_command(&self, key: &QueueKey, result: &CommandResult) -> Result<(), StoreError> {
        self.write(|tx| finish_command(tx, key, result))
    }

    fn mark_delivered(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.write(|tx| mark_delivered(tx, key, uuid, at))
    }

    fn claim_delivery(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
        at: SystemTime,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        self.write(|tx| claim_delivery(tx, key, uuid, at, lease))
    }

    fn cancel_command(
        &self,
        key: &QueueKey,
        uuid: &CommandUuid,
    ) -> Result<Cancellation, StoreError> {
        let qkey = queue_key(key);
        self.write(|tx| {
            let state = one(
                tx,
                "SELECT state, delivered FROM commands WHERE qkey = ?1 AND uuid = ?2",
                params![qkey, uuid.as_str()],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
            )?;
            Ok(match state {
                None if has_result(tx, &qkey, uuid)? => Cancellation::AlreadyFinished,
                None => Cancellation::Unknown,
                Some((PENDING, Some(_))) => Cancellation::AlreadyDelivered,
                Some((PENDING, None)) => {
                    let command = first(
                        tx,
                        queued_select!("b.body", "WHERE c.qkey = ?1 AND c.uuid = ?2"),
                        params![qkey, uuid.as_str()],
                        queued_command,
                    )?
                    .ok_or(StoreError::NotFound)?;
                    exec(
                        tx,
                        "UPDATE commands SET state = ?1 WHERE qkey = ?2 AND uuid = ?3",
                        params![CANCELLED, qkey, uuid.as_str()],
                    )?;
                    // The cancelled command's uuid stays taken; its body goes.
                    exec(
                        tx,
                        "DELETE FROM command_bodies WHERE seq =
                             (SELECT seq FROM commands WHERE qkey = ?1 AND uuid = ?2)",
                        params![qkey, uuid.as_str()],
                    )?;
                    Cancellation::Cancelled(command)
                }
                Some(_) => Cancellation::AlreadyFinished,
            })
        })
    }

    fn clear_queue(&self, key: &QueueKey) -> Result<Vec<CommandUuid>, StoreError> {
        self.write(|tx| clear_queue(tx, key))
    }

    fn connection(&self, key: &QueueKey) -> Result<ChannelConnection, StoreError> {
        let connection = self.with_conn(|c| {
            record(
                c,
                "SELECT value FROM connections WHERE qkey = ?1",
                params![queue_key(key)],
            )
        })?;
        Ok(connection.unwrap_or_default())
    }

    fn set_connection(
        &self,
        key: &QueueKey,
        connection: &ChannelConnection,
    ) -> Result<(), StoreError> {
        self.write(|tx| set_connection(tx, key, connection))
    }

    fn results(&self, key: &QueueKey) -> Result<Vec<CommandResult>, StoreError> {
        self.with_conn(|c| {
            records(
                c,
                "SELECT value FROM results WHERE qkey = ?1 ORDER BY seq",
                params![queue_key(key)],
            )
        })
    }

    fn prune_results(&self, key: &QueueKey, keep: usize) -> Result<(), StoreError> {
        self.write(|tx| prune_results(tx, key, keep))
    }
}

impl CertificateStore for SqliteStore {
    fn record_certificate(&self, certificate: &IssuedCertificate) -> Result<(), StoreError> {
        self.write(|tx| record_certificate(tx, certificate))
    }

    fn certificate_by_fingerprint(
        &self,
        fingerprint: &CertFingerprint,
    ) -> Result<Option<IssuedCertificate>, StoreError> {
        self.with_conn(|c| {
            record(
                c,
                "SELECT value FROM certificates WHERE fingerprint = ?1",
                params![&fingerprint.0[..]],
            )
        })
    }

    fn certificate_by_serial(
        &self,
        serial: &[u8],
    ) -> Result<Option<IssuedCertificate>, StoreError> {
        self.with_conn(|c| {
            record(
                c,
                "SELECT value FROM certificates WHERE serial = ?1",
                params![serial],
            )
        })
    }
}

impl StepStore for SqliteStore {
    /// One `BEGIN IMMEDIATE` transaction; dropping it on the first failing
    /// write rolls the step back.
    fn apply(&self, writes: &[Write]) -> Result<Vec<Applied>, StepFailed> {
        let failed = |error| StepFailed {
            index: writes.len(),
            error,
        };
        let mut conn = self.lock().map_err(failed)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| failed(db_err(e)))?;
        let mut applied = Vec::with_capacity(writes.len());
        for (index, write) in writes.iter().enumerate() {
            applied.push(apply_write(&tx, write).map_err(|error| StepFailed { index, error })?);
        }
        tx.commit().map_err(|e| failed(db_err(e)))?;
        Ok(applied)
    }
}

impl SqliteStore {
    /// Read-modify-write one channel's push record in one transaction.
    fn update_push(
        &self,
        key: &QueueKey,
        f: impl FnOnce(&mut PushState),
    ) -> Result<PushState, StoreError> {
        let qkey = queue_key(key);
        self.write(|tx| {
            let mut state = push_state(tx, &qkey)?.unwrap_or_default();
            f(&mut state);
            exec(
                tx,
                "INSERT INTO push_state (qkey, tenant, key, next_due, token_invalid, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (qkey) DO UPDATE SET next_due = excluded.next_due,
                     token_invalid = excluded.token_invalid, value = excluded.value",
                params![
                    qkey,
                    key.tenant.as_str(),
                    encode(key)?,
                    state.next_due.map(unix_millis),
                    state.token_invalid,
                    encode(&state)?
                ],
            )?;
            Ok(state)
        })
    }
}

impl PushStore for SqliteStore {
    fn push_state(&self, key: &QueueKey) -> Result<Option<PushState>, StoreError> {
        self.with_conn(|c| push_state(c, &queue_key(key)))
    }

    fn record_push(
        &self,
        key: &QueueKey,
        at: SystemTime,
        next_due: Option<SystemTime>,
    ) -> Result<PushState, StoreError> {
        self.update_push(key, |s| s.pushed(at, next_due))
    }

    fn record_push_response(
        &self,
        key: &QueueKey,
        status: u16,
        reason: Option<&str>,
        token_invalid: bool,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.update_push(key, |s| s.responded(status, reason, token_invalid, at))
            .map(drop)
    }

    fn record_answer(
        &self,
        key: &QueueKey,
        next_due: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.update_push(key, |s| s.answered(next_due)).map(drop)
    }

    fn record_token_update(&self, key: &QueueKey) -> Result<(), StoreError> {
        self.update_push(key, PushState::token_updated).map(drop)
    }

    fn due_pushes(&self, tenant: &TenantId, now: SystemTime) -> Result<Vec<QueueKey>, StoreError> {
        self.with_conn(|c| {
            records(
                c,
                "SELECT key FROM push_state WHERE tenant = ?1 AND token_invalid = 0
                 AND next_due IS NOT NULL AND next_due <= ?2 ORDER BY next_due, qkey",
                params![tenant.as_str(), unix_millis(now)],
            )
        })
    }
}

impl super::DeclarationStore for SqliteStore {
    fn ddm_document(
        &self,
        key: &QueueKey,
        slot: super::DdmSlot,
    ) -> Result<Option<String>, StoreError> {
        self.with_conn(|c| {
            one(
                c,
                "SELECT document FROM ddm_documents WHERE qkey = ?1 AND slot = ?2",
                params![queue_key(key), slot.as_str()],
                |r| r.get(0),
            )
        })
    }

    fn put_ddm_document(
        &self,
        key: &QueueKey,
        slot: super::DdmSlot,
        document: &str,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            exec(
                tx,
                "INSERT INTO ddm_documents (qkey, slot, document) VALUES (?1, ?2, ?3)
                 ON CONFLICT (qkey, slot) DO UPDATE SET document = excluded.document",
                params![queue_key(key), slot.as_str(), document],
            )
            .map(drop)
        })
    }
}
