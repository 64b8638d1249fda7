//! Account status endpoints the gallery page calls (spec §3.7): profile, quota, VIP level.
//!
//! - `GET /status/lite/profile` → `{nickname, icon}` (`"micloud-sim"`, empty icon URL).
//! - `GET /status/lite/alldetail` → the quota: a 5 GiB basic plan (`totalQuota`,
//!   `totalDetail.basicQuota`), `used` = gallery + recordings, `usedDetail.GalleryImage.size` =
//!   the bytes of every live item (the recycle bin is not counted, [U]),
//!   `usedDetail.Recorder.size` = the live recordings; `quotaStatus` is `low_percent` below
//!   90 %, `high_percent` up to 100 %, then `full` (the last two strings are [U]).
//! - `GET /status/vip/level` → `{total, expireTime, level:"FirstLevel", autoRenewal}`;
//!   `GET /status/user/videoplay/level` → `{level:"VIP"}`.
//!
//! All need a live session. Sums walk the gallery (O(n)); the page calls them once.

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use crate::http::reply::ok;
use crate::http::state::{Session, Shared};

/// The basic free plan: 5 GiB.
pub const BASIC_QUOTA: u64 = 5 * 1024 * 1024 * 1024;

pub async fn profile(_: Session) -> Response {
    ok(json!({"nickname": "micloud-sim", "icon": ""}))
}

pub async fn all_detail(State(app): State<Shared>, _: Session) -> Response {
    let g = app.gallery();
    let gallery: u64 = g.items.iter().map(|it| it.size).sum();
    let recorder: u64 = g
        .recordings
        .iter()
        .filter(|r| !r.deleted)
        .map(|r| r.file.size)
        .sum();
    let used = gallery.saturating_add(recorder);
    let status = if used >= BASIC_QUOTA {
        "full"
    } else if used.saturating_mul(10) >= BASIC_QUOTA.saturating_mul(9) {
        "high_percent"
    } else {
        "low_percent"
    };
    ok(json!({
        "level": "FirstLevel",
        "totalQuota": BASIC_QUOTA,
        "used": used,
        "settingType": "AutoRenewal",
        "autoRenewal": false,
        "quotaStatus": status,
        "currentRecordIsLongTermRecord": false,
        "totalDetail": {
            "yearlyPackageType": "",
            "extendPackageSize": 0,
            "bonusSize": 0,
            "basicQuota": BASIC_QUOTA,
            "yearlyPackageExpireTime": 0,
            "yearlyPackageSize": 0,
        },
        "usedDetail": {
            "GalleryImage": {"size": gallery, "text": "相册"},
            "Recorder": {"size": recorder, "text": "录音"},
            "AppList": {"size": 0, "text": "应用数据"},
            "Creation": {"size": 0, "text": "创作"},
        },
    }))
}

pub async fn vip_level(_: Session) -> Response {
    ok(json!({
        "total": BASIC_QUOTA,
        "expireTime": 0,
        "level": "FirstLevel",
        "autoRenewal": false,
    }))
}

pub async fn videoplay_level(_: Session) -> Response {
    ok(json!({"level": "VIP"}))
}
