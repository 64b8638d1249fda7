//! End-to-end: the real `micloudfs` mounted on the real emulator, driven with rsync, cp,
//! sha1sum, stat, touch, mkdir, rm and mv.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::*;

/// The copy checks shared by `albums/` and `by-date/`.
fn copy_and_verify(view: &str) {
    let sim = Sim::spawn(&["--seed", "7"]);
    let items = visible(&sim.manifest());
    assert!(
        items.len() >= 30,
        "the generated gallery is too small to test much"
    );
    let m = Mount::of_sim(&sim, &[]);
    let src = m.path(view);

    // Through the mount itself: exactly once per item id, exact sizes and mtimes.
    let in_mount = walk(&src);
    let mut ids: Vec<String> = in_mount
        .keys()
        .map(|rel| xattr_id(&src.join(rel)))
        .collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "an item appears twice under {view}"
    );
    ids.sort();
    let mut want_ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    want_ids.sort();
    assert_eq!(
        ids, want_ids,
        "the ids under {view} are not the emulator's items"
    );
    assert_same_items(&in_mount, &items, true);

    // rsync -a: byte-exact copy with mtimes; SHA1SUMS verifies it.
    let copy = m.dir.path().join("rsync-copy");
    rsync_copy(&src, &copy, &[]);
    let copied = walk(&copy);
    assert_eq!(
        copied.keys().collect::<Vec<_>>(),
        in_mount.keys().collect::<Vec<_>>()
    );
    assert_same_items(&copied, &items, true);
    sha1sum_check(&copy);
    let listed = std::fs::read_to_string(copy.join("SHA1SUMS"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(listed, items.len(), "SHA1SUMS must list every file once");

    // The copy changed nothing in the cloud: no write or delete endpoint was called.
    let counters = &sim.stats()["counters"];
    assert_eq!(
        counters["write_calls"].as_u64().unwrap_or(0),
        0,
        "{counters}"
    );

    // A second rsync transfers nothing.
    let again = rsync_copy(&src, &copy, &["--itemize-changes"]);
    assert!(
        again.stdout.is_empty(),
        "second rsync transferred: {}",
        String::from_utf8_lossy(&again.stdout)
    );

    // cp -r: the same bytes (cp does not keep mtimes, so only content and size).
    let cp_copy = m.dir.path().join("cp-copy");
    run_ok(Command::new("cp").arg("-r").arg(&src).arg(&cp_copy));
    assert_same_items(&walk(&cp_copy), &items, false);
    sha1sum_check(&cp_copy);

    // stat and the extended attributes agree with the listing for one file.
    let (rel, facts) = in_mount.iter().next().unwrap();
    let file = src.join(rel);
    assert_eq!(
        xattr_names(&file),
        [
            "user.micloud.id",
            "user.micloud.sha1",
            "user.micloud.mime",
            "user.micloud.album"
        ]
    );
    assert_eq!(xattr(&file, "user.micloud.sha1"), facts.sha1);
    let item = items.iter().find(|i| i.id == xattr_id(&file)).unwrap();
    assert_eq!(xattr(&file, "user.micloud.album"), item.album_id);
    let out = run_ok(
        Command::new("stat")
            .args(["-c", "%s %Y"])
            .arg(src.join(rel)),
    );
    let want = format!("{} {}", facts.size, facts.mtime_ms.div_euclid(1000));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);

    m.unmount();
    assert!(!is_mounted(&m.mnt));
}

#[test]
fn rsync_and_cp_of_albums_copy_every_item_exactly_once() {
    copy_and_verify("albums");
}

#[test]
fn rsync_and_cp_of_by_date_copy_every_item_exactly_once() {
    copy_and_verify("by-date");
}

