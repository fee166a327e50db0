//! The SQLite store passes the store conformance kit: on one connection, and
//! spread over several connections to one database file (so the atomic
//! operations are proven by SQLite transactions, not by the in-process
//! mutex), and its records survive closing and reopening the file.
#![cfg(all(feature = "sqlite", feature = "test-support"))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::*;
use mdm_enroll::store::sqlite::SqliteStore;
use mdm_enroll::store::*;

#[test]
fn in_memory_sqlite_store_conforms() {
    let report = conformance::run(|| SqliteStore::open_in_memory().expect("open"));
    assert!(report.is_ok(), "{:#?}", report.failed);
    assert_eq!(report.passed.len(), 33);
}

#[test]
fn file_sqlite_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = AtomicUsize::new(0);
    let report = conformance::run(|| {
        let path = dir
            .path()
            .join(format!("{}.db", n.fetch_add(1, Ordering::Relaxed)));
        SqliteStore::open(path).expect("open")
    });
    assert!(report.is_ok(), "{:#?}", report.failed);
    assert_eq!(report.passed.len(), 33);
}

/// Several connections (as several server processes would have) to one file;
/// every call goes to the next connection in turn.
struct Connections {
    stores: Vec<SqliteStore>,
    next: AtomicUsize,
}

impl Connections {
    fn pick(&self) -> &SqliteStore {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.stores.len();
        &self.stores[i]
    }
}

impl UserStore for Connections {
    fn put_user(&self, user: &UserAccount) -> Result<(), StoreError> {
        self.pick().put_user(user)
    }
    fn user(&self, t: &TenantId, u: &str) -> Result<Option<UserAccount>, StoreError> {
        self.pick().user(t, u)
    }
    fn claim_device(
        &self,
        t: &TenantId,
        u: &str,
        d: &str,
        max: Option<u32>,
    ) -> Result<bool, StoreError> {
        self.pick().claim_device(t, u, d, max)
    }
    fn release_device(&self, t: &TenantId, u: &str, d: &str) -> Result<(), StoreError> {
        self.pick().release_device(t, u, d)
    }
    fn devices(&self, t: &TenantId, u: &str) -> Result<Vec<String>, StoreError> {
        self.pick().devices(t, u)
    }
}

impl ActivationStore for Connections {
    fn insert_activation(&self, a: &Activation) -> Result<(), StoreError> {
        self.pick().insert_activation(a)
    }
    fn activation(
        &self,
        t: &TenantId,
        id: &ActivationId,
    ) -> Result<Option<Versioned<Activation>>, StoreError> {
        self.pick().activation(t, id)
    }
    fn update_activation(&self, a: &Activation, expected: u64) -> Result<u64, StoreError> {
        self.pick().update_activation(a, expected)
    }
    fn device_activation(&self, t: &TenantId, d: &str) -> Result<Option<ActivationId>, StoreError> {
        self.pick().device_activation(t, d)
    }
    fn set_device_activation(
        &self,
        t: &TenantId,
        d: &str,
        id: &ActivationId,
    ) -> Result<Option<ActivationId>, StoreError> {
        self.pick().set_device_activation(t, d, id)
    }
    fn device_activations(&self, t: &TenantId) -> Result<Vec<(String, ActivationId)>, StoreError> {
        self.pick().device_activations(t)
    }
}

impl ChallengeStore for Connections {
    fn insert_challenge(&self, r: &ChallengeRecord) -> Result<(), StoreError> {
        self.pick().insert_challenge(r)
    }
    fn challenge(
        &self,
        t: &TenantId,
        d: &ChallengeDigest,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        self.pick().challenge(t, d)
    }
    fn consume_challenge(
        &self,
        t: &TenantId,
        d: &ChallengeDigest,
        now: SystemTime,
    ) -> Result<ChallengeRecord, StoreError> {
        self.pick().consume_challenge(t, d, now)
    }
}

