//! Stored accounts: what `micloudfs login` keeps, and where.
//!
//! Layout of the config dir (`--config-dir`, else `$XDG_CONFIG_HOME/micloudfs`, else
//! `~/.config/micloudfs`), a 0700 directory:
//! - `accounts/<NAME>.json`, mode 0600: one account (name, `userId`, region, API host and
//!   either the `passToken` or a pasted i.mi.com `serviceToken`). Never a password.
//! - `device_id`, mode 0600: this machine's `wb_<uuid>` device id, sent at every login so
//!   that "trust this device" (spec §2.5) lasts.
//! - `login/`: the captcha and QR images of a login in progress.
//!
//! Files are written atomically (a 0600 temporary file, synced, renamed over the old one), so
//! a crash never leaves a half-written or world-readable credential. The single
//! `account.json` of earlier versions is moved to `accounts/<userId>.json` the first time the
//! store is opened.
//!
//! Several accounts live side by side; commands pick one with `--account NAME`, and default
//! to the only one. A running mount re-reads its account's file when its session dies
//! ([`StoredCredentials`]), so a new `micloudfs login` revives it without a remount.
//!
//! Errors are [`AccountError`]s; each message names the file or folder and what to do.

pub mod region;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cloud::{CredentialSource, Credentials, Secret};
pub use region::{no_gallery_note, passport_base_for, Region, PASSPORT_BASE};

const ACCOUNTS_DIR: &str = "accounts";
const LEGACY_FILE: &str = "account.json";
const DEVICE_FILE: &str = "device_id";
/// Longest account name.
const MAX_NAME: usize = 64;

/// What can go wrong with the stored accounts and their folders.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(
        "cannot tell where to keep files: neither ${var} nor $HOME is set; pass the directory \
         with a flag"
    )]
    NoHome { var: &'static str },
    #[error(
        "the stored account {name:?} holds no token; run `micloudfs login --account {name}` again"
    )]
    NoToken { name: String },
    #[error(
        "{name:?} is not an account name: use up to {MAX_NAME} letters, digits, '.', '_', '-' \
         or '@', not starting with a dot"
    )]
    BadName { name: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the account file {} is damaged ({source}); run `micloudfs login --account {name}` again",
        path.display()
    )]
    Damaged {
        path: PathBuf,
        name: String,
        source: serde_json::Error,
    },
    #[error(
        "no account named {name:?} is stored in {}{known}; log in with `micloudfs login \
         --account {name}`",
        dir.display()
    )]
    NotStored {
        name: String,
        dir: PathBuf,
        /// ` (stored: a, b)`, or empty.
        known: String,
    },
    #[error(
        "no account is stored in {}: run `micloudfs login` first (see `micloudfs login --help` \
         for the ways in)",
        dir.display()
    )]
    NoneStored { dir: PathBuf },
    #[error("the account {name:?} vanished while it was being read")]
    Vanished { name: String },
    #[error(
        "{} accounts are stored ({}); choose one with --account NAME",
        names.len(),
        names.join(", ")
    )]
    Several { names: Vec<String> },
    #[error("cannot encode the account {name:?}: {source}")]
    Encode {
        name: String,
        source: serde_json::Error,
    },
    #[error("cannot save {}: {source}", path.display())]
    Save {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the account file {} is damaged ({source}); remove it and run `micloudfs login` again",
        path.display()
    )]
    LegacyDamaged {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot remove the old {}: {source}", path.display())]
    LegacyRemove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The command line reports every failure as one line of text.
impl From<AccountError> for String {
    fn from(e: AccountError) -> String {
        e.to_string()
    }
}

/// `--config-dir`, else `$XDG_CONFIG_HOME/micloudfs`, else `~/.config/micloudfs`.
pub fn config_dir(flag: Option<PathBuf>) -> Result<PathBuf, AccountError> {
    xdg_dir(flag, "XDG_CONFIG_HOME", ".config")
}

/// `--cache-dir`, else `$XDG_CACHE_HOME/micloudfs`, else `~/.cache/micloudfs`.
pub fn cache_dir(flag: Option<PathBuf>) -> Result<PathBuf, AccountError> {
    xdg_dir(flag, "XDG_CACHE_HOME", ".cache")
}

fn xdg_dir(
    flag: Option<PathBuf>,
    var: &'static str,
    fallback: &str,
) -> Result<PathBuf, AccountError> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    if let Some(base) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(base).join("micloudfs"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(fallback).join("micloudfs")),
        None => Err(AccountError::NoHome { var }),
    }
}

