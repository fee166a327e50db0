//! The example server over real HTTP on 127.0.0.1 with a temporary data
//! folder: portal login, the signed Profile Service profile (verified by
//! `openssl cms -verify`), signed device attributes answered with a signed
//! enrollment profile, the admin timeline, HTTPS with the CA it created, and
//! a restart that keeps CA and activation state.
#![cfg(all(feature = "sqlite", feature = "test-support"))]

mod server_support;

use std::sync::Arc;
use std::time::SystemTime;

use mdm_enroll::cms::{SignedDataBuilder, oid};
use mdm_enroll::crypto::RsaKey;
use mdm_enroll::testing::Identity;
use server_support::{Server, basic, device_ca, form, openssl_verify, plist_dict, rng};

const USER: &str = "ann:correct horse@corp.example";

/// A device identity issued by a fresh test device CA written to `dir`.
fn device_identity(dir: &std::path::Path) -> (Identity, std::path::PathBuf) {
    let (ca, pem) = device_ca(dir);
    let key = Arc::new(RsaKey::generate(&mut rng(), 2048).expect("key"));
    (
        ca.issue(key, SystemTime::now(), &mut rng()).expect("issue"),
        pem,
    )
}

fn attributes(challenge: &str, udid: &str) -> Vec<u8> {
    let mut d = plist::Dictionary::new();
    d.insert("CHALLENGE".into(), challenge.into());
    d.insert("UDID".into(), udid.into());
    d.insert("SERIAL".into(), "C02TEST0001".into());
    d.insert("PRODUCT".into(), "MacBookPro18,3".into());
    d.insert("VERSION".into(), "23A344".into());
    let mut out = Vec::new();
    plist::to_writer_xml(&mut out, &plist::Value::Dictionary(d)).expect("xml");
    out
}

fn sign_attributes(attrs: &[u8], device: &Identity) -> Vec<u8> {
    SignedDataBuilder::new(
        oid::ID_DATA,
        attrs,
        device.key.as_ref(),
        &device.certificate,
    )
    .build()
    .expect("sign")
}

