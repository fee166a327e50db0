//! Queue hygiene as configuration ([`QueuePolicy`]): with a retention other
//! than `KeepAll` the command tables stay the size of the work in flight
//! (a finished command leaves only its kept result), commands queued past
//! their expiry are dropped with an `Expired` result and event instead of
//! being delivered, and a delivery holds a command for its lease only.
#![cfg(all(feature = "test-support", feature = "sqlite"))]

use std::time::{Duration, SystemTime};

use mdm_enroll::activation::*;
use mdm_enroll::service::{Engine, EngineConfig, EventKind, NewCommand, ServiceError};
use mdm_enroll::store::sqlite::SqliteStore;
use mdm_enroll::store::{MemoryStore, QueueRows, Store};
use mdm_enroll::testing::{EvidenceDevice, RecordingPush, StaticDirectory, engine_with_alice};
use rand_core::UnwrapErr;

const COMMANDS: usize = 1000;

type TestEngine<S> = Engine<S, StaticDirectory, RecordingPush>;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn activated<S: Store>(store: S, queue: QueuePolicy) -> (TestEngine<S>, TenantId, EvidenceDevice) {
    let tenant = TenantId::new("customer-a").unwrap();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let config = EngineConfig::default().with_queue(queue);
    let (engine, login) = engine_with_alice(store, &tenant, config).unwrap();
    let mut dev = EvidenceDevice::random(&mut rng);
    dev.activate(&engine, &tenant, &login, t0(), &mut rng)
        .unwrap();
    (engine, tenant, dev)
}

fn enqueue<S: Store>(
    engine: &TestEngine<S>,
    tenant: &TenantId,
    dev: &EvidenceDevice,
    uuid: &str,
    at: SystemTime,
) {
    engine
        .enqueue(
            tenant,
            &dev.channel(),
            NewCommand {
                uuid: CommandUuid::new(uuid).unwrap(),
                request_type: "ProfileList".into(),
                body: uuid.as_bytes().to_vec(),
            },
            at,
        )
        .unwrap();
}

/// Queue `COMMANDS` commands, `BATCH` at a time, and let the device
/// acknowledge each batch on one connection; returns how many it was handed.
fn acknowledge_all<S: Store>(
    engine: &TestEngine<S>,
    tenant: &TenantId,
    dev: &EvidenceDevice,
) -> usize {
    const BATCH: usize = 50;
    let now = t0() + Duration::from_secs(10);
    let mut handed = 0;
    for batch in 0..COMMANDS / BATCH {
        for n in 0..BATCH {
            enqueue(engine, tenant, dev, &format!("cmd-{batch}-{n}"), now);
        }
        let mut reply = engine
            .connect(tenant, dev.report(ReportStatus::Idle, None), now)
            .unwrap();
        while let Some(cmd) = reply.value {
            handed += 1;
            reply = engine
                .connect(
                    tenant,
                    dev.report(ReportStatus::Acknowledged, Some(cmd.uuid)),
                    now,
                )
                .unwrap();
        }
    }
    handed
}

fn rows_after_acknowledging<S: Store>(
    store: S,
    retention: Retention,
    rows: impl Fn(&S) -> QueueRows,
) -> (QueueRows, usize) {
    let (engine, tenant, dev) = activated(store, QueuePolicy::default().with_retention(retention));
    assert_eq!(acknowledge_all(&engine, &tenant, &dev), COMMANDS);
    assert!(
        engine
            .queue(&tenant, &dev.channel())
            .unwrap()
            .value
            .is_empty(),
        "every command finished"
    );
    let results = engine.results(&tenant, &dev.channel()).unwrap().value.len();
    (rows(engine.store()), results)
}

fn tables_stay_the_work_in_flight<S: Store>(store: impl Fn() -> S, rows: impl Fn(&S) -> QueueRows) {
    let (kept, results) = rows_after_acknowledging(store(), Retention::KeepLast(5), &rows);
    assert_eq!((kept.commands, kept.results), (0, 5), "{kept:?}");
    assert_eq!(results, 5);
    let (none, results) = rows_after_acknowledging(store(), Retention::DeleteOnFinish, &rows);
    assert_eq!((none.commands, none.results), (0, 0), "{none:?}");
    assert_eq!(results, 0);
    // KeepAll is what it says: every result (the initial configuration's too).
    let (all, results) = rows_after_acknowledging(store(), Retention::KeepAll, &rows);
    assert_eq!(all.commands, 0, "{all:?}");
    assert!(all.results as usize > COMMANDS, "{all:?}");
    assert_eq!(results as u64, all.results);
}