impl BindingStore for Connections {
    fn bind_identity(&self, b: &Binding) -> Result<(), StoreError> {
        self.pick().bind_identity(b)
    }
    fn identity(&self, f: &CertFingerprint) -> Result<Option<Binding>, StoreError> {
        self.pick().identity(f)
    }
    fn retire_identity(&self, f: &CertFingerprint, t: &TenantId) -> Result<(), StoreError> {
        self.pick().retire_identity(f, t)
    }
}

impl QueueStore for Connections {
    fn enqueue(&self, k: &QueueKey, c: &QueuedCommand) -> Result<(), StoreError> {
        self.pick().enqueue(k, c)
    }
    fn pending(&self, k: &QueueKey) -> Result<Vec<QueuedCommand>, StoreError> {
        self.pick().pending(k)
    }
    fn defer_command(&self, k: &QueueKey, u: &CommandUuid) -> Result<u32, StoreError> {
        self.pick().defer_command(k, u)
    }
    fn finish_command(&self, k: &QueueKey, r: &CommandResult) -> Result<(), StoreError> {
        self.pick().finish_command(k, r)
    }
    fn clear_queue(&self, k: &QueueKey) -> Result<Vec<CommandUuid>, StoreError> {
        self.pick().clear_queue(k)
    }
    fn mark_delivered(
        &self,
        k: &QueueKey,
        u: &CommandUuid,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.pick().mark_delivered(k, u, at)
    }
    fn claim_delivery(
        &self,
        k: &QueueKey,
        u: &CommandUuid,
        at: SystemTime,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        self.pick().claim_delivery(k, u, at, lease)
    }
    fn cancel_command(&self, k: &QueueKey, u: &CommandUuid) -> Result<Cancellation, StoreError> {
        self.pick().cancel_command(k, u)
    }
    fn connection(&self, k: &QueueKey) -> Result<Connection, StoreError> {
        self.pick().connection(k)
    }
    fn set_connection(&self, k: &QueueKey, c: &Connection) -> Result<(), StoreError> {
        self.pick().set_connection(k, c)
    }
    fn results(&self, k: &QueueKey) -> Result<Vec<CommandResult>, StoreError> {
        self.pick().results(k)
    }
    fn prune_results(&self, k: &QueueKey, keep: usize) -> Result<(), StoreError> {
        self.pick().prune_results(k, keep)
    }
}

impl PushStore for Connections {
    fn push_state(&self, k: &QueueKey) -> Result<Option<PushState>, StoreError> {
        self.pick().push_state(k)
    }
    fn record_push(
        &self,
        k: &QueueKey,
        at: SystemTime,
        due: Option<SystemTime>,
    ) -> Result<PushState, StoreError> {
        self.pick().record_push(k, at, due)
    }
    fn record_push_response(
        &self,
        k: &QueueKey,
        status: u16,
        reason: Option<&str>,
        invalid: bool,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.pick()
            .record_push_response(k, status, reason, invalid, at)
    }
    fn record_answer(&self, k: &QueueKey, due: Option<SystemTime>) -> Result<(), StoreError> {
        self.pick().record_answer(k, due)
    }
    fn record_token_update(&self, k: &QueueKey) -> Result<(), StoreError> {
        self.pick().record_token_update(k)
    }
    fn due_pushes(&self, t: &TenantId, now: SystemTime) -> Result<Vec<QueueKey>, StoreError> {
        self.pick().due_pushes(t, now)
    }
}

impl CertificateStore for Connections {
    fn record_certificate(&self, c: &IssuedCertificate) -> Result<(), StoreError> {
        self.pick().record_certificate(c)
    }
    fn certificate_by_fingerprint(
        &self,
        f: &CertFingerprint,
    ) -> Result<Option<IssuedCertificate>, StoreError> {
        self.pick().certificate_by_fingerprint(f)
    }
    fn certificate_by_serial(&self, s: &[u8]) -> Result<Option<IssuedCertificate>, StoreError> {
        self.pick().certificate_by_serial(s)
    }
}

