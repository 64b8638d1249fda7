//! The persistent catalog end to end (issue 13): live refresh with stable names and inodes,
//! offline remounts, interrupted syncs, Ctrl-C during the first sync, and a big album whose
//! deep pages time out.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Every path below `root` (files and directories) with its inode; no file is read.
fn inodes(root: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, m.ino());
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// The errno of `getxattr(path, name)` (0 when it succeeds).
fn getxattr_errno(path: &Path, name: &str) -> i32 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 256];
    // SAFETY: valid C strings and a buffer of the given length.
    let r = unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r >= 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }
}

fn refresh(m: &Mount) -> String {
    stdout_of(&run_ok(Command::new(MICLOUDFS).arg("refresh").arg(&m.mnt)))
}

/// The number of media files under `albums/` (not reading them).
fn album_files(m: &Mount) -> usize {
    inodes(&m.path("albums"))
        .keys()
        .filter(|k| k.contains('/') && !k.ends_with("SHA1SUMS"))
        .filter(|k| {
            std::fs::metadata(m.path("albums").join(k))
                .unwrap()
                .is_file()
        })
        .count()
}

#[test]
fn upload_deletion_and_album_rename_show_after_refresh_and_nothing_else_moves() {
    let sim = Sim::spawn(&["--seed", "21", "--items", "60"]);
    let m = Mount::of_sim(&sim, &[]);
    let before = inodes(&m.mnt);
    let camera = m.path("albums/Camera");
    let mut names: Vec<String> = std::fs::read_dir(&camera)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let gone = names[0].clone();
    let gone_id = xattr_id(&camera.join(&gone));
    let albums = sim.get_json("/_sim/albums");
    let user_album = albums
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            a["name"].as_str().is_some_and(|n| !n.is_empty()) && a["mediaCount"].as_u64() > Some(0)
        })
        .expect("a user album with items")
        .clone();
    let old_name = user_album["name"].as_str().unwrap().to_string();
    assert!(m.path(&format!("albums/{old_name}")).is_dir());

    sim.post_json(
        "/_sim/upload",
        serde_json::json!({"fileName": "NEW_UPLOAD.jpg"}),
    );
    sim.post_json("/_sim/recycle", serde_json::json!({"id": gone_id}));
    sim.post_json(
        "/_sim/rename-album",
        serde_json::json!({"albumId": user_album["albumId"], "name": "Renamed Trip"}),
    );
    // A running mount shows none of it until told...
    let out = refresh(&m);
    assert!(out.contains("refreshed"), "{out}");

    // ... then at once: the upload, the deletion, the renamed album.
    assert!(camera.join("NEW_UPLOAD.jpg").is_file());
    assert!(!camera.join(&gone).exists());
    assert!(!m.path(&format!("albums/{old_name}")).exists());
    assert!(m.path("albums/Renamed Trip").is_dir());
    let upload = camera.join("NEW_UPLOAD.jpg");
    let id = xattr_id(&upload);
    assert!(sim.manifest().iter().any(|i| i.id == id));
    assert_eq!(sha1_file(&upload), xattr(&upload, "user.micloud.sha1"));

    // Every other name and inode is what it was.
    let after = inodes(&m.mnt);
    for (path, ino) in &before {
        let renamed = path.replace(&format!("albums/{old_name}"), "albums/Renamed Trip");
        // The deleted file goes, and so may its by-date month and year if it was alone there.
        if path.ends_with(&gone)
            || path.contains("SHA1SUMS")
            || path.starts_with("by-date/")
                && !after.contains_key(path)
                && std::path::Path::new(&m.mnt)
                    .join(path)
                    .extension()
                    .is_none()
        {
            continue;
        }
        match after.get(&renamed) {
            Some(now) => assert_eq!(now, ino, "{path} changed its inode"),
            None => panic!("{path} is gone after the refresh"),
        }
    }
    // The album directory kept its inode through the rename.
    assert_eq!(
        after["albums/Renamed Trip"],
        before[&format!("albums/{old_name}")]
    );
    sha1sum_check(&m.path("albums"));

    // And a remount shows the same tree, names and inodes.
    m.unmount();
    m.mount(&[]);
    assert_eq!(inodes(&m.mnt), after);
}

