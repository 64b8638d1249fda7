//! Item bodies: generated on demand or read from disk, fingerprinted once at start-up.
//!
//! A generated body is a pure function of its [`Source`] spec. Small rendered bodies
//! (`Photo`, `Video`: ≤ 2 MB) are kept in an LRU of the 24 most recently served (≤ 48 MB worst
//! case); large `Synth` bodies (`--sizes real`, up to 700 MB) are never held whole: they are
//! streamed in 64 KiB chunks generated as the client reads ([`super::synth`]). Disk files are
//! streamed in 64 KiB chunks and never cached.
//!
//! [`fingerprint_cached`] fills size and SHA-1 of every item: from the cache file when it is
//! valid ([`super::fpcache`]), else `Synth` items by one filler walk per template and the
//! others on all cores (results for rendered specs are memoised process-wide, because tests
//! start many emulators with the same seed and encoding a JPEG in a debug build costs tens of
//! milliseconds), then rewrites the cache file.

use std::collections::HashMap;
use std::io::Read;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use lru::LruCache;
use sha1::{Digest, Sha1};

use super::fpcache::{self, Entry};
use super::gallery::Item;
use super::jpeg::{self, JpegError, PhotoSpec};
use super::mp4::{self, VideoSpec};
use super::synth::{self, SynthSpec, Template};
use super::SimConfig;

/// Where an item's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Photo(PhotoSpec),
    Video(VideoSpec),
    Disk(PathBuf),
    /// Bytes given whole (uploads through the control API).
    Bytes(Bytes),
    /// A large shared-prefix body (`--sizes real`), streamed.
    Synth(SynthSpec),
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

