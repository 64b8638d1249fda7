//! Unit tests of the whole view: layout, naming in context, stability, SHA1SUMS, scale.
//!
//! Every test builds a `View` and then checks real outcomes through the public API, plus the
//! structural invariants in [`check_invariants`] (unique case-insensitive names, valid names,
//! sorted children, `lookup` agreeing with `children`, parents pointing back).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;

use super::naming::{is_valid_name, NAME_MAX};
use super::*;
use crate::model::{AlbumId, ItemId, MediaKind, Sha1Digest};

const USER_ALBUM: u64 = 24_053_454_468_749_664;

pub(super) fn item(id: u64, album: u64, name: &str, create: i64, taken: i64) -> Item {
    let mut sha = [0u8; 20];
    sha[..8].copy_from_slice(&id.to_be_bytes());
    sha[19] = 0x5a;
    Item {
        id: ItemId(id),
        album_id: AlbumId(album),
        file_name: name.to_owned(),
        kind: MediaKind::Image,
        mime_type: "image/jpeg".into(),
        size: 1000 + id,
        sha1: Sha1Digest(sha),
        date_taken_ms: taken,
        create_time_ms: create,
        exif_date_time: None,
    }
}

pub(super) fn album(id: u64, name: Option<&str>) -> Album {
    Album {
        id: AlbumId(id),
        name: name.map(str::to_owned),
        media_count: 0,
        last_update_ms: 0,
    }
}

pub(super) fn utc() -> ViewOptions {
    ViewOptions {
        zone: DateZone::Named(chrono_tz::UTC),
        include_private: false,
    }
}

fn build(albums: &[Album], items: Vec<Item>) -> View {
    let v = View::build(albums, items.into(), &utc());
    check_invariants(&v);
    v
}

/// 2024-06-10T10:15:00Z
const JUNE: i64 = 1_718_014_500_000;

/// Every file below the root: path -> (ino, size, mtime, item id).
fn files(v: &View) -> BTreeMap<String, (Ino, u64, i64, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![ROOT_INO];
    while let Some(dir) = stack.pop() {
        for &k in v.children(dir).unwrap() {
            let n = v.node(k).unwrap();
            match n.kind {
                NodeKind::Dir => stack.push(k),
                NodeKind::File(_) => {
                    let it = v.item(k).unwrap();
                    out.insert(v.path(k).unwrap(), (k, n.size, n.mtime_ms, it.id.0));
                }
                NodeKind::Sha1Sums => {}
            }
        }
    }
    out
}

/// The names of the children of the directory at `path` ("" = root).
fn names(v: &View, path: &str) -> Vec<String> {
    let ino = resolve(v, path).unwrap_or_else(|| panic!("no {path:?}"));
    v.children(ino)
        .unwrap()
        .iter()
        .map(|&k| v.node(k).unwrap().name.to_string())
        .collect()
}

fn resolve(v: &View, path: &str) -> Option<Ino> {
    let mut ino = ROOT_INO;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        ino = v.lookup(ino, part)?.ino;
    }
    Some(ino)
}

pub(super) fn check_invariants(v: &View) {
    let root = v.node(ROOT_INO).unwrap();
    assert_eq!(root.name, "");
    assert_eq!(names(v, ""), vec!["albums", "by-date"]);
    let mut seen_inos = HashSet::new();
    let mut stack = vec![ROOT_INO];
    seen_inos.insert(ROOT_INO);
    while let Some(dir) = stack.pop() {
        let kids = v.children(dir).unwrap();
        let mut folded = HashSet::new();
        let mut prev: Option<&str> = None;
        for &k in kids {
            let n = v.node(k).unwrap();
            assert!(k > 1 && k >> 63 == 0, "ino {k}");
            assert!(seen_inos.insert(k), "ino {k} twice");
            assert_eq!(n.ino, k);
            assert_eq!(n.parent, dir);
            assert!(is_valid_name(n.name), "bad name {:?}", n.name);
            assert!(folded.insert(n.name.to_lowercase()), "dup {:?}", n.name);
            if let Some(p) = prev {
                assert!(
                    p.as_bytes() < n.name.as_bytes(),
                    "unsorted {p:?} {:?}",
                    n.name
                );
            }
            prev = Some(n.name);
            assert_eq!(v.lookup(dir, n.name).unwrap().ino, k);
            match n.kind {
                NodeKind::Dir => {
                    assert_eq!(n.size, 0);
                    stack.push(k);
                }
                NodeKind::File(i) => {
                    assert_eq!(n.size, v.items()[i as usize].size);
                    assert_eq!(n.mtime_ms, v.items()[i as usize].date_taken_ms);
                    assert!(v.children(k).is_none());
                }
                NodeKind::Sha1Sums => {
                    assert_eq!(n.size, v.sha1sums(k).unwrap().len() as u64);
                }
            }
        }
    }
    assert_eq!(seen_inos.len(), v.node_count());
}

