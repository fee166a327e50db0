//! Real SCEP clients against the responder over HTTP on 127.0.0.1.
//!
//! Serves `ScepResponder` from a tiny std::net HTTP/1.1 server and runs
//! `tests/interop/scep_interop.sh` (micromdm scepclient, certmonger, the
//! Apple-rules emulator in DER/BER/chunked-BER modes, wrong-challenge
//! negatives, micromdm RenewalReq signed by the issued certificate). Needs root
//! and Debian's `scep`, `certmonger`, `dbus`, python3-cryptography and
//! python3-asn1crypto (`.ci/run` installs them); without them the test is
//! ignored with the install command, and under `CI=true` it fails.

mod server_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mdm_enroll::crypto::{KeyUnwrapper, RsaKey, Signer};
use mdm_enroll::http::{Method, Request, Response};
use mdm_enroll::pki::{self, LeafPolicy};
use mdm_enroll::scep::{
    ChallengeVerdict, ChallengeVerifier, FailInfo, IssuanceRecord, RequestFingerprint, ScepOutcome,
    ScepResponder,
};
use rand_core::UnwrapErr;

type Rng = UnwrapErr<getrandom::SysRng>;

/// The caller side of the test server: a reusable challenge (the harness
/// enrolls several clients with one), issuance records for replays.
struct Caller {
    challenge: Vec<u8>,
    records: Mutex<HashMap<String, IssuanceRecord>>,
}

impl ChallengeVerifier for Caller {
    fn consume(
        &self,
        challenge: &mdm_enroll::scep::Challenge,
        _fingerprint: &RequestFingerprint,
        _now: SystemTime,
    ) -> ChallengeVerdict {
        if challenge.matches(&self.challenge) {
            ChallengeVerdict::Accepted
        } else {
            ChallengeVerdict::Refused
        }
    }
}

fn respond(responder: &ScepResponder, caller: &Caller, req: &Request) -> Response {
    let mut rng: Rng = UnwrapErr(getrandom::SysRng);
    let now = SystemTime::now();
    match responder.handle(req, now, &mut rng) {
        ScepOutcome::Respond(r) => r,
        ScepOutcome::Certificate(cr) => {
            let prior = caller
                .records
                .lock()
                .unwrap()
                .get(cr.transaction_id())
                .cloned();
            if let Some(record) = prior.filter(|r| cr.is_replay_of(r)) {
                return cr.replay(&record, now, &mut rng).unwrap();
            }
            if cr.renewal_of().is_none()
                && cr.check_challenge(caller, now) != ChallengeVerdict::Accepted
            {
                return cr.reject(FailInfo::BadRequest, now, &mut rng);
            }
            // Caller policy: keep only the requested subject's CN.
            let policy = LeafPolicy::client_auth(cr.csr().subject().clone());
            let issued = cr
                .issue(
                    &policy,
                    pki::random_serial(&mut rng),
                    pki::validity(now, Duration::from_secs(86400)).unwrap(),
                    now,
                    &mut rng,
                )
                .unwrap();
            caller
                .records
                .lock()
                .unwrap()
                .insert(cr.transaction_id().to_owned(), issued.record);
            issued.response
        }
        ScepOutcome::Poll(poll) => {
            let record = caller
                .records
                .lock()
                .unwrap()
                .get(poll.transaction_id())
                .cloned();
            match record {
                Some(r) => poll.issued(&r, now, &mut rng).unwrap(),
                None => poll.reject(FailInfo::BadCertId, now, &mut rng),
            }
        }
    }
}

/// Read one HTTP/1.1 request (Content-Length bodies only; the clients here send no chunked bodies).
fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = Method::parse(parts.next()?);
    let target = parts.next()?.to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target, None),
    };
    let mut req = Request::new(method, path);
    req.query = query;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            req.headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len: usize = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len.min(16 * 1024 * 1024)];
    reader.read_exact(&mut body).ok()?;
    req.body = body;
    Some(req)
}

fn write_response(mut stream: &TcpStream, resp: &Response) {
    let mut head = format!("HTTP/1.1 {} X\r\n", resp.status);
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        resp.body.len()
    ));
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&resp.body);
    let _ = stream.flush();
}

fn serve(responder: Arc<ScepResponder>, caller: Arc<Caller>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (responder, caller) = (responder.clone(), caller.clone());
            std::thread::spawn(move || {
                if let Some(req) = read_request(&stream) {
                    let resp = if req.path == "/scep" {
                        respond(&responder, &caller, &req)
                    } else {
                        Response::empty(404)
                    };
                    write_response(&stream, &resp);
                }
            });
        }
    });
    port
}

#[test]
#[cfg_attr(
    not(mdm_have_scep_clients),
    ignore = "needs root and the SCEP clients: apt-get install scep certmonger dbus python3-cryptography python3-asn1crypto curl iproute2"
)]
fn real_clients_enroll_over_http() {
    let harness = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/scep_interop.sh");
    assert!(harness.exists(), "harness missing: {}", harness.display());

    let mut rng: Rng = UnwrapErr(getrandom::SysRng);
    let now = SystemTime::now();
    let key = Arc::new(RsaKey::generate(&mut rng, 2048).unwrap());
    let subject = "CN=mdm-enroll SCEP interop CA,O=mdm-enroll test"
        .parse()
        .unwrap();
    let ca = pki::create_ca(
        key.as_ref(),
        subject,
        pki::random_serial(&mut rng),
        pki::validity(now, Duration::from_secs(7 * 86400)).unwrap(),
    )
    .unwrap();
    let responder = ScepResponder::new(
        &pki::to_der(&ca).unwrap(),
        key.clone() as Arc<dyn Signer>,
        key as Arc<dyn KeyUnwrapper>,
    )
    .unwrap();
    let challenge = "interop-challenge-7f3a";
    let caller = Arc::new(Caller {
        challenge: challenge.as_bytes().to_vec(),
        records: Mutex::new(HashMap::new()),
    });
    let port = serve(Arc::new(responder), caller);

    let started = std::time::Instant::now();
    let out = Command::new("bash")
        .arg(&harness)
        .arg("--renewal")
        .arg(format!("http://127.0.0.1:{port}/scep"))
        .arg(challenge)
        .output()
        .expect("run harness");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    eprintln!("harness took {:.1} s", started.elapsed().as_secs_f64());
    let last = stdout.lines().last().unwrap_or_default();
    let counts: Vec<u32> = last
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(
        last.contains(" passed, ") && counts.len() >= 2,
        "no summary line: {last}"
    );
    let (passed, failed) = (counts[0], counts[1]);
    assert_eq!(failed, 0, "harness reported failures:\n{stdout}");
    for must in [
        "PASS micromdm scepclient PKCSReq",
        "PASS micromdm scepclient wrong challenge rejected",
        "PASS apple-emu PKCSReq",
        "PASS apple-emu wrong challenge rejected",
        "PASS apple-emu --ber (",
        "PASS apple-emu --ber-chunked (",
        "PASS certmonger PKCSReq: issued",
        "PASS certmonger wrong challenge rejected",
        "PASS CA/RA keyUsage has digitalSignature+keyEncipherment",
        "PASS micromdm scepclient RenewalReq (17): new certificate",
    ] {
        assert!(stdout.contains(must), "missing `{must}` in:\n{stdout}");
    }
    assert!(passed >= 28, "only {passed} checks passed:\n{stdout}");
    assert!(out.status.success());
}
