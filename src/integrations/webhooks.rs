//! The inbound receivers: `POST /api/integrations/{medusa,fleetbase,erpnext}/webhook`.
//!
//! raw body (≤ 1 MiB, else 413) → signature over the raw bytes (401 when missing, unknown
//! secret, wrong, or stale) → JSON (400) → one transaction: the `webhook_logs` row and its
//! `process_webhook` job → 200. Every delivery leaves a log row before the answer, the refused
//! ones included. A redelivery (same source and event id, or body hash where the sender has
//! no id) conflicts on the idempotency index, is stored as `duplicate` and answered 200.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use uuid::Uuid;

use super::signatures::{self, Refusal};
use super::Integrations;
use crate::app::AppState;
use crate::db::scope::{begin, DbScope};
use crate::http::error::ApiError;
use crate::http::request_id::RequestId;

pub const MAX_WEBHOOK_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Medusa,
    Fleetbase,
    Erpnext,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Medusa => "medusa",
            Source::Fleetbase => "fleetbase",
            Source::Erpnext => "erpnext",
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/integrations/medusa/webhook", post(medusa))
        .route("/integrations/fleetbase/webhook", post(fleetbase))
        .route("/integrations/erpnext/webhook", post(erpnext))
}

async fn medusa(State(s): State<AppState>, req: Request) -> Response {
    receive(&s.integrations, Source::Medusa, req).await
}
async fn fleetbase(State(s): State<AppState>, req: Request) -> Response {
    receive(&s.integrations, Source::Fleetbase, req).await
}
async fn erpnext(State(s): State<AppState>, req: Request) -> Response {
    receive(&s.integrations, Source::Erpnext, req).await
}

/// Header names whose values never reach the log.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-cron-secret",
    "webhook-signature",
    "x-medusa-signature",
    "x-webhook-signature",
    "signature",
    "x-frappe-webhook-signature",
    "x-cityos-sig",
];

pub fn masked_headers(headers: &HeaderMap) -> Value {
    let mut out = serde_json::Map::new();
    for (name, value) in headers {
        let n = name.as_str().to_ascii_lowercase();
        let v = if SECRET_HEADERS.contains(&n.as_str()) {
            "[redacted]".to_string()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        out.insert(n, Value::String(v));
    }
    Value::Object(out)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A secret that may verify a delivery, and the endpoint (tenant, store) it belongs to.
struct Candidate {
    secret: String,
    endpoint: Option<(Uuid, Uuid, Option<Uuid>)>,
}

/// What the (not yet trusted) body or headers say about the tenant.
fn tenant_hint(source: Source, headers: &HeaderMap, body: &Value) -> (Option<String>, Option<String>) {
    let s = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::to_string)
            .filter(|s| !s.is_empty())
    };
    match source {
        Source::Medusa => (
            s(body.get("tenant_id"))
                .or_else(|| s(body.pointer("/metadata/tenant_id")))
                .or_else(|| header(headers, "x-tenant-id").map(str::to_string)),
            s(body.get("store_id")).or_else(|| header(headers, "x-store-id").map(str::to_string)),
        ),
        Source::Fleetbase => (
            s(body.pointer("/data/meta/tenant_id")),
            s(body.pointer("/data/meta/store_id")),
        ),
        Source::Erpnext => (s(body.get("custom_tenant_id")), s(body.get("custom_store_id"))),
    }
}

/// The event type and the idempotency id (sender's id, else derived, else the body hash).
fn event_identity(source: Source, headers: &HeaderMap, body: &Value, hash: &str) -> (String, String) {
    let s = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::to_string)
            .filter(|s| !s.is_empty())
    };
    match source {
        Source::Medusa => {
            let event = s(body.get("type"))
                .or_else(|| s(body.get("event")))
                .unwrap_or_else(|| "unknown".into());
            let id = header(headers, "webhook-id")
                .map(str::to_string)
                .or_else(|| s(body.get("id")))
                .unwrap_or_else(|| format!("sha256:{hash}"));
            (event, id)
        }
        Source::Fleetbase => (
            s(body.get("event")).unwrap_or_else(|| "unknown".into()),
            s(body.get("id")).unwrap_or_else(|| format!("sha256:{hash}")),
        ),
        Source::Erpnext => {
            let doctype = s(body.get("doctype"));
            let event = s(body.get("event"));
            let event_type = match (&doctype, &event) {
                (Some(d), Some(e)) => format!("{d}.{e}"),
                (Some(d), None) => d.clone(),
                (None, Some(e)) => e.clone(),
                _ => "unknown".into(),
            };
            let id = match (&doctype, s(body.get("name")), s(body.get("modified"))) {
                (Some(d), Some(n), Some(m)) => format!("{d}:{n}:{m}:{}", event.unwrap_or_default()),
                _ => format!("sha256:{hash}"),
            };
            (event_type, id)
        }
    }
}

