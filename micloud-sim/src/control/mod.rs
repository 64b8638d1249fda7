//! The test bed's side channel: the `/_sim/` API (not part of Xiaomi's protocol; no auth,
//! answered only to loopback, never delayed or faulted) and the counters it shows.
//! - [`gallery`]: the ground truth (`/_sim/items`, `/_sim/albums`, `/_sim/recordings`,
//!   `/_sim/stats`) and changes to the gallery (upload, recycle, restore, delete, albums);
//! - [`passport`]: accounts, captcha answers and codes "sent", expiring sessions;
//! - [`faults`]: the fault rates at run time;
//! - [`stats`]: the counters every part bumps.

pub mod faults;
pub mod gallery;
pub mod passport;
pub mod stats;
