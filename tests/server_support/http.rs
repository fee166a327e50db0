//! A tiny blocking HTTP/1.1 client over `std::net` (one request per
//! connection), shared by the server tests and `examples/load.rs`, and a
//! [`Transport`] carrying the crate's neutral requests over it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mdm_enroll::http::{Request, Response};
use mdm_enroll::testing::Transport;

/// What came back.
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

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Undo `Transfer-Encoding: chunked`.
fn dechunk(mut cur: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let nl = cur
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("chunk size"))?;
        let line = String::from_utf8_lossy(cur.get(..nl).unwrap_or_default()).into_owned();
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("0").trim(), 16)
            .map_err(|_| bad("chunk size"))?;
        cur = cur.get(nl + 2..).ok_or_else(|| bad("chunk"))?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(cur.get(..size).ok_or_else(|| bad("chunk"))?);
        cur = cur.get(size + 2..).ok_or_else(|| bad("chunk"))?;
    }
}

/// One request over a fresh connection (`Connection: close`); IO errors
/// (server gone, reset) are returned, not panicked on.
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked { dechunk(&rest)? } else { rest };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// The status a [`HttpTransport`] reports when the request never got an
/// answer (connection refused or reset).
pub const NO_ANSWER: u16 = 599;

/// Carries [`Request`]s to a server at `addr`; every exchange is passed to
/// `observe` (request, response) so a test can check what went over the wire.
pub struct HttpTransport<F = fn(&Request, &Response)> {
    pub addr: SocketAddr,
    pub observe: F,
}

impl HttpTransport {
    /// A transport that observes nothing.
    pub fn new(addr: SocketAddr) -> Self {
        fn ignore(_: &Request, _: &Response) {}
        Self {
            addr,
            observe: ignore,
        }
    }
}

impl<F: FnMut(&Request, &Response)> Transport for HttpTransport<F> {
    fn send(&mut self, request: Request) -> Response {
        let target = match &request.query {
            Some(q) => format!("{}?{q}", request.path),
            None => request.path.clone(),
        };
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let response = match try_http(
            self.addr,
            request.method.as_str(),
            &target,
            &headers,
            &request.body,
        ) {
            Ok(r) => {
                let mut out = Response::empty(r.status);
                out.headers = r.headers;
                out.body = r.body.into();
                out
            }
            Err(_) => Response::empty(NO_ANSWER),
        };
        (self.observe)(&request, &response);
        response
    }
}
