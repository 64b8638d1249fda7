//! The link between client and emulator, as the settings of [`crate::config::link`] and
//! [`crate::config::faults`] shape it:
//! - [`shape`]: latency per request and per deep page (a middleware);
//! - [`bucket`] and [`throttle`]: bandwidth per connection and in total, paced on the socket,
//!   and hard resets;
//! - [`faults`]: the seeded draws that decide which request fails and how; [`inject`]: the
//!   middleware that applies them; [`bodies`]: the cut or altered bodies they send.

pub mod bodies;
pub mod bucket;
pub mod faults;
pub mod inject;
pub mod shape;
pub mod throttle;
