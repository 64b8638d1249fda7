//! micloud-sim: a loopback emulator of the Xiaomi Cloud gallery protocol.
//!
//! One HTTP server plays i.mi.com, the account passport and the KSS file nodes, following
//! `shared/xiaomi-gallery-api.md`. It is used by micloudfs's tests and by `micloudfs mount
//! --demo`, and ships as the `micloud-sim` binary. It shares no code with the client (a crate
//! of its own): it writes its JSON independently, so a misreading of the protocol cannot hide
//! by being mirrored on both sides.
//!
//! Folders by part. Between files, dependencies point one way: there is no import cycle at
//! all (`tests/import_graph.rs` in the workspace holds it). From the top down:
//! - [`server`] routes: which handler answers which path, and the middleware order;
//! - the handlers, by part: [`protocol`] (i.mi.com's listings, cursors, status, recordings,
//!   the three-step download, its JSON and its signed URLs), [`passport`] (the login flows),
//!   [`control`] (the loopback-only `/_sim/` API), [`link`] (latency, bandwidth and injected
//!   faults);
//! - [`http`]: the shared state, the session gate, the extractors and the reply helpers every
//!   handler uses;
//! - each part's state, in files that know nothing of HTTP so that `http` can hold it: the
//!   passport's sessions, accounts and logins in progress, the URL signer, the counters, the
//!   fault draws;
//! - [`build`]: the gallery made from a seed or a folder, fingerprinted (with its cache file);
//!   [`bytes`]: the bodies (JPEG, MP4, large shared-prefix bodies), made on demand;
//! - [`model`]: albums, items, recordings and their indexes, and how they change; [`config`]:
//!   every setting and flag. Both are leaves.
//!
//! [`start`] builds the gallery (fingerprints from the cache file, or computed on all cores),
//! binds, and serves on the current tokio runtime until the [`SimHandle`] is dropped or
//! [`SimHandle::shutdown`] is awaited. 100 000 items with realistic sizes are ready in about
//! 1.3 s (release, no cache file) or 0.8 s (with it), at about 100 MiB peak memory
//! (`scripts/sim-scale.sh`).

mod build;
mod bytes;
mod config;
mod control;
mod http;
mod link;
mod model;
mod passport;
mod protocol;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use build::from_dir::FromDirError;
pub use build::BuildError as SimError;
pub use config::accounts::{AccountSpec, AccountsConfig, DEFAULT_PASSWORD};
pub use config::args::Args;
pub use config::faults::FaultConfig;
pub use config::link::{LinkConfig, Profile, RangeMode};
pub use config::live::LiveConfig;
pub use config::scale::{ScaleConfig, SizeMode};
pub use config::{
    SimConfig, DEFAULT_PASS_TOKEN, DEFAULT_TOKEN_TTL, DEFAULT_URL_TTL, DEFAULT_USER_ID,
};
pub use control::stats::SimStats;

use http::state::{App, Shared};
use link::throttle::{Caps, Conn, ShapedListener};

/// A running emulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    app: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl SimHandle {
    /// `http://ADDR`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the counters (same as `GET /_sim/stats`).
    pub fn stats(&self) -> SimStats {
        self.app.stats.snapshot()
    }

    /// A `Cookie` header value (`userId=..; serviceToken=..`) for a fresh live session, as if
    /// the login chain had run (not counted as a token exchange). For tests of later stages.
    pub fn session_cookie(&self) -> String {
        let user = &self.app.config.user_id;
        let token = self
            .app
            .sessions
            .issue_token(user, self.app.config.token_ttl);
        format!("userId={user}; serviceToken={token}")
    }

    /// Stop accepting, finish in-flight requests, and wait for the server task.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds `listen` and serves on the current tokio runtime until the handle is dropped.
pub async fn start(config: SimConfig, listen: SocketAddr) -> std::io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let cfg = config.clone();
    let started = std::time::Instant::now();
    let (gallery, fingerprinted) = tokio::task::spawn_blocking(move || build::gallery(&cfg))
        .await
        .map_err(std::io::Error::other)?
        .map_err(|e| match e {
            SimError::FromDir(FromDirError::Io { ref source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                std::io::Error::new(std::io::ErrorKind::NotFound, e)
            }
            other => std::io::Error::new(std::io::ErrorKind::InvalidInput, other),
        })?;
    tracing::info!(
        %addr,
        albums = gallery.albums.len(),
        items = gallery.items.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        fingerprints_cached = fingerprinted.cached,
        fingerprints_computed = fingerprinted.computed,
        "micloud-sim ready"
    );
    let link = config.link.effective();
    let caps = Caps::new(link.per_conn, link.total);
    let app = Arc::new(App::new(config, gallery, addr));
    app.stats
        .count("fingerprints.cached", fingerprinted.cached as u64);
    app.stats
        .count("fingerprints.computed", fingerprinted.computed as u64);
    let (tx, rx) = oneshot::channel::<()>();
    let router = server::router(app.clone());
    // Like any production HTTP server, answer without Nagle's delay: a response written in
    // two segments would otherwise wait for the client's delayed ACK (40 ms a request).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let listener = ShapedListener::new(listener, caps);
    let router = router.into_make_service_with_connect_info::<Conn>();
    let closing = app.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
                closing.faults.close();
            })
            .await
    });
    Ok(SimHandle {
        addr,
        app,
        shutdown: Some(tx),
        task: Some(task),
    })
}
