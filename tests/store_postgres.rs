//! The PostgreSQL store passes the store conformance kit against a real
//! server, each store over several connections (so the races are decided
//! by PostgreSQL's transactions, not an in-process lock); its migrations are
//! applied once when several processes start at once, and a newer schema is
//! refused. The engine completes activations over it, and concurrent
//! connects of one device never conflict, and only one is handed a command.
#![cfg(all(feature = "postgres", feature = "test-support"))]

mod postgres_support;

use std::sync::Barrier;
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::*;
use mdm_enroll::service::{EngineConfig, NewCommand};
use mdm_enroll::store::postgres::{PostgresStore, SCHEMA_VERSION};
use mdm_enroll::store::*;
use mdm_enroll::testing::{EvidenceDevice, engine_with_alice};
use postgres_support::Server;
use rand_core::UnwrapErr;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

#[test]
#[cfg_attr(
    not(mdm_have_postgres),
    ignore = "needs PostgreSQL: apt-get install postgresql, or set MDM_TEST_POSTGRES"
)]
fn postgres_store_conforms() {
    let server = Server::start();
    let report = conformance::run(|| PostgresStore::connect(&server.fresh(), 4).expect("connect"));
    assert!(report.is_ok(), "{:#?}", report.failed);
    assert_eq!(report.passed.len(), 33);
}

#[test]
#[cfg_attr(
    not(mdm_have_postgres),
    ignore = "needs PostgreSQL: apt-get install postgresql, or set MDM_TEST_POSTGRES"
)]
fn migrations_apply_once_when_replicas_start_together_and_a_newer_schema_is_refused() {
    let server = Server::start();
    let url = server.fresh();
    let barrier = Barrier::new(6);
    let stores: Vec<_> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    PostgresStore::connect(&url, 1)
                })
            })
            .collect();
        starts.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for store in &stores {
        let store = store.as_ref().expect("every replica starts");
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    }
    let store = stores.into_iter().next().unwrap().unwrap();
    let rows: i64 = {
        let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        c.query_one("SELECT COUNT(*) FROM mdm_schema", &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(rows, 1, "one schema version row");
    store
        .batch_execute("UPDATE mdm_schema SET version = version + 1")
        .unwrap();
    let refused = PostgresStore::connect(&url, 1).unwrap_err();
    assert!(
        matches!(&refused, StoreError::Backend { kind: FailureKind::Permanent, source }
            if source.to_string().contains("newer than this build")),
        "{refused:?}"
    );
}

#[test]
#[cfg_attr(
    not(mdm_have_postgres),
    ignore = "needs PostgreSQL: apt-get install postgresql, or set MDM_TEST_POSTGRES"
)]
fn activations_complete_and_concurrent_connects_never_conflict() {
    let server = Server::start();
    let tenant = TenantId::new("customer-a").unwrap();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let store = PostgresStore::connect(&server.fresh(), 4).unwrap();
    let (engine, login) = engine_with_alice(store, &tenant, EngineConfig::default()).unwrap();
    let mut dev = EvidenceDevice::random(&mut rng);
    dev.activate(&engine, &tenant, &login, t0(), &mut rng)
        .unwrap();
    let id = dev.activation.clone().unwrap();
    let settled = engine.store().activation(&tenant, &id).unwrap().unwrap();
    assert_eq!(settled.value.phase, Phase::Complete);
    let barrier = Barrier::new(2);
    for round in 0..50 {
        let now = t0() + Duration::from_secs(round + 1);
        let uuid = CommandUuid::new(format!("cmd-{round}")).unwrap();
        engine
            .enqueue(
                &tenant,
                &dev.channel(),
                NewCommand {
                    uuid: uuid.clone(),
                    request_type: "DeviceInformation".into(),
                    body: b"<plist/>".to_vec(),
                },
                now,
            )
            .unwrap();
        let answers: Vec<_> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        engine.connect(&tenant, dev.report(ReportStatus::Idle, None), now)
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        // Both succeed; exactly one is handed the command.
        let mut handed: Vec<_> = answers
            .into_iter()
            .map(|answer| {
                answer
                    .unwrap_or_else(|e| panic!("round {round}: a connect failed: {e}"))
                    .value
                    .map(|c| c.uuid)
            })
            .collect();
        handed.sort();
        assert_eq!(handed, [None, Some(uuid.clone())], "round {round}");
        engine
            .connect(
                &tenant,
                dev.report(ReportStatus::Acknowledged, Some(uuid.clone())),
                now,
            )
            .unwrap();
    }
    let after = engine.store().activation(&tenant, &id).unwrap().unwrap();
    assert_eq!(
        after.version, settled.version,
        "steady state rewrote the activation"
    );
}

