//! `mount` and `unmount`: checks in the foreground, then the daemon.
//!
//! Process model (DESIGN.md §3): everything that can be wrong with the command (mount
//! point, account, cache dir, time zone) is checked before anything else and reported on
//! the terminal. Unless `-f`, the process then forks **before** any thread or tokio runtime
//! exists; the child becomes the daemon and the parent waits on a pipe until the child says
//! the tree is live (or why it could not be), so `mount` returning 0 means the files are
//! there. While it waits, SIGINT/SIGTERM are passed on to the daemon and the parent waits for
//! it to exit (`signals`), so Ctrl-C leaves nothing behind.
//!
//! The foreground checks of the mount point (`mountpoint`: a directory, not mounted, apart
//! from the cache and config dirs, empty unless `--allow-non-empty`) run again in the daemon
//! right before the kernel mount. `unmount` takes down only a micloudfs mount, as the mount
//! table names it (`mounttable`); as root, fusermount3 and umount2 would unmount anything.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use super::daemon::{self, DaemonPlan, Source};
use super::ready;
use super::MountArgs;
use super::{cachedir, mountpoint, progress, signals};
use crate::account::{self, AccountStore};
use crate::view::DateZone;

pub(crate) fn mount(args: MountArgs) -> Result<(), String> {
    let plan = plan(args)?;
    if plan.foreground {
        return daemon::run(plan, None);
    }
    let (read_fd, write_fd) = ready::pipe()?;
    let mask = signals::block_stop_signals();
    // SAFETY: no thread has been started yet (no runtime, no logger): the child may run
    // any code after fork.
    match unsafe { libc::fork() } {
        -1 => Err(format!(
            "cannot start the daemon: {}",
            std::io::Error::last_os_error()
        )),
        0 => {
            signals::restore(&mask);
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
            // Ctrl-C or SIGTERM while waiting stops the daemon too (see `signals`).
            signals::forward_to(child, &mask);
            drop(write_fd);
            let bar = progress::bar();
            let answer = ready::read_answer_with(read_fd, |listed, total| {
                bar.set_length(total.max(listed));
                bar.set_position(listed);
            });
            bar.finish_and_clear();
            let interrupted = signals::stop_forwarding();
            if interrupted || !answer.is_ok() {
                signals::reap(child);
            }
            if interrupted {
                return Err(signals::INTERRUPTED.to_string());
            }
            let summary = answer.into_result(&plan.log_path)?;
            // Never a panic when the terminal is gone.
            let _ = writeln!(std::io::stdout(), "{summary}");
            Ok(())
        }
    }
}

/// Checks the command and resolves every setting.
fn plan(args: MountArgs) -> Result<DaemonPlan, String> {
    let mountpoint = mountpoint::check(&args.mountpoint)?;
    let cache_dir = mountpoint::resolve(&account::cache_dir(args.cache_dir)?);
    mountpoint::check_apart(&mountpoint, &cache_dir, "cache dir", "--cache-dir")?;
    let config_dir = if args.demo {
        if cfg!(not(feature = "demo")) {
            return Err(daemon::NO_DEMO.to_string());
        }
        None
    } else {
        let dir = mountpoint::resolve(&account::config_dir(args.config_dir)?);
        mountpoint::check_apart(&mountpoint, &dir, "config dir", "--config-dir")?;
        Some(dir)
    };
    mountpoint::check_empty(&mountpoint, args.allow_non_empty)?;
    let cache_dir = cachedir::prepare(&cache_dir)?;
    let source = match config_dir {
        None => Source::Demo,
        Some(config_dir) => {
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
        max_connections: args.max_connections as usize,
        max_cache_bytes: args.max_cache_size,
        min_free: args.min_free_space,
        io_timeout: std::time::Duration::from_secs(args.io_timeout),
        token_refresh: std::time::Duration::from_secs(args.token_refresh),
        foreground: args.foreground,
        allow_non_empty: args.allow_non_empty,
        verbose: args.verbose,
        offline: args.offline,
        refresh_interval: std::time::Duration::from_secs(args.refresh_interval),
    })
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
        if let Ok(log) = cachedir::open_log(log_path) {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&log);
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
        }
    }
}

pub(crate) fn unmount(mountpoint: &Path, lazy: bool) -> Result<(), String> {
    let mountpoint = &mountpoint::ours(mountpoint)?;
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
