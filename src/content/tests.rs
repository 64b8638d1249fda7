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

fn setup(fake: FakeGallery) -> (tempfile::TempDir, Arc<FakeGallery>, ContentCache) {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(fake);
    let cache = ContentCache::open(
        &ContentConfig {
            cache_dir: dir.path().to_path_buf(),
            max_downloads: 4,
            max_bytes: DEFAULT_MAX_CACHE_BYTES,
        },
        fake.clone(),
    )
    .unwrap();
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
    let again = ContentCache::open(
        &ContentConfig {
            cache_dir: dir.path().to_path_buf(),
            max_downloads: 1,
            max_bytes: DEFAULT_MAX_CACHE_BYTES,
        },
        fake.clone(),
    )
    .unwrap();
    again.fetch(&c).await.unwrap();
    assert_eq!(fake.opens.load(Ordering::SeqCst), 1);
    assert_eq!(again.stats.cache_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn stale_part_files_are_removed_on_open_fresh_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    std::fs::write(dir.path().join("tmp/abc.123.part"), b"half").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("tmp/abc.123.part"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::write(dir.path().join("tmp/def.456.part"), b"in progress").unwrap();
    let _cache = ContentCache::open(
        &ContentConfig {
            cache_dir: dir.path().to_path_buf(),
            max_downloads: 1,
            max_bytes: DEFAULT_MAX_CACHE_BYTES,
        },
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
    let cache = ContentCache::open(
        &ContentConfig {
            cache_dir: dir.path().to_path_buf(),
            max_downloads: 2,
            max_bytes: 2_500,
        },
        fake.clone(),
    )
    .unwrap();
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
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut &held, &mut buf).unwrap();
    assert_eq!(buf, bodies[0]);
    // An evicted object is downloaded again when read again.
    let f = cache.open_item(&items[0]).await.unwrap();
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut &f, &mut buf).unwrap();
    assert_eq!(buf, bodies[0]);
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
    assert_eq!(f.metadata().unwrap().len(), b.len() as u64);
    assert_eq!(fake.opens.load(Ordering::SeqCst), 2);
}
