//! The upload routes: multipart create and replace on `/api/media` (entered from the collection
//! routes, so list/read/JSON update stay the engine's), object removal after deletes, and the
//! file URL `/api/media/file/…` served under the document's read access.
//!
//! Order of a write: stage the file (streamed to disk) → sniff/inspect → resized variants → one
//! transaction: engine create/update (validation, access, hooks, audit) → store the objects →
//! commit. Storage failing rolls the row back (no orphan row); the commit failing removes the
//! stored objects (no orphan object).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::AppState;
use crate::collections::access::{authorize, Action};
use crate::collections::decl::CollectionDecl;
use crate::collections::engine::params::FindParams;
use crate::collections::engine::read;
use crate::collections::engine::validate::UNIQUE;
use crate::collections::engine::write::{self, ServerValues, WriteEnv};
use crate::http::error::ApiError;
use crate::http::extract::CallContext;
use crate::media::images::{self, Variant};
use crate::media::storage::ByteRange;
use crate::media::upload::{self, Inspected, StagedFile};

pub fn router() -> Router<AppState> {
    Router::new().route("/media/file/{*path}", get(serve_file))
}

// The REST routes' own environments: uploads are the same engine calls.
use crate::collections::routes::{env as read_env, scope, write_env};

/// Payload's answer to an upload without a file.
fn missing_file() -> ApiError {
    ApiError::bad_request("No files were uploaded.")
}

/// A file that passed the checks, with its variants, ready to be written.
struct Prepared {
    staged: StagedFile,
    inspected: Inspected,
    dims: Option<(u32, u32)>,
    variants: Vec<Variant>,
}

async fn prepare(state: &AppState, staged: StagedFile) -> Result<Prepared, ApiError> {
    let inspected = upload::inspect(&staged.head, &staged.original_name)?;
    let dims = upload::dimensions(staged.file.path(), &inspected.mime);
    let sizes = &state.config.media.image_sizes;
    let variants = if !sizes.is_empty() && images::resizable(&inspected.mime, dims) {
        let src = staged.file.path().to_path_buf();
        let mime = inspected.mime.clone();
        let sizes = sizes.clone();
        let staging = staging_dir(state);
        tokio::task::spawn_blocking(move || images::make_variants(&src, &mime, &sizes, &staging))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("resizing task: {e}")))?
    } else {
        Vec::new()
    };
    Ok(Prepared {
        staged,
        inspected,
        dims,
        variants,
    })
}

/// `{stem}-{w}x{h}.{ext}`: a variant's file name (Payload's scheme).
fn variant_filename(filename: &str, v: &Variant) -> String {
    let stem = filename.rsplit_once('.').map_or(filename, |(s, _)| s);
    format!("{stem}-{}x{}.{}", v.width, v.height, v.ext)
}

/// The server-set fields of a stored file.
fn server_fields(state: &AppState, p: &Prepared, filename: &str, key_dir: &str) -> Map<String, Value> {
    let mut sizes = Map::new();
    for size in &state.config.media.image_sizes {
        let entry = match p.variants.iter().find(|v| v.name == size.name) {
            Some(v) => json!({
                "width": v.width, "height": v.height, "mimeType": v.mime,
                "filesize": v.filesize, "filename": variant_filename(filename, v),
            }),
            None => json!({
                "width": null, "height": null, "mimeType": null, "filesize": null, "filename": null,
            }),
        };
        sizes.insert(size.name.clone(), entry);
    }
    let mut fields = Map::new();
    fields.insert("filename".into(), json!(filename));
    fields.insert("mimeType".into(), json!(p.inspected.mime));
    fields.insert("filesize".into(), json!(p.staged.size));
    fields.insert("width".into(), json!(p.dims.map(|d| d.0)));
    fields.insert("height".into(), json!(p.dims.map(|d| d.1)));
    fields.insert("sizes".into(), Value::Object(sizes));
    fields.insert("storageKey".into(), json!(format!("{key_dir}/{filename}")));
    fields.insert("sha256".into(), json!(p.staged.sha256));
    fields
}

