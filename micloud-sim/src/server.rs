//! The HTTP front: shared state, the route table, and helpers every handler uses.
//!
//! One axum router serves the whole emulated world (i.mi.com, the passport and the KSS file
//! nodes) on one address. A middleware counts requests per matched route for `/_sim/stats`.
//! Query strings are parsed leniently by hand (unknown keys such as `ts`, `_dc`,
//! `numOfThumbnails` are ignored; a bad number falls back to the default), because real
//! clients send every variant.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use super::content::ContentStore;
use super::gallery::Gallery;
use super::session::Sessions;
use super::stats::Stats;
use super::urls::{base_for, sane_host, Signer};
use super::{auth, control, download, listing, wire, SimConfig};
use super::{captcha, identity, passport, passport_control, qr};
use super::{faults, shape};
use super::{incremental, recordings, status};

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
    pub passport: passport::Passport,
    /// Live fault rates and draw sequences.
    pub faults: faults::Faults,
}

pub type Shared = Arc<App>;

pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/api/user/login", get(auth::login))
        .route("/pass/serviceLogin", get(auth::service_login))
        .route("/sts", get(auth::sts))
        .route("/status/lite/setting", get(auth::auto_renewal))
        .route("/status/setting", get(auth::auto_renewal))
        .route("/common/check", get(auth::check))
        .route("/gallery/user/album/list", get(listing::album_list))
        .route("/gallery/user/galleries", get(listing::galleries))
        .route("/gallery/user/timeline", get(listing::timeline))
        .route("/gallery/storage", get(download::storage))
        .route("/_kss/jsonp", get(download::jsonp))
        .route("/_kss/2/{bucket}/download_file", post(download::file))
        .route("/_kss/2/{bucket}/get_thumbnail", get(download::thumbnail))
        .route("/_sim/items", get(control::items))
        .route("/_sim/albums", get(control::albums))
        .route("/_sim/stats", get(control::stats))
        .route(
            "/pass/serviceLoginAuth2",
            post(passport::service_login_auth2),
        )
        .route("/pass/getCode", get(captcha::get_code))
        .route("/fe/service/identity/authStart", get(identity::auth_start))
        .route("/identity/list", get(identity::list))
        .route(
            "/identity/auth/verifyPhone",
            get(identity::describe_phone).post(identity::verify_phone),
        )
        .route(
            "/identity/auth/verifyEmail",
            get(identity::describe_email).post(identity::verify_email),
        )
        .route("/identity/auth/sendPhoneTicket", post(identity::send_phone))
        .route("/identity/auth/sendEmailTicket", post(identity::send_email))
        .route("/identity/result/check", get(identity::finish))
        .route("/longPolling/loginUrl", get(qr::login_url))
        .route("/pass/qr/login", get(qr::image))
        .route("/pass/qr/scan", get(qr::scan_page))
        .route("/lp/s", get(qr::long_poll))
        .route("/mic/keybag/v1/getEncInfo", get(auth::enc_info))
        .route(
            "/_sim/accounts",
            get(passport_control::accounts).post(passport_control::change_account),
        )
        .route("/_sim/passport", get(passport_control::passport))
        .route(
            "/_sim/expire-sessions",
            post(passport_control::expire_sessions),
        )
        .route("/_sim/qr/confirm", post(qr::confirm))
        .route("/_sim/faults", get(faults::show).post(faults::set))
        .route("/gallery/user/album/video", get(listing::album_video))
        .route("/gallery/album/full", get(incremental::album_full))
        .route("/gallery/allitems", get(incremental::allitems))
        .route("/gallery/deleted_v2", get(incremental::deleted_v2))
        .route(
            "/gallery/info/delete",
            get(incremental::info_delete).post(incremental::info_delete),
        )
        .route("/status/lite/profile", get(status::profile))
        .route("/status/lite/alldetail", get(status::all_detail))
        .route("/status/vip/level", get(status::vip_level))
        .route("/status/user/videoplay/level", get(status::videoplay_level))
        .route("/sfs/ns/recorder/dir/0/list", get(recordings::list))
        .route(
            "/sfs/ns/recorder/file/{id}/cb/{cb}/storage",
            get(recordings::storage),
        )
        .route(
            "/sfs/ns/recorder/file/{id}/storage/geturl",
            get(recordings::geturl),
        )
        .route(
            "/sfs/ns/recorder/file/{id}/delete",
            post(recordings::delete),
        )
        .route("/_sim/recordings", get(control::recordings))
        .route("/_sim/upload", post(control::upload))
        .route("/_sim/recycle", post(control::recycle))
        .route("/_sim/restore", post(control::restore))
        .route("/_sim/delete", post(control::delete))
        .route("/_sim/rename-album", post(control::rename_album))
        .route("/_sim/create-album", post(control::create_album))
        .layer(middleware::from_fn_with_state(app.clone(), faults::inject))
        .layer(middleware::from_fn_with_state(app.clone(), shape::delay))
        .layer(middleware::from_fn_with_state(app.clone(), count))
        .with_state(app)
}

