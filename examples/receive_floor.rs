//! The CPU floor of a download on this machine, for `scripts/bench.sh`.
//!
//! The daemon's "CPU seconds per GB" depends on the machine as much as on the daemon: on this
//! project's shared 2-vCPU test host the same build measured 1.9 s/GB at a quiet hour and
//! 3.5 s/GB at a busy one. This program gives the figure a floor measured in the same run: it
//! receives the same files over the same number of keep-alive connections, with nothing in
//! between: one thread, `poll(2)`, non-blocking reads into one 1 MiB buffer, the HTTP/1.1
//! response head found by hand (a `Content-Length` body, nothing else), and, with `--sha1`, the
//! same SHA-1 implementation as the daemon (the `sha1` crate, SHA-NI where the CPU has it). No
//! HTTP library, no async runtime, no disk, no FUSE: whatever a real client costs beyond this
//! is its own.
//!
//! Input: one request per line, tab-separated: `host:port`, the request target, the
//! `application/x-www-form-urlencoded` body of the POST (the download's META answer, spec
//! §3.6), the file's size and its SHA-1 as listed. `bench.sh` resolves them with its own
//! downloader's code. Output: one line, `bytes B secs S user U sys Y reads R`, where user and
//! system seconds are this process's (`getrusage`) between the first connect and the last byte.
//!
//! `--store DIR` also writes each file into DIR as it arrives (plain buffered writes, as a
//! simple downloader does; the kernel's writeback runs on its own threads, not counted here).
//!
//! `--lowat BYTES` sets `SO_RCVLOWAT` to the smaller of BYTES and what is left of the body
//! before each wait, so the kernel wakes the reader once per BYTES instead of once per
//! arriving segment: a measure of what per-wake-up costs weigh on this machine (a client can
//! only do this when it owns the reads of the body, which an HTTP library's connection task
//! does not let it).

use sha1::{Digest, Sha1};
use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Instant;

struct Job {
    addr: String,
    target: String,
    body: String,
    size: u64,
    sha1: String,
}

/// One keep-alive connection and the response it is reading.
struct Conn {
    stream: TcpStream,
    job: Option<Job>,
    /// The response head read so far (until the blank line is seen).
    head: Vec<u8>,
    /// Body bytes still to come; `None` while the head is read.
    left: Option<u64>,
    hasher: Sha1,
    /// With `--store`: the file being written, and where its next bytes go.
    out: Option<std::fs::File>,
    out_at: u64,
}

fn fail(msg: String) -> ! {
    eprintln!("receive_floor: {msg}");
    std::process::exit(1)
}

fn usage() -> ! {
    fail(
        "usage: receive_floor REQUESTS_FILE CONNECTIONS [--sha1] [--store DIR] [--lowat BYTES]"
            .into(),
    )
}

fn parse_jobs(path: &str) -> Vec<Job> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| fail(format!("{path}: {e}")));
    let mut jobs = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.unwrap_or_else(|e| fail(format!("{path}: {e}")));
        let f: Vec<&str> = line.split('\t').collect();
        let [addr, target, body, size, sha1] = f[..] else {
            fail(format!("{path}: a line has {} fields, not 5", f.len()))
        };
        let size = size
            .parse()
            .unwrap_or_else(|_| fail(format!("{path}: bad size {size:?}")));
        jobs.push(Job {
            addr: addr.into(),
            target: target.into(),
            body: body.into(),
            size,
            sha1: sha1.into(),
        });
    }
    jobs
}

fn cpu_secs() -> (f64, f64) {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is a valid value.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to an rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) } != 0 {
        fail(format!("getrusage: {}", std::io::Error::last_os_error()));
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(r.ru_utime), secs(r.ru_stime))
}

fn set_lowat(stream: &TcpStream, bytes: u64) {
    let v = bytes.clamp(1, i32::MAX as u64) as libc::c_int;
    // SAFETY: a valid socket and a pointer to a c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        fail(format!("SO_RCVLOWAT: {}", std::io::Error::last_os_error()));
    }
}

/// Sends the next request on `c`, or returns false when there is none.
fn start(c: &mut Conn, jobs: &mut Vec<Job>) -> bool {
    let Some(job) = jobs.pop() else {
        c.job = None;
        return false;
    };
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{}",
        job.target,
        job.addr,
        job.body.len(),
        job.body
    );
    // The request is small: a blocking write of it is one system call.
    c.stream
        .set_nonblocking(false)
        .and_then(|_| c.stream.write_all(req.as_bytes()))
        .and_then(|_| c.stream.set_nonblocking(true))
        .unwrap_or_else(|e| fail(format!("sending a request: {e}")));
    c.job = Some(job);
    c.head.clear();
    c.left = None;
    c.hasher = Sha1::new();
    c.out_at = 0;
    true
}

