//! What logins in progress remember between requests: captcha answers, identity (2FA) checks
//! and QR tickets. The flows that fill and read them are [`crate::passport::captcha`],
//! [`crate::passport::identity`] and [`crate::passport::qr`]; here is only the state, kept
//! apart so that the server's state can hold it without depending on the flows.
//!
//! Lifetimes: a captcha `ick` is good for one answer and 5 minutes, an identity context for
//! 10 minutes, a QR ticket for `--qr-timeout`. Expired entries are dropped when the next
//! one is added.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::config::accounts::Channel;
use crate::http::request::cookies;
use crate::passport::session::random_b64url;

const CAPTCHA_TTL: Duration = Duration::from_secs(300);
/// Digits of a captcha code.
pub const CAPTCHA_DIGITS: usize = 5;

/// Live captcha answers by `ick`.
#[derive(Default)]
pub struct Captchas {
    live: Mutex<HashMap<String, (String, Instant)>>,
}

impl Captchas {
    /// A new code; returns (`ick`, code).
    pub fn issue(&self) -> (String, String) {
        let mut rng = rand::rng();
        let code: String = (0..CAPTCHA_DIGITS)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        let ick = random_b64url(18);
        if let Ok(mut m) = self.live.lock() {
            let now = Instant::now();
            m.retain(|_, (_, exp)| *exp > now);
            m.insert(ick.clone(), (code.clone(), now + CAPTCHA_TTL));
        }
        (ick, code)
    }

    /// Check (and consume) the answer for `ick`.
    pub fn check(&self, ick: &str, answer: &str) -> bool {
        let Ok(mut m) = self.live.lock() else {
            return false;
        };
        match m.remove(ick) {
            Some((code, exp)) => exp > Instant::now() && code == answer.trim(),
            None => false,
        }
    }

    /// Every live `ick` → code (for `/_sim/passport`).
    pub fn snapshot(&self) -> HashMap<String, String> {
        self.live
            .lock()
            .map(|m| m.iter().map(|(k, (c, _))| (k.clone(), c.clone())).collect())
            .unwrap_or_default()
    }
}

const CONTEXT_TTL: Duration = Duration::from_secs(600);

/// One login waiting for its identity check.
pub struct Pending {
    pub user: String,
    pub device: Option<String>,
    pub followup: String,
    pub sid: String,
    pub expires: Instant,
    pub codes: HashMap<Channel, String>,
    /// Set once a code was verified: the finish ticket of `/identity/result/check`.
    pub finish: Option<String>,
    /// Today's passport (§10): form-only endpoints, `result/check` → `Auth2/end` → STS.
    pub modern: bool,
    /// §10: "Tips" pages `Auth2/end` still answers before it redirects.
    pub tips_left: u32,
}

/// The identity checks under way.
#[derive(Default)]
pub struct Book {
    pub contexts: HashMap<String, Pending>,
    /// `identity_session` → context.
    pub sessions: HashMap<String, String>,
    /// Every code sent (test API).
    pub outbox: Vec<Value>,
}

/// Pending identity checks and the outbox of sent codes.
#[derive(Default)]
pub struct Identity {
    state: Mutex<Book>,
}

