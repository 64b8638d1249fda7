//! The readiness pipe between `mount` and its daemon (DESIGN.md §3, process model).
//!
//! `mount` opens a pipe before it forks. The daemon writes exactly one line on it: `ok
//! <summary>` once the tree is live, or `error <message>` when it could not start (newlines
//! folded to spaces, so a message is always one line). The parent waits for that line, then
//! prints the summary and exits 0, or fails with the message; a daemon that dies without a
//! line (a crash) closes the pipe, and the parent points at the log instead. In the
//! foreground (`-f`) there is no pipe: the summary goes to stderr. During a first sync the
//! daemon also writes `progress LISTED TOTAL REQUESTS` lines, which the parent draws as a bar.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// A fresh pipe, close-on-exec: `(read end, write end)`.
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
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

/// The daemon's side: tells the waiting parent how the start went (stderr without a pipe).
pub(crate) fn report(pipe: Option<std::fs::File>, result: Result<&str, &str>) {
    if let Some(mut p) = pipe {
        let line = match result {
            Ok(msg) => format!("ok {msg}\n"),
            Err(msg) => format!("error {}\n", msg.replace('\n', " ")),
        };
        let _ = p.write_all(line.as_bytes());
    } else if let Ok(msg) = result {
        // Never a panic when the terminal is gone.
        let _ = writeln!(std::io::stderr(), "{msg}");
    }
}

/// The daemon's side during the first sync: how far it got (`progress LISTED TOTAL
/// REQUESTS`), for the parent's progress bar.
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

/// What the daemon said on the pipe.
pub(crate) enum Answer {
    Ok(String),
    Error(String),
    /// The pipe closed without a line: the daemon died before it could say.
    Silent,
}

impl Answer {
    pub fn is_ok(&self) -> bool {
        matches!(self, Answer::Ok(_))
    }

    /// The summary, or why the mount is not live (pointing at the log when the daemon said
    /// nothing).
    pub fn into_result(self, log_path: &Path) -> Result<String, String> {
        match self {
            Answer::Ok(msg) => Ok(msg),
            Answer::Error(msg) => Err(msg),
            Answer::Silent => Err(format!(
                "the daemon stopped before the mount was ready; see {}",
                log_path.display()
            )),
        }
    }
}

/// The parent's side: waits for the daemon's verdict, handing each `progress` line on as
/// `(listed, total)`.
pub(crate) fn read_answer_with(read_end: OwnedFd, mut progress: impl FnMut(u64, u64)) -> Answer {
    let mut reader = BufReader::new(std::fs::File::from(read_end));
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return Answer::Silent,
            Ok(_) => {}
        }
        match line.trim_end().split_once(' ') {
            Some(("ok", msg)) => return Answer::Ok(msg.to_string()),
            Some(("error", msg)) => return Answer::Error(msg.to_string()),
            Some(("progress", rest)) => {
                let nums: Vec<u64> = rest.split(' ').filter_map(|n| n.parse().ok()).collect();
                if let [listed, total, ..] = nums[..] {
                    progress(listed, total);
                }
            }
            _ => {}
        }
    }
}

/// [`read_answer_with`] ignoring progress.
#[cfg(test)]
pub(crate) fn read_answer(read_end: OwnedFd) -> Answer {
    read_answer_with(read_end, |_, _| {})
}

/// The parent's side in one call: the summary once the mount is live, or why it is not.
#[cfg(test)]
pub(crate) fn wait(read_end: OwnedFd, log_path: &Path) -> Result<String, String> {
    read_answer(read_end).into_result(log_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(result: Result<&str, &str>, write: bool) -> Result<String, String> {
        let (r, w) = pipe().unwrap();
        if write {
            report(Some(std::fs::File::from(w)), result);
        } else {
            drop(w);
        }
        wait(r, Path::new("/var/log/x.log"))
    }

    #[test]
    fn the_daemon_line_reaches_the_parent() {
        assert_eq!(
            round_trip(Ok("mounted at /m"), true),
            Ok("mounted at /m".into())
        );
        assert_eq!(
            round_trip(Err("cannot list\nthe gallery"), true),
            Err("cannot list the gallery".into())
        );
        let silent = round_trip(Ok("never sent"), false).unwrap_err();
        assert!(silent.contains("/var/log/x.log"), "{silent}");
    }
}
