//! `--from-dir DIR`: serve a real folder as the gallery.
//!
//! Files directly in DIR go to Camera (`1`); each subfolder becomes a user album named after
//! it, holding every regular file below it (recursively, by base name, so duplicates can
//! occur just as in the cloud). The mime type comes from the extension (unknown →
//! `application/octet-stream`, listed as `type:"image"`). The shooting time is EXIF
//! `DateTimeOriginal` read with `kamadak-exif`, taken as UTC+8 camera-local time and also
//! reported as `exifInfo.dateTime`; without it, the file's mtime. Ids are derived from the seed
//! and the relative path, so they are stable across restarts. Entries are sorted by name so
//! that the result does not depend on directory order. Symlinks are followed; anything that is
//! not a regular file is skipped.

use std::path::{Path, PathBuf};

use crate::model::item::{Album, Item, CAMERA, PRIVATE, SCREENSHOTS};
use crate::model::rng::{derive, hash_bytes, Rng};
use crate::model::source::Source;
use crate::model::time::SERVER_TZ_SECS;

#[derive(Debug, thiserror::Error)]
pub enum FromDirError {
    #[error("--from-dir {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--from-dir {0}: not a directory")]
    NotADirectory(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FromDirError + '_ {
    move |source| FromDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Mime type from a file name's extension.
pub fn mime_for(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("heic" | "heif") => "image/heic",
        Some("bmp") => "image/bmp",
        Some("dng") => "image/x-adobe-dng",
        Some("mp4" | "m4v") => "video/mp4",
        Some("mov") => "video/quicktime",
        Some("3gp") => "video/3gpp",
        Some("mkv") => "video/x-matroska",
        Some("webm") => "video/webm",
        _ => "application/octet-stream",
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, FromDirError> {
    let mut v = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err(dir))?;
    v.sort();
    Ok(v)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), FromDirError> {
    for p in sorted_entries(dir)? {
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => collect_files(&p, out)?,
            Ok(m) if m.is_file() => out.push(p),
            Ok(_) => {}
            Err(e) => tracing::warn!(path = %p.display(), error = %e, "skipping"),
        }
    }
    Ok(())
}

/// EXIF `DateTimeOriginal` as `YYYY:MM:DD HH:MM:SS`, if present and well-formed.
pub fn exif_date(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::BufReader::new(file))
        .ok()?;
    let field = exif
        .get_field(exif::Tag::DateTimeOriginal, exif::In::PRIMARY)
        .or_else(|| exif.get_field(exif::Tag::DateTime, exif::In::PRIMARY))?;
    let exif::Value::Ascii(ref v) = field.value else {
        return None;
    };
    let dt = exif::DateTime::from_ascii(v.first()?).ok()?;
    Some(format!(
        "{:04}:{:02}:{:02} {:02}:{:02}:{:02}",
        dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second
    ))
}

fn exif_to_ms(s: &str) -> Option<i64> {
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y:%m:%d %H:%M:%S").ok()?;
    Some(naive.and_utc().timestamp_millis() - i64::from(SERVER_TZ_SECS) * 1000)
}

fn mtime_ms(path: &Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Albums and items (without fingerprints) for the folder `root`.
pub fn scan(seed: u64, root: &Path) -> Result<(Vec<Album>, Vec<Item>), FromDirError> {
    let meta = std::fs::metadata(root).map_err(io_err(root))?;
    if !meta.is_dir() {
        return Err(FromDirError::NotADirectory(root.to_path_buf()));
    }
    let system = |id: &str| Album {
        id: id.to_string(),
        name: None,
        pinyin: None,
        created: 0,
    };
    let mut albums = vec![system(CAMERA), system(SCREENSHOTS), system(PRIVATE)];
    let mut groups: Vec<(String, Vec<PathBuf>)> = vec![(CAMERA.to_string(), Vec::new())];
    for p in sorted_entries(root)? {
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => groups[0].1.push(p),
            Ok(m) if m.is_dir() => {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let id = album_id(seed, &name);
                let mut files = Vec::new();
                collect_files(&p, &mut files)?;
                albums.push(Album {
                    id: id.clone(),
                    name: Some(name.clone()),
                    pinyin: Some((
                        name.to_lowercase(),
                        name.to_lowercase(),
                        name.to_lowercase(),
                    )),
                    created: mtime_ms(&p),
                });
                groups.push((id, files));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(path = %p.display(), error = %e, "skipping"),
        }
    }
    let mut items = Vec::new();
    for (album_id, files) in groups {
        for path in files {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let mut r = Rng::new(derive(seed, hash_bytes(rel.as_bytes())));
            let id = (r.range(20_000_000_000_000_000, 99_999_999_999_999_999) | 1).to_string();
            let tag = r
                .range(20_000_000_000_000_000, 99_999_999_999_999_999)
                .to_string();
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mime = mime_for(&file_name);
            let exif = exif_date(&path);
            let mtime = mtime_ms(&path);
            let taken = exif.as_deref().and_then(exif_to_ms).unwrap_or(mtime);
            items.push(Item {
                id,
                tag,
                album_id: album_id.clone(),
                file_name,
                mime: mime.to_string(),
                is_video: mime.starts_with("video/"),
                date_taken: taken,
                create_time: mtime.max(taken),
                date_modified: mtime,
                exif_date_time: exif,
                camera: None,
                width: 0,
                height: 0,
                is_favorite: false,
                source: Source::Disk(path),
                size: 0,
                sha1: String::new(),
            });
        }
    }
    Ok((albums, items))
}

fn album_id(seed: u64, name: &str) -> String {
    let mut r = Rng::new(derive(seed, hash_bytes(format!("album:{name}").as_bytes())));
    (r.range(20_000_000_000_000_000, 99_999_999_999_999_999) | 1).to_string()
}
