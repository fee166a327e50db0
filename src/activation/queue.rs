//! Command queue semantics (protocol §2), as pure decisions over plain values.
//!
//! - one command per response;
//! - `NotNow`: the command stays queued, is skipped for the rest of that
//!   connection and offered again on the next one (a connection starts with
//!   `Idle` and ends when the server answers with an empty body);
//! - every `NotNow` spends one unit of the command's retry budget; when the
//!   budget is spent the command is finished as
//!   [`CommandOutcome::RetryBudgetExhausted`];
//! - a report that cannot be decoded answers the command last sent on the
//!   connection and is recorded as [`CommandOutcome::Undecodable`];
//! - results are kept per [`Retention`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{ActivationId, Channel, CommandUuid, ErrorInfo, ReportStatus, TenantId};

/// Names one command queue: a channel of a device of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QueueKey {
    /// The tenant.
    pub tenant: TenantId,
    /// The channel.
    pub channel: Channel,
}

/// A command waiting for the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedCommand {
    /// `CommandUUID`.
    pub uuid: CommandUuid,
    /// `RequestType` (for events and results).
    pub request_type: String,
    /// The complete command plist sent as the response body. Shared, not
    /// copied: the store's copy, the engine's and the one handed back for
    /// the response are one buffer, however large the command (an
    /// `InstallProfile` can carry megabytes). Build it with `.into()` from a
    /// `Vec<u8>`; read it as a `&[u8]`.
    pub body: Arc<[u8]>,
    /// The activation that queued it, if it is part of an initial configuration.
    pub activation: Option<ActivationId>,
    /// How many `NotNow`s it has received.
    pub not_now_count: u32,
    /// When it was queued.
    pub queued_at: SystemTime,
    /// When it was first sent to the device (`None`: not yet; it can still
    /// be cancelled).
    #[serde(default)]
    pub delivered_at: Option<SystemTime>,
}

/// How a command finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutcome {
    /// `Acknowledged`.
    Acknowledged,
    /// `Error` with its `ErrorChain`.
    Error(Vec<ErrorInfo>),
    /// `CommandFormatError`.
    CommandFormatError,
    /// The report answering it could not be decoded.
    Undecodable(String),
    /// Too many `NotNow`s.
    RetryBudgetExhausted,
    /// Queued longer than [`QueuePolicy::expiry`]: dropped, never delivered.
    Expired,
}

impl CommandOutcome {
    /// Whether the command succeeded.
    pub fn is_acknowledged(&self) -> bool {
        matches!(self, Self::Acknowledged)
    }
}

/// A finished command as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// `CommandUUID`.
    pub uuid: CommandUuid,
    /// `RequestType`.
    pub request_type: String,
    /// How it finished.
    pub outcome: CommandOutcome,
    /// The raw report body (empty for outcomes without one).
    pub body: Vec<u8>,
    /// When the report arrived.
    pub at: SystemTime,
}

/// Which results a queue keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Retention {
    /// Keep every result.
    KeepAll,
    /// Keep only the newest `n` results.
    KeepLast(usize),
    /// Keep nothing once a command is finished (the event still reports it).
    DeleteOnFinish,
}

impl Retention {
    /// The number of results to keep, `None` for all.
    pub fn keep(self) -> Option<usize> {
        match self {
            Self::KeepAll => None,
            Self::KeepLast(n) => Some(n),
            Self::DeleteOnFinish => Some(0),
        }
    }
}

/// Queue tuning: the `NotNow` retry budget, result retention, the delivery
/// lease and command expiry. Start from [`QueuePolicy::default`] and adjust
/// with the `with_*` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueuePolicy {
    /// `NotNow`s a command may receive before it is finished as
    /// [`CommandOutcome::RetryBudgetExhausted`].
    pub retry_budget: u32,
    /// Result retention.
    pub retention: Retention,
    /// How long a delivery holds a command
    /// ([`QueueStore::claim_delivery`](crate::store::QueueStore::claim_delivery)):
    /// another connection of the device (on another replica) is not handed
    /// it meanwhile; after it, a device that lost the response gets the
    /// command again on its next connection (default 60 s; `Duration::ZERO`
    /// holds nothing: every connection that picks a command is handed it).
    #[serde(default = "default_lease")]
    pub delivery_lease: Duration,
    /// Commands queued longer than this are dropped undelivered, finished
    /// as [`CommandOutcome::Expired`] (default `None`: never). A connection
    /// drops those it meets at the head of its queue, before choosing what
    /// to deliver; one deeper in the backlog goes when it reaches the head.
    #[serde(default)]
    pub expiry: Option<Duration>,
}

fn default_lease() -> Duration {
    Duration::from_secs(60)
}

impl Default for QueuePolicy {
    fn default() -> Self {
        Self {
            retry_budget: 20,
            retention: Retention::KeepLast(1000),
            delivery_lease: default_lease(),
            expiry: None,
        }
    }
}

impl QueuePolicy {
    /// This policy with `budget` `NotNow`s per command.
    pub fn with_retry_budget(mut self, budget: u32) -> Self {
        self.retry_budget = budget;
        self
    }

    /// This policy keeping results per `retention`.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// This policy with deliveries holding a command for `lease`.
    pub fn with_delivery_lease(mut self, lease: Duration) -> Self {
        self.delivery_lease = lease;
        self
    }

    /// This policy dropping commands queued longer than `expiry` (`None`: never).
    pub fn with_expiry(mut self, expiry: Option<Duration>) -> Self {
        self.expiry = expiry;
        self
    }

    /// Whether `command` has expired at `now`.
    pub fn expired(&self, command: &QueuedCommand, now: SystemTime) -> bool {
        self.expiry
            .and_then(|e| command.queued_at.checked_add(e))
            .is_some_and(|deadline| deadline <= now)
    }
}

/// What a report does to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Nothing finished (`Idle`).
    None,
    /// Finish the command with this outcome.
    Finish(CommandUuid, CommandOutcome),
    /// Keep the command queued; skip it on this connection.
    Defer(CommandUuid),
}

/// Decide what a report with `status` for `uuid` does, given the command as
/// queued (`None` if not queued) and the policy.
pub fn dispose(
    status: ReportStatus,
    uuid: &CommandUuid,
    queued: &QueuedCommand,
    error_chain: &[ErrorInfo],
    policy: &QueuePolicy,
) -> Disposition {
    match status {
        ReportStatus::Idle => Disposition::None,
        ReportStatus::Acknowledged => {
            Disposition::Finish(uuid.clone(), CommandOutcome::Acknowledged)
        }
        ReportStatus::Error => {
            Disposition::Finish(uuid.clone(), CommandOutcome::Error(error_chain.to_vec()))
        }
        ReportStatus::CommandFormatError => {
            Disposition::Finish(uuid.clone(), CommandOutcome::CommandFormatError)
        }
        ReportStatus::NotNow => {
            if queued.not_now_count.saturating_add(1) > policy.retry_budget {
                Disposition::Finish(uuid.clone(), CommandOutcome::RetryBudgetExhausted)
            } else {
                Disposition::Defer(uuid.clone())
            }
        }
    }
}

/// The next command to offer: the first queued one not skipped on this
/// connection.
pub fn next_command<'a>(
    pending: &'a [QueuedCommand],
    skip: &[CommandUuid],
) -> Option<&'a QueuedCommand> {
    pending.iter().find(|c| !skip.contains(&c.uuid))
}
