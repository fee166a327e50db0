//! When to push again: exponential backoff values, pure.
//!
//! [`Backoff`] is shared by the APNs retry of one push (429/5xx) and by the
//! [`RepushPolicy`] for channels that answered `NotNow` or never answered a push.

use std::time::{Duration, SystemTime};

/// Exponential backoff: `initial`, multiplied by `factor` per attempt, never
/// more than `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// The delay after the first attempt.
    pub initial: Duration,
    /// The multiplier per further attempt (1 keeps the delay constant).
    pub factor: u32,
    /// The longest delay.
    pub cap: Duration,
}

impl Backoff {
    /// A backoff of `initial` × `factor`^n, capped at `cap`.
    pub fn new(initial: Duration, factor: u32, cap: Duration) -> Self {
        Self {
            initial,
            factor,
            cap,
        }
    }

    /// The delay after attempt number `attempt` (1 = the first attempt):
    /// `initial` × `factor`^(attempt − 1), at most `cap`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let mut d = self.initial;
        for _ in 1..attempt {
            if d >= self.cap {
                break;
            }
            d = d.checked_mul(self.factor).unwrap_or(self.cap);
        }
        d.min(self.cap)
    }
}

impl Default for Backoff {
    /// 1 s, doubling, at most 60 s: for retrying one APNs request.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), 2, Duration::from_secs(60))
    }
}

/// When to push a channel again that answered `NotNow`, or that was pushed
/// and never connected: backoff between pushes and a cap on their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepushPolicy {
    /// The wait after each unanswered push.
    pub backoff: Backoff,
    /// The most pushes for one pending command or wake-up; after that the
    /// channel waits for the device's own next check-in.
    pub max_attempts: u32,
}

impl RepushPolicy {
    /// A policy of `backoff` and at most `max_attempts` pushes.
    pub fn new(backoff: Backoff, max_attempts: u32) -> Self {
        Self {
            backoff,
            max_attempts,
        }
    }

    /// When to push next, given the last push at `last_push` and the number of
    /// pushes sent so far (`attempts` ≥ 1); `None` once `attempts` reached the cap.
    pub fn next_push_at(&self, last_push: SystemTime, attempts: u32) -> Option<SystemTime> {
        if attempts >= self.max_attempts {
            return None;
        }
        last_push.checked_add(self.backoff.delay(attempts.max(1)))
    }
}

impl Default for RepushPolicy {
    /// 5 minutes, doubling, at most 4 hours; at most 8 pushes (about 14 hours).
    fn default() -> Self {
        Self::new(
            Backoff::new(Duration::from_secs(300), 2, Duration::from_secs(4 * 3600)),
            8,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn backoff_grows_then_caps() {
        let b = Backoff::new(Duration::from_secs(1), 3, Duration::from_secs(20));
        let d: Vec<u64> = (1..=5).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(d, vec![1, 3, 9, 20, 20]);
        assert_eq!(b.delay(0), Duration::from_secs(1));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(20));
        let huge = Backoff::new(Duration::MAX, 2, Duration::MAX);
        assert_eq!(huge.delay(3), Duration::MAX);
    }

    #[test]
    fn repush_stops_at_the_cap() {
        let p = RepushPolicy::new(
            Backoff::new(Duration::from_secs(60), 2, Duration::from_secs(600)),
            3,
        );
        let t = UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(p.next_push_at(t, 1), Some(t + Duration::from_secs(60)));
        assert_eq!(p.next_push_at(t, 2), Some(t + Duration::from_secs(120)));
        assert_eq!(p.next_push_at(t, 3), None);
        assert_eq!(p.next_push_at(t, 0), Some(t + Duration::from_secs(60)));
    }
}
