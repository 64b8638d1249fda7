//! Conformance of the emulator's live gallery and the rest of the documented protocol:
//! `album/full`, `allitems`, `deleted_v2`, `album/video`, status endpoints, recordings, write
//! endpoints, and the `/_sim/` control API. Raw HTTP only.

mod simkit;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use base64::Engine;
use micloud_sim::{LiveConfig, SimConfig, SimHandle};
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use simkit::*;

async fn post_json(h: &SimHandle, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = client()
        .post(format!("{}{path}", h.base_url()))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn big() -> SimConfig {
    SimConfig {
        items: 200,
        ..SimConfig::demo()
    }
}

fn tag(v: &Value) -> u64 {
    v.as_str().unwrap().parse().unwrap()
}

fn full_album<'a>(full: &'a Value, id: &str) -> &'a Value {
    full["data"]["albums"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            a["albumId"]
                .as_str()
                .map_or_else(|| a["albumId"].to_string(), str::to_string)
                == id
        })
        .unwrap()
}

/// Walks `allitems` of one album from tag 0 with `limit`; every record in order.
async fn walk(h: &SimHandle, cookie: &str, group: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = "0".to_string();
    for _ in 0..1000 {
        let v = get_json(
            h,
            cookie,
            &format!("/gallery/allitems?ts=1&groupId={group}&tag={cursor}&limit={limit}&simpleResult=false"),
        )
        .await;
        assert_envelope(&v);
        let d = &v["data"];
        out.extend(d["content"].as_array().unwrap().iter().cloned());
        cursor = d["syncTag"].as_str().unwrap().to_string();
        if d["lastPage"].as_bool().unwrap() {
            return out;
        }
    }
    panic!("allitems never reached lastPage");
}

