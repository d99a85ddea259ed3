//! Where request images come from: generated per request (seeded, so distinct images defeat
//! servers' image caches unless the same seed and index repeat), or read from files.

use rand::RngCore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::picture::{self, ImageFormat};
use crate::rng_for;

const IMAGE_STREAM: u64 = 0x696d_6167_6500_0000;

/// The images of a vision workload.
#[derive(Clone, Debug)]
pub enum ImageSource {
    /// A fresh image per request and slot.
    Generated {
        width: u32,
        height: u32,
        format: ImageFormat,
    },
    /// Files used in turn: request `i`, slot `k` uses file `(i * per_request + k) mod n`
    /// (`per_request` folded into the index by the caller). Data URLs are built once.
    Files(Arc<Vec<(PathBuf, Arc<str>)>>),
}

impl ImageSource {
    /// Reads image files (a folder stands for the image files in it, by name).
    pub fn from_paths(paths: &[PathBuf]) -> Result<ImageSource, String> {
        let mut files = Vec::new();
        for p in paths {
            if p.is_dir() {
                let mut inner: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(|e| format!("--image {}: cannot list the folder: {e}", p.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| picture::mime_for_path(f).is_some())
                    .collect();
                inner.sort();
                if inner.is_empty() {
                    return Err(format!(
                        "--image {}: the folder holds no .png, .jpg, .jpeg, .webp or .gif files",
                        p.display()
                    ));
                }
                files.extend(inner);
            } else {
                files.push(p.clone());
            }
        }
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            out.push((f.clone(), Arc::from(read_data_url(&f)?)));
        }
        Ok(ImageSource::Files(Arc::new(out)))
    }

    /// The data URL of image slot `k` of request `index`.
    pub fn data_url(&self, seed: u64, index: u64, k: u32) -> String {
        match self {
            ImageSource::Generated {
                width,
                height,
                format,
            } => {
                let s = rng_for(seed ^ IMAGE_STREAM ^ ((k as u64) << 48), index).next_u64();
                let bytes = picture::generate(*width, *height, *format, s);
                picture::data_url(&bytes, format.mime())
            }
            ImageSource::Files(files) => {
                let i =
                    (index.wrapping_mul(7919).wrapping_add(k as u64) % files.len() as u64) as usize;
                files[i].1.to_string()
            }
        }
    }
}

impl std::fmt::Display for ImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageSource::Generated {
                width,
                height,
                format,
            } => write!(f, "generated {width}x{height} {}", format.mime()),
            ImageSource::Files(files) => write!(f, "{} image file(s)", files.len()),
        }
    }
}

fn read_data_url(path: &Path) -> Result<String, String> {
    let mime = picture::mime_for_path(path).ok_or_else(|| {
        format!(
            "--image {}: unknown image type; use .png, .jpg, .jpeg, .webp or .gif",
            path.display()
        )
    })?;
    let bytes = std::fs::read(path)
        .map_err(|e| format!("--image {}: cannot read it: {e}", path.display()))?;
    Ok(picture::data_url(&bytes, mime))
}

/// Parses `WxH`, e.g. `512x512`.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("--image-size `{s}`: expected WIDTHxHEIGHT, e.g. 512x512"))?;
    let n = |v: &str| -> Result<u32, String> {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| (1..=8192).contains(&n))
            .ok_or_else(|| {
                format!("--image-size `{s}`: sides must be whole numbers from 1 to 8192")
            })
    };
    Ok((n(w)?, n(h)?))
}
