//! `micloudfs login`: every way in ends with the same three checks and one stored file.
//!
//! 1. The way in yields credentials: `--user-id` + `--pass-token` as given; `--cookie` parsed
//!    (a pasted account.xiaomi.com cookie with a `passToken` counts as a passToken login);
//!    password and QR logins through [`crate::passport`], which yield a passToken.
//! 2. They are proven: a serviceToken is minted (or the pasted cookie renewed), the first album
//!    page is read (which reveals second validation and end-to-end encryption), and the profile
//!    gives the nickname shown in the confirmation.
//! 3. Only then is the account stored (mode 0600): `userId` + `passToken` or the cookie, its
//!    region and host. A failed login stores nothing and leaves the previous login in place.
//!
//! Questions are asked only when stdin is a terminal and `--no-input` is not given; otherwise
//! whatever is missing is an error that says which flag supplies it.

use std::io::{BufRead, IsTerminal};

use super::LoginArgs;
use crate::account::{self, Account, AccountError, AccountStore, Region};
use crate::cloud::{ClientConfig, CloudError, Credentials, GalleryApi, HttpGalleryClient, Secret};

/// How the user chose to log in.
enum Way {
    PassToken { user_id: String, pass_token: String },
    Cookie(String),
    Qr,
    Password { user: Option<String>, stdin: bool },
}

pub(crate) fn login(args: LoginArgs) -> Result<(), String> {
    let config_dir = account::config_dir(args.config.config_dir.clone())?;
    let store = AccountStore::open(&config_dir)?;
    if let Some(name) = &args.account {
        account::check_name(name)?;
    }
    let previous = previous_login(&store, &args)?;
    let (region, api_base) = match (args.region, &args.api_base) {
        (region, Some(base)) => (region.or(Region::of_api_base(base)), base.clone()),
        (Some(r), None) => (Some(r), r.api_base().to_string()),
        (None, None) => match &previous {
            Some(p) => (p.region, p.api_base.clone()),
            None => (Some(Region::Cn), Region::Cn.api_base().to_string()),
        },
    };
    let interactive = !args.no_input && !args.password_stdin && std::io::stdin().is_terminal();
    let way = way(&args)?;
    let by_qr = matches!(way, Way::Qr);
    if let Way::Password { user, stdin: false } = &way {
        if !interactive {
            return Err(cannot_ask(user.is_some()));
        }
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    let credentials = match way {
        Way::PassToken {
            user_id,
            pass_token,
        } => Credentials::pass_token(&check_user_id(&user_id)?, &check_token(&pass_token)?),
        Way::Cookie(text) => parse_cookie(&text)?,
        Way::Qr => rt.block_on(super::interactive::qr(&store, &api_base, region))?,
        Way::Password { user, stdin } => {
            let password = if stdin {
                Some(read_password_line()?)
            } else {
                None
            };
            rt.block_on(super::interactive::password(
                &store,
                &api_base,
                region,
                interactive,
                user,
                password,
            ))?
        }
    };

    let client = HttpGalleryClient::new(ClientConfig::new(&api_base, credentials.clone()))
        .map_err(|e| e.to_string())?;
    let checked = rt.block_on(async {
        client.check_credentials().await?;
        client.check_gallery().await?;
        let info = client.account_info().await.ok();
        // §10.1: an account of another region finds an empty gallery; say why at once.
        let empty = match account::no_gallery_note(region) {
            Some(_) => client.list_albums().await.is_ok_and(|a| a.is_empty()),
            None => false,
        };
        Ok::<_, crate::cloud::CloudError>((client.current_credentials().await, info, empty))
    });
    let (credentials, info, empty) = checked.map_err(|e| login_failure(&e, by_qr, region))?;

    let name = match args.account {
        Some(name) => name,
        None => store.name_for(&credentials.user_id)?,
    };
    let (pass_token, service_token) = match &credentials.secret {
        Secret::PassToken(t) => (Some(t.clone()), None),
        Secret::ServiceToken(t) => (None, Some(t.clone())),
    };
    let stored = Account {
        name: name.clone(),
        user_id: credentials.user_id.clone(),
        region,
        api_base,
        pass_token,
        service_token,
    };
    let path = store.save(&stored)?;
    let who = match info.map(|i| i.nickname).filter(|n| !n.is_empty()) {
        Some(nick) => format!("{nick} (user id {})", stored.user_id),
        None => format!("user id {}", stored.user_id),
    };
    println!(
        "Logged in as {who}, region {}. Stored as account {name:?} in {} (mode 0600).",
        stored.region_label(),
        path.display()
    );
    if let (true, Some(note)) = (empty, account::no_gallery_note(region)) {
        println!("The gallery is empty: {note}.");
    }
    Ok(())
}

/// Why the proof of a new login failed, in one message: a QR login's new device (§10.4) and
/// a gallery refused to another region (§10.1) get their own advice.
fn login_failure(e: &CloudError, by_qr: bool, region: Option<Region>) -> String {
    match e {
        CloudError::Unauthorized if by_qr => "login failed: the QR login worked, but Xiaomi \
             registered it as a new device and keeps the gallery closed (HTTP 401) until that \
             device passes an identity check. Open https://i.mi.com/gallery/h5 in a browser \
             logged in to this account, enter the code Xiaomi sends, then run `micloudfs \
             login --qr` again; or log in with the password (`micloudfs login`), whose \
             two-step check is done right here"
            .to_string(),
        CloudError::Api { .. } | CloudError::Unauthorized => match account::no_gallery_note(region)
        {
            Some(note) => format!("login failed: the gallery was refused: {note}"),
            None => format!("login failed: {e}"),
        },
        _ => format!("login failed: {e}"),
    }
}

/// The stored login this one renews, whose region is remembered when none is given: the
/// `--account` named, else the stored account of the `--user-id` given, else the only one.
fn previous_login(store: &AccountStore, args: &LoginArgs) -> Result<Option<Account>, AccountError> {
    if let Some(name) = &args.account {
        return store.load(name);
    }
    let names = store.names()?;
    if let Some(user_id) = args.user_id.as_deref().map(str::trim) {
        for name in &names {
            if let Some(a) = store.load(name)?.filter(|a| a.user_id == user_id) {
                return Ok(Some(a));
            }
        }
        return Ok(None);
    }
    match names.as_slice() {
        [only] => store.load(only),
        _ => Ok(None),
    }
}

fn way(args: &LoginArgs) -> Result<Way, String> {
    if let (Some(user_id), Some(pass_token)) = (&args.user_id, &args.pass_token) {
        return Ok(Way::PassToken {
            user_id: user_id.clone(),
            pass_token: pass_token.clone(),
        });
    }
    if let Some(cookie) = &args.cookie {
        return Ok(Way::Cookie(cookie.clone()));
    }
    if args.qr {
        return Ok(Way::Qr);
    }
    Ok(Way::Password {
        user: args.user.clone(),
        stdin: args.password_stdin,
    })
}

/// The password login was chosen (no way flag) but nothing can be asked: which flags to use.
fn cannot_ask(has_user: bool) -> String {
    let why = "nothing can be asked here (standard input is not a terminal, or --no-input)";
    if has_user {
        format!(
            "login failed: {why}, so the password cannot be typed in: pipe it in with \
             --password-stdin, or log in with --user-id ID --pass-token TOKEN, \
             --cookie 'userId=..; serviceToken=..' or --qr"
        )
    } else {
        format!(
            "login failed: no way to log in was given and {why}. Use one of: \
             --user-id ID --pass-token TOKEN, --cookie 'userId=..; serviceToken=..', --qr, \
             or --user ID --password-stdin with the password on standard input"
        )
    }
}

fn check_user_id(raw: &str) -> Result<String, String> {
    let user_id = raw.trim().to_string();
    if user_id.is_empty() || !user_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "--user-id {raw:?} is not an account id: it is the number in the userId cookie of \
             account.xiaomi.com"
        ));
    }
    Ok(user_id)
}