#[test]
fn view_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<View>();
    // SHA1SUMS asked for from several threads at once: one content, the exact size.
    let v = build(
        &[],
        vec![item(1, 1, "a.jpg", 1, JUNE), item(2, 2, "b\\.jpg", 2, JUNE)],
    );
    let ino = resolve(&v, "albums/SHA1SUMS").unwrap();
    let got: Vec<Arc<[u8]>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| v.sha1sums(ino).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for g in &got {
        assert!(Arc::ptr_eq(g, &got[0]));
    }
    assert_eq!(got[0].len() as u64, v.node(ino).unwrap().size);
}

#[test]
fn root_has_albums_and_by_date_only() {
    let v = build(&[], vec![]);
    assert_eq!(names(&v, ""), vec!["albums", "by-date"]);
    assert_eq!(names(&v, "albums"), vec!["SHA1SUMS"]);
    assert_eq!(names(&v, "by-date"), vec!["SHA1SUMS"]);
    assert_eq!(v.node(ROOT_INO).unwrap().parent, ROOT_INO);
    assert!(
        v.lookup(ROOT_INO, "Albums").is_none(),
        "lookup is case-sensitive"
    );
    assert!(v.lookup(v.albums_ino(), "SHA1SUMS").is_some());
    let sums = v.lookup(v.albums_ino(), "SHA1SUMS").unwrap();
    assert!(v.children(sums.ino).is_none());
    assert!(v.lookup(sums.ino, "x").is_none());
    assert_eq!(&*v.sha1sums(sums.ino).unwrap(), b"");
    assert!(v.sha1sums(v.albums_ino()).is_none());
    assert!(v.item(v.albums_ino()).is_none());
    assert!(v.node(0).is_none());
    assert_eq!(v.file_count(), 0);
}

#[test]
fn duplicates_in_one_album() {
    let v = build(
        &[album(1, None)],
        vec![
            item(300_000_000_000_000_003, 1, "IMG_1.jpg", 30, JUNE),
            item(100_000_000_000_000_001, 1, "IMG_1.jpg", 10, JUNE),
            item(200_000_000_000_000_002, 1, "IMG_1.jpg", 20, JUNE),
            item(400_000_000_000_000_002, 1, "IMG_1.jpg", 40, JUNE), // same last 6 digits as 2
        ],
    );
    let f = files(&v);
    let id_at = |p: &str| f[p].3;
    assert_eq!(id_at("albums/Camera/IMG_1.jpg"), 100_000_000_000_000_001);
    assert_eq!(
        id_at("albums/Camera/IMG_1~000002.jpg"),
        200_000_000_000_000_002
    );
    assert_eq!(
        id_at("albums/Camera/IMG_1~000003.jpg"),
        300_000_000_000_000_003
    );
    assert_eq!(
        id_at("albums/Camera/IMG_1~400000000000000002.jpg"),
        400_000_000_000_000_002
    );
    // Same names under by-date (all four in 2024/06).
    assert_eq!(id_at("by-date/2024/06/IMG_1.jpg"), 100_000_000_000_000_001);
    assert_eq!(
        id_at("by-date/2024/06/IMG_1~000002.jpg"),
        200_000_000_000_000_002
    );
    assert_eq!(f.len(), 8);
}

#[test]
fn full_id_then_counter_suffix() {
    // Names that pre-empt the short and the full suffix force the "-n" form.
    let v = build(
        &[],
        vec![
            item(1_234_567, 1, "a.jpg", 1, JUNE),
            item(9_234_567, 1, "a~234567.jpg", 2, JUNE),
            item(8_000_001, 1, "a~1234567.JPG", 3, JUNE),
            item(1_234_567, 1, "a.jpg", 4, JUNE), // a duplicate id from a hostile listing
        ],
    );
    assert_eq!(
        names(&v, "albums/Camera"),
        vec!["a.jpg", "a~1234567-2.jpg", "a~1234567.JPG", "a~234567.jpg"]
    );
}

#[test]
fn case_only_collisions() {
    let v = build(
        &[],
        vec![
            item(111_111, 1, "img.jpg", 2, JUNE),
            item(222_222, 1, "IMG.JPG", 1, JUNE),
            item(333_333, 1, "Img.Jpg", 3, JUNE),
            item(444_444, 1, "straße.jpg", 4, JUNE),
            item(555_555, 1, "STRASSE.jpg", 5, JUNE), // not equal under to_lowercase
            item(666_666, 1, "ÄRGER.jpg", 6, JUNE),
            item(777_777, 1, "ärger.jpg", 7, JUNE),
        ],
    );
    let f = files(&v);
    assert_eq!(f["albums/Camera/IMG.JPG"].3, 222_222); // uploaded first
    assert_eq!(f["albums/Camera/img~111111.jpg"].3, 111_111);
    assert_eq!(f["albums/Camera/Img~333333.Jpg"].3, 333_333);
    assert_eq!(f["albums/Camera/straße.jpg"].3, 444_444);
    assert_eq!(f["albums/Camera/STRASSE.jpg"].3, 555_555);
    assert_eq!(f["albums/Camera/ÄRGER.jpg"].3, 666_666);
    assert_eq!(f["albums/Camera/ärger~777777.jpg"].3, 777_777);
    assert!(v
        .lookup(resolve(&v, "albums/Camera").unwrap(), "img.jpg")
        .is_none());
}

