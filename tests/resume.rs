//! End to end: a large file half-fetched through the mount resumes after a remount from the
//! parts on disk (issue 12 item 5), against `micloud-sim --range on` with a slow link.
//!
//! - `head -c` of the first 32 MiB of an 80 MiB video, then (once the range map lists those
//!   parts) SIGKILL of the daemon; the next mount (same cache dir) gives `sha1sum` the right
//!   SHA-1, and the emulator's count of bytes served shows the second mount moved only the
//!   rest (asserted on bytes, not time);
//! - the same with a clean unmount, and a byte of a kept part flipped on disk between the
//!   mounts: still the right SHA-1 (that part fails its XXH3-128 in the map, is fetched
//!   again, and the log says why);
//! - `cache check` lists the resumable download and `--repair` keeps it.
//!
//! (Videos above 64 MiB stream to a reader that is not copying a folder, so `head` gets its
//! bytes without waiting for the whole file.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use sha1::{Digest, Sha1};

const MIB: u64 = 1 << 20;
const VIDEO: u64 = 80 * MIB;
const HEAD: u64 = 32 * MIB;

/// A gallery folder with `Video/video.mp4` of [`VIDEO`] bytes, and the emulator serving it
/// with Range at 16 MB/s in all (the whole file takes 5 s).
fn video_sim(work: &Path, seed: u64) -> (Sim, Vec<u8>) {
    let gallery = work.join("gallery");
    let dir = gallery.join("Video");
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = noise(seed, VIDEO as usize);
    std::fs::write(dir.join("video.mp4"), &bytes).unwrap();
    let sim = Sim::spawn(&[
        "--from-dir",
        gallery.to_str().unwrap(),
        "--range",
        "on",
        "--bandwidth-total",
        "16MB",
    ]);
    (sim, bytes)
}

fn bytes_served(sim: &Sim) -> u64 {
    sim.stats()["bytes_served"].as_u64().expect("bytes_served")
}

/// `head -c HEAD` of the video through the mount: its bytes.
fn head_of(video: &Path) -> Vec<u8> {
    let out = run_ok(
        Command::new("head")
            .arg("-c")
            .arg(HEAD.to_string())
            .arg(video),
    );
    out.stdout
}