fn login_fields(password: &str) -> Vec<u8> {
    form(&[
        ("username", "ann"),
        ("password", password),
        ("domain", "corp.example"),
    ])
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn portal_profile_service_enroll_and_admin_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (device, device_ca) = device_identity(dir.path());
    let data = dir.path().join("data");
    let ca_arg = device_ca.to_str().expect("path");
    let server = Server::start(
        &data,
        &[
            "--http",
            "--user",
            USER,
            "--admin",
            "root:adminpw",
            "--device-ca",
            ca_arg,
        ],
    );
    let ca_pem = data.join("ca.pem");

    let health = server.request("GET", "/healthz", &[], b"");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));

    let portal = server.request("GET", "/", &[], b"");
    assert_eq!(portal.status, 200);
    for field in ["name=\"username\"", "name=\"password\"", "name=\"domain\""] {
        assert!(portal.text().contains(field), "portal lacks {field}");
    }

    let form_ct = [("Content-Type", "application/x-www-form-urlencoded")];
    let wrong = server.request("POST", "/", &form_ct, &login_fields("wrong"));
    assert_eq!(wrong.status, 403);
    let wrong = server.request(
        "POST",
        "/self-service/activate",
        &form_ct,
        &login_fields("wrong"),
    );
    assert_eq!(wrong.status, 403);
    assert!(
        wrong
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/html")
    );

    let devices = server.request("POST", "/", &form_ct, &login_fields("correct horse"));
    assert_eq!(devices.status, 200);
    assert!(devices.text().contains("Activate this Mac"));
    assert!(devices.text().contains("No devices yet"));

    // Steps 2-4: the signed Profile Service profile.
    let profile = server.request(
        "POST",
        "/self-service/activate",
        &form_ct,
        &login_fields("correct horse"),
    );
    assert_eq!(profile.status, 200, "{}", profile.text());
    assert_eq!(
        profile.header("content-type"),
        Some("application/x-apple-aspen-config")
    );
    let content = plist_dict(&openssl_verify(&profile.body, &ca_pem));
    assert_eq!(
        content.get("PayloadType").and_then(|v| v.as_string()),
        Some("Profile Service")
    );
    let pc = content
        .get("PayloadContent")
        .and_then(|v| v.as_dictionary())
        .expect("PayloadContent");
    assert_eq!(
        pc.get("URL").and_then(|v| v.as_string()),
        Some(format!("{}/enroll", server.base_url).as_str())
    );
    let challenge = pc
        .get("Challenge")
        .and_then(|v| v.as_string())
        .expect("Challenge")
        .to_owned();

    // Steps 5-6: signed attributes -> signed enrollment profile.
    let attrs = attributes(&challenge, "UDID-E2E-1");
    let signed = sign_attributes(&attrs, &device);
    let cms_ct = [("Content-Type", "application/pkcs7-signature")];
    let enrollment = server.request("POST", "/enroll", &cms_ct, &signed);
    assert_eq!(enrollment.status, 200, "{}", enrollment.text());
    let content = plist_dict(&openssl_verify(&enrollment.body, &ca_pem));
    let payloads = content
        .get("PayloadContent")
        .and_then(|v| v.as_array())
        .expect("payloads");
    let kinds: Vec<&str> = payloads
        .iter()
        .filter_map(|p| p.as_dictionary()?.get("PayloadType")?.as_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "com.apple.security.root",
            "com.apple.security.scep",
            "com.apple.mdm"
        ]
    );
    let mdm = payloads[2].as_dictionary().expect("mdm");
    assert_eq!(
        mdm.get("SignMessage").and_then(|v| v.as_boolean()),
        Some(true)
    );
    assert_eq!(
        mdm.get("CheckInURL").and_then(|v| v.as_string()),
        Some(format!("{}/mdm/checkin", server.base_url).as_str())
    );
    let root = payloads[0]
        .as_dictionary()
        .and_then(|d| d.get("PayloadContent"))
        .and_then(|v| v.as_data())
        .expect("CA");
    let ca_der = mdm_enroll::cms::Certificate::from_pem(&std::fs::read(&ca_pem).expect("ca"))
        .expect("pem")[0]
        .der()
        .to_vec();
    assert_eq!(
        root,
        &ca_der[..],
        "the trust payload is the data folder's CA"
    );

    // The Profile Service challenge is single-use (a replay is 409).
    let replay = server.request("POST", "/enroll", &cms_ct, &signed);
    assert_eq!(replay.status, 409);
    // Attributes signed by a key no trusted device CA issued are refused.
    let rogue_dir = dir.path().join("rogue");
    std::fs::create_dir_all(&rogue_dir).expect("mkdir");
    let (rogue, _) = device_identity(&rogue_dir);
    let rogue = sign_attributes(&attrs, &rogue);
    assert_eq!(
        server.request("POST", "/enroll", &cms_ct, &rogue).status,
        400
    );

    // Admin: basic auth, then the device with its timeline at step 6.
    assert_eq!(server.request("GET", "/admin", &[], b"").status, 401);
    let bad = basic("root", "nope");
    assert_eq!(
        server
            .request("GET", "/admin", &[("Authorization", &bad)], b"")
            .status,
        401
    );
    let auth = basic("root", "adminpw");
    let admin = server.request("GET", "/admin", &[("Authorization", &auth)], b"");
    assert_eq!(admin.status, 200);
    let page = admin.text();
    assert!(page.contains("UDID-E2E-1"), "{page}");
    assert!(page.contains("data-phase=\"DeviceVerified\""), "{page}");
    assert_eq!(
        page.matches("<tr class=\"done\">").count(),
        6,
        "steps 1-6 reached: {page}"
    );
    assert_eq!(page.matches("<tr class=\"todo\">").count(), 7);

    // The portal now lists the device.
    let devices = server.request("POST", "/", &form_ct, &login_fields("correct horse"));
    assert!(devices.text().contains("UDID-E2E-1"));
}

