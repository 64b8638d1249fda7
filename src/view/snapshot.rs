//! The built tree as bytes: what a warm start reads instead of loading the catalog and
//! building the tree again.
//!
//! Building the tree of 100 000 items from the catalog takes ~0.8 s (~0.25 s reading the
//! rows, ~0.55 s keeping every name and inode), and it grows faster than linearly (13.6 s at
//! 1 000 000). Decoding this snapshot takes a few tens of milliseconds at 100 000 items: the
//! slots, names and children are the tree's own arrays, and only the radix table is made again.
//!
//! **Layout.** `MAGIC`, then a [`Header`] and the payload, both in `postcard` (a compact serde
//! encoding: varints, no field names; the slots as one string of fixed 23-byte records, the
//! children lists as slot indices, so that neither needs a look-up to decode or check), then
//! the SHA-1 of everything before it. ~200 bytes an
//! item (an item ~80, two slots 46, two names ~46, children 8): ~20 MB at 100 000.
//!
//! **Trust.** A snapshot is used only when all of these hold, else the tree is built as
//! before (and the reason logged):
//! - the trailer's SHA-1 matches (a torn or damaged file is never decoded);
//! - the header is the one expected: same format, same program version, same catalog
//!   ([`Stamp`](crate::catalog::Stamp): the catalog file's random id and change counter, which
//!   SQLite triggers raise on every change of albums, items and recordings) and same options
//!   (date zone, private album);
//! - the decoded tree passes [`Tree::check`]: slots sorted by inode, every parent, name, item
//!   and attribute index in range, names valid, children sorted and pointing back at their
//!   directory. A snapshot is never a way to serve a node the tree could not have.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize, Serializer};
use sha1::{Digest, Sha1};

use super::{Ino, InoMap, Item, Slot, SumsFile, Tree, View};
use crate::catalog::{HandedDir, Summary};
use crate::model::{AlbumId, ItemId, MediaKind, Sha1Digest};

/// The first bytes of a snapshot file.
pub const MAGIC: &[u8; 16] = b"micloudfs-tree\n\0";
/// Raised whenever the payload's shape changes.
pub const FORMAT: u32 = 1;

/// What a snapshot was made of; a warm start uses it only when it is exactly the expected one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    /// The program's version (`CARGO_PKG_VERSION`).
    pub version: String,
    pub catalog_id: u64,
    pub generation: u64,
    /// The view options as text (see `cli::snapshot`).
    pub options: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("the file is damaged ({0})")]
    Damaged(&'static str),
    #[error("it was made of {0}")]
    Stale(String),
    #[error("it does not decode ({0})")]
    Malformed(String),
    #[error("its tree is inconsistent ({0})")]
    Inconsistent(&'static str),
}

/// An item as stored: its MIME type is an index in the payload's table.
#[derive(Serialize, Deserialize)]
struct ItemRec<S> {
    id: u64,
    album: u64,
    file_name: S,
    kind: u8,
    mime: u32,
    size: u64,
    sha1: [u8; 20],
    taken: i64,
    created: i64,
    exif: Option<S>,
}

/// The payload as written, borrowing the view.
#[derive(Serialize)]
struct PayloadOut<'a> {
    summary: &'a Summary,
    mimes: Vec<&'a str>,
    items: ItemsOut<'a>,
    /// `Slot::BYTES` per slot.
    #[serde(with = "serde_bytes")]
    slots: Vec<u8>,
    names: &'a str,
    attrs: &'a [(u64, i64)],
    /// (directory slot, its children's slots), by directory slot.
    children: Vec<(u32, Vec<u32>)>,
    sums: Vec<(Ino, Ino, u64)>,
    recordings_ino: Option<Ino>,
    album_dirs: Vec<(u64, &'a str, &'a str, u64)>,
    albums_ino: Ino,
    by_date_ino: Ino,
    file_count: u64,
}

/// The payload as read: the same fields, in the same order, owned.
#[derive(Deserialize)]
struct PayloadIn {
    summary: Summary,
    mimes: Vec<String>,
    items: Vec<ItemRec<String>>,
    #[serde(with = "serde_bytes")]
    slots: Vec<u8>,
    names: String,
    attrs: Vec<(u64, i64)>,
    children: Vec<(u32, Box<[u32]>)>,
    sums: Vec<(Ino, Ino, u64)>,
    recordings_ino: Option<Ino>,
    album_dirs: Vec<(u64, String, String, u64)>,
    albums_ino: Ino,
    by_date_ino: Ino,
    file_count: u64,
}

