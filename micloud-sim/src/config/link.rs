//! The link's settings: per-request latency, bandwidth caps, deep-page slowdown, and how the
//! emulator looks from outside (Range support on downloads, the public URL). The shaping
//! itself is in [`crate::link`].
//!
//! - `--latency-ms N`: every protocol request waits N ms before its handler runs, so the whole
//!   response (headers included) starts N ms late. `/_sim/*` is the test's side channel and is
//!   not delayed.
//! - `--page-latency-growth MS`: a request carrying `pageNum=P` waits another MS × P ms
//!   (spec §5.3: deep pages are slow, issue #48).
//! - `--bandwidth-per-conn B`, `--bandwidth-total B`: bytes per second per TCP connection and
//!   over all connections, enforced on every byte the server writes (see
//!   [`crate::link::throttle`]).
//!   Sizes accept units: `8MB` = 8 000 000, `8MiB` = 8 388 608.
//! - `--profile wan|lan`: `wan` = 40 ms latency, 8 MB/s per connection, 64 MB/s in total;
//!   `lan` = nothing. A flag given explicitly overrides the profile's value; 0 turns a
//!   setting off.
//! - `--range on|off` (default off): whether the step-3 download honours `Range` (spec §4.4 is
//!   [U], so both behaviours are playable).
//! - `--public-url URL`: the scheme, host and port every handed-out URL starts with (for a
//!   proxy or port-forward in front of the emulator); without it, URLs follow the request's
//!   `Host` (see [`crate::protocol::urls::base_for`]); [`parse_public_url`] reduces the flag to
//!   `scheme://host[:port]`.

use std::time::Duration;

/// `--profile` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// 40 ms latency, 8 MB/s per connection, 64 MB/s in total.
    Wan,
    /// No shaping.
    Lan,
}

/// `--range` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RangeMode {
    /// Honour `Range: bytes=...` with 206 / 416.
    On,
    /// Ignore `Range`: always 200 with the whole file.
    #[default]
    Off,
}

/// Link shaping settings (`micloud-sim` flags, flattened into its command line).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct LinkConfig {
    /// Preset link: wan (40 ms, 8 MB/s per connection, 64 MB/s total) or lan (no shaping);
    /// explicit flags override it.
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    /// Milliseconds added before every protocol response.
    #[arg(long, value_name = "MS")]
    pub latency_ms: Option<u64>,
    /// Bytes per second per TCP connection (units allowed: 8MB, 512KiB; 0 = no cap).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub bandwidth_per_conn: Option<u64>,
    /// Bytes per second over all connections together (units allowed; 0 = no cap).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub bandwidth_total: Option<u64>,
    /// Extra milliseconds per page on requests carrying `pageNum` (page P waits MS × P more).
    #[arg(long, value_name = "MS")]
    pub page_latency_growth: Option<u64>,
    /// Whether the file download honours HTTP Range requests.
    #[arg(long, value_enum, default_value_t = RangeMode::Off)]
    pub range: RangeMode,
    /// Build every handed-out URL from this scheme://host[:port] instead of the Host header.
    #[arg(long, value_name = "URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
}

/// The settings in force once the profile is applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effective {
    pub latency: Duration,
    pub page_growth: Duration,
    /// Bytes per second; `None` = no cap.
    pub per_conn: Option<u64>,
    pub total: Option<u64>,
}

pub const WAN_LATENCY_MS: u64 = 40;
pub const WAN_PER_CONN: u64 = 8_000_000;
pub const WAN_TOTAL: u64 = 64_000_000;

impl LinkConfig {
    pub fn effective(&self) -> Effective {
        let (lat, per, total) = match self.profile {
            Some(Profile::Wan) => (WAN_LATENCY_MS, WAN_PER_CONN, WAN_TOTAL),
            Some(Profile::Lan) | None => (0, 0, 0),
        };
        let cap = |v: u64| (v > 0).then_some(v);
        Effective {
            latency: Duration::from_millis(self.latency_ms.unwrap_or(lat)),
            page_growth: Duration::from_millis(self.page_latency_growth.unwrap_or(0)),
            per_conn: cap(self.bandwidth_per_conn.unwrap_or(per)),
            total: cap(self.bandwidth_total.unwrap_or(total)),
        }
    }
}

/// A byte count with optional unit (`1500`, `8MB`, `512KiB`, `8MB/s`).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    t.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{s:?} is not a byte count ({e}); write e.g. 8000000, 8MB or 512KiB"))
}

/// `--public-url`: an http(s) URL with a host and nothing after it but an optional `/`;
/// returns `scheme://host[:port]`.
pub fn parse_public_url(s: &str) -> Result<String, String> {
    let u = url::Url::parse(s.trim()).map_err(|e| {
        format!("{s:?} is not a URL ({e}); write e.g. https://i.mi.com or http://192.168.1.5:8765")
    })?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "{s:?}: the public URL must start with http:// or https://"
        ));
    }
    let Some(host) = u.host_str() else {
        return Err(format!("{s:?}: the public URL needs a host name"));
    };
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() || !u.username().is_empty()
    {
        return Err(format!(
            "{s:?}: give only scheme, host and port (no path, query or user), e.g. https://i.mi.com"
        ));
    }
    Ok(match u.port() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wan_profile_sets_the_documented_values() {
        let c = LinkConfig {
            profile: Some(Profile::Wan),
            ..LinkConfig::default()
        };
        assert_eq!(
            c.effective(),
            Effective {
                latency: Duration::from_millis(40),
                page_growth: Duration::ZERO,
                per_conn: Some(8_000_000),
                total: Some(64_000_000),
            }
        );
    }

    #[test]
    fn explicit_flags_override_the_profile() {
        let c = LinkConfig {
            profile: Some(Profile::Wan),
            latency_ms: Some(5),
            bandwidth_per_conn: Some(0),
            ..LinkConfig::default()
        };
        let e = c.effective();
        assert_eq!(e.latency, Duration::from_millis(5));
        assert_eq!(e.per_conn, None);
        assert_eq!(e.total, Some(64_000_000));
    }

    #[test]
    fn lan_and_default_shape_nothing() {
        let lan = LinkConfig {
            profile: Some(Profile::Lan),
            ..LinkConfig::default()
        };
        assert_eq!(lan.effective(), Effective::default());
        assert_eq!(LinkConfig::default().effective(), Effective::default());
    }

    #[test]
    fn byte_counts_take_units() {
        assert_eq!(parse_bytes("1500"), Ok(1500));
        assert_eq!(parse_bytes("8MB"), Ok(8_000_000));
        assert_eq!(parse_bytes("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_bytes("8MB/s"), Ok(8_000_000));
        assert!(parse_bytes("fast").is_err());
    }

    #[test]
    fn public_url_is_reduced_to_its_origin() {
        assert_eq!(
            parse_public_url("https://i.mi.com/"),
            Ok("https://i.mi.com".into())
        );
        assert_eq!(
            parse_public_url("http://10.0.0.2:9000"),
            Ok("http://10.0.0.2:9000".into())
        );
        assert!(parse_public_url("ftp://x").is_err());
        assert!(parse_public_url("http://x/path").is_err());
        assert!(parse_public_url("i.mi.com").is_err());
    }
}
