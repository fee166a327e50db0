//! The example server's data folder: per-user by default (never the
//! working directory), and a kept TLS certificate re-issued from the kept
//! CA when the public URL names a host it does not.

mod server_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use server_support::{Server, server_binary};

/// Run the server with no `--data`, in `cwd`, with exactly `env` as its
/// environment; its stdout lines up to `listening on` (or to its exit) and
/// its exit status if it exited.
fn run_without_data(
    cwd: &Path,
    env: &[(&str, &Path)],
) -> (Vec<String>, Option<std::process::ExitStatus>, String) {
    let mut child = Command::new(server_binary())
        .args(["--listen", "127.0.0.1:0", "--http"])
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read stdout");
        let done = line.starts_with("listening on ");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let listened = lines.iter().any(|l| l.starts_with("listening on "));
    (lines, (!listened).then_some(status), stderr)
}

#[test]
fn default_data_folder_is_per_user_not_the_working_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, xdg, cwd) = (
        tmp.path().join("home"),
        tmp.path().join("xdg"),
        tmp.path().join("checkout"),
    );
    for d in [&home, &xdg, &cwd] {
        std::fs::create_dir(d).expect("mkdir");
    }

    // XDG_DATA_HOME wins.
    let (banner, exited, err) = run_without_data(&cwd, &[("HOME", &home), ("XDG_DATA_HOME", &xdg)]);
    assert_eq!(exited, None, "{err}");
    let data = xdg.join("mdm-enroll");
    assert!(data.join("ca.key.pem").is_file(), "{banner:?}");
    assert!(data.join("signer.key.pem").is_file());
    assert!(
        banner
            .iter()
            .any(|l| l.starts_with(&format!("data: {}", data.display()))),
        "the banner names the data folder: {banner:?}"
    );

    // Else $HOME/.local/share.
    let (banner, exited, err) = run_without_data(&cwd, &[("HOME", &home)]);
    assert_eq!(exited, None, "{err}");
    let data = home.join(".local/share/mdm-enroll");
    assert!(data.join("ca.key.pem").is_file(), "{banner:?}");
    assert!(
        banner
            .iter()
            .any(|l| l.starts_with(&format!("data: {}", data.display())))
    );

    // Neither: refused, asking for --data, and nothing written anywhere.
    let (banner, exited, err) = run_without_data(&cwd, &[]);
    let status = exited.expect("refused to start");
    assert_eq!(status.code(), Some(2), "{banner:?} {err}");
    assert!(err.contains("--data"), "{err}");
    // No run wrote into the working directory.
    let left: Vec<_> = std::fs::read_dir(&cwd).expect("read cwd").collect();
    assert!(
        left.is_empty(),
        "written into the working directory: {left:?}"
    );
}

/// A TLS client trusting only `ca_pem`: connects to `addr` asking for
/// `host` (SNI and name check), fetches `/healthz`.
fn healthz_as(addr: SocketAddr, host: &str, ca_pem: &Path) -> Result<String, String> {
    use rustls::pki_types::{CertificateDer, ServerName};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in mdm_enroll::cms::Certificate::from_pem(&std::fs::read(ca_pem).expect("ca.pem"))
        .expect("PEM")
    {
        roots
            .add(CertificateDer::from(c.der().to_vec()))
            .expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned()).expect("server name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = TcpStream::connect(addr).expect("connect");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    tls.read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    Ok(response)
}

#[test]
fn a_new_public_host_reissues_the_tls_certificate_from_the_kept_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let server = Server::start(data, &["--public-url", "https://mac-a.test:8443"]);
    let ca = std::fs::read(data.join("ca.pem")).expect("ca.pem");
    let ok = healthz_as(server.addr, "mac-a.test", &data.join("ca.pem")).expect("mac-a.test");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.ends_with("ok\n"), "{ok}");
    let refused = healthz_as(server.addr, "mac-b.test", &data.join("ca.pem"));
    assert!(refused.is_err(), "a name the certificate lacks is refused");
    assert!(!server.banner.iter().any(|l| l.contains("re-issued")));
    // The banner walks a newcomer through: reaching the server (it listens on
    // loopback, the URL names another host), trusting this CA, installing
    // the profile, and what waits for a push.
    let banner = server.banner.join("\n");
    for needle in [
        "add --listen 0.0.0.0:",
        &format!("copy {}", data.join("ca.pem").display()),
        "security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain",
        "Privacy & Security > Profiles",
        "steps 11-13 wait",
    ] {
        assert!(banner.contains(needle), "banner lacks {needle:?}: {banner}");
    }
    drop(server);

    // Same URL again: the kept certificate is kept.
    let tls_a = std::fs::read(data.join("tls.pem")).expect("tls.pem");
    let server = Server::start(data, &["--public-url", "https://MAC-A.test:8443/"]);
    assert_eq!(std::fs::read(data.join("tls.pem")).expect("tls.pem"), tls_a);
    assert!(!server.banner.iter().any(|l| l.contains("re-issued")));
    drop(server);

    // Another host: re-issued (and said so), from the same CA.
    let server = Server::start(data, &["--public-url", "https://mac-b.test:8443"]);
    let said = server
        .banner
        .iter()
        .find(|l| l.contains("TLS certificate re-issued from the kept CA"))
        .unwrap_or_else(|| panic!("not announced: {:?}", server.banner));
    assert!(said.contains("mac-b.test"), "{said}");
    assert_eq!(
        std::fs::read(data.join("ca.pem")).expect("ca.pem"),
        ca,
        "the CA the Mac trusts is kept"
    );
    let ok = healthz_as(server.addr, "mac-b.test", &data.join("ca.pem")).expect("mac-b.test");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    // localhost stays named, for the machine itself.
    healthz_as(server.addr, "localhost", &data.join("ca.pem")).expect("localhost");
}
