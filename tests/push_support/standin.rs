//! A local APNs stand-in: HTTP/2 over TLS on 127.0.0.1 that requires a
//! client certificate from its own test CA, answers from a script (200 when
//! the script is empty) and records every request. Shared by
//! `tests/push_apns.rs` and `benches/push.rs`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mdm_enroll::cms::Certificate;
use mdm_enroll::crypto::{RsaKey, Signer};
use mdm_enroll::pki::{self, LeafPolicy};
use mdm_enroll::push::{PushCertificate, PushIdentity};
use rand_core::UnwrapErr;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::task::JoinSet;

/// The push topic of the test push certificate.
pub const TOPIC: &str = "com.apple.mgmt.External.5e2b3c4d-0000-4000-8000-standin";

/// The stand-in's CA, its TLS configuration, and a push identity it accepts.
pub struct Pki {
    /// The CA: trust anchor for the stand-in's TLS certificate, and issuer of
    /// the client certificates it accepts.
    pub ca: Certificate,
    /// A push certificate (UID = the topic) and key issued by the CA.
    pub identity: PushIdentity,
    /// The stand-in's rustls configuration (client certificate required, ALPN h2).
    pub server: Arc<rustls::ServerConfig>,
}

fn cms(c: &x509_cert::Certificate) -> Certificate {
    Certificate::from_der(&pki::to_der(c).unwrap()).unwrap()
}

impl Pki {
    /// A fresh CA, a TLS certificate for 127.0.0.1 and a push identity for [`TOPIC`].
    pub fn new() -> Self {
        Self::with_topic(TOPIC)
    }

    /// A fresh CA, a TLS certificate for 127.0.0.1 and a push identity for `topic`.
    pub fn with_topic(topic: &str) -> Self {
        Self::with_push_validity(topic, Duration::from_secs(365 * 86_400))
    }

    /// [`Pki::with_topic`] with a push certificate valid for `push_validity` from now.
    pub fn with_push_validity(topic: &str, push_validity: Duration) -> Self {
        let mut rng = UnwrapErr(getrandom::SysRng);
        let now = SystemTime::now();
        let year = Duration::from_secs(365 * 86_400);
        let ca_key = RsaKey::generate(&mut rng, 2048).unwrap();
        let ca = pki::create_ca(
            &ca_key,
            "CN=APNs stand-in CA".parse().unwrap(),
            pki::random_serial(&mut rng),
            pki::validity(now, year).unwrap(),
        )
        .unwrap();
        let issue = |key: &RsaKey,
                     policy: LeafPolicy,
                     valid: Duration,
                     rng: &mut UnwrapErr<getrandom::SysRng>| {
            let spki = spki::SubjectPublicKeyInfoOwned::from_key(key.public_key()).unwrap();
            let cert = pki::issue(
                &ca,
                &ca_key,
                spki,
                &policy,
                pki::random_serial(rng),
                pki::validity(now, valid).unwrap(),
            )
            .unwrap();
            cms(&cert)
        };
        let tls_key = RsaKey::generate(&mut rng, 2048).unwrap();
        let tls_cert = issue(
            &tls_key,
            LeafPolicy::tls_server("CN=127.0.0.1".parse().unwrap(), &["127.0.0.1"]).unwrap(),
            year,
            &mut rng,
        );
        let push_key = RsaKey::generate(&mut rng, 2048).unwrap();
        let push_cert = issue(
            &push_key,
            LeafPolicy::client_auth(format!("CN=APSP:standin,UID={topic}").parse().unwrap()),
            push_validity,
            &mut rng,
        );
        let identity =
            PushIdentity::new(PushCertificate::new(push_cert).unwrap(), push_key).unwrap();
        let ca = cms(&ca);
        Self {
            server: server_config(&ca, &tls_cert, &tls_key),
            ca,
            identity,
        }
    }
}

fn server_config(ca: &Certificate, cert: &Certificate, key: &RsaKey) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let key = key.to_pkcs8_der().unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(&'static str, String)>,
    /// Response body.
    pub body: String,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Reply {
    /// An answer of `status` with a JSON `body`.
    pub fn new(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    /// The same answer, sent after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The same answer with a header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A request the stand-in received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Request headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// The status answered.
    pub status: u16,
    /// When the request's body had arrived.
    pub at: std::time::Instant,
}

impl Seen {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
    connections: AtomicUsize,
    refused_handshakes: AtomicUsize,
}

/// A running stand-in.
pub struct StandIn {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    connections: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl StandIn {
    /// Listen on 127.0.0.1 (a free port) with `config`.
    pub async fn start(config: Arc<rustls::ServerConfig>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let connections = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (st, conns) = (state.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, st2) = (acceptor.clone(), st.clone());
                conns.lock().await.spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(_) => {
                            st2.refused_handshakes.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    };
                    st2.connections.fetch_add(1, Ordering::SeqCst);
                    let service = hyper::service::service_fn(move |req| answer(st2.clone(), req));
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            state,
            connections,
            accept,
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Answer the next requests with `replies`, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// TLS connections accepted (client certificate verified).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// TLS handshakes refused (no or untrusted client certificate).
    pub fn refused_handshakes(&self) -> usize {
        self.state.refused_handshakes.load(Ordering::SeqCst)
    }

    /// Close every open connection (the client must reconnect).
    pub async fn drop_connections(&self) {
        self.connections.lock().await.abort_all();
    }
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default();
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Reply::new(200, ""));
    let n = {
        let mut seen = state.seen.lock().unwrap();
        seen.push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body,
            status: reply.status,
            at: std::time::Instant::now(),
        });
        seen.len()
    };
    tokio::time::sleep(reply.delay).await;
    let mut response = Response::builder()
        .status(reply.status)
        .header("apns-id", format!("00000000-0000-4000-8000-{n:012}"));
    for (k, v) in &reply.headers {
        response = response.header(*k, v);
    }
    Ok(response.body(Full::new(Bytes::from(reply.body))).unwrap())
}
