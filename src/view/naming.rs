//! File and directory names: safe, unique (case-insensitively), at most 255 bytes, stable.
//!
//! The service hands out file names that are not unique and may be hostile. Every name the
//! mount shows goes through two steps:
//!
//! 1. **Safe** ([`sanitize`], [`file_base_name`]): `/`, NUL and every control character
//!    (U+0000-U+001F, U+007F, U+0080-U+009F, i.e. `char::is_control`) become `_`. A result that
//!    is empty, `.`, `..` or only whitespace is replaced: files by `<item id><ext>` with the
//!    extension taken from the MIME type ([`mime_extension`]), album directories by
//!    `Album <id>`. Everything else is kept verbatim (Unicode, spaces, backslashes, `:`).
//! 2. **Unique and short** ([`DirNames`]): within one directory, names are claimed in a fixed
//!    order (for files: upload order, `(create_time_ms, id)`; for albums: system albums by id,
//!    then the others by id). Names are compared by their [`fold`] key: Unicode canonical
//!    equivalence (NFC, so `Café` typed as one `é` or as `e` + a combining accent is one
//!    name) and case (`str::to_lowercase`), because users copy to exFAT/NTFS (case-insensitive)
//!    and APFS/HFS+ (case- and normalisation-insensitive), which would keep only one of two
//!    such names. A shown name is never re-spelled: its bytes stay as the service has them;
//!    only the *comparison* ignores normalisation and case. The first claimant takes its safe
//!    name; a later one whose name is taken tries, in turn,
//!    `<stem>~<last 6 digits of id><.ext>`, `<stem>~<id><.ext>`, `<stem>~<id>-<n><.ext>` for
//!    n = 2, 3, ... and takes the first free one.
//!
//! Every candidate is fitted to [`NAME_MAX`] = 255 bytes (the Linux limit, counted in UTF-8
//! bytes) by cutting the *stem* on a char boundary, so the suffix and the extension survive.
//! The extension ([`split_extension`]) is the part after the last `.` when it is 1..=10 ASCII
//! alphanumeric bytes and the stem before it is non-empty (`.bashrc` has none). A suffix is at
//! most `~` + 20 digits + `-` + 20 digits = 42 bytes, an extension 11 bytes with its dot, so a
//! cut stem keeps at least 200 bytes and is never empty.
//!
//! Why this is stable: a name depends only on the item itself and on the items claimed
//! *before* it in the same directory. A later upload sorts after every existing item, so it
//! can never take a name away from one; nothing depends on hash-map iteration order.
//! (Deleting an item, or an item that appears with an *older* upload time, can rename the
//! later claimants of its name; that is inherent in "first come, plain name".)

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;

/// The longest file name Linux accepts, in bytes.
pub const NAME_MAX: usize = 255;

/// The longest extension (without the dot) that is kept through truncation and suffixing.
pub const MAX_EXT_LEN: usize = 10;

/// Replaces `/`, NUL and control characters with `_`. `None` when the result is empty, `.`,
/// `..` or only whitespace, i.e. when the name cannot be used at all. Does not limit length.
pub fn sanitize(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." || cleaned.trim().is_empty() {
        None
    } else {
        Some(cleaned)
    }
}

/// The file extension (with its dot) for the MIME types the gallery serves; `None` for others.
pub fn mime_extension(mime: &str) -> Option<&'static str> {
    let mime = mime.trim();
    let essence = mime.split(';').next().unwrap_or(mime).trim();
    let table: [(&str, &'static str); 7] = [
        ("image/jpeg", ".jpg"),
        ("image/png", ".png"),
        ("image/heic", ".heic"),
        ("image/gif", ".gif"),
        ("image/webp", ".webp"),
        ("video/mp4", ".mp4"),
        ("video/quicktime", ".mov"),
    ];
    table
        .iter()
        .find(|(m, _)| m.eq_ignore_ascii_case(essence))
        .map(|(_, e)| *e)
}

