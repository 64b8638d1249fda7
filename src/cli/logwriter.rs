//! The daemon's log writer: a log line that cannot be written is dropped, never fatal.
//!
//! The daemon logs to its stderr: the log file in the cache dir (dup2'd there by
//! `daemonize`) or, with `-f`, the terminal. Either can stop taking writes: the cache's disk
//! fills up (ENOSPC), the terminal of a `-f` mount is closed (EIO). tracing-subscriber's fmt
//! layer reports a failed write with `eprintln!`, which panics when stderr itself fails; a
//! panic in a FUSE or I/O thread then ended the daemon (seen: exit 101 or SIGABRT, and
//! "Transport endpoint is not connected" for every reader). So the writer handed to the
//! subscriber never returns an error: a line that cannot be written whole is dropped and
//! counted, and the next line that can be written is preceded by one notice saying how many
//! were lost and why. The fmt layer formats a whole event into one buffer and hands it over
//! in one call, so a mutex around that call keeps lines whole across threads; lines are a few
//! hundred bytes, one write(2) each.

use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

/// A log sink that never fails; `W` is stderr in the daemon, a fake in tests.
pub(crate) struct NeverFail<W> {
    state: Mutex<State<W>>,
}

struct State<W> {
    out: W,
    /// Lines lost since the last line that was written.
    dropped: u64,
    last_error: Option<io::Error>,
    /// The last failed write left half a line: the notice starts on a new line.
    broken_line: bool,
}

impl<W: Write> NeverFail<W> {
    pub fn new(out: W) -> Self {
        NeverFail {
            state: Mutex::new(State {
                out,
                dropped: 0,
                last_error: None,
                broken_line: false,
            }),
        }
    }

    /// Writes one log line, or counts it as dropped.
    pub fn write_line(&self, line: &[u8]) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.dropped > 0 {
            let notice = format!(
                "{}{}  WARN micloudfs: {} log line{} could not be written and {} dropped ({}); \
                 the log is complete again from here\n",
                if s.broken_line { "\n" } else { "" },
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                s.dropped,
                if s.dropped == 1 { "" } else { "s" },
                if s.dropped == 1 { "was" } else { "were" },
                s.last_error
                    .as_ref()
                    .map_or_else(|| "unknown error".to_string(), |e| e.to_string()),
            );
            match write_whole(&mut s.out, notice.as_bytes()) {
                Ok(()) => {
                    s.dropped = 0;
                    s.last_error = None;
                    s.broken_line = false;
                }
                Err((e, partial)) => {
                    s.dropped += 1;
                    s.last_error = Some(e);
                    s.broken_line |= partial;
                    return;
                }
            }
        }
        if let Err((e, partial)) = write_whole(&mut s.out, line) {
            s.dropped += 1;
            s.last_error = Some(e);
            s.broken_line |= partial;
        }
    }

    /// Lines dropped since the last notice (for tests and status).
    #[cfg(test)]
    fn dropped(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dropped
    }
}

/// Writes all of `buf`; on failure, the error and whether part of it went out.
fn write_whole(out: &mut impl Write, buf: &[u8]) -> Result<(), (io::Error, bool)> {
    let mut done = 0;
    while done < buf.len() {
        match out.write(&buf[done..]) {
            Ok(0) => return Err((io::ErrorKind::WriteZero.into(), done > 0)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((e, done > 0)),
        }
    }
    let _ = out.flush();
    Ok(())
}

/// What the fmt layer writes one event into.
pub(crate) struct Line<'a, W> {
    log: &'a NeverFail<W>,
}

impl<W: Write> Write for Line<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.log.write_line(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + 'a> tracing_subscriber::fmt::MakeWriter<'a> for NeverFail<W> {
    type Writer = Line<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        Line { log: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Accepts writes while `working`, else fails with ENOSPC; with `short`, takes only half
    /// of each buffer before failing.
    #[derive(Clone, Default)]
    struct Disk {
        inner: Arc<Mutex<(Vec<u8>, bool, bool)>>,
    }

    impl Disk {
        fn set(&self, working: bool, short: bool) {
            let mut g = self.inner.lock().unwrap();
            g.1 = working;
            g.2 = short;
        }
        fn text(&self) -> String {
            String::from_utf8(self.inner.lock().unwrap().0.clone()).unwrap()
        }
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut g = self.inner.lock().unwrap();
            if g.2 {
                g.2 = false;
                let half = buf.len() / 2;
                g.0.extend_from_slice(&buf[..half]);
                return Ok(half);
            }
            if !g.1 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            g.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            if self.inner.lock().unwrap().1 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(libc::EIO))
            }
        }
    }

    #[test]
    fn failed_lines_are_counted_then_reported_once() {
        let disk = Disk::default();
        disk.set(true, false);
        let log = NeverFail::new(disk.clone());
        log.write_line(b"one\n");
        disk.set(false, false);
        log.write_line(b"two\n");
        log.write_line(b"three\n");
        assert_eq!(log.dropped(), 2);
        disk.set(true, false);
        log.write_line(b"four\n");
        log.write_line(b"five\n");
        assert_eq!(log.dropped(), 0);
        let text = disk.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines[0], "one");
        assert!(
            lines[1].contains("2 log lines could not be written and were dropped")
                && lines[1].contains("No space left on device"),
            "{text}"
        );
        assert_eq!(&lines[2..], ["four", "five"]);
    }

    #[test]
    fn a_half_written_line_does_not_swallow_the_notice() {
        let disk = Disk::default();
        disk.set(false, true);
        let log = NeverFail::new(disk.clone());
        log.write_line(b"a long line that is cut\n");
        disk.set(true, false);
        log.write_line(b"next\n");
        let text = disk.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("a long line"));
        assert!(lines[1].contains("1 log line could not be written and was dropped"));
        assert_eq!(lines[2], "next");
    }

    #[test]
    fn the_subscriber_never_sees_an_error() {
        let disk = Disk::default();
        let log = NeverFail::new(disk.clone());
        let mut w = tracing_subscriber::fmt::MakeWriter::make_writer(&log);
        assert!(w.write_all(b"lost\n").is_ok());
        assert!(w.flush().is_ok());
        assert_eq!(log.dropped(), 1);
    }
}
