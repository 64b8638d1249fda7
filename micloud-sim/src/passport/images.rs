//! The passport's image captcha (spec §2.5) and the grey-scale PNG writer it shares with QR.
//!
//! `GET /pass/getCode?icodeType=login&_dc=<ms>` mints a 5-digit code, answers a 175×50 PNG
//! that shows it (a 5×7 dot font scaled ×5, with a few noise dots so it is not blank-looking)
//! and `Set-Cookie: ick=<random>`. The answer is checked by `serviceLoginAuth2` (`captCode` +
//! cookie `ick`); each `ick` is good for one answer and 5 minutes, right or wrong. Tests learn
//! the code from `GET /_sim/passport` (`captchas`: `ick` → code), never from the pixels.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;

use super::server::{plain, Shared};
use super::session::random_b64url;

const CAPTCHA_TTL: Duration = Duration::from_secs(300);
const DIGITS: usize = 5;
const SCALE: usize = 5;

/// Live captcha answers by `ick`.
#[derive(Default)]
pub struct Captchas {
    live: Mutex<HashMap<String, (String, Instant)>>,
}

impl Captchas {
    /// A new code; returns (`ick`, code).
    pub fn issue(&self) -> (String, String) {
        let mut rng = rand::rng();
        let code: String = (0..DIGITS)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        let ick = random_b64url(18);
        if let Ok(mut m) = self.live.lock() {
            let now = Instant::now();
            m.retain(|_, (_, exp)| *exp > now);
            m.insert(ick.clone(), (code.clone(), now + CAPTCHA_TTL));
        }
        (ick, code)
    }

    /// Check (and consume) the answer for `ick`.
    pub fn check(&self, ick: &str, answer: &str) -> bool {
        let Ok(mut m) = self.live.lock() else {
            return false;
        };
        match m.remove(ick) {
            Some((code, exp)) => exp > Instant::now() && code == answer.trim(),
            None => false,
        }
    }

    /// Every live `ick` → code (for `/_sim/passport`).
    pub fn snapshot(&self) -> HashMap<String, String> {
        self.live
            .lock()
            .map(|m| m.iter().map(|(k, (c, _))| (k.clone(), c.clone())).collect())
            .unwrap_or_default()
    }
}

/// `GET /pass/getCode`: a fresh captcha image and its `ick` cookie.
pub async fn get_code(State(app): State<Shared>) -> Response {
    let (ick, code) = app.passport.captchas.issue();
    app.stats.count("login_captcha_served", 1);
    tracing::info!("captcha served");
    let png = match gray_png(&render_digits(&code)) {
        Ok(p) => p,
        Err(_) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the captcha image; fetch it again",
            )
        }
    };
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, "image/png")], png).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("ick={ick}; Path=/; HttpOnly")) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// A grey-scale bitmap: rows of 0 (black) ..= 255 (white).
pub struct Bitmap {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Encode `bmp` as an 8-bit grey-scale PNG.
pub fn gray_png(bmp: &Bitmap) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, bmp.width as u32, bmp.height as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        w.write_image_data(&bmp.pixels)?;
        w.finish()?;
    }
    Ok(out)
}

/// 5×7 glyphs of the digits, one `u8` per row, bit 4 = leftmost column.
const FONT: [[u8; 7]; 10] = [
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
    [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
];

/// Draw `code` (digits) black on white, 6 columns per glyph, a margin of 3 cells.
pub fn render_digits(code: &str) -> Bitmap {
    let cells_w = 6 * code.len() + 5;
    let (width, height) = (cells_w * SCALE, 10 * SCALE);
    let mut pixels = vec![255u8; width * height];
    for (i, d) in code.bytes().enumerate() {
        let Some(glyph) = FONT.get(usize::from(d.wrapping_sub(b'0'))) else {
            continue;
        };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) == 0 {
                    continue;
                }
                let (cx, cy) = (3 + 6 * i + col, 1 + row + (i % 2));
                for y in cy * SCALE..(cy + 1) * SCALE {
                    for x in cx * SCALE..(cx + 1) * SCALE {
                        pixels[y * width + x] = 0;
                    }
                }
            }
        }
    }
    let mut rng = rand::rng();
    for _ in 0..width * height / 40 {
        let p = rng.random_range(0..pixels.len());
        pixels[p] = pixels[p].saturating_add(96).min(200);
    }
    Bitmap {
        width,
        height,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_single_use() {
        let c = Captchas::default();
        let (ick, code) = c.issue();
        assert_eq!(code.len(), DIGITS);
        assert!(c.snapshot().contains_key(&ick));
        assert!(!c.check(&ick, "x"));
        assert!(!c.check(&ick, &code), "a wrong answer burns the ick");
        let (ick, code) = c.issue();
        assert!(c.check(&ick, &code));
        assert!(!c.check(&ick, &code));
    }

    #[test]
    fn image_is_a_png_showing_ink() {
        let bmp = render_digits("01234");
        assert_eq!((bmp.width, bmp.height), (175, 50));
        assert!(bmp.pixels.iter().filter(|p| **p == 0).count() > 500);
        let png = gray_png(&bmp).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
