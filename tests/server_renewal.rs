//! Identity renewal over the example server (`--identity-lifetime`,
//! `--renew-before`): a simulated Mac whose identity falls due a few
//! seconds after it was issued gets the renewal `InstallProfile` on its next
//! `Idle`, enrolls a new identity and goes on with it; the admin API shows
//! the identity bound and the renewal state. A device that answers `Error`,
//! or never answers, or a `kill -9` between issuing the new certificate and
//! seeing it used, leaves the device managed, and the renewal completes
//! later.
#![cfg(all(feature = "sqlite", feature = "test-support"))]

mod server_support;

use std::path::Path;
use std::time::{Duration, Instant};

use mdm_enroll::http::media_type;
use mdm_enroll::mdm::Command;
use mdm_enroll::testing::{CommandAnswer, DeviceError, SimulatedDevice, Transport};
use server_support::{HttpTransport, Server, basic, device_ca, rng, simulated_device};

const USER: (&str, &str, &str) = ("alice", "pw", "corp.example");

/// Identities live an hour and are renewed from `DUE` after issuance.
const LIFETIME: &str = "3600s";
const RENEW_BEFORE: &str = "3592s";
const DUE: Duration = Duration::from_secs(8);

fn args(device_ca: &Path) -> Vec<String> {
    args_with(device_ca, &[])
}

