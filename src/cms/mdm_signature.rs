//! Who sent an MDM request: the `Mdm-Signature` header, the TLS client
//! certificate, or a certificate forwarded by a TLS-terminating proxy.
//!
//! `Mdm-Signature` (used when the enrollment profile sets `SignMessage`) is
//! the base64 of a **detached** CMS SignedData over the exact HTTP body bytes,
//! signed by the device's MDM identity: BER with indefinite lengths, SHA-1, no
//! signed attributes, one certificate. Verifying it proves possession of the
//! identity key; whether that identity is *authorised* (issued by the caller's
//! SCEP CA and bound to the enrollment) is the caller's decision.

use thiserror::Error;

use super::certificate::{Certificate, CertificateError, pem_blocks};
use super::certificate_cache::CertificateCache;
use super::error::CmsError;
use super::signed::SignedData;
use crate::http::{Request, percent_decode};
use crate::wire::ber::BerLimits;

/// The header carrying the body signature.
pub const MDM_SIGNATURE_HEADER: &str = "Mdm-Signature";

/// Why a client identity could not be established.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The header is larger than the BER size limit allows.
    #[error("signature header of {len} bytes exceeds the limit")]
    HeaderTooLarge {
        /// Header length in bytes.
        len: usize,
    },
    /// The header is not valid base64.
    #[error("signature header is not valid base64")]
    Base64,
    /// The CMS message is malformed or does not verify over the body.
    #[error("Mdm-Signature: {0}")]
    Cms(#[from] CmsError),
    /// The CMS message carries its own content instead of signing the body.
    #[error("Mdm-Signature carries attached content; a detached signature is required")]
    AttachedContent,
    /// Not exactly one SignerInfo.
    #[error("Mdm-Signature has {count} signers; exactly one is required")]
    SignerCount {
        /// Number of SignerInfos.
        count: usize,
    },
    /// A TLS or forwarded client certificate could not be parsed.
    #[error("client certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// The forwarded-certificate header is neither RFC 9440 nor URL-escaped PEM.
    #[error("forwarded client certificate header: {0}")]
    ForwardedHeader(&'static str),
}

/// Verify an `Mdm-Signature` header value over `body` and return the signer
/// certificate. ASCII whitespace in the header is ignored.
pub fn verify_mdm_signature(
    header: &str,
    body: &[u8],
    limits: &BerLimits,
) -> Result<Certificate, IdentityError> {
    verify_with_cache(header, body, limits, None)
}

/// [`verify_mdm_signature`], taking the signer's certificate from `cache`
/// when it has been decoded before.
fn verify_with_cache(
    header: &str,
    body: &[u8],
    limits: &BerLimits,
    cache: Option<&CertificateCache>,
) -> Result<Certificate, IdentityError> {
    let cms = decode_header(header, limits)?;
    let sd = SignedData::parse_with_cache(&cms, limits, cache)?;
    if sd.content().is_some() {
        return Err(IdentityError::AttachedContent);
    }
    if sd.signers().len() != 1 {
        return Err(IdentityError::SignerCount {
            count: sd.signers().len(),
        });
    }
    let signer = sd.verify_signer(0, Some(body))?.clone();
    // A signer taken from the cache is there already: no second lookup.
    if let Some(cache) = cache
        && !sd.all_certificates_cached()
    {
        cache.insert(&signer);
    }
    Ok(signer)
}

fn decode_header(header: &str, limits: &BerLimits) -> Result<Vec<u8>, IdentityError> {
    // Base64 grows 4/3; allow line breaks on top.
    let max = limits.max_size.saturating_mul(2).saturating_add(16);
    if header.len() > max {
        return Err(IdentityError::HeaderTooLarge { len: header.len() });
    }
    super::base64_decode(header).map_err(|_| IdentityError::Base64)
}

/// Where a [`ClientIdentity`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// A verified `Mdm-Signature` over the body.
    MdmSignature,
    /// The certificate of the TLS handshake ([`Request::tls_client_certificate`]).
    TlsClientCertificate,
    /// A header set by the caller's TLS-terminating proxy.
    ForwardedHeader,
}

