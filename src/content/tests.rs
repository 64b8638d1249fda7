//! Unit tests of the content layer against the in-memory fake of `GalleryApi`
//! (`cloud::fake`): verification and the cache (issue 10), streaming, parts and the
//! integrity promise, the scheduler and the retry layer (issue 12).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::cloud::fake::{body, FakeGallery};

fn config(dir: &tempfile::TempDir, max_connections: usize, max_bytes: u64) -> ContentConfig {
    ContentConfig {
        cache_dir: dir.path().to_path_buf(),
        max_connections,
        max_bytes,
        min_free: MinFree::Default,
        memory_budget: DEFAULT_MEMORY_BUDGET,
        io_timeout: Duration::from_secs(20),
        stream_above: STREAM_ABOVE,
    }
}

fn setup(fake: FakeGallery) -> (tempfile::TempDir, Arc<FakeGallery>, Arc<ContentCache>) {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(fake);
    let cache =
        ContentCache::open(&config(&dir, 4, DEFAULT_MAX_CACHE_BYTES), fake.clone()).unwrap();
    (dir, fake, cache)
}

/// A cache that streams unverified bytes of files of any size (to test streaming itself).
fn setup_streaming(fake: FakeGallery) -> (tempfile::TempDir, Arc<FakeGallery>, Arc<ContentCache>) {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(fake);
    let mut cfg = config(&dir, 4, DEFAULT_MAX_CACHE_BYTES);
    cfg.stream_above = 0;
    let cache = ContentCache::open(&cfg, fake.clone()).unwrap();
    (dir, fake, cache)
}

fn one_item_fake(b: &[u8]) -> (FakeGallery, Item) {
    let fake = FakeGallery::new();
    let it = fake.add(7, b.to_vec());
    (fake, it)
}

fn tmp_is_empty(dir: &tempfile::TempDir) -> bool {
    std::fs::read_dir(dir.path().join("tmp"))
        .unwrap()
        .next()
        .is_none()
}

/// Every byte of `item` through one handle, in reads of `step` bytes.
async fn read_all(
    cache: &Arc<ContentCache>,
    item: &Item,
    step: u32,
) -> Result<Vec<u8>, ContentError> {
    match cache.open_item(item).await? {
        Opened::Verified(f) => {
            use std::io::Read;
            let mut out = Vec::new();
            (&*f).read_to_end(&mut out).unwrap();
            Ok(out)
        }
        Opened::Streaming(r) => read_reader(&r, item.size, step).await,
    }
}

/// The first `size` bytes through `r`, in reads of at most `step` bytes.
async fn read_reader(r: &Reader, size: u64, step: u32) -> Result<Vec<u8>, ContentError> {
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let n = (size - out.len() as u64).min(u64::from(step)) as u32;
        let got = r.read(out.len() as u64, n).await?;
        if got.is_empty() {
            break;
        }
        out.extend_from_slice(&got);
    }
    Ok(out)
}

fn streaming(o: Opened) -> Reader {
    match o {
        Opened::Streaming(r) => r,
        Opened::Verified(_) => panic!("expected a download, got a cached object"),
    }
}

#[tokio::test]
async fn fetch_verifies_and_caches() {
    let b = body(1, 10_000);
    let (fake, it) = one_item_fake(&b);
    let (dir, fake, cache) = setup(fake);
    assert!(read_all(&cache, &it, 4096).await.unwrap() == b);
    let path = cache.object_path(&it.sha1);
    assert_eq!(std::fs::read(&path).unwrap(), b);
    assert!(cache.is_verified(&it.sha1));
    assert!(matches!(
        cache.open_item(&it).await.unwrap(),
        Opened::Verified(_)
    ));
    assert_eq!(fake.fetches(), 1);
    assert!(tmp_is_empty(&dir));
}

#[tokio::test]
async fn piece_buffers_go_back_to_the_pool_for_the_next_download() {
    // Three files of several pieces each, one after the other: the buffers a download
    // used are all back when it ends (one gathering, one more only while a piece is
    // written), and the next download reuses them instead of making new ones.
    let fake = FakeGallery::new();
    let items: Vec<(Item, Vec<u8>)> = (0..3)
        .map(|k| {
            let b = body(10 + k, 3 << 20);
            (fake.add(20 + k as u64, b.clone()), b)
        })
        .collect();
    let (_dir, _fake, cache) = setup(fake);
    let (first, b) = &items[0];
    assert!(read_all(&cache, first, 1 << 20).await.unwrap() == *b);
    let made = cache.pieces.idle();
    assert!(
        (1..=2).contains(&made),
        "{made} buffers back after one download"
    );
    for (it, b) in &items[1..] {
        assert!(read_all(&cache, it, 1 << 20).await.unwrap() == *b);
        assert_eq!(
            cache.pieces.idle(),
            made,
            "no new buffer for the next download"
        );
    }
}

