//! Conformance of the emulated passport: every way in (password, captcha, 2FA, QR, passToken),
//! per account, and the signals after it (E2EE, second validation, expired sessions).
//! Raw HTTP only; see `tests/simkit`.

mod simkit;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use micloud_sim::{self as sim, AccountsConfig, SimConfig, SimHandle};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use serde_json::Value;
use simkit::*;

const SIGN_QS: &str = "/pass/serviceLogin?sid=i.mi.com&_json=true&_locale=zh_CN";

fn with_accounts(specs: &[&str]) -> SimConfig {
    SimConfig {
        accounts: AccountsConfig {
            accounts: specs.iter().map(|s| s.parse().unwrap()).collect(),
            // The older passport (§2); today's (§10) is `tests/sim_passport_today.rs`.
            legacy_passport: true,
            ..AccountsConfig::default()
        },
        ..SimConfig::demo()
    }
}

fn hash(password: &str) -> String {
    hex::encode_upper(Md5::digest(password.as_bytes()))
}

/// GET a passport page with `cookie`, asserting 200; its Set-Cookie map and JSON.
async fn passport_get(
    h: &SimHandle,
    path_q: &str,
    cookie: &str,
) -> (HashMap<String, String>, Value) {
    let resp = get_with_cookie(h, cookie, path_q).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path_q}");
    passport_reply(resp).await
}

/// POST a form to a passport page with `cookie`, asserting 200; its Set-Cookie map and JSON.
async fn passport_post(
    h: &SimHandle,
    path: &str,
    form: &[(&str, &str)],
    cookie: &str,
) -> (HashMap<String, String>, Value) {
    let resp = post_form(h, path, cookie, form).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    passport_reply(resp).await
}

/// Step 1 of §2.3: `_sign`, `qs`, `callback`.
async fn sign_step(h: &SimHandle) -> Value {
    let (_, v) = passport_get(h, SIGN_QS, "deviceId=wb_test; sdkVersion=3.4.1").await;
    assert_eq!(v["code"], 70016);
    for k in ["_sign", "qs", "callback", "sid", "serviceParam"] {
        assert!(v[k].is_string(), "{k} in {v}");
    }
    v
}

/// `serviceLoginAuth2` with the fields of step 1 plus `extra`.
async fn auth2(
    h: &SimHandle,
    user: &str,
    password: &str,
    extra: &[(&str, &str)],
    cookie: &str,
) -> (HashMap<String, String>, Value) {
    let s = sign_step(h).await;
    let hashed = hash(password);
    let mut form = vec![
        ("_json", "true"),
        ("sid", s["sid"].as_str().unwrap()),
        ("callback", s["callback"].as_str().unwrap()),
        ("qs", s["qs"].as_str().unwrap()),
        ("_sign", s["_sign"].as_str().unwrap()),
        ("user", user),
        ("hash", hashed.as_str()),
    ];
    form.extend_from_slice(extra);
    passport_post(h, "/pass/serviceLoginAuth2", &form, cookie).await
}

/// Follow an STS `location`; the i.mi.com session cookie it yields (if any).
async fn sts(location: &str) -> Option<String> {
    let resp = client().get(location).send().await.unwrap();
    assert!(resp.status().is_redirection());
    let set = set_cookies(&resp);
    set.get("serviceToken")
        .map(|t| format!("userId={}; serviceToken={t}", set["userId"]))
}

async fn status_of(h: &SimHandle, cookie: &str, path_q: &str) -> (StatusCode, Value) {
    let resp = get_with_cookie(h, cookie, path_q).await;
    (resp.status(), as_json(resp).await)
}

async fn control_passport(h: &SimHandle) -> Value {
    get_json(h, "", "/_sim/passport").await
}

async fn change_account(h: &SimHandle, spec: &str) -> (StatusCode, Value) {
    let resp = post_body(h, "/_sim/accounts", spec.to_string()).await;
    (resp.status(), as_json(resp).await)
}

const ALBUMS: &str = "/gallery/user/album/list?ts=1&pageNum=0&pageSize=10&isShared=false";

#[tokio::test]
async fn password_login_then_sts_then_gallery() {
    let h = start(with_accounts(&[])).await;
    let (set, v) = auth2(
        &h,
        sim::DEFAULT_USER_ID,
        sim::DEFAULT_PASSWORD,
        &[],
        "deviceId=wb_a",
    )
    .await;
    assert_eq!(v["code"], 0, "{v}");
    for k in ["ssecurity", "cUserId", "passToken", "psecurity"] {
        assert!(!v[k].as_str().unwrap().is_empty(), "{k}");
    }
    assert_eq!(
        v["userId"].as_u64().unwrap().to_string(),
        sim::DEFAULT_USER_ID
    );
    assert!(v["nonce"].is_u64());
    let location = v["location"].as_str().unwrap();
    assert!(
        location.starts_with(&format!("{}/sts?sign=", h.base_url())),
        "{location}"
    );
    assert!(location.contains(&format!("&nonce={}&", v["nonce"])));
    assert_eq!(set["passToken"], v["passToken"].as_str().unwrap());
    assert_eq!(set["userId"], sim::DEFAULT_USER_ID);
    let ck = sts(location).await.expect("serviceToken");
    assert_envelope(&get_json(&h, &ck, ALBUMS).await);
    // The nonce is single-use.
    assert!(sts(location).await.is_none());
    // The minted passToken works for the passToken exchange (Path A).
    let chain = login_chain(&h, sim::DEFAULT_USER_ID, v["passToken"].as_str().unwrap()).await;
    assert!(chain.contains_key("serviceToken"));
    // Fields as query parameters are accepted too.
    let s = sign_step(&h).await;
    let url = reqwest::Url::parse_with_params(
        &format!("{}/pass/serviceLoginAuth2", h.base_url()),
        [
            ("_json", "true"),
            ("sid", "i.mi.com"),
            ("_sign", s["_sign"].as_str().unwrap()),
            ("callback", s["callback"].as_str().unwrap()),
            ("qs", s["qs"].as_str().unwrap()),
            ("user", sim::DEFAULT_USER_ID),
            ("hash", &hash(sim::DEFAULT_PASSWORD)),
        ],
    )
    .unwrap();
    let (_, v) = passport_reply(client().post(url).send().await.unwrap()).await;
    assert_eq!(v["code"], 0);
    let st = h.stats();
    assert_eq!(st.counters["login_password_ok"], 2);
    assert_eq!(st.token_exchanges, 2);
}

