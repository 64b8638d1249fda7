//! The account commands end to end (no mount): `login` by passToken and by pasted cookie,
//! `whoami`, `accounts`, `logout`, against a real `micloud-sim` process; what is stored, with
//! which modes, and what every refusal says.

mod common;

use std::time::{Duration, Instant};

use common::*;

const USER: &str = "1234567890";
const PASS: &str = "V1:sim-pass-token";

/// `whoami`'s `key: value` lines.
fn whoami_fields(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn a_pass_token_login_is_stored_private_and_whoami_tells_the_truth() {
    let sim = Sim::spawn(&["--seed", "21", "--items", "30"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");

    let out = run_ok(login_command(&sim, PASS, &config).stdin(std::process::Stdio::null()));
    let file = config.join("accounts").join(format!("{USER}.json"));
    assert_eq!(
        stdout_of(&out).trim(),
        format!(
            "Logged in as micloud-sim (user id {USER}), region custom. Stored as account \
             \"{USER}\" in {} (mode 0600).",
            file.display()
        )
    );
    assert_eq!(mode_of(&file), 0o600);
    assert_eq!(mode_of(&config.join("accounts")), 0o700);
    assert_eq!(mode_of(&config), 0o700);
    let stored = stored_account(&config, USER);
    assert_eq!(stored["user_id"], USER);
    // Today's passport hands back a new passToken with the first ticket: that one is stored,
    // and the emulator knows it as live.
    let kept = stored["pass_token"].as_str().unwrap();
    assert!(kept.starts_with("V1:") && kept != PASS, "{stored}");
    let accounts = sim.get_json("/_sim/accounts");
    let me = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == USER)
        .unwrap();
    assert!(
        me["livePassTokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == kept),
        "{me}"
    );
    assert_eq!(stored["api_base"], sim.base_url.as_str());
    assert!(stored.get("service_token").is_none(), "{stored}");

    let out = run_ok(&mut cli(&config, &["whoami"]));
    let f = whoami_fields(&stdout_of(&out));
    assert_eq!(f["account"], USER);
    assert_eq!(f["user id"], USER);
    assert_eq!(f["nickname"], "micloud-sim");
    assert_eq!(f["region"], format!("custom ({})", sim.base_url));
    assert!(f["session"].starts_with("passToken"), "{f:?}");
    // The truth: every live item (the private album's included) and every album.
    let items = sim.manifest();
    let bytes: u64 = items.iter().map(|i| i.size).sum();
    let albums = sim.get_json("/_sim/albums").as_array().unwrap().len();
    let want_bytes = bytesize::ByteSize::b(bytes).display().iec().to_string();
    assert!(
        f["gallery"].starts_with(&format!("{want_bytes} used by the gallery")),
        "gallery line {:?}, want {want_bytes} ({bytes} bytes)",
        f["gallery"]
    );
    assert_eq!(f["items"], format!("{} in {albums} albums", items.len()));
}

#[test]
fn a_dead_pass_token_stores_nothing_and_keeps_the_previous_login() {
    let sim = Sim::spawn(&["--items", "10", "--account", "id=333,revoked"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    run_ok(login_command(&sim, PASS, &config).args(["--account", "home"]));
    let home = config.join("accounts").join("home.json");
    let before = std::fs::read(&home).unwrap();

    // A mistyped passToken over an existing login, under a new name, and a revoked account.
    let attempts: [(&str, &str, &str); 3] = [
        (USER, "V1:wrong", "home"),
        (USER, "V1:wrong", "other"),
        ("333", "V1:sim-pass-token-333", "revoked"),
    ];
    for (user, token, name) in attempts {
        let out = run_fails(&mut cli(
            &config,
            &[
                "login",
                "--user-id",
                user,
                "--pass-token",
                token,
                "--account",
                name,
                "--api-base",
                &sim.base_url,
            ],
        ));
        let err = stderr_of(&out);
        assert!(
            err.starts_with("micloudfs: login failed: ")
                && err.contains("refused the stored passToken")
                && err.contains("micloudfs login"),
            "{name}: {err}"
        );
        assert!(stdout_of(&out).is_empty(), "{name}: {}", stdout_of(&out));
        assert!(!err.contains(token), "the error shows the token: {err}");
    }
    assert_eq!(std::fs::read(&home).unwrap(), before, "home.json changed");
    let mut names: Vec<String> = std::fs::read_dir(config.join("accounts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["home.json"], "a failed login left a file");
    run_ok(&mut cli(&config, &["whoami", "--account", "home"]));
}

#[test]
fn a_pasted_cookie_logs_in_and_is_kept_alive_by_renewal() {
    let sim = Sim::spawn(&["--items", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let pasted = sim.fresh_service_token(USER, PASS);
    let cookie = format!("uLocale=en_US; userId={USER}; serviceToken=\"{pasted}\"");

    let out = run_ok(&mut cookie_login_command(&sim, &cookie, &config, &[]));
    assert!(
        stdout_of(&out).starts_with(&format!("Logged in as micloud-sim (user id {USER})")),
        "{}",
        stdout_of(&out)
    );
    let file = config.join("accounts").join(format!("{USER}.json"));
    let token_of = || {
        let a = stored_account(&config, USER);
        assert!(a.get("pass_token").is_none(), "{a}");
        a["service_token"]
            .as_str()
            .expect("service_token")
            .to_string()
    };
    let mut seen = vec![pasted.clone(), token_of()];
    assert_ne!(
        seen[1], pasted,
        "login stored the pasted token, not a renewed one"
    );
    assert_eq!(mode_of(&file), 0o600);
    assert_eq!(sim.stat("auto_renewals"), 1);

    // Each whoami renews the cookie and keeps the new token; the file stays private. Every
    // token but the stored one is ended first (through the control API, as if its lifetime
    // had run out): only renewal keeps the account alive.
    for round in 1..=3u64 {
        for old in &seen[..seen.len() - 1] {
            sim.end_token(old);
        }
        let out = run_ok(&mut cli(&config, &["whoami"]));
        let f = whoami_fields(&stdout_of(&out));
        assert_eq!(f["user id"], USER);
        assert!(f["session"].starts_with("pasted i.mi.com cookie"), "{f:?}");
        let now = token_of();
        assert!(
            !seen.contains(&now),
            "round {round}: the stored token did not change"
        );
        seen.push(now);
        assert_eq!(mode_of(&file), 0o600);
        assert_eq!(sim.stat("auto_renewals"), 1 + round);
    }
    // The pasted token is dead; the stored one still works.
    run_ok(&mut cli(&config, &["whoami"]));
    let out = run_fails(&mut cookie_login_command(
        &sim,
        &format!("userId={USER}; serviceToken={pasted}"),
        &dir.path().join("other"),
        &[],
    ));
    assert!(
        stderr_of(&out).contains("cookie has expired"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn an_expired_pasted_cookie_is_refused_by_login_and_whoami() {
    let sim = Sim::spawn(&["--items", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let expired_msg = "the pasted i.mi.com cookie has expired";

    // Killed by the service (a web log-out does that).
    let token = sim.fresh_service_token(USER, PASS);
    assert!(sim.expire_sessions(USER) >= 1);
    let out = run_fails(&mut cookie_login_command(
        &sim,
        &format!("userId={USER}; serviceToken={token}"),
        &config,
        &[],
    ));
    let err = stderr_of(&out);
    assert!(
        err.starts_with("micloudfs: login failed: ") && err.contains(expired_msg),
        "{err}"
    );
    assert!(err.contains("micloudfs login"), "{err}");
    assert!(
        !config.join("accounts").exists(),
        "a failed login stored something"
    );

    // A stored cookie left unused past its lifetime (its session ended through the control
    // API, as the lifetime running out would).
    let token = sim.fresh_service_token(USER, PASS);
    run_ok(&mut cookie_login_command(
        &sim,
        &format!("userId={USER}; serviceToken={token}"),
        &config,
        &[],
    ));
    assert!(sim.expire_sessions(USER) >= 1);
    let out = run_fails(&mut cli(&config, &["whoami"]));
    let err = stderr_of(&out);
    assert!(
        err.contains(expired_msg) && err.contains("micloudfs login"),
        "{err}"
    );
    // Nothing of the token is in the message.
    let stored = stored_account(&config, USER)["service_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!err.contains(&stored[..40]), "{err}");
}

#[test]
fn e2ee_and_second_validation_are_told_apart() {
    let sim = Sim::spawn(&[
        "--items",
        "10",
        "--account",
        "id=222,pass-token=V1:b,e2ee",
        "--account",
        "id=444,pass-token=V1:d,second-validation",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let login = |user: &str, token: &str| {
        let out = run_fails(&mut cli(
            &config,
            &[
                "login",
                "--user-id",
                user,
                "--pass-token",
                token,
                "--api-base",
                &sim.base_url,
            ],
        ));
        stderr_of(&out)
    };

    let err = login("222", "V1:b");
    assert!(err.starts_with("micloudfs: login failed: "), "{err}");
    for part in [
        "Advanced Data Protection",
        "Settings > Xiaomi Account > Xiaomi Cloud > Advanced data protection",
        "turn it off",
        "micloudfs login",
    ] {
        assert!(err.contains(part), "missing {part:?}: {err}");
    }
    assert!(!err.contains("second validation"), "{err}");

    let err = login("444", "V1:d");
    for part in [
        "second validation",
        "https://i.mi.com/gallery/h5",
        "trust this device",
        "micloudfs login",
    ] {
        assert!(err.contains(part), "missing {part:?}: {err}");
    }
    assert!(!err.contains("Advanced Data Protection"), "{err}");
    assert!(
        !config.join("accounts").exists(),
        "a failed login stored something"
    );
}

#[test]
fn several_accounts_live_side_by_side() {
    let sim = Sim::spawn(&["--items", "10", "--account", "id=222,pass-token=V1:b"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    run_ok(login_command(&sim, PASS, &config).args(["--account", "a"]));
    let out = run_ok(&mut cli(
        &config,
        &[
            "login",
            "--user-id",
            "222",
            "--pass-token",
            "V1:b",
            "--account",
            "b",
            "--region",
            "eu",
            "--api-base",
            &sim.base_url,
        ],
    ));
    assert!(
        stdout_of(&out).contains("region eu."),
        "{}",
        stdout_of(&out)
    );
    let b = stored_account(&config, "b");
    assert_eq!(b["region"], "eu");
    assert_eq!(b["user_id"], "222");
    assert_eq!(b["api_base"], sim.base_url.as_str());
    assert_eq!(stored_account(&config, "a")["user_id"], USER);
    // Logging in again as 222, naming neither account nor region: the same account name,
    // and its region and host are remembered.
    let out = run_ok(&mut cli(
        &config,
        &["login", "--user-id", "222", "--pass-token", "V1:b"],
    ));
    assert!(
        stdout_of(&out).contains("region eu."),
        "{}",
        stdout_of(&out)
    );
    let again = stored_account(&config, "b");
    assert_eq!(
        (again["region"].as_str(), again["api_base"].as_str()),
        (Some("eu"), Some(sim.base_url.as_str()))
    );
    assert!(!config.join("accounts/222.json").exists());

    // Which one? whoami will not guess.
    let out = run_fails(&mut cli(&config, &["whoami"]));
    let err = stderr_of(&out);
    assert!(
        err.contains("a, b") && err.contains("--account"),
        "whoami without --account: {err}"
    );
    let f = whoami_fields(&stdout_of(&run_ok(&mut cli(
        &config,
        &["whoami", "--account", "b"],
    ))));
    assert_eq!((f["account"].as_str(), f["user id"].as_str()), ("b", "222"));
    assert!(f["region"].starts_with("eu "), "{f:?}");
    let f = whoami_fields(&stdout_of(&run_ok(&mut cli(
        &config,
        &["whoami", "--account", "a"],
    ))));
    assert_eq!(f["user id"], USER);

    let listed = stdout_of(&run_ok(&mut cli(&config, &["accounts"])));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with(&format!("a\tuser id {USER}\tregion custom")),
        "{listed}"
    );
    assert!(
        lines[1].starts_with("b\tuser id 222\tregion eu"),
        "{listed}"
    );

    // logout removes only the one named; the other becomes the default.
    let out = run_ok(&mut cli(&config, &["logout", "--account", "a"]));
    assert!(
        stdout_of(&out).contains("Logged out \"a\""),
        "{}",
        stdout_of(&out)
    );
    assert!(!config.join("accounts/a.json").exists());
    assert_eq!(mode_of(&config.join("accounts/b.json")), 0o600);
    let f = whoami_fields(&stdout_of(&run_ok(&mut cli(&config, &["whoami"]))));
    assert_eq!(f["account"], "b");

    // A name that would leave the accounts folder is refused, for every command.
    for args in [
        vec![
            "login",
            "--user-id",
            USER,
            "--pass-token",
            PASS,
            "--api-base",
            sim.base_url.as_str(),
        ],
        vec!["whoami"],
        vec!["logout"],
    ] {
        let mut args = args.clone();
        args.extend(["--account", "../x"]);
        let out = run_fails(&mut cli(&config, &args));
        assert!(
            stderr_of(&out).contains("\"../x\" is not an account name"),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
    assert!(!config.join("x.json").exists() && !dir.path().join("x.json").exists());
    assert_eq!(
        all_paths(&config.join("accounts")).len(),
        2,
        "accounts/ and b.json"
    );
}

#[test]
fn login_without_a_way_and_without_a_terminal_fails_fast_and_names_the_ways() {
    let sim = Sim::spawn(&["--items", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let start = Instant::now();
    let out = run_fails(&mut cli(&config, &["login", "--api-base", &sim.base_url]));
    // A guard, not a measurement: a login that waited for an answer would hang here; 30 s
    // leaves a loaded machine room to start the process.
    let took = start.elapsed();
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let err = stderr_of(&out);
    for flag in ["--pass-token", "--cookie", "--qr", "--password-stdin"] {
        assert!(err.contains(flag), "missing {flag}: {err}");
    }
    assert!(stdout_of(&out).is_empty(), "prompted: {}", stdout_of(&out));
    assert!(!config.join("accounts").exists());
}