fn partial_files(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache.join("partial"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The part numbers the range map in `cache` lists (read raw: 64-byte header, then 32-byte
/// records starting with the part number, little-endian; the checks are the daemon's job).
fn map_parts(cache: &Path) -> Vec<u32> {
    let Some(map) = partial_files(cache)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "map"))
    else {
        return Vec::new();
    };
    let bytes = std::fs::read(map).unwrap_or_default();
    bytes
        .get(64..)
        .unwrap_or(&[])
        .chunks_exact(32)
        .map(|r| u32::from_le_bytes([r[0], r[1], r[2], r[3]]))
        .collect()
}

fn sha1sum(path: &Path) -> String {
    let out = run_ok(Command::new("sha1sum").arg(path));
    stdout_of(&out)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// `head -c` of the video through the mount, checked; the video is not complete then.
fn read_head(m: &Mount, original: &[u8]) {
    let head = head_of(&m.path("albums/Video/video.mp4"));
    assert!(head == original[..HEAD as usize], "the head read is wrong");
    // objects/<first 2 hex>/<sha1>: the 256 folders are there from the start.
    let objects: Vec<_> = std::fs::read_dir(m.cache.join("objects"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|prefix| {
            std::fs::read_dir(prefix.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .collect();
    assert!(
        objects.is_empty(),
        "the video must not be complete after its head (the link is too fast for this test)"
    );
}

#[test]
fn a_video_half_read_then_sigkill_resumes_after_the_remount_and_moves_only_the_rest() {
    let work = tempfile::tempdir().unwrap();
    let (sim, original) = video_sim(work.path(), 71);
    let want = hex::encode(Sha1::digest(&original));
    let m = Mount::of_sim(&sim, &[]);
    read_head(&m, &original);
    // The parts `head` read are recorded once synced (a part still in flight at the kill
    // would be fetched again, rightly): wait for them, so that the bound below is exact.
    let head_parts = (HEAD / (4 * MIB)) as u32;
    wait_until(
        "the head's parts in the map",
        Duration::from_secs(30),
        || {
            let listed = map_parts(&m.cache);
            (0..head_parts).all(|k| listed.contains(&k))
        },
    );
    eprintln!("parts recorded at the kill: {:?}", map_parts(&m.cache));
    let pid = daemon_pid(&m.mnt).expect("the daemon");
    // SAFETY: killing the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until("the daemon to end", Duration::from_secs(30), || {
        is_gone_or_zombie(pid)
    });
    run_ok(
        Command::new(MICLOUDFS)
            .args(["unmount", "--lazy"])
            .arg(&m.mnt),
    );
    let kept = partial_files(&m.cache);
    assert_eq!(kept.len(), 2, "a .part and its .map: {kept:?}");

    let before = bytes_served(&sim);
    m.mount(&[]);
    assert_eq!(sha1sum(&m.path("albums/Video/video.mp4")), want);
    let moved = bytes_served(&sim) - before;
    eprintln!(
        "second mount moved {:.1} MiB of the {} MiB video ({:.0} %)",
        moved as f64 / MIB as f64,
        VIDEO / MIB,
        100.0 * moved as f64 / VIDEO as f64
    );
    // The head was on disk: at most the rest moves (and a MiB of slack for a confirmation).
    assert!(
        moved <= VIDEO - HEAD + MIB,
        "the second mount moved {moved} bytes of {VIDEO}"
    );
    let log = m.log();
    assert!(
        log.contains("resuming a download from the parts on disk"),
        "{log}"
    );
    // Published: nothing left in partial/, and the object is served from the cache.
    assert!(partial_files(&m.cache).is_empty());
    let again = bytes_served(&sim);
    assert_eq!(sha1sum(&m.path("albums/Video/video.mp4")), want);
    assert_eq!(bytes_served(&sim), again, "a cached file moves nothing");
}

#[test]
fn a_kept_part_damaged_between_mounts_is_fetched_again_and_the_file_is_right() {
    let work = tempfile::tempdir().unwrap();
    let (sim, original) = video_sim(work.path(), 72);
    let want = hex::encode(Sha1::digest(&original));
    let m = Mount::of_sim(&sim, &[]);
    read_head(&m, &original);
    m.unmount();
    assert!(!is_mounted(&m.mnt));

    // `cache check` sees the resumable download and keeps it, with --repair too.
    let out = run_ok(
        Command::new(MICLOUDFS)
            .args(["cache", "check", "--repair", "--cache-dir"])
            .arg(&m.cache),
    );
    let said = stdout_of(&out);
    assert!(said.contains("1 resumable download(s) kept"), "{said}");
    let kept = partial_files(&m.cache);
    assert_eq!(kept.len(), 2, "{kept:?}");

    // A byte inside the third part (8-12 MiB, read by `head`, so on disk) flipped.
    let data = kept
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "part"))
        .expect("the .part");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .open(data)
            .unwrap();
        let at = 10 * MIB + 12345;
        let mut x = [0u8; 1];
        f.read_exact_at(&mut x, at).unwrap();
        assert_eq!(x[0], original[at as usize], "the head is on disk");
        f.write_all_at(&[x[0] ^ 0x40], at).unwrap();
    }

    let before = bytes_served(&sim);
    m.mount(&[]);
    assert_eq!(sha1sum(&m.path("albums/Video/video.mp4")), want);
    let moved = bytes_served(&sim) - before;
    eprintln!(
        "second mount moved {:.1} MiB of the {} MiB video",
        moved as f64 / MIB as f64,
        VIDEO / MIB
    );
    let log = m.log();
    assert!(
        log.contains("a part of a resumable download is damaged on disk"),
        "{log}"
    );
    // Found by the part's digest in the map, not by a failed read.
    assert!(log.contains("its XXH3-128 is"), "{log}");
    // The damaged part (4 MiB) is fetched again, the rest of the head is not.
    assert!(moved >= 4 * MIB, "moved {moved}");
    assert!(
        moved <= VIDEO - HEAD + 4 * MIB + MIB,
        "the second mount moved {moved} bytes of {VIDEO}"
    );
}
