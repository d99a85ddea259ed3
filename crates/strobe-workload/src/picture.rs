//! Synthetic, deterministic images for vision benchmarks of LLM servers.
//!
//! Every seed yields a different picture (seeded gradient, translucent shapes and a
//! little grain) so server-side image caches never hit across requests, while the same
//! `(width, height, format, seed)` always yields byte-identical output. Rendering uses integer
//! arithmetic only and the JPEG encoder runs without its runtime-detected
//! SIMD path, so output does not depend on the CPU, only on the pinned versions of `rand`
//! (the `StdRng` algorithm), `png` and `jpeg-encoder`.

use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Output encoding of a generated image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

impl ImageFormat {
    /// MIME type used in `data:` URLs.
    pub fn mime(&self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
        }
    }
}

impl FromStr for ImageFormat {
    type Err = String;

    /// Accepts `png`, `jpeg` and `jpg` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Ok(ImageFormat::Png),
            "jpeg" | "jpg" => Ok(ImageFormat::Jpeg),
            _ => Err(format!(
                "unknown image format {s:?} (expected png, jpeg or jpg)"
            )),
        }
    }
}

/// JPEG quality used by [`generate`]; 85 is a typical camera/web setting (4:2:0 chroma).
const JPEG_QUALITY: u8 = 85;

/// Generates a deterministic `width`×`height` RGB image encoded as `format`.
///
/// Panics if a dimension is 0, or above 65535 for JPEG (a limit of the format).
pub fn generate(width: u32, height: u32, format: ImageFormat, seed: u64) -> Vec<u8> {
    assert!(width > 0 && height > 0, "image dimensions must be non-zero");
    let rgb = render(width as usize, height as usize, seed);
    match format {
        ImageFormat::Png => encode_png(width, height, &rgb),
        ImageFormat::Jpeg => {
            let dim = |d: u32| u16::try_from(d).expect("JPEG dimensions must be <= 65535");
            let mut out = Vec::with_capacity(rgb.len() / 8);
            jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY)
                .encode(&rgb, dim(width), dim(height), jpeg_encoder::ColorType::Rgb)
                .expect("JPEG encoding of a well-formed RGB buffer cannot fail");
            out
        }
    }
}

/// Returns `data:{mime};base64,{bytes as standard base64}`.
pub fn data_url(bytes: &[u8], mime: &str) -> String {
    let prefix = format!("data:{mime};base64,");
    let mut url = String::with_capacity(prefix.len() + bytes.len().div_ceil(3) * 4);
    url.push_str(&prefix);
    base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut url);
    url
}

/// Guesses an image MIME type from a file extension (png, jpg/jpeg, webp, gif).
pub fn mime_for_path(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "webp" => Some("image/webp"),
        "gif" => Some("image/gif"),
        _ => None,
    }
}

fn random_color(rng: &mut StdRng) -> [i32; 3] {
    [0; 3].map(|_| rng.random_range(0..256))
}

