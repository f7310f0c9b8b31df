//! Receiving an upload: the multipart body streamed part by part (multer), the file written to a
//! staging file while its size and SHA-256 are counted, its type sniffed from the first bytes,
//! its name sanitised, its pixel size read from the header.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderMap};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::http::error::{ApiError, FieldError};

/// How many leading bytes are kept for sniffing.
const HEAD_BYTES: usize = 8192;
/// Form fields other than the file (`_payload`, `alt`, …) are small.
pub const FIELD_LIMIT: u64 = 1024 * 1024;

/// A file in the staging area, removed when dropped unless it was moved to storage.
#[derive(Debug)]
pub struct TempFile(PathBuf);

impl TempFile {
    pub fn new(dir: &Path, suffix: &str) -> TempFile {
        TempFile(dir.join(format!("{}{suffix}", uuid::Uuid::new_v4().simple())))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The staged file part.
#[derive(Debug)]
pub struct StagedFile {
    pub file: TempFile,
    /// The client's name, unsanitised.
    pub original_name: String,
    pub size: u64,
    pub sha256: String,
    pub head: Vec<u8>,
}

/// The parsed multipart body: the other fields as a JSON object, and the file if one came.
#[derive(Debug)]
pub struct Received {
    pub fields: Map<String, Value>,
    pub file: Option<StagedFile>,
}

/// The file part is over the limit.
fn too_large() -> ApiError {
    ApiError::PayloadTooLarge
}

fn file_error(message: impl Into<String>) -> ApiError {
    ApiError::validation("media", None, vec![FieldError::new("file", None, message)])
}

/// Whether the request is a multipart form.
pub fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// Reads the multipart body: `file` streams to `staging_dir`, `_payload` (a JSON object) and any
/// plain fields become the document's fields (`_payload` wins over a plain field of the same name).
pub async fn receive(
    headers: &HeaderMap,
    body: Body,
    staging_dir: &Path,
    max_bytes: u64,
) -> Result<Received, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| ApiError::bad_request("The multipart body has no boundary."))?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(max_bytes.saturating_add(8 * FIELD_LIMIT))
            .per_field(FIELD_LIMIT)
            .for_field("file", max_bytes),
    );
    let mut form = multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut plain = Map::new();
    let mut payload: Option<Map<String, Value>> = None;
    let mut file: Option<StagedFile> = None;
    loop {
        let mut field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e)),
        };
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            if file.is_some() {
                return Err(file_error("Send one file per request."));
            }
            file = Some(stage(&mut field, staging_dir, max_bytes).await?);
            continue;
        }
        let text = field.text().await.map_err(multipart_error)?;
        if name == "_payload" {
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(o)) => payload = Some(o),
                _ => return Err(ApiError::bad_json()),
            }
        } else if !name.is_empty() {
            plain.insert(name, Value::String(text));
        }
    }
    if let Some(p) = payload {
        plain.extend(p);
    }
    Ok(Received { fields: plain, file })
}

/// A multipart parsing error as the API's: over a limit is 413, anything else 400.
pub fn multipart_error(e: multer::Error) -> ApiError {
    match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => too_large(),
        other => ApiError::bad_request(format!("The multipart body cannot be read: {other}")),
    }
}

/// Streams one file part to a staging file, counting bytes and hashing as it goes. Over
/// `max_bytes` it stops with 413, leaving the rest of the part unread.
pub async fn stage(
    field: &mut multer::Field<'static>,
    dir: &Path,
    max_bytes: u64,
) -> Result<StagedFile, ApiError> {
    let original_name = field.file_name().unwrap_or("").to_string();
    let storage_down = |e: std::io::Error| {
        ApiError::from(super::storage::StorageError::Unavailable(format!(
            "staging {}: {e}",
            dir.display()
        )))
    };
    tokio::fs::create_dir_all(dir).await.map_err(storage_down)?;
    let temp = TempFile::new(dir, ".part");
    let out = tokio::fs::File::create(temp.path()).await.map_err(storage_down)?;
    let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, out);
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(HEAD_BYTES);
    let mut size: u64 = 0;
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e)),
        };
        size += chunk.len() as u64;
        if size > max_bytes {
            return Err(too_large());
        }
        if head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(storage_down)?;
    }
    out.flush().await.map_err(storage_down)?;
    drop(out);
    Ok(StagedFile {
        file: temp,
        original_name,
        size,
        sha256: hex::encode(hasher.finalize()),
        head,
    })
}

/// What the bytes are, and the name the file is stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub mime: String,
    pub filename: String,
}

/// Extensions a sniffed type may carry; the first is the one appended to a name without one.
fn extensions_for(mime: &str, sniffed_ext: &str) -> Vec<String> {
    let aliases: &[&str] = match mime {
        "image/jpeg" => &["jpg", "jpeg", "jpe", "jfif"],
        "image/tiff" => &["tif", "tiff"],
        "image/heif" | "image/heic" => &["heic", "heif"],
        "video/mp4" => &["mp4", "m4v"],
        "video/quicktime" => &["mov", "qt"],
        "video/mpeg" => &["mpg", "mpeg"],
        _ => &[],
    };
    let mut out = vec![sniffed_ext.to_string()];
    out.extend(aliases.iter().map(|a| a.to_string()).filter(|a| a != sniffed_ext));
    out
}