#[test]
fn hostile_names() {
    let hostile = [
        (1, "a/b.jpg"),
        (2, "../../etc/passwd"),
        (3, "line\nbreak.jpg"),
        (4, "tab\there.jpg"),
        (5, "ctl\u{1}.jpg"),
        (6, "nul\0.jpg"),
        (7, ""),
        (8, "."),
        (9, ".."),
        (10, "   "),
        (11, "\u{85}c1.jpg"),
        (12, "back\\slash.jpg"),
        (13, "/"),
        (14, "\n"),
    ];
    let mut items: Vec<Item> = hostile
        .iter()
        .map(|&(id, n)| item(id, 1, n, id as i64, JUNE))
        .collect();
    items[9].mime_type = "video/quicktime".into();
    items[7].mime_type = "application/octet-stream".into();
    let v = build(&[], items);
    let got: HashMap<u64, String> = files(&v)
        .into_iter()
        .filter(|(p, _)| p.starts_with("albums/"))
        .map(|(p, (_, _, _, id))| (id, p["albums/Camera/".len()..].to_owned()))
        .collect();
    let expect = [
        (1, "a_b.jpg"),
        (2, ".._.._etc_passwd"),
        (3, "line_break.jpg"),
        (4, "tab_here.jpg"),
        (5, "ctl_.jpg"),
        (6, "nul_.jpg"),
        (7, "7.jpg"),
        (8, "8"),
        (9, "9.jpg"),
        (10, "10.mov"),
        (11, "_c1.jpg"),
        (12, "back\\slash.jpg"),
        (13, "_"),
        (14, "_~14"),
    ];
    for (id, name) in expect {
        assert_eq!(got[&id], name, "item {id}");
    }
}

#[test]
fn long_utf8_names_fit_255_bytes() {
    let long = format!("{}.jpeg", "日本".repeat(60)); // 360 + 5 bytes
    let v = build(
        &[],
        vec![
            item(123_456_789_012, 1, &long, 1, JUNE),
            item(999_456_789_012, 1, &long, 2, JUNE),
            item(
                555_000_000_000,
                1,
                &format!("{}.jpeg", "x本".repeat(70)),
                3,
                JUNE,
            ), // mixed widths
            item(555_000_000_001, 1, &"é".repeat(200), 4, JUNE), // no extension
        ],
    );
    let n = names(&v, "albums/Camera");
    assert_eq!(n.len(), 4);
    for name in &n {
        assert!(name.len() <= NAME_MAX, "{} bytes", name.len());
        assert!(name.len() >= NAME_MAX - 3, "cut too much: {}", name.len());
    }
    let plain = n.iter().find(|s| s.ends_with("日.jpeg")).unwrap();
    assert_eq!(plain.len(), 249 + 5); // 83 whole 3-byte chars + ".jpeg"
    assert!(long.starts_with(&plain[..249]));
    let suffixed = n.iter().find(|s| s.ends_with("~789012.jpeg")).unwrap();
    assert_eq!(
        files(&v)[&format!("albums/Camera/{suffixed}")].3,
        999_456_789_012
    );
    assert!(long.starts_with(&suffixed[..suffixed.len() - "~789012.jpeg".len()]));
    // 250 bytes of room for the stem: 62 "x本" pairs (248) and one more "x" (249).
    assert!(n.iter().any(|s| s.len() == 254 && s.ends_with("本x.jpeg")));
    assert!(n
        .iter()
        .any(|s| s.len() == 254 && s.chars().all(|c| c == 'é')));
}

#[test]
fn adding_items_never_renames() {
    let base = vec![
        item(10, 1, "a.jpg", 100, JUNE),
        item(11, 1, "a.jpg", 110, JUNE + 1),
        item(12, USER_ALBUM, "b.jpg", 120, JUNE + 2),
        item(13, 1, "c.jpg", 130, JUNE - 86_400_000 * 40),
    ];
    let albums = [album(1, None), album(USER_ALBUM, Some("Trip"))];
    let before = build(&albums, base.clone());
    let mut more = base.clone();
    more.push(item(20, 1, "A.JPG", 200, JUNE)); // later upload, colliding name
    more.push(item(21, 1, "new.jpg", 210, JUNE)); // later upload, fresh name
    more.push(item(22, USER_ALBUM, "b.jpg", 220, JUNE + 5)); // collides in the other album
    more.insert(0, item(23, 2, "d.png", 230, JUNE + 9)); // a new album appears
    let after = build(&albums, more);
    let (fb, fa) = (files(&before), files(&after));
    for (path, attrs) in &fb {
        assert_eq!(fa.get(path), Some(attrs), "{path} changed");
    }
    assert_eq!(fa.len(), fb.len() + 8, "{:?}", fa.keys());
    // Ids shorter than 6 digits are their own "last 6 digits".
    assert_eq!(fa["albums/Camera/A~20.JPG"].3, 20);
    assert_eq!(fa["albums/Camera/new.jpg"].3, 21);
    assert_eq!(fa["albums/Trip/b~22.jpg"].3, 22);
    assert_eq!(fa["albums/Screenshots/d.png"].3, 23);
    assert_eq!(fa["by-date/2024/06/A~20.JPG"].3, 20);
    // Directories keep their inodes too.
    for p in [
        "albums",
        "albums/Camera",
        "albums/Trip",
        "by-date/2024/06",
        "by-date",
    ] {
        assert_eq!(resolve(&before, p), resolve(&after, p), "{p}");
    }
}

