//! Synthetic `video/mp4` bodies shaped like an ISO-BMFF file.
//!
//! Layout: `ftyp` (major brand `isom`, compatible `isom iso2 avc1 mp41`), `moov` holding only a
//! version-0 `mvhd` (creation/modification time in seconds since 1904-01-01, timescale 1000,
//! duration derived from the payload size at ~4 Mbit/s), then one `mdat` whose payload is a
//! deterministic xorshift stream. No decoder will play it, but `file(1)` and box walkers see an
//! MP4, and the bytes are incompressible like real video. Sizes are chosen by the generator
//! (300 KB .. 2 MB).
//!
//! [`open_ended_head`] is the same `ftyp` + `moov` followed by an `mdat` header of size 0
//! ("extends to the end of the file", ISO/IEC 14496-12 §4.2): the head of `--sizes real` videos,
//! whose payload is streamed by [`crate::bytes::synth`] and whose length the head does not
//! encode.

use crate::model::rng::Rng;
use crate::model::source::VideoSpec;

/// Seconds between 1904-01-01 (MP4 epoch) and 1970-01-01.
const MP4_EPOCH_OFFSET: i64 = 2_082_844_800;

fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(payload.len() + 8);
    b.extend_from_slice(&((payload.len() + 8) as u32).to_be_bytes());
    b.extend_from_slice(kind);
    b.extend_from_slice(payload);
    b
}

fn mvhd(created_unix: i64, duration_ms: u32) -> Vec<u8> {
    let t = (created_unix + MP4_EPOCH_OFFSET).clamp(0, i64::from(u32::MAX)) as u32;
    let mut p = Vec::with_capacity(100);
    p.extend_from_slice(&[0, 0, 0, 0]); // version 0, flags
    p.extend_from_slice(&t.to_be_bytes()); // creation_time
    p.extend_from_slice(&t.to_be_bytes()); // modification_time
    p.extend_from_slice(&1000u32.to_be_bytes()); // timescale
    p.extend_from_slice(&duration_ms.to_be_bytes());
    p.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // rate 1.0
    p.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
    p.extend_from_slice(&[0; 10]); // reserved
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        p.extend_from_slice(&v.to_be_bytes()); // unity matrix
    }
    p.extend_from_slice(&[0; 24]); // pre_defined
    p.extend_from_slice(&2u32.to_be_bytes()); // next_track_ID
    boxed(b"mvhd", &p)
}

/// `ftyp` + `moov`.
fn head(created_unix: i64, duration_ms: u32) -> Vec<u8> {
    let mut ftyp = Vec::new();
    ftyp.extend_from_slice(b"isom");
    ftyp.extend_from_slice(&512u32.to_be_bytes());
    for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
        ftyp.extend_from_slice(brand);
    }
    [
        boxed(b"ftyp", &ftyp),
        boxed(b"moov", &mvhd(created_unix, duration_ms)),
    ]
    .concat()
}

/// `ftyp` + `moov` + an `mdat` header whose size field is 0 (the box runs to end of file).
pub fn open_ended_head(created_unix: i64, duration_ms: u32) -> Vec<u8> {
    let mut h = head(created_unix, duration_ms);
    h.extend_from_slice(&0u32.to_be_bytes());
    h.extend_from_slice(b"mdat");
    h
}

/// Build the whole file.
pub fn render(spec: &VideoSpec) -> Vec<u8> {
    let duration_ms = (spec.size * 8 / 4_000) as u32; // ~4 Mbit/s
    let head = head(spec.created_unix, duration_ms);
    let payload_len = spec.size.saturating_sub(head.len() as u64 + 8).max(8) as usize;
    let mut out = Vec::with_capacity(head.len() + 8 + payload_len);
    out.extend_from_slice(&head);
    out.extend_from_slice(&((payload_len + 8) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    let mut x = Rng::new(spec.seed).next_u64() | 1;
    while out.len() < head.len() + 8 + payload_len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let left = head.len() + 8 + payload_len - out.len();
        out.extend_from_slice(&x.to_le_bytes()[..left.min(8)]);
    }
    out
}