/// The session dies twice while one copy runs (ended through the control API, as the end of
/// the token's lifetime would); the copy completes byte-exact, with no more than one token
/// exchange per expiry, whatever the number of requests.
#[test]
fn a_copy_longer_than_the_token_lifetime_completes() {
    let sim = Sim::spawn(&["--seed", "11"]);
    let items = visible(&sim.manifest());
    let total: u64 = items.iter().map(|i| i.size).sum();
    let m = Mount::of_sim(&sim, &[]);
    // Throttle rsync so the copy takes about 9 s: time to end the session twice meanwhile.
    let kib_per_s = (total / 1024 / 9).max(1);
    let copy = m.dir.path().join("copy");
    let mut rsync = Command::new("rsync")
        .arg("-a")
        .arg(format!("--bwlimit={kib_per_s}"))
        .arg(format!("{}/", m.path("albums").display()))
        .arg(&copy)
        .spawn()
        .expect("start rsync");
    let (exchanges0, unauthorized0) = (sim.stat("token_exchanges"), sim.stat("unauthorized"));
    let mut ended = 0;
    for third in 1..=2 {
        let due = (items.len() * third / 3) as u64;
        wait_until("the copy to progress", Duration::from_secs(300), || {
            sim.stat("downloads") >= due
        });
        assert!(
            rsync.try_wait().unwrap().is_none(),
            "the copy ended before its session did: the test proves nothing"
        );
        assert!(sim.expire_sessions("1234567890") >= 1);
        ended += 1;
    }
    assert!(rsync.wait().unwrap().success(), "rsync failed");
    assert_same_items(&walk(&copy), &items, true);
    sha1sum_check(&copy);
    let stats = sim.stats();
    let exchanges = sim.stat("token_exchanges") - exchanges0;
    assert!(
        sim.stat("unauthorized") > unauthorized0,
        "no request met the ended session: {stats}"
    );
    assert!(
        (1..=ended).contains(&exchanges),
        "{exchanges} exchanges for {ended} expiries: {stats}"
    );
}

#[test]
fn every_write_fails_with_erofs() {
    let sim = Sim::spawn(&["--seed", "3", "--items", "30"]);
    let m = Mount::of_sim(&sim, &[]);
    let albums = m.path("albums");
    let camera = albums.join("Camera");
    let existing = std::fs::read_dir(&camera)
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .expect("Camera has files");
    let erofs = |what: &str, r: std::io::Result<()>| {
        let e = r.expect_err(&format!("{what} succeeded on a read-only mount"));
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
    };
    erofs(
        "create",
        std::fs::write(camera.join("new.jpg"), b"x").map(drop),
    );
    erofs("mkdir", std::fs::create_dir(albums.join("New album")));
    erofs("unlink", std::fs::remove_file(&existing));
    erofs(
        "rename",
        std::fs::rename(&existing, camera.join("renamed.jpg")),
    );
    erofs(
        "write",
        std::fs::OpenOptions::new()
            .append(true)
            .open(&existing)
            .map(drop),
    );
    erofs("rmdir", std::fs::remove_dir(&camera));

    // And the same through the real tools, which must report the read-only file system.
    for (tool, args) in [
        ("touch", vec![existing.clone()]),
        ("touch", vec![camera.join("new-file")]),
        ("mkdir", vec![albums.join("dir")]),
        ("rm", vec![existing.clone()]),
        ("mv", vec![existing.clone(), camera.join("moved.jpg")]),
        (
            "sh",
            vec![
                "-c".into(),
                format!("echo data >> '{}'", existing.display()).into(),
            ],
        ),
    ] {
        let out = run(Command::new(tool).args(&args));
        assert!(!out.status.success(), "{tool} {args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Read-only file system"), "{tool}: {err}");
    }
    // Nothing changed, here or in the cloud: no write or delete endpoint was ever called.
    assert!(existing.exists());
    assert!(!camera.join("moved.jpg").exists());
    let counters = &sim.stats()["counters"];
    assert_eq!(
        counters["write_calls"].as_u64().unwrap_or(0),
        0,
        "{counters}"
    );
}

#[test]
fn sigterm_unmounts_a_foreground_mount_cleanly() {
    let sim = Sim::spawn(&["--seed", "5", "--items", "30"]);
    let m = Mount::of_sim(&sim, &[]);
    m.unmount();
    let mut child = m.mount_command().arg("-f").spawn().unwrap();
    wait_until("the foreground mount", Duration::from_secs(30), || {
        is_mounted(&m.mnt)
    });
    assert!(m.path("albums/SHA1SUMS").exists());
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "foreground mount exited with {status}");
    assert!(!is_mounted(&m.mnt));
}

