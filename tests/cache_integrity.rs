//! End to end: never a wrong or missing byte, whatever the cache's disk does.
//!
//! - a cache on a small tmpfs and a gallery several times its size: `cp -r` and `rsync -a`
//!   copy every file right, the daemon stays up, and the log says when the disk was full;
//! - a byte flipped (or a file cut) in a cached object is never served after a remount, and
//!   `micloudfs cache check` finds it, `--repair` deletes it;
//! - the cache is private (0700 folders, 0600 files) under `umask 000`;
//! - names that differ only by Unicode normalisation (NFC/NFD) or case get distinct names.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use unicode_normalization::UnicodeNormalization;

/// A tmpfs of `mib` MiB mounted on `path`, unmounted on drop (declare it before the FUSE
/// mount that uses it, so that it is dropped after).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, mib: u32) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        run_ok(
            Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={mib}m,mode=0755"),
                    "tmpfs",
                ])
                .arg(path),
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// A folder for `micloud-sim --from-dir`: `albums` albums of `per_album` files whose sizes
/// cycle through `sizes_kib`. Returns the total bytes.
fn make_gallery(root: &Path, albums: usize, per_album: usize, sizes_kib: &[usize]) -> u64 {
    let mut total = 0;
    for a in 0..albums {
        let dir = root.join(format!("Album {a}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..per_album {
            let len = sizes_kib[(a * per_album + f) % sizes_kib.len()] * 1024;
            std::fs::write(
                dir.join(format!("IMG_{a:02}{f:03}.jpg")),
                noise((a * 1000 + f) as u64, len),
            )
            .unwrap();
            total += len as u64;
        }
    }
    total
}

fn statfs_ok(path: &Path) -> bool {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(path)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Every file of `copy` matches the emulator's listing, by name and SHA-1.
fn assert_copy_exact(copy: &Path, sim: &Sim) {
    sha1sum_check(copy);
    let listed = visible(&sim.manifest());
    let want: BTreeMap<String, u64> = listed.iter().map(|i| (i.sha1.clone(), i.size)).collect();
    let got = walk(copy);
    let files: Vec<_> = got
        .iter()
        .filter(|(p, _)| !p.ends_with("SHA1SUMS"))
        .collect();
    assert_eq!(files.len(), listed.len(), "every item was copied");
    for (path, facts) in files {
        assert_eq!(
            want.get(&facts.sha1),
            Some(&facts.size),
            "{path}: its bytes are not any listed item's"
        );
    }
}

/// A 24 MiB cache disk, a gallery of ~80 MB: the floor evicts, and files that cannot be
/// cached at all (most of the disk is taken by something else) are served from memory.
#[test]
fn a_full_cache_disk_never_yields_a_wrong_copy() {
    let work = tempfile::tempdir().unwrap();
    let gallery = work.path().join("gallery");
    // 1, 2, 3 and 5 MiB files: with 20 MiB of the 24 taken by a filler, the 5 MiB ones
    // never fit even after eviction, the smaller ones do.
    let total = make_gallery(&gallery, 3, 10, &[1024, 2048, 3072, 5120]);
    assert!(
        total > 3 * (24 << 20),
        "the gallery is several times the disk"
    );
    let sim = Sim::spawn(&["--from-dir", gallery.to_str().unwrap()]);
    let m = Mount::tempdirs();
    let _tmpfs = Tmpfs::mount(&m.cache, 24);
    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &m.config));
    m.mount(&[]);

    // 1. Only the floor: the cache evicts as it goes.
    let cp_dest = work.path().join("cp");
    run_ok(
        Command::new("cp")
            .arg("-r")
            .arg(m.path("albums"))
            .arg(&cp_dest),
    );
    assert_copy_exact(&cp_dest, &sim);
    assert!(statfs_ok(&m.mnt), "the daemon is up");

    // 2. Something else fills the disk: 20 of 24 MiB.
    m.unmount();
    for e in std::fs::read_dir(m.cache.join("objects"))
        .unwrap()
        .flatten()
    {
        std::fs::remove_dir_all(e.path()).unwrap();
    }
    std::fs::write(m.cache.join("filler"), noise(7, 20 << 20)).unwrap();
    m.mount(&[]);
    let rsync_dest = work.path().join("rsync");
    rsync_copy(&m.path("albums"), &rsync_dest, &[]);
    assert_copy_exact(&rsync_dest, &sim);
    assert!(statfs_ok(&m.mnt), "the daemon is up");
    let log = m.log();
    assert!(
        log.contains("the cache disk is full or failing"),
        "the log says the disk was full:\n{log}"
    );
    assert_eq!(
        log.matches("the cache disk is full or failing").count(),
        1,
        "said once, not once per file:\n{log}"
    );
    // Nothing half-written was published: every object is right.
    let check = run(Command::new(MICLOUDFS)
        .args(["cache", "check", "--cache-dir"])
        .arg(&m.cache));
    assert!(
        check.status.success(),
        "cache check: {}{}",
        stdout_of(&check),
        stderr_of(&check)
    );
}

/// The object files of the cache, by SHA-1 hex.
fn objects(cache: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for prefix in std::fs::read_dir(cache.join("objects")).unwrap().flatten() {
        for e in std::fs::read_dir(prefix.path()).unwrap().flatten() {
            out.insert(e.file_name().to_string_lossy().into_owned(), e.path());
        }
    }
    out
}

