//! The gallery an emulator starts with: generated from a seed ([`generate`], with realistic
//! [`sizes`] for `--sizes real`) or read from a folder ([`from_dir`]), plus the recordings
//! ([`recordings`]), every body fingerprinted (size and SHA-1, [`fingerprint`]) from the
//! cache file when it is valid ([`fpcache`]). Runs once, before the server binds.

pub mod fingerprint;
pub mod fpcache;
pub mod from_dir;
pub mod generate;
pub mod recordings;
pub mod sizes;

use crate::build::fingerprint::Fingerprinted;
use crate::build::from_dir::FromDirError;
use crate::bytes::ContentError;
use crate::config::SimConfig;
use crate::model::gallery::Gallery;

/// Why the emulator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    FromDir(#[from] FromDirError),
    #[error("building content: {0}")]
    Content(#[from] ContentError),
}

/// Build the gallery described by `config` (blocking: fingerprints every item, from the cache
/// file when it is valid).
pub fn gallery(config: &SimConfig) -> Result<(Gallery, Fingerprinted), BuildError> {
    let (albums, mut items) = match &config.from_dir {
        Some(dir) => from_dir::scan(config.seed, dir)?,
        None => generate::generate(config.seed, config.albums, config.items, config.scale.sizes),
    };
    let fp = fingerprint::fingerprint_cached(&mut items, config)?;
    let mut gallery = Gallery::new(albums, items);
    gallery.recordings = recordings::generate(config.seed, config.live.recordings)?;
    Ok((gallery, fp))
}
