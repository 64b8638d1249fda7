//! The command line: `login`, `logout`, `whoami`, `accounts`, `mount`, `unmount`, `refresh`,
//! `ls`, `stats`, `cache`. Wiring only; the work is in the layers.
//!
//! Every failure ends in one line on stderr that says what happened and what to do, and
//! exit code 1 (2 for a wrong flag, from clap).

mod accounts;
mod cache;
mod cachedir;
mod catalog_cmd;
mod daemon;
mod interactive;
mod live;
mod login;
mod logwriter;
mod mount;
mod mountpoint;
mod mounttable;
mod progress;
mod ready;
mod signals;
mod snapshot;
mod status;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::account::Region;
use crate::content::MinFree;

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
    /// Log in to a Xiaomi account and store it (never the password).
    Login(LoginArgs),
    /// Forget a stored account (removes its stored credentials).
    Logout(LogoutArgs),
    /// Show who an account is: id, nickname, region, gallery size and item count.
    Whoami(WhoamiArgs),
    /// List the stored accounts.
    Accounts(ConfigArgs),
    /// Mount the gallery (or the built-in demo gallery) on an empty directory.
    Mount(MountArgs),
    /// Unmount a micloudfs mount (any other file system is refused).
    Unmount(UnmountArgs),
    /// Make a running mount refresh its catalog now, and wait until it has.
    Refresh(RefreshArgs),
    /// List a folder of the tree from the catalog, without mounting.
    Ls(LsArgs),
    /// Counts and bytes per album, type and year, and how much is cached, from the catalog.
    Stats(CatalogArgs),
    /// The state a mount last reported: last sync and its result, incomplete albums, items,
    /// bytes cached (its status file).
    Status(StatusArgs),
    /// Look after the cache of downloaded originals.
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// Where the catalog of an account is (for `ls` and `stats`).
#[derive(Args, Debug)]
pub(crate) struct CatalogArgs {
    /// The stored account [default: the only one].
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Show the built-in demo gallery's catalog (of `mount --demo`).
    #[arg(long, conflicts_with = "account")]
    pub demo: bool,
    /// The cache dir the mount uses [default: ~/.cache/micloudfs].
    #[arg(long, value_name = "DIR", env = "MICLOUDFS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Where the account is stored [default: ~/.config/micloudfs].
    #[arg(long, value_name = "DIR", env = "MICLOUDFS_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// Also show album 1000 (the private album), as `mount --include-private` does.
    #[arg(long)]
    pub include_private: bool,
    /// Time zone of by-date/ (as for `mount`).
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct LsArgs {
    /// A folder of the tree, e.g. albums/Camera or by-date/2024 [default: the top].
    #[arg(value_name = "PATH", default_value = "")]
    pub path: String,
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

#[derive(Args, Debug)]
pub(crate) struct RefreshArgs {
    /// The mount point of a running mount.
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,
    /// Give up waiting after this many seconds (the refresh goes on in the daemon).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    /// A running mount (it says where its status file is) [default: the status file of
    /// --cache-dir].
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: Option<PathBuf>,
    /// The cache dir the mount uses [default: ~/.cache/micloudfs].
    #[arg(long, value_name = "DIR", env = "MICLOUDFS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print the status file as it is (JSON).
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
enum CacheCommand {
    /// Check every cached original against its SHA-1 (its file name) and report; exit code 1
    /// if anything is damaged, stray, or left over, unless --repair deleted it.
    Check(CacheCheckArgs),
}

#[derive(Args, Debug)]
pub(crate) struct CacheCheckArgs {
    /// Delete damaged objects, stray files and stale partial downloads (the next read of
    /// such a file downloads it again).
    #[arg(long)]
    pub repair: bool,
    /// The cache to check [default: ~/.cache/micloudfs].
    #[arg(long, value_name = "DIR", env = "MICLOUDFS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ConfigArgs {
    /// Where accounts are stored [default: ~/.config/micloudfs].
    #[arg(long, value_name = "DIR", env = "MICLOUDFS_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
}

/// Ways in (at most one): `--user-id` + `--pass-token`, `--cookie`, `--qr`, or the password
/// login (the default; `--user` and `--password-stdin` feed it without questions).
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("way").args(["pass_token", "cookie", "qr", "user"])))]
#[command(after_help = "Ways in:\n  \
    micloudfs login                                   asks for account and password (captcha and 2FA code if Xiaomi wants them)\n  \
    micloudfs login --qr                              shows a QR code to scan with the Xiaomi app\n  \
    micloudfs login --user-id ID --pass-token TOKEN   the passToken cookie of account.xiaomi.com\n  \
    micloudfs login --cookie 'userId=..; serviceToken=..'   a cookie of i.mi.com, kept alive while in use\n  \
    echo PASSWORD | micloudfs login --user ID --password-stdin   for scripts\n\n\
