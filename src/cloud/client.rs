//! `HttpGalleryClient`: the real `GalleryApi` over HTTPS (spec §3, §4).
//!
//! Every call goes through `with_retries`, which owns the error policy of DESIGN.md §6:
//! - HTTP 401 → one `serviceToken` refresh (single-flight in `Session`) and one retry; a
//!   second 401 right after a fresh token is diagnosed: `getEncInfo` tells end-to-end
//!   encryption (`EndToEndEncrypted`) from the gallery's second validation
//!   (`SecondValidation`), anything else is `Unauthorized`;
//! - transient failures (connect/reset/timeout, 5xx, 429, a 200 body without `data`, an
//!   unreadable body, `retriable:true`) → up to `MAX_ATTEMPTS` tries with exponential backoff
//!   (250 ms doubling, capped at 8 s, ±50 % jitter: about 8 s in all before giving up);
//! - `code` 50050 → `ItemDeleted`; other business codes → `Api`.
//!
//! Listings page with `pageSize` 100 until `isLastPage` or an empty page, with a hard cap
//! on the number of pages so that a server that never says "last" cannot loop us forever.
//! Downloads run the three steps of spec §4 and hand back the body as a stream. The data
//! path calls the steps apart and once each (`resolve` = storage + JSONP, `fetch` = the POST,
//! with an HTTP `Range` when asked, 206 or 200 accepted): retrying, reusing a resolved URL
//! and resolving it again when refused are the content layer's (`content::retry`), so tries
//! never multiply. `open_download` keeps the three steps with retries for other callers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, COOKIE, RANGE};
use reqwest::StatusCode;
use url::Url;

use super::error::CloudError;
use super::session::{
    malformed, now_ms, sensitive, transient, CredentialSource, Credentials, Session,
};
use super::wire::{self, AlbumPage, Envelope, ItemPage, JsonpPayload, StorageData};
use super::{ContentRange, Download, GalleryApi, Resolved, ResolvedTarget};
use crate::model::{Album, AlbumId, Item, ItemId};

/// How many times one logical request is tried before a transient failure is reported.
pub const MAX_ATTEMPTS: u32 = 6;
/// Items per `galleries` page and albums per `album/list` page.
const PAGE_SIZE: u32 = 100;
/// `allitems` records per request: the server caps `limit` at about 60 (spec §3.8).
const ALLITEMS_LIMIT: u32 = 60;
/// Recordings per list request (what XAS and OpenList use, spec §3.12).
const RECORDINGS_PAGE: u32 = 500;
/// No gallery has this many pages; a server that keeps saying "more" is stopped here.
const MAX_PAGES: u32 = 100_000;

/// How the client reaches the service.
#[derive(Clone)]
pub struct ClientConfig {
    /// `https://i.mi.com` or a regional host, or the emulator's `http://127.0.0.1:PORT`.
    pub api_base: String,
    pub credentials: Credentials,
    /// Replace the serviceToken when it is this old.
    pub token_refresh: Duration,
    /// Limit for one JSON request, and for a pause inside a download body.
    pub request_timeout: Duration,
    /// Where a dead session looks for new credentials (a mount's account file).
    pub source: Option<Arc<dyn CredentialSource>>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("api_base", &self.api_base)
            .field("credentials", &self.credentials)
            .field("token_refresh", &self.token_refresh)
            .field("request_timeout", &self.request_timeout)
            .field("source", &self.source.is_some())
            .finish()
    }
}

/// What `whoami` shows besides the stored account.
#[derive(Clone, Debug, Default)]
pub struct AccountInfo {
    pub nickname: String,
    /// Bytes the gallery uses (`usedDetail.GalleryImage.size`).
    pub gallery_bytes: u64,
    /// Bytes used in all, and the quota.
    pub used_bytes: u64,
    pub quota_bytes: u64,
}

impl ClientConfig {
    pub fn new(api_base: &str, credentials: Credentials) -> Self {
        ClientConfig {
            api_base: api_base.to_string(),
            credentials,
            token_refresh: Duration::from_secs(600),
            request_timeout: Duration::from_secs(60),
            source: None,
        }
    }
}

