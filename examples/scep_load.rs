//! SCEP load client: fresh PKCSReqs against two SCEP servers, alternating
//! between them in chunks, so both see the same machine state. Used by
//! `benches/scep_vs_micromdm.sh` (our example server vs micromdm's
//! `scepserver`).
//!
//! ```text
//! scep_load --a NAME=URL --b NAME=URL --keys DIR [--challenge S]
//!           [--requests N] [--chunk K] [--clients C]
//! ```
//!
//! `URL` is a server's SCEP endpoint (`http://127.0.0.1:8080/scep`). Every
//! request has its own client key (PKCS#8 PEM files read from `DIR`,
//! generated beforehand so key generation stays out of the figures), its own
//! subject CN, transactionID and senderNonce, so nothing can be answered
//! from a cache. Everything the client signs or encrypts is built before the
//! clock starts; the timed part is the HTTP exchange over one keep-alive
//! connection per client, with no think time between requests (answers are
//! decoded and checked after each chunk's clock stops). Each target gets `N` requests, `K` at a time,
//! alternating which target goes first; with `C` clients each chunk is
//! split over `C` threads. Every answer must be a CertRep with
//! pkiStatus SUCCESS answering the request's transactionID and nonce.
//! Prints requests/s, p50/p99 latency per target and the ratio a/b.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mdm_enroll::cms::enveloped::{ContentCipher, EnvelopedData, RecipientIdentity};
use mdm_enroll::cms::{self, Certificate, SignedDataBuilder};
use mdm_enroll::crypto::{DigestAlgorithm, RsaKey};
use mdm_enroll::scep::{PkiMessage, PkiStatus};
use mdm_enroll::wire::BerLimits;
use rand_core::{Rng, UnwrapErr};

const USAGE: &str = "usage: scep_load --a NAME=URL --b NAME=URL --keys DIR [--challenge S] [--requests N] [--chunk K] [--clients C]";

struct Target {
    name: String,
    host: String,
    path: String,
}

struct Args {
    targets: [Target; 2],
    keys: PathBuf,
    challenge: Option<String>,
    requests: usize,
    chunk: usize,
    clients: usize,
}

fn target(spec: &str) -> Result<Target, String> {
    let (name, url) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec}: want NAME=URL"))?;
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    Ok(Target {
        name: name.into(),
        host: host.into(),
        path: format!("/{path}"),
    })
}

fn parse_args() -> Result<Args, String> {
    let (mut a, mut b, mut keys, mut challenge) = (None, None, None, None);
    let (mut requests, mut chunk, mut clients) = (300, 50, 1);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| -> Result<usize, String> {
            v.parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{v}: want a positive number"))
        };
        match flag.as_str() {
            "--a" => a = Some(target(&value()?)?),
            "--b" => b = Some(target(&value()?)?),
            "--keys" => keys = Some(PathBuf::from(value()?)),
            "--challenge" => challenge = Some(value()?),
            "--requests" => requests = number(value()?)?,
            "--chunk" => chunk = number(value()?)?,
            "--clients" => clients = number(value()?)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Args {
        targets: [a.ok_or("--a missing")?, b.ok_or("--b missing")?],
        keys: keys.ok_or("--keys missing")?,
        challenge,
        requests,
        chunk,
        clients,
    })
}

/// A keep-alive HTTP/1.1 connection (bodies with Content-Length only).
struct Conn {
    host: String,
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(host: &str) -> Conn {
        let s = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
        s.set_nodelay(true).expect("nodelay");
        Conn {
            host: host.into(),
            reader: BufReader::new(s),
        }
    }

    fn exchange(&mut self, method: &str, target: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-pki-message\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let s = self.reader.get_mut();
        s.write_all(head.as_bytes()).expect("write head");
        s.write_all(body).expect("write body");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let (mut len, mut content_type, mut chunked) = (None, String::new(), false);
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse::<usize>().ok(),
                    "content-type" => content_type = v.trim().into(),
                    "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                    _ => {}
                }
            }
        }
        if !chunked {
            let mut out = vec![0u8; len.expect("Content-Length or chunked in the answer")];
            self.reader.read_exact(&mut out).expect("body");
            return (status, content_type, out);
        }
        let mut out = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("chunk size");
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .expect("chunk size");
            let start = out.len();
            out.resize(start + size, 0);
            self.reader.read_exact(&mut out[start..]).expect("chunk");
            line.clear();
            self.reader.read_line(&mut line).expect("chunk end");
            if size == 0 {
                break;
            }
        }
        (status, content_type, out)
    }
}

