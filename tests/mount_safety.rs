//! End-to-end: safety around the mount point and the daemon's life (issue 10, points 4, 5,
//! 6 and 8): `unmount` takes down only micloudfs mounts, a non-empty or overlapping mount
//! point is refused, two racing mounts give one mount, signals that should not kill a daemon
//! don't, Ctrl-C during the first listing leaves nothing behind, the cache dir and log are
//! private, and a log that cannot be written does not stop the reads.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// A tmpfs mounted for a test, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(path),
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).output();
    }
}

/// Every `micloudfs mount` process naming `mnt` (parent and daemon alike).
fn mount_processes(mnt: &Path) -> Vec<i32> {
    let want = mnt.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_mount = args.first().is_some_and(|a| a.ends_with(b"micloudfs"))
            && args.get(1) == Some(&&b"mount"[..]);
        if is_mount && !is_gone_or_zombie(pid) && args.contains(&want) {
            pids.push(pid);
        }
    }
    pids
}

fn kill(pid: i32, sig: libc::c_int) {
    // SAFETY: signalling a process this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {pid}");
}

/// One photo read through the mount matches the emulator's SHA-1.
fn assert_one_file_reads_right(sim: &Sim, m: &Mount) {
    let items = visible(&sim.manifest());
    let files = walk(&m.path("albums"));
    assert_same_items(&files, &items, true);
}

/// A second emulator of the same gallery whose every response waits `ms`: a slow listing.
fn slow_twin(seed: &str, ms: &str) -> Sim {
    Sim::spawn(&["--seed", seed, "--items", "20", "--latency-ms", ms])
}

#[test]
fn unmount_refuses_a_tmpfs_and_leaves_it_mounted() {
    require_fuse();
    let dir = tempfile::tempdir().unwrap();
    let t = Tmpfs::mount(&dir.path().join("tmpfs"), "1m");
    std::fs::write(t.path.join("keep"), b"still here").unwrap();
    for lazy in [false, true] {
        let mut cmd = Command::new(MICLOUDFS);
        cmd.arg("unmount");
        if lazy {
            cmd.arg("--lazy");
        }
        let out = run_fails(cmd.arg(&t.path));
        let err = stderr_of(&out);
        assert!(
            err.contains("is not a micloudfs mount but a tmpfs file system")
                && err.contains("use umount"),
            "{err}"
        );
        assert!(
            is_mounted(&t.path),
            "the tmpfs was unmounted (lazy: {lazy})"
        );
    }
    assert_eq!(std::fs::read(t.path.join("keep")).unwrap(), b"still here");
}

#[test]
fn a_non_empty_mount_point_is_refused_unless_allowed() {
    let sim = Sim::spawn(&["--seed", "31", "--items", "20"]);
    let m = Mount::tempdirs();
    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &m.config));
    std::fs::write(m.mnt.join("notes.txt"), b"mine").unwrap();
    let out = run_fails(&mut m.mount_command());
    let err = stderr_of(&out);
    assert!(
        err.contains("is not empty")
            && err.contains("notes.txt")
            && err.contains("--allow-non-empty"),
        "{err}"
    );
    assert!(!is_mounted(&m.mnt));

    m.mount(&["--allow-non-empty"]);
    assert!(
        !m.path("notes.txt").exists(),
        "the mount shows its own tree"
    );
    assert_one_file_reads_right(&sim, &m);
    m.unmount();
    assert_eq!(std::fs::read(m.mnt.join("notes.txt")).unwrap(), b"mine");
}

#[test]
fn overlapping_paths_are_refused_with_a_clear_message() {
    let sim = Sim::spawn(&["--seed", "32", "--items", "20"]);
    let m = Mount::tempdirs();
    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &m.config));
    let mount = |mnt: &Path, cache: &Path, config: &Path| {
        let out = run_fails(
            Command::new(MICLOUDFS)
                .arg("mount")
                .arg(mnt)
                .arg("--cache-dir")
                .arg(cache)
                .arg("--config-dir")
                .arg(config),
        );
        assert!(!is_mounted(mnt));
        stderr_of(&out)
    };

    // The mount point inside the cache dir.
    std::fs::create_dir_all(m.cache.join("inner")).unwrap();
    let err = mount(&m.cache.join("inner"), &m.cache, &m.config);
    assert!(err.contains("is inside the cache dir"), "{err}");
    // The mount point inside the config dir.
    std::fs::create_dir_all(m.config.join("inner")).unwrap();
    let err = mount(&m.config.join("inner"), &m.cache, &m.config);
    assert!(err.contains("is inside the config dir"), "{err}");
    // The cache dir inside the mount point (refused before anything is created there).
    let err = mount(&m.mnt, &m.mnt.join("cache"), &m.config);
    assert!(
        err.contains("the cache dir") && err.contains("is inside the mount point"),
        "{err}"
    );
    assert!(!m.mnt.join("cache").exists());
    // The config dir inside the mount point, through a symlink.
    let link = m.dir.path().join("link-to-mnt");
    std::os::unix::fs::symlink(&m.mnt, &link).unwrap();
    let err = mount(&m.mnt, &m.cache, &link.join("config"));
    assert!(
        err.contains("the config dir") && err.contains("is inside the mount point"),
        "{err}"
    );
    // The mount point is the cache dir.
    let err = mount(&m.mnt, &m.mnt, &m.config);
    assert!(err.contains("is the cache dir itself"), "{err}");
    // And the sane layout mounts.
    m.mount(&[]);
}