pub struct HttpGalleryClient {
    http: reqwest::Client,
    /// Step 3 of a download (the file's bytes): see `new`.
    download: reqwest::Client,
    base: Url,
    session: Session,
    timeout: Duration,
}

impl HttpGalleryClient {
    pub fn new(config: ClientConfig) -> Result<Self, CloudError> {
        let mut base = Url::parse(&config.api_base).map_err(|e| {
            CloudError::Config(format!(
                "--api-base {:?} is not a URL ({e}); use for example https://i.mi.com",
                config.api_base
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(CloudError::Config(format!(
                "--api-base {:?} must start with https:// (or http:// for the emulator)",
                config.api_base
            )));
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let builder = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("micloudfs/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(config.request_timeout.min(Duration::from_secs(15)))
                .tcp_nodelay(true)
                .pool_max_idle_per_host(32)
        };
        let http = builder()
            .read_timeout(config.request_timeout)
            .build()
            .map_err(|e| CloudError::Config(format!("cannot set up HTTPS: {e}")))?;
        // File bytes: no per-read timer (the content layer's one watchdog per body watches
        // for a stall, `content::fetcher`), and no `Accept-Encoding`, so a body is the file's
        // own bytes whatever the server would compress, and its length is the listed one.
        let download = builder()
            .no_gzip()
            .build()
            .map_err(|e| CloudError::Config(format!("cannot set up HTTPS: {e}")))?;
        let session = Session::new(
            http.clone(),
            base.clone(),
            config.credentials,
            config.token_refresh,
            config.source,
        );
        Ok(HttpGalleryClient {
            http,
            download,
            base,
            session,
            timeout: config.request_timeout,
        })
    }

    /// Mints a serviceToken now, or renews a pasted cookie: proves the credentials work (used
    /// by `login` and `whoami`).
    pub async fn check_credentials(&self) -> Result<(), CloudError> {
        with_retries("the session", || async {
            self.session.prove().await.map(|_| ())
        })
        .await
    }

    /// Reads the first album page: proves the gallery itself answers (no second validation,
    /// no end-to-end encryption).
    pub async fn check_gallery(&self) -> Result<(), CloudError> {
        self.get_data(
            "gallery/user/album/list",
            &[
                ("pageNum", "0".into()),
                ("pageSize", "1".into()),
                ("isShared", "false".into()),
                ("numOfThumbnails", "1".into()),
            ],
            "the album list",
        )
        .await
        .map(|_| ())
    }

    /// Nickname and storage figures (spec §3.7: `/status/lite/profile`, `/status/lite/alldetail`).
    pub async fn account_info(&self) -> Result<AccountInfo, CloudError> {
        let profile = self
            .get_data("status/lite/profile", &[], "the profile")
            .await?;
        let detail = self
            .get_data("status/lite/alldetail", &[], "the storage figures")
            .await?;
        let num = |v: &serde_json::Value| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0)
        };
        Ok(AccountInfo {
            nickname: profile["nickname"].as_str().unwrap_or("").to_string(),
            gallery_bytes: num(&detail["usedDetail"]["GalleryImage"]["size"]),
            used_bytes: num(&detail["used"]),
            quota_bytes: num(&detail["totalQuota"]),
        })
    }

    /// How many passToken exchanges this client has made.
    pub fn token_exchanges(&self) -> u64 {
        self.session.exchanges()
    }

    /// The credentials in use now (a pasted cookie with its latest renewal): what `login`
    /// stores.
    pub async fn current_credentials(&self) -> Credentials {
        self.session.current_credentials().await
    }

    /// How many AutoRenewal calls renewed a pasted cookie.
    pub fn cookie_renewals(&self) -> u64 {
        self.session.renewals()
    }

    /// Keeps a pasted cookie alive while the mount is idle (spec §2.6): runs forever, looking
    /// four times per renewal period whether a renewal is due. Cheap otherwise: no request
    /// unless one is due, nothing at all for passToken sessions.
    pub async fn keep_cookie_alive(self: Arc<Self>) {
        let beat = (self.session.renewal_period() / 4).max(Duration::from_millis(100));
        let mut ticker = tokio::time::interval(beat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticker.tick().await;
            if let Err(e) = self.session.keep_alive().await {
                tracing::warn!(error = %e, "cannot renew the pasted cookie yet");
            }
        }
    }

    /// Whether the session is dead (the credentials were refused) right now.
    pub fn session_dead(&self) -> bool {
        self.session.is_dead()
    }

    /// After a second 401: is it end-to-end encryption, or the gallery's second validation?
    async fn diagnose_401(&self, token: &str, second_validation: bool) -> CloudError {
        if !second_validation {
            return CloudError::Unauthorized;
        }
        let Ok(url) = self.api_url(
            "mic/keybag/v1/getEncInfo",
            &[("hsid", "2".into()), ("appId", "micloud".into())],
        ) else {
            return CloudError::SecondValidation;
        };
        let user = self.session.user_id().await;
        let Ok(cookie) = sensitive(format!("userId={user}; serviceToken={token}")) else {
            return CloudError::SecondValidation;
        };
        let answer = async {
            let resp = self
                .http
                .get(url)
                .header(COOKIE, cookie)
                .timeout(self.timeout)
                .send()
                .await
                .ok()?;
            let body = resp.text().await.ok()?;
            let data = parse_envelope(&body, "getEncInfo").ok()?;
            data["e2eeStatus"].as_str().map(str::to_string)
        }
        .await;
        match answer.as_deref() {
            Some("open") => CloudError::EndToEndEncrypted,
            _ => CloudError::SecondValidation,
        }
    }

    /// The URL of an authenticated endpoint, with the cache-busting `ts` the web app sends.
    fn api_url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, CloudError> {
        let mut url = self
            .base
            .join(path)
            .map_err(|e| CloudError::Config(e.to_string()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("ts", &now_ms().to_string());
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// GET an authenticated JSON endpoint and return its `data`, with the retry policy.
    async fn get_data(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<serde_json::Value, CloudError> {
        let url = self.api_url(path, query)?;
        with_retries(what, || self.get_once(&url, what)).await
    }

    /// One try of `get_data`; an HTTP 401 is answered here by one refresh and one resend.
    async fn get_once(&self, url: &Url, what: &str) -> Result<serde_json::Value, CloudError> {
        let mut token = self.session.token().await?;
        for resend in [false, true] {
            let user = self.session.user_id().await;
            let cookie = sensitive(format!("userId={user}; serviceToken={}", token.value))?;
            let resp = self
                .http
                .get(url.clone())
                .header(COOKIE, cookie)
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|e| net_error(what, e))?;
            let status = resp.status();
            let body = resp.text().await.map_err(|e| net_error(what, e))?;
            if status == StatusCode::UNAUTHORIZED {
                if resend {
                    let info: wire::Unauthorized = serde_json::from_str(&body).unwrap_or_default();
                    return Err(self
                        .diagnose_401(&token.value, info.is_second_validation)
                        .await);
                }
                tracing::debug!(%what, "session expired (HTTP 401); refreshing it");
                token = self.session.refresh_after_401(&token).await?;
                continue;
            }
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                return Err(transient(what, format!("HTTP {status}")));
            }
            if !status.is_success() {
                return Err(malformed(what, format!("unexpected HTTP {status}")));
            }
            return parse_envelope(&body, what);
        }
        Err(transient(what, "HTTP 401 after a refresh"))
    }

    /// Steps 1 and 2 of spec §4 once: the URL-B and META of the item's download. A
    /// recording's step 1 is the recorder's `storage` (spec §3.12, answering 50202 when it
    /// is gone); the rest is the same.
    async fn resolve_once(&self, id: ItemId, recording: bool) -> Result<Resolved, CloudError> {
        let what = format!("the download of item {id}");
        let url = if recording {
            let cb = format!("dl_sfs_cb_{}_0", now_ms());
            self.api_url(&format!("sfs/ns/recorder/file/{id}/cb/{cb}/storage"), &[])?
        } else {
            self.api_url("gallery/storage", &[("id", id.to_string())])?
        };
        let data = self.get_once(&url, &what).await.map_err(|e| match e {
            CloudError::Api {
                code: 50050 | 50202,
                ..
            } => CloudError::ItemDeleted(id.to_string()),
            other => other,
        })?;
        let storage: StorageData = serde_json::from_value(data).map_err(|e| malformed(&what, e))?;
        let url_a = self
            .base
            .join(&storage.url)
            .map_err(|e| malformed(&what, e))?;

        // Step 2: the JSONP, no cookies.
        let resp = self
            .http
            .get(url_a)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| net_error(&what, e))?;
        check_download_status(resp.status(), &what)?;
        let body = resp.text().await.map_err(|e| net_error(&what, e))?;
        let json = wire::unwrap_jsonp(&body)
            .ok_or_else(|| malformed(&what, "step 2 answer is not a JSONP call"))?;
        let payload: JsonpPayload = serde_json::from_str(json).map_err(|e| malformed(&what, e))?;
        let url_b = self
            .base
            .join(&payload.url)
            .map_err(|e| malformed(&what, e))?;
        Ok(Resolved {
            item: id,
            target: Some(Arc::new(ResolvedTarget {
                url: url_b,
                meta: payload.meta,
            })),
            resolved_at: std::time::Instant::now(),
        })
    }

    /// Step 3 of spec §4 once: POST meta, the body is the file (or the asked range of it).
    async fn fetch_once(
        &self,
        resolved: &Resolved,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Download, CloudError> {
        let id = resolved.item;
        let what = format!("the download of item {id}");
        let Some(target) = &resolved.target else {
            return Err(CloudError::Config(format!(
                "{what}: fetch was given a resolution without a URL"
            )));
        };
        let form = format!(
            "meta={}",
            percent_encoding::utf8_percent_encode(&target.meta, percent_encoding::NON_ALPHANUMERIC)
        );
        let mut req = self
            .download
            .post(target.url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form);
        if let Some(r) = &range {
            if r.start >= r.end {
                return Err(CloudError::Config(format!("{what}: empty range {r:?}")));
            }
            req = req.header(RANGE, format!("bytes={}-{}", r.start, r.end - 1));
        }
        let resp = req.send().await.map_err(|e| net_error(&what, e))?;
        let status = resp.status();
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            return Err(malformed(
                &what,
                format!("HTTP 416 for the range {range:?}: the file is not the listed size"),
            ));
        }
        check_download_status(status, &what)?;
        let partial = if status == StatusCode::PARTIAL_CONTENT {
            let header = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            Some(ContentRange::parse(header).ok_or_else(|| {
                malformed(&what, format!("HTTP 206 with Content-Range {header:?}"))
            })?)
        } else {
            None
        };
        let content_length = resp.content_length();
        let body = resp
            .bytes_stream()
            .map(move |chunk: Result<Bytes, reqwest::Error>| {
                chunk.map_err(|e| net_error(&format!("the download of item {id}"), e))
            })
            .boxed();
        Ok(Download {
            content_length,
            partial,
            body,
        })
    }

    /// Step 1 to 3 of spec §4 once; the caller retries.
    async fn try_download(&self, id: ItemId, recording: bool) -> Result<Download, CloudError> {
        let resolved = self.resolve_once(id, recording).await?;
        self.fetch_once(&resolved, None).await
    }
}

/// A network failure of a request, as a transient error that says why: the chain of
/// causes (`connection refused`, `operation timed out`…) but never the URL, whose query
/// carries a download's signature.
fn net_error(what: &str, e: reqwest::Error) -> CloudError {
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !detail.contains(&c_text) {
            detail.push_str(": ");
            detail.push_str(&c_text);
        }
        cause = c.source();
    }
    transient(what, detail)
}

/// Parses the items of a page one by one: a malformed one is skipped with a warning.
fn parse_items(raw: &[serde_json::Value], album: AlbumId) -> Vec<Item> {
    let mut items = Vec::with_capacity(raw.len());
    for v in raw {
        match wire::parse_item(v, album) {
            Ok(it) => items.push(it),
            Err(why) => tracing::warn!(
                %album,
                id = %v.get("id").map(|v| v.to_string()).unwrap_or_default(),
                %why,
                "skipping a malformed item"
            ),
        }
    }
    items
}

fn check_download_status(status: StatusCode, what: &str) -> Result<(), CloudError> {
    if status.is_success() {
        Ok(())
    } else if status == StatusCode::FORBIDDEN
        || status == StatusCode::NOT_FOUND
        || status == StatusCode::GONE
    {
        Err(CloudError::UrlRefused {
            status: status.as_u16(),
            what: what.to_string(),
        })
    } else {
        Err(transient(what, format!("HTTP {status}")))
    }
}

/// Checks the envelope of a 200 answer and returns its `data`.
fn parse_envelope(body: &str, what: &str) -> Result<serde_json::Value, CloudError> {
    let env: Envelope = match serde_json::from_str(body) {
        Ok(e) => e,
        // A cut or garbled body: try again.
        Err(e) => return Err(transient(what, format!("unreadable answer: {e}"))),
    };
    match env.code {
        Some(0) | None if env.result.as_deref() != Some("error") => env
            .data
            .ok_or_else(|| transient(what, "answer without data")),
        Some(50050) => Err(CloudError::Api {
            code: 50050,
            description: env.description.unwrap_or_default(),
            what: what.to_string(),
        }),
        code if env.retriable == Some(true) => Err(transient(
            what,
            format!("code {} (retriable)", code.unwrap_or(-1)),
        )),
        code => Err(CloudError::Api {
            code: code.unwrap_or(-1),
            description: env.description.unwrap_or_default(),
            what: what.to_string(),
        }),
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `MAX_ATTEMPTS` transient failures
/// have been seen (then the last one is returned with the count).
async fn with_retries<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(e) if e.is_transient() && tries < MAX_ATTEMPTS => {
                tracing::debug!(%what, error = %e, attempt = tries, "retrying");
                tokio::time::sleep(backoff(tries)).await;
            }
            Err(CloudError::Transient { what, detail, .. }) => {
                tracing::warn!(%what, %detail, "giving up after {tries} attempts");
                return Err(CloudError::Transient {
                    what,
                    detail,
                    attempts: tries,
                });
            }
            other => return other,
        }
    }
}

/// 250 ms doubling per attempt, capped at 8 s, with ±50 % jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64
        .saturating_mul(1 << attempt.saturating_sub(1).min(5))
        .min(8000);
    let jitter = rand::random_range(0.5..1.5);
    Duration::from_millis((base as f64 * jitter) as u64)
}

