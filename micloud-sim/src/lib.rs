//! micloud-sim: a loopback emulator of the Xiaomi Cloud gallery protocol.
//!
//! One HTTP server plays i.mi.com, the account passport and the KSS file nodes (URL layout in
//! [`urls`]), following `shared/xiaomi-gallery-api.md`. It is used by the product's tests and
//! by `micloudfs mount --demo`, and ships as the `micloud-sim` binary.
//!
//! Module map (each file has one job):
//! - the gallery: [`rng`], [`generate`] (from a seed), [`from_dir`] (a real folder),
//!   [`gallery`] (albums, items, recordings and their indexes; one snapshot per request, see
//!   [`server::App::gallery`]), [`live`] (its changes: uploads, the recycle bin, renames);
//! - the bytes: [`content`] (bodies and fingerprints), [`jpeg`], [`mp4`], [`synth`] and
//!   [`sizes`] (realistic sizes from shared-prefix bodies), [`fpcache`] (the fingerprint cache
//!   file), [`scale`] (its flags);
//! - the protocol: [`server`] (router and helpers), [`listing`], [`incremental`] (`album/full`,
//!   `allitems`, `deleted_v2`), [`status`], [`recordings`], [`download`], [`range`], [`wire`]
//!   (the JSON shapes), [`urls`] (URL building and signing);
//! - the passport: [`session`] (tickets and serviceTokens), [`auth`] (the passToken chain,
//!   AutoRenewal), [`accounts`] (who may log in, and how), [`passport`] (password login),
//!   [`captcha`], [`identity`] (2FA), [`qr`];
//! - the link: [`shape`], [`bucket`], [`throttle`] (latency and bandwidth), [`faults`] and
//!   [`bodies`] (injected faults);
//! - the test bed: [`control`] and [`passport_control`] (the loopback-only `/_sim/` API),
//!   [`stats`] (counters).
//!
//! [`start`] builds the gallery (fingerprints from the cache file, or computed on all cores),
//! binds, and serves on the current tokio runtime until the [`SimHandle`] is dropped or
//! [`SimHandle::shutdown`] is awaited. 100 000 items with realistic sizes are ready in about
//! 1.3 s (release, no cache file) or 0.8 s (with it), at about 100 MiB peak memory
//! (`scripts/sim-scale.sh`).

#[path = "passport/accounts.rs"]
mod accounts;
#[path = "config/args.rs"]
mod args;
#[path = "passport/auth.rs"]
mod auth;
#[path = "link/bodies.rs"]
mod bodies;
#[path = "link/bucket.rs"]
mod bucket;
#[path = "passport/images.rs"]
mod captcha;
#[path = "bytes/mod.rs"]
mod content;
#[path = "control/gallery.rs"]
mod control;
#[path = "protocol/download.rs"]
mod download;
#[path = "link/faults.rs"]
mod faults;
#[path = "build/fpcache.rs"]
mod fpcache;
#[path = "build/from_dir.rs"]
mod from_dir;
#[path = "model/gallery.rs"]
mod gallery;
#[path = "build/generate.rs"]
mod generate;
#[path = "passport/identity.rs"]
mod identity;
#[path = "protocol/incremental.rs"]
mod incremental;
#[path = "bytes/jpeg.rs"]
mod jpeg;
#[path = "protocol/listing.rs"]
mod listing;
#[path = "model/live.rs"]
mod live;
#[path = "bytes/mp4.rs"]
mod mp4;
#[path = "passport/password.rs"]
mod passport;
#[path = "control/passport.rs"]
mod passport_control;
#[path = "passport/qr.rs"]
mod qr;
#[path = "protocol/range.rs"]
mod range;
#[path = "protocol/recordings.rs"]
mod recordings;
#[path = "model/rng.rs"]
mod rng;
#[path = "config/scale.rs"]
mod scale;
mod server;
#[path = "passport/session.rs"]
mod session;
#[path = "config/link.rs"]
mod shape;
#[path = "build/sizes.rs"]
mod sizes;
#[path = "control/stats.rs"]
mod stats;
#[path = "protocol/status.rs"]
mod status;
#[path = "bytes/synth.rs"]
mod synth;
#[path = "link/throttle.rs"]
mod throttle;
#[path = "protocol/urls.rs"]
mod urls;
#[path = "protocol/wire.rs"]
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use accounts::{AccountSpec, AccountsConfig, DEFAULT_PASSWORD};
pub use args::Args;
pub use faults::FaultConfig;
pub use from_dir::FromDirError;
pub use live::LiveConfig;
pub use scale::ScaleConfig;
pub use scale::SizeMode;
pub use shape::LinkConfig;
pub use shape::{Profile, RangeMode};
pub use stats::SimStats;

