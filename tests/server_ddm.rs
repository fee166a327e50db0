//! The example server with `--ddm`, over real HTTP on 127.0.0.1: a
//! simulated Mac acknowledges the `DeclarativeManagement` command of its
//! initial configuration, runs the macOS sync (tokens → declaration-items →
//! each declaration → status), and only that status report completes the
//! activation (step 13). A declaration reported invalid shows its reasons in
//! the admin API; a changed set is queued and pushed, and the device's next
//! status with the new token marks it applied; a removed declaration leaves
//! `declaration-items` and answers 404.
#![cfg(all(feature = "sqlite", feature = "test-support"))]

mod server_support;

use std::path::PathBuf;
use std::time::SystemTime;

use mdm_enroll::testing::{SimulatedDevice, TestDeviceCa};
use serde_json::{Value, json};
use server_support::{
    HttpResponse, HttpTransport, Server, basic, device_ca, rng, simulated_device,
};

const USER: (&str, &str, &str) = ("alice", "s3cret pw", "corp.example");

fn start() -> (tempfile::TempDir, TestDeviceCa, PathBuf, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_pem) = device_ca(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &[
            "--http",
            "--ddm",
            "--user",
            "alice:s3cret pw@corp.example",
            "--admin",
            "root:adminpw",
            "--device-ca",
            ca_pem.to_str().expect("utf-8 path"),
        ],
    );
    (dir, ca, data, server)
}

fn api(server: &Server, method: &str, path: &str, body: &[u8]) -> HttpResponse {
    let auth = basic("root", "adminpw");
    server.request(method, path, &[("Authorization", &auth)], body)
}

fn get_device(server: &Server, udid: &str) -> Value {
    let r = api(server, "GET", &format!("/admin/api/devices/{udid}"), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).expect("JSON")
}

fn steps(device: &Value) -> Vec<u64> {
    device["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|s| s["step"].as_u64().expect("step"))
        .collect()
}

fn declaration<'a>(device: &'a Value, id: &str) -> &'a Value {
    device["declarations"]
        .as_array()
        .expect("declarations")
        .iter()
        .find(|d| d["identifier"] == id)
        .unwrap_or_else(|| panic!("no {id} in {device}"))
}

/// Steps 2–12: activation and every initial command answered.
fn activate(server: &Server, device: &mut SimulatedDevice) -> Vec<(String, String)> {
    let mut t = HttpTransport::new(server.addr);
    device
        .activate(
            &mut t,
            "/self-service/activate",
            USER,
            SystemTime::now(),
            &mut rng(),
        )
        .expect("steps 2-12")
}

#[test]
fn step_13_comes_from_the_status_report() {
    let (_dir, ca, data, server) = start();
    let mut device = simulated_device(&ca, &data);
    let answered = activate(&server, &mut device);
    assert!(
        answered
            .iter()
            .any(|(t, s)| t == "DeclarativeManagement" && s == "Acknowledged"),
        "{answered:?}"
    );
    let before = get_device(&server, &device.udid);
    assert_eq!(steps(&before), (1..=12).collect::<Vec<u64>>());
    assert_eq!(before["complete"], false);
    // The initial set: an activation of at least one configuration, not yet reported.
    let decls = before["declarations"].as_array().expect("declarations");
    let activation = decls
        .iter()
        .find(|d| d["type"] == "com.apple.activation.simple")
        .expect("an activation");
    assert_eq!(activation["active"], Value::Null);
    assert_eq!(activation["valid"], Value::Null);
    assert!(decls.iter().any(|d| {
        d["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("com.apple.configuration."))
    }));
    for d in decls {
        let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "identifier",
            "type",
            "server_token",
            "active",
            "valid",
            "reasons",
        ] {
            assert!(keys.contains(&k), "{k} missing in {d}");
        }
    }

    let mut t = HttpTransport::new(server.addr);
    let sync = device.ddm_sync(&mut t).expect("DDM sync");
    assert_eq!(sync.status_answer, 200);
    assert_eq!(sync.fetched.len(), decls.len());
    let after = get_device(&server, &device.udid);
    assert_eq!(steps(&after), (1..=13).collect::<Vec<u64>>());
    assert_eq!(after["complete"], true);
    for (_, id, token) in &sync.items {
        let d = declaration(&after, id);
        assert_eq!(d["server_token"], token.as_str());
        assert_eq!(d["active"], true);
        assert_eq!(d["valid"], "valid");
        assert_eq!(d["reasons"], json!([]));
    }
}

