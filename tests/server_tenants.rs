//! The example server with several tenants (`--tenant`, `--tenants-file`),
//! over real HTTP on 127.0.0.1: each tenant has its own SCEP CA, RA and
//! profile signer (under `<data>/tenants/<id>/`), push topic and users, and
//! is served under `/t/<id>/`; the default tenant keeps the single-tenant
//! paths. Simulated Macs that trust only their own tenant's CA complete all
//! thirteen steps at their tenant; credentials, identities and admin views
//! do not cross tenants; an unknown tenant is 404.
#![cfg(all(feature = "sqlite", feature = "test-support"))]

mod server_support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use mdm_enroll::cms::Certificate;
use mdm_enroll::http::{Request, Response};
use mdm_enroll::testing::{SimulatedDevice, TestDeviceCa, Transport};
use serde_json::Value;
use server_support::{HttpTransport, Server, basic, device_ca, rng};

const ALICE: (&str, &str, &str) = ("alice", "pw-alice", "acme.example");
const BOB: (&str, &str, &str) = ("bob", "pw-bob", "globex.example");
const ACME_TOPIC: &str = "com.apple.mgmt.External.acme";
const GLOBEX_TOPIC: &str = "com.apple.mgmt.External.globex";

struct Setup {
    _dir: tempfile::TempDir,
    ca: TestDeviceCa,
    data: PathBuf,
    args: Vec<String>,
}

/// Tenant `acme` (default: `--tenant`, `--user`, `--topic`) and `globex`
/// (tenants file: its users file and topic).
fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_pem) = device_ca(dir.path());
    std::fs::write(
        dir.path().join("globex-users.txt"),
        format!("# globex\n{}:{}@{}\n", BOB.0, BOB.1, BOB.2),
    )
    .expect("users file");
    let tenants = dir.path().join("tenants.txt");
    std::fs::write(
        &tenants,
        format!("globex users=globex-users.txt topic={GLOBEX_TOPIC}\n"),
    )
    .expect("tenants file");
    let args = [
        "--http",
        "--tenant",
        "acme",
        "--user",
        &format!("{}:{}@{}", ALICE.0, ALICE.1, ALICE.2),
        "--topic",
        ACME_TOPIC,
        "--admin",
        "root:adminpw",
        "--device-ca",
        ca_pem.to_str().expect("utf-8"),
        "--tenants-file",
        tenants.to_str().expect("utf-8"),
    ]
    .map(str::to_owned)
    .to_vec();
    Setup {
        data: dir.path().join("data"),
        _dir: dir,
        ca,
        args,
    }
}

fn start(s: &Setup) -> Server {
    let args: Vec<&str> = s.args.iter().map(String::as_str).collect();
    Server::start(&s.data, &args)
}

fn pem(path: &Path) -> Certificate {
    Certificate::from_pem(&std::fs::read(path).expect("read PEM"))
        .expect("PEM")
        .remove(0)
}

/// A simulated Mac trusting `anchor` (its tenant's CA) only.
fn mac(ca: &TestDeviceCa, anchor: Certificate) -> SimulatedDevice {
    let now = SystemTime::now();
    let key = || Arc::new(mdm_enroll::crypto::RsaKey::generate(&mut rng(), 2048).expect("key"));
    let identity = ca.issue(key(), now, &mut rng()).expect("device identity");
    SimulatedDevice::new(identity, key(), anchor, &mut rng())
}

/// The paths a transport sent to.
type Paths = Arc<Mutex<Vec<String>>>;

/// A transport that records every path it sent to.
fn recording(
    server: &Server,
) -> (
    HttpTransport<impl FnMut(&Request, &Response) + use<>>,
    Paths,
) {
    let paths = Arc::new(Mutex::new(Vec::new()));
    let seen = paths.clone();
    let t = HttpTransport {
        addr: server.addr,
        observe: move |r: &Request, _: &Response| seen.lock().unwrap().push(r.path.clone()),
    };
    (t, paths)
}

fn api(server: &Server, path: &str) -> (u16, Value) {
    let r = server.request(
        "GET",
        path,
        &[("Authorization", &basic("root", "adminpw"))],
        b"",
    );
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

fn udids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("an array")
        .iter()
        .map(|d| d["udid"].as_str().expect("udid").to_owned())
        .collect()
}

