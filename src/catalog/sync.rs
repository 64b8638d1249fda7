//! Filling the catalog from the service: the first sync and the refresh.
//!
//! **First sync** ([`Syncer::sync`] on a catalog with albums not yet listed). The album list
//! (`album/list`, every page) and the album cursors (`album/full`, when the service has it)
//! come first; then every album that is not `complete` is listed, [`SyncOptions::albums`] at a
//! time. An album is listed:
//! - when it announces fewer than [`SyncOptions::big_album`] items: page by page (`galleries`,
//!   100 a page: at most a few shallow pages);
//! - else **by date ranges**: its `timeline` day counts are grouped into ranges of at most
//!   [`SyncOptions::range_items`] items, and each range is listed with `startDate`/`endDate`
//!   ([`SyncOptions::ranges`] ranges at a time), so no request goes deeper than a few pages:
//!   deep pages are the real service's weak point (spec §5.3, §10.6: albums of 10 000 items
//!   and more time out). Each listed range is committed with its items, so a sync that is
//!   interrupted resumes without listing it again. When what the ranges gave does not add up
//!   to the day counts, or the timeline is missing, the album is replayed through its
//!   `allitems` cursor (60 items a request, never deep); paging the whole album is the last
//!   resort.
//!
//! An album whose listing fails (after the client's own retries) is tried once more, then
//! marked `failed` with the error: the rest of the gallery is listed and mounted anyway, and
//! the album shows as incomplete (`micloudfs stats`, the log, the mount's summary).
//! The album's cursor is the `incrementalTag` read *before* its listing, so a change made
//! during the listing is fetched again by the next refresh, never lost.
//!
//! **Refresh** (the same call on a complete catalog). The album list and cursors again; a
//! renamed album gets its new name (the tree moves its directory), a new album is listed, an
//! album gone is dropped. For an album whose `incrementalTag` moved, the changes after the
//! stored cursor are read from `allitems` (new and changed items, `status:"deleted"`
//! tombstones). Tombstones are compacted by the service after a while, so the result is
//! checked: the album's item count against `totalImageCount`, and its per-day counts against
//! `timeline`; any difference, or a service without cursors, means a full listing of that
//! album (items no longer listed are dropped). Cached bytes of dropped items stay in the
//! content cache until evicted.
//!
//! **Numbers.** With 100 000 items behind a 40 ms link, a first sync is about 1 000 listing
//! requests, up to 16 in flight (4 albums × 4 ranges) and none deeper than a few pages, so its
//! time is bound by parsing and storing (about 8 CPU-seconds with the emulator's, on the 2-core
//! dev machine), not by round trips or deep pages (`scripts/scale.sh`). A refresh of an
//! unchanged gallery is 3 requests (album list, album cursors, recordings).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{Datelike, FixedOffset};
use futures_util::{stream, StreamExt};

use super::store::{AlbumState, Recording, Store, StoreError, Tx};
use crate::cloud::{AlbumCursor, CloudError, GalleryApi};
use crate::model::{Album, AlbumId, Item, ItemId};

/// How the sync lists.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// List album 1000 (the private album) too.
    pub include_private: bool,
    /// Albums listed at once.
    pub albums: usize,
    /// Date ranges of one big album listed at once.
    pub ranges: usize,
    /// An album announcing at least this many items is listed by date ranges.
    pub big_album: u64,
    /// Items per date range (at most: one day with more is one range of its own).
    pub range_items: u64,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            include_private: false,
            albums: 4,
            ranges: 4,
            big_album: 1_000,
            range_items: 500,
        }
    }
}

/// Live counters of a sync, for a progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    /// Items listed so far (already in the catalog included).
    pub listed: AtomicU64,
    /// Items the album list announces.
    pub total: AtomicU64,
    /// Listing requests made.
    pub requests: AtomicU64,
}

