//! `PiecePool`: the aligned piece buffers of download jobs ([`PieceBuf`], about 1 MiB
//! each: one gathering per job, one more while a piece is being written) and of the
//! hasher's direct read-backs, kept between uses instead of allocated for each one.
//!
//! Why: a job lives for one range of one file (a photo, or a 4–16 MiB part of a video), so
//! a cold `cp -r` of a 230 MB album starts a hundred or more of them. A fresh 1 MiB buffer
//! is zeroed by the allocator and then faulted in page by page by the kernel; per job that
//! is 2 MiB of `memset` and 512 page faults, which perf showed as 10% of the daemon's CPU
//! during such a copy (`memset` 3%, page faults 7%), about as much as receiving the bytes
//! from the socket. A buffer handed back is reused as it is: its contents are never read
//! before they are overwritten (a [`PieceBuf`] exposes only the bytes given to it).
//!
//! Bounded: at most `keep` idle buffers, two per connection of `--max-connections` (34 MiB
//! at the default 16): the most the jobs of a full connection budget can hold at once, so
//! the pool never raises the daemon's peak memory, it only keeps it, and after the first
//! files of a copy no job faults a page in. In practice fewer are ever made: a written
//! piece's buffer comes back at once (a write takes milliseconds, a piece fills in about
//! 125 ms), so a copy over 16 connections uses about 20 (peak RSS 46-47 MiB against
//! 45-63 when each job kept its second buffer). A buffer that grew past its usual size (a
//! server sending larger chunks than usual) is let go rather than kept.

use std::sync::Mutex;

use super::writer::PieceBuf;

/// Idle buffers kept per connection of the budget (a job holds two: one gathering, one
/// being written).
pub const PER_CONNECTION: usize = 2;

pub struct PiecePool {
    idle: Mutex<Vec<PieceBuf>>,
    /// The size every buffer is made with.
    size: usize,
    keep: usize,
}

impl PiecePool {
    /// A pool of buffers for pieces of about `size` bytes, keeping at most `keep` idle.
    pub fn new(size: usize, keep: usize) -> PiecePool {
        PiecePool {
            idle: Mutex::new(Vec::with_capacity(keep)),
            size,
            keep,
        }
    }

    /// An idle buffer, or a new one.
    pub fn take(&self) -> PieceBuf {
        self.idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop())
            .unwrap_or_else(|| PieceBuf::new(self.size))
    }

    /// Hands `buf` back for the next job (or lets it go: the pool is full, or the buffer
    /// is not one of the usual size).
    pub fn give(&self, buf: PieceBuf) {
        let usual = PieceBuf::new_capacity(self.size);
        if buf.capacity() != usual {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.keep {
                idle.push(buf);
            }
        }
    }

    /// A buffer that goes back to the pool when dropped (for a use that ends where it
    /// began, such as the hasher's read-backs).
    pub fn lease(&self) -> Lease<'_> {
        Lease {
            pool: self,
            buf: self.take(),
        }
    }

    /// Idle buffers now.
    #[cfg(test)]
    pub fn idle(&self) -> usize {
        self.idle.lock().map(|i| i.len()).unwrap_or(0)
    }
}

/// A [`PieceBuf`] on loan from a [`PiecePool`]: given back when dropped.
pub struct Lease<'a> {
    pool: &'a PiecePool,
    buf: PieceBuf,
}

impl std::ops::Deref for Lease<'_> {
    type Target = PieceBuf;
    fn deref(&self) -> &PieceBuf {
        &self.buf
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut PieceBuf {
        &mut self.buf
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_bounded() {
        let pool = PiecePool::new(1 << 16, 2);
        let a = pool.take();
        assert_eq!(a.capacity(), PieceBuf::new_capacity(1 << 16));
        pool.give(a);
        assert_eq!(pool.idle(), 1);
        let b = pool.take();
        assert_eq!(
            pool.idle(),
            0,
            "the idle buffer was taken, not a new one made"
        );
        let (c, d, e) = (pool.take(), pool.take(), pool.take());
        for x in [b, c, d, e] {
            pool.give(x);
        }
        assert_eq!(pool.idle(), 2, "at most `keep` are kept");
    }

    #[test]
    fn a_reused_buffer_shows_only_new_bytes() {
        let pool = PiecePool::new(1 << 16, 2);
        let mut a = pool.take();
        a.reset(0);
        a.extend_from_slice(&[9; 5000]);
        pool.give(a);
        let mut b = pool.take();
        b.reset(4093);
        assert!(b.is_empty());
        b.extend_from_slice(&[1, 2, 3]);
        assert_eq!(b.as_slice(), &[1, 2, 3]);
    }

    #[test]
    fn a_lease_comes_back_when_dropped() {
        let pool = PiecePool::new(1 << 16, 2);
        {
            let mut l = pool.lease();
            l.reset(0);
            l.extend_from_slice(&[1, 2]);
            assert_eq!(pool.idle(), 0);
        }
        assert_eq!(pool.idle(), 1);
    }

    #[test]
    fn a_grown_buffer_is_let_go() {
        let pool = PiecePool::new(1 << 12, 2);
        let mut a = pool.take();
        a.reset(0);
        a.extend_from_slice(&vec![1; 1 << 14]);
        pool.give(a);
        assert_eq!(pool.idle(), 0);
    }
}
