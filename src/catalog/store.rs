//! The catalog on disk: one SQLite database per account (`<cache dir>/catalog/<account>.db`).
//!
//! **Why SQLite** (through `rusqlite`, with the library compiled in): it is the most tested
//! crash-safe embedded store there is (atomic commits through its write-ahead log, recovery on
//! open after a crash or a power cut), it answers the `ls`/`stats` questions (counts and bytes
//! per album, type and year) with a query instead of a hand-written index, and a user can open
//! the file with the `sqlite3` tool when something looks wrong. redb would have been the pure
//! Rust choice; it lacks the ad hoc queries and the outside tooling, and compiling SQLite's C
//! costs the build about 30 s once.
//!
//! **Crash safety.** WAL journal, `synchronous=NORMAL`: a crash of the process (SIGKILL) loses
//! nothing that was committed, a power cut at most the last commits, and the file always opens
//! in a consistent state. Every change is one transaction: a listed album (or one date range of
//! a big album) with its items, a refresh's changes to one album, the names handed out by one
//! build of the tree. So a sync killed at any point resumes from the last commit.
//!
//! **Tables.**
//! - `meta(key, value)`: schema version, when the first sync completed, the last refresh.
//! - `albums`: the album as listed, its listing `state` (`pending` until listed completely,
//!   `complete`, or `failed` with the `error`), the `cursor` (the `allitems` tag the listing is
//!   current to, when the service has cursors), and the directory name and inode handed out
//!   (`dir_base` is the safe name it was derived from: when the album is renamed the base
//!   changes and the directory moves, keeping its inode).
//! - `items`: the item as listed plus the names and inodes handed out under `albums/` and
//!   `by-date/`, which later builds keep (a name or an inode never changes for an item while
//!   it exists; see `view`).
//! - `ranges`: the date ranges of a big album already listed in a first sync that has not
//!   finished (so an interrupted sync resumes without listing them again).
//! - `recordings`: voice, call, FM and app recordings with the name handed out.
//! - `generation(id, n)`: one row: a random `id` drawn when the catalog file is made and a
//!   counter `n` that triggers on `albums`, `items` and `recordings` raise on every insert,
//!   delete and update that changes a value (but an album's cursor), whoever writes (this
//!   program, an older build, the `sqlite3` tool).
//!   The pair is the catalog's [`Stamp`]: the snapshot of the built tree (`snapshot`) is
//!   trusted only when it carries the stamp the catalog has now. The triggers cost a
//!   one-row update per changed row, inside the same transaction (~2 % of a first sync's
//!   writes).
//!
//! Ids are `u64` on our side and SQLite integers are `i64`: they are stored bit for bit
//! (`as i64`, `as u64` back), so ids above 2^63 survive.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::cloud::RecordingEntry;
use crate::model::{Album, AlbumId, Item, ItemId, MediaKind, MimeTable, Sha1Digest};

/// Bumped when the schema changes incompatibly: an older catalog is then rebuilt by a full sync.
const SCHEMA_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the catalog {path} cannot be opened or written ({source}); remove it to list the gallery again, or choose another --cache-dir")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the catalog folder {path}: {source}; choose another --cache-dir")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the catalog work was stopped: the daemon is shutting down")]
    Stopped,
}

impl StoreError {
    /// A blocking catalog task that did not finish: its panic goes on, a cancellation (the
    /// runtime shutting down at unmount) is [`StoreError::Stopped`].
    pub fn from_join(e: tokio::task::JoinError) -> StoreError {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic())
        }
        StoreError::Stopped
    }
}

/// How far an album's listing got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlbumState {
    /// Not listed completely yet (a first sync in progress or interrupted).
    Pending,
    Complete,
    /// Its listing failed after retries; what the catalog has of it is shown, marked incomplete.
    Failed,
}

impl AlbumState {
    fn as_str(self) -> &'static str {
        match self {
            AlbumState::Pending => "pending",
            AlbumState::Complete => "complete",
            AlbumState::Failed => "failed",
        }
    }
    fn parse(s: &str) -> AlbumState {
        match s {
            "complete" => AlbumState::Complete,
            "failed" => AlbumState::Failed,
            _ => AlbumState::Pending,
        }
    }
}

/// An album row: the album, its sync state and the directory handed out.
#[derive(Clone, Debug)]
pub struct AlbumRow {
    pub album: Album,
    pub state: AlbumState,
    pub cursor: Option<u64>,
    pub error: Option<String>,
    pub dir: Option<HandedDir>,
}

