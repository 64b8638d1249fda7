//! Interactive Xiaomi passport login, client side (spec §2.3–§2.5): a password login with its
//! captcha and 2FA ("identity") steps, and a QR login. Each ends with `userId` + `passToken`
//! ([`LoginOutcome`]), the only thing the caller stores; the serviceToken is minted from it
//! later (spec §2.2, `cloud::session`).
//!
//! Modules, one job each:
//! - [`password`]: `serviceLogin` (the sign) and `serviceLoginAuth2`;
//! - [`captcha`]: fetch, save and ask an image captcha;
//! - [`identity`]: the 2FA check by SMS or e-mail code;
//! - [`qr`]: the QR code and its long poll;
//! - [`http`]: requests, the few cookies, `&&&START&&&` answers and the host rule;
//! - [`outcome`]: collecting `userId` + `passToken` from an answer or its redirects;
//! - [`image_file`]: saving images 0600; [`prompt`]: asking the user; [`error`].
//!
//! Numbers: every request has the configured timeout except the QR long poll (75 s per poll,
//! repeated until the QR `timeout`); a captcha or a verification code may be answered
//! [`MAX_TRIES`] (3) times; at most 4 redirects are followed after a login.
//!
//! Secrets (password, its hash, passToken, codes, `ick`) never go into a log line, an error or
//! a `Debug` output; the password is never written anywhere.

mod captcha;
pub mod error;
mod http;
mod identity;
mod image_file;
mod outcome;
mod password;
mod prompt;
mod qr;

#[cfg(test)]
mod tests;

pub use error::LoginError;
pub use outcome::LoginOutcome;
pub use password::password_login;
pub use prompt::{NoPrompter, Prompter, TerminalPrompter};
pub use qr::qr_login;

/// The service whose ticket a login asks for: the web cloud (spec §2).
pub(crate) const SID: &str = "i.mi.com";
/// Answers to one captcha, or codes typed for one 2FA check, before giving up.
pub const MAX_TRIES: u32 = 3;

/// Where and how to log in.
#[derive(Clone, Debug)]
pub struct PassportConfig {
    /// `https://account.xiaomi.com`, or the emulator's base URL (it plays the passport too).
    pub passport_base: url::Url,
    /// `https://i.mi.com` (regional host) or the emulator; the STS callback is this + `sts`.
    pub api_base: url::Url,
    /// Add `policyName=globalmiaccount` to `serviceLoginAuth2` (spec §1.1).
    pub overseas: bool,
    /// `wb_<uuid>`, persisted by the caller so "trust this device" means something.
    pub device_id: String,
    /// Per request (not the QR long poll).
    pub timeout: std::time::Duration,
}
