//! Shared encoding of the SQL stores: records as versioned binary plists
//! ([`super::records`]), queue keys as one unambiguous byte string, times as
//! Unix milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::StoreError;
pub(crate) use super::records::{decode, encode};
use crate::activation::QueueKey;

/// A stored value that does not decode (or a value that does not encode):
/// retrying will not help.
pub(crate) fn corrupt(e: impl Into<super::BoxError>) -> StoreError {
    StoreError::permanent(e)
}

/// A queue key as one unambiguous byte string (length-prefixed fields).
pub(crate) fn queue_key(key: &QueueKey) -> Vec<u8> {
    let mut out = Vec::new();
    let mut field = |s: &str| {
        out.extend_from_slice(&(s.len() as u64).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    field(key.tenant.as_str());
    field(&key.channel.device_id);
    match &key.channel.user_id {
        None => out.push(0),
        Some(user) => {
            out.push(1);
            out.extend_from_slice(&(user.len() as u64).to_be_bytes());
            out.extend_from_slice(user.as_bytes());
        }
    }
    out
}

pub(crate) fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn from_unix_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
