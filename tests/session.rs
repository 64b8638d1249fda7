//! The session of a real mount on a real emulator: tokens that expire under a long parallel
//! copy, a session that dies (revoked passToken) and comes back after a new `micloudfs login`
//! without a remount, and secrets that never reach a log or a terminal.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const USER: &str = "1234567890";
const PASS: &str = "V1:sim-pass-token";

/// The regular files of a mounted tree, without reading them, sorted.
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = all_paths(root)
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .filter(|p| p.file_name().is_some_and(|n| n != "SHA1SUMS"))
        .collect();
    files.sort();
    files
}

/// (sha1, size) of every item, sorted: what a full copy must hold.
fn truth(items: &[SimItem]) -> Vec<(String, u64)> {
    let mut want: Vec<(String, u64)> = items.iter().map(|i| (i.sha1.clone(), i.size)).collect();
    want.sort();
    want
}

#[test]
fn acceptance_eight_parallel_readers_outlast_the_token_with_one_exchange_per_expiry() {
    // ~4 MB through 8 connections of 64 KB/s each, 150 ms per response: well over 10 s. The
    // session is ended three times meanwhile (through the control API, as the end of the
    // token's lifetime would), each time while the readers are still at work.
    let sim = Sim::spawn(&[
        "--seed",
        "31",
        "--items",
        "48",
        "--latency-ms",
        "150",
        "--bandwidth-per-conn",
        "64KB",
    ]);
    let items = visible(&sim.manifest());
    let m = Mount::of_sim(&sim, &[]);
    let (exchanges0, unauthorized0, gallery0) = (
        sim.stat("token_exchanges"),
        sim.stat("unauthorized"),
        sim.requests_under("/gallery/"),
    );

    let start = Instant::now();
    let root = m.path("albums");
    let readers = std::thread::spawn(move || parallel_sha1(&root, 8));
    let mut ended = 0u64;
    for quarter in 1..=3 {
        let due = (items.len() * quarter / 4) as u64;
        wait_until("the readers to progress", Duration::from_secs(600), || {
            sim.stat("downloads") >= due
        });
        assert!(
            !readers.is_finished(),
            "the readers finished before the session ended: the test proves nothing"
        );
        assert!(sim.expire_sessions(USER) >= 1);
        ended += 1;
    }
    let got = readers.join().expect("the readers");
    let took = start.elapsed();

    let exchanges = sim.stat("token_exchanges") - exchanges0;
    let unauthorized = sim.stat("unauthorized") - unauthorized0;
    let gallery = sim.requests_under("/gallery/") - gallery0;
    let bytes: u64 = items.iter().map(|i| i.size).sum();
    println!(
        "acceptance: {} files, {bytes} bytes in {took:.1?} with 8 readers; {ended} expiries, \
         {exchanges} token exchanges, {unauthorized} HTTP 401, {gallery} gallery requests",
        got.len()
    );
    assert_eq!(got, truth(&items), "the copy is not byte-exact");
    // The premise: requests met an ended session.
    assert!(unauthorized >= 1, "no request met an ended session");
    // One exchange per expiry at most, however many readers met it at once.
    assert!(
        (1..=ended).contains(&exchanges),
        "{exchanges} exchanges for {ended} expiries"
    );
    assert!(
        exchanges * 4 <= gallery,
        "{exchanges} exchanges for only {gallery} gallery requests"
    );
}