impl StepStore for Connections {
    fn apply(&self, writes: &[Write]) -> Result<Vec<Applied>, StepFailed> {
        self.pick().apply(writes)
    }
}

#[test]
fn sqlite_store_conforms_across_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = AtomicUsize::new(0);
    let report = conformance::run(|| {
        let path = dir
            .path()
            .join(format!("{}.db", n.fetch_add(1, Ordering::Relaxed)));
        Connections {
            stores: (0..4)
                .map(|_| SqliteStore::open(&path).expect("open"))
                .collect(),
            next: AtomicUsize::new(0),
        }
    });
    assert!(report.is_ok(), "{:#?}", report.failed);
    assert_eq!(report.passed.len(), 33);
}

#[test]
fn records_survive_reopening_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let tenant = TenantId::new("acme").expect("tenant");
    let secret = Secret::new("one-time");
    let now = SystemTime::now();
    let record = challenge_record(&tenant, &secret, now);
    let key = QueueKey {
        tenant: tenant.clone(),
        channel: Channel::device("UDID-1"),
    };
    let command = QueuedCommand {
        uuid: CommandUuid::new("C-1").unwrap(),
        request_type: "DeviceInformation".into(),
        body: b"<plist/>"[..].into(),
        activation: None,
        not_now_count: 0,
        queued_at: now,
        delivered_at: None,
    };
    {
        let store = SqliteStore::open(&path).expect("open");
        store.insert_challenge(&record).expect("insert");
        store.enqueue(&key, &command).expect("enqueue");
        assert_eq!(store.defer_command(&key, &command.uuid), Ok(1));
    }
    let store = SqliteStore::open(&path).expect("reopen");
    let consumed = store
        .consume_challenge(&tenant, &secret.digest(), now)
        .expect("consume after reopen");
    assert_eq!(consumed.activation, record.activation);
    assert_eq!(
        store.consume_challenge(&tenant, &secret.digest(), now),
        Err(StoreError::ChallengeConsumed)
    );
    let pending = store.pending(&key).expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].uuid, command.uuid);
    assert_eq!(pending[0].not_now_count, 1);
    assert_eq!(pending[0].body, command.body);
    drop(store);
    let store = SqliteStore::open(&path).expect("reopen again");
    assert_eq!(
        store.consume_challenge(&tenant, &secret.digest(), now),
        Err(StoreError::ChallengeConsumed),
        "the consumed flag was persisted"
    );
}

/// A database written before the push-bookkeeping migration (no delivery
/// column, no push table, `user_version` 0) opens, keeps its queue and
/// gains the new records.
#[test]
fn pre_migration_database_is_upgraded_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    let key = QueueKey {
        tenant: TenantId::new("acme").expect("tenant"),
        channel: Channel::device("UDID-1"),
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let command = QueuedCommand {
        uuid: CommandUuid::new("C-OLD").unwrap(),
        request_type: "ProfileList".into(),
        body: b"<plist/>"[..].into(),
        activation: None,
        not_now_count: 0,
        queued_at: now,
        delivered_at: None,
    };
    {
        let store = SqliteStore::open(&path).expect("open");
        store.enqueue(&key, &command).expect("enqueue");
        // Turn the file back into the previous schema.
        store
            .execute_batch(
                "ALTER TABLE commands DROP COLUMN delivered;
                 ALTER TABLE commands DROP COLUMN claimed;
                 DROP TABLE push_state;
                 INSERT INTO commands (qkey, uuid, state, not_now, value)
                     VALUES (x'00', 'C-FINISHED-BEFORE', 1, 0, x'00');
                 PRAGMA user_version = 0;",
            )
            .expect("downgrade");
        assert!(
            store.push_state(&key).is_err(),
            "the downgrade did not remove the push table"
        );
    }
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(store.pending(&key).expect("pending"), vec![command.clone()]);
    assert_eq!(
        store.queue_rows().expect("rows").commands,
        1,
        "the finished command's row was not dropped by the migration"
    );
    store
        .mark_delivered(&key, &command.uuid, now)
        .expect("mark delivered");
    assert_eq!(
        store.cancel_command(&key, &command.uuid).expect("cancel"),
        Cancellation::AlreadyDelivered
    );
    store.record_push(&key, now, None).expect("record push");
    assert_eq!(
        store
            .push_state(&key)
            .expect("push state")
            .map(|s| s.attempts),
        Some(1)
    );
    drop(store);
    // Opening an up-to-date file again migrates nothing and keeps it all.
    let store = SqliteStore::open(&path).expect("reopen again");
    assert_eq!(
        store.pending(&key).expect("pending")[0].delivered_at,
        Some(now)
    );
}

