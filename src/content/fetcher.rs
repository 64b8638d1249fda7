//! A job: fetches one range of one transfer (or, from a server that ignores `Range`, the
//! whole file), retrying as `retry` says, and writes what arrives into the transfer.
//!
//! One try = (the resolved URL, reused, or resolve it) + one `fetch` + the body, while
//! holding a connection [`Slot`](super::sched::Slot). The body is gathered into pieces
//! ([`Pieces`]) of [`PIECE`] bytes while a process waits on the job's bytes, so a reader
//! waiting on the first bytes of a 241 MiB video gets them a round trip after the request,
//! not after the whole part, and of [`PIECE_AHEAD`] bytes for a prefetch (fewer, larger
//! writes: daemon CPU per GB of a cold `cp -r` under load, median of 3, 4.04 s at 256 KiB,
//! 3.65 s at 1 MiB; lan profile 3.70 -> 2.91). Each piece is written (and hashed) on a
//! blocking thread while the next one arrives; its buffer lies in memory aligned like its
//! place in the file, so the writer hands its middle to `O_DIRECT` as it is (see `writer`).
//!
//! What an answer may be:
//! - **206** with `Content-Range` starting where asked and the listed total: the server
//!   honours Range (learned for the mount);
//! - **200**: the whole file from byte 0 (the server ignores Range, learned for the mount);
//!   the job becomes the transfer's one whole-file stream, or stops if there already is
//!   one. Bytes already present are skipped, not written again;
//! - a length (Content-Length, Content-Range total, or more bytes than asked) that does
//!   not fit the listing: a mismatch, as a wrong SHA-1 is;
//! - a body cut short, a stall of [`retry::stall_timeout`], 5xx, a refused URL: tried again
//!   (a refused URL is resolved again first).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::pool::PiecePool;
use super::retry;
use super::sched::Urgency;
use super::transfer::{Phase, Transfer};
use super::writer::{PieceBuf, DIRECT_ALIGN};
use super::{ContentCache, ContentError};
use crate::cloud::{CloudError, Resolved};

/// Bytes gathered before one write (and one hand-off to a blocking thread) while a
/// process waits on the job's bytes.
pub const PIECE: usize = 256 << 10;
/// The same for a job nobody waits on (prefetch): fewer, larger writes (each direct write
/// is one request to the device).
pub const PIECE_AHEAD: usize = 1 << 20;
/// The size of a piece buffer: a piece plus the largest chunk a body gives at once, so a
/// piece never makes its buffer grow.
pub const PIECE_BUF: usize = PIECE_AHEAD + (64 << 10);

/// How long a resolved download URL is reused (the real service's lifetime is not known,
/// spec §4.5; the emulator's default is 5 min).
pub const URL_REUSE: Duration = Duration::from_secs(60);

/// How a job ended.
pub(crate) enum JobEnd {
    /// Its bytes are present.
    Done,
    /// Its generation is gone (or the transfer ended): nothing to do.
    Stale,
    /// Its last write let the SHA-1 reach the end of the file: verify now.
    Verify,
    /// Gave up after retries; the reason.
    GaveUp(ContentError),
    /// A failure no retry can mend (the item was deleted, the session is dead...).
    Fatal(ContentError),
    /// The service's answer does not fit the listing.
    Mismatch(String),
    /// The store could not take the bytes (disk full or failing).
    StoreFailed(std::io::Error),
}

enum TryEnd {
    /// The range (or the file) is in.
    Complete,
    Verify,
    Stale,
}

enum TryError {
    /// The transfer moved on (a new generation, cancelled): stop quietly.
    Stale,
    Retry(ContentError, bool),
    Fatal(ContentError),
    Mismatch(String),
    Store(std::io::Error),
}

/// Runs a job to its end and reports it to the cache.
pub(crate) async fn run(
    cache: Arc<ContentCache>,
    t: Arc<Transfer>,
    gen: u64,
    id: u64,
    range: Range<u64>,
    urgency: Arc<Urgency>,
    whole: bool,
) {
    let end = job(&cache, &t, gen, &range, &urgency, whole).await;
    cache.job_ended(&t, gen, id, &range, end).await;
}