#[test]
fn a_dead_session_keeps_the_cache_and_a_new_login_revives_the_running_mount() {
    let sim = Sim::spawn(&["--seed", "33", "--items", "30"]);
    let items = visible(&sim.manifest());
    let m = Mount::of_sim(&sim, &[]);
    let pid = daemon_pid(&m.mnt).expect("the daemon's pid");
    let files = files_under(&m.path("albums"));
    assert_eq!(files.len(), items.len());
    let sha1_of = |p: &Path| xattr(p, "user.micloud.sha1");
    // Files read to their end one after another are a copy, and the mount fetches the next
    // files of their folder ahead: the uncached files are taken from other folders.
    let first_dir = files[0].parent().map(Path::to_path_buf);
    let (same, others): (Vec<_>, Vec<_>) = files
        .iter()
        .cloned()
        .partition(|f| f.parent().map(Path::to_path_buf) == first_dir);
    let cached = &same[..3.min(same.len())];
    let uncached = &others[..];
    assert!(uncached.len() >= 4, "the gallery has files in two folders");
    for f in cached {
        assert_eq!(sha1_file(f), sha1_of(f));
    }

    // A web log-out: every passToken of the account dies, and so do its sessions.
    sim.change_account(&format!("id={USER},revoked"));
    assert!(sim.expire_sessions(USER) >= 1);

    // The time bounds below are guards against a hang (DESIGN §6: a dead session fails reads
    // within a bounded time), not measurements; generous for a loaded machine.
    let t = Instant::now();
    let err = std::fs::read(&uncached[0]).expect_err("an uncached file read without a session");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // Dead: the next failure comes at once, without asking the passport again (no new
    // exchange is what shows it).
    let exchanges = sim.stat("token_exchanges");
    let t = Instant::now();
    let err = std::fs::read(&uncached[1]).expect_err("still dead");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(sim.stat("token_exchanges"), exchanges);
    wait_until(
        "the log to say `micloudfs login`",
        Duration::from_secs(5),
        || {
            m.log()
                .lines()
                .any(|l| l.contains("micloudfs login") && l.contains("ERROR"))
        },
    );
    // What is cached, and the tree itself, stay.
    for f in cached {
        assert_eq!(sha1_file(f), sha1_of(f), "{}", f.display());
    }
    assert_eq!(files_under(&m.path("albums")), files);
    assert_eq!(files_under(&m.path("by-date")).len(), items.len());

    // The user logs in again (a new passToken); the running mount picks it up.
    sim.change_account(&format!(
        "id={USER},revoked=off,pass-token=V1:after-relogin"
    ));
    run_ok(&mut login_command(&sim, "V1:after-relogin", &m.config));
    let t = Instant::now();
    wait_until("the mount to resume", Duration::from_secs(10), || {
        std::fs::read(&uncached[0]).is_ok()
    });
    println!("revived {:?} after the new login", t.elapsed());
    for f in &uncached[..4] {
        assert_eq!(sha1_file(f), sha1_of(f), "{}", f.display());
    }
    assert_eq!(daemon_pid(&m.mnt), Some(pid), "the daemon was replaced");
    assert!(is_mounted(&m.mnt));
}

/// Every text a user or an admin could see: outputs of commands and the daemons' logs.
#[derive(Default)]
struct Transcript(Vec<(String, String)>);

impl Transcript {
    fn run(&mut self, what: &str, cmd: &mut Command) -> std::process::Output {
        let out = run_ok(cmd.env("MICLOUDFS_LOG", "trace"));
        self.0.push((format!("{what} stdout"), stdout_of(&out)));
        self.0.push((format!("{what} stderr"), stderr_of(&out)));
        out
    }

    fn add(&mut self, what: &str, text: String) {
        self.0.push((what.to_string(), text));
    }

    /// Asserts that no text holds `secret`, whole, percent-encoded, or its first 24 chars.
    fn assert_absent(&self, label: &str, secret: &str) {
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let head: String = secret.chars().take(24).collect();
        for (what, text) in &self.0 {
            for needle in [secret, encoded.as_str(), head.as_str()] {
                assert!(!text.contains(needle), "{label} appears in {what}");
            }
        }
    }

    /// The longest run of base64 characters in any text (a serviceToken is 324 of them).
    fn longest_base64_run(&self) -> (usize, String) {
        let mut best = (0, String::new());
        for (what, text) in &self.0 {
            let mut run = 0;
            for b in text.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') {
                    run += 1;
                    if run > best.0 {
                        best = (run, what.clone());
                    }
                } else {
                    run = 0;
                }
            }
        }
        best
    }
}

