//! Throughput of whole activations (all 13 steps at the evidence level, no
//! crypto) over the SQL stores: one process on a SQLite file beside two
//! "replicas" (two engines, each with its own `PostgresStore` connections)
//! over one PostgreSQL database, `THREADS` devices at a time, devices
//! alternating between the replicas. Prints activations/s and the p50/p99
//! latency of one activation. Run with
//! `MDM_BENCH_POSTGRES=postgres://USER@HOST:PORT/DB cargo bench --features test-support,sqlite,postgres --bench replicas`
//! (without the variable only SQLite is measured). The PostgreSQL database
//! should be empty; the bench creates its tables.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use mdm_enroll::activation::TenantId;
use mdm_enroll::service::{Engine, EngineConfig};
use mdm_enroll::store::Store;
use mdm_enroll::store::postgres::PostgresStore;
use mdm_enroll::store::sqlite::SqliteStore;
use mdm_enroll::testing::{EvidenceDevice, RecordingPush, StaticDirectory, engine_with_alice};
use rand_core::UnwrapErr;

const THREADS: usize = 8;
const ACTIVATIONS: usize = 2_000;

type Eng<S> = Engine<S, StaticDirectory, RecordingPush>;

fn run<S: Store>(name: &str, replicas: &[Eng<S>], login: &mdm_enroll::activation::LoginAttempt) {
    let tenant = TenantId::new("bench").unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let mut rng = UnwrapErr(getrandom::SysRng);
                    let mut mine = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= ACTIVATIONS {
                            return mine;
                        }
                        let engine = &replicas[n % replicas.len()];
                        let mut dev = EvidenceDevice::random(&mut rng);
                        let t = Instant::now();
                        dev.activate(engine, &tenant, login, now, &mut rng)
                            .expect("activation");
                        mine.push(t.elapsed());
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let elapsed = start.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "{name}: {ACTIVATIONS} activations, {THREADS} threads: {:.0} activations/s, p50 {:.1} ms, p99 {:.1} ms",
        ACTIVATIONS as f64 / elapsed.as_secs_f64(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
    );
}

fn main() {
    let tenant = TenantId::new("bench").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, login) = engine_with_alice(
        SqliteStore::open(dir.path().join("bench.db")).unwrap(),
        &tenant,
        EngineConfig::default(),
    )
    .unwrap();
    run("sqlite file, one process", &[sqlite], &login);
    match std::env::var("MDM_BENCH_POSTGRES") {
        Ok(url) => {
            let replicas: Vec<_> = (0..2)
                .map(|_| {
                    engine_with_alice(
                        PostgresStore::connect(&url, THREADS / 2).unwrap(),
                        &tenant,
                        EngineConfig::default(),
                    )
                    .unwrap()
                    .0
                })
                .collect();
            run("postgres, two replicas", &replicas, &login);
        }
        Err(_) => println!("postgres: MDM_BENCH_POSTGRES not set, not measured"),
    }
}