/// The recipient of a target's PKCSReqs (its RA if it has one) and the CA.
fn ca_of(t: &Target) -> Certificate {
    let mut c = Conn::open(&t.host);
    let (status, ct, body) = c.exchange(
        "GET",
        &format!("{}?operation=GetCACert&message=ca", t.path),
        b"",
    );
    assert_eq!(status, 200, "{}: GetCACert", t.name);
    if ct.starts_with("application/x-x509-ca-ra-cert") {
        let bag = cms::SignedData::parse(&body, &BerLimits::default()).expect("CA/RA bag");
        let certs = bag.certificates();
        let ca = certs
            .iter()
            .find(|c| c.verify_issued_by(c).is_ok())
            .expect("CA in bag");
        certs
            .iter()
            .find(|c| c.der() != ca.der())
            .cloned()
            .unwrap_or_else(|| ca.clone())
    } else {
        Certificate::from_der(&body).expect("CA certificate")
    }
}

/// One prepared request: body, transactionID and nonce to check the answer.
struct Prepared {
    body: Vec<u8>,
    tid: String,
    nonce: [u8; 16],
}

fn der_string(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = value.len();
    if n < 0x80 {
        v.push(n as u8);
    } else {
        v.extend([0x81, n as u8]);
    }
    v.extend_from_slice(value);
    v
}

fn prepare(
    key: &RsaKey,
    recipient: &Certificate,
    challenge: Option<&str>,
    cn: &str,
    rng: &mut UnwrapErr<getrandom::SysRng>,
) -> Prepared {
    let now = SystemTime::now();
    let subject: x509_cert::name::Name = format!("CN={cn},O=scep-load").parse().expect("subject");
    let csr = mdm_enroll::testing::build_csr(key, &subject, challenge).expect("CSR");
    let temp = mdm_enroll::pki::create_ca(
        key,
        subject,
        mdm_enroll::pki::random_serial(rng),
        mdm_enroll::pki::validity(now, Duration::from_secs(86400)).expect("validity"),
    )
    .expect("self-signed certificate");
    let temp =
        Certificate::from_der(&mdm_enroll::pki::to_der(&temp).expect("der")).expect("certificate");
    let envelope = EnvelopedData::encrypt(
        &csr,
        &RecipientIdentity::of(recipient),
        &recipient.public_key().expect("recipient key"),
        ContentCipher::Aes128Cbc,
        rng,
    )
    .expect("envelope");
    let mut nonce = [0u8; 16];
    rng.fill_bytes(&mut nonce);
    let mut tid = [0u8; 20];
    rng.fill_bytes(&mut tid);
    let tid: String = tid.iter().map(|b| format!("{b:02X}")).collect();
    let body = SignedDataBuilder::new(cms::oid::ID_DATA, &envelope, key, &temp)
        .digest(DigestAlgorithm::Sha256)
        .signed_attribute(mdm_enroll::scep::oid::MESSAGE_TYPE, der_string(0x13, b"19"))
        .signed_attribute(
            mdm_enroll::scep::oid::TRANSACTION_ID,
            der_string(0x13, tid.as_bytes()),
        )
        .signed_attribute(
            mdm_enroll::scep::oid::SENDER_NONCE,
            der_string(0x04, &nonce),
        )
        .build()
        .expect("PKCSReq");
    Prepared { body, tid, nonce }
}

/// Send `reqs` over one connection; the latency and the answer of each.
/// Nothing else happens between two requests (no think time): the answers
/// are checked by [`check`] once the chunk's clock has stopped.
fn run(t: &Target, reqs: &[Prepared]) -> Vec<(Duration, Vec<u8>)> {
    let mut c = Conn::open(&t.host);
    let target = format!("{}?operation=PKIOperation", t.path);
    reqs.iter()
        .map(|r| {
            let start = Instant::now();
            let (status, _, body) = c.exchange("POST", &target, &r.body);
            let took = start.elapsed();
            assert_eq!(status, 200, "{}: PKIOperation", t.name);
            (took, body)
        })
        .collect()
}

