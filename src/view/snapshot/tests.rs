//! The snapshot gives back the very tree that was built, and never one that was damaged,
//! made of another catalog state, or inconsistent.

use proptest::prelude::*;

use super::*;
use crate::view::tests::{album, big_catalog, check_invariants, item, utc};
use crate::view::{Node, NodeKind, ViewOptions};

fn header(generation: u64) -> Header {
    Header {
        format: FORMAT,
        version: "test".into(),
        catalog_id: 7,
        generation,
        options: "tz:UTC private:false".into(),
    }
}

fn summary() -> Summary {
    Summary {
        items: 3,
        albums: 2,
        incomplete: 1,
        total_size: 12345,
    }
}

fn bytes_of(view: &View, h: &Header) -> Vec<u8> {
    let mut out = Vec::new();
    encode(view, &summary(), h, &mut out).unwrap();
    out
}

/// Everything a reader of the tree can see, as owned values.
fn everything(v: &View) -> Vec<String> {
    let mut out = Vec::new();
    for n in v.nodes() {
        let Node {
            ino,
            parent,
            name,
            kind,
            size,
            mtime_ms,
        } = n;
        out.push(format!(
            "{ino} {parent} {name:?} {kind:?} {size} {mtime_ms}"
        ));
        if let NodeKind::File(_) = kind {
            out.push(format!("{:?}", v.item(ino)));
        }
        if kind == NodeKind::Sha1Sums {
            out.push(String::from_utf8_lossy(&v.sha1sums(ino).unwrap()).into_owned());
        }
        if let Some(kids) = v.children(ino) {
            out.push(format!("{kids:?}"));
        }
        out.push(format!("{:?}", v.path(ino)));
    }
    out.push(format!("{:?}", v.handed_out()));
    out.push(format!(
        "{} {} {} {}",
        v.file_count(),
        v.node_count(),
        v.albums_ino(),
        v.by_date_ino()
    ));
    out
}

fn with_recordings_and_hostile_names() -> View {
    let (albums, mut items) = big_catalog(3_000);
    items.push(item(11, 1, "../..\n\u{0}x.jpg", 5, 6));
    items.push(item(12, 1, "", 5, 6));
    items.push(item(13, 999, "SHA1SUMS", 5, 6));
    let mut rec = item(14, 1, "call 2024.m4a", 5, 6);
    rec.kind = MediaKind::Recording;
    rec.mime_type = "audio/mp4".into();
    items.push(rec);
    let mut albums = albums;
    albums.push(album(2, None));
    View::build(&albums, items.into(), &utc())
}

#[test]
fn round_trip_gives_the_same_tree() {
    let built = with_recordings_and_hostile_names();
    let bytes = bytes_of(&built, &header(5));
    let (read, s) = decode(&bytes, &header(5)).unwrap();
    assert_eq!(s, summary());
    assert_eq!(everything(&read), everything(&built));
    // Lookups go through the radix table made again on reading.
    for n in built.nodes() {
        if n.ino != crate::view::ROOT_INO {
            assert_eq!(read.lookup(n.parent, n.name).map(|m| m.ino), Some(n.ino));
        }
    }
    // The same tree always gives the same bytes.
    assert_eq!(bytes_of(&read, &header(5)), bytes);
}

#[test]
fn an_empty_gallery_round_trips() {
    let v = View::build(&[], Vec::new().into(), &ViewOptions::default());
    let (read, _) = decode(&bytes_of(&v, &header(1)), &header(1)).unwrap();
    assert_eq!(everything(&read), everything(&v));
}

#[test]
fn another_state_build_or_options_is_stale() {
    let v = View::build(&[], vec![item(1, 1, "a.jpg", 1, 2)].into(), &utc());
    let bytes = bytes_of(&v, &header(5));
    let stale = |h: Header| match decode(&bytes, &h) {
        Err(SnapshotError::Stale(why)) => why,
        other => panic!("{:?}", other.map(|_| ())),
    };
    assert!(stale(header(6)).contains("older state"));
    assert!(stale(Header {
        catalog_id: 8,
        ..header(5)
    })
    .contains("another catalog"));
    assert!(stale(Header {
        version: "other".into(),
        ..header(5)
    })
    .contains("another build"));
    assert!(stale(Header {
        options: "tz:Asia/Shanghai private:false".into(),
        ..header(5)
    })
    .contains("other options"));
}

#[test]
fn every_damaged_byte_and_every_cut_is_caught() {
    let v = View::build(&[], vec![item(1, 1, "a.jpg", 1, 2)].into(), &utc());
    let bytes = bytes_of(&v, &header(5));
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        assert!(
            matches!(decode(&bad, &header(5)), Err(SnapshotError::Damaged(_))),
            "byte {i}"
        );
    }
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len], &header(5)).is_err(), "cut at {len}");
    }
}

#[test]
fn an_inconsistent_tree_is_refused() {
    let good = with_recordings_and_hostile_names();
    let bytes = bytes_of(&good, &header(1));
    let fresh = || decode(&bytes, &header(1)).unwrap().0;
    assert_eq!(fresh().tree.check(), Ok(()));

    let mut v = fresh();
    let file = v
        .tree
        .slots
        .iter()
        .position(|s| s.kind == super::super::SLOT_FILE)
        .unwrap();
    v.tree.slots[file].data = u32::MAX;
    assert!(v.tree.check().is_err());

    let mut v = fresh();
    v.tree.slots[file].parent = file as u32;
    assert!(v.tree.check().is_err());

    let mut v = fresh();
    v.tree.slots[file].name_len = 0;
    assert!(v.tree.check().is_err());

    let mut v = fresh();
    let albums = v.albums_ino;
    let kids = v.tree.children.get_mut(&albums).unwrap();
    kids.reverse();
    assert_eq!(v.tree.check(), Err("children out of order"));

    let mut v = fresh();
    let albums = v.albums_ino;
    let kids = v.tree.children.get(&albums).unwrap();
    let fewer: Box<[Ino]> = kids[1..].into();
    v.tree.children.insert(albums, fewer);
    assert_eq!(v.tree.check(), Err("a node in no directory"));

    let mut v = fresh();
    v.tree.names.replace_range(0..0, "\u{e9}");
    assert!(v.tree.check().is_err());
}

#[test]
fn big_catalog_snapshot_is_small_and_quick() {
    let (albums, items) = big_catalog(20_000);
    let v = View::build(&albums, items.into(), &utc());
    let bytes = bytes_of(&v, &header(1));
    let per_item = bytes.len() / 20_000;
    println!("{} bytes, {per_item} bytes an item", bytes.len());
    assert!(per_item < 200, "{per_item} bytes an item");
    let (read, _) = decode(&bytes, &header(1)).unwrap();
    assert_eq!(read.node_count(), v.node_count());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Arbitrary names and albums: the decoded tree is the built one.
    #[test]
    fn arbitrary_trees_round_trip(
        names in prop::collection::vec(any::<String>(), 0..30),
        albums in prop::collection::vec(1u64..6, 30),
    ) {
        let items: Vec<Item> = names
            .iter()
            .enumerate()
            .map(|(i, n)| item(100 + i as u64, albums[i], n, i as i64, 1_700_000_000_000))
            .collect();
        let v = View::build(&[album(3, Some("x/y")), album(4, None)], items.into(), &utc());
        let (read, _) = decode(&bytes_of(&v, &header(2)), &header(2)).unwrap();
        check_invariants(&read);
        prop_assert_eq!(everything(&read), everything(&v));
    }
}
