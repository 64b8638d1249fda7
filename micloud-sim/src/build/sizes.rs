//! Realistic body sizes for `--sizes real`, drawn from the item's own random stream.
//!
//! Shapes (roughly what a phone gallery holds; 1 MB = 10^6 bytes here):
//! - camera photos: the mean of two log-uniform draws over 1–8 MB, so most fall between 2 and
//!   5 MB (a 12–50 MP phone JPEG) with tails at both ends;
//! - screenshots 0.5–2 MB and messenger images 0.5–1.5 MB, log-uniform;
//! - videos: 70 % short clips of 8–60 MB, 25 % of 60–250 MB, 5 % long takes of 250–700 MB
//!   (log-uniform within each band). With the generator's mix (about 13 % videos) 100 000
//!   items add up to roughly 1 TB, a heavy but real account.
//!
//! Only integers are used (no `exp`/`ln`), so a seed yields the same sizes on every machine:
//! "log-uniform" picks a whole octave uniformly, then a uniform value inside it, and redraws
//! values beyond the upper bound.

use crate::model::rng::Rng;

pub const MB: u64 = 1_000_000;

/// What the size is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeKind {
    CameraPhoto,
    Screenshot,
    Messenger,
    Video,
}

/// Piecewise log-uniform in `lo..=hi` (`0 < lo < hi`).
fn log_uniform(r: &mut Rng, lo: u64, hi: u64) -> u64 {
    let mut octaves = 1;
    while lo << octaves < hi {
        octaves += 1;
    }
    for _ in 0..64 {
        let base = lo << r.range(0, octaves);
        let v = r.range(base, 2 * base);
        if v <= hi {
            return v;
        }
    }
    hi
}

/// A body size in bytes for `kind`.
pub fn draw(r: &mut Rng, kind: SizeKind) -> u64 {
    match kind {
        SizeKind::CameraPhoto => (log_uniform(r, MB, 8 * MB) + log_uniform(r, MB, 8 * MB)) / 2,
        SizeKind::Screenshot => log_uniform(r, MB / 2, 2 * MB),
        SizeKind::Messenger => log_uniform(r, MB / 2, 3 * MB / 2),
        SizeKind::Video => match r.range(0, 100) {
            0..70 => log_uniform(r, 8 * MB, 60 * MB),
            70..95 => log_uniform(r, 60 * MB, 250 * MB),
            _ => log_uniform(r, 250 * MB, 700 * MB),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_in_their_bands_with_a_realistic_spread() {
        let mut r = Rng::new(9);
        let photos: Vec<u64> = (0..2000)
            .map(|_| draw(&mut r, SizeKind::CameraPhoto))
            .collect();
        assert!(photos.iter().all(|&s| (MB..=8 * MB).contains(&s)));
        let mid = photos
            .iter()
            .filter(|&&s| (2 * MB..5 * MB).contains(&s))
            .count();
        assert!(mid > 1000, "most camera photos are 2–5 MB: {mid}");
        let videos: Vec<u64> = (0..2000).map(|_| draw(&mut r, SizeKind::Video)).collect();
        assert!(videos.iter().all(|&s| (8 * MB..=700 * MB).contains(&s)));
        let tens = videos.iter().filter(|&&s| s < 100 * MB).count();
        let big = videos.iter().filter(|&&s| s >= 250 * MB).count();
        assert!(tens > 1200 && (40..250).contains(&big), "{tens} {big}");
        for k in [SizeKind::Screenshot, SizeKind::Messenger] {
            let s = draw(&mut r, k);
            assert!((MB / 2..=2 * MB).contains(&s));
        }
    }
}
