//! Starts the example server as a child process on 127.0.0.1 with a
//! temporary data folder, and talks HTTP/1.1 to it with a tiny std client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The example's certificate helpers (shared, not copied).
#[path = "../../examples/server/tls.rs"]
pub mod tls;

/// Path of the example binary: `cargo test` builds examples next to the
/// test executables (`target/<profile>/examples/server`); run the whole
/// suite (not just `--test server_http`) so it is current.
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("examples").join("server");
    assert!(
        bin.exists(),
        "{} missing: run `cargo test` (it builds the examples)",
        bin.display()
    );
    bin
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
        let mut child = Command::new(server_binary())
            .args(["--listen", listen, "--data"])
            .arg(data)
            .args(args)
            .env("RUST_LOG", "warn")
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

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
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
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut rest = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut body = Vec::new();
        let mut cur = &rest[..];
        loop {
            let nl = cur
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&cur[..nl])
                    .split(';')
                    .next()
                    .unwrap_or("0")
                    .trim(),
                16,
            )
            .expect("hex");
            cur = &cur[nl + 2..];
            if size == 0 {
                break;
            }
            body.extend_from_slice(&cur[..size]);
            cur = &cur[size + 2..];
        }
        rest = body;
    }
    HttpResponse {
        status,
        headers,
        body: rest,
    }
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
