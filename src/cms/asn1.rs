//! Small helpers over [`wire::ber::Element`](crate::wire::ber::Element) for
//! walking CMS and X.509 structures, and for writing DER.

use const_oid::ObjectIdentifier;

use crate::wire::ber::{Class, Element, encode_tlv};

/// Universal tag numbers used here.
pub(crate) const INTEGER: u32 = 2;
pub(crate) const BIT_STRING: u32 = 3;
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

/// DER `SEQUENCE` of already-encoded parts.
pub(crate) fn der_sequence(parts: &[&[u8]]) -> Vec<u8> {
    encode_tlv(0x30, &parts.concat())
}

/// DER `SET OF` of already-encoded parts, sorted as DER requires (X.690 §11.6).
pub(crate) fn der_set_of(mut parts: Vec<Vec<u8>>) -> Vec<u8> {
    parts.sort();
    encode_tlv(0x31, &parts.concat())
}

/// DER encoding of an OID.
pub(crate) fn der_oid(oid: &ObjectIdentifier) -> Vec<u8> {
    encode_tlv(0x06, oid.as_bytes())
}

/// DER `AlgorithmIdentifier` with absent parameters.
pub(crate) fn der_algorithm(oid: &ObjectIdentifier) -> Vec<u8> {
    der_sequence(&[&der_oid(oid)])
}

/// DER `AlgorithmIdentifier` with NULL parameters (as `rsaEncryption` requires).
pub(crate) fn der_algorithm_null(oid: &ObjectIdentifier) -> Vec<u8> {
    der_sequence(&[&der_oid(oid), &[0x05, 0x00]])
}
