//! One login's conversation with the passport: requests, the few cookies it carries, the
//! `&&&START&&&` JSON answers, and which hosts a link from an answer may point at.
//!
//! - **No automatic redirects** (`Policy::none()`): every hop is taken by hand so its
//!   `Set-Cookie` can be read and its host checked.
//! - **A tiny cookie jar** (name → value) instead of a full store: a login needs a handful of
//!   passport cookies (`deviceId`, `sdkVersion`, `ick`, `identity_session`, `passToken`,
//!   `userId`, ...) and they are only ever sent to the passport itself.
//! - **Host rule.** A link taken from an answer (`captchaUrl`, `qr`, `lp`, `notificationUrl`,
//!   an identity `location`) must be on the configured passport origin or on a host ending in
//!   `.account.xiaomi.com` (https); a hop after a finished login may also go to the API origin
//!   (the STS callback). Anything else is refused as malformed, so a forged answer cannot send
//!   the cookies elsewhere.
//! - **Answers** may carry the `&&&START&&&` prefix or not. Network errors are reported
//!   without their URL (queries can carry tickets).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use super::error::LoginError;
use super::PassportConfig;

/// The `sdkVersion` cookie a web client sends (spec §1.3 lists a few seen values).
const SDK_VERSION: &str = "accountsdk-18.8.15";
/// The prefix of passport JSON answers.
const JSON_PREFIX: &str = "&&&START&&&";
/// Hosts under this suffix belong to the passport (e.g. `c3.lp.account.xiaomi.com`).
const PASSPORT_SUFFIX: &str = ".account.xiaomi.com";

/// A passport JSON answer.
pub(crate) struct Answer(pub Value);

impl Answer {
    /// `code` (a number, or a numeric string); -1 when absent.
    pub fn code(&self) -> i64 {
        match self.0.get("code") {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(-1),
            Some(Value::String(s)) => s.trim().parse().unwrap_or(-1),
            _ => -1,
        }
    }

    /// A non-empty string field (numbers are rendered as text).
    pub fn text(&self, field: &str) -> Option<String> {
        match self.0.get(field)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// `description`, else `desc`, else a placeholder (server text, never a secret).
    pub fn description(&self) -> String {
        self.text("description")
            .or_else(|| self.text("desc"))
            .unwrap_or_else(|| "no description".to_string())
    }

    /// The refusal of this answer as an error.
    pub fn unexpected(&self) -> LoginError {
        LoginError::Unexpected {
            code: self.code(),
            description: self.description(),
        }
    }
}

/// Parse a passport body: optional `&&&START&&&`, then JSON.
pub(crate) fn parse_answer(
    body: &str,
    status: StatusCode,
    what: &str,
) -> Result<Answer, LoginError> {
    let text = body.trim_start();
    if let Some(title) = html_title(text) {
        return Err(LoginError::WebPage {
            what: what.to_string(),
            title,
        });
    }
    let text = text.strip_prefix(JSON_PREFIX).unwrap_or(text);
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(Answer(v)),
        _ if status.is_server_error() => Err(LoginError::Network(format!(
            "{what} answered HTTP {status}"
        ))),
        _ => Err(LoginError::Malformed(format!(
            "{what} answered HTTP {status} without a JSON object"
        ))),
    }
}

/// The `<title>` of an HTML page (or a placeholder), `None` when `body` is not HTML. Today's
/// passport answers some steps with a web page instead of JSON (§10.3).
pub(crate) fn html_title(body: &str) -> Option<String> {
    let head: String = body.trim_start().chars().take(15).collect();
    let head = head.to_ascii_lowercase();
    if !(head.starts_with("<!doctype html") || head.starts_with("<html")) {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let title = lower
        .find("<title>")
        .and_then(|i| {
            let start = i + "<title>".len();
            lower[start..]
                .find("</title>")
                .and_then(|j| body.get(start..start + j))
        })
        .map(|t| t.trim().chars().take(80).collect::<String>())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "untitled".to_string());
    Some(title)
}

