//! What i.mi.com answers (spec §3, §4), the handlers of the gallery service:
//! - [`listing`]: `album/list`, `album/video`, `galleries`, `timeline` (paged, by day);
//! - [`incremental`]: the cursors `album/full`, `allitems`, `deleted_v2`, and the one write
//!   endpoint `info/delete`;
//! - [`status`]: profile, quota, VIP level; [`recordings`]: the recorder's file space;
//! - [`download`]: the three-step original download and thumbnails, with [`range`] for
//!   `--range on`;
//! - [`wire`]: the emulator's own JSON (envelope, errors, album and item objects);
//!   [`urls`]: every URL handed out, and the signatures that make them tamper-evident.
//!
//! Every handler reads one gallery snapshot ([`crate::http::state::App::gallery`]), so a
//! page is consistent even while the gallery changes.

pub mod download;
pub mod incremental;
pub mod listing;
pub mod range;
pub mod recordings;
pub mod status;
pub mod urls;
pub mod wire;
