//! The in-memory command queues: one [`Queue`] per channel, the queue
//! writes, and how a step takes each of them back.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use super::{Queues, Undo};
use crate::activation::{CommandResult, CommandUuid, Connection, QueueKey, QueuedCommand};
use crate::store::{Claim, StoreError, lease_start};

/// One channel's queue.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) connection: Connection,
    pub(super) pending: Vec<QueuedCommand>,
    pub(super) results: Vec<CommandResult>,
    pub(super) seen: HashSet<CommandUuid>,
    /// Delivery claims: when each held command was last claimed.
    pub(super) claims: HashMap<CommandUuid, SystemTime>,
}

/// How to take back one queue write of a step. Each names only what its
/// write changed (moved out of the queue, not copied), so a step's undo costs
/// what the step wrote, not the size of the queue it wrote to. The undo runs
/// newest first, so each inverse meets the queue exactly as its write left it.
/// A write that created the queue logs [`Undo::QueueCreated`] instead,
/// which removes the queue with everything later writes put in it.
pub(super) enum QueueUndo {
    /// `enqueue` appended this command: take it off and forget its uuid.
    Enqueued(CommandUuid),
    /// `finish` took `command` from `pos` (and its claim) and appended a result.
    Finished {
        pos: usize,
        command: QueuedCommand,
        claim: Option<SystemTime>,
    },
    /// `prune` took these results from the front; `true` where it also
    /// forgot the uuid.
    Pruned(Vec<(CommandResult, bool)>),
    /// `defer` raised the count from `count` and dropped the claim.
    Deferred {
        uuid: CommandUuid,
        count: u32,
        claim: Option<SystemTime>,
    },
    /// `mark` set the delivery time, which was unset.
    Delivered(CommandUuid),
    /// `claim_delivery` replaced the claim `previous`, and set the delivery
    /// time if `delivered` (it was unset).
    Claimed {
        uuid: CommandUuid,
        delivered: bool,
        previous: Option<SystemTime>,
    },
    /// `clear` took the connection, the claims and the pending commands.
    Cleared {
        connection: Connection,
        claims: HashMap<CommandUuid, SystemTime>,
        pending: Vec<QueuedCommand>,
    },
    /// `set_connection` replaced this connection.
    Connection(Connection),
}

/// Where a queue write puts its inverse: a step's undo log, or nowhere (a
/// single write outside a step, which cannot be taken back).
pub(super) struct QueueLog<'a>(pub(super) Option<&'a mut Vec<Undo>>);

impl QueueLog<'_> {
    fn note(&mut self, key: &QueueKey, undo: QueueUndo) {
        if let Some(log) = &mut self.0 {
            log.push(Undo::Queue(key.clone(), undo));
        }
    }
}

/// The queue `key`, and whether this call created it (the creation logged).
fn queue_or_create<'a>(
    queues: &'a mut Queues,
    key: &QueueKey,
    log: &mut QueueLog<'_>,
) -> (&'a mut Queue, bool) {
    let created = !queues.contains_key(key);
    if created && let Some(undo) = &mut log.0 {
        undo.push(Undo::QueueCreated(key.clone()));
    }
    (queues.entry(key.clone()).or_default(), created)
}

pub(super) fn enqueue(
    queues: &mut Queues,
    key: &QueueKey,
    command: &QueuedCommand,
    log: &mut QueueLog<'_>,
) -> Result<(), StoreError> {
    // A queue that exists already is the only one that can hold the uuid,
    // so a refused enqueue creates nothing.
    if queues
        .get(key)
        .is_some_and(|q| q.seen.contains(&command.uuid))
    {
        return Err(StoreError::AlreadyExists);
    }
    let (q, _) = queue_or_create(queues, key, log);
    q.seen.insert(command.uuid.clone());
    q.pending.push(command.clone());
    log.note(key, QueueUndo::Enqueued(command.uuid.clone()));
    Ok(())
}

fn queued<'a>(
    queues: &'a mut Queues,
    key: &QueueKey,
    uuid: &CommandUuid,
) -> Result<
    (
        &'a mut QueuedCommand,
        &'a mut HashMap<CommandUuid, SystemTime>,
    ),
    StoreError,
> {
    let q = queues.get_mut(key).ok_or(StoreError::NotFound)?;
    let cmd = q
        .pending
        .iter_mut()
        .find(|c| c.uuid == *uuid)
        .ok_or(StoreError::NotFound)?;
    Ok((cmd, &mut q.claims))
}

pub(super) fn defer(
    queues: &mut Queues,
    key: &QueueKey,
    uuid: &CommandUuid,
    log: &mut QueueLog<'_>,
) -> Result<u32, StoreError> {
    let (cmd, claims) = queued(queues, key, uuid)?;
    let before = cmd.not_now_count;
    cmd.not_now_count = before.saturating_add(1);
    let count = cmd.not_now_count;
    let claim = claims.remove(uuid);
    log.note(
        key,
        QueueUndo::Deferred {
            uuid: uuid.clone(),
            count: before,
            claim,
        },
    );
    Ok(count)
}

