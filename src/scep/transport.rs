//! The SCEP HTTP binding (RFC 8894 §4.1): which operation a request asks for,
//! and the PKIMessage bytes of a PKIOperation, by POST or GET.

use thiserror::Error;

use crate::http::{Method, Request};

/// A SCEP operation named by the `operation` query parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `GetCACaps`.
    GetCaCaps,
    /// `GetCACert` (the `message` CA identifier is ignored: one CA).
    GetCaCert,
    /// `GetNextCACert`.
    GetNextCaCert,
    /// `PKIOperation` with the PKIMessage bytes (POST body, or GET `message`
    /// decoded from base64).
    PkiOperation(Vec<u8>),
}

/// Why a request is not a SCEP operation (answered with HTTP 4xx, never a CertRep).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No `operation` query parameter.
    #[error("missing operation parameter")]
    MissingOperation,
    /// An operation this server does not know.
    #[error("unknown operation {0:?}")]
    UnknownOperation(String),
    /// A method other than GET (or POST for PKIOperation).
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
    /// A GET PKIOperation without `message`.
    #[error("missing message parameter")]
    MissingMessage,
    /// `message` is not base64 (standard or URL-safe).
    #[error("message parameter is not base64")]
    BadBase64,
    /// The PKIMessage exceeds the size limit.
    #[error("PKIMessage of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Size received (or decoded).
        size: usize,
        /// The configured limit.
        limit: usize,
    },
}

/// Identify the operation of `req`, decoding a PKIOperation's message.
/// `max_message` bounds the PKIMessage size (POST body or decoded GET message).
pub fn parse_request(req: &Request, max_message: usize) -> Result<Operation, TransportError> {
    let op = req
        .query_param("operation")
        .ok_or(TransportError::MissingOperation)?;
    match (op.as_str(), &req.method) {
        ("GetCACaps", Method::Get) => Ok(Operation::GetCaCaps),
        ("GetCACert", Method::Get) => Ok(Operation::GetCaCert),
        ("GetNextCACert", Method::Get) => Ok(Operation::GetNextCaCert),
        ("PKIOperation", Method::Post) => {
            if req.body.len() > max_message {
                return Err(TransportError::TooLarge {
                    size: req.body.len(),
                    limit: max_message,
                });
            }
            Ok(Operation::PkiOperation(req.body.clone()))
        }
        ("PKIOperation", Method::Get) => {
            let raw = raw_query_param(req, "message").ok_or(TransportError::MissingMessage)?;
            // Base64 expands 3 bytes to 4; allow line breaks and escapes on top.
            let budget = max_message.saturating_mul(3);
            if raw.len() > budget {
                return Err(TransportError::TooLarge {
                    size: raw.len(),
                    limit: budget,
                });
            }
            let text = crate::wire::percent::decode_bytes(raw).ok_or(TransportError::BadBase64)?;
            let bytes = decode_base64_lenient(&text).ok_or(TransportError::BadBase64)?;
            if bytes.len() > max_message {
                return Err(TransportError::TooLarge {
                    size: bytes.len(),
                    limit: max_message,
                });
            }
            Ok(Operation::PkiOperation(bytes))
        }
        ("GetCACaps" | "GetCACert" | "GetNextCACert" | "PKIOperation", m) => {
            Err(TransportError::MethodNotAllowed(m.as_str().to_owned()))
        }
        (other, _) => Err(TransportError::UnknownOperation(other.to_owned())),
    }
}

/// The still-encoded value of query parameter `name`.
fn raw_query_param<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.query.as_deref()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// Decode base64 in either alphabet (`+/` or `-_`), with or without padding;
/// spaces count as `+` (a `+` the client forgot to escape), CR/LF/TAB are
/// skipped. `None` on any other character or an impossible length.
pub fn decode_base64_lenient(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut padding = false;
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' | b' ' => 62,
            b'/' | b'_' => 63,
            b'=' => {
                padding = true;
                continue;
            }
            b'\r' | b'\n' | b'\t' => continue,
            _ => return None,
        };
        if padding {
            return None; // data after padding
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8); // low 8 bits
            acc &= (1 << bits) - 1;
        }
    }
    // 6 leftover bits cannot come from whole bytes.
    (bits != 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_variants() {
        let want = b"\xfb\xff\xbf hello?";
        assert_eq!(decode_base64_lenient(b"+/+/IGhlbGxvPw==").unwrap(), want);
        assert_eq!(decode_base64_lenient(b"-_-_IGhlbGxvPw").unwrap(), want);
        assert_eq!(decode_base64_lenient(b" /+/IGhl\r\nbGxvPw=").unwrap(), want);
        assert_eq!(decode_base64_lenient(b"abc*"), None);
        assert_eq!(decode_base64_lenient(b"abcde"), None);
        assert_eq!(decode_base64_lenient(b"ab==cd"), None);
    }

    fn get(query: &str) -> Request {
        let mut r = Request::new(Method::Get, "/scep");
        r.query = Some(query.to_owned());
        r
    }

    #[test]
    fn operations() {
        assert_eq!(
            parse_request(&get("operation=GetCACaps&message=0"), 100),
            Ok(Operation::GetCaCaps)
        );
        assert_eq!(
            parse_request(&get("operation=PKIOperation&message=AQID%2B%2F8%3D"), 100),
            Ok(Operation::PkiOperation(vec![1, 2, 3, 0xfb, 0xff]))
        );
        assert_eq!(
            parse_request(&get("operation=PKIOperation&message=AQID-_8"), 100),
            Ok(Operation::PkiOperation(vec![1, 2, 3, 0xfb, 0xff]))
        );
        assert_eq!(
            parse_request(&get("operation=PKIOperation&message=AQIDBA"), 3),
            Err(TransportError::TooLarge { size: 4, limit: 3 })
        );
        assert_eq!(
            parse_request(&get("operation=Nope"), 100),
            Err(TransportError::UnknownOperation("Nope".into()))
        );
        let mut post = Request::new(Method::Post, "/scep");
        post.query = Some("operation=PKIOperation".into());
        post.body = vec![0x30, 0];
        assert_eq!(
            parse_request(&post, 100),
            Ok(Operation::PkiOperation(vec![0x30, 0]))
        );
        post.query = Some("operation=GetCACaps".into());
        assert!(matches!(
            parse_request(&post, 100),
            Err(TransportError::MethodNotAllowed(_))
        ));
    }
}
