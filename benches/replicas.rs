//! Throughput of whole activations (all 13 steps at the evidence level, no
//! crypto) over the SQL stores: one process on a SQLite file beside two
//! "replicas" (two engines, each with its own `PostgresStore` connections)
//! over one PostgreSQL database, `THREADS` devices at a time, devices
//! alternating between the replicas. Prints activations/s, the p50/p99
//! latency of one activation and of each step's request (every connect of
//! steps 11–13 counts as one `connect`). Run with
//! `MDM_BENCH_POSTGRES=postgres://USER@HOST:PORT/DB cargo bench --features test-support,sqlite,postgres --bench replicas`
//! (without the variable only SQLite is measured). The PostgreSQL database
//! should be empty; the bench creates its tables.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use mdm_enroll::activation::{CheckinMessage, LoginAttempt, ReportStatus, TenantId};
use mdm_enroll::service::{Engine, EngineConfig};
use mdm_enroll::store::Store;
use mdm_enroll::store::postgres::PostgresStore;
use mdm_enroll::store::sqlite::SqliteStore;
use mdm_enroll::testing::{
    EvidenceDevice, RecordingPush, StaticDirectory, engine_with_alice, placeholder_configuration,
};
use rand_core::UnwrapErr;

const THREADS: usize = 8;
const ACTIVATIONS: usize = 2_000;

type Eng<S> = Engine<S, StaticDirectory, RecordingPush>;

/// The requests of one activation, in order (steps 11–13 are connects).
const STEPS: [&str; 8] = [
    "2 login",
    "3-4 activation request",
    "5-6 attributes",
    "7 SCEP authorize",
    "8 certificate issued",
    "9 Authenticate",
    "10 TokenUpdate",
    "11-13 connect",
];

/// All thirteen steps of one device at the evidence level (as
/// `EvidenceDevice::activate`), timing each request into `timings[step]`.
fn activate<S: Store, R: rand_core::CryptoRng + ?Sized>(
    engine: &Eng<S>,
    tenant: &TenantId,
    login: &LoginAttempt,
    now: SystemTime,
    rng: &mut R,
    timings: &mut [Vec<Duration>; STEPS.len()],
) {
    let mut dev = EvidenceDevice::random(rng);
    let mut timed = |step: usize, t: Instant| timings[step].push(t.elapsed());
    let t = Instant::now();
    let id = engine
        .login(tenant, login, now, rng)
        .expect("login")
        .value
        .activation;
    timed(0, t);
    let t = Instant::now();
    let challenge = engine
        .request_activation(tenant, &id, true, None, now, rng)
        .expect("activation request")
        .value;
    timed(1, t);
    let t = Instant::now();
    let grant = engine
        .device_attributes(tenant, dev.attributes(&challenge), now, rng)
        .expect("attributes")
        .value;
    timed(2, t);
    let t = Instant::now();
    engine
        .authorize_scep(tenant, &grant.scep_challenge, now)
        .expect("scep");
    timed(3, t);
    let identity = EvidenceDevice::fresh_identity(rng, now);
    dev.identity = Some(identity.clone());
    let t = Instant::now();
    engine
        .certificate_issued(tenant, &id, identity, now)
        .expect("certificate");
    timed(4, t);
    let t = Instant::now();
    let authenticate = CheckinMessage::Authenticate {
        topic: dev.push_target().topic,
        serial: Some(dev.serial.clone()),
    };
    engine
        .checkin(tenant, dev.checkin(authenticate), now, |_| Vec::new())
        .expect("Authenticate");
    timed(5, t);
    let configuration = placeholder_configuration(rng);
    let t = Instant::now();
    let token = CheckinMessage::TokenUpdate {
        push: dev.push_target(),
        awaiting_configuration: None,
    };
    engine
        .checkin(tenant, dev.checkin(token), now, move |_| configuration)
        .expect("TokenUpdate");
    timed(6, t);
    let mut report = dev.report(ReportStatus::Idle, None);
    loop {
        let t = Instant::now();
        let reply = engine.connect(tenant, report, now).expect("connect");
        timed(7, t);
        let Some(cmd) = reply.value else { break };
        report = dev.report(ReportStatus::Acknowledged, Some(cmd.uuid));
    }
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn run<S: Store>(name: &str, replicas: &[Eng<S>], login: &LoginAttempt) {
    let tenant = TenantId::new("bench").unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let per_worker: Vec<(Vec<Duration>, [Vec<Duration>; STEPS.len()])> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    let mut rng = UnwrapErr(getrandom::SysRng);
                    let mut mine = Vec::new();
                    let mut steps: [Vec<Duration>; STEPS.len()] = Default::default();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= ACTIVATIONS {
                            return (mine, steps);
                        }
                        let engine = &replicas[n % replicas.len()];
                        let t = Instant::now();
                        activate(engine, &tenant, login, now, &mut rng, &mut steps);
                        mine.push(t.elapsed());
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let elapsed = start.elapsed();
    let mut latencies = Vec::new();
    let mut steps: [Vec<Duration>; STEPS.len()] = Default::default();
    for (mine, theirs) in per_worker {
        latencies.extend(mine);
        for (all, t) in steps.iter_mut().zip(theirs) {
            all.extend(t);
        }
    }
    latencies.sort();
    println!(
        "{name}: {ACTIVATIONS} activations, {THREADS} threads: {:.0} activations/s, p50 {:.1} ms, p99 {:.1} ms",
        ACTIVATIONS as f64 / elapsed.as_secs_f64(),
        quantile(&latencies, 0.50),
        quantile(&latencies, 0.99),
    );
    for (step, mut t) in STEPS.iter().zip(steps) {
        t.sort();
        println!(
            "  {step:<24} {:>6} requests  p50 {:>6.2} ms  p99 {:>6.2} ms",
            t.len(),
            quantile(&t, 0.50),
            quantile(&t, 0.99),
        );
    }
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
