//! The command API after activation: one command's round trip (enqueue with
//! push bookkeeping → the device's `Idle` connect delivers it, marked
//! delivered → `Acknowledged`, result stored, push state answered) on the
//! in-memory store and on SQLite (in memory and on a file in WAL mode), and
//! the added cost of the push bookkeeping on the 13 steps; and one
//! connection on a channel with 10 or 1 000 commands queued; and the
//! delivery of an `InstallProfile` of 1 KiB, 256 KiB and 1 MiB (in memory
//! and on SQLite in memory; 1 MiB also on a SQLite file), and queueing one
//! of 1 MiB on each of the three; the 1 MiB delivery also on SQLite without
//! the store's body cache, and, with `--features postgres` and
//! `MDM_BENCH_POSTGRES=postgres://USER@HOST:PORT/DB`, on PostgreSQL with
//! and without it. Run with
//! `cargo bench --features test-support,sqlite --bench commands`.

use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mdm_enroll::activation::{
    CommandUuid, QueueKey, QueuePolicy, QueuedCommand, ReportStatus, Retention, TenantId,
};
use mdm_enroll::mdm::Command;
use mdm_enroll::service::{Engine, EngineConfig};
use mdm_enroll::store::sqlite::SqliteStore;
use mdm_enroll::store::{MemoryStore, Store};
use mdm_enroll::testing::{EvidenceDevice, RecordingPush, StaticDirectory, engine_with_alice};
use rand_core::UnwrapErr;

type Eng<S> = Engine<S, StaticDirectory, RecordingPush>;

fn activated<S: Store>(
    store: S,
    now: SystemTime,
    config: EngineConfig,
) -> (Eng<S>, TenantId, EvidenceDevice) {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let tenant = TenantId::new("bench").unwrap();
    let (engine, login) = engine_with_alice(store, &tenant, config).unwrap();
    let mut dev = EvidenceDevice::random(&mut rng);
    dev.activate(&engine, &tenant, &login, now, &mut rng)
        .unwrap();
    (engine, tenant, dev)
}

fn round_trip<S: Store>(c: &mut Criterion, name: &str, store: S, config: EngineConfig) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let (engine, tenant, dev) = activated(store, now, config);
    let channel = dev.channel();
    let mut n = 0u64;
    c.bench_function(name, |b| {
        b.iter(|| {
            n += 1;
            let cmd = Command::profile_list(format!("BENCH-{n}"));
            let uuid = engine
                .enqueue_command(&tenant, &channel, &cmd, now)
                .unwrap()
                .value;
            deliver_and_acknowledge(&engine, &tenant, &dev, uuid, now)
        })
    });
}

/// The device's `Idle` connect, which must be handed the command `uuid`,
/// then its acknowledgement, which must end the connection: returns the
/// delivered command.
fn deliver_and_acknowledge<S: Store>(
    engine: &Eng<S>,
    tenant: &TenantId,
    dev: &EvidenceDevice,
    uuid: CommandUuid,
    now: SystemTime,
) -> QueuedCommand {
    let sent = engine
        .connect(tenant, dev.report(ReportStatus::Idle, None), now)
        .unwrap()
        .value
        .unwrap();
    assert_eq!(sent.uuid, uuid);
    let next = engine
        .connect(
            tenant,
            dev.report(ReportStatus::Acknowledged, Some(uuid)),
            now,
        )
        .unwrap()
        .value;
    assert!(next.is_none());
    sent
}