impl Progress {
    fn add(&self, n: usize) {
        self.listed.fetch_add(n as u64, Ordering::Relaxed);
    }
    fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a sync did.
#[derive(Clone, Debug, Default)]
pub struct SyncReport {
    pub albums: usize,
    /// Items added or changed, and removed.
    pub upserted: usize,
    pub removed: usize,
    /// Albums listed in full (first listing, or a refresh that could not go incrementally).
    pub full_listings: usize,
    /// Albums brought up to date through their cursor.
    pub incremental: usize,
    /// Albums that could not be listed, with why.
    pub failed: Vec<(AlbumId, String)>,
    /// Whether anything in the catalog changed.
    pub changed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The album list itself could not be read: nothing can be listed.
    #[error("cannot list the gallery's albums: {0}")]
    Albums(#[source] CloudError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// Whether the service could not be reached (or answered only transient failures).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, SyncError::Albums(e) if e.is_transient())
    }
}

/// Lists the gallery into a [`Store`].
pub struct Syncer {
    api: Arc<dyn GalleryApi>,
    store: Arc<Mutex<Store>>,
    opts: SyncOptions,
    pub progress: Arc<Progress>,
}

/// How one album's listing ended.
enum Listed {
    /// Every item was seen in this run (so items of the album not seen are gone).
    Whole(HashSet<ItemId>),
    /// Complete, but partly from ranges committed by an earlier, interrupted run.
    Resumed,
}

/// The UTC+8 day (`yyyyMMdd`) the service buckets an item's `dateTaken` into (spec §3.5).
pub fn service_day(ms: i64) -> u32 {
    let Some(tz) = FixedOffset::east_opt(8 * 3600) else {
        return 19_700_101;
    };
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz))
        .map(|t| (t.year().clamp(0, 9999) as u32) * 10_000 + t.month() * 100 + t.day())
        .unwrap_or(19_700_101)
}

/// Groups day counts (ascending days) into inclusive ranges of at most `max` items, newest
/// first; a day with more than `max` items is a range of its own.
pub fn group_days(days: &[(u32, u64)], max: u64) -> Vec<(u32, u32, u64)> {
    let mut out: Vec<(u32, u32, u64)> = Vec::new();
    for &(day, n) in days.iter().rev().filter(|d| d.1 > 0) {
        match out.last_mut() {
            Some((from, _, count)) if *count + n <= max => {
                *from = day;
                *count += n;
            }
            _ => out.push((day, day, n)),
        }
    }
    out
}

impl Syncer {
    pub fn new(api: Arc<dyn GalleryApi>, store: Arc<Mutex<Store>>, opts: SyncOptions) -> Syncer {
        Syncer {
            api,
            store,
            opts,
            progress: Arc::new(Progress::default()),
        }
    }