/// The safe (not yet unique, not yet length-limited) name of a file: the sanitized
/// `file_name`, or `<id><ext from mime>` when that is unusable.
pub fn file_base_name(file_name: &str, id: u64, mime: &str) -> String {
    sanitize(file_name).unwrap_or_else(|| format!("{id}{}", mime_extension(mime).unwrap_or("")))
}

/// The safe (not yet unique) name of an album directory: the sanitized name, or `Album <id>`.
pub fn album_base_name(name: Option<&str>, id: u64) -> String {
    name.and_then(sanitize)
        .unwrap_or_else(|| format!("Album {id}"))
}

/// Splits `name` into (stem, extension without the dot). The extension is the part after the
/// last `.` if it is 1..=[`MAX_EXT_LEN`] ASCII alphanumeric bytes and the stem is non-empty.
pub fn split_extension(name: &str) -> (&str, Option<&str>) {
    if let Some(dot) = name.rfind('.') {
        let (stem, ext) = (&name[..dot], &name[dot + 1..]);
        if !stem.is_empty()
            && (1..=MAX_EXT_LEN).contains(&ext.len())
            && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return (stem, Some(ext));
        }
    }
    (name, None)
}

/// `stem + suffix + "." + ext`, with `stem` cut on a char boundary so that the result is at
/// most [`NAME_MAX`] bytes. `suffix` and `ext` are short (see the module doc) and kept whole.
pub fn fit_name(stem: &str, suffix: &str, ext: Option<&str>) -> String {
    let tail = suffix.len() + ext.map_or(0, |e| e.len() + 1);
    let room = NAME_MAX.saturating_sub(tail);
    let mut cut = stem.len().min(room);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + tail);
    out.push_str(&stem[..cut]);
    out.push_str(suffix);
    if let Some(e) = ext {
        out.push('.');
        out.push_str(e);
    }
    out
}

/// The comparison key of a name: equal for names that a case-insensitive or
/// normalisation-insensitive file system would take as one. Decomposed first, so that
/// lower-casing sees base letters and marks apart, then recomposed (NFC); `İ`, whose lower
/// case is two chars, folds the same whichever spelling it came in.
pub fn fold(name: &str) -> String {
    // ASCII is its own NFD and NFC, and its lower case is ASCII: the common case, 10× faster.
    if name.is_ascii() {
        return name.to_ascii_lowercase();
    }
    let lower: String = name.nfd().collect::<String>().to_lowercase();
    lower.nfc().collect()
}

/// The names already given out in one directory, compared case-insensitively.
#[derive(Debug, Default)]
pub struct DirNames {
    /// Fold keys. foldhash, not SipHash: the keys are the gallery's own names (no untrusted
    /// party picks them to collide), and hashing is a third of a warm build's naming time.
    taken: HashSet<String, foldhash::fast::RandomState>,
}

impl DirNames {
    pub fn new() -> DirNames {
        DirNames::default()
    }

