//! The 2FA "identity" check after a correct password (spec §2.5).
//!
//! 1. The `notificationUrl` (`/fe/service/identity/authStart?...`, older `/identity/authStart`)
//!    is rewritten to `/identity/list?...` and fetched: `flag` (4 phone, 8 e-mail), `options`
//!    (every flag offered) and cookie `identity_session`.
//! 2. For each offered channel, `GET /identity/auth/verifyPhone|verifyEmail?_flag=&_json=true`
//!    gives the masked destination; when both are offered the user picks one.
//! 3. `POST /identity/auth/sendPhoneTicket|sendEmailTicket` (`retry=0&icode=&_json=true`);
//!    70022 = no more codes today ([`LoginError::CodeQuota`]); an answer with `captchaUrl`
//!    wants a captcha first, sent back as `icode`.
//! 4. The code, then (once) "trust this device" (default yes) are asked, then
//!    `POST /identity/auth/verifyPhone|verifyEmail` (`_flag`, `ticket`, `trust`, `_json`);
//!    70014 = wrong code, asked again up to [`MAX_TRIES`] times in all.
//! 5. The returned `location` (`/identity/result/check?...`) is fetched without following
//!    redirects; its `Set-Cookie` (or a later hop's) carries `passToken` + `userId`.
//!
//! With `trust=true` the passport remembers the `deviceId`, and the next password login from
//! it skips this check: that is why the caller persists the device id.
//!
//! Today's passport (§10.3) is followed too: every call carries `sid`, `context`, `mask=0`
//! and `_locale` of the `notificationUrl` in its query (bodies are form-encoded, as always
//! here); the method comes from `options` only (a `code:2, version:"v2"` answer says one was
//! not offered); `/identity/pass/sms/userQuota` is asked first so that a channel with no code
//! left is not chosen; `20024` (sending too fast) is waited out when `data.wt` is at most
//! [`MAX_WAIT`] (90 s; the user is told), else reported with the time to retry; the chain
//! after the code (`result/check` → `serviceLoginAuth2/end`, its "Tips" pages → STS) is
//! [`super::outcome::collect`]'s.

use std::path::Path;

use super::error::LoginError;
use super::http::PassportHttp;
use super::outcome::{collect, LoginOutcome};
use super::prompt::Prompter;
use super::{captcha, MAX_TRIES};

/// Daily code quota exhausted.
const CODE_QUOTA: i64 = 70022;
/// Wrong verification code.
const CODE_WRONG: i64 = 70014;
/// Codes asked for too fast; `data.wt` = seconds to wait.
const CODE_TOO_FAST: i64 = 20024;
/// Longest `data.wt` waited out before sending a code; longer is reported.
pub(crate) const MAX_WAIT: u64 = 90;

/// Where a verification code is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    Phone,
    Email,
}

impl Channel {
    fn flag(self) -> &'static str {
        match self {
            Channel::Phone => "4",
            Channel::Email => "8",
        }
    }

    fn from_flag(flag: i64) -> Option<Channel> {
        match flag {
            4 => Some(Channel::Phone),
            8 => Some(Channel::Email),
            _ => None,
        }
    }

    /// `Phone` / `Email`, as in the endpoint names.
    fn noun(self) -> &'static str {
        match self {
            Channel::Phone => "Phone",
            Channel::Email => "Email",
        }
    }

    fn masked_field(self) -> &'static str {
        match self {
            Channel::Phone => "maskedPhone",
            Channel::Email => "maskedEmail",
        }
    }

    /// `addressType` of `userQuota`.
    fn address_type(self) -> &'static str {
        match self {
            Channel::Phone => "PH",
            Channel::Email => "EM",
        }
    }

    fn fallback(self) -> &'static str {
        match self {
            Channel::Phone => "your phone",
            Channel::Email => "your e-mail address",
        }
    }
}

/// The `/identity/list` URL of a `notificationUrl`.
fn list_link(notification: &str) -> String {
    if notification.contains("/fe/service/identity/authStart") {
        notification.replacen("/fe/service/identity/authStart", "/identity/list", 1)
    } else {
        notification.replacen("/identity/authStart", "/identity/list", 1)
    }
}

/// `?sid=&context=&mask=0&_locale=` for the identity calls, from the `notificationUrl`.
fn context_query(notification: &str) -> String {
    let Ok(u) = url::Url::parse(notification)
        .or_else(|_| url::Url::parse("https://x.invalid/").and_then(|b| b.join(notification)))
    else {
        return String::new();
    };
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in u.query_pairs() {
        if k == "sid" || k == "context" {
            q.append_pair(&k, &v);
            any = true;
        }
    }
    if !any {
        return String::new();
    }
    q.append_pair("mask", "0").append_pair("_locale", "zh_CN");
    format!("?{}", q.finish())
}

/// A refusal of an identity call as the right error.
fn refusal(a: &super::http::Answer) -> LoginError {
    if a.code() == 2 && a.text("version").as_deref() == Some("v2") {
        return LoginError::MethodNotOffered;
    }
    a.unexpected()
}

