//! The account registry of the emulated passport: every account with its settings (from
//! [`crate::config::accounts`]) and its runtime state, changeable while the emulator runs
//! (`POST /_sim/accounts`).
//!
//! All accounts share the one gallery (the emulator models the protocol, not tenancy); the
//! album objects carry the caller's `userId`. A password or QR login mints a *new* passToken
//! (`V1:` + 32 random bytes) that lives beside the configured one; `revoked=on` kills them all,
//! `revoked=off` brings back only the configured one. Trusted devices (2FA `trust=true`) and
//! code counters are runtime state, kept until the emulator stops.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::config::accounts::{
    AccountSpec, AccountsConfig, CaptchaRule, Channel, GalleryState, Setting, TwoFactor,
    DEFAULT_PASSWORD, DEFAULT_QUOTA,
};
use crate::passport::session::random_b64url;

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
    /// Plays the passport of the reference's §2 (true) or of §10 (false, today's).
    pub legacy: bool,
    /// §10: how many times `Auth2/end` answers the HTML "Tips" page before redirecting.
    pub tips: u32,
    /// §10: seconds between two codes sent; sooner → `20024` with `data.wt`.
    pub send_gap: u64,
    /// §10: a QR login from a device never checked blocks the gallery (HTTP 401).
    pub qr_check: bool,
    /// §10: `serviceLogin` with a valid passToken hands back a new one.
    pub rotate: bool,
    pub gallery: GalleryState,
    /// A QR login registered a new device: gallery 401 until the identity check is passed.
    pub qr_pending: bool,
    /// The device of the QR login waiting for its identity check.
    qr_device: Option<String>,
    /// passTokens minted by logins and rotations; a rotated-away one dies at its deadline.
    minted: Vec<(String, Option<Instant>)>,
    /// When the last code was sent (any channel).
    last_sent: Option<Instant>,
    /// Wrong passwords in a row.
    failures: u32,
    /// `deviceId`s that ticked "trust this device".
    trusted: HashSet<String>,
    /// Codes sent, per channel.
    sent: HashMap<Channel, u32>,
}

/// How long a passToken that was rotated away keeps working (a mount mid-exchange, a second
/// command started before the first stored the new one).
pub const ROTATED_GRACE: Duration = Duration::from_secs(600);

impl Account {
    fn new(id: &str, pass_token: &str, password: Option<String>, legacy: bool) -> Self {
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
            legacy,
            tips: 1,
            send_gap: 60,
            qr_check: true,
            rotate: true,
            gallery: GalleryState::Ok,
            qr_pending: false,
            qr_device: None,
            minted: Vec::new(),
            last_sent: None,
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
            Setting::Legacy(b) => self.legacy = *b,
            Setting::Tips(n) => self.tips = *n,
            Setting::SendGap(n) => self.send_gap = *n,
            Setting::QrCheck(b) => {
                self.qr_check = *b;
                if !b {
                    self.qr_pending = false;
                }
            }
            Setting::Rotate(b) => self.rotate = *b,
            Setting::Gallery(g) => self.gallery = *g,
        }
    }

    /// Whether the next password attempt must carry a captcha answer: always on today's
    /// passport (§10.2), else as `captcha` says.
    pub fn captcha_required(&self) -> bool {
        if !self.legacy {
            return true;
        }
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
        let now = Instant::now();
        live.extend(
            self.minted
                .iter()
                .filter(|(_, dies)| dies.is_none_or(|d| d > now))
                .map(|(t, _)| t),
        );
        let gallery = match self.gallery {
            GalleryState::Ok => "ok",
            GalleryState::Empty => "empty",
            GalleryState::Refused => "refused",
        };
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
            "legacyPassport": self.legacy,
            "tips": self.tips,
            "sendGap": self.send_gap,
            "qrCheck": self.qr_check,
            "qrPending": self.qr_pending,
            "rotate": self.rotate,
            "gallery": gallery,
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
    /// Too soon after the last code: wait this many seconds (`20024`, `data.wt`).
    TooFast(u64),
}

/// The account registry (runtime-changeable through `POST /_sim/accounts`).
pub struct Accounts {
    map: Mutex<BTreeMap<String, Account>>,
    /// `--legacy-passport`: the mode of accounts that do not choose one.
    legacy: bool,
}

