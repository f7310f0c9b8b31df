//! `POST /api/integrations/payload/push-to-medusa`, `POST /api/integrations/payload/reconcile`
//! (admins), and the cron routes `POST /api/cron/{sync,webhook-retry,reconcile}` (authorised
//! by `x-cron-secret: <CRON_SECRET>` or `Authorization: Bearer <CRON_SECRET>`, constant time).

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use uuid::Uuid;

use super::queue::{self, Summary};
use super::Integrations;
use crate::app::AppState;
use crate::collections::engine::params::FindParams;
use crate::collections::engine::read::{self, ReadEnv};
use crate::db::scope::{begin, DbScope};
use crate::http::error::ApiError;
use crate::http::extract::CallContext;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/integrations/payload/push-to-medusa", post(push_to_medusa))
        .route("/integrations/payload/reconcile", post(reconcile))
        .route("/cron/sync", post(cron_sync))
        .route("/cron/webhook-retry", post(cron_webhook_retry))
        .route("/cron/reconcile", post(cron_reconcile))
}

fn require_admin(ctx: &CallContext) -> Result<(), ApiError> {
    if ctx.principal.is_super_admin() || !ctx.principal.tenants_with(&["tenant_admin"]).is_empty() {
        Ok(())
    } else if ctx.principal.user_id().is_none() && ctx.principal.api_key().is_none() {
        Err(ApiError::Unauthorized(
            "You are not allowed to perform this action.".into(),
        ))
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Body: `{"id": "<product-content id>"}`, `{"ids": [...]}` or `{"where": {...}}` (Payload's
/// query language over `product-content`). Enqueues one push per document the caller may read;
/// a document that already has a queued push is counted in `alreadyQueued`.
async fn push_to_medusa(
    State(state): State<AppState>,
    ctx: CallContext,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require_admin(&ctx)?;
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_json())?
    };
    let collection = body
        .get("collection")
        .and_then(Value::as_str)
        .unwrap_or("product-content");
    if collection != "product-content" {
        return Err(ApiError::bad_request(
            "Only product-content documents can be pushed to Medusa.",
        ));
    }
    let where_ = if let Some(id) = body.get("id").and_then(Value::as_str) {
        json!({"id": {"equals": id}})
    } else if let Some(ids) = body.get("ids").and_then(Value::as_array) {
        json!({"id": {"in": ids}})
    } else if let Some(w) = body.get("where").filter(|w| w.is_object()) {
        w.clone()
    } else {
        return Err(ApiError::bad_request("Give an id, ids or a where clause."));
    };
    let tree = json!({"where": where_, "depth": "0", "limit": "1000", "page": "1"});
    let params = FindParams::from_tree(&tree)?;
    let decl = state
        .registry
        .get("product-content")
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("product-content is not registered")))?;
    let scope = DbScope::for_request(&ctx.principal, &ctx.tenant);
    let mut tx = begin(&state.pool, &scope).await?;
    let env = ReadEnv {
        registry: &state.registry,
        authz: &state.authz,
        principal: &ctx.principal,
        tenant: &ctx.tenant,
        app_url: &state.config.app_url,
    };
    let found = read::find(&mut tx, &env, decl, &params).await?;
    let docs = found["docs"].as_array().cloned().unwrap_or_default();
    let (mut enqueued, mut already) = (0u64, 0u64);
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    for doc in &docs {
        let id = doc["id"].as_str().unwrap_or_default();
        let tenant = doc["tenant"].as_str().and_then(|t| Uuid::parse_str(t).ok());
        let store = doc["store"].as_str().and_then(|t| Uuid::parse_str(t).ok());
        let n = sqlx::query(
            "INSERT INTO sync_jobs (job_type, tenant_id, store_id, source_collection, source_doc_id, target_system,
                                    target_id, payload, idempotency_key, max_attempts, metadata)
             VALUES ('payload_to_medusa', $1, $2, 'product-content', $3, 'medusa', $4, $5, $6, $7, $8)
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(store)
        .bind(id)
        .bind(doc["medusaProductId"].as_str())
        .bind(doc)
        .bind(format!(
            "payload_to_medusa:product-content:{id}:{}:manual:{stamp}",
            doc["updatedAt"].as_str().unwrap_or("")
        ))
        .bind(state.config.jobs.max_attempts)
        .bind(json!({"reason": "manual", "requestId": ctx.request_id}))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            enqueued += 1;
        } else {
            already += 1;
        }
    }
    tx.commit().await?;
    Ok(Json(json!({
        "message": format!("{enqueued} push(es) to Medusa enqueued."),
        "matched": docs.len(),
        "enqueued": enqueued,
        "alreadyQueued": already,
    }))
    .into_response())
}

