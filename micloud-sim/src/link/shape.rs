//! The link's latency: every protocol request waits `--latency-ms` (plus
//! `--page-latency-growth` × P on a request for page P) before its handler runs, so the whole
//! response, headers included, starts that late. `/_sim/*` is the test's side channel and is
//! not delayed. Bandwidth is shaped on the socket ([`crate::link::throttle`]).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::http::request::{num, query};
use crate::http::state::Shared;

/// Middleware: wait the link latency (plus the deep-page growth) before the handler runs.
pub async fn delay(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let is_sim = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| p.as_str().starts_with("/_sim/"));
    if !is_sim {
        let e = app.config.link.effective();
        let mut wait = e.latency;
        if !e.page_growth.is_zero() {
            let q = query(req.uri().query());
            if q.contains_key("pageNum") {
                let page: u32 = num(&q, "pageNum", 0);
                wait += e.page_growth.saturating_mul(page);
            }
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    next.run(req).await
}
