//! The readiness pipe between `mount` and its daemon (DESIGN.md §3, process model).
//!
//! `mount` opens a pipe before it forks. The daemon writes exactly one line on it: `ok
//! <summary>` once the tree is live, or `error <message>` when it could not start (newlines
//! folded to spaces, so a message is always one line). The parent waits for that line, then
//! prints the summary and exits 0, or fails with the message; a daemon that dies without a
//! line (a crash) closes the pipe, and the parent points at the log instead. In the
//! foreground (`-f`) there is no pipe: the summary goes to stderr.

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

/// The parent's side: waits for the daemon's line.
pub(crate) fn read_answer(read_end: OwnedFd) -> Answer {
    let mut line = String::new();
    let mut reader = BufReader::new(std::fs::File::from(read_end));
    let _ = reader.read_line(&mut line);
    match line.trim_end().split_once(' ') {
        Some(("ok", msg)) => Answer::Ok(msg.to_string()),
        Some(("error", msg)) => Answer::Error(msg.to_string()),
        _ => Answer::Silent,
    }
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
