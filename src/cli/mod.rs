//! The command line: `login`, `mount`, `unmount`. Wiring only; the work is in the layers.
//!
//! Every failure ends in one line on stderr that says what happened and what to do, and
//! exit code 1 (2 for a wrong flag, from clap).

mod account;
mod daemon;
mod mount;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use account::{Account, DEFAULT_API_BASE};

#[derive(Parser, Debug)]
#[command(
    name = "micloudfs",
    version,
    about = "Mount a Xiaomi Cloud Gallery as a read-only folder: originals fetched lazily, \
             verified against their SHA-1, cached"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Store the account (userId + passToken) after checking that it works.
    Login(LoginArgs),
    /// Mount the gallery (or the built-in demo gallery) on an empty directory.
    Mount(MountArgs),
    /// Unmount a micloudfs mount.
    Unmount(UnmountArgs),
}

#[derive(Args, Debug)]
struct LoginArgs {
    /// Your Xiaomi account id (the `userId` cookie of account.xiaomi.com).
    #[arg(long, value_name = "ID")]
    user_id: String,
    /// The `passToken` cookie of account.xiaomi.com (not the serviceToken of i.mi.com).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MICLOUDFS_PASS_TOKEN",
        hide_env_values = true
    )]
    pass_token: String,
    /// The cloud's address: https://i.mi.com, a regional host, or an emulator.
    #[arg(long, value_name = "URL", default_value = DEFAULT_API_BASE)]
    api_base: String,
    /// Where the account is stored [default: ~/.config/micloudfs].
    #[arg(long, value_name = "DIR", env = "MICLOUDFS_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct MountArgs {
    /// The directory to mount on.
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,
    /// Mount the built-in demo gallery (an emulator in the same process); no account needed.
    #[arg(long)]
    pub demo: bool,
    /// The cloud's address [default: the one stored by `login`].
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    /// Where downloaded originals and the log are kept [default: ~/.cache/micloudfs].
    #[arg(long, value_name = "DIR", env = "MICLOUDFS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Where the account is stored [default: ~/.config/micloudfs].
    #[arg(long, value_name = "DIR", env = "MICLOUDFS_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// Stay in the foreground and log to stderr; Ctrl-C unmounts.
    #[arg(short, long)]
    pub foreground: bool,
    /// Also show the private album (album 1000) as albums/Private.
    #[arg(long)]
    pub include_private: bool,
    /// Time zone for by-date/ when a photo has no EXIF date (an IANA name such as
    /// Asia/Shanghai) [default: this machine's].
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// How many files are downloaded at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_downloads: u16,
    /// The most disk the cache of downloaded originals may use, e.g. 500MiB, 20GiB, 1T
    /// (the least recently read files are deleted to stay under it).
    #[arg(long, value_name = "SIZE", default_value = "10GiB", value_parser = parse_size)]
    pub max_cache_size: u64,
    /// How long one request may wait for the service (connecting, or a pause in the middle of
    /// a download) before it is abandoned and tried again.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub io_timeout: u64,
    /// Log more (debug level); MICLOUDFS_LOG=<filter> sets any tracing filter.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Args, Debug)]
struct UnmountArgs {
    /// The mount point.
    #[arg(value_name = "MOUNTPOINT")]
    mountpoint: PathBuf,
    /// Detach now even if the mount is busy (files open); it goes away once they close.
    #[arg(short = 'z', long)]
    lazy: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("{s:?} is not a size; write for example 500MiB, 20GiB or 1TB"))
}

/// Runs the command line; the process exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Login(args) => login(args),
        Command::Mount(args) => mount::mount(args),
        Command::Unmount(args) => mount::unmount(&args.mountpoint, args.lazy),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("micloudfs: {message}");
            ExitCode::FAILURE
        }
    }
}

fn login(args: LoginArgs) -> Result<(), String> {
    let user_id = args.user_id.trim().to_string();
    if user_id.is_empty() || !user_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "--user-id {:?} is not an account id: it is the number in the userId cookie of \
             account.xiaomi.com",
            args.user_id
        ));
    }
    let pass_token = args.pass_token.trim().to_string();
    if pass_token.is_empty() {
        return Err(
            "--pass-token is empty: copy the passToken cookie of account.xiaomi.com".into(),
        );
    }
    let config_dir = account::config_dir(args.config_dir)?;
    let account = Account {
        user_id,
        pass_token,
        api_base: args.api_base,
    };
    let client = crate::cloud::HttpGalleryClient::new(crate::cloud::ClientConfig::new(
        &account.api_base,
        account.credentials(),
    ))
    .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    rt.block_on(client.check_credentials())
        .map_err(|e| format!("login failed: {e}"))?;
    let path = account.save(&config_dir)?;
    println!(
        "Logged in as {}; the account is stored in {} (mode 0600).",
        account.user_id,
        path.display()
    );
    Ok(())
}
