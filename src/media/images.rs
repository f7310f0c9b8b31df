//! Resized variants (Payload's `sizes`): each configured size cropped around the centre, in the
//! original's format. Only PNG, JPEG and WebP are resized; a size larger than the original is
//! skipped (its members are `null`, as Payload reports it).

use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat};

use crate::config::ImageSize;
use crate::media::upload::TempFile;

/// Images with more pixels than this are stored without variants (decoding would need too much memory).
const MAX_PIXELS: u64 = 40_000_000;

/// One produced variant, staged.
#[derive(Debug)]
pub struct Variant {
    pub name: String,
    pub file: TempFile,
    pub width: u32,
    pub height: u32,
    pub filesize: u64,
    pub mime: String,
    pub ext: &'static str,
}

fn format_of(mime: &str) -> Option<(ImageFormat, &'static str)> {
    match mime {
        "image/png" => Some((ImageFormat::Png, "png")),
        "image/jpeg" => Some((ImageFormat::Jpeg, "jpg")),
        "image/webp" => Some((ImageFormat::WebP, "webp")),
        _ => None,
    }
}

/// Whether variants are made for this type and pixel size.
pub fn resizable(mime: &str, dims: Option<(u32, u32)>) -> bool {
    format_of(mime).is_some() && dims.is_some_and(|(w, h)| u64::from(w) * u64::from(h) <= MAX_PIXELS)
}

/// Decodes `src` once and writes each size that fits into `staging`. Blocking: run it on the
/// blocking pool. A decoding failure yields no variants (the upload itself stands).
pub fn make_variants(src: &Path, mime: &str, sizes: &[ImageSize], staging: &Path) -> Vec<Variant> {
    let Some((format, ext)) = format_of(mime) else {
        return Vec::new();
    };
    let decoded = image::ImageReader::open(src)
        .map(|mut r| {
            r.set_format(format);
            r
        })
        .map_err(image::ImageError::IoError)
        .and_then(|r| r.decode());
    let img: DynamicImage = match decoded {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "image could not be decoded; no resized variants");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for size in sizes {
        if img.width() < size.width || img.height() < size.height {
            continue;
        }
        let resized = img.resize_to_fill(size.width, size.height, FilterType::Triangle);
        let resized = if format == ImageFormat::Jpeg {
            DynamicImage::ImageRgb8(resized.to_rgb8())
        } else {
            resized
        };
        let file = TempFile::new(staging, &format!(".{ext}"));
        if let Err(e) = resized.save_with_format(file.path(), format) {
            tracing::warn!(error = %e, size = %size.name, "resized variant could not be written");
            continue;
        }
        let filesize = std::fs::metadata(file.path()).map(|m| m.len()).unwrap_or(0);
        out.push(Variant {
            name: size.name.clone(),
            file,
            width: size.width,
            height: size.height,
            filesize,
            mime: mime.to_string(),
            ext,
        });
    }
    out
}
