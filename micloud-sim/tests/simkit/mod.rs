//! Raw-HTTP helpers shared by the emulator's conformance suites (`tests/sim_*.rs`).
//!
//! A plain reqwest client that follows no redirects and keeps no cookie jar, so every cookie
//! and Location is checked by hand; an in-process emulator on 127.0.0.1:0 per test.
#![allow(dead_code)]

use std::collections::HashMap;

use micloud_sim::{self as sim, SimConfig, SimHandle};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE, LOCATION, RANGE, SET_COOKIE};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use sha1::{Digest, Sha1};

pub const TWO_POW_53: u64 = 9_007_199_254_740_992;

pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn start(config: SimConfig) -> SimHandle {
    sim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// `name=value` pairs of every Set-Cookie header.
pub fn set_cookies(resp: &reqwest::Response) -> HashMap<String, String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs login → serviceLogin → sts with the given credentials; returns the Set-Cookie map of
/// the final STS response.
pub async fn login_chain(h: &SimHandle, user: &str, pass: &str) -> HashMap<String, String> {
    let c = client();
    let login = as_json(get_path(h, "/api/user/login?ts=1&followUp=%2F&_locale=zh_CN").await).await;
    let login_url = login["data"]["loginUrl"].as_str().unwrap().to_string();
    let passport = c
        .get(&login_url)
        .header(
            COOKIE,
            format!("userId={user}; deviceId=wb_test; passToken={pass}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(passport.status(), StatusCode::FOUND);
    let loc = passport.headers()[LOCATION].to_str().unwrap().to_string();
    let sts = c.get(&loc).send().await.unwrap();
    assert!(sts.status().is_redirection());
    set_cookies(&sts)
}

/// A valid `userId=..; serviceToken=..` cookie header.
pub async fn session(h: &SimHandle) -> String {
    let set = login_chain(h, sim::DEFAULT_USER_ID, sim::DEFAULT_PASS_TOKEN).await;
    format!(
        "userId={}; serviceToken={}",
        set["userId"], set["serviceToken"]
    )
}

/// GET `path_q` on the emulator without a Cookie header.
pub async fn get_path(h: &SimHandle, path_q: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path_q}", h.base_url()))
        .send()
        .await
        .unwrap()
}

/// GET `path_q` on the emulator with `cookie` as the Cookie header; no status check.
pub async fn get_with_cookie(h: &SimHandle, cookie: &str, path_q: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path_q}", h.base_url()))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

/// The body of a GET of a full `url`, as text.
pub async fn get_text(url: impl reqwest::IntoUrl) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// POST `form` to `path` on the emulator with `cookie` as the Cookie header; no status check.
pub async fn post_form(
    h: &SimHandle,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client()
        .post(format!("{}{path}", h.base_url()))
        .header(COOKIE, cookie)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// POST `body` as is to `path_q` on the emulator (the `/_sim/` control API); no status check.
pub async fn post_body(h: &SimHandle, path_q: &str, body: String) -> reqwest::Response {
    client()
        .post(format!("{}{path_q}", h.base_url()))
        .body(body)
        .send()
        .await
        .unwrap()
}

/// POST with no body to `path_q` on the emulator (the `/_sim/` control API); no status check.
pub async fn post_empty(h: &SimHandle, path_q: &str) -> reqwest::Response {
    client()
        .post(format!("{}{path_q}", h.base_url()))
        .send()
        .await
        .unwrap()
}

/// End sessions through the control API (`POST /_sim/expire-sessions`): every one of
/// `account`, of everyone, or only `token`; how many died. Tests end sessions this way rather
/// than wait out a short `token_ttl`.
pub async fn end_sessions(h: &SimHandle, account: Option<&str>, token: Option<&str>) -> u64 {
    let mut q = vec![];
    if let Some(a) = account {
        q.push(("account", a));
    }
    if let Some(t) = token {
        q.push(("token", t));
    }
    let resp = client()
        .post(format!("{}/_sim/expire-sessions", h.base_url()))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    as_json(resp).await["expired"].as_u64().unwrap()
}

/// The body of `resp` parsed as JSON.
pub async fn as_json(resp: reqwest::Response) -> Value {
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

/// A passport answer: strips the `&&&START&&&` prefix (which must be there) and parses.
pub fn passport_body(text: &str) -> Value {
    let json = text
        .strip_prefix("&&&START&&&")
        .unwrap_or_else(|| panic!("no &&&START&&& prefix: {text}"));
    serde_json::from_str(json).unwrap()
}

/// The Set-Cookie map and the `&&&START&&&` JSON of a passport response.
pub async fn passport_reply(resp: reqwest::Response) -> (HashMap<String, String>, Value) {
    let set = set_cookies(&resp);
    (set, passport_body(&resp.text().await.unwrap()))
}

/// GET `path_q` with `cookie`, asserting 200; the body as JSON.
pub async fn get_json(h: &SimHandle, cookie: &str, path_q: &str) -> Value {
    let resp = get_with_cookie(h, cookie, path_q).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path_q}");
    as_json(resp).await
}

pub async fn truth_items(h: &SimHandle) -> Vec<Value> {
    get_json(h, "", "/_sim/items")
        .await
        .as_array()
        .unwrap()
        .clone()
}

pub fn assert_envelope(v: &Value) {
    assert_eq!(v["result"], "ok");
    assert_eq!(v["retriable"], false);
    assert_eq!(v["code"], 0);
    assert!(v["data"].is_object(), "data: {v}");
    assert!(v["description"].is_string());
    assert!(v["ts"].as_i64().unwrap() > 1_600_000_000_000);
}

/// Every item of a `galleries` query, following `isLastPage`.
pub async fn all_pages(h: &SimHandle, cookie: &str, query: &str, size: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 0.. {
        let v = get_json(
            h,
            cookie,
            &format!("/gallery/user/galleries?{query}&pageNum={page}&pageSize={size}"),
        )
        .await;
        assert_envelope(&v);
        let items = v["data"]["galleries"].as_array().unwrap();
        assert!(items.len() <= size);
        out.extend(items.iter().cloned());
        if v["data"]["isLastPage"].as_bool().unwrap() {
            break;
        }
        assert_eq!(items.len(), size, "a non-last page is full");
        assert!(page < 1000);
    }
    out
}

pub fn is_big_id(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 17 && s.parse::<u64>().is_ok_and(|n| n > TWO_POW_53))
}

/// UTC+8 `yyyyMMdd` of a ms timestamp.
pub fn cst_day(ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms + 8 * 3_600_000).unwrap();
    t.format("%Y%m%d").to_string()
}

/// Step 2 of the download, checked: GET URL-A answers 200, JavaScript, `cb(...)`; the payload.
pub async fn jsonp_checked(url_a: &str, cb: &str) -> Value {
    let resp = client().get(url_a).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .contains("javascript"));
    let text = resp.text().await.unwrap();
    let prefix = format!("{cb}(");
    assert!(text.starts_with(&prefix) && text.ends_with(')'), "{text}");
    serde_json::from_str(&text[prefix.len()..text.len() - 1]).unwrap()
}

