//! Signed profiles: CMS SignedData with the XML plist attached.

use super::top::{Profile, response};
use super::{ProfileError, ValidationOptions};
use crate::cms::{Certificate, SignedDataBuilder, oid};
use crate::crypto::{DigestAlgorithm, Signer};
use crate::http::Response;

/// A signed `.mobileconfig`: DER CMS SignedData (attached content, SHA-256,
/// signed attributes) carrying the signer certificate and its chain, so
/// macOS shows the profile as verified when the chain reaches a trusted root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedProfile(Vec<u8>);

impl SignedProfile {
    /// Sign already-encoded profile bytes (a template stored as XML, say).
    ///
    /// `chain` holds the intermediates (and optionally the root) above
    /// `signer_cert`; the signer's key must match `signer_cert`.
    pub fn sign_xml(
        xml: &[u8],
        signer: &dyn Signer,
        signer_cert: &Certificate,
        chain: &[Certificate],
    ) -> Result<Self, ProfileError> {
        SignedDataBuilder::new(oid::ID_DATA, xml, signer, signer_cert)
            .digest(DigestAlgorithm::Sha256)
            .certificates(chain)
            .build()
            .map(Self)
            .map_err(ProfileError::Signed)
    }

    /// The DER bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The DER bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// An HTTP 200 response serving the signed profile as
    /// `application/x-apple-aspen-config`.
    pub fn into_response(self, file_name: Option<&str>) -> Response {
        response(self.0, file_name)
    }
}

impl Profile {
    /// Validate, encode and sign: the bytes to serve for enrollment.
    ///
    /// `chain` holds the certificates above `signer_cert` (intermediates
    /// first); the signer certificate itself is always included.
    pub fn sign(
        &self,
        options: &ValidationOptions,
        signer: &dyn Signer,
        signer_cert: &Certificate,
        chain: &[Certificate],
    ) -> Result<SignedProfile, ProfileError> {
        let xml = self.build(options)?;
        SignedProfile::sign_xml(&xml, signer, signer_cert, chain)
    }
}