/// The accepted types (the original's): images, videos and PDF, by their bytes. SVG is never
/// recognised (it is text that can carry scripts), so it is refused.
pub fn allowed(mime: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".+-".contains(c))
    };
    match mime.split_once('/') {
        Some(("image", sub)) => token(sub) && sub != "svg+xml",
        Some(("video", sub)) => token(sub),
        Some(("application", "pdf")) => true,
        _ => false,
    }
}

/// Sniffs the type and settles the name: an unknown or refused type, or an extension that
/// contradicts the bytes (`invoice.pdf` that is really a PNG), is a 400 on `file`.
pub fn inspect(head: &[u8], original_name: &str) -> Result<Inspected, ApiError> {
    let Some(kind) = infer::get(head) else {
        return Err(file_error(
            "This file type is not allowed: its content is not a recognised image, video or PDF.",
        ));
    };
    let mime = kind.mime_type().to_string();
    if !allowed(&mime) {
        return Err(file_error(format!("This file type is not allowed: {mime}.")));
    }
    let name = sanitize_filename(original_name);
    let accepted = extensions_for(&mime, kind.extension());
    let filename = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => {
            let ext = ext.to_ascii_lowercase();
            if !accepted.contains(&ext) {
                return Err(file_error(format!(
                    "The file's extension .{ext} does not match its content ({mime})."
                )));
            }
            format!("{stem}.{ext}")
        }
        _ => format!("{name}.{}", accepted[0]),
    };
    Ok(Inspected { mime, filename })
}

/// A safe file name: the last path segment only (no traversal), no control or bidi characters,
/// none of `<>:"|?*%#\`, no leading dots, at most 150 characters before the extension.
pub fn sanitize_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let mut out = String::with_capacity(base.len());
    for c in base.chars() {
        let invisible = c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
        if invisible {
            continue;
        }
        if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*' | '%' | '#') {
            out.push('-');
        } else if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    let trimmed = out.trim().trim_start_matches('.').trim().to_string();
    let (stem, ext) = match trimmed.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() && !e.is_empty() && e.len() <= 10 => {
            (s.to_string(), Some(e.to_string()))
        }
        _ => (trimmed.clone(), None),
    };
    let stem: String = stem.chars().take(150).collect();
    let stem = stem.trim_end_matches(['.', ' ']).to_string();
    let stem = if stem.is_empty() { "file".to_string() } else { stem };
    match ext {
        Some(e) => format!("{stem}.{e}"),
        None => stem,
    }
}

/// `photo.jpg` → `photo-{n}.jpg`.
pub fn with_suffix(filename: &str, n: u32) -> String {
    match filename.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}-{n}.{ext}"),
        None => format!("{filename}-{n}"),
    }
}

/// Width and height from the image header (reads only what the header needs).
pub fn dimensions(path: &Path, mime: &str) -> Option<(u32, u32)> {
    if !mime.starts_with("image/") {
        return None;
    }
    let size = imagesize::size(path).ok()?;
    let w = u32::try_from(size.width).ok().filter(|w| *w > 0)?;
    let h = u32::try_from(size.height).ok().filter(|h| *h > 0)?;
    Some((w, h))
}

/// Removes staging files older than `age` (left by a process that died mid-upload); returns how
/// many went. Younger files may belong to uploads in progress (of this or another instance).
pub async fn sweep_staging(dir: &Path, age: std::time::Duration) -> usize {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return 0;
    };
    let mut removed = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let old = entry
            .metadata()
            .await
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|elapsed| elapsed >= age);
        if old && tokio::fs::remove_file(entry.path()).await.is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sweep_removes_only_old_staging_files() {
        let dir = std::env::temp_dir().join(format!("cityos-sweep-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.part"), b"x").unwrap();
        assert_eq!(sweep_staging(&dir, std::time::Duration::from_secs(3600)).await, 0);
        assert!(dir.join("a.part").exists());
        assert_eq!(sweep_staging(&dir, std::time::Duration::ZERO).await, 1);
        assert!(!dir.join("a.part").exists());
        assert_eq!(
            sweep_staging(&dir.join("missing"), std::time::Duration::ZERO).await,
            0
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn traversal_and_control_characters_are_removed() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("..\\..\\win.ini"), "win.ini");
        assert_eq!(sanitize_filename("a\u{0}b\nc.png"), "abc.png");
        assert_eq!(sanitize_filename("evil\u{202E}gnp.exe"), "evilgnp.exe");
        assert_eq!(sanitize_filename(".."), "file");
        assert_eq!(sanitize_filename(".htaccess"), "htaccess");
        assert_eq!(sanitize_filename("a?b*c%2e.png"), "a-b-c-2e.png");
        assert_eq!(sanitize_filename("  summer   sale .png"), "summer sale.png");
        assert_eq!(sanitize_filename(""), "file");
        let long = format!("{}.png", "x".repeat(400));
        assert_eq!(sanitize_filename(&long).len(), 154);
    }

    #[test]
    fn suffixes_go_before_the_extension() {
        assert_eq!(with_suffix("photo.jpg", 1), "photo-1.jpg");
        assert_eq!(with_suffix("README", 2), "README-2");
    }

    #[test]
    fn the_type_comes_from_the_bytes() {
        let png = [
            0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R',
        ];
        assert_eq!(inspect(&png, "logo.png").unwrap().mime, "image/png");
        assert_eq!(inspect(&png, "logo").unwrap().filename, "logo.png");
        assert!(inspect(&png, "logo.pdf").is_err());
        assert!(inspect(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "x.svg").is_err());
        assert!(inspect(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "photo.png").is_err());
        assert_eq!(inspect(b"%PDF-1.7\n", "doc.PDF").unwrap().filename, "doc.pdf");
    }
}