#[test]
fn an_invalid_declaration_shows_its_reasons_and_the_activation_does_not_complete() {
    let (_dir, ca, data, server) = start();
    let mut device = simulated_device(&ca, &data);
    activate(&server, &mut device);
    let decls = get_device(&server, &device.udid)["declarations"].clone();
    let config = decls
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "com.apple.configuration.management.test")
        .expect("a management.test configuration")["identifier"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut device = device.ddm_invalid(&config, "Error.ConfigurationCannotBeApplied");
    let mut t = HttpTransport::new(server.addr);
    device.ddm_sync(&mut t).expect("DDM sync");
    let after = get_device(&server, &device.udid);
    assert!(!steps(&after).contains(&13));
    assert_eq!(after["complete"], false);
    let d = declaration(&after, &config);
    assert_eq!(d["active"], false);
    assert_eq!(d["valid"], "invalid");
    assert_eq!(
        d["reasons"][0]["code"],
        "Error.ConfigurationCannotBeApplied"
    );
    assert_eq!(d["reasons"][0]["description"], "Simulated failure");
}

#[test]
fn a_changed_set_is_pushed_and_applied_and_a_removed_declaration_is_404() {
    let (_dir, ca, data, server) = start();
    let mut device = simulated_device(&ca, &data);
    activate(&server, &mut device);
    let mut t = HttpTransport::new(server.addr);
    let first = device.ddm_sync(&mut t).expect("DDM sync");
    let path = format!("/admin/api/devices/{}", device.udid);
    let pushes_before = get_device(&server, &device.udid)["push"]["unanswered"].clone();

    // Change the configuration's Echo and add a second configuration.
    let set = json!([
        {"Type": "com.apple.activation.simple", "Identifier": "mdm-enroll.activation",
         "Payload": {"StandardConfigurations": ["mdm-enroll.test", "extra.test"]}},
        {"Type": "com.apple.configuration.management.test", "Identifier": "mdm-enroll.test",
         "Payload": {"Echo": "changed"}},
        {"Type": "com.apple.configuration.management.test", "Identifier": "extra.test",
         "Payload": {"Echo": "extra"}},
    ]);
    let r = api(
        &server,
        "PUT",
        &format!("{path}/declarations"),
        set.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let answer: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(answer["command_uuid"].is_string(), "{answer}");
    assert_ne!(
        answer["declarations_token"],
        first.declarations_token.as_str()
    );
    let queued = get_device(&server, &device.udid);
    assert!(
        queued["queue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["request_type"] == "DeclarativeManagement"),
        "{queued}"
    );
    assert_ne!(
        queued["push"]["unanswered"], pushes_before,
        "a push was sent"
    );
    // Until the device reports the new token, the changed one is not applied.
    let pending = declaration(&queued, "mdm-enroll.test");
    let old_token = first
        .items
        .iter()
        .find(|(_, id, _)| id == "mdm-enroll.test")
        .unwrap()
        .2
        .clone();
    assert_ne!(pending["server_token"], old_token.as_str());
    assert_eq!(pending["active"], Value::Null);

    let answered = device.run_commands(&mut t).expect("connect");
    assert_eq!(
        answered,
        [(
            "DeclarativeManagement".to_owned(),
            "Acknowledged".to_owned()
        )]
    );
    let sync = device.ddm_sync(&mut t).expect("DDM sync");
    assert_eq!(
        sync.declarations_token,
        answer["declarations_token"].as_str().unwrap()
    );
    let mut fetched = sync.fetched.clone();
    fetched.sort();
    assert_eq!(
        fetched,
        ["extra.test", "mdm-enroll.activation", "mdm-enroll.test"]
    );
    let applied = get_device(&server, &device.udid);
    for id in ["mdm-enroll.test", "extra.test"] {
        assert_eq!(declaration(&applied, id)["valid"], "valid");
        assert_eq!(declaration(&applied, id)["active"], true);
    }

    // Remove extra.test: gone from declaration-items, 404 when asked for.
    let smaller = json!([
        {"Type": "com.apple.activation.simple", "Identifier": "mdm-enroll.activation",
         "Payload": {"StandardConfigurations": ["mdm-enroll.test"]}},
        {"Type": "com.apple.configuration.management.test", "Identifier": "mdm-enroll.test",
         "Payload": {"Echo": "changed"}},
    ]);
    let r = api(
        &server,
        "PUT",
        &format!("{path}/declarations"),
        smaller.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    device.run_commands(&mut t).expect("connect");
    let sync = device.ddm_sync(&mut t).expect("DDM sync");
    assert!(!sync.items.iter().any(|(_, id, _)| id == "extra.test"));
    let gone = device
        .ddm_request(&mut t, "declaration/configuration/extra.test", None)
        .expect("request");
    assert_eq!(gone.status, 404);
    let after = get_device(&server, &device.udid);
    assert!(
        !after["declarations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["identifier"] == "extra.test")
    );

    // Bad bodies are refused, naming the problem.
    for bad in [&b"{}"[..], b"[{\"Type\":\"com.apple.configuration.legacy\",\"Identifier\":\"x\",\"Payload\":{\"ProfileURL\":\"http://x\"}}]"] {
        let r = api(&server, "PUT", &format!("{path}/declarations"), bad);
        assert_eq!(r.status, 400, "{}", r.text());
    }
}