#[test]
fn a_remount_with_the_service_stopped_lists_everything_and_reads_every_cached_file() {
    let sim = Sim::spawn(&["--seed", "22", "--items", "40"]);
    let m = Mount::of_sim(&sim, &[]);
    let files = walk(&m.path("albums")); // reads (and caches) every file
    let tree = inodes(&m.mnt);
    m.unmount();
    drop(sim); // the emulator is stopped

    let out = run_ok(m.mount_command().args(["--io-timeout", "2"]));
    let said = stdout_of(&out);
    assert!(said.contains("from the catalog"), "{said}");
    assert_eq!(inodes(&m.mnt), tree);
    assert_eq!(walk(&m.path("albums")), files);
    sha1sum_check(&m.path("albums"));
    // The failed refresh is said once in the log, and the mount goes on.
    wait_until("the refresh to give up", Duration::from_secs(60), || {
        m.log().contains("serving the catalog offline")
    });
    assert_eq!(walk(&m.path("albums")), files);

    // --offline does not even try.
    m.unmount();
    m.mount(&["--offline"]);
    assert_eq!(inodes(&m.mnt), tree);
}

#[test]
fn offline_without_a_catalog_says_what_to_do() {
    let sim = Sim::spawn(&["--seed", "23", "--items", "10"]);
    let m = Mount::tempdirs();
    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &m.config));
    let out = run(m.mount_command().arg("--offline"));
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("mount once with the network"), "{err}");
    assert!(!is_mounted(&m.mnt));
}

/// The pid of the daemon once its first sync has listed at least one album completely.
fn wait_for_listing(m: &Mount) -> i32 {
    let mut pid = None;
    let db = micloudfs::catalog::catalog_path(&m.cache, "1234567890");
    wait_until(
        "the first sync to list an album",
        Duration::from_secs(120),
        || {
            pid = daemon_pid(&m.mnt);
            pid.is_some()
                && micloudfs::catalog::Store::open_existing(&db)
                    .ok()
                    .flatten()
                    .and_then(|s| s.albums().ok())
                    .is_some_and(|rows| {
                        rows.iter()
                            .any(|r| r.state == micloudfs::catalog::AlbumState::Complete)
                    })
        },
    );
    assert!(
        !is_mounted(&m.mnt),
        "the first sync ended before the test could stop it"
    );
    pid.unwrap()
}

fn wait_gone(pid: i32) {
    wait_until("the process to end", Duration::from_secs(30), || {
        is_gone_or_zombie(pid)
    });
}

/// 8 000 items at 400 ms a request: a first sync that takes a few seconds.
fn slow_listing_sim(seed: &str) -> Sim {
    Sim::spawn(&[
        "--seed",
        seed,
        "--items",
        "8000",
        "--latency-ms",
        "400",
        "--sizes",
        "real",
    ])
}

#[test]
fn sigkill_during_a_first_sync_and_a_refresh_leaves_a_catalog_the_next_mount_completes() {
    let sim = slow_listing_sim("24");
    let m = Mount::tempdirs();
    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &m.config));
    let mount = m
        .mount_command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = wait_for_listing(&m);
    // SAFETY: killing the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let out = mount.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "mount succeeded although its daemon was killed"
    );
    assert!(!is_mounted(&m.mnt));

    // The next mount resumes and completes the sync.
    m.mount(&[]);
    let want = visible(&sim.manifest()).len();
    assert_eq!(album_files(&m), want);
    assert!(m.log().contains("first sync"));

    // Killed during a refresh.
    sim.post_json(
        "/_sim/upload",
        serde_json::json!({"fileName": "DURING.jpg"}),
    );
    let pid = daemon_pid(&m.mnt).unwrap();
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    std::thread::sleep(Duration::from_millis(150));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_gone(pid);
    run_ok(
        Command::new(MICLOUDFS)
            .args(["unmount", "--lazy"])
            .arg(&m.mnt),
    );
    m.mount(&[]);
    refresh(&m);
    assert!(m.path("albums/Camera/DURING.jpg").is_file());
    assert_eq!(album_files(&m), want + 1);
}

