//! The interactive ways in (`login` with a password, `login --qr`): the passport flows of
//! [`crate::passport`], with the terminal as the prompter, or none when nothing may be asked.

use crate::account::{AccountStore, Region};
use crate::cloud::Credentials;
use crate::passport::{self, LoginOutcome, NoPrompter, PassportConfig, Prompter, TerminalPrompter};

fn config(
    store: &AccountStore,
    api_base: &str,
    region: Option<Region>,
) -> Result<PassportConfig, String> {
    let parse = |s: &str| {
        url::Url::parse(s)
            .map_err(|e| format!("{s:?} is not a URL ({e}); use for example https://i.mi.com"))
    };
    let mut api = parse(api_base)?;
    if !api.path().ends_with('/') {
        let p = format!("{}/", api.path());
        api.set_path(&p);
    }
    Ok(PassportConfig {
        passport_base: parse(&crate::account::passport_base_for(api_base))?,
        api_base: api,
        overseas: region.is_some_and(Region::overseas),
        device_id: store.device_id()?,
        timeout: std::time::Duration::from_secs(30),
    })
}

fn prompter(interactive: bool) -> Box<dyn Prompter> {
    if interactive {
        Box::new(TerminalPrompter)
    } else {
        Box::new(NoPrompter)
    }
}

fn credentials(outcome: LoginOutcome) -> Credentials {
    Credentials::pass_token(&outcome.user_id, &outcome.pass_token)
}

pub(crate) async fn qr(
    store: &AccountStore,
    api_base: &str,
    region: Option<Region>,
) -> Result<Credentials, String> {
    let cfg = config(store, api_base, region)?;
    let dir = store.login_dir()?;
    // Scanning needs no typing: a QR login works without a terminal too.
    let mut p = NoPrompter;
    passport::qr_login(&cfg, &mut p, &dir, true)
        .await
        .map(credentials)
        .map_err(|e| format!("login failed: {e}"))
}

pub(crate) async fn password(
    store: &AccountStore,
    api_base: &str,
    region: Option<Region>,
    interactive: bool,
    user: Option<String>,
    password: Option<String>,
) -> Result<Credentials, String> {
    let cfg = config(store, api_base, region)?;
    let dir = store.login_dir()?;
    let mut p = prompter(interactive);
    // Without a terminal, `NoPrompter` turns a question into an error naming what is missing
    // (`login` has already refused that case with the flags to use).
    let user = match user {
        Some(u) => u,
        None => p
            .ask_line("Xiaomi account (id, phone with country code, or e-mail): ")
            .await
            .map_err(|e| e.to_string())?,
    };
    let user = user.trim().to_string();
    if user.is_empty() {
        return Err("no account was given; type your Xiaomi account id, phone or e-mail".into());
    }
    let password = match password {
        Some(pw) => pw,
        None => p
            .ask_secret("Password: ")
            .await
            .map_err(|e| e.to_string())?,
    };
    passport::password_login(&cfg, &user, &password, p.as_mut(), &dir)
        .await
        .map(credentials)
        .map_err(|e| format!("login failed: {e}"))
}
