//! The directory tree shown by the mount, computed from the catalog. Pure: no I/O, no FUSE.
//! (HELPER: replace this doc with the real design notes and numbers.)

use std::sync::Arc;

use crate::model::{Album, Item};

/// A FUSE inode number. 1 is the root.
pub type Ino = u64;
pub const ROOT_INO: Ino = 1;

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
    /// Show album 1000 (the private album) under `albums/Private`.
    pub include_private: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    /// A media file: the index of its item in `View::items()`.
    File(usize),
    /// A generated `SHA1SUMS` file; its bytes come from `View::sha1sums`.
    Sha1Sums,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub ino: Ino,
    pub parent: Ino,
    /// The safe, unique name in its parent directory (the root's name is "").
    pub name: String,
    pub kind: NodeKind,
    /// Exact size in bytes (0 for directories).
    pub size: u64,
    /// Modification time, milliseconds since the epoch.
    pub mtime_ms: i64,
}

pub struct View {
    _items: Arc<[Item]>,
}

impl View {
    pub fn build(_albums: &[Album], _items: Arc<[Item]>, _opts: &ViewOptions) -> View {
        todo!()
    }
    pub fn node(&self, _ino: Ino) -> Option<&Node> {
        todo!()
    }
    pub fn lookup(&self, _parent: Ino, _name: &str) -> Option<&Node> {
        todo!()
    }
    /// The children of a directory, sorted by name (byte order); `None` if `dir` is not a directory.
    pub fn children(&self, _dir: Ino) -> Option<&[Ino]> {
        todo!()
    }
    pub fn items(&self) -> &[Item] {
        todo!()
    }
    /// The item behind a file node.
    pub fn item(&self, _ino: Ino) -> Option<&Item> {
        todo!()
    }
    /// The bytes of a `SHA1SUMS` node.
    pub fn sha1sums(&self, _ino: Ino) -> Option<Arc<[u8]>> {
        todo!()
    }
}
