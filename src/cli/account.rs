//! Where micloudfs keeps its files (XDG directories) and the stored account.
//!
//! The account file holds `userId` + `passToken` (never a password) and is written
//! atomically with mode 0600 in a 0700 directory: a temporary file created with that mode,
//! synced, then renamed over the old one, so a crash never leaves a half-written or
//! world-readable credential.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cloud::Credentials;

pub const DEFAULT_API_BASE: &str = "https://i.mi.com";
const ACCOUNT_FILE: &str = "account.json";

/// `--config-dir`, else `$XDG_CONFIG_HOME/micloudfs`, else `~/.config/micloudfs`.
pub fn config_dir(flag: Option<PathBuf>) -> Result<PathBuf, String> {
    xdg_dir(flag, "XDG_CONFIG_HOME", ".config")
}

/// `--cache-dir`, else `$XDG_CACHE_HOME/micloudfs`, else `~/.cache/micloudfs`.
pub fn cache_dir(flag: Option<PathBuf>) -> Result<PathBuf, String> {
    xdg_dir(flag, "XDG_CACHE_HOME", ".cache")
}

fn xdg_dir(flag: Option<PathBuf>, var: &str, fallback: &str) -> Result<PathBuf, String> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    if let Some(base) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(base).join("micloudfs"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(fallback).join("micloudfs")),
        None => Err(format!(
            "cannot tell where to keep files: neither ${var} nor $HOME is set; pass the directory \
             with a flag"
        )),
    }
}

/// The stored account.
#[derive(Clone, Serialize, Deserialize)]
pub struct Account {
    pub user_id: String,
    pub pass_token: String,
    pub api_base: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("user_id", &self.user_id)
            .field("pass_token", &"<redacted>")
            .field("api_base", &self.api_base)
            .finish()
    }
}

impl Account {
    pub fn credentials(&self) -> Credentials {
        Credentials {
            user_id: self.user_id.clone(),
            pass_token: self.pass_token.clone(),
        }
    }

    pub fn path(config_dir: &Path) -> PathBuf {
        config_dir.join(ACCOUNT_FILE)
    }

    /// Reads the stored account; `Ok(None)` if there is none.
    pub fn load(config_dir: &Path) -> Result<Option<Account>, String> {
        let path = Account::path(config_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                format!(
                    "the account file {} is damaged ({e}); run `micloudfs login` again",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Writes the account atomically, mode 0600.
    pub fn save(&self, config_dir: &Path) -> Result<PathBuf, String> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(config_dir)
            .map_err(|e| format!("cannot create {}: {e}", config_dir.display()))?;
        let path = Account::path(config_dir);
        let tmp = config_dir.join(format!(".{ACCOUNT_FILE}.{}.tmp", std::process::id()));
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            // The mode of an existing file is not changed by open(): force it.
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.write_all(&json)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot save the account to {}: {e}", path.display())
        })?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_account_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("cfg");
        let a = Account {
            user_id: "42".into(),
            pass_token: "V1:secret".into(),
            api_base: DEFAULT_API_BASE.into(),
        };
        let path = a.save(&cfg).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        let b = Account::load(&cfg).unwrap().unwrap();
        assert_eq!(b.pass_token, "V1:secret");
        assert!(Account::load(dir.path()).unwrap().is_none());
        std::fs::write(Account::path(&cfg), b"{oops").unwrap();
        assert!(Account::load(&cfg).unwrap_err().contains("micloudfs login"));
    }

    #[test]
    fn flag_wins_over_environment() {
        let p = config_dir(Some(PathBuf::from("/x"))).unwrap();
        assert_eq!(p, PathBuf::from("/x"));
    }
}
