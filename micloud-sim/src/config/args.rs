//! The `micloud-sim` command line: every flag group, turned into a [`SimConfig`] and the
//! address to listen on. The binary parses it; so do tests that start the emulator in their
//! own process with the binary's flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::accounts::AccountsConfig;
use crate::config::faults::FaultConfig;
use crate::config::link::LinkConfig;
use crate::config::live::LiveConfig;
use crate::config::scale::ScaleConfig;
use crate::config::{
    SimConfig, DEFAULT_PASS_TOKEN, DEFAULT_TOKEN_TTL, DEFAULT_URL_TTL, DEFAULT_USER_ID,
};

/// The `micloud-sim` command line.
#[derive(clap::Parser, Debug)]
#[command(
    name = "micloud-sim",
    version,
    about = "Xiaomi Cloud gallery emulator (loopback HTTP)"
)]
pub struct Args {
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
    #[arg(long, default_value = DEFAULT_USER_ID)]
    user_id: String,
    /// The passToken that mints serviceTokens.
    #[arg(long, default_value = DEFAULT_PASS_TOKEN)]
    pass_token: String,
    /// serviceToken lifetime in seconds.
    #[arg(long, default_value_t = DEFAULT_TOKEN_TTL.as_secs())]
    token_ttl: u64,
    /// Lifetime of download URLs in seconds.
    #[arg(long, default_value_t = DEFAULT_URL_TTL.as_secs())]
    url_ttl: u64,
    /// Serve this folder (subfolders = albums) instead of a generated gallery.
    #[arg(long)]
    from_dir: Option<PathBuf>,
    #[command(flatten)]
    link: LinkConfig,
    #[command(flatten)]
    faults: FaultConfig,
    #[command(flatten)]
    accounts: AccountsConfig,
    #[command(flatten)]
    scale: ScaleConfig,
    #[command(flatten)]
    live: LiveConfig,
}

impl Args {
    /// The emulator these flags describe, and the address to listen on.
    pub fn into_config(self) -> (SimConfig, SocketAddr) {
        let config = SimConfig {
            seed: self.seed,
            albums: self.albums,
            items: self.items,
            user_id: self.user_id,
            pass_token: self.pass_token,
            token_ttl: Duration::from_secs(self.token_ttl),
            from_dir: self.from_dir,
            url_ttl: Duration::from_secs(self.url_ttl),
            link: self.link,
            faults: self.faults,
            accounts: self.accounts,
            scale: self.scale,
            live: self.live,
        };
        (config, self.listen)
    }
}
