//! Typed errors of the cloud client. Each says what happened and what the user can do;
//! `fs::errno` maps them (through `content::ContentError`) to an errno in one place.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CloudError {
    /// The passToken exchange produced no `serviceToken` (spec §2.1): the token was revoked
    /// (a web log-out does that) or mistyped.
    #[error(
        "Xiaomi refused the stored passToken (the exchange returned no serviceToken); it was \
         revoked, for example by logging out of i.mi.com or account.xiaomi.com in a browser. \
         Run `micloudfs login` again (a running mount resumes by itself once you have)"
    )]
    PassTokenRejected,

    /// The pasted i.mi.com cookie is no longer accepted, and a cookie cannot be re-minted.
    #[error(
        "the pasted i.mi.com cookie has expired (HTTP 401) and an expired cookie cannot be \
         renewed. Run `micloudfs login` again: with a fresh cookie (`--cookie`), or better with \
         a passToken, a password or `--qr`, which stay valid for weeks"
    )]
    CookieExpired,

    /// The gallery wants this device verified once in a browser (spec §2.5, §6 item 3).
    #[error(
        "the gallery asks for a second validation of this device (HTTP 401, \
         isSecondValidation). Open https://i.mi.com/gallery/h5 in a browser logged in to this \
         account (your regional host if you are outside China), enter the code Xiaomi sends, \
         tick \"trust this device\", then run `micloudfs login` again"
    )]
    SecondValidation,

    /// Advanced Data Protection (end-to-end encryption) is on: the web gallery serves nothing.
    #[error(
        "this account has Advanced Data Protection (end-to-end encryption) turned on, and \
         Xiaomi's web gallery cannot serve encrypted photos. To copy them: on the phone, open \
         Settings > Xiaomi Account > Xiaomi Cloud > Advanced data protection and turn it off, \
         wait until the phone reports it is done, then run `micloudfs login` again. (The \
         alternative is to copy the photos off the phone itself.)"
    )]
    EndToEndEncrypted,

    /// HTTP 401 persisted right after a fresh session, without a second-validation mark.
    #[error(
        "the gallery refused a freshly minted session (HTTP 401); open \
         https://i.mi.com/gallery/h5 once in a browser, tick \"trust this device\" if asked, \
         then run `micloudfs login` again"
    )]
    Unauthorized,

    /// A business error in the envelope (`code` != 0).
    #[error(
        "the service answered code {code} for {what}: {description} (retry later; if it \
         persists, report it with the log)"
    )]
    Api {
        code: i64,
        description: String,
        what: String,
    },

    /// `code` 50050: the item was deleted in the cloud.
    #[error("item {0} was deleted in the cloud")]
    ItemDeleted(String),

    /// 5xx, reset, timeout, a body without `data`: retried with backoff, then reported.
    #[error("transient failure from the service for {what}: {detail} (gave up after {attempts} attempts; check the network and retry)")]
    Transient {
        what: String,
        detail: String,
        attempts: u32,
    },

    /// A download URL expired or was refused (HTTP 403/404 on step 2 or 3).
    #[error("the download URL was refused with HTTP {status} for {what} (it may have expired; it is resolved again)")]
    UrlRefused { status: u16, what: String },

    /// The answer could not be understood.
    #[error(
        "malformed answer from the service for {what}: {detail} (the service may have \
         changed; please report this with the log)"
    )]
    Malformed { what: String, detail: String },

    /// This client (a test fake) does not offer the endpoint; the caller uses another way.
    #[error("the service offers no {0} here")]
    NotSupported(&'static str),

    /// The configuration is unusable (bad base URL and the like).
    #[error("{0}")]
    Config(String),
}

impl CloudError {
    /// Whether retrying the same request later can help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CloudError::Transient { .. } | CloudError::UrlRefused { .. }
        )
    }
}