#[test]
fn memory_queue_keeps_only_work_in_flight() {
    tables_stay_the_work_in_flight(MemoryStore::new, |s| s.queue_rows().unwrap());
}

#[test]
fn sqlite_queue_keeps_only_work_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    tables_stay_the_work_in_flight(
        || {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            SqliteStore::open(dir.path().join(format!("q{i}.db"))).unwrap()
        },
        |s| s.queue_rows().unwrap(),
    );
}

fn expired_commands_are_dropped_not_delivered<S: Store>(store: S) {
    let policy = QueuePolicy::default().with_expiry(Some(Duration::from_secs(60)));
    let (engine, tenant, dev) = activated(store, policy);
    enqueue(&engine, &tenant, &dev, "old", t0());
    enqueue(
        &engine,
        &tenant,
        &dev,
        "fresh",
        t0() + Duration::from_secs(30),
    );
    let later = t0() + Duration::from_secs(61);
    let reply = engine
        .connect(&tenant, dev.report(ReportStatus::Idle, None), later)
        .unwrap();
    assert_eq!(
        reply.value.map(|c| c.uuid.into_string()),
        Some("fresh".to_owned()),
        "the expired command was offered"
    );
    assert!(
        reply.events.iter().any(|e| matches!(
            &e.kind,
            EventKind::CommandFinished { uuid, outcome: CommandOutcome::Expired } if uuid.as_str() == "old"
        )),
        "{:?}",
        reply.events
    );
    let results = engine.results(&tenant, &dev.channel()).unwrap().value;
    let old = results
        .iter()
        .find(|r| r.uuid.as_str() == "old")
        .expect("a result");
    assert_eq!(
        (old.outcome.clone(), old.at),
        (CommandOutcome::Expired, later)
    );
    let queued: Vec<_> = engine
        .queue(&tenant, &dev.channel())
        .unwrap()
        .value
        .into_iter()
        .map(|c| c.uuid.into_string())
        .collect();
    assert_eq!(queued, ["fresh"]);
    // A late answer for the dropped command finds nothing to finish.
    let late = engine.connect(
        &tenant,
        dev.report(
            ReportStatus::Acknowledged,
            Some(CommandUuid::new("old").unwrap()),
        ),
        later,
    );
    assert!(
        matches!(
            late,
            Err(ServiceError::Activation(ActivationError::UnknownCommand(_)))
        ),
        "{late:?}"
    );
}

#[test]
fn memory_expired_commands_are_dropped_not_delivered() {
    expired_commands_are_dropped_not_delivered(MemoryStore::new());
}

#[test]
fn sqlite_expired_commands_are_dropped_not_delivered() {
    expired_commands_are_dropped_not_delivered(SqliteStore::open_in_memory().unwrap());
}

/// Two connections at once get two different commands; within the lease a
/// reconnect is not handed the held command again, after it (the device lost
/// the response) it is.
fn a_delivery_holds_its_command_for_the_lease<S: Store>(store: S) {
    let policy = QueuePolicy::default().with_delivery_lease(Duration::from_secs(30));
    let (engine, tenant, dev) = activated(store, policy);
    let now = t0() + Duration::from_secs(1);
    enqueue(&engine, &tenant, &dev, "a", now);
    enqueue(&engine, &tenant, &dev, "b", now);
    let idle = |at| {
        engine
            .connect(&tenant, dev.report(ReportStatus::Idle, None), at)
            .unwrap()
            .value
            .map(|c| c.uuid.into_string())
    };
    assert_eq!(idle(now).as_deref(), Some("a"));
    assert_eq!(idle(now).as_deref(), Some("b"), "the held command again");
    assert_eq!(idle(now + Duration::from_secs(29)), None, "both held");
    let key = QueueKey {
        tenant: tenant.clone(),
        channel: dev.channel(),
    };
    let due = engine
        .store()
        .push_state(&key)
        .unwrap()
        .and_then(|p| p.next_due);
    assert_eq!(
        due,
        Some(now + Duration::from_secs(29 + 30)),
        "a connection that found every command held wakes the device when the lease ends"
    );
    assert_eq!(
        idle(now + Duration::from_secs(30)).as_deref(),
        Some("a"),
        "after the lease a device that lost the response is handed it again"
    );
}

