//! The login flows against the in-process emulator, with a scripted user.
//!
//! [`ScriptedPrompter`] answers each question with the next closure of its script; before a
//! closure runs it reads `GET /_sim/passport` (captcha answers, the codes "sent"), so answers
//! are what a user would read off the image or the phone. Each script entry also names the
//! prompt it expects, so the order of questions is checked too.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;
use micloud_sim::{self as sim, AccountsConfig, SimConfig, SimHandle};

type Answer = Box<dyn FnMut(&Value) -> String + Send>;

/// A user who follows a script, reading the emulator's outbox and captcha answers.
struct ScriptedPrompter {
    sim: String,
    http: reqwest::Client,
    interactive: bool,
    script: VecDeque<(&'static str, Answer)>,
    asked: Vec<String>,
    said: Vec<String>,
}

impl ScriptedPrompter {
    fn new(sim: &SimHandle) -> Self {
        ScriptedPrompter {
            sim: sim.base_url(),
            http: reqwest::Client::new(),
            interactive: true,
            script: VecDeque::new(),
            asked: Vec::new(),
            said: Vec::new(),
        }
    }

    /// Expect a prompt starting with `prefix`; answer with `f(/_sim/passport)`.
    fn then(
        mut self,
        prefix: &'static str,
        f: impl FnMut(&Value) -> String + Send + 'static,
    ) -> Self {
        self.script.push_back((prefix, Box::new(f)));
        self
    }

    fn said(&self) -> String {
        self.said.join("\n")
    }

    async fn answer(&mut self, prompt: &str) -> Result<String, LoginError> {
        self.asked.push(prompt.to_string());
        let (prefix, mut f) = self
            .script
            .pop_front()
            .unwrap_or_else(|| panic!("unscripted prompt {prompt:?}"));
        assert!(
            prompt.starts_with(prefix),
            "prompt {prompt:?} should start with {prefix:?}"
        );
        let state = sim_json(&self.http, &format!("{}/_sim/passport", self.sim)).await;
        Ok(f(&state))
    }
}

#[async_trait::async_trait]
impl Prompter for ScriptedPrompter {
    fn interactive(&self) -> bool {
        self.interactive
    }
    async fn ask_secret(&mut self, prompt: &str) -> Result<String, LoginError> {
        self.answer(prompt).await
    }
    async fn ask_line(&mut self, prompt: &str) -> Result<String, LoginError> {
        self.answer(prompt).await
    }
    fn say(&mut self, text: &str) {
        self.said.push(text.to_string());
    }
}

/// A `/_sim/` JSON answer.
async fn sim_json(http: &reqwest::Client, url: &str) -> Value {
    let body = http.get(url).send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&body).unwrap()
}

/// The code of the only live captcha (what the image shows).
fn captcha_shown(state: &Value) -> String {
    let live = state["captchas"].as_object().expect("captchas");
    assert_eq!(live.len(), 1, "one captcha image should be live: {live:?}");
    live.values().next().unwrap().as_str().unwrap().to_string()
}

/// The latest code "sent" by SMS or e-mail.
fn code_received(state: &Value) -> String {
    let outbox = state["outbox"].as_array().expect("outbox");
    outbox.last().expect("a code was sent")["code"]
        .as_str()
        .unwrap()
        .to_string()
}

fn say(text: &'static str) -> impl FnMut(&Value) -> String + Send {
    move |_| text.to_string()
}

