//! Settings of the gallery's life: how long a deletion stays visible in `allitems` as a
//! `status:"deleted"` tombstone (`--tombstone-ttl`, default 300 s), and how many recordings
//! are generated (`--recordings`, default 8).

/// Live-change settings (`micloud-sim` flags, flattened into its command line).
#[derive(clap::Args, Clone, Debug)]
pub struct LiveConfig {
    /// Seconds a deleted or recycled item stays in `allitems` as a `status:"deleted"`
    /// tombstone before it is compacted away.
    #[arg(long = "tombstone-ttl", default_value_t = 300)]
    pub tombstone_ttl_secs: u64,
    /// Number of generated voice and call recordings.
    #[arg(long, default_value_t = 8)]
    pub recordings: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            tombstone_ttl_secs: 300,
            recordings: 8,
        }
    }
}

impl LiveConfig {
    pub fn tombstone_ttl_ms(&self) -> i64 {
        self.tombstone_ttl_secs
            .saturating_mul(1000)
            .min(i64::MAX as u64) as i64
    }
}
