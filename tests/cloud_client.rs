//! The cloud client (`HttpGalleryClient`) against the emulator, in process: listing with
//! paging, downloads, deleted items, a dead passToken, single-flight token refresh, and the
//! passToken never leaving for a foreign host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sha1::{Digest, Sha1};

use micloudfs::cloud::{ClientConfig, CloudError, Credentials, GalleryApi, HttpGalleryClient};
use micloudfs::model::{AlbumId, ItemId};
use micloudfs::sim::{self, SimConfig};

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
        token_ttl: Duration::from_secs(1),
        ..SimConfig::default()
    })
    .await;
    let c = Arc::new(client(&sim.base_url(), sim::DEFAULT_PASS_TOKEN));
    c.list_albums().await.unwrap();
    assert_eq!(c.token_exchanges(), 1);
    tokio::time::sleep(Duration::from_millis(1300)).await;
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
