//! Solving an image captcha: fetch the image (its `ick` cookie stays in the jar), save it as
//! `captcha.png` in the work folder, and ask the user for the characters.
//!
//! A terminal cannot show the image, so the user opens the file. Without a human
//! ([`Prompter::interactive`] false) the image is still saved and the error names it.

use std::path::Path;

use super::error::LoginError;
use super::http::{network, PassportHttp};
use super::image_file::save_private;
use super::prompt::Prompter;

/// File name of the saved captcha image.
pub(crate) const CAPTCHA_FILE: &str = "captcha.png";

/// Fetch the captcha at `link`, save it, and return the user's answer.
pub(crate) async fn solve(
    http: &mut PassportHttp,
    prompter: &mut dyn Prompter,
    work_dir: &Path,
    link: &str,
    retry: bool,
) -> Result<String, LoginError> {
    let url = http.link(link, "the captcha URL")?;
    let raw = http
        .get(&url, "the captcha image", None)
        .await
        .map_err(|e| network("the captcha image", e))?;
    if !raw.status.is_success() || raw.body.is_empty() {
        return Err(LoginError::Malformed(format!(
            "the captcha image answered HTTP {}",
            raw.status
        )));
    }
    let path = save_private(work_dir, CAPTCHA_FILE, &raw.body)?;
    if !prompter.interactive() {
        return Err(LoginError::NeedsInput {
            what: format!(
                "the characters of the captcha image saved at {}",
                path.display()
            ),
        });
    }
    if retry {
        prompter.say("That captcha was not right; here is a new one.");
    } else {
        prompter.say("Xiaomi wants a captcha before it checks the password.");
    }
    prompter.say(&format!(
        "The image is at {}: open it and type the characters.",
        path.display()
    ));
    let answer = prompter.ask_line("Captcha: ").await?;
    Ok(answer.trim().to_string())
}
