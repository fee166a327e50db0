//! Starts the example server as a child process on 127.0.0.1 with a
//! temporary data folder, and talks HTTP/1.1 to it with a tiny std client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[path = "../example_binary/mod.rs"]
pub mod example_binary;
pub mod http;

#[allow(unused_imports)]
pub use http::{HttpResponse, HttpTransport};

/// Path of the example server, refused when missing or older than its
/// sources (see [`example_binary`]).
pub fn server_binary() -> PathBuf {
    example_binary::example_binary("server")
}

/// A running server.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub base_url: String,
    pub data: PathBuf,
    /// Lines the server printed on stdout before serving.
    pub banner: Vec<String>,
}

impl Server {
    /// Start the server with `--listen 127.0.0.1:0 --data <data>` plus `args`.
    pub fn start(data: &Path, args: &[&str]) -> Server {
        Self::start_on(data, "127.0.0.1:0", args)
    }

    /// Start on a given address (to restart on the same port).
    pub fn start_on(data: &Path, listen: &str, args: &[&str]) -> Server {
        Self::start_with_env(data, listen, args, &[])
    }

    /// Start with extra environment variables (secrets given the production way).
    pub fn start_with_env(
        data: &Path,
        listen: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(server_binary())
            .args(["--listen", listen, "--data"])
            .arg(data)
            .args(args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        let mut base_url = String::new();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .expect("read stdout");
            if let Some(url) = line.strip_prefix("portal: ") {
                base_url = url.trim_end_matches('/').to_owned();
            }
            if let Some(a) = line.strip_prefix("listening on ") {
                break a.parse().expect("address");
            }
            banner.push(line);
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr,
            base_url,
            data: data.to_owned(),
            banner,
        }
    }