#[test]
fn the_cache_dir_and_log_are_private_whatever_the_umask() {
    let sim = Sim::spawn(&["--seed", "33", "--items", "20"]);
    let m = Mount::tempdirs();
    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &m.config));
    let mount_with_umask_000 = || {
        let cmd = m.mount_command();
        let args: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect();
        run_ok(
            Command::new("sh")
                .arg("-c")
                .arg(format!("umask 000 && exec {}", args.join(" "))),
        );
        assert!(is_mounted(&m.mnt));
    };
    mount_with_umask_000();
    let log = m.cache.join("micloudfs.log");
    assert_eq!(mode_of(&m.cache), 0o700);
    assert_eq!(mode_of(&log), 0o600);
    assert_one_file_reads_right(&sim, &m);
    m.unmount();

    // What an earlier version left readable is made private at the next mount.
    std::fs::set_permissions(&m.cache, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    mount_with_umask_000();
    assert_eq!(mode_of(&m.cache), 0o700);
    assert_eq!(mode_of(&log), 0o600);
}

#[test]
fn sighup_and_sigusr1_leave_the_mount_working() {
    let sim = Sim::spawn(&["--seed", "34", "--items", "20"]);
    let m = Mount::of_sim(&sim, &[]);
    let pid = daemon_pid(&m.mnt).expect("the daemon process");
    for (sig, name) in [(libc::SIGHUP, "SIGHUP"), (libc::SIGUSR1, "SIGUSR1")] {
        kill(pid, sig);
        wait_until(
            &format!("the log to note {name}"),
            Duration::from_secs(30),
            // SIGHUP is ignored; SIGUSR1 asks for a catalog refresh (`micloudfs refresh`).
            || m.log().contains(&format!("{name} received")),
        );
    }
    assert!(is_mounted(&m.mnt), "log:\n{}", m.log());
    assert_eq!(
        mount_processes(&m.mnt),
        [pid],
        "the daemon is alive; log:\n{}",
        m.log()
    );
    assert_one_file_reads_right(&sim, &m);

    // A foreground mount whose terminal closes (SIGHUP) stays too; SIGTERM still ends it.
    m.unmount();
    let fg_log = m.dir.path().join("foreground.log");
    let mut child = m
        .mount_command()
        .arg("-f")
        .stderr(std::fs::File::create(&fg_log).unwrap())
        .spawn()
        .unwrap();
    let fg = || std::fs::read_to_string(&fg_log).unwrap_or_default();
    wait_until("the foreground mount", Duration::from_secs(30), || {
        is_mounted(&m.mnt)
    });
    kill(child.id() as i32, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP ended a -f mount:\n{}",
        fg()
    );
    assert_one_file_reads_right(&sim, &m);
    assert!(fg().contains("SIGHUP received and ignored"), "{}", fg());
    kill(child.id() as i32, libc::SIGTERM);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}:\n{}", fg());
    assert!(!is_mounted(&m.mnt));
}