#[test]
fn inodes_stable_across_shuffled_input() {
    let mut items: Vec<Item> = (0..500u64)
        .map(|i| {
            item(
                1_000_000 + i * 7919,
                [1, 2, USER_ALBUM, 77][(i % 4) as usize],
                &format!("IMG_{}.jpg", i % 37),
                (i % 50) as i64, // many equal create times: id breaks ties
                JUNE + (i as i64) * 86_400_000,
            )
        })
        .collect();
    let mut albums = vec![
        album(USER_ALBUM, Some("Trip")),
        album(1, None),
        album(2, None),
        album(5, Some("camera")),
    ];
    let a = build(&albums, items.clone());
    // A deterministic shuffle.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
    albums.reverse();
    let b = build(&albums, items);
    assert_eq!(files(&a), files(&b));
    let all = |v: &View| -> BTreeMap<String, (Ino, u64, i64)> {
        v.nodes()
            .map(|n| (v.path(n.ino).unwrap(), (n.ino, n.size, n.mtime_ms)))
            .collect()
    };
    assert_eq!(all(&a), all(&b));
    assert_eq!(v_sums(&a, "albums/SHA1SUMS"), v_sums(&b, "albums/SHA1SUMS"));
    // An album called "camera" after the system album Camera.
    assert_eq!(names(&a, "albums")[..3], ["Album 77", "Camera", "SHA1SUMS"]);
    assert!(names(&a, "albums").contains(&"camera~5".to_owned()));
}

fn v_sums(v: &View, path: &str) -> String {
    String::from_utf8(v.sha1sums(resolve(v, path).unwrap()).unwrap().to_vec()).unwrap()
}

#[test]
fn every_item_exactly_once_per_tree() {
    let items: Vec<Item> = (0..300u64)
        .map(|i| {
            let mut it = item(
                i + 1,
                [1, 2, 1000, USER_ALBUM, 99][(i % 5) as usize],
                ["x.jpg", "X.jpg", "", "y"][(i % 4) as usize],
                (i / 3) as i64,
                JUNE + (i as i64) * 86_400_000 * 7,
            );
            if i % 3 == 0 {
                it.exif_date_time = Some(format!("20{:02}:0{}:15 12:00:00", i % 30, 1 + i % 9));
            }
            it
        })
        .collect();
    for include_private in [false, true] {
        let opts = ViewOptions {
            zone: DateZone::Named(chrono_tz::Europe::Berlin),
            include_private,
        };
        let v = View::build(
            &[album(USER_ALBUM, Some("Trip"))],
            items.clone().into(),
            &opts,
        );
        check_invariants(&v);
        let f = files(&v);
        let mut under_albums: HashMap<u64, usize> = HashMap::new();
        let mut under_dates: HashMap<u64, usize> = HashMap::new();
        for (path, (_, _, _, id)) in &f {
            let m = if path.starts_with("albums/") {
                &mut under_albums
            } else {
                assert!(path.starts_with("by-date/"));
                &mut under_dates
            };
            *m.entry(*id).or_default() += 1;
        }
        let visible: Vec<u64> = items
            .iter()
            .filter(|it| include_private || it.album_id != AlbumId::PRIVATE)
            .map(|it| it.id.0)
            .collect();
        assert_eq!(visible.len(), if include_private { 300 } else { 240 });
        assert_eq!(v.file_count(), visible.len());
        assert_eq!(under_albums.len(), visible.len());
        assert_eq!(under_dates.len(), visible.len());
        for id in visible {
            assert_eq!(under_albums.get(&id), Some(&1), "item {id} under albums/");
            assert_eq!(under_dates.get(&id), Some(&1), "item {id} under by-date/");
        }
        // Each item is in the directory of its album.
        for (path, (ino, ..)) in &f {
            if let Some(rest) = path.strip_prefix("albums/") {
                let dir = rest.split('/').next().unwrap();
                let expect = match v.item(*ino).unwrap().album_id.0 {
                    1 => "Camera",
                    2 => "Screenshots",
                    1000 => "Private",
                    USER_ALBUM => "Trip",
                    99 => "Album 99",
                    other => panic!("album {other}"),
                };
                assert_eq!(dir, expect);
            }
        }
    }
}

