//! Accounts of the emulated passport and the login flows each one plays.
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
//!
//! All accounts share the one gallery (the emulator models the protocol, not tenancy); the
//! album objects carry the caller's `userId`. A password or QR login mints a *new* passToken
//! (`V1:` + 32 random bytes) that lives beside the configured one; `revoked=on` kills them all,
//! `revoked=off` brings back only the configured one. Trusted devices (2FA `trust=true`) and
//! code counters are runtime state, kept until the emulator stops.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use md5::{Digest, Md5};
use serde_json::{json, Value};

use super::session::random_b64url;

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
    /// revoked (on|off), phone, email. Repeatable.
    #[arg(long = "account", value_name = "SPEC")]
    pub accounts: Vec<AccountSpec>,
    /// Password of the default account (--user-id); empty turns password login off for it.
    #[arg(long, default_value = DEFAULT_PASSWORD)]
    pub password: String,
    /// Lifetime of a QR login ticket, e.g. 300s, 1500ms or 300 (seconds).
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub qr_timeout: Duration,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            accounts: Vec::new(),
            password: DEFAULT_PASSWORD.to_string(),
            qr_timeout: DEFAULT_QR_TIMEOUT,
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
enum Setting {
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
}

/// A parsed `--account` SPEC (also the body of `POST /_sim/accounts`).
#[derive(Clone, Debug, PartialEq)]
pub struct AccountSpec {
    pub id: String,
    settings: Vec<Setting>,
}

/// Why a SPEC was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("account spec has no id: add id=<account id>, e.g. 'id=222,password=secret'")]
    NoId,
    #[error("unknown account setting '{0}': use id, pass-token, password, captcha, 2fa, quota, qr, e2ee, second-validation, revoked, phone or email")]
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

/// One account: its settings and its runtime state.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: String,
    /// The configured passToken (alive unless revoked).
    pub pass_token: String,
    /// Plain password; `None` = password login off.
    pub password: Option<String>,
    pub captcha: CaptchaRule,
    pub two_factor: TwoFactor,
    pub quota: u32,
    pub qr: bool,
    pub e2ee: bool,
    pub second_validation: bool,
    pub revoked: bool,
    pub phone: String,
    pub email: String,
    /// passTokens minted by password, 2FA and QR logins.
    minted: Vec<String>,
    /// Wrong passwords in a row.
    failures: u32,
    /// `deviceId`s that ticked "trust this device".
    trusted: HashSet<String>,
    /// Codes sent, per channel.
    sent: HashMap<Channel, u32>,
}

impl Account {
    fn new(id: &str, pass_token: &str, password: Option<String>) -> Self {
        let tail: String = {
            let digits: String = id.chars().filter(char::is_ascii_digit).collect();
            format!("{:0>4}", &digits[digits.len().saturating_sub(4)..])
        };
        Account {
            id: id.to_string(),
            pass_token: pass_token.to_string(),
            password,
            captcha: CaptchaRule::Off,
            two_factor: TwoFactor::Off,
            quota: DEFAULT_QUOTA,
            qr: true,
            e2ee: false,
            second_validation: false,
            revoked: false,
            phone: format!("+86 1380000{tail}"),
            email: format!("user{id}@example.com"),
            minted: Vec::new(),
            failures: 0,
            trusted: HashSet::new(),
            sent: HashMap::new(),
        }
    }

    fn apply(&mut self, s: &Setting) {
        match s {
            Setting::PassToken(t) => self.pass_token = t.clone(),
            Setting::Password(p) => self.password = p.clone(),
            Setting::Captcha(c) => self.captcha = *c,
            Setting::TwoFactor(t) => self.two_factor = *t,
            Setting::Quota(q) => self.quota = *q,
            Setting::Qr(b) => self.qr = *b,
            Setting::E2ee(b) => self.e2ee = *b,
            Setting::SecondValidation(b) => self.second_validation = *b,
            Setting::Revoked(b) => {
                self.revoked = *b;
                self.minted.clear();
            }
            Setting::Phone(p) => self.phone = p.clone(),
            Setting::Email(e) => self.email = e.clone(),
        }
    }

    /// Whether the next password attempt must carry a captcha answer.
    pub fn captcha_required(&self) -> bool {
        match self.captcha {
            CaptchaRule::Off => false,
            CaptchaRule::Always => true,
            CaptchaRule::AfterFailures(n) => self.failures >= n,
        }
    }

    /// Whether `hash` is the upper-case (any case accepted) hex MD5 of the password.
    pub fn password_matches(&self, hash: &str) -> bool {
        self.password
            .as_deref()
            .is_some_and(|p| md5_upper(p).eq_ignore_ascii_case(hash.trim()))
    }

    /// `138****0001`, `+86 138****0001`.
    pub fn masked_phone(&self) -> String {
        let p: Vec<char> = self.phone.chars().collect();
        let n = p.len();
        p.iter()
            .enumerate()
            .map(|(i, c)| {
                if c.is_ascii_digit() && i + 4 < n && i >= n.saturating_sub(8) {
                    '*'
                } else {
                    *c
                }
            })
            .collect()
    }