#[test]
#[cfg_attr(
    not(mdm_have_postgres),
    ignore = "needs PostgreSQL: apt-get install postgresql, or set MDM_TEST_POSTGRES"
)]
fn postgres_store_keeps_declarations_per_channel() {
    let server = Server::start();
    let report = conformance::run_declarations(|| {
        PostgresStore::connect(&server.fresh(), 2).expect("connect")
    });
    assert!(report.is_ok(), "{:#?}", report.failed);
    assert_eq!(report.passed.len(), 2);
}

fn challenge_record(tenant: &TenantId, secret: &Secret) -> ChallengeRecord {
    ChallengeRecord {
        tenant: tenant.clone(),
        activation: ActivationId::new("act-1").expect("id"),
        grant: ChallengeGrant {
            kind: ChallengeKind::Scep,
            digest: secret.digest(),
            expires: t0() + Duration::from_secs(60),
        },
        consumed: false,
    }
}

/// The SQLSTATE of a store error's PostgreSQL source.
fn sqlstate(err: &StoreError) -> Option<String> {
    std::error::Error::source(err)?
        .downcast_ref::<::postgres::Error>()?
        .code()
        .map(|c| c.code().to_owned())
}

/// Serialization failures, deadlocks and a lock wait that timed out are
/// transient, with PostgreSQL's error as the source; a stored row that no
/// longer decodes is permanent, with the decoder's error as the source, and
/// so is a column of an unexpected type.
#[test]
#[cfg_attr(
    not(mdm_have_postgres),
    ignore = "needs PostgreSQL: apt-get install postgresql, or set MDM_TEST_POSTGRES"
)]
fn postgres_failures_say_transient_or_permanent_and_keep_their_source() {
    let server = Server::start();
    let url = server.fresh();
    let store = PostgresStore::connect(&url, 1).expect("connect");
    for code in ["40001", "40P01"] {
        let err = store
            .batch_execute(&format!(
                "DO $$ BEGIN RAISE EXCEPTION 'lost' USING ERRCODE = '{code}'; END $$"
            ))
            .unwrap_err();
        assert!(err.is_transient(), "{code}: {err:?}");
        assert_eq!(sqlstate(&err).as_deref(), Some(code));
    }
    let other = store
        .batch_execute("DO $$ BEGIN RAISE EXCEPTION 'bad' USING ERRCODE = '22023'; END $$")
        .unwrap_err();
    assert!(!other.is_transient(), "{other:?}");

    let tenant = TenantId::new("acme").expect("tenant");
    let secret = Secret::new("s");
    store
        .insert_challenge(&challenge_record(&tenant, &secret))
        .expect("insert");

    // Another connection holds the table; the store's read gives up waiting.
    let mut holder = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE challenges IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    store
        .batch_execute("SET lock_timeout = '50ms'")
        .expect("set lock timeout");
    let err = store.challenge(&tenant, &secret.digest()).unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(sqlstate(&err).as_deref(), Some("55P03"));
    tx.rollback().unwrap();
    assert!(
        store
            .challenge(&tenant, &secret.digest())
            .expect("retried read succeeds")
            .is_some()
    );

    holder
        .batch_execute("UPDATE challenges SET record = '\\x62706c697374'")
        .unwrap();
    let err = store.challenge(&tenant, &secret.digest()).unwrap_err();
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

    // A column of another type than the store reads is an error, not a panic.
    store
        .batch_execute("ALTER TABLE mdm_schema ALTER COLUMN version TYPE TEXT")
        .unwrap();
    let err = store.schema_version().unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    assert!(
        std::error::Error::source(&err).is_some_and(|s| s.is::<::postgres::Error>()),
        "{err:?}"
    );
}

