//! What Apple's profile installer refuses, checked before a profile is served.

use std::collections::HashSet;

use super::payload::{
    AccessRights, AcmePayload, CAPABILITY_BOOTSTRAP_TOKEN, CAPABILITY_PER_USER_CONNECTIONS,
    CAPABILITY_TOKEN, CertificateKind, MdmPayload, Payload, PayloadKind, ScepPayload,
};
use super::top::{Profile, ProfileContent, ProfileService};
use super::{ProfileError, TOPIC_PREFIX};

/// Choices for [`Profile::validate`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidationOptions {
    /// Accept `http://` URLs (for tests against a local server). Default:
    /// only `https://` (the MDM schema requires it for `ServerURL` and
    /// `CheckInURL`; the crate applies it to every URL it serves).
    pub allow_http: bool,
}

impl ValidationOptions {
    /// Options accepting `http://` URLs, for tests.
    pub fn allowing_http() -> Self {
        Self { allow_http: true }
    }
}

fn invalid(payload: &str, key: &str, reason: impl Into<String>) -> ProfileError {
    ProfileError::InvalidValue {
        payload: payload.to_owned(),
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn non_empty(payload: &str, key: &str, value: &str) -> Result<(), ProfileError> {
    if value.trim().is_empty() {
        return Err(invalid(payload, key, "must not be empty"));
    }
    Ok(())
}

fn check_url(
    payload: &str,
    key: &str,
    url: &str,
    options: &ValidationOptions,
) -> Result<(), ProfileError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        url.get(8..)
    } else if options.allow_http && lower.starts_with("http://") {
        url.get(7..)
    } else {
        let wanted = if options.allow_http {
            "http:// or https://"
        } else {
            "https://"
        };
        return Err(invalid(
            payload,
            key,
            format!("{url:?} must start with {wanted}"),
        ));
    };
    let host = rest
        .unwrap_or_default()
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if host.is_empty() {
        return Err(invalid(payload, key, format!("{url:?} has no host")));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            payload,
            key,
            format!("{url:?} contains whitespace"),
        ));
    }
    Ok(())
}

fn unique(payload: &str, key: &str, items: &[String]) -> Result<(), ProfileError> {
    let mut seen = HashSet::new();
    for item in items {
        if !seen.insert(item.as_str()) {
            return Err(invalid(payload, key, format!("{item:?} is listed twice")));
        }
    }
    Ok(())
}

impl Profile {
    /// Check what Apple's installer would refuse: required keys empty,
    /// `PayloadUUID`s or `PayloadIdentifier`s not unique, dangling
    /// `IdentityCertificateUUID` or pinning references, a `Topic` without
    /// `com.apple.mgmt.`, non-https URLs, `AccessRights` 0 or outside the
    /// bitmask, more than one `com.apple.mdm` payload, SCEP key sizes and
    /// usages outside Apple's ranges.
    ///
    /// Returns the first problem found.
    pub fn validate(&self, options: &ValidationOptions) -> Result<(), ProfileError> {
        let top = "profile";
        non_empty(top, "PayloadIdentifier", &self.identifier)?;
        non_empty(top, "PayloadUUID", &self.uuid)?;
        if let Some(t) = self.target_device_type
            && !(0..=6).contains(&t)
        {
            return Err(invalid(
                top,
                "TargetDeviceType",
                format!("{t} is not 0..=6"),
            ));
        }
        match &self.content {
            ProfileContent::Configuration(payloads) => self.validate_payloads(payloads, options),
            ProfileContent::Encrypted(data) => {
                if data.is_empty() {
                    return Err(invalid(top, "EncryptedPayloadContent", "must not be empty"));
                }
                Ok(())
            }
            ProfileContent::ProfileService(service) => {
                validate_profile_service(&self.identifier, service, options)
            }
        }
    }

