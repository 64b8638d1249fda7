//! `/_sim/*`: the test and inspection API (not part of the protocol, no auth).
//!
//! `items` is the ground truth (every item, every album, including the private one) that a
//! test compares a mount against; `albums` lists albums with counts; `stats` the counters.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::server::{json, Shared};
use super::wire;

pub async fn items(State(app): State<Shared>) -> Response {
    let all: Vec<Value> = app.gallery().items.iter().map(wire::truth_item).collect();
    json(StatusCode::OK, &Value::Array(all))
}

pub async fn albums(State(app): State<Shared>) -> Response {
    let g = app.gallery();
    let all: Vec<Value> = g
        .albums
        .iter()
        .map(|a| wire::truth_album(a, g.stats(&a.id)))
        .collect();
    json(StatusCode::OK, &Value::Array(all))
}

pub async fn stats(State(app): State<Shared>) -> Response {
    let snap = serde_json::to_value(app.stats.snapshot()).unwrap_or(Value::Null);
    json(StatusCode::OK, &snap)
}
