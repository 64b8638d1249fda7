//! Test harness for end-to-end tests: the emulator (`micloud-sim`, run in this test process
//! on its own runtime and reached over loopback TCP like any server), a real `micloudfs`
//! mount (FUSE, as the tests run as root with /dev/fuse), and helpers to compare what real
//! tools see with the emulator's own manifest (`GET /_sim/items`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use sha1::{Digest, Sha1};

pub const MICLOUDFS: &str = env!("CARGO_BIN_EXE_micloudfs");

/// `micloud-sim` on 127.0.0.1, with the binary's flags, stopped on drop.
///
/// It runs in the test process (the emulator crate is a dev-dependency), on a runtime of its
/// own, so a test thread blocked on the mount never stalls it; dropping it cuts every open
/// connection, as killing the process would.
pub struct Sim {
    pub base_url: String,
    handle: Option<micloud_sim::SimHandle>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Sim {
    /// The emulator `micloud-sim --listen 127.0.0.1:0 ARGS` would be; small bodies and no
    /// fingerprint cache file unless `args` say otherwise (the binary's defaults are realistic
    /// sizes and a cache in `~/.cache`).
    pub fn spawn(args: &[&str]) -> Sim {
        let has = |flag: &str| args.iter().any(|a| a.starts_with(flag));
        let mut argv = vec!["micloud-sim", "--listen", "127.0.0.1:0"];
        if !has("--sizes") {
            argv.extend(["--sizes", "small"]);
        }
        if !has("--data-dir") && !has("--no-cache") {
            argv.push("--no-cache");
        }
        argv.extend(args);
        let (config, listen) = micloud_sim::Args::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("bad emulator flags {args:?}: {e}"))
            .into_config();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("micloud-sim")
            .enable_all()
            .build()
            .expect("the emulator's runtime");
        let handle = runtime
            .block_on(micloud_sim::start(config, listen))
            .unwrap_or_else(|e| panic!("micloud-sim {args:?} cannot start: {e}"));
        Sim {
            base_url: handle.base_url(),
            handle: Some(handle),
            runtime: Some(runtime),
        }
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        self.call_json(reqwest::Method::GET, path, None)
    }

    /// POST a JSON body to the control API; its JSON answer (a 2xx is required).
    pub fn post_json(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        self.call_json(reqwest::Method::POST, path, Some(body))
    }

