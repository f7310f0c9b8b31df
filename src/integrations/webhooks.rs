//! The inbound receivers: `POST /api/integrations/{medusa,fleetbase,erpnext}/webhook`.
//!
//! raw body (≤ 1 MiB, else 413) → signature over the raw bytes (401 when missing, unknown
//! secret, wrong, or stale) → JSON (400) → one transaction: the `webhook_logs` row and its
//! `process_webhook` job, shared with the deliveries waiting beside it (`super::ingest`) → 200
//! after its commit. Every delivery leaves a log row before the answer, the refused
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

use super::ingest::{Delivery, LogRow, Outcome};
use super::secrets::{Candidate, Read};
use super::signatures::{self, Refusal};
use super::Integrations;
use crate::app::AppState;
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

/// What the (not yet trusted) body or headers say about the tenant. A hint holding a NUL
/// character names nothing (no id or handle can hold one) and is not looked up.
fn tenant_hint(source: Source, headers: &HeaderMap, body: &Value) -> (Option<String>, Option<String>) {
    let s = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::to_string)
            .filter(|s| !s.is_empty() && !s.contains('\0'))
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

/// Text from a delivery for the log's columns, at most `max` bytes. PostgreSQL's text cannot
/// hold a NUL character, so each becomes U+FFFD; the body itself is kept as sent (`bytea`).
fn log_text(s: &str, max: usize) -> String {
    super::queue::truncate(&s.replace('\0', "\u{FFFD}"), max)
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

async fn receive(ix: &Arc<Integrations>, source: Source, req: Request) -> Response {
    match receive_inner(ix, source, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn receive_inner(ix: &Arc<Integrations>, source: Source, req: Request) -> Result<Response, ApiError> {
    // A refusal is decided from a read of the secrets that began after this instant.
    let arrived = std::time::Instant::now();
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
        log_refusal(ix, row).await?;
        return Err(ApiError::PayloadTooLarge);
    };
    let hash = crate::util::sha256_hex(&bytes);
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    let empty = Value::Null;
    let body = parsed.as_ref().unwrap_or(&empty);
    let (event_type, external_id) = event_identity(source, &headers, body, &hash);
    row.event_type = log_text(&event_type, 200);
    row.hash = Some(hash);
    let (tenant_hint, store_hint) = tenant_hint(source, &headers, body);

    // Secrets from the per-instance cache; a refusal with cached secrets is decided again from
    // the table (a secret added or rotated on another instance a moment ago).
    let secrets = &ix.secrets;
    let hint = tenant_hint.as_deref();
    let mut candidates = secrets
        .candidates(&ix.pool, &ix.cipher, source, hint, Read::Cached)
        .await?;
    let mut verdict = verify(ix, source, &headers, &bytes, body, &candidates.list);
    if candidates.cached && matches!(verdict, Err(Refusal::Mismatch | Refusal::NoSecret)) {
        candidates = secrets
            .candidates(&ix.pool, &ix.cipher, source, hint, Read::After(arrived))
            .await?;
        verdict = verify(ix, source, &headers, &bytes, body, &candidates.list);
    }
    row.body = Some(bytes);
    loop {
        let matched = match verdict {
            Ok(i) => candidates.list[i].clone(),
            Err(refusal) => {
                row.error = Some(refusal.message().to_string());
                log_refusal(ix, row).await?;
                return Err(ApiError::Unauthorized(refusal.message().to_string()));
            }
        };
        row.signature_valid = true;
        match &matched.endpoint {
            Some(e) => {
                row.endpoint = Some(e.id);
                row.tenant = Some(e.tenant);
                row.store = e.store;
            }
            None => {
                row.endpoint = None;
                row.tenant = candidates.tenant;
                row.store = None;
            }
        }
        if parsed.is_none() {
            row.response_code = 400;
            row.error = Some("body is not valid JSON".into());
            log_refusal(ix, row).await?;
            return Err(ApiError::bad_request("The webhook body is not valid JSON."));
        }
        row.external_id = Some(log_text(&external_id, 1000));
        row.status = "received";
        row.response_code = 200;
        let confirm = candidates.cached.then_some(&matched);
        match accept(ix, &row, store_hint.as_deref(), confirm).await? {
            Outcome::Logged { id, duplicate } => {
                let body = json!({"received": true, "id": id, "duplicate": duplicate});
                return Ok(Json(body).into_response());
            }
            // The cached (or shared) secret no longer holds: decide once more from a read of
            // our own (not confirmed again, so this loops at most twice).
            Outcome::Stale => {
                candidates = secrets
                    .candidates(&ix.pool, &ix.cipher, source, hint, Read::Own)
                    .await?;
                let bytes = row.body.as_deref().unwrap_or_default();
                verdict = verify(ix, source, &headers, bytes, body, &candidates.list);
                row.signature_valid = false;
                row.status = "failed";
                row.response_code = 401;
                (row.endpoint, row.tenant, row.store, row.external_id) = (None, None, None, None);
            }
        }
    }
}

/// Logs a refused delivery (no job), committed before the refusal is answered; refusals
/// waiting together share a statement ([`super::ingest`]).
async fn log_refusal(ix: &Integrations, row: LogRow) -> Result<(), sqlx::Error> {
    ix.ingest.refuse(row).await
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
    let secrets: Vec<&str> = candidates.iter().map(|c| &*c.secret).collect();
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

/// The accepted delivery, written by the ingest writers ([`super::ingest`]): its log row and
/// its processing job, or a `duplicate` row pointing at the first delivery, committed before the
/// answer. `confirm` is the cached secret that verified it, which the statement checks against
/// the table. The job's NOTIFY is left to [`Integrations::job_enqueued`], which wakes this
/// instance's workers at once and coalesces the NOTIFY for other instances.
async fn accept(
    ix: &Integrations,
    row: &LogRow,
    store_hint: Option<&str>,
    confirm: Option<&Candidate>,
) -> Result<Outcome, sqlx::Error> {
    let delivery = Delivery {
        row: row.clone(),
        store_hint: store_hint.map(str::to_string),
        confirm: confirm.cloned(),
        defer_notify: ix.defers_notify(),
    };
    let outcome = ix.ingest.accept(delivery).await?;
    if matches!(outcome, Outcome::Logged { duplicate: false, .. }) {
        ix.job_enqueued();
    }
    Ok(outcome)
}
