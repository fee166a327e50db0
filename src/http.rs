//! The neutral HTTP boundary: plain request and response values that the rest
//! of the crate consumes and produces. No IO happens here; an embedding
//! server converts its own types (see the `http` feature for the `http` crate).

mod body;

pub use body::Body;

/// An HTTP method, as far as this protocol needs to tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT (check-in and connect)
    Put,
    /// Any other method, upper-case.
    Other(String),
}

impl Method {
    /// Parse a method name (case-sensitive, as HTTP says).
    pub fn parse(name: &str) -> Self {
        match name {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The method name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Other(s) => s,
        }
    }
}

/// An HTTP request as the crate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without the query string.
    pub path: String,
    /// The raw query string (without `?`), still percent-encoded.
    pub query: Option<String>,
    /// Header names (compared case-insensitively) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes exactly as received.
    pub body: Vec<u8>,
    /// The DER certificate the client presented in the TLS handshake, if any.
    pub tls_client_certificate: Option<Vec<u8>>,
}

impl Request {
    /// A request with no headers, query or body.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: None,
            headers: Vec::new(),
            body: Vec::new(),
            tls_client_certificate: None,
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The media type of the `Content-Type` header, lower-case, without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// The first value of query parameter `name`, percent-decoded (`+` is kept as `+`).
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k).as_deref() == Some(name))
                .then(|| percent_decode(v))
                .flatten()
        })
    }
}

pub use crate::wire::percent::decode as percent_decode;

/// An HTTP response the crate produced for the caller to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// The body: owned bytes, or a delivered command's buffer shared with
    /// the store ([`Body`]).
    pub body: Body,
}

impl Response {
    /// A response with `status`, no headers and no body.
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::empty(),
        }
    }

    /// A response with `status`, a `Content-Type` and a body.
    pub fn with_body(status: u16, content_type: &str, body: impl Into<Body>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body: body.into(),
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Which MDM message a request to `ServerURL`/`CheckInURL` carries, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `application/x-apple-aspen-mdm-checkin`: a check-in.
    Checkin,
    /// `application/x-apple-aspen-mdm`: a command report (connect).
    Connect,
    /// Anything else (or no `Content-Type`). Peers such as NanoMDM treat this
    /// as [`MessageKind::Connect`]; the choice is the caller's.
    Other,
}

/// Route an MDM request by its `Content-Type` media type (parameters and
/// case ignored).
pub fn classify(request: &Request) -> MessageKind {
    match request.content_type().as_deref() {
        Some(media_type::CHECKIN) => MessageKind::Checkin,
        Some(media_type::CONNECT) => MessageKind::Connect,
        _ => MessageKind::Other,
    }
}

/// Conversions to and from the `http` crate's types (feature `http`).
#[cfg(feature = "http")]
mod http_crate {
    use super::{Body, Method, Request, Response};

    impl<B: Into<Vec<u8>>> From<::http::Request<B>> for Request {
        /// Header values that are not valid UTF-8 are converted lossily. The TLS
        /// client certificate is not part of `http::Request`; set
        /// [`Request::tls_client_certificate`] yourself.
        fn from(req: ::http::Request<B>) -> Self {
            let (parts, body) = req.into_parts();
            Self {
                method: Method::parse(parts.method.as_str()),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().map(str::to_owned),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: body.into(),
                tls_client_certificate: None,
            }
        }
    }

    impl TryFrom<Response> for ::http::Response<Body> {
        type Error = ::http::Error;

        /// Fails only if a header name or value is not valid HTTP. The body
        /// is kept as it is (a delivered command's stays the store's buffer:
        /// hand it on with `bytes::Bytes::from_owner`).
        fn try_from(res: Response) -> Result<Self, Self::Error> {
            let mut builder = ::http::Response::builder().status(res.status);
            for (k, v) in res.headers {
                builder = builder.header(k, v);
            }
            builder.body(res.body)
        }
    }

    impl TryFrom<Response> for ::http::Response<Vec<u8>> {
        type Error = ::http::Error;

        /// As the conversion to `http::Response<Body>`, with a shared body
        /// copied into the `Vec`.
        fn try_from(res: Response) -> Result<Self, Self::Error> {
            ::http::Response::<Body>::try_from(res).map(|r| r.map(Body::into_vec))
        }
    }

    impl TryFrom<Request> for ::http::Request<Vec<u8>> {
        type Error = ::http::Error;