/// The channels an `/identity/list` answer offers, in its order.
fn offered(answer: &super::http::Answer) -> Vec<Channel> {
    let mut out = Vec::new();
    if let Some(options) = answer.0.get("options").and_then(|o| o.as_array()) {
        for o in options {
            let flag = o
                .as_i64()
                .or_else(|| o.as_str().and_then(|s| s.parse().ok()));
            if let Some(c) = flag.and_then(Channel::from_flag) {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
    }
    if out.is_empty() {
        if let Some(c) = answer
            .text("flag")
            .and_then(|f| f.parse().ok())
            .and_then(Channel::from_flag)
        {
            out.push(c);
        }
    }
    out
}

/// Run the identity check that `notification` starts; the login's outcome.
pub(crate) async fn verify(
    http: &mut PassportHttp,
    prompter: &mut dyn Prompter,
    work_dir: &Path,
    notification: &str,
) -> Result<LoginOutcome, LoginError> {
    let list = http.link(&list_link(notification), "the identity check URL")?;
    let answer = http.get_json(&list, "identity/list").await?;
    if answer.code() != 2 && answer.code() != 0 {
        return Err(answer.unexpected());
    }
    let channels = offered(&answer);
    if channels.is_empty() {
        return Err(LoginError::Unexpected {
            code: answer.code(),
            description: "Xiaomi asks for an identity check this tool cannot do; finish it \
                          at account.xiaomi.com in a browser, then retry"
                .into(),
        });
    }
    let cq = context_query(notification);
    let amp = if cq.is_empty() { "?" } else { "&" };
    let mut masked = Vec::new();
    for &c in &channels {
        let url = http.passport_url(&format!(
            "/identity/auth/verify{}{cq}{amp}_flag={}&_json=true",
            c.noun(),
            c.flag()
        ))?;
        let a = http.get_json(&url, "identity/auth/verify").await?;
        if a.code() != 0 {
            return Err(refusal(&a));
        }
        let to = a
            .text(c.masked_field())
            .unwrap_or_else(|| c.fallback().to_string());
        masked.push((c, to));
    }
    if !prompter.interactive() {
        // Asked before a code is sent, so a headless run does not spend the daily quota.
        return Err(LoginError::NeedsInput {
            what: "a verification code sent by SMS or e-mail (two-step check)".into(),
        });
    }
    prompter.say("Xiaomi wants to check that it is you: it will send a verification code.");
    let masked = with_codes_left(http, &cq, masked).await?;
    let (channel, to) = choose(prompter, &masked).await?;
    send_code(http, prompter, work_dir, channel, &cq).await?;
    let code_prompt = format!("Code sent to {to}: ");
    let url = http.passport_url(&format!("/identity/auth/verify{}{cq}", channel.noun()))?;
    let mut trust = None;
    for attempt in 1..=MAX_TRIES {
        let code = prompter.ask_line(&code_prompt).await?;
        let code = code.trim();
        let trust = match trust {
            Some(t) => t,
            None => *trust.insert(ask_trust(prompter).await?),
        };
        let form = [
            ("_flag", channel.flag()),
            ("ticket", code),
            ("trust", if trust { "true" } else { "false" }),
            ("_json", "true"),
        ];
        let a = http.post_json(&url, &form, "identity/auth/verify").await?;
        match a.code() {
            0 => {
                let location = a.text("location").ok_or_else(|| {
                    LoginError::Malformed("the code was accepted but no location came".into())
                })?;
                // Check the host before anything is sent there.
                http.link(&location, "the identity result URL")?;
                return collect(http, None, Some(location)).await;
            }
            CODE_WRONG if attempt < MAX_TRIES => {
                prompter.say("Xiaomi did not accept that code; check it and type it again.");
            }
            CODE_WRONG => return Err(LoginError::CodeRejected),
            _ => return Err(refusal(&a)),
        }
    }
    Err(LoginError::CodeRejected)
}

/// The channels that may still send a code today (`userQuota`, §10.3); all of them when the
/// passport does not say; [`LoginError::CodeQuota`] when none may.
async fn with_codes_left(
    http: &mut PassportHttp,
    cq: &str,
    masked: Vec<(Channel, String)>,
) -> Result<Vec<(Channel, String)>, LoginError> {
    let mut left = Vec::new();
    for (c, to) in masked.iter().cloned() {
        let url = http.passport_url(&format!("/identity/pass/sms/userQuota{cq}"))?;
        let form = [("addressType", c.address_type()), ("contentType", "160040")];
        let n = match http.post_json(&url, &form, "identity/userQuota").await {
            Ok(a) if a.code() == 0 => a.text("info").and_then(|i| i.parse::<u64>().ok()),
            // Not offered, or not understood: the send itself will tell.
            _ => None,
        };
        if n != Some(0) {
            left.push((c, to));
        }
    }
    if left.is_empty() {
        return Err(LoginError::CodeQuota);
    }
    Ok(left)
}

/// The channel to use: the only one, or the user's pick.
async fn choose(
    prompter: &mut dyn Prompter,
    masked: &[(Channel, String)],
) -> Result<(Channel, String), LoginError> {
    let [first, second] = masked else {
        return masked
            .first()
            .cloned()
            .ok_or_else(|| LoginError::Malformed("no identity check offered".into()));
    };
    let label = |c: Channel| match c {
        Channel::Phone => "by SMS to",
        Channel::Email => "by e-mail to",
    };
    prompter.say(&format!("  1) {} {}", label(first.0), first.1));
    prompter.say(&format!("  2) {} {}", label(second.0), second.1));
    for _ in 0..MAX_TRIES {
        let answer = prompter
            .ask_line("Send the code [1/2, default 1]: ")
            .await?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "" | "1" => return Ok(first.clone()),
            "2" => return Ok(second.clone()),
            "sms" | "phone" => {
                if let Some(p) = masked.iter().find(|(c, _)| *c == Channel::Phone) {
                    return Ok(p.clone());
                }
            }
            "email" | "e-mail" | "mail" => {
                if let Some(p) = masked.iter().find(|(c, _)| *c == Channel::Email) {
                    return Ok(p.clone());
                }
            }
            _ => {}
        }
        prompter.say("Please answer 1 or 2.");
    }
    Err(LoginError::Cancelled(
        "no channel was chosen for the verification code; run the login again".into(),
    ))
}

/// "Trust this device?" (default yes: the next login from this device id needs no code).
async fn ask_trust(prompter: &mut dyn Prompter) -> Result<bool, LoginError> {
    let answer = prompter.ask_line("Trust this device? [Y/n] ").await?;
    Ok(!answer.trim().to_ascii_lowercase().starts_with('n'))
}

/// Ask the passport to send a code on `channel` (solving a captcha first if it wants one).
async fn send_code(
    http: &mut PassportHttp,
    prompter: &mut dyn Prompter,
    work_dir: &Path,
    channel: Channel,
    cq: &str,
) -> Result<(), LoginError> {
    let url = http.passport_url(&format!("/identity/auth/send{}Ticket{cq}", channel.noun()))?;
    let mut icode = String::new();
    let mut waited = false;
    let mut attempt = 0;
    while attempt <= MAX_TRIES {
        let ick = http.cookie("ick").unwrap_or("").to_string();
        let form = [
            ("retry", "0"),
            ("icode", icode.as_str()),
            ("_json", "true"),
            ("ick", ick.as_str()),
        ];
        let a = http
            .post_json(&url, &form, "identity/auth/sendTicket")
            .await?;
        match (a.code(), a.text("captchaUrl")) {
            (0, _) => return Ok(()),
            (CODE_QUOTA, _) => return Err(LoginError::CodeQuota),
            (CODE_TOO_FAST, _) => {
                let wt =
                    a.0.pointer("/data/wt")
                        .and_then(|w| w.as_u64().or_else(|| w.as_str()?.parse().ok()))
                        .unwrap_or(60);
                if waited || wt > MAX_WAIT {
                    return Err(LoginError::TooFast { secs: wt });
                }
                prompter.say(&format!(
                    "Xiaomi sent a code only moments ago and asks to wait {wt} s before the \
                     next one; waiting (Ctrl-C to stop)..."
                ));
                tokio::time::sleep(std::time::Duration::from_secs(wt)).await;
                waited = true;
                continue;
            }
            (_, Some(link)) if attempt < MAX_TRIES => {
                icode = captcha::solve(http, prompter, work_dir, &link, attempt > 0).await?;
            }
            (_, Some(_)) => return Err(LoginError::CaptchaFailed),
            _ => return Err(refusal(&a)),
        }
        attempt += 1;
    }
    Err(LoginError::CaptchaFailed)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn notification_url_becomes_the_list() {
        assert_eq!(
            list_link("https://account.xiaomi.com/fe/service/identity/authStart?sid=a&context=b"),
            "https://account.xiaomi.com/identity/list?sid=a&context=b"
        );
        assert_eq!(
            list_link("https://account.xiaomi.com/identity/authStart?sid=a"),
            "https://account.xiaomi.com/identity/list?sid=a"
        );
    }

    #[test]
    fn the_context_goes_into_the_query() {
        assert_eq!(
            context_query("https://a/fe/service/identity/authStart?sid=i.mi.com&context=c%2B1&x=y"),
            "?sid=i.mi.com&context=c%2B1&mask=0&_locale=zh_CN"
        );
        assert_eq!(
            context_query("/fe/service/identity/authStart?context=z"),
            "?context=z&mask=0&_locale=zh_CN"
        );
        assert_eq!(context_query("https://a/x"), "");
    }

    #[test]
    fn options_win_over_flag() {
        let a = super::super::http::Answer(
            serde_json::json!({"code": 2, "flag": 4, "options": [8, 4]}),
        );
        assert_eq!(offered(&a), vec![Channel::Email, Channel::Phone]);
        let a = super::super::http::Answer(serde_json::json!({"code": 2, "flag": "8"}));
        assert_eq!(offered(&a), vec![Channel::Email]);
    }
}