#[test]
fn sigint_to_mount_during_a_slow_listing_leaves_no_mount_and_no_daemon() {
    // No rotation: the twin must accept the stored passToken (see below).
    let sim = Sim::spawn(&[
        "--seed",
        "35",
        "--items",
        "20",
        "--account",
        "id=1234567890,rotate=off",
    ]);
    let slow = slow_twin("35", "1500");
    let m = Mount::tempdirs();
    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &m.config));
    let child = m
        .mount_command()
        .args(["--api-base", &slow.base_url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let parent = child.id() as i32;
    // The daemon is listing once its log says so (and the parent still waits).
    wait_until("the daemon to list", Duration::from_secs(30), || {
        m.log().contains("listing the gallery")
    });
    let daemon: Vec<i32> = mount_processes(&m.mnt)
        .into_iter()
        .filter(|p| *p != parent)
        .collect();
    assert_eq!(daemon.len(), 1, "one daemon besides the waiting parent");
    kill(parent, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("interrupted") && err.contains("nothing is mounted"),
        "{err}"
    );
    // By the time `mount` returned, the daemon was gone: nothing can mount later.
    assert!(
        mount_processes(&m.mnt).is_empty(),
        "a daemon survived: {:?}",
        mount_processes(&m.mnt)
    );
    assert!(!is_mounted(&m.mnt));
    assert!(
        m.log()
            .contains("SIGINT received before the mount was ready"),
        "{}",
        m.log()
    );

    // SIGTERM to a foreground mount during the listing: the same.
    let mut fg = m
        .mount_command()
        .args(["--api-base", &slow.base_url, "-f"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let listed_before = slow.requests_under("/gallery/");
    wait_until("the -f mount to list", Duration::from_secs(30), || {
        slow.requests_under("/gallery/") > listed_before
    });
    kill(fg.id() as i32, libc::SIGTERM);
    let status = fg.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(!is_mounted(&m.mnt));
    assert!(mount_processes(&m.mnt).is_empty());
}

#[test]
fn two_racing_mounts_on_one_folder_give_exactly_one_mount() {
    // The login's passToken must work on the twin too: no rotation (the twin would not know
    // a token minted here).
    let sim = Sim::spawn(&[
        "--seed",
        "36",
        "--items",
        "20",
        "--account",
        "id=1234567890,rotate=off",
    ]);
    let slow = slow_twin("36", "700");
    let m = Mount::tempdirs();
    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &m.config));
    let racer = |cache: &str| {
        Command::new(MICLOUDFS)
            .arg("mount")
            .arg(&m.mnt)
            .args(["--api-base", &slow.base_url])
            .arg("--config-dir")
            .arg(&m.config)
            .arg("--cache-dir")
            .arg(m.dir.path().join(cache))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Both pass the early check: the listing takes seconds on this link.
    let (a, b) = (racer("cache-a"), racer("cache-b"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let wins = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(
        wins,
        1,
        "exactly one mount must win:\nA: {}\nB: {}",
        stderr_of(&a),
        stderr_of(&b)
    );
    let loser = if a.status.success() { &b } else { &a };
    assert_eq!(loser.status.code(), Some(1));
    let err = stderr_of(loser);
    assert!(
        err.contains("was mounted by another micloudfs while the gallery was being listed"),
        "{err}"
    );
    assert!(is_mounted(&m.mnt));
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let target = m.mnt.canonicalize().unwrap();
    let count = mounts
        .lines()
        .filter(|l| l.split(' ').nth(1) == Some(target.to_str().unwrap()))
        .count();
    assert_eq!(count, 1, "stacked mounts:\n{mounts}");
    assert_eq!(mount_processes(&m.mnt).len(), 1, "one daemon serves it");
    let files = walk(&m.path("albums"));
    assert_same_items(&files, &visible(&slow.manifest()), true);
}

#[test]
fn a_daemon_whose_log_cannot_be_written_keeps_serving_reads() {
    let sim = Sim::spawn(&["--seed", "37", "--items", "20"]);
    // The log lives on a tiny tmpfs that is full; the cache's objects stay on a roomy disk.
    // (Made before the mount so that it is unmounted after it.)
    let tdir = tempfile::tempdir().unwrap();
    let full = Tmpfs::mount(&tdir.path().join("full"), "64k");
    let m = Mount::tempdirs();
    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &m.config));
    let log = full.path.join("micloudfs.log");
    std::fs::write(&log, b"").unwrap();
    let filler = full.path.join("filler");
    let _ = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", filler.display()))
        .arg("bs=4k")
        .stderr(Stdio::null())
        .status();
    assert!(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &[b'x'; 8192]))
            .is_err(),
        "the tmpfs must be full"
    );
    std::fs::create_dir_all(&m.cache).unwrap();
    std::os::unix::fs::symlink(&log, m.cache.join("micloudfs.log")).unwrap();

    // Debug logging: a line for every FUSE request, every one of them fails to be written.
    run_ok(m.mount_command().env("MICLOUDFS_LOG", "debug"));
    assert!(is_mounted(&m.mnt));
    let pid = daemon_pid(&m.mnt).expect("the daemon process");
    let items = visible(&sim.manifest());
    for _ in 0..3 {
        let copy = tempfile::tempdir().unwrap();
        rsync_copy(&m.path("albums"), copy.path(), &[]);
        assert_same_items(&walk(copy.path()), &items, true);
        sha1sum_check(copy.path());
    }
    assert_eq!(mount_processes(&m.mnt), [pid], "the daemon is alive");

    // Room again: the next line says how many were lost.
    std::fs::remove_file(&filler).unwrap();
    wait_until(
        "the log to report lost lines",
        Duration::from_secs(20),
        || {
            let _ = std::fs::read_dir(m.path("by-date"));
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("could not be written and were dropped (No space left on device")
        },
    );
    m.unmount();
}
