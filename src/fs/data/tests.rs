//! The data path's core against the fake `GalleryApi`: no kernel, no mount.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::cloud::fake::{body, FakeGallery};
use crate::content::{
    ContentConfig, MinFree, DEFAULT_MAX_CACHE_BYTES, DEFAULT_MEMORY_BUDGET, STREAM_ABOVE,
};

const FOLDER: Ino = 10;
const SUMS: Ino = 5;

/// One folder of files (inodes 100, 101, ...) and a generated file.
struct FakeTree {
    files: Vec<(Ino, Item)>,
    sums: Arc<[u8]>,
}

impl Siblings for FakeTree {
    fn folder_of(&self, ino: Ino) -> Option<Ino> {
        self.files.iter().any(|(i, _)| *i == ino).then_some(FOLDER)
    }
    fn files_of(&self, folder: Ino) -> Vec<(Ino, Item)> {
        if folder == FOLDER {
            self.files.clone()
        } else {
            vec![]
        }
    }
}

impl Tree for FakeTree {
    fn item(&self, ino: Ino) -> Option<Item> {
        self.files
            .iter()
            .find(|(i, _)| *i == ino)
            .map(|(_, it)| it.clone())
    }
    fn generated(&self, ino: Ino) -> Option<Arc<[u8]>> {
        (ino == SUMS).then(|| self.sums.clone())
    }
    fn exists(&self, ino: Ino) -> bool {
        ino == SUMS || ino == FOLDER || self.item(ino).is_some()
    }
    fn is_dir(&self, ino: Ino) -> bool {
        ino == FOLDER
    }
}

struct Bed {
    _dir: tempfile::TempDir,
    fake: Arc<FakeGallery>,
    core: DataCore,
    bodies: HashMap<Ino, Vec<u8>>,
    invalidated: Arc<Mutex<Vec<Ino>>>,
}

fn bed(sizes: &[usize], range: bool, connections: usize) -> Bed {
    bed_with_inos(sizes, range, connections, |i| 100 + i as Ino)
}

/// Files listed (by name) in the order of `sizes`, with inode numbers from `ino_of`.
fn bed_with_inos(
    sizes: &[usize],
    range: bool,
    connections: usize,
    ino_of: impl Fn(usize) -> Ino,
) -> Bed {
    let fake = FakeGallery::new();
    fake.range.store(range, Ordering::SeqCst);
    let mut files = Vec::new();
    let mut bodies = HashMap::new();
    for (i, &size) in sizes.iter().enumerate() {
        let b = body(i as u8, size);
        let mut it = fake.add(1000 + i as u64, b.clone());
        it.file_name = format!("IMG_{i:04}.jpg");
        files.push((ino_of(i), it));
        bodies.insert(ino_of(i), b);
    }
    let fake = Arc::new(fake);
    let dir = tempfile::tempdir().unwrap();
    let content = ContentCache::open(
        &ContentConfig {
            cache_dir: dir.path().to_path_buf(),
            max_connections: connections,
            max_bytes: DEFAULT_MAX_CACHE_BYTES,
            min_free: MinFree::Default,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            io_timeout: Duration::from_secs(20),
            stream_above: STREAM_ABOVE,
        },
        fake.clone(),
    )
    .unwrap();
    let tree = Arc::new(FakeTree {
        files,
        sums: Arc::from(&b"abc  x.jpg\n"[..]),
    });
    let core = DataCore::new(
        tree,
        content,
        DEFAULT_MAX_CACHE_BYTES,
        tokio::runtime::Handle::current(),
    );
    let invalidated = Arc::new(Mutex::new(Vec::new()));
    let inv = invalidated.clone();
    core.set_kernel(Box::new(move |ino| inv.lock().unwrap().push(ino)));
    Bed {
        _dir: dir,
        fake,
        core,
        bodies,
        invalidated,
    }
}

/// The item ids fetched, in order, once `n` fetches were made (or after 10 s).
async fn fetched_after(fake: &FakeGallery, n: u32) -> Vec<u64> {
    for _ in 0..500 {
        if fake.fetches() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.log
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.0)
        .collect()
}

/// Reads a whole file through the core as `cp` does (128 KiB reads until a short one).
async fn cp(core: &DataCore, ino: Ino) -> Result<Vec<u8>, Errno> {
    let o = core.open(ino).await?;
    let mut out = Vec::new();
    loop {
        let got = core.read(o.fh, out.len() as u64, 128 << 10).await?;
        let n = got.len();
        out.extend_from_slice(&got);
        if n < 128 << 10 {
            break;
        }
    }
    core.release(o.fh);
    Ok(out)
}

