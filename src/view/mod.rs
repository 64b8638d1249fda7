//! The directory tree shown by the mount, computed from the catalog. Pure: no I/O, no FUSE.
//!
//! ```text
//! /                                 ino 1: `albums`, `by-date` (and `recordings`)
//! /albums/<album>/<file>            every visible item once, in the directory of its album
//! /albums/SHA1SUMS                  "<sha1>  <album>/<file>\n" per file, sorted by path bytes
//! /by-date/<YYYY>/<MM>/<file>       every visible item once, by capture month (see `dates`)
//! /by-date/SHA1SUMS                 "<sha1>  <YYYY>/<MM>/<file>\n", sorted
//! /recordings/<type>/<file>         voice (Recorder), call (Calls), FM and app recordings
//! ```
//!
//! `recordings/` exists only when the account has recordings (items of kind `Recording`,
//! whose album id is their type); they appear nowhere else.
//!
//! **Albums.** Album directories are named `Camera`/`Screenshots`/`Private` for the system
//! albums 1/2/1000, else from the album's name (made safe; `Album <id>` when it has none).
//! Items whose album is not in the album list get an `Album <id>` directory of their own
//! (never dropped), empty albums an empty directory. The private album 1000 and its items
//! appear only with `include_private`, and then also under `by-date/`. Album names are claimed
//! system albums first (by id), then the others by id; `SHA1SUMS` is reserved.
//!
//! **Names** are safe, unique case-insensitively, ≤ 255 bytes and stable: see [`naming`].
//! Files of one directory are named in upload order `(create_time_ms, id)`, so a later upload
//! never renames an existing file.
//!
//! **Inodes** are hashes of stable keys (the item id, the album id, the by-date path): see
//! [`ino`]. Same catalog, same inodes, whatever the input order; a newer catalog keeps them.
//!
//! **Attributes.** A file's size is `item.size` and its mtime `date_taken_ms`; a directory's
//! size is 0 and its mtime the max of everything below it (an empty album: its
//! `last_update_ms`; an empty top-level directory: 0). A `SHA1SUMS` has the exact byte length of
//! its content (computed at build time from the line lengths, see [`sha1sums`]) and the max
//! mtime of its files.
//!
//! **SHA1SUMS bytes are generated lazily**, on the first `sha1sums()` call, then kept in a
//! `OnceLock<Arc<[u8]>>`: a line is ~85 bytes, so with 100 000 items each file is ~8.5 MB that
//! most mounts never read; building both eagerly would add ~17 MB and ~75 ms to every
//! (re)build. Generating one is a walk of the tree: ~40 ms in release for 100 000 items.
//!
//! **Memory and time.** A node is stored as a 24-byte `Slot` (inode, parent slot, name offset
//! and length, kind, item or attribute index) in one `Vec` sorted by inode; every name lives
//! end to end in one `String`; a file's size and mtime are read from its item, so only
//! directories and `SHA1SUMS` keep theirs. [`Node`] is made from a slot on demand. A node is
//! found through a radix table on the inode's top bits (the inodes are uniform hashes: ~1 byte
//! a node, see `Tree`); each directory has a `Box<[Ino]>` of children sorted by name bytes,
//! which `lookup` binary searches. No per-item paths are stored, and `SHA1SUMS` bytes only
//! once read (above).
//!
//! Bytes per item (issue 13), measured by `build_100k_items` on 100 000 synthetic items shaped
//! like the catalog loads them (~23-byte names, one MIME type, a quarter with an EXIF date).
//! "Before" was measured as RSS growth after `malloc_trim`, "now" as live heap (`mallinfo2`),
//! which does not count the allocator's fragmentation; `size_of` and the counts explain both:
//!
//! | per item | before | now |
//! |---|---|---|
//! | `Item` (shared with the catalog through `Arc<[Item]>`) | 136 | 128 (MIME `String` -> `Arc<str>`) |
//! | its heap blocks: name 32, MIME 32 (now one shared copy), EXIF 32 × ¼ | 72 | 40 |
//! | **items, measured** | **236** | **168** |
//! | 2 nodes: `Node` 72 (`String` name, `File(usize)`) -> `Slot` 24 | 144 | 48 |
//! | 2 names: a 32-byte malloc chunk each -> their bytes in one arena | 64 | 46 |
//! | inode -> node (`HashMap<u64, u32>`: 2¹⁸ buckets × 17 B for 200 000 nodes) | ~45 | ~1 (radix table) |
//! | children lists (`Box<[Ino]>`, 8 bytes a node), directories | ~17 | ~17 |
//! | **view, measured** | **340** | **122** |
//! | **total** | **576** | **290** |
//!
//! So ~290 MB at 1 000 000 items where it was ~580 MB. The build's temporaries come on top
//! while it runs (inode set, per-directory name sets, orders, the slot sort: RSS grows ~330
//! bytes an item during a cold build, most of it freed at its end), as do, at the daemon's
//! start, the catalog's names handed out before (`HandedFile`, 64 bytes + two name blocks);
//! the names handed out anew are made one at a time ([`HandedChanges::files`]), not all at once
//! (that was ~130 bytes an item on a first mount). The daemon's peak RSS in
//! `scripts/scale.sh 100000` went from 105 MiB to 78 MiB; `PROFILE=lan scripts/scale.sh
//! 1000000` peaks at 470 MiB: ~290 MB kept, the rest is the cold build's temporaries (with 6
//! albums for 10⁶ items, the name set of one huge directory: a fold `String` and a hash slot
//! per name; the inode set; the sorted copy of the slots) on top of the catalog's load.
//!
//! Time, on the 2-core dev machine: building 100 000 items takes ~0.26 s in release (~1.1 s in
//! debug), mostly two SHA-1 inode hashes, two names and one capture-month conversion per item.
//! A warm build (every name and inode kept from the catalog) formats no inode key and hashes
//! nothing with SHA-1; its cost is the kept names' checks (ASCII fast paths in `naming`), the
//! per-directory name sets (foldhash) and the sorts: ~0.5 s for 100 000 items in the daemon on
//! the loaded 2-core machine (was ~1.3 s), which with the catalog's ~0.3 s load makes a warm
//! remount ~0.9 s.