/// A log row about to be written.
struct LogRow {
    source: &'static str,
    request_id: String,
    tenant: Option<Uuid>,
    store: Option<Uuid>,
    endpoint: Option<Uuid>,
    event_type: String,
    external_id: Option<String>,
    hash: Option<String>,
    signature_valid: bool,
    status: &'static str,
    url: String,
    headers: Value,
    body: Option<Vec<u8>>,
    response_code: u16,
    error: Option<String>,
}

async fn receive(ix: &Arc<Integrations>, source: Source, req: Request) -> Response {
    match receive_inner(ix, source, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn receive_inner(ix: &Arc<Integrations>, source: Source, req: Request) -> Result<Response, ApiError> {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.as_str().to_string())
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    let url = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let mut row = LogRow {
        source: source.as_str(),
        request_id,
        tenant: None,
        store: None,
        endpoint: None,
        event_type: "unknown".into(),
        external_id: None,
        hash: None,
        signature_valid: false,
        status: "failed",
        url,
        headers: masked_headers(&headers),
        body: None,
        response_code: 401,
        error: None,
    };

    let declared_too_large = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_WEBHOOK_BODY);
    let bytes = if declared_too_large {
        None
    } else {
        axum::body::to_bytes(Body::new(body), MAX_WEBHOOK_BODY).await.ok()
    };
    let Some(bytes) = bytes else {
        row.response_code = 413;
        row.error = Some(format!("body larger than {MAX_WEBHOOK_BODY} bytes; not stored"));
        insert_refused(ix, row).await?;
        return Err(ApiError::PayloadTooLarge);
    };
    let hash = crate::util::sha256_hex(&bytes);
    row.hash = Some(hash.clone());
    row.body = Some(bytes.to_vec());
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    let empty = Value::Null;
    let body = parsed.as_ref().unwrap_or(&empty);
    let (event_type, external_id) = event_identity(source, &headers, body, &hash);
    row.event_type = super::queue::truncate(&event_type, 200);

    let mut tx = begin(&ix.pool, &DbScope::system()).await?;
    let (tenant_hint, store_hint) = tenant_hint(source, &headers, body);
    let hinted_tenant = match &tenant_hint {
        Some(h) => {
            sqlx::query_scalar::<_, Uuid>("SELECT id FROM tenants WHERE id::text = $1 OR handle = $1 LIMIT 1")
                .bind(h)
                .fetch_optional(&mut *tx)
                .await?
        }
        None => None,
    };
    let candidates = candidates(ix, &mut tx, source, hinted_tenant).await?;
    tx.commit().await?;

    let verdict = verify(ix, source, &headers, &bytes, body, &candidates);
    let matched = match verdict {
        Ok(i) => &candidates[i],
        Err(refusal) => {
            row.error = Some(refusal.message().to_string());
            insert_refused(ix, row).await?;
            return Err(ApiError::Unauthorized(refusal.message().to_string()));
        }
    };
    row.signature_valid = true;
    match matched.endpoint {
        Some((endpoint, tenant, store)) => {
            row.endpoint = Some(endpoint);
            row.tenant = Some(tenant);
            row.store = store;
        }
        None => row.tenant = hinted_tenant,
    }
    if parsed.is_none() {
        row.response_code = 400;
        row.error = Some("body is not valid JSON".into());
        insert_refused(ix, row).await?;
        return Err(ApiError::bad_request("The webhook body is not valid JSON."));
    }
    row.external_id = Some(super::queue::truncate(&external_id, 1000));
    row.status = "received";
    row.response_code = 200;
    accept(ix, source, row, store_hint).await
}

/// endpoint, tenant, store, current secret, previous secret (while valid).
type SecretRow = (Uuid, Uuid, Option<Uuid>, Vec<u8>, Option<Vec<u8>>);