#[test]
fn sqlite_store_keeps_declarations_per_channel() {
    let report = conformance::run_declarations(|| SqliteStore::open_in_memory().expect("open"));
    assert!(report.is_ok(), "{:#?}", report.failed);
    assert_eq!(report.passed.len(), 2);
    // And they survive reopening the file.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ddm.db");
    let key = QueueKey {
        tenant: TenantId::new("t").expect("tenant"),
        channel: Channel {
            device_id: "d".into(),
            user_id: None,
        },
    };
    SqliteStore::open(&path)
        .expect("open")
        .put_ddm_document(&key, DdmSlot::Statuses, "[]")
        .expect("put");
    let again = SqliteStore::open(&path).expect("reopen");
    assert_eq!(
        again
            .ddm_document(&key, DdmSlot::Statuses)
            .expect("get")
            .as_deref(),
        Some("[]")
    );
}

fn challenge_record(tenant: &TenantId, secret: &Secret, now: SystemTime) -> ChallengeRecord {
    ChallengeRecord {
        tenant: tenant.clone(),
        activation: ActivationId::new("act-1").expect("id"),
        grant: ChallengeGrant {
            kind: ChallengeKind::Scep,
            digest: secret.digest(),
            expires: now + Duration::from_secs(60),
        },
        consumed: false,
    }
}

/// A write refused because another connection holds the write lock is a
/// transient backend failure whose source is SQLite's busy error; the same
/// write succeeds once the lock is released.
#[test]
fn busy_database_is_a_transient_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("busy.db");
    let holder = SqliteStore::open(&path).expect("open");
    let writer = SqliteStore::open(&path).expect("open again");
    writer
        .execute_batch("PRAGMA busy_timeout = 0")
        .expect("no busy wait");
    let tenant = TenantId::new("acme").expect("tenant");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let record = challenge_record(&tenant, &Secret::new("s"), now);
    holder
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let err = writer.insert_challenge(&record).unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let source = std::error::Error::source(&err).expect("a source");
    let sqlite = source
        .downcast_ref::<rusqlite::Error>()
        .expect("the SQLite error itself");
    assert_eq!(
        sqlite.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy)
    );
    holder.execute_batch("COMMIT").expect("release");
    writer
        .insert_challenge(&record)
        .expect("retried write succeeds");
}

/// A stored record that no longer decodes is a permanent failure, with the
/// decoder's error as its source.
#[test]
fn corrupt_row_is_a_permanent_failure() {
    let store = SqliteStore::open_in_memory().expect("open");
    let tenant = TenantId::new("acme").expect("tenant");
    let secret = Secret::new("s");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    store
        .insert_challenge(&challenge_record(&tenant, &secret, now))
        .expect("insert");
    store
        .execute_batch("UPDATE challenges SET record = x'62706c697374'")
        .expect("corrupt the row");
    let err = store.challenge(&tenant, &secret.digest()).unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert!(
        matches!(
            err,
            StoreError::Backend {
                kind: FailureKind::Permanent,
                ..
            }
        ),
        "{err:?}"
    );
    let source = std::error::Error::source(&err).expect("a source");
    assert!(source.is::<plist::Error>(), "{source:?}");
}

