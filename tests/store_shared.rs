//! One store serves many services: the store traits are implemented for
//! `Arc<T>` and `&T`, so two engines share one `MemoryStore` or one SQLite
//! connection without a forwarding wrapper, and what one writes the other
//! reads and acts on.
#![cfg(all(feature = "sqlite", feature = "test-support"))]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::{ReportStatus, TenantId};
use mdm_enroll::mdm::Command;
use mdm_enroll::service::{Engine, EngineConfig};
use mdm_enroll::store::sqlite::SqliteStore;
use mdm_enroll::store::{ActivationStore, MemoryStore, Store, conformance};
use mdm_enroll::testing::{EvidenceDevice, RecordingPush, StaticDirectory, engine_with_alice};
use rand_core::UnwrapErr;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

/// Service A (over an `Arc` clone) activates a device; service B (over a
/// borrow of the same store) finds its activation and queues a command,
/// which the device then receives from service A.
fn one_store_serves_two_services<S: Store>(store: Arc<S>) {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let tenant = TenantId::new("shared").unwrap();
    let (a, login) =
        engine_with_alice(Arc::clone(&store), &tenant, EngineConfig::default()).unwrap();
    let b = Engine::new(
        &*store,
        StaticDirectory::new(),
        RecordingPush::new(),
        EngineConfig::default(),
    );

    let mut device = EvidenceDevice::random(&mut rng);
    device
        .activate(&a, &tenant, &login, t0(), &mut rng)
        .unwrap();

    let seen_by_b = b.store().device_activation(&tenant, &device.udid).unwrap();
    assert!(seen_by_b.is_some());
    assert_eq!(seen_by_b.as_ref(), device.activation.as_ref());

    let command = Command::profile_list(mdm_enroll::mdm::command::random_uuid(&mut rng));
    let queued = b
        .enqueue_command(&tenant, &device.channel(), &command, t0())
        .unwrap()
        .value;
    let delivered = a
        .connect(&tenant, device.report(ReportStatus::Idle, None), t0())
        .unwrap()
        .value
        .expect("service A delivers what service B queued");
    assert_eq!(delivered.uuid, queued);
}

#[test]
fn one_arc_memory_store_serves_two_services() {
    one_store_serves_two_services(Arc::new(MemoryStore::new()));
}

#[test]
fn one_arc_sqlite_store_serves_two_services() {
    one_store_serves_two_services(Arc::new(SqliteStore::open_in_memory().unwrap()));
}

/// Every forwarded method behaves as the store's own: `Arc<T>` and `&T`
/// pass the whole conformance kit.
#[test]
fn arc_and_borrowed_stores_conform() {
    for (name, report) in [
        (
            "Arc<MemoryStore>",
            conformance::run(|| Arc::new(MemoryStore::new())),
        ),
        (
            "Arc<SqliteStore>",
            conformance::run(|| Arc::new(SqliteStore::open_in_memory().unwrap())),
        ),
        (
            "&MemoryStore",
            conformance::run(|| &*Box::leak(Box::new(MemoryStore::new()))),
        ),
    ] {
        assert!(report.is_ok(), "{name}: {:#?}", report.failed);
        assert!(!report.passed.is_empty(), "{name}: no check ran");
    }
}