pub(super) fn claim_delivery(
    queues: &mut Queues,
    key: &QueueKey,
    uuid: &CommandUuid,
    at: SystemTime,
    lease: Duration,
    log: &mut QueueLog<'_>,
) -> Claim {
    let Ok((cmd, claims)) = queued(queues, key, uuid) else {
        return Claim::Gone;
    };
    if claims
        .get(uuid)
        .is_some_and(|claimed| *claimed > lease_start(at, lease))
    {
        return Claim::Held;
    }
    let delivered = cmd.delivered_at.is_none();
    cmd.delivered_at.get_or_insert(at);
    let previous = claims.insert(uuid.clone(), at);
    log.note(
        key,
        QueueUndo::Claimed {
            uuid: uuid.clone(),
            delivered,
            previous,
        },
    );
    Claim::Claimed
}

pub(super) fn finish(
    queues: &mut Queues,
    key: &QueueKey,
    result: &CommandResult,
    log: &mut QueueLog<'_>,
) -> Result<(), StoreError> {
    let q = queues.get_mut(key).ok_or(StoreError::NotFound)?;
    let pos = q
        .pending
        .iter()
        .position(|c| c.uuid == result.uuid)
        .ok_or(StoreError::NotFound)?;
    let command = q.pending.remove(pos);
    let claim = q.claims.remove(&result.uuid);
    q.results.push(result.clone());
    log.note(
        key,
        QueueUndo::Finished {
            pos,
            command,
            claim,
        },
    );
    Ok(())
}

pub(super) fn mark(
    queues: &mut Queues,
    key: &QueueKey,
    uuid: &CommandUuid,
    at: SystemTime,
    log: &mut QueueLog<'_>,
) -> Result<(), StoreError> {
    let (cmd, _) = queued(queues, key, uuid)?;
    if cmd.delivered_at.is_none() {
        cmd.delivered_at = Some(at);
        log.note(key, QueueUndo::Delivered(uuid.clone()));
    }
    Ok(())
}

pub(super) fn clear(
    queues: &mut Queues,
    key: &QueueKey,
    log: &mut QueueLog<'_>,
) -> Vec<CommandUuid> {
    let Some(q) = queues.get_mut(key) else {
        return Vec::new();
    };
    let pending = std::mem::take(&mut q.pending);
    let uuids = pending.iter().map(|c| c.uuid.clone()).collect();
    log.note(
        key,
        QueueUndo::Cleared {
            connection: std::mem::take(&mut q.connection),
            claims: std::mem::take(&mut q.claims),
            pending,
        },
    );
    uuids
}

pub(super) fn set_connection(
    queues: &mut Queues,
    key: &QueueKey,
    connection: &Connection,
    log: &mut QueueLog<'_>,
) {
    let (q, created) = queue_or_create(queues, key, log);
    let previous = std::mem::replace(&mut q.connection, connection.clone());
    // A new queue goes away whole on undo; an existing one gets its old
    // connection back.
    if !created {
        log.note(key, QueueUndo::Connection(previous));
    }
}

pub(super) fn prune(queues: &mut Queues, key: &QueueKey, keep: usize, log: &mut QueueLog<'_>) {
    let Some(q) = queues.get_mut(key) else {
        return;
    };
    let excess = q.results.len().saturating_sub(keep);
    if excess == 0 {
        return;
    }
    // A pruned result leaves nothing behind, its uuid included.
    let pruned: Vec<_> = q
        .results
        .drain(..excess)
        .map(|r| {
            let forgot = q.seen.remove(&r.uuid);
            (r, forgot)
        })
        .collect();
    log.note(key, QueueUndo::Pruned(pruned));
}

/// Take back one queue write (see [`QueueUndo`]).
pub(super) fn revert(queues: &mut Queues, key: &QueueKey, undo: QueueUndo) {
    let Some(q) = queues.get_mut(key) else {
        return;
    };
    match undo {
        QueueUndo::Enqueued(uuid) => {
            if let Some(pos) = q.pending.iter().rposition(|c| c.uuid == uuid) {
                q.pending.remove(pos);
            }
            q.seen.remove(&uuid);
        }
        QueueUndo::Finished {
            pos,
            command,
            claim,
        } => {
            q.results.pop();
            if let Some(at) = claim {
                q.claims.insert(command.uuid.clone(), at);
            }
            q.pending.insert(pos.min(q.pending.len()), command);
        }
        QueueUndo::Pruned(pruned) => {
            for (r, forgot) in &pruned {
                if *forgot {
                    q.seen.insert(r.uuid.clone());
                }
            }
            q.results.splice(0..0, pruned.into_iter().map(|(r, _)| r));
        }
        QueueUndo::Deferred { uuid, count, claim } => {
            if let Some(cmd) = q.pending.iter_mut().find(|c| c.uuid == uuid) {
                cmd.not_now_count = count;
            }
            if let Some(at) = claim {
                q.claims.insert(uuid, at);
            }
        }
        QueueUndo::Delivered(uuid) => {
            if let Some(cmd) = q.pending.iter_mut().find(|c| c.uuid == uuid) {
                cmd.delivered_at = None;
            }
        }
        QueueUndo::Claimed {
            uuid,
            delivered,
            previous,
        } => {
            if delivered && let Some(cmd) = q.pending.iter_mut().find(|c| c.uuid == uuid) {
                cmd.delivered_at = None;
            }
            match previous {
                Some(at) => q.claims.insert(uuid, at),
                None => q.claims.remove(&uuid),
            };
        }
        QueueUndo::Cleared {
            connection,
            claims,
            pending,
        } => {
            q.connection = connection;
            q.claims = claims;
            q.pending = pending;
        }
        QueueUndo::Connection(connection) => q.connection = connection,
    }
}