pub mod dates;
pub mod ino;
pub mod naming;
pub mod sha1sums;
pub mod snapshot;

#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::catalog::{HandedDir, HandedFile, HandedName};
use crate::model::{Album, AlbumId, Item, MediaKind};

use self::ino::{InoAllocator, InoMap};
use self::naming::DirNames;

/// A FUSE inode number. 1 is the root.
pub type Ino = u64;
pub const ROOT_INO: Ino = 1;

/// The name of the generated checksum file at the top of `albums/` and `by-date/`.
pub const SHA1SUMS_NAME: &str = "SHA1SUMS";
/// The root's two directories.
pub const ALBUMS_DIR: &str = "albums";
pub const BY_DATE_DIR: &str = "by-date";
/// The folder of voice, call, FM and app recordings (only when the account has some).
pub const RECORDINGS_DIR: &str = "recordings";

/// The folder of one type of recording (spec §3.12: `0` recorder, `1` call, `2` FM, `3` app).
pub fn recording_dir_name(kind: u64) -> String {
    match kind {
        0 => "Recorder".into(),
        1 => "Calls".into(),
        2 => "FM".into(),
        3 => "Apps".into(),
        other => format!("Type {other}"),
    }
}

/// The zone used to bucket items without `exifInfo.dateTime` into `by-date/<YYYY>/<MM>`.
#[derive(Clone, Debug, Default)]
pub enum DateZone {
    /// The machine's local zone.
    #[default]
    Local,
    Named(chrono_tz::Tz),
}

#[derive(Clone, Debug, Default)]
pub struct ViewOptions {
    pub zone: DateZone,
    /// Show album 1000 (the private album) under `albums/Private`, and its items under
    /// `by-date/`. Without it, its items appear nowhere.
    pub include_private: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    /// A media file: the index of its item in `View::items()` (`u32`: 4 G items is plenty).
    File(u32),
    /// A generated `SHA1SUMS` file; its bytes come from `View::sha1sums`.
    Sha1Sums,
}

/// A node as the file system sees it, made on the fly from the tree's compact storage
/// ([`Slot`]): it borrows its name from the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node<'v> {
    pub ino: Ino,
    /// The parent directory (the root is its own parent).
    pub parent: Ino,
    /// The safe, unique name in its parent directory (the root's name is "").
    pub name: &'v str,
    pub kind: NodeKind,
    /// Exact size in bytes (0 for directories).
    pub size: u64,
    /// Modification time, milliseconds since the epoch.
    pub mtime_ms: i64,
}

const SLOT_DIR: u8 = 0;
const SLOT_FILE: u8 = 1;
const SLOT_SUMS: u8 = 2;

/// One node as stored: 24 bytes. A file's size and mtime are its item's (`item.size`,
/// `date_taken_ms`), so only directories and `SHA1SUMS` keep theirs, in `Tree::attrs`; names
/// live end to end in one `String` (no heap block, header or slack per name).
#[derive(Clone, Copy, Debug)]
struct Slot {
    ino: Ino,
    /// The parent's slot index (the root is its own parent).
    parent: u32,
    /// A file's item index; a directory's or `SHA1SUMS`'s index in `Tree::attrs`.
    data: u32,
    /// The name is `names[at..at + name_len]`, `at` = `name_lo | name_hi << 32` (40 bits).
    name_lo: u32,
    name_hi: u8,
    /// Names are at most [`naming::NAME_MAX`] = 255 bytes.
    name_len: u8,
    kind: u8,
}

impl Slot {
    /// The bytes of a slot in a snapshot (`snapshot`): fixed-size, little-endian.
    const BYTES: usize = 23;

    fn to_bytes(self) -> [u8; Slot::BYTES] {
        let mut b = [0u8; Slot::BYTES];
        b[..8].copy_from_slice(&self.ino.to_le_bytes());
        b[8..12].copy_from_slice(&self.parent.to_le_bytes());
        b[12..16].copy_from_slice(&self.data.to_le_bytes());
        b[16..20].copy_from_slice(&self.name_lo.to_le_bytes());
        b[20] = self.name_hi;
        b[21] = self.name_len;
        b[22] = self.kind;
        b
    }

    fn from_bytes(b: &[u8; Slot::BYTES]) -> Slot {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut ino = [0u8; 8];
        ino.copy_from_slice(&b[..8]);
        Slot {
            ino: u64::from_le_bytes(ino),
            parent: u32_at(8),
            data: u32_at(12),
            name_lo: u32_at(16),
            name_hi: b[20],
            name_len: b[21],
            kind: b[22],
        }
    }

    fn name_range(&self) -> std::ops::Range<usize> {
        let at = (u64::from(self.name_hi) << 32 | u64::from(self.name_lo)) as usize;
        at..at + usize::from(self.name_len)
    }
}

/// A generated `SHA1SUMS` file: which directory it lists, and its bytes once asked for.
#[derive(Debug)]
struct SumsFile {
    ino: Ino,
    dir: Ino,
    len: u64,
    bytes: OnceLock<Arc<[u8]>>,
}

