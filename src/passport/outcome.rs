//! What a finished login yields (`userId` + `passToken`) and how it is collected.
//!
//! The two values may come in the success JSON (`userId` is a number there, `passToken` a
//! string), in `Set-Cookie` of that answer, or only further down the redirect chain (the 2FA
//! `location` sets them on its own 302). [`collect`] takes the JSON first, then the cookies,
//! and follows at most [`MAX_HOPS`] redirects by hand (passport or API origin only) until both
//! are known.

use super::error::LoginError;
use super::http::{network, Answer, PassportHttp};

/// Redirects followed after a login to find its passToken.
pub(crate) const MAX_HOPS: usize = 4;

/// What a login yields; only this is stored. `Debug` redacts the passToken.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    pub user_id: String,
    pub pass_token: String,
}

impl std::fmt::Debug for LoginOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginOutcome")
            .field("user_id", &self.user_id)
            .field("pass_token", &"<redacted>")
            .finish()
    }
}

fn known(http: &PassportHttp, answer: Option<&Answer>) -> Option<LoginOutcome> {
    let user_id = answer
        .and_then(|a| a.text("userId"))
        .or_else(|| http.cookie("userId").map(str::to_string))?;
    let pass_token = answer
        .and_then(|a| a.text("passToken"))
        .or_else(|| http.cookie("passToken").map(str::to_string))?;
    Some(LoginOutcome {
        user_id,
        pass_token,
    })
}

/// The outcome of a successful `answer` (may be `None`), following `location` if needed.
pub(crate) async fn collect(
    http: &mut PassportHttp,
    answer: Option<&Answer>,
    location: Option<String>,
) -> Result<LoginOutcome, LoginError> {
    if let Some(done) = known(http, answer) {
        return Ok(done);
    }
    let mut next = location;
    for _ in 0..MAX_HOPS {
        let Some(link) = next.take() else { break };
        let url = http.hop(&link)?;
        let raw = http
            .get(&url, "the login redirect", None)
            .await
            .map_err(|e| network("the login redirect", e))?;
        if let Some(done) = known(http, answer) {
            return Ok(done);
        }
        if raw.status.is_redirection() {
            next = raw.location();
        }
    }
    Err(LoginError::Malformed(
        "the login was accepted but no passToken came back".into(),
    ))
}
