//! Large bodies for `--sizes real`: a shared prefix, then a short tail unique to the item.
//!
//! Hashing hundreds of GB at start-up is out of the question, and SHA-1 can only share work
//! over a common *prefix*. So a body of `size` bytes is laid out as
//!
//! ```text
//! [ head: H bytes ][ filler: F bytes            ][ tail: T bytes ]
//!   one of 4 templates   deterministic per template   unique to the item
//! ```
//!
//! - the head is a real JPEG (1024x768, 768x1024 or 720x1600, no EXIF, ending with EOI) or an
//!   MP4 `ftyp`+`moov`+`mdat` header whose `mdat` runs to end of file; JPEG decoders ignore
//!   what follows EOI, MP4 readers see it as media data;
//! - the filler is the template's 64 KiB pseudo-random block, chunk `k` rotated by a
//!   per-chunk amount (so no two neighbouring chunks repeat), addressable at any offset
//!   without state;
//! - `F` is the largest multiple of [`GRAIN`] (4 KiB) that leaves `T ≥ 64`, so `T` is 64 to
//!   4159 bytes: 32 bytes drawn from the item's seed, then bytes of the block at a
//!   seed-derived offset. Two items never share a tail unless they share a seed (the same
//!   content filed twice).
//!
//! Fingerprinting sorts a template's items by `F` and walks the filler once, in increasing
//! length; at each item's `F` the running `sha1::Sha1` (a mid-state) is cloned and fed the
//! tail. Cost: one pass over the longest body per template (≤ 700 MB for videos, about
//! 0.4 s with SHA-NI) plus ≤ 4 KiB per item; the four templates run on their own threads.
//! Downloads call [`stream`], which produces 64 KiB chunks on the fly: nothing but the heads
//! and blocks (≈ 1 MB in all, built once per process) is ever held in memory.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use sha1::{Digest, Sha1};

use crate::bytes::jpeg::{self, JpegError};
use crate::bytes::mp4;
use crate::model::rng::{derive, mix, Rng};
use crate::model::source::{PhotoSpec, SynthSpec, Template};

/// Size of the filler block and of streamed chunks.
pub const CHUNK: usize = 64 * 1024;
/// Filler lengths are multiples of this.
pub const GRAIN: u64 = 4096;
/// Shortest tail.
pub const TAIL_MIN: u64 = 64;
/// Bytes of the tail drawn from the item's seed.
const TAIL_UNIQUE: usize = 32;

/// A template's head and filler block, built once per process.
pub struct Head {
    head: Bytes,
    block: Bytes,
    after_head: Sha1,
}

/// Where the three parts of a body lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub head: u64,
    pub filler: u64,
    pub tail: u64,
}

impl Layout {
    pub fn size(&self) -> u64 {
        self.head + self.filler + self.tail
    }
}

fn build(t: Template) -> Result<Head, JpegError> {
    let head = match t {
        Template::Video => mp4::open_ended_head(1_700_000_000, 60_000),
        _ => {
            let (w, h) = t.dims();
            jpeg::render(&PhotoSpec {
                seed: t.seed(),
                width: w as u16,
                height: h as u16,
                exif: None,
            })?
        }
    };
    let mut r = Rng::new(derive(t.seed(), 1));
    let mut block = BytesMut::with_capacity(CHUNK);
    while block.len() < CHUNK {
        block.extend_from_slice(&r.next_u64().to_le_bytes());
    }
    let mut after_head = Sha1::new();
    after_head.update(&head);
    Ok(Head {
        head: Bytes::from(head),
        block: block.freeze(),
        after_head,
    })
}

static HEADS: [OnceLock<Head>; 4] = [
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
];

/// The head of `t`, built on first use (a JPEG encode: tens of ms in a debug build).
pub fn head(t: Template) -> Result<&'static Head, JpegError> {
    let slot = &HEADS[t.index()];
    if let Some(h) = slot.get() {
        return Ok(h);
    }
    let built = build(t)?;
    Ok(slot.get_or_init(|| built))
}

/// Whether [`head`] of `t` is already built (async callers build it off their threads).
pub fn head_ready(t: Template) -> bool {
    HEADS[t.index()].get().is_some()
}

impl Head {
    /// The layout of a body of (at least) `size` bytes.
    pub fn layout(&self, size: u64) -> Layout {
        let head = self.head.len() as u64;
        let room = size.saturating_sub(head + TAIL_MIN);
        let filler = room / GRAIN * GRAIN;
        let tail = size.max(head + TAIL_MIN) - head - filler;
        Layout { head, filler, tail }
    }

