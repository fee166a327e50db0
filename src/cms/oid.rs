//! Object identifiers used by the CMS layer, as named constants.

use const_oid::ObjectIdentifier;

/// `id-data` (RFC 5652 §4): arbitrary octet strings (profiles, plists, bodies).
pub const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// `id-signedData` (RFC 5652 §5).
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// `id-envelopedData` (RFC 5652 §6).
pub const ID_ENVELOPED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");

/// `id-contentType` signed attribute (RFC 5652 §11.1).
pub const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// `id-messageDigest` signed attribute (RFC 5652 §11.2).
pub const ID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// `id-signingTime` signed attribute (RFC 5652 §11.3).
pub const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
/// `smimeCapabilities` signed attribute (RFC 8551), added by `openssl cms -sign`.
pub const SMIME_CAPABILITIES: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.15");

/// `rsaEncryption`: the RSA key type, also used as a CMS signature algorithm
/// (the digest then comes from the SignerInfo's `digestAlgorithm`).
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// X.509 `subjectKeyIdentifier` extension.
pub const SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
/// X.509 `keyUsage` extension.
pub const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
/// X.509 `basicConstraints` extension.
pub const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
/// X.509 `extKeyUsage` extension.
pub const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// X.509 `authorityKeyIdentifier` extension.
pub const AUTHORITY_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");

/// `id-kp-serverAuth` extended key usage.
pub const KP_SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
/// `id-kp-clientAuth` extended key usage.
pub const KP_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
