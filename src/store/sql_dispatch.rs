//! One dispatch of a step's [`Write`](super::Write)s for the SQL stores:
//! each backend has the same free functions per write (`insert_activation`,
//! `consume_challenge`, …) over its own transaction type and error type, and
//! [`apply_write!`] maps every `Write` to them, written once.

/// `apply_write!(tx, write, NOT_FOUND)`: apply one `Write` with the calling
/// module's per-write functions on `tx`, giving `Result<Applied, E>`.
/// `NOT_FOUND` is the pattern of the backend's not-found error (a retired
/// identity or a delivered command that is already gone is a value, not a
/// failure).
macro_rules! apply_write {
    ($tx:expr, $write:expr, $not_found:pat) => {{
        Ok(match $write {
            Write::InsertActivation(a) => {
                insert_activation($tx, a)?;
                Applied::Done
            }
            Write::UpdateActivation {
                activation,
                expected,
            } => Applied::Version(update_activation($tx, activation, *expected)?),
            Write::SetDeviceActivation {
                tenant,
                device_id,
                activation,
            } => Applied::Previous(set_device_activation($tx, tenant, device_id, activation)?),
            Write::InsertChallenge(r) => {
                insert_challenge($tx, r)?;
                Applied::Done
            }
            Write::ConsumeChallenge {
                tenant,
                digest,
                now,
            } => Applied::Consumed(consume_challenge($tx, tenant, digest, *now)?),
            Write::ClaimDevice {
                tenant,
                username,
                device_id,
                max,
            } => Applied::Claimed(claim_device($tx, tenant, username, device_id, *max)?),
            Write::ReleaseDevice {
                tenant,
                username,
                device_id,
            } => {
                release_device($tx, tenant, username, device_id)?;
                Applied::Done
            }
            Write::RecordCertificate(c) => {
                record_certificate($tx, c)?;
                Applied::Done
            }
            Write::BindIdentity(b) => {
                bind_identity($tx, b)?;
                Applied::Done
            }
            Write::RetireIdentity {
                fingerprint,
                tenant,
            } => match retire_identity($tx, fingerprint, tenant) {
                Ok(()) => Applied::Retired(true),
                Err($not_found) => Applied::Retired(false),
                Err(e) => return Err(e),
            },
            Write::Enqueue(k, c) => {
                enqueue($tx, k, c)?;
                Applied::Done
            }
            Write::FinishCommand(k, r) => {
                finish_command($tx, k, r)?;
                Applied::Done
            }
            Write::PruneResults(k, keep) => {
                prune_results($tx, k, *keep)?;
                Applied::Done
            }
            Write::DeferCommand(k, u) => Applied::Deferred(defer_command($tx, k, u)?),
            Write::MarkDelivered(k, u, at) => match mark_delivered($tx, k, u, *at) {
                Ok(()) => Applied::Delivered(true),
                Err($not_found) => Applied::Delivered(false),
                Err(e) => return Err(e),
            },
            Write::ClaimDelivery {
                key,
                uuid,
                at,
                lease,
            } => Applied::Claim(claim_delivery($tx, key, uuid, *at, *lease)?),
            Write::ClearQueue(k) => Applied::Cleared(clear_queue($tx, k)?),
            Write::SetConnection(k, c) => {
                set_connection($tx, k, c)?;
                Applied::Done
            }
        })
    }};
}

pub(crate) use apply_write;