async fn count(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(unmatched)".to_string());
    tracing::debug!(method = %req.method(), uri = %req.uri(), "request");
    app.stats.request(&path);
    // The test and control API changes the gallery and shows passwords and codes: it answers
    // only on this machine, whatever address the emulator listens on.
    if path.starts_with("/_sim/") {
        let local = req
            .extensions()
            .get::<axum::extract::ConnectInfo<super::throttle::Conn>>()
            .is_some_and(|c| c.0.is_loopback());
        if !local {
            return plain(
                StatusCode::FORBIDDEN,
                "the /_sim/ control API answers only on loopback; call it from this machine",
            );
        }
    }
    next.run(req).await
}

impl App {
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
    ) -> Result<(), SecondValidation> {
        if path.starts_with("/gallery/") && self.passport.accounts.gallery_blocked(user) {
            Stats::bump(&self.stats.unauthorized, 1);
            self.stats.count("gallery_second_validation", 1);
            return Err(SecondValidation(
                self.signer.login_url(&self.host(headers), "/"),
            ));
        }
        Ok(())
    }
}

/// Extractor for the gateway's session check: a handler that takes `Session(user)` runs only
/// for requests with a live `serviceToken` + `userId`; every other request gets the 401.
pub struct Session(pub String);

impl axum::extract::FromRequestParts<Shared> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let user = app
            .authorize(&parts.headers)
            .map_err(IntoResponse::into_response)?;
        app.second_validation(&user, parts.uri.path(), &parts.headers)
            .map_err(IntoResponse::into_response)?;
        Ok(Session(user))
    }
}

/// The gateway's 401 for a live session that must pass the gallery second validation.
pub struct SecondValidation(String);

impl IntoResponse for SecondValidation {
    fn into_response(self) -> Response {
        let mut body = wire::unauthorized(&self.0);
        body["isSecondValidation"] = Value::Bool(true);
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

/// All cookies of the request (later duplicates win; surrounding quotes removed).
pub fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for v in headers.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, v)) = part.trim().split_once('=') {
                let v = v.trim().trim_matches('"');
                out.insert(k.trim().to_string(), v.to_string());
            }
        }
    }
    out
}

/// Query parameters (percent-decoded, `+` as space).
pub fn query(raw: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub fn num<T: std::str::FromStr>(q: &HashMap<String, String>, key: &str, default: T) -> T {
    q.get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A JSON response with the real server's content type.
pub fn json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

pub fn ok(data: Value) -> Response {
    json(StatusCode::OK, &wire::envelope(data))
}

pub fn plain(status: StatusCode, msg: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], msg).into_response()
}

/// A redirect with extra `Set-Cookie` headers.
pub fn redirect(location: &str, set_cookies: &[String]) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => return plain(StatusCode::BAD_REQUEST, "bad redirect target"),
    }
    for c in set_cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}
