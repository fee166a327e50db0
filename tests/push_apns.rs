//! The APNs client against a local HTTP/2 TLS stand-in that requires the
//! push certificate as client identity.
#![cfg(feature = "apns")]

#[path = "push_support/standin.rs"]
mod standin;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mdm_enroll::push::apns::{ApnsClient, ApnsConfig, ApnsError};
use mdm_enroll::push::{Backoff, PushOutcome, PushRequest, Reason};
use standin::{Pki, Reply, StandIn, TOPIC};

const TOKEN: [u8; 4] = [0x0a, 0xbc, 0xde, 0xf0];

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(Pki::new)
}

fn config(standin: &StandIn) -> ApnsConfig {
    let mut c = ApnsConfig::default();
    c.base_url = standin.url();
    c.public_roots = false;
    c.extra_roots = vec![pki().ca.clone()];
    c.max_attempts = 3;
    c.backoff = Backoff::new(Duration::from_millis(10), 2, Duration::from_millis(100));
    c
}

async fn setup() -> (StandIn, ApnsClient) {
    let standin = StandIn::start(pki().server.clone()).await;
    let client = ApnsClient::new(pki().identity.clone(), config(&standin)).unwrap();
    (standin, client)
}

#[tokio::test]
async fn delivered_with_the_mdm_request() {
    let (standin, client) = setup().await;
    let outcome = client.push(&TOKEN, "MAGIC-1").await.unwrap();
    assert_eq!(
        outcome,
        PushOutcome::Delivered {
            apns_id: Some("00000000-0000-4000-8000-000000000001".into())
        }
    );
    let seen = standin.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/3/device/0abcdef0");
    assert_eq!(r.header("apns-topic"), Some(TOPIC));
    assert_eq!(r.header("apns-push-type"), Some("mdm"));
    assert_eq!(r.header("apns-priority"), Some("10"));
    assert_eq!(r.header("apns-expiration"), Some("0"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, br#"{"mdm":"MAGIC-1"}"#);
}

#[tokio::test]
async fn bad_device_token_is_not_retried_and_invalidates_the_token() {
    let (standin, client) = setup().await;
    standin.script([Reply::new(400, r#"{"reason":"BadDeviceToken"}"#)]);
    let outcome = client.push(&TOKEN, "m").await.unwrap();
    assert_eq!(
        outcome,
        PushOutcome::Rejected {
            status: 400,
            reason: Reason::BadDeviceToken
        }
    );
    assert!(outcome.token_invalid());
    assert_eq!(standin.seen().len(), 1);
}

#[tokio::test]
async fn unregistered_carries_its_timestamp_and_is_not_retried() {
    let (standin, client) = setup().await;
    standin.script([Reply::new(
        410,
        r#"{"reason":"Unregistered","timestamp":1754000000123}"#,
    )]);
    let outcome = client.push(&TOKEN, "m").await.unwrap();
    assert_eq!(
        outcome,
        PushOutcome::Unregistered {
            timestamp: Some(1_754_000_000_123),
            reason: Reason::Unregistered
        }
    );
    assert!(outcome.token_invalid());
    assert_eq!(standin.seen().len(), 1);
}

#[tokio::test]
async fn certificate_problem_is_not_retried() {
    let (standin, client) = setup().await;
    standin.script([Reply::new(403, r#"{"reason":"BadCertificate"}"#)]);
    let outcome = client.push(&TOKEN, "m").await.unwrap();
    assert_eq!(
        outcome,
        PushOutcome::CertificateProblem {
            reason: Reason::BadCertificate
        }
    );
    assert_eq!(standin.seen().len(), 1);
}

#[tokio::test]
async fn too_many_requests_then_delivered_once() {
    let (standin, client) = setup().await;
    standin.script([Reply::new(429, r#"{"reason":"TooManyRequests"}"#).header("retry-after", "0")]);
    let outcome = client.push(&TOKEN, "m").await.unwrap();
    assert!(outcome.is_delivered(), "{outcome:?}");
    let statuses: Vec<u16> = standin.seen().iter().map(|s| s.status).collect();
    assert_eq!(statuses, vec![429, 200]);
}

#[tokio::test]
async fn unavailable_then_delivered_once() {
    let (standin, client) = setup().await;
    standin.script([Reply::new(503, r#"{"reason":"ServiceUnavailable"}"#)]);
    let outcome = client.push(&TOKEN, "m").await.unwrap();
    assert!(outcome.is_delivered(), "{outcome:?}");
    let statuses: Vec<u16> = standin.seen().iter().map(|s| s.status).collect();
    assert_eq!(statuses, vec![503, 200]);
}

#[tokio::test]
async fn retries_are_bounded() {
    let (standin, client) = setup().await;
    standin.script([
        Reply::new(500, r#"{"reason":"InternalServerError"}"#),
        Reply::new(503, ""),
        Reply::new(503, r#"{"reason":"Shutdown"}"#),
        Reply::new(200, ""),
    ]);
    let outcome = client.push(&TOKEN, "m").await.unwrap();
    assert_eq!(
        outcome,
        PushOutcome::Retry {
            status: 503,
            reason: Reason::Shutdown,
            after: Duration::from_millis(40)
        }
    );
    assert_eq!(standin.seen().len(), 3);
}

#[tokio::test]
async fn wrong_topic_is_refused_before_sending() {
    let (standin, client) = setup().await;
    let request = PushRequest::new(&TOKEN, "com.apple.mgmt.External.other", "m");
    assert_eq!(
        client.send(&request).await,
        Err(ApnsError::TopicMismatch {
            request: "com.apple.mgmt.External.other".into(),
            certificate: TOPIC.into(),
        })
    );
    assert_eq!(standin.seen().len(), 0);
    assert_eq!(standin.connections(), 0);
}

#[tokio::test]
async fn concurrent_pushes_share_one_connection() {
    let (standin, client) = setup().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40u8 {
        let client = client.clone();
        tasks.spawn(async move { client.push(&[i], "m").await });
    }
    while let Some(r) = tasks.join_next().await {
        assert!(r.unwrap().unwrap().is_delivered());
    }
    assert_eq!(standin.seen().len(), 40);
    assert_eq!(standin.connections(), 1);
}

#[tokio::test]
async fn reconnects_after_the_connection_drops() {
    let (standin, client) = setup().await;
    assert!(client.push(&TOKEN, "m").await.unwrap().is_delivered());
    standin.drop_connections().await;
    assert!(client.push(&TOKEN, "m").await.unwrap().is_delivered());
    assert_eq!(standin.connections(), 2);
    let delivered = standin.seen().iter().filter(|s| s.status == 200).count();
    assert_eq!(delivered, 2);
}

#[tokio::test]
async fn a_stalled_answer_times_out_and_the_next_push_reconnects() {
    let standin = StandIn::start(pki().server.clone()).await;
    let mut c = config(&standin);
    c.request_timeout = Duration::from_millis(300);
    c.max_attempts = 1;
    let client = ApnsClient::new(pki().identity.clone(), c).unwrap();
    standin.script([Reply::new(200, "").after(Duration::from_secs(30))]);
    assert_eq!(
        client.push(&TOKEN, "m").await,
        Err(ApnsError::Timeout("request"))
    );
    assert!(client.push(&TOKEN, "m").await.unwrap().is_delivered());
    assert_eq!(
        standin.connections(),
        2,
        "the stalled connection was replaced"
    );
}

#[tokio::test]
async fn the_gateway_must_be_trusted() {
    let standin = StandIn::start(pki().server.clone()).await;
    let mut c = config(&standin);
    c.extra_roots.clear();
    c.public_roots = true;
    c.max_attempts = 1;
    let client = ApnsClient::new(pki().identity.clone(), c).unwrap();
    let err = client.push(&TOKEN, "m").await.unwrap_err();
    assert!(
        matches!(&err, ApnsError::Connect { reason, .. } if reason.starts_with("TLS")),
        "{err:?}"
    );
    assert_eq!(standin.seen().len(), 0);
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::{CertificateDer, ServerName};

    let standin = StandIn::start(pki().server.clone()).await;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki().ca.der().to_vec()))
        .unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(standin.addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    // TLS 1.3: the client's side of the handshake may finish before the
    // server checks the (absent) certificate, so the refusal shows at the
    // latest on the first HTTP/2 exchange.
    let refused = async {
        let tls = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await?;
        let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Full<bytes::Bytes>>(
            TokioExecutor::new(),
            TokioIo::new(tls),
        )
        .await
        .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        let req = hyper::Request::post(format!("{}/3/device/00", standin.url()))
            .header("apns-topic", TOPIC)
            .body(Full::new(bytes::Bytes::from_static(b"{\"mdm\":\"m\"}")))
            .unwrap();
        sender
            .send_request(req)
            .await
            .map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>(())
    }
    .await;
    assert!(
        refused.is_err(),
        "the stand-in answered a client without a certificate"
    );
    assert_eq!(standin.seen().len(), 0);
    assert_eq!(standin.connections(), 0);
    // The stand-in counts the refusal after sending its alert.
    for _ in 0..500 {
        if standin.refused_handshakes() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(standin.refused_handshakes(), 1);
}
