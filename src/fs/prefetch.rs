//! Prefetch across the files of a folder (DESIGN.md §4 "Prefetch across files").
//!
//! Copy tools read the files of a folder one after another: `rsync` and `find` in name
//! order (the mount lists every folder sorted by name bytes), GNU `cp -r` in inode order
//! (it sorts a folder by inode number to read it faster, and the mount's inodes are hashes
//! of stable keys, so that order is not the names'). Both orders are watched. The pattern
//! this module looks for: a file read **to its end** (a copy; a thumbnailer reading 64 KiB
//! of each file is not one), then the next file in one of the orders opened. From then on
//! it keeps the next files in that order fetching ahead of the reader, within budgets:
//!
//! - at most [`AHEAD_FILES`] files and [`AHEAD_BYTES`] (or a quarter of the cache cap,
//!   whichever is smaller) of files not yet cached ahead of the file being read;
//! - every prefetch job ranks behind every read a process waits on (the scheduler), and
//!   prefetch never takes the last slots of the connection budget;
//! - a file that will take long starts early: its rank is the bytes the reader has to get
//!   through before it, minus, when the server ignores Range (one connection per file),
//!   [`SLOW_FACTOR`] times its size: on a link of 8 MB/s per connection and 64 MB/s in all,
//!   an 18 MB video needs as long alone as 144 MB of other files take together. With Range
//!   a large file is split into parts over all connections anyway;
//! - prefetch never goes to memory: a file that finds no room on the cache disk is left
//!   for its reader.
//!
//! A copy may also be seen starting: when the folder's first open is of the first file in
//! an order and its reader goes on past its first request, the next files start at once
//! (this saves a copy the time of its first file).
//!
//! The pattern breaks when a file is opened whose predecessor in the order was not read to
//! its end: every file fetched ahead and not opened is then released (its download
//! cancelled unless it finished). Files behind the reader that were never opened (skipped)
//! are released too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::content::{ContentCache, Lease};
use crate::model::Item;
use crate::view::Ino;

/// Files fetched ahead of the reader, at most.
pub const AHEAD_FILES: usize = 48;
/// Bytes of uncached files fetched ahead of the reader, at most.
pub const AHEAD_BYTES: u64 = 384 << 20;
/// How much longer than the link a single connection takes, for ranking files that go
/// over one connection each.
pub const SLOW_FACTOR: u64 = 8;
/// Ranks of files ahead start here, so that pulling a large file forward never goes below
/// zero, and the read-ahead inside the file being read (ranked by distance from 0) comes
/// first.
const RANK_BASE: u64 = 1 << 40;

/// What the prefetcher needs of the tree: the folder of a file and the files of a folder in
/// listing order.
pub trait Siblings: Send + Sync {
    /// The folder holding `ino`.
    fn folder_of(&self, ino: Ino) -> Option<Ino>;
    /// The files of `folder` in listing order, with their items.
    fn files_of(&self, folder: Ino) -> Vec<(Ino, Item)>;
}

pub struct Prefetcher {
    content: Arc<ContentCache>,
    tree: Arc<dyn Siblings>,
    /// Where the prefetch calls run (opens may come from a FUSE thread).
    rt: tokio::runtime::Handle,
    ahead_bytes: u64,
    folders: Mutex<HashMap<Ino, Folder>>,
}

/// One order in which a folder may be read, and how the reads follow it.
struct Order {
    files: Arc<Vec<(Ino, Item)>>,
    pos: HashMap<Ino, usize>,
    /// The last file read to its end, and the last opened, by position in this order.
    finished: Option<usize>,
    opened: Option<usize>,
    active: bool,
    /// The folder's first open was of this order's first file.
    started_at_first: bool,
}

impl Order {
    fn new(files: Vec<(Ino, Item)>) -> Order {
        let pos = files
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (*n, i))
            .collect();
        Order {
            files: Arc::new(files),
            pos,
            finished: None,
            opened: None,
            active: false,
            started_at_first: false,
        }
    }

    /// Notes an open at `at`; whether this order is followed: the file just before it
    /// (or the one before that) was read to its end. A reader that does not finish files
    /// (a thumbnailer, a viewer) breaks the pattern at its next open.
    fn open(&mut self, at: usize) -> bool {
        let follows = self.finished.is_some_and(|f| at > f && at <= f + 2);
        if self.opened.is_none() {
            self.started_at_first = at == 0;
        }
        self.opened = Some(at);
        self.active = follows;
        self.active
    }
}

struct Folder {
    /// Listing (name) order, then inode order.
    orders: [Order; 2],
    /// Leases on files fetched ahead (`None` while the prefetch call runs).
    leases: HashMap<Ino, Option<Lease>>,
}

impl Prefetcher {
    pub fn new(
        content: Arc<ContentCache>,
        tree: Arc<dyn Siblings>,
        cache_cap: u64,
        rt: tokio::runtime::Handle,
    ) -> Prefetcher {
        Prefetcher {
            content,
            tree,
            rt,
            ahead_bytes: AHEAD_BYTES.min(cache_cap / 4),
            folders: Mutex::new(HashMap::new()),
        }
    }

    fn with_folder<R>(&self, ino: Ino, f: impl FnOnce(&mut Folder) -> R) -> Option<R> {
        let dir = self.tree.folder_of(ino)?;
        let mut folders = self.folders.lock().ok()?;
        let stale = folders
            .get(&dir)
            .is_none_or(|fo| !fo.orders[0].pos.contains_key(&ino));
        if stale {
            let files = self.tree.files_of(dir);
            let mut by_ino = files.clone();
            by_ino.sort_by_key(|(n, _)| *n);
            folders.insert(
                dir,
                Folder {
                    orders: [Order::new(files), Order::new(by_ino)],
                    leases: HashMap::new(),
                },
            );
        }
        let folder = folders.get_mut(&dir)?;
        folder.orders[0].pos.contains_key(&ino).then(|| f(folder))
    }

