//! `micloudfs login`, every interactive way in, driven as a user would: the password, captcha
//! and 2FA questions are answered at the prompt of a real pseudo-terminal (rexpect), the
//! answers read from the emulator's control API (`GET /_sim/passport`: the captcha text, the
//! codes "sent" by SMS or e-mail), the QR code "scanned" with `POST /_sim/qr/confirm`.
//! Non-interactive runs (stdin not a terminal) are checked to ask nothing.
//!
//! The tests named `today_*` run the emulator in its default mode, today's passport
//! (reference §10: captcha first, the form-only two-step check with `options`, Tips pages,
//! `20024`, passToken rotation, the QR login's new device); the others run it with
//! `--legacy-passport` (the reference's §2), so both stay covered.
//!
//! Why rexpect: the login reads the password with `rpassword` from the controlling terminal,
//! so only a real pseudo-terminal exercises it as a user would; rexpect gives one (and a
//! timeout on every expected prompt) without a Python helper.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sim, MICLOUDFS};
use rexpect::session::PtySession;

/// Generous: debug builds on a loaded 2-core machine.
const PROMPT_TIMEOUT_MS: u64 = 30_000;

fn login_cmd(sim: &Sim, cfg: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(MICLOUDFS);
    cmd.arg("login")
        .args(["--api-base", &sim.base_url])
        .arg("--config-dir")
        .arg(cfg)
        .args(extra)
        .env_remove("MICLOUDFS_PASS_TOKEN")
        .env_remove("MICLOUDFS_COOKIE");
    cmd
}

fn pty(cmd: Command) -> PtySession {
    rexpect::session::spawn_command(cmd, Some(PROMPT_TIMEOUT_MS)).expect("spawn in a pty")
}

