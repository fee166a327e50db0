//! An HTTP/2 APNs client (feature `apns`): hyper over rustls (ring), tokio.
//!
//! [`ApnsClient`] holds one multiplexed HTTP/2 connection to the gateway,
//! authenticated with the push certificate as TLS client identity, and opens
//! a new one when it drops. At most [`ApnsConfig::max_concurrent`] pushes are
//! in flight; each push is retried on 429 and 5xx (honouring `Retry-After`,
//! else [`ApnsConfig::backoff`]) and on transport failures, at most
//! [`ApnsConfig::max_attempts`] times in all, and never on 400, 403 or 410.
//! A push whose topic is not the certificate's is refused before anything is
//! sent. A transport failure after the request left may repeat a push the
//! gateway already took; for MDM that only wakes the device once more.
//!
//! ```no_run
//! # async fn run(cert: &[u8], key: &[u8], token: &[u8], magic: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use mdm_enroll::push::{PushIdentity, apns::{ApnsClient, ApnsConfig}};
//! let client = ApnsClient::new(PushIdentity::from_pem_or_der(cert, key)?, ApnsConfig::default())?;
//! let outcome = client.push(token, magic).await?;
//! if outcome.token_invalid() { /* stop pushing until the next TokenUpdate */ }
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};
use tokio_rustls::TlsConnector;

use super::response::MAX_BODY_BYTES;
use super::{Backoff, PushIdentity, PushOptions, PushOutcome, PushRequest};
use crate::cms::Certificate;

/// Apple's production APNs gateway.
pub const PRODUCTION_URL: &str = "https://api.push.apple.com";
/// Apple's development (sandbox) APNs gateway.
pub const SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

/// How the client connects, retries and sends.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApnsConfig {
    /// `https://host[:port]` of the gateway (default [`PRODUCTION_URL`]).
    pub base_url: String,
    /// Trust the public web PKI (Mozilla's roots) for the gateway (default true).
    pub public_roots: bool,
    /// Further trust anchors for the gateway: a local stand-in or a proxy.
    pub extra_roots: Vec<Certificate>,
    /// Most pushes in flight at once (default 100).
    pub max_concurrent: usize,
    /// Limit for TCP connect + TLS + HTTP/2 handshake (default 10 s).
    pub connect_timeout: Duration,
    /// Limit for one request and its answer (default 15 s).
    pub request_timeout: Duration,
    /// Most attempts for one push, the first included (default 3).
    pub max_attempts: u32,
    /// Wait between attempts when APNs names none (default 1 s, doubling, at most 60 s).
    pub backoff: Backoff,
    /// Priority and expiry of pushes built by [`ApnsClient::push`].
    pub options: PushOptions,
}

impl Default for ApnsConfig {
    fn default() -> Self {
        Self {
            base_url: PRODUCTION_URL.to_owned(),
            public_roots: true,
            extra_roots: Vec::new(),
            max_concurrent: 100,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(15),
            max_attempts: 3,
            backoff: Backoff::default(),
            options: PushOptions::default(),
        }
    }
}

/// Why a push could not be sent (APNs answers, errors included, are a
/// [`PushOutcome`], not this).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApnsError {
    /// The base URL is not `https://host[:port]`.
    #[error("APNs URL {0:?} is not https://host[:port]")]
    InvalidUrl(String),
    /// The TLS client configuration could not be built (certificate or key refused).
    #[error("APNs TLS configuration: {0}")]
    Tls(String),
    /// The push's topic is not the certificate's: nothing was sent.
    #[error("push topic {request:?} is not the push certificate's topic {certificate:?}")]
    TopicMismatch {
        /// The request's topic.
        request: String,
        /// The certificate's topic.
        certificate: String,
    },
    /// Connecting (TCP, TLS or HTTP/2) failed.
    #[error("APNs connection to {url} failed: {reason}")]
    Connect {
        /// The gateway.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The request failed on the connection.
    #[error("APNs request failed: {0}")]
    Request(String),
    /// Connecting or the request took longer than configured.
    #[error("APNs {0} timed out")]
    Timeout(&'static str),
}

/// An APNs client; cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct ApnsClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ApnsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsClient")
            .field("base_url", &self.inner.config.base_url)
            .field("topic", &self.inner.topic)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ApnsConfig,
    topic: String,
    host: String,
    port: u16,
    authority: String,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    connection: Mutex<Option<SendRequest<Full<Bytes>>>>,
    permits: Semaphore,
}

