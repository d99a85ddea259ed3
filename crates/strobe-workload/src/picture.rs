//! Synthetic, deterministic images for vision benchmarks of LLM servers.
//!
//! Every seed yields a different picture (seeded gradient, translucent shapes and a
//! little grain) so server-side image caches never hit across requests, while the same
//! `(width, height, format, seed)` always yields byte-identical output. Rendering and PNG
//! encoding use integer arithmetic only and the JPEG encoder runs without its runtime-detected
//! SIMD path, so output does not depend on the CPU, only on the pinned versions of `rand`
//! (the `StdRng` algorithm) and `jpeg-encoder`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
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

fn write_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// Encodes RGB8 pixels as a PNG (Up filter on every row, Huffman-only zlib stream).
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
    let idat = zlib_huffman_only(&raw);

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

/// Huffman code lengths (at most 14 bits, one less than deflate allows) for `freq`, 0 for unused symbols.
fn code_lengths(freq: &[u64]) -> Vec<u8> {
    let mut f = freq.to_vec();
    loop {
        let n = f.len();
        let mut heap: BinaryHeap<_> = (0..n)
            .filter(|&i| f[i] > 0)
            .map(|i| Reverse((f[i], i)))
            .collect();
        let mut parent = vec![0usize; 2 * n];
        let mut next = n;
        while heap.len() > 1 {
            let (Reverse((wa, a)), Reverse((wb, b))) = (heap.pop().unwrap(), heap.pop().unwrap());
            (parent[a], parent[b]) = (next, next);
            heap.push(Reverse((wa + wb, next)));
            next += 1;
        }
        let mut depth = vec![0u8; next];
        for i in (0..next - 1).rev() {
            depth[i] = depth[parent[i]] + 1;
        }
        let lens: Vec<u8> = (0..n)
            .map(|i| if f[i] > 0 { depth[i] } else { 0 })
            .collect();
        if lens.iter().all(|&l| l <= 14) {
            return lens;
        }
        f.iter_mut()
            .filter(|x| **x > 0)
            .for_each(|x| *x = (*x >> 1) | 1); // flatten, retry
    }
}