    /// `u***@example.com`.
    pub fn masked_email(&self) -> String {
        match self.email.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            None => "***".to_string(),
        }
    }

    /// What `/_sim/accounts` shows (passTokens included: it is the test API).
    pub fn describe(&self) -> Value {
        let captcha = match self.captcha {
            CaptchaRule::Off => json!("off"),
            CaptchaRule::Always => json!("always"),
            CaptchaRule::AfterFailures(n) => json!(n),
        };
        let two_factor = match self.two_factor {
            TwoFactor::Off => "off",
            TwoFactor::Phone => "phone",
            TwoFactor::Email => "email",
            TwoFactor::Both => "both",
        };
        let mut live: Vec<&String> = Vec::new();
        if !self.revoked {
            live.push(&self.pass_token);
        }
        live.extend(self.minted.iter());
        json!({
            "id": self.id,
            "passToken": self.pass_token,
            "livePassTokens": live,
            "password": self.password.is_some(),
            "captcha": captcha,
            "twoFactor": two_factor,
            "quota": self.quota,
            "qr": self.qr,
            "e2ee": self.e2ee,
            "secondValidation": self.second_validation,
            "revoked": self.revoked,
            "phone": self.phone,
            "email": self.email,
            "failures": self.failures,
            "trustedDevices": self.trusted.len(),
            "sent": {"phone": self.sent.get(&Channel::Phone).copied().unwrap_or(0),
                     "email": self.sent.get(&Channel::Email).copied().unwrap_or(0)},
        })
    }
}

/// Upper-case hex MD5 (the `hash` field of `serviceLoginAuth2`).
pub fn md5_upper(s: &str) -> String {
    hex::encode_upper(Md5::digest(s.as_bytes()))
}

/// Why sending a code was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SendRefused {
    Quota,
    NoAccount,
}

/// The account registry (runtime-changeable through `POST /_sim/accounts`).
pub struct Accounts {
    map: Mutex<BTreeMap<String, Account>>,
}

