//! The retry policy of the data path, in one place (DESIGN.md §4 "Scheduling", §6).
//!
//! The cloud client tries each download request once (`GalleryApi::resolve` and `fetch`);
//! the content layer's jobs retry, so that tries never multiply across layers (before issue
//! 12 the client tried 6 times and the content layer 6 times that, each try up to
//! `--io-timeout`, holding its download slot through the back-off sleeps).
//!
//! - **Back-off**: 250 ms doubling per failed try, capped at 8 s, with ±50 % jitter so that
//!   the jobs cut by one network hiccup do not come back in lockstep. The job gives its
//!   connection slot back before it sleeps.
//! - **Dead or slow?** One request that gets no answer cannot tell a dead service from a
//!   busy one; the mount as a whole can. Every answer and every byte from the service marks
//!   the mount *alive* (`ContentCache::note_alive`). A try waiting for an answer or a byte is
//!   abandoned after [`stall_timeout`] (half of `--io-timeout`, at least 1 s) if the mount
//!   heard nothing meanwhile (a stuck connection, a dead network), and after
//!   [`PATIENCE`] × `--io-timeout` at most while other downloads go on (a busy service
//!   answering slowly is not helped by being asked again).
//! - **A read's deadline**: a read whose file got no byte for `--io-timeout` fails with EIO
//!   when the mount heard nothing from the service for `--io-timeout` either (a dead
//!   network: within `--io-timeout` of the read), or in any case after [`PATIENCE`] ×
//!   `--io-timeout` without a byte of its file. The log names the last error.
//! - **Giving up**: a job wanted by a reader keeps trying while it makes progress; after
//!   [`TRIES_WITHOUT_PROGRESS`] failed tries in a row *and* `--io-timeout` without a byte it
//!   gives up and says why. A prefetch job nobody waits on gives up after
//!   [`PREFETCH_TRIES`] failed tries (the bytes are fetched on demand later if they are
//!   read).

use std::time::Duration;

/// Failed tries in a row after which a job wanted by a reader may give up.
pub const TRIES_WITHOUT_PROGRESS: u32 = 6;

/// Failed tries after which a job nobody waits on gives up.
pub const PREFETCH_TRIES: u32 = 3;

/// The sleep before try `attempt + 1` (`attempt` ≥ 1 failed tries so far).
pub fn backoff(attempt: u32) -> Duration {
    let base = 250u64
        .saturating_mul(1 << attempt.saturating_sub(1).min(5))
        .min(8000);
    let jitter = rand::random_range(0.5..1.5);
    Duration::from_millis((base as f64 * jitter) as u64)
}

/// How long one try may go without a byte, the mount hearing nothing either, before it
/// is abandoned.
pub fn stall_timeout(io_timeout: Duration) -> Duration {
    (io_timeout / 2).max(Duration::from_secs(1))
}

/// How many `--io-timeout`s a try (or a read) may wait at most while the service answers
/// other requests.
pub const PATIENCE: u32 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempt in 1..30 {
            assert!(backoff(attempt) <= Duration::from_millis(12_000));
        }
        assert!(backoff(1) < Duration::from_millis(400));
        assert!(backoff(6) >= Duration::from_millis(4_000));
        assert_eq!(
            stall_timeout(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(
            stall_timeout(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
    }
}