/// Delivering one `InstallProfile` whose profile is `size` bytes, and its
/// acknowledgement, on `store` (`prefix` names it in the bench id; empty
/// for the in-memory store): the command is queued outside the timing, so
/// what is timed is the two connects, which handle the body only to hand it
/// to the device. Compare the sizes: the difference is what the body itself
/// costs on the way out (reading it from the store, copies), since the
/// report parse, signature check and queue work are the same for each.
fn deliver_large<S: Store>(c: &mut Criterion, prefix: &str, store: S, size: usize) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let (engine, tenant, dev) = activated(store, now, EngineConfig::default());
    let channel = dev.channel();
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut n = 0u64;
    let mut group = c.benchmark_group("deliver_install_profile");
    group.bench_function(format!("{prefix}{}_KiB", size / 1024), |b| {
        b.iter_batched(
            || {
                n += 1;
                let cmd = Command::install_profile(format!("BIG-{n}"), payload.clone());
                engine
                    .enqueue_command(&tenant, &channel, &cmd, now)
                    .unwrap()
                    .value
            },
            |uuid| {
                let sent = deliver_and_acknowledge(&engine, &tenant, &dev, uuid, now);
                assert!(sent.body.len() > size);
                sent
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Queueing one `InstallProfile` whose profile is `size` bytes on `store`
/// (`prefix` as in [`deliver_large`]): the command's XML (the profile as
/// base64) and the store's record of it. Every few hundred iterations the
/// queue is cleared outside the timing, so its length stays bounded.
fn enqueue_large<S: Store>(c: &mut Criterion, prefix: &str, store: S, size: usize) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let (engine, tenant, dev) = activated(store, now, EngineConfig::default());
    let channel = dev.channel();
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut n = 0u64;
    let mut group = c.benchmark_group("enqueue_install_profile");
    group.sample_size(20);
    group.bench_function(format!("{prefix}{}_KiB", size / 1024), |b| {
        b.iter_batched(
            || {
                n += 1;
                if n.is_multiple_of(256) {
                    let key = QueueKey {
                        tenant: tenant.clone(),
                        channel: channel.clone(),
                    };
                    engine.store().clear_queue(&key).unwrap();
                }
                Command::install_profile(format!("BIG-{n}"), payload.clone())
            },
            |cmd| {
                engine
                    .enqueue_command(&tenant, &channel, &cmd, now)
                    .unwrap()
                    .value
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// One acknowledgement answered with the next command, on a channel with
/// `backlog` commands queued behind it (one queued per iteration keeps the
/// backlog level): what a device working through a long queue pays per
/// connection. The engine reads the whole pending list on every
/// connection, so this grows with the backlog (see benches/README.md,
/// session 14).
fn behind_backlog<S: Store>(c: &mut Criterion, name: &str, store: S, backlog: usize) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let (engine, tenant, dev) = activated(store, now, EngineConfig::default());
    let channel = dev.channel();
    for n in 0..backlog {
        let cmd = Command::profile_list(format!("QUEUED-{n}"));
        engine
            .enqueue_command(&tenant, &channel, &cmd, now)
            .unwrap();
    }
    let mut sent = engine
        .connect(&tenant, dev.report(ReportStatus::Idle, None), now)
        .unwrap()
        .value
        .unwrap()
        .uuid;
    let mut n = 0u64;
    let mut group = c.benchmark_group("connection_behind_backlog");
    group.sample_size(20);
    group.bench_function(name, |b| {
        b.iter(|| {
            n += 1;
            let cmd = Command::profile_list(format!("BENCH-{n}"));
            engine
                .enqueue_command(&tenant, &channel, &cmd, now)
                .unwrap();
            sent = engine
                .connect(
                    &tenant,
                    dev.report(ReportStatus::Acknowledged, Some(sent.clone())),
                    now,
                )
                .unwrap()
                .value
                .expect("the backlog has a next command")
                .uuid;
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let keep_all = EngineConfig::default()
        .with_queue(QueuePolicy::default().with_retention(Retention::KeepAll));
    round_trip(
        c,
        "command_round_trip_memory_store",
        MemoryStore::new(),
        EngineConfig::default(),
    );
    round_trip(
        c,
        "command_round_trip_sqlite_in_memory",
        SqliteStore::open_in_memory().unwrap(),
        EngineConfig::default(),
    );
    // Without pruning results (KeepLast(1000) deletes the oldest per finish).
    round_trip(
        c,
        "command_round_trip_sqlite_in_memory_keep_all",
        SqliteStore::open_in_memory().unwrap(),
        keep_all,
    );
    let dir = tempfile::tempdir().unwrap();
    for size in [1 << 10, 256 << 10, 1 << 20] {
        deliver_large(c, "", MemoryStore::new(), size);
        deliver_large(c, "sqlite_", SqliteStore::open_in_memory().unwrap(), size);
    }
    let file = |name: &str| SqliteStore::open(dir.path().join(name)).unwrap();
    deliver_large(c, "sqlite_file_", file("deliver.db"), 1 << 20);
    // The same without the store's body cache: each read copies the body
    // out of the database (the baseline of the two above).
    deliver_large(
        c,
        "sqlite_uncached_",
        SqliteStore::open_in_memory().unwrap().with_body_cache(0),
        1 << 20,
    );
    deliver_large(
        c,
        "sqlite_file_uncached_",
        file("deliver-uncached.db").with_body_cache(0),
        1 << 20,
    );
    #[cfg(feature = "postgres")]
    deliver_large_postgres(c);
    enqueue_large(c, "", MemoryStore::new(), 1 << 20);
    enqueue_large(
        c,
        "sqlite_",
        SqliteStore::open_in_memory().unwrap(),
        1 << 20,
    );
    enqueue_large(c, "sqlite_file_", file("enqueue.db"), 1 << 20);
    for backlog in [10, 1_000] {
        behind_backlog(
            c,
            &format!("memory_store_{backlog}"),
            MemoryStore::new(),
            backlog,
        );
        behind_backlog(
            c,
            &format!("sqlite_in_memory_{backlog}"),
            SqliteStore::open_in_memory().unwrap(),
            backlog,
        );
    }
    round_trip(
        c,
        "command_round_trip_sqlite_file_wal",
        file("bench.db"),
        EngineConfig::default(),
    );
}

/// With `--features postgres` and `MDM_BENCH_POSTGRES` set to a server's
/// URL: the 1 MiB delivery on a `PostgresStore` (2 connections, each store
/// in a fresh schema of its own), with and without its body cache.
#[cfg(feature = "postgres")]
fn deliver_large_postgres(c: &mut Criterion) {
    use mdm_enroll::store::postgres::PostgresStore;
    let Ok(url) = std::env::var("MDM_BENCH_POSTGRES") else {
        println!("postgres: MDM_BENCH_POSTGRES not set, not measured");
        return;
    };
    let fresh = |name: &str| {
        let schema = format!("bench_{name}_{}", std::process::id());
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        PostgresStore::connect(&url, 2).unwrap()
    };
    deliver_large(c, "postgres_", fresh("cached"), 1 << 20);
    deliver_large(
        c,
        "postgres_uncached_",
        fresh("uncached").with_body_cache(0),
        1 << 20,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
