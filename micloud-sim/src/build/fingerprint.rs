//! Size and SHA-1 of every item of a gallery, computed once at start-up.
//!
//! [`fingerprint_cached`] takes them from the cache file when it is valid
//! ([`crate::build::fpcache`]), else computes `Synth` items by one filler walk per template
//! ([`crate::bytes::synth::fingerprint_all`]) and the others on all cores (at most 8 threads),
//! then rewrites the cache file. The cache key says what makes the fingerprints what they
//! are: the generator's version, seed, album and item counts and size mode, or the canonical
//! `--from-dir` path (whose files are then matched by path, size and mtime).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::build::fpcache::{self, Entry};
use crate::build::generate;
use crate::bytes::{self, synth, ContentError};
use crate::config::SimConfig;
use crate::model::item::Item;
use crate::model::source::{Source, SynthSpec};

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
                let r = bytes::fingerprint(src);
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
            generate::VERSION,
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
