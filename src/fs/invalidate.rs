//! Telling the kernel what a refresh changed, so that `ls` shows it at once despite the long
//! entry and attribute TTLs and the cached directory pages (`FOPEN_CACHE_DIR`).
//!
//! Comparing the old and the new tree node by node (O(n), a few milliseconds for 100 000
//! items), it sends:
//! - `inval_entry(parent, name)` for every name that is gone or now points at another inode
//!   (deleted items, renamed album directories, names of removed directories);
//! - `inval_inode(dir)` for every directory whose entries changed (drops its cached pages
//!   and attributes);
//! - `inval_inode(ino)` for every node still there whose size or mtime changed (`SHA1SUMS`,
//!   directories' mtimes).
//!
//! Unchanged nodes cost nothing, and their names and inodes are the same in both trees
//! (see `view`), so whatever the kernel cached for them stays right. Errors are ignored:
//! the kernel answers ENOENT for an entry it does not have cached.

use std::ffi::OsStr;

use fuser::{INodeNo, Notifier};

use crate::view::{Ino, View};

/// What would be sent; returned for tests and logs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Invalidations {
    pub entries: Vec<(Ino, String)>,
    pub inodes: Vec<Ino>,
}

/// The invalidations that take the kernel from `old` to `new`.
pub fn diff(old: &View, new: &View) -> Invalidations {
    let mut out = Invalidations::default();
    for n in old.nodes() {
        match new.node(n.ino) {
            None => {
                if n.ino != n.parent {
                    out.entries.push((n.parent, n.name.to_string()));
                }
            }
            Some(m) => {
                if m.parent != n.parent || m.name != n.name {
                    out.entries.push((n.parent, n.name.to_string()));
                }
                let dir_changed = match (old.children(n.ino), new.children(n.ino)) {
                    (Some(a), Some(b)) => {
                        a != b
                            || a.iter().any(|&k| {
                                old.node(k).map(|x| x.name) != new.node(k).map(|x| x.name)
                            })
                    }
                    (None, None) => false,
                    _ => true,
                };
                if dir_changed || m.size != n.size || m.mtime_ms != n.mtime_ms {
                    out.inodes.push(n.ino);
                }
            }
        }
    }
    out
}

/// Sends the invalidations from `old` to `new`; returns how many were sent.
pub fn invalidate(notifier: &Notifier, old: &View, new: &View) -> usize {
    let inv = diff(old, new);
    for (parent, name) in &inv.entries {
        let _ = notifier.inval_entry(INodeNo(*parent), OsStr::new(name));
    }
    for ino in &inv.inodes {
        let _ = notifier.inval_inode(INodeNo(*ino), 0, 0);
    }
    inv.entries.len() + inv.inodes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Album, AlbumId, Item, ItemId, MediaKind, Sha1Digest};
    use crate::view::{Kept, ViewOptions};

    fn item(id: u64, album: u64, name: &str) -> Item {
        Item {
            id: ItemId(id),
            album_id: AlbumId(album),
            file_name: name.into(),
            kind: MediaKind::Image,
            mime_type: "image/jpeg".into(),
            size: 10,
            sha1: Sha1Digest([id as u8; 20]),
            date_taken_ms: 1_700_000_000_000,
            create_time_ms: id as i64,
            exif_date_time: None,
        }
    }

    fn opts() -> ViewOptions {
        ViewOptions {
            zone: crate::view::DateZone::Named(chrono_tz::UTC),
            include_private: false,
        }
    }

    #[test]
    fn a_deletion_and_an_upload_invalidate_only_what_changed() {
        let albums = vec![Album {
            id: AlbumId(1),
            name: None,
            media_count: 2,
            last_update_ms: 0,
        }];
        let old = View::build(
            &albums,
            vec![item(1, 1, "a.jpg"), item(2, 1, "b.jpg")].into(),
            &opts(),
        );
        let (handed, _) = old.handed_out();
        // Item 2 deleted, item 3 uploaded; item 1 keeps what it was handed.
        let new = View::build_kept(
            &albums,
            vec![item(1, 1, "a.jpg"), item(3, 1, "c.jpg")].into(),
            Kept {
                files: &[handed[0].clone(), Default::default()],
                dirs: None,
            },
            &opts(),
        );
        let inv = diff(&old, &new);
        let camera = old.lookup(old.albums_ino(), "Camera").unwrap().ino;
        assert!(inv.entries.contains(&(camera, "b.jpg".to_string())));
        assert!(!inv.entries.iter().any(|(_, n)| n == "a.jpg"));
        assert!(inv.inodes.contains(&camera));
        let a = old.lookup(camera, "a.jpg").unwrap().ino;
        assert!(!inv.inodes.contains(&a));
        assert_eq!(new.lookup(camera, "a.jpg").unwrap().ino, a);
        // SHA1SUMS changed size: invalidated.
        let sums = old.lookup(old.albums_ino(), "SHA1SUMS").unwrap().ino;
        assert!(
            inv.inodes.contains(&sums) || {
                let o = old.node(sums).unwrap();
                let n = new.node(sums).unwrap();
                o.size == n.size && o.mtime_ms == n.mtime_ms
            }
        );
        assert!(diff(&new, &new).entries.is_empty());
        assert!(diff(&new, &new).inodes.is_empty());
    }
}
