//! Load run: N simulated Macs activate concurrently against the example
//! server over real HTTP on 127.0.0.1.
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/load [--devices 200] [--concurrency 8]
//! ```
//!
//! Starts the `server` example built beside this binary (`--http`, a fresh
//! temporary data folder, SQLite store, a test device CA it trusts), then
//! walks every device through steps 2–13 with
//! [`mdm_enroll::testing::SimulatedDevice`] (real CMS signatures, SCEP
//! envelopes and `Mdm-Signature`s), `--concurrency` devices at a time.
//! Prints activations per second and the latency of each step
//! (p50 / p99 / max). The simulated devices run on the same machine and do
//! their own RSA work, so the figures are for server and clients together.
//!
//! `--in-process` runs the same devices against the crate's
//! `EnrollmentService` called directly over the in-memory store (no HTTP,
//! no SQLite, no server process): the baseline that the server's figures
//! are a ratio to.
//!
//! `--renewals` then renews every activated device's identity: identities
//! live an hour and fall due 10 s after issuance (`--identity-lifetime
//! 3600s --renew-before 3590s`); once all are due, each device connects
//! (`Idle`), gets the renewal `InstallProfile` (a freshly signed enrollment
//! profile with a new SCEP challenge), enrolls its new identity over SCEP
//! and acknowledges with it. Prints renewals per second and the latency
//! of one renewal.

#[path = "../tests/server_support/mod.rs"]
mod server_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use mdm_enroll::crypto::RsaKey;
use mdm_enroll::testing::{DeviceError, SimulatedDevice, TestDeployment, Transport};
use server_support::{HttpTransport, Server, device_ca, rng, server_ca};

const USAGE: &str = "usage: load [--devices N] [--concurrency C] [--in-process] [--renewals]";

/// With `--renewals`: identity lifetime and renewal window (due 10 s after issuance).
const RENEWAL_LIFETIME: Duration = Duration::from_secs(3600);
const RENEWAL_WINDOW: Duration = Duration::from_secs(3590);

/// The steps timed, in order, by the call that performs them.
const STEPS: [&str; 6] = [
    "2-4 self-service profile",
    "5-6 attributes -> enrollment profile",
    "7-8 SCEP GetCACert + PKCSReq",
    "9 Authenticate",
    "10 TokenUpdate",
    "11-13 commands (Idle + 3 reports)",
];

struct Args {
    devices: usize,
    concurrency: usize,
    in_process: bool,
    renewals: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut devices = 200;
    let mut concurrency = 8;
    let mut in_process = false;
    let mut renewals = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|v: &usize| *v > 0)
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match flag.as_str() {
            "--devices" => devices = value("--devices")?,
            "--concurrency" => concurrency = value("--concurrency")?,
            "--in-process" => in_process = true,
            "--renewals" => renewals = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        devices,
        concurrency,
        in_process,
        renewals,
    })
}

