//! Accounts of the emulated passport as flags: `--account SPEC`, the default account's
//! password, the QR ticket lifetime. The registry that plays them is
//! [`crate::passport::accounts`].
//!
//! There is always the *default account* (`--user-id`, `--pass-token`, `--password`); each
//! `--account SPEC` adds another or changes one (same id = change). A SPEC is a comma-separated
//! list of `key=value` settings (a bare key means `on`):
//!
//! | key | values | default | effect |
//! |---|---|---|---|
//! | `id` | account id (required) | | the `userId` |
//! | `pass-token` | token | `V1:sim-pass-token-<id>` | the configured passToken |
//! | `password` | text, empty = off | `sim-password` | password login (`hash` = MD5 of it) |
//! | `captcha` | `off`, `always`, `N` | `off` | image captcha always, or after N wrong passwords |
//! | `2fa` | `off`, `phone`, `email`, `both` | `off` | identity check after the password |
//! | `quota` | N | 5 | codes per channel before `70022` (0 = every send fails) |
//! | `qr` | on/off | on | QR login may be confirmed for this account |
//! | `e2ee` | on/off | off | Advanced Data Protection: `getEncInfo` open, gallery 401 |
//! | `second-validation` | on/off | off | gallery 401 with `isSecondValidation:true` |
//! | `revoked` | on/off | off | every passToken of the account is dead (web log-out) |
//! | `phone`, `email` | text | derived from the id | where codes go; also valid login names |
//! | `legacy-passport` | on/off | `--legacy-passport` | play the passport of §2 instead of §10 |
//! | `tips` | N | 1 | §10 mode: `Auth2/end` answers the HTML "Tips" page N times per login |
//! | `send-gap` | seconds | 60 | §10 mode: a code sent sooner after the last → `20024`, `data.wt` |
//! | `qr-check` | on/off | on | §10 mode: a QR login from an unknown device → gallery 401 until checked |
//! | `rotate` | on/off | on | §10 mode: `serviceLogin` with a passToken hands back a new one |
//! | `gallery` | `ok`, `empty`, `refused` | ok | a gallery lost to the region (§10.1) |
//!
//! Today's passport (§10, the default) and the older one (`--legacy-passport`, or
//! `legacy-passport=on` per account) differ as [`crate::passport`] says.

use std::str::FromStr;
use std::time::Duration;

/// Password of the default account.
pub const DEFAULT_PASSWORD: &str = "sim-password";
/// Codes a channel may send per account before `70022` (go-micloud: 5 a day).
pub const DEFAULT_QUOTA: u32 = 5;
/// Default lifetime of a QR login ticket (spec §2.4: `timeout` 300 observed).
pub const DEFAULT_QR_TIMEOUT: Duration = Duration::from_secs(300);

/// Account settings (`micloud-sim` flags, flattened into its command line).
#[derive(clap::Args, Clone, Debug)]
pub struct AccountsConfig {
    /// Add an account or change one, e.g. 'id=222,password=secret,captcha=2,2fa=both,e2ee'.
    /// Keys: id, pass-token, password (empty = off), captcha (off|always|N wrong passwords),
    /// 2fa (off|phone|email|both), quota (codes per channel), qr, e2ee, second-validation,
    /// revoked (on|off), phone, email, legacy-passport, tips (N), send-gap (seconds),
    /// qr-check, rotate (on|off), gallery (ok|empty|refused). Repeatable.
    #[arg(long = "account", value_name = "SPEC")]
    pub accounts: Vec<AccountSpec>,
    /// Password of the default account (--user-id); empty turns password login off for it.
    #[arg(long, default_value = DEFAULT_PASSWORD)]
    pub password: String,
    /// Lifetime of a QR login ticket, e.g. 300s, 1500ms or 300 (seconds).
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub qr_timeout: Duration,
    /// Play the passport as the protocol reference's §2 describes it (no captcha first, the
    /// older two-step check, no passToken rotation) for every account that does not say
    /// otherwise (`legacy-passport=off`). Default: today's passport (§10).
    #[arg(long)]
    pub legacy_passport: bool,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            accounts: Vec::new(),
            password: DEFAULT_PASSWORD.to_string(),
            qr_timeout: DEFAULT_QR_TIMEOUT,
            legacy_passport: false,
        }
    }
}

/// `300`, `300s` or `1500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("'{s}' is not a duration: write e.g. 300s, 1500ms or 300");
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .trim()
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| bad());
    }
    s.strip_suffix('s')
        .unwrap_or(s)
        .trim()
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| bad())
}

/// When the image captcha is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptchaRule {
    Off,
    Always,
    /// After this many wrong passwords in a row.
    AfterFailures(u32),
}

/// Which identity checks a 2FA account offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwoFactor {
    Off,
    Phone,
    Email,
    Both,
}

/// Where a verification code goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Phone,
    Email,
}

impl Channel {
    /// The `flag` of `/identity/list` (4 phone, 8 e-mail).
    pub fn flag(self) -> u32 {
        match self {
            Channel::Phone => 4,
            Channel::Email => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Channel::Phone => "phone",
            Channel::Email => "email",
        }
    }
}

impl TwoFactor {
    pub fn channels(self) -> Vec<Channel> {
        match self {
            TwoFactor::Off => vec![],
            TwoFactor::Phone => vec![Channel::Phone],
            TwoFactor::Email => vec![Channel::Email],
            TwoFactor::Both => vec![Channel::Phone, Channel::Email],
        }
    }
}