async fn job(
    cache: &Arc<ContentCache>,
    t: &Arc<Transfer>,
    gen: u64,
    range: &Range<u64>,
    urgency: &Arc<Urgency>,
    mut whole: bool,
) -> JobEnd {
    let mut failures = 0u32;
    loop {
        let start = {
            let Ok(st) = t.lock() else {
                return JobEnd::Stale;
            };
            if st.gen != gen || !matches!(st.phase, Phase::Fetching) {
                return JobEnd::Stale;
            }
            if whole {
                if st.present.covers(t.size()) {
                    return JobEnd::Done;
                }
                0
            } else {
                match st.present.gaps(range.clone()).first() {
                    None => return JobEnd::Done,
                    Some(g) => g.start,
                }
            }
        };
        let slot = cache.sched.acquire(urgency.clone()).await;
        let present_before = t.lock().map(|s| s.present.len()).unwrap_or(0);
        let result = attempt(cache, t, gen, start, range, &mut whole, urgency).await;
        drop(slot);
        match result {
            Ok(TryEnd::Complete) => failures = 0,
            Ok(TryEnd::Verify) => return JobEnd::Verify,
            Ok(TryEnd::Stale) => return JobEnd::Stale,
            Err(TryError::Stale) => return JobEnd::Stale,
            Err(TryError::Fatal(e)) => return JobEnd::Fatal(e),
            Err(TryError::Mismatch(d)) => return JobEnd::Mismatch(d),
            Err(TryError::Store(e)) => return JobEnd::StoreFailed(e),
            Err(TryError::Retry(e, refused)) => {
                let progressed = t.lock().map(|s| s.present.len()).unwrap_or(0) > present_before;
                failures = if progressed { 1 } else { failures + 1 };
                let since_progress = t
                    .lock()
                    .map(|mut s| {
                        s.last_error = Some(e.clone());
                        s.last_progress.elapsed()
                    })
                    .unwrap_or_default();
                t.bump();
                let demand = urgency.is_demand();
                if !demand && failures >= retry::PREFETCH_TRIES {
                    return JobEnd::GaveUp(e);
                }
                if demand
                    && failures >= retry::TRIES_WITHOUT_PROGRESS
                    && since_progress >= cache.io_timeout
                {
                    return JobEnd::GaveUp(e);
                }
                if refused {
                    *t.resolved.lock().await = None;
                }
                tracing::debug!(id = %t.item.id, error = %e, failures, "download interrupted; trying again");
                // No slot is held while sleeping.
                tokio::time::sleep(retry::backoff(failures)).await;
            }
        }
    }
}

/// Awaits `fut`, a step of a try: abandoned after `stall` if the mount heard nothing from
/// the service meanwhile, else after `retry::PATIENCE` × `--io-timeout` (see `retry`).
async fn patient<F: std::future::Future>(
    cache: &ContentCache,
    t: &Transfer,
    stall: Duration,
    what: &str,
    fut: F,
) -> Result<F::Output, TryError> {
    let cap = cache.io_timeout * retry::PATIENCE;
    let start = std::time::Instant::now();
    tokio::pin!(fut);
    loop {
        match tokio::time::timeout(stall, &mut fut).await {
            Ok(v) => {
                cache.note_alive();
                return Ok(v);
            }
            Err(_) => {
                if cache.quiet_for() >= stall || start.elapsed() >= cap {
                    return Err(stalled(t, what, start.elapsed()));
                }
            }
        }
    }
}

/// The resolved URL of the transfer: reused while young, resolved again otherwise. One
/// resolution at a time per transfer (the others wait for it).
async fn resolved(
    cache: &ContentCache,
    t: &Transfer,
    stall: Duration,
) -> Result<Resolved, TryError> {
    let mut slot = t.resolved.lock().await;
    if let Some(r) = slot.as_ref() {
        if r.resolved_at.elapsed() < URL_REUSE {
            return Ok(r.clone());
        }
    }
    let r = match patient(
        cache,
        t,
        stall,
        "resolving the download URL",
        cache.api.resolve(&t.item),
    )
    .await?
    {
        Ok(r) => r,
        Err(e) => return Err(classify(t, e)),
    };
    cache
        .stats
        .resolves
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    *slot = Some(r.clone());
    Ok(r)
}

