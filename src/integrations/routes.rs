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
use crate::authz::plan::Plan;
use crate::collections::access::{self, Target};
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

/// Who may push or reconcile is the policy's `push` / `reconcile` action on `product-content`
/// (policies/product-content.yaml): a caller who may do it nowhere is refused before any work,
/// an anonymous one with 401. API keys also need the `write:product-content` scope.
async fn may_ever(state: &AppState, ctx: &CallContext, action: &str) -> Result<(), ApiError> {
    let scoped = ctx
        .principal
        .api_key()
        .is_none_or(|k| k.allows("write", PRODUCT_CONTENT));
    let principal = crate::authz::principal(&ctx.principal, &ctx.tenant);
    let plan = state.authz.plan(&principal, PRODUCT_CONTENT, action).await?;
    if scoped && plan != Plan::Never {
        Ok(())
    } else if matches!(ctx.principal, crate::auth::principal::Principal::Anonymous) {
        Err(ApiError::Unauthorized(
            "You are not allowed to perform this action.".into(),
        ))
    } else {
        Err(ApiError::Forbidden)
    }
}

const PRODUCT_CONTENT: &str = "product-content";

/// Body: `{"id": "<product-content id>"}`, `{"ids": [...]}` or `{"where": {...}}` (Payload's
/// query language over `product-content`). Enqueues one push per document the caller may read
/// and push (`refused` counts the others); a document that already has a queued push is
/// counted in `alreadyQueued`.
async fn push_to_medusa(
    State(state): State<AppState>,
    ctx: CallContext,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    may_ever(&state, &ctx, "push").await?;
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
    let uuid_at = |doc: &Value, key: &str| doc[key].as_str().and_then(|t| Uuid::parse_str(t).ok());
    let targets: Vec<Target<'_>> = docs
        .iter()
        .map(|d| Target {
            id: d["id"].as_str().unwrap_or_default(),
            tenant: uuid_at(d, "tenant"),
            store: uuid_at(d, "store"),
        })
        .collect();
    let allowed = access::allowed(
        &state.authz,
        &ctx.principal,
        &ctx.tenant,
        PRODUCT_CONTENT,
        "push",
        &targets,
    )
    .await?;
    let (mut enqueued, mut already, mut refused) = (0u64, 0u64, 0u64);
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    for (doc, (target, allowed)) in docs.iter().zip(targets.iter().zip(allowed)) {
        if !allowed {
            refused += 1;
            continue;
        }
        let (id, tenant, store) = (target.id, target.tenant, target.store);
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
        "refused": refused,
    }))
    .into_response())
}

/// Compares Medusa's products with `product-content` (the caller's tenant; all tenants for a
/// super admin without a tenant context) and enqueues the pushes that fix the differences.
async fn reconcile(State(state): State<AppState>, ctx: CallContext) -> Result<Response, ApiError> {
    may_ever(&state, &ctx, "reconcile").await?;
    // One tenant (the resolved one, else the caller's only tenant), or every tenant for a
    // caller the policy lets reconcile anything (a super admin, a platform key).
    let tenant = ctx.tenant.tenant_id.or_else(|| {
        let mine = ctx.principal.tenants_with(&[]);
        (mine.len() == 1 && !ctx.principal.is_super_admin()).then(|| mine[0])
    });
    let allowed = match tenant {
        Some(t) => {
            let target = Target {
                id: "reconcile",
                tenant: Some(t),
                store: None,
            };
            access::allowed(
                &state.authz,
                &ctx.principal,
                &ctx.tenant,
                PRODUCT_CONTENT,
                "reconcile",
                &[target],
            )
            .await?
        }
        None => {
            let principal = crate::authz::principal(&ctx.principal, &ctx.tenant);
            let plan = state.authz.plan(&principal, PRODUCT_CONTENT, "reconcile").await?;
            if plan != Plan::Always && ctx.principal.tenants_with(&[]).len() > 1 {
                return Err(ApiError::bad_request(
                    "Choose a tenant (?tenant=<slug> or X-Tenant).",
                ));
            }
            vec![plan == Plan::Always]
        }
    };
    if allowed != [true] {
        return Err(ApiError::Forbidden);
    }
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
