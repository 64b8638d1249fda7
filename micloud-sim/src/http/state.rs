//! The server's state, shared by every handler ([`Shared`]), and the gateway's session check.
//!
//! [`App`] holds the configuration, the gallery (one immutable snapshot per request, replaced
//! whole by [`App::mutate`]), and each part's own state: sessions and the passport's memory,
//! the URL signer, the counters, the body cache, the fault draws. Those types live with their
//! parts in files that know nothing of HTTP, so this file depends on them and not the
//! reverse. The [`Session`] extractor is the i.mi.com gateway: a handler that takes it runs
//! only for a live `serviceToken` + `userId`, and every other request gets the 401 with the
//! re-login URL.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::bytes::ContentStore;
use crate::config::accounts::GalleryState;
use crate::config::SimConfig;
use crate::control::stats::Stats;
use crate::http::reply::json;
use crate::http::request::cookies;
use crate::link::faults::Faults;
use crate::model::gallery::Gallery;
use crate::passport::session::Sessions;
use crate::passport::Passport;
use crate::protocol::urls::{base_for, sane_host, Signer};
use crate::protocol::wire;

pub struct App {
    pub config: SimConfig,
    /// The gallery as of now; replaced whole by [`App::mutate`] (readers keep a consistent
    /// snapshot for the whole request).
    pub gallery: RwLock<Arc<Gallery>>,
    pub sessions: Sessions,
    pub signer: Signer,
    pub stats: Stats,
    pub content: ContentStore,
    pub bound: SocketAddr,
    /// Accounts and login-flow state of the emulated passport.
    pub passport: Passport,
    /// Live fault rates and draw sequences.
    pub faults: Faults,
}

pub type Shared = Arc<App>;

impl App {
    /// The state of an emulator serving `gallery` as `config` says, bound to `bound`.
    pub fn new(config: SimConfig, gallery: Gallery, bound: SocketAddr) -> Self {
        let passport = Passport::new(&config.user_id, &config.pass_token, &config.accounts);
        let faults = Faults::new(&config.faults);
        App {
            config,
            gallery: RwLock::new(Arc::new(gallery)),
            sessions: Sessions::default(),
            signer: Signer::default(),
            stats: Stats::default(),
            content: ContentStore::default(),
            bound,
            passport,
            faults,
        }
    }

    /// A consistent snapshot of the gallery.
    pub fn gallery(&self) -> Arc<Gallery> {
        match self.gallery.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Apply a change to the gallery (copy-on-write: readers holding a snapshot are not
    /// disturbed). Returns what `f` returns.
    pub fn mutate<R>(&self, f: impl FnOnce(&mut Gallery) -> R) -> R {
        let mut guard = match self.gallery.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = Gallery::clone(&guard);
        let r = f(&mut next);
        *guard = Arc::new(next);
        r
    }

    /// The base (`scheme://host[:port]`) every handed-out URL starts with: `--public-url` when
    /// given, else the request's Host (https for real Xiaomi names, see [`base_for`]), else the
    /// bound address.
    pub fn host(&self, headers: &HeaderMap) -> String {
        if let Some(public) = &self.config.link.public_url {
            return public.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .filter(|h| sane_host(h))
            .map(str::to_string)
            .unwrap_or_else(|| self.bound.to_string());
        base_for(&host)
    }

    /// The user id of a request carrying a live `serviceToken` + matching `userId`, or the
    /// gateway's 401 response.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<String, Unauthorized> {
        let c = cookies(headers);
        if let (Some(user), Some(token)) = (c.get("userId"), c.get("serviceToken")) {
            let decoded = percent_encoding::percent_decode_str(token).decode_utf8_lossy();
            if self.sessions.check(user, token) || self.sessions.check(user, &decoded) {
                return Ok(user.clone());
            }
        }
        Stats::bump(&self.stats.unauthorized, 1);
        Err(Unauthorized(
            self.signer.login_url(&self.host(headers), "/"),
        ))
    }

    /// Gallery endpoints (`/gallery/...`) refuse a live session of an account with E2EE or a
    /// pending gallery second validation: HTTP 401 with `isSecondValidation:true` (the spec's
    /// [U] guess for that state, §2.5/§5.2). `/common/check`, `/status/...` and `/mic/...` still
    /// answer, so a client can tell this apart from an expired session.
    pub fn second_validation(
        &self,
        user: &str,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), Box<Response>> {
        if !path.starts_with("/gallery/") {
            return Ok(());
        }
        let accounts = &self.passport.accounts;
        if accounts.gallery_blocked(user) {
            Stats::bump(&self.stats.unauthorized, 1);
            self.stats.count("gallery_second_validation", 1);
            return Err(SecondValidation {
                login_url: self.signer.login_url(&self.host(headers), "/"),
                marked: true,
            }
            .into_response()
            .into());
        }
        if accounts.gallery_state(user) == GalleryState::Refused {
            self.stats.count("gallery_region_refused", 1);
            return Err(SecondValidation {
                login_url: String::new(),
                marked: false,
            }
            .refused()
            .into());
        }
        if accounts.qr_pending(user) {
            Stats::bump(&self.stats.unauthorized, 1);
            self.stats.count("gallery_qr_unchecked", 1);
            return Err(SecondValidation {
                login_url: self.signer.login_url(&self.host(headers), "/"),
                marked: false,
            }
            .into_response()
            .into());
        }
        Ok(())
    }
}

/// Extractor for the gateway's session check: a handler that takes `Session(user)` runs only
/// for requests with a live `serviceToken` + `userId`; every other request gets the 401.
pub struct Session(pub String);

impl FromRequestParts<Shared> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Self, Self::Rejection> {
        let user = app
            .authorize(&parts.headers)
            .map_err(IntoResponse::into_response)?;
        app.second_validation(&user, parts.uri.path(), &parts.headers)
            .map_err(|r| *r)?;
        Ok(Session(user))
    }
}

/// The gateway's 401 for a live session that must pass a check first: the gallery second
/// validation (`isSecondValidation:true`), or the identity check of a device a QR login
/// registered (§10.4: a plain 401, nothing marks it).
pub struct SecondValidation {
    login_url: String,
    marked: bool,
}

impl SecondValidation {
    /// §10.1: the account's region has no gallery. No public capture shows the answer; the
    /// emulator's choice is a business error (HTTP 200) with code [`NO_GALLERY_CODE`].
    fn refused(self) -> Response {
        json(
            StatusCode::OK,
            &wire::business_error(
                NO_GALLERY_CODE,
                "the cloud gallery is not available for this account's region",
                false,
            ),
        )
    }
}

/// The business code of a gallery refused to an account of another region (emulator's
/// choice, see [`SecondValidation::refused`]).
pub const NO_GALLERY_CODE: i64 = 10034;

impl IntoResponse for SecondValidation {
    fn into_response(self) -> Response {
        let mut body = wire::unauthorized(&self.login_url);
        body["isSecondValidation"] = Value::Bool(self.marked);
        json(StatusCode::UNAUTHORIZED, &body)
    }
}

/// The gateway's HTTP 401 answer, carrying the re-login URL.
pub struct Unauthorized(String);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        json(StatusCode::UNAUTHORIZED, &wire::unauthorized(&self.0))
    }
}
