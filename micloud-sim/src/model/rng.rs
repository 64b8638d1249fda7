//! Deterministic pseudo-random numbers for the generated gallery.
//!
//! The gallery must be byte-identical for a given seed on every build and every machine, so it
//! cannot rely on `rand`'s `StdRng` (whose algorithm may change between releases). SplitMix64
//! (Steele, Lea, Flood 2014) is 5 lines, passes BigCrush, and is fully specified here.
//! [`derive`] mixes a parent seed with a label so that independent streams (one per item, one per
//! content body) do not shift when another part of the gallery changes.

/// SplitMix64 generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `lo..hi` (`hi > lo`); the tiny modulo bias is irrelevant here.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        // Callers only pass non-empty constant tables.
        &items[self.range(0, items.len() as u64) as usize]
    }
}

/// The SplitMix64 output function (a bijective 64-bit mixer).
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A child seed for stream `label` of `parent`.
pub fn derive(parent: u64, label: u64) -> u64 {
    mix(parent ^ mix(label.wrapping_add(0x5851_F42D_4C95_7F2D)))
}

/// Stable 64-bit hash of bytes (FNV-1a followed by a mix), for labels built from strings.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    mix(h)
}
