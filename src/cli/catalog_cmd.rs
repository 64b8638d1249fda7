//! `refresh`, `ls` and `stats`: the catalog from outside the mount.
//!
//! - `refresh MOUNTPOINT` reads the daemon's pid and refresh count from the mount root's
//!   `user.micloudfs.pid` / `user.micloudfs.refreshes` attributes, sends it SIGUSR1, and waits
//!   until the count moves; it prints the daemon's line about the refresh.
//! - `ls [PATH]` builds the tree from the catalog (with the names the mount handed out) and
//!   lists one folder as `ls -l` would, without mounting or any network.
//! - `stats` sums the catalog per album, type and year, with how much of it is in the cache.
//! - `status [MOUNTPOINT]` prints a mount's status file (see `status`).

use std::path::Path;
use std::time::{Duration, Instant};

use super::{CatalogArgs, LsArgs, RefreshArgs, StatusArgs};
use crate::account::{self, AccountStore};
use crate::catalog::{catalog_path, Catalog, Store};
use crate::view::{DateZone, NodeKind, View, ViewOptions};

fn get_xattr(path: &Path, name: &str) -> Result<String, String> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| "the path contains a NUL byte".to_string())?;
    let n = std::ffi::CString::new(name).map_err(|_| "bad attribute name".to_string())?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and a buffer of the given length.
    let len = unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    buf.truncate(len as usize);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