impl Identity {
    /// Run `f` on the book (under its lock).
    pub fn with<R>(&self, f: impl FnOnce(&mut Book) -> R) -> R {
        match self.state.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Open a context for `user` after a correct password; returns its id.
    pub fn start(
        &self,
        user: &str,
        device: Option<String>,
        followup: &str,
        sid: &str,
        modern_tips: Option<u32>,
    ) -> String {
        let context = random_b64url(24);
        self.with(|s| {
            let now = Instant::now();
            s.contexts.retain(|_, p| p.expires > now);
            let live: Vec<String> = s.contexts.keys().cloned().collect();
            s.sessions.retain(|_, c| live.contains(c));
            s.contexts.insert(
                context.clone(),
                Pending {
                    user: user.to_string(),
                    device,
                    followup: followup.to_string(),
                    sid: sid.to_string(),
                    expires: now + CONTEXT_TTL,
                    codes: HashMap::new(),
                    finish: None,
                    modern: modern_tips.is_some(),
                    tips_left: modern_tips.unwrap_or(0),
                },
            );
        });
        context
    }

    /// The outbox (every code sent so far, oldest first).
    pub fn outbox(&self) -> Vec<Value> {
        self.with(|s| s.outbox.clone())
    }

    /// Live contexts (test API).
    pub fn snapshot(&self) -> Vec<Value> {
        self.with(|s| {
            s.contexts
                .iter()
                .map(|(id, p)| json!({"context": id, "account": p.user, "verified": p.finish.is_some()}))
                .collect()
        })
    }

    /// The context of a request: its `identity_session` cookie's, else the `context` of its
    /// query (today's passport puts it there, §10.3); they must agree when both are given.
    pub fn context_of(&self, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
        let session = cookies(headers).get("identity_session").cloned();
        self.with(|s| {
            let by_cookie = session.and_then(|c| s.sessions.get(&c).cloned());
            let ctx = match (by_cookie, query.filter(|q| !q.is_empty())) {
                (Some(c), Some(q)) if c != q => return None,
                (Some(c), _) => c,
                (None, Some(q)) => q.to_string(),
                (None, None) => return None,
            };
            let ctx = &ctx;
            s.contexts
                .get(ctx)
                .filter(|p| p.expires > Instant::now())
                .map(|_| ctx.clone())
        })
    }
}

/// A confirmed scan: the body and cookies every poll of the ticket gets.
pub struct Done {
    pub body: Value,
    pub cookies: Vec<String>,
}

/// One QR login waiting to be scanned.
pub struct Ticket {
    pub host: String,
    /// The `deviceId` cookie of the client that asked for the ticket.
    pub device: Option<String>,
    pub followup: String,
    pub login_url: String,
    pub expires: Instant,
    /// `None` until the scan is confirmed; every long poll of the ticket watches it.
    pub state: watch::Sender<Option<Arc<Done>>>,
}

/// Live QR tickets.
#[derive(Default)]
pub struct QrTickets {
    map: Mutex<HashMap<String, Arc<Ticket>>>,
    latest: Mutex<Option<String>>,
}

impl QrTickets {
    /// A live ticket.
    pub fn get(&self, id: &str) -> Option<Arc<Ticket>> {
        let m = self.map.lock().ok()?;
        m.get(id).filter(|t| t.expires > Instant::now()).cloned()
    }

    pub fn insert(&self, id: &str, t: Ticket) {
        if let Ok(mut m) = self.map.lock() {
            let now = Instant::now();
            m.retain(|_, t| t.expires > now);
            m.insert(id.to_string(), Arc::new(t));
        }
        if let Ok(mut l) = self.latest.lock() {
            *l = Some(id.to_string());
        }
    }

    /// The ticket issued last.
    pub fn latest(&self) -> Option<String> {
        self.latest.lock().ok().and_then(|l| l.clone())
    }

    /// Live tickets and their state (test API).
    pub fn snapshot(&self) -> Vec<Value> {
        let now = Instant::now();
        self.map
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(_, t)| t.expires > now)
                    .map(|(id, t)| {
                        json!({"ticket": id,
                               "confirmed": t.state.borrow().is_some(),
                               "expiresInMs": (t.expires - now).as_millis() as u64})
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_single_use() {
        let c = Captchas::default();
        let (ick, code) = c.issue();
        assert_eq!(code.len(), CAPTCHA_DIGITS);
        assert!(c.snapshot().contains_key(&ick));
        assert!(!c.check(&ick, "x"));
        assert!(!c.check(&ick, &code), "a wrong answer burns the ick");
        let (ick, code) = c.issue();
        assert!(c.check(&ick, &code));
        assert!(!c.check(&ick, &code));
    }
}
