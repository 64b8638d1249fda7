//! Protocol tests of the emulator against the fidelity checklist (spec §7), over raw HTTP.
//!
//! Each test starts its own emulator in-process on 127.0.0.1:0 (the generated bodies are
//! fingerprinted once per process, so later starts with the same seed are quick) and talks
//! to it with a plain reqwest client that follows no redirects and keeps no cookie jar, so
//! every cookie and Location is checked by hand.
//!
//! The emulator's conformance suite is this file plus `sim_live.rs` (live gallery, incremental
//! and recycle-bin listings, recordings, write endpoints), `sim_passport.rs` (every way in),
//! `sim_link.rs` (shaping, faults, Range, URLs) and `sim_scale.rs`. Where each point of spec §7
//! is shown:
//!
//! | §7 | tests |
//! |---|---|
//! | 1 ids | `ids_are_strings_beyond_2_pow_53_and_index_hash_is_a_number`, `sim_live::tags_are_one_sequence_across_albums` |
//! | 2 system albums | `system_albums_have_no_name_and_thumbnail_rules_hold`, `sim_live::album_full_lists_every_album_with_its_fields` |
//! | 3 envelope | `success_envelope_on_every_endpoint` |
//! | 4 401 body | `unauthorized_gets_the_gateway_401_body`, `sim_passport::e2ee_account_reports_open_and_gallery_needs_second_validation` |
//! | 5 galleries | `galleries_sorted_paged_and_album_optional`, `galleries_day_filter_is_inclusive_utc8`, `sim_link::deep_pages_are_slower_by_the_growth_per_page` |
//! | 6 timeline | `timeline_counts_per_utc8_day`, `sim_live::listings_follow_the_live_gallery` (indexHash changes) |
//! | 7 download | `download_flow_both_body_forms_and_callback`, `every_listed_item_downloads_with_its_sha1_and_size`, `deleted_media_is_50050_and_bad_meta_is_403`, `download_urls_expire_with_403`, `sim_link::range_on_serves_the_right_slices`, `sim_link::range_off_sends_the_whole_body` |
//! | 8 login | `login_chain_sets_service_token_and_tickets_are_single_use`, `invalid_pass_token_yields_no_service_token`, `sim_passport::password_login_then_sts_then_gallery`, `sim_passport::wrong_password_is_70016_with_the_exact_fields` |
//! | 9 AutoRenewal | `auto_renewal_sets_a_fresh_service_token`, `sim_passport::expired_pasted_cookie_gets_401_on_auto_renewal` |
//! | 10 transient faults | `sim_link::nodata_strips_data_from_gallery_json_only`, `sim_link::stalled_response_times_out_a_short_client`, `sim_link::server_errors_are_forced_and_counted` |
//! | 11 ignored parameters | `cache_busters_and_unknown_parameters_change_nothing`, `album_list_pages_until_is_last_page` (`isShared=true`) |

mod simkit;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use micloud_sim::{self as sim, SimConfig};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;
use simkit::*;

#[tokio::test]
async fn ids_are_strings_beyond_2_pow_53_and_index_hash_is_a_number() {
    let h = start(SimConfig::demo()).await;
    let ck = session(&h).await;
    let albums = get_json(
        &h,
        &ck,
        "/gallery/user/album/list?pageNum=0&pageSize=100&isShared=false",
    )
    .await;
    assert!(albums["data"]["indexHash"].is_i64());
    for a in albums["data"]["albums"].as_array().unwrap() {
        let id = &a["albumId"];
        assert!(id.is_string(), "albumId must be a string: {a}");
        if !["1", "2", "1000"].contains(&id.as_str().unwrap()) {
            assert!(is_big_id(id), "{a}");
        }
        assert!(a["userId"].is_u64());
    }
    let items = all_pages(&h, &ck, "albumId=1000", 50).await;
    let mut all = all_pages(&h, &ck, "ts=1", 50).await;
    all.extend(items);
    let mut seen_group_types = HashSet::new();
    for it in &all {
        assert!(is_big_id(&it["id"]) && is_big_id(&it["tag"]), "{it}");
        assert_ne!(it["id"], it["tag"]);
        let g = &it["groupId"];
        match g {
            Value::Number(n) => assert!(n.as_u64() == Some(1) || n.as_u64() == Some(2), "{it}"),
            Value::String(s) => assert!(s == "1000" || is_big_id(g), "{it}"),
            _ => panic!("groupId {g}"),
        }
        seen_group_types.insert(g.is_number());
    }
    assert_eq!(
        seen_group_types.len(),
        2,
        "both number and string groupIds occur"
    );
    // At least one id is not representable as an f64, so a double-parsing client would break.
    assert!(all.iter().any(|it| {
        let n: u64 = it["id"].as_str().unwrap().parse().unwrap();
        (n as f64) as u64 != n
    }));
}

