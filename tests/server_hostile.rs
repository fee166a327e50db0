//! Hostile clients against the real example server (`target/debug/examples/server`):
//! per-endpoint oversized bodies are 413 before any work, and slow-loris
//! clients that dribble their headers or their body are cut off by the
//! server's timeouts while healthy requests keep being answered. Deadlines
//! are generous bounds on "eventually", not measurements.
#![cfg(all(feature = "sqlite", feature = "test-support"))]

mod server_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use server_support::Server;

const USER: &str = "ann:pw@corp.example";

fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--http", "--user", USER, "--admin", "a:b"]);
    (dir, server)
}

/// Every device-facing endpoint refuses one byte over its limit with 413
/// and accepts (reads, then refuses on content) a body at the limit.
#[test]
fn oversized_bodies_per_endpoint() {
    let (_dir, server) = start();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    /// Method, path, headers, body limit, status of a body at the limit.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], usize, u16);
    let cases: &[Case] = &[
        ("POST", "/", &form, 8 * 1024, 403),
        ("POST", "/self-service/activate", &form, 8 * 1024, 403),
        ("POST", "/enroll", &[], 64 * 1024, 400),
        ("POST", "/scep?operation=PKIOperation", &[], 64 * 1024, 400),
        ("PUT", "/mdm/checkin", &[], 64 * 1024, 400),
        ("PUT", "/mdm/connect", &[], 4 * 1024 * 1024, 400),
    ];
    for &(method, path, headers, limit, at_limit) in cases {
        let over = vec![b'a'; limit + 1];
        let r = server.request(method, path, headers, &over);
        assert_eq!(r.status, 413, "{method} {path} with {} bytes", limit + 1);
        let at = vec![b'a'; limit];
        let r = server.request(method, path, headers, &at);
        assert_eq!(r.status, at_limit, "{method} {path} with {limit} bytes");
        assert!(
            !r.text().to_lowercase().contains("store"),
            "{method} {path}: {}",
            r.text()
        );
    }
    assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
}

/// Write `head`, then `dribble` one byte every 300 ms until the server
/// closes the connection or answers; returns what it answered (may be empty)
/// and how long it took. Gives up after `deadline`.
fn dribble(addr: SocketAddr, head: &[u8], dribble: u8, deadline: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    s.write_all(head).expect("head");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (answer, start.elapsed()),
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                continue;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (answer, start.elapsed()),
        }
        if s.write_all(&[dribble]).is_err() {
            return (answer, start.elapsed());
        }
    }
    panic!("the server still held the connection after {deadline:?}");
}

#[test]
fn slow_loris_is_cut_off_while_others_are_served() {
    let (_dir, server) = start();
    let addr = server.addr;
    // Headers that never end: a header line growing one byte at a time.
    let headers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                dribble(
                    addr,
                    b"PUT /mdm/checkin HTTP/1.1\r\nHost: x\r\nX-Slow: ",
                    b'a',
                    Duration::from_secs(60),
                )
            })
        })
        .collect();
    // A body that never ends: complete headers, then one byte at a time.
    let bodies: Vec<_> = [
        "POST /enroll",
        "POST /scep?operation=PKIOperation",
        "PUT /mdm/checkin",
    ]
    .iter()
    .map(|line| {
        let head = format!("{line} HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n");
        std::thread::spawn(move || dribble(addr, head.as_bytes(), b'a', Duration::from_secs(90)))
    })
    .collect();
    // Meanwhile healthy requests are answered.
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..5 {
        assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
        let r = server.request("PUT", "/mdm/checkin", &[], b"<plist/>");
        assert_eq!(r.status, 400);
        std::thread::sleep(Duration::from_millis(500));
    }
    for h in headers {
        let (answer, _) = h.join().expect("header dribbler");
        // Cut off: closed, or a 408 before closing; never a served request.
        let text = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || text.starts_with("HTTP/1.1 408"),
            "headers dribbler got {text:?}"
        );
    }
    for b in bodies {
        let (answer, _) = b.join().expect("body dribbler");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || text.starts_with("HTTP/1.1 408"),
            "body dribbler got {text:?}"
        );
    }
    assert_eq!(server.request("GET", "/healthz", &[], b"").status, 200);
}