#[async_trait]
impl GalleryApi for HttpGalleryClient {
    async fn list_albums(&self) -> Result<Vec<Album>, CloudError> {
        let mut albums = Vec::new();
        for page in 0..MAX_PAGES {
            let data = self
                .get_data(
                    "gallery/user/album/list",
                    &[
                        ("pageNum", page.to_string()),
                        ("pageSize", PAGE_SIZE.to_string()),
                        ("isShared", "false".into()),
                        ("numOfThumbnails", "1".into()),
                    ],
                    "the album list",
                )
                .await?;
            let page: AlbumPage =
                serde_json::from_value(data).map_err(|e| malformed("the album list", e))?;
            let (empty, full) = (
                page.albums.is_empty(),
                page.albums.len() >= PAGE_SIZE as usize,
            );
            for raw in &page.albums {
                match wire::parse_album(raw) {
                    Ok(a) => albums.push(a),
                    Err(why) => tracing::warn!(%why, "skipping a malformed album entry"),
                }
            }
            // Without `isLastPage`, a short page is the last one.
            if page.is_last_page.unwrap_or(!full) || empty {
                break;
            }
        }
        Ok(albums)
    }

    async fn list_album_items(&self, album: AlbumId) -> Result<Vec<Item>, CloudError> {
        let mut items = Vec::new();
        for page in 0..MAX_PAGES {
            let p = self.list_items_page(album, None, page).await?;
            items.extend(p.items);
            if p.last_page {
                break;
            }
        }
        Ok(items)
    }

