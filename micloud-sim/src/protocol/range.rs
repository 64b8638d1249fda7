//! The `Range` header of a download, for `--range on` (RFC 9110 §14).
//!
//! One byte range only: `bytes=a-b` (b clamped to the end), `bytes=a-`, `bytes=-n` (the last n
//! bytes). Anything else (other units, several ranges, bad syntax) is ignored and the whole
//! body is sent, which the RFC allows; a well-formed range that selects no byte is
//! unsatisfiable (416).

/// What a request asks for out of a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    Whole,
    /// Inclusive byte offsets.
    Slice(u64, u64),
    Unsatisfiable,
}

pub fn parse(header: &str, len: u64) -> Wanted {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim().is_empty(), num(a), num(b)) {
        // bytes=-n
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                Wanted::Unsatisfiable
            } else {
                Wanted::Slice(len.saturating_sub(n), len - 1)
            }
        }
        // bytes=a- and bytes=a-b
        (false, Some(first), last) if b.trim().is_empty() || last.is_some() => {
            let last = last.unwrap_or(u64::MAX);
            if last < first {
                Wanted::Whole
            } else if first >= len {
                Wanted::Unsatisfiable
            } else {
                Wanted::Slice(first, last.min(len - 1))
            }
        }
        _ => Wanted::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms() {
        assert_eq!(parse("bytes=0-99", 1000), Wanted::Slice(0, 99));
        assert_eq!(parse("bytes=990-2000", 1000), Wanted::Slice(990, 999));
        assert_eq!(parse("bytes=500-", 1000), Wanted::Slice(500, 999));
        assert_eq!(parse("bytes=-10", 1000), Wanted::Slice(990, 999));
        assert_eq!(parse("bytes=-5000", 1000), Wanted::Slice(0, 999));
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(parse("bytes=1000-", 1000), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 1000), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=0-0", 0), Wanted::Unsatisfiable);
    }

    #[test]
    fn odd_headers_mean_the_whole_body() {
        for h in [
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=x-",
            "bytes=",
            "bytes=-",
        ] {
            assert_eq!(parse(h, 1000), Wanted::Whole, "{h}");
        }
    }
}
