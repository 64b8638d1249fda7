//! Asking the person at the terminal: captcha characters, verification codes, choices.
//!
//! The login flows only talk to a [`Prompter`], so they run the same in a terminal
//! ([`TerminalPrompter`]), headless ([`NoPrompter`]: every question becomes
//! [`LoginError::NeedsInput`]) and in tests (a scripted double). Prompts and messages go to
//! stderr so stdout stays clean for scripts; secrets are read without echo (`rpassword`, which
//! reads the controlling TTY). Blocking reads run on tokio's blocking pool.

use std::io::{BufRead, IsTerminal, Write};

use super::error::LoginError;

/// Whoever answers the passport's questions.
#[async_trait::async_trait]
pub trait Prompter: Send {
    /// Whether a human can answer; when false every ask_* returns LoginError::NeedsInput.
    fn interactive(&self) -> bool;
    /// Ask for a secret, read without echo.
    async fn ask_secret(&mut self, prompt: &str) -> Result<String, LoginError>;
    /// Ask for one line of text.
    async fn ask_line(&mut self, prompt: &str) -> Result<String, LoginError>;
    /// A line for the user (stderr).
    fn say(&mut self, text: &str);
}

/// Prompts on stderr and reads stdin (a TTY); secrets without echo.
pub struct TerminalPrompter;

/// What a prompt asks for, for a `NeedsInput` message (`"Captcha: "` → `captcha`).
fn subject(prompt: &str) -> String {
    let s = prompt.trim().trim_end_matches([':', '?', ' ']);
    if s.is_empty() {
        "an answer".to_string()
    } else {
        format!("an answer to \"{s}\"")
    }
}

fn eof() -> LoginError {
    LoginError::Cancelled("the input ended before an answer was given; run the login again".into())
}

#[async_trait::async_trait]
impl Prompter for TerminalPrompter {
    fn interactive(&self) -> bool {
        std::io::stdin().is_terminal()
    }

    async fn ask_secret(&mut self, prompt: &str) -> Result<String, LoginError> {
        if !self.interactive() {
            return Err(LoginError::NeedsInput {
                what: subject(prompt),
            });
        }
        let prompt = prompt.to_string();
        tokio::task::spawn_blocking(move || rpassword::prompt_password(prompt))
            .await
            .map_err(|e| LoginError::Cancelled(format!("the prompt stopped: {e}")))?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => eof(),
                _ => LoginError::Io(format!(
                    "cannot read from the terminal: {e}; run the login in a terminal"
                )),
            })
    }

    async fn ask_line(&mut self, prompt: &str) -> Result<String, LoginError> {
        if !self.interactive() {
            return Err(LoginError::NeedsInput {
                what: subject(prompt),
            });
        }
        let prompt = prompt.to_string();
        tokio::task::spawn_blocking(move || -> Result<String, LoginError> {
            let mut err = std::io::stderr().lock();
            // A prompt that cannot be shown is not fatal: the read below still works.
            let _ = write!(err, "{prompt}");
            let _ = err.flush();
            let mut line = String::new();
            let n = std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| LoginError::Io(format!("cannot read from the terminal: {e}")))?;
            if n == 0 {
                return Err(eof());
            }
            Ok(line.trim_end_matches(['\r', '\n']).to_string())
        })
        .await
        .map_err(|e| LoginError::Cancelled(format!("the prompt stopped: {e}")))?
    }

    fn say(&mut self, text: &str) {
        eprintln!("{text}");
    }
}

/// Non-interactive: never prompts; every ask_* is `NeedsInput`.
pub struct NoPrompter;

#[async_trait::async_trait]
impl Prompter for NoPrompter {
    fn interactive(&self) -> bool {
        false
    }

    async fn ask_secret(&mut self, prompt: &str) -> Result<String, LoginError> {
        Err(LoginError::NeedsInput {
            what: subject(prompt),
        })
    }

    async fn ask_line(&mut self, prompt: &str) -> Result<String, LoginError> {
        Err(LoginError::NeedsInput {
            what: subject(prompt),
        })
    }

    /// Still shown: a headless QR login needs its instructions, and stderr is no answer.
    fn say(&mut self, text: &str) {
        eprintln!("{text}");
    }
}
