//! The example server, safe to expose: secrets from files and the
//! environment (never echoed), argon2id password hashes, login throttling
//! per (username, address), one key per role (the RA served by GetCACert),
//! keys at rest 0600 and optionally passphrase-protected, and error pages
//! without internal text.
#![cfg(all(feature = "sqlite", feature = "test-support"))]

mod server_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use server_support::{Server, basic, form, server_binary};

fn login(
    server: &Server,
    user: &str,
    password: &str,
    domain: &str,
) -> server_support::HttpResponse {
    server.request(
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form(&[
            ("username", user),
            ("password", password),
            ("domain", domain),
        ]),
    )
}

/// The server on 127.0.0.1:0 over HTTP with `data`, for runs that end
/// before serving (their output is the point).
fn server_command(data: &Path) -> Command {
    let mut c = Command::new(server_binary());
    c.args(["--listen", "127.0.0.1:0", "--http", "--data"])
        .arg(data);
    c
}

/// `server hash-password` with `password` on stdin.
fn hash_password(password: &str) -> String {
    let mut child = Command::new(server_binary())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

#[test]
fn ten_failed_logins_from_one_address_answer_429_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        &dir.path().join("data"),
        &["--http", "--user", "ann:right pw@corp.example"],
    );
    for i in 0..10 {
        let r = login(&server, "ann", &format!("wrong {i}"), "corp.example");
        assert_eq!(r.status, 403, "attempt {i}");
    }
    // The 11th, even with the right password, waits for the window.
    let r = login(&server, "ann", "right pw", "corp.example");
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=600).contains(&retry), "Retry-After {retry}");
    // The activation endpoint checks passwords too: same throttle.
    let r = server.request(
        "POST",
        "/self-service/activate",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form(&[
            ("username", "ann"),
            ("password", "right pw"),
            ("domain", "corp.example"),
        ]),
    );
    assert_eq!(r.status, 429);
    // Another username from the same address is not locked out.
    assert_eq!(login(&server, "bob", "x", "corp.example").status, 403);
    // (Other addresses and the window's end: the throttle's unit tests,
    // which pass the time in.)
}

#[test]
fn the_portal_never_writes_the_password_back_into_the_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(
        &dir.path().join("data"),
        &["--http", "--user", "ann:pw-ann-77@corp.example"],
    );
    let page = login(&server, "ann", "pw-ann-77", "corp.example");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(!html.contains("pw-ann-77"), "{html}");
    let token = html
        .split("name=\"login_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a sign-in token in the activation form")
        .to_owned();
    let activate = |token: &str| {
        server.request(
            "POST",
            "/self-service/activate",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &form(&[("login_token", token), ("accept_notice", "1")]),
        )
    };
    let r = activate("0123456789abcdef0123456789abcdef");
    assert_eq!(r.status, 403, "an unknown token signs nobody in");
    let r = activate(&token);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("Content-Type"),
        Some("application/x-apple-aspen-config")
    );
    // Used: the token is gone.
    assert_eq!(activate(&token).status, 403);
}

#[test]
fn users_file_with_argon2_hashes_and_plain_passwords() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = hash_password("hashed pw");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert_ne!(hash, hash_password("hashed pw"), "salted");
    let users = dir.path().join("users");
    std::fs::write(
        &users,
        format!("# users\nann:{hash}@corp.example\nbob:plain pw@example.org\n"),
    )
    .expect("write users");
    let server = Server::start(
        &dir.path().join("data"),
        &["--http", "--users-file", users.to_str().expect("utf-8")],
    );
    assert_eq!(
        login(&server, "ann", "hashed pw", "corp.example").status,
        200
    );
    assert_eq!(login(&server, "ann", &hash, "corp.example").status, 403);
    assert_eq!(login(&server, "bob", "plain pw", "example.org").status, 200);
    assert_eq!(
        login(&server, "bob", "hashed pw", "example.org").status,
        403
    );
    assert_eq!(
        login(&server, "carl", "hashed pw", "corp.example").status,
        403
    );
}

