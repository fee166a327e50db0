//! Cryptographic Message Syntax as real Apple clients speak it.
//!
//! - [`SignedData`]: a BER-tolerant reader that verifies signatures over the
//!   original signed bytes; [`SignedDataBuilder`] and [`degenerate`] write DER.
//! - [`Certificate`]: a lenient X.509 certificate (v1, long serials, empty Subject).
//!
//! Nothing here decides trust: [`SignedData::verify_signer`] proves who
//! signed; callers then check the signer certificate against their anchors.

mod asn1;
pub mod builder;
pub mod certificate;
mod error;
pub mod oid;
pub mod signed;

pub use builder::{SignedDataBuilder, degenerate};
pub use certificate::{Certificate, CertificateError, Extension};
pub use error::CmsError;
pub use signed::{Attribute, SignedAttributes, SignedData, SignerIdentifier, SignerInfo};

/// Decode standard base64 (RFC 4648 with padding), ignoring ASCII whitespace.
pub(crate) fn base64_decode(text: &str) -> Result<Vec<u8>, base64ct::Error> {
    use base64ct::{Base64, Encoding};
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    Base64::decode_vec(&compact)
}
