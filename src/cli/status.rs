//! The daemon's status file, `<cache dir>/status.json`, and `micloudfs status`.
//!
//! The daemon writes it when the mount goes live and after every refresh (and the first
//! sync): the catalog's state as one JSON object ([`Status`]): last sync time and result,
//! albums whose listing is incomplete with the reason, items and bytes in the catalog, bytes
//! in the content cache. It is written whole through [`crate::private_file::write`] (a
//! temporary file, fsync, rename; mode 0600): a reader never sees half a file, and nobody
//! else can read the gallery's numbers. It is left in place at unmount with `"state":
//! "unmounted"`, so the last known state stays readable.
//!
//! `micloudfs status [MOUNTPOINT]` prints it. With a mount point it asks the running mount
//! where its file is (the root's `user.micloudfs.status` attribute); without, it reads the
//! cache dir's (`--cache-dir`, default `~/.cache/micloudfs`). One cache dir is meant for one
//! mount at a time: two mounts sharing one overwrite each other's status.
//!
//! Summing the cache is a walk of `objects/` (two levels, one `stat` per object: ~50 ms for
//! 100 000 objects), done off the FUSE threads.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::catalog::{AlbumState, Store, StoreError};

/// The file name under the cache dir.
pub(crate) const STATUS_FILE: &str = "status.json";

/// One album whose listing did not complete.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Incomplete {
    /// The album id (a string: 17-digit ids do not survive a JSON float).
    pub album: String,
    /// The directory it is shown as under `albums/`, when it has one.
    pub name: Option<String>,
    pub reason: String,
}

/// What the status file says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Status {
    /// `mounted` while the daemon serves the mount, `unmounted` after.
    pub state: String,
    pub pid: u32,
    pub mountpoint: String,
    /// When this file was written (RFC 3339, UTC).
    pub updated: String,
    /// When the catalog was last synced with the service (RFC 3339), if ever.
    pub last_sync: Option<String>,
    /// How the last sync or refresh went (`ok: ...`, `offline: ...`, `failed: ...`), or how the
    /// mount was served when none has run since it started.
    pub last_result: String,
    pub items: u64,
    pub recordings: u64,
    pub albums: u64,
    /// Bytes of every item and recording in the catalog.
    pub bytes: u64,
    pub incomplete: Vec<Incomplete>,
    /// Objects and bytes in the content cache.
    pub cached_objects: u64,
    pub cached_bytes: u64,
}

/// What the daemon knows when it writes the file (besides the catalog).
pub(crate) struct StatusWriter {
    pub cache_dir: PathBuf,
    pub mountpoint: PathBuf,
}

impl StatusWriter {
    pub(crate) fn path(&self) -> PathBuf {
        self.cache_dir.join(STATUS_FILE)
    }

    /// The status of a mount serving the catalog in `store`, after `result`. Reads only the
    /// albums and per-album sums (no item rows): ~20 ms at 100 000 items.
    pub(crate) fn status(
        &self,
        store: &Store,
        state: &str,
        result: &str,
    ) -> Result<Status, StoreError> {
        let rfc3339 = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        };
        let albums = store.albums()?;
        let totals = store.album_totals()?;
        let recordings = store.recordings()?;
        let last_sync = store
            .meta("last_sync_ms")?
            .and_then(|ms| ms.parse().ok())
            .and_then(rfc3339);
        let (cached_objects, cached_bytes) = cache_usage(&self.cache_dir.join("objects"));
        let items: u64 = totals.values().map(|t| t.0).sum();
        let bytes = totals
            .values()
            .map(|t| t.1)
            .chain(recordings.iter().map(|r| r.entry.size))
            .fold(0u64, u64::saturating_add);
        let incomplete = albums
            .iter()
            .filter_map(|r| {
                let reason = match r.state {
                    AlbumState::Complete => return None,
                    AlbumState::Pending => "not listed completely yet".to_string(),
                    AlbumState::Failed => {
                        r.error.clone().unwrap_or_else(|| "listing failed".into())
                    }
                };
                Some(Incomplete {
                    album: r.album.id.to_string(),
                    name: r.dir.as_ref().map(|d| d.name.clone()),
                    reason,
                })
            })
            .collect();
        Ok(Status {
            state: state.to_string(),
            pid: std::process::id(),
            mountpoint: self.mountpoint.display().to_string(),
            updated: rfc3339(chrono::Utc::now().timestamp_millis()).unwrap_or_default(),
            last_sync,
            last_result: result.to_string(),
            items,
            recordings: recordings.len() as u64,
            albums: albums.len() as u64,
            bytes,
            incomplete,
            cached_objects,
            cached_bytes,
        })
    }

    /// [`StatusWriter::status`] then [`StatusWriter::write`]; a failure is logged.
    pub(crate) fn update(&self, store: &Store, state: &str, result: &str) {
        match self.status(store, state, result) {
            Ok(s) => self.write(&s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the catalog for the status file; `micloudfs status` will show an older state")
            }
        }
    }

    /// Writes `status` atomically (0600). A failure is logged, never fatal: the mount serves on.
    pub(crate) fn write(&self, status: &Status) {
        let path = self.path();
        let written = serde_json::to_vec_pretty(status)
            .map_err(std::io::Error::other)
            .and_then(|mut bytes| {
                bytes.push(b'\n');
                crate::private_file::write(&path, &bytes)
            });
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the status file; `micloudfs status` will show an older state (check the cache dir's space and permissions)");
        }
    }

    /// Marks the file `unmounted`, keeping the rest (called at unmount).
    pub(crate) fn unmounted(&self) {
        if let Ok(mut s) = read(&self.path()) {
            if s.pid == std::process::id() {
                s.state = "unmounted".into();
                self.write(&s);
            }
        }
    }
}