#[test]
fn a_broken_users_file_names_the_line_not_the_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users");
    std::fs::write(&users, "ann:fine@x\nbob-hunter2-no-separator\n").expect("write");
    let out = server_command(&dir.path().join("data"))
        .arg("--users-file")
        .arg(&users)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn secrets_on_the_command_line_are_warned_about_and_not_echoed() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A data "folder" that is a file: the server warns, then fails to start.
    let not_a_folder = dir.path().join("file");
    std::fs::write(&not_a_folder, "").expect("write");
    let out = server_command(&not_a_folder)
        .args(["--user", "ann:pw-ann-41@x", "--admin", "root:pw-admin-42"])
        .args(["--scep-static-challenge", "pw-challenge-43"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for flag in ["--user", "--admin", "--scep-static-challenge"] {
        assert!(
            all.contains(&format!(
                "warning: {flag} puts a secret on the command line"
            )),
            "{all}"
        );
    }
    for secret in ["pw-ann-41", "pw-admin-42", "pw-challenge-43"] {
        assert!(!all.contains(secret), "{secret} echoed: {all}");
    }
}

#[test]
fn admin_password_and_static_challenge_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start_with_env(
        &data,
        "127.0.0.1:0",
        &["--http"],
        &[
            ("MDM_ADMIN_PASSWORD", "env-admin-pw"),
            ("MDM_SCEP_STATIC_CHALLENGE", "env-challenge"),
        ],
    );
    let banner = server.banner.join("\n");
    assert!(banner.contains("static SCEP challenge is on"), "{banner}");
    assert!(!banner.contains("env-admin-pw") && !banner.contains("env-challenge"));
    assert!(
        !data.join("admin-password").exists(),
        "no generated password"
    );
    let admin = |password: &str| {
        server
            .request(
                "GET",
                "/admin",
                &[("Authorization", &basic("admin", password))],
                b"",
            )
            .status
    };
    assert_eq!(admin("env-admin-pw"), 200);
    assert_eq!(admin("other"), 401);
}

#[test]
fn admin_password_file_and_admin_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("admin-password");
    std::fs::write(&file, "file-admin-pw\n").expect("write");
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--http",
            "--admin-user",
            "root",
            "--admin-password-file",
            file.to_str().expect("utf-8"),
        ],
    );
    let status = |user: &str, password: &str| {
        server
            .request(
                "GET",
                "/admin",
                &[("Authorization", &basic(user, password))],
                b"",
            )
            .status
    };
    assert_eq!(status("root", "file-admin-pw"), 200);
    assert_eq!(status("admin", "file-admin-pw"), 401);
    assert!(!server.banner.join("\n").contains("file-admin-pw"));
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn pem_certificate(path: &Path) -> mdm_enroll::cms::Certificate {
    mdm_enroll::cms::Certificate::from_pem(&std::fs::read(path).expect("read PEM"))
        .expect("PEM")
        .remove(0)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
#[cfg(unix)]
fn one_key_per_role_with_the_ra_served_by_getcacert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let ca_der;
    {
        let server = Server::start(&data, &["--http"]);
        let r = server.request("GET", "/scep?operation=GetCACert", &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Type"),
            Some("application/x-x509-ca-ra-cert")
        );
        let ca = pem_certificate(&data.join("ca.pem"));
        let ra = pem_certificate(&data.join("ra.pem"));
        ra.verify_issued_by(&ca).expect("RA issued by the CA");
        assert!(find(&r.body, ra.der()) && find(&r.body, ca.der()));
        ca_der = ca.der().to_vec();
    }
    // Four roles, four different keys, each 0600.
    let keys: Vec<Vec<u8>> = ["ca", "ra", "tls", "signer"]
        .iter()
        .map(|name| {
            let path = data.join(format!("{name}.key.pem"));
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            std::fs::read(path).expect("key")
        })
        .collect();
    for (i, a) in keys.iter().enumerate() {
        for b in &keys[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // A data folder from before the RA gets one on start; the CA is kept.
    std::fs::remove_file(data.join("ra.pem")).expect("rm");
    std::fs::remove_file(data.join("ra.key.pem")).expect("rm");
    let _server = Server::start(&data, &["--http"]);
    let ra = pem_certificate(&data.join("ra.pem"));
    let ca = pem_certificate(&data.join("ca.pem"));
    assert_eq!(ca.der(), &ca_der[..]);
    ra.verify_issued_by(&ca)
        .expect("new RA issued by the kept CA");
    assert_eq!(mode(&data.join("ra.key.pem")), 0o600);
}

#[test]
#[cfg(unix)]
fn keys_at_rest_can_be_passphrase_protected() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // Created plain, then a loose mode is narrowed and a passphrase
    // encrypts the kept keys on the next start.
    drop(Server::start(&data, &["--http"]));
    let ca_key = data.join("ca.key.pem");
    std::fs::set_permissions(&ca_key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let pass = [("MDM_KEY_PASSPHRASE", "a long passphrase 9")];
    drop(Server::start_with_env(
        &data,
        "127.0.0.1:0",
        &["--http"],
        &pass,
    ));
    for name in ["ca", "ra", "tls", "signer"] {
        let path = data.join(format!("{name}.key.pem"));
        let text = std::fs::read_to_string(&path).expect("key");
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{name}: {text:.40}"
        );
        assert_eq!(mode(&path), 0o600, "{name}");
    }
    // With the passphrase it serves (the keys decrypt)...
    let server = Server::start_with_env(&data, "127.0.0.1:0", &["--http"], &pass);
    assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
    drop(server);
    // ...without it, or with a wrong one, it refuses to start and says why.
    for env in [&[][..], &[("MDM_KEY_PASSPHRASE", "wrong")][..]] {
        let out = server_command(&data)
            .env_remove("MDM_KEY_PASSPHRASE")
            .envs(env.iter().copied())
            .output()
            .expect("run");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("MDM_KEY_PASSPHRASE") || stderr.contains("wrong passphrase"),
            "{stderr}"
        );
        assert!(!stderr.contains("a long passphrase"), "{stderr}");
    }
}

