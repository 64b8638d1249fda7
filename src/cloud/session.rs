//! The session: one `serviceToken` shared by every request, kept alive for as long as the
//! account allows, and a clear verdict when it cannot be.
//!
//! Two kinds of credentials (spec §2):
//! - **passToken** (`userId` + `passToken`, from any login): a `serviceToken` is minted by the
//!   three-GET exchange of spec §2.2 when there is none, when it is older than
//!   `refresh_every` (10 minutes, as the longest-running public tool does), and on HTTP 401.
//! - **pasted cookie** (`userId` + `serviceToken` from a browser): it cannot be re-minted, so
//!   it is renewed with the AutoRenewal endpoint (spec §2.6) every `refresh_every / 5`
//!   (2 minutes by default, inside the 120–300 s the public tools use) and on HTTP 401; the
//!   renewed token is handed to the [`CredentialSource`] so that a restart resumes with it.
//!
//! Rules:
//! - **Single-flight.** Any number of requests that see HTTP 401 with the same token cause one
//!   refresh: a refresh carries the generation of the token that failed, and a caller that
//!   finds a newer generation once it holds the refresh lock uses it instead. Under a 3 s
//!   token lifetime and 8 parallel readers this is one exchange per expiry (tested).
//! - **Ahead of expiry, softly.** When an age-based refresh fails for a transient reason
//!   (network), the old token is used while it still works.
//! - **Dead session.** An exchange whose `/sts` answer sets no `serviceToken` (the service's
//!   "passToken invalid" signal, spec §2.1), or a pasted cookie whose renewal is refused, make
//!   the session *dead*. A dead session answers at once with the error that says what to do
//!   (no network traffic), and looks for new credentials through the [`CredentialSource`] (a
//!   running mount re-reads its account file) at most once a second; a new `micloudfs login`
//!   therefore revives it without a remount. Every 60 s it also tries the old credentials
//!   once more.
//! - **Rotation.** When the passport hands back a new passToken with the ticket (§10.5:
//!   `Set-Cookie: passToken` on the `serviceLogin` redirect), the session uses it from then on
//!   and hands it to the [`CredentialSource`], which stores it (atomically, 0600), so the next
//!   mount starts from the newest token.
//! - **Credential hygiene.** The passToken is only ever sent to the passport host
//!   (`account.xiaomi.com`) or to the configured API host itself (the emulator plays both);
//!   cookie headers are marked sensitive; tokens never enter a log line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use tokio::sync::{Mutex, RwLock};
use url::Url;

use super::error::CloudError;
use super::wire::{Envelope, LoginData};

/// What the account holds besides its `userId`.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The long-lived passport token (spec §2.1).
    PassToken(String),
    /// A pasted i.mi.com `serviceToken` (spec §2.6).
    ServiceToken(String),
}

/// The account credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user_id: String,
    pub secret: Secret,
}

impl Credentials {
    pub fn pass_token(user_id: &str, pass_token: &str) -> Self {
        Credentials {
            user_id: user_id.to_string(),
            secret: Secret::PassToken(pass_token.to_string()),
        }
    }

    pub fn cookie(user_id: &str, service_token: &str) -> Self {
        Credentials {
            user_id: user_id.to_string(),
            secret: Secret::ServiceToken(service_token.to_string()),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.secret {
            Secret::PassToken(_) => "passToken",
            Secret::ServiceToken(_) => "serviceToken",
        };
        f.debug_struct("Credentials")
            .field("user_id", &self.user_id)
            .field(kind, &"<redacted>")
            .finish()
    }
}

/// Where a long-running session finds newer credentials, and keeps renewed ones.
pub trait CredentialSource: Send + Sync {
    /// The credentials as stored now (`None`: there are none).
    fn reload(&self) -> Option<Credentials>;
    /// A pasted cookie was renewed, or the passport rotated the passToken: keep the new one.
    fn renewed(&self, _credentials: &Credentials) {}
}

/// A `serviceToken` in use.
#[derive(Clone)]
pub(crate) struct Token {
    pub value: String,
    pub generation: u64,
    obtained: Instant,
}

/// Why a session is dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Death {
    PassTokenRejected,
    CookieExpired,
}

impl Death {
    fn error(self) -> CloudError {
        match self {
            Death::PassTokenRejected => CloudError::PassTokenRejected,
            Death::CookieExpired => CloudError::CookieExpired,
        }
    }
}