#[test]
fn ctrl_c_during_the_first_sync_leaves_no_mount_and_no_daemon() {
    let sim = slow_listing_sim("25");
    let m = Mount::tempdirs();
    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &m.config));
    // Its own process group, as a shell runs a command: Ctrl-C goes to the whole group.
    let mut cmd = m.mount_command();
    cmd.process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pgid = child.id() as i32;
    let daemon = wait_for_listing(&m);
    // SAFETY: signalling the process group this test started.
    unsafe { libc::kill(-pgid, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("interrupted") && err.contains("resumes"),
        "{err}"
    );
    wait_gone(daemon);
    assert!(!is_mounted(&m.mnt));
    assert_eq!(daemon_pid(&m.mnt), None, "a daemon is still running");
    // And the next mount completes.
    m.mount(&[]);
    assert_eq!(album_files(&m), visible(&sim.manifest()).len());
}

#[test]
fn a_30000_item_album_whose_deep_pages_time_out_is_listed_completely() {
    // Page P waits 100 ms × P more: with a 3 s timeout every page past 30 times out, so
    // paging the album (300 pages) cannot finish; date ranges never go that deep.
    let sim = Sim::spawn(&[
        "--seed",
        "26",
        "--items",
        "36000",
        "--albums",
        "0",
        "--page-latency-growth",
        "100",
        "--recordings",
        "0",
        "--sizes",
        "real",
    ]);
    let manifest = sim.manifest();
    let camera = manifest.iter().filter(|i| i.album_id == "1").count();
    assert!(camera >= 30_000, "the emulator's Camera has {camera} items");
    // The control: a deep page of that album does not come within the timeout.
    let token = sim.fresh_service_token("1234567890", "V1:sim-pass-token");
    let deep = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            reqwest::Client::new()
                .get(format!(
                    "{}/gallery/user/galleries?albumId=1&pageNum=200&pageSize=100",
                    sim.base_url
                ))
                .header("Cookie", format!("userId=1234567890; serviceToken={token}"))
                .timeout(Duration::from_secs(3))
                .send()
                .await
        });
    assert!(
        deep.as_ref().is_err_and(|e| e.is_timeout()),
        "a deep page answered in time: {deep:?}"
    );
    let m = Mount::of_sim(&sim, &["--io-timeout", "3"]);
    let listed = std::fs::read_dir(m.path("albums/Camera")).unwrap().count();
    assert_eq!(listed, camera);
    assert_eq!(album_files(&m), visible(&manifest).len());
    let stats = stdout_of(&run_ok(
        Command::new(MICLOUDFS)
            .arg("stats")
            .arg("--config-dir")
            .arg(&m.config)
            .arg("--cache-dir")
            .arg(&m.cache),
    ));
    assert!(
        stats.contains("every album is listed completely"),
        "{stats}"
    );
    let ls = stdout_of(&run_ok(
        Command::new(MICLOUDFS)
            .args(["ls", "albums"])
            .arg("--config-dir")
            .arg(&m.config)
            .arg("--cache-dir")
            .arg(&m.cache),
    ));
    assert!(ls.contains(" Camera\n"), "{ls}");
}

#[test]
fn ls_and_stats_read_the_catalog_without_mounting() {
    let sim = Sim::spawn(&["--seed", "27", "--items", "40"]);
    let m = Mount::of_sim(&sim, &[]);
    let camera: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(m.path("albums/Camera"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    std::fs::read(m.path("albums/Camera").join(&camera[0])).unwrap();
    m.unmount();
    let cmd = |args: &[&str]| {
        let mut c = Command::new(MICLOUDFS);
        c.args(args)
            .arg("--config-dir")
            .arg(&m.config)
            .arg("--cache-dir")
            .arg(&m.cache);
        stdout_of(&run_ok(&mut c))
    };
    let ls = cmd(&["ls", "albums/Camera"]);
    // "K SIZE YYYY-MM-DD HH:MM NAME": the name is what follows the fourth field.
    let name_of = |l: &str| -> String {
        let mut rest = l;
        for _ in 0..4 {
            rest = rest.trim_start().split_once(' ').map_or("", |x| x.1);
        }
        rest.to_string()
    };
    let mut names: Vec<String> = ls.lines().map(name_of).collect();
    names.sort();
    assert_eq!(names, camera, "{ls}");
    let stats = cmd(&["stats"]);
    assert!(stats.contains("Camera"), "{stats}");
    assert!(stats.contains("image"), "{stats}");
    assert!(stats.contains("total"), "{stats}");
    assert!(stats.contains("recordings"), "{stats}");
}

#[test]
fn recordings_are_listed_by_type_and_read_verified() {
    let sim = Sim::spawn(&["--seed", "28", "--items", "20", "--recordings", "8"]);
    let m = Mount::of_sim(&sim, &[]);
    let truth = sim.get_json("/_sim/recordings");
    let live: Vec<&serde_json::Value> = truth
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["deleted"] != true)
        .collect();
    let files: BTreeMap<String, u64> = inodes(&m.path("recordings"))
        .into_iter()
        .filter(|(k, _)| k.contains('/'))
        .collect();
    assert_eq!(files.len(), live.len(), "{files:?}");
    let mut want: Vec<String> = live
        .iter()
        .map(|r| r["sha1"].as_str().unwrap().to_string())
        .collect();
    let mut got: Vec<String> = files
        .keys()
        .map(|k| sha1_file(&m.path("recordings").join(k)))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "the recordings' bytes are not the emulator's");
    for dir in std::fs::read_dir(m.path("recordings")).unwrap() {
        let name = dir.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            ["Recorder", "Calls", "FM", "Apps"].contains(&name.as_str()),
            "{name}"
        );
    }
}