/// A raw answer: status, headers, body.
pub(crate) struct Raw {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Raw {
    /// The `Location` header, if any.
    pub fn location(&self) -> Option<String> {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .filter(|l| !l.is_empty())
    }
}

/// One login's HTTP state.
pub(crate) struct PassportHttp {
    http: reqwest::Client,
    passport: Url,
    api: Url,
    jar: BTreeMap<String, String>,
}

fn origin_of(u: &Url) -> (String, Option<String>, Option<u16>) {
    (
        u.scheme().to_string(),
        u.host_str().map(str::to_ascii_lowercase),
        u.port_or_known_default(),
    )
}

impl PassportHttp {
    pub fn new(cfg: &PassportConfig) -> Result<Self, LoginError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .user_agent(concat!("micloudfs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LoginError::Network(format!("cannot set up HTTP: {e}")))?;
        let mut jar = BTreeMap::new();
        jar.insert("deviceId".to_string(), cfg.device_id.clone());
        jar.insert("sdkVersion".to_string(), SDK_VERSION.to_string());
        Ok(PassportHttp {
            http,
            passport: cfg.passport_base.clone(),
            api: cfg.api_base.clone(),
            jar,
        })
    }

    /// A cookie the passport set (or the client seeded).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.jar
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `path` (absolute path + query) on the passport.
    pub fn passport_url(&self, path: &str) -> Result<Url, LoginError> {
        self.passport
            .join(path)
            .map_err(|e| LoginError::Malformed(format!("cannot build a passport URL: {e}")))
    }

    /// The default STS callback: the API base + `sts`.
    pub fn sts_callback(&self) -> String {
        self.api
            .join("sts")
            .map(|u| u.to_string())
            .unwrap_or_else(|_| format!("{}sts", self.api))
    }

    /// Whether `u` belongs to the passport (configured origin or `*.account.xiaomi.com`).
    pub fn is_passport(&self, u: &Url) -> bool {
        if origin_of(u) == origin_of(&self.passport) {
            return true;
        }
        u.scheme() == "https"
            && u.host_str()
                .is_some_and(|h| h.to_ascii_lowercase().ends_with(PASSPORT_SUFFIX))
    }

    fn is_api(&self, u: &Url) -> bool {
        origin_of(u) == origin_of(&self.api)
    }

    /// Resolve a link from an answer (relative to the passport) and enforce the host rule.
    pub fn link(&self, link: &str, what: &str) -> Result<Url, LoginError> {
        let u = self
            .passport
            .join(link.trim())
            .map_err(|_| LoginError::Malformed(format!("{what} is not a valid URL")))?;
        if self.is_passport(&u) {
            Ok(u)
        } else {
            Err(LoginError::Malformed(format!(
                "{what} points at {}, which is not the Xiaomi passport; refused",
                u.host_str().unwrap_or("no host")
            )))
        }
    }

    /// Like [`Self::link`], but the API origin (the STS callback) is allowed too.
    pub fn hop(&self, link: &str) -> Result<Url, LoginError> {
        let u = self
            .passport
            .join(link.trim())
            .map_err(|_| LoginError::Malformed("a redirect is not a valid URL".into()))?;
        if self.is_passport(&u) || self.is_api(&u) {
            Ok(u)
        } else {
            Err(LoginError::Malformed(format!(
                "a redirect points at {}, which is neither the passport nor the API host; refused",
                u.host_str().unwrap_or("no host")
            )))
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Take the `Set-Cookie`s of an answer from `from`: every cookie from the passport, only
    /// `userId`/`passToken` from the API host (never its serviceToken).
    fn absorb(&mut self, from: &Url, headers: &HeaderMap) {
        let passport = self.is_passport(from);
        for v in headers.get_all(SET_COOKIE) {
            let Ok(s) = v.to_str() else { continue };
            let pair = s.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim().trim_matches('"'));
            if !passport && name != "userId" && name != "passToken" {
                continue;
            }
            if value.is_empty() || value.eq_ignore_ascii_case("EXPIRED") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_string(), value.to_string());
            }
        }
    }

    async fn send(
        &mut self,
        req: reqwest::RequestBuilder,
        url: &Url,
        what: &str,
    ) -> Result<Raw, reqwest::Error> {
        let req = if self.is_passport(url) {
            req.header(COOKIE, self.cookie_header())
        } else {
            req
        };
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        self.absorb(url, &headers);
        let body = resp.bytes().await?;
        tracing::debug!(step = what, status = status.as_u16(), "passport answered");
        Ok(Raw {
            status,
            headers,
            body,
        })
    }

    /// GET `url`; `timeout` overrides the per-request default (the QR long poll).
    pub async fn get(
        &mut self,
        url: &Url,
        what: &str,
        timeout: Option<Duration>,
    ) -> Result<Raw, reqwest::Error> {
        let mut req = self.http.get(url.clone());
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        self.send(req, url, what).await
    }

    /// GET `url` and parse the JSON answer.
    pub async fn get_json(&mut self, url: &Url, what: &str) -> Result<Answer, LoginError> {
        let raw = self
            .get(url, what, None)
            .await
            .map_err(|e| network(what, e))?;
        parse_answer(&String::from_utf8_lossy(&raw.body), raw.status, what)
    }

    /// POST a form to `url` and parse the JSON answer.
    pub async fn post_json(
        &mut self,
        url: &Url,
        form: &[(&str, &str)],
        what: &str,
    ) -> Result<Answer, LoginError> {
        let req = self.http.post(url.clone()).form(form);
        let raw = self
            .send(req, url, what)
            .await
            .map_err(|e| network(what, e))?;
        parse_answer(&String::from_utf8_lossy(&raw.body), raw.status, what)
    }
}

/// A transport error as a [`LoginError::Network`], without its URL.
pub(crate) fn network(what: &str, e: reqwest::Error) -> LoginError {
    let kind = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        e.without_url().to_string()
    };
    LoginError::Network(format!("{what}: {kind}"))
}