#[test]
fn body_limits_and_unknown_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--http", "--user", USER, "--admin", "a:b"]);
    let big = vec![b'a'; 70 * 1024];
    assert_eq!(server.request("POST", "/enroll", &[], &big).status, 413);
    assert_eq!(
        server
            .request("POST", "/self-service/activate", &[], &big[..9 * 1024])
            .status,
        413
    );
    assert_eq!(server.request("GET", "/nope", &[], b"").status, 404);
    assert_eq!(server.request("GET", "/enroll", &[], b"").status, 405);
    // Check-in without any identity is refused with 400, never 401 (which
    // a device takes as "unenroll").
    assert_eq!(
        server
            .request("PUT", "/mdm/checkin", &[], b"<plist/>")
            .status,
        400
    );
    assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
}

#[test]
#[cfg_attr(not(mdm_have_curl), ignore = "needs curl: apt-get install curl")]
fn https_by_default_with_a_ca_kept_in_the_data_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path(), &[]);
    assert!(
        server.base_url.starts_with("https://127.0.0.1:"),
        "{}",
        server.base_url
    );
    let demo_password = server.banner_value("demo user:", "password ");
    assert!(demo_password.len() >= 16);
    let ca = dir.path().join("ca.pem");
    let first_ca = std::fs::read(&ca).expect("ca.pem");
    let curl = |url: &str| {
        std::process::Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(&ca)
            .arg(url)
            .output()
            .expect("curl")
    };
    let o = curl(&format!("{}/healthz", server.base_url));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, b"ok\n");
    // A graceful stop on SIGTERM.
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    // The restart keeps the CA and the demo password (printed only once,
    // kept owner-readable in the data folder).
    let server = Server::start(dir.path(), &[]);
    assert_eq!(std::fs::read(&ca).expect("ca.pem"), first_ca);
    let kept = dir.path().join("demo-password");
    assert_eq!(
        std::fs::read_to_string(&kept)
            .expect("demo-password")
            .trim(),
        demo_password
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kept).expect("stat").permissions().mode();
        assert_eq!(mode & 0o077, 0, "demo-password is readable by others");
    }
    let line = server
        .banner
        .iter()
        .find(|l| l.starts_with("demo user:"))
        .expect("demo user line");
    assert!(!line.contains(&demo_password), "printed again: {line}");
    let o = curl(&format!("{}/healthz", server.base_url));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
#[cfg_attr(
    not(mdm_have_openssl),
    ignore = "needs openssl: apt-get install openssl"
)]
fn kill_9_mid_activation_resumes_from_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (device, device_ca) = device_identity(dir.path());
    let data = dir.path().join("data");
    let args = [
        "--http",
        "--user",
        USER,
        "--admin",
        "root:adminpw",
        "--device-ca",
        device_ca.to_str().expect("path"),
    ];
    let mut server = Server::start(&data, &args);
    let form_ct = [("Content-Type", "application/x-www-form-urlencoded")];
    let profile = server.request(
        "POST",
        "/self-service/activate",
        &form_ct,
        &login_fields("correct horse"),
    );
    assert_eq!(profile.status, 200);
    let content = plist_dict(&openssl_verify(&profile.body, &data.join("ca.pem")));
    let challenge = content
        .get("PayloadContent")
        .and_then(|v| v.as_dictionary())
        .and_then(|d| d.get("Challenge"))
        .and_then(|v| v.as_string())
        .expect("Challenge")
        .to_owned();
    // Die without any chance to flush, between step 4 and step 5.
    server.kill();

    let server = Server::start(&data, &args);
    let attrs = attributes(&challenge, "UDID-RESTART");
    let signed = sign_attributes(&attrs, &device);
    let cms_ct = [("Content-Type", "application/pkcs7-signature")];
    let enrollment = server.request("POST", "/enroll", &cms_ct, &signed);
    assert_eq!(
        enrollment.status,
        200,
        "the challenge issued before the crash still works: {}",
        enrollment.text()
    );
    openssl_verify(&enrollment.body, &data.join("ca.pem"));
    assert_eq!(
        server.request("POST", "/enroll", &cms_ct, &signed).status,
        409,
        "and only once"
    );
    let auth = basic("root", "adminpw");
    let page = server
        .request("GET", "/admin", &[("Authorization", &auth)], b"")
        .text();
    assert!(page.contains("UDID-RESTART"), "{page}");
    assert_eq!(page.matches("<tr class=\"done\">").count(), 6, "{page}");
}
