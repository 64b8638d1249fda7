//! Synthetic, viewable JPEG photos with an EXIF APP1 segment.
//!
//! Each photo is a function of its [`PhotoSpec`] only: a two-colour diagonal gradient, 3 to 6
//! filled discs and per-pixel noise, all drawn from the spec's seed. The noise amplitude (4..40)
//! is what spreads the encoded size from roughly 15 KB (320x240, calm) to a few hundred KB
//! (800x600, noisy) at quality 88. EXIF is built with `little_exif` (IFD0 `Make`, `Model`,
//! `ModifyDate`=0x0132 "DateTime"; Exif SubIFD `DateTimeOriginal`, `CreateDate`,
//! `OffsetTimeOriginal`, pixel dimensions) and handed to `jpeg-encoder` as the APP1 payload.
//! Screenshots and messenger images carry no EXIF at all, as on real phones.

use jpeg_encoder::{ColorType, Encoder};
use little_exif::exif_tag::ExifTag;
use little_exif::metadata::Metadata;

use crate::model::rng::Rng;
use crate::model::source::{ExifSpec, PhotoSpec};

#[derive(Debug, thiserror::Error)]
pub enum JpegError {
    #[error("jpeg encoding failed: {0}")]
    Encode(#[from] jpeg_encoder::EncodingError),
    #[error("exif encoding failed: {0}")]
    Exif(#[from] std::io::Error),
}

/// Render and encode the photo.
pub fn render(spec: &PhotoSpec) -> Result<Vec<u8>, JpegError> {
    let pixels = draw(spec.seed, spec.width, spec.height);
    let mut out = Vec::with_capacity(pixels.len() / 4);
    let mut encoder = Encoder::new(&mut out, 88);
    if let Some(exif) = &spec.exif {
        encoder.add_exif_metadata(&exif_tiff(exif, spec.width, spec.height)?)?;
    }
    encoder.encode(&pixels, spec.width, spec.height, ColorType::Rgb)?;
    Ok(out)
}

/// The TIFF structure (without the `Exif\0\0` header) for the APP1 segment.
fn exif_tiff(exif: &ExifSpec, width: u16, height: u16) -> Result<Vec<u8>, std::io::Error> {
    let mut md = Metadata::new();
    md.set_tag(ExifTag::Make(exif.make.clone()));
    md.set_tag(ExifTag::Model(exif.model.clone()));
    md.set_tag(ExifTag::ModifyDate(exif.date_time.clone()));
    md.set_tag(ExifTag::DateTimeOriginal(exif.date_time.clone()));
    md.set_tag(ExifTag::CreateDate(exif.date_time.clone()));
    md.set_tag(ExifTag::OffsetTimeOriginal(exif.offset.clone()));
    md.set_tag(ExifTag::ExifImageWidth(vec![u32::from(width)]));
    md.set_tag(ExifTag::ExifImageHeight(vec![u32::from(height)]));
    md.encode()
}

/// RGB pixels: gradient + discs + noise.
fn draw(seed: u64, width: u16, height: u16) -> Vec<u8> {
    let (w, h) = (usize::from(width), usize::from(height));
    let mut rng = Rng::new(seed);
    let c0 = [rng.range(0, 256), rng.range(0, 256), rng.range(0, 256)];
    let c1 = [rng.range(0, 256), rng.range(0, 256), rng.range(0, 256)];
    let discs: Vec<(i64, i64, i64, [u8; 3])> = (0..rng.range(3, 7))
        .map(|_| {
            let r = rng.range(h as u64 / 12 + 1, h as u64 / 3 + 2) as i64;
            let cx = rng.range(0, w as u64) as i64;
            let cy = rng.range(0, h as u64) as i64;
            let col = [
                rng.range(0, 256) as u8,
                rng.range(0, 256) as u8,
                rng.range(0, 256) as u8,
            ];
            (cx, cy, r * r, col)
        })
        .collect();
    let amp = rng.range(4, 41) as i32;
    let mut noise = rng.next_u64() | 1;
    let span = (w + h).max(1) as u64;
    let mut px = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let t = (x + y) as u64;
            let mut rgb = [0i32; 3];
            for k in 0..3 {
                rgb[k] = ((c0[k] * (span - t) + c1[k] * t) / span) as i32;
            }
            for (cx, cy, r2, col) in &discs {
                let (dx, dy) = (x as i64 - cx, y as i64 - cy);
                if dx * dx + dy * dy <= *r2 {
                    rgb = [i32::from(col[0]), i32::from(col[1]), i32::from(col[2])];
                }
            }
            // xorshift64 noise, one draw per pixel.
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let n = (noise % (2 * amp as u64 + 1)) as i32 - amp;
            let o = (y * w + x) * 3;
            for k in 0..3 {
                px[o + k] = (rgb[k] + n).clamp(0, 255) as u8;
            }
        }
    }
    px
}
