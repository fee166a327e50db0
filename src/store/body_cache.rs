//! Large queued command bodies a SQL store has read, kept so the next read
//! of the same command shares the buffer instead of copying it out of the
//! database again.
//!
//! A command is read on every connection that finds it at the head of its
//! queue: the one that delivers it and the one that reports its outcome, at
//! least. A body over [`INLINE_BODY_MAX`](super::records::INLINE_BODY_MAX)
//! lives in a row of its own, written once and never changed, keyed by its
//! command row's sequence number, which the database never hands out twice
//! (SQLite `AUTOINCREMENT`, a PostgreSQL sequence). So a body read once under
//! that number is the body of that number for as long as the database
//! lives, whichever process reads it, and the cache needs no invalidation:
//! a command finished, cancelled or cleared is simply never asked for again,
//! and its body ages out.
//!
//! Bounded by bytes (first in, first out): a body larger than the capacity
//! is never kept, and a capacity of 0 turns the cache off.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Bytes of bodies a store keeps by default: a few large profiles, so that
/// a device's delivery and its acknowledgement read the body once.
pub(crate) const DEFAULT_BODY_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Command bodies by their row's sequence number (see the module docs).
#[derive(Debug)]
pub(crate) struct BodyCache {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    bytes: usize,
    bodies: HashMap<i64, Arc<[u8]>>,
    /// Insertion order; the oldest goes first when room is needed.
    order: VecDeque<i64>,
}

impl Inner {
    /// Drop the oldest bodies until at most `bytes` are kept.
    fn shrink_to(&mut self, bytes: usize) {
        while self.bytes > bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.bodies.remove(&oldest) {
                self.bytes -= gone.len();
            }
        }
    }
}

impl BodyCache {
    /// An empty cache holding at most `capacity` bytes of bodies.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                capacity,
                bytes: 0,
                bodies: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    /// The cache's state. A poisoned lock is taken as it is: no operation
    /// here can stop between changing the map and its byte count.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The body kept for `seq`, shared.
    pub(crate) fn get(&self, seq: i64) -> Option<Arc<[u8]>> {
        self.lock().bodies.get(&seq).cloned()
    }

    /// Keep `body` as the body of `seq`, making room by dropping the oldest
    /// bodies; a body larger than the capacity is not kept.
    pub(crate) fn insert(&self, seq: i64, body: &Arc<[u8]>) {
        let mut inner = self.lock();
        if body.len() > inner.capacity || inner.bodies.contains_key(&seq) {
            return;
        }
        let room = inner.capacity.saturating_sub(body.len());
        inner.shrink_to(room);
        inner.bytes += body.len();
        inner.bodies.insert(seq, Arc::clone(body));
        inner.order.push_back(seq);
    }

    /// Change the capacity, dropping the oldest bodies past it.
    pub(crate) fn set_capacity(&self, capacity: usize) {
        let mut inner = self.lock();
        inner.capacity = capacity;
        inner.shrink_to(capacity);
    }

    /// Bytes of bodies kept now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize, fill: u8) -> Arc<[u8]> {
        vec![fill; n].into()
    }

    #[test]
    fn keeps_bodies_shared_and_drops_the_oldest_past_its_capacity() {
        let cache = BodyCache::new(10);
        let a = body(4, 1);
        cache.insert(1, &a);
        cache.insert(2, &body(4, 2));
        let got = cache.get(1).unwrap();
        assert!(Arc::ptr_eq(&got, &a), "a kept body is shared, not copied");
        // 4 + 4 + 4 > 10: the oldest (1) goes.
        cache.insert(3, &body(4, 3));
        assert!(cache.get(1).is_none());
        assert_eq!(cache.get(2).unwrap()[0], 2);
        assert_eq!(cache.get(3).unwrap()[0], 3);
        assert_eq!(cache.bytes(), 8);
    }

    #[test]
    fn a_body_over_the_capacity_is_not_kept_and_evicts_nothing() {
        let cache = BodyCache::new(10);
        cache.insert(1, &body(6, 1));
        cache.insert(2, &body(11, 2));
        assert!(cache.get(2).is_none());
        assert!(cache.get(1).is_some());
        assert_eq!(cache.bytes(), 6);
    }

    #[test]
    fn a_number_kept_once_keeps_its_first_body() {
        let cache = BodyCache::new(10);
        cache.insert(1, &body(2, 1));
        cache.insert(1, &body(3, 9));
        assert_eq!(&cache.get(1).unwrap()[..], &[1, 1]);
        assert_eq!(cache.bytes(), 2);
    }

    #[test]
    fn capacity_zero_keeps_nothing_and_shrinking_drops_the_oldest() {
        let off = BodyCache::new(0);
        off.insert(1, &body(1, 1));
        assert!(off.get(1).is_none());
        let cache = BodyCache::new(10);
        cache.insert(1, &body(4, 1));
        cache.insert(2, &body(4, 2));
        cache.set_capacity(5);
        assert!(cache.get(1).is_none());
        assert!(cache.get(2).is_some());
        assert_eq!(cache.bytes(), 4);
    }
}