#[test]
fn private_album_hidden_and_shown() {
    let albums = [album(1000, None), album(1, None)];
    let items = vec![
        item(1, 1000, "secret.jpg", 1, JUNE),
        item(2, 1, "public.jpg", 2, JUNE - 86_400_000 * 60),
    ];
    let hidden = build(&albums, items.clone());
    assert_eq!(names(&hidden, "albums"), vec!["Camera", "SHA1SUMS"]);
    assert_eq!(names(&hidden, "by-date/2024"), vec!["04"]);
    assert!(!v_sums(&hidden, "albums/SHA1SUMS").contains("secret"));
    assert!(!v_sums(&hidden, "by-date/SHA1SUMS").contains("secret"));
    assert_eq!(hidden.file_count(), 1);

    let opts = ViewOptions {
        include_private: true,
        ..utc()
    };
    let shown = View::build(&albums, items.into(), &opts);
    check_invariants(&shown);
    assert_eq!(
        names(&shown, "albums"),
        vec!["Camera", "Private", "SHA1SUMS"]
    );
    assert_eq!(names(&shown, "albums/Private"), vec!["secret.jpg"]);
    assert_eq!(names(&shown, "by-date/2024/06"), vec!["secret.jpg"]);
    assert!(v_sums(&shown, "albums/SHA1SUMS").contains("  Private/secret.jpg\n"));
    // An empty private album is shown (empty) only with the option.
    let empty = build(&[album(1000, None)], vec![]);
    assert_eq!(names(&empty, "albums"), vec!["SHA1SUMS"]);
}

#[test]
fn unknown_album_items_kept() {
    let v = build(
        &[album(5, Some("Album 7"))], // a user album that squats the fallback name
        vec![
            item(1, 7, "a.jpg", 1, JUNE),
            item(2, 8, "b.jpg", 2, JUNE),
            item(3, 2, "c.jpg", 3, JUNE), // a system album missing from the list
        ],
    );
    assert_eq!(
        names(&v, "albums"),
        vec!["Album 7", "Album 7~7", "Album 8", "SHA1SUMS", "Screenshots"]
    );
    let f = files(&v);
    assert_eq!(f["albums/Album 7~7/a.jpg"].3, 1);
    assert_eq!(f["albums/Album 8/b.jpg"].3, 2);
    assert_eq!(f["albums/Screenshots/c.jpg"].3, 3);
    assert!(names(&v, "albums/Album 7").is_empty());
}

#[test]
fn album_names_safe_and_unique() {
    let albums = [
        album(30, Some("Trip")),
        album(20, Some("TRIP")),
        album(10, None),
        album(40, Some("a/b")),
        album(50, Some("..")),
        album(60, Some("Camera")),
        album(70, Some("sha1sums")),
        album(80, Some(&"ü".repeat(200))),
        album(90, Some(&"ü".repeat(200))),
        album(2, Some("ignored for system albums")),
        album(1, None),
        album(20, Some("duplicate entry: the first wins")),
    ];
    let v = build(&albums, vec![]);
    let n = names(&v, "albums");
    let dir = |id: u64| {
        let key = format!("album-dir:{id}");
        let ino = ino::ino_for_key(key.as_bytes(), 0);
        v.node(ino).unwrap().name.to_string()
    };
    assert_eq!(dir(10), "Album 10");
    assert_eq!(dir(20), "TRIP");
    assert_eq!(dir(30), "Trip~30");
    assert_eq!(dir(40), "a_b");
    assert_eq!(dir(50), "Album 50");
    assert_eq!(dir(60), "Camera~60");
    assert_eq!(dir(70), "sha1sums~70");
    assert_eq!(dir(80).len(), 254);
    assert!(dir(90).ends_with("ü~90") && dir(90).len() <= NAME_MAX);
    assert_eq!(dir(2), "Screenshots");
    assert_eq!(dir(1), "Camera");
    assert_eq!(n.len(), 12); // eleven albums + SHA1SUMS
}

#[test]
fn album_named_sha1sums() {
    let v = build(
        &[album(USER_ALBUM, Some("SHA1SUMS"))],
        vec![item(1, USER_ALBUM, "a.jpg", 1, JUNE)],
    );
    assert_eq!(names(&v, "albums"), vec!["SHA1SUMS", "SHA1SUMS~749664"]);
    let sums = v.lookup(v.albums_ino(), "SHA1SUMS").unwrap();
    assert_eq!(sums.kind, NodeKind::Sha1Sums);
    assert!(v_sums(&v, "albums/SHA1SUMS").ends_with("  SHA1SUMS~749664/a.jpg\n"));
}

