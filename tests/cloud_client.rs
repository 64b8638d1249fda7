//! The cloud client (`HttpGalleryClient`) against the emulator, in process: listing with
//! paging, downloads, deleted items, a dead passToken, single-flight token refresh, and the
//! passToken never leaving for a foreign host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sha1::{Digest, Sha1};

use micloud_sim::{self as sim, SimConfig};
use micloudfs::cloud::{ClientConfig, CloudError, Credentials, GalleryApi, HttpGalleryClient};
use micloudfs::model::{AlbumId, ItemId};

fn creds(pass_token: &str) -> Credentials {
    Credentials::pass_token(sim::DEFAULT_USER_ID, pass_token)
}

async fn start(config: SimConfig) -> sim::SimHandle {
    sim::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .expect("start the emulator")
}

fn client(base: &str, pass_token: &str) -> HttpGalleryClient {
    HttpGalleryClient::new(ClientConfig::new(base, creds(pass_token))).expect("client")
}

async fn manifest(base: &str) -> Vec<serde_json::Value> {
    let body = reqwest::get(format!("{base}/_sim/items"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// End sessions through the emulator's control API: every one of `account`, or only `token`
/// (`POST /_sim/expire-sessions`); how many died. Deterministic, where waiting for a short
/// token lifetime to run out would race the machine's load.
async fn end_sessions(base: &str, account: Option<&str>, token: Option<&str>) -> u64 {
    let q: Vec<(&str, &str)> = [("account", account), ("token", token)]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    let resp = reqwest::Client::new()
        .post(format!("{base}/_sim/expire-sessions"))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let v: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    v["expired"].as_u64().unwrap()
}

fn id_of(v: &serde_json::Value) -> u64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap(),
        n => n.as_u64().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_every_album_and_every_item_across_pages() {
    let sim = start(SimConfig {
        items: 260,
        albums: 2,
        ..SimConfig::default()
    })
    .await;
    let c = client(&sim.base_url(), sim::DEFAULT_PASS_TOKEN);
    let albums = c.list_albums().await.unwrap();
    for sys in [AlbumId::CAMERA, AlbumId::SCREENSHOTS, AlbumId::PRIVATE] {
        let a = albums
            .iter()
            .find(|a| a.id == sys)
            .expect("system album listed");
        assert_eq!(a.name, None, "system albums have no name on the wire");
    }
    let mut listed = Vec::new();
    for a in &albums {
        listed.extend(
            c.list_album_items(a.id)
                .await
                .unwrap()
                .into_iter()
                .map(|i| (i.id.0, i.sha1.to_hex(), i.size)),
        );
    }
    let mut want: Vec<(u64, String, u64)> = manifest(&sim.base_url())
        .await
        .iter()
        .map(|i| {
            (
                id_of(&i["id"]),
                i["sha1"].as_str().unwrap().to_string(),
                i["size"].as_u64().unwrap(),
            )
        })
        .collect();
    listed.sort();
    want.sort();
    assert_eq!(listed, want);
    assert!(
        want.iter().any(|(id, ..)| *id > (1u64 << 53)),
        "ids beyond 2^53 are exercised"
    );
    // More than one page was needed for the biggest album (100 items a page).
    let stats = sim.stats();
    let pages = stats
        .requests
        .iter()
        .filter(|(p, _)| p.contains("galleries"))
        .map(|(_, n)| n)
        .sum::<u64>();
    assert!(
        pages > albums.len() as u64,
        "no album needed a second page: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_the_listed_bytes() {
    let sim = start(SimConfig {
        items: 30,
        ..SimConfig::default()
    })
    .await;
    let c = client(&sim.base_url(), sim::DEFAULT_PASS_TOKEN);
    let items = c.list_album_items(AlbumId::CAMERA).await.unwrap();
    assert!(!items.is_empty());
    for item in items.iter().take(5) {
        let dl = c.open_download(item.id).await.unwrap();
        assert_eq!(dl.content_length, Some(item.size));
        let mut body = dl.body;
        let mut h = Sha1::new();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            n += chunk.len() as u64;
            h.update(&chunk);
        }
        assert_eq!(n, item.size);
        assert_eq!(hex::encode(h.finalize()), item.sha1.to_hex());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_item_is_reported_as_deleted() {
    let sim = start(SimConfig {
        items: 30,
        ..SimConfig::default()
    })
    .await;
    let c = client(&sim.base_url(), sim::DEFAULT_PASS_TOKEN);
    match c.open_download(ItemId(31_000_000_000_000_001)).await {
        Err(CloudError::ItemDeleted(id)) => assert_eq!(id, "31000000000000001"),
        Err(other) => panic!("expected ItemDeleted, got {other}"),
        Ok(_) => panic!("a download of an unknown id succeeded"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_pass_token_says_how_to_fix_it() {
    let sim = start(SimConfig {
        items: 30,
        ..SimConfig::default()
    })
    .await;
    let c = client(&sim.base_url(), "V1:revoked");
    let err = c.list_albums().await.unwrap_err();
    assert!(matches!(err, CloudError::PassTokenRejected), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("micloudfs login") && msg.contains("account.xiaomi.com"),
        "{msg}"
    );
    assert!(
        !msg.contains("V1:revoked"),
        "the token leaked into the message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_requests_after_expiry_cause_one_exchange() {
    let sim = start(SimConfig {
        items: 30,
        ..SimConfig::default()
    })
    .await;
    let c = Arc::new(client(&sim.base_url(), sim::DEFAULT_PASS_TOKEN));
    c.list_albums().await.unwrap();
    assert_eq!(c.token_exchanges(), 1);
    assert_eq!(
        end_sessions(&sim.base_url(), Some(sim::DEFAULT_USER_ID), None).await,
        1
    );
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.list_album_items(AlbumId::CAMERA).await.map(|v| v.len()) })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap() > 0);
    }
    assert_eq!(
        c.token_exchanges(),
        2,
        "one refresh for all concurrent 401s"
    );
    let stats = sim.stats();
    assert_eq!(stats.token_exchanges, 2, "{stats:?}");
    assert!(
        stats.unauthorized >= 1,
        "the token never expired: {stats:?}"
    );
}

/// A login URL that points anywhere but the passport or the API host gets no passToken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pass_token_never_goes_to_a_foreign_host() {
    use axum::{routing::get, Json, Router};
    let foreign_hits = Arc::new(AtomicU64::new(0));
    let hits = foreign_hits.clone();
    let foreign = Router::new().fallback(move || {
        hits.fetch_add(1, Ordering::SeqCst);
        async { "hello" }
    });
    let foreign_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let foreign_port = foreign_listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(foreign_listener, foreign).await });

    let login_url = format!("http://localhost:{foreign_port}/pass/serviceLogin?sid=i.mi.com");
    let api = Router::new().route(
        "/api/user/login",
        get(move || {
            let url = login_url.clone();
            async move { Json(serde_json::json!({"result":"ok","code":0,"data":{"loginUrl": url}})) }
        }),
    );
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = api_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(api_listener, api).await });

    let c = client(&format!("http://{api_addr}"), "V1:secret");
    let err = c.check_credentials().await.unwrap_err();
    assert!(
        err.to_string().contains("refusing to send the passToken"),
        "{err}"
    );
    assert_eq!(foreign_hits.load(Ordering::SeqCst), 0);
}