    async fn list_items_page(
        &self,
        album: AlbumId,
        days: Option<(u32, u32)>,
        page: u32,
    ) -> Result<crate::cloud::ItemPage, CloudError> {
        let what = match days {
            Some((from, to)) => format!("the items of album {album} from {from} to {to}"),
            None => format!("the items of album {album}"),
        };
        let mut query = vec![
            ("albumId", album.to_string()),
            ("pageNum", page.to_string()),
            ("pageSize", PAGE_SIZE.to_string()),
        ];
        if let Some((from, to)) = days {
            query.push(("startDate", from.to_string()));
            query.push(("endDate", to.to_string()));
        }
        let data = self
            .get_data("gallery/user/galleries", &query, &what)
            .await?;
        let raw: ItemPage = serde_json::from_value(data).map_err(|e| malformed(&what, e))?;
        let (empty, full) = (
            raw.galleries.is_empty(),
            raw.galleries.len() >= PAGE_SIZE as usize,
        );
        let items = parse_items(&raw.galleries, album);
        // Without `isLastPage`, a short page is the last one.
        let last_page = raw.is_last_page.unwrap_or(!full) || empty;
        Ok(crate::cloud::ItemPage { items, last_page })
    }

    async fn day_counts(&self, album: AlbumId) -> Result<Vec<(u32, u64)>, CloudError> {
        let what = format!("the timeline of album {album}");
        let data = self
            .get_data(
                "gallery/user/timeline",
                &[("albumId", album.to_string())],
                &what,
            )
            .await?;
        let Some(days) = data.get("dayCount").and_then(|d| d.as_object()) else {
            return Err(malformed(&what, "no dayCount object"));
        };
        let mut out = Vec::with_capacity(days.len());
        for (day, n) in days {
            let (Ok(day), Some(n)) = (day.parse::<u32>(), wire::count_of(n)) else {
                return Err(malformed(&what, format!("bad day entry {day:?}")));
            };
            out.push((day, n));
        }
        out.sort_unstable();
        Ok(out)
    }

