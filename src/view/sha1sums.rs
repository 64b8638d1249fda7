//! `SHA1SUMS` lines in the format GNU `sha1sum -c` accepts.
//!
//! A line is `<40 lower-case hex>  <path>\n` (two spaces: text mode, as `sha1sum` writes it).
//! When the path contains a backslash or a newline, GNU coreutils writes the *escaped* form:
//! the line starts with `\`, and in the path `\` becomes `\\` and a newline `\n`. Sanitized
//! names cannot contain a newline (or a carriage return, which coreutils ≥ 9 also escapes), but
//! they can contain backslashes, so the escaped form is needed.
//!
//! The view knows each file's size at build time (`st_size` must be exact before anyone reads),
//! so [`line_len`] computes a line's length without writing it; [`write_line`] writes it.

use crate::model::Sha1Digest;

fn needs_escape(parts: &[&str]) -> bool {
    parts
        .iter()
        .any(|p| p.bytes().any(|b| b == b'\\' || b == b'\n' || b == b'\r'))
}

/// The byte length of the line for a path made of `parts` joined by `/`.
pub fn line_len(parts: &[&str]) -> u64 {
    let escaped = needs_escape(parts);
    let mut path_len = parts.len().saturating_sub(1); // the slashes
    for p in parts {
        path_len += p.len();
        if escaped {
            path_len += p
                .bytes()
                .filter(|&b| b == b'\\' || b == b'\n' || b == b'\r')
                .count();
        }
    }
    (usize::from(escaped) + 40 + 2 + path_len + 1) as u64
}

/// Appends the line for `sha1` and the path made of `parts` joined by `/`.
pub fn write_line(out: &mut Vec<u8>, sha1: &Sha1Digest, parts: &[&str]) {
    let escaped = needs_escape(parts);
    if escaped {
        out.push(b'\\');
    }
    let mut hex = [0u8; 40];
    // Cannot fail: 20 bytes always fit 40 hex digits.
    if hex::encode_to_slice(sha1.0, &mut hex).is_ok() {
        out.extend_from_slice(&hex);
    }
    out.extend_from_slice(b"  ");
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        if escaped {
            for b in p.bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    _ => out.push(b),
                }
            }
        } else {
            out.extend_from_slice(p.as_bytes());
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(parts: &[&str]) -> String {
        let mut out = Vec::new();
        write_line(&mut out, &Sha1Digest([0xab; 20]), parts);
        assert_eq!(out.len() as u64, line_len(parts));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_and_escaped_lines() {
        let h = "ab".repeat(20);
        assert_eq!(
            line(&["Camera", "a b.jpg"]),
            format!("{h}  Camera/a b.jpg\n")
        );
        assert_eq!(line(&["C", "a\\b.jpg"]), format!("\\{h}  C/a\\\\b.jpg\n"));
        assert_eq!(line(&["C\\D", "x"]), format!("\\{h}  C\\\\D/x\n"));
        assert_eq!(line(&["C", "a\nb"]), format!("\\{h}  C/a\\nb\n"));
        assert_eq!(
            line(&["2024", "06", "é.jpg"]),
            format!("{h}  2024/06/é.jpg\n")
        );
    }
}
