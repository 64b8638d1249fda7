//! The floor every handler stands on: reading requests ([`request`]: cookies, lenient query
//! strings, the `Query` and `Params` extractors), answering them ([`reply`]), and the shared
//! state with the gateway's session check ([`state`]).
//!
//! `request` and `reply` know nothing of the rest of the emulator but the envelope's shape;
//! `state` gathers the state types of the other parts, which are kept in files without HTTP
//! so that every handler can depend on this folder without a loop back.

pub mod reply;
pub mod request;
pub mod state;
