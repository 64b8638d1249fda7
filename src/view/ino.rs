//! Stable inode numbers, derived from stable keys.
//!
//! A node's inode is the first 8 bytes (big-endian) of SHA-1 over a key that names the node
//! independently of the rest of the catalog, masked to 63 bits (some tools treat inode numbers
//! as signed) and never 0 (invalid) or 1 ([`ROOT_INO`](super::ROOT_INO)). The keys:
//!
//! | node | key |
//! |---|---|
//! | `albums/`, `by-date/` | `dir:albums`, `dir:by-date` |
//! | an album directory | `album-dir:<album id>` (a renamed album keeps its inode) |
//! | `by-date/YYYY`, `by-date/YYYY/MM` | `dir:by-date/YYYY`, `dir:by-date/YYYY/MM` |
//! | a file under `albums/` | `albums-file:<item id>` |
//! | a file under `by-date/` | `by-date-file:<item id>` |
//! | a `SHA1SUMS` | `sha1sums:albums`, `sha1sums:by-date` |
//!
//! So the same catalog gives the same inodes on every mount, whatever the input order, and a
//! newer catalog keeps the inode of every node that is still there. With 63-bit values and 200 000
//! nodes the chance of any collision is about n²/2⁶⁴ ≈ 2·10⁻⁹; a collision is still detected
//! and resolved deterministically: the node allocated later (the view allocates in a fixed
//! order that does not depend on input order) re-hashes `key + "#" + counter`, counter = 1, 2, ...
//! [`InoMap`] is a hash map keyed by these already-uniform numbers without re-hashing them.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use sha1::{Digest, Sha1};

use super::{Ino, ROOT_INO};

/// The inode a key hashes to with the given collision counter (0 = first try).
pub fn ino_for_key(key: &[u8], counter: u32) -> Ino {
    let mut h = Sha1::new();
    h.update(key);
    if counter > 0 {
        h.update(b"#");
        h.update(counter.to_string().as_bytes());
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) & (u64::MAX >> 1)
}

/// Hands out unique inodes for keys, in call order. Inodes handed out by an earlier build
/// (kept in the catalog) are *reserved*: only the node they were handed to gets one back
/// ([`InoAllocator::alloc_kept`]), a new node never takes one, even on a hash collision.
#[derive(Debug)]
pub struct InoAllocator {
    used: HashSet<Ino, BuildHasherDefault<InoHasher>>,
    reserved: HashSet<Ino, BuildHasherDefault<InoHasher>>,
}

impl InoAllocator {
    pub fn with_capacity(n: usize) -> InoAllocator {
        InoAllocator::with_reserved(n, std::iter::empty())
    }

    /// An allocator that keeps `reserved` for the nodes they were handed to before.
    pub fn with_reserved(n: usize, reserved: impl Iterator<Item = Ino>) -> InoAllocator {
        let mut used = HashSet::with_capacity_and_hasher(n, Default::default());
        used.insert(0);
        used.insert(ROOT_INO);
        let reserved = reserved.filter(|&i| i > ROOT_INO).collect();
        InoAllocator { used, reserved }
    }

    /// The inode of `key`: its hash, or on a collision with an earlier key (or a reserved
    /// inode) the first free re-hash.
    pub fn alloc(&mut self, key: &[u8]) -> Ino {
        let mut counter = 0;
        loop {
            let ino = ino_for_key(key, counter);
            if !self.reserved.contains(&ino) && self.used.insert(ino) {
                return ino;
            }
            counter += 1;
        }
    }

    /// `kept` (the inode handed to this node before) when it is still free, else
    /// [`InoAllocator::alloc`] of `key`.
    pub fn alloc_kept(&mut self, key: &[u8], kept: Option<Ino>) -> Ino {
        self.alloc_kept_with(kept, || key.to_vec())
    }

    /// [`InoAllocator::alloc_kept`] with the key made only when it is needed (a warm build
    /// keeps every inode and so formats no key at all).
    pub fn alloc_kept_with(&mut self, kept: Option<Ino>, key: impl FnOnce() -> Vec<u8>) -> Ino {
        match kept {
            Some(ino) if ino > ROOT_INO && self.used.insert(ino) => ino,
            _ => self.alloc(&key()),
        }
    }
}

/// A `Hasher` for inode numbers, which are already uniformly distributed: the value itself.
#[derive(Default, Clone, Copy, Debug)]
pub struct InoHasher(u64);

impl Hasher for InoHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used for u64 keys; fold anything else in so the hasher stays correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by inode number.
pub type InoMap<V> = HashMap<Ino, V, BuildHasherDefault<InoHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let a = ino_for_key(b"albums-file:1", 0);
        assert_eq!(a, ino_for_key(b"albums-file:1", 0));
        assert_ne!(a, ino_for_key(b"albums-file:1", 1));
        assert_ne!(a, ino_for_key(b"by-date-file:1", 0));
        assert!(a >> 63 == 0);
    }

    #[test]
    fn kept_inodes_are_reserved() {
        let taken = ino_for_key(b"new", 0);
        let mut alloc = InoAllocator::with_reserved(4, [taken].into_iter());
        // A new key that hashes onto a reserved inode moves on.
        assert_eq!(alloc.alloc(b"new"), ino_for_key(b"new", 1));
        // The node it was handed to gets it back.
        assert_eq!(alloc.alloc_kept(b"old", Some(taken)), taken);
        // Once used, a second claim falls back to the key's hash.
        assert_eq!(
            alloc.alloc_kept(b"old", Some(taken)),
            ino_for_key(b"old", 0)
        );
    }

    #[test]
    fn collision_rehashes() {
        let mut alloc = InoAllocator::with_capacity(4);
        let first = alloc.alloc(b"k");
        let second = alloc.alloc(b"k"); // same key: forced collision
        assert_eq!(first, ino_for_key(b"k", 0));
        assert_eq!(second, ino_for_key(b"k", 1));
        assert!(second > 1);
    }
}