pub const DEFAULT_USER_ID: &str = "1234567890";
pub const DEFAULT_PASS_TOKEN: &str = "V1:sim-pass-token";

/// Default serviceToken lifetime.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(600);
/// Default lifetime of the signed download URLs (URL-A, URL-B, META).
pub const DEFAULT_URL_TTL: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Number of user albums (besides the system albums 1, 2 and 1000).
    pub albums: usize,
    /// Number of items over all albums.
    pub items: usize,
    pub user_id: String,
    pub pass_token: String,
    /// serviceToken lifetime.
    pub token_ttl: Duration,
    /// Serve a real folder instead of a generated gallery.
    pub from_dir: Option<PathBuf>,
    /// Lifetime of the signed download URLs.
    pub url_ttl: Duration,
    /// Link shaping (latency, bandwidth).
    pub link: LinkConfig,
    /// Fault injection.
    pub faults: FaultConfig,
    /// Accounts and the login flows they play.
    pub accounts: AccountsConfig,
    /// Gallery scale and sizes.
    pub scale: ScaleConfig,
    /// Live changes (tombstone lifetime) and the recordings.
    pub live: LiveConfig,
}

impl Default for SimConfig {
    /// The demo gallery (see [`SimConfig::demo`]).
    fn default() -> Self {
        SimConfig {
            seed: 42,
            albums: 4,
            items: 60,
            user_id: DEFAULT_USER_ID.to_string(),
            pass_token: DEFAULT_PASS_TOKEN.to_string(),
            token_ttl: DEFAULT_TOKEN_TTL,
            from_dir: None,
            url_ttl: DEFAULT_URL_TTL,
            link: LinkConfig::default(),
            faults: FaultConfig::default(),
            accounts: AccountsConfig::default(),
            scale: ScaleConfig::demo(),
            live: LiveConfig::default(),
        }
    }
}

impl SimConfig {
    /// Seed 42, 4 user albums (one empty), 60 items including every awkward case.
    pub fn demo() -> Self {
        SimConfig::default()
    }
}

/// Why the emulator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    FromDir(#[from] FromDirError),
    #[error("building content: {0}")]
    Content(#[from] content::ContentError),
}

/// A running emulator.
pub struct SimHandle {
    pub addr: SocketAddr,
    app: server::Shared,
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

/// Build the gallery described by `config` (blocking: fingerprints every item, from the cache
/// file when it is valid).
fn build_gallery(
    config: &SimConfig,
) -> Result<(gallery::Gallery, content::Fingerprinted), SimError> {
    let (albums, mut items) = match &config.from_dir {
        Some(dir) => from_dir::scan(config.seed, dir)?,
        None => generate::generate(config.seed, config.albums, config.items, config.scale.sizes),
    };
    let fp = content::fingerprint_cached(&mut items, config)?;
    let mut gallery = gallery::Gallery::new(albums, items);
    gallery.recordings = recordings::generate(config.seed, config.live.recordings)?;
    Ok((gallery, fp))
}

/// Binds `listen` and serves on the current tokio runtime until the handle is dropped.
pub async fn start(config: SimConfig, listen: SocketAddr) -> std::io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let cfg = config.clone();
    let started = std::time::Instant::now();
    let (gallery, fingerprinted) = tokio::task::spawn_blocking(move || build_gallery(&cfg))
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
    let passport = passport::Passport::new(&config.user_id, &config.pass_token, &config.accounts);
    let config_faults = config.faults.clone();
    let caps = config.link.caps();
    let app = Arc::new(server::App {
        config,
        gallery: std::sync::RwLock::new(Arc::new(gallery)),
        sessions: session::Sessions::default(),
        signer: urls::Signer::default(),
        stats: stats::Stats::default(),
        content: content::ContentStore::default(),
        bound: addr,
        passport,
        faults: faults::Faults::new(&config_faults),
    });
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
    let listener = throttle::ShapedListener::new(listener, caps);
    let router = router.into_make_service_with_connect_info::<throttle::Conn>();
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