fn check_token(raw: &str) -> Result<String, String> {
    let token = raw.trim().trim_matches('"').to_string();
    if token.is_empty() {
        return Err(
            "--pass-token is empty: copy the passToken cookie of account.xiaomi.com".into(),
        );
    }
    if token
        .chars()
        .any(|c| c.is_control() || c == ';' || c == ' ')
    {
        return Err(
            "--pass-token holds spaces, ';' or control characters: copy only the value of the \
             passToken cookie of account.xiaomi.com"
                .into(),
        );
    }
    Ok(token)
}

/// `userId=...; serviceToken=...` (any other cookies are ignored; values may be quoted). A
/// pasted account.xiaomi.com cookie with a `passToken` is a passToken login.
pub(crate) fn parse_cookie(text: &str) -> Result<Credentials, String> {
    let text = text.trim().trim_start_matches("Cookie:").trim();
    let mut user_id = None;
    let mut service_token = None;
    let mut pass_token = None;
    for pair in text.split(';') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim() {
            "userId" => user_id = Some(v),
            "serviceToken" => service_token = Some(v),
            "passToken" => pass_token = Some(v),
            _ => {}
        }
    }
    let user_id = user_id.filter(|u| !u.is_empty()).ok_or(
        "the cookie has no userId=...: copy the whole Cookie header of a request to i.mi.com \
         (browser developer tools, Network tab)",
    )?;
    let user_id = check_user_id(&user_id).map_err(|_| {
        "the cookie's userId is not a number: copy the whole Cookie header of a request to \
         i.mi.com"
            .to_string()
    })?;
    if let Some(pt) = pass_token.filter(|p| !p.is_empty()) {
        return Ok(Credentials::pass_token(&user_id, &check_token(&pt)?));
    }
    let token = service_token.filter(|t| !t.is_empty()).ok_or(
        "the cookie has no serviceToken=...: copy the Cookie header of a request to i.mi.com \
         made after logging in (or use --user-id and --pass-token)",
    )?;
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(
            "the cookie's serviceToken holds spaces or control characters; copy it again".into(),
        );
    }
    Ok(Credentials::cookie(&user_id, &token))
}

/// The first line of stdin, for `--password-stdin`.
fn read_password_line() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err(
            "--password-stdin read an empty line: pipe the password in, e.g. \
             `micloudfs login --user ID --password-stdin < file`"
                .into(),
        );
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_parsed_like_a_browser_pastes_them() {
        let c =
            parse_cookie("Cookie: uLocale=en; userId=42; serviceToken=\"a/b+c=\"; x=1").unwrap();
        assert_eq!(c, Credentials::cookie("42", "a/b+c="));
        let c = parse_cookie("userId=42; passToken=V1:abc; deviceId=wb_1").unwrap();
        assert_eq!(c, Credentials::pass_token("42", "V1:abc"));
        assert!(parse_cookie("serviceToken=x")
            .unwrap_err()
            .contains("userId"));
        assert!(parse_cookie("userId=42")
            .unwrap_err()
            .contains("serviceToken"));
        assert!(parse_cookie("userId=abc; serviceToken=x")
            .unwrap_err()
            .contains("not a number"));
    }

    #[test]
    fn tokens_are_checked() {
        assert_eq!(check_token(" \"V1:x\" ").unwrap(), "V1:x");
        assert!(check_token("").is_err());
        assert!(check_token("a; b").is_err());
        assert!(check_user_id("12a").is_err());
    }
}
