//! Profile Service device attributes (OTA enrollment phases 2 and 3).
//!
//! The device POSTs a CMS SignedData whose attached content is an XML plist
//! of the attributes the Profile Service payload asked for. The phase is
//! decided by **who signed**, never by which keys are present:
//!
//! - signer certificate issued directly by Apple's *iPhone Device CA* (a
//!   pinned key; its validity dates are ignored because it expired in 2014;
//!   the chain the device ships is not used) → [`Phase::DeviceIdentity`] (phase 2);
//! - issued by the caller's SCEP CA → [`Phase::ScepIdentity`] (phase 3);
//! - anything else → [`DeviceAttributesError::UntrustedSigner`].
//!
//! The signature and the signer are checked before the plist is decoded.

use std::time::SystemTime;

use thiserror::Error;

use super::certificate::Certificate;
use super::error::CmsError;
use super::oid;
use super::signed::SignedData;
use super::trust::{TrustAnchors, TrustError, verify_chain};
use crate::wire::Limits;

/// DER of Apple's "Apple iPhone Device CA" (public; issuer of device identity
/// certificates). Its key is the pinned anchor for phase 2.
pub const APPLE_IPHONE_DEVICE_CA_DER: &[u8] = include_bytes!("apple_iphone_device_ca.der");

/// SHA-256 of [`APPLE_IPHONE_DEVICE_CA_DER`].
pub const APPLE_IPHONE_DEVICE_CA_SHA256: [u8; 32] = [
    0x76, 0xF2, 0x7D, 0x00, 0xE1, 0x33, 0x3B, 0xC8, 0x8D, 0xE0, 0xE2, 0x91, 0x6C, 0x38, 0xC9, 0xA7,
    0xF2, 0xB7, 0x57, 0x74, 0xC2, 0x5A, 0x79, 0x4C, 0x09, 0x2A, 0x80, 0xE3, 0xC4, 0xC6, 0x6C, 0xCE,
];

/// The embedded Apple iPhone Device CA certificate.
pub fn apple_iphone_device_ca() -> Result<Certificate, super::CertificateError> {
    Certificate::from_der(APPLE_IPHONE_DEVICE_CA_DER)
}

/// What was wrong with a device-attributes request.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DeviceAttributesError {
    /// The CMS message is malformed or its signature does not verify.
    #[error("device attributes CMS: {0}")]
    Cms(#[from] CmsError),
    /// The message carries no attached content, or content that is not `id-data`.
    #[error("device attributes message has no attached id-data content")]
    NoContent,
    /// Not exactly one SignerInfo.
    #[error("device attributes message has {count} signers; exactly one is required")]
    SignerCount {
        /// Number of SignerInfos.
        count: usize,
    },
    /// The signer is issued neither by a device CA nor by the SCEP CA.
    #[error("device attributes signed by an untrusted certificate (issuer {issuer:?})")]
    UntrustedSigner {
        /// Issuer (RFC 4514) of the signer certificate.
        issuer: String,
    },
    /// The signer is issued by the SCEP CA but fails the path check (e.g. expired).
    #[error("SCEP identity not trusted: {0}")]
    Trust(#[from] TrustError),
    /// The content is not a dictionary plist within limits.
    #[error("device attributes plist: {0}")]
    Plist(#[from] crate::wire::plist::PlistError),
    /// A known key has a value of the wrong plist type.
    #[error("device attribute {key} has the wrong type")]
    WrongType {
        /// The key.
        key: &'static str,
    },
}

/// Which OTA phase a request belongs to, decided by the signer's issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Phase 2: signed by the Apple-issued device identity; reply with a SCEP profile.
    DeviceIdentity,
    /// Phase 3: signed by the identity the caller's SCEP CA issued; reply
    /// with the MDM enrollment profile.
    ScepIdentity,
}

/// The attributes a device reports (keys as the device sends them). `Debug`
/// does not print the `CHALLENGE`.
#[derive(Clone, Default, PartialEq)]
pub struct DeviceAttributes {
    /// `CHALLENGE`: the Profile Service challenge (phase 2).
    pub challenge: Option<String>,
    /// `UDID`.
    pub udid: Option<String>,
    /// `SERIAL`.
    pub serial: Option<String>,
    /// `PRODUCT`, e.g. `MacBookPro18,3`.
    pub product: Option<String>,
    /// `VERSION`: OS build, e.g. `22A380`.
    pub version: Option<String>,
    /// `IMEI` (empty on Macs; may contain spaces).
    pub imei: Option<String>,
    /// `MEID` (empty on Macs).
    pub meid: Option<String>,
    /// `UserID`: GUID of the macOS console user.
    pub user_id: Option<String>,
    /// `UserShortName` of the console user.
    pub user_short_name: Option<String>,
    /// `UserLongName` of the console user.
    pub user_long_name: Option<String>,
    /// `NotOnConsole`: true when no user is at the console.
    pub not_on_console: Option<bool>,
    /// Every other key, unchanged (e.g. `DEVICE_NAME`, `MAC_ADDRESS_EN0`).
    pub other: plist::Dictionary,
}

const STRING_KEYS: [&str; 10] = [
    "CHALLENGE",
    "UDID",
    "SERIAL",
    "PRODUCT",
    "VERSION",
    "IMEI",
    "MEID",
    "UserID",
    "UserShortName",
    "UserLongName",
];

impl std::fmt::Debug for DeviceAttributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAttributes")
            .field("challenge", &crate::redact::opt(&self.challenge))
            .field("udid", &self.udid)
            .field("serial", &self.serial)
            .field("product", &self.product)
            .field("version", &self.version)
            .field("imei", &self.imei)
            .field("meid", &self.meid)
            .field("user_id", &self.user_id)
            .field("user_short_name", &self.user_short_name)
            .field("user_long_name", &self.user_long_name)
            .field("not_on_console", &self.not_on_console)
            .field("other", &self.other)
            .finish()
    }
}