pub(crate) fn refresh(args: RefreshArgs) -> Result<(), String> {
    let mnt = &args.mountpoint;
    let not_ours = |e: String| {
        format!(
            "{} is not a running micloudfs mount ({e}); mount it first with `micloudfs mount {}`",
            mnt.display(),
            mnt.display()
        )
    };
    let pid: i32 = get_xattr(mnt, "user.micloudfs.pid")
        .map_err(not_ours)?
        .trim()
        .parse()
        .map_err(|_| not_ours("no daemon pid".into()))?;
    let count = || -> Result<u64, String> {
        get_xattr(mnt, "user.micloudfs.refreshes")
            .map_err(not_ours)?
            .trim()
            .parse()
            .map_err(|_| not_ours("no refresh count".into()))
    };
    let before = count()?;
    // SAFETY: sending a signal to a pid; no memory involved.
    if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
        return Err(format!(
            "cannot signal the daemon of {} (pid {pid}): {}",
            mnt.display(),
            std::io::Error::last_os_error()
        ));
    }
    let start = Instant::now();
    while count()? == before {
        if start.elapsed() > Duration::from_secs(args.timeout) {
            return Err(format!(
                "the refresh of {} did not finish within {} s; it goes on in the daemon (see its log)",
                mnt.display(),
                args.timeout
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = get_xattr(mnt, "user.micloudfs.last_refresh").unwrap_or_default();
    if line.starts_with("ok") {
        println!(
            "refreshed {}: {}",
            mnt.display(),
            line.trim_start_matches("ok: ")
        );
        Ok(())
    } else {
        Err(format!(
            "the refresh of {} did not complete: {line}",
            mnt.display()
        ))
    }
}

/// The catalog that `args` name; an error saying how to make one when there is none.
fn open_catalog(args: &CatalogArgs) -> Result<Store, String> {
    let cache_dir = account::cache_dir(args.cache_dir.clone())?;
    let name = if args.demo {
        "demo".to_string()
    } else {
        let config_dir = account::config_dir(args.config_dir.clone())?;
        let store = AccountStore::open(&config_dir)?;
        store.resolve(args.account.as_deref())?.name
    };
    let path = catalog_path(&cache_dir, &name);
    match Store::open_existing(&path).map_err(|e| e.to_string())? {
        Some(s) => Ok(s),
        None => Err(format!(
            "there is no catalog of account {name:?} in {} yet: mount the gallery once \
             (micloudfs mount MOUNTPOINT) and it is kept there",
            cache_dir.display()
        )),
    }
}

fn zone(args: &CatalogArgs) -> Result<DateZone, String> {
    match args.timezone.as_deref() {
        None | Some("local") => Ok(DateZone::Local),
        Some(name) => name.parse().map(DateZone::Named).map_err(|_| {
            format!(
                "--timezone {name:?} is not a time zone; use an IANA name such as Asia/Shanghai"
            )
        }),
    }
}

pub(crate) fn ls(args: LsArgs) -> Result<(), String> {
    let store = open_catalog(&args.catalog)?;
    let catalog = Catalog::load(&store).map_err(|e| e.to_string())?;
    let view = View::of_catalog(
        &catalog,
        &ViewOptions {
            zone: zone(&args.catalog)?,
            include_private: args.catalog.include_private,
        },
    );
    let mut ino = crate::view::ROOT_INO;
    for part in args.path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        ino = view
            .lookup(ino, part)
            .ok_or_else(|| {
                format!(
                    "{:?} is not in the catalog (micloudfs ls shows what is)",
                    args.path
                )
            })?
            .ino;
    }
    let node = view.node(ino).ok_or("the catalog has no such node")?;
    let kids: Vec<u64> = match view.children(ino) {
        Some(k) => k.to_vec(),
        None => vec![node.ino],
    };
    let mut out = String::new();
    for k in kids {
        let Some(n) = view.node(k) else { continue };
        let kind = if n.kind == NodeKind::Dir { 'd' } else { '-' };
        let when = chrono::DateTime::from_timestamp_millis(n.mtime_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        out.push_str(&format!("{kind} {:>12} {when} {}\n", n.size, n.name));
    }
    print!("{out}");
    Ok(())
}

fn human(bytes: u64) -> String {
    bytesize::ByteSize(bytes).to_string()
}

pub(crate) fn stats(args: CatalogArgs) -> Result<(), String> {
    let store = open_catalog(&args)?;
    let cache_dir = account::cache_dir(args.cache_dir.clone())?;
    let objects = cache_dir.join("objects");
    let is_cached = |sha1: &[u8]| {
        let hex = hex::encode(sha1);
        hex.len() == 40 && objects.join(&hex[..2]).join(&hex).exists()
    };
    let albums = store.albums().map_err(|e| e.to_string())?;
    let names: std::collections::HashMap<String, String> = albums
        .iter()
        .map(|r| {
            let label = r
                .dir
                .as_ref()
                .map(|d| d.name.clone())
                .or_else(|| r.album.id.system_name().map(str::to_string))
                .or_else(|| r.album.name.clone())
                .unwrap_or_else(|| format!("Album {}", r.album.id));
            ((r.album.id.0 as i64).to_string(), label)
        })
        .collect();
    let table =
        |title: &str, key: &str, label: &dyn Fn(&str) -> String| -> Result<String, String> {
            let rows = store
                .group_stats(key, &is_cached)
                .map_err(|e| e.to_string())?;
            let mut s = format!(
                "{title:<24} {:>9} {:>11} {:>9} {:>11}\n",
                "items", "bytes", "cached", "cached B"
            );
            for (k, n, b, cn, cb) in rows {
                s.push_str(&format!(
                    "{:<24} {n:>9} {:>11} {cn:>9} {:>11}\n",
                    label(&k),
                    human(b),
                    human(cb)
                ));
            }
            Ok(s)
        };
    let mut out = String::new();
    out.push_str(&table("album", "album_id", &|k| {
        names
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("Album {k}"))
    })?);
    out.push('\n');
    out.push_str(&table(
        "type",
        "CASE kind WHEN 0 THEN 'image' WHEN 1 THEN 'video' ELSE 'other' END",
        &|k| k.to_string(),
    )?);
    out.push('\n');
    out.push_str(&table(
        "year (dateTaken, UTC)",
        "strftime('%Y', date_taken_ms / 1000, 'unixepoch')",
        &|k| k.to_string(),
    )?);
    out.push('\n');
    out.push_str(&table("total", "'all'", &|k| k.to_string())?);
    let incomplete: Vec<String> = albums
        .iter()
        .filter(|r| r.state != crate::catalog::AlbumState::Complete)
        .map(|r| {
            let name = names
                .get(&(r.album.id.0 as i64).to_string())
                .cloned()
                .unwrap_or_default();
            format!(
                "  {name} (album {}): {}",
                r.album.id,
                r.error
                    .clone()
                    .unwrap_or_else(|| "not listed completely yet".into())
            )
        })
        .collect();
    let recordings = store.recordings().map_err(|e| e.to_string())?;
    if !recordings.is_empty() {
        let bytes: u64 = recordings.iter().map(|r| r.entry.size).sum();
        out.push_str(&format!(
            "\nrecordings: {} ({})\n",
            recordings.len(),
            human(bytes)
        ));
    }
    if let Ok(Some(ms)) = store.meta("last_sync_ms") {
        if let Some(t) = ms
            .parse()
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis)
        {
            out.push_str(&format!(
                "\nlast synced: {}\n",
                t.format("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
    }
    if incomplete.is_empty() {
        out.push_str("every album is listed completely\n");
    } else {
        out.push_str(&format!(
            "incomplete albums ({}):\n{}\n",
            incomplete.len(),
            incomplete.join("\n")
        ));
    }
    print!("{out}");
    Ok(())
}

pub(crate) fn status(args: StatusArgs) -> Result<(), String> {
    let path = match &args.mountpoint {
        Some(mnt) => get_xattr(mnt, "user.micloudfs.status")
            .map(std::path::PathBuf::from)
            .map_err(|e| {
                format!(
                    "{} is not a running micloudfs mount ({e}); give no mount point to read the last status in --cache-dir",
                    mnt.display()
                )
            })?,
        None => account::cache_dir(args.cache_dir.clone())?.join(super::status::STATUS_FILE),
    };
    let s = super::status::read(&path)?;
    if args.json {
        let json = serde_json::to_string_pretty(&s).map_err(|e| e.to_string())?;
        println!("{json}");
    } else {
        print!("{}", super::status::render(&s));
    }
    Ok(())
}