/// Takes the body's first bytes out of the head once the blank line is there.
fn parse_head(c: &mut Conn) -> Option<usize> {
    let end = c.head.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&c.head[..end]).to_ascii_lowercase();
    let status = text.split_whitespace().nth(1).unwrap_or("");
    if status != "200" && status != "206" {
        fail(format!("the server answered {status}"));
    }
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| fail("an answer without Content-Length".into()));
    if let Some(job) = c.job.as_ref().filter(|j| j.size != len) {
        fail(format!("{}: {len} bytes, listed {}", job.target, job.size));
    }
    c.left = Some(len);
    Some(end)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(n)) = (args.first(), args.get(1)) else {
        usage()
    };
    let n: usize = n.parse().unwrap_or_else(|_| usage());
    let hash = args.iter().any(|a| a == "--sha1");
    let lowat: u64 = match args.iter().position(|a| a == "--lowat") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage()),
        None => 0,
    };
    let store: Option<std::path::PathBuf> = args
        .iter()
        .position(|a| a == "--store")
        .map(|i| args.get(i + 1).unwrap_or_else(|| usage()).into());
    let mut jobs = parse_jobs(path);
    jobs.reverse();
    let mut buf = vec![0u8; 1 << 20];
    let (mut bytes, mut reads) = (0u64, 0u64);

    let (u0, s0) = cpu_secs();
    let t0 = Instant::now();
    let mut conns: Vec<Conn> = Vec::new();
    for _ in 0..n.min(jobs.len()) {
        let addr = jobs.last().map(|j| j.addr.clone()).unwrap_or_default();
        let stream =
            TcpStream::connect(&addr).unwrap_or_else(|e| fail(format!("connect {addr}: {e}")));
        let mut c = Conn {
            stream,
            job: None,
            head: Vec::new(),
            left: None,
            hasher: Sha1::new(),
            out: None,
            out_at: 0,
        };
        start(&mut c, &mut jobs);
        conns.push(c);
    }
    loop {
        let mut fds: Vec<libc::pollfd> = conns
            .iter()
            .filter(|c| c.job.is_some())
            .map(|c| libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if fds.is_empty() {
            break;
        }
        // SAFETY: fds is a valid array of pollfd of the length given.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 120_000) };
        if rc <= 0 {
            fail(format!("poll: {rc} {}", std::io::Error::last_os_error()));
        }
        for pfd in fds.iter().filter(|p| p.revents != 0) {
            let Some(c) = conns.iter_mut().find(|c| c.stream.as_raw_fd() == pfd.fd) else {
                continue;
            };
            let got = match c.stream.read(&mut buf) {
                Ok(0) => fail("the server closed a connection mid-answer".into()),
                Ok(got) => got,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => fail(format!("read: {e}")),
            };
            reads += 1;
            let mut body = &buf[..got];
            if c.left.is_none() {
                c.head.extend_from_slice(body);
                let Some(end) = parse_head(c) else { continue };
                let taken = got - (c.head.len() - end);
                body = &buf[taken..got];
            }
            let left = c.left.unwrap_or(0);
            if body.len() as u64 > left {
                fail("more bytes than the answer's Content-Length".into());
            }
            if hash {
                c.hasher.update(body);
            }
            if let (Some(dir), Some(job)) = (&store, &c.job) {
                use std::os::unix::fs::FileExt;
                if c.out.is_none() {
                    let name = job.sha1.clone();
                    let f = std::fs::File::create(dir.join(name))
                        .unwrap_or_else(|e| fail(format!("{}: {e}", dir.display())));
                    c.out = Some(f);
                }
                if let Some(f) = &c.out {
                    f.write_all_at(body, c.out_at)
                        .unwrap_or_else(|e| fail(format!("writing into {}: {e}", dir.display())));
                }
                c.out_at += body.len() as u64;
            }
            bytes += body.len() as u64;
            let left = left - body.len() as u64;
            c.left = Some(left);
            if left > 0 {
                if lowat > 0 {
                    set_lowat(&c.stream, left.min(lowat));
                }
                continue;
            }
            let Some(job) = c.job.take() else { continue };
            c.out = None;
            if hash {
                let got = hex::encode(std::mem::take(&mut c.hasher).finalize());
                if got != job.sha1 {
                    fail(format!("{}: SHA-1 {got}, listed {}", job.target, job.sha1));
                }
            }
            if lowat > 0 {
                set_lowat(&c.stream, 1);
            }
            start(c, &mut jobs);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let (u1, s1) = cpu_secs();
    println!(
        "bytes {bytes} secs {secs:.3} user {:.3} sys {:.3} reads {reads}",
        u1 - u0,
        s1 - s0
    );
}