fn stalled(t: &Transfer, what: &str, waited: Duration) -> TryError {
    TryError::Retry(
        ContentError::Cloud(Arc::new(CloudError::Transient {
            what: format!("the download of item {}", t.item.id),
            detail: format!("no answer for {:.1} s while {what}", waited.as_secs_f64()),
            attempts: 1,
        })),
        false,
    )
}

fn classify(t: &Transfer, e: CloudError) -> TryError {
    match e {
        CloudError::UrlRefused { .. } => {
            TryError::Retry(ContentError::from_cloud(&t.item, e), true)
        }
        e if e.is_transient() => TryError::Retry(ContentError::from_cloud(&t.item, e), false),
        e => TryError::Fatal(ContentError::from_cloud(&t.item, e)),
    }
}

/// One try: fetch from `start` to the end of `range` (or the whole file) and write it.
async fn attempt(
    cache: &Arc<ContentCache>,
    t: &Arc<Transfer>,
    gen: u64,
    start: u64,
    range: &Range<u64>,
    whole: &mut bool,
    urgency: &Urgency,
) -> Result<TryEnd, TryError> {
    let stall = retry::stall_timeout(cache.io_timeout);
    let size = t.size();
    let resolved = resolved(cache, t, stall).await?;
    let ask = if *whole || cache.range_support() == Some(false) {
        None
    } else {
        Some(start..range.end)
    };
    let download = match patient(
        cache,
        t,
        stall,
        "waiting for the download to start",
        cache.api.fetch(&resolved, ask.clone()),
    )
    .await?
    {
        Ok(d) => d,
        Err(e) => return Err(classify(t, e)),
    };
    cache
        .stats
        .downloads
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (mut at, end) = match (download.partial, &ask) {
        (Some(cr), Some(ask)) => {
            if cr.total != size {
                return Err(TryError::Mismatch(format!(
                    "the service says the file has {} bytes, the listing says {size}",
                    cr.total
                )));
            }
            if cr.start != ask.start || cr.end_inclusive >= ask.end {
                return Err(TryError::Retry(
                    ContentError::Cloud(Arc::new(CloudError::Malformed {
                        what: format!("the download of item {}", t.item.id),
                        detail: format!(
                            "asked for bytes {}-{}, got {}-{}",
                            ask.start,
                            ask.end - 1,
                            cr.start,
                            cr.end_inclusive
                        ),
                    })),
                    false,
                ));
            }
            cache.learn_range_support(true);
            (cr.start, cr.end_inclusive + 1)
        }
        (Some(_), None) => {
            return Err(TryError::Retry(
                ContentError::Cloud(Arc::new(CloudError::Malformed {
                    what: format!("the download of item {}", t.item.id),
                    detail: "a partial answer (206) to a request for the whole file".into(),
                })),
                false,
            ));
        }
        (None, _) => {
            if let Some(len) = download.content_length {
                if len != size {
                    return Err(TryError::Mismatch(format!(
                        "the service sends {len} bytes, the listing says {size}"
                    )));
                }
            }
            if ask.is_some() {
                cache.learn_range_support(false);
            }
            if !*whole {
                // The whole file is coming: this job becomes the transfer's one stream.
                let mut st = t.lock().map_err(TryError::Fatal)?;
                if st.gen != gen {
                    return Ok(TryEnd::Stale);
                }
                if st.whole_job {
                    return Ok(TryEnd::Stale);
                }
                st.whole_job = true;
                st.requested.insert(0..size);
                *whole = true;
            }
            (0, size)
        }
    };
    tracing::trace!(id = %t.item.id, from = at, to = end, "fetching");
    let mut body = download.body;
    let mut pieces = Pieces::new(at, &cache.pieces);
    loop {
        let next = match patient(cache, t, stall, "receiving the file", body.next()).await {
            Ok(n) => n,
            Err(e) => {
                pieces.flush(cache, t, gen).await?;
                return Err(e);
            }
        };
        match next {
            None => break,
            Some(Err(e)) => {
                // Keep what arrived: the next try starts after it (with Range).
                pieces.flush(cache, t, gen).await?;
                return Err(classify(t, e));
            }
            Some(Ok(chunk)) => {
                if at + chunk.len() as u64 > end {
                    return Err(TryError::Mismatch(format!(
                        "the service sent more than the {} bytes asked for",
                        end - pieces.at.min(end)
                    )));
                }
                at += chunk.len() as u64;
                pieces.gather(&chunk);
                let piece = if urgency.is_demand() {
                    PIECE
                } else {
                    PIECE_AHEAD
                };
                if pieces.buf.len() >= piece {
                    pieces.send(cache, t, gen, false).await?;
                }
            }
        }
    }
    pieces.flush(cache, t, gen).await?;
    if at != end {
        // A short body is a cut connection, not corrupt content.
        return Err(TryError::Retry(
            ContentError::Cloud(Arc::new(CloudError::Transient {
                what: format!("the download of item {}", t.item.id),
                detail: format!("body ended at byte {at} of {end}"),
                attempts: 1,
            })),
            false,
        ));
    }
    Ok(if pieces.finished {
        TryEnd::Verify
    } else {
        TryEnd::Complete
    })
}