#[tokio::test]
async fn reads_eof_and_errors_without_a_kernel() {
    let b = bed(&[300_000], true, 4);
    assert!(cp(&b.core, 100).await.unwrap() == b.bodies[&100]);
    // Reads past the end are empty; a read across it is short.
    let o = b.core.open(100).await.unwrap();
    assert!(
        o.backing.is_some(),
        "a verified object may be passed through"
    );
    assert!(b.core.read(o.fh, 300_000, 4096).await.unwrap().is_empty());
    assert_eq!(b.core.read(o.fh, 299_000, 4096).await.unwrap().len(), 1000);
    b.core.release(o.fh);
    // The generated file.
    let o = b.core.open(SUMS).await.unwrap();
    assert_eq!(b.core.read(o.fh, 0, 4096).await.unwrap(), b"abc  x.jpg\n");
    assert_eq!(b.core.read(o.fh, 5, 3).await.unwrap(), b"x.j");
    b.core.release(o.fh);
    assert!(matches!(b.core.open(FOLDER).await, Err(e) if e == Errno::EISDIR));
    assert!(matches!(b.core.open(999).await, Err(e) if e == Errno::ENOENT));
    assert_eq!(b.core.read(12345, 0, 10).await.unwrap_err(), Errno::EBADF);
    assert_eq!(b.core.open_handles(), 0);
}

#[tokio::test]
async fn a_deleted_item_reads_as_enoent() {
    let b = bed(&[10_000], true, 4);
    b.fake
        .deleted
        .lock()
        .unwrap()
        .push(crate::model::ItemId(1000));
    assert_eq!(cp(&b.core, 100).await.unwrap_err(), Errno::ENOENT);
}

/// A copy tool reading a folder in order: after the first file read to its end and the
/// second opened, the next files are fetched ahead, in listing order.
#[tokio::test]
async fn a_sequential_copy_prefetches_the_next_files_in_order() {
    // Files smaller than the first request plus READ_ON: no read goes on past it, so only
    // the pattern "read to its end, then the next one opened" starts the prefetch (a
    // larger first file would start it while being read, at a time that depends on load).
    let sizes = vec![100_000; 12];
    let b = bed(&sizes, true, 4);
    assert!(cp(&b.core, 100).await.unwrap() == b.bodies[&100]);
    let before = b.fake.fetches();
    assert_eq!(before, 1, "nothing fetched ahead after one file");
    assert!(cp(&b.core, 101).await.unwrap() == b.bodies[&101]);
    // Let the prefetches run.
    let log = fetched_after(&b.fake, 12).await;
    assert_eq!(log.len(), 12, "{log:?}");
    // Prefetch goes in listing order.
    assert_eq!(log[2..], (1002..1012).collect::<Vec<u64>>(), "{log:?}");
    // The rest of the copy downloads nothing more.
    for i in 2..12 {
        assert!(cp(&b.core, 100 + i).await.unwrap() == b.bodies[&(100 + i)]);
    }
    assert_eq!(b.fake.fetches(), 12);
}

/// GNU `cp -r` reads a folder in inode order, which is not the names' order here (inodes
/// are hashes): that order is followed too.
#[tokio::test]
async fn a_copy_in_inode_order_prefetches_too() {
    let sizes = vec![200_000; 10];
    // Names in the order 0..10, inodes in the reverse order.
    let b = bed_with_inos(&sizes, true, 4, |i| 500 - i as Ino);
    let mut by_ino: Vec<Ino> = b.bodies.keys().copied().collect();
    by_ino.sort();
    assert!(cp(&b.core, by_ino[0]).await.unwrap() == b.bodies[&by_ino[0]]);
    assert!(cp(&b.core, by_ino[1]).await.unwrap() == b.bodies[&by_ino[1]]);
    for _ in 0..500 {
        if b.fake.fetches() >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.fake.fetches(), 10, "the rest was fetched ahead");
    for ino in &by_ino[2..] {
        assert!(cp(&b.core, *ino).await.unwrap() == b.bodies[ino]);
    }
    assert_eq!(b.fake.fetches(), 10);
}