/// Renders packed RGB8 pixels using integer arithmetic only (portable determinism).
fn render(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut px = vec![0u8; w * h * 3];

    // Background: linear gradient c0 -> c1 along a random direction, through a palette.
    let (c0, c1) = (random_color(&mut rng), random_color(&mut rng));
    let palette: Vec<[u8; 3]> = (0..=256)
        .map(|t| std::array::from_fn(|c| (c0[c] + (((c1[c] - c0[c]) * t) >> 8)) as u8))
        .collect();
    let (gx, gy): (i64, i64) = (rng.random_range(-256..=256), rng.random_range(-256..=256));
    let (xmax, ymax) = ((w - 1) as i64, (h - 1) as i64);
    let corners = [0, xmax * gx, ymax * gy, xmax * gx + ymax * gy];
    let (pmin, pmax) = (
        *corners.iter().min().unwrap(),
        *corners.iter().max().unwrap(),
    );
    let scale = (256 << 20) / (pmax - pmin).max(1); // t = (x gx + y gy - pmin) * scale >> 20
    let tx: Vec<i64> = (0..w as i64).map(|x| x * gx * scale).collect();
    for (y, row) in px.chunks_exact_mut(w * 3).enumerate() {
        let ty = (y as i64 * gy - pmin) * scale;
        for (p, &t) in row.chunks_exact_mut(3).zip(&tx) {
            p.copy_from_slice(&palette[((t + ty) >> 20) as usize]);
        }
    }

    // Translucent rectangles and discs, blended row span by row span.
    let min_dim = w.min(h) as i64;
    for _ in 0..rng.random_range(16..40) {
        let alpha = rng.random_range(96..=256u16);
        let color = random_color(&mut rng).map(|c| c as u16 * alpha);
        let r = rng.random_range(min_dim / 32..=min_dim / 6).max(1);
        let (cx, cy) = (rng.random_range(0..w as i64), rng.random_range(0..h as i64));
        let disc = rng.random_bool(0.5);
        let ry = if disc {
            r
        } else {
            rng.random_range(r / 3..=r * 2).max(1)
        };
        for y in (cy - ry).max(0)..(cy + ry).min(h as i64) {
            let half = if disc {
                ((r * r - (y - cy).pow(2)) as u64).isqrt() as i64
            } else {
                r
            };
            let (x0, x1) = (
                (cx - half).max(0) as usize,
                (cx + half).min(w as i64) as usize,
            );
            let row = &mut px[(y as usize * w + x0) * 3..(y as usize * w + x1) * 3];
            for p in row.chunks_exact_mut(3) {
                for c in 0..3 {
                    p[c] = ((p[c] as u16 * (256 - alpha) + color[c]) >> 8) as u8;
                }
            }
        }
    }

    // Grain, -8..=7 per channel from a seeded SplitMix64, as in photographs.
    let mut x: u64 = rng.random();
    let mut grain = || -> [u8; 32] {
        let mut noise = [0u8; 32];
        for word in noise.chunks_exact_mut(8) {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            word.copy_from_slice(&((z ^ (z >> 31)) & 0x0F0F_0F0F_0F0F_0F0F).to_le_bytes());
        }
        noise
    };
    let mut chunks = px.chunks_exact_mut(32);
    for chunk in &mut chunks {
        let noise = grain();
        for i in 0..32 {
            chunk[i] = chunk[i].saturating_add(noise[i]).saturating_sub(8);
        }
    }
    for (p, n) in chunks.into_remainder().iter_mut().zip(grain()) {
        *p = p.saturating_add(n).saturating_sub(8);
    }
    px
}

