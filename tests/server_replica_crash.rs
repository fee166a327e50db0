//! `kill -9` one of two example-server replicas over one PostgreSQL in the
//! middle of a burst of simulated Macs whose requests alternate between the
//! replicas: the survivor finishes every device. A request the dead replica
//! never answered is sent to the survivor (as a load balancer does); a
//! device whose step the dead replica had committed without answering (its
//! Profile Service challenge consumed) starts its activation over, as a user
//! would. In the end every device is completely enrolled, no command was
//! handed to a device twice, every command it answered has its result, and
//! every identity is bound once, to its own device.
#![cfg(all(feature = "postgres", feature = "sqlite", feature = "test-support"))]

mod postgres_support;
mod server_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use mdm_enroll::activation::{CertFingerprint, TenantId};
use mdm_enroll::http::{Request, Response};
use mdm_enroll::store::BindingStore;
use mdm_enroll::store::postgres::PostgresStore;
use mdm_enroll::testing::{SimulatedDevice, Transport};
use serde_json::Value;
use server_support::http::NO_ANSWER;
use server_support::{HttpTransport, Server, basic, device_ca, rng, simulated_device};

const USER: (&str, &str, &str) = ("alice", "s3cret pw", "corp.example");
const DEVICES: usize = 8;
/// Requests answered (over all devices) before replica A is killed.
const KILL_AFTER: usize = 40;
/// The servers' `--delivery-lease`: a command whose response died with A is
/// handed out again after it.
const LEASE: Duration = Duration::from_secs(2);

/// Every request to the other replica than the one before; one that gets no
/// answer (the replica is gone) goes to the other. Records the commands the
/// device was handed.
struct Failover<'a> {
    replicas: [SocketAddr; 2],
    next: usize,
    answered: &'a AtomicUsize,
    /// Requests the dead replica never answered, sent to the other.
    failed_over: &'a AtomicUsize,
    handed: Vec<String>,
}

impl Transport for Failover<'_> {
    fn send(&mut self, request: Request) -> Response {
        let first = self.next % 2;
        self.next += 1;
        let mut response = HttpTransport::new(self.replicas[first]).send(request.clone());
        if response.status == NO_ANSWER {
            self.failed_over.fetch_add(1, Ordering::SeqCst);
            response = HttpTransport::new(self.replicas[1 - first]).send(request);
        }
        self.answered.fetch_add(1, Ordering::SeqCst);
        if let Ok(command) = plist::from_bytes::<plist::Dictionary>(&response.body)
            && let Some(uuid) = command.get("CommandUUID").and_then(|u| u.as_string())
        {
            self.handed.push(uuid.to_owned());
        }
        response
    }
}

