//! The range map of a resumable download, as it lies on disk: which parts of
//! `partial/<sha1>.part` are written, made durable, and what their bytes hash to.
//!
//! Xiaomi lists only the SHA-1 of the whole file, so a part found on disk after a remount
//! cannot be checked against the listing until the file is complete. The map therefore
//! records the SHA-1 of each part as it was written; a resume re-reads every recorded part
//! and keeps only those that still hash to their record (see `resume`). The whole-file SHA-1
//! stays the final verdict.
//!
//! The file is append-only while downloading and self-checking, so a crash at any point
//! (a torn last record, a page of zeros after a power loss, a flipped byte) loses at most the
//! records it damaged and never makes one trusted:
//!
//! ```text
//! header, 64 bytes:  "MCFSPMAP" | version u32 | 0 u32 | size u64 | part size u64 | object SHA-1 (20)
//!                    | 0 u32 | check (8)
//! record, 32 bytes:  part index u32 | SHA-1 of the part's bytes (20) | check (8)
//! check = the first 8 bytes of SHA-1(object SHA-1 ‖ the bytes before the check)
//! ```
//! (all integers little-endian). Records have a fixed length, so a damaged record does not
//! shift the ones after it: each is judged alone, and a short tail is a torn append. The
//! header's check covers the object's SHA-1, size and part size: a map of another file or of
//! another part size is not used. A record's check covers the object's SHA-1 too, so a
//! record copied from another map does not pass.
//!
//! Numbers: one record per 4 MiB part, so a 4 GiB video's map is 64 + 1024 × 32 bytes =
//! 32 KiB, written 32 bytes at a time; parsing it is instant.

use crate::model::Sha1Digest;
use sha1::{Digest, Sha1};

pub const MAGIC: [u8; 8] = *b"MCFSPMAP";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
pub const RECORD_LEN: usize = 32;

/// What a map is about: which file, and how it is cut into parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub object: Sha1Digest,
    pub size: u64,
    pub part_size: u64,
}

impl Header {
    /// How many parts the file has.
    pub fn parts(&self) -> u64 {
        self.size.div_ceil(self.part_size.max(1))
    }

    /// The bytes of part `k`.
    pub fn part_range(&self, k: u64) -> std::ops::Range<u64> {
        let start = k.saturating_mul(self.part_size).min(self.size);
        start..start.saturating_add(self.part_size).min(self.size)
    }
}

fn check(object: &Sha1Digest, bytes: &[u8]) -> [u8; 8] {
    let mut h = Sha1::new();
    h.update(object.0);
    h.update(bytes);
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

pub fn encode_header(h: &Header) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&h.size.to_le_bytes());
    b[24..32].copy_from_slice(&h.part_size.to_le_bytes());
    b[32..52].copy_from_slice(&h.object.0);
    let c = check(&h.object, &b[..56]);
    b[56..64].copy_from_slice(&c);
    b
}

pub fn encode_record(object: &Sha1Digest, part: u32, digest: &Sha1Digest) -> [u8; RECORD_LEN] {
    let mut b = [0u8; RECORD_LEN];
    b[0..4].copy_from_slice(&part.to_le_bytes());
    b[4..24].copy_from_slice(&digest.0);
    let c = check(object, &b[..24]);
    b[24..32].copy_from_slice(&c);
    b
}

/// Why a map's header is not usable (the whole map is then ignored).
#[derive(Debug, PartialEq, Eq)]
pub enum BadHeader {
    Short(usize),
    NotAMap,
    Version(u32),
    Damaged,
    /// A sound header of another file, size or part size.
    Other(Header),
}

impl std::fmt::Display for BadHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadHeader::Short(n) => write!(f, "it holds {n} bytes, less than its header"),
            BadHeader::NotAMap => f.write_str("it does not start like a range map"),
            BadHeader::Version(v) => write!(f, "it is of format version {v}"),
            BadHeader::Damaged => f.write_str("its header fails its checksum"),
            BadHeader::Other(h) => write!(
                f,
                "it describes another download ({} bytes in parts of {})",
                h.size, h.part_size
            ),
        }
    }
}

/// The records of a map that passed their checks.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Part index and its recorded SHA-1, in file order (a later record of a part wins).
    pub records: Vec<(u64, Sha1Digest)>,
    /// Records that failed their check or name a part the file does not have.
    pub damaged: usize,
    /// Bytes after the last whole record (a torn append).
    pub torn_tail: usize,
}

