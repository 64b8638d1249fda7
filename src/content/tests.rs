//! Unit tests of the content layer against an in-memory fake of `GalleryApi`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use sha1::{Digest, Sha1};

use super::*;
use crate::cloud::{CloudError, Download, GalleryApi};
use crate::model::{Album, AlbumId, Item, ItemId, MediaKind, Sha1Digest};

#[derive(Default)]
struct FakeGallery {
    bodies: HashMap<ItemId, Vec<u8>>,
    deleted: Vec<ItemId>,
    /// Serve a flipped byte for this many downloads.
    corrupt: AtomicU32,
    /// Cut the body in the middle for this many downloads.
    cut: AtomicU32,
    opens: AtomicU32,
}

#[async_trait]
impl GalleryApi for FakeGallery {
    async fn list_albums(&self) -> Result<Vec<Album>, CloudError> {
        Ok(vec![])
    }
    async fn list_album_items(&self, _: AlbumId) -> Result<Vec<Item>, CloudError> {
        Ok(vec![])
    }
    async fn open_download(&self, id: ItemId) -> Result<Download, CloudError> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        if self.deleted.contains(&id) {
            return Err(CloudError::ItemDeleted(id.to_string()));
        }
        let mut body = self.bodies.get(&id).cloned().unwrap_or_default();
        let len = body.len() as u64;
        let take = |n: &AtomicU32| {
            n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok()
        };
        if take(&self.corrupt) {
            body[len as usize / 2] ^= 0x55;
        }
        let chunks: Vec<Result<Bytes, CloudError>> = if take(&self.cut) {
            vec![
                Ok(Bytes::copy_from_slice(&body[..body.len() / 3])),
                Err(CloudError::Transient {
                    what: "fake".into(),
                    detail: "connection reset".into(),
                    attempts: 1,
                }),
            ]
        } else {
            body.chunks(1000)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect()
        };
        Ok(Download {
            content_length: Some(len),
            body: futures_util::stream::iter(chunks).boxed(),
        })
    }
}

fn item(id: u64, body: &[u8]) -> Item {
    Item {
        id: ItemId(id),
        album_id: AlbumId::CAMERA,
        file_name: format!("{id}.jpg"),
        kind: MediaKind::Image,
        mime_type: "image/jpeg".into(),
        size: body.len() as u64,
        sha1: Sha1Digest(Sha1::digest(body).into()),
        date_taken_ms: 0,
        create_time_ms: 0,
        exif_date_time: None,
    }
}