/// A record column that holds text or a number instead of bytes (a
/// database edited by hand, or by another program) is a permanent failure on
/// every read of it: a queue's head, the whole queue, one queued command,
/// and an activation.
#[test]
fn record_of_another_type_is_a_permanent_failure() {
    let store = SqliteStore::open_in_memory().expect("open");
    let tenant = TenantId::new("acme").expect("tenant");
    let key = QueueKey {
        tenant: tenant.clone(),
        channel: Channel::device("UDID-1"),
    };
    let uuid = CommandUuid::new("C-1").unwrap();
    store
        .enqueue(
            &key,
            &QueuedCommand {
                uuid: uuid.clone(),
                request_type: "DeviceInformation".into(),
                body: b"<plist/>"[..].into(),
                activation: None,
                not_now_count: 0,
                queued_at: SystemTime::UNIX_EPOCH,
                delivered_at: None,
            },
        )
        .expect("enqueue");
    let permanent = |what: &str, err: StoreError| {
        assert!(!err.is_transient(), "{what}: {err:?}");
    };
    for value in ["'<plist/>'", "42", "4.5"] {
        store
            .execute_batch(&format!("UPDATE commands SET value = {value}"))
            .expect("retype the row");
        permanent(value, store.pending(&key).unwrap_err());
        permanent(value, store.pending_head(&key, 1).unwrap_err());
        permanent(value, store.queued_command(&key, &uuid).unwrap_err());
        assert_eq!(store.pending_count(&key), Ok(1), "{value}: counted");
    }
    store
        .execute_batch(
            "INSERT INTO activations (tenant, id, version, value, created)
                 VALUES ('acme', 'act-0001', 1, 'text', 0);",
        )
        .expect("a text activation");
    let id = ActivationId::new("act-0001").expect("id");
    permanent("activation", store.activation(&tenant, &id).unwrap_err());
}

/// Rows written before store records were versioned (the vectors are the
/// crate's own encoding at commit 0d16f1f) are read through the store as
/// they were written; a row of an unknown layout version is refused with a
/// permanent, typed error.
#[test]
fn rows_written_before_versioning_are_read() {
    let read = |name: &str| {
        std::fs::read(format!(
            "{}/tests/vectors/store/{name}.bplist",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("vector")
    };
    let hex = mdm_enroll::wire::hex::lower;
    let store = SqliteStore::open_in_memory().expect("open");
    let tenant = TenantId::new("acme").expect("tenant");
    let id = ActivationId::new("act-0001").expect("id");
    store
        .execute_batch(&format!(
            "INSERT INTO activations (tenant, id, version, value, created)
                 VALUES ('acme', 'act-0001', 7, x'{}', 0);
             INSERT INTO challenges (tenant, digest, consumed, record)
                 VALUES ('acme', x'{}', 1, x'{}');",
            hex(&read("activation")),
            hex(&[0x5c; 32]),
            hex(&read("challenge_record")),
        ))
        .expect("old rows");
    let activation = store
        .activation(&tenant, &id)
        .expect("decodes")
        .expect("found");
    assert_eq!(activation.version, 7);
    assert_eq!(activation.value.phase, Phase::Configuring);
    assert_eq!(activation.value.language.as_deref(), Some("fr-CA"));
    assert_eq!(
        activation.value.renewal.as_ref().map(|r| r.attempt),
        Some(2)
    );
    let challenge = store
        .challenge(&tenant, &ChallengeDigest([0x5c; 32]))
        .expect("decodes")
        .expect("found");
    assert_eq!(challenge.activation, id);
    assert_eq!(challenge.grant.kind, ChallengeKind::ProfileService);
    // The row as a newer build would write it: `v = 2`.
    let mut newer: plist::Dictionary = plist::from_bytes(&read("challenge_record")).expect("plist");
    newer.insert("v".into(), plist::Value::from(2u64));
    let mut bytes = Vec::new();
    plist::to_writer_binary(&mut bytes, &newer).expect("encode");
    store
        .execute_batch(&format!(
            "UPDATE challenges SET record = x'{}'",
            hex(&bytes)
        ))
        .expect("newer row");
    let err = store
        .challenge(&tenant, &ChallengeDigest([0x5c; 32]))
        .unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    let why = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<RecordError>())
        .expect("a record error");
    assert_eq!(
        why,
        &RecordError::UnknownVersion {
            record: "challenge",
            version: 2
        }
    );
}

/// Whether the SQL `condition` holds in `store`'s database (a `CHECK`
/// constraint on a scratch table refuses the row when it is false).
fn holds(store: &SqliteStore, condition: &str) -> bool {
    store
        .execute_batch(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS probe (ok CHECK (ok));
             DELETE FROM probe;
             INSERT INTO probe SELECT ({condition});"
        ))
        .is_ok()
}