/// Reads a map written for `want`.
pub fn parse(bytes: &[u8], want: &Header) -> Result<Parsed, BadHeader> {
    if bytes.len() < HEADER_LEN {
        return Err(BadHeader::Short(bytes.len()));
    }
    let head = &bytes[..HEADER_LEN];
    if head[0..8] != MAGIC {
        return Err(BadHeader::NotAMap);
    }
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if version != VERSION {
        return Err(BadHeader::Version(version));
    }
    let mut object = [0u8; 20];
    object.copy_from_slice(&head[32..52]);
    let object = Sha1Digest(object);
    if check(&object, &head[..56]) != head[56..64] {
        return Err(BadHeader::Damaged);
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let found = Header {
        object,
        size: u64_at(16),
        part_size: u64_at(24),
    };
    if found != *want {
        return Err(BadHeader::Other(found));
    }
    let body = &bytes[HEADER_LEN..];
    let mut out = Parsed {
        torn_tail: body.len() % RECORD_LEN,
        ..Parsed::default()
    };
    for rec in body.chunks_exact(RECORD_LEN) {
        let part = u64::from(u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]));
        if check(&want.object, &rec[..24]) != rec[24..32] || part >= want.parts() {
            out.damaged += 1;
            continue;
        }
        let mut d = [0u8; 20];
        d.copy_from_slice(&rec[4..24]);
        out.records.push((part, Sha1Digest(d)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> Header {
        Header {
            object: Sha1Digest([7; 20]),
            size: 10 * (4 << 20) + 5,
            part_size: 4 << 20,
        }
    }

    fn map(h: &Header, recs: &[(u32, u8)]) -> Vec<u8> {
        let mut b = encode_header(h).to_vec();
        for (k, d) in recs {
            b.extend_from_slice(&encode_record(&h.object, *k, &Sha1Digest([*d; 20])));
        }
        b
    }

    #[test]
    fn round_trip() {
        let h = header();
        assert_eq!(h.parts(), 11);
        assert_eq!(h.part_range(10), 10 * (4 << 20)..h.size);
        let b = map(&h, &[(0, 1), (3, 2), (10, 3)]);
        assert_eq!(b.len(), HEADER_LEN + 3 * RECORD_LEN);
        let p = parse(&b, &h).unwrap();
        assert_eq!(
            p.records,
            vec![
                (0, Sha1Digest([1; 20])),
                (3, Sha1Digest([2; 20])),
                (10, Sha1Digest([3; 20]))
            ]
        );
        assert_eq!((p.damaged, p.torn_tail), (0, 0));
    }

    #[test]
    fn a_torn_tail_loses_only_the_last_record() {
        let h = header();
        let b = map(&h, &[(0, 1), (1, 2)]);
        for cut in 1..RECORD_LEN {
            let p = parse(&b[..b.len() - cut], &h).unwrap();
            assert_eq!(p.records, vec![(0, Sha1Digest([1; 20]))], "cut {cut}");
            assert_eq!(p.torn_tail, RECORD_LEN - cut);
        }
        // A tail of zeros (a power loss after the size grew) is damage, not records.
        let mut z = b.clone();
        z.extend_from_slice(&[0u8; RECORD_LEN * 2]);
        let p = parse(&z, &h).unwrap();
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.damaged, 2);
    }

    #[test]
    fn a_flipped_byte_drops_its_record_only() {
        let h = header();
        let b = map(&h, &[(0, 1), (1, 2), (2, 3)]);
        for i in HEADER_LEN + RECORD_LEN..HEADER_LEN + 2 * RECORD_LEN {
            for bit in [0x01u8, 0x80] {
                let mut x = b.clone();
                x[i] ^= bit;
                let p = parse(&x, &h).unwrap();
                assert_eq!(
                    p.records,
                    vec![(0, Sha1Digest([1; 20])), (2, Sha1Digest([3; 20]))],
                    "byte {i}"
                );
                assert_eq!(p.damaged, 1);
            }
        }
    }

    #[test]
    fn a_bad_or_foreign_header_makes_the_map_unusable() {
        let h = header();
        let b = map(&h, &[(0, 1)]);
        assert_eq!(parse(&b[..10], &h), Err(BadHeader::Short(10)));
        for i in 0..HEADER_LEN {
            let mut x = b.clone();
            x[i] ^= 0x10;
            assert!(parse(&x, &h).is_err(), "byte {i} of the header");
        }
        let other = Header {
            part_size: 1 << 20,
            ..h
        };
        assert_eq!(parse(&b, &other), Err(BadHeader::Other(h)));
        // A record of another file's map does not pass here.
        let mut mixed = encode_header(&h).to_vec();
        mixed.extend_from_slice(&encode_record(
            &Sha1Digest([8; 20]),
            0,
            &Sha1Digest([1; 20]),
        ));
        assert_eq!(parse(&mixed, &h).unwrap().damaged, 1);
    }

    #[test]
    fn a_part_the_file_does_not_have_is_damage() {
        let h = header();
        let p = parse(&map(&h, &[(11, 1), (u32::MAX, 2)]), &h).unwrap();
        assert!(p.records.is_empty());
        assert_eq!(p.damaged, 2);
    }

    proptest! {
        /// Whatever garbage follows the header, parsing never panics and every record it
        /// returns is one that was written.
        #[test]
        fn garbage_never_yields_a_record_not_written(tail in proptest::collection::vec(any::<u8>(), 0..400), flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..8)) {
            let h = header();
            let mut b = map(&h, &[(0, 1), (1, 2), (2, 3), (3, 4)]);
            for (at, x) in flips {
                let i = HEADER_LEN + at % (4 * RECORD_LEN);
                b[i] ^= x;
            }
            b.extend_from_slice(&tail);
            let p = parse(&b, &h).unwrap();
            for (k, d) in &p.records {
                prop_assert!(*k < 4 && d.0 == [(*k as u8) + 1; 20], "{k} {d}");
            }
        }
    }
}
