//! The driver: wires the caller's [`Store`](crate::store::Store),
//! [`Directory`](crate::store::Directory) and [`PushSender`](crate::store::PushSender)
//! to the pure [`activation`](crate::activation) core.
//!
//! [`Engine`] is the evidence-level driver: one method per activation step,
//! taking values the HTTP/CMS/SCEP layers already verified. Each call loads
//! the activation, runs [`Activation::apply`](crate::activation::Activation::apply), carries out the outputs in
//! order (atomic gates first: consume a challenge, claim a device slot, bind an
//! identity, finish a command) and saves the new state with a versioned
//! update. A failed gate stops the call with a typed error before the state
//! is saved.
//!
//! [`MdmService`] is the HTTP driver for `ServerURL`/`CheckInURL` (steps
//! 9–13): it verifies `Mdm-Signature` (or takes the TLS client
//! certificate), decodes the check-in or report with [`crate::mdm`] and calls
//! the engine. [`Route`] names the per-tenant URLs (`<prefix>/<tenant>/enroll`,
//! `/profile-service`, `/scep`, `/mdm`) the profiles give the device.
//!
//! The command API ([`Engine::enqueue_command`], [`Engine::enqueue_raw`],
//! [`Engine::cancel`], [`Engine::queue`], [`Engine::results`],
//! [`Engine::enrollments`]) serves day-2 operations after activation; it
//! pushes through the [`PushSender`](crate::store::PushSender) and keeps per-channel push bookkeeping
//! in the [`PushStore`](crate::store::PushStore) ([`RepushPolicy`]).
//!
//! # Sync and async
//!
//! Every call is synchronous and short: a few store operations and no key
//! operations (those happen in the HTTP layer). Call it directly from an
//! async task when the store is in-process (as [`MemoryStore`](crate::store::MemoryStore)),
//! and from the executor's blocking pool (`spawn_blocking`) when the store
//! performs network IO. The push sender only queues pushes.

mod commands;
mod ddm;
mod engine;
mod enrollment;
mod error;
mod mdm;
mod route;
mod tenants;

pub use commands::EnrollmentSummary;
pub use engine::{Engine, EngineConfig, EnrollmentGrant, LoginGrant, NewCommand, RepushPolicy};
pub use enrollment::{
    EnrollmentConfig, EnrollmentService, RenewalAction, RenewalPolicy, RenewalStatus, RenewalSweep,
    SingleTenantPaths,
};
pub use error::{CommandError, Event, EventKind, Outcome, ServiceError};
pub use mdm::{InitialConfiguration, MdmService};
pub use route::{Endpoint, Route, RouteError};
pub use tenants::TenantConfigs;
