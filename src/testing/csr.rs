//! PKCS#10 requests as a device builds them for SCEP.

use super::device::{DeviceError, proto};
use crate::crypto::RsaKey;

/// A PKCS#10 request for `key` naming `subject`, with a `challengePassword`
/// attribute when `challenge` is given, signed with SHA-256.
pub fn build_csr(
    key: &RsaKey,
    subject: &x509_cert::name::Name,
    challenge: Option<&str>,
) -> Result<Vec<u8>, DeviceError> {
    crate::pki::certification_request(key, subject.clone(), challenge).map_err(proto)
}
