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
    assert_eq!(report.passed.len(), 31);
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
        matches!(&refused, StoreError::Backend(why) if why.contains("newer than this build")),
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
        let uuid = CommandUuid(format!("cmd-{round}"));
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
