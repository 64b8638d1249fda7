//! The generated recordings: deterministic from the seed, by default 8 covering the four
//! types (`0` recorder, `1` phone call, `2` FM, `3` app) and duplicate base names
//! (`Meeting.m4a` twice, `录音 001.m4a` twice). Bodies are MP4-shaped
//! ([`crate::bytes::mp4`], 20 KB .. 400 KB), fingerprinted as they are made.

use crate::bytes::{self, ContentError};
use crate::model::item::Item;
use crate::model::recording::Recording;
use crate::model::rng::{derive, Rng};
use crate::model::source::{Source, VideoSpec};

/// `(base name, type)` of the generated recordings, in order.
const TEMPLATES: &[(&str, u8)] = &[
    ("Meeting.m4a", 0),
    ("张三(13800138000).m4a", 1),
    ("录音 001.m4a", 0),
    ("FM 97.4.m4a", 2),
    ("WeChat voice.m4a", 3),
    ("Meeting.m4a", 0),
    ("13912345678.m4a", 1),
    ("录音 001.m4a", 0),
];

const START_MS: u64 = 1_546_272_000_000; // 2019-01-01 UTC+8
const END_MS: u64 = 1_751_299_200_000; // 2025-07-01 UTC+8

/// `count` recordings for `seed`, fingerprinted.
pub fn generate(seed: u64, count: usize) -> Result<Vec<Recording>, ContentError> {
    let mut used = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(count);
    for k in 0..count {
        let mut r = Rng::new(derive(seed, 0x5_0000 + k as u64));
        let (name, kind) = match TEMPLATES.get(k) {
            Some(&(n, t)) => (n.to_string(), t),
            None => (format!("录音 {:03}.m4a", k + 1), (k % 4) as u8),
        };
        let id = loop {
            let v = r.range(20_000_000_000_000_000, 99_999_999_999_999_999) & !1;
            if used.insert(v) {
                break v.to_string();
            }
        };
        let created = (r.range(START_MS, END_MS) / 1000 * 1000) as i64;
        let modified = created + r.range(1_000, 86_400_000) as i64;
        let size = r.range(20_000, 400_000);
        let source = Source::Video(VideoSpec {
            seed: derive(seed, 0x6_0000 + k as u64),
            size,
            created_unix: created / 1000,
        });
        let (size, sha1) = bytes::fingerprint(&source)?;
        let file = Item {
            id,
            tag: String::new(),
            album_id: String::new(),
            file_name: name,
            mime: "audio/mp4".to_string(),
            is_video: false,
            date_taken: created,
            create_time: created,
            date_modified: modified,
            exif_date_time: None,
            camera: None,
            width: 0,
            height: 0,
            is_favorite: false,
            source,
            size,
            sha1,
        };
        out.push(Recording {
            file,
            kind,
            duration_s: size / 16_000 + 1,
            ver: r.range(1, 20),
            modify_time: modified,
            deleted: false,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_set_has_every_type_and_duplicate_names() {
        let recs = generate(42, 8).unwrap();
        assert_eq!(recs.len(), 8);
        for t in 0..4 {
            assert!(recs.iter().any(|r| r.kind == t));
        }
        let names: std::collections::HashSet<_> = recs.iter().map(|r| &r.file.file_name).collect();
        assert!(names.len() < recs.len());
        for r in &recs {
            let name = r.wire_name();
            let groups: Vec<&str> = name.rsplitn(5, '_').collect();
            assert_eq!(groups.len(), 5);
            assert_eq!(groups[2], r.kind.to_string());
            assert!(groups[..4].iter().all(|g| g.parse::<u64>().is_ok()));
            assert!((20_000..=400_000).contains(&r.file.size));
            assert!(r.file.id.parse::<u64>().unwrap() % 2 == 0);
        }
        let again = generate(42, 8).unwrap();
        assert_eq!(recs[3].file.sha1, again[3].file.sha1);
    }
}
