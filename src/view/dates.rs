//! The capture month of an item, which places it under `by-date/<YYYY>/<MM>/`.
//!
//! 1. `exif_date_time` (`"YYYY:MM:DD HH:MM:SS"`, camera-local, so it is used as is with no
//!    zone conversion) when its date part is a real calendar date with a year in 1970..=2100.
//!    Cameras write `0000:00:00 00:00:00` for "unknown"; that and other junk fall through.
//!    `-` is accepted as a date separator too; the time part is not looked at.
//! 2. else `date_taken_ms` converted into the configured zone (`chrono::Local` for
//!    [`DateZone::Local`]), when it is representable with a year in 1..=9999 (so the year
//!    directory is always 4 digits);
//! 3. else `create_time_ms` the same way;
//! 4. else 1970-01. An item is never dropped for a bad date.

use chrono::{DateTime, Datelike, NaiveDate};

use super::DateZone;
use crate::model::Item;

/// The (year, month) of an EXIF `DateTime` string, when it is a plausible date.
pub fn exif_month(s: &str) -> Option<(i32, u32)> {
    let b = s.trim().as_bytes();
    if b.len() < 10 {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let sep = |c: u8| c == b':' || c == b'-';
    if !sep(b[4]) || !sep(b[7]) {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = digits(5..7)?;
    let day = digits(8..10)?;
    if !(1970..=2100).contains(&year) {
        return None;
    }
    NaiveDate::from_ymd_opt(year, month, day)?;
    Some((year, month))
}

/// The (year, month) of an instant in `zone`, when representable with a year in 1..=9999.
pub fn zone_month(ms: i64, zone: &DateZone) -> Option<(i32, u32)> {
    let utc = DateTime::from_timestamp_millis(ms)?;
    let (year, month) = match zone {
        DateZone::Local => {
            let t = utc.with_timezone(&chrono::Local);
            (t.year(), t.month())
        }
        DateZone::Named(tz) => {
            let t = utc.with_timezone(tz);
            (t.year(), t.month())
        }
    };
    (1..=9999).contains(&year).then_some((year, month))
}

/// The month directory an item goes into (see the module doc for the order of sources).
pub fn capture_month(item: &Item, zone: &DateZone) -> (i32, u32) {
    item.exif_date_time
        .as_deref()
        .and_then(exif_month)
        .or_else(|| zone_month(item.date_taken_ms, zone))
        .or_else(|| zone_month(item.create_time_ms, zone))
        .unwrap_or((1970, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exif_parsing() {
        assert_eq!(exif_month("2024:06:10 10:15:00"), Some((2024, 6)));
        assert_eq!(exif_month(" 2024-12-31 23:59:59 "), Some((2024, 12)));
        assert_eq!(exif_month("2024:06:10"), Some((2024, 6)));
        assert_eq!(exif_month("0000:00:00 00:00:00"), None);
        assert_eq!(exif_month("2024:13:01 00:00:00"), None);
        assert_eq!(exif_month("2023:02:29 00:00:00"), None);
        assert_eq!(exif_month("1969:12:31 00:00:00"), None);
        assert_eq!(exif_month("2101:01:01 00:00:00"), None);
        assert_eq!(exif_month("20a4:06:10 10:15:00"), None);
        assert_eq!(exif_month("日本語日本語"), None);
        assert_eq!(exif_month(""), None);
    }

    #[test]
    fn zone_conversion() {
        let shanghai = DateZone::Named(chrono_tz::Asia::Shanghai);
        let ms = 1_719_777_600_000; // 2024-06-30T20:00:00Z
        assert_eq!(zone_month(ms, &shanghai), Some((2024, 7)));
        assert_eq!(
            zone_month(ms, &DateZone::Named(chrono_tz::UTC)),
            Some((2024, 6))
        );
        assert_eq!(zone_month(i64::MAX, &shanghai), None);
        assert_eq!(zone_month(-70_000_000_000_000, &shanghai), None); // year -248
    }
}