    fn call_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let url = format!("{}{}", self.base_url, path);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut req = reqwest::Client::new().request(method, &url);
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.to_string());
            }
            let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(resp.status().is_success(), "{url}: HTTP {}", resp.status());
            let body = resp.text().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not JSON: {e}: {body}"))
        })
    }

    /// Every item of the emulator, as it says.
    pub fn manifest(&self) -> Vec<SimItem> {
        let v = self.get_json("/_sim/items");
        let items = v
            .as_array()
            .or_else(|| v.get("items").and_then(|i| i.as_array()))
            .expect("/_sim/items is a list");
        items
            .iter()
            .map(|i| SimItem {
                id: match &i["id"] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                album_id: match &i["albumId"] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                file_name: i["fileName"].as_str().unwrap_or("").to_string(),
                size: i["size"].as_u64().expect("size"),
                sha1: i["sha1"].as_str().expect("sha1").to_string(),
                date_taken_ms: i["dateTaken"].as_i64().expect("dateTaken"),
            })
            .collect()
    }

    pub fn stats(&self) -> serde_json::Value {
        self.get_json("/_sim/stats")
    }

    /// Makes every request from now on go silent (the status, headers and at most the first
    /// 32 KiB of its body, then nothing for `secs`): the emulator runs in this process, so
    /// this stands for a service stopped with SIGSTOP or a dead network.
    pub fn go_silent(&self, secs: u64) {
        self.post_json(
            "/_sim/faults",
            serde_json::json!({"rates": {"stall": 100}, "stallSecs": secs}),
        );
    }

    /// Ends [`Sim::go_silent`] for new requests.
    pub fn speak_again(&self) {
        self.post_json("/_sim/faults", serde_json::json!({"rates": {"stall": 0}}));
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        drop(self.handle.take());
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimItem {
    pub id: String,
    pub album_id: String,
    pub file_name: String,
    pub size: u64,
    pub sha1: String,
    pub date_taken_ms: i64,
}

/// The items a default mount shows (the private album 1000 is hidden).
pub fn visible(items: &[SimItem]) -> Vec<SimItem> {
    items
        .iter()
        .filter(|i| i.album_id != "1000")
        .cloned()
        .collect()
}

/// Random-looking bytes (no compression can shrink them in a tmpfs).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `micloudfs login` against the emulator's default account with `pass_token`.
pub fn login_command(sim: &Sim, pass_token: &str, config: &Path) -> Command {
    let mut cmd = Command::new(MICLOUDFS);
    cmd.args([
        "login",
        "--user-id",
        "1234567890",
        "--pass-token",
        pass_token,
    ])
    .args(["--api-base", &sim.base_url])
    .arg("--config-dir")
    .arg(config);
    cmd
}

/// `rsync -a SRC/ DEST` plus `extra` flags; its output.
pub fn rsync_copy(src: &Path, dest: &Path, extra: &[&str]) -> Output {
    run_ok(
        Command::new("rsync")
            .arg("-a")
            .args(extra)
            .arg(format!("{}/", src.display()))
            .arg(dest),
    )
}

/// `sha1sum -c --quiet SHA1SUMS` in `dir` passes and prints nothing.
pub fn sha1sum_check(dir: &Path) {
    let out = run_ok(
        Command::new("sha1sum")
            .args(["-c", "--quiet", "SHA1SUMS"])
            .current_dir(dir),
    );
    assert!(
        out.stdout.is_empty(),
        "sha1sum -c complained: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A mounted gallery, unmounted on drop.
pub struct Mount {
    pub dir: tempfile::TempDir,
    pub mnt: PathBuf,
    pub cache: PathBuf,
    pub config: PathBuf,
}

impl Mount {
    pub fn tempdirs() -> Mount {
        require_fuse();
        let dir = tempfile::tempdir().expect("tempdir");
        let mnt = dir.path().join("mnt");
        let cache = dir.path().join("cache");
        let config = dir.path().join("config");
        std::fs::create_dir_all(&mnt).unwrap();
        Mount {
            dir,
            mnt,
            cache,
            config,
        }
    }

    /// `login` against the emulator, then `mount` (daemonized) with `extra` flags.
    pub fn of_sim(sim: &Sim, extra: &[&str]) -> Mount {
        let m = Mount::tempdirs();
        run_ok(&mut login_command(sim, "V1:sim-pass-token", &m.config));
        m.mount(extra);
        m
    }

    /// `micloudfs mount MNT --config-dir .. --cache-dir ..`, ready for more flags.
    pub fn mount_command(&self) -> Command {
        let mut cmd = Command::new(MICLOUDFS);
        cmd.arg("mount")
            .arg(&self.mnt)
            .arg("--config-dir")
            .arg(&self.config)
            .arg("--cache-dir")
            .arg(&self.cache);
        cmd
    }

    pub fn mount(&self, extra: &[&str]) {
        run_ok(self.mount_command().args(extra));
        assert!(
            is_mounted(&self.mnt),
            "mount returned but {} is not mounted",
            self.mnt.display()
        );
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn unmount(&self) {
        if is_mounted(&self.mnt) {
            run_ok(Command::new(MICLOUDFS).arg("unmount").arg(&self.mnt));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.cache.join("micloudfs.log")).unwrap_or_default()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let _ = Command::new(MICLOUDFS)
                .arg("unmount")
                .arg(&self.mnt)
                .output();
            if is_mounted(&self.mnt) {
                let _ = Command::new(MICLOUDFS)
                    .args(["unmount", "--lazy"])
                    .arg(&self.mnt)
                    .output();
            }
        }
    }
}

pub fn is_mounted(path: &Path) -> bool {
    let target = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts.lines().any(|l| {
        l.split_whitespace()
            .nth(1)
            .map(|p| Path::new(&p.replace("\\040", " ")) == target)
            .unwrap_or(false)
    })
}

pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// FUSE tests run for real: fail loudly (never skip) when the machine cannot mount.
pub fn require_fuse() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: these tests mount a real FUSE file system (run scripts/test.sh, \
         which installs fuse3, as root on a machine with FUSE)"
    );
    let found = ["fusermount3", "fusermount"].iter().any(|t| {
        Command::new(t)
            .arg("-V")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    assert!(
        found,
        "fusermount3 is missing: apt-get install -y fuse3 (scripts/test.sh does it)"
    );
}

/// What one file under a tree is: (relative path, size, sha1 hex, mtime ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileFacts {
    pub size: u64,
    pub sha1: String,
    pub mtime_ms: i64,
}

pub fn sha1_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    hex::encode(Sha1::digest(&bytes))
}

/// Every regular file below `root` except `SHA1SUMS` files, by relative path.
pub fn walk(root: &Path) -> BTreeMap<String, FileFacts> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()))
        {
            let e = e.unwrap();
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() != "SHA1SUMS" {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                let mtime_ms = m.mtime() * 1000 + m.mtime_nsec() / 1_000_000;
                out.insert(
                    rel,
                    FileFacts {
                        size: m.len(),
                        sha1: sha1_file(&p),
                        mtime_ms,
                    },
                );
            }
        }
    }
    out
}