        /// Fails only if the method, path, query or a header is not valid HTTP.
        fn try_from(req: Request) -> Result<Self, Self::Error> {
            let uri = match &req.query {
                Some(q) => format!("{}?{q}", req.path),
                None => req.path.clone(),
            };
            let mut builder = ::http::Request::builder()
                .method(req.method.as_str())
                .uri(uri);
            for (k, v) in req.headers {
                builder = builder.header(k, v);
            }
            builder.body(req.body)
        }
    }
}

/// Media types used by the protocol.
pub mod media_type {
    /// A `.mobileconfig` profile.
    pub const CONFIG: &str = "application/x-apple-aspen-config";
    /// A check-in message.
    pub const CHECKIN: &str = "application/x-apple-aspen-mdm-checkin";
    /// A connect (command/report) message.
    pub const CONNECT: &str = "application/x-apple-aspen-mdm";
    /// A SCEP PKIMessage.
    pub const PKI_MESSAGE: &str = "application/x-pki-message";
    /// One DER CA certificate (GetCACert).
    pub const CA_CERT: &str = "application/x-x509-ca-cert";
    /// CA and RA certificates as a degenerate PKCS#7 (GetCACert).
    pub const CA_RA_CERT: &str = "application/x-x509-ca-ra-cert";
    /// An XML plist reply.
    pub const XML: &str = "application/xml";
    /// A JSON reply (declarative management).
    pub const JSON: &str = "application/json";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_decode() {
        let mut r = Request::new(Method::Get, "/scep");
        r.query = Some("operation=PKIOperation&message=ab%2Bc%3D".into());
        assert_eq!(r.query_param("operation").as_deref(), Some("PKIOperation"));
        assert_eq!(r.query_param("message").as_deref(), Some("ab+c="));
        assert_eq!(r.query_param("missing"), None);
    }

    #[test]
    fn classify_by_content_type() {
        let mut r = Request::new(Method::Put, "/mdm");
        assert_eq!(classify(&r), MessageKind::Other);
        r.headers.push((
            "content-type".into(),
            "Application/X-Apple-Aspen-MDM-Checkin".into(),
        ));
        assert_eq!(classify(&r), MessageKind::Checkin);
        r.headers[0].1 = "application/x-apple-aspen-mdm; charset=utf-8".into();
        assert_eq!(classify(&r), MessageKind::Connect);
        r.headers[0].1 = "application/x-apple-aspen-mdm-checkinX".into();
        assert_eq!(classify(&r), MessageKind::Other);
    }

    #[cfg(feature = "http")]
    #[test]
    fn http_crate_round_trip() {
        let req = ::http::Request::builder()
            .method("PUT")
            .uri("https://mdm.example/checkin?tenant=a%20b")
            .header("Content-Type", media_type::CHECKIN)
            .body(b"body".to_vec())
            .unwrap();
        let ours = Request::from(req);
        assert_eq!(ours.method, Method::Put);
        assert_eq!(ours.path, "/checkin");
        assert_eq!(ours.query_param("tenant").as_deref(), Some("a b"));
        assert_eq!(classify(&ours), MessageKind::Checkin);
        assert_eq!(ours.body, b"body");
        let back = ::http::Request::try_from(ours).unwrap();
        assert_eq!(back.uri().query(), Some("tenant=a%20b"));
        let res = ::http::Response::<Vec<u8>>::try_from(Response::with_body(
            403,
            media_type::JSON,
            b"{}".to_vec(),
        ))
        .unwrap();
        assert_eq!(res.status(), 403);
        assert_eq!(res.headers()["content-type"], media_type::JSON);
        assert_eq!(res.body(), b"{}");
        let shared: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"<plist/>"[..]);
        let res = ::http::Response::<Body>::try_from(Response::with_body(
            200,
            media_type::XML,
            std::sync::Arc::clone(&shared),
        ))
        .unwrap();
        assert!(
            res.body()
                .shared()
                .is_some_and(|b| std::sync::Arc::ptr_eq(b, &shared))
        );
        assert!(
            ::http::Response::<Vec<u8>>::try_from(Response {
                status: 200,
                headers: vec![("bad header".into(), "x".into())],
                body: Vec::new().into(),
            })
            .is_err()
        );
    }

    #[test]
    fn bad_escape_is_none() {
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
