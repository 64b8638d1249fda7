//! The generated gallery: deterministic from the seed, with the awkward cases real accounts have.
//!
//! Layout for `albums = N` user albums and `items = M`:
//! - system albums Camera (`1`), Screenshots (`2`), Private (`1000`, 2 items when M ≥ 10);
//! - N user albums, Chinese and ASCII names; when N ≥ 2 the last one ("新建相册") stays empty;
//! - when M ≥ 30, a fixed block of 16 awkward items (`awkward`): same name twice with
//!   different content, names differing only in case, `/`, `\n`, `\t`, `\u{1}`, an empty name,
//!   a 338-byte multi-byte name, `..`, the same content in two albums, and two shots between
//!   00:00 and 08:00 UTC+8 (one on New Year's night, whose UTC date is the previous year);
//! - the rest: 50 % Camera (15 % of them videos, 5 % without EXIF date), 15 % Screenshots
//!   (no EXIF), 35 % over the non-empty user albums (messenger images without EXIF, photos shot
//!   in other time zones for the first album, videos).
//!
//! Shooting times are uniform over 2019-01-01 .. 2025-07-01 (UTC+8); `createTime` is 1 minute
//! to 30 days later and made strictly distinct. Photos are 320x240 .. 800x600 (a quarter
//! portrait), videos 300 KB .. 2 MB. Every random draw comes from [`Rng`] streams derived from
//! the seed, so a seed always yields the same ids, names, dates and bytes.
//!
//! With [`SizeMode::Real`] the same items (same ids, names, dates) get large shared-prefix
//! bodies instead ([`crate::bytes::synth`]): sizes from [`crate::build::sizes`] drawn from a
//! separate stream per item, dimensions those of the template (1024x768, 768x1024, 720x1600,
//! 1920x1080), and no EXIF inside the file (the template is shared; the listing's `exifInfo`
//! stays the truth).
//! Metadata for 100 000 items takes a fraction of a second in a release build.

use std::collections::HashSet;

use crate::build::sizes::{self, SizeKind};
use crate::config::scale::SizeMode;
use crate::model::item::{Album, Item, CAMERA, PRIVATE, SCREENSHOTS};
use crate::model::rng::{derive, Rng};
use crate::model::source::{ExifSpec, PhotoSpec, Source, SynthSpec, Template, VideoSpec};
use crate::model::time::{exif_time, local_ms, server_local};

/// Version of the generator's output; part of the fingerprint cache key, so bump it whenever
/// a change alters ids, sizes or bytes for a given seed.
pub const VERSION: u32 = 1;

/// Item count from which the awkward block is included.
pub const AWKWARD_MIN_ITEMS: usize = 30;

const START_MS: i64 = 1_546_272_000_000; // 2019-01-01 00:00 UTC+8
const END_MS: i64 = 1_751_299_200_000; // 2025-07-01 00:00 UTC+8
const CST: i32 = 8 * 3600;

/// (name, pinyin, initials) of user albums, in order of use.
const ALBUM_NAMES: &[(&str, &str, &str)] = &[
    ("旅行 2023", "lvxing 2023", "lx 2023"),
    ("Family", "family", "family"),
    ("猫咪", "maomi", "mm"),
    ("Work/Scans", "work/scans", "work/scans"),
    ("美食", "meishi", "ms"),
    ("Wallpapers", "wallpapers", "wallpapers"),
    ("宝宝", "baobao", "bb"),
    ("Holidays", "holidays", "holidays"),
    ("风景", "fengjing", "fj"),
];
const EMPTY_ALBUM: (&str, &str, &str) = ("新建相册", "xinjianxiangce", "xjxc");

const CAMERAS: &[(&str, &str)] = &[
    ("Xiaomi", "Xiaomi 13"),
    ("Redmi", "Redmi K60"),
    ("Xiaomi", "MI 9"),
];

/// What kind of file an item is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// Camera photo with EXIF in a zone `offset` seconds east of UTC.
    Photo {
        offset: i32,
    },
    /// Camera photo whose EXIF lacks a date (edited or re-saved).
    PhotoNoDate,
    Screenshot,
    Messenger,
    Video,
}

struct Gen {
    seed: u64,
    sizes: SizeMode,
    rng: Rng,
    used: HashSet<u64>,
    items: Vec<Item>,
}

impl Gen {
    /// A fresh odd 17-digit number (always beyond 2^53 = 9007199254740992).
    fn id17(&mut self) -> String {
        loop {
            let v = self
                .rng
                .range(20_000_000_000_000_000, 99_999_999_999_999_999)
                | 1;
            if self.used.insert(v) {
                return v.to_string();
            }
        }
    }

    fn random_time(&mut self) -> i64 {
        self.rng.range(START_MS as u64, END_MS as u64) as i64 / 1000 * 1000
    }