/// A directory name and inode handed out, with the safe base name it was derived from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandedDir {
    pub base: String,
    pub name: String,
    pub ino: u64,
}

/// The name and inode of one file handed out in one tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandedName {
    pub name: String,
    pub ino: u64,
}

/// What was handed out for one item: under `albums/` and under `by-date/`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandedFile {
    pub album: Option<HandedName>,
    pub date: Option<HandedName>,
}

/// A recording (spec §3.12) as the catalog keeps it: as listed, with the name and inode
/// handed out for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    pub entry: RecordingEntry,
    pub handed: Option<HandedName>,
}

impl Recording {
    /// The recording as an item of kind [`MediaKind::Recording`], whose album id is its type.
    pub fn as_item(&self) -> Item {
        let e = &self.entry;
        Item {
            id: ItemId(e.id),
            album_id: AlbumId(u64::from(e.kind)),
            file_name: e.file_name.clone(),
            kind: MediaKind::Recording,
            mime_type: "".into(),
            size: e.size,
            sha1: e.sha1,
            date_taken_ms: e.create_time_ms,
            create_time_ms: e.create_time_ms,
            exif_date_time: None,
        }
    }
}

/// The open catalog of one account.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn u2i(v: u64) -> i64 {
    v as i64
}
fn i2u(v: i64) -> u64 {
    v as u64
}

fn kind_code(k: MediaKind) -> i64 {
    i64::from(k.code())
}
fn kind_of(c: i64) -> MediaKind {
    MediaKind::from_code(u8::try_from(c).unwrap_or(u8::MAX))
}

/// Which contents of the catalog a tree was built from: the catalog file's random id and its
/// change counter (see the `generation` table in the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub catalog_id: u64,
    pub generation: u64,
}

/// The file of an account's catalog under a cache dir. The account name is made safe for a
/// file name (anything but ASCII letters, digits, `-`, `_` and `.` becomes `_`).
pub fn catalog_path(cache_dir: &Path, account: &str) -> PathBuf {
    let safe: String = account
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = if safe.is_empty() || safe.starts_with('.') {
        format!("_{safe}")
    } else {
        safe
    };
    cache_dir.join("catalog").join(format!("{safe}.db"))
}

/// The tree snapshot beside the catalog at `catalog` (`<account>.tree`; written and read by
/// the daemon, see `cli::snapshot`).
pub fn snapshot_path(catalog: &Path) -> PathBuf {
    catalog.with_extension("tree")
}