async fn start(specs: &[&str], qr_timeout: Option<Duration>) -> SimHandle {
    // The older passport (§2): these tests pin the client's handling of each answer; the
    // flows of today's passport (§10) are driven end to end in tests/login.rs.
    let mut accounts = AccountsConfig {
        accounts: specs.iter().map(|s| s.parse().unwrap()).collect(),
        legacy_passport: true,
        ..AccountsConfig::default()
    };
    if let Some(t) = qr_timeout {
        accounts.qr_timeout = t;
    }
    sim::start(
        SimConfig {
            accounts,
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("start the emulator")
}

fn config(sim: &SimHandle, device: &str) -> PassportConfig {
    let base = url::Url::parse(&sim.base_url()).unwrap();
    PassportConfig {
        passport_base: base.clone(),
        api_base: base,
        overseas: false,
        device_id: format!("wb_{device}"),
        timeout: Duration::from_secs(10),
    }
}

async fn state(sim: &SimHandle) -> Value {
    sim_json(
        &reqwest::Client::new(),
        &format!("{}/_sim/passport", sim.base_url()),
    )
    .await
}

/// `serviceLogin?_json=true` with the outcome's cookies answers code 0 (the token is live).
async fn assert_pass_token_works(sim: &SimHandle, done: &LoginOutcome) {
    let body = reqwest::Client::new()
        .get(format!(
            "{}/pass/serviceLogin?sid=i.mi.com&_json=true",
            sim.base_url()
        ))
        .header(
            "Cookie",
            format!("userId={}; passToken={}", done.user_id, done.pass_token),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(body.trim_start_matches("&&&START&&&")).unwrap();
    assert_eq!(v["code"], 0, "{v}");
}

fn assert_private_png(path: &std::path::Path) {
    let meta = std::fs::metadata(path).expect("image saved");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[tokio::test]
async fn password_login_yields_a_working_pass_token() {
    let sim = start(&[], None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut user = ScriptedPrompter::new(&sim);
    let done = password_login(
        &config(&sim, "a"),
        sim::DEFAULT_USER_ID,
        sim::DEFAULT_PASSWORD,
        &mut user,
        dir.path(),
    )
    .await
    .unwrap();
    assert_eq!(done.user_id, sim::DEFAULT_USER_ID);
    assert!(done.pass_token.starts_with("V1:"));
    assert_ne!(
        done.pass_token,
        sim::DEFAULT_PASS_TOKEN,
        "a login mints a new token"
    );
    assert!(user.asked.is_empty());
    assert_pass_token_works(&sim, &done).await;
}

#[tokio::test]
async fn wrong_password_is_refused_with_advice() {
    let sim = start(&[], None).await;
    let dir = tempfile::tempdir().unwrap();
    let err = password_login(
        &config(&sim, "a"),
        sim::DEFAULT_USER_ID,
        "not-the-password",
        &mut ScriptedPrompter::new(&sim),
        dir.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LoginError::WrongPassword), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("70016") && msg.contains("--qr") && msg.contains("--pass-token"));
    assert!(!msg.contains("not-the-password"));
}

#[tokio::test]
async fn captcha_is_saved_and_asked_again_after_a_wrong_answer() {
    let sim = start(&["id=222,captcha=always"], None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut user = ScriptedPrompter::new(&sim)
        .then("Captcha", say("99999x"))
        .then("Captcha", captcha_shown);
    let done = password_login(
        &config(&sim, "a"),
        "222",
        sim::DEFAULT_PASSWORD,
        &mut user,
        dir.path(),
    )
    .await
    .unwrap();
    assert_eq!(done.user_id, "222");
    assert_eq!(user.asked.len(), 2);
    let image = dir.path().join("captcha.png");
    assert_private_png(&image);
    assert!(user.said().contains(&image.display().to_string()));
    assert!(user.said().contains("not right"));
    assert_pass_token_works(&sim, &done).await;
}

#[tokio::test]
async fn captcha_gives_up_after_three_wrong_answers() {
    let sim = start(&["id=222,captcha=always"], None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut user = ScriptedPrompter::new(&sim)
        .then("Captcha", say("x"))
        .then("Captcha", say("y"))
        .then("Captcha", say("z"));
    let err = password_login(
        &config(&sim, "a"),
        "222",
        "sim-password",
        &mut user,
        dir.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LoginError::CaptchaFailed), "{err:?}");
    assert_eq!(user.asked.len(), 3);
}

#[tokio::test]
async fn captcha_without_a_terminal_names_the_saved_image() {
    let sim = start(&["id=222,captcha=always"], None).await;
    let dir = tempfile::tempdir().unwrap();
    let err = password_login(
        &config(&sim, "a"),
        "222",
        sim::DEFAULT_PASSWORD,
        &mut NoPrompter,
        dir.path(),
    )
    .await
    .unwrap_err();
    let image = dir.path().join("captcha.png");
    match &err {
        LoginError::NeedsInput { what } => assert!(what.contains(&image.display().to_string())),
        other => panic!("expected NeedsInput, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("micloudfs login") && msg.contains("--qr") && msg.contains("--pass-token")
    );
    assert_private_png(&image);
}

#[tokio::test]
async fn two_factor_by_phone() {
    let sim = start(&["id=333,2fa=phone"], None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut user = ScriptedPrompter::new(&sim)
        .then("Code sent to ", code_received)
        .then("Trust this device? [Y/n]", say(""));
    let done = password_login(
        &config(&sim, "a"),
        "333",
        "sim-password",
        &mut user,
        dir.path(),
    )
    .await
    .unwrap();
    assert_eq!(done.user_id, "333");
    assert!(
        user.asked[0].contains("****"),
        "masked phone: {}",
        user.asked[0]
    );
    let st = state(&sim).await;
    assert_eq!(st["outbox"][0]["channel"], "phone");
    assert_pass_token_works(&sim, &done).await;
}

#[tokio::test]
async fn two_factor_by_email() {
    let sim = start(&["id=444,2fa=email"], None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut user = ScriptedPrompter::new(&sim)
        .then("Code sent to ", code_received)
        .then("Trust this device?", say("n"));
    let done = password_login(
        &config(&sim, "a"),
        "444",
        "sim-password",
        &mut user,
        dir.path(),
    )
    .await
    .unwrap();
    assert_eq!(done.user_id, "444");
    assert!(
        user.asked[0].contains("***@"),
        "masked e-mail: {}",
        user.asked[0]
    );
    assert_eq!(state(&sim).await["outbox"][0]["channel"], "email");
    assert_pass_token_works(&sim, &done).await;
}

#[tokio::test]
async fn two_factor_with_both_channels_asks_which() {
    let sim = start(&["id=555,2fa=both"], None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut user = ScriptedPrompter::new(&sim)
        .then("Send the code", say("2"))
        .then("Code sent to ", code_received)
        .then("Trust this device?", say("y"));
    let done = password_login(
        &config(&sim, "a"),
        "555",
        "sim-password",
        &mut user,
        dir.path(),
    )
    .await
    .unwrap();
    assert_eq!(done.user_id, "555");
    let said = user.said();
    assert!(
        said.contains("by SMS to") && said.contains("by e-mail to"),
        "{said}"
    );
    let st = state(&sim).await;
    assert_eq!(st["outbox"].as_array().unwrap().len(), 1);
    assert_eq!(st["outbox"][0]["channel"], "email");
}

#[tokio::test]
async fn wrong_code_is_asked_again() {
    let sim = start(&["id=333,2fa=phone"], None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut user = ScriptedPrompter::new(&sim)
        .then("Code sent to ", say("abcdef"))
        .then("Trust this device?", say(""))
        .then("Code sent to ", code_received);
    let done = password_login(
        &config(&sim, "a"),
        "333",
        "sim-password",
        &mut user,
        dir.path(),
    )
    .await
    .unwrap();
    assert_eq!(done.user_id, "333");
    assert!(user.said().contains("did not accept that code"));
    assert_eq!(user.asked.len(), 3, "trust is asked once");
}

#[tokio::test]
async fn three_wrong_codes_are_rejected() {
    let sim = start(&["id=333,2fa=phone"], None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut user = ScriptedPrompter::new(&sim)
        .then("Code sent to ", say("a"))
        .then("Trust this device?", say(""))
        .then("Code sent to ", say("b"))
        .then("Code sent to ", say("c"));
    let err = password_login(
        &config(&sim, "a"),
        "333",
        "sim-password",
        &mut user,
        dir.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LoginError::CodeRejected), "{err:?}");
}

#[tokio::test]
async fn code_quota_is_reported() {
    let sim = start(&["id=666,2fa=phone,quota=0"], None).await;
    let dir = tempfile::tempdir().unwrap();
    let mut user = ScriptedPrompter::new(&sim);
    let err = password_login(
        &config(&sim, "a"),
        "666",
        "sim-password",
        &mut user,
        dir.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LoginError::CodeQuota), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("70022") && msg.contains("--qr"), "{msg}");
}

#[tokio::test]
async fn a_trusted_device_skips_two_factor_next_time() {
    let sim = start(&["id=333,2fa=phone"], None).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, "trusted");
    let mut user = ScriptedPrompter::new(&sim)
        .then("Code sent to ", code_received)
        .then("Trust this device?", say("Y"));
    password_login(&cfg, "333", "sim-password", &mut user, dir.path())
        .await
        .unwrap();
    // Same device: no question at all.
    let again = password_login(&cfg, "333", "sim-password", &mut NoPrompter, dir.path())
        .await
        .unwrap();
    assert_eq!(again.user_id, "333");
    // Another device still gets the check.
    let other = password_login(
        &config(&sim, "other"),
        "333",
        "sim-password",
        &mut NoPrompter,
        dir.path(),
    )
    .await
    .unwrap_err();
    assert!(matches!(other, LoginError::NeedsInput { .. }), "{other:?}");
}

#[tokio::test]
async fn qr_login_succeeds_once_scanned() {
    let sim = start(&[], None).await;
    let dir = tempfile::tempdir().unwrap();
    let base = sim.base_url();
    let phone = tokio::spawn(async move {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            let st = sim_json(&http, &format!("{base}/_sim/passport")).await;
            if let Some(ticket) = st["qr"][0]["ticket"].as_str() {
                let r = http
                    .post(format!("{base}/_sim/qr/confirm?ticket={ticket}"))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no QR ticket was issued");
    });
    let mut user = ScriptedPrompter::new(&sim);
    let done = qr_login(&config(&sim, "a"), &mut user, dir.path(), true)
        .await
        .unwrap();
    phone.await.unwrap();
    assert_eq!(done.user_id, sim::DEFAULT_USER_ID);
    assert_pass_token_works(&sim, &done).await;
    let image = dir.path().join("login-qr.png");
    assert_private_png(&image);
    let said = user.said();
    assert!(said.contains(&image.display().to_string()));
    assert!(said.contains("within 300 s"), "{said}");
    assert!(
        said.contains('█') && said.contains('▀'),
        "the code is drawn"
    );
}

#[tokio::test]
async fn qr_login_expires_when_nobody_scans() {
    let sim = start(&[], Some(Duration::from_secs(1))).await;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = qr_login(&config(&sim, "a"), &mut NoPrompter, dir.path(), false)
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::QrExpired { secs: 1 }), "{err:?}");
    assert!(err.to_string().contains("micloudfs login --qr"));
    // A guard against waiting forever, not a measurement (the ticket lives 1 s).
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test]
async fn overseas_login_still_works() {
    let sim = start(&[], None).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = PassportConfig {
        overseas: true,
        ..config(&sim, "a")
    };
    let done = password_login(
        &cfg,
        sim::DEFAULT_USER_ID,
        sim::DEFAULT_PASSWORD,
        &mut NoPrompter,
        dir.path(),
    )
    .await
    .unwrap();
    assert_eq!(done.user_id, sim::DEFAULT_USER_ID);
}

#[test]
fn debug_of_an_outcome_redacts_the_pass_token() {
    let done = LoginOutcome {
        user_id: "42".into(),
        pass_token: "V1:very-secret".into(),
    };
    let shown = format!("{done:?}");
    assert!(
        shown.contains("42") && !shown.contains("very-secret"),
        "{shown}"
    );
}

#[test]
fn links_off_the_passport_are_refused() {
    let cfg = PassportConfig {
        passport_base: url::Url::parse("https://account.xiaomi.com").unwrap(),
        api_base: url::Url::parse("https://i.mi.com").unwrap(),
        overseas: false,
        device_id: "wb_x".into(),
        timeout: Duration::from_secs(1),
    };
    let http = http::PassportHttp::new(&cfg).unwrap();
    assert!(http.link("/pass/getCode?icodeType=login", "c").is_ok());
    assert!(http
        .link("https://c3.lp.account.xiaomi.com/lp/s?k=lp_1", "lp")
        .is_ok());
    for bad in [
        "https://evil.example/lp/s",
        "https://account.xiaomi.com.evil.example/x",
        "http://c3.lp.account.xiaomi.com/lp/s",
        "https://i.mi.com/sts",
    ] {
        assert!(
            matches!(http.link(bad, "lp"), Err(LoginError::Malformed(_))),
            "{bad} should be refused"
        );
    }
    assert!(http.hop("https://i.mi.com/sts?x=1").is_ok(), "STS hop");
}

#[test]
fn answers_parse_with_and_without_the_prefix() {
    let ok = reqwest::StatusCode::OK;
    let a = http::parse_answer("&&&START&&&{\"code\":70016}", ok, "t").unwrap();
    assert_eq!(a.code(), 70016);
    let b = http::parse_answer("{\"code\":\"0\",\"userId\":42}", ok, "t").unwrap();
    assert_eq!((b.code(), b.text("userId").as_deref()), (0, Some("42")));
    assert!(matches!(
        http::parse_answer("{oops", ok, "t"),
        Err(LoginError::Malformed(_))
    ));
    // A web page is explained (its title named), not taken for a parse error.
    let Err(e) = http::parse_answer(
        "<!DOCTYPE html><html><head><title>Xiaomi Account - Tips</title></head></html>",
        ok,
        "Auth2/end",
    ) else {
        panic!("a web page parsed as JSON");
    };
    assert!(
        matches!(&e, LoginError::WebPage { title, .. } if title == "Xiaomi Account - Tips"),
        "{e:?}"
    );
    assert!(e.to_string().contains("--qr"), "{e}");
    assert!(http::html_title("{\"code\":0}").is_none());
    assert_eq!(
        http::html_title("<html><body>x</body></html>").as_deref(),
        Some("untitled")
    );
}
