//! `mount` and `unmount`: checks in the foreground, then the daemon.
//!
//! Process model (DESIGN.md §3): everything that can be wrong with the command (mount
//! point, account, cache dir, time zone) is checked before anything else and reported on
//! the terminal. Unless `-f`, the process then forks **before** any thread or tokio runtime
//! exists; the child becomes the daemon and the parent waits on a pipe until the child says
//! the tree is live (or why it could not be), so `mount` returning 0 means the files are
//! there.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::daemon::{self, DaemonPlan, Source};
use super::MountArgs;
use crate::account::{self, AccountStore};
use crate::view::DateZone;

pub(crate) fn mount(args: MountArgs) -> Result<(), String> {
    let plan = plan(args)?;
    if plan.foreground {
        return daemon::run(plan, None);
    }
    let (read_fd, write_fd) = pipe()?;
    // SAFETY: no thread has been started yet (no runtime, no logger): the child may run
    // any code after fork.
    match unsafe { libc::fork() } {
        -1 => Err(format!(
            "cannot start the daemon: {}",
            std::io::Error::last_os_error()
        )),
        0 => {
            drop(read_fd);
            daemonize(&plan.log_path);
            let code = match daemon::run(plan, Some(std::fs::File::from(write_fd))) {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("{e}");
                    1
                }
            };
            std::process::exit(code);
        }
        child => {
            drop(write_fd);
            super::progress::wait_for_daemon(read_fd, child, &plan.log_path)
        }
    }
}

/// Checks the command and resolves every setting.
fn plan(args: MountArgs) -> Result<DaemonPlan, String> {
    let mountpoint = check_mountpoint(&args.mountpoint)?;
    let cache_dir = account::cache_dir(args.cache_dir)?;
    std::fs::create_dir_all(&cache_dir).map_err(|e| {
        format!(
            "cannot create the cache dir {}: {e}; choose another with --cache-dir",
            cache_dir.display()
        )
    })?;
    check_writable(&cache_dir)?;
    let cache_dir = cache_dir.canonicalize().unwrap_or(cache_dir);
    let source = if args.demo {
        Source::Demo
    } else {
        let config_dir = account::config_dir(args.config_dir)?;
        let store = AccountStore::open(&config_dir)?;
        let account = store.resolve(args.account.as_deref()).map_err(|e| {
            format!(
                "{e}; or try the demo gallery with `micloudfs mount --demo {}`",
                args.mountpoint.display()
            )
        })?;
        account.credentials()?;
        let api_base = args
            .api_base
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| account.api_base.clone());
        Source::Account {
            account,
            api_base,
            store,
        }
    };
    let zone = match args.timezone.as_deref() {
        None | Some("local") => DateZone::Local,
        Some(name) => DateZone::Named(name.parse().map_err(|_| {
            format!("--timezone {name:?} is not a time zone; use an IANA name such as Asia/Shanghai or Europe/Paris")
        })?),
    };
    Ok(DaemonPlan {
        log_path: cache_dir.join("micloudfs.log"),
        mountpoint,
        cache_dir,
        source,
        zone,
        include_private: args.include_private,
        max_downloads: args.max_downloads as usize,
        max_cache_bytes: args.max_cache_size,
        io_timeout: std::time::Duration::from_secs(args.io_timeout),
        token_refresh: std::time::Duration::from_secs(args.token_refresh),
        foreground: args.foreground,
        verbose: args.verbose,
        offline: args.offline,
        refresh_interval: std::time::Duration::from_secs(args.refresh_interval),
    })
}

fn check_mountpoint(path: &Path) -> Result<PathBuf, String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let path = path
                .canonicalize()
                .map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
            if is_mount_point(&path) {
                // The kernel may answer stat from its attribute cache for a dead mount;
                // statfs always asks the daemon.
                let gone = statfs_errno(&path) == Some(libc::ENOTCONN);
                return Err(if gone {
                    dead_mount(&path)
                } else {
                    format!(
                        "{} is already a mount point; unmount it first (micloudfs unmount {})",
                        path.display(),
                        path.display()
                    )
                });
            }
            Ok(path)
        }
        Ok(_) => Err(format!(
            "{} is not a directory; mount on an empty directory",
            path.display()
        )),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Err(dead_mount(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "{} does not exist; create it first (mkdir -p {})",
            path.display(),
            path.display()
        )),
        Err(e) => Err(format!(
            "cannot use {} as a mount point: {e}",
            path.display()
        )),
    }
}

