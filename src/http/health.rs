//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use sqlx::PgPool;

use crate::db::{self, SchemaState};

/// `GET /api/health`: the process answers; no I/O.
pub async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// `GET /api/ready`: the database answers and every migration is applied.
pub async fn ready(State(pool): State<PgPool>) -> impl IntoResponse {
    let check = tokio::time::timeout(std::time::Duration::from_secs(3), db::schema_state(&pool)).await;
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
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "database check timed out"})),
        ),
    }
}