#[test]
fn an_album_that_fails_to_list_is_shown_incomplete_and_the_others_are_complete() {
    let sim = Sim::spawn(&["--seed", "29", "--items", "60"]);
    let items = visible(&sim.manifest());
    let broken = items
        .iter()
        .map(|i| i.album_id.clone())
        .find(|a| !["1", "2", "1000"].contains(&a.as_str()))
        .expect("the emulator's gallery has a user album with items");
    sim.post_json(
        "/_sim/faults",
        serde_json::json!({ "failAlbums": [broken.clone()] }),
    );

    let m = Mount::tempdirs();
    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &m.config));
    let said = stdout_of(&run_ok(&mut m.mount_command()));
    assert!(is_mounted(&m.mnt));
    assert!(said.contains("1 album(s) incomplete"), "{said}");

    // Every other album is complete: its files are there, with the listed bytes.
    let others: Vec<SimItem> = items
        .iter()
        .filter(|i| i.album_id != broken)
        .cloned()
        .collect();
    let files = walk(&m.path("albums"));
    assert_same_items(&files, &others, true);

    // `ls -l` asks every entry for its security label and ACL: the mount says it supports
    // neither (so `ls` stops asking), and still serves its own `user.*` attributes.
    let some_file = m.path("albums").join(files.keys().next().unwrap());
    for name in ["security.selinux", "system.posix_acl_access"] {
        assert_eq!(getxattr_errno(&some_file, name), libc::EOPNOTSUPP, "{name}");
    }
    assert_eq!(getxattr_errno(&some_file, "user.none"), libc::ENODATA);
    assert_eq!(xattr(&some_file, "user.micloud.sha1").len(), 40);

    // Not silently: the log, `status` (by mount point and by cache dir) and `stats` say so.
    let log = m.log();
    assert!(
        log.contains(&format!("album={broken}")) && log.contains("could not be listed"),
        "{log}"
    );
    let status = |args: &[&str]| {
        let mut c = Command::new(MICLOUDFS);
        c.arg("status").args(args);
        stdout_of(&run_ok(&mut c))
    };
    // The daemon writes its status file just after the mount goes live.
    wait_until("the status file", Duration::from_secs(30), || {
        m.cache.join("status.json").exists()
    });
    let text = status(&[m.mnt.to_str().unwrap()]);
    assert!(text.contains("incomplete albums (1)"), "{text}");
    assert!(text.contains(&format!("(album {broken}): ")), "{text}");
    let json: serde_json::Value = serde_json::from_str(&status(&[
        "--json",
        "--cache-dir",
        m.cache.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(json["state"], "mounted");
    assert_eq!(json["items"], serde_json::json!(others.len()));
    let incomplete = json["incomplete"].as_array().unwrap();
    assert_eq!(incomplete.len(), 1, "{json}");
    assert_eq!(incomplete[0]["album"], serde_json::json!(broken));
    assert!(!incomplete[0]["reason"].as_str().unwrap().is_empty());
    let mut stats = Command::new(MICLOUDFS);
    stats
        .arg("stats")
        .arg("--config-dir")
        .arg(&m.config)
        .arg("--cache-dir")
        .arg(&m.cache);
    let stats = stdout_of(&run_ok(&mut stats));
    assert!(stats.contains("incomplete albums (1)"), "{stats}");

    // Once the service lists it again, a refresh completes it and the status says so.
    sim.post_json("/_sim/faults", serde_json::json!({ "failAlbums": [] }));
    let line = refresh(&m);
    assert!(!line.contains("incomplete"), "{line}");
    assert_same_items(&walk(&m.path("albums")), &items, true);
    let json: serde_json::Value =
        serde_json::from_str(&status(&["--json", m.mnt.to_str().unwrap()])).unwrap();
    assert_eq!(json["incomplete"], serde_json::json!([]), "{json}");
    assert_eq!(json["items"], serde_json::json!(items.len()));
    assert!(json["cached_bytes"].as_u64().unwrap() > 0, "{json}");
    m.unmount();
    // The daemon marks the file as its session ends, just after the kernel unmount.
    wait_until(
        "the status to say unmounted",
        Duration::from_secs(30),
        || {
            let json: serde_json::Value = serde_json::from_str(&status(&[
                "--json",
                "--cache-dir",
                m.cache.to_str().unwrap(),
            ]))
            .unwrap();
            json["state"] == "unmounted"
        },
    );
}

/// Unmounts and waits for the daemon to end (it writes a pending tree snapshot first).
fn unmount_and_wait(m: &Mount) {
    let pid = daemon_pid(&m.mnt).expect("the daemon's pid");
    m.unmount();
    wait_gone(pid);
}

/// How many warm starts read their tree from the snapshot, and how many built it.
fn tree_sources(m: &Mount) -> (usize, usize) {
    let log = m.log();
    (
        log.matches("tree read from its snapshot").count(),
        log.matches("tree built from the catalog").count(),
    )
}

#[test]
fn a_warm_remount_reads_its_tree_snapshot_and_never_a_stale_or_damaged_one() {
    let sim = Sim::spawn(&["--seed", "31", "--items", "80"]);
    let m = Mount::of_sim(&sim, &[]);
    let tree = inodes(&m.mnt);
    unmount_and_wait(&m);
    let db = micloudfs::catalog::catalog_path(&m.cache, "1234567890");
    let snapshot = micloudfs::catalog::snapshot_path(&db);
    assert!(snapshot.exists(), "no snapshot after the first mount");
    assert_eq!(tree_sources(&m), (0, 1));

    // A warm remount reads it and serves the very same tree. Its refresh finds nothing new,
    // which leaves the snapshot current: the next remount reads it again.
    m.mount(&[]);
    assert_eq!(tree_sources(&m), (1, 1));
    assert_eq!(inodes(&m.mnt), tree);
    refresh(&m);
    assert!(m.log().contains("refresh: nothing changed"), "{}", m.log());
    sha1sum_check(&m.path("albums"));
    unmount_and_wait(&m);
    m.mount(&[]);
    assert_eq!(tree_sources(&m), (2, 1));
    assert_eq!(inodes(&m.mnt), tree);
    unmount_and_wait(&m);

    // A damaged snapshot is not used: the tree is built (the same one) and a good snapshot
    // written again.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&snapshot, &bytes).unwrap();
    m.mount(&["--offline"]);
    assert_eq!(tree_sources(&m), (2, 2));
    assert!(m.log().contains("damaged"), "{}", m.log());
    assert_eq!(inodes(&m.mnt), tree);
    unmount_and_wait(&m);
    m.mount(&["--offline"]);
    assert_eq!(tree_sources(&m), (3, 2));
    unmount_and_wait(&m);

    // The catalog changed after the snapshot was written (a daemon killed between a
    // refresh's commit and its snapshot; here a plain SQL write): the snapshot is stale, and
    // the tree shows the catalog.
    let (victim, ino) = tree
        .iter()
        .find(|(p, _)| p.starts_with("albums/") && p.ends_with(".jpg"))
        .map(|(p, i)| (p.clone(), *i))
        .expect("a photo");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let changed = conn
        .execute(
            "UPDATE items SET album_name = 'renamed by the test.jpg' WHERE album_ino = ?1",
            [ino as i64],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    m.mount(&["--offline"]);
    assert_eq!(tree_sources(&m), (3, 3));
    assert!(
        m.log().contains("an older state of the catalog"),
        "{}",
        m.log()
    );
    let renamed = Path::new(&victim).with_file_name("renamed by the test.jpg");
    let now = inodes(&m.mnt);
    assert_eq!(now.get(renamed.to_str().unwrap()), Some(&ino));
    assert!(!now.contains_key(&victim));
    sha1sum_check(&m.path("by-date"));
}