struct Dead {
    death: Death,
    since: Instant,
    last_look: Instant,
}

/// Look for new credentials at most this often while dead.
const RELOAD_EVERY: Duration = Duration::from_secs(1);
/// Try the old credentials again this long after they failed.
const RETRY_DEAD_AFTER: Duration = Duration::from_secs(60);

pub(crate) struct Session {
    http: reqwest::Client,
    base: Url,
    refresh_every: Duration,
    creds: RwLock<Credentials>,
    current: RwLock<Option<Token>>,
    dead: std::sync::Mutex<Option<Dead>>,
    refresh_lock: Mutex<()>,
    generations: AtomicU64,
    exchanges: AtomicU64,
    renewals: AtomicU64,
    rotations: AtomicU64,
    source: Option<Arc<dyn CredentialSource>>,
}

const PASSPORT_HOST: &str = "account.xiaomi.com";

impl Session {
    pub fn new(
        http: reqwest::Client,
        base: Url,
        creds: Credentials,
        refresh_every: Duration,
        source: Option<Arc<dyn CredentialSource>>,
    ) -> Self {
        // A pasted cookie is usable as it is, until its first renewal.
        let current = match &creds.secret {
            Secret::ServiceToken(t) => Some(Token {
                value: t.clone(),
                generation: 0,
                obtained: Instant::now(),
            }),
            Secret::PassToken(_) => None,
        };
        Session {
            http,
            base,
            refresh_every,
            creds: RwLock::new(creds),
            current: RwLock::new(current),
            dead: std::sync::Mutex::new(None),
            refresh_lock: Mutex::new(()),
            generations: AtomicU64::new(0),
            exchanges: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            source,
        }
    }

    pub async fn user_id(&self) -> String {
        self.creds.read().await.user_id.clone()
    }

    /// How many passToken exchanges this session has made.
    pub fn exchanges(&self) -> u64 {
        self.exchanges.load(Ordering::Relaxed)
    }

