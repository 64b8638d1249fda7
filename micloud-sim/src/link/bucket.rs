//! A token bucket that answers "how long must this writer wait", for the shaped link.
//!
//! Reservation model: a writer sends `n` bytes, then charges them; the bucket may go into debt,
//! and the answer is the time the debt takes to pay back at `rate` bytes per second. The writer
//! sleeps that long before its next write. Several writers sharing one bucket (the total cap)
//! therefore get exactly `rate` together, and each one's wait grows with the queue in front of
//! it. The bucket holds at most `burst` bytes of credit (one write chunk), so an idle link does
//! not bank a burst that would make short measurements meaningless.
//!
//! No crate: `governor` (GCRA) refuses requests larger than its burst and polls on its own
//! clock; this one is a few lines of arithmetic on tokio's clock, so it also runs under paused
//! time in tests.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct Bucket {
    /// Bytes per second (> 0).
    rate: f64,
    /// Most credit the bucket holds, in bytes.
    burst: f64,
    state: Mutex<State>,
}

struct State {
    /// Credit in bytes; negative = debt.
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket of `burst` bytes refilling at `rate` bytes per second (`rate` ≥ 1).
    pub fn new(rate: u64, burst: u64) -> Self {
        Bucket {
            rate: rate.max(1) as f64,
            burst: burst as f64,
            state: Mutex::new(State {
                tokens: burst as f64,
                at: Instant::now(),
            }),
        }
    }

    /// Charge `n` bytes sent at `now`; returns how long the sender must wait before sending more.
    pub fn charge_at(&self, n: usize, now: Instant) -> Duration {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let elapsed = now.saturating_duration_since(s.at).as_secs_f64();
        s.tokens = (s.tokens + elapsed * self.rate).min(self.burst);
        s.at = now;
        s.tokens -= n as f64;
        if s.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.tokens / self.rate)
        }
    }

    pub fn charge(&self, n: usize) -> Duration {
        self.charge_at(n, Instant::now())
    }
}

/// The write size for a link capped at `rate` bytes per second: a fiftieth of a second's worth,
/// between 1 KiB and 64 KiB, so that pacing is smooth at low rates and cheap at high ones.
pub fn chunk_for(rate: u64) -> usize {
    (rate / 50).clamp(1024, 64 * 1024) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_bucket_lets_the_burst_through() {
        let t0 = Instant::now();
        let b = Bucket::new(1000, 100);
        assert_eq!(b.charge_at(100, t0), Duration::ZERO);
    }

    #[test]
    fn debt_is_paid_back_at_the_rate() {
        let t0 = Instant::now();
        let b = Bucket::new(1000, 100);
        // 100 credit, 600 charged: 500 bytes of debt = 0.5 s at 1000 B/s.
        assert_eq!(b.charge_at(600, t0), Duration::from_millis(500));
        // After waiting exactly that long, the next 1000 bytes cost one second.
        let wait = b.charge_at(1000, t0 + Duration::from_millis(500));
        assert_eq!(wait, Duration::from_secs(1));
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let t0 = Instant::now();
        let b = Bucket::new(1000, 100);
        assert_eq!(b.charge_at(100, t0), Duration::ZERO);
        // An hour idle banks only 100 bytes.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(b.charge_at(300, later), Duration::from_millis(200));
    }

    #[test]
    fn shared_bucket_gives_the_rate_to_all_writers_together() {
        // Two writers alternate 1000-byte chunks on a 1000 B/s bucket with no burst: after
        // 10 chunks the last one waits until t = 10 s, whatever the interleaving.
        let t0 = Instant::now();
        let b = Bucket::new(1000, 0);
        let mut wait = Duration::ZERO;
        for _ in 0..10 {
            wait = b.charge_at(1000, t0);
        }
        assert_eq!(wait, Duration::from_secs(10));
    }

    #[test]
    fn chunk_sizes_are_bounded() {
        assert_eq!(chunk_for(1), 1024);
        assert_eq!(chunk_for(100_000), 2000);
        assert_eq!(chunk_for(8_000_000), 64 * 1024);
    }
}