#[test]
fn by_date_from_exif_or_zone() {
    let at_20z = 1_719_777_600_000; // 2024-06-30T20:00:00Z
    let mut with_exif = item(1, 1, "exif.jpg", 1, at_20z);
    with_exif.exif_date_time = Some("2019:12:31 23:59:59".to_owned());
    let mut bad_exif = item(2, 1, "badexif.jpg", 2, at_20z);
    bad_exif.exif_date_time = Some("0000:00:00 00:00:00".to_owned());
    let plain = item(3, 1, "plain.jpg", 3, at_20z);
    let mut no_date = item(4, 1, "nodate.jpg", 1_000, i64::MAX);
    no_date.create_time_ms = 1_000;
    let items = vec![with_exif, bad_exif, plain, no_date];

    let shanghai = ViewOptions {
        zone: DateZone::Named(chrono_tz::Asia::Shanghai),
        include_private: false,
    };
    let v = View::build(&[], items.clone().into(), &shanghai);
    check_invariants(&v);
    assert_eq!(
        names(&v, "by-date"),
        vec!["1970", "2019", "2024", "SHA1SUMS"]
    );
    assert_eq!(names(&v, "by-date/2019"), vec!["12"]);
    assert_eq!(names(&v, "by-date/2019/12"), vec!["exif.jpg"]);
    assert_eq!(names(&v, "by-date/2024"), vec!["07"]);
    assert_eq!(
        names(&v, "by-date/2024/07"),
        vec!["badexif.jpg", "plain.jpg"]
    );
    assert_eq!(names(&v, "by-date/1970/01"), vec!["nodate.jpg"]);

    let v = build(&[], items); // UTC
    assert_eq!(names(&v, "by-date/2024"), vec!["06"]);
    assert_eq!(names(&v, "by-date/2019/12"), vec!["exif.jpg"]);
    // The local zone works too (whatever it is here).
    let local = View::build(
        &[],
        vec![item(9, 1, "l.jpg", 1, JUNE)].into(),
        &ViewOptions::default(),
    );
    assert_eq!(names(&local, "by-date/2024"), vec!["06"]);
}

#[test]
fn no_empty_month_dirs_and_dir_mtimes() {
    let day = 86_400_000;
    let mut albums = vec![album(1, None), album(USER_ALBUM, Some("Empty"))];
    albums[1].last_update_ms = 42_000;
    let v = build(
        &albums,
        vec![
            item(1, 1, "jan.jpg", 1, 1_704_110_400_000), // 2024-01-01T12:00Z
            item(2, 1, "mar.jpg", 2, 1_709_294_400_000), // 2024-03-01T12:00Z
            item(3, 1, "mar2.jpg", 3, 1_709_294_400_000 + day), // 2024-03-02
            item(4, 1, "2026.jpg", 4, 1_704_110_400_000 + 730 * day), // 2025-12-31
        ],
    );
    assert_eq!(names(&v, "by-date"), vec!["2024", "2025", "SHA1SUMS"]);
    assert_eq!(names(&v, "by-date/2024"), vec!["01", "03"]);
    assert_eq!(names(&v, "by-date/2025"), vec!["12"]);
    let mtime = |p: &str| v.node(resolve(&v, p).unwrap()).unwrap().mtime_ms;
    assert_eq!(mtime("by-date/2024/03"), 1_709_294_400_000 + day);
    assert_eq!(mtime("by-date/2024"), 1_709_294_400_000 + day);
    assert_eq!(mtime("by-date/2024/01"), 1_704_110_400_000);
    assert_eq!(mtime("albums/Empty"), 42_000);
    assert!(names(&v, "albums/Empty").is_empty());
    let newest = 1_704_110_400_000 + 730 * day;
    for p in [
        "",
        "albums",
        "albums/Camera",
        "by-date",
        "by-date/2025",
        "albums/SHA1SUMS",
    ] {
        assert_eq!(mtime(p), newest, "{p:?}");
    }
}