/// Whether `body` is a SUCCESS CertRep answering `r` (panics on an answer
/// to another transaction or nonce; a FAILURE CertRep is `false`).
fn check(t: &Target, r: &Prepared, body: &[u8]) -> bool {
    let rep = PkiMessage::decode(body, &BerLimits::default()).expect("CertRep");
    assert_eq!(rep.transaction_id(), r.tid, "{}: transactionID", t.name);
    assert_eq!(
        rep.recipient_nonce(),
        Some(&r.nonce[..]),
        "{}: nonce",
        t.name
    );
    let ok = matches!(rep.pki_status(), Some(PkiStatus::Success));
    if !ok {
        eprintln!(
            "{}: pkiStatus {:?}, failInfo {:?}",
            t.name,
            rep.pki_status(),
            rep.fail_info()
        );
    }
    ok
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("{e}\n{USAGE}");
        std::process::exit(2)
    });
    let mut rng = UnwrapErr(getrandom::SysRng);
    let mut key_files: Vec<PathBuf> = std::fs::read_dir(&args.keys)
        .expect("keys dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    key_files.sort();
    let need = 2 * args.requests;
    assert!(
        key_files.len() >= need,
        "{} keys in {}, need {need} (one per request)",
        key_files.len(),
        args.keys.display()
    );
    let recipients = [ca_of(&args.targets[0]), ca_of(&args.targets[1])];
    // Build every request first: a key, CN, transactionID and nonce each.
    let prep_start = Instant::now();
    let run_id: u64 = rng.next_u64();
    let mut prepared: [Vec<Prepared>; 2] = [Vec::new(), Vec::new()];
    for (i, file) in key_files.iter().take(need).enumerate() {
        let key = RsaKey::from_pem_or_der(&std::fs::read(file).expect("key file")).expect("key");
        let which = i % 2;
        let cn = format!("load-{run_id:016x}-{i}");
        prepared[which].push(prepare(
            &key,
            &recipients[which],
            args.challenge.as_deref(),
            &cn,
            &mut rng,
        ));
    }
    eprintln!(
        "prepared {need} PKCSReqs in {:.1} s (not timed)",
        prep_start.elapsed().as_secs_f64()
    );

    let prepared = prepared.map(Arc::new);
    let mut lat: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut busy = [Duration::ZERO; 2];
    let mut failed = [0usize; 2];
    let chunks = args.requests.div_ceil(args.chunk);
    let targets = Arc::new(args.targets);
    for round in 0..chunks {
        let lo = round * args.chunk;
        let hi = (lo + args.chunk).min(args.requests);
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let start = Instant::now();
            let per = (hi - lo).div_ceil(args.clients);
            let handles: Vec<_> = (0..args.clients)
                .map(|c| {
                    let (prepared, targets) = (prepared[which].clone(), targets.clone());
                    let a = (lo + c * per).min(hi);
                    let b = (a + per).min(hi);
                    std::thread::spawn(move || run(&targets[which], &prepared[a..b]))
                })
                .collect();
            let answers: Vec<_> = handles
                .into_iter()
                .flat_map(|h| h.join().expect("client thread"))
                .collect();
            busy[which] += start.elapsed();
            for (r, (took, body)) in prepared[which][lo..hi].iter().zip(answers) {
                lat[which].push(took);
                failed[which] += usize::from(!check(&targets[which], r, &body));
            }
        }
    }
    let mut rate = [0.0; 2];
    for which in 0..2 {
        let l = &mut lat[which];
        l.sort();
        rate[which] = l.len() as f64 / busy[which].as_secs_f64();
        println!(
            "{:<10} clients={} requests={} failed={} {:>8.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            targets[which].name,
            args.clients,
            l.len(),
            failed[which],
            rate[which],
            percentile(l, 0.50).as_secs_f64() * 1e3,
            percentile(l, 0.99).as_secs_f64() * 1e3,
        );
    }
    println!(
        "ratio {}/{} = {:.2}x (clients={})",
        targets[0].name,
        targets[1].name,
        rate[0] / rate[1],
        args.clients
    );
}
