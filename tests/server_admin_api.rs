//! The example server's admin JSON API, over real HTTP on 127.0.0.1: after a
//! simulated Mac completes the thirteen steps, a command queued through the
//! API is pushed (visible in the push state), fetched by the device's next
//! connect, acknowledged and listed in the results; a command cancelled
//! before the device connects is never delivered, and a delivered one cannot
//! be cancelled; unknown devices, bad bodies and bad credentials are refused.
#![cfg(all(feature = "sqlite", feature = "test-support"))]

mod server_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mdm_enroll::http::media_type;
use mdm_enroll::testing::{SimulatedDevice, TestDeviceCa, Transport};
use serde_json::Value;
use server_support::{
    HttpResponse, HttpTransport, Server, basic, command_plist, device_ca, results, rng,
    simulated_device,
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
            "--user",
            "alice:s3cret pw@corp.example",
            "--admin",
            "root:adminpw",
            "--device-ca",
            ca_pem.to_str().expect("utf-8 path"),
            "--delivery-lease",
            "1s",
        ],
    );
    (dir, ca, data, server)
}

/// A simulated Mac that completed all thirteen steps.
fn activated(server: &Server, ca: &TestDeviceCa, data: &Path) -> SimulatedDevice {
    let mut t = HttpTransport::new(server.addr);
    let mut device = simulated_device(ca, data);
    device
        .activate(
            &mut t,
            "/self-service/activate",
            USER,
            SystemTime::now(),
            &mut rng(),
        )
        .expect("all thirteen steps");
    device
}

fn api(server: &Server, method: &str, path: &str, body: &[u8]) -> HttpResponse {
    let auth = basic("root", "adminpw");
    server.request(method, path, &[("Authorization", &auth)], body)
}

fn json(r: &HttpResponse) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", r.status, r.text()))
}

fn get_device(server: &Server, udid: &str) -> Value {
    let r = api(server, "GET", &format!("/admin/api/devices/{udid}"), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    json(&r)
}

fn post_command(server: &Server, udid: &str, body: &[u8]) -> HttpResponse {
    api(
        server,
        "POST",
        &format!("/admin/api/devices/{udid}/commands"),
        body,
    )
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 20 && s.as_bytes()[10] == b'T' && s.ends_with('Z') && s.starts_with("20")
    })
}