/// The pieces of one try: one gathering the body's chunks, and at most one being written
/// (and hashed) on a blocking thread meanwhile, so that the body is read on while a piece
/// goes to the disk (a direct write waits for the device). Buffers come from the cache's
/// pool: the gathering one is held for the try, a written one goes back as soon as its
/// write is done. A write takes a few milliseconds and a piece fills in about 125 ms at
/// 8 MB/s, so 16 connections hold about 18 buffers at once rather than 32 (peak RSS of a
/// cold `cp -r` of the bench album 46-49 MiB, against 45-63 with two kept per job).
struct Pieces<'a> {
    pool: &'a PiecePool,
    /// Gathering; its bytes go at `at`.
    buf: PieceBuf,
    at: u64,
    /// The write in flight: its length, and the task giving back its result and buffer.
    writing: Option<(u64, tokio::task::JoinHandle<(PutResult, PieceBuf)>)>,
    /// A write let the SHA-1 reach the end of the file.
    finished: bool,
}

type PutResult = Result<Option<bool>, std::io::Error>;

impl<'a> Pieces<'a> {
    fn new(at: u64, pool: &'a PiecePool) -> Pieces<'a> {
        Pieces {
            pool,
            // Taken from the pool with the first bytes.
            buf: PieceBuf::default(),
            at,
            writing: None,
            finished: false,
        }
    }

    /// Adds `bytes` to the piece being gathered.
    fn gather(&mut self, bytes: &[u8]) {
        if self.buf.capacity() == 0 {
            self.buf = self.pool.take();
            self.buf.reset(self.at);
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Hands the gathered piece to a blocking thread, once the one before is written. A
    /// piece that is not the `last` of the try ends on a [`DIRECT_ALIGN`] boundary of the
    /// file (the bytes past it, under 4 KiB, start the next piece), so that it goes to the
    /// disk in one direct write: cut anywhere, each piece's last partial block and the
    /// next one's first were written through the page cache, two small buffered writes
    /// per piece and dirty pages beside the direct ones.
    async fn send(
        &mut self,
        cache: &Arc<ContentCache>,
        t: &Arc<Transfer>,
        gen: u64,
        last: bool,
    ) -> Result<(), TryError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.wait(cache).await?;
        let len = self.buf.len() as u64;
        let end = self.at + len;
        let cut = end - end % DIRECT_ALIGN as u64;
        let n = if last || cut <= self.at {
            len
        } else {
            cut - self.at
        };
        // The next buffer is taken when the next bytes come (none may: the last piece),
        // or now for the bytes past the cut.
        let piece = if n < len {
            let mut next = self.pool.take();
            next.reset(self.at + n);
            next.extend_from_slice(&self.buf.as_slice()[n as usize..]);
            self.buf.truncate(n as usize);
            std::mem::replace(&mut self.buf, next)
        } else {
            std::mem::take(&mut self.buf)
        };
        let offset = self.at;
        self.at += n;
        let t2 = t.clone();
        let task = tokio::task::spawn_blocking(move || {
            let put = t2.put(gen, offset, piece.as_slice());
            (put, piece)
        });
        self.writing = Some((n, task));
        Ok(())
    }

    /// Waits for the write in flight, if any.
    async fn wait(&mut self, cache: &Arc<ContentCache>) -> Result<(), TryError> {
        let Some((n, task)) = self.writing.take() else {
            return Ok(());
        };
        let (put, piece) = task.await.map_err(|e| {
            TryError::Fatal(ContentError::Internal(format!(
                "a cache writer thread failed: {e}"
            )))
        })?;
        self.pool.give(piece);
        cache
            .stats
            .bytes_downloaded
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        match put {
            Ok(Some(done)) => {
                self.finished |= done;
                Ok(())
            }
            Ok(None) => Err(TryError::Stale),
            Err(e) => Err(TryError::Store(e)),
        }
    }

    /// Writes what was gathered and waits until every piece is written.
    async fn flush(
        &mut self,
        cache: &Arc<ContentCache>,
        t: &Arc<Transfer>,
        gen: u64,
    ) -> Result<(), TryError> {
        self.send(cache, t, gen, true).await?;
        self.wait(cache).await
    }
}

impl Drop for Pieces<'_> {
    fn drop(&mut self) {
        // A buffer still with a write in flight goes with that task.
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

/// A confirmation: fetches `range` a second time (with Range) and compares it with the
/// bytes the transfer has there. Two bodies that agree are taken as right before the whole
/// file is verified, so a first small read (a thumbnailer's, a viewer's) need not wait for
/// the whole file; if they differ, the readers wait for the whole file's SHA-1.
pub(crate) async fn confirm(
    cache: Arc<ContentCache>,
    t: Arc<Transfer>,
    gen: u64,
    id: u64,
    range: Range<u64>,
) {
    let agreed = confirm_once(&cache, &t, gen, &range).await;
    if let Ok(mut st) = t.lock() {
        if st.gen == gen {
            st.jobs.retain(|j| j.id != id);
            match agreed {
                Some(true) => st.confirmed.insert(range.clone()),
                _ => st.confirm_failed.insert(range.clone()),
            }
        }
    }
    if agreed == Some(false) {
        tracing::info!(id = %t.item.id, ?range, "two downloads of the same bytes differ; waiting for the whole file's SHA-1");
    }
    t.bump();
}

/// `Some(agree)`, or `None` when the second body could not be had.
async fn confirm_once(
    cache: &Arc<ContentCache>,
    t: &Arc<Transfer>,
    gen: u64,
    range: &Range<u64>,
) -> Option<bool> {
    let stall = retry::stall_timeout(cache.io_timeout);
    let second = {
        let _slot = cache.sched.acquire(Urgency::demand()).await;
        let resolved = resolved(cache, t, stall).await.ok()?;
        let d = patient(
            cache,
            t,
            stall,
            "confirming",
            cache.api.fetch(&resolved, Some(range.clone())),
        )
        .await
        .ok()?
        .ok()?;
        cache
            .stats
            .downloads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cr = d.partial?;
        tracing::trace!(id = %t.item.id, ?range, "confirming");
        if cr.start != range.start || cr.end_inclusive + 1 != range.end || cr.total != t.size() {
            return None;
        }
        let mut body = d.body;
        let mut buf = Vec::with_capacity((range.end - range.start) as usize);
        while let Some(chunk) = patient(cache, t, stall, "confirming", body.next())
            .await
            .ok()?
        {
            buf.extend_from_slice(&chunk.ok()?);
            if buf.len() as u64 > range.end - range.start {
                return Some(false);
            }
        }
        cache
            .stats
            .bytes_downloaded
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        cache
            .stats
            .confirmations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        buf
    };
    if second.len() as u64 != range.end - range.start {
        return None;
    }
    // The first body's bytes, once they are in.
    let mut rx = t.progress.subscribe();
    let store = loop {
        {
            let st = t.lock().ok()?;
            if st.gen != gen || !matches!(st.phase, Phase::Fetching) {
                return None;
            }
            if st.present.contains(range) {
                break st.store.clone();
            }
            rx.borrow_and_update();
        }
        tokio::time::timeout(cache.io_timeout, rx.changed())
            .await
            .ok()?
            .ok()?;
    };
    let start = range.start;
    tokio::task::spawn_blocking(move || {
        let mut first = vec![0u8; second.len()];
        store
            .read_at(&mut first, start)
            .ok()
            .map(|_| first == second)
    })
    .await
    .ok()?
}
