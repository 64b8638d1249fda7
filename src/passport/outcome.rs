//! What a finished login yields (`userId` + `passToken`) and how it is collected.
//!
//! The two values may come in the success JSON (`userId` is a number there, `passToken` a
//! string), in `Set-Cookie` of that answer, or only further down the redirect chain (the 2FA
//! `location` sets them on its own 302). [`collect`] takes the JSON first, then the cookies,
//! and follows at most [`MAX_HOPS`] redirects by hand (passport or API origin only) until both
//! are known. A hop that answers an HTML page (200) instead of a redirect, like the "Xiaomi
//! Account - Tips" page of today's `serviceLoginAuth2/end`, is fetched again after
//! half a second, at most [`MAX_TIPS`] times; a page that stays is explained
//! ([`LoginError::WebPage`]), never taken for a parse error.

use super::error::LoginError;
use super::http::{html_title, network, Answer, PassportHttp};

/// Redirects followed after a login to find its passToken.
pub(crate) const MAX_HOPS: usize = 4;
/// Times an HTML "Tips" page (today's `serviceLoginAuth2/end`, §10.3) is fetched again.
pub(crate) const MAX_TIPS: u32 = 4;
/// Pause before fetching a "Tips" page again.
const TIPS_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

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
    let mut tips = 0u32;
    let mut hops = 0usize;
    while hops < MAX_HOPS {
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
            hops += 1;
            continue;
        }
        if let Some(title) = html_title(&String::from_utf8_lossy(&raw.body)) {
            if raw.status.is_success() && tips < MAX_TIPS && !title.contains("Error") {
                tips += 1;
                tracing::info!(page = %title, "the passport answered a web page; asking again");
                tokio::time::sleep(TIPS_PAUSE).await;
                next = Some(link);
                continue;
            }
            return Err(LoginError::WebPage {
                what: "the end of the login".into(),
                title,
            });
        }
        break;
    }
    Err(LoginError::Malformed(
        "the login was accepted but no passToken came back".into(),
    ))
}