/// Secrets that may verify this delivery. With a known tenant that has its own endpoint secret,
/// only that endpoint's secrets count (its predecessor during the grace period included);
/// otherwise every endpoint secret of the source and the env secret(s).
async fn candidates(
    ix: &Integrations,
    tx: &mut sqlx::PgConnection,
    source: Source,
    tenant: Option<Uuid>,
) -> Result<Vec<Candidate>, sqlx::Error> {
    let rows: Vec<SecretRow> = sqlx::query_as(
        "SELECT id, tenant_id, store_id, webhook_secret_enc,
                CASE WHEN previous_webhook_secret_expires_at > now() THEN previous_webhook_secret_enc END
           FROM integration_endpoints
          WHERE system_type = $1 AND enabled AND webhook_secret_enc IS NOT NULL
            AND ($2::uuid IS NULL OR tenant_id = $2)
          ORDER BY tenant_id, store_id NULLS FIRST
          LIMIT 1000",
    )
    .bind(source.as_str())
    .bind(tenant)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Vec::new();
    for (id, t, store, current, previous) in rows {
        for enc in std::iter::once(current).chain(previous) {
            if let Some(secret) = ix.cipher.decrypt(&enc) {
                out.push(Candidate {
                    secret,
                    endpoint: Some((id, t, store)),
                });
            }
        }
    }
    if tenant.is_some() && !out.is_empty() {
        return Ok(out);
    }
    let env = match source {
        Source::Medusa => &ix.config.medusa.webhook_secret,
        Source::Fleetbase => &ix.config.fleetbase.webhook_secret,
        Source::Erpnext => &ix.config.erpnext.webhook_secret,
    };
    if let Some(secret) = env {
        let list: Vec<&str> = if source == Source::Fleetbase {
            secret
                .expose()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        } else {
            vec![secret.expose()]
        };
        for s in list {
            out.push(Candidate {
                secret: s.to_string(),
                endpoint: None,
            });
        }
    }
    Ok(out)
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Parses `Y-m-d H:i:s[.ffffff]` as UTC.
fn parse_naive_utc(s: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let head = s.get(..19)?;
    time::PrimitiveDateTime::parse(head, &fmt)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

fn verify(
    ix: &Integrations,
    source: Source,
    headers: &HeaderMap,
    bytes: &[u8],
    body: &Value,
    candidates: &[Candidate],
) -> Result<usize, Refusal> {
    let secrets: Vec<&str> = candidates.iter().map(|c| c.secret.as_str()).collect();
    let window = ix.config.webhook_replay_window_secs as i64;
    let max_age = ix.config.jobs.webhook_max_age_hours as i64 * 3600;
    match source {
        Source::Medusa => {
            if let Some(sig) = header(headers, "webhook-signature") {
                let (Some(id), Some(ts)) = (
                    header(headers, "webhook-id"),
                    header(headers, "webhook-timestamp"),
                ) else {
                    return Err(Refusal::Malformed);
                };
                if secrets.is_empty() {
                    return Err(Refusal::NoSecret);
                }
                let t: i64 = ts.parse().map_err(|_| Refusal::Malformed)?;
                let i = signatures::verify_standard(&secrets, id, ts, bytes, sig)?;
                if (now_unix() - t).abs() > window {
                    return Err(Refusal::Stale);
                }
                Ok(i)
            } else if let Some(sig) =
                header(headers, "x-medusa-signature").or_else(|| header(headers, "x-webhook-signature"))
            {
                if secrets.is_empty() {
                    return Err(Refusal::NoSecret);
                }
                let (i, t) = signatures::verify_medusa_legacy(&secrets, bytes, sig)?;
                if (now_unix() - t).abs() > window {
                    return Err(Refusal::Stale);
                }
                Ok(i)
            } else {
                Err(Refusal::MissingSignature)
            }
        }
        Source::Fleetbase => {
            let sig = header(headers, "signature").ok_or(Refusal::MissingSignature)?;
            if secrets.is_empty() {
                return Err(Refusal::NoSecret);
            }
            let i = signatures::verify_fleetbase(&secrets, bytes, sig)?;
            check_age(body.get("created_at"), max_age)?;
            Ok(i)
        }
        Source::Erpnext => {
            let sig = header(headers, "x-frappe-webhook-signature").ok_or(Refusal::MissingSignature)?;
            if secrets.is_empty() {
                return Err(Refusal::NoSecret);
            }
            let i = signatures::verify_erpnext(&secrets, bytes, sig)?;
            check_age(body.get("modified"), max_age)?;
            Ok(i)
        }
    }
}

/// Senders without a signed timestamp: refuse bodies whose own time is too old.
fn check_age(value: Option<&Value>, max_age: i64) -> Result<(), Refusal> {
    if let Some(t) = value.and_then(Value::as_str).and_then(parse_naive_utc) {
        if now_unix() - t > max_age {
            return Err(Refusal::Stale);
        }
    }
    Ok(())
}

const INSERT_LOG: &str = "INSERT INTO webhook_logs (request_id, system_type, direction, tenant_id, store_id, endpoint_id,
        event_type, external_event_id, payload_hash, signature_valid, status, attempts, url, headers, raw_body,
        response_code, error_message, duplicate_of_id)
     VALUES ($1, $2, 'inbound', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

fn is_request_id_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.constraint() == Some("webhook_logs_request_id_key"))
}