    fn validate_payloads(
        &self,
        payloads: &[Payload],
        options: &ValidationOptions,
    ) -> Result<(), ProfileError> {
        let mut uuids = HashSet::from([self.uuid.as_str()]);
        let mut identifiers = HashSet::new();
        for p in payloads {
            let name = p.identifier.as_str();
            non_empty(name, "PayloadIdentifier", name)?;
            non_empty(name, "PayloadUUID", &p.uuid)?;
            non_empty(name, "PayloadType", p.payload_type())?;
            if p.version < 1 {
                return Err(invalid(name, "PayloadVersion", "must be 1"));
            }
            if !uuids.insert(p.uuid.as_str()) {
                return Err(ProfileError::DuplicateUuid {
                    payload: name.to_owned(),
                    uuid: p.uuid.clone(),
                });
            }
            if !identifiers.insert(name) {
                return Err(ProfileError::DuplicateIdentifier {
                    payload: name.to_owned(),
                });
            }
        }
        if let Some(second) = payloads
            .iter()
            .filter(|p| matches!(p.kind, PayloadKind::Mdm(_)))
            .nth(1)
        {
            return Err(invalid(
                &second.identifier,
                "PayloadType",
                "a profile holds at most one com.apple.mdm payload",
            ));
        }
        for p in payloads {
            let name = p.identifier.as_str();
            match &p.kind {
                PayloadKind::Mdm(m) => validate_mdm(name, m, payloads, options)?,
                PayloadKind::Scep(s) => validate_scep(name, s, options)?,
                PayloadKind::Acme(a) => validate_acme(name, a, options)?,
                PayloadKind::Certificate(c) => {
                    if c.content.is_empty() {
                        return Err(invalid(name, "PayloadContent", "must not be empty"));
                    }
                }
                PayloadKind::Other { .. } => {}
            }
        }
        Ok(())
    }
}

fn validate_profile_service(
    name: &str,
    service: &ProfileService,
    options: &ValidationOptions,
) -> Result<(), ProfileError> {
    check_url(name, "PayloadContent.URL", &service.url, options)?;
    if service.device_attributes.is_empty() {
        return Err(invalid(
            name,
            "PayloadContent.DeviceAttributes",
            "must name at least one attribute",
        ));
    }
    for a in &service.device_attributes {
        non_empty(name, "PayloadContent.DeviceAttributes", a)?;
    }
    unique(
        name,
        "PayloadContent.DeviceAttributes",
        &service.device_attributes,
    )
}

fn validate_mdm(
    name: &str,
    m: &MdmPayload,
    payloads: &[Payload],
    options: &ValidationOptions,
) -> Result<(), ProfileError> {
    check_url(name, "ServerURL", &m.server_url, options)?;
    if let Some(url) = &m.check_in_url {
        check_url(name, "CheckInURL", url, options)?;
    }
    if m.topic.len() <= TOPIC_PREFIX.len() || !m.topic.starts_with(TOPIC_PREFIX) {
        return Err(invalid(
            name,
            "Topic",
            format!("{:?} must start with {TOPIC_PREFIX}", m.topic),
        ));
    }
    let identity = payloads
        .iter()
        .find(|p| p.uuid == m.identity_certificate_uuid);
    let is_identity = identity.is_some_and(|p| {
        matches!(p.kind, PayloadKind::Scep(_) | PayloadKind::Acme(_))
            || matches!(&p.kind, PayloadKind::Certificate(c) if c.kind == CertificateKind::Pkcs12)
    });
    if !is_identity {
        return Err(ProfileError::DanglingReference {
            payload: name.to_owned(),
            key: "IdentityCertificateUUID".to_owned(),
            uuid: m.identity_certificate_uuid.clone(),
            expected: "a SCEP, ACME or PKCS#12",
        });
    }
    if let Some(AccessRights(bits)) = m.access_rights {
        let rights = AccessRights(bits);
        if bits == 0 {
            return Err(invalid(name, "AccessRights", "must not be 0"));
        }
        if bits & !AccessRights::ALL.0 != 0 {
            return Err(invalid(
                name,
                "AccessRights",
                format!("{bits} has bits outside the bitmask 8191"),
            ));
        }
        if rights.contains(AccessRights::INSTALL_PROFILES)
            && !rights.contains(AccessRights::INSPECT_PROFILES)
        {
            return Err(invalid(name, "AccessRights", "2 requires 1"));
        }
        if rights.contains(AccessRights::INSTALL_PROVISIONING_PROFILES)
            && !rights.contains(AccessRights::INSPECT_PROVISIONING_PROFILES)
        {
            return Err(invalid(name, "AccessRights", "128 requires 64"));
        }
    }
    if let Some(caps) = &m.server_capabilities {
        unique(name, "ServerCapabilities", caps)?;
        if let Some(unknown) = caps.iter().find(|c| {
            ![
                CAPABILITY_PER_USER_CONNECTIONS,
                CAPABILITY_BOOTSTRAP_TOKEN,
                CAPABILITY_TOKEN,
            ]
            .contains(&c.as_str())
        }) {
            return Err(invalid(
                name,
                "ServerCapabilities",
                format!("{unknown:?} is not a capability Apple defines"),
            ));
        }
    }
    if let Some(mode) = &m.enrollment_mode
        && mode != "BYOD"
        && mode != "ADDE"
    {
        return Err(invalid(
            name,
            "EnrollmentMode",
            format!("{mode:?} is not BYOD or ADDE"),
        ));
    }
    for (key, list) in [
        (
            "ServerURLPinningCertificateUUIDs",
            &m.server_url_pinning_certificate_uuids,
        ),
        (
            "CheckInURLPinningCertificateUUIDs",
            &m.check_in_url_pinning_certificate_uuids,
        ),
    ] {
        for uuid in list.iter().flatten() {
            let found = payloads
                .iter()
                .any(|p| &p.uuid == uuid && matches!(p.kind, PayloadKind::Certificate(_)));
            if !found {
                return Err(ProfileError::DanglingReference {
                    payload: name.to_owned(),
                    key: key.to_owned(),
                    uuid: uuid.clone(),
                    expected: "a certificate",
                });
            }
        }
    }
    Ok(())
}

