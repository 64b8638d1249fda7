//! Item bodies: generated on demand or read from disk, fingerprinted once at start-up.
//!
//! A generated body is a pure function of its [`Source`] spec, so nothing is kept in memory
//! except an LRU of the 24 most recently served bodies (≤ 24 × 2 MB = 48 MB worst case).
//! [`fingerprint_all`] computes size and SHA-1 of every item once, on all cores; results for
//! generated specs are memoised process-wide, because tests start many emulators with the same
//! seed and encoding a JPEG in a debug build costs tens of milliseconds. Disk files are
//! streamed in 64 KiB chunks and never cached.

use std::collections::HashMap;
use std::io::Read;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use lru::LruCache;
use sha1::{Digest, Sha1};

use super::gallery::Item;
use super::jpeg::{self, JpegError, PhotoSpec};
use super::mp4::{self, VideoSpec};

/// Where an item's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Photo(PhotoSpec),
    Video(VideoSpec),
    Disk(PathBuf),
    /// Bytes given whole (uploads through the control API).
    Bytes(Bytes),
}

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error(transparent)]
    Jpeg(#[from] JpegError),
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Render a generated body (disk sources are read whole; used for fingerprints of small
/// files only through [`fingerprint`]).
pub fn render(source: &Source) -> Result<Vec<u8>, ContentError> {
    match source {
        Source::Photo(p) => Ok(jpeg::render(p)?),
        Source::Video(v) => Ok(mp4::render(v)),
        Source::Bytes(b) => Ok(b.to_vec()),
        Source::Disk(path) => std::fs::read(path).map_err(|source| ContentError::Io {
            path: path.clone(),
            source,
        }),
    }
}

fn memo() -> &'static Mutex<HashMap<Source, (u64, String)>> {
    static MEMO: OnceLock<Mutex<HashMap<Source, (u64, String)>>> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(HashMap::new()))
}

/// `(size, lower-hex sha1)` of one source.
pub fn fingerprint(source: &Source) -> Result<(u64, String), ContentError> {
    if let Source::Disk(path) = source {
        let io = |source| ContentError::Io {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::File::open(path).map_err(io)?;
        let mut h = Sha1::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            h.update(&buf[..n]);
        }
        return Ok((size, hex::encode(h.finalize())));
    }
    if let Source::Bytes(b) = source {
        return Ok((b.len() as u64, hex::encode(Sha1::digest(b))));
    }
    if let Some(hit) = memo().lock().ok().and_then(|m| m.get(source).cloned()) {
        return Ok(hit);
    }
    let body = render(source)?;
    let fp = (body.len() as u64, hex::encode(Sha1::digest(&body)));
    if let Ok(mut m) = memo().lock() {
        m.insert(source.clone(), fp.clone());
    }
    Ok(fp)
}

type Fingerprint = Result<(u64, String), ContentError>;

/// Fill `size` and `sha1` of every item, using every core.
pub fn fingerprint_all(items: &mut [Item]) -> Result<(), ContentError> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(8);
    let next = AtomicUsize::new(0);
    let sources: Vec<&Source> = items.iter().map(|it| &it.source).collect();
    let results: Vec<Mutex<Option<Fingerprint>>> =
        sources.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(src) = sources.get(i) else { break };
                let r = fingerprint(src);
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    for (item, slot) in items.iter_mut().zip(results) {
        let r = slot.into_inner().ok().flatten();
        let (size, sha1) = match r {
            Some(r) => r?,
            None => (0, String::new()),
        };
        item.size = size;
        item.sha1 = sha1;
    }
    Ok(())
}

/// What a download serves.
pub enum Body {
    Memory(Bytes),
    File(tokio::fs::File, u64),
}

/// Recently served generated bodies.
pub struct ContentStore {
    cache: Mutex<LruCache<Source, Bytes>>,
}

impl Default for ContentStore {
    fn default() -> Self {
        ContentStore {
            cache: Mutex::new(LruCache::new(NonZeroUsize::MIN.saturating_add(23))),
        }
    }
}

impl ContentStore {
    /// The body of `item`, generated off the async threads when not cached.
    pub async fn body(&self, item: &Item) -> Result<Body, ContentError> {
        if let Source::Disk(path) = &item.source {
            let io = |source| ContentError::Io {
                path: path.clone(),
                source,
            };
            let f = tokio::fs::File::open(path).await.map_err(io)?;
            let len = f.metadata().await.map_err(io)?.len();
            return Ok(Body::File(f, len));
        }
        if let Source::Bytes(b) = &item.source {
            return Ok(Body::Memory(b.clone()));
        }
        if let Some(b) = self
            .cache
            .lock()
            .ok()
            .and_then(|mut c| c.get(&item.source).cloned())
        {
            return Ok(Body::Memory(b));
        }
        let source = item.source.clone();
        let rendered = tokio::task::spawn_blocking(move || render(&source))
            .await
            .map_err(|e| ContentError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(e),
            })??;
        let bytes = Bytes::from(rendered);
        if let Ok(mut c) = self.cache.lock() {
            c.put(item.source.clone(), bytes.clone());
        }
        Ok(Body::Memory(bytes))
    }
}

/// A small JPEG preview (no EXIF) for the thumbnail URLs: the photo's own pattern at ≤ 270 px,
/// or a neutral card for videos and disk files.
pub fn thumbnail(item: &Item, max: u16) -> Result<Vec<u8>, ContentError> {
    let (seed, w, h) = match &item.source {
        Source::Photo(p) => (p.seed, p.width, p.height),
        _ => (super::rng::hash_bytes(item.id.as_bytes()), 320, 240),
    };
    let scale = f64::from(max) / f64::from(w.max(h).max(1));
    let spec = PhotoSpec {
        seed,
        width: ((f64::from(w) * scale) as u16).max(16),
        height: ((f64::from(h) * scale) as u16).max(16),
        exif: None,
    };
    Ok(jpeg::render(&spec)?)
}