#[tokio::test]
async fn system_albums_have_no_name_and_thumbnail_rules_hold() {
    let h = start(SimConfig::demo()).await;
    let ck = session(&h).await;
    let v = get_json(
        &h,
        &ck,
        "/gallery/user/album/list?ts=1&pageNum=0&pageSize=50&isShared=false&numOfThumbnails=1",
    )
    .await;
    assert_envelope(&v);
    let albums = v["data"]["albums"].as_array().unwrap();
    assert_eq!(albums.len(), 3 + 4);
    let mut empty_user = 0;
    for a in albums {
        let id = a["albumId"].as_str().unwrap();
        let count = a["mediaCount"].as_u64().unwrap();
        assert!(a["lastUpdateTime"].is_i64());
        if ["1", "2", "1000"].contains(&id) {
            assert!(a.get("name").is_none(), "system album has no name: {a}");
            assert!(a.get("namePinyin").is_none() && a.get("albumType").is_none());
        } else {
            assert!(a["name"].is_string());
            assert_eq!(a["albumType"], "unknown");
            for k in ["sortkey", "pinyin", "spinyin"] {
                assert!(a["namePinyin"][k].is_string());
            }
        }
        if count == 0 {
            assert!(
                a.get("thumbnails").is_none(),
                "no thumbnails key when empty: {a}"
            );
            empty_user += 1;
        } else if id == "1000" {
            assert_eq!(
                a["thumbnails"],
                Value::Array(vec![]),
                "album 1000: empty thumbnails"
            );
        } else {
            let t = a["thumbnails"].as_array().unwrap();
            assert!(!t.is_empty());
            let url = t[0]["url"].as_str().unwrap();
            let img = client().get(url).send().await.unwrap();
            assert_eq!(img.status(), StatusCode::OK);
            let bytes = img.bytes().await.unwrap();
            assert_eq!(&bytes[..2], &[0xFF, 0xD8], "thumbnail is a JPEG");
        }
    }
    assert_eq!(empty_user, 1);
    let names: Vec<&str> = albums.iter().filter_map(|a| a["name"].as_str()).collect();
    assert!(names.iter().any(|n| n.is_ascii()) && names.iter().any(|n| !n.is_ascii()));
    // Shared albums: empty.
    let v = get_json(
        &h,
        &ck,
        "/gallery/user/album/list?pageNum=0&pageSize=50&isShared=true",
    )
    .await;
    assert_eq!(v["data"]["albums"], Value::Array(vec![]));
    assert_eq!(v["data"]["isLastPage"], true);
}

#[tokio::test]
async fn success_envelope_on_every_endpoint() {
    let h = start(SimConfig::demo()).await;
    let ck = session(&h).await;
    let id = truth_items(&h).await[0]["id"].as_str().unwrap().to_string();
    for path in [
        "/api/user/login?followUp=%2F".to_string(),
        "/gallery/user/album/list?pageNum=0&pageSize=5".to_string(),
        "/gallery/user/galleries?albumId=1&pageNum=0&pageSize=5".to_string(),
        "/gallery/user/timeline?ts=1".to_string(),
        format!("/gallery/storage?id={id}"),
        "/status/lite/setting?type=AutoRenewal&inactiveTime=10".to_string(),
    ] {
        let v = get_json(&h, &ck, &path).await;
        assert_envelope(&v);
        assert_eq!(v["description"], "成功");
    }
}

