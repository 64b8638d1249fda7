//! Typed errors of the cloud client. Each says what happened and what the user can do;
//! `fs::errno` maps them (through `content::ContentError`) to an errno in one place.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CloudError {
    /// The passToken exchange produced no `serviceToken` (spec §2.1): the token was revoked
    /// (a web log-out does that) or mistyped.
    #[error(
        "Xiaomi refused the stored passToken (no serviceToken came back); it may have been \
         revoked by logging out in a browser. Get a fresh passToken from the account.xiaomi.com \
         cookies and run `micloudfs login` again"
    )]
    PassTokenRejected,

    /// HTTP 401 persisted right after a fresh exchange (spec §6 item 3).
    #[error(
        "the gallery refused a freshly minted session (HTTP 401{second}); open \
         https://i.mi.com/gallery/h5 once in a browser and tick \"trust this device\", then retry",
        second = if *.second_validation { ", second validation required" } else { "" }
    )]
    Unauthorized { second_validation: bool },

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