    /// Takes `name` out of circulation (e.g. `SHA1SUMS` at the top of `albums/`).
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(fold(name));
    }

    /// Whether `name` (or a case or normalisation variant of it) is already given out.
    pub fn is_taken(&self, name: &str) -> bool {
        self.taken.contains(&fold(name))
    }

    /// Takes `name` when it is still free (one fold, where `is_taken` + `reserve` take two).
    pub fn take_if_free(&mut self, name: &str) -> bool {
        self.try_take(name)
    }

    /// Claims a unique name for a file whose safe name is `base` (see [`file_base_name`]),
    /// keeping its extension through truncation and suffixing.
    pub fn claim_file(&mut self, base: &str, id: u64) -> String {
        let (stem, ext) = split_extension(base);
        self.claim(stem, ext, id)
    }

    /// Claims a unique name for a directory whose safe name is `base`; the whole name is the
    /// stem (a suffix goes at the end: `My.Trip~123456`, not `My~123456.Trip`).
    pub fn claim_dir(&mut self, base: &str, id: u64) -> String {
        self.claim(base, None, id)
    }

    fn claim(&mut self, stem: &str, ext: Option<&str>, id: u64) -> String {
        let plain = fit_name(stem, "", ext);
        if self.try_take(&plain) {
            return plain;
        }
        let full = id.to_string();
        let short = &full[full.len().saturating_sub(6)..];
        let first = fit_name(stem, &format!("~{short}"), ext);
        if self.try_take(&first) {
            return first;
        }
        let second = fit_name(stem, &format!("~{full}"), ext);
        if self.try_take(&second) {
            return second;
        }
        // Terminates: each n gives a distinct name and only finitely many are taken.
        let mut n: u64 = 2;
        loop {
            let name = fit_name(stem, &format!("~{full}-{n}"), ext);
            if self.try_take(&name) {
                return name;
            }
            n += 1;
        }
    }

    fn try_take(&mut self, name: &str) -> bool {
        self.taken.insert(fold(name))
    }
}

/// Whether `name` is one the mount may show: non-empty, not `.`/`..`, not only whitespace, at
/// most [`NAME_MAX`] bytes, without `/` or control characters. (Used by tests and debug checks.)
pub fn is_valid_name(name: &str) -> bool {
    if name.is_ascii() {
        // The common case without char decoding (a warm build checks every name it keeps).
        let b = name.as_bytes();
        return !b.is_empty()
            && name != "."
            && name != ".."
            && b.len() <= NAME_MAX
            && !b.iter().all(u8::is_ascii_whitespace)
            && !b.iter().any(|&c| c == b'/' || c < 0x20 || c == 0x7f);
    }
    is_valid_name_by_chars(name)
}