    async fn album_cursors(&self) -> Result<Vec<crate::cloud::AlbumCursor>, CloudError> {
        let what = "the album cursors (album/full)";
        let data = self.get_data("gallery/album/full", &[], what).await?;
        let Some(list) = data.get("albums").and_then(|a| a.as_array()) else {
            return Err(malformed(what, "no albums array"));
        };
        let mut out = Vec::with_capacity(list.len());
        for raw in list {
            match wire::parse_album_cursor(raw) {
                Ok(c) => out.push(c),
                Err(why) => tracing::warn!(%why, "skipping a malformed album/full entry"),
            }
        }
        Ok(out)
    }

    async fn list_changes(
        &self,
        album: AlbumId,
        tag: u64,
    ) -> Result<crate::cloud::ChangePage, CloudError> {
        let what = format!("the changes of album {album} after tag {tag}");
        let data = self
            .get_data(
                "gallery/allitems",
                &[
                    ("groupId", album.to_string()),
                    ("tag", tag.to_string()),
                    ("limit", ALLITEMS_LIMIT.to_string()),
                    ("simpleResult", "false".into()),
                ],
                &what,
            )
            .await?;
        let content = data
            .get("content")
            .and_then(|c| c.as_array())
            .ok_or_else(|| malformed(&what, "no content array"))?;
        let sync_tag = data
            .get("syncTag")
            .and_then(wire::count_of)
            .ok_or_else(|| malformed(&what, "no syncTag"))?;
        let mut page = crate::cloud::ChangePage {
            sync_tag,
            last_page: data
                .get("lastPage")
                .and_then(|v| v.as_bool())
                .unwrap_or(content.is_empty()),
            ..Default::default()
        };
        for raw in content {
            if raw.get("status").and_then(|s| s.as_str()) == Some("deleted") {
                match wire::id_value(raw.get("id")) {
                    Some(id) => page.deleted.push(ItemId(id)),
                    None => tracing::warn!(%album, "skipping a tombstone without an id"),
                }
            } else {
                page.items
                    .extend(parse_items(std::slice::from_ref(raw), album));
            }
        }
        if sync_tag <= tag && !page.last_page {
            return Err(malformed(&what, "the cursor did not advance"));
        }
        Ok(page)
    }

