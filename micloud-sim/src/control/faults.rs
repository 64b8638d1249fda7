//! `GET`/`POST /_sim/faults`: show or change the fault rates, seed and stall time while the
//! emulator runs. A POST with any of `seed`, `stallSecs`, `rates` (an object of kind →
//! percent that replaces all rates, unlisted kinds = 0) sets them, restarts every draw
//! sequence, and answers the new state; `failAlbums` (album ids, as numbers or decimal
//! strings; replaces the list) makes exactly those albums' listings fail (see
//! [`crate::link::faults`]). A bad body is 400 with what to send.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::config::faults::{kind_names, Kind, Rates};
use crate::http::reply::json;
use crate::http::state::Shared;
use crate::link::faults::Faults;

/// `GET /_sim/faults`
pub async fn show(State(app): State<Shared>) -> Response {
    json(StatusCode::OK, &app.faults.to_json())
}

/// `POST /_sim/faults` (see the module doc).
pub async fn set(State(app): State<Shared>, body: Bytes) -> Response {
    match update(&app.faults, &body) {
        Ok(()) => json(StatusCode::OK, &app.faults.to_json()),
        Err(msg) => (StatusCode::BAD_REQUEST, msg).into_response(),
    }
}

fn update(faults: &Faults, body: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not JSON ({e}); send e.g. {{\"seed\":7,\"rates\":{{\"reset\":100}},\"stallSecs\":2}}\n"
        )
    })?;
    let obj = v
        .as_object()
        .ok_or("send a JSON object with seed, rates and/or stallSecs\n")?;
    let mut seed = None;
    let mut stall = None;
    let mut rates = None;
    let mut fail_albums = None;
    for (k, v) in obj {
        match k.as_str() {
            "seed" => seed = Some(v.as_u64().ok_or("seed must be a non-negative integer\n")?),
            "stallSecs" => {
                let s = v
                    .as_f64()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .ok_or("stallSecs must be a non-negative number of seconds\n")?;
                stall = Some(Duration::from_secs_f64(s));
            }
            "rates" => {
                let m = v
                    .as_object()
                    .ok_or("rates must be an object of kind → percent\n")?;
                let mut r = Rates::default();
                for (kind, pct) in m {
                    let k = Kind::parse(kind).ok_or_else(|| {
                        format!(
                            "unknown fault kind {kind:?}; the kinds are {}\n",
                            kind_names()
                        )
                    })?;
                    let p = pct
                        .as_f64()
                        .ok_or_else(|| format!("the rate of {kind} must be a number\n"))?;
                    r.set(k, p)?;
                }
                rates = Some(r);
            }
            "failAlbums" => {
                let list = v
                    .as_array()
                    .ok_or("failAlbums must be an array of album ids\n")?;
                let mut ids = std::collections::BTreeSet::new();
                for id in list {
                    let n = id
                        .as_u64()
                        .or_else(|| id.as_str().and_then(|s| s.parse().ok()))
                        .ok_or_else(|| {
                            format!("{id} is not an album id (a number or a decimal string)\n")
                        })?;
                    ids.insert(n);
                }
                fail_albums = Some(ids);
            }
            other => {
                return Err(format!(
                "unknown field {other:?}; the fields are seed, rates, stallSecs and failAlbums\n"
            ))
            }
        }
    }
    faults.set(seed, stall, rates);
    if let Some(ids) = fail_albums {
        faults.set_fail_albums(ids);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::faults::{parse_rates, FaultConfig};
    use crate::control::stats::Stats;

    fn faults(spec: &str, seed: u64) -> Faults {
        Faults::new(&FaultConfig {
            faults: parse_rates(spec).unwrap(),
            fault_seed: seed,
            stall_secs: 1,
        })
    }

    fn pattern(f: &Faults, kind: Kind, n: usize) -> Vec<bool> {
        let stats = Stats::default();
        (0..n).map(|_| f.fire(kind, &stats).is_some()).collect()
    }

    #[test]
    fn control_body_replaces_rates_and_restarts_draws() {
        let f = faults("reset=30", 9);
        let first = pattern(&f, Kind::Reset, 20);
        update(&f, br#"{"rates":{"reset":30,"stall":5},"stallSecs":2}"#).unwrap();
        assert_eq!(pattern(&f, Kind::Reset, 20), first);
        assert_eq!(f.rates().get(Kind::Stall), 5.0);
        assert_eq!(f.stall_time(), Duration::from_secs(2));
        assert!(update(&f, br#"{"rates":{"bogus":1}}"#).is_err());
        assert!(update(&f, br#"{"seed":-1}"#).is_err());
        assert!(update(&f, b"nope").is_err());
        update(&f, br#"{"failAlbums":[7,"12345678901234567"]}"#).unwrap();
        assert!(f.fails_album(7) && f.fails_album(12_345_678_901_234_567));
        assert!(!f.fails_album(8));
        update(&f, br#"{"failAlbums":[]}"#).unwrap();
        assert!(!f.fails_album(7));
        assert!(update(&f, br#"{"failAlbums":[-1]}"#).is_err());
    }
}
