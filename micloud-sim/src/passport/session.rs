//! Account state of the emulated passport and `i.mi.com`: tickets and service tokens.
//!
//! - A *ticket* (the `nonce` that `serviceLogin` appends to the STS callback) is single-use and
//!   valid for 120 s. It is a decimal number below 2^62, like the passport's numeric `nonce`
//!   field, so the JSON `nonce` and the one in `location` are the same value.
//! - A *serviceToken* is standard base64 of 241 random bytes (324 characters with `+`, `/` and
//!   `==` padding, like the real "few hundred chars" token), valid for `token_ttl` after issue.
//!   Renewal issues a new token and leaves the old one to expire on its own.
//!
//! Tokens are random (not seeded): determinism covers the gallery, not the sessions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;

const TICKET_TTL: Duration = Duration::from_secs(120);

#[derive(Default)]
pub struct Sessions {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    tickets: Mutex<HashMap<String, (String, Instant)>>,
}

/// `n` random bytes, URL-safe base64 without padding.
pub fn random_b64url(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

impl Sessions {
    /// Register a single-use ticket for `user_id`; returns the nonce.
    pub fn issue_ticket(&self, user_id: &str) -> String {
        let nonce = (rand::rng().next_u64() >> 2).to_string();
        if let Ok(mut t) = self.tickets.lock() {
            let now = Instant::now();
            t.retain(|_, (_, exp)| *exp > now);
            t.insert(nonce.clone(), (user_id.to_string(), now + TICKET_TTL));
        }
        nonce
    }

    /// Consume a ticket; the user id it was issued for.
    pub fn redeem_ticket(&self, nonce: &str) -> Option<String> {
        let mut t = self.tickets.lock().ok()?;
        let (user, exp) = t.remove(nonce)?;
        (exp > Instant::now()).then_some(user)
    }

    /// A fresh serviceToken for `user_id`, valid for `ttl`.
    pub fn issue_token(&self, user_id: &str, ttl: Duration) -> String {
        let mut buf = vec![0u8; 241];
        let mut rng = rand::rng();
        loop {
            rng.fill_bytes(&mut buf);
            let tok = base64::engine::general_purpose::STANDARD.encode(&buf);
            if !(tok.contains('+') && tok.contains('/')) {
                continue;
            }
            if let Ok(mut m) = self.tokens.lock() {
                let now = Instant::now();
                m.retain(|_, (_, exp)| *exp > now);
                m.insert(tok.clone(), (user_id.to_string(), now + ttl));
            }
            return tok;
        }
    }

    /// End sessions now: every serviceToken of `user_id` (of all users when `None`), or only
    /// `token` when it is given (and belongs to `user_id`, if that is given too); how many
    /// died.
    pub fn expire(&self, user_id: Option<&str>, token: Option<&str>) -> usize {
        let Ok(mut m) = self.tokens.lock() else {
            return 0;
        };
        let before = m.len();
        m.retain(|tok, (u, _)| {
            let hit = user_id.is_none_or(|id| id == u) && token.is_none_or(|t| t == tok);
            !hit
        });
        before - m.len()
    }

    /// Whether `token` is live and belongs to `user_id`.
    pub fn check(&self, user_id: &str, token: &str) -> bool {
        let Ok(m) = self.tokens.lock() else {
            return false;
        };
        matches!(m.get(token), Some((u, exp)) if u == user_id && *exp > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_lives_its_ttl_and_dies_when_ended() {
        let s = Sessions::default();
        let dead = s.issue_token("1", Duration::ZERO);
        assert!(!s.check("1", &dead), "a token past its lifetime is refused");
        let a = s.issue_token("1", Duration::from_secs(600));
        let b = s.issue_token("1", Duration::from_secs(600));
        let other = s.issue_token("2", Duration::from_secs(600));
        assert!(s.check("1", &a) && s.check("1", &b) && !s.check("2", &a));
        assert_eq!(s.expire(Some("2"), Some(&a)), 0, "a token of another user");
        assert_eq!(s.expire(None, Some(&a)), 1);
        assert!(!s.check("1", &a) && s.check("1", &b));
        assert_eq!(s.expire(Some("1"), None), 1);
        assert!(!s.check("1", &b) && s.check("2", &other));
        assert_eq!(s.expire(None, None), 1);
        assert!(!s.check("2", &other));
    }

    #[test]
    fn a_ticket_is_redeemed_once() {
        let s = Sessions::default();
        let nonce = s.issue_ticket("7");
        assert!(nonce.parse::<u64>().is_ok_and(|n| n < 1 << 62));
        assert_eq!(s.redeem_ticket(&nonce).as_deref(), Some("7"));
        assert_eq!(s.redeem_ticket(&nonce), None);
    }
}