/// The nodes, sorted by inode, and the sorted children of each directory.
///
/// Inodes are uniform hashes (see [`ino`]), so the sorted nodes are found through a radix
/// table instead of a hash map: `starts[b]` is the first node whose top bits are `b`, with one
/// bucket per ~4 nodes (1 byte a node, where a hash map of inode -> index took ~22); a look-up
/// is one table read and a search among ~4 neighbouring nodes.
#[derive(Debug, Default)]
struct Tree {
    slots: Vec<Slot>,
    /// Every node's name, end to end.
    names: String,
    /// (size, mtime_ms) of the directories and `SHA1SUMS` files.
    attrs: Vec<(u64, i64)>,
    items: Arc<[Item]>,
    /// `starts[b]..starts[b + 1]`: the nodes whose inode's top `bits` bits (of 63) are `b`.
    starts: Box<[u32]>,
    bits: u32,
    children: InoMap<Box<[Ino]>>,
}

impl Tree {
    /// Adds the radix table of `self.slots` (sorted by inode).
    fn index(mut self) -> Tree {
        let slots = &self.slots;
        debug_assert!(slots.windows(2).all(|w| w[0].ino < w[1].ino));
        let bits = (slots.len() / 4)
            .max(1)
            .next_power_of_two()
            .trailing_zeros();
        let mut starts = vec![0u32; (1usize << bits) + 1];
        let mut next = 0;
        for (i, n) in slots.iter().enumerate() {
            let b = Tree::bucket(n.ino, bits);
            while next <= b {
                starts[next] = i as u32;
                next += 1;
            }
        }
        for s in &mut starts[next..] {
            *s = slots.len() as u32;
        }
        self.starts = starts.into();
        self.bits = bits;
        self
    }

    /// Whether the tree is one a build could have made (for a decoded snapshot): slots sorted
    /// by inode with the root first, every index in range, every name valid, and every node
    /// but the root listed once, in name order, among its directory's children. (A snapshot
    /// is checked in its two parts directly: its children lists are already slot indices.)
    #[cfg(test)]
    fn check(&self) -> Result<(), &'static str> {
        self.check_slots()?;
        let mut lists = Vec::with_capacity(self.children.len());
        for (dir, kids) in &self.children {
            let slot = |ino: &Ino| self.position(*ino).map(|i| i as u32);
            let d = slot(dir).ok_or("children of a missing directory")?;
            let kids: Option<Box<[u32]>> = kids.iter().map(slot).collect();
            lists.push((d, kids.ok_or("a missing child")?));
        }
        self.check_children(&lists)
    }

    /// The per-node part of [`Tree::check`]: one sequential pass.
    fn check_slots(&self) -> Result<(), &'static str> {
        let slots = &self.slots;
        let root = slots.first().ok_or("no root")?;
        if root.ino != ROOT_INO || root.kind != SLOT_DIR || root.parent != 0 {
            return Err("the root is not first");
        }
        if !slots.windows(2).all(|w| w[0].ino < w[1].ino) || slots.iter().any(|s| s.ino >> 63 != 0)
        {
            return Err("inodes out of order");
        }
        for (i, s) in slots.iter().enumerate() {
            let parent = slots
                .get(s.parent as usize)
                .ok_or("a parent out of range")?;
            if parent.kind != SLOT_DIR {
                return Err("a parent is not a directory");
            }
            let name = self
                .names
                .get(s.name_range())
                .ok_or("a name out of range")?;
            if i > 0 && !naming::is_valid_name(name) {
                return Err("an invalid name");
            }
            let fits = match s.kind {
                SLOT_FILE => (s.data as usize) < self.items.len(),
                SLOT_DIR | SLOT_SUMS => (s.data as usize) < self.attrs.len(),
                _ => false,
            };
            if !fits {
                return Err("a node's data out of range");
            }
        }
        Ok(())
    }

    /// The children part of [`Tree::check`], on lists of slot indices (a directory's slot,
    /// its children's slots): one list per directory, and every node but the root in its
    /// parent's list, once, in name order. Expects [`Tree::check_slots`] to have passed.
    fn check_children(&self, lists: &[(u32, Box<[u32]>)]) -> Result<(), &'static str> {
        let slots = &self.slots;
        let mut has_list = vec![false; slots.len()];
        let mut listed = 0usize;
        for (d, kids) in lists {
            let d = *d as usize;
            match slots.get(d) {
                Some(s) if s.kind == SLOT_DIR => {}
                Some(_) => return Err("children of a file"),
                None => return Err("children of a missing directory"),
            }
            if std::mem::replace(&mut has_list[d], true) {
                return Err("two children lists for one directory");
            }
            let mut prev: Option<&[u8]> = None;
            for &k in kids.iter() {
                let s = slots.get(k as usize).ok_or("a missing child")?;
                if s.parent as usize != d || k == 0 {
                    return Err("a child of another directory");
                }
                let name = self.name(s).as_bytes();
                if prev.is_some_and(|p| p >= name) {
                    return Err("children out of order");
                }
                prev = Some(name);
            }
            listed += kids.len();
        }
        if slots
            .iter()
            .zip(&has_list)
            .any(|(s, &has)| s.kind == SLOT_DIR && !has)
        {
            return Err("a directory without a children list");
        }
        if listed + 1 != slots.len() {
            return Err("a node in no directory");
        }
        Ok(())
    }

    fn bucket(ino: Ino, bits: u32) -> usize {
        // Inodes are < 2^63 (see `ino`); anything above lands in the last bucket and is not found.
        ((ino >> (63 - bits)) as usize).min((1usize << bits) - 1)
    }

    fn position(&self, ino: Ino) -> Option<usize> {
        let b = Tree::bucket(ino, self.bits);
        let (lo, hi) = (
            *self.starts.get(b)? as usize,
            *self.starts.get(b + 1)? as usize,
        );
        let i = self
            .slots
            .get(lo..hi)?
            .binary_search_by_key(&ino, |n| n.ino)
            .ok()?;
        Some(lo + i)
    }

    fn name(&self, slot: &Slot) -> &str {
        self.names.get(slot.name_range()).unwrap_or("")
    }

    /// The node in slot `i`.
    fn at(&self, i: usize) -> Node<'_> {
        let s = &self.slots[i];
        let parent = self.slots.get(s.parent as usize).map_or(s.ino, |p| p.ino);
        let (kind, (size, mtime_ms)) = match s.kind {
            SLOT_FILE => (
                NodeKind::File(s.data),
                self.items
                    .get(s.data as usize)
                    .map_or((0, 0), |it| (it.size, it.date_taken_ms)),
            ),
            k => (
                if k == SLOT_DIR {
                    NodeKind::Dir
                } else {
                    NodeKind::Sha1Sums
                },
                self.attrs.get(s.data as usize).copied().unwrap_or((0, 0)),
            ),
        };
        Node {
            ino: s.ino,
            parent,
            name: self.name(s),
            kind,
            size,
            mtime_ms,
        }
    }

    fn node(&self, ino: Ino) -> Option<Node<'_>> {
        self.position(ino).map(|i| self.at(i))
    }

    /// Sets the size of a directory or `SHA1SUMS` node.
    fn set_size(&mut self, ino: Ino, size: u64) {
        if let Some(s) = self.position(ino).map(|i| self.slots[i]) {
            if s.kind != SLOT_FILE {
                if let Some(a) = self.attrs.get_mut(s.data as usize) {
                    a.0 = size;
                }
            }
        }
    }

    /// Calls `f(path components, item)` for every media file below `dir`, in the byte order of
    /// the `/`-joined relative path (which is not the order of the components: `a b/x` sorts
    /// before `a/x`, so a directory sorts by its name followed by `/`).
    fn walk<'a>(
        &'a self,
        items: &'a [Item],
        dir: Ino,
        parts: &mut Vec<&'a str>,
        f: &mut dyn FnMut(&[&str], &Item),
    ) {
        let Some(kids) = self.children.get(&dir) else {
            return;
        };
        let mut kids: Vec<Node<'a>> = kids.iter().filter_map(|&k| self.node(k)).collect();
        if kids.iter().any(|n| n.kind == NodeKind::Dir) {
            kids.sort_by(path_order);
        }
        for node in kids {
            match node.kind {
                NodeKind::Dir => {
                    parts.push(node.name);
                    self.walk(items, node.ino, parts, f);
                    parts.pop();
                }
                NodeKind::File(i) => {
                    if let Some(item) = items.get(i as usize) {
                        parts.push(node.name);
                        f(parts, item);
                        parts.pop();
                    }
                }
                NodeKind::Sha1Sums => {}
            }
        }
    }
}