#[test]
fn memory_delivery_holds_its_command_for_the_lease() {
    a_delivery_holds_its_command_for_the_lease(MemoryStore::new());
}

#[test]
fn sqlite_delivery_holds_its_command_for_the_lease() {
    a_delivery_holds_its_command_for_the_lease(SqliteStore::open_in_memory().unwrap());
}

fn handed(reply: &Option<QueuedCommand>) -> Option<&str> {
    reply.as_ref().map(|c| c.uuid.as_str())
}

/// A connection reads only the head of its queue (`QueueStore::pending_head`),
/// yet behaves as if it read all of it: a device that defers more commands
/// than the head holds is still handed the next one, a report of a command
/// queued deeper than the head finishes it, and expired commands filling
/// the head are all dropped before the first live one is delivered.
fn a_connection_behind_a_backlog_acts_on_the_whole_queue<S: Store>(store: S) {
    let policy = QueuePolicy::default().with_expiry(Some(Duration::from_secs(3600)));
    let (engine, tenant, dev) = activated(store, policy);
    let queued_at = t0() + Duration::from_secs(10);
    for n in 0..5 {
        enqueue(&engine, &tenant, &dev, &format!("defer-{n}"), queued_at);
    }
    for n in 0..3 {
        enqueue(&engine, &tenant, &dev, &format!("later-{n}"), queued_at);
    }
    let now = queued_at + Duration::from_secs(1);
    let mut reply = engine
        .connect(&tenant, dev.report(ReportStatus::Idle, None), now)
        .unwrap()
        .value;
    for n in 0..5 {
        let uuid = format!("defer-{n}");
        assert_eq!(handed(&reply), Some(uuid.as_str()));
        reply = engine
            .connect(
                &tenant,
                dev.report(ReportStatus::NotNow, Some(CommandUuid::new(uuid).unwrap())),
                now,
            )
            .unwrap()
            .value;
    }
    assert_eq!(
        handed(&reply),
        Some("later-0"),
        "five deferred commands ahead of it"
    );
    // The device starts over (Idle: nothing deferred on this connection),
    // is handed the head again, and then reports the command it was sent
    // before, now six places deep.
    let again = engine
        .connect(&tenant, dev.report(ReportStatus::Idle, None), now)
        .unwrap()
        .value;
    assert_eq!(handed(&again), Some("defer-0"));
    let acked = engine
        .connect(
            &tenant,
            dev.report(
                ReportStatus::Acknowledged,
                Some(CommandUuid::new("later-0").unwrap()),
            ),
            now,
        )
        .unwrap();
    assert!(
        acked.events.iter().any(|e| matches!(
            &e.kind,
            EventKind::CommandFinished { uuid, outcome: CommandOutcome::Acknowledged }
                if uuid.as_str() == "later-0"
        )),
        "{:?}",
        acked.events
    );
    let queued: Vec<_> = engine
        .queue(&tenant, &dev.channel())
        .unwrap()
        .value
        .into_iter()
        .map(|c| c.uuid.into_string())
        .collect();
    assert!(!queued.iter().any(|u| u == "later-0"), "{queued:?}");
    // An hour on, everything queued so far has expired: the head is full of
    // expired commands, all dropped, and the fresh one behind them is sent.
    let fresh_at = queued_at + Duration::from_secs(3000);
    enqueue(&engine, &tenant, &dev, "fresh", fresh_at);
    let later = queued_at + Duration::from_secs(3601);
    let reply = engine
        .connect(&tenant, dev.report(ReportStatus::Idle, None), later)
        .unwrap();
    assert_eq!(handed(&reply.value), Some("fresh"));
    let mut dropped: Vec<_> = reply
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CommandFinished {
                uuid,
                outcome: CommandOutcome::Expired,
            } => Some(uuid.as_str().to_owned()),
            _ => None,
        })
        .collect();
    dropped.sort();
    let mut want: Vec<_> = queued.into_iter().collect();
    want.sort();
    assert_eq!(dropped, want, "every expired command dropped at once");
}

#[test]
fn memory_connection_behind_a_backlog_acts_on_the_whole_queue() {
    a_connection_behind_a_backlog_acts_on_the_whole_queue(MemoryStore::new());
}

#[test]
fn sqlite_connection_behind_a_backlog_acts_on_the_whole_queue() {
    a_connection_behind_a_backlog_acts_on_the_whole_queue(SqliteStore::open_in_memory().unwrap());
}