fn body(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn config(dir: &tempfile::TempDir, max_downloads: usize, max_bytes: u64) -> ContentConfig {
    ContentConfig {
        cache_dir: dir.path().to_path_buf(),
        max_downloads,
        max_bytes,
        min_free: MinFree::Default,
        memory_budget: DEFAULT_MEMORY_BUDGET,
    }
}

fn read_all(b: &ItemBytes) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = b.read_at(&mut buf, out.len() as u64).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn setup(fake: FakeGallery) -> (tempfile::TempDir, Arc<FakeGallery>, ContentCache) {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(fake);
    let cache =
        ContentCache::open(&config(&dir, 4, DEFAULT_MAX_CACHE_BYTES), fake.clone()).unwrap();
    (dir, fake, cache)
}

fn one_item_fake(b: &[u8]) -> (FakeGallery, Item) {
    let it = item(7, b);
    let mut fake = FakeGallery::default();
    fake.bodies.insert(it.id, b.to_vec());
    (fake, it)
}

fn tmp_is_empty(dir: &tempfile::TempDir) -> bool {
    std::fs::read_dir(dir.path().join("tmp"))
        .unwrap()
        .next()
        .is_none()
}

#[tokio::test]
async fn fetch_verifies_and_caches() {
    let b = body(1, 10_000);
    let (fake, it) = one_item_fake(&b);
    let (dir, fake, cache) = setup(fake);
    let path = cache.fetch(&it).await.unwrap();
    assert_eq!(std::fs::read(&*path).unwrap(), b);
    assert_eq!(*path, cache.object_path(&it.sha1));
    cache.fetch(&it).await.unwrap();
    assert_eq!(fake.opens.load(Ordering::SeqCst), 1);
    assert!(tmp_is_empty(&dir));
}

#[tokio::test]
async fn concurrent_readers_share_one_download() {
    let b = body(2, 50_000);
    let (fake, it) = one_item_fake(&b);
    let (_dir, fake, cache) = setup(fake);
    let cache = Arc::new(cache);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (cache, it) = (cache.clone(), it.clone());
            tokio::spawn(async move { cache.fetch(&it).await.map(|p| (*p).clone()) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(fake.opens.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn one_mismatch_is_downloaded_again() {
    let b = body(3, 5_000);
    let (fake, it) = one_item_fake(&b);
    fake.corrupt.store(1, Ordering::SeqCst);
    let (_dir, fake, cache) = setup(fake);
    let path = cache.fetch(&it).await.unwrap();
    assert_eq!(std::fs::read(&*path).unwrap(), b);
    assert_eq!(fake.opens.load(Ordering::SeqCst), 2);
    assert_eq!(cache.stats.mismatches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn two_mismatches_in_a_row_are_still_recovered() {
    let b = body(8, 5_000);
    let (fake, it) = one_item_fake(&b);
    fake.corrupt.store(2, Ordering::SeqCst);
    let (_dir, fake, cache) = setup(fake);
    let path = cache.fetch(&it).await.unwrap();
    assert_eq!(std::fs::read(&*path).unwrap(), b);
    assert_eq!(fake.opens.load(Ordering::SeqCst), 3);
    assert_eq!(cache.stats.mismatches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn persistent_mismatches_fail_and_leave_nothing_behind() {
    let b = body(4, 5_000);
    let (fake, it) = one_item_fake(&b);
    fake.corrupt.store(5, Ordering::SeqCst);
    let (dir, fake, cache) = setup(fake);
    let err = cache.fetch(&it).await.unwrap_err();
    assert!(matches!(err, ContentError::Mismatch { .. }), "{err}");
    assert_eq!(fake.opens.load(Ordering::SeqCst), super::MISMATCH_ATTEMPTS);
    assert!(!cache.object_path(&it.sha1).exists());
    assert!(tmp_is_empty(&dir));
    // Failures are not cached: once the service behaves, the next read succeeds.
    fake.corrupt.store(0, Ordering::SeqCst);
    assert!(cache.fetch(&it).await.is_ok());
}

#[tokio::test]
async fn a_cut_body_is_retried() {
    let b = body(5, 9_000);
    let (fake, it) = one_item_fake(&b);
    fake.cut.store(2, Ordering::SeqCst);
    let (_dir, fake, cache) = setup(fake);
    let path = cache.fetch(&it).await.unwrap();
    assert_eq!(std::fs::read(&*path).unwrap(), b);
    assert_eq!(fake.opens.load(Ordering::SeqCst), 3);
    assert_eq!(cache.stats.mismatches.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn deleted_items_report_deleted() {
    let b = body(6, 100);
    let (mut fake, it) = one_item_fake(&b);
    fake.deleted.push(it.id);
    let (_dir, _fake, cache) = setup(fake);
    assert!(matches!(
        cache.fetch(&it).await.unwrap_err(),
        ContentError::Deleted(id) if id == it.id
    ));
}

#[tokio::test]
async fn same_content_in_two_items_is_fetched_once_and_survives_a_restart() {
    let b = body(7, 3_000);
    let a = item(1, &b);
    let c = item(2, &b);
    let mut fake = FakeGallery::default();
    fake.bodies.insert(a.id, b.clone());
    fake.bodies.insert(c.id, b.clone());
    let (dir, fake, cache) = setup(fake);
    cache.fetch(&a).await.unwrap();
    cache.fetch(&c).await.unwrap();
    assert_eq!(fake.opens.load(Ordering::SeqCst), 1);
    drop(cache);
    let again =
        ContentCache::open(&config(&dir, 1, DEFAULT_MAX_CACHE_BYTES), fake.clone()).unwrap();
    again.fetch(&c).await.unwrap();
    assert_eq!(fake.opens.load(Ordering::SeqCst), 1);
    assert_eq!(again.stats.cache_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn stale_part_files_are_removed_on_open_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    // Left by a daemon that is gone: nobody holds its lock, however young it is.
    std::fs::write(dir.path().join("tmp/abc.123.part"), b"half").unwrap();
    // Being written by another mount sharing the cache: its writer holds the lock.
    let live = std::fs::File::create(dir.path().join("tmp/def.456.part")).unwrap();
    live.lock().unwrap();
    let _cache = ContentCache::open(
        &config(&dir, 1, DEFAULT_MAX_CACHE_BYTES),
        Arc::new(FakeGallery::default()),
    )
    .unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("def.456.part")]);
}

#[tokio::test]
async fn the_cache_stays_under_its_cap_and_evicted_objects_come_back() {
    let bodies: Vec<Vec<u8>> = (0..5).map(|i| body(10 + i, 1_000)).collect();
    let items: Vec<Item> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| item(100 + i as u64, b))
        .collect();
    let mut fake = FakeGallery::default();
    for (it, b) in items.iter().zip(&bodies) {
        fake.bodies.insert(it.id, b.clone());
    }
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(fake);
    let cache = ContentCache::open(&config(&dir, 2, 2_500), fake.clone()).unwrap();
    // A reader holding the first object open keeps reading it after it is evicted.
    let held = cache.open_item(&items[0]).await.unwrap();
    for it in &items[1..] {
        cache.fetch(it).await.unwrap();
    }
    assert_eq!(cache.stats.evictions.load(Ordering::SeqCst), 3);
    let on_disk: Vec<bool> = items
        .iter()
        .map(|it| cache.object_path(&it.sha1).exists())
        .collect();
    assert_eq!(on_disk, vec![false, false, false, true, true]);
    assert!(held.is_cached());
    assert_eq!(read_all(&held), bodies[0]);
    // An evicted object is downloaded again when read again.
    let f = cache.open_item(&items[0]).await.unwrap();
    assert_eq!(read_all(&f), bodies[0]);
    assert_eq!(fake.opens.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn an_object_deleted_behind_the_cache_is_fetched_again() {
    let b = body(9, 2_000);
    let (fake, it) = one_item_fake(&b);
    let (_dir, fake, cache) = setup(fake);
    cache.open_item(&it).await.unwrap();
    std::fs::remove_file(cache.object_path(&it.sha1)).unwrap();
    let f = cache.open_item(&it).await.unwrap();
    assert_eq!(read_all(&f), b);
    assert_eq!(fake.opens.load(Ordering::SeqCst), 2);
}

/// A disk that fails (ENOSPC or EIO) on write or on flush: the object is never published,
/// and the read is still served right, from memory.
#[tokio::test]
async fn a_failing_disk_publishes_nothing_and_the_read_is_still_right() {
    use super::writer::failing::FailingFs;
    for (errno, on_flush) in [
        (libc::ENOSPC, false),
        (libc::EIO, false),
        (libc::ENOSPC, true),
        (libc::EIO, true),
    ] {
        let b = body(3, 3_000_000);
        let (fake, it) = one_item_fake(&b);
        let fake = Arc::new(fake);
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FailingFs {
            budget: if on_flush { u64::MAX } else { 1_200_000 },
            errno,
            on_flush,
            used: Arc::default(),
        });
        let cache = ContentCache::open_with(
            &config(&dir, 2, DEFAULT_MAX_CACHE_BYTES),
            fake.clone(),
            fs,
            Arc::new(Statvfs),
        )
        .unwrap();
        let got = cache.open_item(&it).await.unwrap();
        assert!(!got.is_cached(), "errno {errno} on_flush {on_flush}");
        assert_eq!(read_all(&got), b, "errno {errno} on_flush {on_flush}");
        assert!(
            !cache.object_path(&it.sha1).exists(),
            "no object published (errno {errno}, on_flush {on_flush})"
        );
        assert!(tmp_is_empty(&dir), "no .part left behind");
        assert_eq!(cache.stats.cache_failures.load(Ordering::SeqCst), 1);
        assert_eq!(cache.stats.uncached_reads.load(Ordering::SeqCst), 1);
        // A second read tries the cache again (the disk may have room by now).
        let again = cache.open_item(&it).await.unwrap();
        assert_eq!(read_all(&again), b);
        assert!(!cache.object_path(&it.sha1).exists());
    }
}

/// A disk of `total` bytes holding only the cache dir: what the cache frees is free again.
struct VirtualDisk {
    total: u64,
}

fn du(path: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| du(&e.unwrap().path()))
            .sum()
    } else {
        meta.len()
    }
}

impl SpaceProbe for VirtualDisk {
    fn space(&self, dir: &std::path::Path) -> std::io::Result<super::space::DiskSpace> {
        Ok(super::space::DiskSpace {
            total: self.total,
            available: self.total.saturating_sub(du(dir)),
        })
    }
}

/// A disk with less room than the floor: old objects are evicted for the new one; when
/// nothing is left to evict, files are served from memory, and a file bigger than the
/// memory budget fails rather than being served short.
#[tokio::test]
async fn the_free_space_floor_evicts_then_serves_from_memory() {
    let bodies: Vec<Vec<u8>> = (0..3).map(|i| body(40 + i, 1_000)).collect();
    let items: Vec<Item> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| item(300 + i as u64, b))
        .collect();
    let mut fake = FakeGallery::default();
    for (it, b) in items.iter().zip(&bodies) {
        fake.bodies.insert(it.id, b.clone());
    }
    let fake = Arc::new(fake);
    let dir = tempfile::tempdir().unwrap();
    // Fill the cache with the first two while the disk has room.
    let roomy =
        ContentCache::open(&config(&dir, 1, DEFAULT_MAX_CACHE_BYTES), fake.clone()).unwrap();
    for it in &items[..2] {
        roomy.fetch(it).await.unwrap();
    }
    drop(roomy);
    // Now the disk is short: 3 500 bytes, 1 500 free, floor 1 000. Item 2 (1 000 bytes)
    // needs 500 more: the least recently used object (item 0) goes, item 1 stays.
    let mut cfg = config(&dir, 1, DEFAULT_MAX_CACHE_BYTES);
    cfg.min_free = MinFree::Bytes(1_000);
    let cache = ContentCache::open_with(
        &cfg,
        fake.clone(),
        Arc::new(DiskFs),
        Arc::new(VirtualDisk { total: 3_500 }),
    )
    .unwrap();
    let got = cache.open_item(&items[2]).await.unwrap();
    assert!(got.is_cached());
    assert_eq!(read_all(&got), bodies[2]);
    assert!(!cache.object_path(&items[0].sha1).exists());
    assert!(cache.object_path(&items[1].sha1).exists());
    // A disk with no room at all and nothing the cache may evict: served from memory.
    let dir2 = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir2, 1, DEFAULT_MAX_CACHE_BYTES);
    cfg.memory_budget = 1_500;
    let cache = ContentCache::open_with(
        &cfg,
        fake.clone(),
        Arc::new(DiskFs),
        Arc::new(VirtualDisk { total: 0 }),
    )
    .unwrap();
    let a = cache.open_item(&items[0]).await.unwrap();
    assert!(!a.is_cached());
    assert_eq!(read_all(&a), bodies[0]);
    // The budget (1 500 bytes) is held by `a` while its handle lives.
    drop(a);
    let b = cache.open_item(&items[1]).await.unwrap();
    assert_eq!(read_all(&b), bodies[1]);
    let mut big = item(999, &body(1, 2_000));
    big.size = 2_000;
    let err = match cache.open_item(&big).await {
        Err(e) => e,
        Ok(_) => panic!("a file bigger than the memory budget with no room on disk must fail"),
    };
    assert!(matches!(err, ContentError::TooBigForMemory { .. }), "{err}");
    assert!(tmp_is_empty(&dir2));
}

/// An object damaged on disk (a flipped byte, or cut short) is found by the next daemon
/// before it is served, deleted, and fetched again.
#[tokio::test]
async fn a_damaged_object_is_never_served() {
    for damage in ["flip", "truncate"] {
        let b = body(5, 50_000);
        let (fake, it) = one_item_fake(&b);
        let (dir, fake, cache) = setup(fake);
        cache.fetch(&it).await.unwrap();
        drop(cache);
        let path = dir
            .path()
            .join("objects")
            .join(&it.sha1.to_hex()[..2])
            .join(it.sha1.to_hex());
        let mut bytes = std::fs::read(&path).unwrap();
        if damage == "flip" {
            bytes[25_000] ^= 0x01;
        } else {
            bytes.truncate(20_000);
        }
        std::fs::write(&path, bytes).unwrap();
        let cache =
            ContentCache::open(&config(&dir, 1, DEFAULT_MAX_CACHE_BYTES), fake.clone()).unwrap();
        let got = cache.open_item(&it).await.unwrap();
        assert_eq!(read_all(&got), b, "{damage}");
        assert_eq!(cache.stats.damaged.load(Ordering::SeqCst), 1, "{damage}");
        assert_eq!(
            fake.opens.load(Ordering::SeqCst),
            2,
            "{damage}: fetched again"
        );
        // Verified once per daemon life: the next open neither hashes nor downloads.
        let verified = cache.stats.verified_on_open.load(Ordering::SeqCst);
        cache.open_item(&it).await.unwrap();
        assert_eq!(
            cache.stats.verified_on_open.load(Ordering::SeqCst),
            verified
        );
        assert_eq!(fake.opens.load(Ordering::SeqCst), 2);
    }
}

/// Objects and folders of the cache are private whatever the umask.
#[tokio::test]
async fn cache_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let b = body(6, 1_000);
    let (fake, it) = one_item_fake(&b);
    let (dir, _fake, cache) = setup(fake);
    cache.fetch(&it).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let obj = cache.object_path(&it.sha1);
    assert_eq!(mode(&obj), 0o600);
    assert_eq!(mode(obj.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.path().join("objects")), 0o700);
    assert_eq!(mode(&dir.path().join("tmp")), 0o700);
    assert_eq!(mode(dir.path()), 0o700);
}