fn device_json(server: &Server, auth: &str, udid: &str) -> Value {
    let r = server.request(
        "GET",
        &format!("/admin/api/devices/{udid}"),
        &[("Authorization", auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{udid}: {}", r.text());
    serde_json::from_slice(&r.body).expect("json")
}

/// Activate `device` through `t`, starting over (at most three times) when
/// a step failed because the dead replica had committed it unanswered.
fn activate(device: &mut SimulatedDevice, t: &mut Failover<'_>) -> usize {
    for attempt in 1..=3 {
        let outcome = device.activate(
            t,
            "/self-service/activate",
            USER,
            SystemTime::now(),
            &mut rng(),
        );
        match outcome {
            Ok(_) => return attempt,
            Err(e) => eprintln!(
                "{}: attempt {attempt} failed ({e:?}); starting over",
                device.udid
            ),
        }
    }
    panic!("{}: three activations failed", device.udid);
}

#[test]
#[cfg_attr(
    not(mdm_have_postgres),
    ignore = "needs PostgreSQL: apt-get install postgresql, or set MDM_TEST_POSTGRES"
)]
fn killing_one_replica_mid_burst_the_other_finishes_every_device() {
    let pg = postgres_support::Server::start();
    let url = pg.fresh();
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_pem) = device_ca(dir.path());
    let data = dir.path().join("data");
    let lease = format!("{}s", LEASE.as_secs());
    let args = [
        "--http",
        "--user",
        "alice:s3cret pw@corp.example",
        "--admin",
        "root:adminpw",
        "--device-ca",
        ca_pem.to_str().expect("utf-8 path"),
        "--store",
        &url,
        "--delivery-lease",
        &lease,
    ];
    let mut a = Server::start(&data, &args);
    let b = Server::start(&data, &args);
    let replicas = [a.addr, b.addr];
    let answered = AtomicUsize::new(0);
    let failed_over = AtomicUsize::new(0);
    let auth = basic("root", "adminpw");
    let devices: Vec<SimulatedDevice> =
        (0..DEVICES).map(|_| simulated_device(&ca, &data)).collect();
    let finished = Mutex::new(Vec::new());
    let mut killed_at = 0;
    std::thread::scope(|s| {
        for (n, mut device) in devices.into_iter().enumerate() {
            let (answered, failed_over) = (&answered, &failed_over);
            let (finished, b, auth) = (&finished, &b, &auth);
            s.spawn(move || {
                let mut t = Failover {
                    replicas,
                    next: n,
                    answered,
                    failed_over,
                    handed: Vec::new(),
                };
                let attempts = activate(&mut device, &mut t);
                // A command whose response died with A is held for the
                // lease, then handed out again: connect until none is left.
                for _ in 0..10 {
                    let d = device_json(b, auth, &device.udid);
                    if d["complete"] == true && d["queued"] == 0 {
                        break;
                    }
                    std::thread::sleep(LEASE + Duration::from_millis(200));
                    device.run_commands(&mut t).expect("connect");
                }
                finished.lock().unwrap().push((device, t.handed, attempts));
            });
        }
        while answered.load(Ordering::SeqCst) < KILL_AFTER {
            std::thread::sleep(Duration::from_millis(5));
        }
        killed_at = answered.load(Ordering::SeqCst);
        a.kill();
    });
    let finished = finished.into_inner().unwrap();
    assert_eq!(finished.len(), DEVICES);
    let after = answered.load(Ordering::SeqCst);
    assert!(
        after > killed_at + DEVICES,
        "replica A died after {killed_at} of {after} requests: not in the middle of the burst"
    );
    eprintln!(
        "A killed after {killed_at} of {after} answered requests; {} sent to B after A gave no answer; activations started over: {}",
        failed_over.load(Ordering::SeqCst),
        finished.iter().filter(|(_, _, n)| *n > 1).count()
    );
    let store = PostgresStore::connect(&url, 1).expect("connect to PostgreSQL");
    let tenant = TenantId::new("demo").expect("tenant");
    let mut fingerprints = HashSet::new();
    for (device, handed, _) in &finished {
        let d = device_json(&b, &auth, &device.udid);
        assert_eq!(d["complete"], true, "{}: {d}", device.udid);
        assert_eq!(d["queued"], 0, "{}: {d}", device.udid);
        // Nothing handed to the device twice.
        let unique: HashSet<&String> = handed.iter().collect();
        assert_eq!(unique.len(), handed.len(), "{}: {handed:?}", device.udid);
        // No report lost: every command it was handed has its result.
        let results: HashSet<String> = server_support::results(&d)
            .into_iter()
            .map(|(uuid, _, _)| uuid)
            .collect();
        for uuid in handed {
            assert!(
                results.contains(uuid),
                "{}: no result for {uuid}",
                device.udid
            );
        }
        // One identity, bound once, to this device.
        let fingerprint = CertFingerprint(
            device
                .identity()
                .expect("an MDM identity")
                .sha256_fingerprint(),
        );
        assert!(
            fingerprints.insert(fingerprint),
            "{}: identity shared",
            device.udid
        );
        let binding = store
            .identity(&fingerprint)
            .expect("binding lookup")
            .expect("the identity is bound");
        assert_eq!(
            (binding.device_id.as_str(), &binding.tenant, binding.retired),
            (device.udid.as_str(), &tenant, false)
        );
    }
    let list = b.request(
        "GET",
        "/admin/api/devices",
        &[("Authorization", &auth)],
        b"",
    );
    let list: Value = serde_json::from_slice(&list.body).expect("json");
    for (device, _, _) in &finished {
        let n = list
            .as_array()
            .expect("array")
            .iter()
            .filter(|d| d["udid"] == device.udid.as_str())
            .count();
        assert_eq!(n, 1, "{} listed {n} times", device.udid);
    }
}
