//! Headless Chromium (Debian's `chromium`) against the example server: a
//! real browser submits the portal login form, posts "Activate this Mac" and
//! receives the signed profile as a download (verified with `openssl cms
//! -verify`); a simulated Mac then installs that very profile and walks the
//! remaining steps (5–13) over HTTP; the browser opens the admin page with
//! basic auth and finds the device complete. Screenshots are saved under
//! `target/server-browser/` as artifacts.
//!
//! Without `chromium` on PATH the test is ignored, naming the package (the
//! build script probes for it); under `CI=true` it runs and fails instead
//! (`.ci/run` installs the package).
#![cfg(all(feature = "sqlite", feature = "test-support"))]

mod server_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mdm_enroll::profile::ProfileContent;
use mdm_enroll::testing::Transport;
use server_support::{HttpTransport, Server, device_ca, openssl_verify, rng, simulated_device};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let o = Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                .ok()?;
            o.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        })
}

fn command(browser: &Path, home: &Path, args: &[String]) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=5000",
        "--window-size=1100,1400",
    ])
    .arg(format!(
        "--user-data-dir={}",
        home.join("profile").display()
    ))
    .args(args)
    .env("HOME", home)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    c
}

/// Run headless Chromium with a fresh profile and `HOME` under `home`
/// (killed after 90 s); returns its stdout.
fn run(browser: &Path, home: &Path, args: &[String]) -> String {
    let mut child = command(browser, home, args).spawn().expect("run chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish {args:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().expect("reader")
}

fn data_url(html: &str) -> String {
    let mut out = String::from("data:text/html;charset=utf-8,");
    for b in html.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A page that submits a form with the user's credentials to `action`.
fn autosubmit(action: &str) -> String {
    data_url(&format!(
        "<form method=post action=\"{action}\">\
<input name=username value=ann><input name=password value=\"pw one\">\
<input name=domain value=corp.example><input name=accept_notice value=1></form>\
<script>document.forms[0].submit()</script>"
    ))
}

#[test]
#[cfg_attr(
    not(all(mdm_have_chromium, mdm_have_openssl)),
    ignore = "needs chromium and openssl: apt-get install chromium fonts-dejavu-core openssl"
)]
fn chromium_logs_in_receives_the_profile_and_opens_admin() {
    let browser = chromium().expect("chromium on PATH (apt-get install chromium)");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/server-browser");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (ca, ca_pem) = device_ca(dir.path());
    let server = Server::start(
        &data,
        &[
            "--http",
            "--user",
            "ann:pw one@corp.example",
            "--admin",
            "root:adminpw",
            "--device-ca",
            ca_pem.to_str().expect("UTF-8 path"),
        ],
    );
    let base = server.base_url.clone();

    // The portal login page renders.
    let dom = run(
        &browser,
        dir.path(),
        &["--dump-dom".into(), format!("{base}/")],
    );
    assert!(dom.contains("id=\"login\""), "{dom}");

    // Log in through the form: the devices page with the activation button.
    let dom = run(
        &browser,
        dir.path(),
        &["--dump-dom".into(), autosubmit(&format!("{base}/"))],
    );
    assert!(dom.contains("Activate this Mac"), "{dom}");
    assert!(dom.contains("Signed in as"), "{dom}");
    run(
        &browser,
        dir.path(),
        &[
            format!("--screenshot={}", artifacts.join("portal.png").display()),
            autosubmit(&format!("{base}/")),
        ],
    );

    // Activate: the browser downloads the signed profile.
    // A navigation that ends in a download never "loads", so Chromium is
    // stopped once the file is there.
    let downloads = dir.path().join("Downloads");
    let mut child = command(
        &browser,
        dir.path(),
        &[
            "--dump-dom".into(),
            autosubmit(&format!("{base}/self-service/activate")),
        ],
    )
    .spawn()
    .expect("run chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    let profile = loop {
        let found = std::fs::read_dir(&downloads)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "mobileconfig"));
        if let Some(p) = found {
            break Some(p);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();
    let profile =
        profile.unwrap_or_else(|| panic!("no profile downloaded into {}", downloads.display()));
    let content = openssl_verify(
        &std::fs::read(&profile).expect("profile"),
        &data.join("ca.pem"),
    );
    assert!(
        String::from_utf8_lossy(&content).contains("Profile Service"),
        "downloaded profile content"
    );
    std::fs::copy(&profile, artifacts.join("activate.mobileconfig")).expect("copy");

    // The Mac installs the downloaded profile: steps 5-13 over HTTP.
    let parsed = mdm_enroll::profile::parse(
        &std::fs::read(&profile).expect("profile"),
        &mdm_enroll::wire::Limits::default(),
    )
    .expect("parse the downloaded profile");
    let ProfileContent::ProfileService(service) = parsed.profile.content else {
        panic!("the download is not a Profile Service profile");
    };
    let mut device = simulated_device(&ca, &data);
    let mut t = HttpTransport::new(server.addr);
    let t: &mut dyn Transport = &mut t;
    device.send_attributes(t, &service).expect("steps 5-6");
    device
        .scep_enroll(t, std::time::SystemTime::now(), &mut rng())
        .expect("steps 7-8");
    device.check_in(t, "Authenticate").expect("step 9");
    device.check_in(t, "TokenUpdate").expect("step 10");
    assert_eq!(device.run_commands(t).expect("steps 11-13").len(), 3);

    // The admin page (basic auth in the URL) shows the activation complete.
    let admin = format!(
        "http://root:adminpw@{}/admin",
        base.trim_start_matches("http://")
    );
    let dom = run(&browser, dir.path(), &["--dump-dom".into(), admin.clone()]);
    assert!(dom.contains("data-phase=\"Complete\""), "{dom}");
    assert!(dom.contains("data-complete=\"true\""), "{dom}");
    assert!(dom.contains(&device.udid), "{dom}");
    assert_eq!(dom.matches("<tr class=\"done\">").count(), 13, "{dom}");
    assert!(dom.contains("ann@corp.example"), "{dom}");
    let shot = artifacts.join("admin.png");
    run(
        &browser,
        dir.path(),
        &[format!("--screenshot={}", shot.display()), admin],
    );
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false),
        "admin screenshot saved"
    );
}
