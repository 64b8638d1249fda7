//! Gallery scale: how big the bodies are, and where fingerprints are cached.
//!
//! Two size modes:
//! - `real` (the binary's default): photos 0.5–8 MB and videos from a few MB to 700 MB (the
//!   spread is in [`crate::build::sizes`]); bodies follow the shared-prefix scheme of
//!   [`crate::bytes::synth`], so 100 000 items start in seconds and are streamed in 64 KiB
//!   chunks;
//! - `small` (the in-process demo, tests, `micloudfs mount --demo`): every photo is its own
//!   rendered 320–800 px JPEG whose EXIF matches the listing, videos 300 KB–2 MB.
//!
//! Fingerprints (size + SHA-1 of every item) are kept in a cache file in `--data-dir`
//! (default `$XDG_CACHE_HOME/micloud-sim`, else `~/.cache/micloud-sim`) so that a restart
//! reads them back instead of recomputing them (format in [`crate::build::fpcache`]).
//! `--no-cache` turns the file off; [`ScaleConfig::demo`] has it off so that tests never write
//! to `$HOME`.

use std::path::PathBuf;

/// How large generated bodies are.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SizeMode {
    /// Realistic sizes: photos 0.5–8 MB, videos tens to hundreds of MB (shared-prefix bodies).
    #[default]
    Real,
    /// Small, fully rendered bodies (photos ≤ a few hundred KB, videos ≤ 2 MB) for fast tests.
    Small,
}

impl SizeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SizeMode::Real => "real",
            SizeMode::Small => "small",
        }
    }
}

/// Scale settings (`micloud-sim` flags, flattened into its command line).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ScaleConfig {
    /// Body sizes: `real` (photos 0.5–8 MB, videos up to hundreds of MB, streamed) or `small`
    /// (rendered photos of a few hundred KB, videos ≤ 2 MB; fast for tests).
    #[arg(long, value_enum, default_value_t = SizeMode::Real)]
    pub sizes: SizeMode,
    /// Folder for the fingerprint cache file (default: $XDG_CACHE_HOME/micloud-sim or
    /// ~/.cache/micloud-sim).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Neither read nor write the fingerprint cache file.
    #[arg(long)]
    pub no_cache: bool,
}

impl ScaleConfig {
    /// Small sizes and no cache file: what in-process tests and `mount --demo` use.
    pub fn demo() -> Self {
        ScaleConfig {
            sizes: SizeMode::Small,
            data_dir: None,
            no_cache: true,
        }
    }

    /// The folder of the cache file, or `None` when caching is off or no home is known.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        if let Some(d) = &self.data_dir {
            return Some(d.clone());
        }
        let env_dir = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env_dir("XDG_CACHE_HOME")
            .or_else(|| env_dir("HOME").map(|h| h.join(".cache")))
            .map(|d| d.join("micloud-sim"))
    }
}