/// The payload of a `dl_img_cb(...)` JSONP answer (wrapper cut off unchecked).
pub fn jsonp_payload(text: &str) -> Value {
    serde_json::from_str(&text["dl_img_cb(".len()..text.len() - 1]).unwrap()
}

/// Steps 1 and 2 of the download: URL-B and META for `id` (the storage answer is an envelope).
pub async fn resolve(h: &SimHandle, cookie: &str, id: &str) -> (String, String) {
    let v = get_json(h, cookie, &format!("/gallery/storage?ts=1&id={id}")).await;
    assert_envelope(&v);
    let payload = jsonp_payload(&get_text(v["data"]["url"].as_str().unwrap()).await);
    (
        payload["url"].as_str().unwrap().to_string(),
        payload["meta"].as_str().unwrap().to_string(),
    )
}

/// Step 3 on a fresh connection: POST `meta` as a form to URL-B, with an optional Range header.
pub async fn post_meta(url_b: &str, meta: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = client().post(url_b).form(&[("meta", meta)]);
    if let Some(r) = range {
        req = req.header(RANGE, r);
    }
    req.send().await.unwrap()
}

/// Steps 1–3 of the download with every check; the body.
pub async fn download(
    h: &SimHandle,
    cookie: &str,
    id: &str,
    callback: Option<&str>,
    raw: bool,
) -> Vec<u8> {
    let c = client();
    let cb = callback
        .map(|c| format!("&callBack={c}"))
        .unwrap_or_default();
    let v = get_json(h, cookie, &format!("/gallery/storage?ts=1&id={id}{cb}")).await;
    assert_envelope(&v);
    let url_a = v["data"]["url"].as_str().unwrap();
    let payload = jsonp_checked(url_a, callback.unwrap_or("dl_img_cb")).await;
    let (url_b, meta) = (
        payload["url"].as_str().unwrap(),
        payload["meta"].as_str().unwrap(),
    );
    assert!(meta
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let req = c.post(url_b);
    let req = if raw {
        req.body(format!("meta={meta}"))
    } else {
        req.form(&[("meta", meta)])
    };
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let len: usize = resp.headers()[CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = resp.bytes().await.unwrap().to_vec();
    assert_eq!(body.len(), len);
    body
}

pub fn sha1_hex(b: &[u8]) -> String {
    hex::encode(Sha1::digest(b))
}
