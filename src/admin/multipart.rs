//! A browser's `multipart/form-data` post to an admin form (a form with file inputs): the text
//! parts become the same name/value pairs an urlencoded form gives (`FormInput`), the file
//! parts are streamed to the media staging area (`media::upload::stage`), never held in memory.
//!
//! The CSRF token is checked before any file is read: the admin's forms put `_csrf` first, and
//! browsers send parts in document order, so a post whose first part is not a valid token is
//! refused without staging a byte. Each file may be up to `MEDIA_MAX_BYTES`; a larger one is
//! drained and reported on its input (the rest of the form still arrives, so typed values are
//! kept); the whole body is bounded too.

use std::path::Path;

use axum::body::Body;
use axum::http::HeaderMap;

use super::forms::FormInput;
use crate::http::error::ApiError;
use crate::media::upload::{self, StagedFile, FIELD_LIMIT};

/// Most parts a form may have (an urlencoded form keeps 5,000 pairs).
const MAX_PARTS: usize = 5_000;
/// Most file inputs filled in one post.
const MAX_FILES: usize = 20;

/// One file input that carried a file: its input name and the staged file (or why not).
pub struct FormFile {
    pub name: String,
    pub staged: Result<StagedFile, ApiError>,
}

/// The posted form: its text pairs and its files.
pub struct MultipartForm {
    pub input: FormInput,
    pub files: Vec<FormFile>,
}

/// Why a multipart post was not read.
pub enum Refused {
    /// The first part was not a valid `_csrf` token.
    Csrf,
    /// The body broke a limit or could not be parsed.
    Body(ApiError),
}

/// Reads a multipart form post; `csrf_ok` judges the first part's `_csrf` value.
pub async fn read(
    headers: &HeaderMap,
    body: Body,
    staging_dir: &Path,
    max_file_bytes: u64,
    csrf_ok: impl FnOnce(&str) -> bool,
) -> Result<MultipartForm, Refused> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| Refused::Body(ApiError::bad_request("The multipart body has no boundary.")))?;
    // One file of the maximum size plus the form's text; a file over its own limit is counted
    // (and drained) by us so the fields after it still arrive.
    let whole = max_file_bytes.saturating_add(8 * FIELD_LIMIT);
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(whole).per_field(whole));
    let mut form = multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut files: Vec<FormFile> = Vec::new();
    let mut csrf_ok = Some(csrf_ok);
    let mut parts = 0;
    loop {
        let mut field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(Refused::Body(upload::multipart_error(e))),
        };
        parts += 1;
        if parts > MAX_PARTS {
            return Err(Refused::Body(ApiError::PayloadTooLarge));
        }
        let name = field.name().unwrap_or("").to_string();
        if let Some(check) = csrf_ok.take() {
            let token = if name == "_csrf" && field.file_name().is_none() {
                read_text(&mut field).await.map_err(Refused::Body)?
            } else {
                String::new()
            };
            if !check(&token) {
                return Err(Refused::Csrf);
            }
            pairs.push((name, token));
            continue;
        }
        match field.file_name().map(str::to_string) {
            // A file input left empty: browsers still send the part, with no name and no bytes.
            Some(file_name) if file_name.is_empty() => drain(&mut field).await.map_err(Refused::Body)?,
            Some(_) => {
                if files.len() >= MAX_FILES {
                    return Err(Refused::Body(ApiError::PayloadTooLarge));
                }
                let staged = upload::stage(&mut field, staging_dir, max_file_bytes).await;
                if staged.is_err() {
                    drain(&mut field).await.map_err(Refused::Body)?;
                }
                files.push(FormFile { name, staged });
            }
            None => {
                let value = read_text(&mut field).await.map_err(Refused::Body)?;
                pairs.push((name, value));
            }
        }
    }
    if csrf_ok.is_some() {
        // An empty body: nothing proved it came from our form.
        return Err(Refused::Csrf);
    }
    Ok(MultipartForm {
        input: FormInput::from_pairs(pairs),
        files,
    })
}

/// A text part, at most `FIELD_LIMIT` bytes of UTF-8.
async fn read_text(field: &mut multer::Field<'static>) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(upload::multipart_error)? {
        if (bytes.len() + chunk.len()) as u64 > FIELD_LIMIT {
            return Err(ApiError::PayloadTooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| ApiError::bad_request("A form field is not UTF-8 text."))
}

/// Reads and discards the rest of a part.
async fn drain(field: &mut multer::Field<'static>) -> Result<(), ApiError> {
    while field.chunk().await.map_err(upload::multipart_error)?.is_some() {}
    Ok(())
}
