//! The pictures the passport draws: the captcha's digits (a 5×7 dot font scaled ×5, with a
//! few noise dots so it is not blank-looking: 175×50 for five digits) and the grey-scale PNG
//! writer the captcha and the QR code share.

use rand::Rng;

/// Pixels per dot of the captcha font.
const SCALE: usize = 5;

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
    fn image_is_a_png_showing_ink() {
        let bmp = render_digits("01234");
        assert_eq!((bmp.width, bmp.height), (175, 50));
        assert!(bmp.pixels.iter().filter(|p| **p == 0).count() > 500);
        let png = gray_png(&bmp).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
