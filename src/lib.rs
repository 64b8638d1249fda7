//! micloudfs: mount a Xiaomi Cloud Gallery as a read-only folder.
//!
//! Layers, each depending only on those below it (see `../shared/DESIGN.md` §3):
//! `cli` → `fs` → `view` + `content` → `catalog` → `cloud`; `model` holds the domain types
//! they share. Beside the data path, `cli` uses `account` (stored accounts, regions; it hands
//! `cloud` a credential source) and `passport` (the interactive logins), and `private_file`
//! writes files only their owner may read. No import cycle joins files of two folders
//! (`tests/import_graph.rs`).
//!
//! The emulator is the separate crate `micloud-sim` (in `micloud-sim/`), so it shares no code
//! with `cloud`: the tests use it as a dev-dependency, and `mount --demo` links it behind the
//! default feature `demo`.

pub mod account;
pub mod catalog;
pub mod cli;
pub mod cloud;
pub mod content;
pub mod fs;
pub mod model;
pub mod passport;
pub mod private_file;
pub mod view;