#[tokio::test]
async fn wrong_password_is_70016_with_the_exact_fields() {
    let h = start(with_accounts(&[])).await;
    let (set, v) = auth2(&h, sim::DEFAULT_USER_ID, "nope", &[], "").await;
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "_sign",
            "callback",
            "captchaUrl",
            "child",
            "code",
            "desc",
            "description",
            "location",
            "pwd",
            "qs",
            "result",
            "securityStatus",
            "sid"
        ]
    );
    assert_eq!(v["code"], 70016);
    assert_eq!(v["result"], "error");
    assert_eq!(v["description"], "登录验证失败");
    assert_eq!(v["desc"], "登录验证失败");
    assert_eq!(v["captchaUrl"], Value::Null);
    assert_eq!(v["location"], "");
    assert_eq!(
        (
            v["securityStatus"].as_i64(),
            v["pwd"].as_i64(),
            v["child"].as_i64()
        ),
        (Some(0), Some(0), Some(0))
    );
    assert!(!set.contains_key("passToken"));
    // Missing or wrong _sign, or an unknown user: 70016 as well.
    let (_, v) = passport_post(
        &h,
        "/pass/serviceLoginAuth2",
        &[
            ("_json", "true"),
            ("sid", "i.mi.com"),
            ("user", sim::DEFAULT_USER_ID),
            ("hash", &hash(sim::DEFAULT_PASSWORD)),
        ],
        "",
    )
    .await;
    assert_eq!(v["code"], 70016);
    let (_, v) = auth2(
        &h,
        sim::DEFAULT_USER_ID,
        sim::DEFAULT_PASSWORD,
        &[("_sign", "forged")],
        "",
    )
    .await;
    assert_eq!(v["code"], 70016);
    let (_, v) = auth2(&h, "999", sim::DEFAULT_PASSWORD, &[], "").await;
    assert_eq!(v["code"], 70016);
    assert_eq!(h.stats().counters["login_password_failed"], 4);
}

/// Fetch a captcha image; returns (`ick`, code from the control API).
async fn fetch_captcha(h: &SimHandle, captcha_url: &str) -> (String, String) {
    assert!(
        captcha_url.starts_with("/pass/getCode?icodeType=login&_dc="),
        "{captcha_url}"
    );
    let resp = get_path(h, captcha_url).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], "image/png");
    let ick = set_cookies(&resp)["ick"].clone();
    let png = resp.bytes().await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let code = control_passport(h).await["captchas"][&ick]
        .as_str()
        .unwrap()
        .to_string();
    (ick, code)
}

/// `serviceLoginAuth2` as `user` with `pw`, answering a captcha with `code` (its `ick` is in
/// `cookie`).
async fn auth2_captcha(h: &SimHandle, user: &str, pw: &str, code: &str, cookie: &str) -> Value {
    auth2(h, user, pw, &[("captCode", code)], cookie).await.1
}

/// `serviceLoginAuth2` as account 222 (password `pw222`) answering captcha `ick` with `code`.
async fn answer_captcha(h: &SimHandle, code: &str, ick: &str) -> Value {
    auth2_captcha(h, "222", "pw222", code, &format!("ick={ick}")).await
}

#[tokio::test]
async fn captcha_required_then_right_code_passes_and_wrong_code_reasks() {
    let h = start(with_accounts(&["id=222,password=pw222,captcha=always"])).await;
    let (_, v) = auth2(&h, "222", "pw222", &[], "").await;
    assert_eq!(v["code"], 70016);
    let url = v["captchaUrl"].as_str().unwrap().to_string();
    // A wrong code: 87001 and a new captchaUrl.
    let (ick, code) = fetch_captcha(&h, &url).await;
    let wrong = if code == "00000" { "11111" } else { "00000" };
    let v = answer_captcha(&h, wrong, &ick).await;
    assert_eq!(v["code"], 87001, "{v}");
    let url = v["captchaUrl"].as_str().unwrap().to_string();
    // The burnt ick no longer works even with its right code.
    let v = answer_captcha(&h, &code, &ick).await;
    assert_eq!(v["code"], 87001);
    let (ick, code) = fetch_captcha(&h, &url).await;
    let v = answer_captcha(&h, &code, &ick).await;
    assert_eq!(v["code"], 0, "{v}");
    assert!(sts(v["location"].as_str().unwrap()).await.is_some());
    assert_eq!(h.stats().counters["login_captcha_served"], 2);
}