#[test]
#[cfg_attr(
    not(mdm_have_python3),
    ignore = "needs python3: apt-get install python3"
)]
fn error_pages_never_show_store_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &[
            "--http",
            "--user",
            "ann:pw@corp.example",
            "--admin",
            "root:adminpw",
        ],
    );
    assert_eq!(login(&server, "ann", "pw", "corp.example").status, 200);
    // Break the store under the running server: its tables vanish.
    let db = data.join("mdm.sqlite3");
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             [c.execute('DROP TABLE ' + t) for t in ('users', 'activations', 'devices')]; \
             c.commit()",
        )
        .arg(&db)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let auth = basic("root", "adminpw");
    let portal = login(&server, "ann", "pw", "corp.example");
    let admin = server.request("GET", "/admin", &[("Authorization", &auth)], b"");
    let api = server.request(
        "GET",
        "/admin/api/devices",
        &[("Authorization", &auth)],
        b"",
    );
    for (what, r) in [("portal", &portal), ("admin", &admin), ("api", &api)] {
        assert_eq!(r.status, 500, "{what}: {}", r.text());
        let lower = r.text().to_lowercase();
        for internal in ["sqlite", "no such table", "sql", "users", "mdm.sqlite3"] {
            assert!(
                !lower.contains(internal),
                "{what} shows {internal:?}: {}",
                r.text()
            );
        }
    }
}

/// A database busy past its timeout (another process holds the write lock)
/// is a transient failure: the self-service activation answers 503 with
/// `Retry-After`, not 500, and works once the lock is gone.
#[test]
#[cfg_attr(
    not(mdm_have_python3),
    ignore = "needs python3: apt-get install python3"
)]
fn a_busy_store_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--http", "--user", "ann:pw-ann@corp.example"]);
    // Hold SQLite's write lock for longer than the server's busy timeout (10 s).
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys,time\n\
             c=sqlite3.connect(sys.argv[1],isolation_level=None)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             print('locked',flush=True)\n\
             time.sleep(13)\n\
             c.execute('ROLLBACK')",
        ])
        .arg(data.join("mdm.sqlite3"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().expect("stdout")),
        &mut line,
    )
    .expect("read");
    assert_eq!(line.trim(), "locked");
    let activate = |server: &Server| {
        server.request(
            "POST",
            "/self-service/activate",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &form(&[
                ("username", "ann"),
                ("password", "pw-ann"),
                ("domain", "corp.example"),
            ]),
        )
    };
    let busy = activate(&server);
    assert_eq!(busy.status, 503, "{}", busy.text());
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert!(
        !busy.text().contains("database"),
        "store internals in the page"
    );
    holder.wait().expect("lock released");
    assert_eq!(activate(&server).status, 200, "works once the lock is gone");
}
