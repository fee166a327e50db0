//! Small helpers over [`wire::ber::Element`](crate::wire::ber::Element) for
//! walking CMS and X.509 structures as received (BER), and the `der`-derived
//! CMS types this crate writes where the `cms` crate's own cannot carry its
//! input (lenient issuer/serial identifiers, certificates kept in order) or
//! would copy it (the content and the outer `ContentInfo`, written in one
//! pass).

use const_oid::ObjectIdentifier;

use crate::wire::ber::{Class, Element};

/// Universal tag numbers used here.
pub(crate) const INTEGER: u32 = 2;
pub(crate) const OCTET_STRING: u32 = 4;
pub(crate) const OID: u32 = 6;
pub(crate) const SEQUENCE: u32 = 16;
pub(crate) const SET: u32 = 17;

/// A structural problem, naming the field that was not as expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

pub(crate) type Walk<T> = Result<T, WalkError>;

/// Failure while walking: either the BER itself or the structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WalkError {
    Ber(crate::wire::ber::BerError),
    Malformed(&'static str),
}

impl From<crate::wire::ber::BerError> for WalkError {
    fn from(e: crate::wire::ber::BerError) -> Self {
        Self::Ber(e)
    }
}

impl From<Malformed> for WalkError {
    fn from(m: Malformed) -> Self {
        Self::Malformed(m.0)
    }
}

/// Require a universal element of tag `number`, constructed or not as `constructed`.
pub(crate) fn expect_universal(
    el: &Element<'_>,
    number: u32,
    what: &'static str,
) -> Result<(), Malformed> {
    if el.is(Class::Universal, number) {
        Ok(())
    } else {
        Err(Malformed(what))
    }
}

/// Children of a universal SEQUENCE (or SET) element.
pub(crate) fn sequence<'a>(
    el: &Element<'a>,
    number: u32,
    what: &'static str,
) -> Walk<Vec<Element<'a>>> {
    if !el.is(Class::Universal, number) || !el.constructed {
        return Err(Malformed(what).into());
    }
    Ok(el.children()?)
}

/// An OBJECT IDENTIFIER element.
pub(crate) fn oid(el: &Element<'_>, what: &'static str) -> Result<ObjectIdentifier, Malformed> {
    if !el.is(Class::Universal, OID) || el.constructed {
        return Err(Malformed(what));
    }
    ObjectIdentifier::from_bytes(el.contents).map_err(|_| Malformed(what))
}

/// The algorithm OID of an `AlgorithmIdentifier` (parameters are ignored).
pub(crate) fn algorithm(el: &Element<'_>, what: &'static str) -> Walk<ObjectIdentifier> {
    let parts = sequence(el, SEQUENCE, what)?;
    let first = parts.first().ok_or(Malformed(what))?;
    Ok(oid(first, what)?)
}

/// The content octets of a primitive INTEGER (two's complement, as encoded).
pub(crate) fn integer<'a>(el: &Element<'a>, what: &'static str) -> Result<&'a [u8], Malformed> {
    if !el.is(Class::Universal, INTEGER) || el.constructed || el.contents.is_empty() {
        return Err(Malformed(what));
    }
    Ok(el.contents)
}

/// A small non-negative INTEGER (versions).
pub(crate) fn small_integer(el: &Element<'_>, what: &'static str) -> Result<u32, Malformed> {
    let bytes = integer(el, what)?;
    if bytes.len() > 4 || bytes.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(Malformed(what));
    }
    Ok(bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

/// `IssuerAndSerialNumber` (RFC 5652 §10.2.4) over a certificate's own bytes.
///
/// Not `cms::cert::IssuerAndSerialNumber`: that holds x509-cert's `Name`
/// (re-encoded, so a non-canonical issuer would no longer match) and
/// `SerialNumber`, which refuses serials over 21 octets (certmonger's
/// self-signed certificates carry 32, device certificates may be longer).
/// The serial is an INTEGER kept exactly as the certificate encodes it.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence, der::ValueOrd)]
pub(crate) struct IssuerAndSerial<'a> {
    /// The issuer `Name`, as encoded in the certificate.
    pub issuer: der::asn1::AnyRef<'a>,
    /// The serialNumber INTEGER, as encoded in the certificate.
    pub serial_number: der::asn1::AnyRef<'a>,
}

impl<'a> IssuerAndSerial<'a> {
    /// From the DER of an issuer Name and the content octets of a serial INTEGER.
    pub fn new(issuer_der: &'a [u8], serial: &'a [u8]) -> der::Result<Self> {
        let issuer = der::asn1::AnyRef::try_from(issuer_der)?;
        if der::Tagged::tag(&issuer) != der::Tag::Sequence {
            return Err(der::Tag::Sequence.value_error().into());
        }
        Ok(Self {
            issuer,
            serial_number: der::asn1::AnyRef::new(der::Tag::Integer, serial)?,
        })
    }
}