#[test]
fn a_damaged_cached_object_is_never_served() {
    let sim = Sim::spawn(&["--items", "40"]);
    let m = Mount::of_sim(&sim, &[]);
    let files: Vec<PathBuf> = all_paths(&m.path("albums"))
        .into_iter()
        .filter(|p| {
            p.is_file() && !p.ends_with("SHA1SUMS") && std::fs::metadata(p).unwrap().len() > 100
        })
        .take(3)
        .collect();
    assert_eq!(files.len(), 3);
    let want: Vec<String> = files.iter().map(|p| sha1_file(p)).collect();
    m.unmount();

    // Damage: a flipped byte, a file cut short, a file of the right size with other bytes.
    let objs = objects(&m.cache);
    for (i, sha1) in want.iter().enumerate() {
        let path = &objs[sha1];
        let mut bytes = std::fs::read(path).unwrap();
        match i {
            0 => {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x20;
            }
            1 => bytes.truncate(bytes.len() / 2),
            _ => bytes.iter_mut().for_each(|b| *b = 0),
        }
        std::fs::write(path, bytes).unwrap();
    }
    let check = run(Command::new(MICLOUDFS)
        .args(["cache", "check", "--cache-dir"])
        .arg(&m.cache));
    assert!(!check.status.success(), "cache check fails on damage");
    let report = stdout_of(&check);
    for sha1 in &want {
        assert!(report.contains(sha1.as_str()), "{sha1} reported:\n{report}");
    }
    assert!(
        stderr_of(&check).contains("cache check --repair"),
        "says what to do: {}",
        stderr_of(&check)
    );

    // The next daemon checks before serving: every file reads right.
    m.mount(&[]);
    for (p, sha1) in files.iter().zip(&want) {
        assert_eq!(
            &sha1_file(p),
            sha1,
            "{} read right after damage",
            p.display()
        );
    }
    let log = m.log();
    assert_eq!(
        log.matches("cached object damaged on disk").count(),
        3,
        "each damage is logged:\n{log}"
    );
    m.unmount();
    // What was fetched again is right on disk.
    let clean = run(Command::new(MICLOUDFS)
        .args(["cache", "check", "--cache-dir"])
        .arg(&m.cache));
    assert!(clean.status.success(), "{}", stdout_of(&clean));

    // --repair deletes what is wrong; the next read fetches it again.
    let objs = objects(&m.cache);
    let victim = &objs[&want[0]];
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[0] ^= 1;
    std::fs::write(victim, bytes).unwrap();
    let repair = run_ok(
        Command::new(MICLOUDFS)
            .args(["cache", "check", "--repair", "--cache-dir"])
            .arg(&m.cache),
    );
    assert!(
        stdout_of(&repair).contains("deleted"),
        "{}",
        stdout_of(&repair)
    );
    assert!(!victim.exists());
    m.mount(&[]);
    assert_eq!(sha1_file(&files[0]), want[0]);
}

#[test]
fn the_cache_is_private_under_umask_000() {
    let sim = Sim::spawn(&["--items", "10"]);
    let m = Mount::tempdirs();
    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &m.config));
    let mut cmd = m.mount_command();
    let line = format!(
        "umask 000; exec {} {}",
        MICLOUDFS,
        cmd.get_args()
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    cmd = Command::new("sh");
    run_ok(cmd.arg("-c").arg(line));
    assert!(is_mounted(&m.mnt));
    let file = all_paths(&m.path("albums"))
        .into_iter()
        .find(|p| p.is_file() && !p.ends_with("SHA1SUMS"))
        .unwrap();
    sha1_file(&file);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&m.cache), 0o700, "cache dir");
    for dir in ["objects", "tmp"] {
        assert_eq!(mode(&m.cache.join(dir)), 0o700, "{dir}");
    }
    let objs = objects(&m.cache);
    assert!(!objs.is_empty());
    for path in objs.values() {
        assert_eq!(mode(path), 0o600, "{}", path.display());
        assert_eq!(mode(path.parent().unwrap()), 0o700, "{}", path.display());
    }
    assert_eq!(mode(&m.cache.join("micloudfs.log")), 0o600, "the log");
}

/// The comparison key a normalisation- and case-insensitive file system uses.
fn fold(name: &str) -> String {
    name.nfd()
        .collect::<String>()
        .to_lowercase()
        .nfc()
        .collect()
}

#[test]
fn nfc_and_nfd_twins_get_distinct_names() {
    let sim = Sim::spawn(&["--items", "10"]);
    let spellings = [
        "Caf\u{e9}.jpg",
        "Cafe\u{301}.jpg",
        "CAF\u{c9}.JPG",
        "cafe\u{301}.jpg",
    ];
    for name in spellings {
        sim.post_json(
            "/_sim/upload",
            serde_json::json!({"albumId": "1", "fileName": name}),
        );
    }
    let m = Mount::of_sim(&sim, &[]);
    let names: Vec<String> = std::fs::read_dir(m.path("albums/Camera"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| fold(n).starts_with("caf\u{e9}"))
        .collect();
    assert_eq!(
        names.len(),
        spellings.len(),
        "all four are shown: {names:?}"
    );
    let folded: std::collections::BTreeSet<String> = names.iter().map(|n| fold(n)).collect();
    assert_eq!(
        folded.len(),
        names.len(),
        "distinct after NFC and case folding: {names:?}"
    );
    // The first keeps its name as the service spells it.
    assert!(names.iter().any(|n| n == spellings[0]), "{names:?}");
    // Every twin reads as its own item.
    let by_id: BTreeMap<String, String> = sim
        .manifest()
        .into_iter()
        .map(|i| (i.id.clone(), i.sha1.clone()))
        .collect();
    for n in &names {
        let p = m.path(&format!("albums/Camera/{n}"));
        assert_eq!(sha1_file(&p), by_id[&xattr_id(&p)], "{n}");
    }
}
