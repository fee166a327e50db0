//! Two example-server processes started with the same `--data` folder and
//! the same `--store postgres://…` serve the same devices: simulated Macs
//! complete all thirteen steps with every request going to the other
//! replica than the one before, each replica's admin API lists every
//! device, and one device connecting to both replicas at once gets 200 from
//! both (never a 503 from a version conflict) and is handed each queued
//! command once: never the same command on both connections.
#![cfg(all(feature = "postgres", feature = "sqlite", feature = "test-support"))]

mod postgres_support;
mod server_support;

use std::sync::Barrier;
use std::time::SystemTime;

use mdm_enroll::http::{Request, Response, media_type};
use mdm_enroll::testing::{SimulatedDevice, Transport};
use serde_json::Value;
use server_support::{HttpTransport, Server, basic, device_ca, rng, simulated_device};

const USER: (&str, &str, &str) = ("alice", "s3cret pw", "corp.example");
const DEVICES: usize = 3;

/// Every request to the other replica than the one before.
struct Alternating<'a> {
    replicas: [&'a Server; 2],
    next: usize,
}

impl Transport for Alternating<'_> {
    fn send(&mut self, request: Request) -> Response {
        let server = self.replicas[self.next % 2];
        self.next += 1;
        HttpTransport::new(server.addr).send(request)
    }
}

/// A connect with `status` (answering `uuid`, if any).
fn report(device: &SimulatedDevice, server: &Server, status: &str, uuid: Option<&str>) -> Response {
    let mut d = plist::Dictionary::new();
    d.insert("UDID".into(), device.udid.clone().into());
    d.insert("Status".into(), status.into());
    if let Some(uuid) = uuid {
        d.insert("CommandUUID".into(), uuid.into());
    }
    let mut body = Vec::new();
    plist::to_writer_xml(&mut body, &plist::Value::Dictionary(d)).expect("plist");
    let req = device
        .mdm_request(media_type::CONNECT, body)
        .expect("signed request");
    HttpTransport::new(server.addr).send(req)
}

fn idle_connect(device: &SimulatedDevice, server: &Server) -> u16 {
    report(device, server, "Idle", None).status
}

/// One connection: `Idle`, then acknowledge every command handed out until
/// the empty answer. Returns the commands this connection was handed.
fn drain(device: &SimulatedDevice, server: &Server) -> Vec<String> {
    let mut handed = Vec::new();
    let mut resp = report(device, server, "Idle", None);
    loop {
        assert_eq!(resp.status, 200, "connect answered {}", resp.status);
        if resp.body.is_empty() {
            return handed;
        }
        let command = server_support::plist_dict(&resp.body);
        let uuid = command
            .get("CommandUUID")
            .and_then(|u| u.as_string())
            .expect("CommandUUID")
            .to_owned();
        handed.push(uuid.clone());
        resp = report(device, server, "Acknowledged", Some(&uuid));
    }
}

#[test]
#[cfg_attr(
    not(mdm_have_postgres),
    ignore = "needs PostgreSQL: apt-get install postgresql, or set MDM_TEST_POSTGRES"
)]
fn two_replicas_over_one_postgres_serve_the_same_devices() {
    let pg = postgres_support::Server::start();
    let url = pg.fresh();
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_pem) = device_ca(dir.path());
    let data = dir.path().join("data");
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
    ];
    let a = Server::start(&data, &args);
    let b = Server::start(&data, &args);
    let mut devices = Vec::new();
    for n in 0..DEVICES {
        let mut t = Alternating {
            replicas: [&a, &b],
            next: n,
        };
        let mut device = simulated_device(&ca, &data);
        device
            .activate(
                &mut t,
                "/self-service/activate",
                USER,
                SystemTime::now(),
                &mut rng(),
            )
            .unwrap_or_else(|e| panic!("device {n} across both replicas: {e:?}"));
        devices.push(device);
    }
    let auth = basic("root", "adminpw");
    for replica in [&a, &b] {
        let list = replica.request(
            "GET",
            "/admin/api/devices",
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(list.status, 200);
        let list: Value = serde_json::from_slice(&list.body).expect("json");
        for device in &devices {
            assert!(
                list.as_array()
                    .expect("array")
                    .iter()
                    .any(|d| d["udid"] == device.udid.as_str()),
                "{} missing on a replica: {list}",
                device.udid
            );
        }
    }
    let barrier = Barrier::new(2);
    for round in 0..20 {
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let racers: Vec<_> = [&a, &b]
                .into_iter()
                .map(|replica| {
                    let (barrier, device) = (&barrier, &devices[round % DEVICES]);
                    s.spawn(move || {
                        barrier.wait();
                        idle_connect(device, replica)
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(statuses, [200, 200], "round {round}");
    }
    // Commands queued, then the device connects to both replicas at once
    // and answers on each connection: every command is handed out once.
    const ROUNDS: usize = 12;
    const PER_ROUND: usize = 3;
    for round in 0..ROUNDS {
        let device = &devices[round % DEVICES];
        let queued: Vec<String> = (0..PER_ROUND).map(|i| format!("R{round}-{i}")).collect();
        for (i, uuid) in queued.iter().enumerate() {
            let r = [&a, &b][i % 2].request(
                "POST",
                &format!("/admin/api/devices/{}/commands", device.udid),
                &[("Authorization", &auth)],
                &server_support::command_plist(uuid, "ProfileList"),
            );
            assert_eq!(r.status, 201, "{}", r.text());
        }
        let handed: Vec<Vec<String>> = std::thread::scope(|s| {
            let racers: Vec<_> = [&a, &b]
                .into_iter()
                .map(|replica| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        drain(device, replica)
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let mut all: Vec<&String> = handed.iter().flatten().collect();
        all.sort_unstable();
        let mut expected: Vec<&String> = queued.iter().collect();
        expected.sort_unstable();
        assert_eq!(
            all, expected,
            "round {round}: each command handed out exactly once (per replica: {handed:?})"
        );
    }
    // No report lost: each replica shows every command acknowledged once.
    for replica in [&a, &b] {
        for (n, device) in devices.iter().enumerate() {
            let r = replica.request(
                "GET",
                &format!("/admin/api/devices/{}", device.udid),
                &[("Authorization", &auth)],
                b"",
            );
            assert_eq!(r.status, 200);
            let d: Value = serde_json::from_slice(&r.body).expect("json");
            assert_eq!(d["queued"], 0, "{d}");
            let mut ours: Vec<(String, String, String)> = server_support::results(&d)
                .into_iter()
                .filter(|(u, _, _)| u.starts_with('R'))
                .collect();
            ours.sort_unstable();
            let mut expected: Vec<(String, String, String)> = (0..ROUNDS)
                .filter(|round| round % DEVICES == n)
                .flat_map(|round| (0..PER_ROUND).map(move |i| format!("R{round}-{i}")))
                .map(|u| (u, "ProfileList".to_owned(), "Acknowledged".to_owned()))
                .collect();
            expected.sort_unstable();
            assert_eq!(ours, expected, "{}", device.udid);
        }
    }
}