/// The certificate a request is made with, and how it was presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The identity certificate (not yet authorised).
    pub certificate: Certificate,
    /// How it was presented.
    pub source: IdentitySource,
}

/// Caller configuration for [`client_identity`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentityOptions {
    /// The header a trusted proxy puts the client certificate in, e.g.
    /// `Client-Cert` (RFC 9440) or `X-SSL-Client-Cert` (nginx
    /// `$ssl_client_escaped_cert`). `None` (the default) trusts no header:
    /// only set it when the proxy strips that header from client requests.
    pub forwarded_certificate_header: Option<String>,
    /// Bounds for the CMS and certificate parsers.
    pub limits: BerLimits,
    /// Certificates decoded before (a device presents the same identity on
    /// every request); [`Default`] gives each options value its own cache of
    /// [`CertificateCache::DEFAULT_CAPACITY`], `CertificateCache::new(0)`
    /// turns caching off.
    pub certificates: CertificateCache,
}

with_setters!(IdentityOptions {
    with_forwarded_certificate_header: forwarded_certificate_header: Option<String>,
    with_limits: limits: BerLimits,
    with_certificates: certificates: CertificateCache,
});

/// Establish the client certificate of `request`: the `Mdm-Signature` header
/// if present (it must verify over the body; there is no fall-back on
/// failure), else the TLS client certificate, else the configured forwarding
/// header. `Ok(None)` when the request presents no identity.
pub fn client_identity(
    request: &Request,
    options: &IdentityOptions,
) -> Result<Option<ClientIdentity>, IdentityError> {
    if let Some(header) = request.header(MDM_SIGNATURE_HEADER) {
        let certificate = verify_with_cache(
            header,
            &request.body,
            &options.limits,
            Some(&options.certificates),
        )?;
        return Ok(Some(ClientIdentity {
            certificate,
            source: IdentitySource::MdmSignature,
        }));
    }
    if let Some(der) = &request.tls_client_certificate {
        return Ok(Some(ClientIdentity {
            certificate: options.certificates.get_or_decode(der, || {
                Certificate::from_der_with_limits(der, &options.limits)
            })?,
            source: IdentitySource::TlsClientCertificate,
        }));
    }
    let Some(name) = &options.forwarded_certificate_header else {
        return Ok(None);
    };
    match request.header(name).map(str::trim) {
        None | Some("") | Some("(null)") => Ok(None),
        Some(value) => Ok(Some(ClientIdentity {
            certificate: forwarded_certificate(value, &options.limits)?,
            source: IdentitySource::ForwardedHeader,
        })),
    }
}

/// Parse a forwarded client certificate: RFC 9440 `:<base64 DER>:`, or a
/// URL-escaped PEM (nginx `$ssl_client_escaped_cert`); the first certificate
/// is the client's.
pub fn forwarded_certificate(
    value: &str,
    limits: &BerLimits,
) -> Result<Certificate, IdentityError> {
    let value = value.trim();
    if value.len() > limits.max_size.saturating_mul(3).saturating_add(16) {
        return Err(IdentityError::HeaderTooLarge { len: value.len() });
    }
    let der = if let Some(inner) = value.strip_prefix(':') {
        let b64 = inner
            .strip_suffix(':')
            .ok_or(IdentityError::ForwardedHeader(
                "RFC 9440 value lacks the closing ':'",
            ))?;
        super::base64_decode(b64).map_err(|_| IdentityError::Base64)?
    } else {
        let pem = percent_decode(value)
            .ok_or(IdentityError::ForwardedHeader("invalid percent-encoding"))?;
        pem_blocks(pem.as_bytes(), "CERTIFICATE")?
            .into_iter()
            .next()
            .ok_or(IdentityError::ForwardedHeader("no PEM certificate"))?
    };
    Ok(Certificate::from_der_with_limits(&der, limits)?)
}
