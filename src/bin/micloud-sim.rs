//! `micloud-sim`: run the Xiaomi Cloud gallery emulator on a loopback port.
//!
//! Prints exactly one line, `listening on http://ADDR`, on stdout once it serves (with the real
//! port when `--listen` asks for port 0), logs to stderr (`RUST_LOG`, default `info`), and runs
//! until SIGINT/SIGTERM. Exit codes: 2 for bad flags (clap), 1 when the emulator cannot start
//! (address in use, unusable `--from-dir`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use micloudfs::sim::{self, SimConfig};

#[derive(Parser, Debug)]
#[command(
    name = "micloud-sim",
    version,
    about = "Xiaomi Cloud gallery emulator (loopback HTTP)"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8765")]
    listen: SocketAddr,
    /// Seed of the generated gallery (same seed, same gallery).
    #[arg(long, default_value_t = SimConfig::default().seed)]
    seed: u64,
    /// Number of user albums.
    #[arg(long, default_value_t = SimConfig::default().albums)]
    albums: usize,
    /// Number of items over all albums.
    #[arg(long, default_value_t = SimConfig::default().items)]
    items: usize,
    /// Account id (the `userId` cookie).
    #[arg(long, default_value = sim::DEFAULT_USER_ID)]
    user_id: String,
    /// The passToken that mints serviceTokens.
    #[arg(long, default_value = sim::DEFAULT_PASS_TOKEN)]
    pass_token: String,
    /// serviceToken lifetime in seconds.
    #[arg(long, default_value_t = sim::DEFAULT_TOKEN_TTL.as_secs())]
    token_ttl: u64,
    /// Lifetime of download URLs in seconds.
    #[arg(long, default_value_t = sim::DEFAULT_URL_TTL.as_secs())]
    url_ttl: u64,
    /// Serve this folder (subfolders = albums) instead of a generated gallery.
    #[arg(long)]
    from_dir: Option<PathBuf>,
    #[command(flatten)]
    link: sim::LinkConfig,
    #[command(flatten)]
    faults: sim::FaultConfig,
    #[command(flatten)]
    accounts: sim::AccountsConfig,
    #[command(flatten)]
    scale: sim::ScaleConfig,
    #[command(flatten)]
    live: sim::LiveConfig,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = SimConfig {
        seed: args.seed,
        albums: args.albums,
        items: args.items,
        user_id: args.user_id,
        pass_token: args.pass_token,
        token_ttl: Duration::from_secs(args.token_ttl),
        from_dir: args.from_dir,
        url_ttl: Duration::from_secs(args.url_ttl),
        link: args.link,
        faults: args.faults,
        accounts: args.accounts,
        scale: args.scale,
        live: args.live,
    };
    let listen = args.listen;
    let handle = match sim::start(config, listen).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("micloud-sim: cannot start: {e}{}", advice(&e, listen));
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "listening on {}", handle.base_url())
        .and_then(|_| out.flush())
        .is_err()
    {
        eprintln!("micloud-sim: cannot write to stdout");
    }
    drop(out);
    wait_for_signal().await;
    tracing::info!("shutting down");
    if let Err(e) = handle.shutdown().await {
        eprintln!("micloud-sim: {e}");
        std::process::exit(1);
    }
}

/// What to do about a failed start, for the errors a user can fix.
fn advice(e: &std::io::Error, listen: SocketAddr) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            " ({listen} is taken, perhaps by another micloud-sim: stop it, or pick another \
             port with --listen, e.g. --listen 127.0.0.1:0 for a free one)"
        ),
        std::io::ErrorKind::PermissionDenied => {
            format!(" (this user may not listen on {listen}: use a port above 1023)")
        }
        std::io::ErrorKind::NotFound => " (give --from-dir an existing folder)".to_string(),
        _ => String::new(),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
