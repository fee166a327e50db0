//! Cryptographic Message Syntax as real Apple clients speak it.
//!
//! - [`SignedData`]: a BER-tolerant reader that verifies signatures over the
//!   original signed bytes; [`SignedDataBuilder`] and [`degenerate`] write DER.
//! - [`Certificate`]: an `x509-cert` certificate under the [`certificate::Lenient`]
//!   profile (v1, long serials, empty Subject), owning its DER.
//! - [`trust`]: [`TrustAnchors`] and [`verify_chain`] (time checks optional).
//! - [`mdm_signature`]: the `Mdm-Signature` header and [`client_identity`].
//! - [`device_attributes`]: OTA Profile Service phase 2/3 requests.
//!
//! [`SignedData::verify_signer`] proves who signed and decides nothing else;
//! trust is a separate, explicit step.

mod asn1;
pub mod builder;
pub mod certificate;
mod certificate_cache;
pub mod device_attributes;
pub mod enveloped;
mod error;
pub mod mdm_signature;
pub mod oid;
pub mod signed;
pub mod trust;

pub use builder::{SignedDataBuilder, degenerate};
pub use certificate::{Certificate, CertificateError, Extension};
pub use certificate_cache::CertificateCache;
pub use device_attributes::{
    DeviceAttributes, DeviceAttributesError, DeviceAttributesVerifier, Phase,
    VerifiedDeviceAttributes,
};
pub use error::CmsError;
pub use mdm_signature::{
    ClientIdentity, IdentityError, IdentityOptions, IdentitySource, client_identity,
    verify_mdm_signature,
};
pub use signed::{Attribute, SignedAttributes, SignedData, SignerIdentifier, SignerInfo};
pub use trust::{TrustAnchors, TrustError, verify_chain};

/// Decode standard base64 (RFC 4648 with padding), ignoring ASCII whitespace.
pub(crate) fn base64_decode(text: &str) -> Result<Vec<u8>, crate::wire::base64::Base64Error> {
    crate::wire::base64::decode(text.as_bytes())
}