impl Accounts {
    /// The default account plus every `--account`.
    pub fn new(user_id: &str, pass_token: &str, config: &AccountsConfig) -> Self {
        let password = (!config.password.is_empty()).then(|| config.password.clone());
        let mut map = BTreeMap::new();
        map.insert(
            user_id.to_string(),
            Account::new(user_id, pass_token, password, config.legacy_passport),
        );
        let accounts = Accounts {
            map: Mutex::new(map),
            legacy: config.legacy_passport,
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
        let legacy = self.legacy;
        self.with(|m| {
            let acc = m.entry(spec.id.clone()).or_insert_with(|| {
                Account::new(
                    &spec.id,
                    &format!("V1:sim-pass-token-{}", spec.id),
                    Some(DEFAULT_PASSWORD.to_string()),
                    legacy,
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
            let now = Instant::now();
            m.get(user_id).is_some_and(|a| {
                (!a.revoked && a.pass_token == pass_token)
                    || a.minted
                        .iter()
                        .any(|(t, dies)| t == pass_token && dies.is_none_or(|d| d > now))
            })
        })
    }

    /// Mint a fresh passToken for `user_id` (a completed password, 2FA or QR login).
    pub fn mint_pass_token(&self, user_id: &str) -> String {
        let token = format!("V1:{}", random_b64url(32));
        self.with(|m| {
            if let Some(a) = m.get_mut(user_id) {
                a.minted.push((token.clone(), None));
            }
        });
        token
    }

    /// §10.5: `serviceLogin` accepted `old` for `user_id`; on today's passport with `rotate`
    /// on, a new passToken to hand back (a minted `old` then dies after [`ROTATED_GRACE`]; a
    /// configured one lives on until revoked).
    pub fn rotate(&self, user_id: &str, old: &str) -> Option<String> {
        self.with(|m| {
            let a = m.get_mut(user_id)?;
            if a.legacy || !a.rotate {
                return None;
            }
            let now = Instant::now();
            a.minted.retain(|(_, dies)| dies.is_none_or(|d| d > now));
            for (t, dies) in a.minted.iter_mut() {
                if t == old && dies.is_none() {
                    *dies = Some(now + ROTATED_GRACE);
                }
            }
            let token = format!("V1:{}", random_b64url(32));
            a.minted.push((token.clone(), None));
            Some(token)
        })
    }

    /// A QR login completed from `device`: on today's passport with `qr-check` on, a device
    /// never checked leaves the gallery blocked until the identity check (§10.4).
    pub fn qr_login(&self, user_id: &str, device: Option<&str>) -> bool {
        self.with(|m| {
            let Some(a) = m.get_mut(user_id) else {
                return false;
            };
            let known = device.is_some_and(|d| a.trusted.contains(d));
            if !a.legacy && a.qr_check && !known {
                a.qr_pending = true;
                a.qr_device = device.map(str::to_string);
            }
            a.qr_pending
        })
    }

    /// The identity check after a QR login was passed (in a browser): the gallery opens and
    /// the QR login's device is trusted (its next QR login is not held). Whether the account
    /// exists.
    pub fn identity_checked(&self, user_id: &str) -> bool {
        self.with(|m| {
            let Some(a) = m.get_mut(user_id) else {
                return false;
            };
            a.qr_pending = false;
            if let Some(d) = a.qr_device.take() {
                a.trusted.insert(d);
            }
            true
        })
    }

    /// What the gallery of `user_id` answers.
    pub fn gallery_state(&self, user_id: &str) -> GalleryState {
        self.with(|m| m.get(user_id).map_or(GalleryState::Ok, |a| a.gallery))
    }

    /// How many codes `channel` may still send today for `user_id` (`userQuota`).
    pub fn quota_left(&self, user_id: &str, channel: Channel) -> Option<u32> {
        self.with(|m| {
            let a = m.get(user_id)?;
            Some(
                a.quota
                    .saturating_sub(a.sent.get(&channel).copied().unwrap_or(0)),
            )
        })
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
            let now = Instant::now();
            if !a.legacy {
                if let Some(last) = a.last_sent {
                    let gap = Duration::from_secs(a.send_gap);
                    let waited = now.duration_since(last);
                    if waited < gap {
                        let left = (gap - waited).as_secs_f64().ceil() as u64;
                        return Err(SendRefused::TooFast(left.max(1)));
                    }
                }
            }
            let sent = a.sent.entry(channel).or_insert(0);
            if *sent >= a.quota {
                return Err(SendRefused::Quota);
            }
            *sent += 1;
            a.last_sent = Some(now);
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

    /// Whether gallery endpoints refuse `user_id` with a plain 401 (a QR login's new device
    /// waiting for its identity check, §10.4).
    pub fn qr_pending(&self, user_id: &str) -> bool {
        self.with(|m| m.get(user_id).is_some_and(|a| a.qr_pending))
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
            legacy_passport: true,
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
    fn logins_by_phone_and_email() {
        let r = registry(&["id=222,phone=+86 13912345678"]);
        assert_eq!(r.find_login("13912345678").unwrap().id, "222");
        assert_eq!(r.find_login("USER1@example.com").unwrap().id, "1");
        assert!(r.find_login("nobody").is_none());
    }
}