    /// Feed filler bytes `from..to` to `sink`, in at most two slices per 64 KiB chunk.
    fn filler(&self, mut from: u64, to: u64, mut sink: impl FnMut(&[u8])) {
        while from < to {
            let k = from / CHUNK as u64;
            let within = (from % CHUNK as u64) as usize;
            let n = (CHUNK - within).min((to - from) as usize);
            let start = (within + (mix(k) % CHUNK as u64) as usize) % CHUNK;
            let first = n.min(CHUNK - start);
            sink(&self.block[start..start + first]);
            if first < n {
                sink(&self.block[..n - first]);
            }
            from += n as u64;
        }
    }

    /// The `len`-byte tail of the item with `seed`.
    fn tail(&self, seed: u64, len: u64) -> Vec<u8> {
        let len = len as usize;
        let mut out = Vec::with_capacity(len);
        let mut r = Rng::new(derive(seed, 0x7A11));
        while out.len() < TAIL_UNIQUE.min(len) {
            out.extend_from_slice(&r.next_u64().to_le_bytes());
        }
        out.truncate(TAIL_UNIQUE.min(len));
        let mut at = (r.next_u64() % CHUNK as u64) as usize;
        while out.len() < len {
            let n = (len - out.len()).min(CHUNK - at);
            out.extend_from_slice(&self.block[at..at + n]);
            at = 0;
        }
        out
    }

    /// Copy body bytes `offset..offset + buf.len()` of `spec` into `buf` (within the body).
    fn read_at(&self, spec: &SynthSpec, layout: Layout, offset: u64, buf: &mut [u8]) {
        let mut pos = offset;
        let mut w = 0usize;
        let end = offset + buf.len() as u64;
        if pos < layout.head {
            let n = (layout.head.min(end) - pos) as usize;
            buf[..n].copy_from_slice(&self.head[pos as usize..pos as usize + n]);
            pos += n as u64;
            w += n;
        }
        let fill_end = layout.head + layout.filler;
        if pos < end && pos < fill_end {
            let to = fill_end.min(end);
            self.filler(pos - layout.head, to - layout.head, |s| {
                buf[w..w + s.len()].copy_from_slice(s);
                w += s.len();
            });
            pos = to;
        }
        if pos < end {
            let tail = self.tail(spec.seed, layout.tail);
            let from = (pos - fill_end) as usize;
            let n = (end - pos) as usize;
            buf[w..w + n].copy_from_slice(&tail[from..from + n]);
        }
    }
}

