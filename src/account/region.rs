//! Regions: which Xiaomi Cloud host holds an account's gallery (spec §1.1).
//!
//! Data lives only on the account's regional host: `cn` is `https://i.mi.com`, the overseas
//! copies are `us.`, `eu.` and `in.i.mi.com` (seen in public tools). `sg` follows the same
//! pattern (`sg.i.mi.com`) but no public capture confirms it; a user whose browser shows
//! another host after logging in passes that host with `--api-base`. Every region logs in at
//! `https://account.xiaomi.com`; overseas logins add `policyName=globalmiaccount`.
//!
//! Since 2023 only accounts registered in mainland China (`i.mi.com`) still have a gallery:
//! Xiaomi ended gallery sync for every other region and deleted the data (reference §10.1).
//! The region still names the account's host and its passport policy; an empty or refused
//! gallery of another region is explained by [`no_gallery_note`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The passport (login) host of every region.
pub const PASSPORT_BASE: &str = "https://account.xiaomi.com";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    #[default]
    Cn,
    Us,
    Eu,
    In,
    Sg,
}

impl Region {
    pub const ALL: [Region; 5] = [Region::Cn, Region::Us, Region::Eu, Region::In, Region::Sg];

    pub fn code(self) -> &'static str {
        match self {
            Region::Cn => "cn",
            Region::Us => "us",
            Region::Eu => "eu",
            Region::In => "in",
            Region::Sg => "sg",
        }
    }

    /// The web cloud host of the region.
    pub fn api_base(self) -> &'static str {
        match self {
            Region::Cn => "https://i.mi.com",
            Region::Us => "https://us.i.mi.com",
            Region::Eu => "https://eu.i.mi.com",
            Region::In => "https://in.i.mi.com",
            Region::Sg => "https://sg.i.mi.com",
        }
    }

    /// Outside mainland China (adds `policyName=globalmiaccount` to password logins).
    pub fn overseas(self) -> bool {
        self != Region::Cn
    }

    /// The region whose host is `api_base`, if it is one of ours.
    pub fn of_api_base(api_base: &str) -> Option<Region> {
        let trimmed = api_base.trim_end_matches('/');
        Region::ALL.into_iter().find(|r| r.api_base() == trimmed)
    }
}

/// One line for an account of another region whose gallery is empty or refused (§10.1);
/// `None` for mainland China or a custom host.
pub fn no_gallery_note(region: Option<Region>) -> Option<String> {
    let r = region.filter(|r| r.overseas())?;
    Some(format!(
        "this account is of region {} ({}): Xiaomi closed the cloud gallery of every region \
         but mainland China in 2023 and deleted its photos, so there is nothing to copy here; \
         only accounts registered in mainland China (i.mi.com) still have a gallery",
        r.code(),
        r.api_base()
    ))
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Region {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::ALL
            .into_iter()
            .find(|r| r.code().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a region; use cn (mainland China, i.mi.com), us, eu, in or sg \
                     (the host your browser shows after logging in to i.mi.com)"
                )
            })
    }
}

/// The passport base for an API base: Xiaomi's own hosts log in at account.xiaomi.com; any
/// other host (the emulator, a test server) plays the passport itself.
pub fn passport_base_for(api_base: &str) -> String {
    let host = url::Url::parse(api_base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    if host == "mi.com" || host.ends_with(".mi.com") {
        PASSPORT_BASE.to_string()
    } else {
        api_base.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_hosts() {
        for r in Region::ALL {
            assert_eq!(r.code().parse::<Region>().unwrap(), r);
            assert_eq!(Region::of_api_base(r.api_base()), Some(r));
        }
        assert_eq!("EU".parse::<Region>().unwrap(), Region::Eu);
        assert!("mars".parse::<Region>().unwrap_err().contains("cn"));
        assert!(!Region::Cn.overseas() && Region::Sg.overseas());
        assert_eq!(Region::of_api_base("https://i.mi.com/"), Some(Region::Cn));
    }

    #[test]
    fn passport_host_follows_the_api_host() {
        assert_eq!(passport_base_for("https://eu.i.mi.com"), PASSPORT_BASE);
        assert_eq!(
            passport_base_for("http://127.0.0.1:9000"),
            "http://127.0.0.1:9000"
        );
    }
}
