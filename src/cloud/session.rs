//! The session: one `serviceToken` shared by every request, minted from the stored
//! `userId` + `passToken` by the three-GET exchange of spec §2.2.
//!
//! - **Single-flight.** Any number of requests that see HTTP 401 with the same token cause
//!   one exchange: a refresh carries the generation of the token that failed, and a caller
//!   that finds a newer generation once it holds the refresh lock uses it instead.
//! - **Ahead of expiry.** A token older than `refresh_every` (10 minutes, as the spec's
//!   longest-running tool does) is replaced before use.
//! - **Dead passToken.** An exchange whose `/sts` answer sets no `serviceToken` is the
//!   service's "passToken invalid" signal (spec §2.1); it becomes
//!   `CloudError::PassTokenRejected`, which tells the user how to fix it.
//! - **Credential hygiene.** The passToken is only ever sent to the passport host
//!   (`account.xiaomi.com`) or to the configured API host itself (the emulator plays both);
//!   tokens never enter a log line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use tokio::sync::{Mutex, RwLock};
use url::Url;

use super::error::CloudError;
use super::wire::{Envelope, LoginData};

/// The long-lived account credentials (spec §2.1).
#[derive(Clone)]
pub struct Credentials {
    pub user_id: String,
    pub pass_token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user_id", &self.user_id)
            .field("pass_token", &"<redacted>")
            .finish()
    }
}

/// A minted `serviceToken`.
#[derive(Clone)]
pub(crate) struct Token {
    pub value: String,
    pub generation: u64,
    obtained: Instant,
}

pub(crate) struct Session {
    http: reqwest::Client,
    base: Url,
    creds: Credentials,
    refresh_every: Duration,
    current: RwLock<Option<Token>>,
    refresh_lock: Mutex<()>,
    exchanges: AtomicU64,
}

const PASSPORT_HOST: &str = "account.xiaomi.com";

impl Session {
    pub fn new(
        http: reqwest::Client,
        base: Url,
        creds: Credentials,
        refresh_every: Duration,
    ) -> Self {
        Session {
            http,
            base,
            creds,
            refresh_every,
            current: RwLock::new(None),
            refresh_lock: Mutex::new(()),
            exchanges: AtomicU64::new(0),
        }
    }

    pub fn user_id(&self) -> &str {
        &self.creds.user_id
    }

    /// How many exchanges this session has made.
    pub fn exchanges(&self) -> u64 {
        self.exchanges.load(Ordering::Relaxed)
    }

    /// A usable token: the current one, or a fresh one if there is none or it is old.
    pub async fn token(&self) -> Result<Token, CloudError> {
        let stale = match &*self.current.read().await {
            Some(t) if t.obtained.elapsed() < self.refresh_every => return Ok(t.clone()),
            Some(t) => Some(t.generation),
            None => None,
        };
        self.refresh(stale).await
    }

    /// Called when `failed` met HTTP 401: replaces it, once for all concurrent callers.
    pub async fn refresh_after_401(&self, failed: &Token) -> Result<Token, CloudError> {
        self.refresh(Some(failed.generation)).await
    }

    async fn refresh(&self, stale: Option<u64>) -> Result<Token, CloudError> {
        let _guard = self.refresh_lock.lock().await;
        if let Some(t) = &*self.current.read().await {
            let newer = stale.is_none_or(|g| t.generation > g);
            if newer && t.obtained.elapsed() < self.refresh_every {
                return Ok(t.clone());
            }
        }
        let value = self.exchange().await?;
        let generation = self.exchanges.fetch_add(1, Ordering::Relaxed) + 1;
        let token = Token {
            value,
            generation,
            obtained: Instant::now(),
        };
        *self.current.write().await = Some(token.clone());
        tracing::info!(generation, "minted a new serviceToken");
        Ok(token)
    }

    /// The three GETs of spec §2.2. Returns the `serviceToken` value.
    async fn exchange(&self) -> Result<String, CloudError> {
        let device_id = format!("wb_{}", hex::encode(rand::random::<[u8; 16]>()));
        let what = "the passToken exchange";

        // 1. The login URL (public endpoint).
        let mut login = self.base.join("api/user/login").map_err(config_err)?;
        login
            .query_pairs_mut()
            .append_pair("ts", &now_ms().to_string())
            .append_pair("followUp", self.base.as_str())
            .append_pair("_locale", "en_US");
        let resp = self
            .http
            .get(login)
            .send()
            .await
            .map_err(|e| transient(what, e))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| transient(what, e))?;
        if status.is_server_error() {
            return Err(transient(what, format!("HTTP {status}")));
        }
        let env: Envelope = serde_json::from_str(&body).map_err(|e| malformed(what, e))?;
        let data = env
            .data
            .ok_or_else(|| transient(what, "login answer without data"))?;
        let login: LoginData = serde_json::from_value(data).map_err(|e| malformed(what, e))?;
        let login_url = self.base.join(&login.login_url).map_err(config_err)?;
        self.check_passport_host(&login_url)?;

        // 2. The passport: a valid passToken earns a 302 to the STS callback.
        let cookie = format!(
            "userId={}; deviceId={}; passToken={}",
            self.creds.user_id, device_id, self.creds.pass_token
        );
        let resp = self
            .http
            .get(login_url.clone())
            .header(COOKIE, &cookie)
            .send()
            .await
            .map_err(|e| transient(what, e))?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(transient(what, format!("passport HTTP {status}")));
        }
        let location = match resp.headers().get(LOCATION).and_then(|l| l.to_str().ok()) {
            Some(l) if status.is_redirection() && !l.is_empty() => l.to_string(),
            _ => return Err(CloudError::PassTokenRejected),
        };
        let sts = login_url.join(&location).map_err(config_err)?;

        // 3. The STS callback sets the i.mi.com cookies; the passToken is not sent there.
        let resp = self
            .http
            .get(sts)
            .header(
                COOKIE,
                format!("userId={}; deviceId={}", self.creds.user_id, device_id),
            )
            .send()
            .await
            .map_err(|e| transient(what, e))?;
        if resp.status().is_server_error() {
            return Err(transient(what, format!("STS HTTP {}", resp.status())));
        }
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(CloudError::PassTokenRejected);
        }
        resp.headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                let (name, rest) = c.split_once('=')?;
                let value = rest.split(';').next()?.trim();
                (name.trim() == "serviceToken" && !value.is_empty()).then(|| value.to_string())
            })
            .ok_or(CloudError::PassTokenRejected)
    }

    /// The passToken goes to the passport or to the configured host, nowhere else.
    fn check_passport_host(&self, url: &Url) -> Result<(), CloudError> {
        let host = url.host_str().unwrap_or("");
        let same_origin = url.origin() == self.base.origin();
        if host == PASSPORT_HOST || same_origin {
            Ok(())
        } else {
            Err(CloudError::Malformed {
                what: "the passToken exchange".into(),
                detail: format!(
                    "the login URL points at {host}, which is neither {PASSPORT_HOST} nor the API \
                     host; refusing to send the passToken there"
                ),
            })
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn transient(what: &str, detail: impl std::fmt::Display) -> CloudError {
    CloudError::Transient {
        what: what.to_string(),
        detail: detail.to_string(),
        attempts: 1,
    }
}

pub(crate) fn malformed(what: &str, detail: impl std::fmt::Display) -> CloudError {
    CloudError::Malformed {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

fn config_err(e: url::ParseError) -> CloudError {
    CloudError::Config(format!("cannot build a service URL: {e}"))
}