/// The order of two siblings in a path sort: a directory's name counts as followed by `/`.
fn path_order(a: &Node, b: &Node) -> Ordering {
    let slash = |n: &Node| (n.kind == NodeKind::Dir).then_some(b'/');
    a.name
        .bytes()
        .chain(slash(a))
        .cmp(b.name.bytes().chain(slash(b)))
}

/// Collects nodes while the tree is built; node indices are `u32` (4 G nodes is plenty).
struct Builder {
    slots: Vec<Slot>,
    names: String,
    attrs: Vec<(u64, i64)>,
    /// Directory node index -> its children's node indices.
    kids: HashMap<u32, Vec<u32>, foldhash::fast::RandomState>,
    inos: InoAllocator,
}

impl Builder {
    fn add(
        &mut self,
        key: &[u8],
        parent: u32,
        name: &str,
        kind: NodeKind,
        size: u64,
        mtime_ms: i64,
    ) -> u32 {
        self.add_kept(key, None, parent, name, kind, size, mtime_ms)
    }

    /// [`Builder::add`] for a node that was handed `kept` before (see [`InoAllocator`]).
    #[allow(clippy::too_many_arguments)]
    fn add_kept(
        &mut self,
        key: &[u8],
        kept: Option<Ino>,
        parent: u32,
        name: &str,
        kind: NodeKind,
        size: u64,
        mtime_ms: i64,
    ) -> u32 {
        let ino = self.inos.alloc_kept(key, kept);
        self.push(ino, parent, name, kind, size, mtime_ms)
    }

    /// Adds a node; a file's `size` and `mtime_ms` are its item's and are not stored.
    fn push(
        &mut self,
        ino: Ino,
        parent: u32,
        name: &str,
        kind: NodeKind,
        size: u64,
        mtime_ms: i64,
    ) -> u32 {
        let idx = self.slots.len() as u32;
        let parent_idx = if (parent as usize) < self.slots.len() {
            parent
        } else {
            idx
        };
        let (kind_code, data) = match kind {
            NodeKind::File(i) => (SLOT_FILE, i),
            other => {
                self.attrs.push((size, mtime_ms));
                let code = if other == NodeKind::Dir {
                    SLOT_DIR
                } else {
                    SLOT_SUMS
                };
                (code, (self.attrs.len() - 1) as u32)
            }
        };
        if kind == NodeKind::Dir {
            self.kids.insert(idx, Vec::new());
        }
        // Every name is at most NAME_MAX (255) bytes: `naming` makes them so, and kept names
        // are checked with `is_valid_name`.
        debug_assert!(name.len() <= naming::NAME_MAX, "{name:?}");
        let at = self.names.len() as u64;
        self.names.push_str(name);
        self.slots.push(Slot {
            ino,
            parent: parent_idx,
            data,
            name_lo: at as u32,
            name_hi: (at >> 32) as u8,
            name_len: name.len().min(naming::NAME_MAX) as u8,
            kind: kind_code,
        });
        if idx != parent {
            self.kids.entry(parent).or_default().push(idx);
        }
        idx
    }