fn args_with(device_ca: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--http",
        "--user",
        "alice:pw@corp.example",
        "--admin",
        "root:adminpw",
        "--device-ca",
        device_ca.to_str().expect("UTF-8 path"),
        "--identity-lifetime",
        LIFETIME,
        "--renew-before",
        RENEW_BEFORE,
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Connect with `Idle`; the command the server answers with, if any.
fn idle(device: &SimulatedDevice, t: &mut HttpTransport) -> Option<Command> {
    let mut idle = plist::Dictionary::new();
    idle.insert("UDID".into(), device.udid.clone().into());
    idle.insert("Status".into(), "Idle".into());
    let mut body = Vec::new();
    plist::to_writer_xml(&mut body, &plist::Value::Dictionary(idle)).expect("plist");
    let request = device
        .mdm_request(media_type::CONNECT, body)
        .expect("request");
    let response = t.send(request);
    assert_eq!(response.status, 200);
    (!response.body.is_empty())
        .then(|| Command::decode(&response.body, &Default::default()).expect("command"))
}

fn pair(request_type: &str, status: &str) -> (String, String) {
    (request_type.to_owned(), status.to_owned())
}

fn start(data: &Path, listen: &str, args: &[String]) -> Server {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_on(data, listen, &args)
}

fn api(server: &Server, path: &str) -> serde_json::Value {
    let auth = basic("root", "adminpw");
    let r = server.request("GET", path, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).expect("JSON")
}

fn detail(server: &Server, udid: &str) -> serde_json::Value {
    api(server, &format!("/admin/api/devices/{udid}"))
}

fn listed(server: &Server, udid: &str) -> serde_json::Value {
    api(server, "/admin/api/devices")
        .as_array()
        .expect("list")
        .iter()
        .find(|d| d["udid"] == udid)
        .cloned()
        .expect("device listed")
}

fn serial_hex(device: &SimulatedDevice) -> String {
    device
        .identity()
        .expect("identity")
        .serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Steps 2–13 at the server; returns when the identity was issued.
fn activate(t: &mut HttpTransport, device: &mut SimulatedDevice) -> Instant {
    let service = device
        .self_service(t, "/self-service/activate", USER.0, USER.1, USER.2)
        .expect("steps 2-4");
    device.send_attributes(t, &service).expect("steps 5-6");
    let issued = Instant::now();
    device
        .scep_enroll(t, std::time::SystemTime::now(), &mut rng())
        .expect("steps 7-8");
    device.check_in(t, "Authenticate").expect("step 9");
    device.check_in(t, "TokenUpdate").expect("step 10");
    device.run_commands(t).expect("steps 11-13");
    issued
}

fn wait_until_due(issued: Instant) {
    let due = issued + DUE + Duration::from_secs(1);
    if let Some(left) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

fn refused_400(result: Result<Vec<(String, String)>, DeviceError>) {
    assert_eq!(
        result.unwrap_err(),
        DeviceError::Status {
            step: 12,
            status: 400
        }
    );
}

#[test]
fn due_identity_is_renewed_on_idle_and_shown_in_the_admin_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_pem) = device_ca(dir.path());
    let data = dir.path().join("data");
    let server = start(&data, "127.0.0.1:0", &args(&ca_pem));
    let mut t = HttpTransport::new(server.addr);
    let mut device = simulated_device(&ca, &data);
    let issued = activate(&mut t, &mut device);
    let udid = device.udid.clone();

    let d = detail(&server, &udid);
    assert_eq!(d["identity"]["serial"], serial_hex(&device));
    let not_after = d["identity"]["not_after"].as_str().expect("not_after");
    assert!(
        not_after.ends_with('Z') && not_after.contains('T'),
        "{not_after}"
    );
    assert_eq!(listed(&server, &udid)["renewal"], "not_due");
    let old_device = device.clone();
    let old_serial = serial_hex(&device);

    wait_until_due(issued);
    let state = listed(&server, &udid)["renewal"].clone();
    assert!(state == "due" || state == "in_flight", "{state}");
    let answered = device
        .run_commands_renewing(&mut t, std::time::SystemTime::now(), &mut rng())
        .expect("renewal");
    assert_eq!(
        answered,
        [("InstallProfile".to_owned(), "Acknowledged".to_owned())]
    );
    assert_ne!(serial_hex(&device), old_serial);
    let d = detail(&server, &udid);
    assert_eq!(d["identity"]["serial"], serial_hex(&device));
    assert_eq!(d["complete"], true);
    let types: Vec<String> = server_support::results(&d)
        .into_iter()
        .map(|(_, request_type, status)| format!("{request_type}:{status}"))
        .collect();
    assert_eq!(
        types,
        [
            "DeviceInformation:Acknowledged",
            "SecurityInfo:Acknowledged",
            "ProfileList:Acknowledged",
            "InstallProfile:Acknowledged"
        ]
    );

    // The old identity is refused (400, never 401); the renewal challenge
    // cannot be used again; the new identity checks in as the same
    // enrollment.
    let mut old_device = old_device;
    refused_400(old_device.run_commands(&mut t));
    let mut replay = device.clone();
    replay.scep_key =
        std::sync::Arc::new(mdm_enroll::crypto::RsaKey::generate(&mut rng(), 2048).expect("key"));
    assert!(matches!(
        replay.scep_enroll(&mut t, std::time::SystemTime::now(), &mut rng()),
        Err(DeviceError::ScepFailure(_))
    ));
    device
        .check_in(&mut t, "Authenticate")
        .expect("Authenticate");
    device.check_in(&mut t, "TokenUpdate").expect("TokenUpdate");
    let d = detail(&server, &udid);
    assert_eq!(d["complete"], true);
    assert_eq!(server_support::results(&d).len(), 4, "results kept");
}

#[test]
fn kill_9_between_issuing_and_first_use_leaves_the_device_managed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_pem) = device_ca(dir.path());
    let data = dir.path().join("data");
    let args = args(&ca_pem);
    let mut server = start(&data, "127.0.0.1:0", &args);
    let listen = server.addr.to_string();
    let mut t = HttpTransport::new(server.addr);
    let mut device = simulated_device(&ca, &data);
    let issued = activate(&mut t, &mut device);
    let udid = device.udid.clone();
    let old_device = device.clone();
    wait_until_due(issued);

    // Idle → the renewal InstallProfile; the device installs it (SCEP
    // issues the new certificate), and the server dies before it hears
    // from the device again.
    let command = idle(&device, &mut t).expect("a command");
    assert_eq!(command.request_type, "InstallProfile");
    let Some(plist::Value::Data(payload)) = command.params.get("Payload") else {
        panic!("InstallProfile without Payload");
    };
    device
        .install_enrollment_update(&mut t, payload, std::time::SystemTime::now(), &mut rng())
        .expect("new identity");
    server.kill();

    let server = start(&data, &listen, &args);
    let mut t = HttpTransport::new(server.addr);
    // Both identities work until the new one is first seen...
    let mut old_device = old_device;
    let (new_serial, old_serial) = (serial_hex(&device), serial_hex(&old_device));
    assert_eq!(detail(&server, &udid)["identity"]["serial"], old_serial);
    old_device
        .check_in(&mut t, "TokenUpdate")
        .expect("old identity still works");
    // ...the renewal completes when the new one is used, and from then on
    // only the new one works.
    device.run_commands(&mut t).expect("new identity");
    assert_eq!(detail(&server, &udid)["identity"]["serial"], new_serial);
    refused_400(old_device.run_commands(&mut t));
    device.check_in(&mut t, "TokenUpdate").expect("managed");
}

