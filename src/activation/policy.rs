//! Step 1: the user account and its activation policy.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{ActivationError, TenantId};

/// Who owns the device; recorded on the activation for the caller's policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Ownership {
    /// Corporate-owned.
    #[default]
    Corporate,
    /// Personally owned (BYOD).
    Personal,
}

/// A dotted OS version (`13`, `13.1`, `14.2.1`), compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OsVersion {
    /// Major version.
    pub major: u32,
    /// Minor version (0 if absent).
    pub minor: u32,
    /// Patch version (0 if absent).
    pub patch: u32,
}

impl OsVersion {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parse `M`, `M.m` or `M.m.p` (at most 16 bytes).
    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() || text.len() > 16 {
            return None;
        }
        let mut parts = text.split('.');
        let mut next = |required: bool| -> Option<u32> {
            match parts.next() {
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok(),
                None if !required => Some(0),
                _ => None,
            }
        };
        let v = Self::new(next(true)?, next(false)?, next(false)?);
        parts.next().is_none().then_some(v)
    }

    /// The macOS major version of a build number such as `22A380` (Darwin 22 →
    /// macOS 13). Only the major version can be derived from a build; returns
    /// `None` for builds older than macOS 11 (Darwin 20) or malformed input.
    pub fn macos_major_from_build(build: &str) -> Option<u32> {
        let digits: String = build.chars().take_while(char::is_ascii_digit).collect();
        let darwin: u32 = digits.parse().ok()?;
        let has_letter = build
            .get(digits.len()..)
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| c.is_ascii_uppercase());
        if !has_letter || !(20..=99).contains(&darwin) {
            return None;
        }
        // Darwin 20..=24 are macOS 11..=15; Darwin 25 is macOS 26 (year-based numbering).
        Some(if darwin >= 25 { darwin + 1 } else { darwin - 9 })
    }
}

impl std::fmt::Display for OsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The activation policy an administrator attaches to a user (step 1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Policy {
    /// The self-service activation password stops working at this instant.
    pub password_expires: Option<SystemTime>,
    /// At most this many devices may be activated for the user at once.
    pub max_devices: Option<u32>,
    /// Devices below this OS version are refused at step 6.
    pub min_os_version: Option<OsVersion>,
    /// Allowed `PRODUCT` values, matched as prefixes (`"Mac"` allows every
    /// Mac, `"MacBookPro18,"` one family). Empty: every model is allowed.
    pub allowed_models: Vec<String>,
    /// Who owns devices activated under this policy.
    pub ownership: Ownership,
    /// A notice the user must accept before the activation request (step 3).
    pub organisation_notice: Option<String>,
}

with_setters!(Policy {
    with_max_devices: max_devices: Option<u32>,
    with_password_expires: password_expires: Option<SystemTime>,
    with_min_os_version: min_os_version: Option<OsVersion>,
    with_allowed_models: allowed_models: Vec<String>,
    with_ownership: ownership: Ownership,
    with_organisation_notice: organisation_notice: Option<String>,
});

impl Policy {
    /// Check the device facts of step 6 against this policy.
    pub fn check_device(&self, device: &DeviceFacts) -> Result<(), ActivationError> {
        if !self.allowed_models.is_empty()
            && !self
                .allowed_models
                .iter()
                .any(|m| !m.is_empty() && device.product.starts_with(m.as_str()))
        {
            return Err(ActivationError::ModelNotAllowed {
                product: device.product.clone(),
            });
        }
        if let Some(floor) = self.min_os_version {
            let ok = match (device.os_version, device.build.as_deref()) {
                (Some(v), _) => v >= floor,
                // Only the major version is known from a build: accept when it is
                // above the floor, or equal to a floor that is a bare major.
                (None, Some(build)) => match OsVersion::macos_major_from_build(build) {
                    Some(major) => {
                        major > floor.major
                            || (major == floor.major && floor.minor == 0 && floor.patch == 0)
                    }
                    None => false,
                },
                (None, None) => false,
            };
            if !ok {
                return Err(ActivationError::OsBelowFloor {
                    floor,
                    found: device.os_version,
                    build: device.build.clone(),
                });
            }
        }
        Ok(())
    }
}

/// A user account with self-service credentials (step 1). The password itself
/// lives in the caller's [`Directory`](crate::store::Directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAccount {
    /// The customer the user belongs to.
    pub tenant: TenantId,
    /// The self-service username.
    pub username: String,
    /// The directory domain.
    pub domain: String,
    /// The activation policy.
    pub policy: Policy,
}

/// What the policy looks at on a device (from its verified attributes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceFacts {
    /// `UDID`.
    pub udid: String,
    /// `SERIAL`.
    pub serial: String,
    /// `PRODUCT` (e.g. `MacBookPro18,3`).
    pub product: String,
    /// The OS version if the device said it (`OS_VERSION`).
    pub os_version: Option<OsVersion>,
    /// The build (`VERSION`, e.g. `22A380`).
    pub build: Option<String>,
}