    /// Add one item; `name` overrides the kind's usual file name.
    fn add(&mut self, album: &str, kind: Kind, taken: i64, name: Option<String>) -> usize {
        let idx = self.items.len();
        let mut r = Rng::new(derive(self.seed, 0x1_0000 + idx as u64));
        let id = self.id17();
        let tag = self.id17();
        let content_seed = derive(self.seed, 0x2_0000 + idx as u64);
        let local = |off: i32, fmt: &str| {
            server_local(taken)
                .map(|t| {
                    let off = chrono::FixedOffset::east_opt(off).unwrap_or(*t.offset());
                    t.with_timezone(&off).format(fmt).to_string()
                })
                .unwrap_or_default()
        };
        let camera = *r.pick(CAMERAS);
        let (mut w, mut h) = match kind {
            Kind::Screenshot => (360u16, 780u16),
            _ => {
                let w = *r.pick(&[320u16, 400, 480, 640, 800]);
                (w, w / 4 * 3)
            }
        };
        if matches!(kind, Kind::Photo { .. } | Kind::PhotoNoDate) && r.chance(25) {
            std::mem::swap(&mut w, &mut h);
        }
        let (default_name, exif, source, mime, is_video, cam) = match kind {
            Kind::Photo { offset } => {
                let exif = ExifSpec {
                    date_time: exif_time(taken, offset),
                    offset: format!("{:+03}:{:02}", offset / 3600, (offset.abs() % 3600) / 60),
                    make: camera.0.to_string(),
                    model: camera.1.to_string(),
                };
                let date = Some(exif.date_time.clone());
                let spec = PhotoSpec {
                    seed: content_seed,
                    width: w,
                    height: h,
                    exif: Some(exif),
                };
                let name = local(offset, "IMG_%Y%m%d_%H%M%S.jpg");
                (name, date, Source::Photo(spec), "image/jpeg", false, true)
            }
            Kind::PhotoNoDate | Kind::Screenshot | Kind::Messenger => {
                let spec = PhotoSpec {
                    seed: content_seed,
                    width: w,
                    height: h,
                    exif: None,
                };
                let name = match kind {
                    Kind::Screenshot => {
                        local(CST, "Screenshot_%Y-%m-%d-%H-%M-%S-%3f_com.miui.home.jpg")
                    }
                    Kind::Messenger => format!("mmexport{taken}.jpg"),
                    _ => local(CST, "IMG_%Y%m%d_%H%M%S_edit.jpg"),
                };
                let cam = kind == Kind::PhotoNoDate;
                (name, None, Source::Photo(spec), "image/jpeg", false, cam)
            }
            Kind::Video => {
                (w, h) = (1920, 1080);
                let spec = VideoSpec {
                    seed: content_seed,
                    size: r.range(300_000, 2_000_000),
                    created_unix: taken / 1000,
                };
                let name = local(CST, "VID_%Y%m%d_%H%M%S.mp4");
                (name, None, Source::Video(spec), "video/mp4", true, false)
            }
        };
        let source = match self.sizes {
            SizeMode::Small => source,
            SizeMode::Real => {
                let mut sr = Rng::new(derive(content_seed, 0x512E));
                let (template, size_kind) = match kind {
                    Kind::Video => (Template::Video, SizeKind::Video),
                    Kind::Screenshot => (Template::Screenshot, SizeKind::Screenshot),
                    Kind::Messenger if h > w => (Template::Portrait, SizeKind::Messenger),
                    Kind::Messenger => (Template::Landscape, SizeKind::Messenger),
                    _ if h > w => (Template::Portrait, SizeKind::CameraPhoto),
                    _ => (Template::Landscape, SizeKind::CameraPhoto),
                };
                (w, h) = {
                    let (tw, th) = template.dims();
                    (tw as u16, th as u16)
                };
                Source::Synth(SynthSpec {
                    seed: content_seed,
                    template,
                    size: sizes::draw(&mut sr, size_kind),
                })
            }
        };
        let item = Item {
            id,
            tag,
            album_id: album.to_string(),
            file_name: name.unwrap_or(default_name),
            mime: mime.to_string(),
            is_video,
            date_taken: taken,
            create_time: taken + r.range(60_000, 30 * 86_400_000) as i64,
            date_modified: taken + r.range(0, 3_000) as i64,
            exif_date_time: exif,
            camera: cam.then(|| (camera.0.to_string(), camera.1.to_string())),
            width: u32::from(w),
            height: u32::from(h),
            is_favorite: r.chance(10),
            source,
            size: 0,
            sha1: String::new(),
        };
        self.items.push(item);
        idx
    }

    /// A second item with the same bytes (same sha1) in `album`.
    fn add_copy(&mut self, of: usize, album: &str) {
        let id = self.id17();
        let tag = self.id17();
        let mut copy = self.items[of].clone();
        copy.id = id;
        copy.tag = tag;
        copy.album_id = album.to_string();
        copy.create_time += 86_400_000;
        self.items.push(copy);
    }
}