#[test]
fn each_tenant_activates_with_its_own_keys_topic_users_and_paths() {
    let s = setup();
    let server = start(&s);
    let globex_dir = s.data.join("tenants/globex");
    for file in ["ca", "ra", "signer"] {
        assert!(
            globex_dir.join(format!("{file}.pem")).is_file(),
            "{file}.pem"
        );
        let key = globex_dir.join(format!("{file}.key.pem"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&key).expect("key").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    let (acme_ca, globex_ca) = (pem(&s.data.join("ca.pem")), pem(&globex_dir.join("ca.pem")));
    assert_ne!(acme_ca.der(), globex_ca.der(), "one CA per tenant");
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.starts_with("tenant globex: portal ")
                && l.contains("/t/globex/")
                && l.contains(GLOBEX_TOPIC)),
        "{:?}",
        server.banner
    );

    // acme, the default tenant, on the single-tenant paths.
    let (mut ta, acme_paths) = recording(&server);
    let mut a = mac(&s.ca, acme_ca.clone());
    a.activate(
        &mut ta,
        "/self-service/activate",
        ALICE,
        SystemTime::now(),
        &mut rng(),
    )
    .expect("acme: all thirteen steps");
    assert_eq!(a.enrollment_topic(), Some(ACME_TOPIC));
    assert_eq!(
        a.enrollment_root().map(Certificate::der),
        Some(acme_ca.der())
    );
    a.identity()
        .expect("identity")
        .verify_issued_by(&acme_ca)
        .expect("acme's identity is issued by acme's CA");
    assert!(
        acme_paths
            .lock()
            .unwrap()
            .iter()
            .all(|p| !p.starts_with("/t/")),
        "{:?}",
        acme_paths.lock().unwrap()
    );

    // globex under /t/globex/, trusting only globex's CA: its profiles are
    // signed by globex's signer, its identity issued by globex's CA.
    let (mut tg, globex_paths) = recording(&server);
    let mut g = mac(&s.ca, globex_ca.clone());
    g.activate(
        &mut tg,
        "/t/globex/enroll",
        BOB,
        SystemTime::now(),
        &mut rng(),
    )
    .expect("globex: all thirteen steps");
    assert_eq!(g.enrollment_topic(), Some(GLOBEX_TOPIC));
    assert_eq!(
        g.enrollment_root().map(Certificate::der),
        Some(globex_ca.der())
    );
    let identity = g.identity().expect("identity").clone();
    identity
        .verify_issued_by(&globex_ca)
        .expect("issued by globex's CA");
    assert!(identity.verify_issued_by(&acme_ca).is_err());
    let paths = globex_paths.lock().unwrap().clone();
    for endpoint in [
        "/t/globex/enroll",
        "/t/globex/profile-service",
        "/t/globex/scep",
        "/t/globex/mdm",
    ] {
        assert!(
            paths.iter().any(|p| p == endpoint),
            "{endpoint} not used: {paths:?}"
        );
    }
    assert!(
        paths.iter().all(|p| p.starts_with("/t/globex/")),
        "{paths:?}"
    );

    // Each admin view lists its own tenant's device only; /admin shows both.
    let (status, acme_list) = api(&server, "/admin/api/devices");
    assert_eq!(status, 200);
    assert_eq!(udids(&acme_list), [a.udid.clone()]);
    let (status, globex_list) = api(&server, "/t/globex/admin/api/devices");
    assert_eq!(status, 200);
    assert_eq!(udids(&globex_list), [g.udid.clone()]);
    let (status, detail) = api(&server, &format!("/t/globex/admin/api/devices/{}", g.udid));
    assert_eq!((status, detail["user"].as_str()), (200, Some("bob")));
    let (status, _) = api(&server, &format!("/t/globex/admin/api/devices/{}", a.udid));
    assert_eq!(status, 404, "acme's device is not globex's");
    let auth = basic("root", "adminpw");
    let page = server
        .request("GET", "/t/globex/admin", &[("Authorization", &auth)], b"")
        .text();
    assert!(
        page.contains(&g.udid) && !page.contains(&a.udid),
        "globex admin page"
    );
    let page = server
        .request("GET", "/admin", &[("Authorization", &auth)], b"")
        .text();
    assert!(
        page.contains(&g.udid) && page.contains(&a.udid),
        "operator admin page"
    );

    // GetCACert at each tenant's SCEP URL: that tenant's CA.
    for (path, ca) in [("/scep", &acme_ca), ("/t/globex/scep", &globex_ca)] {
        let r = server.request("GET", &format!("{path}?operation=GetCACert"), &[], b"");
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.body.windows(ca.der().len()).any(|w| w == ca.der()),
            "{path} does not carry its tenant's CA"
        );
    }

    // The keys survive a restart: same CA, and the device still connects.
    drop(server);
    let server = start(&s);
    assert_eq!(pem(&globex_dir.join("ca.pem")).der(), globex_ca.der());
    let mut t = HttpTransport::new(server.addr);
    g.run_commands(&mut t)
        .expect("globex device connects after a restart");
}

