//! The example server sends real pushes: started with a push certificate
//! from a test CA, `--apns-url` pointing at a local HTTP/2 TLS APNs stand-in
//! (which requires that certificate) and `--apns-ca` its CA. A simulated
//! Mac that connects only after the stand-in received its push completes
//! all thirteen steps; later commands queued through the admin API are
//! pushed and delivered, a cancelled one is not; a 410 marks the token
//! invalid until the next TokenUpdate; a `--topic` or an enrolled topic
//! that is not the certificate's refuses the start. A server started from a
//! `.p12` (`--push-p12`, `MDM_PUSH_P12_PASSWORD`) does the same walk. Admin-API
//! enqueues racing a device's connects are each delivered and acknowledged
//! exactly once.
#![cfg(all(feature = "sqlite", feature = "test-support", feature = "apns"))]

#[path = "cms_support/mod.rs"]
mod cms_support;
mod server_support;
#[path = "push_support/standin.rs"]
mod standin;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mdm_enroll::testing::{SimulatedDevice, TestDeviceCa};
use serde_json::Value;
use server_support::{
    HttpResponse, HttpTransport, Server, basic, command_plist, device_ca, results,
    simulated_device, walk_to_step_10,
};
use standin::{Pki, Reply, Seen, StandIn};

const USER: (&str, &str, &str) = ("alice", "s3cret pw", "corp.example");

/// A topic as Apple issues them: `com.apple.mgmt.External.<uuid>`.
fn fresh_topic() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("random");
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "com.apple.mgmt.External.{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The push certificate, its key and the stand-in's CA as files for the flags.
struct PushFiles {
    cert: PathBuf,
    key: PathBuf,
    apns_ca: PathBuf,
    /// The certificate and key as PKCS#12, given as `--push-p12` instead.
    p12: Option<PathBuf>,
}

impl PushFiles {
    /// Export the certificate and key with `openssl pkcs12 -export` under
    /// `password` (`extra`: e.g. `-legacy`); the server then gets `--push-p12`.
    fn with_p12(mut self, password: &str, extra: &[&str]) -> Self {
        let p12 = self.cert.with_extension("p12");
        let pass = format!("pass:{password}");
        let (cert, key, out) = (
            self.cert.display().to_string(),
            self.key.display().to_string(),
            p12.display().to_string(),
        );
        let mut args = vec![
            "pkcs12", "-export", "-in", &cert, "-inkey", &key, "-passout", &pass, "-out", &out,
        ];
        args.extend_from_slice(extra);
        cms_support::openssl(Path::new("."), &args);
        self.p12 = Some(p12);
        self
    }
}

fn write_push_files(dir: &Path, name: &str, pki: &Pki) -> PushFiles {
    let files = PushFiles {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
        apns_ca: dir.join(format!("{name}-apns-ca.pem")),
        p12: None,
    };
    std::fs::write(
        &files.cert,
        pki.identity.certificate().certificate().to_pem(),
    )
    .expect("write push cert");
    std::fs::write(
        &files.key,
        pki.identity.key().to_pkcs8_pem().expect("key PEM"),
    )
    .expect("write push key");
    std::fs::write(&files.apns_ca, pki.ca.to_pem()).expect("write stand-in CA");
    files
}

struct Rig {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    standin: StandIn,
    pki: Pki,
    topic: String,
    ca: TestDeviceCa,
    ca_pem: PathBuf,
    data: PathBuf,
    server: Server,
}

impl Rig {
    fn start() -> Rig {
        Self::start_with(None)
    }

    /// Started from a `.p12` of the push identity (password in
    /// `MDM_PUSH_P12_PASSWORD`), or from PEM files when `p12` is `None`.
    fn start_with(p12: Option<(&str, &[&str])>) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let topic = fresh_topic();
        let pki = Pki::with_topic(&topic);
        let standin = rt.block_on(StandIn::start(pki.server.clone()));
        let (ca, ca_pem) = device_ca(dir.path());
        let data = dir.path().join("data");
        let mut files = write_push_files(dir.path(), "push", &pki);
        let mut env = Vec::new();
        if let Some((password, extra)) = p12 {
            files = files.with_p12(password, extra);
            // Not readable from the PEM files: the server reads the .p12.
            std::fs::remove_file(&files.key).expect("remove PEM key");
            env.push(("MDM_PUSH_P12_PASSWORD", password));
        }
        let url = standin.url();
        let args = server_args(&ca_pem, &files, &url, &[]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Server::start_with_env(&data, "127.0.0.1:0", &args, &env);
        Rig {
            dir,
            rt,
            standin,
            pki,
            topic,
            ca,
            ca_pem,
            data,
            server,
        }
    }

