//! # mdm-enroll
//!
//! The server side of activating a macOS device in an Apple MDM system, as a
//! **sans-IO** library: bytes, time and randomness go in; responses, state
//! changes and events come out. The crate never opens a socket, reads a clock
//! or touches a disk.
//!
//! Layers, each using only those below it:
//!
//! | module | what it holds |
//! |---|---|
//! | [`wire`] | limits, the plist guard, the BER → DER normaliser |
//! | [`http`] | neutral HTTP request/response values |
//! | [`crypto`] | `Signer`, `KeyUnwrapper`, digests, the `rsa` backend |
//! | [`mdm`] | check-in, report, command and push messages |
//! | [`cms`] | SignedData, EnvelopedData, Mdm-Signature, device attributes |
//! | [`profile`] | `.mobileconfig` payloads, building, validation, parsing |
//! | [`pki`] | certificate authority helpers: CA/RA creation, issuing |
//! | [`scep`] | RFC 8894 PKIMessage, CertRep and the responder |
//! | [`activation`] | the thirteen activation steps as a pure state machine |
//! | [`store`] | caller storage traits, in-memory store, conformance kit |
//! | [`service`] | the driver: one call per HTTP request over caller traits |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod activation;
pub mod cms;
pub mod crypto;
pub mod http;
pub mod mdm;
pub mod pki;
pub mod profile;
pub mod scep;
pub mod service;
pub mod store;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod wire;