fn with_accounts(specs: &[&str]) -> SimConfig {
    let mut config = SimConfig {
        items: 12,
        ..SimConfig::default()
    };
    config.accounts.accounts = specs.iter().map(|s| s.parse().unwrap()).collect();
    config
}

fn client_with(base: &str, creds: Credentials, refresh: Duration) -> HttpGalleryClient {
    HttpGalleryClient::new(ClientConfig {
        token_refresh: refresh,
        ..ClientConfig::new(base, creds)
    })
    .expect("client")
}

/// The `serviceToken` value of a cookie header.
fn token_of(cookie: &str) -> String {
    cookie
        .split("; ")
        .find_map(|c| c.strip_prefix("serviceToken="))
        .unwrap()
        .to_string()
}

/// The serviceToken a cookie session uses now.
async fn token_in_use(c: &HttpGalleryClient) -> String {
    match c.current_credentials().await.secret {
        micloudfs::cloud::Secret::ServiceToken(t) => t,
        _ => panic!("a cookie session holds a serviceToken, not a passToken"),
    }
}

/// A pasted cookie is renewed by AutoRenewal once it is a fifth of `token_refresh` old, and
/// each renewal replaces the token in use: with every superseded token ended through the
/// control API as soon as it is replaced, the session stays alive on renewals alone.
///
/// Time-based on purpose: a renewal falls due by the token's age on the client's clock, so
/// each round waits past that age (200 ms here); load only makes the token older.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pasted_cookie_is_kept_alive_by_auto_renewal() {
    let sim = start(SimConfig {
        items: 12,
        ..SimConfig::default()
    })
    .await;
    let base = sim.base_url();
    let pasted = token_of(&sim.session_cookie());
    let c = client_with(
        &base,
        Credentials::cookie(sim::DEFAULT_USER_ID, &pasted),
        Duration::from_secs(1),
    );
    let mut seen = vec![pasted.clone()];
    for round in 0..3 {
        // The token in use (the pasted one, then each renewal) is now due for renewal.
        tokio::time::sleep(Duration::from_millis(250)).await;
        c.list_albums().await.expect("the session stays alive");
        let now = token_in_use(&c).await;
        assert!(!seen.contains(&now), "round {round}: no renewal");
        // Only the renewal keeps the session alive from here on.
        for old in &seen {
            end_sessions(&base, None, Some(old)).await;
        }
        seen.push(now);
    }
    c.list_albums().await.expect("alive on its latest renewal");
    assert!(c.cookie_renewals() >= 3, "{}", c.cookie_renewals());
    assert_eq!(
        sim.stats().token_exchanges,
        0,
        "a cookie session never exchanges"
    );
    assert!(sim.stats().auto_renewals >= 3);
    assert_ne!(
        token_in_use(&c).await,
        pasted,
        "the renewed token is what would be stored"
    );
}

