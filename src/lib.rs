//! micloudfs: mount a Xiaomi Cloud Gallery as a read-only folder.
//!
//! Layers, each depending only on those below it (see `../shared/DESIGN.md` §3):
//! `cli` → `fs` → `view` + `content` → `catalog` → `cloud`; `model` holds the domain types
//! they share; `sim` is the emulator, which shares nothing with `cloud`. Beside the data
//! path, `cli` uses `account` (stored accounts, regions; it hands `cloud` a credential
//! source) and `passport` (the interactive logins), and `private_file` writes files only
//! their owner may read.

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
