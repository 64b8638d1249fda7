//! Seeded fault injection: which requests fail, how, and the runtime control at `/_sim/faults`.
//!
//! Each fault kind has a rate in percent (fractions allowed) and its own draw sequence: the
//! n-th request eligible for kind K faults iff `derive(derive(seed, K), n)`, read as a fraction
//! of 2^64, is below the rate. So the same seed and the same request sequence give the same
//! faults, and turning one kind on does not shift another's. Every fired fault is counted in
//! `/_sim/stats` under `faults.<kind>`. Faults never touch `/_sim/*`.
//!
//! | kind      | eligible requests                              | on the wire |
//! |-----------|------------------------------------------------|-------------|
//! | `5xx`     | every protocol route                           | 502, 503 or 500 (seeded pick), small HTML body, handler not run |
//! | `stall`   | every protocol route                           | status, headers and the first half of the body (at most 32 KiB), then silence for `stall_secs`, then the connection closes |
//! | `nodata`  | `/gallery/*` JSON endpoints answering 200      | `{"result":"ok","retriable":false,"code":0,"description":"成功","ts":..}` (no `data`, spec issue #1) |
//! | `deleted` | `/gallery/storage` for a listed item           | the item really goes to the recycle bin, then HTTP 200 business error `code:50050` (media deleted) |
//! | `reset`   | step-3 file body (200 or 206, non-empty)       | headers + a seeded 10–90 % of the body, then TCP RST |
//! | `corrupt` | step-3 file body, when `reset` did not fire    | full length, one seeded byte XORed with a non-zero mask |
//!
//! Draw order on one request: `5xx`, `stall`, then after the handler `nodata` (or `reset`, then
//! `corrupt`); `deleted` is drawn by the storage handler. A request gets at most one of
//! `5xx`/`stall`/`nodata`/`reset`/`corrupt`.
//!
//! Control: `GET /_sim/faults` → `{"seed":1,"stallSecs":120,"rates":{"5xx":0.0,...}}`;
//! `POST /_sim/faults` with any of `seed`, `stallSecs`, `rates` (an object of kind → percent
//! that replaces all rates, unlisted kinds = 0) sets them, restarts every draw sequence, and
//! answers the new state.

use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::bodies::{flip_byte, truncate_then};
use super::rng::{derive, mix};
use super::server::{json, Shared};
use super::stats::Stats;
use super::throttle::Conn;

/// The kinds of injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ServerError,
    Stall,
    NoData,
    Deleted,
    Reset,
    Corrupt,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::ServerError,
        Kind::Stall,
        Kind::NoData,
        Kind::Deleted,
        Kind::Reset,
        Kind::Corrupt,
    ];

    /// The name used in flags, the control endpoint and the stats.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ServerError => "5xx",
            Kind::Stall => "stall",
            Kind::NoData => "nodata",
            Kind::Deleted => "deleted",
            Kind::Reset => "reset",
            Kind::Corrupt => "corrupt",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name.trim())
    }

    fn index(self) -> usize {
        self as usize
    }
}

fn kind_names() -> String {
    Kind::ALL.map(Kind::name).join(", ")
}

/// A rate in percent per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates([f64; 6]);

impl Rates {
    pub fn get(&self, k: Kind) -> f64 {
        self.0[k.index()]
    }

    pub fn set(&mut self, k: Kind, percent: f64) -> Result<(), String> {
        if !(0.0..=100.0).contains(&percent) {
            return Err(format!(
                "fault rate {percent} for {} is out of range; give a percentage from 0 to 100",
                k.name()
            ));
        }
        self.0[k.index()] = percent;
        Ok(())
    }

    fn to_json(self) -> Value {
        let m: serde_json::Map<String, Value> = Kind::ALL
            .into_iter()
            .map(|k| (k.name().to_string(), json!(self.get(k))))
            .collect();
        Value::Object(m)
    }
}

/// `--faults`: `kind=percent` pairs separated by commas, e.g. `reset=2,5xx=0.5`.
pub fn parse_rates(s: &str) -> Result<Rates, String> {
    let mut rates = Rates::default();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!("{pair:?}: write kind=percent, e.g. reset=2"));
        };
        let kind = Kind::parse(k)
            .ok_or_else(|| format!("unknown fault kind {k:?}; the kinds are {}", kind_names()))?;
        let pct: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("{v:?} is not a percentage (in {pair:?}); write e.g. 2 or 0.5"))?;
        rates.set(kind, pct)?;
    }
    Ok(rates)
}