#[test]
fn queued_command_is_pushed_fetched_acknowledged_and_listed() {
    let (_dir, ca, data, server) = start();
    let mut device = activated(&server, &ca, &data);
    let udid = device.udid.clone();

    let list = api(&server, "GET", "/admin/api/devices", b"");
    assert_eq!(list.status, 200);
    assert_eq!(list.header("content-type"), Some("application/json"));
    let list = json(&list);
    let entry = list
        .as_array()
        .expect("an array")
        .iter()
        .find(|d| d["udid"] == udid.as_str())
        .expect("the device is listed");
    assert_eq!(entry["serial"], device.serial.as_str());
    assert_eq!(entry["user"], "alice");
    assert_eq!(entry["step"], 13);
    assert_eq!(entry["complete"], true);
    assert_eq!(entry["enrolled"], true);
    assert_eq!(entry["queued"], 0);
    assert_eq!(entry["push"]["token_valid"], true);
    assert_eq!(
        entry["push"]["last_status"],
        Value::Null,
        "no APNs answer yet"
    );
    assert!(
        is_rfc3339(&entry["push"]["last_push"]),
        "step 10 pushed: {entry}"
    );
    assert_eq!(entry["push"]["unanswered"], 0, "the device connected");

    // A command plist as Apple documents it: the uuid comes from it.
    let r = post_command(
        &server,
        &udid,
        &command_plist("API-CERTS-1", "CertificateList"),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(json(&r)["command_uuid"], "API-CERTS-1");
    // The JSON form gets a fresh uuid.
    let r = post_command(
        &server,
        &udid,
        br#"{"request_type":"DeviceInformation","params":{"Queries":["OSVersion","SerialNumber"]}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let json_uuid = json(&r)["command_uuid"]
        .as_str()
        .expect("command_uuid")
        .to_owned();
    assert_eq!(json_uuid.len(), 36);

    let before = get_device(&server, &udid);
    assert_eq!(before["queued"], 2);
    assert_eq!(
        before["push"]["unanswered"], 2,
        "each enqueue pushed: {before}"
    );
    let queue: Vec<&str> = before["queue"]
        .as_array()
        .expect("queue")
        .iter()
        .map(|c| c["command_uuid"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(queue, ["API-CERTS-1", json_uuid.as_str()]);
    assert_eq!(before["queue"][0]["request_type"], "CertificateList");

    // The device's next connect fetches both, one per response.
    let mut t = HttpTransport::new(server.addr);
    let answered = device.run_commands(&mut t).expect("connect");
    assert_eq!(
        answered,
        [
            ("CertificateList".to_owned(), "Acknowledged".to_owned()),
            ("DeviceInformation".to_owned(), "Acknowledged".to_owned()),
        ]
    );

    let after = get_device(&server, &udid);
    assert_eq!(after["queued"], 0);
    assert_eq!(after["push"]["unanswered"], 0);
    let results = results(&after);
    for (uuid, request_type) in [
        ("API-CERTS-1", "CertificateList"),
        (json_uuid.as_str(), "DeviceInformation"),
    ] {
        assert!(
            results.contains(&(uuid.into(), request_type.into(), "Acknowledged".into())),
            "{uuid} not in results: {results:?}"
        );
    }
    let timeline = after["timeline"].as_array().expect("timeline");
    assert!(timeline.iter().all(|s| is_rfc3339(&s["at"])));
    assert_eq!(timeline.last().map(|s| &s["step"]), Some(&Value::from(13)));

    // Push now.
    let r = api(
        &server,
        "POST",
        &format!("/admin/api/devices/{udid}/push"),
        b"",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(json(&r)["pushed"], true);
    assert_eq!(get_device(&server, &udid)["push"]["unanswered"], 1);

    // The admin page shows the push state.
    let page = server_support::admin_page(&server);
    let section = server_support::admin_section(&page, &udid);
    assert!(
        section.contains("data-token-valid=\"true\"") && section.contains("last push 20"),
        "{section}"
    );
}

/// An `Idle` connect the test sends itself, so that a command is delivered
/// and left unanswered.
fn idle_connect(device: &SimulatedDevice, server: &Server) -> Vec<u8> {
    let mut d = plist::Dictionary::new();
    d.insert("UDID".into(), device.udid.clone().into());
    d.insert("Status".into(), "Idle".into());
    let mut body = Vec::new();
    plist::to_writer_xml(&mut body, &plist::Value::Dictionary(d)).expect("plist");
    let req = device
        .mdm_request(media_type::CONNECT, body)
        .expect("signed request");
    let resp = HttpTransport::new(server.addr).send(req);
    assert_eq!(resp.status, 200);
    resp.body.into_vec()
}

#[test]
fn cancel_before_delivery_only() {
    let (_dir, ca, data, server) = start();
    let mut device = activated(&server, &ca, &data);
    let udid = device.udid.clone();
    let cancel = |uuid: &str| {
        api(
            &server,
            "DELETE",
            &format!("/admin/api/devices/{udid}/commands/{uuid}"),
            b"",
        )
    };

    let r = post_command(&server, &udid, &command_plist("DROP-ME", "ProfileList"));
    assert_eq!(r.status, 201);
    let r = cancel("DROP-ME");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get_device(&server, &udid)["queued"], 0);
    assert_eq!(cancel("DROP-ME").status, 409, "cancelled twice");

    let r = post_command(&server, &udid, &command_plist("KEEP-ME", "SecurityInfo"));
    assert_eq!(r.status, 201);
    let sent = idle_connect(&device, &server);
    assert!(
        String::from_utf8_lossy(&sent).contains("KEEP-ME"),
        "the connect delivers the queued command"
    );
    let r = cancel("KEEP-ME");
    assert_eq!(r.status, 409, "a delivered command: {}", r.text());
    assert!(r.text().contains("delivered"), "{}", r.text());
    assert_eq!(get_device(&server, &udid)["queue"][0]["delivered"], true);

    // The device never answered: the delivery holds the command for the
    // lease (1 s here), then a new connection is handed it again.
    std::thread::sleep(Duration::from_millis(1100));
    let mut t = HttpTransport::new(server.addr);
    let answered = device.run_commands(&mut t).expect("connect");
    assert_eq!(
        answered,
        [("SecurityInfo".to_owned(), "Acknowledged".to_owned())],
        "the cancelled command was never delivered"
    );
    let results = results(&get_device(&server, &udid));
    assert!(
        results
            .iter()
            .any(|(u, _, s)| u == "KEEP-ME" && s == "Acknowledged")
    );
    assert!(
        results.iter().all(|(u, _, _)| u != "DROP-ME"),
        "{results:?}"
    );
    assert_eq!(cancel("KEEP-ME").status, 409, "a finished command");
    assert_eq!(cancel("NEVER-QUEUED").status, 404);
}

#[test]
fn refusals_404_400_401() {
    let (_dir, ca, data, server) = start();

    // Credentials: none, wrong password, wrong user.
    for headers in [
        vec![],
        vec![("Authorization", basic("root", "wrong"))],
        vec![("Authorization", basic("admin", "adminpw"))],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for (method, path) in [
            ("GET", "/admin/api/devices"),
            ("GET", "/admin/api/devices/X"),
            ("POST", "/admin/api/devices/X/commands"),
            ("POST", "/admin/api/devices/X/push"),
            ("DELETE", "/admin/api/devices/X/commands/Y"),
        ] {
            let r = server.request(method, path, &h, b"");
            assert_eq!(r.status, 401, "{method} {path} with {h:?}");
        }
    }

    // Unknown device.
    let plist = command_plist("C-1", "ProfileList");
    for (method, path, body) in [
        ("GET", "/admin/api/devices/NO-SUCH-UDID", &b""[..]),
        (
            "POST",
            "/admin/api/devices/NO-SUCH-UDID/commands",
            &plist[..],
        ),
        ("POST", "/admin/api/devices/NO-SUCH-UDID/push", b""),
        (
            "DELETE",
            "/admin/api/devices/NO-SUCH-UDID/commands/C-1",
            b"",
        ),
    ] {
        let r = api(&server, method, path, body);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
    }
    let list = json(&api(&server, "GET", "/admin/api/devices", b""));
    assert_eq!(list, Value::Array(Vec::new()));

    // Bad bodies, each refused with a message naming the problem.
    let device = activated(&server, &ca, &data);
    let udid = device.udid.clone();
    let cases: [(&[u8], &str); 8] = [
        (b"", "plist"),
        (b"this is not a plist", "plist"),
        (
            b"<plist version=\"1.0\"><dict><key>Command</key><dict><key>RequestType</key><string>ProfileList</string></dict></dict></plist>",
            "CommandUUID",
        ),
        (
            b"<plist version=\"1.0\"><dict><key>CommandUUID</key><string>x</string><key>Command</key><dict/></dict></plist>",
            "RequestType",
        ),
        (b"{\"params\":{}}", "request_type"),
        (b"{\"request_type\":\"ProfileList\",\"params\":{\"x\":null}}", "params.x"),
        (b"{\"request_type\":\"ProfileList\",\"extra\":1}", "extra"),
        (b"{not json", "JSON"),
    ];
    for (body, names) in cases {
        let r = post_command(&server, &udid, body);
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        let why = json(&r)["error"].as_str().unwrap_or_default().to_owned();
        assert!(why.contains(names), "{why:?} should name {names}");
    }
    assert_eq!(get_device(&server, &udid)["queued"], 0, "nothing queued");
    // The same uuid twice: a conflict.
    let plist = command_plist("TWICE", "ProfileList");
    assert_eq!(post_command(&server, &udid, &plist).status, 201);
    assert_eq!(post_command(&server, &udid, &plist).status, 409);
    // Unknown endpoints under the API.
    assert_eq!(api(&server, "GET", "/admin/api/other", b"").status, 404);
    assert_eq!(
        api(&server, "PUT", &format!("/admin/api/devices/{udid}"), b"").status,
        405
    );
}