    /// A file was opened (its reader, if any, already holds its download). Returns whether
    /// the folder is being copied (the handle should then get verified bytes only).
    pub fn opened(self: &Arc<Self>, ino: Ino) -> bool {
        let plan = self.with_folder(ino, |fo| {
            let mut followed = None;
            for (k, order) in fo.orders.iter_mut().enumerate() {
                let at = order.pos[&ino];
                if order.open(at) && followed.is_none() {
                    followed = Some(k);
                }
            }
            fo.leases.remove(&ino);
            tracing::trace!(
                ino,
                at = ?fo.orders.iter().map(|o| o.pos[&ino]).collect::<Vec<_>>(),
                finished = ?fo.orders.iter().map(|o| o.finished).collect::<Vec<_>>(),
                ?followed,
                "prefetch: opened"
            );
            let Some(k) = followed else {
                // No order is followed: release everything fetched ahead.
                fo.leases.clear();
                return None;
            };
            let at = fo.orders[k].pos[&ino];
            // Files behind the reader in the followed order, never opened: not wanted.
            let behind: Vec<Ino> = fo.orders[k].files[..at].iter().map(|(n, _)| *n).collect();
            for n in behind {
                fo.leases.remove(&n);
            }
            Some(self.plan(fo, k, at))
        });
        match plan {
            Some(Some(starts)) => {
                self.start(ino, starts);
                true
            }
            _ => false,
        }
    }

    /// A handle of `ino` went on reading from the start. If that file is the first of
    /// the folder in an order, and the folder's first open, a copy in that order is likely
    /// starting (`cp -r` opens the file of the lowest inode first, `rsync` the first name):
    /// the next files are started now instead of after this one ends. If it was not (a
    /// thumbnailer), the next open, of a file whose predecessor was not read to its end,
    /// releases them.
    pub fn reading_on(self: &Arc<Self>, ino: Ino) {
        let plan = self.with_folder(ino, |fo| {
            let k = fo
                .orders
                .iter()
                .position(|o| o.started_at_first && o.opened == Some(0) && o.pos[&ino] == 0)?;
            if fo.orders.iter().any(|o| o.active) {
                return None;
            }
            fo.orders[k].active = true;
            Some(self.plan(fo, k, 0))
        });
        if let Some(Some(starts)) = plan {
            self.start(ino, starts);
        }
    }

    /// A handle that had read `ino` to its end was closed.
    pub fn finished(self: &Arc<Self>, ino: Ino) {
        tracing::trace!(ino, "prefetch: finished");
        self.with_folder(ino, |fo| {
            for order in &mut fo.orders {
                let at = order.pos[&ino];
                order.finished = Some(at);
            }
        });
    }

    /// The files to start now, with their ranks: the next files after `at` in order `k`,
    /// within budget.
    fn plan(&self, fo: &mut Folder, k: usize, at: usize) -> Vec<(Ino, Item, u64)> {
        let by_parts = self.content.range_support() == Some(true);
        let mut starts = Vec::new();
        let mut before = 0u64;
        let mut ahead_uncached = 0u64;
        let files = fo.orders[k].files.clone();
        for (ino, item) in files.iter().skip(at + 1).take(AHEAD_FILES) {
            let cached = self.content.is_verified(&item.sha1);
            if !cached {
                if ahead_uncached + item.size > self.ahead_bytes && ahead_uncached > 0 {
                    break;
                }
                ahead_uncached += item.size;
                if let std::collections::hash_map::Entry::Vacant(e) = fo.leases.entry(*ino) {
                    let rank = if by_parts {
                        RANK_BASE + before
                    } else {
                        (RANK_BASE + before).saturating_sub(SLOW_FACTOR.saturating_mul(item.size))
                    };
                    e.insert(None);
                    starts.push((*ino, item.clone(), rank));
                }
            }
            before += item.size;
        }
        starts
    }

    fn start(self: &Arc<Self>, ino: Ino, starts: Vec<(Ino, Item, u64)>) {
        let Some(dir) = self.tree.folder_of(ino) else {
            return;
        };
        // One task, in rank order: the jobs reach the scheduler in the order they should
        // start.
        let mut starts = starts;
        starts.sort_by_key(|(_, _, rank)| *rank);
        let me = self.clone();
        self.rt.spawn(async move {
            for (file, item, rank) in starts {
                let wanted = me
                    .folders
                    .lock()
                    .ok()
                    .and_then(|f| f.get(&dir).map(|fo| fo.leases.contains_key(&file)))
                    .unwrap_or(false);
                if !wanted {
                    continue;
                }
                let lease = me.content.prefetch(&item, rank).await;
                if let Ok(mut folders) = me.folders.lock() {
                    if let Some(fo) = folders.get_mut(&dir) {
                        if let Some(slot) = fo.leases.get_mut(&file) {
                            *slot = lease;
                        }
                    }
                }
            }
        });
    }

    /// Files fetched ahead (or being started) in the folder of `ino`.
    pub fn ahead_of(&self, ino: Ino) -> Vec<Ino> {
        self.with_folder(ino, |fo| fo.leases.keys().copied().collect())
            .unwrap_or_default()
    }
}