/// One stored account.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Account {
    /// The name commands know it by (`--account`); the user id unless chosen.
    #[serde(default)]
    pub name: String,
    pub user_id: String,
    /// `None` when `api_base` is not a Xiaomi regional host (an emulator, `--api-base`).
    #[serde(default)]
    pub region: Option<Region>,
    pub api_base: String,
    /// The long-lived passport token (spec §2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_token: Option<String>,
    /// A pasted i.mi.com `serviceToken`, kept alive by AutoRenewal (spec §2.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_token: Option<String>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("user_id", &self.user_id)
            .field("region", &self.region)
            .field("api_base", &self.api_base)
            .field(
                "pass_token",
                &self.pass_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "service_token",
                &self.service_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Account {
    /// The credentials the session uses; an error if the file holds neither token.
    pub fn credentials(&self) -> Result<Credentials, AccountError> {
        let secret = match (&self.pass_token, &self.service_token) {
            (Some(p), _) if !p.is_empty() => Secret::PassToken(p.clone()),
            (_, Some(s)) if !s.is_empty() => Secret::ServiceToken(s.clone()),
            _ => {
                return Err(AccountError::NoToken {
                    name: self.name.clone(),
                })
            }
        };
        Ok(Credentials {
            user_id: self.user_id.clone(),
            secret,
        })
    }

    /// How the session is kept, in words.
    pub fn kind(&self) -> &'static str {
        if self.pass_token.as_deref().is_some_and(|p| !p.is_empty()) {
            "passToken (a fresh serviceToken is minted as needed)"
        } else {
            "pasted i.mi.com cookie (kept alive by AutoRenewal)"
        }
    }

    /// The region's code, or `custom` for another host.
    pub fn region_label(&self) -> String {
        self.region
            .map(|r| r.code().to_string())
            .unwrap_or_else(|| "custom".to_string())
    }
}

