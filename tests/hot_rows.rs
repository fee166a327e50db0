//! Steady-state traffic never rewrites the activation record: connects,
//! reports, `TokenUpdate` refreshes and pushes write only their own rows
//! (queue rows, the channel's connection row, push bookkeeping), so two
//! concurrent requests of one enrolled device never collide on it.
#![cfg(all(feature = "test-support", feature = "sqlite"))]

use std::sync::Barrier;
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::*;
use mdm_enroll::service::{Engine, EngineConfig, NewCommand};
use mdm_enroll::store::sqlite::SqliteStore;
use mdm_enroll::store::{MemoryStore, Store};
use mdm_enroll::testing::{EvidenceDevice, RecordingPush, StaticDirectory, engine_with_alice};
use rand_core::UnwrapErr;

const ROUNDS: usize = 200;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn version<S: Store>(
    engine: &Engine<S, StaticDirectory, RecordingPush>,
    tenant: &TenantId,
    id: &ActivationId,
) -> u64 {
    engine
        .store()
        .activation(tenant, id)
        .unwrap()
        .unwrap()
        .version
}

/// `ROUNDS` times: queue a command, let the device connect twice at once
/// (both connects succeed, one is handed the command), acknowledge it, refresh the push token; the
/// activation's version never moves.
fn concurrent_connects_of_one_device<S: Store>(store: S) {
    let tenant = TenantId::new("customer-a").unwrap();
    let mut rng = UnwrapErr(getrandom::SysRng);
    let (engine, login) = engine_with_alice(store, &tenant, EngineConfig::default()).unwrap();
    let mut dev = EvidenceDevice::random(&mut rng);
    dev.activate(&engine, &tenant, &login, t0(), &mut rng)
        .unwrap();
    let id = dev.activation.clone().unwrap();
    let settled = version(&engine, &tenant, &id);
    let barrier = Barrier::new(2);
    for round in 0..ROUNDS {
        let now = t0() + Duration::from_secs(round as u64 + 1);
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
        // Both succeed; exactly one is handed the command (a delivery is a
        // claim), the other the empty answer.
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
        let done = engine
            .connect(
                &tenant,
                dev.report(ReportStatus::Acknowledged, Some(uuid.clone())),
                now,
            )
            .unwrap();
        assert_eq!(done.value, None, "round {round}: nothing else queued");
        engine
            .checkin(
                &tenant,
                dev.checkin(CheckinMessage::TokenUpdate {
                    push: dev.push_target(),
                    awaiting_configuration: None,
                }),
                now,
                |_| Vec::new(),
            )
            .unwrap();
        assert_eq!(
            version(&engine, &tenant, &id),
            settled,
            "round {round}: steady-state traffic rewrote the activation"
        );
    }
    let results = engine.results(&tenant, &dev.channel()).unwrap().value;
    let last = CommandUuid::new(format!("cmd-{}", ROUNDS - 1)).unwrap();
    assert!(
        results
            .iter()
            .any(|r| r.uuid == last && r.outcome == CommandOutcome::Acknowledged),
        "the last acknowledgement is stored"
    );
}

#[test]
fn memory_store_concurrent_connects_never_conflict() {
    concurrent_connects_of_one_device(MemoryStore::new());
}

#[test]
fn sqlite_store_concurrent_connects_never_conflict() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_connects_of_one_device(SqliteStore::open(dir.path().join("hot.db")).unwrap());
}