Regions: only accounts registered in mainland China (i.mi.com) still have a gallery; Xiaomi \
closed it for every other region in 2023 and deleted the photos. --region only names the \
account's host (and its passport policy).")]
pub(crate) struct LoginArgs {
    /// Your Xiaomi account id (the `userId` cookie of account.xiaomi.com), with --pass-token.
    #[arg(long, value_name = "ID", requires = "pass_token")]
    pub user_id: Option<String>,
    /// The `passToken` cookie of account.xiaomi.com (not the serviceToken of i.mi.com).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MICLOUDFS_PASS_TOKEN",
        hide_env_values = true,
        requires = "user_id"
    )]
    pub pass_token: Option<String>,
    /// A cookie pasted from a browser on i.mi.com: "userId=...; serviceToken=...".
    #[arg(
        long,
        value_name = "COOKIE",
        env = "MICLOUDFS_COOKIE",
        hide_env_values = true
    )]
    pub cookie: Option<String>,
    /// Log in by scanning a QR code with the Xiaomi app (drawn here and saved as a PNG).
    #[arg(long)]
    pub qr: bool,
    /// Password login: the account id, phone number or e-mail (asked when not given).
    #[arg(long, value_name = "ID|PHONE|EMAIL")]
    pub user: Option<String>,
    /// Password login: read the password from the first line of standard input.
    #[arg(long, requires = "user")]
    pub password_stdin: bool,
    /// Never ask anything; what is missing is an error (automatic when stdin is no terminal).
    #[arg(long)]
    pub no_input: bool,
    /// The name to store the account under [default: the existing name of the same user, else
    /// the user id].
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// The account's region: cn (mainland China), us, eu, in or sg; remembered. Only cn
    /// accounts still have a gallery (the others' were closed in 2023).
    #[arg(long, value_name = "REGION", value_parser = parse_region)]
    pub region: Option<Region>,
    /// The cloud's address, for an emulator or an unusual host (overrides --region's host).
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Args, Debug)]
pub(crate) struct LogoutArgs {
    /// The account to forget [default: the only one].
    #[arg(long, value_name = "NAME", conflicts_with = "all")]
    pub account: Option<String>,
    /// Forget every stored account.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Args, Debug)]
pub(crate) struct WhoamiArgs {
    /// The account to show [default: the only one].
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// The cloud's address [default: the one stored by `login`].
    #[arg(long, value_name = "URL")]
    pub api_base: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
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
    /// The stored account to mount [default: the only one].
    #[arg(long, value_name = "NAME", conflicts_with = "demo")]
    pub account: Option<String>,
    /// Replace the session's serviceToken when it is this old (a pasted cookie is renewed five
    /// times as often); it is also replaced whenever the service refuses it.
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub token_refresh: u64,
    /// Stay in the foreground and log to stderr; Ctrl-C unmounts.
    #[arg(short, long)]
    pub foreground: bool,
    /// Mount even on a folder that has files in it (they are hidden until unmounted).
    #[arg(long)]
    pub allow_non_empty: bool,
    /// Also show the private album (album 1000) as albums/Private.
    #[arg(long)]
    pub include_private: bool,
    /// Time zone for by-date/ when a photo has no EXIF date (an IANA name such as
    /// Asia/Shanghai) [default: this machine's].
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// Connections to the service for file bytes, prefetch included (one budget for the
    /// whole mount; reads a program waits on go first).
    #[arg(long, alias = "max-downloads", value_name = "N", default_value_t = crate::content::DEFAULT_MAX_CONNECTIONS as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_connections: u16,
    /// The most disk the cache of downloaded originals may use, e.g. 500MiB, 20GiB, 1T
    /// (the least recently read files are deleted to stay under it).
    #[arg(long, value_name = "SIZE", default_value = "10GiB", value_parser = parse_size)]
    pub max_cache_size: u64,
    /// Free space to keep on the cache's disk, a size (2GiB) or a share of the disk (5%);
    /// the least recently read files are deleted to keep it, and with nothing left to
    /// delete files are served without caching [default: 5% of the disk or 1GiB, whichever
    /// is smaller].
    #[arg(long, value_name = "SIZE|PERCENT", default_value = "default", value_parser = parse_min_free, hide_default_value = true)]
    pub min_free_space: MinFree,
    /// How long a read may wait without a byte of its file arriving before it fails with EIO
    /// (a dead network fails reads within this time; cached files keep working). A stuck
    /// request is abandoned and tried again after a third of it.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub io_timeout: u64,
    /// Log more (debug level); MICLOUDFS_LOG=<filter> sets any tracing filter.
    #[arg(short, long)]
    pub verbose: bool,
    /// Serve the catalog kept from an earlier mount without asking the service (cached files
    /// read as usual, others fail). An unreachable service implies it.
    #[arg(long)]
    pub offline: bool,
    /// How often the catalog is refreshed from the service while mounted (also on
    /// `micloudfs refresh MOUNTPOINT`).
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=604800))]
    pub refresh_interval: u64,
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

fn parse_region(s: &str) -> Result<Region, String> {
    s.parse()
}

fn parse_min_free(s: &str) -> Result<MinFree, String> {
    if s == "default" {
        return Ok(MinFree::Default);
    }
    s.parse()
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
        Command::Login(args) => login::login(args),
        Command::Logout(args) => accounts::logout(args),
        Command::Whoami(args) => accounts::whoami(args),
        Command::Accounts(args) => accounts::list(args),
        Command::Mount(args) => mount::mount(args),
        Command::Unmount(args) => mount::unmount(&args.mountpoint, args.lazy),
        Command::Cache(CacheCommand::Check(args)) => cache::check(args),
        Command::Refresh(args) => catalog_cmd::refresh(args),
        Command::Ls(args) => catalog_cmd::ls(args),
        Command::Stats(args) => catalog_cmd::stats(args),
        Command::Status(args) => catalog_cmd::status(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "micloudfs: {message}");
            ExitCode::FAILURE
        }
    }
}