/// zlib stream holding one dynamic-Huffman deflate block of literals only (no LZ77):
/// several times faster than miniz's fastest level on filtered photo-like data, similar size.
fn zlib_huffman_only(data: &[u8]) -> Vec<u8> {
    let mut hist = [[0u64; 256]; 4];
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        (0..4).for_each(|i| hist[i][q[i] as usize] += 1);
    }
    quads
        .remainder()
        .iter()
        .for_each(|&b| hist[0][b as usize] += 1);
    let mut freq: Vec<u64> = (0..256).map(|s| hist.iter().map(|h| h[s]).sum()).collect();
    freq.push(1); // end of block
    let lens = code_lengths(&freq);
    // Canonical codes (RFC 1951 3.2.2), bit-reversed for LSB-first output.
    let mut next_code = [0u32; 16];
    for len in 2..16 {
        let shorter = lens.iter().filter(|&&l| l as usize == len - 1).count() as u32;
        next_code[len] = (next_code[len - 1] + shorter) << 1;
    }
    let codes: Vec<u64> = lens
        .iter()
        .map(|&l| {
            next_code[l as usize] += 1;
            ((next_code[l as usize] - 1).reverse_bits() as u64)
                .checked_shr(32 - l as u32)
                .unwrap_or(0)
        })
        .collect();

    // Exact size: 2 (zlib header) + 17 bits + 19 * 3 + 258 * 4 (Huffman tables) + the data.
    let data_bits: u64 = freq.iter().zip(&lens).map(|(&f, &l)| f * l as u64).sum();
    let total = 2 + (17 + 57 + 1032 + data_bits as usize).div_ceil(8);
    let mut out = vec![0u8; total + 8 + 4]; // + 8 slack for whole-word writes, + 4 Adler-32
    out[..2].copy_from_slice(&[0x78, 0x01]); // zlib header: deflate, 32K window, no dictionary
    let (mut pos, mut acc, mut n) = (2usize, 0u64, 0u32);
    let mut put = |code: u64, len: u8| {
        acc |= code << n;
        n += len as u32;
        out[pos..pos + 8].copy_from_slice(&acc.to_le_bytes());
        pos += (n / 8) as usize;
        acc >>= n & !7;
        n &= 7;
    };
    put(0b101, 3); // BFINAL=1, BTYPE=2 (dynamic Huffman)
    put(0, 5 + 5); // HLIT = 0: 257 literal/length codes; HDIST = 0: 1 distance code
    put(15, 4); // HCLEN: 19 code-length codes
                // Code-length alphabet: symbols 0..=15 get 4 bits each (code = symbol), 16..=18 unused.
    for sym in [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ] {
        put(if sym < 16 { 4 } else { 0 }, 3);
    }
    for &l in lens.iter().chain(&[0]) {
        put(((l as u32).reverse_bits() >> 28) as u64, 4); // the one distance code is unused
    }
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        let (mut code, mut len) = (0u64, 0u8);
        for &b in q {
            (code, len) = (code | codes[b as usize] << len, len + lens[b as usize]);
        }
        put(code, len); // 4 codes of at most 14 bits, plus < 8 pending bits, fit in 64
    }
    for &b in quads.remainder() {
        put(codes[b as usize], lens[b as usize]);
    }
    put(codes[256], lens[256]);
    put(0, 7); // flush the last partial byte
    debug_assert_eq!(pos, total);
    out.truncate(pos);
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// Adler-32 of `data`, with 16 independent lanes so that the compiler vectorises it.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u64, 0u64);
    for chunk in data.chunks(16 * 340) {
        let (mut sa, mut sb) = ([0u32; 16], [0u32; 16]);
        let mut blocks = chunk.chunks_exact(16);
        for blk in &mut blocks {
            for i in 0..16 {
                sa[i] += blk[i] as u32;
                sb[i] += sa[i];
            }
        }
        // Byte i of block m (of k) is weighted n - (16 m + i) = 16 (k - m) - i in the sum b.
        b += (chunk.len() & !15) as u64 * a;
        for i in 0..16 {
            (a, b) = (
                a + sa[i] as u64,
                b + 16 * sb[i] as u64 - i as u64 * sa[i] as u64,
            );
        }
        for &x in blocks.remainder() {
            (a, b) = (a + x as u64, b + a + x as u64);
        }
        (a, b) = (a % 65521, b % 65521);
    }
    (b << 16 | a) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be32(b: &[u8]) -> u32 {
        u32::from_be_bytes(b[..4].try_into().unwrap())
    }

    /// Bitwise CRC-32, independent of the table-driven crate used by the encoder.
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
            // Inflate with an independent decoder (checks Adler-32) and undo the Up filter.
            let raw = miniz_oxide::inflate::decompress_to_vec_zlib(&idat).unwrap();
            let stride = w as usize * 3;
            let mut pixels: Vec<u8> = Vec::new();
            for row in raw.chunks_exact(stride + 1) {
                assert_eq!(row[0], 2);
                let above = pixels
                    .len()
                    .checked_sub(stride)
                    .map(|i| pixels[i..].to_vec());
                let above = above.unwrap_or_else(|| vec![0; stride]);
                pixels.extend(row[1..].iter().zip(&above).map(|(d, a)| d.wrapping_add(*a)));
            }
            assert_eq!(pixels, render(w as usize, h as usize, seed));
        }
    }

    #[test]
    fn huffman_length_limit_and_adler() {
        // Fibonacci frequencies force an unlimited Huffman tree deeper than 14 levels.
        let (mut data, mut fib) = (Vec::new(), (1usize, 1usize));
        for sym in 0..26u8 {
            data.extend(std::iter::repeat_n(sym, fib.0));
            fib = (fib.1, fib.0 + fib.1);
        }
        let z = zlib_huffman_only(&data);
        assert_eq!(
            miniz_oxide::inflate::decompress_to_vec_zlib(&z).unwrap(),
            data
        );
        let (mut a, mut b) = (1u32, 0u32);
        data.iter()
            .for_each(|&x| (a, b) = ((a + x as u32) % 65521, (b + a + x as u32) % 65521));
        assert_eq!(adler32(&data), (b << 16) | a);
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