fn validate_scep(
    name: &str,
    s: &ScepPayload,
    options: &ValidationOptions,
) -> Result<(), ProfileError> {
    check_url(name, "PayloadContent.URL", &s.url, options)?;
    if let Some(size) = s.key_size
        && ![1024, 2048, 4096].contains(&size)
    {
        return Err(invalid(
            name,
            "PayloadContent.Keysize",
            format!("{size} is not 1024, 2048 or 4096"),
        ));
    }
    if let Some(t) = &s.key_type
        && t != "RSA"
    {
        return Err(invalid(
            name,
            "PayloadContent.Key Type",
            format!("{t:?} is not RSA"),
        ));
    }
    if let Some(u) = s.key_usage
        && u & !5 != 0
    {
        return Err(invalid(
            name,
            "PayloadContent.Key Usage",
            format!("{u} is not a combination of 1 (signing) and 4 (encryption)"),
        ));
    }
    if let Some(subject) = &s.subject {
        check_subject(name, "PayloadContent.Subject", subject)?;
    }
    if s.ca_fingerprint.as_ref().is_some_and(Vec::is_empty) {
        return Err(invalid(
            name,
            "PayloadContent.CAFingerprint",
            "must not be empty",
        ));
    }
    Ok(())
}

fn check_subject(
    name: &str,
    key: &str,
    subject: &super::payload::Subject,
) -> Result<(), ProfileError> {
    for rdn in &subject.0 {
        if rdn.is_empty() {
            return Err(invalid(name, key, "an RDN holds no attribute"));
        }
        for (t, _) in rdn {
            let short = ["C", "L", "ST", "O", "OU", "CN"].contains(&t.as_str());
            let oid = const_oid::ObjectIdentifier::new(t).is_ok();
            if !short && !oid {
                return Err(invalid(
                    name,
                    key,
                    format!("{t:?} is neither C, L, ST, O, OU, CN nor a dotted OID"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_acme(
    name: &str,
    a: &AcmePayload,
    options: &ValidationOptions,
) -> Result<(), ProfileError> {
    check_url(name, "DirectoryURL", &a.directory_url, options)?;
    non_empty(name, "ClientIdentifier", &a.client_identifier)?;
    match a.key_type.as_str() {
        "RSA" | "ECSECPrimeRandom" => {}
        other => {
            return Err(invalid(
                name,
                "KeyType",
                format!("{other:?} is not RSA or ECSECPrimeRandom"),
            ));
        }
    }
    check_subject(name, "Subject", &a.subject)
}
