//! Every URL the emulator hands out, and the signatures that make them tamper-evident.
//!
//! All URLs are absolute: `<base>/...`, where the base (scheme, host, port) is `--public-url`
//! when given, else built from the request's `Host` by [`base_for`]: `https://` for the real
//! Xiaomi host names (`i.mi.com`, `us.i.mi.com`, `account.xiaomi.com`, any `*.mi.com` or
//! `*.xiaomi.com`, as a client reaching the emulator through a hosts-file or DNS override
//! expects), `http://` for anything else; a missing or odd Host falls back to the bound
//! address. So the emulator works behind a proxy or port-forward. Signatures are the first 16 bytes of SHA-1(secret ‖ fields), URL-safe
//! base64: 22 characters, not forgeable without the per-instance 32-byte secret.
//!
//! Layout:
//! - passport: `/pass/serviceLogin?callback=<enc /sts?sign=..&followup=..>&sid=i.mi.com&...`
//! - URL-A (JSONP): `/_kss/jsonp?id=&cb=&e=<expiry ms>&sig=`
//! - URL-B (file):  `/_kss/2/<bucket>/download_file?attachment=0&fn=<b64url name>&ct=<mime>&id=&e=&sig=`
//!   with `meta` = b64url(16 random bytes ‖ 16-byte MAC over id, expiry and those bytes)
//! - thumbnails:    `/_kss/2/<bucket>/get_thumbnail?id=&w=&h=&ts=<expiry ms>&sig=` (24 h)

use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::RngCore;
use sha1::{Digest, Sha1};

/// `encodeURIComponent`'s unreserved set.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The KSS bucket segment seen on China `ali.` nodes (spec §1.1).
pub const BUCKET: &str = "1566455553514";
/// Thumbnail URLs live 24 h (spec §3.11).
pub const THUMB_TTL_MS: i64 = 86_400_000;

pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// Keep a Host header only if it looks like `host[:port]`.
pub fn sane_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
}

/// `scheme://host[:port]` for a request whose `Host` is `host` (see the module doc).
pub fn base_for(host: &str) -> String {
    let name = match host.rsplit_once(':') {
        Some((n, port)) if !n.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let xiaomi = ["mi.com", "xiaomi.com"]
        .iter()
        .any(|d| name == *d || name.ends_with(&format!(".{d}")));
    let scheme = if xiaomi { "https" } else { "http" };
    format!("{scheme}://{host}")
}

pub struct Signer {
    secret: [u8; 32],
}

impl Default for Signer {
    fn default() -> Self {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        Signer { secret }
    }
}

impl Signer {
    fn mac(&self, fields: &[&[u8]]) -> [u8; 20] {
        let mut h = Sha1::new();
        h.update(self.secret);
        for f in fields {
            h.update((f.len() as u32).to_be_bytes());
            h.update(f);
        }
        h.finalize().into()
    }

    pub fn sig(&self, fields: &[&str]) -> String {
        let f: Vec<&[u8]> = fields.iter().map(|s| s.as_bytes()).collect();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.mac(&f)[..16])
    }

    pub fn check(&self, fields: &[&str], sig: &str) -> bool {
        self.sig(fields) == sig
    }

    /// The `sign` of an STS callback: standard base64 of a 20-byte MAC, like the real one.
    pub fn sts_sign(&self, followup: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.mac(&[b"sts", followup.as_bytes()]))
    }

    /// `<base>/sts?sign=..&followup=..`
    pub fn sts_callback(&self, base: &str, followup: &str) -> String {
        format!(
            "{base}/sts?sign={}&followup={}",
            enc(&self.sts_sign(followup)),
            enc(followup)
        )
    }

    /// The passport login URL (`data.loginUrl`, and `D` of the 401 body).
    pub fn login_url(&self, base: &str, followup: &str) -> String {
        format!(
            "{base}/pass/serviceLogin?callback={}&sid=i.mi.com&_group=DEFAULT&checkSafePhone=true&_bal=true",
            enc(&self.sts_callback(base, followup))
        )
    }

    pub fn url_a(&self, base: &str, id: &str, cb: &str, exp: i64) -> String {
        let e = exp.to_string();
        let sig = self.sig(&["A", id, cb, &e]);
        format!("{base}/_kss/jsonp?id={id}&cb={}&e={e}&sig={sig}", enc(cb))
    }

    pub fn url_b(&self, base: &str, id: &str, name: &str, mime: &str, exp: i64) -> String {
        let e = exp.to_string();
        let sig = self.sig(&["B", id, &e]);
        let fname = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name.as_bytes());
        format!(
            "{base}/_kss/2/{BUCKET}/download_file?attachment=0&fn={fname}&ct={}&id={id}&e={e}&sig={sig}",
            enc(mime)
        )
    }

    pub fn meta(&self, id: &str, exp: i64) -> String {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let mac = self.mac(&[b"M", id.as_bytes(), exp.to_string().as_bytes(), &salt]);
        let mut raw = salt.to_vec();
        raw.extend_from_slice(&mac[..16]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn check_meta(&self, id: &str, exp: i64, meta: &str) -> bool {
        let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(meta.trim()) else {
            return false;
        };
        if raw.len() != 32 {
            return false;
        }
        let mac = self.mac(&[b"M", id.as_bytes(), exp.to_string().as_bytes(), &raw[..16]]);
        mac[..16] == raw[16..]
    }

    pub fn thumb_url(&self, base: &str, id: &str, px: u32, exp: i64) -> String {
        let e = exp.to_string();
        let sig = self.sig(&["T", id, &e]);
        format!("{base}/_kss/2/{BUCKET}/get_thumbnail?id={id}&w={px}&h={px}&ts={e}&r=0&type=2&sig={sig}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xiaomi_hosts_get_https() {
        assert_eq!(base_for("i.mi.com"), "https://i.mi.com");
        assert_eq!(base_for("us.i.mi.com"), "https://us.i.mi.com");
        assert_eq!(
            base_for("account.xiaomi.com:443"),
            "https://account.xiaomi.com:443"
        );
        assert_eq!(base_for("127.0.0.1:8765"), "http://127.0.0.1:8765");
        assert_eq!(base_for("notmi.com"), "http://notmi.com");
        assert_eq!(base_for("[::1]:80"), "http://[::1]:80");
    }
}