/// Fault settings (`micloud-sim` flags, flattened into its command line).
#[derive(clap::Args, Clone, Debug)]
pub struct FaultConfig {
    /// Fault rates in percent, e.g. 'reset=2,corrupt=2,5xx=3,stall=1,nodata=3,deleted=1'
    /// (kinds: 5xx, stall, nodata, deleted, reset, corrupt; fractions allowed).
    #[arg(long, value_name = "KIND=PCT,...", value_parser = parse_rates, default_value = "")]
    pub faults: Rates,
    /// Seed of the fault draws (same seed and same requests, same faults).
    #[arg(long, default_value_t = 1)]
    pub fault_seed: u64,
    /// How long a stalled response stays silent before the connection is dropped.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub stall_secs: u64,
}

impl FaultConfig {
    /// The settings of `--faults SPEC --fault-seed SEED` (for in-process emulators).
    pub fn from_spec(spec: &str, seed: u64) -> Result<Self, String> {
        Ok(FaultConfig {
            faults: parse_rates(spec)?,
            fault_seed: seed,
            ..FaultConfig::default()
        })
    }
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            faults: Rates::default(),
            fault_seed: 1,
            stall_secs: 120,
        }
    }
}

struct State0 {
    seed: u64,
    rates: Rates,
    stall: Duration,
    /// Draws made so far, per kind.
    drawn: [u64; 6],
}

/// The live fault settings and draw sequences.
pub struct Faults {
    state: Mutex<State0>,
    closing: tokio::sync::watch::Sender<bool>,
}

impl Faults {
    pub fn new(cfg: &FaultConfig) -> Self {
        Faults {
            state: Mutex::new(State0 {
                seed: cfg.fault_seed,
                rates: cfg.faults,
                stall: Duration::from_secs(cfg.stall_secs),
                drawn: [0; 6],
            }),
            closing: tokio::sync::watch::channel(false).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State0> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Draw for one eligible request; when the fault fires, count it and return a random
    /// number for the fault's own choices.
    pub fn fire(&self, kind: Kind, stats: &Stats) -> Option<u64> {
        let r = {
            let mut s = self.lock();
            let rate = s.rates.get(kind);
            if rate <= 0.0 {
                return None;
            }
            let n = s.drawn[kind.index()];
            s.drawn[kind.index()] += 1;
            let r = derive(derive(s.seed, kind.index() as u64 + 1), n);
            if (r as f64 / 18_446_744_073_709_551_616.0) * 100.0 >= rate {
                return None;
            }
            r
        };
        stats.fault(kind.name());
        tracing::debug!(kind = kind.name(), "fault injected");
        Some(mix(r))
    }

    fn stall_time(&self) -> Duration {
        self.lock().stall
    }

    /// Wake every stalled response so that a shutdown need not wait for them.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Sleep `d` or until [`Faults::close`].
    fn sleep(&self, d: Duration) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = rx.wait_for(|c| *c) => {}
            }
        }
    }

    fn to_json(&self) -> Value {
        let s = self.lock();
        json!({"seed": s.seed, "stallSecs": s.stall.as_secs_f64(), "rates": s.rates.to_json()})
    }
}

/// What a route is, for fault eligibility.
#[derive(PartialEq, Eq)]
enum Class {
    /// `/_sim/*` and unmatched paths: never faulted.
    Exempt,
    /// Gallery JSON (`/gallery/*`).
    GalleryJson,
    /// The step-3 file body.
    FileBody,
    /// Any other protocol route.
    Protocol,
}

fn classify(path: Option<&str>, method: &Method) -> Class {
    match path {
        None => Class::Exempt,
        Some(p) if p.starts_with("/_sim/") => Class::Exempt,
        Some(p) if p.starts_with("/gallery/") => Class::GalleryJson,
        Some(p) if p.ends_with("/download_file") && method == Method::POST => Class::FileBody,
        Some(_) => Class::Protocol,
    }
}