    fn ino(&self, idx: u32) -> Ino {
        self.slots[idx as usize].ino
    }

    fn set_mtime(&mut self, idx: u32, mtime_ms: i64) {
        let s = self.slots[idx as usize];
        if s.kind != SLOT_FILE {
            if let Some(a) = self.attrs.get_mut(s.data as usize) {
                a.1 = mtime_ms;
            }
        }
    }

    /// Adds the files `order` (indices into `items`, in upload order) to directory `dir`,
    /// naming them uniquely; returns the max mtime of the files (`None` if there are none).
    ///
    /// Names handed out before (`kept`) are taken first, in claim order, when still free and
    /// valid; the others claim a name as usual, around them.
    fn add_files<'k>(
        &mut self,
        dir: u32,
        items: &[Item],
        order: &[usize],
        key_prefix: &str,
        kept: &dyn Fn(usize) -> Option<&'k HandedName>,
    ) -> Option<i64> {
        let mut names = DirNames::new();
        let mut given: Vec<Option<&'k str>> = vec![None; order.len()];
        for (k, &i) in order.iter().enumerate() {
            if let Some(h) = kept(i) {
                if naming::is_valid_name(&h.name) && names.take_if_free(&h.name) {
                    given[k] = Some(&h.name);
                }
            }
        }
        let mut mtime = None;
        for (k, &i) in order.iter().enumerate() {
            let item = &items[i];
            let claimed;
            let name = match given[k] {
                Some(n) => n,
                None => {
                    let base = naming::file_base_name(&item.file_name, item.id.0, &item.mime_type);
                    claimed = names.claim_file(&base, item.id.0);
                    claimed.as_str()
                }
            };
            let ino = self.inos.alloc_kept_with(kept(i).map(|h| h.ino), || {
                format!("{key_prefix}{}", item.id).into_bytes()
            });
            self.push(ino, dir, name, NodeKind::File(i as u32), 0, 0);
            mtime = mtime.max(Some(item.date_taken_ms));
        }
        mtime
    }

    /// The tree: children lists by inode, then the nodes sorted by inode (the root, inode 1,
    /// comes first).
    fn finish(self, items: Arc<[Item]>) -> Tree {
        let Builder {
            slots,
            mut names,
            mut attrs,
            kids,
            inos,
        } = self;
        drop(inos);
        let name_of = |s: &Slot| names.get(s.name_range()).unwrap_or("");
        let mut children = InoMap::with_capacity_and_hasher(kids.len(), Default::default());
        for (dir, mut list) in kids {
            list.sort_unstable_by(|&a, &b| {
                name_of(&slots[a as usize]).cmp(name_of(&slots[b as usize]))
            });
            let inos: Box<[Ino]> = list.iter().map(|&k| slots[k as usize].ino).collect();
            children.insert(slots[dir as usize].ino, inos);
        }
        // Sort by inode; parents are slot indices, so they move with their slots.
        let mut order: Vec<u32> = (0..slots.len() as u32).collect();
        order.sort_unstable_by_key(|&i| slots[i as usize].ino);
        let mut moved_to = vec![0u32; slots.len()];
        for (new, &old) in order.iter().enumerate() {
            moved_to[old as usize] = new as u32;
        }
        let sorted: Vec<Slot> = order
            .iter()
            .map(|&old| {
                let mut s = slots[old as usize];
                s.parent = moved_to[s.parent as usize];
                s
            })
            .collect();
        drop((slots, order, moved_to));
        names.shrink_to_fit();
        attrs.shrink_to_fit();
        Tree {
            slots: sorted,
            names,
            attrs,
            items,
            starts: Box::default(),
            bits: 0,
            children,
        }
        .index()
    }
}

/// What a build handed out anew (see [`View::handed_changes`]): the items (by index) whose
/// names or inodes are new, made into [`HandedFile`]s one at a time by [`HandedChanges::files`]
/// (a first mount hands out every name: holding them all as `String`s would cost ~130 bytes an
/// item on top of the tree), and the album directories.
pub struct HandedChanges<'v> {
    view: &'v View,
    /// Per changed item: its index and its nodes under `albums/` and `by-date/`.
    files: Vec<(usize, [Option<u32>; 2])>,
    pub dirs: Vec<(AlbumId, HandedDir)>,
}

impl HandedChanges<'_> {
    /// The number of items with new names or inodes.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Whether nothing was handed out anew.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dirs.is_empty()
    }

    /// The items (by index) with what they are handed now.
    pub fn files(&self) -> impl Iterator<Item = (usize, HandedFile)> + '_ {
        self.files.iter().map(|&(i, [a, d])| {
            (
                i,
                HandedFile {
                    album: a.map(|n| self.view.handed_name(n)),
                    date: d.map(|n| self.view.handed_name(n)),
                },
            )
        })
    }
}

/// Names and inodes handed out by earlier builds, from the catalog: a build keeps them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kept<'a> {
    /// Per item, in the order of the items given to the build (or empty).
    pub files: &'a [HandedFile],
    pub dirs: Option<&'a HashMap<AlbumId, HandedDir>>,
}