#[tokio::test]
async fn concurrent_readers_share_one_download() {
    let b = body(2, 50_000);
    let (fake, it) = one_item_fake(&b);
    let (_dir, fake, cache) = setup(fake);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (cache, it) = (cache.clone(), it.clone());
            tokio::spawn(async move { read_all(&cache, &it, 7000).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), b);
    }
    assert_eq!(fake.resolves.load(Ordering::SeqCst), 1);
    assert_eq!(fake.fetches(), 1);
}

#[tokio::test]
async fn one_mismatch_is_downloaded_again() {
    let b = body(3, 5_000);
    let (fake, it) = one_item_fake(&b);
    fake.corrupt.store(1, Ordering::SeqCst);
    let (_dir, fake, cache) = setup(fake);
    cache.fetch(&it).await.unwrap();
    assert_eq!(std::fs::read(cache.object_path(&it.sha1)).unwrap(), b);
    assert_eq!(fake.fetches(), 2);
    assert_eq!(cache.stats.mismatches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn two_mismatches_in_a_row_are_still_recovered() {
    let b = body(8, 5_000);
    let (fake, it) = one_item_fake(&b);
    fake.corrupt.store(2, Ordering::SeqCst);
    let (_dir, fake, cache) = setup(fake);
    cache.fetch(&it).await.unwrap();
    assert_eq!(std::fs::read(cache.object_path(&it.sha1)).unwrap(), b);
    assert_eq!(fake.fetches(), 3);
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
    assert_eq!(fake.fetches(), MISMATCH_ATTEMPTS);
    assert!(!cache.object_path(&it.sha1).exists());
    assert!(tmp_is_empty(&dir));
    // Failures are not cached: once the service behaves, the next read succeeds.
    fake.corrupt.store(0, Ordering::SeqCst);
    cache.fetch(&it).await.unwrap();
    assert!(read_all(&cache, &it, 4096).await.unwrap() == b);
}

#[tokio::test]
async fn a_cut_body_is_retried_from_where_it_stopped() {
    let b = body(5, 900_000);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    fake.cut.store(2, Ordering::SeqCst);
    let (_dir, fake, cache) = setup_streaming(fake);
    assert!(read_all(&cache, &it, 65536).await.unwrap() == b);
    assert_eq!(fake.fetches(), 3);
    assert_eq!(cache.stats.mismatches.load(Ordering::SeqCst), 0);
    // With Range, the tries after a cut resume: less than the file twice in all.
    assert!(fake.sent() < 2 * b.len() as u64, "{}", fake.sent());
    let log = fake.log.lock().unwrap().clone();
    assert!(log[1].1.as_ref().unwrap().start > 0, "{log:?}");
}

#[tokio::test]
async fn deleted_items_report_deleted() {
    let b = body(6, 100);
    let (fake, it) = one_item_fake(&b);
    fake.deleted.lock().unwrap().push(it.id);
    let (_dir, _fake, cache) = setup(fake);
    assert!(matches!(
        cache.fetch(&it).await.unwrap_err(),
        ContentError::Deleted(id) if id == it.id
    ));
}

#[tokio::test]
async fn same_content_in_two_items_is_fetched_once_and_survives_a_restart() {
    let b = body(7, 3_000);
    let fake = FakeGallery::new();
    let a = fake.add(1, b.clone());
    let c = fake.add(2, b.clone());
    let (dir, fake, cache) = setup(fake);
    cache.fetch(&a).await.unwrap();
    cache.fetch(&c).await.unwrap();
    assert_eq!(fake.fetches(), 1);
    drop(cache);
    let again =
        ContentCache::open(&config(&dir, 1, DEFAULT_MAX_CACHE_BYTES), fake.clone()).unwrap();
    again.fetch(&c).await.unwrap();
    assert_eq!(fake.fetches(), 1);
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
        Arc::new(FakeGallery::new()),
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
    let fake = FakeGallery::new();
    let bodies: Vec<Vec<u8>> = (0..5).map(|i| body(10 + i, 1_000)).collect();
    let items: Vec<Item> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| fake.add(100 + i as u64, b.clone()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(fake);
    let cache = ContentCache::open(&config(&dir, 2, 2_500), fake.clone()).unwrap();
    cache.fetch(&items[0]).await.unwrap();
    // A reader holding the first object open keeps reading it after it is evicted.
    let held = match cache.open_item(&items[0]).await.unwrap() {
        Opened::Verified(f) => f,
        Opened::Streaming(_) => panic!("verified"),
    };
    for it in &items[1..] {
        cache.fetch(it).await.unwrap();
    }
    assert_eq!(cache.stats.evictions.load(Ordering::SeqCst), 3);
    let on_disk: Vec<bool> = items
        .iter()
        .map(|it| cache.object_path(&it.sha1).exists())
        .collect();
    assert_eq!(on_disk, vec![false, false, false, true, true]);
    let mut out = Vec::new();
    use std::io::Read;
    (&*held).read_to_end(&mut out).unwrap();
    assert!(out == bodies[0]);
    // An evicted object is downloaded again when read again.
    assert!(read_all(&cache, &items[0], 4096).await.unwrap() == bodies[0]);
    assert_eq!(fake.fetches(), 6);
}

#[tokio::test]
async fn an_object_deleted_behind_the_cache_is_fetched_again() {
    let b = body(9, 2_000);
    let (fake, it) = one_item_fake(&b);
    let (_dir, fake, cache) = setup(fake);
    cache.fetch(&it).await.unwrap();
    std::fs::remove_file(cache.object_path(&it.sha1)).unwrap();
    assert!(read_all(&cache, &it, 4096).await.unwrap() == b);
    assert_eq!(fake.fetches(), 2);
}

/// Chunks of an odd size (as a real server's): every piece written but the file's last
/// begins and ends on a 4 KiB boundary, so it goes to the disk in one direct write and no
/// partial block is written through the page cache.
#[tokio::test]
async fn pieces_are_cut_on_the_disk_alignment_whatever_the_chunks() {
    use super::writer::failing::RecordingFs;
    let b = body(4, 3_000_000);
    let (fake, it) = one_item_fake(&b);
    fake.chunk_len.store(10_007, Ordering::SeqCst);
    let fake = Arc::new(fake);
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(RecordingFs::default());
    let cache = ContentCache::open_with(
        &config(&dir, 2, DEFAULT_MAX_CACHE_BYTES),
        fake.clone(),
        fs.clone(),
        Arc::new(Statvfs),
    )
    .unwrap();
    assert!(read_all(&cache, &it, 100_000).await.unwrap() == b);
    assert!(cache.is_verified(&it.sha1));
    let mut writes = fs.writes.lock().unwrap().clone();
    writes.sort();
    assert!(writes.len() > 3, "{writes:?}");
    let mut at = 0;
    for (i, &(offset, len)) in writes.iter().enumerate() {
        assert_eq!(offset, at, "pieces follow each other: {writes:?}");
        at += len as u64;
        if i + 1 < writes.len() {
            assert_eq!(at % 4096, 0, "piece {i} ends off the alignment: {writes:?}");
        }
    }
    assert_eq!(at, b.len() as u64);
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
        let got = read_all(&cache, &it, 100_000).await.unwrap();
        assert!(got == b, "errno {errno} on_flush {on_flush}");
        assert!(
            !cache.object_path(&it.sha1).exists(),
            "no object published (errno {errno}, on_flush {on_flush})"
        );
        assert!(!cache.is_verified(&it.sha1));
        assert!(tmp_is_empty(&dir), "no .part left behind");
        assert_eq!(cache.stats.cache_failures.load(Ordering::SeqCst), 1);
        assert_eq!(cache.stats.uncached_reads.load(Ordering::SeqCst), 1);
        // A second read tries the cache again (the disk may have room by now).
        assert!(read_all(&cache, &it, 100_000).await.unwrap() == b);
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
    let fake = FakeGallery::new();
    let bodies: Vec<Vec<u8>> = (0..3).map(|i| body(40 + i, 1_000)).collect();
    let items: Vec<Item> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| fake.add(300 + i as u64, b.clone()))
        .collect();
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
    assert!(read_all(&cache, &items[2], 4096).await.unwrap() == bodies[2]);
    assert!(cache.is_verified(&items[2].sha1), "cached");
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
    let a = streaming(cache.open_item(&items[0]).await.unwrap());
    assert!(read_reader(&a, 1_000, 300).await.unwrap() == bodies[0]);
    assert!(!cache.is_verified(&items[0].sha1));
    // The budget (1 500 bytes) is held by `a` while its handle lives.
    drop(a);
    assert!(read_all(&cache, &items[1], 4096).await.unwrap() == bodies[1]);
    let big = fake.add(999, body(1, 2_000));
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
        assert!(read_all(&cache, &it, 4096).await.unwrap() == b, "{damage}");
        assert_eq!(cache.stats.damaged.load(Ordering::SeqCst), 1, "{damage}");
        assert_eq!(fake.fetches(), 2, "{damage}: fetched again");
        // Verified once per daemon life: the next open neither hashes nor downloads.
        let verified = cache.stats.verified_on_open.load(Ordering::SeqCst);
        assert!(matches!(
            cache.open_item(&it).await.unwrap(),
            Opened::Verified(_)
        ));
        assert_eq!(
            cache.stats.verified_on_open.load(Ordering::SeqCst),
            verified
        );
        assert_eq!(fake.fetches(), 2);
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

// ---- issue 12: streaming, parts, the integrity promise, scheduling, retries ----

/// The same file through a server that honours Range and one that does not: the same
/// bytes; the mount learns which it is from the first answer.
#[tokio::test]
async fn range_on_and_off_give_the_same_bytes() {
    let b = body(11, 9 * CHUNK as usize + 12345);
    for honour in [true, false] {
        let (fake, it) = one_item_fake(&b);
        fake.range.store(honour, Ordering::SeqCst);
        let (_dir, fake, cache) = setup(fake);
        assert!(
            read_all(&cache, &it, 1 << 20).await.unwrap() == b,
            "range {honour}"
        );
        assert_eq!(cache.range_support(), Some(honour));
        let log = fake.log.lock().unwrap().clone();
        if honour {
            // Parts of at most CHUNK bytes, in parallel.
            assert!(log.len() >= 9, "{log:?}");
            assert!(log
                .iter()
                .all(|(_, r)| r.as_ref().is_some_and(|r| r.end - r.start <= CHUNK)));
        } else {
            // The first request asked for a range, got the whole file, and that was all.
            assert_eq!(log.len(), 1, "{log:?}");
        }
        assert!(fake.sent() <= b.len() as u64 + CHUNK, "{}", fake.sent());
    }
}

/// A 1 MiB read in the middle of a large file fetches its part, and a little ahead: not
/// the file.
#[tokio::test]
async fn a_random_read_fetches_only_its_parts() {
    let size = 64 << 20;
    let b = body(12, size);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    let (_dir, fake, cache) = setup_streaming(fake);
    let r = streaming(cache.open_item(&it).await.unwrap());
    let mid = (size / 2) as u64 + 4321;
    let got = r.read(mid, 1 << 20).await.unwrap();
    assert!(got == b[mid as usize..mid as usize + (1 << 20)]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fake.sent() <= 4 << 20, "moved {} bytes", fake.sent());
    drop(r);
}

/// A read returns as soon as its bytes are in: the first 64 KiB of a paced 16 MiB body
/// come while most of the body has not been sent.
#[tokio::test]
async fn reads_return_as_bytes_arrive() {
    for honour in [true, false] {
        let size = 16 << 20;
        let b = body(13, size);
        let (fake, it) = one_item_fake(&b);
        fake.range.store(honour, Ordering::SeqCst);
        // 64 KiB per 5 ms: 1.3 s for the whole body.
        fake.chunk_delay_us.store(5_000, Ordering::SeqCst);
        let (_dir, fake, cache) = setup_streaming(fake);
        let r = streaming(cache.open_item(&it).await.unwrap());
        let got = r.read(0, 65536).await.unwrap();
        assert!(got == b[..65536]);
        assert!(
            fake.sent() < size as u64 / 2,
            "range {honour}: {} bytes sent before the first read returned",
            fake.sent()
        );
        drop(r);
    }
}

/// Closing the only handle cancels its download: the body stops.
#[tokio::test]
async fn a_download_nobody_wants_is_cancelled() {
    for honour in [true, false] {
        let size = 16 << 20;
        let b = body(14, size);
        let (fake, it) = one_item_fake(&b);
        fake.range.store(honour, Ordering::SeqCst);
        fake.chunk_delay_us.store(5_000, Ordering::SeqCst);
        let (dir, fake, cache) = setup_streaming(fake);
        let r = streaming(cache.open_item(&it).await.unwrap());
        r.read(0, 65536).await.unwrap();
        drop(r);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let at_close = fake.sent();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(fake.sent(), at_close, "range {honour}: the body went on");
        assert!(at_close < size as u64 / 2);
        assert_eq!(cache.load(), (0, 0), "no slot held");
        assert_eq!(cache.stats.cancelled.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(tmp_is_empty(&dir), "the .part is gone");
    }
}

/// A handle that reads every byte gets its last read only once the file matched: a
/// damaged byte the reader had not been given yet costs it nothing (the file is fetched
/// again and its reads go on right).
#[tokio::test]
async fn a_damaged_byte_not_yet_read_is_fetched_again_transparently() {
    let size = 3 * CHUNK as usize;
    let b = body(15, size);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    *fake.corrupt_at.lock().unwrap() = Some(size as u64 - 10);
    fake.corrupt.store(1, Ordering::SeqCst);
    let (_dir, fake, cache) = setup_streaming(fake);
    let r = streaming(cache.open_item(&it).await.unwrap());
    // Read everything but the last 64 KiB (the damaged byte is in there).
    let head = read_reader(&r, size as u64 - 65536, 1 << 20).await.unwrap();
    assert!(head == b[..size - 65536]);
    let tail = r.read(size as u64 - 65536, 65536).await.unwrap();
    assert!(tail == b[size - 65536..]);
    assert_eq!(cache.stats.mismatches.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats.poisoned.load(Ordering::SeqCst), 0);
    assert!(cache.is_verified(&it.sha1));
    drop(r);
    assert!(fake.fetches() > 3);
}

/// A damaged byte the reader was already given: that handle fails with EIO (its copy
/// would be wrong), never completes; a handle opened afterwards reads the file right.
#[tokio::test]
async fn a_damaged_byte_already_read_poisons_the_handle() {
    let size = 3 * CHUNK as usize;
    let b = body(16, size);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    *fake.corrupt_at.lock().unwrap() = Some(100);
    fake.corrupt.store(1, Ordering::SeqCst);
    let (_dir, fake, cache) = setup_streaming(fake);
    let invalidated = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let n = invalidated.clone();
    cache.set_invalidator(Box::new(move |_| {
        n.fetch_add(1, Ordering::SeqCst);
    }));
    let r = streaming(cache.open_item(&it).await.unwrap());
    let first = r.read(0, 65536).await.unwrap();
    assert_ne!(first, b[..65536], "the fake damaged byte 100");
    let rest = read_reader(&r, size as u64, 1 << 20).await;
    assert!(
        matches!(rest, Err(ContentError::Poisoned { .. })),
        "{rest:?}"
    );
    assert!(
        invalidated.load(Ordering::SeqCst) >= 1,
        "the kernel's pages were dropped"
    );
    drop(r);
    assert!(read_all(&cache, &it, 1 << 20).await.unwrap() == b);
    assert_eq!(cache.stats.poisoned.load(Ordering::SeqCst), 1);
    let _ = fake;
}

/// A body damaged every time: every read of the file ends in an error, never in a
/// complete wrong copy.
#[tokio::test]
async fn a_body_damaged_every_time_never_completes() {
    let size = 2 * CHUNK as usize + 777;
    let b = body(17, size);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    *fake.corrupt_at.lock().unwrap() = Some(size as u64 / 2);
    fake.corrupt_always.store(true, Ordering::SeqCst);
    let (dir, _fake, cache) = setup(fake);
    let got = read_all(&cache, &it, 1 << 20).await;
    assert!(got.is_err(), "a complete copy of a file that never matched");
    assert_eq!(
        cache.stats.mismatches.load(Ordering::SeqCst),
        u64::from(MISMATCH_ATTEMPTS)
    );
    assert!(!cache.object_path(&it.sha1).exists());
    assert!(tmp_is_empty(&dir));
}

/// A dead network (no answer at all): an uncached read fails with a timeout after
/// `--io-timeout` without a byte, holding no slot while it retried; a cached file reads.
#[tokio::test]
async fn a_dead_network_fails_uncached_reads_and_serves_cached_ones() {
    let fake = FakeGallery::new();
    let cached = fake.add(1, body(18, 200_000));
    let cold = fake.add(2, body(19, 200_000));
    let fake = Arc::new(fake);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir, 2, DEFAULT_MAX_CACHE_BYTES);
    cfg.io_timeout = Duration::from_secs(2);
    let cache = ContentCache::open(&cfg, fake.clone()).unwrap();
    cache.fetch(&cached).await.unwrap();
    fake.hang.store(true, Ordering::SeqCst);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (cache, cold) = (cache.clone(), cold.clone());
            tokio::spawn(async move { read_all(&cache, &cold, 65536).await })
        })
        .collect();
    for r in readers {
        let e = r.await.unwrap().unwrap_err();
        assert!(matches!(e, ContentError::TimedOut { .. }), "{e}");
    }
    assert_eq!(cache.stats.timeouts.load(Ordering::SeqCst), 4);
    assert_eq!(
        read_all(&cache, &cached, 65536).await.unwrap().len(),
        200_000
    );
}

/// Transient failures are retried in one place: five 503s in a row, then the file.
#[tokio::test]
async fn transient_failures_are_retried_with_backoff() {
    let b = body(20, 100_000);
    let (fake, it) = one_item_fake(&b);
    fake.fail.store(5, Ordering::SeqCst);
    let (_dir, _fake, cache) = setup(fake);
    assert!(read_all(&cache, &it, 65536).await.unwrap() == b);
}

/// 32 readers on random ranges of 200 files through 4 connections: every byte right,
/// never more than 4 connections at once.
#[tokio::test]
async fn many_random_readers_get_every_byte_right_within_the_budget() {
    let fake = FakeGallery::new();
    fake.range.store(true, Ordering::SeqCst);
    let items: Vec<(Item, Arc<Vec<u8>>)> = (0..200u64)
        .map(|i| {
            let b = body(i as u8, 50_000 + (i as usize * 7919) % 3_000_000);
            let it = fake.add(1000 + i, b.clone());
            (it, Arc::new(b))
        })
        .collect();
    let (_dir, _fake, cache) = setup(fake);
    let items = Arc::new(items);
    let tasks: Vec<_> = (0..32u64)
        .map(|reader| {
            let (cache, items) = (cache.clone(), items.clone());
            tokio::spawn(async move {
                let mut x = reader.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for _ in 0..25 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let (it, b) = &items[(x % 200) as usize];
                    let off = (x >> 8) % it.size;
                    let len = ((x >> 32) % 300_000 + 1) as u32;
                    let r = cache.open_item(it).await.unwrap();
                    let got = match &r {
                        Opened::Streaming(r) => r.read(off, len).await.unwrap(),
                        Opened::Verified(f) => {
                            use std::os::unix::fs::FileExt;
                            let n = (len as u64).min(it.size - off) as usize;
                            let mut buf = vec![0u8; n];
                            f.read_exact_at(&mut buf, off).unwrap();
                            buf
                        }
                    };
                    let end = (off as usize + len as usize).min(b.len());
                    assert!(got == b[off as usize..end], "item {} at {off}", it.id);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(cache.sched.peak() <= 4, "peak {}", cache.sched.peak());
}

/// A disk that fills in the middle of a download: the download goes on in memory and the
/// reader, which already had some bytes from the disk, reads the rest right.
#[tokio::test]
async fn a_disk_that_fills_mid_download_goes_on_in_memory() {
    use super::writer::failing::FailingFs;
    let b = body(21, 3 * CHUNK as usize);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    let fake = Arc::new(fake);
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FailingFs {
        budget: CHUNK + 100_000,
        errno: libc::ENOSPC,
        on_flush: false,
        used: Arc::default(),
    });
    let mut cfg = config(&dir, 1, DEFAULT_MAX_CACHE_BYTES);
    cfg.stream_above = 0;
    let cache = ContentCache::open_with(&cfg, fake.clone(), fs, Arc::new(Statvfs)).unwrap();
    let r = streaming(cache.open_item(&it).await.unwrap());
    let got = read_reader(&r, b.len() as u64, 1 << 20).await.unwrap();
    assert!(got == b);
    assert_eq!(cache.stats.cache_failures.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats.poisoned.load(Ordering::SeqCst), 0);
    assert!(!cache.object_path(&it.sha1).exists());
}

/// A small file is handed out verified, but for a first read confirmed by a second
/// download of its bytes: a thumbnailer's 64 KiB come before the whole file, and a read
/// past them waits for the whole file's SHA-1.
#[tokio::test]
async fn small_files_are_read_verified_but_for_a_confirmed_first_read() {
    let size = 8 << 20;
    let b = body(22, size);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    fake.chunk_delay_us.store(5_000, Ordering::SeqCst);
    let (_dir, fake, cache) = setup(fake);
    let r = streaming(cache.open_item(&it).await.unwrap());
    let head = r.read(0, 65536).await.unwrap();
    assert!(head == b[..65536]);
    assert!(
        fake.sent() < size as u64 / 2,
        "{} bytes sent for a 64 KiB read",
        fake.sent()
    );
    assert_eq!(cache.stats.confirmations.load(Ordering::SeqCst), 1);
    let rest = r.read(65536, 1 << 20).await.unwrap();
    assert!(rest == b[65536..65536 + (1 << 20)]);
    assert!(
        cache.is_verified(&it.sha1),
        "the second read waited for the whole file"
    );
}

/// A first read whose bytes a second download contradicts waits for the whole file: the
/// damaged byte is never handed out, and nothing fails.
#[tokio::test]
async fn a_damaged_first_read_is_caught_by_its_confirmation() {
    let size = 8 << 20;
    let b = body(23, size);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    *fake.corrupt_at.lock().unwrap() = Some(100);
    fake.corrupt.store(1, Ordering::SeqCst);
    let (_dir, _fake, cache) = setup(fake);
    let r = streaming(cache.open_item(&it).await.unwrap());
    let head = r.read(0, 65536).await.unwrap();
    assert!(head == b[..65536], "the damaged byte was handed out");
    assert_eq!(cache.stats.mismatches.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats.poisoned.load(Ordering::SeqCst), 0);
    assert!(read_reader(&r, size as u64, 1 << 20).await.unwrap() == b);
}

/// A handle of a folder being copied gets verified bytes only, even of a file that would
/// stream: a damaged byte costs it nothing (compare with the poisoning test above).
#[tokio::test]
async fn a_copy_handle_gets_only_verified_bytes() {
    let size = 3 * CHUNK as usize;
    let b = body(24, size);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    *fake.corrupt_at.lock().unwrap() = Some(100);
    fake.corrupt.store(1, Ordering::SeqCst);
    let (_dir, _fake, cache) = setup_streaming(fake);
    let r = streaming(cache.open_item(&it).await.unwrap());
    r.set_whole_file(true);
    assert!(read_reader(&r, size as u64, 1 << 20).await.unwrap() == b);
    assert_eq!(cache.stats.mismatches.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats.poisoned.load(Ordering::SeqCst), 0);
}

// ---- Resumable downloads (issue 12 item 5) ----

fn partial_data(dir: &tempfile::TempDir, it: &Item) -> std::path::PathBuf {
    dir.path()
        .join("partial")
        .join(format!("{}.part", it.sha1.to_hex()))
}

fn partial_is_empty(dir: &tempfile::TempDir) -> bool {
    std::fs::read_dir(dir.path().join("partial"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// Waits until no writer holds `path` (the download that wrote it is gone).
async fn wait_unlocked(path: &std::path::Path) {
    for _ in 0..200 {
        if let Ok(f) = std::fs::File::open(path) {
            if f.try_lock().is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} is still held (or missing)", path.display());
}

/// A daemon reads the first `parts` parts of `it` through one handle (paced, so the rest
/// is not there yet), closes it and goes; returns its cache dir.
async fn read_head_then_go(fake: &Arc<FakeGallery>, it: &Item, parts: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir, 4, DEFAULT_MAX_CACHE_BYTES);
    cfg.stream_above = 0;
    let cache = ContentCache::open(&cfg, fake.clone()).unwrap();
    let r = streaming(cache.open_item(it).await.unwrap());
    let head = read_reader(&r, parts * CHUNK, 1 << 20).await.unwrap();
    assert_eq!(head.len() as u64, parts * CHUNK);
    assert!(
        !cache.is_verified(&it.sha1),
        "the file must not be complete yet"
    );
    drop(r);
    drop(cache);
    wait_unlocked(&partial_data(&dir, it)).await;
    dir
}

fn streaming_cache(dir: &tempfile::TempDir, fake: &Arc<FakeGallery>) -> Arc<ContentCache> {
    let mut cfg = config(dir, 4, DEFAULT_MAX_CACHE_BYTES);
    cfg.stream_above = 0;
    ContentCache::open(&cfg, fake.clone()).unwrap()
}

/// Ranges asked for since the `from`-th request.
fn asked_since(fake: &FakeGallery, from: usize) -> Vec<Range<u64>> {
    fake.log.lock().unwrap()[from..]
        .iter()
        .map(|(_, r)| r.clone().expect("a range"))
        .collect()
}

#[tokio::test]
async fn an_abandoned_download_resumes_and_moves_only_the_rest() {
    let size = 12 * CHUNK as usize + 777;
    let b = body(30, size);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    fake.chunk_delay_us.store(5_000, Ordering::SeqCst);
    let fake = Arc::new(fake);
    let dir = read_head_then_go(&fake, &it, 4).await;
    assert!(dir
        .path()
        .join("partial")
        .join(format!("{}.map", it.sha1.to_hex()))
        .exists());

    fake.chunk_delay_us.store(0, Ordering::SeqCst);
    let (sent, asked) = (fake.sent(), fake.log.lock().unwrap().len());
    let cache = streaming_cache(&dir, &fake);
    assert!(read_all(&cache, &it, 1 << 20).await.unwrap() == b);
    let moved = fake.sent() - sent;
    assert!(
        moved <= (size as u64) - 4 * CHUNK,
        "the resume moved {moved} bytes of {size}"
    );
    for r in asked_since(&fake, asked) {
        assert!(
            r.start >= 4 * CHUNK,
            "asked again for {r:?}, which was on disk"
        );
    }
    assert!(cache.is_verified(&it.sha1));
    assert_eq!(cache.stats.resumed.load(Ordering::SeqCst), 1);
    let resumed = cache.stats.bytes_resumed.load(Ordering::SeqCst);
    assert!(resumed >= 4 * CHUNK, "{resumed}");
    assert_eq!(
        moved + resumed,
        size as u64,
        "every byte either resumed or fetched once"
    );
    assert_eq!(std::fs::read(cache.object_path(&it.sha1)).unwrap(), b);
    assert!(partial_is_empty(&dir), "the map goes with the publication");
    assert!(tmp_is_empty(&dir));
}

#[tokio::test]
async fn a_part_damaged_on_disk_is_fetched_again_on_resume() {
    let size = 12 * CHUNK as usize;
    let b = body(31, size);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    fake.chunk_delay_us.store(5_000, Ordering::SeqCst);
    let fake = Arc::new(fake);
    let dir = read_head_then_go(&fake, &it, 4).await;
    // A byte of part 1 flipped on disk between the two daemons.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .open(partial_data(&dir, &it))
            .unwrap();
        let at = CHUNK + 4242;
        let mut x = [0u8; 1];
        f.read_exact_at(&mut x, at).unwrap();
        f.write_all_at(&[x[0] ^ 0x01], at).unwrap();
    }
    fake.chunk_delay_us.store(0, Ordering::SeqCst);
    let (sent, asked) = (fake.sent(), fake.log.lock().unwrap().len());
    let cache = streaming_cache(&dir, &fake);
    assert!(read_all(&cache, &it, 1 << 20).await.unwrap() == b);
    let asked = asked_since(&fake, asked);
    assert!(
        asked.iter().any(|r| r.start < 2 * CHUNK && r.end > CHUNK),
        "part 1 is fetched again: {asked:?}"
    );
    assert!(
        asked.iter().all(|r| r.start >= CHUNK),
        "part 0 was right: {asked:?}"
    );
    let moved = fake.sent() - sent;
    assert!(moved <= size as u64 - 3 * CHUNK, "moved {moved}");
    assert_eq!(cache.stats.mismatches.load(Ordering::SeqCst), 0);
    assert!(cache.is_verified(&it.sha1));
}

#[tokio::test]
async fn a_resume_with_every_part_on_disk_fetches_nothing() {
    let b = body(32, 5 * CHUNK as usize + 99);
    let (fake, it) = one_item_fake(&b);
    let (dir, fake, _cache) = setup(fake);
    drop(_cache);
    // Every part written and recorded, never published (a crash just before).
    {
        let layout = layout::Layout::new(dir.path());
        let index = Arc::new(index::CacheIndex::scan(&layout.objects, &[], u64::MAX));
        let r = resume::open(&DiskFs, &layout, &it, index, Arc::new(AtomicU8::new(1)))
            .unwrap()
            .unwrap();
        let mut present = RangeSet::new();
        for (k, part) in b.chunks(CHUNK as usize).enumerate() {
            let at = k as u64 * CHUNK;
            r.writer.write_at(part, at).unwrap();
            r.journal.wrote(at, part);
            present.insert(at..at + part.len() as u64);
            let written = at..at + part.len() as u64;
            let done = r
                .journal
                .completed(&present, std::slice::from_ref(&written));
            r.journal.record(&done).unwrap();
        }
    }
    let cache =
        ContentCache::open(&config(&dir, 4, DEFAULT_MAX_CACHE_BYTES), fake.clone()).unwrap();
    assert!(read_all(&cache, &it, 1 << 20).await.unwrap() == b);
    assert_eq!(fake.fetches(), 0);
    assert!(cache.is_verified(&it.sha1));
    assert!(partial_is_empty(&dir));
}

#[tokio::test]
async fn a_mismatch_or_a_failure_deletes_the_resumable_parts() {
    let size = 6 * CHUNK as usize;
    let b = body(33, size);
    // Once wrong: fetched again, right, nothing left behind.
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    *fake.corrupt_at.lock().unwrap() = Some(2 * CHUNK + 5);
    fake.corrupt.store(1, Ordering::SeqCst);
    let (dir, fake, cache) = setup(fake);
    cache.fetch(&it).await.unwrap();
    assert_eq!(std::fs::read(cache.object_path(&it.sha1)).unwrap(), b);
    assert_eq!(cache.stats.mismatches.load(Ordering::SeqCst), 1);
    assert!(partial_is_empty(&dir));
    // Always wrong: the read fails, and no part of it stays for a resume.
    fake.corrupt_always.store(true, Ordering::SeqCst);
    let other = fake.add(8, body(34, size));
    *fake.corrupt_at.lock().unwrap() = Some(CHUNK + 5);
    assert!(cache.fetch(&other).await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(partial_is_empty(&dir));
}

#[tokio::test]
async fn without_range_nothing_is_kept_for_a_resume() {
    let size = 8 * CHUNK as usize;
    let b = body(35, size);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(false, Ordering::SeqCst);
    fake.chunk_delay_us.store(5_000, Ordering::SeqCst);
    let (dir, _fake, cache) = setup_streaming(fake);
    for _ in 0..2 {
        // First while Range is not known yet (a resumable file is made), then once the
        // mount knows the service ignores it (a plain one).
        let r = streaming(cache.open_item(&it).await.unwrap());
        read_reader(&r, 2 * CHUNK, 1 << 20).await.unwrap();
        drop(r);
        for _ in 0..100 {
            if partial_is_empty(&dir) && tmp_is_empty(&dir) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(partial_is_empty(&dir), "nothing kept without Range");
        assert!(tmp_is_empty(&dir));
    }
    assert_eq!(cache.range_support(), Some(false));
}

#[tokio::test]
async fn resumable_parts_count_under_the_cap_and_are_evicted_when_room_is_needed() {
    let size = 12 * CHUNK as usize;
    let b = body(36, size);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    fake.chunk_delay_us.store(5_000, Ordering::SeqCst);
    let small = fake.add(9, body(37, 3 << 20));
    let fake = Arc::new(fake);
    let dir = read_head_then_go(&fake, &it, 4).await;
    fake.chunk_delay_us.store(0, Ordering::SeqCst);
    // A cap that holds the kept parts (16 MiB or more) or the small file, not both.
    let cache = ContentCache::open(&config(&dir, 4, 18 << 20), fake.clone()).unwrap();
    let kept = cache.index.partial_bytes();
    assert!(kept >= 4 * CHUNK, "the kept parts are counted: {kept}");
    assert!(cache.index.total_bytes() >= kept);
    cache.fetch(&small).await.unwrap();
    assert!(
        !partial_data(&dir, &it).exists(),
        "evicted for the new file"
    );
    assert!(partial_is_empty(&dir));
    assert_eq!(cache.index.partial_bytes(), 0);
    assert_eq!(cache.stats.evictions.load(Ordering::SeqCst), 1);
}

/// A copy's handle reads the whole file: its first read waits for the whole file's SHA-1
/// rather than have its first MiB downloaded a second time to confirm it.
#[tokio::test]
async fn a_copy_handle_asks_for_no_confirmation() {
    let size = 8 << 20;
    let b = body(25, size);
    let (fake, it) = one_item_fake(&b);
    fake.range.store(true, Ordering::SeqCst);
    let (_dir, fake, cache) = setup(fake);
    let r = streaming(cache.open_item(&it).await.unwrap());
    r.set_whole_file(true);
    let head = r.read(0, 65536).await.unwrap();
    assert!(head == b[..65536]);
    assert!(cache.is_verified(&it.sha1), "the first read waited");
    assert_eq!(cache.stats.confirmations.load(Ordering::SeqCst), 0);
    assert_eq!(fake.sent(), size as u64, "every byte downloaded once");
}