/// One setting of a SPEC.
#[derive(Clone, Debug, PartialEq)]
pub enum Setting {
    PassToken(String),
    Password(Option<String>),
    Captcha(CaptchaRule),
    TwoFactor(TwoFactor),
    Quota(u32),
    Qr(bool),
    E2ee(bool),
    SecondValidation(bool),
    Revoked(bool),
    Phone(String),
    Email(String),
    Legacy(bool),
    Tips(u32),
    SendGap(u64),
    QrCheck(bool),
    Rotate(bool),
    Gallery(GalleryState),
}

/// What the gallery of an account answers (§10.1: only mainland-China accounts have one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GalleryState {
    /// The shared gallery.
    Ok,
    /// Albums and listings are empty (a region whose data was deleted).
    Empty,
    /// Gallery calls answer the error envelope (no gallery service for this account).
    Refused,
}

/// A parsed `--account` SPEC (also the body of `POST /_sim/accounts`).
#[derive(Clone, Debug, PartialEq)]
pub struct AccountSpec {
    pub id: String,
    /// The keys given besides `id`, in order.
    pub settings: Vec<Setting>,
}

/// Why a SPEC was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("account spec has no id: add id=<account id>, e.g. 'id=222,password=secret'")]
    NoId,
    #[error("unknown account setting '{0}': use id, pass-token, password, captcha, 2fa, quota, qr, e2ee, second-validation, revoked, phone, email, legacy-passport, tips, send-gap, qr-check, rotate or gallery")]
    UnknownKey(String),
    #[error("bad value '{value}' for '{key}': {hint}")]
    BadValue {
        key: String,
        value: String,
        hint: &'static str,
    },
}

fn on_off(key: &str, v: &str) -> Result<bool, SpecError> {
    match v.to_ascii_lowercase().as_str() {
        "" | "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(SpecError::BadValue {
            key: key.into(),
            value: v.into(),
            hint: "write on or off",
        }),
    }
}

impl FromStr for AccountSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let mut id = None;
        let mut settings = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            let (key, value) = (key.trim(), value.trim());
            let bad = |hint| SpecError::BadValue {
                key: key.into(),
                value: value.into(),
                hint,
            };
            let setting = match key {
                "id" if !value.is_empty() => {
                    id = Some(value.to_string());
                    continue;
                }
                "id" => return Err(SpecError::NoId),
                "pass-token" if !value.is_empty() => Setting::PassToken(value.into()),
                "pass-token" => return Err(bad("give the token, e.g. pass-token=V1:abc")),
                "password" => Setting::Password((!value.is_empty()).then(|| value.into())),
                "captcha" => Setting::Captcha(match value {
                    "off" => CaptchaRule::Off,
                    "always" | "" => CaptchaRule::Always,
                    n => CaptchaRule::AfterFailures(
                        n.parse()
                            .map_err(|_| bad("write off, always or a number of failures"))?,
                    ),
                }),
                "2fa" => Setting::TwoFactor(match value {
                    "off" => TwoFactor::Off,
                    "phone" | "" => TwoFactor::Phone,
                    "email" => TwoFactor::Email,
                    "both" => TwoFactor::Both,
                    _ => return Err(bad("write off, phone, email or both")),
                }),
                "quota" => Setting::Quota(
                    value
                        .parse()
                        .map_err(|_| bad("write a number of codes, 0 for none"))?,
                ),
                "qr" => Setting::Qr(on_off(key, value)?),
                "e2ee" => Setting::E2ee(on_off(key, value)?),
                "second-validation" => Setting::SecondValidation(on_off(key, value)?),
                "revoked" => Setting::Revoked(on_off(key, value)?),
                "phone" => Setting::Phone(value.into()),
                "email" => Setting::Email(value.into()),
                "legacy-passport" => Setting::Legacy(on_off(key, value)?),
                "tips" => Setting::Tips(value.parse().map_err(|_| bad("write a number of pages"))?),
                "send-gap" => Setting::SendGap(
                    value
                        .trim_end_matches('s')
                        .parse()
                        .map_err(|_| bad("write a number of seconds"))?,
                ),
                "qr-check" => Setting::QrCheck(on_off(key, value)?),
                "rotate" => Setting::Rotate(on_off(key, value)?),
                "gallery" => Setting::Gallery(match value {
                    "ok" | "" => GalleryState::Ok,
                    "empty" => GalleryState::Empty,
                    "refused" => GalleryState::Refused,
                    _ => return Err(bad("write ok, empty or refused")),
                }),
                other => return Err(SpecError::UnknownKey(other.into())),
            };
            settings.push(setting);
        }
        Ok(AccountSpec {
            id: id.ok_or(SpecError::NoId)?,
            settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_errors_say_what_to_write() {
        assert_eq!("password=x".parse::<AccountSpec>(), Err(SpecError::NoId));
        assert!(matches!(
            "id=1,colour=red".parse::<AccountSpec>(),
            Err(SpecError::UnknownKey(k)) if k == "colour"
        ));
        let e = "id=1,2fa=pigeon".parse::<AccountSpec>().unwrap_err();
        assert!(e.to_string().contains("phone, email or both"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
    }
}
