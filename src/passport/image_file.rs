//! Saving the images a login shows (captcha, QR code) where the user can open them.
//!
//! The file is written to a temporary file in the same folder (created 0600 by `tempfile`)
//! and renamed over the old one, so it is never half-written nor readable by others: a
//! captcha or a login QR code is a short-lived credential of its own. A missing folder is
//! created 0700.

use std::path::{Path, PathBuf};

use super::error::LoginError;

/// Write `bytes` to `dir/name` with mode 0600; the path written.
pub(crate) fn save_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, LoginError> {
    let path = dir.join(name);
    crate::private_file::write(&path, bytes).map_err(|e| {
        LoginError::Io(format!(
            "cannot save {} ({e}): check that the folder exists and is writable",
            path.display()
        ))
    })?;
    Ok(path)
}