/// Middleware: inject the faults of the module table.
pub async fn inject(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let class = classify(
        req.extensions().get::<MatchedPath>().map(|p| p.as_str()),
        req.method(),
    );
    if class == Class::Exempt {
        return next.run(req).await;
    }
    let faults = &app.faults;
    if let Some(r) = faults.fire(Kind::ServerError, &app.stats) {
        return server_error(r);
    }
    if faults.fire(Kind::Stall, &app.stats).is_some() {
        let resp = next.run(req).await;
        let (mut parts, body) = resp.into_parts();
        // Keep the declared length on the wire (a streamed body would otherwise go chunked).
        let len = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .or_else(|| HttpBody::size_hint(&body).exact());
        if let Some(len) = len {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
        }
        let keep = len.map_or(0, |len| (len / 2).min(32 * 1024));
        let after = faults.sleep(faults.stall_time());
        return Response::from_parts(parts, truncate_then(body, keep, after));
    }
    let conn = req
        .extensions()
        .get::<ConnectInfo<Conn>>()
        .map(|c| c.0.clone());
    let resp = next.run(req).await;
    let ok = resp.status() == StatusCode::OK;
    match class {
        Class::GalleryJson if ok => {
            if faults.fire(Kind::NoData, &app.stats).is_some() {
                return no_data();
            }
            resp
        }
        Class::FileBody if ok || resp.status() == StatusCode::PARTIAL_CONTENT => {
            let len = resp
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(0);
            if len == 0 {
                return resp;
            }
            if let Some(r) = faults.fire(Kind::Reset, &app.stats) {
                // 10–90 % of the body, then RST.
                let keep = len * (10 + r % 81) / 100;
                let (parts, body) = resp.into_parts();
                let after = async move {
                    // Let the prefix leave the server before the connection dies.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Some(c) = conn {
                        c.reset();
                    }
                };
                return Response::from_parts(parts, truncate_then(body, keep, after));
            }
            if let Some(r) = faults.fire(Kind::Corrupt, &app.stats) {
                let at = r % len;
                let mask = ((r >> 32) % 255 + 1) as u8;
                let (parts, body) = resp.into_parts();
                return Response::from_parts(parts, flip_byte(body, at, mask));
            }
            resp
        }
        _ => resp,
    }
}

fn server_error(r: u64) -> Response {
    let status = [
        StatusCode::BAD_GATEWAY,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::INTERNAL_SERVER_ERROR,
    ][(r % 3) as usize];
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let html = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    (status, [(header::CONTENT_TYPE, "text/html")], html).into_response()
}

/// The success envelope without `data` (spec issue #1).
fn no_data() -> Response {
    let body = json!({
        "result": "ok",
        "retriable": false,
        "code": 0,
        "description": "成功",
        "ts": super::wire::now_ms(),
    });
    json(StatusCode::OK, &body)
}

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
            other => {
                return Err(format!(
                    "unknown field {other:?}; the fields are seed, rates and stallSecs\n"
                ))
            }
        }
    }
    let mut s = faults.lock();
    if let Some(seed) = seed {
        s.seed = seed;
    }
    if let Some(stall) = stall {
        s.stall = stall;
    }
    if let Some(r) = rates {
        s.rates = r;
    }
    s.drawn = [0; 6];
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn spec_parses_every_kind() {
        let r = parse_rates("reset=2,corrupt=2,5xx=3,stall=1,nodata=3,deleted=0.5").unwrap();
        assert_eq!(r.get(Kind::ServerError), 3.0);
        assert_eq!(r.get(Kind::Deleted), 0.5);
        assert_eq!(parse_rates("").unwrap(), Rates::default());
        assert!(parse_rates("teapot=1").unwrap_err().contains("5xx"));
        assert!(parse_rates("reset=101").is_err());
        assert!(parse_rates("reset").is_err());
    }

    #[test]
    fn same_seed_same_draws_and_kinds_are_independent() {
        let a = pattern(&faults("reset=30", 9), Kind::Reset, 200);
        let b = faults("reset=30,5xx=50", 9);
        let _ = pattern(&b, Kind::ServerError, 17);
        assert_eq!(a, pattern(&b, Kind::Reset, 200));
        assert_ne!(a, pattern(&faults("reset=30", 10), Kind::Reset, 200));
    }

    #[test]
    fn rates_are_honoured_on_average() {
        let hits = pattern(&faults("nodata=2.5", 3), Kind::NoData, 40_000)
            .into_iter()
            .filter(|h| *h)
            .count();
        assert!((800..1200).contains(&hits), "{hits} of 40000 at 2.5 %");
        assert!(pattern(&faults("nodata=100", 3), Kind::NoData, 50)
            .iter()
            .all(|h| *h));
        assert!(!pattern(&faults("", 3), Kind::NoData, 50).iter().any(|h| *h));
    }

    #[test]
    fn control_body_replaces_rates_and_restarts_draws() {
        let f = faults("reset=30", 9);
        let first = pattern(&f, Kind::Reset, 20);
        update(&f, br#"{"rates":{"reset":30,"stall":5},"stallSecs":2}"#).unwrap();
        assert_eq!(pattern(&f, Kind::Reset, 20), first);
        assert_eq!(f.lock().rates.get(Kind::Stall), 5.0);
        assert_eq!(f.stall_time(), Duration::from_secs(2));
        assert!(update(&f, br#"{"rates":{"bogus":1}}"#).is_err());
        assert!(update(&f, br#"{"seed":-1}"#).is_err());
        assert!(update(&f, b"nope").is_err());
    }
}