/// A thumbnailer (open, read 64 KiB, close, next file) does not trigger prefetch and
/// does not download whole files.
#[tokio::test]
async fn a_thumbnailer_downloads_a_little_of_each_file() {
    let sizes = vec![16 << 20; 10];
    let b = bed(&sizes, true, 4);
    for i in 0..10 {
        let o = b.core.open(100 + i).await.unwrap();
        let got = b.core.read(o.fh, 0, 65536).await.unwrap();
        assert!(got == b.bodies[&(100 + i)][..65536]);
        b.core.release(o.fh);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let total: u64 = sizes.iter().map(|&s| s as u64).sum();
    assert!(
        b.fake.sent() <= total / 4,
        "{} of {total} bytes downloaded",
        b.fake.sent()
    );
    // Per file: the first MiB, and its confirmation (a second download of the same bytes,
    // so that they may be handed out before the whole file is verified). No prefetch.
    assert!(b.fake.fetches() <= 20, "{} requests", b.fake.fetches());
}

/// Without Range (one connection per file), a large file ahead is started before the
/// small ones in front of it: it would take longest alone.
#[tokio::test]
async fn without_range_a_large_file_ahead_starts_early() {
    let mut sizes = vec![100_000; 12];
    sizes[9] = 3_000_000;
    let b = bed(&sizes, false, 4);
    b.fake.chunk_delay_us.store(2_000, Ordering::SeqCst);
    cp(&b.core, 100).await.unwrap();
    cp(&b.core, 101).await.unwrap();
    let log = fetched_after(&b.fake, 12).await;
    let big = log
        .iter()
        .position(|&id| id == 1009)
        .expect("the big file was fetched");
    let seventh = log
        .iter()
        .position(|&id| id == 1006)
        .expect("file 6 was fetched");
    assert!(big < seventh, "the big file started after file 6: {log:?}");
}

/// A download found damaged after its bytes were streamed: the kernel's pages of the
/// inode are dropped.
#[tokio::test]
async fn a_mismatch_after_streaming_drops_the_kernels_pages() {
    let b = bed(&[5 << 20], true, 4);
    *b.fake.corrupt_at.lock().unwrap() = Some((5 << 20) - 5);
    b.fake.corrupt.store(1, Ordering::SeqCst);
    assert!(cp(&b.core, 100).await.unwrap() == b.bodies[&100]);
    assert_eq!(*b.invalidated.lock().unwrap(), vec![100]);
}

/// A body damaged every time: the copy fails with EIO before its end, never completes.
#[tokio::test]
async fn a_body_damaged_every_time_fails_the_copy_with_eio() {
    let b = bed(&[3 << 20], true, 4);
    *b.fake.corrupt_at.lock().unwrap() = Some(2 << 20);
    b.fake.corrupt_always.store(true, Ordering::SeqCst);
    assert_eq!(cp(&b.core, 100).await.unwrap_err(), Errno::EIO);
}

/// In a folder being copied, a file still downloading when the copy opens it is opened
/// once verified, as the verified object (which the kernel reads itself, passthrough):
/// the copy's reads would have waited for the whole file anyway.
#[tokio::test]
async fn a_copys_open_of_a_file_in_flight_gets_the_verified_object() {
    let sizes = vec![100_000, 100_000, 4 << 20, 100_000];
    let b = bed(&sizes, true, 4);
    b.fake.chunk_delay_us.store(20_000, Ordering::SeqCst);
    assert!(cp(&b.core, 100).await.unwrap() == b.bodies[&100]);
    assert!(cp(&b.core, 101).await.unwrap() == b.bodies[&101]);
    let sha1 = b.core.tree.item(102).unwrap().sha1;
    assert!(
        !b.core.content().is_verified(&sha1),
        "the 4 MiB file takes over a second to arrive"
    );
    let o = b.core.open(102).await.unwrap();
    assert!(b.core.content().is_verified(&sha1));
    assert!(o.backing.is_some(), "the verified object, for passthrough");
    b.core.release(o.fh);
    assert!(cp(&b.core, 102).await.unwrap() == b.bodies[&102]);
    // A reader that is not copying still streams.
    let b = bed(&[4 << 20], true, 4);
    b.fake.chunk_delay_us.store(20_000, Ordering::SeqCst);
    let o = b.core.open(100).await.unwrap();
    assert!(o.backing.is_none());
    b.core.release(o.fh);
}

/// A copy seen starting: the folder's first file read on from its start in the kernel's
/// large requests (1 MiB, then the rest of a 1.5 MB file) starts the next files before
/// the copy opens the second one.
#[tokio::test]
async fn a_copy_starting_in_large_reads_fetches_ahead_at_once() {
    let b = bed(&[1_500_000, 100_000, 100_000], true, 4);
    let o = b.core.open(100).await.unwrap();
    let mut got = b.core.read(o.fh, 0, 1 << 20).await.unwrap();
    got.extend(b.core.read(o.fh, 1 << 20, 452_000).await.unwrap());
    assert!(got == b.bodies[&100]);
    let mut log = Vec::new();
    for _ in 0..500 {
        log = fetched_after(&b.fake, 0).await;
        if log.contains(&1001) && log.contains(&1002) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(log.contains(&1001) && log.contains(&1002), "{log:?}");
    b.core.release(o.fh);
}
