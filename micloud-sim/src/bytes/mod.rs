//! Item bodies: made from their [`Source`] spec on demand, or read from disk.
//!
//! A generated body is a pure function of its spec: [`jpeg`] photos, [`mp4`]-shaped videos,
//! and the large shared-prefix bodies of `--sizes real` ([`synth`]). Small rendered bodies
//! (`Photo`, `Video`: ≤ 2 MB) are kept in an LRU of the 24 most recently served (≤ 48 MB worst
//! case); large `Synth` bodies (up to 700 MB) are never held whole: they are streamed in
//! 64 KiB chunks generated as the client reads. Disk files are streamed in 64 KiB chunks
//! ([`file_stream`]) and never cached.
//!
//! [`fingerprint`] gives the size and SHA-1 of one body; results for rendered specs are
//! memoised process-wide, because tests start many emulators with the same seed and encoding
//! a JPEG in a debug build costs tens of milliseconds. Fingerprinting a whole gallery (and
//! its cache file) is [`crate::build::fingerprint`]'s job.

pub mod jpeg;
pub mod mp4;
pub mod synth;

use std::collections::HashMap;
use std::io::Read;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use lru::LruCache;
use sha1::{Digest, Sha1};

use crate::bytes::jpeg::JpegError;
use crate::model::item::Item;
use crate::model::rng::hash_bytes;
use crate::model::source::{PhotoSpec, Source, SynthSpec, Template};

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
    /// Generated as it is read ([`Body::synth_range`] gives any byte range); the `u64` is the
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
        _ => (hash_bytes(item.id.as_bytes()), 320, 240),
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

/// Read size of disk-backed bodies.
pub const CHUNK: usize = 64 * 1024;

/// `len` bytes of an open file from its current position, in [`CHUNK`]s; stops after the first
/// error or at end of file.
pub fn file_stream(
    f: tokio::fs::File,
    len: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(Some((f, len)), |state| async move {
        let (mut f, left) = state?;
        if left == 0 {
            return None;
        }
        let want = left.min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some((f, left - n as u64))))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}
