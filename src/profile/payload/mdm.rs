//! The `com.apple.mdm` payload ([`MdmPayload`]), its [`AccessRights`] and the
//! `ServerCapabilities` values.

use plist::Dictionary;

use crate::profile::ProfileError;
use crate::profile::dict::{Fields, Out};

/// `AccessRights` of the `com.apple.mdm` payload: a bitmask of what the
/// server may do. Never 0; `2` needs `1`, `128` needs `64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccessRights(pub u32);

impl AccessRights {
    /// Inspect installed configuration profiles.
    pub const INSPECT_PROFILES: Self = Self(1);
    /// Install and remove configuration profiles (needs `INSPECT_PROFILES`).
    pub const INSTALL_PROFILES: Self = Self(2);
    /// Lock the device and remove its passcode.
    pub const LOCK: Self = Self(4);
    /// Erase the device.
    pub const ERASE: Self = Self(8);
    /// Query device information.
    pub const DEVICE_INFO: Self = Self(16);
    /// Query network information.
    pub const NETWORK_INFO: Self = Self(32);
    /// Inspect installed provisioning profiles.
    pub const INSPECT_PROVISIONING_PROFILES: Self = Self(64);
    /// Install and remove provisioning profiles (needs `INSPECT_PROVISIONING_PROFILES`).
    pub const INSTALL_PROVISIONING_PROFILES: Self = Self(128);
    /// Inspect installed applications.
    pub const INSPECT_APPS: Self = Self(256);
    /// Restriction-related queries.
    pub const RESTRICTIONS: Self = Self(512);
    /// Security-related queries.
    pub const SECURITY: Self = Self(1024);
    /// Manipulate settings.
    pub const SETTINGS: Self = Self(2048);
    /// App management.
    pub const APP_MANAGEMENT: Self = Self(4096);
    /// Every right (8191).
    pub const ALL: Self = Self(8191);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for AccessRights {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// The `com.apple.mdm` payload: enrolls the device in MDM.
#[derive(Debug, Clone, PartialEq)]
pub struct MdmPayload {
    /// `ServerURL` (https): where the device fetches commands.
    pub server_url: String,
    /// `Topic`: the APNs push topic, `com.apple.mgmt.…`.
    pub topic: String,
    /// `IdentityCertificateUUID`: the SCEP, ACME or PKCS#12 payload of this
    /// profile holding the device identity.
    pub identity_certificate_uuid: String,
    /// `CheckInURL` (https; defaults to `ServerURL`).
    pub check_in_url: Option<String>,
    /// `SignMessage`: send an `Mdm-Signature` header on every request.
    pub sign_message: Option<bool>,
    /// `AccessRights`.
    pub access_rights: Option<AccessRights>,
    /// `CheckOutWhenRemoved`.
    pub check_out_when_removed: Option<bool>,
    /// `ServerCapabilities` (`com.apple.mdm.per-user-connections`, …).
    pub server_capabilities: Option<Vec<String>>,
    /// `UseDevelopmentAPNS`.
    pub use_development_apns: Option<bool>,
    /// `ServerURLPinningCertificateUUIDs`: certificate payloads of this profile.
    pub server_url_pinning_certificate_uuids: Option<Vec<String>>,
    /// `CheckInURLPinningCertificateUUIDs`: certificate payloads of this profile.
    pub check_in_url_pinning_certificate_uuids: Option<Vec<String>>,
    /// `PinningRevocationCheckRequired`.
    pub pinning_revocation_check_required: Option<bool>,
    /// `ManagedAppleID` (user enrollment, removed in iOS 18 / macOS 15).
    pub managed_apple_id: Option<String>,
    /// `AssignedManagedAppleID` (account-driven enrollment).
    pub assigned_managed_apple_id: Option<String>,
    /// `EnrollmentMode`: `BYOD` or `ADDE`.
    pub enrollment_mode: Option<String>,
    /// `RequiredAppIDForMDM` (iOS account-driven enrollment).
    pub required_app_id_for_mdm: Option<i64>,
    /// `PromptUserToAllowBootstrapTokenForAuthentication` (macOS 11+).
    pub prompt_user_to_allow_bootstrap_token_for_authentication: Option<bool>,
    /// Keys not modelled above, kept as they are.
    pub extra: Dictionary,
}

/// `ServerCapabilities` value: the server supports user channels.
pub const CAPABILITY_PER_USER_CONNECTIONS: &str = "com.apple.mdm.per-user-connections";
/// `ServerCapabilities` value: the server escrows the Bootstrap Token.
pub const CAPABILITY_BOOTSTRAP_TOKEN: &str = "com.apple.mdm.bootstraptoken";
/// `ServerCapabilities` value: the server answers `GetToken`.
pub const CAPABILITY_TOKEN: &str = "com.apple.mdm.token";

impl MdmPayload {
    /// A payload with the required keys and nothing else.
    pub fn new(
        server_url: impl Into<String>,
        topic: impl Into<String>,
        identity_certificate_uuid: impl Into<String>,
    ) -> Self {
        Self {
            server_url: server_url.into(),
            topic: topic.into(),
            identity_certificate_uuid: identity_certificate_uuid.into(),
            check_in_url: None,
            sign_message: None,
            access_rights: None,
            check_out_when_removed: None,
            server_capabilities: None,
            use_development_apns: None,
            server_url_pinning_certificate_uuids: None,
            check_in_url_pinning_certificate_uuids: None,
            pinning_revocation_check_required: None,
            managed_apple_id: None,
            assigned_managed_apple_id: None,
            enrollment_mode: None,
            required_app_id_for_mdm: None,
            prompt_user_to_allow_bootstrap_token_for_authentication: None,
            extra: Dictionary::new(),
        }
    }

    pub(super) fn decode(mut f: Fields<'_>) -> Result<Self, ProfileError> {
        let access_rights = f.u32("AccessRights")?.map(AccessRights);
        Ok(Self {
            server_url: f.req_string("ServerURL")?,
            topic: f.req_string("Topic")?,
            identity_certificate_uuid: f.req_string("IdentityCertificateUUID")?,
            check_in_url: f.string("CheckInURL")?,
            sign_message: f.boolean("SignMessage")?,
            access_rights,
            check_out_when_removed: f.boolean("CheckOutWhenRemoved")?,
            server_capabilities: f.strings("ServerCapabilities")?,
            use_development_apns: f.boolean("UseDevelopmentAPNS")?,
            server_url_pinning_certificate_uuids: f.strings("ServerURLPinningCertificateUUIDs")?,
            check_in_url_pinning_certificate_uuids: f
                .strings("CheckInURLPinningCertificateUUIDs")?,
            pinning_revocation_check_required: f.boolean("PinningRevocationCheckRequired")?,
            managed_apple_id: f.string("ManagedAppleID")?,
            assigned_managed_apple_id: f.string("AssignedManagedAppleID")?,
            enrollment_mode: f.string("EnrollmentMode")?,
            required_app_id_for_mdm: f.integer("RequiredAppIDForMDM")?,
            prompt_user_to_allow_bootstrap_token_for_authentication: f
                .boolean("PromptUserToAllowBootstrapTokenForAuthentication")?,
            extra: f.rest(),
        })
    }

    pub(super) fn encode(&self, out: &mut Out) {
        out.str("ServerURL", &self.server_url);
        out.str("Topic", &self.topic);
        out.str("IdentityCertificateUUID", &self.identity_certificate_uuid);
        out.opt_str("CheckInURL", &self.check_in_url);
        out.opt_bool("SignMessage", self.sign_message);
        out.opt_u32("AccessRights", self.access_rights.map(|a| a.0));
        out.opt_bool("CheckOutWhenRemoved", self.check_out_when_removed);
        out.opt_strings("ServerCapabilities", &self.server_capabilities);
        out.opt_bool("UseDevelopmentAPNS", self.use_development_apns);
        out.opt_strings(
            "ServerURLPinningCertificateUUIDs",
            &self.server_url_pinning_certificate_uuids,
        );
        out.opt_strings(
            "CheckInURLPinningCertificateUUIDs",
            &self.check_in_url_pinning_certificate_uuids,
        );
        out.opt_bool(
            "PinningRevocationCheckRequired",
            self.pinning_revocation_check_required,
        );
        out.opt_str("ManagedAppleID", &self.managed_apple_id);
        out.opt_str("AssignedManagedAppleID", &self.assigned_managed_apple_id);
        out.opt_str("EnrollmentMode", &self.enrollment_mode);
        out.opt_int("RequiredAppIDForMDM", self.required_app_id_for_mdm);
        out.opt_bool(
            "PromptUserToAllowBootstrapTokenForAuthentication",
            self.prompt_user_to_allow_bootstrap_token_for_authentication,
        );
        out.extra(&self.extra);
    }
}