    /// How many AutoRenewal calls renewed a pasted cookie.
    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::Relaxed)
    }

    /// The credentials in use now (a pasted cookie with its latest renewal).
    pub async fn current_credentials(&self) -> Credentials {
        let creds = self.creds.read().await.clone();
        match (&creds.secret, &*self.current.read().await) {
            (Secret::ServiceToken(_), Some(t)) => Credentials::cookie(&creds.user_id, &t.value),
            _ => creds,
        }
    }

    /// Whether the session is dead (credentials refused) right now.
    pub fn is_dead(&self) -> bool {
        self.dead.lock().map(|d| d.is_some()).unwrap_or(false)
    }

    /// How old a token may get before it is replaced (pasted cookies: renewed 5× as often).
    async fn max_age(&self) -> Duration {
        match self.creds.read().await.secret {
            Secret::PassToken(_) => self.refresh_every,
            Secret::ServiceToken(_) => self.refresh_every / 5,
        }
    }

    /// A usable token: the current one, or a fresh one if there is none or it is old.
    pub async fn token(&self) -> Result<Token, CloudError> {
        let max_age = self.max_age().await;
        let (stale, old) = match &*self.current.read().await {
            Some(t) if t.obtained.elapsed() < max_age && !self.is_dead() => return Ok(t.clone()),
            Some(t) => (Some(t.generation), Some(t.clone())),
            None => (None, None),
        };
        match self.refresh(stale).await {
            Err(e) if e.is_transient() && !self.is_dead() => match old {
                // The refresh ahead of expiry failed for now: the old token may still work.
                Some(t) => {
                    tracing::warn!(error = %e, "cannot refresh the session yet; using the current one");
                    Ok(t)
                }
                None => Err(e),
            },
            other => other,
        }
    }

    /// Proves the credentials now: a passToken yields a token as [`Session::token`] does; a
    /// pasted cookie, whose age nobody knows, is renewed at once (so `login` stores, and
    /// `whoami` keeps, the freshest token; an expired one is told at once).
    pub async fn prove(&self) -> Result<Token, CloudError> {
        if matches!(self.creds.read().await.secret, Secret::PassToken(_)) {
            return self.token().await;
        }
        let generation = self.current.read().await.as_ref().map(|t| t.generation);
        self.refresh(generation).await
    }

    /// One beat of an idle mount's keep-alive: a pasted cookie due for renewal is renewed now
    /// (its session would otherwise lapse while nobody reads); a passToken session, or a dead
    /// one, needs nothing (a token is minted, or the account file looked at, on the next
    /// request).
    pub async fn keep_alive(&self) -> Result<(), CloudError> {
        let pasted = matches!(self.creds.read().await.secret, Secret::ServiceToken(_));
        if !pasted || self.is_dead() {
            return Ok(());
        }
        self.token().await.map(|_| ())
    }

    /// How often a pasted cookie is renewed.
    pub fn renewal_period(&self) -> Duration {
        self.refresh_every / 5
    }

    /// Called when `failed` met HTTP 401: replaces it, once for all concurrent callers.
    pub async fn refresh_after_401(&self, failed: &Token) -> Result<Token, CloudError> {
        self.refresh(Some(failed.generation)).await
    }

    async fn refresh(&self, stale: Option<u64>) -> Result<Token, CloudError> {
        let _guard = self.refresh_lock.lock().await;
        self.revive_if_possible().await?;
        let max_age = self.max_age().await;
        if let Some(t) = &*self.current.read().await {
            let newer = stale.is_none_or(|g| t.generation > g);
            if newer && t.obtained.elapsed() < max_age {
                return Ok(t.clone());
            }
        }
        let creds = self.creds.read().await.clone();
        let current = self.current.read().await.clone();
        let minted = match &creds.secret {
            Secret::PassToken(pt) => match self.exchange(&creds.user_id, pt).await {
                Ok((value, rotated)) => {
                    if let Some(fresh) = rotated {
                        self.adopt_rotated(&creds.user_id, fresh).await;
                    }
                    Ok(value)
                }
                Err(e) => Err(e),
            },
            Secret::ServiceToken(pasted) => {
                let value = current.map(|t| t.value).unwrap_or_else(|| pasted.clone());
                self.renew(&creds.user_id, &value).await
            }
        };
        let value = match minted {
            Ok(v) => v,
            Err(e) => {
                let death = match e {
                    CloudError::PassTokenRejected => Some(Death::PassTokenRejected),
                    CloudError::CookieExpired => Some(Death::CookieExpired),
                    _ => None,
                };
                if let Some(death) = death {
                    self.die(death);
                }
                return Err(e);
            }
        };
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let token = Token {
            value: value.clone(),
            generation,
            obtained: Instant::now(),
        };
        *self.current.write().await = Some(token.clone());
        if let (Secret::ServiceToken(_), Some(source)) = (&creds.secret, &self.source) {
            source.renewed(&Credentials::cookie(&creds.user_id, &value));
        }
        tracing::info!(generation, "the session has a new serviceToken");
        Ok(token)
    }

    /// §10.5: the passport handed back a new passToken: use it from now on and have it stored
    /// (a later mount or command starts from it).
    async fn adopt_rotated(&self, user_id: &str, fresh: String) {
        let creds = Credentials::pass_token(user_id, &fresh);
        *self.creds.write().await = creds.clone();
        self.rotations.fetch_add(1, Ordering::Relaxed);
        tracing::info!("the passport handed back a new passToken; keeping it");
        if let Some(source) = &self.source {
            source.renewed(&creds);
        }
    }

    fn die(&self, death: Death) {
        let Ok(mut dead) = self.dead.lock() else {
            return;
        };
        if dead.is_none() {
            tracing::error!(
                "the session ended: {}. Files already cached stay readable; others fail \
                 with an I/O error until you run `micloudfs login` again (the mount picks the new \
                 login up by itself)",
                death.error()
            );
        }
        let now = Instant::now();
        *dead = Some(Dead {
            death,
            since: now,
            last_look: now,
        });
    }

    /// While dead: new credentials revive the session; else the death's error, at once.
    async fn revive_if_possible(&self) -> Result<(), CloudError> {
        let (death, look, retry) = {
            let Ok(mut guard) = self.dead.lock() else {
                return Ok(());
            };
            let Some(dead) = guard.as_mut() else {
                return Ok(());
            };
            let look = dead.last_look.elapsed() >= RELOAD_EVERY;
            if look {
                dead.last_look = Instant::now();
            }
            (dead.death, look, dead.since.elapsed() >= RETRY_DEAD_AFTER)
        };
        if look {
            if let Some(fresh) = self.source.as_ref().and_then(|s| s.reload()) {
                let mut creds = self.creds.write().await;
                if *creds != fresh {
                    tracing::info!(user = %fresh.user_id, "new credentials were stored; resuming the session");
                    let pasted = match &fresh.secret {
                        Secret::ServiceToken(t) => Some(t.clone()),
                        Secret::PassToken(_) => None,
                    };
                    *creds = fresh;
                    let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
                    *self.current.write().await = pasted.map(|value| Token {
                        value,
                        generation,
                        obtained: Instant::now(),
                    });
                    if let Ok(mut d) = self.dead.lock() {
                        *d = None;
                    }
                    return Ok(());
                }
            }
        }
        if retry {
            if let Ok(mut d) = self.dead.lock() {
                *d = None;
            }
            return Ok(());
        }
        Err(death.error())
    }

    /// AutoRenewal (spec §2.6) of a pasted cookie. Returns the serviceToken to use next.
    async fn renew(&self, user_id: &str, token: &str) -> Result<String, CloudError> {
        let what = "the renewal of the pasted cookie";
        let mut url = self.base.join("status/lite/setting").map_err(config_err)?;
        url.query_pairs_mut()
            .append_pair("type", "AutoRenewal")
            .append_pair("inactiveTime", "10")
            .append_pair("ts", &now_ms().to_string());
        let resp = self
            .http
            .get(url)
            .header(
                COOKIE,
                sensitive(format!("userId={user_id}; serviceToken={token}"))?,
            )
            .send()
            .await
            .map_err(|e| transient(what, e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(CloudError::CookieExpired);
        }
        if !status.is_success() {
            return Err(transient(what, format!("HTTP {status}")));
        }
        let fresh = set_cookie(resp.headers(), "serviceToken");
        let body = resp.text().await.map_err(|e| transient(what, e))?;
        let env: Envelope = serde_json::from_str(&body).map_err(|e| malformed(what, e))?;
        if env.result.as_deref() != Some("ok") {
            return Err(transient(
                what,
                format!("answer {:?}", env.result.unwrap_or_default()),
            ));
        }
        self.renewals.fetch_add(1, Ordering::Relaxed);
        // No new cookie means "no need to renew": the current one stays good.
        Ok(fresh.unwrap_or_else(|| token.to_string()))
    }

    /// The three GETs of spec §2.2. Returns the `serviceToken` value, and the new passToken
    /// when the passport handed one back with the ticket (§10.5).
    async fn exchange(
        &self,
        user_id: &str,
        pass_token: &str,
    ) -> Result<(String, Option<String>), CloudError> {
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
        let cookie = format!("userId={user_id}; deviceId={device_id}; passToken={pass_token}");
        let resp = self
            .http
            .get(login_url.clone())
            .header(COOKIE, sensitive(cookie)?)
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
        let rotated = set_cookie(resp.headers(), "passToken")
            .filter(|t| t != pass_token && !t.eq_ignore_ascii_case("EXPIRED"));
        let sts = login_url.join(&location).map_err(config_err)?;

        // 3. The STS callback sets the i.mi.com cookies; the passToken is not sent there.
        let resp = self
            .http
            .get(sts)
            .header(
                COOKIE,
                sensitive(format!("userId={user_id}; deviceId={device_id}"))?,
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
        self.exchanges.fetch_add(1, Ordering::Relaxed);
        let token =
            set_cookie(resp.headers(), "serviceToken").ok_or(CloudError::PassTokenRejected)?;
        Ok((token, rotated))
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

/// The value of the first non-empty `Set-Cookie: <name>=...`.
fn set_cookie(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            let (n, rest) = c.split_once('=')?;
            let value = rest.split(';').next()?.trim();
            (n.trim() == name && !value.is_empty()).then(|| value.to_string())
        })
}

/// A `Cookie` header value that HTTP libraries must never log or index.
pub(crate) fn sensitive(value: String) -> Result<HeaderValue, CloudError> {
    let mut v = HeaderValue::from_str(&value).map_err(|_| {
        CloudError::Config(
            "the stored credentials contain characters a cookie cannot carry; run `micloudfs \
             login` again"
                .into(),
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
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