    fn api(&self, method: &str, path: &str, body: &[u8]) -> HttpResponse {
        let auth = basic("root", "adminpw");
        self.server
            .request(method, path, &[("Authorization", &auth)], body)
    }

    fn device_json(&self, udid: &str) -> Value {
        let r = self.api("GET", &format!("/admin/api/devices/{udid}"), b"");
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).expect("JSON")
    }

    /// The banner says pushes go to APNs under the topic, and the admin page
    /// (returned) shows it.
    fn announced_topic(&self) -> String {
        assert!(
            self.server
                .banner
                .iter()
                .any(|l| l.contains("pushes go to APNs") && l.contains(&self.topic)),
            "{:?}",
            self.server.banner
        );
        let page = server_support::admin_page(&self.server);
        assert!(
            page.contains(&format!("data-topic=\"{}\"", self.topic)),
            "{page}"
        );
        page
    }

    /// Pushes the stand-in received for `device`.
    fn pushes_for(&self, device: &SimulatedDevice) -> Vec<Seen> {
        let path = device_path(device);
        self.standin
            .seen()
            .into_iter()
            .filter(|s| s.path == path)
            .collect()
    }

    /// Wait until the stand-in has received `n` pushes for `device`.
    fn await_pushes(&self, device: &SimulatedDevice, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self.pushes_for(device);
            if seen.len() >= n {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "the stand-in received {} push(es) for {}, not {n}",
                seen.len(),
                device.udid
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait until the admin API shows `status` as the device's last APNs answer.
    fn await_status(&self, udid: &str, status: u16) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = self.device_json(udid);
            if d["push"]["last_status"] == status {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "APNs status {status} not recorded: {d}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Steps 2–10 over HTTP; the device does not connect yet.
    fn checked_in(&self) -> SimulatedDevice {
        let mut t = HttpTransport::new(self.server.addr);
        let mut device = simulated_device(&self.ca, &self.data);
        walk_to_step_10(&mut t, &mut device, USER);
        device
    }

    /// Steps 2–13, connecting only once its push arrived.
    fn activated(&self) -> SimulatedDevice {
        let mut device = self.checked_in();
        self.await_pushes(&device, 1);
        let mut t = HttpTransport::new(self.server.addr);
        device.run_commands(&mut t).expect("steps 11-13");
        device
    }

    fn enqueue(&self, udid: &str, uuid: &str, request_type: &str) -> HttpResponse {
        self.api(
            "POST",
            &format!("/admin/api/devices/{udid}/commands"),
            &command_plist(uuid, request_type),
        )
    }
}

fn server_args(ca_pem: &Path, files: &PushFiles, apns_url: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--http",
        "--user",
        "alice:s3cret pw@corp.example",
        "--admin",
        "root:adminpw",
        "--device-ca",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(ca_pem.display().to_string());
    let identity = match &files.p12 {
        Some(p12) => vec![("--push-p12", p12)],
        None => vec![("--push-cert", &files.cert), ("--push-key", &files.key)],
    };
    for (flag, path) in identity.into_iter().chain([("--apns-ca", &files.apns_ca)]) {
        args.push(flag.into());
        args.push(path.display().to_string());
    }
    args.push("--apns-url".into());
    args.push(apns_url.into());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn start_server(data: &Path, args: &[String]) -> Server {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(data, &args)
}

fn device_path(device: &SimulatedDevice) -> String {
    let hex: String = device
        .udid
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("/3/device/{hex}")
}

/// Seconds since 1970 of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SSZ`.
fn civil_seconds(s: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().expect("digits");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19))
        .expect("after 1970")
}

/// Run the server binary with `args` and expect it to refuse to start.
fn refused_start(data: &Path, args: &[String]) -> String {
    refused_start_with_env(data, args, &[])
}

/// [`refused_start`] with extra environment variables.
fn refused_start_with_env(data: &Path, args: &[String], env: &[(&str, &str)]) -> String {
    let out = Command::new(server_support::server_binary())
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(args)
        .env("RUST_LOG", "off")
        .envs(env.iter().copied())
        .output()
        .expect("run server");
    assert!(
        !out.status.success(),
        "the server started: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "the server listened"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_mac_that_waits_for_its_push_completes_all_thirteen_steps() {
    let rig = Rig::start();
    // The banner and the admin page show the push certificate's topic and
    // expiry; a certificate valid for a year carries no expiry warning.
    let page = rig.announced_topic();
    let not_after = rig.pki.identity.certificate().not_after();
    let expires = not_after
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let shown = page
        .split("data-expires=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("data-expires");
    assert_eq!(civil_seconds(shown), expires, "{shown}");
    assert!(!page.contains("push-expiry"), "{page}");

    let mut device = rig.checked_in();
    let udid = device.udid.clone();

    // Step 10 pushed: the stand-in got it under the certificate's topic,
    // over a TLS connection that presented the push certificate.
    let push = rig.await_pushes(&device, 1).remove(0);
    assert_eq!(push.method, "POST");
    assert_eq!(push.header("apns-topic"), Some(rig.topic.as_str()));
    assert_eq!(push.header("apns-push-type"), Some("mdm"));
    let body: Value = serde_json::from_slice(&push.body).expect("JSON body");
    assert_eq!(body, serde_json::json!({ "mdm": format!("magic-{udid}") }));
    assert!(rig.standin.connections() >= 1);
    assert_eq!(rig.standin.refused_handshakes(), 0);
    let before = rig.await_status(&udid, 200);
    assert_eq!(before["step"], 10, "the device has not connected yet");
    assert_eq!(before["push"]["token_valid"], true);

    // Woken, the device connects and finishes.
    let mut t = HttpTransport::new(rig.server.addr);
    let answers = device.run_commands(&mut t).expect("steps 11-13");
    assert!(!answers.is_empty());
    let after = rig.device_json(&udid);
    assert_eq!(after["step"], 13, "{after}");
    assert_eq!(after["complete"], true);
    assert_eq!(after["push"]["unanswered"], 0);

    // After completion: a command queued through the API is pushed,
    // fetched, acknowledged and listed.
    let r = rig.enqueue(&udid, "AFTER-1", "CertificateList");
    assert_eq!(r.status, 201, "{}", r.text());
    let second = rig.await_pushes(&device, 2).remove(1);
    assert_eq!(second.header("apns-topic"), Some(rig.topic.as_str()));
    let answers = device.run_commands(&mut t).expect("connect");
    assert_eq!(
        answers,
        [("CertificateList".to_owned(), "Acknowledged".to_owned())]
    );
    assert!(results(&rig.device_json(&udid)).contains(&(
        "AFTER-1".into(),
        "CertificateList".into(),
        "Acknowledged".into()
    )));

    // A command cancelled before the device connects is never delivered.
    assert_eq!(rig.enqueue(&udid, "DROP-ME", "ProfileList").status, 201);
    rig.await_pushes(&device, 3);
    let r = rig.api(
        "DELETE",
        &format!("/admin/api/devices/{udid}/commands/DROP-ME"),
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(device.run_commands(&mut t).expect("connect"), []);
    let d = rig.device_json(&udid);
    assert!(results(&d).iter().all(|(u, _, _)| u != "DROP-ME"), "{d}");
    assert_eq!(d["queued"], 0);
    assert_eq!(rig.standin.refused_handshakes(), 0);
}

#[test]
fn gone_token_is_not_pushed_until_the_next_token_update() {
    let rig = Rig::start();
    let mut device = rig.activated();
    let udid = device.udid.clone();
    rig.await_status(&udid, 200);

    // APNs answers 410 to the next push.
    rig.standin.script([Reply::new(
        410,
        r#"{"reason":"Unregistered","timestamp":1700000000000}"#,
    )]);
    assert_eq!(rig.enqueue(&udid, "GONE-1", "SecurityInfo").status, 201);
    rig.await_pushes(&device, 2);
    let d = rig.await_status(&udid, 410);
    assert_eq!(d["push"]["token_valid"], false, "{d}");
    assert_eq!(d["push"]["last_reason"], "Unregistered");

    // A later enqueue and a push-now send nothing.
    assert_eq!(rig.enqueue(&udid, "GONE-2", "ProfileList").status, 201);
    let r = rig.api("POST", &format!("/admin/api/devices/{udid}/push"), b"");
    assert_eq!(r.status, 202, "{}", r.text());
    // Give a wrongly sent push time to arrive before counting.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rig.pushes_for(&device).len(), 2, "pushed an invalid token");
    assert_eq!(rig.device_json(&udid)["queued"], 2);

    // A new TokenUpdate makes the token valid again: the next enqueue pushes.
    let mut t = HttpTransport::new(rig.server.addr);
    device.check_in(&mut t, "TokenUpdate").expect("TokenUpdate");
    assert_eq!(rig.device_json(&udid)["push"]["token_valid"], true);
    // (The TokenUpdate itself may push for the queued commands.)
    std::thread::sleep(Duration::from_millis(500));
    let before = rig.pushes_for(&device).len();
    assert_eq!(rig.enqueue(&udid, "BACK-1", "CertificateList").status, 201);
    let pushes = rig.await_pushes(&device, before + 1);
    assert_eq!(pushes[before].header("apns-push-type"), Some("mdm"));
    rig.await_status(&udid, 200);
    let answers = device.run_commands(&mut t).expect("connect");
    assert_eq!(answers.len(), 3, "{answers:?}");
    let r = results(&rig.device_json(&udid));
    for uuid in ["GONE-1", "GONE-2", "BACK-1"] {
        assert!(
            r.iter().any(|(u, _, s)| u == uuid && s == "Acknowledged"),
            "{r:?}"
        );
    }
}

#[test]
fn a_topic_that_is_not_the_certificates_refuses_the_start() {
    let rig = Rig::start();
    let device = rig.activated();
    assert_eq!(rig.device_json(&device.udid)["complete"], true);
    let url = rig.standin.url();
    let files = write_push_files(rig.dir.path(), "push", &rig.pki);

    // --topic must be the certificate's.
    let other = fresh_topic();
    let stderr = refused_start(
        &rig.dir.path().join("other-data"),
        &server_args(&rig.ca_pem, &files, &url, &["--topic", &other]),
    );
    assert!(
        stderr.contains(&other) && stderr.contains(&rig.topic) && stderr.contains("--topic"),
        "{stderr}"
    );
    // The matching --topic is accepted.
    let same = start_server(
        &rig.dir.path().join("same-data"),
        &server_args(&rig.ca_pem, &files, &url, &["--topic", &rig.topic]),
    );
    drop(same);

    // Renewal keeps the topic: a certificate for another topic is refused
    // while devices enrolled under the old one.
    let renewed = Pki::with_topic(&other);
    let renewed_files = write_push_files(rig.dir.path(), "renewed", &renewed);
    let mut server = rig.server;
    server.terminate();
    let stderr = refused_start(
        &rig.data,
        &server_args(&rig.ca_pem, &renewed_files, &url, &[]),
    );
    assert!(
        stderr.contains(&other) && stderr.contains(&rig.topic) && stderr.contains("enrolled"),
        "{stderr}"
    );
    drop(rig.rt);
}

#[test]
fn a_push_certificate_near_expiry_is_warned_about_at_start_and_on_the_admin_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = fresh_topic();
    let pki = Pki::with_push_validity(&topic, Duration::from_secs(10 * 86_400));
    let (_ca, ca_pem) = device_ca(dir.path());
    let files = write_push_files(dir.path(), "push", &pki);
    // No stand-in needed: nothing is pushed.
    let server = start_server(
        &dir.path().join("data"),
        &server_args(&ca_pem, &files, "https://127.0.0.1:9", &[]),
    );
    let warning = server
        .banner
        .iter()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("no warning: {:?}", server.banner));
    assert!(
        warning.contains(&topic) && warning.contains("day(s)") && warning.contains("renew"),
        "{warning}"
    );
    let page = server_support::admin_page(&server);
    let shown = page
        .split("class=\"err push-expiry\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no expiry warning on the page: {page}"));
    assert!(shown.contains("renew") && shown.contains(&topic), "{shown}");
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn a_server_started_from_a_p12_pushes_and_a_mac_completes_all_thirteen_steps() {
    // Keychain Access style (RC2-40 / 3DES, SHA-1 MAC).
    let rig = Rig::start_with(Some(("p12 pässword", &["-legacy"])));
    rig.announced_topic();
    let mut device = rig.checked_in();
    let udid = device.udid.clone();
    // Step 10 pushed over TLS with the identity read from the .p12.
    let push = rig.await_pushes(&device, 1).remove(0);
    assert_eq!(push.header("apns-topic"), Some(rig.topic.as_str()));
    assert_eq!(rig.standin.refused_handshakes(), 0);
    let mut t = HttpTransport::new(rig.server.addr);
    device.run_commands(&mut t).expect("steps 11-13");
    let after = rig.device_json(&udid);
    assert_eq!(after["step"], 13, "{after}");
    assert_eq!(after["complete"], true);
    // A later command is pushed and delivered.
    assert_eq!(rig.enqueue(&udid, "P12-1", "ProfileList").status, 201);
    rig.await_pushes(&device, 2);
    assert_eq!(
        device.run_commands(&mut t).expect("connect"),
        [("ProfileList".to_owned(), "Acknowledged".to_owned())]
    );

    // The same .p12 without its password (MDM_PUSH_P12_PASSWORD unset), or
    // with --topic naming another topic, refuses the start.
    let files = PushFiles {
        p12: Some(rig.dir.path().join("push.p12")),
        ..write_push_files(rig.dir.path(), "again", &rig.pki)
    };
    let url = rig.standin.url();
    let stderr = refused_start(
        &rig.dir.path().join("data-2"),
        &server_args(&rig.ca_pem, &files, &url, &[]),
    );
    assert!(
        stderr.contains("--push-p12") && stderr.contains("wrong password"),
        "{stderr}"
    );
    let other = fresh_topic();
    let stderr = refused_start_with_env(
        &rig.dir.path().join("data-3"),
        &server_args(&rig.ca_pem, &files, &url, &["--topic", &other]),
        &[("MDM_PUSH_P12_PASSWORD", "p12 pässword")],
    );
    assert!(
        stderr.contains(&other) && stderr.contains(&rig.topic),
        "{stderr}"
    );
}

#[test]
fn enqueues_racing_the_devices_connects_lose_and_duplicate_nothing() {
    const ENQUEUERS: usize = 4;
    const PER_ENQUEUER: usize = 12;
    let rig = Rig::start();
    let mut device = rig.activated();
    let udid = device.udid.clone();
    let before = results(&rig.device_json(&udid)).len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let mut answers = Vec::new();
    std::thread::scope(|s| {
        for e in 0..ENQUEUERS {
            let (rig, udid, done) = (&rig, &udid, &done);
            s.spawn(move || {
                for i in 0..PER_ENQUEUER {
                    let r = rig.enqueue(udid, &format!("RACE-{e}-{i}"), "ProfileList");
                    assert_eq!(r.status, 201, "{}", r.text());
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        // The device connects over and over while the enqueues land, then
        // once more after the last one.
        let mut t = HttpTransport::new(rig.server.addr);
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst) == ENQUEUERS;
            answers.extend(device.run_commands(&mut t).expect("connect"));
            if finished {
                break;
            }
        }
    });
    let total = ENQUEUERS * PER_ENQUEUER;
    // Every command was delivered once: as many answers as enqueues...
    assert_eq!(answers.len(), total, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|a| *a == ("ProfileList".to_owned(), "Acknowledged".to_owned()))
    );
    // ...each command acknowledged exactly once, none left queued.
    let d = rig.device_json(&udid);
    assert_eq!(d["queued"], 0, "{d}");
    let race: Vec<_> = results(&d)
        .into_iter()
        .filter(|(u, _, _)| u.starts_with("RACE-"))
        .collect();
    assert_eq!(results(&d).len(), before + total, "{d}");
    let mut uuids: Vec<&str> = race.iter().map(|(u, _, _)| u.as_str()).collect();
    uuids.sort_unstable();
    let mut expected: Vec<String> = (0..ENQUEUERS)
        .flat_map(|e| (0..PER_ENQUEUER).map(move |i| format!("RACE-{e}-{i}")))
        .collect();
    expected.sort_unstable();
    assert_eq!(uuids, expected);
    assert!(race.iter().all(|(_, _, status)| status == "Acknowledged"));
}