    async fn list_recordings(&self) -> Result<Vec<crate::cloud::RecordingEntry>, CloudError> {
        let what = "the recordings";
        let mut out = Vec::new();
        for page in 0..MAX_PAGES {
            let data = self
                .get_data(
                    "sfs/ns/recorder/dir/0/list",
                    &[
                        ("limit", RECORDINGS_PAGE.to_string()),
                        ("offset", (page * RECORDINGS_PAGE).to_string()),
                    ],
                    what,
                )
                .await?;
            let list = data
                .get("list")
                .and_then(|l| l.as_array())
                .ok_or_else(|| malformed(what, "no list array"))?;
            for raw in list {
                match wire::parse_recording(raw) {
                    Ok(r) => out.push(r),
                    Err(why) => tracing::warn!(%why, "skipping a malformed recording"),
                }
            }
            // No isLastPage here (spec §3.12): a short page is the last.
            if list.len() < RECORDINGS_PAGE as usize {
                break;
            }
        }
        Ok(out)
    }

    async fn open_download(&self, id: ItemId) -> Result<Download, CloudError> {
        let what = format!("the download of item {id}");
        with_retries(&what, || self.try_download(id, false)).await
    }

    async fn open_item_download(&self, item: &Item) -> Result<Download, CloudError> {
        let recording = item.kind == crate::model::MediaKind::Recording;
        let what = format!("the download of item {}", item.id);
        with_retries(&what, || self.try_download(item.id, recording)).await
    }

