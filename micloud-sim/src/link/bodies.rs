//! The damaged bodies faults send: cut short (then an error that drops the connection), or
//! with one byte altered.
//!
//! Both work frame by frame on the response's stream, so no fault buffers a whole large
//! file.

use std::future::Future;

use axum::body::Body;
use bytes::BytesMut;
use futures_util::StreamExt;

/// The first `keep` bytes of `body`, then whatever `after` does, then an error that makes the
/// server drop the connection (the client sees a short body).
pub fn truncate_then<F>(body: Body, keep: u64, after: F) -> Body
where
    F: Future<Output = ()> + Send + 'static,
{
    let head = body.into_data_stream();
    let after: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(after);
    let s = futures_util::stream::unfold(
        (head, keep, Some(after)),
        |(mut head, left, after)| async move {
            let after = after?;
            if left > 0 {
                match head.next().await {
                    Some(Ok(mut b)) => {
                        if b.len() as u64 > left {
                            b.truncate(left as usize);
                        }
                        let n = b.len() as u64;
                        return Some((Ok(b), (head, left - n, Some(after))));
                    }
                    Some(Err(e)) => {
                        return Some((Err(std::io::Error::other(e)), (head, 0, None)));
                    }
                    None => {}
                }
            }
            after.await;
            let err = std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "response cut short (injected fault)",
            );
            Some((Err(err), (head, 0, None)))
        },
    );
    Body::from_stream(s)
}

/// `body` with the byte at offset `at` XORed with `mask` (non-zero: the byte always changes).
pub fn flip_byte(body: Body, at: u64, mask: u8) -> Body {
    let mut pos = 0u64;
    let s = body.into_data_stream().map(move |frame| {
        frame.map(|b| {
            let start = pos;
            pos += b.len() as u64;
            if (start..pos).contains(&at) {
                let mut m = BytesMut::from(&b[..]);
                m[(at - start) as usize] ^= mask.max(1);
                m.freeze()
            } else {
                b
            }
        })
    });
    Body::from_stream(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    async fn collect(body: Body) -> (Vec<u8>, bool) {
        let mut s = body.into_data_stream();
        let mut out = Vec::new();
        while let Some(f) = s.next().await {
            match f {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }

    fn two_frames() -> Body {
        let frames: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"world")),
        ];
        Body::from_stream(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn truncation_keeps_the_prefix_then_fails() {
        let (got, failed) = collect(truncate_then(two_frames(), 8, async {})).await;
        assert_eq!(got, b"hello wo");
        assert!(failed);
    }

    #[tokio::test]
    async fn flip_changes_exactly_one_byte_across_frames() {
        let (got, failed) = collect(flip_byte(two_frames(), 7, 0x20)).await;
        assert!(!failed);
        assert_eq!(got, b"hello wOrld");
    }
}