/// Names already used in the tenant that `base` or its suffixed forms could clash with.
async fn taken_names(
    conn: &mut PgConnection,
    tenant: Option<Uuid>,
    base: &str,
    except: Option<Uuid>,
) -> Result<Vec<String>, ApiError> {
    let (stem, ext) = match base.rsplit_once('.') {
        Some((s, e)) => (s.to_string(), format!(".{e}")),
        None => (base.to_string(), String::new()),
    };
    let escape = |s: &str| s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let pattern = format!("{}-%{}", escape(&stem), escape(&ext));
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT filename FROM media WHERE tenant_id IS NOT DISTINCT FROM $1 \
         AND (filename = $2 OR filename LIKE $3) AND id IS DISTINCT FROM $4",
    )
    .bind(tenant)
    .bind(base)
    .bind(pattern)
    .bind(except)
    .fetch_all(&mut *conn)
    .await?;
    Ok(names)
}

/// The first of `base`, `base-1`, `base-2`, … not in `taken`.
fn free_name(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == base) {
        return base.to_string();
    }
    (1u32..)
        .map(|n| upload::with_suffix(base, n))
        .find(|c| !taken.contains(c))
        .expect("an unbounded range has a free name")
}

fn is_filename_clash(e: &ApiError) -> bool {
    matches!(e, ApiError::Validation(v) if v.errors.iter().any(|f| f.path == "filename" && f.message == UNIQUE))
}

/// The tenant the row will have: the body's, else the engine's default (context or only tenant).
async fn target_tenant(
    decl: &CollectionDecl,
    wenv: &WriteEnv<'_>,
    fields: &Map<String, Value>,
) -> Result<Option<Uuid>, ApiError> {
    Ok(match fields.get("tenant") {
        Some(Value::String(s)) => Uuid::parse_str(s).ok(),
        Some(Value::Object(o)) => o
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok()),
        Some(_) => None,
        None => write::default_tenant(decl, wenv).await?,
    })
}

fn key_dir(tenant: Option<Uuid>, object: Uuid) -> String {
    match tenant {
        Some(t) => format!("{t}/{object}"),
        None => format!("public/{object}"),
    }
}

/// Writes the original and its variants; on failure removes what was written.
async fn store(
    state: &AppState,
    p: &Prepared,
    filename: &str,
    key_dir: &str,
) -> Result<Vec<String>, ApiError> {
    let mut stored = Vec::new();
    let original = format!("{key_dir}/{filename}");
    let mut result = state
        .media
        .put_file(&original, p.staged.file.path(), &p.inspected.mime)
        .await;
    if result.is_ok() {
        stored.push(original);
        for v in &p.variants {
            let key = format!("{key_dir}/{}", variant_filename(filename, v));
            result = state.media.put_file(&key, v.file.path(), &v.mime).await;
            if result.is_err() {
                break;
            }
            stored.push(key);
        }
    }
    match result {
        Ok(()) => Ok(stored),
        Err(e) => {
            state.media.delete_all(&stored).await;
            Err(e.into())
        }
    }
}

/// `POST /api/media` with `multipart/form-data`.
pub async fn create(
    state: &AppState,
    ctx: &CallContext,
    decl: &'static CollectionDecl,
    params: &FindParams,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Refuse before reading (and staging) a body the caller may not write.
    if authorize(&state.authz, &ctx.principal, Action::Create, decl, &ctx.tenant)
        .await?
        .is_denied()
    {
        return Err(ApiError::Forbidden);
    }
    if !upload::is_multipart(headers) {
        return Err(missing_file());
    }
    let media = &state.config.media;
    let received = upload::receive(headers, body, &staging_dir(state), media.max_bytes).await?;
    let staged = received.file.ok_or_else(missing_file)?;
    let doc = create_from(state, ctx, decl, received.fields, staged, params).await?;
    let message = format!("{} successfully created.", decl.singular);
    Ok((StatusCode::CREATED, Json(json!({"doc": doc, "message": message}))).into_response())
}

