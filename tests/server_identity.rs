//! The example server's other two ways of naming the device on check-in and
//! connect, besides `Mdm-Signature`: the TLS client certificate (HTTPS with
//! mTLS, driven by `curl` as an independent TLS client) and, behind a
//! TLS-terminating proxy (`--http --client-cert-header Client-Cert`), the
//! RFC 9440 `Client-Cert` header, which is ignored unless asked for.
#![cfg(all(feature = "sqlite", feature = "test-support"))]

mod server_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use mdm_enroll::http::{Request, Response};
use mdm_enroll::testing::{SimulatedDevice, Transport};
use server_support::{
    HttpTransport, Server, admin_page, admin_section, device_ca, simulated_device,
};

const USER: (&str, &str, &str) = ("alice", "pw", "corp.example");

fn start(data: &Path, device_ca: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--user",
        "alice:pw@corp.example",
        "--admin",
        "root:adminpw",
        "--device-ca",
        device_ca.to_str().expect("UTF-8 path"),
    ];
    args.extend_from_slice(extra);
    Server::start(data, &args)
}

/// Steps 2–8: everything up to the SCEP identity.
fn enroll(device: &mut SimulatedDevice, t: &mut dyn Transport) {
    server_support::through_scep(device, t, USER);
}

fn is_mdm(req: &Request) -> bool {
    req.path.starts_with("/mdm/")
}

/// Removes `Mdm-Signature` from MDM requests and, when it holds a
/// certificate, adds it as the RFC 9440 `Client-Cert` header a proxy sets.
struct ProxyTransport {
    inner: HttpTransport,
    client_cert: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Transport for ProxyTransport {
    fn send(&mut self, mut request: Request) -> Response {
        use base64ct::{Base64, Encoding};
        if is_mdm(&request) {
            request.headers.retain(|(k, _)| k != "Mdm-Signature");
            if let Some(der) = self.client_cert.lock().expect("cert").as_ref() {
                request.headers.push((
                    "Client-Cert".into(),
                    format!(":{}:", Base64::encode_string(der)),
                ));
            }
        }
        self.inner.send(request)
    }
}

type CertSlot = Arc<Mutex<Option<Vec<u8>>>>;

/// A server started with `extra` flags, a device enrolled through steps 2–8
/// over a [`ProxyTransport`] whose header certificate is `CertSlot`.
fn enrolled_behind_proxy(
    extra: &[&str],
) -> (
    tempfile::TempDir,
    Server,
    ProxyTransport,
    CertSlot,
    SimulatedDevice,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_pem) = device_ca(dir.path());
    let data = dir.path().join("data");
    let server = start(&data, &ca_pem, extra);
    let client_cert: CertSlot = Arc::default();
    let mut t = ProxyTransport {
        inner: HttpTransport::new(server.addr),
        client_cert: client_cert.clone(),
    };
    let mut device = simulated_device(&ca, &data);
    enroll(&mut device, &mut t);
    (dir, server, t, client_cert, device)
}

#[test]
fn the_client_cert_header_is_ignored_unless_asked_for() {
    // Plain HTTP without --client-cert-header: a header naming the right
    // certificate is not believed (anyone could send it).
    let (_dir, _server, mut t, client_cert, mut device) = enrolled_behind_proxy(&["--http"]);
    let identity = device.identity().expect("identity").der().to_vec();
    *client_cert.lock().expect("cert") = Some(identity);
    assert_eq!(device.check_in(&mut t, "Authenticate"), refused_400());
}

/// Step 9 (Authenticate) refused with 400: never 401, which unenrolls a
/// real device.
fn refused_400<T>() -> Result<T, mdm_enroll::testing::DeviceError> {
    Err(mdm_enroll::testing::DeviceError::Status {
        step: 9,
        status: 400,
    })
}

#[test]
#[cfg_attr(not(mdm_have_curl), ignore = "needs curl: apt-get install curl")]
fn behind_a_proxy_the_rfc9440_header_names_the_device() {
    let (dir, server, mut t, client_cert, mut device) =
        enrolled_behind_proxy(&["--http", "--client-cert-header", "Client-Cert"]);

    // Unsigned and without the header: refused (400, never 401: a 401
    // unenrolls a real device).
    assert_eq!(device.check_in(&mut t, "Authenticate"), refused_400());
    // A certificate the server never issued: refused the same way.
    let (stranger, _) = {
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).expect("mkdir");
        device_ca(&other)
    };
    *client_cert.lock().expect("cert") = Some(stranger.certificate().der().to_vec());
    assert_eq!(device.check_in(&mut t, "Authenticate"), refused_400());

    // The SCEP identity in the header: steps 9-13 complete.
    let identity = device.identity().expect("identity").der().to_vec();
    *client_cert.lock().expect("cert") = Some(identity);
    device.check_in(&mut t, "Authenticate").expect("step 9");
    device.check_in(&mut t, "TokenUpdate").expect("step 10");
    assert_eq!(device.run_commands(&mut t).expect("11-13").len(), 3);
    let section = admin_section(&admin_page(&server), &device.udid);
    assert!(section.contains("data-complete=\"true\""), "{section}");
}