    /// The value after `prefix` on the banner line starting with `line`.
    pub fn banner_value(&self, line: &str, prefix: &str) -> String {
        let l = self
            .banner
            .iter()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("no banner line {line}: {:?}", self.banner));
        l.split(prefix)
            .nth(1)
            .and_then(|rest| rest.split([',', ' ']).next())
            .expect("banner value")
            .to_owned()
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait")
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        http(self.addr, method, path, headers, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    http::try_http(addr, method, path, headers, body).expect("HTTP exchange")
}

/// `application/x-www-form-urlencoded` encoding.
pub fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// `openssl cms -verify` a DER profile against `ca.pem`; returns the content.
pub fn openssl_verify(profile: &[u8], ca_pem: &Path) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("profile.der");
    let out = dir.path().join("content");
    std::fs::write(&input, profile).expect("write");
    let o = Command::new("openssl")
        .args(["cms", "-verify", "-inform", "DER", "-purpose", "any", "-in"])
        .arg(&input)
        .arg("-CAfile")
        .arg(ca_pem)
        .arg("-out")
        .arg(&out)
        .output()
        .expect("run openssl");
    assert!(
        o.status.success(),
        "openssl cms -verify failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read(out).expect("content")
}

/// The top-level dictionary of an XML plist.
pub fn plist_dict(bytes: &[u8]) -> plist::Dictionary {
    plist::Value::from_reader_xml(bytes)
        .expect("plist")
        .into_dictionary()
        .expect("dictionary")
}

/// The process's OS random generator, as the crate's APIs take it.
pub fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// A test device CA (standing in for Apple's device identity CA), written
/// to `<dir>/device-ca.pem` for the server's `--device-ca`.
pub fn device_ca(dir: &Path) -> (mdm_enroll::testing::TestDeviceCa, PathBuf) {
    let key = mdm_enroll::crypto::RsaKey::generate(&mut rng(), 2048).expect("key");
    let ca = mdm_enroll::testing::TestDeviceCa::new(key, std::time::SystemTime::now(), &mut rng())
        .expect("device CA");
    let pem = dir.join("device-ca.pem");
    std::fs::write(&pem, ca.certificate().to_pem()).expect("write device CA");
    (ca, pem)
}

/// The server's CA (`<data>/ca.pem`).
pub fn server_ca(data: &Path) -> mdm_enroll::cms::Certificate {
    mdm_enroll::cms::Certificate::from_pem(&std::fs::read(data.join("ca.pem")).expect("ca.pem"))
        .expect("PEM")
        .remove(0)
}

/// A simulated Mac whose attributes `ca` signs and which trusts the server
/// CA in `data`. Keys: 2048-bit, fresh.
pub fn simulated_device(
    ca: &mdm_enroll::testing::TestDeviceCa,
    data: &Path,
) -> mdm_enroll::testing::SimulatedDevice {
    use std::sync::Arc;
    let now = std::time::SystemTime::now();
    let new_key = || Arc::new(mdm_enroll::crypto::RsaKey::generate(&mut rng(), 2048).expect("key"));
    let identity = ca
        .issue(new_key(), now, &mut rng())
        .expect("device identity");
    mdm_enroll::testing::SimulatedDevice::new(identity, new_key(), server_ca(data), &mut rng())
}

/// Steps 2–8 for `device` as `(username, password, domain)`: everything up
/// to the SCEP identity, before the check-ins.
pub fn through_scep(
    device: &mut mdm_enroll::testing::SimulatedDevice,
    t: &mut dyn mdm_enroll::testing::Transport,
    (username, password, domain): (&str, &str, &str),
) {
    let service = device
        .self_service(t, "/self-service/activate", username, password, domain)
        .expect("steps 2-4");
    device.send_attributes(t, &service).expect("steps 5-6");
    device
        .scep_enroll(t, std::time::SystemTime::now(), &mut rng())
        .expect("steps 7-8");
}

/// HTTP basic-auth header value.
pub fn basic(user: &str, password: &str) -> String {
    use base64ct::{Base64, Encoding};
    format!(
        "Basic {}",
        Base64::encode_string(format!("{user}:{password}").as_bytes())
    )
}

/// The admin page (basic auth `root:adminpw`).
pub fn admin_page(server: &Server) -> String {
    let auth = basic("root", "adminpw");
    let page = server.request("GET", "/admin", &[("Authorization", &auth)], b"");
    assert_eq!(page.status, 200);
    page.text()
}

/// The admin page's `<section>` of the activation whose device is `udid`.
pub fn admin_section(page: &str, udid: &str) -> String {
    page.split("<section")
        .find(|s| s.contains(udid))
        .unwrap_or_else(|| panic!("no activation for {udid} on the admin page"))
        .to_owned()
}

/// A command plist as Apple documents it (for the admin API).
pub fn command_plist(uuid: &str, request_type: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Command</key>
	<dict>
		<key>RequestType</key>
		<string>{request_type}</string>
	</dict>
	<key>CommandUUID</key>
	<string>{uuid}</string>
</dict>
</plist>
"#
    )
    .into_bytes()
}

/// The admin API device's `results` as `(command_uuid, request_type, status)`.
pub fn results(device: &serde_json::Value) -> Vec<(String, String, String)> {
    device["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["command_uuid"].as_str().unwrap_or_default().to_owned(),
                r["request_type"].as_str().unwrap_or_default().to_owned(),
                r["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Steps 2–10 over `t`: self-service login, attributes, SCEP, Authenticate
/// and TokenUpdate. The device does not connect for commands yet.
pub fn walk_to_step_10(
    t: &mut HttpTransport,
    device: &mut mdm_enroll::testing::SimulatedDevice,
    (user, password, domain): (&str, &str, &str),
) {
    let service = device
        .self_service(t, "/self-service/activate", user, password, domain)
        .expect("steps 2-4");
    device.send_attributes(t, &service).expect("steps 5-7");
    device
        .scep_enroll(t, std::time::SystemTime::now(), &mut rng())
        .expect("step 8");
    device.check_in(t, "Authenticate").expect("step 9");
    device.check_in(t, "TokenUpdate").expect("step 10");
}
