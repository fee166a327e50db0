//! Permits for unauthenticated RSA work (`/scep`, `/enroll`).
//!
//! Two limits: a **sustained** one (`--rsa-permits`, default one fewer than
//! the cores) that holds whenever requests queue, so a flood always leaves a
//! core for check-ins and `/healthz`; and one **burst** permit, used only
//! while nobody waits for a permit and the server has at most twice as many
//! open connections as cores, so a few clients at once (two SCEP clients on
//! two cores) use every core. With that few connections at most that many
//! requests can be ahead of any other request, so nothing waits behind more
//! than a couple of RSA handlers per worker; a flood (hundreds of
//! connections) never gets the burst permit.
//!
//! A request that found a permit free on arrival may run its handler
//! directly on the runtime worker that read it ([`RsaPermit::on_worker`]),
//! when the sustained limit is below the cores: that is the case of a few
//! honest clients, and skipping the hand-off to another thread is worth
//! ~30 % of SCEP throughput with two clients on two cores. A request that had
//! to queue is part of a flood: its handler runs under `block_in_place`, so
//! the runtime's workers keep serving check-ins and `/healthz` while RSA work
//! runs on other threads (`tests/server_flood.rs`). The price: in a burst
//! every worker may be in an RSA handler for its duration (about a
//! millisecond with aws-lc; longer if the store waits out another process's
//! write lock, up to its busy timeout), and other requests wait that long.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The RSA permits of one server.
#[derive(Debug)]
pub struct RsaPermits {
    cores: usize,
    connections: Arc<AtomicUsize>,
    on_worker: bool,
    sustained: Arc<Semaphore>,
    burst: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

/// One request's right to do RSA work; dropping it returns it.
#[derive(Debug)]
#[must_use = "the permit is returned when dropped"]
pub struct RsaPermit {
    _permit: OwnedSemaphorePermit,
    /// Whether this is the burst permit.
    pub burst: bool,
    /// Whether the handler may run on the runtime worker: the permit was
    /// free on arrival and the sustained limit is below the cores. Else it
    /// runs under `block_in_place`.
    pub on_worker: bool,
}

/// The server's open connections, as [`RsaPermits`] sees them.
#[derive(Clone, Debug)]
pub struct Connections(Arc<AtomicUsize>);

impl Connections {
    /// Count one connection until the returned value is dropped.
    pub fn open(&self) -> Counted {
        Counted::new(&self.0)
    }
}

/// Counts a connection (or a waiter) while it lasts, also when its future is
/// dropped.
#[derive(Debug)]
pub struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl RsaPermit {
    fn new(permit: OwnedSemaphorePermit, burst: bool, on_worker: bool) -> Self {
        Self {
            _permit: permit,
            burst,
            on_worker,
        }
    }
}

impl RsaPermits {
    /// `sustained` permits (at least 1), plus the burst permit when
    /// `sustained` is below `cores`.
    pub fn new(sustained: usize, cores: usize) -> Self {
        let sustained = sustained.max(1);
        Self {
            cores,
            connections: Arc::new(AtomicUsize::new(0)),
            on_worker: sustained < cores,
            sustained: Arc::new(Semaphore::new(sustained)),
            burst: Arc::new(Semaphore::new(usize::from(sustained < cores))),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The open-connection count the burst permit looks at: the server
    /// counts each accepted connection with [`Connections::open`].
    pub fn connections(&self) -> Connections {
        Connections(self.connections.clone())
    }

    /// A sustained permit if one is free; else the burst permit if it is
    /// free, nobody waits and at most twice `cores` connections are open; else
    /// wait up to `wait` for a sustained permit. `None` when the wait ran
    /// out (answer 503).
    pub async fn acquire(&self, wait: Duration) -> Option<RsaPermit> {
        if let Ok(p) = self.sustained.clone().try_acquire_owned() {
            return Some(RsaPermit::new(p, false, self.on_worker));
        }
        if self.waiting.load(Ordering::SeqCst) == 0
            && self.connections.load(Ordering::SeqCst) <= 2 * self.cores
            && let Ok(p) = self.burst.clone().try_acquire_owned()
        {
            return Some(RsaPermit::new(p, true, self.on_worker));
        }
        let _waiting = Counted::new(&self.waiting);
        match tokio::time::timeout(wait, self.sustained.clone().acquire_owned()).await {
            Ok(Ok(p)) => Some(RsaPermit::new(p, false, false)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn two_clients_on_two_cores_use_both() {
        let p = RsaPermits::new(1, 2);
        let a = p.acquire(WAIT).await.expect("sustained");
        let b = p.acquire(WAIT).await.expect("burst");
        assert!(!a.burst);
        assert!(b.burst);
        // A worker stays free once anyone queues: both may run on theirs.
        assert!(a.on_worker && b.on_worker);
        // A third waits, and gets nothing while both are held.
        assert!(p.acquire(WAIT).await.is_none());
        drop(a);
        assert!(!p.acquire(WAIT).await.expect("sustained again").burst);
    }

    #[tokio::test]
    async fn a_queue_never_gets_the_burst_permit() {
        let p = Arc::new(RsaPermits::new(1, 2));
        let held = p.acquire(WAIT).await.expect("sustained");
        let burst = p.acquire(WAIT).await.expect("burst");
        // Someone queues for the sustained permit...
        let queued = tokio::spawn({
            let p = p.clone();
            async move {
                p.acquire(Duration::from_secs(5))
                    .await
                    .map(|x| (x.burst, x.on_worker))
            }
        });
        while p.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // ...so the burst permit, once returned, is not used by newcomers
        // while the queue is there: they wait too (and time out here).
        drop(burst);
        assert!(p.acquire(WAIT).await.is_none());
        drop(held);
        // The queued request gets the sustained permit, and (a flood) leaves
        // the worker to block_in_place.
        assert_eq!(queued.await.expect("task"), Some((false, false)));
        // Queue gone: the burst permit is usable again.
        let a = p.acquire(WAIT).await.expect("sustained");
        assert!(p.acquire(WAIT).await.expect("burst").burst);
        drop(a);
    }

    #[tokio::test]
    async fn many_connections_get_no_burst_permit() {
        let p = RsaPermits::new(1, 2);
        let connections = p.connections();
        let crowd: Vec<_> = (0..5).map(|_| connections.open()).collect();
        let _a = p.acquire(WAIT).await.expect("sustained");
        // Five connections on two cores: maybe a flood, no burst.
        assert!(p.acquire(WAIT).await.is_none());
        drop(crowd);
        let _four: Vec<_> = (0..4).map(|_| connections.open()).collect();
        assert!(p.acquire(WAIT).await.expect("burst").burst);
    }

    #[tokio::test]
    async fn no_burst_when_the_sustained_limit_covers_the_cores() {
        let p = RsaPermits::new(2, 2);
        let a = p.acquire(WAIT).await.expect("first");
        let _b = p.acquire(WAIT).await.expect("second");
        assert!(p.acquire(WAIT).await.is_none());
        // Every worker could be in a handler: they leave it to block_in_place.
        assert!(!a.on_worker);
        let one_core = RsaPermits::new(1, 1);
        let c = one_core.acquire(WAIT).await.expect("first");
        assert!(!c.burst && !c.on_worker);
        assert!(one_core.acquire(WAIT).await.is_none());
    }

    #[tokio::test]
    async fn a_dropped_waiter_stops_counting() {
        let p = RsaPermits::new(1, 2);
        let _a = p.acquire(WAIT).await.expect("sustained");
        let _b = p.acquire(WAIT).await.expect("burst");
        let waiter = p.acquire(Duration::from_secs(5));
        // Polled once (it registers as waiting), then dropped.
        let _ = tokio::time::timeout(Duration::from_millis(1), waiter).await;
        assert_eq!(p.waiting.load(Ordering::SeqCst), 0);
    }
}