/// Carries requests with `curl` over HTTPS (trusting the server's CA), with
/// a TLS client certificate once it is set; MDM requests lose their
/// `Mdm-Signature`, so the TLS identity is all the server has.
struct CurlTransport {
    base_url: String,
    ca: PathBuf,
    work: PathBuf,
    client: Option<(PathBuf, PathBuf)>,
}

impl Transport for CurlTransport {
    fn send(&mut self, request: Request) -> Response {
        let body = self.work.join("request.body");
        let head = self.work.join("response.head");
        let out = self.work.join("response.body");
        std::fs::write(&body, &request.body).expect("write body");
        let url = match &request.query {
            Some(q) => format!("{}{}?{q}", self.base_url, request.path),
            None => format!("{}{}", self.base_url, request.path),
        };
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--http1.1",
            "-X",
            request.method.as_str(),
            "--cacert",
        ])
        .arg(&self.ca)
        .arg("-D")
        .arg(&head)
        .arg("-o")
        .arg(&out);
        for (k, v) in &request.headers {
            if is_mdm(&request) && k == "Mdm-Signature" {
                continue;
            }
            cmd.arg("-H").arg(format!("{k}: {v}"));
        }
        if !request.body.is_empty() {
            cmd.arg("--data-binary").arg(format!("@{}", body.display()));
        }
        if let Some((cert, key)) = &self.client {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let o = cmd.arg(&url).output().expect("run curl");
        assert!(
            o.status.success(),
            "curl failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let head = std::fs::read_to_string(&head).expect("response head");
        let status = head
            .lines()
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut response = Response::empty(status);
        response.headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        response.body = std::fs::read(&out).unwrap_or_default().into();
        response
    }
}

#[test]
#[cfg_attr(not(mdm_have_curl), ignore = "needs curl: apt-get install curl")]
fn over_https_the_tls_client_certificate_names_the_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_pem) = device_ca(dir.path());
    let data = dir.path().join("data");
    let server = start(&data, &ca_pem, &[]);
    assert!(server.base_url.starts_with("https://127.0.0.1:"));
    let mut t = CurlTransport {
        base_url: server.base_url.clone(),
        ca: data.join("ca.pem"),
        work: dir.path().to_owned(),
        client: None,
    };
    let mut device = simulated_device(&ca, &data);
    enroll(&mut device, &mut t);

    // No Mdm-Signature and no client certificate: refused with 400.
    assert_eq!(device.check_in(&mut t, "Authenticate"), refused_400());
    // Without a proxy in front, a client-sent Client-Cert header is not
    // believed, even naming the right certificate.
    {
        use base64ct::{Base64, Encoding};
        let body = device.checkin_body("Authenticate").expect("body");
        let mut req = device
            .mdm_request(mdm_enroll::http::media_type::CHECKIN, body)
            .expect("request");
        let der = device.identity().expect("identity").der();
        req.headers.push((
            "Client-Cert".into(),
            format!(":{}:", Base64::encode_string(der)),
        ));
        assert_eq!(t.send(req).status, 400);
    }

    // The SCEP identity as the TLS client certificate: steps 9-13 complete.
    let cert = dir.path().join("identity.pem");
    let key = dir.path().join("identity.key.pem");
    std::fs::write(&cert, device.identity().expect("identity").to_pem()).expect("write");
    std::fs::write(&key, device.scep_key.to_pkcs8_pem().expect("pem")).expect("write");
    t.client = Some((cert, key));
    device.check_in(&mut t, "Authenticate").expect("step 9");
    device.check_in(&mut t, "TokenUpdate").expect("step 10");
    assert_eq!(device.run_commands(&mut t).expect("11-13").len(), 3);
    let section = admin_section(&admin_page_https(&t), &device.udid);
    assert!(section.contains("data-complete=\"true\""), "{section}");
    drop(server);
}

/// The admin page over HTTPS.
fn admin_page_https(t: &CurlTransport) -> String {
    let o = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&t.ca)
        .args(["-u", "root:adminpw"])
        .arg(format!("{}/admin", t.base_url))
        .output()
        .expect("curl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}