/// The tree for one catalog snapshot. Immutable once built (a refresh builds a new one);
/// `Send + Sync`.
pub struct View {
    /// `recordings/`, when the account has recordings.
    recordings_ino: Option<Ino>,
    /// The album directories handed out, with the base names they came from.
    album_dirs: Vec<(AlbumId, HandedDir)>,
    items: Arc<[Item]>,
    tree: Tree,
    sums: Vec<SumsFile>,
    albums_ino: Ino,
    by_date_ino: Ino,
    file_count: usize,
}

impl View {
    /// Builds the tree. `items` is kept (file nodes index into it); `albums` is only read.
    /// Never fails: hostile names are made safe, items of unknown albums get a directory,
    /// duplicate album entries count once (the first).
    pub fn build(albums: &[Album], items: Arc<[Item]>, opts: &ViewOptions) -> View {
        View::build_kept(albums, items, Kept::default(), opts)
    }

    /// The tree of a catalog loaded from its store, keeping every name and inode it handed
    /// out before.
    pub fn of_catalog(catalog: &crate::catalog::Catalog, opts: &ViewOptions) -> View {
        View::build_kept(
            &catalog.albums,
            catalog.items.clone(),
            Kept {
                files: &catalog.handed,
                dirs: Some(&catalog.dirs),
            },
            opts,
        )
    }

