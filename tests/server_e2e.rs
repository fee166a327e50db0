//! The example server end to end, over real HTTP on 127.0.0.1 with a
//! temporary data folder: a simulated Mac walks all thirteen steps; the
//! profiles it receives verify with `openssl cms -verify`; its check-ins and
//! reports carry `Mdm-Signature`s that `openssl` verifies too; the admin
//! page shows it complete. Then the restarts: a kill -9 after SCEP and a
//! clean stop before TokenUpdate; a kill -9 in the middle of a burst of
//! reports. And real SCEP clients against `/scep` with the static challenge.
#![cfg(all(feature = "sqlite", feature = "test-support"))]

mod server_support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use mdm_enroll::crypto::RsaKey;
use mdm_enroll::http::{Request, Response, media_type};
use mdm_enroll::testing::{DeviceError, SimulatedDevice, TestDeviceCa, Transport};
use server_support::http::NO_ANSWER;
use server_support::{
    HttpTransport, Server, admin_page, admin_section, device_ca, openssl_verify, plist_dict, rng,
    server_ca, simulated_device,
};

const USER: (&str, &str, &str) = ("alice", "s3cret pw", "corp.example");
const STATIC_CHALLENGE: &str = "interop-static-7c1e";
const INITIAL_COMMANDS: [&str; 3] = ["DeviceInformation", "SecurityInfo", "ProfileList"];

/// The production form: every secret from a file beside `device_ca`.
fn args(device_ca: &Path) -> Vec<String> {
    let dir = device_ca.parent().expect("folder");
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write secret file");
        path.display().to_string()
    };
    vec![
        "--http".into(),
        "--users-file".into(),
        file("users", "alice:s3cret pw@corp.example\n"),
        "--admin-user".into(),
        "root".into(),
        "--admin-password-file".into(),
        file("admin-password", "adminpw\n"),
        "--scep-static-challenge-file".into(),
        file("scep-challenge", &format!("{STATIC_CHALLENGE}\n")),
        "--device-ca".into(),
        device_ca.display().to_string(),
    ]
}

/// A temporary folder with a test device CA (`device-ca.pem`) and the
/// path of the server's data folder in it.
fn fixture() -> (tempfile::TempDir, TestDeviceCa, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_pem) = device_ca(dir.path());
    let data = dir.path().join("data");
    (dir, ca, ca_pem, data)
}

fn start(data: &Path, listen: &str, args: &[String]) -> Server {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_on(data, listen, &args)
}

/// Every exchange a transport saw.
type Log = Arc<Mutex<Vec<(Request, Response)>>>;

fn logging_transport(server: &Server, log: &Log) -> HttpTransport<impl FnMut(&Request, &Response)> {
    let log = log.clone();
    HttpTransport {
        addr: server.addr,
        observe: move |req: &Request, resp: &Response| {
            log.lock().expect("log").push((req.clone(), resp.clone()));
        },
    }
}