    async fn resolve(&self, item: &Item) -> Result<Resolved, CloudError> {
        let recording = item.kind == crate::model::MediaKind::Recording;
        self.resolve_once(item.id, recording).await
    }

    async fn fetch(
        &self,
        resolved: &Resolved,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Download, CloudError> {
        self.fetch_once(resolved, range).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_rules() {
        let data = parse_envelope(r#"{"result":"ok","code":0,"data":{"a":1}}"#, "t").unwrap();
        assert_eq!(data["a"], 1);
        // A 200 body without data is transient (spec §3.6).
        let e = parse_envelope(r#"{"result":"ok","code":0}"#, "t").unwrap_err();
        assert!(e.is_transient(), "{e}");
        // So is a cut body.
        assert!(parse_envelope(r#"{"result":"ok","co"#, "t")
            .unwrap_err()
            .is_transient());
        let e = parse_envelope(r#"{"result":"error","code":50050,"retriable":false}"#, "t");
        assert!(matches!(e, Err(CloudError::Api { code: 50050, .. })));
        let e = parse_envelope(r#"{"result":"error","code":50051,"retriable":true}"#, "t");
        assert!(e.unwrap_err().is_transient());
        let e = parse_envelope(r#"{"result":"error","code":10001,"description":"x"}"#, "t");
        assert!(matches!(e, Err(CloudError::Api { code: 10001, .. })));
    }

    /// A server that compresses whatever it may (`Accept-Encoding: gzip`) would send a body
    /// whose length is not the listed size: a file's bytes are asked for as they are.
    #[tokio::test]
    async fn a_download_asks_for_the_files_own_bytes() {
        use axum::http::HeaderMap;
        let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let log = log.clone();
            async move {
                let enc = headers
                    .get("accept-encoding")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                log.lock().unwrap().push(enc);
                vec![7u8; 1000]
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let base = format!("http://{addr}/");
        let c = HttpGalleryClient::new(ClientConfig::new(
            &base,
            Credentials::pass_token("1", "V1:x"),
        ))
        .unwrap();
        let resolved = Resolved {
            item: ItemId(5),
            target: Some(Arc::new(ResolvedTarget {
                url: Url::parse(&format!("{base}download")).unwrap(),
                meta: "m".into(),
            })),
            resolved_at: std::time::Instant::now(),
        };
        for range in [None, Some(0..1000)] {
            let d = c.fetch(&resolved, range).await.unwrap();
            let mut n = 0;
            let mut body = d.body;
            while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
                n += chunk.unwrap().len();
            }
            assert_eq!(n, 1000);
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(
            seen.iter().all(|e| !e.contains("gzip")),
            "Accept-Encoding of the downloads: {seen:?}"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let d = backoff(attempt);
            assert!(d <= Duration::from_millis(12_000), "{attempt}: {d:?}");
        }
        assert!(backoff(1) < Duration::from_millis(400));
        assert!(backoff(6) >= Duration::from_millis(4000));
    }
}