    /// [`View::build`], keeping the names and inodes handed out before (see the module doc).
    pub fn build_kept(
        albums: &[Album],
        items: Arc<[Item]>,
        kept: Kept<'_>,
        opts: &ViewOptions,
    ) -> View {
        let kept_file = |i: usize| kept.files.get(i);
        let kept_album = |i: usize| kept_file(i).and_then(|h| h.album.as_ref());
        let kept_date = |i: usize| kept_file(i).and_then(|h| h.date.as_ref());
        let reserved = kept
            .files
            .iter()
            .flat_map(|h| [h.album.as_ref(), h.date.as_ref()])
            .flatten()
            .map(|h| h.ino)
            .chain(
                kept.dirs
                    .into_iter()
                    .flat_map(|d| d.values().map(|h| h.ino)),
            );
        let shown = |a: AlbumId| opts.include_private || a != AlbumId::PRIVATE;

        // Visible items in upload order: the order in which names are claimed.
        let is_recording = |i: usize| items[i].kind == MediaKind::Recording;
        let mut order: Vec<usize> = (0..items.len())
            .filter(|&i| !is_recording(i) && shown(items[i].album_id))
            .collect();
        order.sort_unstable_by_key(|&i| (items[i].create_time_ms, items[i].id, i));

        let mut listed: HashMap<AlbumId, &Album> = HashMap::new();
        for a in albums.iter().filter(|a| shown(a.id)) {
            listed.entry(a.id).or_insert(a);
        }
        let mut by_album: HashMap<AlbumId, Vec<usize>> = HashMap::new();
        for &i in &order {
            by_album.entry(items[i].album_id).or_default().push(i);
        }
        let mut album_ids: Vec<AlbumId> = listed.keys().chain(by_album.keys()).copied().collect();
        album_ids.sort_unstable_by_key(|a| (a.system_name().is_none(), *a));
        album_ids.dedup();

        let mut b = Builder {
            slots: Vec::with_capacity(2 * order.len() + album_ids.len() + 64),
            names: String::new(),
            attrs: Vec::new(),
            kids: HashMap::default(),
            inos: InoAllocator::with_reserved(2 * order.len() + album_ids.len() + 64, reserved),
        };
        let root = b.push(ROOT_INO, 0, "", NodeKind::Dir, 0, 0);
        let albums_dir = b.add(b"dir:albums", root, ALBUMS_DIR, NodeKind::Dir, 0, 0);
        let by_date_dir = b.add(b"dir:by-date", root, BY_DATE_DIR, NodeKind::Dir, 0, 0);

        // albums/
        let mut album_names = DirNames::new();
        album_names.reserve(SHA1SUMS_NAME);
        let mut albums_mtime: Option<i64> = None;
        let mut files_mtime: Option<i64> = None;
        let bases: Vec<String> = album_ids
            .iter()
            .map(|id| match id.system_name() {
                Some(s) => s.to_owned(),
                None => {
                    naming::album_base_name(listed.get(id).and_then(|a| a.name.as_deref()), id.0)
                }
            })
            .collect();
        // Directories handed out before keep their name while their base is the same (a
        // renamed album's directory moves to a name from its new base, keeping its inode).
        let kept_dir = |id: &AlbumId| kept.dirs.and_then(|d| d.get(id));
        let mut given: Vec<Option<String>> = vec![None; album_ids.len()];
        for (k, id) in album_ids.iter().enumerate() {
            if let Some(h) = kept_dir(id) {
                if h.base == bases[k]
                    && naming::is_valid_name(&h.name)
                    && !album_names.is_taken(&h.name)
                {
                    album_names.reserve(&h.name);
                    given[k] = Some(h.name.clone());
                }
            }
        }
        let mut album_dirs = Vec::with_capacity(album_ids.len());
        for (k, id) in album_ids.iter().enumerate() {
            let album = listed.get(id);
            let base = &bases[k];
            let name = match given[k].take() {
                Some(n) => n,
                None => album_names.claim_dir(base, id.0),
            };
            let key = format!("album-dir:{id}");
            let dir = b.add_kept(
                key.as_bytes(),
                kept_dir(id).map(|h| h.ino),
                albums_dir,
                &name,
                NodeKind::Dir,
                0,
                0,
            );
            album_dirs.push((
                *id,
                HandedDir {
                    base: base.clone(),
                    name,
                    ino: b.ino(dir),
                },
            ));
            let files = by_album.get(id).map(Vec::as_slice).unwrap_or(&[]);
            let mtime = b.add_files(dir, &items, files, "albums-file:", &kept_album);
            files_mtime = files_mtime.max(mtime);
            let dir_mtime = mtime
                .or_else(|| album.map(|a| a.last_update_ms))
                .unwrap_or(0);
            b.set_mtime(dir, dir_mtime);
            albums_mtime = albums_mtime.max(Some(dir_mtime));
        }
        let albums_sums = b.add(
            b"sha1sums:albums",
            albums_dir,
            SHA1SUMS_NAME,
            NodeKind::Sha1Sums,
            0,
            files_mtime.unwrap_or(0),
        );
        b.set_mtime(albums_dir, albums_mtime.unwrap_or(0));

        // by-date/
        let mut months: std::collections::BTreeMap<(i32, u32), Vec<usize>> = Default::default();
        for &i in &order {
            months
                .entry(dates::capture_month(&items[i], &opts.zone))
                .or_default()
                .push(i);
        }
        let mut by_date_mtime: Option<i64> = None;
        let mut year_dir: Option<(i32, u32, Option<i64>)> = None; // (year, node, mtime)
        for (&(year, month), files) in &months {
            let (y, ydir, ymtime) = match year_dir {
                Some(cur) if cur.0 == year => cur,
                prev => {
                    if let Some((_, node, m)) = prev {
                        b.set_mtime(node, m.unwrap_or(0));
                    }
                    let key = format!("dir:by-date/{year:04}");
                    let node = b.add(
                        key.as_bytes(),
                        by_date_dir,
                        &format!("{year:04}"),
                        NodeKind::Dir,
                        0,
                        0,
                    );
                    (year, node, None)
                }
            };
            let key = format!("dir:by-date/{year:04}/{month:02}");
            let mdir = b.add(
                key.as_bytes(),
                ydir,
                &format!("{month:02}"),
                NodeKind::Dir,
                0,
                0,
            );
            let mtime = b.add_files(mdir, &items, files, "by-date-file:", &kept_date);
            b.set_mtime(mdir, mtime.unwrap_or(0));
            by_date_mtime = by_date_mtime.max(mtime);
            year_dir = Some((y, ydir, ymtime.max(mtime)));
        }
        if let Some((_, node, m)) = year_dir {
            b.set_mtime(node, m.unwrap_or(0));
        }
        let by_date_sums = b.add(
            b"sha1sums:by-date",
            by_date_dir,
            SHA1SUMS_NAME,
            NodeKind::Sha1Sums,
            0,
            by_date_mtime.unwrap_or(0),
        );
        b.set_mtime(by_date_dir, by_date_mtime.unwrap_or(0));

        // recordings/<type>/, only when the account has recordings.
        let mut recs: Vec<usize> = (0..items.len()).filter(|&i| is_recording(i)).collect();
        recs.sort_unstable_by_key(|&i| (items[i].album_id, items[i].create_time_ms, items[i].id));
        let mut recordings_ino = None;
        let mut rec_mtime: Option<i64> = None;
        if !recs.is_empty() {
            let rdir = b.add(b"dir:recordings", root, RECORDINGS_DIR, NodeKind::Dir, 0, 0);
            recordings_ino = Some(b.ino(rdir));
            for group in recs.chunk_by(|&a, &c| items[a].album_id == items[c].album_id) {
                let kind = items[group[0]].album_id.0;
                let name = recording_dir_name(kind);
                let key = format!("dir:recordings/{name}");
                let dir = b.add(key.as_bytes(), rdir, &name, NodeKind::Dir, 0, 0);
                let mut order = group.to_vec();
                order.sort_unstable_by_key(|&i| (items[i].create_time_ms, items[i].id));
                let m = b.add_files(dir, &items, &order, "recordings-file:", &kept_album);
                b.set_mtime(dir, m.unwrap_or(0));
                rec_mtime = rec_mtime.max(m);
            }
            b.set_mtime(rdir, rec_mtime.unwrap_or(0));
        }
        b.set_mtime(
            root,
            albums_mtime.max(by_date_mtime).max(rec_mtime).unwrap_or(0),
        );

        let ino_of = |b: &Builder, idx: u32| b.ino(idx);
        let albums_ino = ino_of(&b, albums_dir);
        let by_date_ino = ino_of(&b, by_date_dir);
        let sums_nodes = [
            (ino_of(&b, albums_sums), albums_ino),
            (ino_of(&b, by_date_sums), by_date_ino),
        ];
        let mut tree = b.finish(Arc::clone(&items));

        let mut sums = Vec::with_capacity(2);
        for (ino, dir) in sums_nodes {
            let mut len = 0u64;
            tree.walk(&items, dir, &mut Vec::new(), &mut |parts, _| {
                len += sha1sums::line_len(parts);
            });
            tree.set_size(ino, len);
            sums.push(SumsFile {
                ino,
                dir,
                len,
                bytes: OnceLock::new(),
            });
        }

        View {
            recordings_ino,
            album_dirs,
            items,
            tree,
            sums,
            albums_ino,
            by_date_ino,
            file_count: order.len(),
        }
    }