/// The items, written one by one (no copy of the list).
struct ItemsOut<'a> {
    items: &'a [Item],
    mime_index: HashMap<&'a str, u32>,
}

impl Serialize for ItemsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.items.iter().map(|it| ItemRec {
            id: it.id.0,
            album: it.album_id.0,
            file_name: it.file_name.as_str(),
            kind: it.kind.code(),
            mime: self.mime_index.get(&*it.mime_type).copied().unwrap_or(0),
            size: it.size,
            sha1: it.sha1.0,
            taken: it.date_taken_ms,
            created: it.create_time_ms,
            exif: it.exif_date_time.as_deref(),
        }))
    }
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    sha1: Sha1,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha1.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn encode_err(e: postcard::Error) -> std::io::Error {
    std::io::Error::other(format!("cannot encode the tree: {e}"))
}

/// Writes `view` and `summary` with `header` to `out` (the whole file).
pub fn encode(
    view: &View,
    summary: &Summary,
    header: &Header,
    out: impl Write,
) -> std::io::Result<()> {
    let mut mimes: Vec<&str> = Vec::new();
    let mut mime_index: HashMap<&str, u32> = HashMap::new();
    for it in view.items.iter() {
        let m: &str = &it.mime_type;
        if !mime_index.contains_key(m) {
            mime_index.insert(m, mimes.len() as u32);
            mimes.push(m);
        }
    }
    let tree = &view.tree;
    let payload = PayloadOut {
        summary,
        mimes,
        items: ItemsOut {
            items: &view.items,
            mime_index,
        },
        slots: tree.slots.iter().flat_map(|s| s.to_bytes()).collect(),
        names: &tree.names,
        attrs: &tree.attrs,
        children: children_slots(tree),
        sums: view.sums.iter().map(|s| (s.ino, s.dir, s.len)).collect(),
        recordings_ino: view.recordings_ino,
        album_dirs: view
            .album_dirs
            .iter()
            .map(|(id, d)| (id.0, d.base.as_str(), d.name.as_str(), d.ino))
            .collect(),
        albums_ino: view.albums_ino,
        by_date_ino: view.by_date_ino,
        file_count: view.file_count as u64,
    };
    let mut w = Hashing {
        inner: out,
        sha1: Sha1::new(),
    };
    w.write_all(MAGIC)?;
    postcard::to_io(header, &mut w).map_err(encode_err)?;
    postcard::to_io(&payload, &mut w).map_err(encode_err)?;
    let digest = w.sha1.finalize();
    w.inner.write_all(&digest)?;
    w.inner.flush()
}

/// The children lists as slot indices, by directory slot (so the same tree always gives the
/// same bytes).
fn children_slots(tree: &Tree) -> Vec<(u32, Vec<u32>)> {
    let slot = |ino: &Ino| tree.position(*ino).map_or(u32::MAX, |i| i as u32);
    let mut lists: Vec<(u32, Vec<u32>)> = tree
        .children
        .iter()
        .map(|(dir, kids)| (slot(dir), kids.iter().map(slot).collect()))
        .collect();
    lists.sort_unstable_by_key(|(d, _)| *d);
    lists
}