fn queued(uuid: &str, body: Vec<u8>) -> QueuedCommand {
    QueuedCommand {
        uuid: CommandUuid::new(uuid).unwrap(),
        request_type: "InstallProfile".into(),
        body: body.into(),
        activation: None,
        not_now_count: 0,
        queued_at: t0(),
        delivered_at: None,
    }
}

/// A queued command's body over 2 KiB is kept beside its record (the
/// `body` column, record layout 3), smaller ones inside it; both come back
/// whole through every read, a cancelled or cleared command's body goes,
/// and a command queued before schema 4 (the version 2 vector, body
/// inside) is still read. A record and a body that disagree on where the
/// body is are a permanent, typed error.
#[test]
#[cfg_attr(
    not(mdm_have_postgres),
    ignore = "needs PostgreSQL: apt-get install postgresql, or set MDM_TEST_POSTGRES"
)]
fn large_command_bodies_are_kept_beside_their_records() {
    let server = Server::start();
    let url = server.fresh();
    let store = PostgresStore::connect(&url, 1).expect("connect");
    let mut sql = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    let count =
        |sql: &mut ::postgres::Client, q: &str| -> i64 { sql.query_one(q, &[]).unwrap().get(0) };
    let key = QueueKey {
        tenant: TenantId::new("acme").expect("tenant"),
        channel: Channel::device("UDID-1"),
    };
    let big = queued("C-BIG", (0..1u32 << 20).map(|i| (i % 251) as u8).collect());
    let small = queued("C-SMALL", vec![b's'; 2048]);
    store.enqueue(&key, &big).expect("enqueue");
    store.enqueue(&key, &small).expect("enqueue");
    assert_eq!(count(&mut sql, "SELECT COUNT(body) FROM commands"), 1);
    let record: i32 = sql
        .query_one(
            "SELECT length(value) FROM commands WHERE uuid = 'C-BIG'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        record < 1024,
        "the 1 MiB command's record is {record} bytes"
    );
    assert_eq!(
        store.pending(&key).expect("pending"),
        [big.clone(), small.clone()]
    );
    assert_eq!(
        store.claim_delivery(&key, &big.uuid, t0(), Duration::from_secs(60)),
        Ok(Claim::Claimed)
    );
    assert_eq!(store.defer_command(&key, &big.uuid), Ok(1));
    let head = store.pending_head(&key, 1).expect("head");
    assert_eq!(head[0].body, big.body);
    assert_eq!(head[0].not_now_count, 1);
    assert_eq!(
        store.queued_command(&key, &big.uuid).expect("lookup"),
        Some(head[0].clone())
    );
    let cancelled = queued("C-CANCEL", vec![b'c'; 3000]);
    store.enqueue(&key, &cancelled).expect("enqueue");
    assert_eq!(
        store.cancel_command(&key, &cancelled.uuid),
        Ok(Cancellation::Cancelled(cancelled.clone()))
    );
    assert_eq!(count(&mut sql, "SELECT COUNT(body) FROM commands"), 1);
    assert_eq!(store.clear_queue(&key).expect("clear").len(), 2);
    assert_eq!(count(&mut sql, "SELECT COUNT(body) FROM commands"), 0);

    // A row as a build before schema 4 wrote it.
    let v2 = std::fs::read(format!(
        "{}/tests/vectors/store/queued_command_v2.bplist",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("vector");
    let probe = queued("C-PROBE", vec![b'p'; 3000]);
    store.enqueue(&key, &probe).expect("enqueue");
    sql.execute(
        "INSERT INTO commands (qkey, uuid, state, not_now, value)
             SELECT qkey, 'CMD-1', 0, 2, $1 FROM commands WHERE uuid = 'C-PROBE'",
        &[&v2],
    )
    .unwrap();
    let old = store
        .queued_command(&key, &CommandUuid::new("CMD-1").unwrap())
        .expect("read")
        .expect("queued");
    assert_eq!(&old.body[..], b"<plist/>");
    assert_eq!(old.request_type, "InstallProfile");
    let placement = |err: StoreError| {
        assert!(!err.is_transient(), "{err:?}");
        std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<RecordError>())
            .cloned()
            .unwrap_or_else(|| panic!("not a record error: {err:?}"))
    };
    sql.execute(
        "UPDATE commands SET body = NULL WHERE uuid = 'C-PROBE'",
        &[],
    )
    .unwrap();
    assert_eq!(
        placement(store.queued_command(&key, &probe.uuid).unwrap_err()),
        RecordError::BodyPlacement {
            record: "queued command",
            version: 3,
            beside: false
        }
    );
    sql.execute("UPDATE commands SET body = 'x' WHERE uuid = 'CMD-1'", &[])
        .unwrap();
    assert_eq!(
        placement(store.queued_command(&key, &old.uuid).unwrap_err()),
        RecordError::BodyPlacement {
            record: "queued command",
            version: 2,
            beside: true
        }
    );
}

/// Two replicas over one database, each keeping the large bodies it queued
/// or read: a body is read out of the database once per replica and shared
/// by its later reads, and a replica that kept a command's body never hands
/// it out after another replica finished the command and queued its uuid
/// again with another body, or cancelled it.
#[test]
#[cfg_attr(
    not(mdm_have_postgres),
    ignore = "needs PostgreSQL: apt-get install postgresql, or set MDM_TEST_POSTGRES"
)]
fn replicas_share_large_bodies_and_never_hand_out_stale_ones() {
    use std::sync::Arc;
    let server = Server::start();
    let url = server.fresh();
    let a = PostgresStore::connect(&url, 2).expect("connect");
    let b = PostgresStore::connect(&url, 2).expect("connect");
    let key = QueueKey {
        tenant: TenantId::new("acme").expect("tenant"),
        channel: Channel::device("UDID-1"),
    };
    let first = queued("C-BIG", vec![1; 300_000]);
    let other = queued("C-OTHER", vec![2; 5_000]);
    a.enqueue(&key, &first).expect("enqueue");
    a.enqueue(&key, &other).expect("enqueue");
    let head = a.pending_head(&key, 1).expect("head");
    assert!(
        Arc::ptr_eq(&head[0].body, &first.body),
        "the replica that queued it sent a query for its body"
    );
    let read = b.pending_head(&key, 2).expect("head");
    let again = b.queued_command(&key, &first.uuid).expect("lookup");
    let again = again.expect("queued");
    assert!(
        read[0].body == first.body && read[1].body == other.body,
        "the other replica read other bodies than those queued"
    );
    assert!(
        Arc::ptr_eq(&read[0].body, &again.body),
        "the other replica read the body out twice"
    );

    // Replica a finishes it, drops its result and queues the uuid again
    // with another body; and cancels the other command.
    let done = CommandResult {
        uuid: first.uuid.clone(),
        request_type: "InstallProfile".into(),
        outcome: CommandOutcome::Acknowledged,
        body: Vec::new(),
        at: t0(),
    };
    a.finish_command(&key, &done).expect("finish");
    a.prune_results(&key, 0).expect("prune");
    assert!(matches!(
        a.cancel_command(&key, &other.uuid),
        Ok(Cancellation::Cancelled(_))
    ));
    let second = queued("C-BIG", vec![3; 300_000]);
    a.enqueue(&key, &second).expect("enqueue again");
    let found = b.queued_command(&key, &second.uuid).expect("lookup");
    assert!(
        found.map(|c| c.body) == Some(second.body.clone()),
        "a uuid queued again came back with its earlier body"
    );
    let all = b.pending(&key).expect("pending");
    assert_eq!(all.len(), 1, "the cancelled command is still listed");
    assert!(all[0].body == second.body, "pending has the earlier body");
    // Without the cache every read is a copy of the database's.
    let off = PostgresStore::connect(&url, 1)
        .expect("connect")
        .with_body_cache(0);
    let (x, y) = (
        off.pending(&key).expect("pending"),
        off.pending(&key).expect("pending"),
    );
    assert!(
        x == y && x[0].body == second.body,
        "reads without the cache differ"
    );
    assert!(!Arc::ptr_eq(&x[0].body, &y[0].body));
}