/// Asserts that `files` hold every item exactly once: the multisets of (sha1, size) agree
/// and, when `check_mtime`, every file's mtime is its item's dateTaken.
pub fn assert_same_items(
    files: &BTreeMap<String, FileFacts>,
    items: &[SimItem],
    check_mtime: bool,
) {
    let mut want: Vec<(String, u64, i64)> = items
        .iter()
        .map(|i| {
            (
                i.sha1.clone(),
                i.size,
                if check_mtime { i.date_taken_ms } else { 0 },
            )
        })
        .collect();
    let mut got: Vec<(String, u64, i64)> = files
        .values()
        .map(|f| {
            (
                f.sha1.clone(),
                f.size,
                if check_mtime { f.mtime_ms } else { 0 },
            )
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got.len(), want.len(), "file count differs from item count");
    assert_eq!(got, want, "files and items differ (sha1, size, mtime)");
}

/// An extended attribute of a file in the mount, as text.
pub fn xattr(path: &Path, name: &str) -> String {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let name_c = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the given length.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            name_c.as_ptr(),
            buf.as_mut_ptr() as *mut _,
            buf.len(),
        )
    };
    assert!(
        n > 0,
        "getxattr {} {name}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    buf.truncate(n as usize);
    String::from_utf8(buf).unwrap()
}

/// `user.micloud.id` of a file in the mount.
pub fn xattr_id(path: &Path) -> String {
    xattr(path, "user.micloud.id")
}

/// The names `listxattr` gives for a file in the mount.
pub fn xattr_names(path: &Path) -> Vec<String> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = vec![0u8; 1024];
    // SAFETY: a valid C string and a buffer of the given length.
    let n = unsafe { libc::listxattr(c.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) };
    assert!(n >= 0, "listxattr: {}", std::io::Error::last_os_error());
    buf.truncate(n as usize);
    buf.split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

/// The pid of the daemon serving `mnt` (a `micloudfs mount` process naming it).
/// Whether process `pid` is gone, or a zombie (its parent has not reaped it) whose other
/// threads have exited too: only then are its descriptors (/dev/fuse among them) closed.
pub fn is_gone_or_zombie(pid: i32) -> bool {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
    threads <= 1
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true)
}

/// The daemon of the mount on `mnt`: of the `micloudfs mount MNT` processes, the one whose
/// parent is not one of them (while `mount` waits for its daemon, both have the same command
/// line; the daemon is the child, and a session leader after `setsid`).
pub fn daemon_pid(mnt: &Path) -> Option<i32> {
    let want = mnt.as_os_str().as_encoded_bytes();
    let matches: Vec<(i32, i32, i32)> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_mount =
                args.first()?.ends_with(b"micloudfs") && args.get(1) == Some(&&b"mount"[..]);
            if !(is_mount && args.contains(&want)) {
                return None;
            }
            // Fields after the command name: state, ppid, pgrp, session.
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let rest: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
            let ppid = rest.get(1)?.parse().ok()?;
            let sid = rest.get(3)?.parse().ok()?;
            Some((pid, ppid, sid))
        })
        .collect();
    let pids: Vec<i32> = matches.iter().map(|m| m.0).collect();
    matches
        .iter()
        .find(|(pid, ppid, sid)| pids.contains(ppid) || (pid == sid && matches.len() > 1))
        .or_else(|| (matches.len() == 1).then(|| &matches[0]))
        .map(|m| m.0)
}

// ---- Accounts and sessions (tests/accounts.rs, tests/session.rs) ----

