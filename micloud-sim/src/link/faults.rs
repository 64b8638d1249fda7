//! Seeded fault injection: which requests fail and how. The rates come from
//! [`crate::config::faults`]; [`crate::link::inject`] applies them to responses;
//! `/_sim/faults` changes them at run time ([`crate::control::faults`]).
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
//! `5xx`/`stall`/`nodata`/`reset`/`corrupt`. `GET /_sim/faults` shows
//! `{"seed":1,"stallSecs":120,"rates":{"5xx":0.0,...},"failAlbums":[]}` ([`Faults::to_json`]).
//!
//! **Failing albums** (`failAlbums`, set through `/_sim/faults`): not drawn, deterministic. Every
//! listing request of one of these albums (`galleries`/`timeline` with `albumId=`, `allitems`
//! with `groupId=`) answers 503 with the HTML body of `5xx`, whatever the rates; other albums
//! and every other route are untouched. So a test can break exactly one album's listing.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::faults::{FaultConfig, Kind, Rates};
use crate::control::stats::Stats;
use crate::model::rng::{derive, mix};

struct State0 {
    seed: u64,
    rates: Rates,
    stall: Duration,
    /// Draws made so far, per kind.
    drawn: [u64; 6],
    /// Albums whose listing always fails (see the module doc).
    fail_albums: BTreeSet<u64>,
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
                fail_albums: BTreeSet::new(),
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

    /// How long a stalled response stays silent.
    pub fn stall_time(&self) -> Duration {
        self.lock().stall
    }

    /// Wake every stalled response so that a shutdown need not wait for them.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Sleep `d` or until [`Faults::close`].
    pub fn sleep(&self, d: Duration) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = rx.wait_for(|c| *c) => {}
            }
        }
    }

    /// `{"seed":1,"stallSecs":120,"rates":{...}}` (what `/_sim/faults` shows).
    pub fn to_json(&self) -> Value {
        let s = self.lock();
        let fail: Vec<u64> = s.fail_albums.iter().copied().collect();
        json!({"seed": s.seed, "stallSecs": s.stall.as_secs_f64(), "rates": s.rates.to_json(),
               "failAlbums": fail})
    }

    /// Whether the listing of `album` is set to fail.
    pub fn fails_album(&self, album: u64) -> bool {
        self.lock().fail_albums.contains(&album)
    }

    /// Makes the listings of exactly `albums` fail from now on.
    pub fn set_fail_albums(&self, albums: BTreeSet<u64>) {
        self.lock().fail_albums = albums;
    }

    /// The rates in force.
    #[cfg(test)]
    pub fn rates(&self) -> Rates {
        self.lock().rates
    }

    /// Change what is given and restart every draw sequence.
    pub fn set(&self, seed: Option<u64>, stall: Option<Duration>, rates: Option<Rates>) {
        let mut s = self.lock();
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::faults::parse_rates;

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
}