#[tokio::test]
async fn unauthorized_gets_the_gateway_401_body() {
    let h = start(SimConfig::demo()).await;
    let ck = session(&h).await;
    let c = client();
    let check = |cookie: String, path: &'static str| {
        let c = c.clone();
        let url = format!("{}{path}", h.base_url());
        async move {
            let resp = c.get(url).header(COOKIE, cookie).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
            let v = as_json(resp).await;
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 5, "{v}");
            assert_eq!(v["R"], 401);
            assert_eq!(v["S"], "Err");
            assert_eq!(v["E"], false);
            assert_eq!(v["isSecondValidation"], false);
            let d = v["D"].as_str().unwrap();
            assert!(
                d.contains("/pass/serviceLogin?callback=http%3A%2F%2F127.0.0.1"),
                "{d}"
            );
            assert!(
                d.contains("%2Fsts%3Fsign%3D")
                    && d.ends_with("&sid=i.mi.com&_group=DEFAULT&checkSafePhone=true&_bal=true")
            );
        }
    };
    let token = ck.split("serviceToken=").nth(1).unwrap().to_string();
    check(String::new(), "/gallery/user/album/list").await;
    check(format!("serviceToken={token}"), "/gallery/user/galleries").await;
    check(
        format!("userId=999; serviceToken={token}"),
        "/gallery/user/timeline",
    )
    .await;
    check(
        format!("userId={}; serviceToken=AAAA", sim::DEFAULT_USER_ID),
        "/gallery/storage",
    )
    .await;
    // The live token works until its session ends (as at the end of its lifetime: the
    // lifetime itself is a unit test of the session table).
    get_json(&h, &ck, "/gallery/user/timeline").await;
    assert_eq!(end_sessions(&h, Some(sim::DEFAULT_USER_ID), None).await, 1);
    check(ck.clone(), "/gallery/user/album/list").await;
    check(
        ck.clone(),
        "/status/lite/setting?type=AutoRenewal&inactiveTime=10",
    )
    .await;
    assert_eq!(h.stats().unauthorized, 6);
}

#[tokio::test]
async fn album_list_pages_until_is_last_page() {
    let h = start(SimConfig {
        albums: 9,
        ..SimConfig::demo()
    })
    .await;
    let ck = session(&h).await;
    let mut ids = Vec::new();
    for page in 0.. {
        let v = get_json(
            &h,
            &ck,
            &format!("/gallery/user/album/list?pageNum={page}&pageSize=4&isShared=false"),
        )
        .await;
        let albums = v["data"]["albums"].as_array().unwrap();
        ids.extend(
            albums
                .iter()
                .map(|a| a["albumId"].as_str().unwrap().to_string()),
        );
        if v["data"]["isLastPage"] == true {
            break;
        }
        assert_eq!(albums.len(), 4);
    }
    assert_eq!(ids.len(), 12);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 12);
    let truth = get_json(&h, "", "/_sim/albums").await;
    assert_eq!(truth.as_array().unwrap().len(), 12);
}

#[tokio::test]
async fn galleries_sorted_paged_and_album_optional() {
    let h = start(SimConfig::demo()).await;
    let ck = session(&h).await;
    let truth = truth_items(&h).await;
    let by_album = |a: &str| truth.iter().filter(|t| t["albumId"] == a).count();
    let camera = all_pages(&h, &ck, "albumId=1&startDate=19700101&endDate=20991231", 7).await;
    assert_eq!(camera.len(), by_album("1"));
    let all = all_pages(&h, &ck, "ts=1", 13).await;
    assert_eq!(
        all.len(),
        truth.len() - by_album("1000"),
        "all albums except private"
    );
    for list in [&camera, &all] {
        let times: Vec<i64> = list
            .iter()
            .map(|i| i["sortTime"].as_i64().unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "sortTime descending"
        );
        for it in list.iter() {
            assert_eq!(it["sortTime"], it["dateTaken"]);
            assert_eq!(it["status"], "custom");
            assert!(it["description"].as_str().unwrap().starts_with('{'));
            assert!(it["size"].is_u64() && it["sha1"].as_str().unwrap().len() == 40);
            assert!(["image", "video"].contains(&it["type"].as_str().unwrap()));
            assert!(it["createTime"].as_i64() >= it["dateTaken"].as_i64());
        }
        let ids: HashSet<&str> = list.iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), list.len(), "no duplicates across pages");
    }
    let groups: HashSet<String> = all.iter().map(|i| i["groupId"].to_string()).collect();
    assert!(groups.len() >= 3, "items of several albums: {groups:?}");
    // Private album on request only.
    assert_eq!(all_pages(&h, &ck, "albumId=1000", 10).await.len(), 2);
}