#[test]
fn sha1sums_content_and_size() {
    let albums = [
        album(10, Some("a b")),
        album(11, Some("a")),
        album(12, Some("back\\slash")),
    ];
    let items = vec![
        item(1, 11, "z.jpg", 1, JUNE),
        item(2, 10, "x.jpg", 2, JUNE),
        item(3, 1, "b\\c.jpg", 3, JUNE),
        item(4, 11, "B.jpg", 4, JUNE),
        item(5, 12, "plain.jpg", 5, JUNE),
    ];
    let v = build(&albums, items.clone());
    let hex = |id: usize| items[id - 1].sha1.to_hex();
    let expect = format!(
        "\\{}  Camera/b\\\\c.jpg\n{}  a b/x.jpg\n{}  a/B.jpg\n{}  a/z.jpg\n\\{}  back\\\\slash/plain.jpg\n",
        hex(3),
        hex(2),
        hex(4),
        hex(1),
        hex(5),
    );
    let sums_ino = resolve(&v, "albums/SHA1SUMS").unwrap();
    let got = v.sha1sums(sums_ino).unwrap();
    assert_eq!(String::from_utf8(got.to_vec()).unwrap(), expect);
    assert_eq!(v.node(sums_ino).unwrap().size, expect.len() as u64);
    // Cached: the same allocation on the second call.
    assert!(Arc::ptr_eq(&got, &v.sha1sums(sums_ino).unwrap()));

    let by_date = v_sums(&v, "by-date/SHA1SUMS");
    let lines: Vec<&str> = by_date.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0], format!("{}  2024/06/B.jpg", hex(4)));
    assert_eq!(lines[1], format!("\\{}  2024/06/b\\\\c.jpg", hex(3)));
    assert_eq!(lines[4], format!("{}  2024/06/z.jpg", hex(1)));
    assert_eq!(
        v.node(resolve(&v, "by-date/SHA1SUMS").unwrap())
            .unwrap()
            .size,
        by_date.len() as u64
    );
    // Every line's path resolves to a file with that sha1.
    for line in v_sums(&v, "albums/SHA1SUMS").lines() {
        let (escaped, line) = match line.strip_prefix('\\') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let (h, path) = line.split_once("  ").unwrap();
        let path = if escaped {
            path.replace("\\\\", "\\")
        } else {
            path.to_owned()
        };
        let ino = resolve(&v, &format!("albums/{path}")).unwrap();
        assert_eq!(v.item(ino).unwrap().sha1.to_hex(), h);
    }
}

#[test]
fn sha1sums_sorted_by_path_bytes_at_scale() {
    let items: Vec<Item> = (0..2000u64)
        .map(|i| {
            item(
                i + 1,
                100 + i % 13,
                &format!(
                    "{}{}.jpg",
                    ["a", "A", "a b", "a-", "a.", "ä"][(i % 6) as usize],
                    i % 17
                ),
                i as i64,
                JUNE + (i as i64 % 400) * 86_400_000,
            )
        })
        .collect();
    let albums: Vec<Album> = (0..13u64)
        .map(|i| {
            album(
                100 + i,
                Some(["x", "x y", "x-", "x.", "X", "xx"][(i % 6) as usize]),
            )
        })
        .collect();
    let v = build(&albums, items);
    for top in ["albums", "by-date"] {
        let s = v_sums(&v, &format!("{top}/SHA1SUMS"));
        let paths: Vec<&str> = s.lines().map(|l| &l[42..]).collect();
        assert_eq!(paths.len(), 2000);
        assert!(paths.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()));
    }
}

pub(super) fn big_catalog(n: u64) -> (Vec<Album>, Vec<Item>) {
    let albums: Vec<Album> = (0..50u64)
        .map(|a| album(USER_ALBUM + a, Some(&format!("Album number {}", a % 40))))
        .collect();
    let jpeg: Arc<str> = "image/jpeg".into();
    let items = (0..n)
        .map(|i| {
            let mut it = item(
                40_000_000_000_000_000 + i * 1_000_003,
                if i % 3 == 0 { 1 } else { USER_ALBUM + i % 50 },
                &format!("IMG_2024{:04}_{:06}.jpg", i % 1500, i % 7000),
                1_700_000_000_000 + (i as i64) * 1000,
                1_500_000_000_000 + (i as i64) * 3_600_000,
            );
            if i % 4 == 0 {
                it.exif_date_time = Some("2021:05:05 10:00:00".to_owned());
            }
            // As the catalog loads them: one shared MIME type, names without spare capacity.
            it.mime_type = Arc::clone(&jpeg);
            it.file_name.shrink_to_fit();
            it
        })
        .collect();
    (albums, items)
}

/// The resident set size of this process in KiB (0 where /proc is missing).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The bytes the process's heap holds in live allocations (glibc's `mallinfo2`: in-use chunks
/// of the arenas plus mmapped blocks; 0 elsewhere). Exact where RSS deltas depend on which
/// freed pages the allocator happens to keep.
fn heap_bytes() -> u64 {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallinfo2 only reads glibc's allocator statistics.
        let m = unsafe { libc::mallinfo2() };
        (m.uordblks + m.hblkhd) as u64
    }
    #[cfg(not(target_env = "gnu"))]
    0
}