impl Store {
    /// Opens (creating it when missing) the catalog at `path`. A catalog of another schema
    /// version is emptied: the next sync lists everything again.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Db {
            path: path.to_path_buf(),
            source,
        })?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.init().map_err(|e| store.err(e))?;
        Ok(store)
    }

    /// Opens an existing catalog read-only (for `ls` and `stats`); `None` if there is none.
    pub fn open_existing(path: &Path) -> Result<Option<Store>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        Store::open(path).map(Some)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The catalog's [`Stamp`] now.
    pub fn stamp(&self) -> Result<Stamp, StoreError> {
        self.conn
            .query_row("SELECT id, n FROM generation LIMIT 1", [], |r| {
                Ok(Stamp {
                    catalog_id: i2u(r.get(0)?),
                    generation: i2u(r.get(1)?),
                })
            })
            .map_err(|e| self.err(e))
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn init(&self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(std::time::Duration::from_secs(10))?;
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .or_else(|_| self.conn.pragma_update(None, "journal_mode", "DELETE"))?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS generation(id INTEGER NOT NULL, n INTEGER NOT NULL);",
        )?;
        let version: Option<i64> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key='schema'", [], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
            .and_then(|v| v.parse().ok());
        if version.is_some_and(|v| v != SCHEMA_VERSION) {
            tracing::warn!(path = %self.path.display(), "the catalog has another schema version; listing the gallery again");
            // `generation` stays, and moves on: a snapshot of the old contents never matches.
            self.conn.execute_batch(
                "DROP TABLE IF EXISTS albums; DROP TABLE IF EXISTS items;
                 DROP TABLE IF EXISTS ranges; DROP TABLE IF EXISTS recordings;
                 DELETE FROM meta;
                 UPDATE generation SET n = n + 1;",
            )?;
        }
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS albums(
                id INTEGER PRIMARY KEY, name TEXT, media_count INTEGER NOT NULL,
                last_update_ms INTEGER NOT NULL, state TEXT NOT NULL, cursor INTEGER,
                error TEXT, dir_base TEXT, dir_name TEXT, dir_ino INTEGER);
             CREATE TABLE IF NOT EXISTS items(
                id INTEGER PRIMARY KEY, album_id INTEGER NOT NULL, file_name TEXT NOT NULL,
                kind INTEGER NOT NULL, mime TEXT NOT NULL, size INTEGER NOT NULL,
                sha1 BLOB NOT NULL, date_taken_ms INTEGER NOT NULL,
                create_time_ms INTEGER NOT NULL, exif TEXT,
                album_name TEXT, album_ino INTEGER, date_name TEXT, date_ino INTEGER);
             CREATE INDEX IF NOT EXISTS items_album ON items(album_id);
             CREATE TABLE IF NOT EXISTS ranges(
                album_id INTEGER NOT NULL, from_day INTEGER NOT NULL, to_day INTEGER NOT NULL,
                count INTEGER NOT NULL, PRIMARY KEY(album_id, from_day, to_day));
             CREATE TABLE IF NOT EXISTS recordings(
                id INTEGER PRIMARY KEY, file_name TEXT NOT NULL, kind INTEGER NOT NULL,
                size INTEGER NOT NULL, sha1 BLOB NOT NULL, create_ms INTEGER NOT NULL,
                modify_ms INTEGER NOT NULL, name TEXT, ino INTEGER);",
        )?;
        // An update that changes nothing a tree shows (the same values written again by a
        // refresh, an album's `allitems` cursor) does not count.
        let mut triggers = String::new();
        for t in ["albums", "items", "recordings"] {
            let mut stmt = self.conn.prepare(&format!("PRAGMA table_info({t})"))?;
            let cols = stmt.query_map([], |r| r.get::<_, String>(1))?;
            let mut changed = Vec::new();
            for c in cols {
                let c = c?;
                if !(t == "albums" && c == "cursor") {
                    changed.push(format!("OLD.{c} IS NOT NEW.{c}"));
                }
            }
            let changed = changed.join(" OR ");
            let bump = "BEGIN UPDATE generation SET n = n + 1; END;";
            triggers.push_str(&format!(
                "CREATE TRIGGER IF NOT EXISTS {t}_insert_generation AFTER INSERT ON {t} {bump}
                 CREATE TRIGGER IF NOT EXISTS {t}_delete_generation AFTER DELETE ON {t} {bump}
                 CREATE TRIGGER IF NOT EXISTS {t}_changed_generation AFTER UPDATE ON {t}
                    WHEN {changed} {bump}\n"
            ));
        }
        self.conn.execute_batch(&triggers)?;
        let none: bool = self
            .conn
            .query_row("SELECT count(*) = 0 FROM generation", [], |r| r.get(0))?;
        if none {
            self.conn.execute(
                "INSERT INTO generation(id, n) VALUES(?1, 0)",
                [u2i(rand::random::<u64>())],
            )?;
        }
        self.conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('schema', ?1)",
            [SCHEMA_VERSION.to_string()],
        )?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
                [key, value],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Every album row.
    pub fn albums(&self) -> Result<Vec<AlbumRow>, StoreError> {
        let run = || -> rusqlite::Result<Vec<AlbumRow>> {
            let mut st = self.conn.prepare(
                "SELECT id, name, media_count, last_update_ms, state, cursor, error, dir_base,
                        dir_name, dir_ino FROM albums ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                let dir = match (
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                ) {
                    (Some(base), Some(name), Some(ino)) => Some(HandedDir {
                        base,
                        name,
                        ino: i2u(ino),
                    }),
                    _ => None,
                };
                Ok(AlbumRow {
                    album: Album {
                        id: AlbumId(i2u(r.get(0)?)),
                        name: r.get(1)?,
                        media_count: i2u(r.get(2)?),
                        last_update_ms: r.get(3)?,
                    },
                    state: AlbumState::parse(&r.get::<_, String>(4)?),
                    cursor: r.get::<_, Option<i64>>(5)?.map(i2u),
                    error: r.get(6)?,
                    dir,
                })
            })?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// Every item with what was handed out for it, in id order.
    pub fn items(&self) -> Result<(Vec<Item>, Vec<HandedFile>), StoreError> {
        let run = || -> rusqlite::Result<(Vec<Item>, Vec<HandedFile>)> {
            let n: i64 = self
                .conn
                .query_row("SELECT count(*) FROM items", [], |r| r.get(0))?;
            let mut items = Vec::with_capacity(n.max(0) as usize);
            let mut handed = Vec::with_capacity(n.max(0) as usize);
            let mut st = self.conn.prepare(
                "SELECT id, album_id, file_name, kind, mime, size, sha1, date_taken_ms,
                        create_time_ms, exif, album_name, album_ino, date_name, date_ino
                 FROM items ORDER BY id",
            )?;
            let mut rows = st.query([])?;
            let mut mimes = MimeTable::default();
            while let Some(r) = rows.next()? {
                let sha1: Vec<u8> = r.get(6)?;
                let mime: String = r.get(4)?;
                let mut digest = [0u8; 20];
                if sha1.len() == 20 {
                    digest.copy_from_slice(&sha1);
                }
                items.push(Item {
                    id: ItemId(i2u(r.get(0)?)),
                    album_id: AlbumId(i2u(r.get(1)?)),
                    file_name: r.get(2)?,
                    kind: kind_of(r.get(3)?),
                    mime_type: mimes.intern(&mime),
                    size: i2u(r.get(5)?),
                    sha1: Sha1Digest(digest),
                    date_taken_ms: r.get(7)?,
                    create_time_ms: r.get(8)?,
                    exif_date_time: r.get(9)?,
                });
                let name = |n: Option<String>, i: Option<i64>| match (n, i) {
                    (Some(name), Some(ino)) => Some(HandedName {
                        name,
                        ino: i2u(ino),
                    }),
                    _ => None,
                };
                handed.push(HandedFile {
                    album: name(r.get(10)?, r.get(11)?),
                    date: name(r.get(12)?, r.get(13)?),
                });
            }
            Ok((items, handed))
        };
        run().map_err(|e| self.err(e))
    }

    /// Every recording, in id order.
    pub fn recordings(&self) -> Result<Vec<Recording>, StoreError> {
        let run = || -> rusqlite::Result<Vec<Recording>> {
            let mut st = self.conn.prepare(
                "SELECT id, file_name, kind, size, sha1, create_ms, modify_ms, name, ino
                 FROM recordings ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                let sha1: Vec<u8> = r.get(4)?;
                let mut digest = [0u8; 20];
                if sha1.len() == 20 {
                    digest.copy_from_slice(&sha1);
                }
                let handed = match (r.get::<_, Option<String>>(7)?, r.get::<_, Option<i64>>(8)?) {
                    (Some(name), Some(ino)) => Some(HandedName {
                        name,
                        ino: i2u(ino),
                    }),
                    _ => None,
                };
                Ok(Recording {
                    entry: RecordingEntry {
                        id: i2u(r.get(0)?),
                        file_name: r.get(1)?,
                        kind: r.get::<_, i64>(2)?.clamp(0, 255) as u8,
                        size: i2u(r.get(3)?),
                        sha1: Sha1Digest(digest),
                        create_time_ms: r.get(5)?,
                        modify_time_ms: r.get(6)?,
                    },
                    handed,
                })
            })?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// Runs `f` in one transaction (committed when it returns `Ok`).
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&Tx<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let wrap = |source| StoreError::Db {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        let out = f(&Tx(&tx)).map_err(wrap)?;
        tx.commit().map_err(wrap)?;
        Ok(out)
    }

    /// The date ranges of `album` already listed in the unfinished first sync.
    pub fn done_ranges(&self, album: AlbumId) -> Result<HashMap<(u32, u32), u64>, StoreError> {
        let run = || -> rusqlite::Result<HashMap<(u32, u32), u64>> {
            let mut st = self
                .conn
                .prepare("SELECT from_day, to_day, count FROM ranges WHERE album_id=?1")?;
            let rows = st.query_map([u2i(album.0)], |r| {
                Ok((
                    (r.get::<_, i64>(0)? as u32, r.get::<_, i64>(1)? as u32),
                    i2u(r.get(2)?),
                ))
            })?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// Counts per album (items, bytes).
    pub fn album_totals(&self) -> Result<HashMap<AlbumId, (u64, u64)>, StoreError> {
        let run = || -> rusqlite::Result<HashMap<AlbumId, (u64, u64)>> {
            let mut st = self.conn.prepare(
                "SELECT album_id, count(*), coalesce(sum(size), 0) FROM items GROUP BY album_id",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    AlbumId(i2u(r.get(0)?)),
                    (i2u(r.get(1)?), i2u(r.get::<_, i64>(2)?)),
                ))
            })?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// Rows of an aggregate query `SELECT label, count, bytes, cached_bytes ...` for `stats`:
    /// `key` is the SQL expression grouped by (over `items`), `is_cached` says whether a SHA-1
    /// is in the content cache.
    pub fn group_stats(
        &self,
        key: &str,
        is_cached: &dyn Fn(&[u8]) -> bool,
    ) -> Result<Vec<GroupRow>, StoreError> {
        let run = || -> rusqlite::Result<Vec<GroupRow>> {
            let sql = format!("SELECT {key}, size, sha1 FROM items");
            let mut st = self.conn.prepare(&sql)?;
            let mut rows = st.query([])?;
            let mut acc: std::collections::BTreeMap<String, (u64, u64, u64, u64)> =
                Default::default();
            while let Some(r) = rows.next()? {
                let label: String = match r.get_ref(0)? {
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                    rusqlite::types::ValueRef::Null => "?".into(),
                    other => format!("{other:?}"),
                };
                let size = i2u(r.get(1)?);
                let sha1: Vec<u8> = r.get(2)?;
                let e = acc.entry(label).or_default();
                e.0 += 1;
                e.1 = e.1.saturating_add(size);
                if is_cached(&sha1) {
                    e.2 += 1;
                    e.3 = e.3.saturating_add(size);
                }
            }
            Ok(acc
                .into_iter()
                .map(|(k, (n, b, cn, cb))| (k, n, b, cn, cb))
                .collect())
        };
        run().map_err(|e| self.err(e))
    }
}

/// One line of [`Store::group_stats`]: label, items, bytes, cached items, cached bytes.
pub type GroupRow = (String, u64, u64, u64, u64);

/// A transaction on the catalog: the writes of one sync step.
pub struct Tx<'a>(&'a rusqlite::Transaction<'a>);

impl Tx<'_> {
    /// Inserts or updates an album's listing fields (its state, cursor and directory stay).
    pub fn upsert_album(&self, a: &Album) -> rusqlite::Result<()> {
        self.0.execute(
            "INSERT INTO albums(id, name, media_count, last_update_ms, state)
             VALUES(?1, ?2, ?3, ?4, 'pending')
             ON CONFLICT(id) DO UPDATE SET name=?2, media_count=?3, last_update_ms=?4",
            params![u2i(a.id.0), a.name, u2i(a.media_count), a.last_update_ms],
        )?;
        Ok(())
    }

    pub fn set_album_state(
        &self,
        id: AlbumId,
        state: AlbumState,
        cursor: Option<u64>,
        error: Option<&str>,
    ) -> rusqlite::Result<()> {
        self.0.execute(
            "UPDATE albums SET state=?2, cursor=?3, error=?4 WHERE id=?1",
            params![u2i(id.0), state.as_str(), cursor.map(u2i), error],
        )?;
        if state == AlbumState::Complete {
            self.0
                .execute("DELETE FROM ranges WHERE album_id=?1", [u2i(id.0)])?;
        }
        Ok(())
    }

    /// Removes an album that the service no longer lists, and its items.
    pub fn delete_album(&self, id: AlbumId) -> rusqlite::Result<()> {
        self.0
            .execute("DELETE FROM items WHERE album_id=?1", [u2i(id.0)])?;
        self.0
            .execute("DELETE FROM ranges WHERE album_id=?1", [u2i(id.0)])?;
        self.0
            .execute("DELETE FROM albums WHERE id=?1", [u2i(id.0)])?;
        Ok(())
    }

    /// Inserts or updates items as listed (the names and inodes handed out stay).
    pub fn upsert_items(&self, items: &[Item]) -> rusqlite::Result<()> {
        let mut st = self.0.prepare_cached(
            "INSERT INTO items(id, album_id, file_name, kind, mime, size, sha1, date_taken_ms,
                               create_time_ms, exif)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(id) DO UPDATE SET album_id=?2, file_name=?3, kind=?4, mime=?5,
                size=?6, sha1=?7, date_taken_ms=?8, create_time_ms=?9, exif=?10",
        )?;
        for it in items {
            st.execute(params![
                u2i(it.id.0),
                u2i(it.album_id.0),
                it.file_name,
                kind_code(it.kind),
                &*it.mime_type,
                u2i(it.size),
                &it.sha1.0[..],
                it.date_taken_ms,
                it.create_time_ms,
                it.exif_date_time,
            ])?;
        }
        Ok(())
    }

    pub fn delete_items(&self, ids: &[ItemId]) -> rusqlite::Result<()> {
        let mut st = self.0.prepare_cached("DELETE FROM items WHERE id=?1")?;
        for id in ids {
            st.execute([u2i(id.0)])?;
        }
        Ok(())
    }

    /// The ids of an album's items.
    pub fn album_item_ids(&self, album: AlbumId) -> rusqlite::Result<Vec<ItemId>> {
        let mut st = self
            .0
            .prepare_cached("SELECT id FROM items WHERE album_id=?1")?;
        let rows = st.query_map([u2i(album.0)], |r| Ok(ItemId(i2u(r.get(0)?))))?;
        rows.collect()
    }

    pub fn add_range(
        &self,
        album: AlbumId,
        from: u32,
        to: u32,
        count: u64,
    ) -> rusqlite::Result<()> {
        self.0.execute(
            "INSERT OR REPLACE INTO ranges(album_id, from_day, to_day, count) VALUES(?1,?2,?3,?4)",
            params![u2i(album.0), from as i64, to as i64, u2i(count)],
        )?;
        Ok(())
    }

    pub fn set_meta(&self, key: &str, value: &str) -> rusqlite::Result<()> {
        self.0.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
            [key, value],
        )?;
        Ok(())
    }

    /// Records the directory handed out to an album.
    pub fn set_album_dir(&self, id: AlbumId, dir: &HandedDir) -> rusqlite::Result<()> {
        self.0.execute(
            "UPDATE albums SET dir_base=?2, dir_name=?3, dir_ino=?4 WHERE id=?1",
            params![u2i(id.0), dir.base, dir.name, u2i(dir.ino)],
        )?;
        Ok(())
    }

    /// Records the names and inodes handed out to an item.
    pub fn set_item_names(&self, id: ItemId, h: &HandedFile) -> rusqlite::Result<()> {
        let mut st = self.0.prepare_cached(
            "UPDATE items SET album_name=?2, album_ino=?3, date_name=?4, date_ino=?5 WHERE id=?1",
        )?;
        st.execute(params![
            u2i(id.0),
            h.album.as_ref().map(|n| n.name.as_str()),
            h.album.as_ref().map(|n| u2i(n.ino)),
            h.date.as_ref().map(|n| n.name.as_str()),
            h.date.as_ref().map(|n| u2i(n.ino)),
        ])?;
        Ok(())
    }

    /// Replaces the recordings with `list`, keeping the names handed out to those that stay.
    pub fn replace_recordings(&self, list: &[Recording]) -> rusqlite::Result<()> {
        let keep: std::collections::HashSet<i64> = list.iter().map(|r| u2i(r.entry.id)).collect();
        let mut ids = Vec::new();
        {
            let mut st = self.0.prepare("SELECT id FROM recordings")?;
            let rows = st.query_map([], |r| r.get::<_, i64>(0))?;
            for id in rows {
                ids.push(id?);
            }
        }
        for id in ids.into_iter().filter(|id| !keep.contains(id)) {
            self.0.execute("DELETE FROM recordings WHERE id=?1", [id])?;
        }
        let mut st = self.0.prepare_cached(
            "INSERT INTO recordings(id, file_name, kind, size, sha1, create_ms, modify_ms)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(id) DO UPDATE SET file_name=?2, kind=?3, size=?4, sha1=?5,
                create_ms=?6, modify_ms=?7",
        )?;
        for r in list.iter().map(|r| &r.entry) {
            st.execute(params![
                u2i(r.id),
                r.file_name,
                r.kind as i64,
                u2i(r.size),
                &r.sha1.0[..],
                r.create_time_ms,
                r.modify_time_ms
            ])?;
        }
        Ok(())
    }

    pub fn set_recording_name(&self, id: u64, h: &HandedName) -> rusqlite::Result<()> {
        self.0.execute(
            "UPDATE recordings SET name=?2, ino=?3 WHERE id=?1",
            params![u2i(id), h.name, u2i(h.ino)],
        )?;
        Ok(())
    }
}