/// A new media document for a staged file: checks and sniffing, variants, the engine's create
/// (validation, access, hooks, audit; a clashing name gets the next suffix), the objects
/// stored, commit. The one path of the REST multipart create and the admin's upload forms.
pub async fn create_from(
    state: &AppState,
    ctx: &CallContext,
    decl: &'static CollectionDecl,
    fields: Map<String, Value>,
    staged: StagedFile,
    params: &FindParams,
) -> Result<Value, ApiError> {
    let prepared = prepare(state, staged).await?;
    let wenv = write_env(state, ctx);
    let tenant = target_tenant(decl, &wenv, &fields).await?;
    let id = Uuid::now_v7();
    let dir = key_dir(tenant, id);

    let mut tx = crate::db::scope::begin_write(&state.pool, &scope(ctx)).await?;
    let mut attempts = 0;
    let (doc, filename) = loop {
        // Read afresh on every attempt: a concurrent upload may have committed a name meanwhile.
        let taken = taken_names(&mut tx, tenant, &prepared.inspected.filename, None).await?;
        let filename = free_name(&prepared.inspected.filename, &taken);
        let server = ServerValues {
            id: Some(id),
            fields: server_fields(state, &prepared, &filename, &dir),
        };
        // A savepoint per attempt: a concurrent upload of the same name makes the insert fail.
        let mut attempt = sqlx::Acquire::begin(&mut *tx).await?;
        match write::create_with(&mut attempt, &wenv, decl, fields.clone(), server, params).await {
            Ok(doc) => {
                attempt.commit().await?;
                break (doc, filename);
            }
            Err(e) if is_filename_clash(&e) && attempts < 20 => {
                attempt.rollback().await?;
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let stored = store(state, &prepared, &filename, &dir).await?;
    if let Err(e) = crate::collections::routes::commit(state, decl, tx).await {
        state.media.delete_all(&stored).await;
        return Err(e);
    }
    Ok(doc)
}

/// `PATCH /api/media/{id}` with `multipart/form-data`: fields from `_payload`, and a new file
/// when one is sent (stored under a new object id; the old objects go after the commit).
pub async fn update(
    state: &AppState,
    ctx: &CallContext,
    decl: &'static CollectionDecl,
    id: &str,
    params: &FindParams,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if authorize(&state.authz, &ctx.principal, Action::Update, decl, &ctx.tenant)
        .await?
        .is_denied()
    {
        return Err(ApiError::Forbidden);
    }
    let media = &state.config.media;
    let received = upload::receive(headers, body, &staging_dir(state), media.max_bytes).await?;
    let doc = update_from(state, ctx, decl, id, received.fields, received.file, params).await?;
    Ok(Json(json!({"doc": doc, "message": "Updated successfully."})).into_response())
}

/// An update of a media document, replacing its file when `staged` is given: the REST
/// multipart update's and the admin's one path.
pub async fn update_from(
    state: &AppState,
    ctx: &CallContext,
    decl: &'static CollectionDecl,
    id: &str,
    fields: Map<String, Value>,
    staged: Option<StagedFile>,
    params: &FindParams,
) -> Result<Value, ApiError> {
    let wenv = write_env(state, ctx);
    let mut tx = crate::db::scope::begin_write(&state.pool, &scope(ctx)).await?;
    let Some(staged) = staged else {
        let doc = write::update_by_id(&mut tx, &wenv, decl, id, fields, params).await?;
        crate::collections::routes::commit(state, decl, tx).await?;
        return Ok(doc);
    };
    let prepared = prepare(state, staged).await?;
    let row_id = Uuid::parse_str(id).map_err(|_| ApiError::NotFound)?;
    let current: Option<(Option<Uuid>,)> = sqlx::query_as("SELECT tenant_id FROM media WHERE id = $1")
        .bind(row_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((current_tenant,)) = current else {
        return Err(ApiError::NotFound);
    };
    let old_keys = object_keys(&mut tx, id).await?;
    let tenant = match fields.get("tenant") {
        Some(_) => target_tenant(decl, &wenv, &fields).await?,
        None => current_tenant,
    };
    let dir = key_dir(tenant, Uuid::now_v7());
    let mut attempts = 0;
    let (doc, filename) = loop {
        let taken = taken_names(&mut tx, tenant, &prepared.inspected.filename, Some(row_id)).await?;
        let filename = free_name(&prepared.inspected.filename, &taken);
        let server = ServerValues {
            id: None,
            fields: server_fields(state, &prepared, &filename, &dir),
        };
        let mut attempt = sqlx::Acquire::begin(&mut *tx).await?;
        match write::update_with(&mut attempt, &wenv, decl, id, fields.clone(), server, params).await {
            Ok(doc) => {
                attempt.commit().await?;
                break (doc, filename);
            }
            Err(e) if is_filename_clash(&e) && attempts < 20 => {
                attempt.rollback().await?;
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let stored = store(state, &prepared, &filename, &dir).await?;
    if let Err(e) = crate::collections::routes::commit(state, decl, tx).await {
        state.media.delete_all(&stored).await;
        return Err(e);
    }
    state.media.delete_all(&old_keys).await;
    Ok(doc)
}

/// Where uploads are staged before they are stored.
pub fn staging_dir(state: &AppState) -> std::path::PathBuf {
    state.config.media.dir.join(".incoming")
}

/// The object keys of a media row (original and variants), read in the caller's transaction.
pub async fn object_keys(conn: &mut PgConnection, id: &str) -> Result<Vec<String>, ApiError> {
    let Ok(id) = Uuid::parse_str(id) else {
        return Ok(Vec::new());
    };
    let rows: Vec<(String, Value)> = sqlx::query_as("SELECT storage_key, sizes FROM media WHERE id = $1")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .flat_map(|(key, sizes)| keys_of(key, sizes))
        .collect())
}

/// The object keys of every media row of a tenant (removed with the tenant).
pub async fn tenant_object_keys(conn: &mut PgConnection, tenant: &str) -> Result<Vec<String>, ApiError> {
    let Ok(tenant) = Uuid::parse_str(tenant) else {
        return Ok(Vec::new());
    };
    let rows: Vec<(String, Value)> =
        sqlx::query_as("SELECT storage_key, sizes FROM media WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows
        .into_iter()
        .flat_map(|(key, sizes)| keys_of(key, sizes))
        .collect())
}

/// A row's original key and its variants' keys (same directory).
fn keys_of(key: String, sizes: Value) -> Vec<String> {
    let dir = key.rsplit_once('/').map_or("", |(d, _)| d).to_string();
    let mut keys = vec![key];
    if let Value::Object(sizes) = sizes {
        for size in sizes.values() {
            if let Some(name) = size.get("filename").and_then(Value::as_str) {
                keys.push(format!("{dir}/{name}"));
            }
        }
    }
    keys
}

/// Removes the objects of deleted rows (after the commit: a failure leaves an object, never a
/// row without its file).
pub async fn remove_objects(state: &AppState, keys: &[String]) {
    state.media.delete_all(keys).await;
}

/// A single `Range: bytes=…` against `total` bytes: `Ok(None)` = whole file, `Err` = 416.
fn parse_range(headers: &HeaderMap, total: u64) -> Result<Option<ByteRange>, ()> {
    let Some(raw) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = raw.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: the whole file (allowed by RFC 9110)
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || total == 0 {
            return Err(());
        }
        ByteRange {
            start: total.saturating_sub(n),
            end: total - 1,
        }
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end: u64 = if b.is_empty() {
            total.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(total.saturating_sub(1))
        };
        if start >= total || end < start {
            return Err(());
        }
        ByteRange { start, end }
    };
    Ok(Some(range))
}

/// `GET /api/media/file/{tenant id}/{filename}` or `/api/media/file/{filename}` (the resolved
/// tenant's, else public media): the bytes of the original or of a size, after the document's
/// read access.
async fn serve_file(
    State(state): State<AppState>,
    Path(path): Path<String>,
    ctx: CallContext,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let decl = state
        .registry
        .get("media")
        .ok_or_else(|| ApiError::RouteNotFound(format!("/api/media/file/{path}")))?;
    let (tenant, name) = match path.split_once('/') {
        Some((t, n)) => (Some(Uuid::parse_str(t).map_err(|_| ApiError::NotFound)?), n),
        None => (None, path.as_str()),
    };
    if name.is_empty() || name.contains('/') {
        return Err(ApiError::NotFound);
    }
    let db_scope = scope(&ctx);
    let mut tx = crate::db::scope::begin(&state.pool, &db_scope).await?;
    type Row = (Uuid, String, String, String, i64, Value, Option<String>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, storage_key, filename, mime_type, filesize, sizes, sha256 FROM media \
         WHERE (filename = $1 OR jsonb_path_exists(sizes, '$.*.filename ? (@ == $f)', jsonb_build_object('f', $1::text))) \
         AND CASE WHEN $2::uuid IS NOT NULL THEN tenant_id = $2 ELSE (tenant_id = $3 OR tenant_id IS NULL) END \
         ORDER BY tenant_id NULLS LAST LIMIT 1",
    )
    .bind(name)
    .bind(tenant)
    .bind(db_scope.tenant_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, key, filename, mime, filesize, sizes, sha)) = row else {
        return Err(ApiError::NotFound);
    };
    // The document's own read access (RLS has already hidden other tenants' rows).
    read::find_by_id(
        &mut tx,
        &read_env(&state, &ctx),
        decl,
        &id.to_string(),
        0,
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    let (key, mime, total, etag) = if filename == name {
        (key, mime, filesize.max(0) as u64, sha)
    } else {
        let size = sizes
            .as_object()
            .and_then(|s| {
                s.values()
                    .find(|v| v.get("filename").and_then(Value::as_str) == Some(name))
            })
            .ok_or(ApiError::NotFound)?;
        let dir = key.rsplit_once('/').map_or("", |(d, _)| d);
        (
            format!("{dir}/{name}"),
            size.get("mimeType")
                .and_then(Value::as_str)
                .unwrap_or("application/octet-stream")
                .to_string(),
            size.get("filesize").and_then(Value::as_u64).unwrap_or(0),
            None,
        )
    };
    let range = match parse_range(&headers, total) {
        Ok(r) => r,
        Err(()) => {
            let mut res = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(res);
        }
    };
    let whole = ByteRange {
        start: 0,
        end: total.saturating_sub(1),
    };
    let body = if total == 0 {
        Body::empty()
    } else {
        state.media.get(&key, range.unwrap_or(whole)).await?
    };
    let mut res = body.into_response();
    let h = res.headers_mut();
    if let Some(r) = range {
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
        let h = res.headers_mut();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.byte_count()));
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{total}", r.start, r.end)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    } else {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    }
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Stored files are never run as documents in the API's origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; img-src 'self'; media-src 'self'; sandbox"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=0, must-revalidate"),
    );
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(&format!("\"{}\"", e.trim())).ok()) {
        h.insert(header::ETAG, etag);
    }
    let encoded: String = form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename*=UTF-8''{encoded}")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(raw: &str, total: u64) -> Result<Option<(u64, u64)>, ()> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(raw).unwrap());
        parse_range(&h, total).map(|r| r.map(|r| (r.start, r.end)))
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(range("bytes=100-", 100), Err(()));
        assert_eq!(range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(range("items=0-1", 100), Ok(None));
    }

    #[test]
    fn free_names_count_up() {
        let taken = vec!["a.png".to_string(), "a-1.png".to_string()];
        assert_eq!(free_name("a.png", &taken), "a-2.png");
        assert_eq!(free_name("b.png", &taken), "b.png");
    }
}
