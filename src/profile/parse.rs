//! Reading profiles back: unsigned XML, or CMS SignedData around it.

use super::ProfileError;
use super::top::Profile;
use crate::cms::{Certificate, SignedData};
use crate::wire::Limits;

/// A profile read from bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedProfile {
    /// The decoded profile.
    pub profile: Profile,
    /// For a signed profile: who signed it. Present only when the signature
    /// verified against the signer certificate carried in the message.
    pub signature: Option<ProfileSignature>,
}

/// The signature of a signed profile.
///
/// The signature is verified against `signer`'s public key; whether `signer`
/// is trusted (its chain up to a root) is the caller's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSignature {
    /// The certificate whose key made the signature.
    pub signer: Certificate,
    /// Every certificate the message carries (signer and chain), in order.
    pub certificates: Vec<Certificate>,
}

/// Parse `.mobileconfig` bytes: an XML plist, or (first byte `0x30`) CMS
/// SignedData with the plist attached, whose signature is verified before
/// the content is decoded. Payloads of known types are decoded into their
/// typed form, others kept as dictionaries.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<ParsedProfile, ProfileError> {
    if bytes.len() > limits.max_body_bytes {
        return Err(ProfileError::TooLarge {
            len: bytes.len(),
            max: limits.max_body_bytes,
        });
    }
    if bytes.first() != Some(&0x30) {
        return Ok(ParsedProfile {
            profile: Profile::from_xml(bytes, limits)?,
            signature: None,
        });
    }
    let signed = SignedData::parse(bytes, &limits.ber)?;
    if signed.signers().len() != 1 {
        return Err(ProfileError::SignedContent("expected exactly one signer"));
    }
    let signer = signed.verify_signer(0, None)?.clone();
    let content = signed
        .content()
        .ok_or(ProfileError::SignedContent("no attached profile"))?;
    if content.first() == Some(&0x30) {
        // A profile signed twice is not something Apple's tools produce.
        return Err(ProfileError::SignedContent("nested CMS"));
    }
    Ok(ParsedProfile {
        profile: Profile::from_xml(content, limits)?,
        signature: Some(ProfileSignature {
            signer,
            certificates: signed.certificates().to_vec(),
        }),
    })
}

impl Profile {
    /// Parse an unsigned profile (XML plist, or binary when
    /// `limits.allow_binary_plist`) through the bounded plist reader.
    pub fn from_xml(bytes: &[u8], limits: &Limits) -> Result<Self, ProfileError> {
        Self::from_plist(crate::wire::plist::decode(bytes, limits)?)
    }
}