#[test]
fn credentials_identities_and_unknown_tenants_do_not_cross() {
    let s = setup();
    let server = start(&s);
    let acme_ca = pem(&s.data.join("ca.pem"));
    let globex_ca = pem(&s.data.join("tenants/globex/ca.pem"));
    let mut t = HttpTransport::new(server.addr);

    // A user of one tenant is unknown at the other.
    let mut stray = mac(&s.ca, globex_ca.clone());
    let refused = stray.self_service(&mut t, "/t/globex/enroll", ALICE.0, ALICE.1, ALICE.2);
    assert!(refused.is_err(), "alice signed in at globex");
    let mut stray = mac(&s.ca, acme_ca.clone());
    let refused = stray.self_service(&mut t, "/self-service/activate", BOB.0, BOB.1, BOB.2);
    assert!(refused.is_err(), "bob signed in at acme");
    let portal = server.request(
        "POST",
        "/t/globex/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &server_support::form(&[("username", BOB.0), ("password", BOB.1), ("domain", BOB.2)]),
    );
    assert_eq!(portal.status, 200, "bob signs in at globex's portal");
    assert!(
        portal.text().contains("action=\"/t/globex/enroll\""),
        "{}",
        portal.text()
    );

    // An acme identity at globex's MDM URL is refused and stores nothing there.
    let mut a = mac(&s.ca, acme_ca);
    a.activate(
        &mut t,
        "/self-service/activate",
        ALICE,
        SystemTime::now(),
        &mut rng(),
    )
    .expect("acme activation");
    let mut to_globex = |mut r: Request| {
        r.path = "/t/globex/mdm".into();
        t.send(r)
    };
    let crossed = a.check_in(&mut to_globex, "TokenUpdate");
    assert!(crossed.is_err(), "acme's identity checked in at globex");
    let (_, globex_list) = api(&server, "/t/globex/admin/api/devices");
    assert!(udids(&globex_list).is_empty(), "{globex_list}");

    // A tenant nobody serves: 404 on every endpoint, nothing created.
    for (method, path) in [
        ("GET", "/t/nope/"),
        ("POST", "/t/nope/enroll"),
        ("POST", "/t/nope/profile-service"),
        ("GET", "/t/nope/scep?operation=GetCACaps"),
        ("PUT", "/t/nope/mdm"),
        ("GET", "/t/nope/admin"),
        ("GET", "/t/nope/admin/api/devices"),
    ] {
        let auth = basic("root", "adminpw");
        let body: &[u8] = if method == "GET" { b"" } else { b"x" };
        let r = server.request(method, path, &[("Authorization", &auth)], body);
        assert_eq!(r.status, 404, "{method} {path}");
    }
    assert!(!s.data.join("tenants/nope").exists());
}

#[test]
fn repeated_tenant_flags_and_bad_tenants_files_are_refused_at_start() {
    let s = setup();
    let bin = server_support::server_binary();
    let bad = s.data.with_file_name("bad-tenants.txt");
    std::fs::write(&bad, "globex colour=red\n").expect("write");
    let dup = s.data.with_file_name("dup-tenants.txt");
    std::fs::write(&dup, "acme\n").expect("write");
    for (file, why) in [(&bad, "unknown field"), (&dup, "named by --tenant")] {
        let out = std::process::Command::new(&bin)
            .args([
                "--http",
                "--listen",
                "127.0.0.1:0",
                "--tenant",
                "acme",
                "--data",
            ])
            .arg(&s.data)
            .arg("--tenants-file")
            .arg(file)
            .output()
            .expect("run server");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{err}");
    }
}

#[test]
fn replicas_starting_at_once_share_one_set_of_tenant_keys() {
    let s = setup();
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| start(&s));
        let b = scope.spawn(|| start(&s));
        (a.join().expect("replica a"), b.join().expect("replica b"))
    });
    let kept = pem(&s.data.join("tenants/globex/ca.pem"));
    for server in [&a, &b] {
        let r = server.request("GET", "/t/globex/scep?operation=GetCACert", &[], b"");
        assert_eq!(r.status, 200);
        assert!(
            r.body.windows(kept.der().len()).any(|w| w == kept.der()),
            "a replica serves another globex CA than the one kept on disk"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(s.data.join("tenants"))
        .expect("tenants folder")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, ["globex"], "staging folders left behind");
}