/// Objects and bytes under `objects/<2 hex>/<40 hex>` (partial downloads and strays are not
/// counted: they are not named by a SHA-1).
pub(crate) fn cache_usage(objects: &Path) -> (u64, u64) {
    let (mut n, mut bytes) = (0u64, 0u64);
    let Ok(dirs) = std::fs::read_dir(objects) else {
        return (0, 0);
    };
    for d in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(d.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name();
            let is_object = name.len() == 40
                && name
                    .as_encoded_bytes()
                    .iter()
                    .all(|b| b.is_ascii_hexdigit());
            if !is_object {
                continue;
            }
            if let Ok(m) = f.metadata() {
                if m.is_file() {
                    n += 1;
                    bytes = bytes.saturating_add(m.len());
                }
            }
        }
    }
    (n, bytes)
}

/// Reads a status file.
pub(crate) fn read(path: &Path) -> Result<Status, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read the status file {} ({e}); is a mount (or was one) using this cache dir? Give --cache-dir or the mount point",
            path.display()
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "the status file {} is not what micloudfs writes ({e}); remount to rewrite it",
            path.display()
        )
    })
}

/// The lines `micloudfs status` prints.
pub(crate) fn render(s: &Status) -> String {
    let human = |b: u64| bytesize::ByteSize(b).to_string();
    let mut out = format!(
        "{} at {} (pid {}), as of {}\n",
        s.state, s.mountpoint, s.pid, s.updated
    );
    out.push_str(&format!(
        "catalog: {} items in {} albums, {} recordings, {}\n",
        s.items,
        s.albums,
        s.recordings,
        human(s.bytes)
    ));
    out.push_str(&format!(
        "cached: {} objects, {}\n",
        s.cached_objects,
        human(s.cached_bytes)
    ));
    out.push_str(&format!(
        "last sync: {}\nlast result: {}\n",
        s.last_sync.as_deref().unwrap_or("never"),
        s.last_result
    ));
    if s.incomplete.is_empty() {
        out.push_str("every album is listed completely\n");
    } else {
        out.push_str(&format!(
            "incomplete albums ({}); the next refresh tries them again:\n",
            s.incomplete.len()
        ));
        for i in &s.incomplete {
            out.push_str(&format!(
                "  {} (album {}): {}\n",
                i.name.as_deref().unwrap_or("?"),
                i.album,
                i.reason
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Album, AlbumId};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn written_whole_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects/ab");
        std::fs::create_dir_all(&objects).unwrap();
        std::fs::write(objects.join("ab".repeat(20)), b"12345").unwrap();
        std::fs::write(objects.join("partial.tmp"), b"123").unwrap();
        let mut store = Store::open(&dir.path().join("catalog/a.db")).unwrap();
        let album = |id, name: &str| Album {
            id: AlbumId(id),
            name: Some(name.into()),
            media_count: 3,
            last_update_ms: 0,
        };
        store
            .write(|tx| {
                tx.upsert_album(&album(77, "Trip"))?;
                tx.upsert_album(&album(78, "Home"))?;
                tx.set_album_state(AlbumId(77), AlbumState::Failed, None, Some("HTTP 503"))?;
                tx.set_album_state(AlbumId(78), AlbumState::Complete, None, None)?;
                tx.set_meta("last_sync_ms", "0")
            })
            .unwrap();
        let w = StatusWriter {
            cache_dir: dir.path().to_path_buf(),
            mountpoint: "/mnt/x".into(),
        };
        let s = w.status(&store, "mounted", "ok: 2 albums").unwrap();
        assert_eq!((s.cached_objects, s.cached_bytes), (1, 5));
        assert_eq!(s.last_sync.as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(s.albums, 2);
        assert_eq!(
            s.incomplete,
            vec![Incomplete {
                album: "77".into(),
                name: None,
                reason: "HTTP 503".into()
            }]
        );
        w.write(&s);
        let mode = std::fs::metadata(w.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&w.path()).unwrap(), s);
        let text = render(&s);
        assert!(text.contains("incomplete albums (1)"), "{text}");
        assert!(text.contains("(album 77): HTTP 503"), "{text}");
        w.unmounted();
        assert_eq!(read(&w.path()).unwrap().state, "unmounted");
        assert!(read(&dir.path().join("none.json")).is_err());
    }
}
