//! `Scheduler`: the one connection budget of a mount (`--max-connections`).
//!
//! Every request that moves file bytes (resolving a download URL, then fetching its body or a
//! part of it) runs while holding a [`Slot`]. There are `max` slots in all:
//!
//! - **Demand before prefetch.** A queued job whose bytes a process is waiting on ("demand")
//!   is always started before any prefetch job, first come first served. Prefetch jobs start
//!   in the order of their *rank* (lower first: the prefetcher ranks by when the reader will
//!   need the bytes, and pulls long single-connection downloads forward).
//! - **Room for demand.** Prefetch may hold at most `max − reserve` slots, so a read that
//!   arrives while prefetch fills the link starts at once instead of waiting for a body to end.
//! - **Urgency can change while queued.** A prefetch job becomes demand when a reader starts
//!   waiting on its bytes: the job's [`Urgency`] is shared with the transfer and read at
//!   dispatch time.
//! - **No slot is held while sleeping.** The retry loop drops its slot before its back-off
//!   sleep (see `fetcher`); a cancelled job drops its slot or its place in the queue.
//!
//! Default 16 slots: on a link of 40 ms round trip and 8 MB/s per connection, 64 MB/s needs 8
//! busy connections, and each request spends a round trip before its first byte, so twice
//! that keeps the link full while requests start and end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Default of `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// How urgent a job is; shared by the job and the transfer it serves.
#[derive(Debug, Default)]
pub struct Urgency {
    demand: AtomicBool,
    rank: AtomicU64,
}

impl Urgency {
    pub fn demand() -> Arc<Urgency> {
        let u = Urgency::default();
        u.demand.store(true, Ordering::Relaxed);
        Arc::new(u)
    }

    pub fn prefetch(rank: u64) -> Arc<Urgency> {
        let u = Urgency::default();
        u.rank.store(rank, Ordering::Relaxed);
        Arc::new(u)
    }

    pub fn set_demand(&self) {
        self.demand.store(true, Ordering::Relaxed);
    }

    pub fn is_demand(&self) -> bool {
        self.demand.load(Ordering::Relaxed)
    }

    fn rank(&self) -> u64 {
        self.rank.load(Ordering::Relaxed)
    }
}

pub struct Scheduler {
    max: usize,
    /// Slots prefetch may not take.
    reserve: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    running: usize,
    running_prefetch: usize,
    queue: Vec<Waiter>,
    seq: u64,
    /// Most slots ever in use at once (tests and status).
    peak: usize,
}

struct Waiter {
    seq: u64,
    urgency: Arc<Urgency>,
    tx: oneshot::Sender<Slot>,
}

/// The right to hold one connection; given back when dropped.
pub struct Slot {
    sched: Arc<Scheduler>,
    prefetch: bool,
    armed: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            self.sched.release(self.prefetch);
        }
    }
}