impl DeviceAttributes {
    /// Decode the attribute plist (XML; binary only if `limits` allow) within `limits`.
    pub fn from_plist(bytes: &[u8], limits: &Limits) -> Result<Self, DeviceAttributesError> {
        let dict = crate::wire::plist::decode_dict(bytes, limits)?;
        Self::from_dictionary(dict)
    }

    /// Take the attributes out of a decoded dictionary.
    pub fn from_dictionary(mut dict: plist::Dictionary) -> Result<Self, DeviceAttributesError> {
        let mut strings: [Option<String>; 10] = Default::default();
        for (slot, key) in strings.iter_mut().zip(STRING_KEYS) {
            *slot = match dict.remove(key) {
                None => None,
                Some(plist::Value::String(s)) => Some(s),
                Some(_) => return Err(DeviceAttributesError::WrongType { key }),
            };
        }
        let not_on_console = match dict.remove("NotOnConsole") {
            None => None,
            Some(plist::Value::Boolean(b)) => Some(b),
            Some(_) => {
                return Err(DeviceAttributesError::WrongType {
                    key: "NotOnConsole",
                });
            }
        };
        let [
            challenge,
            udid,
            serial,
            product,
            version,
            imei,
            meid,
            user_id,
            user_short_name,
            user_long_name,
        ] = strings;
        Ok(Self {
            challenge,
            udid,
            serial,
            product,
            version,
            imei,
            meid,
            user_id,
            user_short_name,
            user_long_name,
            not_on_console,
            other: dict,
        })
    }
}

/// A verified device-attributes request.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedDeviceAttributes {
    /// The phase, from the signer's issuer.
    pub phase: Phase,
    /// The attributes.
    pub attributes: DeviceAttributes,
    /// The signer certificate (device identity in phase 2, SCEP identity in phase 3).
    pub signer: Certificate,
}

/// Verifies device-attribute requests and decides their phase.
#[derive(Debug, Clone)]
pub struct DeviceAttributesVerifier {
    device_anchors: TrustAnchors,
    scep_anchors: TrustAnchors,
    limits: Limits,
}

impl DeviceAttributesVerifier {
    /// A verifier trusting Apple's iPhone Device CA for phase 2 and
    /// `scep_ca` (the caller's SCEP CA certificates) for phase 3.
    pub fn new(scep_ca: TrustAnchors) -> Self {
        let mut device_anchors = TrustAnchors::new();
        // The embedded certificate is tested to parse; if it ever did not,
        // phase 2 would fail closed.
        if let Ok(apple) = apple_iphone_device_ca() {
            device_anchors.add(apple);
        }
        Self {
            device_anchors,
            scep_anchors: scep_ca,
            limits: Limits::default(),
        }
    }

    /// Also accept devices whose identity `ca` issued as phase 2 (test
    /// devices, simulators, research).
    pub fn add_device_anchor(&mut self, ca: Certificate) {
        self.device_anchors.add(ca);
    }

    /// Also accept identities `ca` issued as phase 3.
    pub fn add_scep_anchor(&mut self, ca: Certificate) {
        self.scep_anchors.add(ca);
    }

    /// Use `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Verify a request body and decode its attributes.
    ///
    /// The signer must be issued *directly* by an anchor; certificates the
    /// device ships are not used as intermediates. `now`, when given, is
    /// checked against the SCEP identity's validity (phase 3 only; device
    /// identities are judged by key alone, as Apple's CAs have expired).
    pub fn verify(
        &self,
        body: &[u8],
        now: Option<SystemTime>,
    ) -> Result<VerifiedDeviceAttributes, DeviceAttributesError> {
        let sd = SignedData::parse(body, &self.limits.ber)?;
        if sd.content().is_none() || sd.content_type() != oid::ID_DATA {
            return Err(DeviceAttributesError::NoContent);
        }
        if sd.signers().len() != 1 {
            return Err(DeviceAttributesError::SignerCount {
                count: sd.signers().len(),
            });
        }
        let signer = sd.verify_signer(0, None)?.clone();
        let phase = if verify_chain(&signer, &[], &self.device_anchors, None).is_ok() {
            Phase::DeviceIdentity
        } else if self.scep_anchors.issuer_of(&signer).is_some()
            || self.scep_anchors.certificates().contains(&signer)
        {
            verify_chain(&signer, &[], &self.scep_anchors, now)?;
            Phase::ScepIdentity
        } else {
            return Err(DeviceAttributesError::UntrustedSigner {
                issuer: signer.issuer_string(),
            });
        };
        let content = sd.into_content().unwrap_or_default();
        let attributes = DeviceAttributes::from_plist(&content, &self.limits)?;
        Ok(VerifiedDeviceAttributes {
            phase,
            attributes,
            signer,
        })
    }
}
