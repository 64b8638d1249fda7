//! Counters exposed at `/_sim/stats` and through [`crate::SimHandle::stats`].
//!
//! Plain atomics plus one mutex-guarded map of requests per path; cheap enough to update on
//! every request.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

#[derive(Default)]
pub struct Stats {
    requests: Mutex<BTreeMap<String, u64>>,
    faults: Mutex<BTreeMap<String, u64>>,
    counters: Mutex<BTreeMap<String, u64>>,
    pub token_exchanges: AtomicU64,
    pub auto_renewals: AtomicU64,
    pub unauthorized: AtomicU64,
    pub bytes_served: AtomicU64,
    pub downloads: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct SimStats {
    pub requests: BTreeMap<String, u64>,
    /// Faults fired, by kind.
    #[serde(default)]
    pub faults: BTreeMap<String, u64>,
    /// Other named events (write-endpoint calls, logins by flow, …).
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
    pub token_exchanges: u64,
    pub auto_renewals: u64,
    pub unauthorized: u64,
    pub bytes_served: u64,
    pub downloads: u64,
}

impl Stats {
    pub fn request(&self, path: &str) {
        bump_map(&self.requests, path, 1);
    }

    /// Count one fault of `kind`.
    #[allow(dead_code)] // first callers: the fault module
    pub fn fault(&self, kind: &str) {
        bump_map(&self.faults, kind, 1);
    }

    /// Count `by` events named `name`.
    pub fn count(&self, name: &str, by: u64) {
        bump_map(&self.counters, name, by);
    }

    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> SimStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SimStats {
            requests: self.requests.lock().map(|m| m.clone()).unwrap_or_default(),
            faults: self.faults.lock().map(|m| m.clone()).unwrap_or_default(),
            counters: self.counters.lock().map(|m| m.clone()).unwrap_or_default(),
            token_exchanges: get(&self.token_exchanges),
            auto_renewals: get(&self.auto_renewals),
            unauthorized: get(&self.unauthorized),
            bytes_served: get(&self.bytes_served),
            downloads: get(&self.downloads),
        }
    }
}

fn bump_map(map: &Mutex<BTreeMap<String, u64>>, key: &str, by: u64) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key.to_string()).or_insert(0) += by;
    }
}
