//! `micloud-sim`: run the Xiaomi Cloud gallery emulator on a loopback port.
//!
//! Prints exactly one line, `listening on http://ADDR`, on stdout once it serves (with the real
//! port when `--listen` asks for port 0), logs to stderr (`RUST_LOG`, default `info`), and runs
//! until SIGINT/SIGTERM. Exit codes: 2 for bad flags (clap), 1 when the emulator cannot start
//! (address in use, unusable `--from-dir`). The flags are [`micloud_sim::Args`].

use std::io::Write;
use std::net::SocketAddr;

use clap::Parser;
use micloud_sim::{self as sim, Args};

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
    let (config, listen) = args.into_config();
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
