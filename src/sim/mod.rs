//! micloud-sim: an emulator of the Xiaomi Cloud gallery protocol. (HELPER: replace.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_USER_ID: &str = "1234567890";
pub const DEFAULT_PASS_TOKEN: &str = "V1:sim-pass-token";

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub albums: usize,
    pub items: usize,
    pub user_id: String,
    pub pass_token: String,
    /// serviceToken lifetime.
    pub token_ttl: Duration,
    /// Serve a real folder instead of a generated gallery.
    pub from_dir: Option<PathBuf>,
}

impl SimConfig {
    /// TEMPORARY stub until the sim branch lands.
    pub fn demo() -> Self {
        SimConfig {
            seed: 42,
            albums: 4,
            items: 60,
            user_id: DEFAULT_USER_ID.into(),
            pass_token: DEFAULT_PASS_TOKEN.into(),
            token_ttl: Duration::from_secs(600),
            from_dir: None,
        }
    }
}

/// A running emulator.
pub struct SimHandle {
    pub addr: SocketAddr,
}

impl SimHandle {
    /// `http://ADDR`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Binds `listen` and serves on the current tokio runtime until the handle is dropped.
pub async fn start(_config: SimConfig, _listen: SocketAddr) -> std::io::Result<SimHandle> {
    todo!()
}
