//! QR login (spec §2.4): the user scans a code with the Xiaomi app; no password is typed.
//!
//! 1. `serviceLogin` for the sign (as for a password login).
//! 2. `GET /longPolling/loginUrl?_qrsize=480&qs=&callback=&_sign=&sid=i.mi.com&serviceParam=
//!    &_locale=en_US&_dc=<ms>` → `qr` (PNG URL), `loginUrl` (what the code encodes), `lp`
//!    (long-poll URL), `timeout` (seconds; 300 observed).
//! 3. The PNG is saved as `login-qr.png` (0600) in the work folder; on request `loginUrl` is
//!    also drawn in the terminal with Unicode half blocks (two modules a character, light
//!    modules as blocks so it reads dark-on-light on a dark terminal, with the quiet zone).
//! 4. `GET <lp>` hangs until the scan is confirmed. Each poll is cut after [`POLL_WAIT`]
//!    (75 s, as the spec's QR client does) and repeated until `timeout` has passed, plus
//!    [`GRACE`] for the passport's own expiry answer. Success carries `userId` + `passToken`
//!    (JSON or `Set-Cookie`); code 408 or the deadline → [`LoginError::QrExpired`].
//!
//! `qr` and `lp` must be on the passport (its origin or `*.account.xiaomi.com`): the long
//! poll's answer *is* the credential, so it is never fetched from elsewhere.

use std::path::Path;
use std::time::{Duration, Instant};

use qrcode::render::unicode::Dense1x2;

use super::error::LoginError;
use super::http::{network, parse_answer, PassportHttp};
use super::image_file::save_private;
use super::outcome::{collect, LoginOutcome};
use super::password::service_login;
use super::prompt::Prompter;
use super::PassportConfig;

/// File name of the saved QR image.
pub(crate) const QR_FILE: &str = "login-qr.png";
/// Read timeout of one long poll.
pub(crate) const POLL_WAIT: Duration = Duration::from_secs(75);
/// Extra wait past the QR timeout for the passport's own "expired" answer.
const GRACE: Duration = Duration::from_secs(5);
/// `timeout` when the answer has none (the observed value).
const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// The passport's "QR code expired" answer.
const CODE_EXPIRED: i64 = 408;

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// `text` as a QR code in Unicode half blocks (light modules drawn), one string of lines.
pub(crate) fn draw(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// Log in by scanning a QR code with the Xiaomi app.
pub async fn qr_login(
    cfg: &PassportConfig,
    prompter: &mut dyn Prompter,
    work_dir: &Path,
    draw_in_terminal: bool,
) -> Result<LoginOutcome, LoginError> {
    let mut http = PassportHttp::new(cfg)?;
    let sign = service_login(&mut http).await?;
    let mut url = http.passport_url("/longPolling/loginUrl")?;
    url.query_pairs_mut()
        .append_pair("_qrsize", "480")
        .append_pair("qs", &sign.qs)
        .append_pair("callback", &sign.callback)
        .append_pair("_sign", &sign.sign)
        .append_pair("sid", &sign.sid)
        .append_pair("serviceParam", sign.service_param.as_deref().unwrap_or(""))
        .append_pair("_locale", "en_US")
        .append_pair("_dc", &now_ms().to_string());
    let answer = http.get_json(&url, "longPolling/loginUrl").await?;
    if !matches!(answer.code(), 0 | -1) {
        return Err(answer.unexpected());
    }
    let missing = |f: &str| LoginError::Malformed(format!("the QR login answer has no {f}"));
    let qr = http.link(
        &answer.text("qr").ok_or_else(|| missing("qr"))?,
        "the QR image URL",
    )?;
    let lp = http.link(
        &answer.text("lp").ok_or_else(|| missing("lp"))?,
        "the QR long-poll URL",
    )?;
    let login_url = answer.text("loginUrl");
    let secs = answer
        .text("timeout")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);

    let raw = http
        .get(&qr, "the QR image", None)
        .await
        .map_err(|e| network("the QR image", e))?;
    if !raw.status.is_success() || raw.body.is_empty() {
        return Err(LoginError::Malformed(format!(
            "the QR image answered HTTP {}",
            raw.status
        )));
    }
    let path = save_private(work_dir, QR_FILE, &raw.body)?;
    prompter.say(&format!(
        "The login QR code is saved at {}.",
        path.display()
    ));
    if draw_in_terminal {
        if let Some(picture) = login_url.as_deref().and_then(draw) {
            prompter.say(&picture);
        }
    }
    prompter.say(&format!(
        "Scan it with the Xiaomi app (Profile → scan) within {secs} s."
    ));

    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(LoginError::QrExpired { secs });
        }
        let wait = POLL_WAIT.min(deadline - now + GRACE);
        let raw = match http.get(&lp, "the QR long poll", Some(wait)).await {
            Ok(raw) => raw,
            Err(e) if e.is_timeout() => continue,
            Err(e) => return Err(network("the QR long poll", e)),
        };
        if raw.status.is_success() && raw.body.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let answer = parse_answer(
            &String::from_utf8_lossy(&raw.body),
            raw.status,
            "the QR long poll",
        )?;
        match answer.code() {
            0 => {
                tracing::debug!("QR login confirmed");
                let location = answer.text("location");
                return collect(&mut http, Some(&answer), location).await;
            }
            CODE_EXPIRED => return Err(LoginError::QrExpired { secs }),
            _ => return Err(answer.unexpected()),
        }
    }
}

#[cfg(test)]
mod unit {
    #[test]
    fn drawing_uses_half_blocks_two_rows_a_line() {
        let s = super::draw("https://example.com/qr").unwrap();
        let lines: Vec<&str> = s.lines().collect();
        let width = lines[0].chars().count();
        // Version 2 (25 modules) + 2 × 4 quiet modules, two module rows per line.
        assert_eq!(width, 33);
        assert_eq!(lines.len(), 17);
        assert!(s.contains('▀') || s.contains('▄'));
        // The quiet zone is light, drawn as full blocks.
        assert!(lines[0].chars().all(|c| c == '█'));
    }
}
