//! Prefetch across the files of a folder (DESIGN.md §4 "Prefetch across files").
//!
//! Copy tools read the files of a folder one after another: `cp -r` and `find` in readdir
//! order, `rsync` in sorted order, and the mount lists every folder sorted by name bytes,
//! so both are the folder's listing order here. The pattern this module looks for: a file
//! read **to its end** (a copy; a thumbnailer reading 64 KiB of each file is not one), then
//! the next file of the listing opened. From then on it keeps the next files of the folder
//! fetching ahead of the reader, within budgets:
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
//! The pattern breaks when the next file opened in the folder is not one of the next two
//! of the listing: every file fetched ahead and not opened is then released (its download
//! cancelled unless it finished). Files behind the reader that were never opened (skipped)
//! are released too.

use std::collections::{BTreeMap, HashMap};
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
    ahead_bytes: u64,
    folders: Mutex<HashMap<Ino, Folder>>,
}

struct Folder {
    files: Arc<Vec<(Ino, Item)>>,
    pos: HashMap<Ino, usize>,
    /// The last file read to its end, and the last opened.
    finished: Option<usize>,
    opened: Option<usize>,
    active: bool,
    /// Leases on files ahead, by position (`None` while the prefetch call runs).
    leases: BTreeMap<usize, Option<Lease>>,
}

impl Prefetcher {
    pub fn new(content: Arc<ContentCache>, tree: Arc<dyn Siblings>, cache_cap: u64) -> Prefetcher {
        Prefetcher {
            content,
            tree,
            ahead_bytes: AHEAD_BYTES.min(cache_cap / 4),
            folders: Mutex::new(HashMap::new()),
        }
    }

    fn with_folder<R>(&self, ino: Ino, f: impl FnOnce(&mut Folder, usize) -> R) -> Option<R> {
        let dir = self.tree.folder_of(ino)?;
        let mut folders = self.folders.lock().ok()?;
        let stale = folders
            .get(&dir)
            .is_none_or(|fo| !fo.pos.contains_key(&ino));
        if stale {
            let files = self.tree.files_of(dir);
            let pos = files
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (*n, i))
                .collect();
            folders.insert(
                dir,
                Folder {
                    files: Arc::new(files),
                    pos,
                    finished: None,
                    opened: None,
                    active: false,
                    leases: BTreeMap::new(),
                },
            );
        }
        let folder = folders.get_mut(&dir)?;
        let at = *folder.pos.get(&ino)?;
        Some(f(folder, at))
    }

    /// A file was opened (its reader, if any, already holds its download). Returns whether
    /// the folder is being copied (the handle should then get verified bytes only).
    pub fn opened(self: &Arc<Self>, ino: Ino) -> bool {
        let plan = self.with_folder(ino, |fo, at| {
            let follows = fo.finished.is_some_and(|f| at > f && at <= f + 2);
            let in_order = fo.opened.is_none_or(|o| at > o && at <= o + 2);
            fo.opened = Some(at);
            if fo.active && !in_order {
                // The pattern broke: release everything fetched ahead.
                fo.active = false;
                fo.leases.clear();
                return None;
            }
            // Files behind the reader, never opened: no longer wanted.
            fo.leases.retain(|&i, _| i > at);
            if follows {
                fo.active = true;
            }
            fo.active.then(|| self.plan(fo, at))
        });
        match plan {
            Some(Some(starts)) => {
                self.start(ino, starts);
                true
            }
            _ => false,
        }
    }

    /// A handle that had read `ino` to its end was closed.
    pub fn finished(self: &Arc<Self>, ino: Ino) {
        self.with_folder(ino, |fo, at| {
            fo.finished = Some(at);
        });
    }

    /// The files to start now, with their ranks: the next files after `at` within budget.
    fn plan(&self, fo: &mut Folder, at: usize) -> Vec<(usize, Item, u64)> {
        let by_parts = self.content.range_support() == Some(true);
        let mut starts = Vec::new();
        let mut before = 0u64;
        let mut ahead_uncached = 0u64;
        for (i, (_, item)) in fo.files.iter().enumerate().skip(at + 1).take(AHEAD_FILES) {
            let cached = self.content.is_verified(&item.sha1);
            if !cached {
                if ahead_uncached + item.size > self.ahead_bytes && ahead_uncached > 0 {
                    break;
                }
                ahead_uncached += item.size;
                if let std::collections::btree_map::Entry::Vacant(e) = fo.leases.entry(i) {
                    let rank = if by_parts {
                        RANK_BASE + before
                    } else {
                        (RANK_BASE + before).saturating_sub(SLOW_FACTOR.saturating_mul(item.size))
                    };
                    e.insert(None);
                    starts.push((i, item.clone(), rank));
                }
            }
            before += item.size;
        }
        starts
    }

    fn start(self: &Arc<Self>, ino: Ino, starts: Vec<(usize, Item, u64)>) {
        let Some(dir) = self.tree.folder_of(ino) else {
            return;
        };
        for (i, item, rank) in starts {
            let me = self.clone();
            tokio::spawn(async move {
                let lease = me.content.prefetch(&item, rank).await;
                if let Ok(mut folders) = me.folders.lock() {
                    if let Some(fo) = folders.get_mut(&dir) {
                        if let Some(slot) = fo.leases.get_mut(&i) {
                            *slot = lease;
                        }
                    }
                }
            });
        }
    }

    /// Files fetched ahead (or being started) in the folder of `ino`, by position.
    pub fn ahead_of(&self, ino: Ino) -> Vec<usize> {
        self.with_folder(ino, |fo, _| fo.leases.keys().copied().collect())
            .unwrap_or_default()
    }
}
