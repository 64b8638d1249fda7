//! Everything the emulator can be told: [`SimConfig`] and the flag groups the `micloud-sim`
//! binary flattens into its command line ([`args::Args`]).
//!
//! A leaf: nothing here depends on another part of the emulator; the parts read these
//! values. Each group is a `clap::Args` struct whose `Default` equals the binary's defaults,
//! so an emulator started in-process (tests, `micloudfs mount --demo`) and the binary agree:
//! - [`link`]: latency, bandwidth, deep-page slowdown, Range, the public URL;
//! - [`faults`]: fault rates per kind, the fault seed, the stall time;
//! - [`accounts`]: accounts and the login flows each plays (`--account SPEC`);
//! - [`scale`]: body sizes and the fingerprint cache file;
//! - [`live`]: tombstone lifetime and the number of recordings.

pub mod accounts;
pub mod args;
pub mod faults;
pub mod link;
pub mod live;
pub mod scale;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::accounts::AccountsConfig;
use crate::config::faults::FaultConfig;
use crate::config::link::LinkConfig;
use crate::config::live::LiveConfig;
use crate::config::scale::ScaleConfig;

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