impl Sim {
    /// The login chain by raw HTTP, as a browser runs it (`/api/user/login`, the passport's
    /// `serviceLogin` with the passToken cookie, the `/sts` callback): the `name=value` pairs
    /// the `/sts` answer sets (empty when the passToken is refused).
    pub fn login_chain(&self, user_id: &str, pass_token: &str) -> BTreeMap<String, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = format!(
            "{}/api/user/login?ts=1&followUp=%2F&_locale=en_US",
            self.base_url
        );
        block_on(async {
            let text = client
                .get(&login)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let login_url = v["data"]["loginUrl"]
                .as_str()
                .expect("loginUrl")
                .to_string();
            let passport = client
                .get(&login_url)
                .header(
                    reqwest::header::COOKIE,
                    format!("userId={user_id}; deviceId=wb_test; passToken={pass_token}"),
                )
                .send()
                .await
                .unwrap();
            let Some(sts) = passport.headers().get(reqwest::header::LOCATION) else {
                return BTreeMap::new();
            };
            let sts = reqwest::Url::parse(&login_url)
                .unwrap()
                .join(sts.to_str().unwrap())
                .unwrap();
            let resp = client.get(sts).send().await.unwrap();
            resp.headers()
                .get_all(reqwest::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|c| c.split(';').next())
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
    }

    /// A fresh i.mi.com session of the account, as a browser would hold it: the serviceToken
    /// (a login chain must set one).
    pub fn fresh_service_token(&self, user_id: &str, pass_token: &str) -> String {
        let set = self.login_chain(user_id, pass_token);
        let token = set.get("serviceToken").cloned().unwrap_or_default();
        assert!(
            !token.is_empty(),
            "the login chain set no serviceToken: {set:?}"
        );
        token
    }

    /// POST `body` as is (an account SPEC, or nothing) to the control API; its JSON answer.
    pub fn post_text(&self, path: &str, body: &str) -> serde_json::Value {
        let url = format!("{}{}", self.base_url, path);
        let body = body.to_string();
        block_on(async {
            let resp = reqwest::Client::new()
                .post(&url)
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(resp.status().is_success(), "{url}: HTTP {}", resp.status());
            let text = resp.text().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON: {e}: {text}"))
        })
    }

    /// Change an account of the emulator at runtime (`POST /_sim/accounts`, a SPEC).
    pub fn change_account(&self, spec: &str) -> serde_json::Value {
        self.post_text("/_sim/accounts", spec)
    }

    /// Every serviceToken of `user_id` dies now; how many did.
    pub fn expire_sessions(&self, user_id: &str) -> u64 {
        self.post_text(&format!("/_sim/expire-sessions?account={user_id}"), "")["expired"]
            .as_u64()
            .expect("expired")
    }

    /// End one session, by its serviceToken, through the control API (as if it had
    /// outlived its lifetime); how many died (0 or 1).
    pub fn end_token(&self, token: &str) -> u64 {
        let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
        self.post_text(&format!("/_sim/expire-sessions?token={token}"), "")["expired"]
            .as_u64()
            .expect("expired")
    }

    /// A counter of `/_sim/stats` (`token_exchanges`, `auto_renewals`, `unauthorized`, ...).
    pub fn stat(&self, name: &str) -> u64 {
        self.stats()[name].as_u64().unwrap_or(0)
    }

    /// Requests served so far on routes starting with `prefix`, per `/_sim/stats`.
    pub fn requests_under(&self, prefix: &str) -> u64 {
        let stats = self.stats();
        stats["requests"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with(prefix))
                    .filter_map(|(_, v)| v.as_u64())
                    .sum()
            })
            .unwrap_or(0)
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// `micloudfs ARGS --config-dir CONFIG` with stdin closed (no terminal: nothing is asked).
pub fn cli(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(MICLOUDFS);
    cmd.args(args)
        .arg("--config-dir")
        .arg(config)
        .stdin(Stdio::null());
    cmd
}

/// `micloudfs login --cookie COOKIE --api-base SIM --config-dir CONFIG` plus `extra`.
pub fn cookie_login_command(sim: &Sim, cookie: &str, config: &Path, extra: &[&str]) -> Command {
    let mut cmd = cli(
        config,
        &["login", "--cookie", cookie, "--api-base", &sim.base_url],
    );
    cmd.args(extra);
    cmd
}

pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cmd`, which must fail with exit code 1; its stderr.
pub fn run_fails(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{cmd:?} should fail with exit code 1:\nstdout: {}\nstderr: {}",
        stdout_of(&out),
        stderr_of(&out)
    );
    out
}

/// Permission bits of `path` (`0o600`, ...).
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The stored account file `accounts/<name>.json` of a config dir, parsed.
pub fn stored_account(config: &Path, name: &str) -> serde_json::Value {
    let path = config.join("accounts").join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

/// Every path below `root` (directories and files), `root` included.
pub fn all_paths(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if std::fs::symlink_metadata(&p)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                out.push(e.path());
            }
        }
        i += 1;
    }
    out
}

/// `sha1sum` of every regular file under `root` with `parallel` readers at once
/// (`find | xargs -P`): (sha1, size) of each, sorted, plus the number of files read.
pub fn parallel_sha1(root: &Path, parallel: usize) -> Vec<(String, u64)> {
    let out = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "find . -type f ! -name SHA1SUMS -print0 | xargs -0 -P{parallel} -n1 sha1sum"
            ))
            .current_dir(root),
    );
    let mut got: Vec<(String, u64)> = stdout_of(&out)
        .lines()
        .map(|l| {
            let (sum, rel) = l.split_once("  ").expect("sha1sum line");
            let size = std::fs::metadata(root.join(rel)).unwrap().len();
            (sum.to_string(), size)
        })
        .collect();
    got.sort();
    got
}