#[tokio::test]
async fn galleries_day_filter_is_inclusive_utc8() {
    let h = start(SimConfig::demo()).await;
    let ck = session(&h).await;
    let truth = truth_items(&h).await;
    // The 07:17 CST shot of 2023-10-17 is 2023-10-16 in UTC.
    let early = truth
        .iter()
        .find(|t| t["exifDateTime"] == "2023:10:17 07:17:36")
        .expect("early-morning item");
    let id = early["id"].as_str().unwrap();
    let day = all_pages(&h, &ck, "albumId=1&startDate=20231017&endDate=20231017", 30).await;
    assert!(day.iter().any(|i| i["id"] == id));
    let before = all_pages(&h, &ck, "albumId=1&startDate=20231016&endDate=20231016", 30).await;
    assert!(!before.iter().any(|i| i["id"] == id));
    // A range: exactly the items whose UTC+8 day is inside, bounds included.
    let (from, to) = ("20200101", "20221231");
    let got = all_pages(&h, &ck, &format!("startDate={from}&endDate={to}"), 10).await;
    let expected: HashSet<&str> = truth
        .iter()
        .filter(|t| t["albumId"] != "1000")
        .filter(|t| {
            let d = cst_day(t["dateTaken"].as_i64().unwrap());
            d.as_str() >= from && d.as_str() <= to
        })
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let got: HashSet<&str> = got.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
}