/// Render a generated body whole (disk sources are read whole; `Synth` bodies can be hundreds
/// of MB: downloads stream them through [`ContentStore::body`] instead).
pub fn render(source: &Source) -> Result<Vec<u8>, ContentError> {
    match source {
        Source::Photo(p) => Ok(jpeg::render(p)?),
        Source::Video(v) => Ok(mp4::render(v)),
        Source::Bytes(b) => Ok(b.to_vec()),
        Source::Synth(s) => Ok(synth::render(s)?),
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
    if let Source::Synth(spec) = source {
        let (size, sha) = synth::fingerprint_all(&[spec])?[0];
        return Ok((size, hex::encode(sha)));
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

/// Fill `size` and `sha1` of every item (no cache file).
#[allow(dead_code)] // for callers that build items outside start-up (uploads, live changes)
pub fn fingerprint_all(items: &mut [Item]) -> Result<(), ContentError> {
    let all: Vec<usize> = (0..items.len()).collect();
    compute(items, &all)
}

/// Compute the fingerprints of `items[i]` for every `i` in `which`: `Synth` specs by one
/// filler walk per template, the others on every core.
fn compute(items: &mut [Item], which: &[usize]) -> Result<(), ContentError> {
    let (big, rest): (Vec<usize>, Vec<usize>) = which
        .iter()
        .partition(|&&i| matches!(items[i].source, Source::Synth(_)));
    let specs: Vec<&SynthSpec> = big
        .iter()
        .filter_map(|&i| match &items[i].source {
            Source::Synth(s) => Some(s),
            _ => None,
        })
        .collect();
    let walked = synth::fingerprint_all(&specs)?;
    for (&i, (size, sha)) in big.iter().zip(walked) {
        items[i].size = size;
        items[i].sha1 = hex::encode(sha);
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(8);
    let next = AtomicUsize::new(0);
    let sources: Vec<&Source> = rest.iter().map(|&i| &items[i].source).collect();
    let results: Vec<Mutex<Option<Fingerprint>>> =
        sources.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers.min(sources.len()) {
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
    for (&i, slot) in rest.iter().zip(results) {
        let r = slot.into_inner().ok().flatten();
        let (size, sha1) = match r {
            Some(r) => r?,
            None => (0, String::new()),
        };
        items[i].size = size;
        items[i].sha1 = sha1;
    }
    Ok(())
}

/// How the fingerprints were obtained.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprinted {
    /// Items whose fingerprint came from the cache file.
    pub cached: usize,
    /// Items hashed now.
    pub computed: usize,
    /// The cache file, when caching is on.
    pub file: Option<PathBuf>,
}

/// The identity of a gallery in the cache: what makes its fingerprints what they are.
fn cache_key(config: &SimConfig) -> String {
    match &config.from_dir {
        Some(dir) => {
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            format!("from-dir {}", dir.display())
        }
        None => format!(
            "generated v{} seed={} albums={} items={} sizes={}",
            super::generate::VERSION,
            config.seed,
            config.albums,
            config.items,
            config.scale.sizes.as_str()
        ),
    }
}

/// `(mtime in ns, length)` of a disk file, or `None` when it cannot be read.
fn stamp(path: &Path) -> Option<(i64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    let t = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some((i64::try_from(t.as_nanos()).unwrap_or(i64::MAX), m.len()))
}

/// Fill `size` and `sha1` of every item, reusing the cache file of `config` when it is valid
/// and rewriting it (atomically) when anything had to be computed.
pub fn fingerprint_cached(
    items: &mut [Item],
    config: &SimConfig,
) -> Result<Fingerprinted, ContentError> {
    let key = fpcache::key(&cache_key(config));
    let file = config.scale.cache_dir().map(|d| fpcache::file_in(&d, &key));
    let mut stale = false;
    let old = match file.as_deref().map(|p| fpcache::load(p, &key)) {
        Some(Ok(Some(entries))) => entries,
        Some(Ok(None)) | None => Vec::new(),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "ignoring the fingerprint cache file; it will be rebuilt");
            stale = true;
            Vec::new()
        }
    };
    // (path, mtime, length) of disk files; generated items are matched by position.
    let ids: Vec<(String, i64, Option<u64>)> = items
        .iter()
        .map(|it| match &it.source {
            Source::Disk(p) => {
                let st = stamp(p);
                (
                    p.to_string_lossy().into_owned(),
                    st.map(|s| s.0).unwrap_or(0),
                    st.map(|s| s.1),
                )
            }
            _ => (String::new(), 0, None),
        })
        .collect();
    let mut missing = Vec::new();
    if config.from_dir.is_some() {
        let by_path: HashMap<&str, &Entry> = old.iter().map(|e| (e.path.as_str(), e)).collect();
        for (i, it) in items.iter_mut().enumerate() {
            let (path, mtime_ns, len) = &ids[i];
            match by_path.get(path.as_str()) {
                Some(e) if e.mtime_ns == *mtime_ns && Some(e.size) == *len => {
                    it.size = e.size;
                    it.sha1 = hex::encode(e.sha1);
                }
                _ => missing.push(i),
            }
        }
    } else if old.len() == items.len() {
        for (it, e) in items.iter_mut().zip(&old) {
            it.size = e.size;
            it.sha1 = hex::encode(e.sha1);
        }
    } else {
        missing = (0..items.len()).collect();
    }
    compute(items, &missing)?;
    let done = Fingerprinted {
        cached: items.len() - missing.len(),
        computed: missing.len(),
        file,
    };
    let Some(path) = &done.file else {
        return Ok(done);
    };
    if !missing.is_empty() || stale || old.len() != items.len() {
        let entries: Vec<Entry> = items
            .iter()
            .zip(ids)
            .map(|(it, (path, mtime_ns, _))| {
                let mut sha1 = [0u8; 20];
                let _ = hex::decode_to_slice(&it.sha1, &mut sha1);
                Entry {
                    path,
                    mtime_ns,
                    size: it.size,
                    sha1,
                }
            })
            .collect();
        match fpcache::save(path, &key, &entries) {
            Ok(()) => tracing::info!(file = %path.display(), "fingerprint cache written"),
            Err(e) => tracing::warn!(
                file = %path.display(),
                error = %e,
                "cannot write the fingerprint cache (next start hashes again); check the \
                 folder's permissions or pass --data-dir / --no-cache"
            ),
        }
    }
    Ok(done)
}

/// A body produced chunk by chunk.
pub type BodyStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static>>;

impl Body {
    /// Bytes `from..to` of a generated body, made as they are read.
    pub fn synth_range(spec: SynthSpec, from: u64, to: u64) -> Result<BodyStream, ContentError> {
        Ok(Box::pin(synth::stream(spec, from, to)?))
    }

    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Memory(b) => b.len() as u64,
            Body::File(_, len) | Body::Synth(_, len) => *len,
        }
    }
}

/// What a download serves.
pub enum Body {
    Memory(Bytes),
    File(tokio::fs::File, u64),
    /// Generated as it is read ([`Body::stream`] gives any byte range); the `u64` is the
    /// total length.
    Synth(SynthSpec, u64),
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
        if let Source::Synth(spec) = &item.source {
            let t = spec.template;
            if !synth::head_ready(t) {
                tokio::task::spawn_blocking(move || synth::head(t).map(|_| ()))
                    .await
                    .map_err(|e| ContentError::Io {
                        path: PathBuf::new(),
                        source: std::io::Error::other(e),
                    })??;
            }
            let len = synth::size(spec)?;
            return Ok(Body::Synth(spec.clone(), len));
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
        Source::Synth(s) if s.template != Template::Video => {
            let (w, h) = s.template.dims();
            (s.template.seed(), w as u16, h as u16)
        }
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