/// Stores a refused delivery (no job). A reused request id gets a suffix.
async fn insert_refused(ix: &Integrations, mut row: LogRow) -> Result<(), ApiError> {
    for attempt in 0..3 {
        let mut tx = begin(&ix.pool, &DbScope::system()).await?;
        let r = bind_row(sqlx::query(INSERT_LOG), &row, row.source, None)
            .execute(&mut *tx)
            .await;
        match r {
            Ok(_) => {
                tx.commit().await?;
                return Ok(());
            }
            Err(e) if is_request_id_conflict(&e) && attempt < 2 => {
                row.request_id = format!("{}.{}", row.request_id, crate::util::random_hex(4));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn bind_row<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    row: &'q LogRow,
    source: &'static str,
    duplicate_of: Option<Uuid>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    q.bind(&row.request_id)
        .bind(source)
        .bind(row.tenant)
        .bind(row.store)
        .bind(row.endpoint)
        .bind(&row.event_type)
        .bind(&row.external_id)
        .bind(&row.hash)
        .bind(row.signature_valid)
        .bind(if duplicate_of.is_some() {
            "duplicate"
        } else {
            row.status
        })
        .bind(0)
        .bind(&row.url)
        .bind(&row.headers)
        .bind(&row.body)
        .bind(row.response_code as i32)
        .bind(&row.error)
        .bind(duplicate_of)
}

/// The accepted delivery: its log row and its processing job in one transaction, or a
/// `duplicate` row pointing at the first delivery.
async fn accept(
    ix: &Integrations,
    source: Source,
    mut row: LogRow,
    store_hint: Option<String>,
) -> Result<Response, ApiError> {
    for attempt in 0..3 {
        let mut tx = begin(&ix.pool, &DbScope::system()).await?;
        if row.store.is_none() {
            if let (Some(tenant), Some(store)) = (row.tenant, &store_hint) {
                row.store = sqlx::query_scalar(
                    "SELECT id FROM stores WHERE tenant_id = $1 AND (id::text = $2 OR handle = $2) LIMIT 1",
                )
                .bind(tenant)
                .bind(store)
                .fetch_optional(&mut *tx)
                .await?;
            }
        }
        let sql = format!(
            "{INSERT_LOG}
             ON CONFLICT (system_type, external_event_id)
                WHERE direction = 'inbound' AND signature_valid AND duplicate_of_id IS NULL
             DO NOTHING RETURNING id"
        );
        let first: Result<Option<Uuid>, sqlx::Error> = bind_scalar(&sql, &row, source.as_str())
            .fetch_optional(&mut *tx)
            .await;
        let first = match first {
            Err(e) if is_request_id_conflict(&e) && attempt < 2 => {
                row.request_id = format!("{}.{}", row.request_id, crate::util::random_hex(4));
                continue;
            }
            other => other?,
        };
        if let Some(id) = first {
            sqlx::query(
                "INSERT INTO sync_jobs (job_type, tenant_id, store_id, source_collection, source_doc_id,
                                        target_system, webhook_log_id, payload, idempotency_key, max_attempts)
                 VALUES ('process_webhook', $1, $2, 'webhook-logs', $3, 'payload', $4, $5, $6, $7)",
            )
            .bind(row.tenant)
            .bind(row.store)
            .bind(id.to_string())
            .bind(id)
            .bind(json!({"source": source.as_str(), "eventType": row.event_type}))
            .bind(format!("process_webhook:{id}"))
            .bind(ix.config.jobs.max_attempts)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Json(json!({"received": true, "id": id, "duplicate": false})).into_response());
        }
        let original: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM webhook_logs WHERE system_type = $1 AND external_event_id = $2
                AND direction = 'inbound' AND signature_valid AND duplicate_of_id IS NULL",
        )
        .bind(source.as_str())
        .bind(&row.external_id)
        .fetch_optional(&mut *tx)
        .await?;
        let r = bind_row(sqlx::query(INSERT_LOG), &row, source.as_str(), original)
            .execute(&mut *tx)
            .await;
        match r {
            Err(e) if is_request_id_conflict(&e) && attempt < 2 => {
                row.request_id = format!("{}.{}", row.request_id, crate::util::random_hex(4));
                continue;
            }
            other => {
                other?;
            }
        }
        tx.commit().await?;
        return Ok(Json(json!({"received": true, "id": original, "duplicate": true})).into_response());
    }
    Err(ApiError::Internal(anyhow::anyhow!(
        "cannot store the webhook log row"
    )))
}

fn bind_scalar<'q>(
    sql: &'q str,
    row: &'q LogRow,
    source: &'static str,
) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, Uuid, sqlx::postgres::PgArguments> {
    sqlx::query_scalar::<_, Uuid>(sql)
        .bind(&row.request_id)
        .bind(source)
        .bind(row.tenant)
        .bind(row.store)
        .bind(row.endpoint)
        .bind(&row.event_type)
        .bind(&row.external_id)
        .bind(&row.hash)
        .bind(row.signature_valid)
        .bind(row.status)
        .bind(0)
        .bind(&row.url)
        .bind(&row.headers)
        .bind(&row.body)
        .bind(row.response_code as i32)
        .bind(&row.error)
        .bind(None::<Uuid>)
}