impl ApnsClient {
    /// A client for `identity` (push certificate and key) under `config`. No
    /// connection is opened until the first push.
    pub fn new(identity: PushIdentity, config: ApnsConfig) -> Result<Self, ApnsError> {
        let (host, port) = parse_base_url(&config.base_url)?;
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| ApnsError::InvalidUrl(config.base_url.clone()))?;
        let tls = tls_config(&identity, &config)?;
        let authority = if port == 443 {
            host.clone()
        } else if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            inner: Arc::new(Inner {
                topic: identity.certificate().topic().to_owned(),
                permits: Semaphore::new(config.max_concurrent.max(1)),
                config,
                host,
                port,
                authority,
                server_name,
                tls: TlsConnector::from(Arc::new(tls)),
                connection: Mutex::new(None),
            }),
        })
    }

    /// The push topic of the client's certificate.
    pub fn topic(&self) -> &str {
        &self.inner.topic
    }

    /// Push to a device `token` with `push_magic`, under the certificate's
    /// topic and [`ApnsConfig::options`] (expiry from the system clock).
    pub async fn push(&self, token: &[u8], push_magic: &str) -> Result<PushOutcome, ApnsError> {
        let request = PushRequest::with_options(
            token,
            &self.inner.topic,
            push_magic,
            &self.inner.config.options,
            SystemTime::now(),
        );
        self.send(&request).await
    }

    /// Send `request`, retrying as configured; the outcome of the last attempt.
    pub async fn send(&self, request: &PushRequest) -> Result<PushOutcome, ApnsError> {
        if request.topic != self.inner.topic {
            return Err(ApnsError::TopicMismatch {
                request: request.topic.clone(),
                certificate: self.inner.topic.clone(),
            });
        }
        let cfg = &self.inner.config;
        let max = cfg.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let result = self.attempt(request, attempt).await;
            let wait = match &result {
                Ok(outcome) => outcome.retry_after(),
                Err(ApnsError::TopicMismatch { .. } | ApnsError::Tls(_)) => None,
                Err(_) => Some(cfg.backoff.delay(attempt)),
            };
            match wait {
                Some(wait) if attempt < max => {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return result,
            }
        }
    }

    async fn attempt(&self, request: &PushRequest, attempt: u32) -> Result<PushOutcome, ApnsError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|e| ApnsError::Request(e.to_string()))?;
        let cfg = &self.inner.config;
        let mut sender = self.connection().await?;
        let mut builder = http::Request::builder()
            .method(PushRequest::METHOD)
            .uri(format!("https://{}{}", self.inner.authority, request.path));
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        let http_request = builder
            .body(Full::new(Bytes::from(request.body.clone())))
            .map_err(|e| ApnsError::Request(e.to_string()))?;
        let exchange = async {
            sender
                .ready()
                .await
                .map_err(|e| ApnsError::Request(e.to_string()))?;
            let response = sender
                .send_request(http_request)
                .await
                .map_err(|e| ApnsError::Request(e.to_string()))?;
            let (parts, body) = response.into_parts();
            // An oversized or broken body leaves the outcome to the status.
            let body = Limited::new(body, MAX_BODY_BYTES)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            Ok::<_, ApnsError>((parts, body))
        };
        let (parts, body) = match tokio::time::timeout(cfg.request_timeout, exchange).await {
            Ok(r) => r?,
            Err(_) => {
                // A connection that stalls is replaced on the next attempt.
                self.inner.connection.lock().await.take();
                return Err(ApnsError::Timeout("request"));
            }
        };
        let headers: Vec<(&str, &str)> = ["apns-id", "retry-after"]
            .into_iter()
            .filter_map(|n| {
                let v = parts.headers.get(n)?.to_str().ok()?;
                Some((n, v))
            })
            .collect();
        Ok(PushOutcome::from_response(
            parts.status.as_u16(),
            &headers,
            &body,
            attempt,
            &cfg.backoff,
        ))
    }

    /// The open connection, or a new one when there is none or it closed.
    async fn connection(&self) -> Result<SendRequest<Full<Bytes>>, ApnsError> {
        let mut slot = self.inner.connection.lock().await;
        if let Some(sender) = slot.as_ref()
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        slot.take();
        let sender = tokio::time::timeout(self.inner.config.connect_timeout, self.connect())
            .await
            .map_err(|_| ApnsError::Timeout("connect"))??;
        *slot = Some(sender.clone());
        Ok(sender)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ApnsError> {
        let inner = &self.inner;
        let failed = |reason: String| ApnsError::Connect {
            url: inner.config.base_url.clone(),
            reason,
        };
        let tcp = TcpStream::connect((inner.host.as_str(), inner.port))
            .await
            .map_err(|e| failed(format!("TCP: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| failed(format!("TCP: {e}")))?;
        let tls = inner
            .tls
            .connect(inner.server_name.clone(), tcp)
            .await
            .map_err(|e| failed(format!("TLS: {e}")))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(failed(
                "the server did not agree to HTTP/2 (ALPN h2)".into(),
            ));
        }
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(60))
            .keep_alive_timeout(Duration::from_secs(20))
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| failed(format!("HTTP/2: {e}")))?;
        // The connection task ends when the connection closes; the sender
        // then reports `is_closed` and the next push reconnects.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// `https://host[:port]` (a trailing `/` allowed) → host and port.
fn parse_base_url(url: &str) -> Result<(String, u16), ApnsError> {
    let bad = || ApnsError::InvalidUrl(url.to_owned());
    let rest = url.strip_prefix("https://").ok_or_else(bad)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| bad())?,
        None => 443,
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

fn tls_config(
    identity: &PushIdentity,
    config: &ApnsConfig,
) -> Result<rustls::ClientConfig, ApnsError> {
    let tls_err = |e: String| ApnsError::Tls(e);
    let mut roots = rustls::RootCertStore::empty();
    if config.public_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for anchor in &config.extra_roots {
        roots
            .add(CertificateDer::from(anchor.der().to_vec()))
            .map_err(|e| tls_err(format!("trust anchor: {e}")))?;
    }
    let key = identity
        .key()
        .to_pkcs8_der()
        .map_err(|e| tls_err(format!("push key: {e}")))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
    let chain = vec![CertificateDer::from(
        identity.certificate().certificate().der().to_vec(),
    )];
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls_err(format!("push certificate: {e}")))?;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            parse_base_url("https://api.push.apple.com").unwrap(),
            ("api.push.apple.com".into(), 443)
        );
        assert_eq!(
            parse_base_url("https://127.0.0.1:8443/").unwrap(),
            ("127.0.0.1".into(), 8443)
        );
        assert_eq!(
            parse_base_url("https://[::1]:2197").unwrap(),
            ("::1".into(), 2197)
        );
        for bad in [
            "http://api.push.apple.com",
            "https://",
            "https://h/3/device",
            "https://h:99999",
            "https://u@h",
            "https://[::1",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }
}
