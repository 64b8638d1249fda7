//! FUSE passthrough for verified cache files (Linux 6.9+, `CAP_SYS_ADMIN`).
//!
//! A verified object never changes, so the kernel may read it directly: the open reply
//! carries a *backing id* registered for the object's file descriptor, and the kernel then
//! serves reads (and mmap) of that handle from the cache file itself, at the speed of the
//! disk, without a trip through the daemon.
//!
//! The kernel's rules, which this module keeps:
//! - an inode is either in passthrough mode or in cached mode while it has open handles;
//!   opening it in the other mode fails (EIO). So a new handle of an inode that has
//!   passthrough handles open reuses the same backing id (even if the object was evicted
//!   meanwhile: the backing id holds the file open), and an inode with a streaming handle
//!   open gets non-passthrough handles until that one closes;
//! - a backing id must live while any handle opened with it is open: it is kept per inode
//!   with a count of handles and closed (dropped) with the last one;
//! - a passthrough open may carry no page-cache flag (`FOPEN_KEEP_CACHE` makes the kernel
//!   refuse it with EINVAL, seen by the program as EIO): only `FOPEN_NOFLUSH`, which also
//!   spares the daemon a FLUSH at every close.
//!
//! When the kernel does not offer passthrough, or registering a backing file fails (no
//! privilege), the mount falls back to reading through the daemon, logged once, and the
//! rest of the mount's life goes without.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use fuser::{BackingId, FileHandle, FopenFlags, ReplyOpen};

use crate::view::Ino;

enum Mode {
    /// Handles reading through the daemon.
    Cached(usize),
    /// Handles the kernel reads directly, and the backing id they share.
    Backed(Arc<BackingId>, usize),
}

/// Backing ids kept registered after their last handle closed, for the next open of the
/// same inode (a re-read then costs no registration): at most this many, least recently
/// used first out. Each holds one file descriptor.
pub const IDLE_BACKINGS: usize = 512;

pub struct Passthrough {
    enabled: AtomicBool,
    inodes: Mutex<HashMap<Ino, Mode>>,
    idle: Mutex<lru::LruCache<Ino, Arc<BackingId>>>,
    /// The inode of every open handle, and whether it is backed.
    handles: Mutex<HashMap<u64, (Ino, bool)>>,
}

impl Default for Passthrough {
    fn default() -> Self {
        Passthrough {
            enabled: AtomicBool::new(false),
            inodes: Mutex::new(HashMap::new()),
            idle: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(IDLE_BACKINGS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            handles: Mutex::new(HashMap::new()),
        }
    }
}

impl Passthrough {
    pub fn new() -> Passthrough {
        Passthrough::default()
    }

    /// Called from `init`: whether the kernel offered passthrough.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    /// Replies to an open of `ino` as handle `fh`: through the kernel with `backing` when
    /// allowed, else the plain way with `flags`. Returns whether the handle is backed.
    /// `on_backed` runs before the reply goes out when the handle is backed: once the
    /// kernel has the reply, the program may read the file and close it (and the kernel
    /// release the handle) before this returns.
    pub fn reply(
        &self,
        reply: ReplyOpen,
        ino: Ino,
        fh: u64,
        flags: FopenFlags,
        backing: Option<&std::fs::File>,
        on_backed: impl FnOnce(),
    ) -> bool {
        let Ok(mut inodes) = self.inodes.lock() else {
            reply.opened(FileHandle(fh), flags);
            return false;
        };
        let id = match inodes.get_mut(&ino) {
            Some(Mode::Backed(id, n)) => {
                *n += 1;
                Some(id.clone())
            }
            Some(Mode::Cached(n)) => {
                *n += 1;
                None
            }
            None => match backing.filter(|_| self.enabled()) {
                Some(file) => match self
                    .idle
                    .lock()
                    .ok()
                    .and_then(|mut idle| idle.pop(&ino))
                    .map(Ok)
                    .unwrap_or_else(|| reply.open_backing(file).map(Arc::new))
                {
                    Ok(id) => {
                        inodes.insert(ino, Mode::Backed(id.clone(), 1));
                        Some(id)
                    }
                    Err(e) => {
                        if self.enabled.swap(false, Ordering::SeqCst) {
                            tracing::warn!(error = %e, "FUSE passthrough refused by the kernel (it needs CAP_SYS_ADMIN); cached files are read through the daemon");
                        }
                        inodes.insert(ino, Mode::Cached(1));
                        None
                    }
                },
                None => {
                    inodes.insert(ino, Mode::Cached(1));
                    None
                }
            },
        };
        drop(inodes);
        // Noted before the reply: the kernel may release the handle as soon as it has it.
        if let Ok(mut h) = self.handles.lock() {
            h.insert(fh, (ino, id.is_some()));
        }
        match id {
            Some(id) => {
                on_backed();
                reply.opened_passthrough(FileHandle(fh), FopenFlags::FOPEN_NOFLUSH, &id);
                true
            }
            None => {
                reply.opened(FileHandle(fh), flags);
                false
            }
        }
    }

    /// A handle was closed.
    pub fn release(&self, fh: u64) {
        let Some((ino, _)) = self.handles.lock().ok().and_then(|mut h| h.remove(&fh)) else {
            return;
        };
        if let Ok(mut inodes) = self.inodes.lock() {
            let last = match inodes.get_mut(&ino) {
                Some(Mode::Cached(n)) | Some(Mode::Backed(_, n)) => {
                    *n -= 1;
                    *n == 0
                }
                None => false,
            };
            if last {
                // Kept for the next open (dropping a backing id closes it in the kernel).
                if let Some(Mode::Backed(id, _)) = inodes.remove(&ino) {
                    if let Ok(mut idle) = self.idle.lock() {
                        idle.put(ino, id);
                    }
                }
            }
        }
    }

    /// Drops the backing ids kept for inodes with no open handle (each holds a cache file
    /// open): called when the cache evicts an object, whose room on the disk comes back
    /// only once nothing holds it open.
    pub fn drop_idle(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// Handles the kernel reads directly, now.
    pub fn backed_handles(&self) -> usize {
        self.handles
            .lock()
            .map(|h| h.values().filter(|(_, b)| *b).count())
            .unwrap_or(0)
    }
}
