//! The emulated account's data, as plain types: a leaf that nothing else in the emulator
//! is below.
//!
//! - [`item`]: albums and items; [`recording`]: voice and call recordings; [`source`]: what
//!   each body's bytes are (a spec: the bytes themselves are made by [`crate::bytes`]);
//! - [`gallery`]: all of them with the recycle bin, tombstones, and the indexes every request
//!   reads (one immutable snapshot per request); [`live`]: its changes (uploads, the recycle
//!   bin, deletions, album renames), each under the next tag of the account's sequence;
//! - [`time`]: the server's day (UTC+8) and EXIF dates; [`rng`]: the deterministic numbers the
//!   gallery is made of (same seed, same gallery).

pub mod gallery;
pub mod item;
pub mod live;
pub mod recording;
pub mod rng;
pub mod source;
pub mod time;