/// `(size, sha1)` of every spec, by walking each template's filler once.
pub fn fingerprint_all(specs: &[&SynthSpec]) -> Result<Vec<(u64, [u8; 20])>, JpegError> {
    let mut out = vec![(0u64, [0u8; 20]); specs.len()];
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); Template::ALL.len()];
    for (i, s) in specs.iter().enumerate() {
        groups[s.template.index()].push(i);
    }
    let results: Vec<Result<Walked, JpegError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = Template::ALL
            .iter()
            .zip(&groups)
            .filter(|(_, g)| !g.is_empty())
            .map(|(&t, g)| scope.spawn(move || walk(t, specs, g)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for r in results {
        for (i, size, sha) in r? {
            out[i] = (size, sha);
        }
    }
    Ok(out)
}

/// `(index, size, sha1)` of a template's items.
type Walked = Vec<(usize, u64, [u8; 20])>;

/// One template's items, in increasing filler length.
fn walk(t: Template, specs: &[&SynthSpec], group: &[usize]) -> Result<Walked, JpegError> {
    let head = head(t)?;
    let mut order: Vec<(Layout, usize)> = group
        .iter()
        .map(|&i| (head.layout(specs[i].size), i))
        .collect();
    order.sort_by_key(|(l, i)| (l.filler, *i));
    let mut hasher = head.after_head.clone();
    let mut walked = 0u64;
    let mut out = Vec::with_capacity(order.len());
    for (layout, i) in order {
        head.filler(walked, layout.filler, |s| hasher.update(s));
        walked = layout.filler;
        let mut h = hasher.clone();
        h.update(head.tail(specs[i].seed, layout.tail));
        out.push((i, layout.size(), h.finalize().into()));
    }
    Ok(out)
}

/// The real size of `spec`'s body.
pub fn size(spec: &SynthSpec) -> Result<u64, JpegError> {
    Ok(head(spec.template)?.layout(spec.size).size())
}

/// Body bytes `from..to` of `spec` in chunks of up to 64 KiB, generated as they are polled.
pub fn stream(
    spec: SynthSpec,
    from: u64,
    to: u64,
) -> Result<
    impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    JpegError,
> {
    let head = head(spec.template)?;
    let layout = head.layout(spec.size);
    let to = to.min(layout.size());
    Ok(futures_util::stream::unfold(from, move |pos| {
        let spec = spec.clone();
        async move {
            if pos >= to {
                return None;
            }
            let n = (to - pos).min(CHUNK as u64) as usize;
            let mut buf = vec![0u8; n];
            head.read_at(&spec, layout, pos, &mut buf);
            Some((Ok(Bytes::from(buf)), pos + n as u64))
        }
    }))
}

/// The whole body in memory (tests and small bodies only).
pub fn render(spec: &SynthSpec) -> Result<Vec<u8>, JpegError> {
    let head = head(spec.template)?;
    let layout = head.layout(spec.size);
    let mut buf = vec![0u8; layout.size() as usize];
    head.read_at(spec, layout, 0, &mut buf);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn spec(seed: u64, template: Template, size: u64) -> SynthSpec {
        SynthSpec {
            seed,
            template,
            size,
        }
    }

    #[test]
    fn walked_fingerprint_equals_sha1_of_the_rendered_body() {
        let specs = [
            spec(1, Template::Landscape, 500_000),
            spec(2, Template::Landscape, 500_000),
            spec(3, Template::Landscape, 2_345_678),
            spec(4, Template::Video, 3_000_001),
            spec(5, Template::Video, 10),
            spec(6, Template::Screenshot, 700_123),
            spec(7, Template::Portrait, 1_000_000),
        ];
        let refs: Vec<&SynthSpec> = specs.iter().collect();
        let fps = fingerprint_all(&refs).unwrap();
        for (s, (size, sha)) in specs.iter().zip(&fps) {
            let body = render(s).unwrap();
            assert_eq!(body.len() as u64, *size);
            assert_eq!(<[u8; 20]>::from(Sha1::digest(&body)), *sha, "{s:?}");
            if s.size > 1000 {
                assert_eq!(*size, s.size, "requested sizes above the head are exact");
            }
        }
        // Same template and size, different items: different bytes.
        assert_ne!(fps[0].1, fps[1].1);
        assert_eq!(fps[0].0, fps[1].0);
    }

    #[tokio::test]
    async fn streamed_chunks_hash_to_the_fingerprint_and_ranges_agree() {
        let s = spec(42, Template::Video, 1_234_567);
        let (size, sha) = fingerprint_all(&[&s]).unwrap()[0];
        let mut h = Sha1::new();
        let mut chunks = 0;
        let mut n = 0u64;
        let mut st = Box::pin(stream(s.clone(), 0, u64::MAX).unwrap());
        while let Some(c) = st.next().await {
            let c = c.unwrap();
            assert!(c.len() <= CHUNK);
            n += c.len() as u64;
            chunks += 1;
            h.update(&c);
        }
        assert_eq!(n, size);
        assert!(chunks > 10);
        assert_eq!(<[u8; 20]>::from(h.finalize()), sha);
        // An arbitrary window equals the same bytes of the whole body.
        let body = render(&s).unwrap();
        let (a, b) = (65_000u64, 1_234_500u64);
        let mut got = Vec::new();
        let mut st = Box::pin(stream(s, a, b).unwrap());
        while let Some(c) = st.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        assert_eq!(got, body[a as usize..b as usize]);
    }

    #[test]
    fn heads_are_a_jpeg_up_to_eoi_and_an_open_ended_mp4() {
        let photo = render(&spec(9, Template::Portrait, 600_000)).unwrap();
        assert_eq!(&photo[..2], &[0xFF, 0xD8]);
        let h = head(Template::Portrait).unwrap();
        assert_eq!(&h.head[h.head.len() - 2..], &[0xFF, 0xD9]);
        let video = render(&spec(9, Template::Video, 600_000)).unwrap();
        assert_eq!(&video[4..8], b"ftyp");
        let hv = head(Template::Video).unwrap();
        assert_eq!(&hv.head[hv.head.len() - 8..], b"\0\0\0\0mdat");
    }
}
