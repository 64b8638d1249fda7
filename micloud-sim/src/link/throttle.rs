//! The shaped TCP connection: bandwidth caps per connection and in total, and hard resets.
//!
//! [`ShapedListener`] wraps the server's listener; every accepted socket becomes a
//! [`ShapedStream`] that writes at most one chunk ([`crate::link::bucket::chunk_for`] the
//! lowest cap) per call, charges what it wrote to its own bucket (per-connection cap) and to
//! the shared one (total cap), and sleeps the longer of the two waits before its next write. Shaping at the
//! socket rather than on each response body makes "per connection" mean one TCP connection,
//! whatever the number of requests kept alive on it, and paces every response, big or small,
//! without buffering.
//!
//! Each connection also carries a [`Conn`] handle, given to handlers as `ConnectInfo<Conn>`: a
//! fault can mark the connection for reset, after which the socket refuses further writes and
//! closes with `SO_LINGER` 0, so the peer sees a TCP RST in the middle of the body.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::link::bucket::{chunk_for, Bucket};

/// The caps of a link, in bytes per second (`None` = no cap).
#[derive(Clone, Default)]
pub struct Caps {
    pub per_conn: Option<u64>,
    pub total: Option<Arc<Bucket>>,
    /// Write size (the lowest cap's chunk).
    pub chunk: usize,
}

impl Caps {
    pub fn new(per_conn: Option<u64>, total: Option<u64>) -> Self {
        let lowest = per_conn.into_iter().chain(total).min();
        let chunk = lowest.map(chunk_for).unwrap_or(usize::MAX);
        Caps {
            per_conn,
            total: total.map(|t| Arc::new(Bucket::new(t, chunk as u64))),
            chunk,
        }
    }
}

/// State of one TCP connection shared with its requests.
pub struct ConnState {
    reset: AtomicBool,
    /// Whether the peer connected from a loopback address (the `/_sim/` API needs it).
    loopback: bool,
}

/// A handle on the connection a request arrived on (`ConnectInfo<Conn>`).
#[derive(Clone)]
pub struct Conn(Arc<ConnState>);

impl Conn {
    /// Abort the connection with a TCP RST at the next write or when it closes.
    pub fn reset(&self) {
        self.0.reset.store(true, Ordering::SeqCst);
    }

    /// Whether the peer is on this machine (127.0.0.0/8 or ::1).
    pub fn is_loopback(&self) -> bool {
        self.0.loopback
    }

    fn is_reset(&self) -> bool {
        self.0.reset.load(Ordering::SeqCst)
    }
}

/// 127.0.0.0/8, `::1`, and IPv4 loopback mapped into IPv6.
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

pub struct ShapedListener<L> {
    inner: L,
    caps: Caps,
}

impl<L> ShapedListener<L> {
    pub fn new(inner: L, caps: Caps) -> Self {
        ShapedListener { inner, caps }
    }
}

impl<L> Listener for ShapedListener<L>
where
    L: Listener<Io = TcpStream>,
{
    type Io = ShapedStream;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = self.inner.accept().await;
        let loopback = tcp.peer_addr().is_ok_and(|a| is_loopback(a.ip()));
        let conn = Conn(Arc::new(ConnState {
            reset: AtomicBool::new(false),
            loopback,
        }));
        let own = self
            .caps
            .per_conn
            .map(|rate| Bucket::new(rate, self.caps.chunk as u64));
        let stream = ShapedStream {
            tcp,
            conn,
            own,
            total: self.caps.total.clone(),
            chunk: self.caps.chunk,
            pause: None,
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl<L> Connected<IncomingStream<'_, ShapedListener<L>>> for Conn
where
    L: Listener<Io = TcpStream>,
{
    fn connect_info(stream: IncomingStream<'_, ShapedListener<L>>) -> Self {
        stream.io().conn.clone()
    }
}

pub struct ShapedStream {
    tcp: TcpStream,
    conn: Conn,
    own: Option<Bucket>,
    total: Option<Arc<Bucket>>,
    chunk: usize,
    /// The wait owed by the last write.
    pause: Option<Pin<Box<Sleep>>>,
}

impl ShapedStream {
    fn charge(&mut self, n: usize) {
        let own = self.own.as_ref().map_or(Duration::ZERO, |b| b.charge(n));
        let total = self.total.as_ref().map_or(Duration::ZERO, |b| b.charge(n));
        let wait = own.max(total);
        if !wait.is_zero() {
            self.pause = Some(Box::pin(tokio::time::sleep(wait)));
        }
    }

    fn reset_error() -> io::Error {
        io::Error::new(
            io::ErrorKind::ConnectionReset,
            "connection reset (injected fault)",
        )
    }
}

impl Drop for ShapedStream {
    fn drop(&mut self) {
        if self.conn.is_reset() {
            if let Err(e) = self.tcp.set_zero_linger() {
                tracing::debug!(error = %e, "cannot set SO_LINGER 0 for an injected reset");
            }
        }
    }
}

impl AsyncRead for ShapedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ShapedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(pause) = self.pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            self.pause = None;
        }
        if self.conn.is_reset() {
            return Poll::Ready(Err(Self::reset_error()));
        }
        let n = buf.len().min(self.chunk);
        let written = ready!(Pin::new(&mut self.tcp).poll_write(cx, &buf[..n]))?;
        self.charge(written);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.conn.is_reset() {
            // No FIN: the socket closes with RST when dropped.
            return Poll::Ready(Err(Self::reset_error()));
        }
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_this_machine_counts_as_loopback() {
        for local in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(local.parse().unwrap()), "{local}");
        }
        for remote in [
            "10.0.0.1",
            "192.168.1.2",
            "8.8.8.8",
            "::ffff:10.0.0.1",
            "fe80::1",
        ] {
            assert!(!is_loopback(remote.parse().unwrap()), "{remote}");
        }
    }
}
