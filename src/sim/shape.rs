//! The shaped link: per-request latency, bandwidth caps, deep-page slowdown (to be filled).

/// Link shaping settings (`micloud-sim` flags, flattened into its command line).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct LinkConfig {}