/// A `SET OF` holding already-encoded elements in the order given.
///
/// Used for SignedData `certificates`: `cms::signed_data::CertificateSet`
/// re-encodes each certificate through x509-cert (which refuses the lenient
/// certificates this crate accepts) and sorts them, while SCEP clients and
/// callers expect the signer first, then its chain, byte for byte.
#[derive(Clone, Debug, Eq, PartialEq)]
pub(crate) struct InOrder<'a>(pub Vec<der::asn1::AnyRef<'a>>);

impl der::EncodeValue for InOrder<'_> {
    fn value_len(&self) -> der::Result<der::Length> {
        self.0.iter().try_fold(der::Length::ZERO, |acc, el| {
            acc + der::Encode::encoded_len(el)?
        })
    }

    fn encode_value(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        self.0
            .iter()
            .try_for_each(|el| der::Encode::encode(el, writer))
    }
}

impl<'a> der::DecodeValue<'a> for InOrder<'a> {
    type Error = der::Error;

    fn decode_value<R: der::Reader<'a>>(reader: &mut R, header: der::Header) -> der::Result<Self> {
        reader.read_nested(header.length(), |r| {
            let mut out = Vec::new();
            while !r.is_finished() {
                out.push(r.decode()?);
            }
            Ok(Self(out))
        })
    }
}

impl der::FixedTag for InOrder<'_> {
    const TAG: der::Tag = der::Tag::Set;
}

/// A `SignerInfo` (RFC 5652 §5.3) to encode: the `cms` crate's fields with
/// [`IssuerAndSerial`] as the signer identifier (see there why).
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence, der::ValueOrd)]
pub(crate) struct SignerInfoOut<'a> {
    pub version: cms::content_info::CmsVersion,
    pub sid: IssuerAndSerial<'a>,
    pub digest_alg: spki::AlgorithmIdentifierOwned,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub signed_attrs: Option<cms::signed_data::SignedAttributes>,
    pub signature_algorithm: spki::AlgorithmIdentifierOwned,
    pub signature: der::asn1::OctetString,
}

/// A `SignedData` (RFC 5652 §5.1) to encode: the `cms` crate's types except
/// for the certificates ([`InOrder`]) and signers ([`SignerInfoOut`]).
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
pub(crate) struct SignedDataOut<'a> {
    pub version: cms::content_info::CmsVersion,
    pub digest_algorithms: cms::signed_data::DigestAlgorithmIdentifiers,
    pub encap_content_info: EncapsulatedContentOut<'a>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub certificates: Option<InOrder<'a>>,
    pub signer_infos: der::asn1::SetOfVec<SignerInfoOut<'a>>,
}

/// `EncapsulatedContentInfo` (RFC 5652 §5.2) to encode: the content is
/// borrowed and written once, straight into the output (the `cms` crate's
/// type holds it as an owned `Any`, a copy of the whole body).
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
pub(crate) struct EncapsulatedContentOut<'a> {
    pub econtent_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub econtent: Option<&'a der::asn1::OctetStringRef>,
}

/// `RecipientIdentifier` (RFC 5652 §6.2.1), with [`IssuerAndSerial`] in
/// place of `cms::cert::IssuerAndSerialNumber` (see there why).
#[derive(Clone, Debug, Eq, PartialEq, der::Choice)]
pub(crate) enum RecipientIdentifier<'a> {
    IssuerAndSerialNumber(IssuerAndSerial<'a>),
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    SubjectKeyIdentifier(der::asn1::OctetString),
}

impl der::ValueOrd for RecipientIdentifier<'_> {
    fn value_cmp(&self, other: &Self) -> der::Result<std::cmp::Ordering> {
        use der::{DerOrd, Encode};
        self.to_der()?.der_cmp(&other.to_der()?)
    }
}

/// `KeyTransRecipientInfo` (RFC 5652 §6.2.1): the `cms` crate's fields with
/// [`RecipientIdentifier`] as `rid`.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence, der::ValueOrd)]
pub(crate) struct KeyTransRecipientInfo<'a> {
    pub version: cms::content_info::CmsVersion,
    pub rid: RecipientIdentifier<'a>,
    pub key_enc_alg: spki::AlgorithmIdentifierOwned,
    pub enc_key: der::asn1::OctetString,
}

/// `EnvelopedData` (RFC 5652 §6.1): the `cms` crate's `CmsVersion`; the
/// recipient infos are kept as encoded elements so that choices other than
/// key transport can be skipped rather than refused.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
pub(crate) struct EnvelopedDataDer<'a> {
    pub version: cms::content_info::CmsVersion,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub originator_info: Option<InOrder<'a>>,
    pub recip_infos: InOrder<'a>,
    pub encrypted_content: EncryptedContentInfo,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub unprotected_attrs: Option<InOrder<'a>>,
}