#[tokio::test]
async fn album_full_lists_every_album_with_its_fields() {
    let h = start(SimConfig::demo()).await;
    let cookie = session(&h).await;
    let full = get_json(&h, &cookie, "/gallery/album/full?ts=1").await;
    assert_envelope(&full);
    let albums = full["data"]["albums"].as_array().unwrap();
    let truth = get_json(&h, "", "/_sim/albums").await;
    assert_eq!(albums.len(), truth.as_array().unwrap().len());
    let items = truth_items(&h).await;
    for a in albums {
        for k in ["incrementalTag", "fullBuildTag"] {
            assert!(is_big_id(&a[k]), "{k}: {a}");
        }
        assert_eq!(a["status"], 1);
        assert!(a["lastUpdateTime"].is_i64() && a["createTime"].is_i64());
        assert_eq!(
            a["userId"].as_u64().unwrap().to_string(),
            micloud_sim::DEFAULT_USER_ID
        );
        assert!(a["description"].is_string() && a["thumbnailUrls"].is_array());
        let id = a["albumId"]
            .as_str()
            .map_or_else(|| a["albumId"].to_string(), str::to_string);
        let mine: Vec<&Value> = items
            .iter()
            .filter(|it| it["albumId"] == id.as_str())
            .collect();
        assert_eq!(a["totalImageCount"].as_u64().unwrap() as usize, mine.len());
        let size: u64 = mine.iter().map(|it| it["size"].as_u64().unwrap()).sum();
        assert_eq!(a["totalSize"].as_u64().unwrap(), size);
    }
    assert_eq!(full_album(&full, "1")["name"], "Camera");
    assert_eq!(full_album(&full, "2")["name"], "Screenshots");
    assert_eq!(full_album(&full, "1000")["name"], "Private");
    assert_eq!(full_album(&full, "1000")["thumbnailUrls"], json!([]));
    assert_eq!(
        full_album(&full, "1")["thumbnailUrls"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn incremental_tag_advances_only_for_the_changed_album() {
    let h = start(SimConfig::demo()).await;
    let cookie = session(&h).await;
    let before = get_json(&h, &cookie, "/gallery/album/full").await;
    let (st, up) = post_json(
        &h,
        "/_sim/upload",
        json!({"albumId": "2", "fileName": "s.jpg"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{up}");
    let after = get_json(&h, &cookie, "/gallery/album/full").await;
    let (b2, a2) = (full_album(&before, "2"), full_album(&after, "2"));
    assert!(tag(&a2["incrementalTag"]) > tag(&b2["incrementalTag"]));
    assert_eq!(tag(&a2["incrementalTag"]), tag(&up["tag"]));
    assert_eq!(a2["fullBuildTag"], b2["fullBuildTag"]);
    assert_eq!(
        a2["totalImageCount"].as_u64().unwrap(),
        b2["totalImageCount"].as_u64().unwrap() + 1
    );
    assert_eq!(
        full_album(&after, "1")["incrementalTag"],
        full_album(&before, "1")["incrementalTag"]
    );
    // A deletion advances it again.
    post_json(&h, "/_sim/recycle", json!({"id": up["id"]})).await;
    let last = get_json(&h, &cookie, "/gallery/album/full").await;
    assert!(tag(&full_album(&last, "2")["incrementalTag"]) > tag(&a2["incrementalTag"]));
}

#[tokio::test]
async fn allitems_ascending_tags_capped_at_60_and_the_walk_replays_the_album() {
    let h = start(big()).await;
    let cookie = session(&h).await;
    let v = get_json(&h, &cookie, "/gallery/allitems?groupId=1&tag=0&limit=200").await;
    assert_envelope(&v);
    let d = &v["data"];
    let page = d["content"].as_array().unwrap();
    assert_eq!(page.len(), 60, "limit is capped at 60");
    assert_eq!(d["lastPage"], false);
    assert_eq!(d["group"], json!([]));
    assert!(d["syncIgnoreTag"].is_string());
    let tags: Vec<u64> = page.iter().map(|it| tag(&it["tag"])).collect();
    assert!(tags.windows(2).all(|w| w[0] < w[1]), "ascending");
    assert_eq!(tag(&d["syncTag"]), *tags.last().unwrap());
    for it in page {
        assert_eq!(it["groupId"], 1);
        assert_eq!(it["status"], "custom");
        assert!(it["sha1"].is_string() && it["thumbnailInfo"].is_object());
    }
    let all = walk(&h, &cookie, "1", 200).await;
    let truth: HashSet<String> = truth_items(&h)
        .await
        .iter()
        .filter(|it| it["albumId"] == "1")
        .map(|it| it["id"].as_str().unwrap().to_string())
        .collect();
    let seen: Vec<String> = all
        .iter()
        .map(|it| it["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen.len(), truth.len());
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), truth);
    let tags: Vec<u64> = all.iter().map(|it| tag(&it["tag"])).collect();
    assert!(tags.windows(2).all(|w| w[0] < w[1]));
    // Caught up: an empty last page that keeps the cursor.
    let cur = tags.last().unwrap();
    let v = get_json(
        &h,
        &cookie,
        &format!("/gallery/allitems?groupId=1&tag={cur}&limit=60"),
    )
    .await;
    assert_eq!(v["data"]["content"], json!([]));
    assert_eq!(v["data"]["lastPage"], true);
    assert_eq!(tag(&v["data"]["syncTag"]), *cur);
}

#[tokio::test]
async fn tags_are_one_sequence_across_albums() {
    let h = start(SimConfig::demo()).await;
    let items = truth_items(&h).await;
    let mut by_time: Vec<&Value> = items.iter().collect();
    by_time.sort_by_key(|it| it["createTime"].as_i64().unwrap());
    let tags: Vec<u64> = by_time.iter().map(|it| tag(&it["tag"])).collect();
    assert!(tags.windows(2).all(|w| w[1] == w[0] + 1), "{tags:?}");
    for it in &items {
        assert_ne!(it["tag"], it["id"]);
    }
}

#[tokio::test]
async fn allitems_simple_result_and_rejected_sync_info() {
    let h = start(SimConfig::demo()).await;
    let cookie = session(&h).await;
    let v = get_json(
        &h,
        &cookie,
        "/gallery/allitems?groupId=1&tag=0&limit=5&simpleResult=true",
    )
    .await;
    for it in v["data"]["content"].as_array().unwrap() {
        let keys: HashSet<&str> = it.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, HashSet::from(["fileName", "id", "tag"]));
    }
    for p in ["syncInfo", "syncExtraInfo"] {
        let v = get_json(
            &h,
            &cookie,
            &format!("/gallery/allitems?groupId=1&tag=0&{p}=x"),
        )
        .await;
        assert_eq!(v["result"], "error");
        assert_ne!(v["code"], 0);
        assert!(v.get("data").is_none());
    }
}

#[tokio::test]
async fn tombstones_appear_then_are_compacted() {
    let h = start(SimConfig {
        live: LiveConfig {
            tombstone_ttl_secs: 1,
            ..LiveConfig::default()
        },
        ..SimConfig::demo()
    })
    .await;
    let cookie = session(&h).await;
    let first = walk(&h, &cookie, "1", 60).await;
    let cursor = first.last().unwrap()["tag"].as_str().unwrap().to_string();
    let victims: Vec<String> = first[..2]
        .iter()
        .map(|it| it["id"].as_str().unwrap().to_string())
        .collect();
    let (st, _) = post_json(&h, "/_sim/recycle", json!({"id": victims[0]})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = post_json(&h, "/_sim/delete", json!({"id": victims[1]})).await;
    assert_eq!(st, StatusCode::OK);
    let v = get_json(
        &h,
        &cookie,
        &format!("/gallery/allitems?groupId=1&tag={cursor}"),
    )
    .await;
    let content = v["data"]["content"].as_array().unwrap();
    assert_eq!(content.len(), 2, "{v}");
    for (it, id) in content.iter().zip(&victims) {
        assert_eq!(it["id"], id.as_str());
        assert_eq!(it["status"], "deleted");
        assert!(tag(&it["tag"]) > cursor.parse().unwrap());
    }
    // Time-based on purpose: the tombstone lifetime is what is tested (1 s here).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let v = get_json(
        &h,
        &cookie,
        &format!("/gallery/allitems?groupId=1&tag={cursor}"),
    )
    .await;
    assert_eq!(v["data"]["content"], json!([]), "compacted");
    assert_eq!(v["data"]["lastPage"], true);
    let replay = walk(&h, &cookie, "1", 60).await;
    assert_eq!(replay.len(), first.len() - 2);
    assert!(replay.iter().all(|it| it["status"] == "custom"));
}

#[tokio::test]
async fn deleted_v2_pages_the_recycle_bin_newest_first() {
    let h = start(SimConfig::demo()).await;
    let cookie = session(&h).await;
    let empty = get_json(&h, &cookie, "/gallery/deleted_v2?maxTag=0&limit=50").await;
    assert_envelope(&empty);
    assert_eq!(empty["data"]["content"], json!([]));
    assert_eq!(empty["data"]["lastPage"], true);
    let items = truth_items(&h).await;
    let victims: Vec<&Value> = items
        .iter()
        .filter(|it| it["albumId"] != "1000")
        .take(5)
        .collect();
    for it in &victims {
        let (st, _) = post_json(&h, "/_sim/recycle", json!({"id": it["id"]})).await;
        assert_eq!(st, StatusCode::OK);
    }
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    for _ in 0..10 {
        let v = get_json(
            &h,
            &cookie,
            &format!("/gallery/deleted_v2?maxTag={cursor}&limit=2&_dc=1"),
        )
        .await;
        assert_envelope(&v);
        let d = &v["data"];
        let page = d["content"].as_array().unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().cloned());
        cursor = d["syncTag"].as_str().unwrap().to_string();
        if d["lastPage"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(seen.len(), 5);
    let tags: Vec<u64> = seen.iter().map(|it| tag(&it["tag"])).collect();
    assert!(tags.windows(2).all(|w| w[0] > w[1]), "newest first");
    let now = chrono::Utc::now().timestamp_millis();
    for (it, victim) in seen.iter().zip(victims.iter().rev()) {
        assert_eq!(it["id"], victim["id"]);
        assert_eq!(it["status"], "deleted");
        assert!((now - it["deleteTime"].as_i64().unwrap()).abs() < 60_000);
        let album = victim["albumId"].as_str().unwrap();
        match album {
            "1" | "2" => assert_eq!(it["groupId"], album.parse::<u64>().unwrap()),
            _ => assert_eq!(it["groupId"], album),
        }
    }
    // Restored items leave the bin and come back live.
    let (st, back) = post_json(&h, "/_sim/restore", json!({"id": victims[0]["id"]})).await;
    assert_eq!(st, StatusCode::OK, "{back}");
    let v = get_json(&h, &cookie, "/gallery/deleted_v2?maxTag=0&limit=50").await;
    assert_eq!(v["data"]["content"].as_array().unwrap().len(), 4);
    assert!(truth_items(&h)
        .await
        .iter()
        .any(|it| it["id"] == victims[0]["id"]));
}

#[tokio::test]
async fn storage_answers_50050_after_recycle_and_delete() {
    let h = start(SimConfig::demo()).await;
    let cookie = session(&h).await;
    let items = truth_items(&h).await;
    for (endpoint, it) in [("/_sim/recycle", &items[3]), ("/_sim/delete", &items[4])] {
        let id = it["id"].as_str().unwrap();
        let ok = get_json(&h, &cookie, &format!("/gallery/storage?id={id}")).await;
        assert_envelope(&ok);
        let (st, _) = post_json(&h, endpoint, json!({"id": id})).await;
        assert_eq!(st, StatusCode::OK);
        let v = get_json(&h, &cookie, &format!("/gallery/storage?id={id}")).await;
        assert_eq!(v["code"], 50050, "{endpoint}: {v}");
        assert_eq!(v["retriable"], false);
        // Gone from the listings too.
        let listed = all_pages(&h, &cookie, "albumId=", 100).await;
        assert!(listed.iter().all(|g| g["id"] != id));
    }
}

#[tokio::test]
async fn upload_shows_everywhere_and_downloads_with_its_sha1() {
    let h = start(SimConfig::demo()).await;
    let cookie = session(&h).await;
    let album = get_json(&h, "", "/_sim/albums").await.as_array().unwrap()[3]["albumId"]
        .as_str()
        .unwrap()
        .to_string();
    let before_list = get_json(&h, &cookie, "/gallery/user/album/list?pageSize=100").await;
    let before_tl = get_json(
        &h,
        &cookie,
        &format!("/gallery/user/timeline?albumId={album}"),
    )
    .await;
    let bytes = b"\xff\xd8\xff\xe0 not really a jpeg, but bytes with a sha1".to_vec();
    let taken = 1_700_000_000_000_i64; // 2023-11-15 06:13:20 +08
    let (st, up) = post_json(
        &h,
        "/_sim/upload",
        json!({
            "albumId": album,
            "fileName": "uploaded.jpg",
            "dateTaken": taken,
            "bytes": base64::engine::general_purpose::STANDARD.encode(&bytes),
        }),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{up}");
    assert_eq!(up["sha1"], sha1_hex(&bytes));
    assert_eq!(up["size"], bytes.len());
    assert!(is_big_id(&up["id"]) && is_big_id(&up["tag"]));
    let id = up["id"].as_str().unwrap();
    // galleries
    let listed = all_pages(&h, &cookie, &format!("albumId={album}"), 30).await;
    let mine = listed.iter().find(|g| g["id"] == id).expect("in galleries");
    assert_eq!(mine["fileName"], "uploaded.jpg");
    assert_eq!(mine["dateTaken"], taken);
    assert_eq!(mine["groupId"], album.as_str());
    // timeline
    let tl = get_json(
        &h,
        &cookie,
        &format!("/gallery/user/timeline?albumId={album}"),
    )
    .await;
    let day = cst_day(taken);
    let old = before_tl["data"]["dayCount"][&day].as_u64().unwrap_or(0);
    assert_eq!(tl["data"]["dayCount"][&day].as_u64().unwrap(), old + 1);
    assert_ne!(tl["data"]["indexHash"], before_tl["data"]["indexHash"]);
    // album/list: count and the changed indexHash
    let list = get_json(&h, &cookie, "/gallery/user/album/list?pageSize=100").await;
    let count = |l: &Value| {
        l["data"]["albums"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["albumId"] == album.as_str())
            .unwrap()["mediaCount"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count(&list), count(&before_list) + 1);
    assert_ne!(list["data"]["indexHash"], before_list["data"]["indexHash"]);
    assert!(list["data"]["indexHash"].is_i64());
    // allitems: the newest record of the album
    let all = walk(&h, &cookie, &album, 60).await;
    assert_eq!(all.last().unwrap()["id"], id);
    // download
    let body = download(&h, &cookie, id, None, false).await;
    assert_eq!(body, bytes);
    // A generated video upload downloads with the sha1 it announced.
    let (st, vid) = post_json(
        &h,
        "/_sim/upload",
        json!({"fileName": "clip.mp4", "size": 12345}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{vid}");
    assert_eq!(vid["albumId"], "1");
    assert_eq!(vid["mimeType"], "video/mp4");
    let body = download(
        &h,
        &cookie,
        vid["id"].as_str().unwrap(),
        Some("dl_img_cb_1_0"),
        true,
    )
    .await;
    assert_eq!(body.len(), 12345);
    assert_eq!(sha1_hex(&body), vid["sha1"].as_str().unwrap());
    // A generated photo carries its EXIF date.
    let (_, photo) = post_json(
        &h,
        "/_sim/upload",
        json!({"fileName": "p.jpg", "dateTaken": taken}),
    )
    .await;
    assert_eq!(photo["exifDateTime"], "2023:11:15 06:13:20");
    let body = download(&h, &cookie, photo["id"].as_str().unwrap(), None, false).await;
    assert_eq!(sha1_hex(&body), photo["sha1"].as_str().unwrap());
}

#[tokio::test]
async fn control_api_errors_say_what_to_send() {
    let h = start(SimConfig::demo()).await;
    let cases = [
        (
            "/_sim/upload",
            json!({"albumId": "404", "fileName": "x.jpg"}),
            StatusCode::NOT_FOUND,
        ),
        ("/_sim/upload", json!({"nope": 1}), StatusCode::BAD_REQUEST),
        (
            "/_sim/upload",
            json!({"fileName": "x", "kind": "gif"}),
            StatusCode::BAD_REQUEST,
        ),
        ("/_sim/recycle", json!({"id": "123"}), StatusCode::NOT_FOUND),
        ("/_sim/restore", json!({"id": "123"}), StatusCode::NOT_FOUND),
        ("/_sim/delete", json!({"id": "123"}), StatusCode::NOT_FOUND),
        (
            "/_sim/rename-album",
            json!({"albumId": "1", "name": "X"}),
            StatusCode::CONFLICT,
        ),
        (
            "/_sim/create-album",
            json!({"name": " "}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (path, body, want) in cases {
        let (st, v) = post_json(&h, path, body).await;
        assert_eq!(st, want, "{path}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.len() > 20, "{msg}");
    }
}

#[tokio::test]
async fn rename_and_create_album_show_in_the_listings() {
    let h = start(SimConfig::demo()).await;
    let cookie = session(&h).await;
    let album = get_json(&h, "", "/_sim/albums").await.as_array().unwrap()[4]["albumId"]
        .as_str()
        .unwrap()
        .to_string();
    let before = get_json(&h, &cookie, "/gallery/user/album/list?pageSize=100").await;
    let (st, a) = post_json(
        &h,
        "/_sim/rename-album",
        json!({"albumId": album, "name": "Renamed"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{a}");
    assert_eq!(a["name"], "Renamed");
    let list = get_json(&h, &cookie, "/gallery/user/album/list?pageSize=100").await;
    let found = list["data"]["albums"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["albumId"] == album.as_str())
        .unwrap();
    assert_eq!(found["name"], "Renamed");
    assert_eq!(found["namePinyin"]["pinyin"], "renamed");
    assert_ne!(list["data"]["indexHash"], before["data"]["indexHash"]);
    let full = get_json(&h, &cookie, "/gallery/album/full").await;
    assert_eq!(full_album(&full, &album)["name"], "Renamed");
    let (st, created) = post_json(&h, "/_sim/create-album", json!({"name": "Brand new"})).await;
    assert_eq!(st, StatusCode::OK);
    let new_id = created["albumId"].as_str().unwrap();
    assert!(is_big_id(&created["albumId"]));
    let list = get_json(&h, &cookie, "/gallery/user/album/list?pageSize=100").await;
    let found = list["data"]["albums"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["albumId"] == new_id)
        .unwrap();
    assert_eq!(found["mediaCount"], 0);
    assert!(found.get("thumbnails").is_none());
}

#[tokio::test]
async fn album_video_counts_public_videos() {
    let h = start(big()).await;
    let cookie = session(&h).await;
    let v = get_json(&h, &cookie, "/gallery/user/album/video?ts=1&isShared=false").await;
    assert_envelope(&v);
    let items = truth_items(&h).await;
    let videos: Vec<&Value> = items
        .iter()
        .filter(|it| {
            it["mimeType"].as_str().unwrap().starts_with("video/") && it["albumId"] != "1000"
        })
        .collect();
    assert!(!videos.is_empty());
    let album = &v["data"]["album"];
    assert_eq!(album["mediaCount"].as_u64().unwrap() as usize, videos.len());
    assert_eq!(album["thumbnails"].as_array().unwrap().len(), 1);
    assert!(album["userId"].is_u64());
    let newest = videos
        .iter()
        .map(|it| it["createTime"].as_i64().unwrap())
        .max()
        .unwrap();
    assert_eq!(album["lastUpdateTime"], newest);
    let tl = get_json(&h, &cookie, "/gallery/user/timeline").await;
    assert_eq!(v["data"]["indexHash"], tl["data"]["indexHash"]);
    post_json(
        &h,
        "/_sim/upload",
        json!({"fileName": "new.mp4", "albumId": "2"}),
    )
    .await;
    let v = get_json(&h, &cookie, "/gallery/user/album/video").await;
    assert_eq!(
        v["data"]["album"]["mediaCount"].as_u64().unwrap() as usize,
        videos.len() + 1
    );
}

#[tokio::test]
async fn profile_and_quota_detail() {
    let h = start(SimConfig::demo()).await;
    let cookie = session(&h).await;
    let p = get_json(&h, &cookie, "/status/lite/profile?ts=1").await;
    assert_envelope(&p);
    assert!(p["data"]["nickname"].is_string() && p["data"]["icon"].is_string());
    let d = get_json(&h, &cookie, "/status/lite/alldetail?ts=1").await;
    assert_envelope(&d);
    let d = &d["data"];
    let total: u64 = truth_items(&h)
        .await
        .iter()
        .map(|it| it["size"].as_u64().unwrap())
        .sum();
    assert_eq!(
        d["usedDetail"]["GalleryImage"]["size"].as_u64().unwrap(),
        total
    );
    let rec: u64 = get_json(&h, "", "/_sim/recordings")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["size"].as_u64().unwrap())
        .sum();
    assert_eq!(d["usedDetail"]["Recorder"]["size"].as_u64().unwrap(), rec);
    assert_eq!(d["used"].as_u64().unwrap(), total + rec);
    assert!(d["totalQuota"].as_u64().unwrap() > total);
    assert_eq!(d["totalDetail"]["basicQuota"], d["totalQuota"]);
    assert_eq!(d["quotaStatus"], "low_percent");
    assert_eq!(d["settingType"], "AutoRenewal");
    let vip = get_json(&h, &cookie, "/status/vip/level").await;
    assert_eq!(vip["data"]["level"], "FirstLevel");
    // Session required.
    let resp = get_path(&h, "/status/lite/alldetail").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

async fn recording_list(h: &SimHandle, cookie: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 0..100 {
        let v = get_json(
            h,
            cookie,
            &format!(
                "/sfs/ns/recorder/dir/0/list?ts=1&limit={limit}&offset={}",
                page * limit
            ),
        )
        .await;
        assert_envelope(&v);
        assert!(v["data"].get("isLastPage").is_none());
        let list = v["data"]["list"].as_array().unwrap();
        out.extend(list.iter().cloned());
        if list.len() < limit {
            return out;
        }
    }
    panic!("no short page");
}

#[tokio::test]
async fn recordings_list_pages_short_and_encodes_names() {
    let h = start(SimConfig::demo()).await;
    let cookie = session(&h).await;
    let all = recording_list(&h, &cookie, 3).await;
    assert_eq!(all.len(), 8);
    let truth = get_json(&h, "", "/_sim/recordings").await;
    let truth: HashMap<String, &Value> = truth
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect();
    let mut types = HashSet::new();
    let mut bases = Vec::new();
    for r in &all {
        for k in [
            "id",
            "name",
            "type",
            "parent_id",
            "size",
            "sha1",
            "ver",
            "create_time",
            "modify_time",
        ] {
            assert!(r.get(k).is_some(), "{k} missing: {r}");
        }
        let name = r["name"].as_str().unwrap();
        let groups: Vec<&str> = name.rsplitn(5, '_').collect();
        assert_eq!(groups.len(), 5, "{name}");
        assert!(
            groups[..4]
                .iter()
                .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit())),
            "{name}"
        );
        types.insert(groups[2].to_string());
        assert_eq!(groups[1], r["create_time"].to_string());
        assert_eq!(groups[0], r["modify_time"].to_string());
        bases.push(groups[4].to_string());
        let t = truth[r["id"].as_str().unwrap()];
        assert_eq!(t["sha1"], r["sha1"]);
        assert_eq!(t["name"], r["name"]);
        let size = r["size"].as_u64().unwrap();
        assert!((10_000..1_000_000).contains(&size));
    }
    assert_eq!(types, HashSet::from(["0", "1", "2", "3"].map(String::from)));
    let distinct: HashSet<&String> = bases.iter().collect();
    assert!(
        distinct.len() < bases.len(),
        "duplicate base names: {bases:?}"
    );
    let times: Vec<i64> = all
        .iter()
        .map(|r| r["create_time"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
}

/// Steps 2 and 3 of the download from URL-A with wrapper `cb`.
async fn fetch_url_a(url_a: &str, cb: &str) -> Vec<u8> {
    let p = jsonp_checked(url_a, cb).await;
    let resp = post_meta(
        p["url"].as_str().unwrap(),
        p["meta"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn recordings_download_through_both_forms() {
    let h = start(SimConfig::demo()).await;
    let cookie = session(&h).await;
    let all = recording_list(&h, &cookie, 500).await;
    for r in all.iter().take(3) {
        let id = r["id"].as_str().unwrap();
        let cb = "dl_sfs_cb_1700000000000_0";
        let v = get_json(
            &h,
            &cookie,
            &format!("/sfs/ns/recorder/file/{id}/cb/{cb}/storage?ts=1"),
        )
        .await;
        assert_envelope(&v);
        let body = fetch_url_a(v["data"]["url"].as_str().unwrap(), cb).await;
        assert_eq!(body.len() as u64, r["size"].as_u64().unwrap());
        assert_eq!(sha1_hex(&body), r["sha1"].as_str().unwrap());
        assert_eq!(&body[4..8], b"ftyp");
        let v = get_json(
            &h,
            &cookie,
            &format!("/sfs/ns/recorder/file/{id}/storage/geturl?ts=1"),
        )
        .await;
        assert_envelope(&v);
        let body = fetch_url_a(v["data"]["url"].as_str().unwrap(), "dl_sfs_cb").await;
        assert_eq!(sha1_hex(&body), r["sha1"].as_str().unwrap());
    }
}

#[tokio::test]
async fn deleted_recording_is_50202() {
    let h = start(SimConfig::demo()).await;
    let cookie = session(&h).await;
    let all = recording_list(&h, &cookie, 500).await;
    let id = all[0]["id"].as_str().unwrap();
    let (st, gone) = post_json(&h, "/_sim/delete", json!({"id": id})).await;
    assert_eq!(st, StatusCode::OK, "{gone}");
    assert_eq!(gone["deleted"], true);
    for path in [
        format!("/sfs/ns/recorder/file/{id}/cb/dl_sfs_cb_1_0/storage"),
        format!("/sfs/ns/recorder/file/{id}/storage/geturl"),
    ] {
        let v = get_json(&h, &cookie, &path).await;
        assert_eq!(v["code"], 50202, "{path}: {v}");
        assert_eq!(v["result"], "error");
    }
    assert_eq!(recording_list(&h, &cookie, 500).await.len(), 7);
}

#[tokio::test]
async fn write_endpoints_work_and_are_counted() {
    let h = start(SimConfig::demo()).await;
    let cookie = session(&h).await;
    assert!(!h.stats().counters.contains_key("write_calls"));
    let items = truth_items(&h).await;
    let id = items[0]["id"].as_str().unwrap();
    let token = cookie.split("serviceToken=").nth(1).unwrap();
    let form = [("id", id), ("serviceToken", token)];
    let resp = post_form(&h, "/gallery/info/delete", &cookie, &form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v = as_json(resp).await;
    assert_envelope(&v);
    let bin = get_json(&h, &cookie, "/gallery/deleted_v2?maxTag=0&limit=50").await;
    assert_eq!(bin["data"]["content"][0]["id"], id);
    let rec = get_json(&h, "", "/_sim/recordings").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/sfs/ns/recorder/file/{rec}/delete?ts=1");
    let form = [("permanent", "false"), ("serviceToken", token)];
    let resp = post_form(&h, &path, &cookie, &form).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Without a session: refused, yet counted.
    let resp = client()
        .post(format!("{}/gallery/info/delete", h.base_url()))
        .form(&[("id", id)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let c = h.stats().counters;
    assert_eq!(c["write_calls"], 3);
    assert_eq!(c["write_calls:gallery_info_delete"], 2);
    assert_eq!(c["write_calls:recorder_delete"], 1);
    let rec_truth = get_json(&h, "", "/_sim/recordings").await;
    assert_eq!(rec_truth[0]["deleted"], true);
}

#[tokio::test]
async fn listings_follow_the_live_gallery() {
    let h = start(SimConfig::demo()).await;
    let cookie = session(&h).await;
    let before = all_pages(&h, &cookie, "", 25).await;
    let tl = get_json(&h, &cookie, "/gallery/user/timeline").await;
    let victim = &before[0];
    post_json(&h, "/_sim/recycle", json!({"id": victim["id"]})).await;
    let after = all_pages(&h, &cookie, "", 25).await;
    assert_eq!(after.len(), before.len() - 1);
    let tl2 = get_json(&h, &cookie, "/gallery/user/timeline").await;
    let day = cst_day(victim["dateTaken"].as_i64().unwrap());
    let n = tl["data"]["dayCount"][&day].as_u64().unwrap();
    assert_eq!(tl2["data"]["dayCount"][&day].as_u64().unwrap_or(0), n - 1);
    assert_ne!(tl["data"]["indexHash"], tl2["data"]["indexHash"]);
    let shared = get_json(&h, &cookie, "/gallery/user/album/list?isShared=true").await;
    assert_eq!(shared["data"]["albums"], json!([]));
}