#[tokio::test]
async fn timeline_counts_per_utc8_day() {
    let h = start(SimConfig::demo()).await;
    let ck = session(&h).await;
    let truth = truth_items(&h).await;
    for (q, album) in [
        ("", None),
        ("?albumId=1", Some("1")),
        ("?albumId=2", Some("2")),
    ] {
        let v = get_json(&h, &ck, &format!("/gallery/user/timeline{q}")).await;
        assert_envelope(&v);
        assert!(v["data"]["indexHash"].is_i64());
        let mut expected = BTreeMap::new();
        for t in &truth {
            let keep = match album {
                Some(a) => t["albumId"] == a,
                None => t["albumId"] != "1000",
            };
            if keep {
                *expected
                    .entry(cst_day(t["dateTaken"].as_i64().unwrap()))
                    .or_insert(0u64) += 1;
            }
        }
        let got: BTreeMap<String, u64> = v["data"]["dayCount"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        assert!(got
            .keys()
            .all(|k| k.len() == 8 && k.bytes().all(|b| b.is_ascii_digit())));
        assert_eq!(got, expected);
    }
    let v = get_json(&h, &ck, "/gallery/user/timeline").await;
    assert_eq!(v["data"]["dayCount"]["20231017"].as_u64(), Some(1));
}

#[tokio::test]
async fn download_flow_both_body_forms_and_callback() {
    let h = start(SimConfig::demo()).await;
    let ck = session(&h).await;
    let truth = truth_items(&h).await;
    let video = truth.iter().find(|t| t["mimeType"] == "video/mp4").unwrap();
    let photo = truth
        .iter()
        .find(|t| t["mimeType"] == "image/jpeg")
        .unwrap();
    let private = truth.iter().find(|t| t["albumId"] == "1000").unwrap();
    let cases = [
        (video, None, false),
        (photo, None, true),
        (photo, Some("dl_img_cb_1700000000000_0"), false),
        (private, Some("callback"), true),
    ];
    for (item, cb, raw) in cases {
        let body = download(&h, &ck, item["id"].as_str().unwrap(), cb, raw).await;
        assert_eq!(body.len() as u64, item["size"].as_u64().unwrap());
        assert_eq!(sha1_hex(&body), item["sha1"].as_str().unwrap());
    }
    let vid = download(&h, &ck, video["id"].as_str().unwrap(), None, true).await;
    assert_eq!(&vid[4..8], b"ftyp");
    assert!(vid.windows(4).any(|w| w == b"mdat"));
    let s = h.stats();
    assert_eq!(s.downloads, 5);
    assert!(s.bytes_served > 0);
}

#[tokio::test]
async fn every_listed_item_downloads_with_its_sha1_and_size() {
    let h = start(SimConfig::demo()).await;
    let ck = session(&h).await;
    let mut listed = all_pages(&h, &ck, "ts=1", 200).await;
    listed.extend(all_pages(&h, &ck, "albumId=1000", 200).await);
    assert_eq!(listed.len(), 60);
    for it in &listed {
        let body = download(&h, &ck, it["id"].as_str().unwrap(), None, false).await;
        assert_eq!(
            body.len() as u64,
            it["size"].as_u64().unwrap(),
            "{}",
            it["id"]
        );
        assert_eq!(
            sha1_hex(&body),
            it["sha1"].as_str().unwrap(),
            "{}",
            it["id"]
        );
        if it["type"] == "image" {
            assert_eq!(&body[..2], &[0xFF, 0xD8]);
        }
    }
}

#[tokio::test]
async fn deleted_media_is_50050_and_bad_meta_is_403() {
    let h = start(SimConfig::demo()).await;
    let ck = session(&h).await;
    let v = get_json(&h, &ck, "/gallery/storage?ts=1&id=12345678901234567").await;
    assert_eq!(v["code"], 50050);
    assert_eq!(v["result"], "error");
    assert_eq!(v["retriable"], false);
    assert!(v["description"].is_string() && v["ts"].is_i64());
    // Valid URL-B, wrong meta.
    let id = truth_items(&h).await[3]["id"].as_str().unwrap().to_string();
    let v = get_json(&h, &ck, &format!("/gallery/storage?id={id}")).await;
    let payload = jsonp_payload(&get_text(v["data"]["url"].as_str().unwrap()).await);
    let resp = post_meta(payload["url"].as_str().unwrap(), "AAAA", None).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Tampered id on URL-A.
    let tampered = v["data"]["url"]
        .as_str()
        .unwrap()
        .replace(&id, "12345678901234567");
    assert_eq!(
        client().get(tampered).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn download_urls_expire_with_403() {
    let h = start(SimConfig {
        url_ttl: Duration::from_secs(1),
        ..SimConfig::demo()
    })
    .await;
    let ck = session(&h).await;
    let id = truth_items(&h).await[5]["id"].as_str().unwrap().to_string();
    let v = get_json(&h, &ck, &format!("/gallery/storage?id={id}")).await;
    let url_a = v["data"]["url"].as_str().unwrap().to_string();
    let payload = jsonp_payload(&get_text(&url_a).await);
    // Time-based on purpose: a signed URL carries its own expiry, and no state of the
    // emulator could end it sooner; so the test waits out the 1 s lifetime.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        client().get(&url_a).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let resp = post_meta(
        payload["url"].as_str().unwrap(),
        payload["meta"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn login_chain_sets_service_token_and_tickets_are_single_use() {
    let h = start(SimConfig::demo()).await;
    let c = client();
    let login = c
        .get(format!(
            "{}/api/user/login?ts=1&followUp=http%3A%2F%2Fexample.test%2F&_locale=zh_CN",
            h.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let v = as_json(login).await;
    assert_envelope(&v);
    let login_url = v["data"]["loginUrl"].as_str().unwrap();
    let prefix = format!(
        "{}/pass/serviceLogin?callback=http%3A%2F%2F{}%2Fsts%3Fsign%3D",
        h.base_url(),
        h.addr.to_string().replace(':', "%3A")
    );
    assert!(login_url.starts_with(&prefix), "{login_url}");
    assert!(login_url.contains("%26followup%3Dhttp%253A%252F%252Fexample.test%252F"));
    assert!(login_url.ends_with("&sid=i.mi.com&_group=DEFAULT&checkSafePhone=true&_bal=true"));
    let passport = c
        .get(login_url)
        .header(
            COOKIE,
            format!(
                "userId={}; passToken={}",
                sim::DEFAULT_USER_ID,
                sim::DEFAULT_PASS_TOKEN
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(passport.status(), StatusCode::FOUND);
    let loc = passport.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(
        loc.starts_with(&format!("{}/sts?sign=", h.base_url())),
        "{loc}"
    );
    for p in [
        "&d=",
        "&ticket=0",
        "&pwd=0",
        "&p_ts=",
        "&nonce=",
        "&_ssign=",
    ] {
        assert!(loc.contains(p), "{p} in {loc}");
    }
    let sts = c.get(&loc).send().await.unwrap();
    assert_eq!(sts.status(), StatusCode::FOUND);
    assert_eq!(sts.headers()[LOCATION], "http://example.test/");
    let set = set_cookies(&sts);
    assert_eq!(sts.headers().get_all(SET_COOKIE).iter().count(), 5);
    let token = &set["serviceToken"];
    assert!(
        token.len() > 200 && token.contains('+') && token.contains('/') && token.ends_with('=')
    );
    assert_eq!(set["userId"], sim::DEFAULT_USER_ID);
    assert_eq!(set["i.mi.com_isvalid_servicetoken"], "true");
    assert!(set.contains_key("i.mi.com_slh") && set.contains_key("i.mi.com_ph"));
    let ck = format!("userId={}; serviceToken={token}", set["userId"]);
    get_json(&h, &ck, "/gallery/user/album/list?pageNum=0&pageSize=10").await;
    // Replaying the ticket gives no new token.
    let replay = c.get(&loc).send().await.unwrap();
    assert!(!set_cookies(&replay).contains_key("serviceToken"));
    assert_eq!(h.stats().token_exchanges, 1);
}

#[tokio::test]
async fn invalid_pass_token_yields_no_service_token() {
    let h = start(SimConfig::demo()).await;
    let set = login_chain(&h, sim::DEFAULT_USER_ID, "V1:wrong").await;
    assert!(!set.contains_key("serviceToken"), "{set:?}");
    let set = login_chain(&h, "42", sim::DEFAULT_PASS_TOKEN).await;
    assert!(!set.contains_key("serviceToken"), "{set:?}");
    assert_eq!(h.stats().token_exchanges, 0);
    // The JSON flavour reports 70016.
    let text = get_text(format!(
        "{}/pass/serviceLogin?sid=i.mi.com&_json=true",
        h.base_url()
    ))
    .await;
    let v = passport_body(&text);
    assert_eq!(v["code"], 70016);
}

#[tokio::test]
async fn auto_renewal_sets_a_fresh_service_token() {
    let h = start(SimConfig::demo()).await;
    let ck = session(&h).await;
    let resp = get_with_cookie(
        &h,
        &ck,
        "/status/lite/setting?ts=1&type=AutoRenewal&inactiveTime=10",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let set = set_cookies(&resp);
    let v = as_json(resp).await;
    assert_eq!(v["result"], "ok");
    let fresh = &set["serviceToken"];
    assert!(!ck.ends_with(fresh.as_str()));
    assert_eq!(set["userId"], sim::DEFAULT_USER_ID);
    // A cookie-jar-only client continues with just what the renewal set.
    let ck2 = format!("userId={}; serviceToken={fresh}", set["userId"]);
    get_json(&h, &ck2, "/gallery/user/timeline").await;
    assert_eq!(h.stats().auto_renewals, 1);
    // The shortcut for tests of later stages gives a working session too.
    get_json(&h, &h.session_cookie(), "/gallery/user/timeline").await;
    assert_eq!(h.stats().token_exchanges, 1);
}

#[tokio::test]
async fn same_seed_same_gallery() {
    let a = start(SimConfig::demo()).await;
    let b = start(SimConfig::demo()).await;
    let c = start(SimConfig {
        seed: 7,
        ..SimConfig::demo()
    })
    .await;
    let (ta, tb, tc) = (
        truth_items(&a).await,
        truth_items(&b).await,
        truth_items(&c).await,
    );
    assert_eq!(ta, tb);
    assert_ne!(ta, tc);
    // Bytes too (served independently by two servers).
    let (cka, ckb) = (session(&a).await, session(&b).await);
    for t in ta.iter().take(4) {
        let id = t["id"].as_str().unwrap();
        assert_eq!(
            download(&a, &cka, id, None, false).await,
            download(&b, &ckb, id, None, true).await
        );
    }
    let la = get_json(&a, &cka, "/gallery/user/album/list?pageNum=0&pageSize=50").await;
    let lb = get_json(&b, &ckb, "/gallery/user/album/list?pageNum=0&pageSize=50").await;
    assert_eq!(la["data"]["indexHash"], lb["data"]["indexHash"]);
}

#[tokio::test]
async fn gallery_has_the_awkward_cases() {
    let h = start(SimConfig::demo()).await;
    let truth = truth_items(&h).await;
    assert_eq!(truth.len(), 60);
    let names: Vec<&str> = truth
        .iter()
        .map(|t| t["fileName"].as_str().unwrap())
        .collect();
    for needle in [
        "",
        "..",
        "a/b.jpg",
        "line\nbreak.jpg",
        "tab\tname.jpg",
        "ctrl\u{1}char.jpg",
        "Photo.JPG",
        "photo.jpg",
    ] {
        assert!(names.contains(&needle), "{needle:?}");
    }
    assert!(names
        .iter()
        .any(|n| n.len() > 300 && n.chars().count() < n.len()));
    // Same name, different content, one album.
    let mut per_album: HashMap<(&str, &str), HashSet<&str>> = HashMap::new();
    for t in &truth {
        per_album
            .entry((
                t["albumId"].as_str().unwrap(),
                t["fileName"].as_str().unwrap(),
            ))
            .or_default()
            .insert(t["sha1"].as_str().unwrap());
    }
    assert!(per_album.values().any(|s| s.len() > 1));
    // Same content in two albums.
    let mut by_sha: HashMap<&str, HashSet<&str>> = HashMap::new();
    for t in &truth {
        by_sha
            .entry(t["sha1"].as_str().unwrap())
            .or_default()
            .insert(t["albumId"].as_str().unwrap());
    }
    assert!(by_sha.values().any(|a| a.len() > 1));
    // Shots between 00:00 and 08:00 UTC+8.
    let early = truth
        .iter()
        .filter(|t| (t["dateTaken"].as_i64().unwrap() / 3_600_000 + 8) % 24 < 8)
        .count();
    assert!(early >= 2);
    // createTime: >= dateTaken and distinct.
    let creates: HashSet<i64> = truth
        .iter()
        .map(|t| t["createTime"].as_i64().unwrap())
        .collect();
    assert_eq!(creates.len(), truth.len());
    assert!(truth
        .iter()
        .all(|t| t["createTime"].as_i64() >= t["dateTaken"].as_i64()));
    // Videos, screenshots without EXIF date, camera photos with it.
    assert!(truth
        .iter()
        .any(|t| t["mimeType"] == "video/mp4" && t["exifDateTime"].is_null()));
    assert!(
        truth.iter().any(|t| t["albumId"] == "2")
            && truth
                .iter()
                .filter(|t| t["albumId"] == "2")
                .all(|t| t["exifDateTime"].is_null())
    );
    assert!(
        truth
            .iter()
            .filter(|t| t["albumId"] == "1" && !t["exifDateTime"].is_null())
            .count()
            > 5
    );
}

#[tokio::test]
async fn jpeg_exif_date_matches_the_listing() {
    let h = start(SimConfig::demo()).await;
    let ck = session(&h).await;
    let listed = all_pages(&h, &ck, "ts=1", 100).await;
    let with_date: Vec<&Value> = listed
        .iter()
        .filter(|i| i["exifInfo"]["dateTime"].is_string())
        .collect();
    assert!(with_date.len() > 10);
    for it in with_date.iter().take(5) {
        let body = download(&h, &ck, it["id"].as_str().unwrap(), None, false).await;
        let exif = exif::Reader::new()
            .read_from_container(&mut std::io::Cursor::new(&body))
            .unwrap();
        let f = exif
            .get_field(exif::Tag::DateTimeOriginal, exif::In::PRIMARY)
            .unwrap();
        let exif::Value::Ascii(ref v) = f.value else {
            panic!()
        };
        assert_eq!(
            std::str::from_utf8(&v[0]).unwrap(),
            it["exifInfo"]["dateTime"].as_str().unwrap()
        );
        let w = exif
            .get_field(exif::Tag::PixelXDimension, exif::In::PRIMARY)
            .unwrap();
        assert_eq!(
            w.value.get_uint(0).unwrap() as u64,
            it["exifInfo"]["imageWidth"].as_u64().unwrap()
        );
        assert!(exif
            .get_field(exif::Tag::DateTime, exif::In::PRIMARY)
            .is_some());
    }
    // A screenshot has no EXIF at all.
    let shot = listed.iter().find(|i| i["groupId"] == 2).unwrap();
    assert!(shot["exifInfo"].get("dateTime").is_none());
    let body = download(&h, &ck, shot["id"].as_str().unwrap(), None, false).await;
    assert!(exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(&body))
        .is_err());
    // `file` (when installed) recognises a generated photo and a generated video.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.jpg");
    std::fs::write(
        &p,
        download(&h, &ck, with_date[0]["id"].as_str().unwrap(), None, false).await,
    )
    .unwrap();
    if let Ok(out) = std::process::Command::new("file").arg(&p).output() {
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(s.contains("JPEG image data") && s.contains("Exif"), "{s}");
    }
}

#[tokio::test]
async fn urls_follow_the_host_header() {
    let h = start(SimConfig::demo()).await;
    let v = as_json(
        client()
            .get(format!("{}/api/user/login", h.base_url()))
            .header("Host", "proxy.example:8443")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let url = v["data"]["loginUrl"].as_str().unwrap();
    assert!(url.starts_with("http://proxy.example:8443/pass/serviceLogin?callback=http%3A%2F%2Fproxy.example%3A8443%2Fsts"), "{url}");
}

#[tokio::test]
async fn from_dir_serves_a_folder() {
    // Take a generated photo with EXIF as the sample file.
    let gen = start(SimConfig::demo()).await;
    let gck = session(&gen).await;
    let truth = truth_items(&gen).await;
    let sample = truth
        .iter()
        .find(|t| t["exifDateTime"].is_string() && t["albumId"] == "1")
        .unwrap();
    let jpeg = download(&gen, &gck, sample["id"].as_str().unwrap(), None, false).await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("top.jpg"), &jpeg).unwrap();
    std::fs::create_dir(dir.path().join("旅行")).unwrap();
    std::fs::write(dir.path().join("旅行").join("note.txt"), b"hello").unwrap();
    std::fs::write(dir.path().join("旅行").join("clip.MP4"), vec![7u8; 5000]).unwrap();
    let h = start(SimConfig {
        from_dir: Some(dir.path().to_path_buf()),
        ..SimConfig::demo()
    })
    .await;
    let ck = session(&h).await;
    let items = truth_items(&h).await;
    assert_eq!(items.len(), 3);
    let top = items.iter().find(|t| t["fileName"] == "top.jpg").unwrap();
    assert_eq!(top["albumId"], "1");
    assert_eq!(top["exifDateTime"], sample["exifDateTime"]);
    assert_eq!(
        top["dateTaken"], sample["dateTaken"],
        "EXIF time read as UTC+8"
    );
    assert_eq!(top["sha1"].as_str().unwrap(), sha1_hex(&jpeg));
    let clip = items.iter().find(|t| t["fileName"] == "clip.MP4").unwrap();
    assert_eq!(clip["mimeType"], "video/mp4");
    let albums = get_json(&h, &ck, "/gallery/user/album/list?pageNum=0&pageSize=10").await;
    let user: Vec<&Value> = albums["data"]["albums"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"].is_string())
        .collect();
    assert_eq!(user.len(), 1);
    assert_eq!(user[0]["name"], "旅行");
    assert_eq!(user[0]["mediaCount"], 2);
    for t in &items {
        let body = download(&h, &ck, t["id"].as_str().unwrap(), None, true).await;
        assert_eq!(sha1_hex(&body), t["sha1"].as_str().unwrap());
    }
    // An unusable folder is an error.
    let err = sim::start(
        SimConfig {
            from_dir: Some(dir.path().join("missing")),
            ..SimConfig::demo()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    assert!(err.is_err());
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let h = start(SimConfig {
        items: 12,
        ..SimConfig::demo()
    })
    .await;
    let url = format!("{}/_sim/stats", h.base_url());
    assert!(reqwest::get(&url).await.unwrap().status().is_success());
    drop(h);
    // The server task winds down on its own: poll until the port refuses.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while reqwest::get(&url).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still serving 30 s after the handle was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn binary_prints_listening_line_and_serves() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_micloud-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--items",
            "12",
            "--albums",
            "2",
            "--seed",
            "3",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    assert!(
        base.starts_with("http://127.0.0.1:") && !base.ends_with(":0"),
        "{line}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let items = rt.block_on(async {
        as_json(reqwest::get(format!("{base}/_sim/items")).await.unwrap()).await
    });
    assert_eq!(items.as_array().unwrap().len(), 12);
    child.kill().unwrap();
    child.wait().unwrap();

    let bad_flag = Command::new(env!("CARGO_BIN_EXE_micloud-sim"))
        .arg("--items=many")
        .output()
        .unwrap();
    assert_eq!(bad_flag.status.code(), Some(2));
    let bad_dir = Command::new(env!("CARGO_BIN_EXE_micloud-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--from-dir",
            "/nonexistent/micloud-sim",
        ])
        .output()
        .unwrap();
    assert_eq!(bad_dir.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_dir.stderr).contains("--from-dir"));
}

#[tokio::test]
async fn cache_busters_and_unknown_parameters_change_nothing() {
    let h = start(SimConfig::demo()).await;
    let ck = session(&h).await;
    let plain = get_json(&h, &ck, "/gallery/user/galleries?pageNum=0&pageSize=20").await;
    let busted = get_json(
        &h,
        &ck,
        "/gallery/user/galleries?ts=1700000000000&_dc=1700000000001&numOfThumbnails=1&isShared=false&pageNum=0&pageSize=20",
    )
    .await;
    let ids = |v: &Value| -> Vec<Value> {
        v["data"]["galleries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect()
    };
    assert_eq!(ids(&plain).len(), 20);
    assert_eq!(ids(&plain), ids(&busted));
    assert_eq!(plain["data"]["isLastPage"], busted["data"]["isLastPage"]);
    let albums = get_json(
        &h,
        &ck,
        "/gallery/user/album/list?_dc=5&pageNum=0&pageSize=50",
    )
    .await;
    assert_envelope(&albums);
    assert!(!albums["data"]["albums"].as_array().unwrap().is_empty());
}

#[test]
fn binary_on_a_taken_port_says_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_micloud-sim"))
        .args([
            "--listen",
            &addr,
            "--items",
            "3",
            "--sizes",
            "small",
            "--no-cache",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot start"), "{err}");
    assert!(err.contains("--listen 127.0.0.1:0"), "{err}");
}