/// An expired pasted cookie cannot be renewed: the error says to log in again, and later
/// calls answer at once without asking the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_pasted_cookie_says_so_and_stops_asking() {
    let sim = start(SimConfig {
        items: 12,
        ..SimConfig::default()
    })
    .await;
    let pasted = token_of(&sim.session_cookie());
    assert_eq!(end_sessions(&sim.base_url(), None, Some(&pasted)).await, 1);
    let c = client_with(
        &sim.base_url(),
        Credentials::cookie(sim::DEFAULT_USER_ID, &pasted),
        Duration::from_secs(600),
    );
    let err = c.list_albums().await.unwrap_err();
    assert!(matches!(err, CloudError::CookieExpired), "{err}");
    assert!(err.to_string().contains("micloudfs login"), "{err}");
    assert!(c.session_dead());
    let before = sim.stats().requests.values().sum::<u64>();
    let err = c.list_albums().await.unwrap_err();
    assert!(matches!(err, CloudError::CookieExpired), "{err}");
    assert_eq!(sim.stats().requests.values().sum::<u64>(), before);
}

/// A dead session finds new credentials through its source (a new `micloudfs login`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_session_revives_with_new_credentials() {
    struct Slot(std::sync::Mutex<Option<Credentials>>);
    impl micloudfs::cloud::CredentialSource for Slot {
        fn reload(&self) -> Option<Credentials> {
            self.0.lock().unwrap().clone()
        }
    }
    let sim = start(SimConfig {
        items: 12,
        ..SimConfig::default()
    })
    .await;
    let slot = Arc::new(Slot(std::sync::Mutex::new(None)));
    let c = HttpGalleryClient::new(ClientConfig {
        source: Some(slot.clone()),
        ..ClientConfig::new(&sim.base_url(), creds("V1:revoked"))
    })
    .unwrap();
    let err = c.list_albums().await.unwrap_err();
    assert!(matches!(err, CloudError::PassTokenRejected), "{err}");
    assert!(c.session_dead());
    *slot.0.lock().unwrap() = Some(creds(sim::DEFAULT_PASS_TOKEN));
    // Time-based on purpose: the client looks at its source no more than once a second (on
    // its own clock), and that pacing is part of what is tested.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(!c.list_albums().await.unwrap().is_empty());
    assert!(!c.session_dead());
}

/// Second validation and end-to-end encryption are told apart, each with its fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gallery_refusals_are_diagnosed() {
    let sim = start(with_accounts(&[
        "id=222,pass-token=V1:e2ee,e2ee",
        "id=333,pass-token=V1:second,second-validation",
    ]))
    .await;
    let e2ee = client_with(
        &sim.base_url(),
        Credentials::pass_token("222", "V1:e2ee"),
        Duration::from_secs(600),
    );
    let err = e2ee.check_gallery().await.unwrap_err();
    assert!(matches!(err, CloudError::EndToEndEncrypted), "{err}");
    assert!(
        err.to_string().contains("Advanced Data Protection"),
        "{err}"
    );
    let second = client_with(
        &sim.base_url(),
        Credentials::pass_token("333", "V1:second"),
        Duration::from_secs(600),
    );
    let err = second.check_gallery().await.unwrap_err();
    assert!(matches!(err, CloudError::SecondValidation), "{err}");
    assert!(err.to_string().contains("trust this device"), "{err}");
}

/// `whoami`'s figures come from the status endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_info_reports_nickname_and_gallery_bytes() {
    let sim = start(SimConfig {
        items: 12,
        ..SimConfig::default()
    })
    .await;
    let c = client(&sim.base_url(), sim::DEFAULT_PASS_TOKEN);
    let info = c.account_info().await.unwrap();
    assert_eq!(info.nickname, "micloud-sim");
    let total: u64 = manifest(&sim.base_url())
        .await
        .iter()
        .map(|i| i["size"].as_u64().unwrap())
        .sum();
    assert_eq!(info.gallery_bytes, total);
    assert!(info.quota_bytes >= info.used_bytes && info.used_bytes >= info.gallery_bytes);
}