#[test]
fn cached_files_are_served_after_a_remount_without_new_downloads() {
    let sim = Sim::spawn(&["--seed", "9", "--items", "30"]);
    let m = Mount::of_sim(&sim, &[]);
    let first = walk(&m.path("albums"));
    let downloads = sim.stats()["downloads"].as_u64().unwrap();
    m.unmount();
    m.mount(&[]);
    let second = walk(&m.path("albums"));
    assert_eq!(
        first, second,
        "names, sizes, mtimes or bytes changed across a remount"
    );
    assert_eq!(
        sim.stats()["downloads"].as_u64().unwrap(),
        downloads,
        "the cache was not used"
    );
}

#[test]
fn a_killed_daemon_is_explained_and_recovered_from() {
    let sim = Sim::spawn(&["--seed", "13", "--items", "30"]);
    let m = Mount::of_sim(&sim, &[]);
    let before = walk(&m.path("albums"));
    let pid = daemon_pid(&m.mnt).expect("the daemon process");
    // SAFETY: killing the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until("the daemon to die", Duration::from_secs(10), || {
        // Gone, or a zombie (its parent, the `mount` command, exited long ago) whose other
        // threads have exited too (only then are its descriptors, /dev/fuse among them, closed).
        is_gone_or_zombie(pid)
    });
    let out = run(&mut m.mount_command());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("daemon is gone") && err.contains("micloudfs unmount"),
        "{err}"
    );
    run_ok(Command::new(MICLOUDFS).arg("unmount").arg(&m.mnt));
    assert!(!is_mounted(&m.mnt));
    // The cache survived the kill: the same tree, no new download.
    let downloads = sim.stats()["downloads"].as_u64().unwrap();
    m.mount(&[]);
    assert_eq!(walk(&m.path("albums")), before);
    assert_eq!(sim.stats()["downloads"].as_u64().unwrap(), downloads);
}

#[test]
fn mounting_twice_on_one_directory_is_refused() {
    let sim = Sim::spawn(&["--seed", "17", "--items", "30"]);
    let m = Mount::of_sim(&sim, &[]);
    let out = run(&mut m.mount_command());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already a mount point"), "{err}");
    m.unmount();
    let out = run(Command::new(MICLOUDFS).arg("unmount").arg(&m.mnt));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not mounted"), "{err}");
}

/// A folder served with `micloud-sim --from-dir`: 1 500 files in one album (many readdir
/// buffers), names that collide only in case, and `df` reporting the gallery's size.
#[test]
fn a_large_album_from_a_folder_lists_and_copies_completely() {
    let src = tempfile::tempdir().unwrap();
    let album = src.path().join("Big album");
    std::fs::create_dir_all(&album).unwrap();
    for i in 0..1500 {
        std::fs::write(
            album.join(format!("IMG_{i:05}.jpg")),
            format!("photo {i}\n"),
        )
        .unwrap();
    }
    std::fs::write(album.join("CASE.jpg"), b"upper").unwrap();
    std::fs::write(album.join("case.jpg"), b"lower").unwrap();
    let sim = Sim::spawn(&["--from-dir", src.path().to_str().unwrap()]);
    let items = visible(&sim.manifest());
    assert_eq!(items.len(), 1502);
    let m = Mount::of_sim(&sim, &[]);
    let dir = m.path("albums/Big album");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1502, "readdir lost or repeated entries");
    let unique: BTreeSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
    assert_eq!(
        unique.len(),
        1502,
        "names collide when case is ignored: {names:?}"
    );
    let out = run_ok(
        Command::new("find")
            .arg(m.path("albums"))
            .args(["-type", "f"]),
    );
    let found = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(found, 1502 + 1, "find sees every file and SHA1SUMS");

    let copy = m.dir.path().join("copy");
    rsync_copy(&m.path("albums"), &copy, &[]);
    assert_same_items(&walk(&copy), &items, true);
    sha1sum_check(&copy);

    // statfs: the file count and at least the gallery's bytes.
    let out = run_ok(
        Command::new("stat")
            .args(["-f", "-c", "%b %S %c"])
            .arg(&m.mnt),
    );
    let f: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let total: u64 = items.iter().map(|i| i.size).sum();
    assert!(f[0] * f[1] >= total, "statfs blocks {f:?} < {total} bytes");
    // Every file: the 1 502 items and the emulator's recordings (under recordings/).
    let recordings = sim.get_json("/_sim/recordings").as_array().unwrap().len() as u64;
    assert_eq!(f[2], 1502 + recordings, "statfs file count");
}

