//! Seeded fault injection (to be filled).

/// Fault settings (`micloud-sim` flags, flattened into its command line).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct FaultConfig {}