fn queued(uuid: &str, body: Vec<u8>, now: SystemTime) -> QueuedCommand {
    QueuedCommand {
        uuid: CommandUuid::new(uuid).unwrap(),
        request_type: "InstallProfile".into(),
        body: body.into(),
        activation: None,
        not_now_count: 0,
        queued_at: now,
        delivered_at: None,
    }
}

/// A device's queue, a time, and a 1 MiB `InstallProfile` queued then.
fn one_mib_command() -> (QueueKey, SystemTime, QueuedCommand) {
    let key = QueueKey {
        tenant: TenantId::new("acme").expect("tenant"),
        channel: Channel::device("UDID-1"),
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let body: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    (key, now, queued("C-BIG", body, now))
}

/// A queued command's body (over 2 KiB) has a row of its own: claiming, marking and
/// deferring the command write a few pages to the WAL, not the body again
/// (SQLite rewrites a whole row when one column changes, so with the body in
/// the command's row a 1 MiB command cost 1 MiB of writes per mark). The
/// body comes back whole, and leaves with its command (finished, cancelled
/// or cleared).
#[test]
fn delivery_marks_do_not_rewrite_a_queued_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let wal = dir.path().join("store.db-wal");
    let store = SqliteStore::open(&path).expect("open");
    let (key, now, big) = one_mib_command();
    store.enqueue(&key, &big).expect("enqueue");
    let written = |store: &SqliteStore, what: &str, f: &dyn Fn(&SqliteStore)| {
        store
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("checkpoint");
        assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
        f(store);
        let len = std::fs::metadata(&wal).expect("wal").len();
        assert!(len < 64 * 1024, "{what} wrote {len} bytes to the WAL");
    };
    written(&store, "a claim", &|s| {
        let claim = s.claim_delivery(&key, &big.uuid, now, Duration::from_secs(60));
        assert_eq!(claim, Ok(Claim::Claimed));
    });
    written(&store, "a delivery mark", &|s| {
        s.mark_delivered(&key, &big.uuid, now).expect("mark");
    });
    written(&store, "a NotNow", &|s| {
        assert_eq!(s.defer_command(&key, &big.uuid), Ok(1));
    });
    let head = store.pending_head(&key, 1).expect("head");
    assert_eq!(head.len(), 1);
    assert_eq!(head[0].body, big.body, "the body comes back whole");
    assert_eq!(head[0].not_now_count, 1);
    assert_eq!(head[0].delivered_at, Some(now));
    assert_eq!(
        store.queued_command(&key, &big.uuid).expect("lookup"),
        Some(head[0].clone())
    );
    assert!(holds(&store, "(SELECT COUNT(*) FROM command_bodies) = 1"));

    // Leaving the queue, every way, takes the body along.
    store
        .finish_command(
            &key,
            &CommandResult {
                uuid: big.uuid.clone(),
                request_type: big.request_type.clone(),
                outcome: CommandOutcome::Acknowledged,
                body: Vec::new(),
                at: now,
            },
        )
        .expect("finish");
    assert!(holds(&store, "NOT EXISTS (SELECT 1 FROM command_bodies)"));
    let cancelled = queued("C-CANCEL", vec![b'c'; 3000], now);
    store.enqueue(&key, &cancelled).expect("enqueue");
    assert_eq!(
        store.cancel_command(&key, &cancelled.uuid),
        Ok(Cancellation::Cancelled(cancelled.clone())),
        "the cancelled command is handed back with its body"
    );
    assert!(holds(&store, "NOT EXISTS (SELECT 1 FROM command_bodies)"));
    assert_eq!(
        store.enqueue(&key, &cancelled),
        Err(StoreError::AlreadyExists),
        "a cancelled command's uuid stays taken"
    );
    // Bodies of 2 KiB and less stay in their records; larger ones do not.
    for (n, len) in [2048, 2049, 100_000].into_iter().enumerate() {
        let c = queued(&format!("C-CLEAR-{n}"), vec![b'x'; len], now);
        store.enqueue(&key, &c).expect("enqueue");
    }
    assert!(holds(&store, "(SELECT COUNT(*) FROM command_bodies) = 2"));
    assert_eq!(store.clear_queue(&key).expect("clear").len(), 3);
    assert!(holds(&store, "NOT EXISTS (SELECT 1 FROM command_bodies)"));
    assert!(holds(&store, "(SELECT COUNT(*) FROM commands) = 4"));
    assert!(
        !holds(&store, "(SELECT COUNT(*) FROM commands) = 5"),
        "probe"
    );
}

