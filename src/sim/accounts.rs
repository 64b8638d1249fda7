//! Accounts of the emulated passport and the login flows each one plays (to be filled).

/// Account settings (`micloud-sim` flags, flattened into its command line).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct AccountsConfig {}
