//! The foreground side of `mount` while the daemon starts: a progress bar for the first sync,
//! and Ctrl-C.
//!
//! The daemon writes `progress LISTED TOTAL REQUESTS` lines on the start pipe every 200 ms
//! while it lists the gallery for the first time, then one `ok MESSAGE` or `error MESSAGE`.
//! On a terminal the parent draws them as a bar (items listed of the counts the album list
//! announces, rate, time left; indicatif); elsewhere it draws nothing.
//!
//! Ctrl-C (or SIGTERM) while waiting stops the daemon (SIGTERM, then waits for it), so nothing
//! is left mounted or running; what the sync listed so far is in the catalog, committed, and
//! the next `mount` resumes from there.

use std::io::IsTerminal;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM without restarting `read`, so the wait below sees them.
fn catch_interrupts() {
    // SAFETY: a plain sigaction with a handler that only stores to an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = 0; // no SA_RESTART: read() returns EINTR
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

fn bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "listing the gallery {wide_bar} {human_pos}/{human_len} items, {per_sec}, {eta} left",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Waits for the daemon's verdict on the pipe, drawing its progress; stops it on Ctrl-C.
pub(crate) fn wait_for_daemon(pipe: OwnedFd, child: libc::pid_t, log: &Path) -> Result<(), String> {
    catch_interrupts();
    let bar = bar();
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into a buffer of the given length from a descriptor we own.
        let n = unsafe { libc::read(pipe.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                if INTERRUPTED.load(Ordering::SeqCst) {
                    bar.finish_and_clear();
                    stop(child);
                    return Err(
                        "interrupted: nothing is mounted and the daemon is stopped; what was \
                         listed so far is kept, and the next `micloudfs mount` resumes from there"
                            .into(),
                    );
                }
                continue;
            }
            bar.finish_and_clear();
            return Err(format!(
                "cannot hear from the daemon: {err}; see {}",
                log.display()
            ));
        }
        if n == 0 {
            bar.finish_and_clear();
            return Err(format!(
                "the daemon stopped before the mount was ready; see {}",
                log.display()
            ));
        }
        pending.extend_from_slice(&buf[..n as usize]);
        while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end();
            match line.split_once(' ') {
                Some(("progress", rest)) => {
                    let nums: Vec<u64> = rest.split(' ').filter_map(|n| n.parse().ok()).collect();
                    if let [listed, total, ..] = nums[..] {
                        bar.set_length(total.max(listed));
                        bar.set_position(listed);
                    }
                }
                Some(("ok", msg)) => {
                    bar.finish_and_clear();
                    println!("{msg}");
                    return Ok(());
                }
                Some(("error", msg)) => {
                    bar.finish_and_clear();
                    return Err(msg.to_string());
                }
                _ => {}
            }
        }
    }
}

/// Stops the daemon and waits for it to be gone.
fn stop(child: libc::pid_t) {
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(child, libc::SIGTERM);
        let mut status = 0;
        libc::waitpid(child, &mut status, 0);
    }
}