#[test]
fn no_secret_reaches_a_log_or_a_terminal_and_the_config_dir_is_private() {
    // A second account (222) for the pasted cookie: expiring 1234567890's sessions below
    // must not kill it.
    let sim = Sim::spawn(&[
        "--seed",
        "35",
        "--items",
        "24",
        "--token-ttl",
        "30",
        "--account",
        "id=222,pass-token=V1:b",
    ]);
    let items = visible(&sim.manifest());
    let m = Mount::tempdirs();
    let config = m.config.clone();
    let mut seen = Transcript::default();
    let mut secrets: Vec<String> = vec![PASS.to_string(), "V1:b".to_string()];

    // Sessions of the same account from raw login chains, and one pasted as a cookie.
    for _ in 0..2 {
        secrets.push(sim.fresh_service_token(USER, PASS));
    }
    let pasted = sim.fresh_service_token("222", "V1:b");
    secrets.push(pasted.clone());

    seen.run(
        "login p",
        login_command(&sim, PASS, &config).args(["--account", "p"]),
    );
    seen.run(
        "login --cookie",
        &mut cookie_login_command(
            &sim,
            &format!("userId=222; serviceToken={pasted}"),
            &config,
            &["--account", "c"],
        ),
    );
    let cookie_token = || {
        stored_account(&config, "c")["service_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    secrets.push(cookie_token());
    seen.run("whoami c", &mut cli(&config, &["whoami", "--account", "c"]));
    secrets.push(cookie_token());
    seen.run("whoami p", &mut cli(&config, &["whoami", "--account", "p"]));
    seen.run("accounts", &mut cli(&config, &["accounts"]));

    // The passToken account mounted at trace level; a copy; every session killed; more reads
    // (a 401, a fresh exchange).
    seen.run("mount p", m.mount_command().args(["--account", "p", "-v"]));
    let files = files_under(&m.path("albums"));
    let (first, rest) = files.split_at(files.len() / 2);
    for f in first {
        std::fs::read(f).unwrap();
    }
    let (exchanges, unauthorized) = (sim.stat("token_exchanges"), sim.stat("unauthorized"));
    assert!(sim.expire_sessions(USER) >= 1);
    for f in rest {
        std::fs::read(f).unwrap();
    }
    assert!(sim.stat("unauthorized") > unauthorized, "no 401 was forced");
    assert!(
        sim.stat("token_exchanges") > exchanges,
        "no refresh after the 401"
    );
    assert_eq!(parallel_sha1(&m.path("albums"), 4), truth(&items));

    // The cookie account mounted too, renewed every second (token_refresh 5 s / 5) even while
    // idle; every token it keeps in its account file is a secret. Time-based on purpose: the
    // idle renewal is a timer of the daemon, so the test watches it for 4 s.
    let mut m2 = Mount::tempdirs();
    m2.config = config.clone();
    seen.run(
        "mount c",
        m2.mount_command()
            .args(["--account", "c", "-v", "--token-refresh", "5"]),
    );
    let renewals = sim.stat("auto_renewals");
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let t = cookie_token();
        if !secrets.contains(&t) {
            secrets.push(t);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nobody read anything meanwhile: the renewals kept an idle mount alive.
    assert!(
        sim.stat("auto_renewals") >= renewals + 2,
        "the idle cookie mount did not renew"
    );
    let some = files_under(&m2.path("albums"))[0].clone();
    assert_eq!(sha1_file(&some), xattr(&some, "user.micloud.sha1"));

    m.unmount();
    m2.unmount();
    seen.add("daemon log p", m.log());
    seen.add("daemon log c", m2.log());
    let log_bytes: usize = seen.0.iter().map(|(_, t)| t.len()).sum();
    println!(
        "checked {} texts ({log_bytes} bytes) for {} secrets",
        seen.0.len(),
        secrets.len()
    );
    assert!(
        m.log().contains("TRACE"),
        "the daemon did not log at trace level"
    );

    for (i, s) in secrets.iter().enumerate() {
        seen.assert_absent(&format!("secret #{i}"), s);
    }
    // Tokens nobody can list here (those the passToken mount minted) are 324 base64
    // characters: no such run may appear anywhere.
    let (run, where_) = seen.longest_base64_run();
    println!("longest base64-like run: {run} characters, in {where_}");
    assert!(
        run < 100,
        "a token-like run of {run} characters in {where_}"
    );

    // The config dir: 0700, account files 0600, nothing readable by others.
    assert_eq!(mode_of(&config), 0o700);
    assert_eq!(mode_of(&config.join("accounts")), 0o700);
    for name in ["p", "c"] {
        assert_eq!(
            mode_of(&config.join(format!("accounts/{name}.json"))),
            0o600
        );
    }
    for p in all_paths(&config) {
        assert_eq!(
            mode_of(&p) & 0o077,
            0,
            "{} is open to others: {:o}",
            p.display(),
            mode_of(&p)
        );
    }
}