/// Encodes RGB8 pixels as a PNG with the `png` crate: the Up filter on every row (cheap, and
/// as good as adaptive filtering on this kind of picture) and its fast deflate.
fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgb.len() / 2);
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    enc.set_filter(png::FilterType::Up);
    enc.set_adaptive_filter(png::AdaptiveFilterType::NonAdaptive);
    let mut w = enc
        .write_header()
        .expect("a PNG header of non-zero dimensions is valid");
    w.write_image_data(rgb)
        .expect("RGB8 data of width × height × 3 bytes encodes");
    w.finish().expect("writing to memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be32(b: &[u8]) -> u32 {
        u32::from_be_bytes(b[..4].try_into().unwrap())
    }

    /// Bitwise CRC-32, independent of the encoder's.
    fn slow_crc(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= b as u32;
            (0..8).for_each(|_| {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                }
            });
        }
        !c
    }

    /// Checks signature, chunk order and CRCs; returns (IHDR, concatenated IDAT).
    fn parse_png(png: &[u8]) -> (Vec<u8>, Vec<u8>) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let (mut pos, mut kinds, mut ihdr, mut idat) = (8, vec![], vec![], vec![]);
        while pos < png.len() {
            let len = be32(&png[pos..]) as usize;
            let (kind, body) = (&png[pos + 4..pos + 8], &png[pos + 8..pos + 8 + len]);
            assert_eq!(
                be32(&png[pos + 8 + len..]),
                slow_crc(&png[pos + 4..pos + 8 + len])
            );
            match kind {
                b"IHDR" => ihdr = body.to_vec(),
                b"IDAT" => idat.extend_from_slice(body),
                _ => {}
            }
            kinds.push(kind.to_vec());
            pos += 12 + len;
        }
        assert_eq!(pos, png.len());
        assert_eq!(kinds.first().unwrap(), b"IHDR");
        assert_eq!(kinds.last().unwrap(), b"IEND");
        (ihdr, idat)
    }

    /// Width and height from the SOF0 (baseline) segment of a JPEG.
    fn jpeg_sof0_dims(jpg: &[u8]) -> (u32, u32) {
        assert_eq!(&jpg[..2], &[0xFF, 0xD8]);
        let mut pos = 2;
        loop {
            assert_eq!(jpg[pos], 0xFF);
            let len = u16::from_be_bytes([jpg[pos + 2], jpg[pos + 3]]) as usize;
            if jpg[pos + 1] == 0xC0 {
                let s = &jpg[pos + 5..];
                return (
                    u16::from_be_bytes([s[2], s[3]]) as u32,
                    u16::from_be_bytes([s[0], s[1]]) as u32,
                );
            }
            pos += 2 + len;
        }
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        for format in [ImageFormat::Png, ImageFormat::Jpeg] {
            let a = generate(64, 48, format, 42);
            assert_eq!(a, generate(64, 48, format, 42));
            assert_ne!(a, generate(64, 48, format, 43));
        }
    }

    #[test]
    fn png_structure_dimensions_and_pixels() {
        for (w, h, seed) in [(1, 1, 0), (17, 5, 1), (300, 200, 2), (512, 512, 3)] {
            let (ihdr, idat) = parse_png(&generate(w, h, ImageFormat::Png, seed));
            assert_eq!((be32(&ihdr[0..]), be32(&ihdr[4..])), (w, h));
            assert_eq!(&ihdr[8..], &[8, 2, 0, 0, 0]);
            // Inflate with an independent decoder (checks Adler-32) and undo the filters (Up, or
            // None where the encoder chose it, as for the first row).
            let raw = miniz_oxide::inflate::decompress_to_vec_zlib(&idat).unwrap();
            let stride = w as usize * 3;
            let mut pixels: Vec<u8> = Vec::new();
            for row in raw.chunks_exact(stride + 1) {
                assert!(row[0] == 0 || row[0] == 2, "filter {}", row[0]);
                let above = pixels
                    .len()
                    .checked_sub(stride)
                    .filter(|_| row[0] == 2)
                    .map(|i| pixels[i..].to_vec());
                let above = above.unwrap_or_else(|| vec![0; stride]);
                pixels.extend(row[1..].iter().zip(&above).map(|(d, a)| d.wrapping_add(*a)));
            }
            assert_eq!(pixels, render(w as usize, h as usize, seed));
        }
    }

    #[test]
    fn jpeg_sof0_dimensions() {
        for (w, h) in [(1, 1), (17, 5), (300, 200), (640, 480)] {
            let jpg = generate(w, h, ImageFormat::Jpeg, 7);
            assert_eq!(jpeg_sof0_dims(&jpg), (w, h));
            assert_eq!(&jpg[jpg.len() - 2..], &[0xFF, 0xD9]);
        }
    }

    #[test]
    fn data_url_and_mime() {
        let url = data_url(b"hello", ImageFormat::Png.mime());
        assert_eq!(url, "data:image/png;base64,aGVsbG8=");
        assert!(data_url(&[0; 10], "image/jpeg").starts_with("data:image/jpeg;base64,"));
        assert_eq!("JPG".parse(), Ok(ImageFormat::Jpeg));
        assert_eq!("jpeg".parse(), Ok(ImageFormat::Jpeg));
        assert_eq!("png".parse(), Ok(ImageFormat::Png));
        assert!("gif".parse::<ImageFormat>().is_err());
        assert_eq!(mime_for_path(Path::new("a/b.JPeG")), Some("image/jpeg"));
        assert_eq!(mime_for_path(Path::new("x.webp")), Some("image/webp"));
        assert_eq!(mime_for_path(Path::new("x.gif")), Some("image/gif"));
        assert_eq!(mime_for_path(Path::new("x.png")), Some("image/png"));
        assert_eq!(mime_for_path(Path::new("x.bmp")), None);
        assert_eq!(mime_for_path(Path::new("noext")), None);
    }
}