/// `EncryptedContentInfo` (RFC 5652 §6.1), as `cms::enveloped_data`'s but
/// with [`StringOctets`] for the `[0] IMPLICIT` content, which BER senders
/// (Apple devices among them) split into segments.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
pub(crate) struct EncryptedContentInfo {
    pub content_type: ObjectIdentifier,
    pub content_enc_alg: spki::AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub encrypted_content: Option<StringOctets>,
}

/// The value of an OCTET STRING, read from either form: primitive, or (under
/// BER rules, after [`wire::ber::to_der`](crate::wire::ber::to_der) made its
/// length definite) constructed from primitive segments, which
/// `der::asn1::OctetString` refuses. Written primitive.
#[derive(Clone, Debug, Eq, PartialEq)]
pub(crate) struct StringOctets(pub Vec<u8>);

impl<'a> der::DecodeValue<'a> for StringOctets {
    type Error = der::Error;

    fn decode_value<R: der::Reader<'a>>(reader: &mut R, header: der::Header) -> der::Result<Self> {
        if !header.tag().is_constructed() {
            return Ok(Self(reader.read_vec(header.length())?));
        }
        reader.read_nested(header.length(), |r| {
            let mut out = Vec::new();
            while !r.is_finished() {
                let segment: &der::asn1::OctetStringRef = r.decode()?;
                out.extend_from_slice(segment.as_bytes());
            }
            Ok(Self(out))
        })
    }
}

impl der::EncodeValue for StringOctets {
    fn value_len(&self) -> der::Result<der::Length> {
        der::Length::try_from(self.0.len())
    }

    fn encode_value(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        writer.write(&self.0)
    }
}

impl der::FixedTag for StringOctets {
    const TAG: der::Tag = der::Tag::OctetString;
}

/// DER of a `ContentInfo` (RFC 5652 §3) wrapping `content`, encoded in one
/// pass into one buffer of the exact size: `content` is written in place
/// under its `[0] EXPLICIT` tag, not first encoded into an `Any` of its own
/// and copied (as `cms::content_info::ContentInfo` would need).
pub(crate) fn content_info<T: der::EncodeValue + der::Tagged>(
    content_type: ObjectIdentifier,
    content: &T,
) -> der::Result<Vec<u8>> {
    use der::Encode;
    ContentInfoOut {
        content_type,
        content: der::asn1::ContextSpecificRef {
            tag_number: der::TagNumber(0),
            tag_mode: der::TagMode::Explicit,
            value: content,
        },
    }
    .to_der()
}

/// `ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content }`, encode
/// only, over a borrowed content.
struct ContentInfoOut<'a, T> {
    content_type: ObjectIdentifier,
    content: der::asn1::ContextSpecificRef<'a, T>,
}

impl<T: der::EncodeValue + der::Tagged> der::EncodeValue for ContentInfoOut<'_, T> {
    fn value_len(&self) -> der::Result<der::Length> {
        use der::Encode;
        self.content_type.encoded_len()? + self.content.encoded_len()?
    }

    fn encode_value(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        use der::Encode;
        self.content_type.encode(writer)?;
        self.content.encode(writer)
    }
}

impl<T> der::FixedTag for ContentInfoOut<'_, T> {
    const TAG: der::Tag = der::Tag::Sequence;
}

#[cfg(test)]
mod tests {
    use der::Encode;
    use der::asn1::OctetStringRef;

    use super::{EncapsulatedContentOut, content_info};
    use crate::cms::oid;

    /// The one-pass encoders write exactly what the `cms` crate's own
    /// (copying) types write, attached and detached, small and with a
    /// content long enough for multi-byte lengths.
    #[test]
    fn one_pass_encoding_matches_the_cms_crate() {
        for len in [0usize, 5, 127, 128, 300, 70_000] {
            let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for attached in [true, false] {
                let octets = OctetStringRef::new(&content).unwrap();
                let ours = EncapsulatedContentOut {
                    econtent_type: oid::ID_DATA,
                    econtent: attached.then_some(octets),
                };
                let theirs = cms::signed_data::EncapsulatedContentInfo {
                    econtent_type: oid::ID_DATA,
                    econtent: attached.then(|| der::Any::encode_from(&octets).unwrap()),
                };
                assert_eq!(ours.to_der().unwrap(), theirs.to_der().unwrap());

                let wrapped = content_info(oid::ID_SIGNED_DATA, &ours).unwrap();
                let reference = cms::content_info::ContentInfo {
                    content_type: oid::ID_SIGNED_DATA,
                    content: der::Any::encode_from(&theirs).unwrap(),
                }
                .to_der()
                .unwrap();
                assert_eq!(
                    wrapped, reference,
                    "content of {len} bytes, attached {attached}"
                );
            }
        }
    }
}