/// The rule of [`is_valid_name`] on any name, char by char (its ASCII fast path must agree).
fn is_valid_name_by_chars(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.trim().is_empty()
        && name.len() <= NAME_MAX
        && !name.chars().any(|c| c == '/' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_fast_path_of_is_valid_name_agrees_with_the_general_rule() {
        let general = is_valid_name_by_chars;
        let long = "a".repeat(NAME_MAX);
        let too_long = "a".repeat(NAME_MAX + 1);
        for name in [
            "",
            ".",
            "..",
            "...",
            " ",
            " \t ",
            "\u{b}",
            "a b",
            "a/b",
            "a\u{7f}",
            "a\tb",
            "IMG_1.JPG",
            " x ",
            &long,
            &too_long,
        ] {
            assert_eq!(is_valid_name(name), general(name), "{name:?}");
        }
    }

    #[test]
    fn sanitize_replaces_hostile_characters() {
        assert_eq!(sanitize("a/b").as_deref(), Some("a_b"));
        assert_eq!(sanitize("a\nb\tc\u{1}d\0e").as_deref(), Some("a_b_c_d_e"));
        assert_eq!(sanitize("x\u{7f}\u{80}\u{9f}y").as_deref(), Some("x___y"));
        assert_eq!(sanitize("\n").as_deref(), Some("_"));
        assert_eq!(
            sanitize("ünï cödé\\ name.jpg").as_deref(),
            Some("ünï cödé\\ name.jpg")
        );
        // U+00A0 is not a control character and not ASCII whitespace, but it is whitespace.
        assert_eq!(sanitize("\u{a0}"), None);
        for bad in ["", ".", "..", " ", "  \u{3000} "] {
            assert_eq!(sanitize(bad), None, "{bad:?}");
        }
        assert_eq!(sanitize("...").as_deref(), Some("..."));
    }

    #[test]
    fn base_name_falls_back_to_id_and_mime() {
        assert_eq!(file_base_name("", 42, "image/jpeg"), "42.jpg");
        assert_eq!(file_base_name("..", 42, "video/quicktime"), "42.mov");
        assert_eq!(file_base_name(" ", 42, "IMAGE/HEIC"), "42.heic");
        assert_eq!(file_base_name(".", 42, "application/x-whatever"), "42");
        assert_eq!(file_base_name("a.png", 42, "image/jpeg"), "a.png");
        assert_eq!(album_base_name(None, 7), "Album 7");
        assert_eq!(album_base_name(Some(" "), 7), "Album 7");
        assert_eq!(album_base_name(Some("Trip/2024"), 7), "Trip_2024");
    }

    #[test]
    fn extension_rules() {
        assert_eq!(split_extension("a.jpg"), ("a", Some("jpg")));
        assert_eq!(split_extension("a.tar.gz"), ("a.tar", Some("gz")));
        assert_eq!(split_extension(".bashrc"), (".bashrc", None));
        assert_eq!(split_extension("a."), ("a.", None));
        assert_eq!(split_extension("a.abcdefghijk"), ("a.abcdefghijk", None));
        assert_eq!(split_extension("a.abcdefghij"), ("a", Some("abcdefghij")));
        assert_eq!(split_extension("a.jp g"), ("a.jp g", None));
        assert_eq!(split_extension("a.jpé"), ("a.jpé", None));
    }

    #[test]
    fn suffix_sequence() {
        let mut d = DirNames::new();
        assert_eq!(d.claim_file("IMG.JPG", 123_456_789), "IMG.JPG");
        assert_eq!(d.claim_file("img.jpg", 123_456_789), "img~456789.jpg");
        assert_eq!(d.claim_file("img.jpg", 123_456_789), "img~123456789.jpg");
        assert_eq!(d.claim_file("Img.jpg", 123_456_789), "Img~123456789-2.jpg");
        assert_eq!(d.claim_file("img.jpg", 123_456_789), "img~123456789-3.jpg");
        // A short id: the 6-digit and the full form coincide, so it goes on to -2.
        assert_eq!(d.claim_file("x", 5), "x");
        assert_eq!(d.claim_file("x", 5), "x~5");
        assert_eq!(d.claim_file("x", 5), "x~5-2");
        assert_eq!(d.claim_dir("My.Trip", 1), "My.Trip");
        assert_eq!(d.claim_dir("my.trip", 77), "my.trip~77");
    }

    #[test]
    fn nfc_and_nfd_spellings_are_one_name() {
        let nfc = "Caf\u{e9}.jpg";
        let nfd = "Cafe\u{301}.jpg";
        assert_ne!(nfc, nfd);
        assert_eq!(fold(nfc), fold(nfd));
        assert_eq!(fold("CAFE\u{301}.JPG"), fold(nfc));
        // Hangul: precomposed syllable and its jamo.
        assert_eq!(fold("\u{d55c}"), fold("\u{1112}\u{1161}\u{11ab}"));
        let mut d = DirNames::new();
        let first = d.claim_file(nfc, 700_123_456);
        let second = d.claim_file(nfd, 700_654_321);
        // The first keeps its bytes; the second gets the suffix and keeps its own spelling.
        assert_eq!(first, nfc);
        assert_eq!(second, "Cafe\u{301}~654321.jpg");
        assert_ne!(fold(&first), fold(&second));
        assert!(d.is_taken("CAFÉ.JPG"));
        // Names that were distinct before stay as they were.
        assert_eq!(d.claim_file("Cafe.jpg", 1), "Cafe.jpg");
    }

    #[test]
    fn fit_name_cuts_on_char_boundary_and_keeps_extension() {
        let stem = "日".repeat(100); // 300 bytes
        let n = fit_name(&stem, "", Some("jpeg"));
        assert!(n.len() <= NAME_MAX);
        assert!(n.ends_with("日.jpeg"));
        assert_eq!(n.len(), 83 * 3 + 5); // 254: an 84th char would overflow.
        let n = fit_name(&stem, "~123456", Some("jpeg"));
        assert!(n.len() <= NAME_MAX && n.ends_with("日~123456.jpeg"));
    }
}
