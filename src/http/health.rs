//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::db::{self, SchemaState};

/// `GET /api/health`: the process answers; no I/O.
pub async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// `GET /api/ready`: the database answers, every migration is applied, and authorization can
/// decide (`authz` says whether decisions come from the PDP or the built-in evaluator).
pub async fn ready(State(state): State<crate::AppState>) -> impl IntoResponse {
    let (mut status, Json(mut body)) = database_ready(&state.pool).await;
    let authz = state.authz.status().await;
    if authz["engine"] == "none" && status == StatusCode::OK {
        status = StatusCode::SERVICE_UNAVAILABLE;
        body = json!({"status": "unavailable", "reason": "policy decision point unreachable (fail-closed)"});
    }
    body["authz"] = authz;
    (status, Json(body))
}

async fn database_ready(pool: &sqlx::PgPool) -> (StatusCode, Json<serde_json::Value>) {
    let check = tokio::time::timeout(std::time::Duration::from_secs(3), db::schema_state(pool)).await;
    match check {
        Ok(Ok(SchemaState::Current)) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Ok(Ok(SchemaState::Pending { applied, expected })) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"status": "unavailable", "reason": format!("migrations pending (applied {applied}, expected {expected})")}),
            ),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": "database unreachable"})),
            )
        }
        // A database that is down can look like either: a pooled connection fails at once,
        // while a new one is retried by the pool until the check gives up. Same reason, so
        // probes and operators see one cause; the detail tells which.
        Err(_) => {
            tracing::warn!("readiness check: no answer from the database within 3 s");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"status": "unavailable", "reason": "database unreachable", "detail": "no answer within 3 s"}),
                ),
            )
        }
    }
}