/// Checks an account name: letters, digits, `.`, `_`, `-`, `@`, not starting with a dot.
pub fn check_name(name: &str) -> Result<(), AccountError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if name.is_empty() || name.len() > MAX_NAME || !ok_chars || name.starts_with('.') {
        return Err(AccountError::BadName {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// The accounts of one config dir.
#[derive(Clone, Debug)]
pub struct AccountStore {
    dir: PathBuf,
}

impl AccountStore {
    /// Opens the store (nothing is created until something is saved) and moves a legacy
    /// `account.json` into it.
    pub fn open(config_dir: &Path) -> Result<Self, AccountError> {
        let store = AccountStore {
            dir: config_dir.to_path_buf(),
        };
        store.migrate_legacy()?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of account `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(ACCOUNTS_DIR).join(format!("{name}.json"))
    }

    /// Where login images (captcha, QR) go: a 0700 directory.
    pub fn login_dir(&self) -> Result<PathBuf, AccountError> {
        let dir = self.dir.join("login");
        make_private_dir(&dir)?;
        Ok(dir)
    }

    /// The names of the stored accounts, sorted.
    pub fn names(&self) -> Result<Vec<String>, AccountError> {
        let dir = self.dir.join(ACCOUNTS_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(AccountError::Read { path: dir, source }),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".json")?;
                check_name(stem).ok().map(|_| stem.to_string())
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Account `name`; `Ok(None)` if there is none.
    pub fn load(&self, name: &str) -> Result<Option<Account>, AccountError> {
        check_name(name)?;
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Account>(&bytes) {
                Ok(mut account) => {
                    account.name = name.to_string();
                    Ok(Some(account))
                }
                Err(source) => Err(AccountError::Damaged {
                    path,
                    name: name.to_string(),
                    source,
                }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AccountError::Read { path, source }),
        }
    }

    /// The account a command means: `--account NAME`, else the only one stored.
    pub fn resolve(&self, name: Option<&str>) -> Result<Account, AccountError> {
        if let Some(name) = name {
            return self.load(name)?.ok_or_else(|| {
                let names = self.names().unwrap_or_default();
                let known = if names.is_empty() {
                    String::new()
                } else {
                    format!(" (stored: {})", names.join(", "))
                };
                AccountError::NotStored {
                    name: name.to_string(),
                    dir: self.dir.clone(),
                    known,
                }
            });
        }
        let names = self.names()?;
        match names.as_slice() {
            [] => Err(AccountError::NoneStored {
                dir: self.dir.clone(),
            }),
            [only] => self
                .load(only)?
                .ok_or_else(|| AccountError::Vanished { name: only.clone() }),
            _ => Err(AccountError::Several { names }),
        }
    }

    /// The name a new login of `user_id` is stored under when no `--account` is given: the
    /// stored account of that user if there is one, else the user id.
    pub fn name_for(&self, user_id: &str) -> Result<String, AccountError> {
        for name in self.names()? {
            if let Some(a) = self.load(&name)? {
                if a.user_id == user_id {
                    return Ok(name);
                }
            }
        }
        Ok(user_id.to_string())
    }

    /// Writes the account atomically, mode 0600.
    pub fn save(&self, account: &Account) -> Result<PathBuf, AccountError> {
        check_name(&account.name)?;
        let json = serde_json::to_vec_pretty(account).map_err(|source| AccountError::Encode {
            name: account.name.clone(),
            source,
        })?;
        let path = self.path(&account.name);
        write_private(&path, &json)?;
        Ok(path)
    }

    /// Removes account `name`; whether it existed.
    pub fn remove(&self, name: &str) -> Result<bool, AccountError> {
        check_name(name)?;
        let path = self.path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(AccountError::Remove { path, source }),
        }
    }

    /// This machine's device id, created on first use.
    pub fn device_id(&self) -> Result<String, AccountError> {
        let path = self.dir.join(DEVICE_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let id = text.trim();
            if id.starts_with("wb_") && id.len() > 3 {
                return Ok(id.to_string());
            }
        }
        let id = format!("wb_{}", uuid_like());
        write_private(&path, id.as_bytes())?;
        Ok(id)
    }

    fn migrate_legacy(&self) -> Result<(), AccountError> {
        let legacy = self.dir.join(LEGACY_FILE);
        let Ok(bytes) = std::fs::read(&legacy) else {
            return Ok(());
        };
        let mut account: Account = match serde_json::from_slice(&bytes) {
            Ok(a) => a,
            Err(source) => {
                return Err(AccountError::LegacyDamaged {
                    path: legacy,
                    source,
                })
            }
        };
        if account.name.is_empty() {
            account.name = account.user_id.clone();
        }
        if account.region.is_none() {
            account.region = Region::of_api_base(&account.api_base);
        }
        if self.load(&account.name)?.is_none() {
            self.save(&account)?;
        }
        if let Err(source) = std::fs::remove_file(&legacy) {
            return Err(AccountError::LegacyRemove {
                path: legacy,
                source,
            });
        }
        tracing::info!(account = %account.name, "moved the stored account to the accounts/ folder");
        Ok(())
    }
}

/// A running mount's view of its stored account: re-read when the session needs it.
pub struct StoredCredentials {
    store: AccountStore,
    name: String,
}

impl StoredCredentials {
    pub fn new(store: AccountStore, name: &str) -> Self {
        StoredCredentials {
            store,
            name: name.to_string(),
        }
    }
}

impl CredentialSource for StoredCredentials {
    fn reload(&self) -> Option<Credentials> {
        match self.store.load(&self.name) {
            Ok(Some(a)) => a.credentials().ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        }
    }

    fn renewed(&self, credentials: &Credentials) {
        let Ok(Some(mut account)) = self.store.load(&self.name) else {
            return;
        };
        if account.user_id != credentials.user_id {
            return;
        }
        match &credentials.secret {
            // Only a cookie account is updated with a renewed cookie.
            Secret::ServiceToken(token) if account.pass_token.is_none() => {
                account.service_token = Some(token.clone());
            }
            // A rotated passToken replaces the stored one (a passToken account only).
            Secret::PassToken(token) if account.pass_token.is_some() => {
                account.pass_token = Some(token.clone());
            }
            _ => return,
        }
        if let Err(e) = self.store.save(&account) {
            tracing::warn!("cannot keep the renewed credentials: {e}");
        }
    }
}

fn make_private_dir(dir: &Path) -> Result<(), AccountError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| AccountError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes `bytes` to `path` atomically with mode 0600 (parents created 0700).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AccountError> {
    crate::private_file::write(path, bytes).map_err(|source| AccountError::Save {
        path: path.to_path_buf(),
        source,
    })
}

fn uuid_like() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn account(name: &str, uid: &str) -> Account {
        Account {
            name: name.into(),
            user_id: uid.into(),
            region: Some(Region::Cn),
            api_base: Region::Cn.api_base().into(),
            pass_token: Some("V1:secret".into()),
            service_token: None,
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn saved_account_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("cfg");
        let store = AccountStore::open(&cfg).unwrap();
        let a = account("home", "42");
        let path = store.save(&a).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&cfg.join(ACCOUNTS_DIR)), 0o700);
        assert_eq!(store.load("home").unwrap().unwrap(), a);
        assert!(store.load("other").unwrap().is_none());
        std::fs::write(store.path("home"), b"{oops").unwrap();
        let e = store.load("home").unwrap_err();
        assert!(matches!(e, AccountError::Damaged { .. }), "{e:?}");
        assert!(e.to_string().contains("micloudfs login"), "{e}");
    }

    #[test]
    fn the_only_account_is_the_default_and_several_need_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(dir.path()).unwrap();
        let e = store.resolve(None).unwrap_err();
        assert!(matches!(e, AccountError::NoneStored { .. }), "{e:?}");
        assert!(e.to_string().contains("micloudfs login"), "{e}");
        store.save(&account("a", "1")).unwrap();
        assert_eq!(store.resolve(None).unwrap().name, "a");
        store.save(&account("b", "2")).unwrap();
        let e = store.resolve(None).unwrap_err().to_string();
        assert!(e.contains("--account") && e.contains("a, b"), "{e}");
        assert_eq!(store.resolve(Some("b")).unwrap().user_id, "2");
        let e = store.resolve(Some("c")).unwrap_err().to_string();
        assert!(e.contains("a, b") && e.contains("--account c"), "{e}");
        assert_eq!(store.name_for("2").unwrap(), "b");
        assert_eq!(store.name_for("3").unwrap(), "3");
        assert!(store.remove("a").unwrap());
        assert!(!store.remove("a").unwrap());
        assert_eq!(store.names().unwrap(), vec!["b".to_string()]);
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in ["", "../x", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("me@home_2.x-y").unwrap();
    }

    #[test]
    fn legacy_file_moves_into_the_store() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(LEGACY_FILE),
            br#"{"user_id":"77","pass_token":"V1:t","api_base":"https://eu.i.mi.com"}"#,
        )
        .unwrap();
        let store = AccountStore::open(dir.path()).unwrap();
        let a = store.resolve(None).unwrap();
        assert_eq!((a.name.as_str(), a.region), ("77", Some(Region::Eu)));
        assert!(!dir.path().join(LEGACY_FILE).exists());
        assert_eq!(mode(&store.path("77")), 0o600);
    }

    #[test]
    fn device_id_is_stable_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(dir.path()).unwrap();
        let id = store.device_id().unwrap();
        assert!(id.starts_with("wb_") && id.len() == 39, "{id}");
        assert_eq!(store.device_id().unwrap(), id);
        assert_eq!(mode(&dir.path().join(DEVICE_FILE)), 0o600);
    }

    #[test]
    fn a_running_mount_sees_a_new_login_and_keeps_a_renewed_cookie() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(dir.path()).unwrap();
        let mut a = account("c", "9");
        a.pass_token = None;
        a.service_token = Some("old".into());
        store.save(&a).unwrap();
        let source = StoredCredentials::new(store.clone(), "c");
        let renewed = Credentials {
            user_id: "9".into(),
            secret: Secret::ServiceToken("new".into()),
        };
        source.renewed(&renewed);
        assert_eq!(
            store.load("c").unwrap().unwrap().service_token.as_deref(),
            Some("new")
        );
        assert_eq!(mode(&store.path("c")), 0o600);
        let mut b = account("c", "9");
        b.pass_token = Some("V1:fresh".into());
        store.save(&b).unwrap();
        let c = source.reload().unwrap();
        assert!(matches!(c.secret, Secret::PassToken(ref t) if t == "V1:fresh"));
        // A renewal never overwrites a passToken account; a rotated passToken does.
        source.renewed(&renewed);
        assert!(store.load("c").unwrap().unwrap().service_token.is_none());
        source.renewed(&Credentials::pass_token("9", "V1:rotated"));
        let a = store.load("c").unwrap().unwrap();
        assert_eq!(a.pass_token.as_deref(), Some("V1:rotated"));
        assert_eq!(mode(&store.path("c")), 0o600);
        source.renewed(&Credentials::pass_token("8", "V1:other-user"));
        assert_eq!(
            store.load("c").unwrap().unwrap().pass_token.as_deref(),
            Some("V1:rotated")
        );
    }
}
