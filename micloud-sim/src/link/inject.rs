//! The fault middleware: applies the draws of [`crate::link::faults`] to protocol requests
//! (see the table there). `/_sim/*` and unmatched paths are never faulted.

use std::time::Duration;

use axum::body::HttpBody;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::faults::Kind;
use crate::http::reply::json;
use crate::http::state::Shared;
use crate::link::bodies::{flip_byte, truncate_then};
use crate::link::throttle::Conn;
use crate::protocol::wire::now_ms;

/// What a route is, for fault eligibility.
#[derive(PartialEq, Eq)]
enum Class {
    /// `/_sim/*` and unmatched paths: never faulted.
    Exempt,
    /// Gallery JSON (`/gallery/*`).
    GalleryJson,
    /// The step-3 file body.
    FileBody,
    /// Any other protocol route.
    Protocol,
}

fn classify(path: Option<&str>, method: &Method) -> Class {
    match path {
        None => Class::Exempt,
        Some(p) if p.starts_with("/_sim/") => Class::Exempt,
        Some(p) if p.starts_with("/gallery/") => Class::GalleryJson,
        Some(p) if p.ends_with("/download_file") && method == Method::POST => Class::FileBody,
        Some(_) => Class::Protocol,
    }
}

/// Middleware: inject the faults of the module table.
pub async fn inject(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let class = classify(
        req.extensions().get::<MatchedPath>().map(|p| p.as_str()),
        req.method(),
    );
    if class == Class::Exempt {
        return next.run(req).await;
    }
    let faults = &app.faults;
    if let Some(album) = listed_album(&req) {
        if faults.fails_album(album) {
            app.stats.fault("failAlbum");
            return server_error(1);
        }
    }
    if let Some(r) = faults.fire(Kind::ServerError, &app.stats) {
        return server_error(r);
    }
    if faults.fire(Kind::Stall, &app.stats).is_some() {
        let resp = next.run(req).await;
        let (mut parts, body) = resp.into_parts();
        // Keep the declared length on the wire (a streamed body would otherwise go chunked).
        let len = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .or_else(|| HttpBody::size_hint(&body).exact());
        if let Some(len) = len {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
        }
        let keep = len.map_or(0, |len| (len / 2).min(32 * 1024));
        let after = faults.sleep(faults.stall_time());
        return Response::from_parts(parts, truncate_then(body, keep, after));
    }
    let conn = req
        .extensions()
        .get::<ConnectInfo<Conn>>()
        .map(|c| c.0.clone());
    let resp = next.run(req).await;
    let ok = resp.status() == StatusCode::OK;
    match class {
        Class::GalleryJson if ok => {
            if faults.fire(Kind::NoData, &app.stats).is_some() {
                return no_data();
            }
            resp
        }
        Class::FileBody if ok || resp.status() == StatusCode::PARTIAL_CONTENT => {
            let len = resp
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(0);
            if len == 0 {
                return resp;
            }
            if let Some(r) = faults.fire(Kind::Reset, &app.stats) {
                // 10–90 % of the body, then RST.
                let keep = len * (10 + r % 81) / 100;
                let (parts, body) = resp.into_parts();
                let after = async move {
                    // Let the prefix leave the server before the connection dies.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if let Some(c) = conn {
                        c.reset();
                    }
                };
                return Response::from_parts(parts, truncate_then(body, keep, after));
            }
            if let Some(r) = faults.fire(Kind::Corrupt, &app.stats) {
                let at = r % len;
                let mask = ((r >> 32) % 255 + 1) as u8;
                let (parts, body) = resp.into_parts();
                return Response::from_parts(parts, flip_byte(body, at, mask));
            }
            resp
        }
        _ => resp,
    }
}

/// The album a listing request is for (`galleries`/`timeline` `albumId=`, `allitems`
/// `groupId=`); `None` for other routes.
fn listed_album(req: &Request) -> Option<u64> {
    let key = match req.uri().path() {
        "/gallery/user/galleries" | "/gallery/user/timeline" => "albumId",
        "/gallery/allitems" => "groupId",
        _ => return None,
    };
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

fn server_error(r: u64) -> Response {
    let status = [
        StatusCode::BAD_GATEWAY,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::INTERNAL_SERVER_ERROR,
    ][(r % 3) as usize];
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let html = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    (status, [(header::CONTENT_TYPE, "text/html")], html).into_response()
}

/// The success envelope without `data` (spec issue #1).
fn no_data() -> Response {
    let body = json!({
        "result": "ok",
        "retriable": false,
        "code": 0,
        "description": "成功",
        "ts": now_ms(),
    });
    json(StatusCode::OK, &body)
}
