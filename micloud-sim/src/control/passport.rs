//! `/_sim/*` controls of the passport (test API, no auth; not part of the protocol).
//!
//! - `GET /_sim/accounts`: every account with its settings, live passTokens and counters.
//! - `POST /_sim/accounts`, body = an account SPEC (same syntax as `--account`, e.g.
//!   `id=222,2fa=email`): create the account or change only the keys given; answers the
//!   account, or 400 with what to fix.
//! - `GET /_sim/passport`: what the user would see elsewhere: `captchas` (`ick` → code),
//!   `outbox` (every SMS/e-mail code sent: `account`, `channel`, `to`, `code`, `ts`),
//!   `identity` (pending 2FA contexts), `qr` (live QR tickets).
//! - `POST /_sim/expire-sessions?account=<id>`: every serviceToken of that account (of all
//!   accounts without `account`) dies now; with `token=<serviceToken>` only that one (a
//!   session that outlived its lifetime, while its renewals live on); answers
//!   `{"expired": n}`. Tests end sessions this way instead of waiting for `--token-ttl`.
//! - `POST /_sim/qr/confirm`: see [`crate::passport::qr`].
//! - `POST /_sim/identity/check?account=<id>`: the user passed the identity check in a
//!   browser after a QR login from a new device (§10.4): the gallery opens and that device is
//!   trusted; answers `{"account": id}`, 404 for an unknown account.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::config::accounts::AccountSpec;
use crate::http::reply::json;
use crate::http::request::Query;
use crate::http::state::Shared;

pub async fn accounts(State(app): State<Shared>) -> Response {
    json(StatusCode::OK, &app.passport.accounts.describe_all())
}

pub async fn change_account(State(app): State<Shared>, body: String) -> Response {
    match body.trim().parse::<AccountSpec>() {
        Ok(spec) => {
            let v = app.passport.accounts.upsert(&spec);
            tracing::info!(account = %spec.id, "account changed");
            json(StatusCode::OK, &v)
        }
        Err(e) => json(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()})),
    }
}

pub async fn passport(State(app): State<Shared>) -> Response {
    let p = &app.passport;
    json(
        StatusCode::OK,
        &json!({
            "captchas": p.captchas.snapshot(),
            "outbox": p.identity.outbox(),
            "identity": p.identity.snapshot(),
            "qr": p.qr.snapshot(),
        }),
    )
}

pub async fn expire_sessions(State(app): State<Shared>, Query(q): Query) -> Response {
    let given = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let (account, token) = (given("account"), given("token"));
    let n = app.sessions.expire(account, token);
    app.stats.count("sessions_expired", n as u64);
    tracing::info!(
        account = account.unwrap_or("(all)"),
        one_token = token.is_some(),
        n,
        "sessions expired"
    );
    json(StatusCode::OK, &json!({"expired": n}))
}

pub async fn identity_check(State(app): State<Shared>, Query(q): Query) -> Response {
    let account = q
        .get("account")
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| app.config.user_id.clone());
    if !app.passport.accounts.identity_checked(&account) {
        return json(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no account {account}")}),
        );
    }
    app.stats.count("login_identity_checked", 1);
    tracing::info!(account = %account, "identity check passed in the browser");
    json(StatusCode::OK, &json!({"account": account}))
}