/// A gallery larger than the cache copies completely, and the cache keeps to its cap.
#[test]
fn a_copy_larger_than_the_cache_completes_within_the_cap() {
    let sim = Sim::spawn(&["--seed", "19", "--items", "80"]);
    let items = visible(&sim.manifest());
    let total: u64 = items.iter().map(|i| i.size).sum();
    let largest = items.iter().map(|i| i.size).max().unwrap();
    let cap = (largest + largest / 2).max(total / 4);
    assert!(
        cap < total / 2,
        "the cache must be well smaller than the gallery: {cap} of {total}"
    );
    let m = Mount::of_sim(&sim, &["--max-cache-size", &cap.to_string()]);
    let copy = m.dir.path().join("copy");
    rsync_copy(&m.path("albums"), &copy, &[]);
    assert_same_items(&walk(&copy), &items, true);
    sha1sum_check(&copy);
    let cached: u64 = walk(&m.cache.join("objects"))
        .values()
        .map(|f| f.size)
        .sum();
    assert!(
        cached <= cap,
        "the cache holds {cached} bytes, over its cap of {cap}"
    );
    assert!(cached > 0);
}

/// Issue 4: the copy holds on a slow link where every transient fault kind fires: 5xx
/// answers, stalled answers (longer than `--io-timeout`), success bodies without `data`,
/// connections reset in the middle of a file and files with one wrong byte. `rsync` sees no
/// error and every byte is right.
#[test]
fn copy_under_the_wan_profile_with_a_fault_mix_is_exact() {
    let sim = Sim::spawn(&["--seed", "11", "--items", "150", "--profile", "wan"]);
    let items = visible(&sim.manifest());
    let m = Mount::tempdirs();
    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &m.config));
    // From here on, a few percent of each kind: the mount's listing and every download meet them.
    let rates = serde_json::json!({"5xx": 5, "stall": 2, "nodata": 5, "reset": 5, "corrupt": 5});
    sim.post_json(
        "/_sim/faults",
        serde_json::json!({"seed": 5, "rates": rates, "stallSecs": 20}),
    );
    // `--io-timeout` is a read's deadline without a byte of its file (issue 12), not one
    // request's: 5 s, a quarter of the 20 s stalls, which are abandoned and tried again.
    m.mount(&["--io-timeout", "5"]);
    let src = m.path("albums");
    let copy = m.dir.path().join("copy");
    let out = run(Command::new("rsync")
        .arg("-a")
        .arg(format!("{}/", src.display()))
        .arg(&copy));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "rsync: {}; it reported: {}\nthe daemon's log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        m.log()
    );
    assert_same_items(&walk(&copy), &items, true);
    sha1sum_check(&copy);

    let stats = sim.stats();
    for kind in ["5xx", "stall", "nodata", "reset", "corrupt"] {
        let fired = stats["faults"][kind].as_u64().unwrap_or(0);
        assert!(fired >= 1, "no {kind} fault fired: {}", stats["faults"]);
    }
    eprintln!("faults fired during the copy: {}", stats["faults"]);
}

/// Issue 4: an item deleted in the cloud after the mount listed it (the emulator's `deleted`
/// fault recycles it for real and answers 50050) reads as ENOENT, and the rest is unharmed.
#[test]
fn an_item_deleted_after_the_listing_reads_as_enoent() {
    let sim = Sim::spawn(&["--seed", "7"]);
    let m = Mount::of_sim(&sim, &[]);
    let album = m.path("albums/Camera");
    let mut names: Vec<_> = std::fs::read_dir(&album)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let (gone, kept) = (album.join(&names[0]), album.join(&names[1]));
    let gone_id = xattr_id(&gone);

    sim.post_json(
        "/_sim/faults",
        serde_json::json!({"rates": {"deleted": 100}}),
    );
    let err = std::fs::read(&gone).expect_err("a deleted item must not read");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert_eq!(sim.stats()["faults"]["deleted"], 1);
    assert!(
        sim.manifest().iter().all(|i| i.id != gone_id),
        "the emulator still lists the deleted item"
    );

    sim.post_json("/_sim/faults", serde_json::json!({"rates": {}}));
    assert_eq!(sha1_file(&kept), xattr(&kept, "user.micloud.sha1"));
}
