//! Why an interactive login failed, worded for the person at the terminal.
//!
//! Every message says what happened and what to do next. None carries a secret: no password,
//! hash, passToken, verification code or captcha cookie ever reaches an error (passport
//! `description`s are server text and URLs are stripped from network errors).

/// A failed password or QR login.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(
        "Xiaomi refused the account or password (code 70016): check the account name (Xiaomi \
         id, phone number with country code, or e-mail) and the password, then retry; \
         `micloudfs login --qr` or `micloudfs login --pass-token` are other ways in"
    )]
    WrongPassword,
    #[error(
        "the captcha was answered wrongly {} times: run `micloudfs login` again for a new \
         image, or use `micloudfs login --qr`",
        super::MAX_TRIES
    )]
    CaptchaFailed,
    #[error(
        "Xiaomi will send no more codes today (daily limit, code 70022): try tomorrow, use the \
         other channel, or `micloudfs login --qr`"
    )]
    CodeQuota,
    #[error(
        "Xiaomi rejected the verification code {} times (code 70014): run `micloudfs \
         login` again for a new code, or use `micloudfs login --qr`",
        super::MAX_TRIES
    )]
    CodeRejected,
    #[error(
        "the QR code expired before it was scanned (it was valid for {secs} s): run \
         `micloudfs login --qr` again"
    )]
    QrExpired { secs: u64 },
    #[error(
        "Xiaomi asks for {what}, but there is no terminal to answer in: run `micloudfs login` \
         in a terminal, or use `micloudfs login --qr` or `micloudfs login --pass-token`"
    )]
    NeedsInput { what: String },
    #[error("login cancelled: {0}")]
    Cancelled(String),
    #[error(
        "the Xiaomi passport refused the login with code {code} ({description}): retry later, \
         or log in with `micloudfs login --qr` or `micloudfs login --pass-token`"
    )]
    Unexpected { code: i64, description: String },
    #[error(
        "Xiaomi asks to wait {secs} s before it sends another code (code 20024, sending too \
         fast): run `micloudfs login` again after that, or use `micloudfs login --qr`"
    )]
    TooFast { secs: u64 },
    #[error(
        "the Xiaomi passport answered a web page (\"{title}\") instead of data for {what}: it \
         is busy or wants the step done in a browser. Retry in a minute; if it persists, log in \
         at https://i.mi.com in a browser once, or use `micloudfs login --qr`"
    )]
    WebPage { what: String, title: String },
    #[error(
        "Xiaomi offers no two-step method this tool can use (code 2, version v2: the method \
         asked for is not among the account's options): finish the check at \
         https://account.xiaomi.com in a browser, then retry, or use `micloudfs login --qr`"
    )]
    MethodNotOffered,
    #[error("cannot reach the Xiaomi passport ({0}): check the connection and retry")]
    Network(String),
    #[error(
        "the Xiaomi passport answered something unexpected: {0}; retry, and if it persists use \
         `micloudfs login --qr` or `micloudfs login --pass-token`"
    )]
    Malformed(String),
    #[error("{0}")]
    Io(String),
}
