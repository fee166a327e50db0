//! Login throttling per (username, client address): after
//! [`Throttle::MAX_FAILURES`] failures within [`Throttle::WINDOW`], further
//! attempts for that pair are refused until the window of the first failure
//! passes. Another address is not affected (no lock-out of a user from
//! everywhere), and a success from one address clears only that pair.
//! Memory is bounded: expired entries are evicted, and at
//! [`Throttle::MAX_ENTRIES`] the oldest entry makes room.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Failures of one (username, address) pair in the current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: SystemTime,
    failures: u32,
}

/// The login throttle; time is passed in.
#[derive(Debug, Default)]
pub struct Throttle {
    entries: Mutex<HashMap<(String, IpAddr), Window>>,
}

impl Throttle {
    /// Failures allowed per pair and window.
    pub const MAX_FAILURES: u32 = 10;
    /// The window, counted from a pair's first failure.
    pub const WINDOW: Duration = Duration::from_secs(600);
    /// Pairs remembered at most.
    pub const MAX_ENTRIES: usize = 100_000;

    fn key(username: &str, addr: IpAddr) -> (String, IpAddr) {
        (username.trim().to_lowercase(), addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, IpAddr), Window>> {
        // A panic elsewhere cannot leave the map inconsistent (each update is
        // one insert or remove), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remaining(w: &Window, now: SystemTime) -> Option<Duration> {
        let elapsed = now.duration_since(w.started).unwrap_or_default();
        Self::WINDOW.checked_sub(elapsed).filter(|d| !d.is_zero())
    }

    /// `Some(wait)` when `username` from `addr` is throttled at `now`: the
    /// time until its window passes.
    pub fn check(&self, username: &str, addr: IpAddr, now: SystemTime) -> Option<Duration> {
        let entries = self.lock();
        let w = entries.get(&Self::key(username, addr))?;
        if w.failures < Self::MAX_FAILURES {
            return None;
        }
        Self::remaining(w, now)
    }

    /// Record a failed login.
    pub fn failed(&self, username: &str, addr: IpAddr, now: SystemTime) {
        let mut entries = self.lock();
        let key = Self::key(username, addr);
        if !entries.contains_key(&key) {
            make_room(
                &mut entries,
                Self::MAX_ENTRIES,
                |w| Self::remaining(w, now).is_some(),
                |w| w.started,
            );
        }
        let w = entries.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        if Self::remaining(w, now).is_none() {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }

    /// Record a successful login: clears this pair only.
    pub fn succeeded(&self, username: &str, addr: IpAddr) {
        self.lock().remove(&Self::key(username, addr));
    }

    /// Pairs currently remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Before an insert into a map holding at most `cap` entries: when full,
/// evict the entries no longer `live`, then, if still full, the one with the
/// oldest `stamp`.
pub fn make_room<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    cap: usize,
    live: impl Fn(&V) -> bool,
    stamp: impl Fn(&V) -> SystemTime,
) {
    if map.len() < cap {
        return;
    }
    map.retain(|_, v| live(v));
    if map.len() >= cap
        && let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| stamp(v))
            .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn ten_failures_throttle_the_pair_until_the_window_passes() {
        let t = Throttle::default();
        for i in 0..10 {
            assert_eq!(t.check("ann", A, at(i)), None, "attempt {i}");
            t.failed("ann", A, at(i));
        }
        assert_eq!(t.check("ann", A, at(10)), Some(Duration::from_secs(590)));
        assert_eq!(t.check("ANN", A, at(599)), Some(Duration::from_secs(1)));
        // Another address, another user: not throttled.
        assert_eq!(t.check("ann", B, at(10)), None);
        assert_eq!(t.check("bob", A, at(10)), None);
        // The window passed: allowed again, and a new failure starts afresh.
        assert_eq!(t.check("ann", A, at(600)), None);
        t.failed("ann", A, at(600));
        assert_eq!(t.check("ann", A, at(601)), None);
    }

    #[test]
    fn a_success_clears_only_its_own_address() {
        let t = Throttle::default();
        for i in 0..10 {
            t.failed("ann", A, at(i));
            t.failed("ann", B, at(i));
        }
        t.succeeded("ann", B);
        assert_eq!(t.check("ann", B, at(11)), None);
        assert!(t.check("ann", A, at(11)).is_some());
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::default();
        for i in 0..(Throttle::MAX_ENTRIES + 10) {
            t.failed(&format!("user{i}"), A, at(0));
        }
        assert_eq!(t.len(), Throttle::MAX_ENTRIES);
        // Once expired, old entries are evicted to make room.
        t.failed("late", A, at(700));
        assert_eq!(t.len(), 1);
    }
}