    /// Runs `f` on the store in a blocking thread (SQLite calls block).
    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::from_join(e)))
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.with_store(move |s| s.write(f)).await
    }

    /// Brings the catalog up to date: lists what it lacks (a first sync, or the rest of an
    /// interrupted one) and refreshes what it has. Fails only when the album list cannot be
    /// read; a failing album is reported in [`SyncReport::failed`].
    pub async fn sync(&self) -> Result<SyncReport, SyncError> {
        self.progress.request();
        let mut albums = self.api.list_albums().await.map_err(SyncError::Albums)?;
        let mut seen = HashSet::new();
        albums.retain(|a| seen.insert(a.id));
        albums.retain(|a| self.opts.include_private || a.id != AlbumId::PRIVATE);
        albums.sort_by_key(|a| a.id);
        self.progress.request();
        let cursors: Option<HashMap<AlbumId, AlbumCursor>> = match self.api.album_cursors().await {
            Ok(list) => Some(list.into_iter().map(|c| (c.id, c)).collect()),
            Err(CloudError::NotSupported(_)) => None,
            Err(e) => {
                tracing::warn!(error = %e, "no album cursors (album/full); albums are listed in full");
                None
            }
        };

        // The album rows: new names and counts, albums gone dropped.
        let listed = albums.clone();
        let (rows, totals, removed) = self
            .with_store(move |s| {
                let before = s.albums()?;
                let keep: HashSet<AlbumId> = listed.iter().map(|a| a.id).collect();
                let removed = s.write(|tx| {
                    let mut removed = 0;
                    for r in before.iter().filter(|r| !keep.contains(&r.album.id)) {
                        removed += tx.album_item_ids(r.album.id)?.len();
                        tx.delete_album(r.album.id)?;
                    }
                    for a in &listed {
                        tx.upsert_album(a)?;
                    }
                    Ok(removed)
                })?;
                Ok((s.albums()?, s.album_totals()?, removed))
            })
            .await?;
        let mut report = SyncReport {
            albums: albums.len(),
            removed,
            changed: removed > 0,
            ..Default::default()
        };
        let state: HashMap<AlbumId, (AlbumState, Option<u64>)> = rows
            .iter()
            .map(|r| (r.album.id, (r.state, r.cursor)))
            .collect();
        let count_of = |id: AlbumId| totals.get(&id).map_or(0, |t| t.0);
        self.progress.total.store(
            albums
                .iter()
                .map(|a| a.media_count.max(count_of(a.id)))
                .sum(),
            Ordering::Relaxed,
        );
        self.progress.listed.store(
            albums
                .iter()
                .filter(|a| {
                    state
                        .get(&a.id)
                        .is_some_and(|s| s.0 == AlbumState::Complete)
                })
                .map(|a| count_of(a.id))
                .sum(),
            Ordering::Relaxed,
        );

        let results: Vec<(AlbumId, Result<AlbumOutcome, String>)> =
            stream::iter(albums.iter().cloned())
                .map(|album| {
                    let (st, cursor) = state
                        .get(&album.id)
                        .copied()
                        .unwrap_or((AlbumState::Pending, None));
                    let remote = cursors.as_ref().and_then(|c| c.get(&album.id)).cloned();
                    let have = count_of(album.id);
                    async move {
                        let id = album.id;
                        let mut tries = 0;
                        loop {
                            tries += 1;
                            match self.album(&album, st, cursor, remote.as_ref(), have).await {
                                Ok(o) => return (id, Ok(o)),
                                Err(AlbumError::Store(e)) => return (id, Err(e.to_string())),
                                Err(AlbumError::Cloud(e)) if tries < 2 => {
                                    tracing::warn!(album = %id, error = %e, "listing the album failed; trying it once more");
                                }
                                Err(AlbumError::Cloud(e)) => return (id, Err(e.to_string())),
                            }
                        }
                    }
                })
                .buffer_unordered(self.opts.albums.max(1))
                .collect()
                .await;

        for (id, r) in results {
            match r {
                Ok(o) => {
                    report.upserted += o.upserted;
                    report.removed += o.removed;
                    report.changed |= o.upserted > 0 || o.removed > 0;
                    match o.how {
                        How::Unchanged => {}
                        How::Full => report.full_listings += 1,
                        How::Incremental => report.incremental += 1,
                    }
                }
                Err(e) => {
                    tracing::error!(album = %id, error = %e, "the album could not be listed; it is shown as far as the catalog has it and marked incomplete (micloudfs stats); the next refresh tries again");
                    let msg = e.clone();
                    self.write(move |tx| {
                        tx.set_album_state(id, AlbumState::Failed, None, Some(&msg))
                    })
                    .await?;
                    report.failed.push((id, e));
                }
            }
        }
        match self.api.list_recordings().await {
            Ok(list) => {
                let mut recs: Vec<Recording> = list
                    .into_iter()
                    .map(|entry| Recording {
                        entry,
                        handed: None,
                    })
                    .collect();
                recs.sort_by_key(|r| r.entry.id);
                recs.dedup_by_key(|r| r.entry.id);
                let changed = self
                    .with_store(move |s| {
                        let before = s.recordings()?;
                        let same = before.len() == recs.len()
                            && before.iter().zip(&recs).all(|(a, b)| a.entry == b.entry);
                        if !same {
                            s.write(|tx| tx.replace_recordings(&recs))?;
                        }
                        Ok(!same)
                    })
                    .await?;
                report.changed |= changed;
            }
            Err(CloudError::NotSupported(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the recordings; keeping the ones the catalog has")
            }
        }
        let now = chrono::Utc::now().timestamp_millis().to_string();
        self.write(move |tx| tx.set_meta("last_sync_ms", &now))
            .await?;
        tracing::info!(
            albums = report.albums,
            upserted = report.upserted,
            removed = report.removed,
            full = report.full_listings,
            incremental = report.incremental,
            failed = report.failed.len(),
            requests = self.progress.requests.load(Ordering::Relaxed),
            "catalog synced"
        );
        Ok(report)
    }

    /// Brings one album up to date.
    async fn album(
        &self,
        album: &Album,
        state: AlbumState,
        cursor: Option<u64>,
        remote: Option<&AlbumCursor>,
        have: u64,
    ) -> Result<AlbumOutcome, AlbumError> {
        let id = album.id;
        if state == AlbumState::Complete {
            if let (Some(c), Some(remote)) = (cursor, remote) {
                if remote.incremental_tag == c && remote.total == have {
                    return Ok(AlbumOutcome::unchanged());
                }
                if remote.incremental_tag >= c {
                    match self.incremental(album, c, remote).await {
                        Ok(Some(o)) => return Ok(o),
                        Ok(None) => {
                            tracing::info!(album = %id, "the album's changes do not add up (tombstones compacted?); listing it in full")
                        }
                        Err(AlbumError::Cloud(CloudError::NotSupported(_))) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        // A full listing. The cursor is the one read before it: changes made while it runs
        // are fetched again by the next refresh.
        let new_cursor = remote.map(|r| r.incremental_tag);
        let listed = self.list_whole(album, state).await?;
        let before: HashSet<ItemId> = {
            let ids = self.write(move |tx| tx.album_item_ids(id)).await?;
            ids.into_iter().collect()
        };
        let mut removed = Vec::new();
        let upserted;
        match &listed {
            Listed::Whole(seen) => {
                removed = before.difference(seen).copied().collect();
                upserted = seen.len();
            }
            Listed::Resumed => upserted = before.len(),
        }
        let n_removed = removed.len();
        self.write(move |tx| {
            tx.delete_items(&removed)?;
            tx.set_album_state(id, AlbumState::Complete, new_cursor, None)
        })
        .await?;
        Ok(AlbumOutcome {
            how: How::Full,
            upserted,
            removed: n_removed,
        })
    }

    /// Applies the album's changes after `cursor`; `None` when the result does not match
    /// the service's counts (the caller then lists the album in full).
    async fn incremental(
        &self,
        album: &Album,
        cursor: u64,
        remote: &AlbumCursor,
    ) -> Result<Option<AlbumOutcome>, AlbumError> {
        let id = album.id;
        let mut tag = cursor;
        let (mut upserted, mut deleted) = (Vec::new(), Vec::new());
        for _ in 0..1_000_000u32 {
            self.progress.request();
            let page = self.api.list_changes(id, tag).await?;
            for mut it in page.items {
                it.album_id = id;
                upserted.push(it);
            }
            deleted.extend(page.deleted);
            tag = page.sync_tag.max(tag);
            if page.last_page {
                break;
            }
        }
        // Applied in one transaction, then checked: count, then days.
        let up = upserted.clone();
        let del = deleted.clone();
        let new_tag = tag.max(remote.incremental_tag);
        let ids_after: Vec<ItemId> = self
            .write(move |tx| {
                tx.upsert_items(&up)?;
                let theirs: HashSet<ItemId> = up.iter().map(|i| i.id).collect();
                let del: Vec<ItemId> = del.into_iter().filter(|d| !theirs.contains(d)).collect();
                tx.delete_items(&del)?;
                tx.set_album_state(id, AlbumState::Complete, Some(new_tag), None)?;
                tx.album_item_ids(id)
            })
            .await?;
        if ids_after.len() as u64 != remote.total {
            return Ok(None);
        }
        if !upserted.is_empty() || !deleted.is_empty() {
            if let Some(false) = self.days_match(id).await? {
                return Ok(None);
            }
        }
        Ok(Some(AlbumOutcome {
            how: How::Incremental,
            upserted: upserted.len(),
            removed: deleted.len(),
        }))
    }

    /// Whether the catalog's per-day counts of the album equal the service's `timeline`
    /// (`None` when the service has no timeline).
    async fn days_match(&self, id: AlbumId) -> Result<Option<bool>, AlbumError> {
        self.progress.request();
        let theirs = match self.api.day_counts(id).await {
            Ok(d) => d,
            Err(CloudError::NotSupported(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let ours: HashMap<u32, u64> = self
            .with_store(move |s| {
                let (items, _) = s.items()?;
                let mut m = HashMap::new();
                for it in items.iter().filter(|i| i.album_id == id) {
                    *m.entry(service_day(it.date_taken_ms)).or_insert(0u64) += 1;
                }
                Ok(m)
            })
            .await?;
        let theirs: HashMap<u32, u64> = theirs.into_iter().filter(|d| d.1 > 0).collect();
        Ok(Some(theirs == ours))
    }

    /// Lists every item of an album (see the module doc for the order of ways).
    async fn list_whole(&self, album: &Album, state: AlbumState) -> Result<Listed, AlbumError> {
        if album.media_count >= self.opts.big_album {
            match self.list_by_ranges(album, state).await {
                Ok(Some(l)) => return Ok(l),
                Ok(None) => {}
                Err(AlbumError::Cloud(CloudError::NotSupported(_))) => {}
                Err(e) => return Err(e),
            }
            match self.list_by_cursor(album).await {
                Ok(l) => return Ok(l),
                Err(AlbumError::Cloud(CloudError::NotSupported(_))) => {}
                Err(e) => return Err(e),
            }
            tracing::warn!(album = %album.id, "listing a big album page by page (deep pages are slow and may time out)");
        }
        self.list_by_pages(album).await
    }

    async fn store_items(&self, items: Vec<Item>) -> Result<(), StoreError> {
        self.progress.add(items.len());
        self.write(move |tx| tx.upsert_items(&items)).await
    }

    /// `galleries` page by page (of one date range, or of the whole album).
    async fn pages(&self, id: AlbumId, days: Option<(u32, u32)>) -> Result<Vec<Item>, AlbumError> {
        let mut items = Vec::new();
        for page in 0..100_000u32 {
            self.progress.request();
            let p = self.api.list_items_page(id, days, page).await?;
            let n = p.items.len();
            items.extend(p.items);
            if days.is_none() {
                self.progress.add(n);
            }
            if p.last_page {
                break;
            }
        }
        for it in &mut items {
            it.album_id = id;
        }
        Ok(items)
    }

    async fn list_by_pages(&self, album: &Album) -> Result<Listed, AlbumError> {
        let id = album.id;
        let items = match self.pages(id, None).await {
            Ok(items) => items,
            Err(AlbumError::Cloud(CloudError::NotSupported(_))) => {
                self.progress.request();
                let mut items = self.api.list_album_items(id).await?;
                self.progress.add(items.len());
                for it in &mut items {
                    it.album_id = id;
                }
                items
            }
            Err(e) => return Err(e),
        };
        let seen = items.iter().map(|i| i.id).collect();
        self.write(move |tx| tx.upsert_items(&items)).await?;
        Ok(Listed::Whole(seen))
    }

    /// By date ranges; `None` when the ranges do not add up to the day counts.
    async fn list_by_ranges(
        &self,
        album: &Album,
        state: AlbumState,
    ) -> Result<Option<Listed>, AlbumError> {
        let id = album.id;
        self.progress.request();
        let days = self.api.day_counts(id).await?;
        let ranges = group_days(&days, self.opts.range_items);
        let done = if state == AlbumState::Complete {
            HashMap::new()
        } else {
            self.with_store(move |s| s.done_ranges(id)).await?
        };
        let mut skipped = false;
        let todo: Vec<(u32, u32, u64)> = ranges
            .iter()
            .copied()
            .filter(|&(from, to, n)| {
                if done.get(&(from, to)) == Some(&n) {
                    skipped = true;
                    self.progress.add(n as usize);
                    false
                } else {
                    true
                }
            })
            .collect();
        let results: Vec<Result<(u64, Vec<ItemId>), AlbumError>> = stream::iter(todo)
            .map(|(from, to, n)| async move {
                let items = self.pages(id, Some((from, to))).await?;
                let got = items.len() as u64;
                let ids: Vec<ItemId> = items.iter().map(|i| i.id).collect();
                self.progress.add(items.len());
                if got == n {
                    self.write(move |tx| {
                        tx.upsert_items(&items)?;
                        tx.add_range(id, from, to, n)
                    })
                    .await?;
                } else {
                    self.write(move |tx| tx.upsert_items(&items)).await?;
                }
                Ok((got.abs_diff(n), ids))
            })
            .buffer_unordered(self.opts.ranges.max(1))
            .collect()
            .await;
        let mut seen = HashSet::new();
        let mut off = 0;
        for r in results {
            let (diff, ids) = r?;
            off += diff;
            seen.extend(ids);
        }
        if off > 0 {
            tracing::info!(album = %id, off, "date ranges and day counts disagree; listing the album through its cursor");
            return Ok(None);
        }
        Ok(Some(if skipped {
            Listed::Resumed
        } else {
            Listed::Whole(seen)
        }))
    }

    /// The whole album through `allitems` from tag 0.
    async fn list_by_cursor(&self, album: &Album) -> Result<Listed, AlbumError> {
        let id = album.id;
        let mut tag = 0;
        let mut live: HashMap<ItemId, Item> = HashMap::new();
        let mut batch = Vec::new();
        for _ in 0..10_000_000u32 {
            self.progress.request();
            let page = self.api.list_changes(id, tag).await?;
            for d in &page.deleted {
                live.remove(d);
            }
            for mut it in page.items {
                it.album_id = id;
                batch.push(it.clone());
                live.insert(it.id, it);
            }
            if batch.len() >= 1_000 {
                self.store_items(std::mem::take(&mut batch)).await?;
            }
            tag = page.sync_tag.max(tag);
            if page.last_page {
                break;
            }
        }
        self.store_items(batch).await?;
        Ok(Listed::Whole(live.into_keys().collect()))
    }
}

enum How {
    Unchanged,
    Full,
    Incremental,
}

struct AlbumOutcome {
    how: How,
    upserted: usize,
    removed: usize,
}

impl AlbumOutcome {
    fn unchanged() -> AlbumOutcome {
        AlbumOutcome {
            how: How::Unchanged,
            upserted: 0,
            removed: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum AlbumError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{ChangePage, Download, ItemPage};
    use crate::model::{MediaKind, Sha1Digest};
    use async_trait::async_trait;
    use std::sync::atomic::AtomicU32;

    const DAY_MS: i64 = 86_400_000;

    fn item(id: u64, album: u64, day: i64) -> Item {
        Item {
            id: ItemId(id),
            album_id: AlbumId(album),
            file_name: format!("{id}.jpg"),
            kind: MediaKind::Image,
            mime_type: "image/jpeg".into(),
            size: id,
            sha1: Sha1Digest([id as u8; 20]),
            date_taken_ms: 1_600_000_000_000 + day * DAY_MS,
            create_time_ms: id as i64,
            exif_date_time: None,
        }
    }

    /// A gallery with cursors, a timeline and date filters; `fail` albums answer transient
    /// failures; `deepest` records the deepest page asked for.
    #[derive(Default)]
    struct Fake {
        items: Mutex<Vec<(u64, Item)>>, // (tag, item)
        tombs: Mutex<Vec<(u64, Item)>>,
        tag: Mutex<u64>,
        fail: Vec<u64>,
        deepest: AtomicU32,
        cursors: bool,
    }

    impl Fake {
        fn new(n_big: u64, cursors: bool, fail: Vec<u64>) -> Fake {
            let f = Fake {
                cursors,
                fail,
                ..Default::default()
            };
            for i in 0..n_big {
                f.add(item(1000 + i, 1, (i / 7) as i64));
            }
            for i in 0..30 {
                f.add(item(100_000 + i, 2, i as i64));
            }
            for i in 0..10 {
                f.add(item(200_000 + i, 77, i as i64));
            }
            f
        }
        fn add(&self, it: Item) {
            let mut t = self.tag.lock().unwrap();
            *t += 1;
            self.items.lock().unwrap().push((*t, it));
        }
        fn delete(&self, id: u64, tombstone: bool) {
            let mut t = self.tag.lock().unwrap();
            *t += 1;
            let mut items = self.items.lock().unwrap();
            let pos = items.iter().position(|(_, i)| i.id.0 == id).unwrap();
            let (_, it) = items.remove(pos);
            if tombstone {
                self.tombs.lock().unwrap().push((*t, it));
            }
        }
        fn of(&self, album: AlbumId) -> Vec<Item> {
            let mut v: Vec<Item> = self
                .items
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, i)| i.album_id == album)
                .map(|(_, i)| i.clone())
                .collect();
            v.sort_by_key(|i| std::cmp::Reverse((i.date_taken_ms, i.id)));
            v
        }
        fn check(&self, album: AlbumId) -> Result<(), CloudError> {
            if self.fail.contains(&album.0) {
                return Err(CloudError::Transient {
                    what: format!("album {album}"),
                    detail: "HTTP 503".into(),
                    attempts: 6,
                });
            }
            Ok(())
        }
    }

    #[async_trait]
    impl GalleryApi for Fake {
        async fn list_albums(&self) -> Result<Vec<Album>, CloudError> {
            Ok([1u64, 2, 77]
                .iter()
                .map(|&id| Album {
                    id: AlbumId(id),
                    name: (id == 77).then(|| "Trip".to_string()),
                    media_count: self.of(AlbumId(id)).len() as u64,
                    last_update_ms: 0,
                })
                .collect())
        }
        async fn list_album_items(&self, a: AlbumId) -> Result<Vec<Item>, CloudError> {
            self.check(a)?;
            Ok(self.of(a))
        }
        async fn open_download(&self, _: ItemId) -> Result<Download, CloudError> {
            Err(CloudError::Config("not used".into()))
        }
        async fn list_items_page(
            &self,
            a: AlbumId,
            days: Option<(u32, u32)>,
            page: u32,
        ) -> Result<ItemPage, CloudError> {
            self.check(a)?;
            self.deepest.fetch_max(page, Ordering::Relaxed);
            let all: Vec<Item> = self
                .of(a)
                .into_iter()
                .filter(|i| {
                    days.is_none_or(|(f, t)| (f..=t).contains(&service_day(i.date_taken_ms)))
                })
                .collect();
            let start = (page as usize * 100).min(all.len());
            let end = (start + 100).min(all.len());
            Ok(ItemPage {
                items: all[start..end].to_vec(),
                last_page: end >= all.len(),
            })
        }
        async fn day_counts(&self, a: AlbumId) -> Result<Vec<(u32, u64)>, CloudError> {
            self.check(a)?;
            let mut m = std::collections::BTreeMap::new();
            for i in self.of(a) {
                *m.entry(service_day(i.date_taken_ms)).or_insert(0) += 1;
            }
            Ok(m.into_iter().collect())
        }
        async fn album_cursors(&self) -> Result<Vec<AlbumCursor>, CloudError> {
            if !self.cursors {
                return Err(CloudError::NotSupported("album/full"));
            }
            let items = self.items.lock().unwrap();
            let tombs = self.tombs.lock().unwrap();
            Ok([1u64, 2, 77]
                .iter()
                .map(|&id| AlbumCursor {
                    id: AlbumId(id),
                    incremental_tag: items
                        .iter()
                        .chain(tombs.iter())
                        .filter(|(_, i)| i.album_id.0 == id)
                        .map(|(t, _)| *t)
                        .max()
                        .unwrap_or(0),
                    total: items.iter().filter(|(_, i)| i.album_id.0 == id).count() as u64,
                })
                .collect())
        }
        async fn list_changes(&self, a: AlbumId, tag: u64) -> Result<ChangePage, CloudError> {
            if !self.cursors {
                return Err(CloudError::NotSupported("allitems"));
            }
            self.check(a)?;
            let mut feed: Vec<(u64, Item, bool)> = self
                .items
                .lock()
                .unwrap()
                .iter()
                .map(|(t, i)| (*t, i.clone(), false))
                .chain(
                    self.tombs
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(t, i)| (*t, i.clone(), true)),
                )
                .filter(|(t, i, _)| *t > tag && i.album_id == a)
                .collect();
            feed.sort_by_key(|f| f.0);
            let take: Vec<_> = feed.iter().take(60).cloned().collect();
            let mut page = ChangePage {
                sync_tag: take.last().map_or(tag, |f| f.0),
                last_page: take.len() == feed.len(),
                ..Default::default()
            };
            for (_, it, dead) in take {
                if dead {
                    page.deleted.push(it.id);
                } else {
                    page.items.push(it);
                }
            }
            Ok(page)
        }
    }

    fn setup(api: Arc<Fake>) -> (Syncer, Arc<Mutex<Store>>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(Store::open(&dir.path().join("c.db")).unwrap()));
        let syncer = Syncer::new(api, store.clone(), SyncOptions::default());
        (syncer, store, dir)
    }

    fn ids(store: &Mutex<Store>) -> Vec<u64> {
        let (items, _) = store.lock().unwrap().items().unwrap();
        items.iter().map(|i| i.id.0).collect()
    }

    fn want(api: &Fake) -> Vec<u64> {
        let mut v: Vec<u64> = api
            .items
            .lock()
            .unwrap()
            .iter()
            .map(|(_, i)| i.id.0)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn days_group_into_bounded_ranges_newest_first() {
        let days = [
            (20240101, 300),
            (20240102, 300),
            (20240103, 100),
            (20240104, 900),
        ];
        assert_eq!(
            group_days(&days, 500),
            vec![
                (20240104, 20240104, 900),
                (20240102, 20240103, 400),
                (20240101, 20240101, 300)
            ]
        );
        assert_eq!(service_day(1_719_777_600_000), 20240701); // 20:00 UTC = 04:00 UTC+8
    }

    #[tokio::test]
    async fn a_big_album_is_listed_by_date_ranges_without_deep_pages() {
        let api = Arc::new(Fake::new(12_000, false, vec![]));
        let (syncer, store, _dir) = setup(api.clone());
        let report = syncer.sync().await.unwrap();
        assert!(report.failed.is_empty());
        assert_eq!(ids(&store), want(&api));
        // 12 000 items in one album: paging it would reach page 119.
        assert!(
            api.deepest.load(Ordering::Relaxed) < 10,
            "a deep page was asked for"
        );
        assert_eq!(syncer.progress.listed.load(Ordering::Relaxed), 12_040);
    }

    #[tokio::test]
    async fn an_album_that_fails_does_not_stop_the_others() {
        let api = Arc::new(Fake::new(50, true, vec![77]));
        let (syncer, store, _dir) = setup(api.clone());
        let report = syncer.sync().await.unwrap();
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].0, AlbumId(77));
        let got = ids(&store);
        assert_eq!(got.len(), 80, "Camera and Screenshots are listed");
        let rows = store.lock().unwrap().albums().unwrap();
        let state = |id| {
            rows.iter()
                .find(|r| r.album.id == AlbumId(id))
                .unwrap()
                .state
        };
        assert_eq!(state(77), AlbumState::Failed);
        assert_eq!(state(1), AlbumState::Complete);
        assert!(rows
            .iter()
            .any(|r| r.error.as_deref().is_some_and(|e| e.contains("503"))));
    }

    #[tokio::test]
    async fn a_refresh_applies_changes_through_cursors_and_falls_back_when_they_miss() {
        let api = Arc::new(Fake::new(50, true, vec![]));
        let (syncer, store, _dir) = setup(api.clone());
        syncer.sync().await.unwrap();
        assert_eq!(ids(&store), want(&api));

        // Unchanged: nothing listed again.
        let r = syncer.sync().await.unwrap();
        assert!(!r.changed && r.full_listings == 0 && r.incremental == 0);

        // An upload and a deletion with its tombstone: incremental.
        api.add(item(999_999, 1, 3));
        api.delete(1005, true);
        let r = syncer.sync().await.unwrap();
        assert_eq!((r.incremental, r.full_listings), (1, 0), "{r:?}");
        assert_eq!(ids(&store), want(&api));

        // A deletion whose tombstone was compacted: the count check lists the album in full.
        api.delete(1006, false);
        let r = syncer.sync().await.unwrap();
        assert_eq!(r.full_listings, 1, "{r:?}");
        assert_eq!(ids(&store), want(&api));
    }

    #[tokio::test]
    async fn without_cursors_a_refresh_lists_in_full_and_drops_what_is_gone() {
        let api = Arc::new(Fake::new(50, false, vec![]));
        let (syncer, store, _dir) = setup(api.clone());
        syncer.sync().await.unwrap();
        api.delete(1001, false);
        api.add(item(555_555, 2, 1));
        let r = syncer.sync().await.unwrap();
        assert!(r.changed);
        assert_eq!(ids(&store), want(&api));
    }
}