/// Compares Medusa's products with `product-content` (the caller's tenant; all tenants for a
/// super admin without a tenant context) and enqueues the pushes that fix the differences.
async fn reconcile(State(state): State<AppState>, ctx: CallContext) -> Result<Response, ApiError> {
    require_admin(&ctx)?;
    let tenant = match ctx.tenant.tenant_id {
        Some(t) => {
            if !ctx.principal.is_super_admin() && !ctx.principal.tenants_with(&["tenant_admin"]).contains(&t)
            {
                return Err(ApiError::Forbidden);
            }
            Some(t)
        }
        None if ctx.principal.is_super_admin() => None,
        None => {
            let mine = ctx.principal.tenants_with(&["tenant_admin"]);
            if mine.len() != 1 {
                return Err(ApiError::bad_request(
                    "Choose a tenant (?tenant=<slug> or X-Tenant).",
                ));
            }
            Some(mine[0])
        }
    };
    match super::handlers::reconcile(&state.integrations, tenant).await? {
        Ok(report) => Ok(Json(json!({"message": "Reconciliation done.", "report": report})).into_response()),
        Err(outcome) => {
            let msg = match outcome {
                queue::Outcome::Fail(m) | queue::Outcome::Retry { error: m, .. } => m,
                queue::Outcome::Success(m) => m,
            };
            Err(ApiError::Unavailable(msg))
        }
    }
}

/// `x-cron-secret` or `Authorization: Bearer`, compared in constant time.
pub fn cron_authorized(config: &crate::config::Config, headers: &HeaderMap) -> bool {
    let expected = config.secrets.cron_secret.expose();
    let given = headers
        .get("x-cron-secret")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer ").map(|s| s.trim().to_string()))
        });
    match given {
        Some(g) => super::signatures::secret_eq(&g, expected),
        None => false,
    }
}

async fn cron(state: &AppState, headers: &HeaderMap, types: &[&str]) -> Result<Summary, ApiError> {
    if !cron_authorized(&state.config, headers) {
        return Err(ApiError::Unauthorized("Invalid or missing cron secret.".into()));
    }
    Ok(queue::run_batch(&state.integrations, types, state.config.jobs.cron_batch).await?)
}

async fn cron_sync(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let summary = cron(&state, &headers, queue::SYNC_TYPES).await?;
    Ok(Json(summary).into_response())
}

async fn cron_webhook_retry(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let summary = cron(&state, &headers, queue::WEBHOOK_TYPES).await?;
    Ok(Json(summary).into_response())
}

async fn cron_reconcile(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !cron_authorized(&state.config, &headers) {
        return Err(ApiError::Unauthorized("Invalid or missing cron secret.".into()));
    }
    enqueue_reconcile(&state.integrations).await?;
    let summary = cron(&state, &headers, queue::RECONCILE_TYPES).await?;
    Ok(Json(summary).into_response())
}

/// One platform `reconcile` job per minute at most (the idempotency key carries the minute).
pub async fn enqueue_reconcile(ix: &Arc<Integrations>) -> Result<(), sqlx::Error> {
    let mut tx = begin(&ix.pool, &DbScope::system()).await?;
    sqlx::query(
        "INSERT INTO sync_jobs (job_type, target_system, idempotency_key, max_attempts)
         VALUES ('reconcile', 'medusa', 'reconcile:' || (extract(epoch FROM now())::bigint / 60), $1)
         ON CONFLICT DO NOTHING",
    )
    .bind(ix.config.jobs.max_attempts)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