#[tokio::test]
async fn captcha_after_two_wrong_passwords() {
    let h = start(with_accounts(&["id=222,password=pw222,captcha=2"])).await;
    let (_, v) = auth2(&h, "222", "bad", &[], "").await;
    assert_eq!(v["captchaUrl"], Value::Null);
    let (_, v) = auth2(&h, "222", "bad", &[], "").await;
    let url = v["captchaUrl"]
        .as_str()
        .expect("captcha after 2 failures")
        .to_string();
    let (_, v) = auth2(&h, "222", "pw222", &[], "").await;
    assert_eq!(v["code"], 70016);
    assert!(v["captchaUrl"].is_string());
    let (ick, code) = fetch_captcha(&h, &url).await;
    let v = answer_captcha(&h, &code, &ick).await;
    assert_eq!(v["code"], 0);
    // Success resets the counter.
    let (_, v) = auth2(&h, "222", "pw222", &[], "").await;
    assert_eq!(v["code"], 0);
}

/// Runs the identity flow from a 2FA answer over `channel` ("Phone"/"Email"); returns the
/// final i.mi.com cookie.
async fn identity_flow(h: &SimHandle, v: &Value, channel: &str, trust: bool) -> String {
    assert_eq!(v["code"], 0);
    assert_eq!(v["location"], "");
    assert_eq!(v["captchaUrl"], Value::Null);
    assert_eq!(v["securityStatus"], 16);
    let note = v["notificationUrl"].as_str().unwrap();
    assert!(
        note.contains("/fe/service/identity/authStart?sid=i.mi.com&context="),
        "{note}"
    );
    // The page itself sends the browser to /identity/list.
    let start = client().get(note).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    assert!(start.headers()[LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/identity/list?"));
    let list_path = note
        .replace("/fe/service/identity/authStart", "/identity/list")
        .replace(&h.base_url(), "");
    let (set, list) = passport_get(h, &list_path, "").await;
    assert_eq!(list["code"], 2);
    let flag = if channel == "Phone" { 4 } else { 8 };
    assert!(
        list["options"].as_array().unwrap().contains(&flag.into()),
        "{list}"
    );
    let ck = format!("identity_session={}", set["identity_session"]);
    let (_, masked) = passport_get(
        h,
        &format!("/identity/auth/verify{channel}?_flag={flag}&_json=true"),
        &ck,
    )
    .await;
    assert_eq!(masked["code"], 0);
    let shown = masked[format!("masked{channel}")].as_str().unwrap();
    assert!(shown.contains('*'), "{shown}");
    let (_, sent) = passport_post(
        h,
        &format!("/identity/auth/send{channel}Ticket"),
        &[("retry", "0"), ("icode", ""), ("_json", "true")],
        &ck,
    )
    .await;
    assert_eq!(sent["code"], 0, "{sent}");
    let outbox = control_passport(h).await["outbox"].clone();
    let last = outbox.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["channel"], channel.to_lowercase());
    let code = last["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 6);
    let flag_s = flag.to_string();
    let trust_s = trust.to_string();
    let verify_path = format!("/identity/auth/verify{channel}");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (_, bad) = passport_post(
        h,
        &verify_path,
        &[
            ("_flag", &flag_s),
            ("ticket", wrong),
            ("trust", &trust_s),
            ("_json", "true"),
        ],
        &ck,
    )
    .await;
    assert_eq!(bad["code"], 70014);
    let (_, good) = passport_post(
        h,
        &verify_path,
        &[
            ("_flag", &flag_s),
            ("ticket", &code),
            ("trust", &trust_s),
            ("_json", "true"),
        ],
        &ck,
    )
    .await;
    assert_eq!(good["code"], 0, "{good}");
    // Following the location: passToken + userId cookies, then the STS.
    let fin = client()
        .get(good["location"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(fin.status(), StatusCode::FOUND);
    let pragma: Value =
        serde_json::from_str(fin.headers()["extension-pragma"].to_str().unwrap()).unwrap();
    assert!(pragma["ssecurity"].is_string());
    let set = set_cookies(&fin);
    let pass_token = set["passToken"].clone();
    let user = set["userId"].clone();
    let loc = fin.headers()[LOCATION].to_str().unwrap().to_string();
    let session = sts(&loc).await.expect("serviceToken after 2FA");
    // The passToken from the chain mints sessions too (Path A).
    assert!(login_chain(h, &user, &pass_token)
        .await
        .contains_key("serviceToken"));
    session
}

#[tokio::test]
async fn two_factor_by_phone_and_trust_skips_it_next_time() {
    let h = start(with_accounts(&["id=222,password=pw,2fa=phone"])).await;
    let (set, v) = auth2(&h, "222", "pw", &[], "deviceId=wb_trusted").await;
    assert!(!set.contains_key("passToken"));
    let ck = identity_flow(&h, &v, "Phone", true).await;
    assert_envelope(&get_json(&h, &ck, ALBUMS).await);
    // Same device: no 2FA; another device: 2FA again.
    let (_, v) = auth2(&h, "222", "pw", &[], "deviceId=wb_trusted").await;
    assert!(v["location"].as_str().unwrap().contains("/sts?"), "{v}");
    let (_, v) = auth2(&h, "222", "pw", &[], "deviceId=wb_other").await;
    assert_eq!(v["securityStatus"], 16);
    let st = h.stats();
    assert_eq!(st.counters["login_code_sent"], 1);
    assert_eq!(st.counters["login_code_wrong"], 1);
    assert_eq!(st.counters["login_2fa_ok"], 1);
}

#[tokio::test]
async fn two_factor_by_email_without_trust() {
    let h = start(with_accounts(&[
        "id=333,password=pw,2fa=both,email=me@example.org",
    ]))
    .await;
    let (_, v) = auth2(&h, "me@example.org", "pw", &[], "deviceId=wb_x").await;
    let ck = identity_flow(&h, &v, "Email", false).await;
    assert!(ck.starts_with("userId=333;"));
    assert_envelope(&get_json(&h, &ck, ALBUMS).await);
    // Not trusted: 2FA again from the same device.
    let (_, v) = auth2(&h, "333", "pw", &[], "deviceId=wb_x").await;
    assert!(v["notificationUrl"].as_str().unwrap().contains("context="));
    // A phone-only check is refused on an e-mail-only account.
    let h2 = start(with_accounts(&["id=444,password=pw,2fa=email"])).await;
    let (_, v) = auth2(&h2, "444", "pw", &[], "").await;
    let list_path = v["notificationUrl"]
        .as_str()
        .unwrap()
        .replace("/fe/service/identity/authStart", "/identity/list")
        .replace(&h2.base_url(), "");
    let (set, list) = passport_get(&h2, &list_path, "").await;
    assert_eq!(list["flag"], 8);
    let (_, v) = passport_get(
        &h2,
        "/identity/auth/verifyPhone?_flag=4&_json=true",
        &format!("identity_session={}", set["identity_session"]),
    )
    .await;
    assert_eq!(v["code"], 70016);
    assert!(v["desc"].as_str().unwrap().contains("options"));
}

#[tokio::test]
async fn sms_quota_exceeded_is_70022() {
    let h = start(with_accounts(&["id=222,password=pw,2fa=phone,quota=1"])).await;
    let (_, v) = auth2(&h, "222", "pw", &[], "").await;
    let list_path = v["notificationUrl"]
        .as_str()
        .unwrap()
        .replace("/fe/service/identity/authStart", "/identity/list")
        .replace(&h.base_url(), "");
    let (set, _) = passport_get(&h, &list_path, "").await;
    let ck = format!("identity_session={}", set["identity_session"]);
    let form = [("retry", "0"), ("icode", ""), ("_json", "true")];
    let (_, v) = passport_post(&h, "/identity/auth/sendPhoneTicket", &form, &ck).await;
    assert_eq!(v["code"], 0);
    let (_, v) = passport_post(&h, "/identity/auth/sendPhoneTicket", &form, &ck).await;
    assert_eq!(v["code"], 70022, "{v}");
    assert_eq!(v["result"], "error");
    assert_eq!(
        control_passport(&h).await["outbox"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(h.stats().counters["login_code_quota"], 1);
    // Without an identity session the flow says to start again.
    let (_, v) = passport_post(&h, "/identity/auth/sendPhoneTicket", &form, "").await;
    assert_eq!(v["code"], 70016);
}

async fn qr_start(h: &SimHandle) -> Value {
    let s = sign_step(h).await;
    let url = reqwest::Url::parse_with_params(
        &format!("{}/longPolling/loginUrl", h.base_url()),
        [
            ("_qrsize", "480"),
            ("qs", s["qs"].as_str().unwrap()),
            ("callback", s["callback"].as_str().unwrap()),
            ("_sign", s["_sign"].as_str().unwrap()),
            ("sid", "i.mi.com"),
            ("_locale", "zh_CN"),
            ("_dc", "1"),
        ],
    )
    .unwrap();
    passport_body(&get_text(url).await)
}

#[tokio::test]
async fn qr_confirm_then_pass_token_works_and_polls_can_be_retried() {
    let h = start(with_accounts(&["id=222"])).await;
    let v = qr_start(&h).await;
    assert_eq!(v["code"], 0);
    assert_eq!(v["timeout"], 300);
    assert!(v["qrTips"].is_string() && v["loginUrl"].is_string());
    let png = client()
        .get(v["qr"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(png.headers()[CONTENT_TYPE], "image/png");
    assert_eq!(&png.bytes().await.unwrap()[..4], b"\x89PNG");
    let lp = v["lp"].as_str().unwrap().to_string();
    let ticket = lp.split("k=").nth(1).unwrap().to_string();
    // A client cuts its poll and retries: the ticket keeps working.
    let cut = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .get(&lp)
        .send()
        .await;
    assert!(cut.is_err(), "the poll hangs until confirmed");
    let poll = tokio::spawn({
        let lp = lp.clone();
        async move { passport_reply(client().get(lp).send().await.unwrap()).await }
    });
    // Give the poll a moment to reach the emulator, so that the confirmation wakes a waiting
    // poll; one that arrives later gets the same answer, so nothing here depends on timing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = post_empty(&h, &format!("/_sim/qr/confirm?ticket={ticket}&account=222")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (set, done) = poll.await.unwrap();
    assert_eq!(done["code"], 0);
    assert_eq!(done["userId"], 222);
    for k in ["passToken", "ssecurity", "cUserId", "location"] {
        assert!(done[k].is_string(), "{k}");
    }
    assert!(done["nonce"].is_u64());
    assert_eq!(set["passToken"], done["passToken"].as_str().unwrap());
    let ck = sts(done["location"].as_str().unwrap()).await.unwrap();
    assert_envelope(&get_json(&h, &ck, ALBUMS).await);
    let chain = login_chain(&h, "222", done["passToken"].as_str().unwrap()).await;
    assert!(chain.contains_key("serviceToken"));
    // A later poll of the same ticket gets the same answer at once.
    let (_, again) = passport_get(&h, &lp.replace(&h.base_url(), ""), "").await;
    assert_eq!(again["passToken"], done["passToken"]);
    assert_eq!(h.stats().counters["login_qr_confirmed"], 1);
    // QR switched off for an account: the confirm is refused with a hint.
    change_account(&h, "id=222,qr=off").await;
    qr_start(&h).await;
    let resp = post_empty(&h, "/_sim/qr/confirm?account=222").await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(resp.text().await.unwrap().contains("qr=on"));
}

#[tokio::test]
async fn qr_unconfirmed_expires_with_code_408() {
    let mut config = SimConfig::demo();
    config.accounts.qr_timeout = Duration::from_millis(800);
    let h = start(config).await;
    let v = qr_start(&h).await;
    assert_eq!(v["timeout"], 1);
    let lp = v["lp"].as_str().unwrap().replace(&h.base_url(), "");
    let t0 = Instant::now();
    let (set, expired) = passport_get(&h, &lp, "").await;
    // The poll is held until the ticket's 800 ms are over (a floor load cannot break), and
    // then answered (5 s: a guard against a hang, not a measurement).
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(expired["code"], 408);
    assert_eq!(expired["result"], "error");
    assert!(!set.contains_key("passToken"));
    // Later polls and confirms know it is gone.
    let (_, again) = passport_get(&h, &lp, "").await;
    assert_eq!(again["code"], 408);
    let resp = post_empty(&h, "/_sim/qr/confirm").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(h.stats().counters["login_qr_expired"], 1);
}

#[tokio::test]
async fn revoked_pass_token_yields_no_service_token() {
    let h = start(with_accounts(&["id=222,pass-token=V1:two,revoked"])).await;
    assert!(!login_chain(&h, "222", "V1:two")
        .await
        .contains_key("serviceToken"));
    // Revoking the default account at run time (web log-out).
    assert!(
        login_chain(&h, sim::DEFAULT_USER_ID, sim::DEFAULT_PASS_TOKEN)
            .await
            .contains_key("serviceToken")
    );
    let (status, v) = change_account(&h, &format!("id={},revoked=on", sim::DEFAULT_USER_ID)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["revoked"], true);
    assert!(
        !login_chain(&h, sim::DEFAULT_USER_ID, sim::DEFAULT_PASS_TOKEN)
            .await
            .contains_key("serviceToken")
    );
    let (_, v) = passport_get(
        &h,
        SIGN_QS,
        &format!(
            "userId={}; passToken={}",
            sim::DEFAULT_USER_ID,
            sim::DEFAULT_PASS_TOKEN
        ),
    )
    .await;
    assert_eq!(v["code"], 70016);
    // A new password login mints a fresh passToken that works.
    let (_, v) = auth2(&h, "222", sim::DEFAULT_PASSWORD, &[], "").await;
    let fresh = v["passToken"].as_str().unwrap();
    assert_ne!(fresh, "V1:two");
    assert!(login_chain(&h, "222", fresh)
        .await
        .contains_key("serviceToken"));
    assert_eq!(h.stats().token_exchanges, 2);
}

#[tokio::test]
async fn e2ee_account_reports_open_and_gallery_needs_second_validation() {
    let h = start(with_accounts(&["id=222,pass-token=V1:two,e2ee"])).await;
    let enc = "/mic/keybag/v1/getEncInfo?hsid=2&appId=micloud&ts=1";
    let plain = session(&h).await;
    let v = get_json(&h, &plain, enc).await;
    assert_envelope(&v);
    assert_eq!(v["data"]["e2eeStatus"], "close");
    assert_eq!(v["data"]["zone"], 301);
    assert!(v["data"]["maxAppkey"].is_object());
    let set = login_chain(&h, "222", "V1:two").await;
    let ck = format!("userId=222; serviceToken={}", set["serviceToken"]);
    assert_eq!(get_json(&h, &ck, enc).await["data"]["e2eeStatus"], "open");
    for path in [
        ALBUMS,
        "/gallery/user/galleries?ts=1&pageNum=0&pageSize=10",
        "/gallery/user/timeline?ts=1",
    ] {
        let (status, v) = status_of(&h, &ck, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(v["R"], 401);
        assert_eq!(v["isSecondValidation"], true);
        assert!(v["D"]
            .as_str()
            .unwrap()
            .contains("/pass/serviceLogin?callback="));
    }
    // Probes still answer, so a client can tell it from an expired session.
    get_json(&h, &ck, "/common/check?ts=1").await;
    get_json(
        &h,
        &ck,
        "/status/lite/setting?type=AutoRenewal&inactiveTime=10",
    )
    .await;
    // The plain account is unaffected.
    get_json(&h, &plain, ALBUMS).await;
    assert_eq!(h.stats().counters["gallery_second_validation"], 3);
}

#[tokio::test]
async fn second_validation_account_until_cleared() {
    let h = start(with_accounts(&[
        "id=222,pass-token=V1:two,second-validation",
    ]))
    .await;
    let set = login_chain(&h, "222", "V1:two").await;
    let ck = format!("userId=222; serviceToken={}", set["serviceToken"]);
    let enc = "/mic/keybag/v1/getEncInfo?hsid=2&appId=micloud";
    assert_eq!(get_json(&h, &ck, enc).await["data"]["e2eeStatus"], "close");
    let (status, v) = status_of(&h, &ck, ALBUMS).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["isSecondValidation"], true);
    get_json(&h, &ck, "/common/check").await;
    // The user ticks "trust this device" on the gallery page.
    change_account(&h, "id=222,second-validation=off").await;
    assert_envelope(&get_json(&h, &ck, ALBUMS).await);
}

#[tokio::test]
async fn expired_pasted_cookie_gets_401_on_auto_renewal() {
    let h = start(with_accounts(&["id=222,pass-token=V1:two"])).await;
    let ck = session(&h).await;
    let set = login_chain(&h, "222", "V1:two").await;
    let other = format!("userId=222; serviceToken={}", set["serviceToken"]);
    let renew = "/status/lite/setting?type=AutoRenewal&inactiveTime=10&ts=1";
    get_json(&h, &ck, renew).await;
    let path = format!("/_sim/expire-sessions?account={}", sim::DEFAULT_USER_ID);
    let v = as_json(post_empty(&h, &path).await).await;
    assert_eq!(v["expired"], 2, "the login's token and the renewal's");
    let (status, v) = status_of(&h, &ck, renew).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["R"], 401);
    assert_eq!(v["isSecondValidation"], false);
    let (status, _) = status_of(&h, &ck, "/common/check").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Only that account's sessions died.
    get_json(&h, &other, ALBUMS).await;
}

#[tokio::test]
async fn one_session_can_be_ended_alone() {
    let h = start(with_accounts(&[])).await;
    let (a, b) = (session(&h).await, session(&h).await);
    let token = a.split("serviceToken=").nth(1).unwrap();
    assert!(token.contains('+') && token.contains('/'), "{token}");
    assert_eq!(end_sessions(&h, Some("999"), Some(token)).await, 0);
    assert_eq!(end_sessions(&h, None, Some(token)).await, 1);
    let (status, _) = status_of(&h, &a, ALBUMS).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    get_json(&h, &b, ALBUMS).await;
    assert_eq!(h.stats().counters["sessions_expired"], 1);
}

#[tokio::test]
async fn two_accounts_side_by_side() {
    let h = start(with_accounts(&["id=222,pass-token=V1:two,password=pw2"])).await;
    let a = session(&h).await;
    let set = login_chain(&h, "222", "V1:two").await;
    let b = format!("userId=222; serviceToken={}", set["serviceToken"]);
    let va = get_json(&h, &a, ALBUMS).await;
    let vb = get_json(&h, &b, ALBUMS).await;
    assert_eq!(
        va["data"]["albums"][0]["userId"].to_string(),
        sim::DEFAULT_USER_ID
    );
    assert_eq!(vb["data"]["albums"][0]["userId"], 222);
    // One gallery for all accounts.
    assert_eq!(
        va["data"]["albums"].as_array().unwrap().len(),
        vb["data"]["albums"].as_array().unwrap().len()
    );
    // Tokens and passwords do not cross accounts.
    assert!(!login_chain(&h, "222", sim::DEFAULT_PASS_TOKEN)
        .await
        .contains_key("serviceToken"));
    let (_, v) = auth2(&h, "222", sim::DEFAULT_PASSWORD, &[], "").await;
    assert_eq!(v["code"], 70016);
    let (_, v) = auth2(&h, "222", "pw2", &[], "").await;
    assert_eq!(v["userId"], 222);
    let swapped = b.replace("userId=222", &format!("userId={}", sim::DEFAULT_USER_ID));
    let (status, _) = status_of(&h, &swapped, ALBUMS).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The control API lists both, and refuses a bad spec with a hint.
    let all = get_json(&h, "", "/_sim/accounts").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let (status, v) = change_account(&h, "id=5,2fa=pigeon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("phone, email or both"));
}

// ---- Today's passport (§10, the emulator's default) ----

fn today(specs: &[&str]) -> SimConfig {
    let mut c = with_accounts(specs);
    c.accounts.legacy_passport = false;
    c
}

/// A captcha answered right: (`ick` cookie, code) of the newest captcha served.
async fn solve_captcha(h: &SimHandle, link: &str) -> (String, String) {
    let resp = get_path(h, link).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ick = set_cookies(&resp)["ick"].clone();
    let code = control_passport(h).await["captchas"][&ick]
        .as_str()
        .unwrap()
        .to_string();
    (ick, code)
}

#[tokio::test]
async fn today_the_first_password_attempt_meets_a_captcha_even_with_a_wrong_password() {
    let h = start(today(&["id=222,password=pw"])).await;
    // Any password: 87001 with a captcha first, an empty location.
    for pw in ["wrong", "pw"] {
        let (_, v) = auth2(&h, "222", pw, &[], "deviceId=wb_a").await;
        assert_eq!(v["code"], 87001, "{v}");
        assert_eq!(v["location"], "");
        assert!(v["captchaUrl"]
            .as_str()
            .unwrap()
            .starts_with("/pass/getCode?icodeType=login"));
    }
    // A wrong captcha: 87001 again; a right captcha with a wrong password: 70016.
    let (_, v) = auth2(&h, "222", "pw", &[("captCode", "00000")], "ick=nope").await;
    assert_eq!(v["code"], 87001, "{v}");
    let (ick, code) = solve_captcha(&h, v["captchaUrl"].as_str().unwrap()).await;
    let v = auth2_captcha(&h, "222", "bad", &code, &format!("ick={ick}")).await;
    assert_eq!(v["code"], 70016, "{v}");
    let (ick, code) = solve_captcha(&h, "/pass/getCode?icodeType=login").await;
    let v = auth2_captcha(&h, "222", "pw", &code, &format!("ick={ick}")).await;
    assert_eq!(v["code"], 0, "{v}");
    assert!(sts(v["location"].as_str().unwrap()).await.is_some());
}

/// Password + captcha on today's passport up to its `notificationUrl`.
async fn today_to_identity(h: &SimHandle, user: &str, device: &str) -> String {
    let (ick, code) = solve_captcha(h, "/pass/getCode?icodeType=login").await;
    let v = auth2_captcha(
        h,
        user,
        "pw",
        &code,
        &format!("ick={ick}; deviceId={device}"),
    )
    .await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["location"], "");
    let n = v["notificationUrl"].as_str().unwrap().to_string();
    assert!(
        n.contains("/fe/service/identity/authStart") && n.contains("mask=0"),
        "{n}"
    );
    n.replace(&h.base_url(), "")
}

#[tokio::test]
async fn today_two_step_is_form_only_and_ends_through_tips_and_auth2_end() {
    let h = start(today(&["id=333,password=pw,2fa=both,tips=2"])).await;
    let start_path = today_to_identity(&h, "333", "wb_t").await;
    // authStart is a web page now.
    let page = get_path(&h, &start_path).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<html"));
    let ctx = start_path
        .split("context=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let list_path = start_path.replace("/fe/service/identity/authStart", "/identity/list");
    let (_, list) = passport_get(&h, &list_path, "").await;
    assert_eq!(list["code"], 2);
    assert_eq!(list["options"], serde_json::json!([4, 8]));
    let q = format!("?sid=i.mi.com&context={ctx}&mask=0&_locale=zh_CN");
    // Codes left, by the form endpoint.
    let (_, quota) = passport_post(
        &h,
        &format!("/identity/pass/sms/userQuota{q}"),
        &[("addressType", "EM"), ("contentType", "160040")],
        "",
    )
    .await;
    assert_eq!(quota["info"], "5", "{quota}");
    // A JSON body is refused.
    let resp = client()
        .post(format!("{}/identity/auth/sendEmailTicket{q}", h.base_url()))
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"retry":0}"#)
        .send()
        .await
        .unwrap();
    let (_, v) = passport_reply(resp).await;
    assert_eq!(v["code"], 70016, "{v}");
    // Form: the code is sent (context in the query, no cookie).
    let (_, sent) = passport_post(
        &h,
        &format!("/identity/auth/sendEmailTicket{q}"),
        &[
            ("retry", "0"),
            ("icode", ""),
            ("_json", "true"),
            ("ick", ""),
        ],
        "",
    )
    .await;
    assert_eq!(sent["code"], 0, "{sent}");
    // Asking again at once: 20024 with the seconds to wait.
    let (_, again) = passport_post(
        &h,
        &format!("/identity/auth/sendPhoneTicket{q}"),
        &[("retry", "0"), ("icode", ""), ("_json", "true")],
        "",
    )
    .await;
    assert_eq!(again["code"], 20024, "{again}");
    let wt = again["data"]["wt"].as_u64().unwrap();
    assert!((1..=60).contains(&wt), "{again}");
    let code = control_passport(&h).await["outbox"][0]["code"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, wrong) = passport_post(
        &h,
        &format!("/identity/auth/verifyEmail{q}"),
        &[
            ("_flag", "8"),
            ("ticket", "x"),
            ("trust", "true"),
            ("_json", "true"),
        ],
        "",
    )
    .await;
    assert_eq!(wrong["code"], 70014);
    let (_, good) = passport_post(
        &h,
        &format!("/identity/auth/verifyEmail{q}"),
        &[
            ("_flag", "8"),
            ("ticket", &code),
            ("trust", "true"),
            ("_json", "true"),
        ],
        "",
    )
    .await;
    assert_eq!(good["code"], 0, "{good}");
    let check = good["location"].as_str().unwrap();
    assert!(check.contains("/identity/result/check?") && check.contains("context="));
    let resp = client().get(check).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let end = resp.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(end.contains("/pass/serviceLoginAuth2/end?"), "{end}");
    // Two Tips pages (HTML, 200), then the redirect to the STS with the passToken.
    for _ in 0..2 {
        let resp = client().get(&end).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.text().await.unwrap().contains("Xiaomi Account - Tips"));
    }
    let fin = client().get(&end).send().await.unwrap();
    assert_eq!(fin.status(), StatusCode::FOUND);
    let pragma: Value =
        serde_json::from_str(fin.headers()["extension-pragma"].to_str().unwrap()).unwrap();
    assert!(pragma["ssecurity"].is_string());
    assert!(set_cookies(&fin).contains_key("passToken"));
    let ck = sts(fin.headers()[LOCATION].to_str().unwrap())
        .await
        .unwrap();
    assert_envelope(&get_json(&h, &ck, ALBUMS).await);
    // Finished: Auth2/end is an HTML error page now, not JSON.
    let resp = client().get(&end).send().await.unwrap();
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("Xiaomi Account - Error"));
    assert_eq!(h.stats().counters["login_tips_page"], 2);
}

#[tokio::test]
async fn today_a_channel_not_offered_answers_v2() {
    let h = start(today(&["id=444,password=pw,2fa=email"])).await;
    let start_path = today_to_identity(&h, "444", "wb_v").await;
    let ctx = start_path
        .split("context=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let (_, v) = passport_post(
        &h,
        &format!("/identity/auth/sendPhoneTicket?sid=i.mi.com&context={ctx}&mask=0"),
        &[("retry", "0"), ("icode", ""), ("_json", "true")],
        "",
    )
    .await;
    assert_eq!(
        (v["code"].clone(), v["version"].clone()),
        (2.into(), "v2".into()),
        "{v}"
    );
}

#[tokio::test]
async fn today_service_login_rotates_the_pass_token() {
    let h = start(today(&["id=555,pass-token=V1:five"])).await;
    let c = client();
    let login = as_json(get_path(&h, "/api/user/login?ts=1&followUp=%2F").await).await;
    let url = login["data"]["loginUrl"].as_str().unwrap().to_string();
    let first = c
        .get(&url)
        .header(
            reqwest::header::COOKIE,
            "userId=555; passToken=V1:five; deviceId=wb_r",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::FOUND);
    let t1 = set_cookies(&first)["passToken"].clone();
    assert!(t1.starts_with("V1:") && t1 != "V1:five");
    // The new one works and is rotated in turn; the configured one still works.
    let again = c
        .get(&url)
        .header(
            reqwest::header::COOKIE,
            format!("userId=555; passToken={t1}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::FOUND);
    assert_ne!(set_cookies(&again)["passToken"], t1);
    assert!(login_chain(&h, "555", "V1:five")
        .await
        .contains_key("serviceToken"));
    // Turned off, no new token.
    change_account(&h, "id=555,rotate=off").await;
    let off = c
        .get(&url)
        .header(reqwest::header::COOKIE, "userId=555; passToken=V1:five")
        .send()
        .await
        .unwrap();
    assert!(!set_cookies(&off).contains_key("passToken"));
}

#[tokio::test]
async fn today_a_qr_login_from_a_new_device_meets_401_until_the_identity_check() {
    let h = start(today(&["id=666,pass-token=V1:six"])).await;
    let v = passport_get(
        &h,
        "/longPolling/loginUrl?sid=i.mi.com&callback=x",
        "deviceId=wb_qr",
    )
    .await
    .1;
    let lp = v["lp"].as_str().unwrap().replace(&h.base_url(), "");
    let resp = post_empty(&h, "/_sim/qr/confirm?account=666").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, done) = passport_get(&h, &lp, "").await;
    let ck = sts(done["location"].as_str().unwrap()).await.unwrap();
    let (status, body) = status_of(&h, &ck, ALBUMS).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["isSecondValidation"], false);
    // Other calls answer: the session itself is good.
    assert_eq!(status_of(&h, &ck, "/common/check").await.0, StatusCode::OK);
    let resp = post_empty(&h, "/_sim/identity/check?account=666").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_envelope(&get_json(&h, &ck, ALBUMS).await);
    // The device is known now: its next QR login is not held.
    passport_get(&h, "/longPolling/loginUrl?sid=i.mi.com", "deviceId=wb_qr").await;
    post_empty(&h, "/_sim/qr/confirm?account=666").await;
    let accounts = get_json(&h, "", "/_sim/accounts").await;
    let a = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "666")
        .unwrap();
    assert_eq!(a["qrPending"], false, "{a}");
}

#[tokio::test]
async fn today_gallery_lost_to_the_region_and_jsonp_ignores_cookies() {
    let h = start(today(&[
        "id=777,pass-token=V1:seven,gallery=empty",
        "id=778,pass-token=V1:eight,gallery=refused",
    ]))
    .await;
    let set = login_chain(&h, "777", "V1:seven").await;
    let ck = format!("userId=777; serviceToken={}", set["serviceToken"]);
    let v = get_json(&h, &ck, ALBUMS).await;
    assert_eq!(v["data"]["albums"], serde_json::json!([]), "{v}");
    let set = login_chain(&h, "778", "V1:eight").await;
    let ck = format!("userId=778; serviceToken={}", set["serviceToken"]);
    let (status, v) = status_of(&h, &ck, ALBUMS).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["result"], "error", "{v}");
    // §10.7: i.mi.com cookies sent along on the JSONP step are ignored.
    let ck = session(&h).await;
    let id = truth_items(&h).await[0]["id"].as_str().unwrap().to_string();
    let storage = get_json(&h, &ck, &format!("/gallery/storage?ts=1&id={id}")).await;
    let url_a = storage["data"]["url"].as_str().unwrap().to_string();
    let resp = client()
        .get(&url_a)
        .header(reqwest::header::COOKIE, &ck)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("\"meta\""));
}