/// Where the devices go: a user and the self-service path.
struct Target {
    enroll_path: String,
    user: (&'static str, &'static str, &'static str),
}

/// Walk one device through steps 2–13, timing each step.
fn activate(
    device: &mut SimulatedDevice,
    t: &mut dyn Transport,
    target: &Target,
) -> Result<[Duration; 6], DeviceError> {
    let mut times = [Duration::ZERO; 6];
    let mut timed = |i: usize, f: &mut dyn FnMut() -> Result<(), DeviceError>| {
        let start = Instant::now();
        let r = f();
        times[i] = start.elapsed();
        r
    };
    let mut service = None;
    timed(0, &mut || {
        let (u, p, d) = target.user;
        service = Some(device.self_service(t, &target.enroll_path, u, p, d)?);
        Ok(())
    })?;
    let service = service.ok_or_else(|| DeviceError::Protocol("no profile".into()))?;
    timed(1, &mut || device.send_attributes(t, &service))?;
    timed(2, &mut || {
        device
            .scep_enroll(t, SystemTime::now(), &mut rng())
            .map(|_| ())
    })?;
    timed(3, &mut || device.check_in(t, "Authenticate"))?;
    timed(4, &mut || device.check_in(t, "TokenUpdate"))?;
    timed(5, &mut || {
        let answers = device.run_commands(t)?;
        if answers.len() == 3 {
            Ok(())
        } else {
            Err(DeviceError::Protocol(format!("{} commands", answers.len())))
        }
    })?;
    Ok(times)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let dir = tempfile::tempdir().expect("temporary folder");
    // Keygen is not under test: two keys shared by every device (each still
    // gets its own attribute certificate and its own SCEP identity).
    let attributes_key = Arc::new(RsaKey::generate(&mut rng(), 2048).expect("key"));
    let scep_key = Arc::new(RsaKey::generate(&mut rng(), 2048).expect("key"));

    let (server, deployment, ca, anchor, target);
    if args.in_process {
        let mut d = TestDeployment::new(
            RsaKey::generate(&mut rng(), 2048).expect("key"),
            RsaKey::generate(&mut rng(), 2048).expect("key"),
            SystemTime::now(),
            &mut rng(),
        )
        .expect("deployment");
        if args.renewals {
            let config = d.service.config_mut();
            config.identity_lifetime = RENEWAL_LIFETIME;
            config.renewal = mdm_enroll::service::RenewalPolicy::new(RENEWAL_WINDOW);
        }
        println!("in process: EnrollmentService over MemoryStore, no HTTP");
        ca = d.device_ca.clone();
        anchor = d.server_certificate.clone();
        target = Target {
            enroll_path: d.enroll_path(),
            user: ("alice", "pw", "corp"),
        };
        deployment = Some(Arc::new(d));
        server = None;
    } else {
        let (device_ca, ca_pem) = device_ca(dir.path());
        let data = dir.path().join("data");
        let (lifetime, window) = (
            format!("{}s", RENEWAL_LIFETIME.as_secs()),
            format!("{}s", RENEWAL_WINDOW.as_secs()),
        );
        let mut flags = vec![
            "--http",
            "--user",
            "load:load-password@load.example",
            "--admin",
            "root:adminpw",
            "--device-ca",
            ca_pem.to_str().expect("UTF-8 path"),
        ];
        if args.renewals {
            flags.extend(["--identity-lifetime", &lifetime, "--renew-before", &window]);
        }
        let s = Server::start(&data, &flags);
        println!("server: {} (data {})", s.base_url, data.display());
        ca = device_ca;
        anchor = server_ca(&data);
        target = Target {
            enroll_path: "/self-service/activate".into(),
            user: ("load", "load-password", "load.example"),
        };
        server = Some(s);
        deployment = None;
    }
    let queue: Vec<SimulatedDevice> = (0..args.devices)
        .map(|_| {
            let identity = ca
                .issue(attributes_key.clone(), SystemTime::now(), &mut rng())
                .expect("device identity");
            SimulatedDevice::new(identity, scep_key.clone(), anchor.clone(), &mut rng())
        })
        .collect();
    let target = Arc::new(target);
    let addr = server.as_ref().map(|s| s.addr);
    println!("{} devices, {} at a time", args.devices, args.concurrency);
    let started = Instant::now();
    let done = pool(queue, args.concurrency, addr, deployment.clone(), {
        let target = target.clone();
        move |device, t| activate(device, t, &target)
    });
    let elapsed = started.elapsed();
    let (mut samples, mut failures, mut activated) = (Vec::new(), Vec::new(), Vec::new());
    for (device, result) in done {
        match result {
            Ok(times) => {
                samples.push(times);
                activated.push(device);
            }
            Err(e) => failures.push(format!("{}: {e}", device.udid)),
        }
    }

    println!(
        "\n{} activations completed in {:.2} s: {:.1} activations/s ({} failed)",
        samples.len(),
        elapsed.as_secs_f64(),
        samples.len() as f64 / elapsed.as_secs_f64(),
        failures.len()
    );
    let mut table: BTreeMap<usize, Vec<Duration>> = BTreeMap::new();
    for s in &samples {
        for (i, d) in s.iter().enumerate() {
            table.entry(i).or_default().push(*d);
        }
    }
    println!("{:<40} {:>10} {:>10} {:>10}", "step", "p50", "p99", "max");
    for (i, mut v) in table {
        v.sort();
        println!(
            "{:<40} {:>10} {:>10} {:>10}",
            STEPS.get(i).copied().unwrap_or("?"),
            ms(percentile(&v, 50.0)),
            ms(percentile(&v, 99.0)),
            ms(v.last().copied().unwrap_or_default())
        );
    }
    let mut totals: Vec<Duration> = samples.iter().map(|s| s.iter().sum()).collect();
    totals.sort();
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        "whole activation (2-13)",
        ms(percentile(&totals, 50.0)),
        ms(percentile(&totals, 99.0)),
        ms(totals.last().copied().unwrap_or_default())
    );
    if args.renewals && failures.is_empty() {
        renew_all(activated, &args, addr, deployment, &mut failures);
    }
    for f in failures.iter().take(5) {
        eprintln!("failed: {f}");
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

/// `--renewals`: wait until every identity is due, then renew each one
/// (Idle → renewal InstallProfile → SCEP → Acknowledged with the new
/// identity), timing the whole renewal per device.
fn renew_all(
    devices: Vec<SimulatedDevice>,
    args: &Args,
    addr: Option<std::net::SocketAddr>,
    deployment: Option<Arc<TestDeployment>>,
    failures: &mut Vec<String>,
) {
    // The last identity was issued just now; wait until it is due.
    std::thread::sleep(RENEWAL_LIFETIME - RENEWAL_WINDOW + Duration::from_secs(1));
    let count = devices.len();
    let started = Instant::now();
    let done = pool(devices, args.concurrency, addr, deployment, |device, t| {
        let before = device.identity().map(|c| c.serial().to_vec());
        let start = Instant::now();
        let answers = device.run_commands_renewing(t, SystemTime::now(), &mut rng())?;
        let took = start.elapsed();
        let renewed = answers
            .iter()
            .any(|(r, s)| r == "InstallProfile" && s == "Acknowledged");
        if !renewed || device.identity().map(|c| c.serial().to_vec()) == before {
            return Err(DeviceError::Protocol(format!("not renewed: {answers:?}")));
        }
        Ok(took)
    });
    let elapsed = started.elapsed();
    let mut times = Vec::new();
    for (device, result) in done {
        match result {
            Ok(d) => times.push(d),
            Err(e) => failures.push(format!("renewal {}: {e}", device.udid)),
        }
    }
    times.sort();
    println!(
        "\n{} of {count} renewals completed in {:.2} s: {:.1} renewals/s",
        times.len(),
        elapsed.as_secs_f64(),
        times.len() as f64 / elapsed.as_secs_f64(),
    );
    println!(
        "{:<40} {:>10} {:>10} {:>10}",
        "renewal (Idle, SCEP, Acknowledged)",
        ms(percentile(&times, 50.0)),
        ms(percentile(&times, 99.0)),
        ms(times.last().copied().unwrap_or_default())
    );
}

/// A device and what `f` returned for it.
type Done<T> = (SimulatedDevice, Result<T, DeviceError>);

/// Run `f` for every device, `concurrency` at a time, each worker over its
/// own transport (HTTP to `addr`, or `deployment` called directly).
fn pool<T, F>(
    devices: Vec<SimulatedDevice>,
    concurrency: usize,
    addr: Option<std::net::SocketAddr>,
    deployment: Option<Arc<TestDeployment>>,
    f: F,
) -> Vec<Done<T>>
where
    T: Send + 'static,
    F: Fn(&mut SimulatedDevice, &mut dyn Transport) -> Result<T, DeviceError>
        + Send
        + Sync
        + 'static,
{
    let queue = Arc::new(Mutex::new(devices));
    let done: Arc<Mutex<Vec<Done<T>>>> = Arc::default();
    let f = Arc::new(f);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (queue, done, f) = (queue.clone(), done.clone(), f.clone());
            let deployment = deployment.clone();
            std::thread::spawn(move || {
                let mut events = Vec::new();
                let mut direct_rng = rng();
                let mut direct;
                let mut http;
                let t: &mut dyn Transport = match (&deployment, addr) {
                    (Some(d), _) => {
                        direct = d.transport(SystemTime::now(), &mut direct_rng, &mut events);
                        &mut direct
                    }
                    (None, Some(addr)) => {
                        http = HttpTransport::new(addr);
                        &mut http
                    }
                    (None, None) => return,
                };
                loop {
                    let next = queue.lock().expect("queue").pop();
                    let Some(mut device) = next else { break };
                    let result = f(&mut device, t);
                    done.lock().expect("done").push((device, result));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    std::mem::take(&mut *done.lock().expect("done"))
}
