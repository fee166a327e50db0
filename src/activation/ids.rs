//! Identifiers and secrets shared by the activation core and the stores.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ActivationError;
use crate::wire::hex;

/// The impls every validated string id shares: conversion from a `String`
/// through `new` (serde's `try_from`), back into one (serde's `into`),
/// `as_str` and `Display`.
macro_rules! string_id {
    ($id:ident) => {
        impl TryFrom<String> for $id {
            type Error = ActivationError;
            fn try_from(text: String) -> Result<Self, Self::Error> {
                Self::new(text)
            }
        }

        impl From<$id> for String {
            fn from(id: $id) -> Self {
                id.0
            }
        }

        impl $id {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $id {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A customer (tenant). Carried in every URL the profiles give the device and
/// bound to every challenge, so one server serves many customers and a device
/// of one customer never reaches another's state.
///
/// 1–64 bytes of `[A-Za-z0-9._-]`, so it is safe in a URL path segment.
///
/// Deserializing validates like [`TenantId::new`], so a stored or received
/// record can never hold an id `new` would refuse.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

string_id!(TenantId);

impl TenantId {
    /// Validate a tenant id.
    pub fn new(id: impl Into<String>) -> Result<Self, ActivationError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(id))
        } else {
            Err(ActivationError::InvalidTenant)
        }
    }
}

/// One activation (one run of the thirteen steps for one device).
///
/// Minted from injected randomness by the driver; 1–64 bytes of
/// `[A-Za-z0-9_-]`, safe in URLs.
///
/// Deserializing validates like [`ActivationId::new`], so a stored or received
/// record can never hold an id `new` would refuse.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActivationId(String);

string_id!(ActivationId);

impl ActivationId {
    /// Validate an activation id.
    pub fn new(id: impl Into<String>) -> Result<Self, ActivationError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if ok {
            Ok(Self(id))
        } else {
            Err(ActivationError::InvalidActivationId)
        }
    }

    /// A fresh id of 16 random bytes (32 hex digits).
    pub fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Self(hex::lower(&bytes))
    }
}

/// A command's `CommandUUID`: an opaque string (not necessarily a UUID, e.g.
/// `0001-CertificateList` in real captures), compared exactly.
///
/// 1–[`CommandUuid::MAX_LEN`] bytes without control characters.
/// Deserializing validates like [`CommandUuid::new`], so a stored or received
/// record can never hold a uuid `new` would refuse.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommandUuid(String);

string_id!(CommandUuid);

impl CommandUuid {
    /// The longest `CommandUUID` accepted, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validate a `CommandUUID`: not empty, at most [`Self::MAX_LEN`] bytes,
    /// no control characters.
    pub fn new(uuid: impl Into<String>) -> Result<Self, ActivationError> {
        let uuid = uuid.into();
        if !uuid.is_empty() && uuid.len() <= Self::MAX_LEN && !uuid.chars().any(char::is_control) {
            Ok(Self(uuid))
        } else {
            Err(ActivationError::InvalidCommandUuid)
        }
    }

    /// The uuid as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }

    /// A fresh upper-case RFC 4122 version-4 UUID from `rng`.
    pub fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        // 8-4-4-4-12 hex digits: a dash before bytes 4, 6, 8 and 10.
        let h = hex::upper(&b);
        let mut out = String::with_capacity(36);
        for (i, pair) in h.as_bytes().chunks_exact(2).enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.push('-');
            }
            out.extend(pair.iter().copied().map(char::from));
        }
        Self(out)
    }
}

/// SHA-256 of a certificate's DER encoding: how an MDM identity is named.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CertFingerprint(pub [u8; 32]);

impl CertFingerprint {
    /// Fingerprint a DER certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl std::fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertFingerprint({})", hex::lower(&self.0))
    }
}

impl std::fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::lower(&self.0))
    }
}

/// A one-time challenge secret as handed to the device (Profile Service
/// `Challenge`, SCEP `Challenge`). `Debug` does not print it, and `==`
/// compares in constant time.
#[derive(Clone)]
pub struct Secret(String);

impl PartialEq for Secret {
    /// Constant-time: the time depends only on the two lengths.
    fn eq(&self, other: &Self) -> bool {
        crate::crypto::constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for Secret {}

impl Secret {
    /// Wrap a secret presented by a device.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// A fresh secret of 32 random bytes (64 hex digits).
    pub fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self(hex::lower(&bytes))
    }

    /// The secret text, to put into a profile.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest under which the secret is stored and looked up.
    pub fn digest(&self) -> ChallengeDigest {
        ChallengeDigest(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// SHA-256 of a challenge secret. Stores keep only this, never the secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChallengeDigest(pub [u8; 32]);

impl ChallengeDigest {
    /// Compare in constant time.
    pub fn matches(&self, other: &ChallengeDigest) -> bool {
        crate::crypto::constant_time_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for ChallengeDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ChallengeDigest({})",
            hex::lower(self.0.get(..4).unwrap_or_default())
        )
    }
}

#[cfg(test)]
mod serde_tests {
    use super::*;

    #[test]
    fn ids_deserialize_only_what_new_accepts() {
        let t: TenantId = serde_json::from_str("\"acme-1\"").unwrap();
        assert_eq!(t.as_str(), "acme-1");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"acme-1\"");
        for bad in ["\"\"", "\"a/b\"", "\"../x\""] {
            assert!(serde_json::from_str::<TenantId>(bad).is_err(), "{bad}");
        }
        let long = format!("\"{}\"", "a".repeat(65));
        assert!(serde_json::from_str::<TenantId>(&long).is_err());
        let a: ActivationId = serde_json::from_str("\"0f_A-9\"").unwrap();
        assert_eq!(a.as_str(), "0f_A-9");
        for bad in ["\"\"", "\"a.b\"", "\"a b\""] {
            assert!(serde_json::from_str::<ActivationId>(bad).is_err(), "{bad}");
        }
    }
    #[test]
    fn command_uuids_deserialize_only_what_new_accepts() {
        let u: CommandUuid = serde_json::from_str("\"0001-CertificateList\"").unwrap();
        assert_eq!(u, CommandUuid::new("0001-CertificateList").unwrap());
        assert_eq!(
            serde_json::to_string(&u).unwrap(),
            "\"0001-CertificateList\""
        );
        let longest = "U".repeat(CommandUuid::MAX_LEN);
        assert!(CommandUuid::new(longest.clone()).is_ok());
        let too_long = format!("\"{longest}U\"");
        for bad in ["\"\"", "\"a\\nb\"", "\"\\u0000\"", &too_long] {
            assert!(serde_json::from_str::<CommandUuid>(bad).is_err(), "{bad}");
        }
        assert_eq!(
            CommandUuid::new("tab\there"),
            Err(ActivationError::InvalidCommandUuid)
        );
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let random = CommandUuid::random(&mut rng);
        assert_eq!(CommandUuid::new(random.as_str()), Ok(random));
    }

    #[test]
    fn random_command_uuids_are_upper_case_version_4() {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        for _ in 0..64 {
            let uuid = CommandUuid::random(&mut rng).into_string();
            let parts: Vec<&str> = uuid.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{uuid}"
            );
            assert!(
                uuid.bytes()
                    .all(|c| c == b'-' || c.is_ascii_digit() || (b'A'..=b'F').contains(&c)),
                "{uuid}"
            );
            assert!(parts[2].starts_with('4'), "version nibble: {uuid}");
            assert!(
                parts[3].starts_with(['8', '9', 'A', 'B']),
                "variant bits: {uuid}"
            );
        }
    }
}