#[test]
fn error_answer_and_silence_leave_the_device_managed_until_a_retry_renews() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_pem) = device_ca(dir.path());
    let data = dir.path().join("data");
    // A short delivery lease, so the unanswered attempt 2 is handed out
    // again (and refused) before attempt 3 below.
    let flags = [
        "--renewal-retry",
        "2s",
        "--renewal-timeout",
        "4s",
        "--delivery-lease",
        "1s",
    ];
    let server = start(&data, "127.0.0.1:0", &args_with(&ca_pem, &flags));
    let mut t = HttpTransport::new(server.addr);
    let mut device = simulated_device(&ca, &data);
    let issued = activate(&mut t, &mut device);
    let udid = device.udid.clone();
    let old_device = device.clone();
    let old_serial = serial_hex(&device);
    wait_until_due(issued);

    // Attempt 1: the device answers Error. It keeps its identity and stays
    // managed.
    let mut device = device.answering("InstallProfile", CommandAnswer::Error);
    let answered = device
        .run_commands_renewing(&mut t, std::time::SystemTime::now(), &mut rng())
        .expect("connect");
    assert_eq!(answered, [pair("InstallProfile", "Error")]);
    assert_eq!(serial_hex(&device), old_serial);
    device
        .check_in(&mut t, "TokenUpdate")
        .expect("still managed");
    let listed_now = listed(&server, &udid);
    assert_eq!(listed_now["renewal"], "in_flight");
    assert_eq!(listed_now["renewal_attempt"], 1);

    // After the retry delay, attempt 2 comes with the next Idle; the device
    // takes it and never answers.
    std::thread::sleep(Duration::from_millis(2500));
    let command = idle(&device, &mut t).expect("attempt 2");
    assert_eq!(command.request_type, "InstallProfile");
    assert_eq!(listed(&server, &udid)["renewal_attempt"], 2);
    device
        .check_in(&mut t, "TokenUpdate")
        .expect("still managed");

    // After the answer timeout, attempt 3: the unanswered attempt 2 is
    // delivered again and its challenge no longer works (Error), attempt 3
    // renews the identity.
    std::thread::sleep(Duration::from_millis(4500));
    device.answers.remove("InstallProfile");
    let answered = device
        .run_commands_renewing(&mut t, std::time::SystemTime::now(), &mut rng())
        .expect("connect");
    assert_eq!(
        answered,
        [
            pair("InstallProfile", "Error"),
            pair("InstallProfile", "Acknowledged")
        ]
    );
    assert_ne!(serial_hex(&device), old_serial);
    assert_eq!(
        detail(&server, &udid)["identity"]["serial"],
        serial_hex(&device)
    );
    let mut old_device = old_device;
    refused_400(old_device.run_commands(&mut t));
}