/// Commands queued before schema 5 (their bodies inside their records, as
/// the version 2 vector holds them) are still delivered and finished after
/// the upgrade; a record and its body that disagree on where the body is
/// are a permanent, typed error.
#[test]
fn commands_queued_before_bodies_had_their_own_rows_are_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    let v2 = std::fs::read(format!(
        "{}/tests/vectors/store/queued_command_v2.bplist",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("vector");
    let hex = mdm_enroll::wire::hex::lower;
    let key = QueueKey {
        tenant: TenantId::new("acme").expect("tenant"),
        channel: Channel::device("UDID-1"),
    };
    let qkey = |store: &SqliteStore| {
        // The queue key column as this build writes it: read back from a
        // command queued through the store.
        let probe = queued("C-PROBE", b"x".to_vec(), SystemTime::UNIX_EPOCH);
        store.enqueue(&key, &probe).expect("probe");
        store
            .execute_batch(
                "CREATE TABLE probe_key AS SELECT qkey FROM commands WHERE uuid = 'C-PROBE';
                 DELETE FROM commands WHERE uuid = 'C-PROBE';",
            )
            .expect("key");
    };
    {
        let store = SqliteStore::open(&path).expect("open");
        qkey(&store);
        store
            .execute_batch(&format!(
                "DROP TABLE command_bodies;
                 INSERT INTO commands (qkey, uuid, state, not_now, value)
                     SELECT qkey, 'CMD-1', 0, 2, x'{}' FROM probe_key;
                 PRAGMA user_version = 4;",
                hex(&v2)
            ))
            .expect("a schema 4 database");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    assert!(holds(
        &store,
        "(SELECT user_version FROM pragma_user_version) = 5"
    ));
    let pending = store.pending(&key).expect("pending");
    assert_eq!(pending.len(), 1);
    let old = &pending[0];
    assert_eq!(old.uuid.as_str(), "CMD-1");
    assert_eq!(old.request_type, "InstallProfile");
    assert_eq!(&old.body[..], b"<plist/>");
    assert_eq!(old.not_now_count, 2);
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_100);
    assert_eq!(
        store.claim_delivery(&key, &old.uuid, at, Duration::from_secs(60)),
        Ok(Claim::Claimed)
    );
    // A large command queued now, behind it, has its body in a row of its
    // own; a small one keeps it in its record.
    let new = queued("CMD-2", vec![b'n'; 4096], at);
    store.enqueue(&key, &new).expect("enqueue");
    let small = queued("CMD-3", b"<plist>small</plist>".to_vec(), at);
    store.enqueue(&key, &small).expect("enqueue");
    assert!(holds(&store, "(SELECT COUNT(*) FROM command_bodies) = 1"));
    let head = store.pending_head(&key, 3).expect("head");
    assert_eq!(head.len(), 3);
    assert_eq!(head[0].uuid, old.uuid);
    assert_eq!(head[1..], [new.clone(), small]);

    // Where the body is, disagreeing with the record.
    let placement = |err: StoreError| {
        assert!(!err.is_transient(), "{err:?}");
        std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<RecordError>())
            .cloned()
            .unwrap_or_else(|| panic!("not a record error: {err:?}"))
    };
    store
        .execute_batch(
            "INSERT INTO command_bodies (seq, body)
                 SELECT seq, x'00' FROM commands WHERE uuid = 'CMD-1';",
        )
        .expect("a second body");
    assert_eq!(
        placement(store.queued_command(&key, &old.uuid).unwrap_err()),
        RecordError::BodyPlacement {
            record: "queued command",
            version: 2,
            beside: true
        }
    );
    store
        .execute_batch("DELETE FROM command_bodies;")
        .expect("bodies gone");
    assert_eq!(
        placement(store.queued_command(&key, &new.uuid).unwrap_err()),
        RecordError::BodyPlacement {
            record: "queued command",
            version: 3,
            beside: false
        }
    );
    assert!(store.pending_head(&key, 3).is_err());
}

