//! Gallery scale: realistic sizes, on-demand content, the fingerprint cache (to be filled).

/// Scale settings (`micloud-sim` flags, flattened into its command line).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ScaleConfig {}
