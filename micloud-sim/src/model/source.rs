//! What an item's bytes are, as data: the spec each body is a pure function of. Making the
//! bytes from a spec is [`crate::bytes`]' job; the model only names them, so items can be
//! built, compared and stored without encoding anything.
//!
//! - [`Source::Photo`]: a rendered JPEG ([`PhotoSpec`], with camera EXIF or none);
//! - [`Source::Video`]: an MP4-shaped body ([`VideoSpec`]);
//! - [`Source::Synth`]: a large shared-prefix body for `--sizes real` ([`SynthSpec`] on one
//!   of four [`Template`] heads);
//! - [`Source::Disk`]: a file of `--from-dir`; [`Source::Bytes`]: bytes given whole (uploads).

use std::path::PathBuf;

use bytes::Bytes;

use crate::model::rng::derive;

/// Where an item's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Photo(PhotoSpec),
    Video(VideoSpec),
    Disk(PathBuf),
    /// Bytes given whole (uploads through the control API).
    Bytes(Bytes),
    /// A large shared-prefix body (`--sizes real`), streamed.
    Synth(SynthSpec),
}

/// Camera-written EXIF fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExifSpec {
    /// `YYYY:MM:DD HH:MM:SS`, camera-local time.
    pub date_time: String,
    /// `+08:00` style offset of the camera clock.
    pub offset: String,
    pub make: String,
    pub model: String,
}

/// Everything that determines one photo's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PhotoSpec {
    pub seed: u64,
    pub width: u16,
    pub height: u16,
    pub exif: Option<ExifSpec>,
}

/// Everything that determines one video's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VideoSpec {
    pub seed: u64,
    /// Total file size in bytes (at least 256).
    pub size: u64,
    /// Creation time, Unix seconds.
    pub created_unix: i64,
}

/// The shared head a body starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Template {
    /// A 1024x768 JPEG.
    Landscape,
    /// A 768x1024 JPEG.
    Portrait,
    /// A 720x1600 JPEG (a phone screen).
    Screenshot,
    /// An MP4 head with an open-ended `mdat` (1920x1080 in the listing).
    Video,
}

impl Template {
    pub const ALL: [Template; 4] = [
        Template::Landscape,
        Template::Portrait,
        Template::Screenshot,
        Template::Video,
    ];

    /// Position in [`Template::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Pixel size the listing reports for items of this template.
    pub fn dims(self) -> (u32, u32) {
        match self {
            Template::Landscape => (1024, 768),
            Template::Portrait => (768, 1024),
            Template::Screenshot => (720, 1600),
            Template::Video => (1920, 1080),
        }
    }

    /// Seed of the head picture and of the filler block.
    pub fn seed(self) -> u64 {
        derive(0x5CA1_E000, self.index() as u64)
    }
}

/// Everything that determines one large body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SynthSpec {
    pub seed: u64,
    pub template: Template,
    /// Requested size; the real size is at least the head plus the shortest tail (see
    /// [`crate::bytes::synth`]).
    pub size: u64,
}