/// A large body is copied out of the database at most once per store: the
/// store that queued it hands out the buffer it was given, another
/// connection to the file (another process) reads it once and shares that
/// copy with its later reads, and a store without the cache copies it each
/// time. Every read is the queued body.
#[test]
fn a_large_body_is_read_once_and_shared() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let writer = SqliteStore::open(&path).expect("open");
    let reader = SqliteStore::open(&path).expect("open");
    let uncached = SqliteStore::open(&path).expect("open").with_body_cache(0);
    let (key, now, big) = one_mib_command();
    writer.enqueue(&key, &big).expect("enqueue");
    let reads = |store: &SqliteStore| -> [Arc<[u8]>; 2] {
        let head = store.pending_head(&key, 1).expect("head");
        let found = store
            .queued_command(&key, &big.uuid)
            .expect("lookup")
            .expect("queued");
        [head[0].body.clone(), found.body]
    };
    for (name, store) in [
        ("writer", &writer),
        ("reader", &reader),
        ("uncached", &uncached),
    ] {
        let [first, second] = reads(store);
        assert!(
            first == big.body && second == big.body,
            "{name}: a read is not the queued body"
        );
        let shared = Arc::ptr_eq(&first, &second);
        match name {
            "writer" => assert!(Arc::ptr_eq(&first, &big.body), "writer copied its own body"),
            "reader" => assert!(shared, "reader copied the body out twice"),
            _ => assert!(!shared, "a store without the cache shared a body"),
        }
    }
    // A body kept in its record (2 KiB or less) is read with it, not kept.
    let small = queued("C-SMALL", vec![1; 2048], now);
    writer.enqueue(&key, &small).expect("enqueue");
    let a = writer.queued_command(&key, &small.uuid).expect("lookup");
    let b = writer.queued_command(&key, &small.uuid).expect("lookup");
    let (a, b) = (a.expect("queued").body, b.expect("queued").body);
    assert!(a == small.body && !Arc::ptr_eq(&a, &b));
}
