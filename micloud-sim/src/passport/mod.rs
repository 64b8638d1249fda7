//! The emulated Xiaomi passport (spec §2): who may log in, and how.
//!
//! State first, then each flow:
//! - [`session`]: tickets and serviceTokens; [`accounts`]: the account registry;
//!   [`pending`]: what logins in progress remember (captcha answers, 2FA checks, QR
//!   tickets); [`Passport`] holds the registry and that memory;
//! - [`common`]: what every flow shares (the `&&&START&&&` answer, the STS ticket, the
//!   credentials a finished login hands out); [`images`]: the captcha and QR pictures;
//! - the flows: [`auth`] (the passToken chain `serviceLogin` → `/sts`, AutoRenewal, the
//!   session probes), [`password`] (`serviceLoginAuth2`), [`captcha`], [`identity`] (2FA by
//!   SMS or e-mail), [`qr`] (QR login and its long poll).
//!
//! Two passports are played, per account: **today's** (the reference's §10, the default:
//! captcha first with 87001, the form-only two-step check ending `result/check` →
//! `serviceLoginAuth2/end` with its HTML "Tips" pages, 20024, `userQuota`, passToken rotation on
//! `serviceLogin`, a QR login's new device held at 401) and the **older** one of §2
//! (`--legacy-passport`, or `legacy-passport=on` per account). Each flow's `//!` says where
//! they differ.

pub mod accounts;
pub mod auth;
pub mod captcha;
pub mod common;
pub mod identity;
pub mod images;
pub mod password;
pub mod pending;
pub mod qr;
pub mod session;

use std::time::Duration;

use crate::config::accounts::AccountsConfig;
use crate::passport::accounts::Accounts;
use crate::passport::pending::{Captchas, Identity, QrTickets};

/// Everything the emulated passport remembers between requests.
pub struct Passport {
    pub accounts: Accounts,
    pub captchas: Captchas,
    pub identity: Identity,
    pub qr: QrTickets,
    pub qr_timeout: Duration,
}

impl Passport {
    pub fn new(user_id: &str, pass_token: &str, config: &AccountsConfig) -> Self {
        Passport {
            accounts: Accounts::new(user_id, pass_token, config),
            captchas: Captchas::default(),
            identity: Identity::default(),
            qr: QrTickets::default(),
            qr_timeout: config.qr_timeout,
        }
    }
}