/// Albums and items (without fingerprints) for `seed`, `user_albums`, `items`, with bodies
/// of the size mode `sizes`.
pub fn generate(
    seed: u64,
    user_albums: usize,
    items: usize,
    sizes: SizeMode,
) -> (Vec<Album>, Vec<Item>) {
    let mut g = Gen {
        seed,
        sizes,
        rng: Rng::new(derive(seed, 1)),
        used: HashSet::new(),
        items: Vec::with_capacity(items),
    };
    let system = |id: &str, created| Album {
        id: id.to_string(),
        name: None,
        pinyin: None,
        created,
    };
    let mut albums = vec![
        system(CAMERA, START_MS),
        system(SCREENSHOTS, START_MS),
        system(PRIVATE, START_MS),
    ];
    for i in 0..user_albums {
        let empty = user_albums >= 2 && i == user_albums - 1;
        let (name, py, spy) = if empty {
            (EMPTY_ALBUM.0.to_string(), EMPTY_ALBUM.1, EMPTY_ALBUM.2)
        } else if let Some((n, p, s)) = ALBUM_NAMES.get(i) {
            (n.to_string(), *p, *s)
        } else {
            let n = format!("Album {}", i + 1);
            (n, "album", "album")
        };
        let id = g.id17();
        let created = g.random_time();
        albums.push(Album {
            id,
            name: Some(name),
            pinyin: Some((py.to_string(), py.to_string(), spy.to_string())),
            created,
        });
    }
    let filled: Vec<String> = albums[3..]
        .iter()
        .take(if user_albums >= 2 {
            user_albums - 1
        } else {
            user_albums
        })
        .map(|a| a.id.clone())
        .collect();
    let target = filled
        .first()
        .cloned()
        .unwrap_or_else(|| CAMERA.to_string());

    if items >= 10 {
        for _ in 0..2 {
            let t = g.random_time();
            g.add(PRIVATE, Kind::Photo { offset: CST }, t, None);
        }
    }
    if items >= AWKWARD_MIN_ITEMS {
        awkward(&mut g, &target);
    }
    while g.items.len() < items {
        let t = g.random_time();
        let roll = g.rng.range(0, 100);
        if roll < 50 {
            let kind = match g.rng.range(0, 100) {
                0..15 => Kind::Video,
                15..20 => Kind::PhotoNoDate,
                _ => Kind::Photo { offset: CST },
            };
            g.add(CAMERA, kind, t, None);
        } else if roll < 65 || filled.is_empty() {
            let album = if roll < 65 { SCREENSHOTS } else { CAMERA };
            let kind = if roll < 65 {
                Kind::Screenshot
            } else {
                Kind::Photo { offset: CST }
            };
            g.add(album, kind, t, None);
        } else {
            let a = g.rng.range(0, filled.len() as u64) as usize;
            let album = filled[a].clone();
            let kind = match g.rng.range(0, 100) {
                0..15 => Kind::Video,
                15..35 => Kind::Messenger,
                _ if a == 0 => Kind::Photo {
                    offset: *g.rng.pick(&[9 * 3600, 3600, -5 * 3600, CST]),
                },
                _ => Kind::Photo { offset: CST },
            };
            g.add(&album, kind, t, None);
        }
    }
    let mut items = g.items;
    distinct_create_times(&mut items);
    (albums, items)
}

/// The 16 awkward items (see the module doc).
fn awkward(g: &mut Gen, a: &str) {
    let photo = Kind::Photo { offset: CST };
    // Same name twice in Camera, different content and times.
    let t = local_ms(CST, 2023, 8, 15, 10, 15, 0);
    let same = Some("IMG_20230815_101500.jpg".to_string());
    g.add(CAMERA, photo, t, same.clone());
    g.add(CAMERA, photo, t + 400, same);
    // Names that differ only in case.
    let t = g.random_time();
    g.add(a, photo, t, Some("Photo.JPG".into()));
    let t = g.random_time();
    g.add(a, photo, t, Some("photo.jpg".into()));
    // Separators and control characters.
    for name in [
        "a/b.jpg",
        "line\nbreak.jpg",
        "tab\tname.jpg",
        "ctrl\u{1}char.jpg",
    ] {
        let t = g.random_time();
        g.add(a, Kind::Messenger, t, Some(name.into()));
    }
    let t = g.random_time();
    g.add(a, Kind::Messenger, t, Some(String::new()));
    let t = g.random_time();
    g.add(
        a,
        photo,
        t,
        Some(format!("{}_IMG.jpg", "很长的文件名".repeat(18))),
    );
    let t = g.random_time();
    g.add(a, Kind::Messenger, t, Some("..".into()));
    // The same content in Camera and in the album.
    let t = g.random_time();
    let orig = g.add(CAMERA, photo, t, None);
    g.add_copy(orig, a);
    // Early-morning shots: UTC date is the day before the UTC+8 date.
    g.add(CAMERA, photo, local_ms(CST, 2023, 10, 17, 7, 17, 36), None);
    g.add(CAMERA, photo, local_ms(CST, 2024, 1, 1, 0, 30, 5), None);
}

/// Make `createTime` strictly distinct across the account (keeps `createTime >= dateTaken`).
fn distinct_create_times(items: &mut [Item]) {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].create_time, i));
    let mut last = i64::MIN;
    for i in order {
        if items[i].create_time <= last {
            items[i].create_time = last + 1;
        }
        last = items[i].create_time;
    }
}