/// Reads a snapshot made with `expect`'s header. The checks are in the module doc.
pub fn decode(bytes: &[u8], expect: &Header) -> Result<(View, Summary), SnapshotError> {
    let body_len = bytes
        .len()
        .checked_sub(20)
        .filter(|&n| n >= MAGIC.len())
        .ok_or(SnapshotError::Damaged("too short"))?;
    let (body, trailer) = bytes.split_at(body_len);
    if Sha1::digest(body).as_slice() != trailer {
        return Err(SnapshotError::Damaged("checksum mismatch"));
    }
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(SnapshotError::Damaged("not a tree snapshot"))?;
    let (header, rest) = postcard::take_from_bytes::<Header>(rest)
        .map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    if header != *expect {
        return Err(SnapshotError::Stale(describe_difference(&header, expect)));
    }
    let t0 = std::time::Instant::now();
    let p: PayloadIn =
        postcard::from_bytes(rest).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    let t1 = std::time::Instant::now();

    let mimes: Vec<Arc<str>> = p.mimes.into_iter().map(Arc::from).collect();
    let mut items = Vec::with_capacity(p.items.len());
    for r in p.items {
        let mime_type = mimes
            .get(r.mime as usize)
            .cloned()
            .ok_or(SnapshotError::Inconsistent(
                "an item's MIME type is not listed",
            ))?;
        items.push(Item {
            id: ItemId(r.id),
            album_id: AlbumId(r.album),
            file_name: r.file_name,
            kind: MediaKind::from_code(r.kind),
            mime_type,
            size: r.size,
            sha1: Sha1Digest(r.sha1),
            date_taken_ms: r.taken,
            create_time_ms: r.created,
            exif_date_time: r.exif,
        });
    }
    let items: Arc<[Item]> = items.into();
    let chunks = p.slots.chunks_exact(Slot::BYTES);
    if !chunks.remainder().is_empty() {
        return Err(SnapshotError::Inconsistent("a cut slot"));
    }
    let slots: Vec<Slot> = chunks
        .map(|c| Slot::from_bytes(c.try_into().unwrap_or(&[0; Slot::BYTES])))
        .collect();
    let tree = Tree {
        slots,
        names: p.names,
        attrs: p.attrs,
        items: Arc::clone(&items),
        starts: Box::default(),
        bits: 0,
        children: InoMap::default(),
    };
    let t2 = std::time::Instant::now();
    tree.check_slots().map_err(SnapshotError::Inconsistent)?;
    tree.check_children(&p.children)
        .map_err(SnapshotError::Inconsistent)?;
    let mut tree = tree.index();
    let mut children = InoMap::with_capacity_and_hasher(p.children.len(), Default::default());
    for (dir, kids) in p.children {
        let ino = |i: u32| tree.slots[i as usize].ino;
        children.insert(ino(dir), kids.iter().map(|&k| ino(k)).collect());
    }
    tree.children = children;
    tracing::debug!(
        decode_ms = (t1 - t0).as_millis() as u64,
        items_ms = (t2 - t1).as_millis() as u64,
        check_ms = t2.elapsed().as_millis() as u64,
        "tree snapshot decoded"
    );
    let is = |ino: Ino, kind: u8| {
        tree.position(ino)
            .is_some_and(|i| tree.slots[i].kind == kind)
    };
    if !is(p.albums_ino, super::SLOT_DIR)
        || !is(p.by_date_ino, super::SLOT_DIR)
        || p.recordings_ino.is_some_and(|r| !is(r, super::SLOT_DIR))
    {
        return Err(SnapshotError::Inconsistent("a top directory is missing"));
    }
    let mut sums = Vec::with_capacity(p.sums.len());
    for (ino, dir, len) in p.sums {
        if !is(ino, super::SLOT_SUMS) || !is(dir, super::SLOT_DIR) {
            return Err(SnapshotError::Inconsistent("a SHA1SUMS node is missing"));
        }
        sums.push(SumsFile {
            ino,
            dir,
            len,
            bytes: OnceLock::new(),
        });
    }
    let album_dirs = p
        .album_dirs
        .into_iter()
        .map(|(id, base, name, ino)| (AlbumId(id), HandedDir { base, name, ino }))
        .collect();
    let view = View {
        recordings_ino: p.recordings_ino,
        album_dirs,
        items,
        tree,
        sums,
        albums_ino: p.albums_ino,
        by_date_ino: p.by_date_ino,
        file_count: usize::try_from(p.file_count)
            .map_err(|_| SnapshotError::Inconsistent("file count"))?,
    };
    Ok((view, p.summary))
}

/// Which header field made a snapshot stale, for the log.
fn describe_difference(found: &Header, expect: &Header) -> String {
    if found.format != expect.format || found.version != expect.version {
        format!(
            "another build (version {}, format {})",
            found.version, found.format
        )
    } else if found.catalog_id != expect.catalog_id {
        "another catalog".into()
    } else if found.generation != expect.generation {
        format!(
            "an older state of the catalog (change {} of {})",
            found.generation, expect.generation
        )
    } else {
        format!("other options ({})", found.options)
    }
}

#[cfg(test)]
mod tests;
