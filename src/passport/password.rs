//! Password login (spec §2.3): `serviceLogin` for the sign, then `serviceLoginAuth2`.
//!
//! 1. `GET /pass/serviceLogin?sid=i.mi.com&_json=true` (cookies `deviceId`, `sdkVersion`):
//!    code 70016 is the normal answer and still carries `_sign`, `qs`, `callback`, `sid`,
//!    `serviceParam` ([`Sign`], shared with QR login).
//! 2. `POST /pass/serviceLoginAuth2` with those, `user`, `hash` (upper-case hex MD5 of the
//!    password), `policyName=globalmiaccount` overseas. The answer decides:
//!    - `code:0` + `location` → done (`userId`/`passToken` from JSON or cookies);
//!    - `code:0`, empty `location`, `notificationUrl` → the 2FA check ([`super::identity`]);
//!    - 70016 with `captchaUrl` → captcha ([`super::captcha`]), re-POST with `captCode` (and
//!      cookie `ick`); 87001 = wrong captcha, with a new image; at most [`super::MAX_TRIES`]
//!      answers;
//!    - 87001 before any captcha was sent: today's passport asks for a captcha at the first
//!      attempt (§10.2); it is shown like any other, and nothing is called wrong;
//!    - 70016 otherwise, or after a captcha was answered → wrong account or password;
//!    - any other code → [`LoginError::Unexpected`] with the passport's description.

use std::path::Path;

use md5::{Digest, Md5};

use super::error::LoginError;
use super::http::PassportHttp;
use super::outcome::{collect, LoginOutcome};
use super::prompt::Prompter;
use super::{captcha, identity, PassportConfig, MAX_TRIES, SID};

/// Login verification failed (wrong password, or a captcha is wanted).
const CODE_LOGIN_FAILED: i64 = 70016;
/// Wrong captcha answer.
const CODE_WRONG_CAPTCHA: i64 = 87001;

/// The parameters `serviceLogin` hands out for the next step.
pub(crate) struct Sign {
    pub sign: String,
    pub qs: String,
    pub callback: String,
    pub sid: String,
    pub service_param: Option<String>,
}

/// Step 1: `GET /pass/serviceLogin?sid=i.mi.com&_json=true`.
pub(crate) async fn service_login(http: &mut PassportHttp) -> Result<Sign, LoginError> {
    let url = http.passport_url(&format!("/pass/serviceLogin?sid={SID}&_json=true"))?;
    let answer = http.get_json(&url, "serviceLogin").await?;
    let code = answer.code();
    if code != 0 && code != CODE_LOGIN_FAILED {
        return Err(answer.unexpected());
    }
    let sign = answer
        .text("_sign")
        .ok_or_else(|| LoginError::Malformed("serviceLogin gave no _sign to log in with".into()))?;
    Ok(Sign {
        sign,
        qs: answer
            .text("qs")
            .unwrap_or_else(|| format!("%3Fsid%3D{SID}%26_json%3Dtrue")),
        callback: answer
            .text("callback")
            .unwrap_or_else(|| http.sts_callback()),
        sid: answer.text("sid").unwrap_or_else(|| SID.to_string()),
        service_param: answer.text("serviceParam"),
    })
}

/// Upper-case hex MD5 of the password (the `hash` field).
fn password_hash(password: &str) -> String {
    hex::encode_upper(Md5::digest(password.as_bytes()))
}

/// Log in with an account name (id, phone or e-mail) and password.
pub async fn password_login(
    cfg: &PassportConfig,
    user: &str,
    password: &str,
    prompter: &mut dyn Prompter,
    work_dir: &Path,
) -> Result<LoginOutcome, LoginError> {
    let mut http = PassportHttp::new(cfg)?;
    let sign = service_login(&mut http).await?;
    let hash = password_hash(password);
    let url = http.passport_url("/pass/serviceLoginAuth2")?;
    let mut captcha_answer: Option<String> = None;
    let mut captcha_tries = 0u32;
    loop {
        let mut form: Vec<(&str, &str)> = vec![
            ("_json", "true"),
            ("sid", &sign.sid),
            ("callback", &sign.callback),
            ("qs", &sign.qs),
            ("_sign", &sign.sign),
            ("user", user),
            ("hash", &hash),
        ];
        if let Some(p) = &sign.service_param {
            form.push(("serviceParam", p));
        }
        if cfg.overseas {
            form.push(("policyName", "globalmiaccount"));
        }
        if let Some(a) = &captcha_answer {
            form.push(("captCode", a));
        }
        let answer = http.post_json(&url, &form, "serviceLoginAuth2").await?;
        let code = answer.code();
        tracing::debug!(code, "serviceLoginAuth2 answered");
        match code {
            0 => {
                if let Some(location) = answer.text("location") {
                    return collect(&mut http, Some(&answer), Some(location)).await;
                }
                if let Some(notification) = answer.text("notificationUrl") {
                    return identity::verify(&mut http, prompter, work_dir, &notification).await;
                }
                return Err(LoginError::Malformed(
                    "the password was accepted but the answer says neither where to go nor \
                     what to check"
                        .into(),
                ));
            }
            CODE_LOGIN_FAILED if captcha_answer.is_none() => match answer.text("captchaUrl") {
                Some(link) => {
                    captcha_tries += 1;
                    let a = captcha::solve(&mut http, prompter, work_dir, &link, false).await?;
                    captcha_answer = Some(a);
                }
                None => return Err(LoginError::WrongPassword),
            },
            // The captcha was right (else 87001), so the password was not.
            CODE_LOGIN_FAILED => return Err(LoginError::WrongPassword),
            CODE_WRONG_CAPTCHA => {
                let Some(link) = answer.text("captchaUrl") else {
                    return Err(answer.unexpected());
                };
                if captcha_tries >= MAX_TRIES {
                    return Err(LoginError::CaptchaFailed);
                }
                // Without an answer sent, 87001 is "captcha needed", not "captcha wrong".
                let wrong = captcha_answer.is_some();
                captcha_tries += 1;
                let a = captcha::solve(&mut http, prompter, work_dir, &link, wrong).await?;
                captcha_answer = Some(a);
            }
            _ => return Err(answer.unexpected()),
        }
    }
}

#[cfg(test)]
mod unit {
    #[test]
    fn hash_is_upper_hex_md5() {
        assert_eq!(
            super::password_hash("abc"),
            "900150983CD24FB0D6963F7D28E17F72"
        );
    }
}