impl Scheduler {
    pub fn new(max: usize) -> Arc<Scheduler> {
        let max = max.max(1);
        Arc::new(Scheduler {
            max,
            reserve: if max >= 4 { 2 } else { 0 },
            inner: Mutex::new(Inner::default()),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Waits for a slot. Dropping the future gives up the place in the queue.
    pub async fn acquire(self: &Arc<Self>, urgency: Arc<Urgency>) -> Slot {
        let (tx, rx) = oneshot::channel();
        {
            let Ok(mut inner) = self.inner.lock() else {
                return self.unlimited();
            };
            inner.seq += 1;
            let seq = inner.seq;
            inner.queue.push(Waiter { seq, urgency, tx });
            self.dispatch(&mut inner);
        }
        match rx.await {
            Ok(slot) => slot,
            // The scheduler went away (cannot happen while `self` lives).
            Err(_) => self.unlimited(),
        }
    }

    /// A slot outside the budget, for the impossible cases (a poisoned lock).
    fn unlimited(self: &Arc<Self>) -> Slot {
        Slot {
            sched: self.clone(),
            prefetch: false,
            armed: false,
        }
    }

    fn release(self: &Arc<Self>, prefetch: bool) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.running -= 1;
            if prefetch {
                inner.running_prefetch -= 1;
            }
            self.dispatch(&mut inner);
        }
    }

    /// Starts queued jobs while slots are free: demand first, then prefetch by rank.
    fn dispatch(self: &Arc<Self>, inner: &mut Inner) {
        while inner.running < self.max && !inner.queue.is_empty() {
            // Waiters whose job was cancelled are dropped as they are found.
            inner.queue.retain(|w| !w.tx.is_closed());
            let demand = inner
                .queue
                .iter()
                .enumerate()
                .filter(|(_, w)| w.urgency.is_demand())
                .min_by_key(|(_, w)| w.seq)
                .map(|(i, _)| i);
            let pick = demand.or_else(|| {
                if inner.running_prefetch >= self.max - self.reserve {
                    return None;
                }
                inner
                    .queue
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, w)| (w.urgency.rank(), w.seq))
                    .map(|(i, _)| i)
            });
            let Some(i) = pick else { break };
            let w = inner.queue.swap_remove(i);
            let prefetch = !w.urgency.is_demand();
            inner.running += 1;
            if prefetch {
                inner.running_prefetch += 1;
            }
            inner.peak = inner.peak.max(inner.running);
            let slot = Slot {
                sched: self.clone(),
                prefetch,
                armed: true,
            };
            if let Err(mut slot) = w.tx.send(slot) {
                // The job was cancelled between the check and the send: undo by hand (a
                // drop would take the lock we hold).
                slot.armed = false;
                inner.running -= 1;
                if prefetch {
                    inner.running_prefetch -= 1;
                }
            }
        }
    }

    /// Slots in use and jobs queued now.
    pub fn load(&self) -> (usize, usize) {
        self.inner
            .lock()
            .map(|i| (i.running, i.queue.len()))
            .unwrap_or((0, 0))
    }

    /// The most slots in use at once so far.
    pub fn peak(&self) -> usize {
        self.inner.lock().map(|i| i.peak).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn never_more_than_max_and_demand_goes_first() {
        let s = Scheduler::new(4);
        // Fill the budget with demand.
        let held: Vec<Slot> =
            futures_util::future::join_all((0..4).map(|_| s.acquire(Urgency::demand()))).await;
        assert_eq!(s.load(), (4, 0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, urgency) in [
            ("prefetch-late", Urgency::prefetch(5)),
            ("prefetch-soon", Urgency::prefetch(1)),
            ("demand", Urgency::demand()),
        ] {
            let (s, order) = (s.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let slot = s.acquire(urgency).await;
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(slot);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(s.load(), (4, 3));
        // One slot frees at a time: demand, then prefetch by rank.
        for slot in held {
            drop(slot);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            vec!["demand", "prefetch-soon", "prefetch-late"]
        );
        assert_eq!(s.load(), (0, 0));
        assert_eq!(s.peak(), 4);
    }

    #[tokio::test]
    async fn prefetch_leaves_room_for_demand() {
        let s = Scheduler::new(4);
        let mut prefetch = Vec::new();
        for r in 0..4 {
            let s = s.clone();
            prefetch.push(tokio::spawn(async move {
                let _slot = s.acquire(Urgency::prefetch(r)).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Only max − reserve prefetch jobs run.
        assert_eq!(s.load(), (2, 2));
        // A demand job starts at once.
        let d = tokio::time::timeout(Duration::from_millis(50), s.acquire(Urgency::demand())).await;
        assert!(d.is_ok(), "demand waited behind prefetch");
        drop(d);
        for p in prefetch {
            p.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_queued_job_can_become_demand_and_cancelled_ones_free_their_place() {
        let s = Scheduler::new(1);
        let held = s.acquire(Urgency::demand()).await;
        let u = Urgency::prefetch(9);
        let (s2, u2) = (s.clone(), u.clone());
        let promoted = tokio::spawn(async move { s2.acquire(u2).await });
        let s3 = s.clone();
        let other = tokio::spawn(async move { s3.acquire(Urgency::prefetch(0)).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        u.set_demand();
        // A job that gave up its place (cancelled) is skipped.
        let s4 = s.clone();
        let gone = tokio::spawn(async move { s4.acquire(Urgency::demand()).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        gone.abort();
        let _ = gone.await;
        drop(held);
        let slot = tokio::time::timeout(Duration::from_secs(1), promoted)
            .await
            .expect("the promoted job runs first")
            .unwrap();
        assert!(!other.is_finished());
        drop(slot);
        let _ = tokio::time::timeout(Duration::from_secs(1), other)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(s.load(), (0, 0));
    }
}