fn dead_mount(path: &Path) -> String {
    format!(
        "{} is a mount whose daemon is gone; run `micloudfs unmount {}` first",
        path.display(),
        path.display()
    )
}

/// The errno of `statfs(path)`, if it fails.
fn statfs_errno(path: &Path) -> Option<i32> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: c is a valid NUL-terminated path and buf a properly sized out-parameter.
    let rc = unsafe {
        let mut buf: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut buf)
    };
    (rc != 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// Whether `path` (canonical) is the target of a mount, per `/proc/self/mounts`.
fn is_mount_point(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    mounts.lines().any(|line| {
        line.split_whitespace().nth(1).is_some_and(|target| {
            // Spaces and the like are octal-escaped in the mounts table.
            let unescaped = target
                .replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\");
            Path::new(&unescaped) == path
        })
    })
}

fn check_writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".probe.{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "the cache dir {} is not writable ({e}); choose another with --cache-dir",
                dir.display()
            )
        })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!(
            "cannot start the daemon: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: pipe2 returned two fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Detaches the child from the terminal: new session, stdin from /dev/null, stdout and
/// stderr to the log file.
fn daemonize(log_path: &Path) {
    // SAFETY: plain syscalls on descriptors this process owns.
    unsafe {
        libc::setsid();
        if let Ok(null) = std::fs::File::open("/dev/null") {
            libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0);
        }
        if let Ok(log) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
        {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&log);
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
        }
    }
}

/// Tells the waiting parent how far the first sync got (`progress LISTED TOTAL REQUESTS`).
pub(crate) fn report_progress(mut pipe: &std::fs::File, p: &crate::catalog::Progress) {
    use std::sync::atomic::Ordering;
    let line = format!(
        "progress {} {} {}\n",
        p.listed.load(Ordering::Relaxed),
        p.total.load(Ordering::Relaxed),
        p.requests.load(Ordering::Relaxed)
    );
    let _ = pipe.write_all(line.as_bytes());
}

/// Tells the waiting parent how the start went.
pub(crate) fn report(pipe: Option<std::fs::File>, result: Result<&str, &str>) {
    if let Some(mut p) = pipe {
        let line = match result {
            Ok(msg) => format!("ok {msg}\n"),
            Err(msg) => format!("error {}\n", msg.replace('\n', " ")),
        };
        let _ = p.write_all(line.as_bytes());
    } else if let Ok(msg) = result {
        eprintln!("{msg}");
    }
}

pub(crate) fn unmount(mountpoint: &Path, lazy: bool) -> Result<(), String> {
    let flags = if lazy { "-uz" } else { "-u" };
    let mut last = String::new();
    for tool in ["fusermount3", "fusermount"] {
        match Command::new(tool).arg(flags).arg(mountpoint).output() {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => {
                last = String::from_utf8_lossy(&out.stderr).trim().to_string();
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => last = e.to_string(),
        }
    }
    if last.is_empty() {
        // No fusermount at all: as root, the kernel call does it.
        let c = std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes())
            .map_err(|_| "the mount point contains a NUL byte".to_string())?;
        let flags = if lazy { libc::MNT_DETACH } else { 0 };
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
            return Ok(());
        }
        last = std::io::Error::last_os_error().to_string();
    }
    let hint = if last.contains("busy") {
        "; close the programs using it, or use --lazy"
    } else if last.contains("not found")
        || last.contains("not mounted")
        || last.contains("Invalid argument")
    {
        "; it is not mounted"
    } else {
        ""
    };
    Err(format!(
        "cannot unmount {}: {last}{hint}",
        mountpoint.display()
    ))
}