/// `openssl cms -verify` a detached `Mdm-Signature` over `body`, chaining the
/// signer to `ca.pem`: the signature is checked by an independent CMS
/// implementation, not ours.
fn openssl_verify_detached(signature_b64: &str, body: &[u8], ca_pem: &Path) {
    use base64ct::{Base64, Encoding};
    let dir = tempfile::tempdir().expect("tempdir");
    let sig = dir.path().join("sig.der");
    let content = dir.path().join("body");
    std::fs::write(&sig, Base64::decode_vec(signature_b64).expect("base64")).expect("write");
    std::fs::write(&content, body).expect("write");
    let o = Command::new("openssl")
        .args([
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
        ])
        .arg("-in")
        .arg(&sig)
        .arg("-content")
        .arg(&content)
        .arg("-CAfile")
        .arg(ca_pem)
        .args(["-out", "/dev/null"])
        .output()
        .expect("run openssl");
    assert!(
        o.status.success(),
        "openssl rejected an Mdm-Signature: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Steps 2–6 for `device`: the portal's self-service profile, then the
/// signed attributes answered with the enrollment profile.
fn through_step_6(device: &mut SimulatedDevice, t: &mut impl Transport) {
    let (u, p, d) = USER;
    let service = device
        .self_service(t, "/self-service/activate", u, p, d)
        .expect("steps 2-4");
    device.send_attributes(t, &service).expect("steps 5-6");
}

/// Presenting `challenge` at SCEP gets a FAILURE CertRep.
fn assert_scep_refused(device: &mut SimulatedDevice, t: &mut impl Transport, challenge: &str) {
    device.override_scep_challenge(challenge).expect("override");
    assert!(matches!(
        device.scep_enroll(t, SystemTime::now(), &mut rng()),
        Err(mdm_enroll::testing::DeviceError::ScepFailure(_))
    ));
}

fn assert_complete(server: &Server, udid: &str) -> String {
    let section = admin_section(&admin_page(server), udid);
    assert!(
        section.contains("data-complete=\"true\""),
        "activation of {udid} not complete: {section}"
    );
    assert_eq!(
        section.matches("<tr class=\"done\">").count(),
        13,
        "all thirteen steps on the timeline: {section}"
    );
    assert!(section.contains("Queue (0)"), "{section}");
    section
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn thirteen_steps_over_http_signed_both_ways() {
    let (_dir, ca, ca_pem, data) = fixture();
    let server = start(&data, "127.0.0.1:0", &args(&ca_pem));
    let log: Log = Arc::default();
    let mut t = logging_transport(&server, &log);
    let mut device = simulated_device(&ca, &data);
    let answers = device
        .activate(
            &mut t,
            "/self-service/activate",
            USER,
            SystemTime::now(),
            &mut rng(),
        )
        .expect("all thirteen steps");
    let types: Vec<&str> = answers.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, INITIAL_COMMANDS);
    assert!(answers.iter().all(|(_, s)| s == "Acknowledged"));

    let log = log.lock().expect("log").clone();
    let server_ca_pem = data.join("ca.pem");

    // Both profiles verify with openssl against the data folder's CA.
    let profiles: Vec<&Response> = log
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.header("content-type") == Some(media_type::CONFIG))
        .collect();
    assert_eq!(profiles.len(), 2, "Profile Service + enrollment profile");
    let kinds: Vec<String> = profiles
        .iter()
        .map(|p| {
            let d = plist_dict(&openssl_verify(&p.body, &server_ca_pem));
            d.get("PayloadType")
                .and_then(|v| v.as_string())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["Profile Service", "Configuration"]);

    // Check-ins went to CheckInURL, reports to ServerURL, every one signed
    // by the SCEP identity (openssl checks signature and chain).
    let mdm: Vec<&(Request, Response)> = log
        .iter()
        .filter(|(r, _)| r.path.starts_with("/mdm/"))
        .collect();
    let checkins = mdm.iter().filter(|(r, _)| r.path == "/mdm/checkin").count();
    let connects = mdm.iter().filter(|(r, _)| r.path == "/mdm/connect").count();
    assert_eq!((checkins, connects), (2, 1 + INITIAL_COMMANDS.len()));
    for (req, resp) in &mdm {
        assert_eq!(resp.status, 200);
        let sig = req
            .header("Mdm-Signature")
            .expect("every MDM request is signed");
        openssl_verify_detached(sig, &req.body, &server_ca_pem);
    }

    // A report whose body no longer matches its signature is refused with
    // 400 (never 401), and stores nothing.
    let (last, _) = mdm.last().expect("a report");
    let mut forged = last.clone();
    forged.body = String::from_utf8_lossy(&forged.body)
        .replace("Acknowledged", "Error")
        .into_bytes();
    assert_eq!(t.send(forged).status, 400);
    let mut unsigned = (*last).clone();
    unsigned.headers.retain(|(k, _)| k != "Mdm-Signature");
    assert_eq!(t.send(unsigned).status, 400);

    let section = assert_complete(&server, &device.udid);
    assert!(section.contains("Results (3)"), "{section}");
    assert!(!section.contains("Error"), "{section}");
}

#[test]
fn restart_after_scep_and_before_token_update_resumes_from_sqlite() {
    let (_dir, ca, ca_pem, data) = fixture();
    let args = args(&ca_pem);
    let mut server = start(&data, "127.0.0.1:0", &args);
    let listen = server.addr.to_string();
    let mut device = simulated_device(&ca, &data);
    let mut t = HttpTransport::new(server.addr);
    through_step_6(&mut device, &mut t);
    device
        .scep_enroll(&mut t, SystemTime::now(), &mut rng())
        .expect("steps 7-8");

    let issued = device.identity().expect("identity").der().to_vec();

    // kill -9 right after the certificate was issued.
    server.kill();
    let mut server = start(&data, &listen, &args);
    let mut t = HttpTransport::new(server.addr);
    // Had the answer been lost in the crash, the device's resend of the same
    // request gets the same certificate from the restarted server.
    let resent = device
        .scep_enroll(&mut t, SystemTime::now(), &mut rng())
        .expect("resend after the restart");
    assert_eq!(resent.der(), &issued[..]);
    device
        .check_in(&mut t, "Authenticate")
        .expect("the identity issued before the crash is still bound");

    // A clean stop (SIGTERM) between Authenticate and TokenUpdate.
    assert!(server.terminate().success());
    let server = start(&data, &listen, &args);
    let mut t = HttpTransport::new(server.addr);
    device.check_in(&mut t, "TokenUpdate").expect("step 10");
    let answers = device.run_commands(&mut t).expect("steps 11-13");
    assert_eq!(answers.len(), INITIAL_COMMANDS.len());
    let section = assert_complete(&server, &device.udid);
    assert!(section.contains("Results (3)"), "{section}");
}

/// One device's view of the burst: the reports the server answered 200 to,
/// by CommandUUID, with the request (to replay it later).
#[derive(Default)]
struct Acked {
    reports: HashMap<String, Request>,
}

fn command_uuid(report: &[u8]) -> Option<String> {
    let d = plist::Value::from_reader_xml(report)
        .ok()?
        .into_dictionary()?;
    d.get("CommandUUID")?.as_string().map(str::to_owned)
}

/// The CommandUUIDs in the admin section's results table.
fn result_uuids(section: &str) -> Vec<String> {
    let results = section.split("<h3>Results").nth(1).unwrap_or_default();
    results
        .split("<code>")
        .skip(1)
        .filter_map(|s| s.split("</code>").next())
        .map(str::to_owned)
        .collect()
}

fn enroll_until_token_update(devices: &mut [SimulatedDevice], server: &Server) {
    for device in devices.iter_mut() {
        let mut t = HttpTransport::new(server.addr);
        through_step_6(device, &mut t);
        device
            .scep_enroll(&mut t, SystemTime::now(), &mut rng())
            .expect("steps 7-8");
        device.check_in(&mut t, "Authenticate").expect("step 9");
        device.check_in(&mut t, "TokenUpdate").expect("step 10");
    }
}

fn shared_keys_device(
    ca: &TestDeviceCa,
    data: &Path,
    keys: &(Arc<RsaKey>, Arc<RsaKey>),
) -> SimulatedDevice {
    let identity = ca
        .issue(keys.0.clone(), SystemTime::now(), &mut rng())
        .expect("identity");
    SimulatedDevice::new(identity, keys.1.clone(), server_ca(data), &mut rng())
}

#[test]
fn kill_9_during_a_burst_of_reports_loses_and_doubles_nothing() {
    const DEVICES: usize = 12;
    let (_dir, ca, ca_pem, data) = fixture();
    let mut args = args(&ca_pem);
    // A command whose response died with the server is held for the
    // delivery lease, then handed out again.
    let lease = Duration::from_secs(1);
    args.extend(["--delivery-lease".to_owned(), "1s".to_owned()]);
    let mut server = start(&data, "127.0.0.1:0", &args);
    let listen = server.addr.to_string();
    // Keys are shared between the simulated devices (each still gets its
    // own attribute certificate and SCEP identity): keygen is not under test.
    let keys = (
        Arc::new(RsaKey::generate(&mut rng(), 2048).expect("key")),
        Arc::new(RsaKey::generate(&mut rng(), 2048).expect("key")),
    );
    let mut devices: Vec<SimulatedDevice> = (0..DEVICES)
        .map(|_| shared_keys_device(&ca, &data, &keys))
        .collect();
    enroll_until_token_update(&mut devices, &server);

    // The burst: every device reports concurrently; the server is killed
    // once half of all reports were answered (or, on a fast machine, once
    // the burst is over: then the kill tests a restart after it).
    let total = DEVICES * INITIAL_COMMANDS.len();
    let answered = Arc::new(AtomicUsize::new(0));
    let acked: Vec<Arc<Mutex<Acked>>> = (0..DEVICES).map(|_| Arc::default()).collect();
    let addr = server.addr;
    let handles: Vec<_> = devices
        .into_iter()
        .zip(acked.iter().cloned())
        .map(|(mut device, acked)| {
            let answered = answered.clone();
            std::thread::spawn(move || {
                let mut t = HttpTransport {
                    addr,
                    observe: move |req: &Request, resp: &Response| {
                        let Some(uuid) = command_uuid(&req.body) else {
                            return;
                        };
                        if resp.status == 200 {
                            acked
                                .lock()
                                .expect("acked")
                                .reports
                                .insert(uuid, req.clone());
                            answered.fetch_add(1, Ordering::SeqCst);
                        } else {
                            assert_eq!(resp.status, NO_ANSWER, "only the kill may fail a report");
                        }
                    },
                };
                let outcome = device.run_commands(&mut t);
                (device, outcome)
            })
        })
        .collect();
    // A hang guard, not a speed check: a burst that stops answering fails
    // here instead of spinning forever.
    let deadline = Instant::now() + Duration::from_secs(300);
    while answered.load(Ordering::SeqCst) < total / 2 && !handles.iter().all(|h| h.is_finished()) {
        assert!(
            Instant::now() < deadline,
            "the burst stalled at {} of {total} answered reports",
            answered.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    server.kill();
    let (mut devices, outcomes): (Vec<SimulatedDevice>, Vec<_>) = handles
        .into_iter()
        .map(|h| h.join().expect("device thread"))
        .unzip();
    let before: usize = acked
        .iter()
        .map(|a| a.lock().expect("acked").reports.len())
        .sum();
    assert!(
        before >= total / 2,
        "the server was killed after {before} of {total} answered reports"
    );
    // Each device either finished its commands before the kill, every
    // report answered, or lost the connection to it: no other failure.
    for (outcome, acked) in outcomes.iter().zip(&acked) {
        let acked = acked.lock().expect("acked").reports.len();
        match outcome {
            Ok(answers) => {
                assert_eq!(answers.len(), INITIAL_COMMANDS.len(), "{answers:?}");
                assert_eq!(acked, INITIAL_COMMANDS.len());
            }
            Err(err) => assert!(
                matches!(
                    err,
                    DeviceError::Status {
                        status: NO_ANSWER,
                        ..
                    }
                ),
                "a device failed other than by the kill: {err:?}"
            ),
        }
    }

    // Restart; once the lease is over every device reconnects and finishes.
    let server = start(&data, &listen, &args);
    std::thread::sleep(lease + Duration::from_millis(100));
    let mut t = HttpTransport::new(server.addr);
    for device in &mut devices {
        device.run_commands(&mut t).expect("resume after the crash");
    }
    // Replaying an already answered report changes nothing.
    for a in &acked {
        if let Some(req) = a.lock().expect("acked").reports.values().next() {
            assert_eq!(t.send(req.clone()).status, 200);
        }
    }

    let page = admin_page(&server);
    for (device, acked) in devices.iter().zip(&acked) {
        let section = admin_section(&page, &device.udid);
        assert!(section.contains("data-complete=\"true\""), "{section}");
        assert!(section.contains("Queue (0)"), "{section}");
        let uuids = result_uuids(&section);
        let unique: HashSet<&String> = uuids.iter().collect();
        assert_eq!(
            uuids.len(),
            INITIAL_COMMANDS.len(),
            "one result per command: {section}"
        );
        assert_eq!(
            unique.len(),
            uuids.len(),
            "a report applied twice: {section}"
        );
        for uuid in acked.lock().expect("acked").reports.keys() {
            assert!(
                unique.contains(uuid),
                "report {uuid} was answered 200 before the crash but is lost: {section}"
            );
        }
    }
}

#[test]
fn a_static_challenge_certificate_cannot_check_in() {
    let (_dir, ca, ca_pem, data) = fixture();
    let server = start(&data, "127.0.0.1:0", &args(&ca_pem));
    let mut t = HttpTransport::new(server.addr);
    let mut device = simulated_device(&ca, &data);
    through_step_6(&mut device, &mut t);
    // The static challenge gets a certificate from the same CA...
    device
        .override_scep_challenge(STATIC_CHALLENGE)
        .expect("override");
    device
        .scep_enroll(&mut t, SystemTime::now(), &mut rng())
        .expect("static challenge accepted");
    // ...bound to no activation: check-in is refused, with 400 (not 401).
    assert_eq!(
        device.check_in(&mut t, "Authenticate"),
        Err(mdm_enroll::testing::DeviceError::Status {
            step: 9,
            status: 400
        })
    );
    let section = admin_section(&admin_page(&server), &device.udid);
    assert!(
        section.contains("data-phase=\"DeviceVerified\""),
        "{section}"
    );
    // A wrong challenge is a SCEP FAILURE.
    assert_scep_refused(&mut device, &mut t, "not-the-secret");
}

#[test]
fn without_the_flag_no_static_challenge_is_accepted() {
    let (_dir, ca, ca_pem, data) = fixture();
    let mut args = args(&ca_pem);
    let at = args
        .iter()
        .position(|a| a == "--scep-static-challenge-file")
        .expect("flag");
    args.drain(at..at + 2);
    let server = start(&data, "127.0.0.1:0", &args);
    assert!(!server.banner.iter().any(|l| l.contains("static")));
    let mut t = HttpTransport::new(server.addr);
    let mut device = simulated_device(&ca, &data);
    through_step_6(&mut device, &mut t);
    assert_scep_refused(&mut device, &mut t, STATIC_CHALLENGE);
}

#[test]
#[cfg_attr(
    not(mdm_have_scep_clients),
    ignore = "needs root and the SCEP clients: apt-get install scep certmonger dbus python3-cryptography python3-asn1crypto curl iproute2"
)]
fn real_scep_clients_enroll_at_scep_with_the_static_challenge() {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/scep_interop.sh");
    assert!(harness.exists(), "harness missing: {}", harness.display());
    let (_dir, _, ca_pem, data) = fixture();
    let server = start(&data, "127.0.0.1:0", &args(&ca_pem));
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("static SCEP challenge is on")),
        "the static challenge is announced: {:?}",
        server.banner
    );
    let out = Command::new("bash")
        .arg(&harness)
        .arg(format!("{}/scep", server.base_url))
        .arg(STATIC_CHALLENGE)
        .output()
        .expect("run harness");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains(" passed, 0 failed"),
        "harness: {last}\n{stdout}"
    );
    for must in [
        "PASS micromdm scepclient PKCSReq",
        "PASS micromdm scepclient wrong challenge rejected",
        "PASS apple-emu PKCSReq",
        "PASS apple-emu wrong challenge rejected",
        "PASS certmonger PKCSReq: issued",
        "PASS certmonger wrong challenge rejected",
    ] {
        assert!(stdout.contains(must), "missing `{must}` in:\n{stdout}");
    }
    assert!(out.status.success());
}
