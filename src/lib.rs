//! # mdm-enroll
//!
//! The server side of activating a macOS device in an Apple MDM system, as a
//! **sans-IO** library: bytes, time and randomness go in; responses, state
//! changes and events come out. Without optional features the crate never
//! opens a socket, reads a clock or touches a disk; only three features do
//! IO, each in its own module: `sqlite` (a database file, `store::sqlite`),
//! `postgres` (a database connection, `store::postgres`) and `apns` (HTTP/2
//! connections to APNs, `push::apns`).
//!
//! Layers, each using only those below it:
//!
//! | module | what it holds |
//! |---|---|
//! | [`wire`] | limits, the plist guard, the BER → DER normaliser |
//! | [`http`] | neutral HTTP request/response values |
//! | [`crypto`] | `Signer`, `KeyUnwrapper`, digests, the `rsa` backend |
//! | [`mdm`] | check-in, report and command messages |
//! | [`ddm`] | declarative device management: declarations, tokens, status report, endpoints |
//! | [`push`] | the push certificate, APNs requests and outcomes, re-push policy; HTTP/2 client (feature `apns`) |
//! | [`cms`] | SignedData, EnvelopedData, Mdm-Signature, device attributes |
//! | [`profile`] | `.mobileconfig` payloads, building, validation, parsing |
//! | [`pki`] | certificate authority helpers: CA/RA creation, issuing |
//! | [`scep`] | RFC 8894 PKIMessage, CertRep and the responder |
//! | [`activation`] | the thirteen activation steps as a pure state machine |
//! | [`store`] | caller storage traits, in-memory store, conformance kit |
//! | [`service`] | the driver: one call per HTTP request over caller traits |
//!
//! ## The thirteen steps and who handles them
//!
//! The vendor data flow (self-service activation of a Mac) mapped to the
//! protocol and to this crate. [`activation::Step`] names each step; the pure
//! core is [`activation::Activation::apply`], the evidence-level driver is
//! [`service::Engine`], and the HTTP-level driver is
//! [`service::EnrollmentService::handle`] (which routes to the methods below,
//! by per-tenant paths `<prefix>/<tenant>/…` or by a
//! [`service::SingleTenantPaths`] layout of your own). `examples/server/`
//! is a complete server over it (portal, admin timeline, SQLite, rustls).
//!
//! | # | [`Step`](activation::Step) | protocol | handled by |
//! |---|---|---|---|
//! | 1 | `AccountReady` | user, credentials, policy | [`activation::UserAccount`], [`activation::Policy`], [`service::Engine::provision_user`] |
//! | 2 | `SelfServiceLogin` | self-service login | [`service::EnrollmentService::self_service`] → [`service::Engine::login`], [`store::Directory`] |
//! | 3 | `ActivationRequest` | activation request | [`service::Engine::request_activation`] |
//! | 4 | `ProfileServiceProfile` | signed Profile Service `.mobileconfig` with a one-time challenge | [`profile::ProfileService`], [`profile::Profile::sign`] |
//! | 5 | `DeviceAttributes` | device POSTs CMS-signed attributes (OTA phase 2) | [`service::EnrollmentService::profile_service`], [`cms::DeviceAttributesVerifier`] |
//! | 6 | `DeviceVerified` | signature, Apple device CA, challenge, policy → signed enrollment profile (SCEP + MDM + trust) | [`service::Engine::device_attributes`], [`profile::MdmPayload`], [`profile::ScepPayload`] |
//! | 7 | `ScepRequest` | SCEP GetCACaps, GetCACert, PKIOperation/PKCSReq | [`service::EnrollmentService::scep`], [`scep::ScepResponder::handle`], [`scep::CertificateRequest`] |
//! | 8 | `CertificateIssued` | CertRep with the identity certificate | [`scep::CertificateRequest::issue`], [`pki::issue`], [`service::Engine::certificate_issued`] |
//! | 9 | `MdmProfileInstalled` | check-in `Authenticate` (Mdm-Signature or mTLS identity) | [`service::MdmService::handle`], [`mdm::CheckinMessage`], [`cms::client_identity`] |
//! | 10 | `MdmActivationComplete` | first device-channel `TokenUpdate`: MDM activation complete; the server pushes | [`service::Engine::checkin`], [`store::PushSender`], [`push::PushRequest`] |
//! | 11 | `ConfigurationRequested` | connect `Status=Idle` | [`service::Engine::connect`], [`mdm::Report`] |
//! | 12 | `ConfigurationSent` | device information stored; initial commands, one per response | [`service::InitialConfiguration`], [`mdm::Command`], [`activation::queue`] |
//! | 13 | `ConfigurationApplied` | every initial command Acknowledged (Error/NotNow handled) | [`activation::queue::dispose`], [`activation::Phase::Complete`] |
//!
//! Storage is the caller's: [`store`] defines the traits (atomic challenge
//! consume, versioned activations, bind-or-conflict identity bindings,
//! queues, unique serials), an in-memory store, a SQLite store (feature
//! `sqlite`) and a conformance kit every store must pass (feature
//! `test-support`).
//!
//! # Embedding
//!
//! To put activation into a server of your own, build one
//! [`service::EnrollmentService`] and hand it every device-facing request:
//!
//! 1. Implement [`store::Directory`] (checks self-service credentials) and
//!    [`store::PushSender`] (hands pushes to your APNs client); take
//!    [`store::MemoryStore`], the SQLite store (feature `sqlite`) or your own
//!    [`store::Store`] (prove it with the conformance kit, feature
//!    `test-support`).
//! 2. Create or load a CA key and certificate ([`pki::create_ca`]): it signs
//!    the profiles (or issue a separate signer with [`pki::issue`]) and, in a
//!    [`scep::ScepResponder`], issues the device identities.
//! 3. [`service::Engine::new`] over store, directory and push;
//!    [`service::Engine::provision_user`] for each user (step 1);
//!    [`service::MdmService::new`] with a [`cms::DeviceAttributesVerifier`]
//!    trusting your CA for phase 3 (Apple's device CA is built in);
//!    [`service::EnrollmentConfig::new`] with your public HTTPS base URL and
//!    push topic; [`service::EnrollmentService::new`].
//! 4. In your HTTP handler, convert the request to [`http::Request`] (with
//!    the feature `http`, `From<http::Request<B>>`; set
//!    `tls_client_certificate` if you terminate TLS with client
//!    certificates), call [`service::EnrollmentService::handle`] with the
//!    current time and a CSPRNG on a blocking pool (it signs and decrypts
//!    with RSA), and send the [`http::Response`] back.
//!
//! `examples/embed.rs` is that, complete, in about 140 lines: one axum
//! handler over `EnrollmentService` and `MemoryStore`, plain HTTP, keys
//! generated at start (`cargo run --example embed --features http`).
//! `examples/server/` adds TLS, SQLite, a portal, an admin page, limits and
//! timeouts.
//! ## After activation
//!
//! The command API on [`service::Engine`] queues commands for an enrolled
//! device ([`service::Engine::enqueue_command`] with a [`mdm::Command`], or
//! [`service::Engine::enqueue_raw`] with a command plist), cancels those not
//! yet delivered ([`service::Engine::cancel`]), lists queues, results and
//! enrollments, and pushes through the [`store::PushSender`], keeping each
//! channel's push state in the [`store::PushStore`] (last push, APNs status,
//! invalid token, re-push schedule per [`service::RepushPolicy`]).
//!
//! ## Declarative device management
//!
//! [`service::MdmService::with_declarations`] answers the
//! `DeclarativeManagement` check-ins ([`ddm::respond`]) from a
//! [`store::DeclarationStore`]; with an initial [`ddm::DeclarationSet`] the
//! first `TokenUpdate` adds the `DeclarativeManagement` command to the
//! initial configuration, and step 13 waits until the device's status
//! report shows every initial declaration active and valid at its current
//! [`ddm::ServerToken`]. [`service::Engine::set_declarations`] changes a
//! channel's set later (queued and pushed when it changed).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// No panics by construction in library code (tests may use them).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[macro_use]
mod setters;

pub mod activation;
pub mod cms;
pub mod crypto;
pub mod ddm;
pub mod http;
pub mod mdm;
pub mod pki;
pub mod profile;
pub mod push;
mod redact;
pub mod scep;
pub mod service;
pub mod store;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod wire;
