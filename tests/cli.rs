//! The command line as a user meets it: wrong flags, missing accounts, bad mount points,
//! the account file's mode, and `mount --demo` exactly as the README shows it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

fn stderr_of(cmd: &mut Command) -> (i32, String) {
    let out = run(cmd);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_wrong_flag_is_a_usage_error() {
    let (code, err) = stderr_of(Command::new(MICLOUDFS).args(["mount", "--no-such-flag", "/tmp"]));
    assert_eq!(code, 2);
    assert!(err.contains("--no-such-flag"), "{err}");
}

#[test]
fn mount_without_an_account_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // The mount point apart from the cache and config dirs (else that is the error).
    std::fs::create_dir(dir.path().join("mnt")).unwrap();
    let (code, err) = stderr_of(
        Command::new(MICLOUDFS)
            .arg("mount")
            .arg(dir.path().join("mnt"))
            .arg("--config-dir")
            .arg(dir.path().join("cfg"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache")),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("micloudfs login") && err.contains("--demo"),
        "{err}"
    );
}

#[test]
fn a_missing_mount_point_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = stderr_of(
        Command::new(MICLOUDFS)
            .arg("mount")
            .arg(dir.path().join("nope"))
            .arg("--demo")
            .arg("--cache-dir")
            .arg(dir.path().join("cache")),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("does not exist") && err.contains("mkdir"),
        "{err}"
    );
}

#[test]
fn a_bad_time_zone_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mnt")).unwrap();
    let (code, err) = stderr_of(
        Command::new(MICLOUDFS)
            .arg("mount")
            .arg(dir.path().join("mnt"))
            .args(["--demo", "--timezone", "Mars/Olympus"])
            .arg("--cache-dir")
            .arg(dir.path().join("cache")),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("Mars/Olympus") && err.contains("IANA"),
        "{err}"
    );
}

#[test]
fn login_stores_a_private_account_and_refuses_a_bad_pass_token() {
    let sim = Sim::spawn(&["--items", "30"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let (code, err) = stderr_of(&mut login_command(&sim, "V1:wrong", &cfg));
    assert_eq!(code, 1);
    assert!(
        err.contains("passToken") && err.contains("micloudfs login"),
        "{err}"
    );
    assert!(
        !cfg.join("accounts").exists(),
        "a refused account was stored"
    );

    run_ok(&mut login_command(&sim, "V1:sim-pass-token", &cfg));
    let mode = std::fs::metadata(cfg.join("accounts/1234567890.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// The README's quick start: `mkdir -p ~/gallery && micloudfs mount --demo ~/gallery`.
#[test]
fn mount_demo_works_as_the_readme_says() {
    let m = Mount::tempdirs();
    let out = run_ok(
        Command::new(MICLOUDFS)
            .args(["mount", "--demo"])
            .arg(&m.mnt)
            .env("MICLOUDFS_CACHE_DIR", &m.cache),
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("mounted the demo gallery"), "{said}");
    let albums: Vec<String> = std::fs::read_dir(m.path("albums"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for want in ["Camera", "Screenshots", "SHA1SUMS"] {
        assert!(
            albums.iter().any(|a| a == want),
            "albums/ lacks {want}: {albums:?}"
        );
    }
    assert!(m.path("by-date/SHA1SUMS").exists());
    sha1sum_check(&m.path("albums"));
    m.unmount();
}

#[test]
fn a_bad_cache_size_is_a_usage_error_that_shows_the_format() {
    let (code, err) = stderr_of(Command::new(MICLOUDFS).args([
        "mount",
        "--demo",
        "--max-cache-size",
        "lots",
        "/tmp",
    ]));
    assert_eq!(code, 2);
    assert!(
        err.contains("\"lots\" is not a size") && err.contains("GiB"),
        "{err}"
    );
}
