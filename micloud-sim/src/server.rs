//! The route table: which handler answers which path, and the middleware every request
//! passes (outermost first): [`count`] (requests per matched route for `/_sim/stats`, and the
//! loopback-only gate of the `/_sim/` control API), [`crate::link::shape::delay`] (latency),
//! [`crate::link::inject::inject`] (faults).
//!
//! One axum router serves the whole emulated world (i.mi.com, the passport and the KSS file
//! nodes) on one address. Routing only: the handlers live with their parts.

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::control::{faults as control_faults, gallery as control, passport as passport_control};
use crate::http::reply::plain;
use crate::http::state::Shared;
use crate::link::throttle::Conn;
use crate::link::{inject, shape};
use crate::passport::{auth, captcha, identity, password, qr};
use crate::protocol::{download, incremental, listing, recordings, status};

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
            post(password::service_login_auth2),
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
        .route(
            "/_sim/identity/check",
            post(passport_control::identity_check),
        )
        .route("/pass/serviceLoginAuth2/end", get(identity::auth2_end))
        .route("/identity/pass/sms/userQuota", post(identity::user_quota))
        .route(
            "/_sim/faults",
            get(control_faults::show).post(control_faults::set),
        )
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
        .layer(middleware::from_fn_with_state(app.clone(), inject::inject))
        .layer(middleware::from_fn_with_state(app.clone(), shape::delay))
        .layer(middleware::from_fn_with_state(app.clone(), count))
        .with_state(app)
}

/// Middleware: count the request under its route, and let `/_sim/` through only from
/// loopback.
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
            .get::<ConnectInfo<Conn>>()
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