fn stored(cfg: &Path, name: &str) -> Option<serde_json::Value> {
    let bytes = std::fs::read(cfg.join("accounts").join(format!("{name}.json"))).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The code of the newest captcha the emulator handed out.
fn captcha_answer(sim: &Sim, seen: &[String]) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = sim.get_json("/_sim/passport");
        if let Some(map) = v["captchas"].as_object() {
            if let Some((ick, code)) = map.iter().find(|(ick, _)| !seen.contains(ick)) {
                return (ick.clone(), code.as_str().unwrap().to_string());
            }
        }
        assert!(Instant::now() < deadline, "no new captcha in {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The newest code sent to `account` on `channel` (`phone` / `email`).
fn sent_code(sim: &Sim, account: &str, channel: &str) -> String {
    let v = sim.get_json("/_sim/passport");
    v["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["account"] == account && m["channel"] == channel)
        .and_then(|m| m["code"].as_str())
        .unwrap_or_else(|| panic!("no {channel} code for {account} in {v}"))
        .to_string()
}

fn expect_stored_login(cfg: &Path, user: &str) {
    let a = stored(cfg, user).unwrap_or_else(|| panic!("account {user} not stored"));
    assert_eq!(a["user_id"], user);
    assert!(a["pass_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(a.get("password").is_none(), "{a}");
    assert_eq!(
        mode(&cfg.join("accounts").join(format!("{user}.json"))),
        0o600
    );
}

#[test]
fn password_with_captcha_at_the_prompt_and_no_echo() {
    let sim = Sim::spawn(&[
        "--legacy-passport",
        "--account",
        "id=222,pass-token=V1:b,password=pw-222,captcha=always",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let mut p = pty(login_cmd(&sim, &cfg, &[]));
    p.exp_string("Xiaomi account").unwrap();
    p.send_line("222").unwrap();
    p.exp_string("Password").unwrap();
    p.send_line("pw-222").unwrap();
    // First a wrong answer: a new image, asked again.
    let before = p.exp_string("Captcha: ").unwrap();
    let image = before
        .split("The image is at ")
        .nth(1)
        .and_then(|s| s.split(": open it").next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no image path in {before:?}"));
    let png = std::fs::read(&image).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(mode(&image), 0o600);
    let (ick, _) = captcha_answer(&sim, &[]);
    p.send_line("wrong").unwrap();
    p.exp_string("not right").unwrap();
    p.exp_string("Captcha: ").unwrap();
    let (_, code) = captcha_answer(&sim, &[ick]);
    p.send_line(&code).unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(rest.contains("Logged in as"), "{rest}");
    assert!(
        !before.contains("pw-222") && !rest.contains("pw-222"),
        "the password was echoed"
    );
    expect_stored_login(&cfg, "222");
    let stats = sim.stats();
    assert!(
        stats["counters"]["login_password_ok"].as_u64().unwrap() >= 1,
        "{stats}"
    );
}

#[test]
fn two_step_by_phone_then_the_trusted_device_is_not_asked_again() {
    let sim = Sim::spawn(&[
        "--legacy-passport",
        "--account",
        "id=333,pass-token=V1:c,password=pw-333,2fa=phone",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let mut p = pty(login_cmd(&sim, &cfg, &["--user", "333"]));
    p.exp_string("Password").unwrap();
    p.send_line("pw-333").unwrap();
    p.exp_string("Code sent to").unwrap();
    p.exp_string(": ").unwrap();
    p.send_line(&sent_code(&sim, "333", "phone")).unwrap();
    p.exp_string("Trust this device?").unwrap();
    p.send_line("y").unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(rest.contains("Logged in as"), "{rest}");
    expect_stored_login(&cfg, "333");

    // Same config dir = same device id: trusted, so no code this time.
    let mut p = pty(login_cmd(&sim, &cfg, &["--user", "333"]));
    p.exp_string("Password").unwrap();
    p.send_line("pw-333").unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(
        rest.contains("Logged in as") && !rest.contains("Code sent"),
        "{rest}"
    );
}

#[test]
fn two_step_by_email_with_a_wrong_code_first() {
    let sim = Sim::spawn(&[
        "--legacy-passport",
        "--account",
        "id=444,pass-token=V1:d,password=pw-444,2fa=email",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let mut p = pty(login_cmd(&sim, &cfg, &["--user", "444"]));
    p.exp_string("Password").unwrap();
    p.send_line("pw-444").unwrap();
    p.exp_string("Code sent to").unwrap();
    p.exp_string(": ").unwrap();
    let code = sent_code(&sim, "444", "email");
    p.send_line("000000").unwrap();
    p.exp_string("Trust this device?").unwrap();
    p.send_line("n").unwrap();
    p.exp_string("did not accept").unwrap();
    p.exp_string("Code sent to").unwrap();
    p.send_line(&code).unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(rest.contains("Logged in as"), "{rest}");
    expect_stored_login(&cfg, "444");
}

#[test]
fn two_step_with_both_channels_asks_which() {
    let sim = Sim::spawn(&[
        "--legacy-passport",
        "--account",
        "id=555,pass-token=V1:e,password=pw-555,2fa=both",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let mut p = pty(login_cmd(&sim, &cfg, &["--user", "555"]));
    p.exp_string("Password").unwrap();
    p.send_line("pw-555").unwrap();
    p.exp_string("Send the code").unwrap();
    p.send_line("2").unwrap();
    p.exp_string("Code sent to").unwrap();
    p.exp_string(": ").unwrap();
    p.send_line(&sent_code(&sim, "555", "email")).unwrap();
    p.exp_string("Trust this device?").unwrap();
    p.send_line("").unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(rest.contains("Logged in as"), "{rest}");
    expect_stored_login(&cfg, "555");
}

#[test]
fn wrong_password_is_70016_and_stores_nothing() {
    let sim = Sim::spawn(&["--legacy-passport"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let mut p = pty(login_cmd(&sim, &cfg, &["--user", "1234567890"]));
    p.exp_string("Password").unwrap();
    p.send_line("not-the-password").unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(
        rest.contains("70016") && rest.contains("--qr") && !rest.contains("not-the-password"),
        "{rest}"
    );
    assert!(stored(&cfg, "1234567890").is_none());
}

#[test]
fn sms_quota_70022_says_what_to_do() {
    let sim = Sim::spawn(&[
        "--legacy-passport",
        "--account",
        "id=666,pass-token=V1:f,password=pw-666,2fa=phone,quota=0",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let mut p = pty(login_cmd(&sim, &cfg, &["--user", "666"]));
    p.exp_string("Password").unwrap();
    p.send_line("pw-666").unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(
        rest.contains("70022") && rest.contains("tomorrow"),
        "{rest}"
    );
    assert!(stored(&cfg, "666").is_none());
}

#[test]
fn password_from_stdin_works_and_a_second_factor_without_a_terminal_sends_nothing() {
    let sim = Sim::spawn(&[
        "--legacy-passport",
        "--account",
        "id=777,pass-token=V1:g,password=pw-777,2fa=phone",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let run = |user: &str, password: &str| {
        let mut child = login_cmd(&sim, &cfg, &["--user", user, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run("1234567890", "sim-password");
    assert!(out.status.success(), "{out:?}");
    expect_stored_login(&cfg, "1234567890");

    let out = run("777", "pw-777");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("no terminal") && err.contains("--qr"), "{err}");
    let outbox = sim.get_json("/_sim/passport")["outbox"].clone();
    assert_eq!(
        outbox.as_array().map(Vec::len),
        Some(0),
        "a code was sent: {outbox}"
    );
}

/// Runs `login --qr`, waits for the "scan" line, then confirms as account `account`.
fn qr_login(sim: &Sim, cfg: &Path, confirm_as: Option<&str>) -> (bool, String, String) {
    let mut child = login_cmd(sim, cfg, &["--qr"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut reader = BufReader::new(stderr);
    let mut said = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        said.push_str(&line);
        if line.contains("Scan it") {
            break;
        }
        line.clear();
    }
    assert!(said.contains("login-qr.png"), "{said}");
    if let Some(account) = confirm_as {
        sim.post_json(
            &format!("/_sim/qr/confirm?account={account}"),
            serde_json::json!({}),
        );
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        said + &rest,
    )
}

#[test]
fn qr_login_completes_when_the_code_is_scanned() {
    let sim = Sim::spawn(&[
        "--legacy-passport",
        "--account",
        "id=888,pass-token=V1:h,qr",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let (ok, stdout, stderr) = qr_login(&sim, &cfg, Some("888"));
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("Logged in as"), "{stdout}");
    let png = cfg.join("login/login-qr.png");
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
    assert_eq!(mode(&png), 0o600);
    expect_stored_login(&cfg, "888");
}

#[test]
fn qr_code_not_scanned_in_time_expires_with_advice() {
    let sim = Sim::spawn(&["--legacy-passport", "--qr-timeout", "1500ms"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let started = Instant::now();
    let (ok, _, stderr) = qr_login(&sim, &cfg, None);
    assert!(!ok);
    assert!(
        stderr.contains("expired") && stderr.contains("--qr"),
        "{stderr}"
    );
    // A guard against waiting forever, not a measurement (the ticket lives 1.5 s).
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(stored(&cfg, "1234567890").is_none());
}

// ---- Today's passport (the emulator's default mode) ----

/// Answers the captcha prompt that `before` ends with: checks the image file, reads the code
/// from the emulator's control API (never from the pixels), sends it.
fn answer_captcha(p: &mut PtySession, sim: &Sim, before: &str, seen: &mut Vec<String>) {
    let image = before
        .rsplit("The image is at ")
        .next()
        .and_then(|s| s.split(": open it").next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no image path in {before:?}"));
    let png = std::fs::read(&image).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(mode(&image), 0o600);
    let (ick, code) = captcha_answer(sim, seen);
    seen.push(ick);
    p.send_line(&code).unwrap();
}

/// Account, password, then the captcha asked first (nothing called wrong).
fn today_password_and_captcha(p: &mut PtySession, sim: &Sim, password: &str) {
    p.exp_string("Password").unwrap();
    p.send_line(password).unwrap();
    let before = p.exp_string("Captcha: ").unwrap();
    assert!(
        before.contains("wants a captcha before it checks the password")
            && !before.contains("not right")
            && !before.contains("70016"),
        "{before}"
    );
    answer_captcha(p, sim, &before, &mut Vec::new());
}

/// A password login of `user` at a terminal, captcha first, whose account offers one
/// two-step method (`method`: no question which): the code sent that way, `trust` ("y" or
/// "n") answered, and the login stored.
fn today_login_with_the_only_method(
    sim: &Sim,
    user: &str,
    password: &str,
    method: &str,
    trust: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let mut p = pty(login_cmd(sim, &cfg, &["--user", user]));
    today_password_and_captcha(&mut p, sim, password);
    let before = p.exp_string("Code sent to").unwrap();
    assert!(!before.contains("Send the code"), "{before}");
    p.exp_string(": ").unwrap();
    p.send_line(&sent_code(sim, user, method)).unwrap();
    p.exp_string("Trust this device?").unwrap();
    p.send_line(trust).unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(rest.contains("Logged in as"), "{rest}");
    expect_stored_login(&cfg, user);
}

#[test]
fn today_password_captcha_first_then_sms_from_options_through_a_tips_page() {
    let sim = Sim::spawn(&[
        "--account",
        "id=901,pass-token=V1:a,password=pw-901,2fa=phone",
    ]);
    // Only SMS is offered: no question which.
    today_login_with_the_only_method(&sim, "901", "pw-901", "phone", "y");
    let c = &sim.stats()["counters"];
    assert_eq!(c["login_captcha_required"], 1, "{c}");
    assert_eq!(
        c["login_tips_page"], 1,
        "the default Tips page was met: {c}"
    );
    assert_eq!(c["login_2fa_ok"], 1, "{c}");
}

#[test]
fn today_email_chosen_from_options_and_several_tips_pages() {
    let sim = Sim::spawn(&[
        "--account",
        "id=902,pass-token=V1:b,password=pw-902,2fa=email,tips=3",
    ]);
    today_login_with_the_only_method(&sim, "902", "pw-902", "email", "n");
    assert_eq!(sim.stats()["counters"]["login_tips_page"], 3);
}

#[test]
fn today_a_code_asked_too_fast_is_waited_for_or_explained() {
    let sim = Sim::spawn(&[
        "--account",
        "id=903,pass-token=V1:c,password=pw-903,2fa=phone,send-gap=3",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    // A first login sends a code, and is abandoned.
    let mut p = pty(login_cmd(&sim, &cfg, &["--user", "903"]));
    today_password_and_captcha(&mut p, &sim, "pw-903");
    p.exp_string("Code sent to").unwrap();
    drop(p);
    // At once again: 20024 with data.wt <= 3 s, waited out, then the code comes.
    let mut p = pty(login_cmd(&sim, &cfg, &["--user", "903"]));
    today_password_and_captcha(&mut p, &sim, "pw-903");
    p.exp_string("asks to wait").unwrap();
    p.exp_string("Code sent to").unwrap();
    p.exp_string(": ").unwrap();
    p.send_line(&sent_code(&sim, "903", "phone")).unwrap();
    p.exp_string("Trust this device?").unwrap();
    p.send_line("n").unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(rest.contains("Logged in as"), "{rest}");
    let c = &sim.stats()["counters"];
    assert_eq!(c["login_code_too_fast"], 1, "{c}");
    assert_eq!(c["login_code_sent"], 2, "{c}");

    // A wait longer than the client's bound is reported with the time to retry.
    sim.change_account("id=903,send-gap=600");
    let mut p = pty(login_cmd(&sim, &cfg, &["--user", "903"]));
    today_password_and_captcha(&mut p, &sim, "pw-903");
    let rest = p.exp_eof().unwrap();
    assert!(
        rest.contains("20024") && rest.contains("s before it sends another code"),
        "{rest}"
    );
}

#[test]
fn today_a_qr_login_from_a_new_device_is_told_what_to_do() {
    let sim = Sim::spawn(&["--account", "id=904,pass-token=V1:d"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let (ok, stdout, stderr) = qr_login(&sim, &cfg, Some("904"));
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("new device")
            && stderr.contains("identity check")
            && stderr.contains("https://i.mi.com")
            && stderr.contains("micloudfs login"),
        "{stderr}"
    );
    assert!(stored(&cfg, "904").is_none());
    // The check passed in a browser: the next QR login from this device works.
    sim.post_json("/_sim/identity/check?account=904", serde_json::json!({}));
    let (ok, stdout, stderr) = qr_login(&sim, &cfg, Some("904"));
    assert!(ok, "{stdout}\n{stderr}");
    expect_stored_login(&cfg, "904");
}

#[test]
fn today_regions_other_than_mainland_china_are_told_in_one_line() {
    let sim = Sim::spawn(&[
        "--account",
        "id=905,pass-token=V1:e,gallery=empty",
        "--account",
        "id=906,pass-token=V1:f,gallery=refused",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let out = common::run_ok(&mut login_cmd(
        &sim,
        &cfg,
        &["--user-id", "905", "--pass-token", "V1:e", "--region", "eu"],
    ));
    let said = common::stdout_of(&out);
    let lines: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("mainland China"))
        .collect();
    assert_eq!(lines.len(), 1, "{said}");
    assert!(
        lines[0].contains("2023") && lines[0].contains("eu"),
        "{said}"
    );
    let out = common::run_ok(&mut common::cli(
        &cfg,
        &["whoami", "--api-base", &sim.base_url],
    ));
    assert!(common::stdout_of(&out).contains("mainland China"));
    let out = common::run_fails(&mut login_cmd(
        &sim,
        &cfg,
        &[
            "--user-id",
            "906",
            "--pass-token",
            "V1:f",
            "--region",
            "us",
            "--account",
            "u",
        ],
    ));
    let err = common::stderr_of(&out);
    assert!(
        err.contains("refused") && err.contains("mainland China"),
        "{err}"
    );
    // Mainland China (the default): no such line.
    let out = common::run_ok(&mut login_cmd(
        &sim,
        &cfg,
        &[
            "--user-id",
            "1234567890",
            "--pass-token",
            "V1:sim-pass-token",
            "--account",
            "cn",
        ],
    ));
    assert!(!common::stdout_of(&out).contains("mainland China"));
}

#[test]
fn today_a_rotated_pass_token_is_stored_and_used_by_the_next_mount() {
    let sim = Sim::spawn(&["--items", "8"]);
    let m = common::Mount::tempdirs();
    common::run_ok(&mut common::login_command(
        &sim,
        "V1:sim-pass-token",
        &m.config,
    ));
    let first = common::stored_account(&m.config, "1234567890")["pass_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(
        first, "V1:sim-pass-token",
        "the login kept the rotated token"
    );
    assert_eq!(
        common::mode_of(&m.config.join("accounts/1234567890.json")),
        0o600
    );
    // The token typed at the login dies: only the stored, rotated one can work now.
    sim.change_account("id=1234567890,pass-token=V1:replaced");
    m.mount(&[]);
    let items = common::visible(&sim.manifest());
    let item = &items[0];
    let found: Vec<PathBuf> = common::all_paths(&m.mnt)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == item.file_name.as_str()))
        .collect();
    assert!(!found.is_empty(), "{} not listed", item.file_name);
    assert_eq!(common::sha1_file(&found[0]), item.sha1);
    m.unmount();
    let c = &sim.stats()["counters"];
    assert!(c["pass_token_rotated"].as_u64().unwrap() >= 2, "{c}");
    let now = common::stored_account(&m.config, "1234567890")["pass_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(now, first, "the mount stored the token handed back to it");
}

#[test]
fn today_a_new_user_logs_in_at_a_terminal_and_copies_a_file() {
    let sim = Sim::spawn(&[
        "--items",
        "8",
        "--account",
        "id=907,pass-token=V1:g,password=pw-907,2fa=both",
    ]);
    let m = common::Mount::tempdirs();
    let mut p = pty(login_cmd(&sim, &m.config, &[]));
    p.exp_string("Xiaomi account").unwrap();
    p.send_line("907").unwrap();
    today_password_and_captcha(&mut p, &sim, "pw-907");
    p.exp_string("Send the code").unwrap();
    p.send_line("1").unwrap();
    p.exp_string("Code sent to").unwrap();
    p.exp_string(": ").unwrap();
    p.send_line(&sent_code(&sim, "907", "phone")).unwrap();
    p.exp_string("Trust this device?").unwrap();
    p.send_line("").unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(
        rest.contains("Logged in as") && !rest.contains("pw-907"),
        "{rest}"
    );
    m.mount(&[]);
    let item = &common::visible(&sim.manifest())[0];
    let copy = m.dir.path().join("copy");
    let found = common::all_paths(&m.mnt)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == item.file_name.as_str()))
        .unwrap_or_else(|| panic!("{} not listed", item.file_name));
    common::run_ok(Command::new("cp").arg(&found).arg(&copy));
    let out = common::run_ok(Command::new("sha1sum").arg(&copy));
    assert!(
        common::stdout_of(&out).starts_with(&item.sha1),
        "{}",
        common::stdout_of(&out)
    );
}