fn build_big(n: u64) {
    let heap_start = heap_bytes();
    let (albums, items) = big_catalog(n);
    let items: Arc<[Item]> = items.into();
    let heap_items = heap_bytes();
    let rss_before = rss_kib();
    let t = Instant::now();
    let v = View::build(&albums, Arc::clone(&items), &utc());
    let built = t.elapsed();
    let heap_view = heap_bytes();
    // Informational (other tests run in parallel threads): run this test alone to measure,
    // e.g. `cargo test --lib view::tests::build_100k_items -- --nocapture`.
    let per_item = |bytes: u64| bytes / n;
    eprintln!(
        "{n} items: heap: items {} B/item, view {} B/item; RSS grew {} B/item during the \
         build (temporaries included); size_of Item {} B",
        per_item(heap_items.saturating_sub(heap_start)),
        per_item(heap_view.saturating_sub(heap_items)),
        per_item(rss_kib().saturating_sub(rss_before) * 1024),
        std::mem::size_of::<Item>(),
    );
    let t = Instant::now();
    let sums = v.sha1sums(resolve(&v, "albums/SHA1SUMS").unwrap()).unwrap();
    eprintln!(
        "{n} items: build {built:?}, albums/SHA1SUMS ({} bytes) {:?}",
        sums.len(),
        t.elapsed()
    );
    assert_eq!(v.file_count(), n as usize);
    assert_eq!(sums.iter().filter(|&&b| b == b'\n').count(), n as usize);
    check_invariants(&v);
}

#[test]
fn build_20k_items() {
    build_big(20_000);
}

#[test]
fn build_100k_items() {
    build_big(100_000);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Arbitrary names in one album: all resulting names are valid and unique.
    #[test]
    fn arbitrary_names_unique_and_safe(
        names in prop::collection::vec(
            prop_oneof![
                any::<String>(),
                "[aA./\\n\\t\\x00 ]{0,4}(\\.[jJ][pP][gG])?",
                "\\PC{100,130}(\\.heic)?",
                Just(String::new()),
                Just("..".to_owned()),
            ],
            1..40,
        ),
        ids in prop::collection::vec(1u64..2_000_000, 40),
    ) {
        let items: Vec<Item> = names
            .iter()
            .enumerate()
            .map(|(i, n)| item(ids[i] / 3 * 3 + (i as u64 % 3), 1, n, ids[i] as i64 % 5, JUNE))
            .collect();
        let v = View::build(&[], items.into(), &utc());
        let dir = resolve(&v, "albums/Camera").unwrap();
        let kids = v.children(dir).unwrap();
        prop_assert_eq!(kids.len(), names.len());
        let mut folded = HashSet::new();
        for &k in kids {
            let name: &str = v.node(k).unwrap().name;
            prop_assert!(name.len() <= NAME_MAX);
            prop_assert!(!name.is_empty() && name != "." && name != "..");
            prop_assert!(!name.trim().is_empty());
            prop_assert!(!name.chars().any(|c| c == '/' || c.is_control()));
            prop_assert!(folded.insert(name.to_lowercase()), "duplicate {:?}", name);
        }
        check_invariants(&v);
    }
}

/// Materializes a view (with real content per item) in a temp dir and runs GNU `sha1sum -c` on
/// both SHA1SUMS files, as a user would on a backup. Skipped where `sha1sum` is missing.
#[test]
fn gnu_sha1sum_accepts_sha1sums() {
    use sha1::{Digest, Sha1};
    let names = [
        "a.jpg",
        "back\\slash.jpg",
        "spa ce.jpg",
        "ünï.jpg",
        "a.jpg",
        "\\",
        "x\ny",
    ];
    let items: Vec<Item> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut it = item(i as u64 + 1, [1, 2, USER_ALBUM][i % 3], n, i as i64, JUNE);
            it.sha1 = Sha1Digest(Sha1::digest(format!("content {i}")).into());
            it
        })
        .collect();
    let v = build(&[album(USER_ALBUM, Some("Al\\bum"))], items);
    let tmp = tempfile::tempdir().unwrap();
    for (path, (ino, ..)) in files(&v) {
        let i = match v.node(ino).unwrap().kind {
            NodeKind::File(i) => i,
            _ => unreachable!(),
        };
        let p = tmp.path().join(&path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("content {i}")).unwrap();
    }
    for top in ["albums", "by-date"] {
        let bytes = v.sha1sums(resolve(&v, &format!("{top}/SHA1SUMS")).unwrap());
        std::fs::write(tmp.path().join(top).join("SHA1SUMS"), &*bytes.unwrap()).unwrap();
        let out = std::process::Command::new("sha1sum")
            .args(["-c", "--strict", "SHA1SUMS"])
            .current_dir(tmp.path().join(top))
            .output()
            .expect("GNU sha1sum (coreutils) is needed by this test");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{top}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.matches(": OK").count(), names.len(), "{stdout}");
    }
}

#[test]
fn extreme_times_and_sizes_never_panic() {
    let mut items = Vec::new();
    for (i, t) in [i64::MIN, -1, 0, i64::MAX, 253_402_300_800_000]
        .into_iter()
        .enumerate()
    {
        let mut it = item(900 + i as u64, 1, "x.jpg", t, t);
        it.size = u64::MAX / 4;
        it.exif_date_time = Some(
            [
                "9999:99:99 99:99:99",
                "",
                "0000:00:00 00:00:00",
                "2024:02:30 10:00:00",
                "garbage",
            ][i]
                .to_string(),
        );
        items.push(it);
    }
    let v = build(&[album(1, None)], items);
    check_invariants(&v);
    assert_eq!(files(&v).len(), 10);
}
