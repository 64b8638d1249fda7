//! `micloudfs login`, every interactive way in, driven as a user would: the password, captcha
//! and 2FA questions are answered at the prompt of a real pseudo-terminal (rexpect), the
//! answers read from the emulator's control API (`GET /_sim/passport`: the captcha text, the
//! codes "sent" by SMS or e-mail), the QR code "scanned" with `POST /_sim/qr/confirm`.
//! Non-interactive runs (stdin not a terminal) are checked to ask nothing.

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
    let sim = Sim::spawn(&[]);
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
    let sim = Sim::spawn(&["--account", "id=888,pass-token=V1:h,qr"]);
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
    let sim = Sim::spawn(&["--qr-timeout", "1500ms"]);
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