    pub fn node(&self, ino: Ino) -> Option<Node<'_>> {
        self.tree.node(ino)
    }

    /// Every node, the root first.
    pub fn nodes(&self) -> impl Iterator<Item = Node<'_>> + '_ {
        (0..self.tree.slots.len()).map(|i| self.tree.at(i))
    }

    /// The child of directory `parent` whose name is exactly (case-sensitively) `name`.
    pub fn lookup(&self, parent: Ino, name: &str) -> Option<Node<'_>> {
        let kids = self.tree.children.get(&parent)?;
        let pos = kids
            .binary_search_by(|&k| match self.tree.position(k) {
                Some(i) => self
                    .tree
                    .name(&self.tree.slots[i])
                    .as_bytes()
                    .cmp(name.as_bytes()),
                None => Ordering::Less,
            })
            .ok()?;
        self.tree.node(kids[pos])
    }

    /// The children of a directory, sorted by name (byte order); `None` if `dir` is not a directory.
    pub fn children(&self, dir: Ino) -> Option<&[Ino]> {
        self.tree.children.get(&dir).map(|k| &**k)
    }

    /// All items the view was built from (including hidden ones); `NodeKind::File(i)` indexes it.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The item behind a file node.
    pub fn item(&self, ino: Ino) -> Option<&Item> {
        match self.node(ino)?.kind {
            NodeKind::File(i) => self.items.get(i as usize),
            _ => None,
        }
    }

    /// The bytes of a `SHA1SUMS` node, generated on the first call and then kept.
    pub fn sha1sums(&self, ino: Ino) -> Option<Arc<[u8]>> {
        let sums = self.sums.iter().find(|s| s.ino == ino)?;
        let bytes = sums.bytes.get_or_init(|| {
            let mut out = Vec::with_capacity(usize::try_from(sums.len).unwrap_or(0));
            self.tree.walk(
                &self.items,
                sums.dir,
                &mut Vec::new(),
                &mut |parts, item| sha1sums::write_line(&mut out, &item.sha1, parts),
            );
            debug_assert_eq!(out.len() as u64, sums.len);
            out.into()
        });
        Some(Arc::clone(bytes))
    }

    /// The number of media files under `albums/` (= under `by-date/`): the visible items.
    pub fn file_count(&self) -> usize {
        self.file_count
    }

    /// The number of nodes, the root included.
    pub fn node_count(&self) -> usize {
        self.tree.slots.len()
    }

    /// The inode of `albums/`.
    pub fn albums_ino(&self) -> Ino {
        self.albums_ino
    }

    /// The inode of `by-date/`.
    pub fn by_date_ino(&self) -> Ino {
        self.by_date_ino
    }

    /// What this build handed out: per item (in the order given to the build), its name and
    /// inode under `albums/` and under `by-date/` (both empty for a hidden item); and the
    /// album directories. The catalog stores them so that the next build keeps them.
    pub fn handed_out(&self) -> (Vec<HandedFile>, &[(AlbumId, HandedDir)]) {
        let files = self
            .handed_nodes()
            .into_iter()
            .map(|[a, d]| HandedFile {
                album: a.map(|n| self.handed_name(n)),
                date: d.map(|n| self.handed_name(n)),
            })
            .collect();
        (files, &self.album_dirs)
    }

    /// What [`View::handed_out`] differs in from `before` (what the catalog has): the items
    /// (by index) whose names or inodes are new, and the album directories that are. A warm
    /// remount hands out nothing new, and this costs it no string copy.
    pub fn handed_changes(
        &self,
        before: &[HandedFile],
        dirs_before: &HashMap<AlbumId, HandedDir>,
    ) -> HandedChanges<'_> {
        let same = |node: Option<u32>, old: &Option<HandedName>| match (node, old) {
            (None, None) => true,
            (Some(n), Some(h)) => {
                let s = &self.tree.slots[n as usize];
                s.ino == h.ino && self.tree.name(s) == h.name
            }
            _ => false,
        };
        let mut files = Vec::new();
        for (i, [a, d]) in self.handed_nodes().into_iter().enumerate() {
            let old = before.get(i);
            let unchanged = old.is_some_and(|h| same(a, &h.album) && same(d, &h.date));
            if !unchanged {
                files.push((i, [a, d]));
            }
        }
        let dirs = self
            .album_dirs
            .iter()
            .filter(|(id, d)| dirs_before.get(id) != Some(d))
            .cloned()
            .collect();
        HandedChanges {
            view: self,
            files,
            dirs,
        }
    }

    fn handed_name(&self, node: u32) -> HandedName {
        let s = &self.tree.slots[node as usize];
        HandedName {
            name: self.tree.name(s).to_owned(),
            ino: s.ino,
        }
    }

    /// Per item, the node indices of its file under `albums/` (or `recordings/`) and under
    /// `by-date/`.
    fn handed_nodes(&self) -> Vec<[Option<u32>; 2]> {
        let mut out = vec![[None, None]; self.items.len()];
        let slots = &self.tree.slots;
        for (idx, s) in slots.iter().enumerate() {
            if s.kind != SLOT_FILE {
                continue;
            }
            let Some(slot) = out.get_mut(s.data as usize) else {
                continue;
            };
            // Files under albums/<album>/ and recordings/<type>/ keep their name in `album`.
            let grandparent = slots
                .get(s.parent as usize)
                .and_then(|dir| slots.get(dir.parent as usize))
                .map(|g| g.ino);
            let in_albums =
                grandparent.is_some_and(|g| g == self.albums_ino || Some(g) == self.recordings_ino);
            slot[usize::from(!in_albums)] = Some(idx as u32);
        }
        out
    }

    /// The path of a node relative to the mount root (`albums/Camera/a.jpg`; "" for the root),
    /// for logs and tests.
    pub fn path(&self, ino: Ino) -> Option<String> {
        let mut parts: Vec<&str> = Vec::new();
        let mut node = self.node(ino)?;
        while node.ino != ROOT_INO {
            parts.push(node.name);
            node = self.node(node.parent)?;
        }
        parts.reverse();
        Some(parts.join("/"))
    }
}