impl Accounts {
    /// The default account plus every `--account`.
    pub fn new(user_id: &str, pass_token: &str, config: &AccountsConfig) -> Self {
        let password = (!config.password.is_empty()).then(|| config.password.clone());
        let mut map = BTreeMap::new();
        map.insert(
            user_id.to_string(),
            Account::new(user_id, pass_token, password),
        );
        let accounts = Accounts {
            map: Mutex::new(map),
        };
        for spec in &config.accounts {
            accounts.upsert(spec);
        }
        accounts
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<String, Account>) -> R) -> R {
        match self.map.lock() {
            Ok(mut m) => f(&mut m),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Create or change the account of `spec`; its description afterwards.
    pub fn upsert(&self, spec: &AccountSpec) -> Value {
        self.with(|m| {
            let acc = m.entry(spec.id.clone()).or_insert_with(|| {
                Account::new(
                    &spec.id,
                    &format!("V1:sim-pass-token-{}", spec.id),
                    Some(DEFAULT_PASSWORD.to_string()),
                )
            });
            for s in &spec.settings {
                acc.apply(s);
            }
            acc.describe()
        })
    }

    /// A copy of the account `id`.
    pub fn get(&self, id: &str) -> Option<Account> {
        self.with(|m| m.get(id).cloned())
    }

    /// The account whose id, phone or e-mail is `login` (the `user` form field).
    pub fn find_login(&self, login: &str) -> Option<Account> {
        let login = login.trim();
        let digits = login.replace(' ', "");
        self.with(|m| {
            m.values()
                .find(|a| {
                    let phone = a.phone.replace(' ', "");
                    // A phone number matches with or without its country code.
                    let phone_match =
                        phone == digits || (digits.len() >= 11 && phone.ends_with(&digits));
                    a.id == login || a.email.eq_ignore_ascii_case(login) || phone_match
                })
                .cloned()
        })
    }

    pub fn describe_all(&self) -> Value {
        self.with(|m| Value::Array(m.values().map(Account::describe).collect()))
    }

    /// Whether `pass_token` is a live passToken of `user_id`.
    pub fn pass_token_valid(&self, user_id: &str, pass_token: &str) -> bool {
        self.with(|m| {
            m.get(user_id).is_some_and(|a| {
                (!a.revoked && a.pass_token == pass_token)
                    || a.minted.iter().any(|t| t == pass_token)
            })
        })
    }

    /// Mint a fresh passToken for `user_id` (a completed password, 2FA or QR login).
    pub fn mint_pass_token(&self, user_id: &str) -> String {
        let token = format!("V1:{}", random_b64url(32));
        self.with(|m| {
            if let Some(a) = m.get_mut(user_id) {
                a.minted.push(token.clone());
            }
        });
        token
    }

    /// Record a wrong password (counts towards `captcha=N`).
    pub fn password_failed(&self, user_id: &str) {
        self.with(|m| {
            if let Some(a) = m.get_mut(user_id) {
                a.failures = a.failures.saturating_add(1);
            }
        });
    }

    pub fn password_ok(&self, user_id: &str) {
        self.with(|m| {
            if let Some(a) = m.get_mut(user_id) {
                a.failures = 0;
            }
        });
    }

    pub fn trust_device(&self, user_id: &str, device: &str) {
        self.with(|m| {
            if let Some(a) = m.get_mut(user_id) {
                a.trusted.insert(device.to_string());
            }
        });
    }

    pub fn is_trusted(&self, user_id: &str, device: Option<&str>) -> bool {
        let Some(device) = device else { return false };
        self.with(|m| m.get(user_id).is_some_and(|a| a.trusted.contains(device)))
    }

    /// Count one code sent on `channel`, or refuse it when the quota is used up.
    pub fn take_quota(&self, user_id: &str, channel: Channel) -> Result<(), SendRefused> {
        self.with(|m| {
            let a = m.get_mut(user_id).ok_or(SendRefused::NoAccount)?;
            let sent = a.sent.entry(channel).or_insert(0);
            if *sent >= a.quota {
                return Err(SendRefused::Quota);
            }
            *sent += 1;
            Ok(())
        })
    }

    /// Whether gallery endpoints refuse `user_id` with `isSecondValidation:true`.
    pub fn gallery_blocked(&self, user_id: &str) -> bool {
        self.with(|m| {
            m.get(user_id)
                .is_some_and(|a| a.e2ee || a.second_validation)
        })
    }

    pub fn e2ee(&self, user_id: &str) -> bool {
        self.with(|m| m.get(user_id).is_some_and(|a| a.e2ee))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(specs: &[&str]) -> Accounts {
        let config = AccountsConfig {
            accounts: specs.iter().map(|s| s.parse().unwrap()).collect(),
            ..AccountsConfig::default()
        };
        Accounts::new("1", "V1:one", &config)
    }

    #[test]
    fn spec_parses_every_key() {
        let s: AccountSpec =
            "id=222, pass-token=V1:x=y, password=secret, captcha=3, 2fa=both, quota=0, qr=off, e2ee, second-validation=on, revoked, phone=+86 13912345678, email=a@b.c"
                .parse()
                .unwrap();
        let acc = {
            let r = registry(&[]);
            r.upsert(&s);
            r.get("222").unwrap()
        };
        assert_eq!(acc.pass_token, "V1:x=y");
        assert_eq!(acc.password.as_deref(), Some("secret"));
        assert_eq!(acc.captcha, CaptchaRule::AfterFailures(3));
        assert_eq!(acc.two_factor, TwoFactor::Both);
        assert_eq!(acc.quota, 0);
        assert!(!acc.qr && acc.e2ee && acc.second_validation && acc.revoked);
        assert_eq!(acc.masked_phone(), "+86 139****5678");
        assert_eq!(acc.masked_email(), "a***@b.c");
    }

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
    fn md5_is_upper_hex() {
        assert_eq!(md5_upper("abc"), "900150983CD24FB0D6963F7D28E17F72");
    }

    #[test]
    fn revoking_kills_configured_and_minted_tokens() {
        let r = registry(&[]);
        let minted = r.mint_pass_token("1");
        assert!(r.pass_token_valid("1", "V1:one") && r.pass_token_valid("1", &minted));
        r.upsert(&"id=1,revoked".parse().unwrap());
        assert!(!r.pass_token_valid("1", "V1:one") && !r.pass_token_valid("1", &minted));
        r.upsert(&"id=1,revoked=off".parse().unwrap());
        assert!(r.pass_token_valid("1", "V1:one") && !r.pass_token_valid("1", &minted));
        assert!(!r.pass_token_valid("2", "V1:one"));
    }

    #[test]
    fn captcha_after_failures_and_quota() {
        let r = registry(&["id=1,captcha=2,quota=1"]);
        assert!(!r.get("1").unwrap().captcha_required());
        r.password_failed("1");
        r.password_failed("1");
        assert!(r.get("1").unwrap().captcha_required());
        r.password_ok("1");
        assert!(!r.get("1").unwrap().captcha_required());
        assert_eq!(r.take_quota("1", Channel::Phone), Ok(()));
        assert_eq!(r.take_quota("1", Channel::Phone), Err(SendRefused::Quota));
        assert_eq!(r.take_quota("1", Channel::Email), Ok(()));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn logins_by_phone_and_email() {
        let r = registry(&["id=222,phone=+86 13912345678"]);
        assert_eq!(r.find_login("13912345678").unwrap().id, "222");
        assert_eq!(r.find_login("USER1@example.com").unwrap().id, "1");
        assert!(r.find_login("nobody").is_none());
    }
}
