//! Synthetic, deterministic images for vision benchmarks of LLM servers.
//!
//! Every seed yields a different picture (seeded gradient, translucent shapes and a
//! little grain) so server-side image caches never hit across requests, while the same
//! `(width, height, format, seed)` always yields byte-identical output.

use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

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

    // Background: linear gradient between two colours along a random direction.
    let (c0, c1) = (random_color(&mut rng), random_color(&mut rng));
    let (gx, gy): (i64, i64) = (rng.random_range(-256..=256), rng.random_range(-256..=256));
    let (xmax, ymax) = ((w - 1) as i64, (h - 1) as i64);
    let corners = [0, xmax * gx, ymax * gy, xmax * gx + ymax * gy];
    let (pmin, pmax) = (
        *corners.iter().min().unwrap(),
        *corners.iter().max().unwrap(),
    );
    let scale = (256 << 20) / (pmax - pmin).max(1);
    for (y, row) in px.chunks_exact_mut(w * 3).enumerate() {
        let base = y as i64 * gy - pmin;
        for (x, p) in row.chunks_exact_mut(3).enumerate() {
            let t = (((base + x as i64 * gx) * scale) >> 20) as i32; // 0..=256
            for c in 0..3 {
                p[c] = (c0[c] + (((c1[c] - c0[c]) * t) >> 8)) as u8;
            }
        }
    }

    // Translucent rectangles and discs.
    let min_dim = w.min(h) as i64;
    for _ in 0..rng.random_range(4..12) {
        let color = random_color(&mut rng);
        let alpha = rng.random_range(96..=256);
        let r = rng.random_range(min_dim / 16..=min_dim / 4).max(1);
        let (cx, cy) = (rng.random_range(0..w as i64), rng.random_range(0..h as i64));
        let disc = rng.random_bool(0.5);
        let (rx, ry) = if disc {
            (r, r)
        } else {
            (r, rng.random_range(r / 3..=r * 2).max(1))
        };
        for y in (cy - ry).max(0)..(cy + ry).min(h as i64) {
            for x in (cx - rx).max(0)..(cx + rx).min(w as i64) {
                let (dx, dy) = (x - cx, y - cy);
                if disc && dx * dx + dy * dy > r * r {
                    continue;
                }
                let i = (y as usize * w + x as usize) * 3;
                for c in 0..3 {
                    let v = px[i + c] as i32;
                    px[i + c] = ((v * (256 - alpha) + color[c] * alpha) >> 8) as u8;
                }
            }
        }
    }

    // Fine grain (one seeded byte per pixel), as in photographs.
    let mut noise = vec![0u8; w * h];
    rng.fill_bytes(&mut noise);
    for (p, &n) in px.chunks_exact_mut(3).zip(&noise) {
        let d = (n & 7) as i32 - 4;
        let chroma = ((n >> 3) & 3) as i32 - 1;
        for (c, v) in p.iter_mut().enumerate() {
            let d = if c == 1 { d } else { d + chroma };
            *v = (*v as i32 + d).clamp(0, 255) as u8;
        }
    }
    px
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

/// CRC-32 (ISO-HDLC) as used by PNG chunks.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut c = !0u32;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

fn write_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
}

/// Encodes RGB8 pixels as a PNG (Up filter on every row, fast zlib level).
fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    let stride = width as usize * 3;
    let mut raw = Vec::with_capacity((stride + 1) * height as usize);
    let mut prev: &[u8] = &[];
    for row in rgb.chunks_exact(stride) {
        raw.push(2); // filter type Up; the row above the first one counts as zeros
        if prev.is_empty() {
            raw.extend_from_slice(row);
        } else {
            raw.extend(row.iter().zip(prev).map(|(a, b)| a.wrapping_sub(*b)));
        }
        prev = row;
    }
    let idat = miniz_oxide::deflate::compress_to_vec_zlib(&raw, 1);

    let mut ihdr = [0u8; 13];
    ihdr[0..4].copy_from_slice(&width.to_be_bytes());
    ihdr[4..8].copy_from_slice(&height.to_be_bytes());
    ihdr[8] = 8; // bit depth
    ihdr[9] = 2; // colour type RGB; compression, filter, interlace = 0
    let mut out = Vec::with_capacity(idat.len() + 64);
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    write_chunk(&mut out, b"IHDR", &ihdr);
    write_chunk(&mut out, b"IDAT", &idat);
    write_chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
#[ignore]
fn breakdown() {
    use miniz_oxide::deflate::core::*;
    use std::time::Instant;
    let t = Instant::now();
    let rgb = render(512, 512, 1);
    println!("render {:?}", t.elapsed());
    let stride = 512 * 3;
    let mut raw = Vec::new();
    let mut prev: &[u8] = &[];
    for row in rgb.chunks_exact(stride) {
        raw.push(2);
        if prev.is_empty() {
            raw.extend_from_slice(row);
        } else {
            raw.extend(row.iter().zip(prev).map(|(a, b)| a.wrapping_sub(*b)));
        }
        prev = row;
    }
    for (level, strat) in [
        (0, 0),
        (1, 0),
        (1, 2),
        (1, 3),
        (1, 4),
        (2, 3),
        (6, 3),
        (3, 0),
    ] {
        for _ in 0..3 {
            let t = Instant::now();
            let mut c = CompressorOxide::new(create_comp_flags_from_zip_params(level, 1, strat));
            let mut out = Vec::new();
            let (st, _) = compress_to_output(&mut c, &raw, TDEFLFlush::Finish, |b| {
                out.extend_from_slice(b);
                true
            });
            println!(
                "level {level} strat {strat}: {:?} {:?} {}",
                st,
                t.elapsed(),
                out.len()
            );
        }
    }
}
