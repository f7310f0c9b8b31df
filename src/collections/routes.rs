//! The collection routes of Payload's REST API, one set for all declarations.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;
use crate::collections::decl::CollectionDecl;
use crate::collections::engine::params::FindParams;
use crate::collections::engine::read::{self, ReadEnv};
use crate::http::error::ApiError;
use crate::http::extract::{CallContext, QueryTree};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{slug}", get(list))
        .route("/{slug}/", get(list))
        .route("/{slug}/count", get(count))
        .route("/{slug}/{id}", get(by_id))
        .route("/{slug}/{id}/", get(by_id))
}

/// The declaration for a path segment; unknown slugs answer Payload's route-not-found.
fn decl_for(state: &AppState, slug: &str, path: &str) -> Result<&'static CollectionDecl, ApiError> {
    state
        .registry
        .get(slug)
        .ok_or_else(|| ApiError::RouteNotFound(path.to_string()))
}

fn env<'a>(state: &'a AppState, ctx: &'a CallContext) -> ReadEnv<'a> {
    ReadEnv {
        registry: &state.registry,
        principal: &ctx.principal,
        tenant: &ctx.tenant,
        app_url: &state.config.app_url,
    }
}

async fn list(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    QueryTree(tree): QueryTree,
    ctx: CallContext,
) -> Result<Response, ApiError> {
    let decl = decl_for(&state, &slug, &format!("/api/{slug}"))?;
    let params = FindParams::from_tree(&tree)?;
    let mut conn = state.pool.acquire().await?;
    let body = read::find(&mut conn, &env(&state, &ctx), decl, &params).await?;
    Ok(Json(body).into_response())
}

async fn count(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    QueryTree(tree): QueryTree,
    ctx: CallContext,
) -> Result<Response, ApiError> {
    let decl = decl_for(&state, &slug, &format!("/api/{slug}/count"))?;
    let params = FindParams::from_tree(&tree)?;
    let mut conn = state.pool.acquire().await?;
    let total = read::count(&mut conn, &env(&state, &ctx), decl, params.where_.as_ref()).await?;
    Ok(Json(json!({"totalDocs": total})).into_response())
}

async fn by_id(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    QueryTree(tree): QueryTree,
    ctx: CallContext,
) -> Result<Response, ApiError> {
    let decl = decl_for(&state, &slug, &format!("/api/{slug}/{id}"))?;
    let params = FindParams::from_tree(&tree)?;
    let mut conn = state.pool.acquire().await?;
    let doc = read::find_by_id(
        &mut conn,
        &env(&state, &ctx),
        decl,
        &id,
        params.depth,
        params.select.as_ref(),
        params.populate.as_ref(),
    )
    .await?;
    Ok(Json(doc).into_response())
}
