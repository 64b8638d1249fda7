//! Server-local time: `i.mi.com` counts days in UTC+8 (China Standard Time, spec §3.5), and
//! camera EXIF dates are wall-clock times of the camera's own zone. Times are Unix
//! milliseconds.

use chrono::{DateTime, FixedOffset};

/// Seconds east of UTC of the server-local day (China Standard Time).
pub const SERVER_TZ_SECS: i32 = 8 * 3600;

/// UTC+8 wall-clock time of `ms`.
pub fn server_local(ms: i64) -> Option<DateTime<FixedOffset>> {
    let tz = FixedOffset::east_opt(SERVER_TZ_SECS)?;
    Some(DateTime::from_timestamp_millis(ms)?.with_timezone(&tz))
}

/// `yyyyMMdd` server-local day of `ms` as a number (the `dayCount` key and the `startDate`
/// unit).
pub fn day_num(ms: i64) -> u32 {
    use chrono::Datelike;
    server_local(ms)
        .map(|t| (t.year().clamp(0, 9999) as u32) * 10_000 + t.month() * 100 + t.day())
        .unwrap_or(19_700_101)
}

/// Unix ms of `y-m-d h:mi:s` in a zone `offset_secs` east of UTC.
pub fn local_ms(offset_secs: i32, y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    use chrono::TimeZone;
    FixedOffset::east_opt(offset_secs)
        .and_then(|tz| tz.with_ymd_and_hms(y, m, d, h, mi, s).single())
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

/// `YYYY:MM:DD HH:MM:SS` of `ms` in a zone `offset_secs` east of UTC.
pub fn exif_time(ms: i64, offset_secs: i32) -> String {
    FixedOffset::east_opt(offset_secs)
        .and_then(|tz| Some(DateTime::from_timestamp_millis(ms)?.with_timezone(&tz)))
        .map(|t| t.format("%Y:%m:%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "1970:01:01 00:00:00".to_string())
}
