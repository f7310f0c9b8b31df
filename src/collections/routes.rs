//! The collection routes of Payload's REST API, one set for all declarations.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::app::AppState;
use crate::collections::access::Action;
use crate::collections::decl::CollectionDecl;
use crate::collections::engine::params::FindParams;
use crate::collections::engine::read::{self, ReadEnv};
use crate::collections::engine::write::{self, WriteEnv};
use crate::http::error::ApiError;
use crate::http::extract::{json_object, CallContext, QueryTree};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/access", get(access))
        .route("/openapi.json", get(crate::collections::openapi::handler))
        .route(
            "/{slug}",
            get(list).post(create).patch(bulk_update).delete(bulk_delete),
        )
        .route(
            "/{slug}/",
            get(list).post(create).patch(bulk_update).delete(bulk_delete),
        )
        .route("/{slug}/count", get(count))
        .route("/{slug}/{id}", get(by_id).patch(update).delete(delete))
        .route("/{slug}/{id}/", get(by_id).patch(update).delete(delete))
}

/// The declaration for a path segment; unknown slugs answer Payload's route-not-found.
fn decl_for(state: &AppState, slug: &str, path: &str) -> Result<&'static CollectionDecl, ApiError> {
    state
        .registry
        .get(slug)
        .ok_or_else(|| ApiError::RouteNotFound(path.to_string()))
}

pub(crate) fn env<'a>(state: &'a AppState, ctx: &'a CallContext) -> ReadEnv<'a> {
    ReadEnv {
        registry: &state.registry,
        authz: &state.authz,
        principal: &ctx.principal,
        tenant: &ctx.tenant,
        app_url: &state.config.app_url,
    }
}

pub(crate) fn scope(ctx: &CallContext) -> crate::db::scope::DbScope {
    crate::db::scope::DbScope::for_request(&ctx.principal, &ctx.tenant)
}

pub(crate) fn write_env<'a>(state: &'a AppState, ctx: &'a CallContext) -> WriteEnv<'a> {
    WriteEnv {
        read: env(state, ctx),
        call: ctx,
        cipher: &state.cipher,
        api_key_salt: state.config.secrets.api_key_hash_salt.expose(),
    }
}

/// Commits a write and drops this instance's caches it made stale (other instances hear the
/// database's NOTIFY): one place, so no write route can forget the second half.
pub(crate) async fn commit(
    state: &AppState,
    decl: &CollectionDecl,
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
) -> Result<(), ApiError> {
    tx.commit().await?;
    after_commit(state, decl);
    Ok(())
}

fn after_commit(state: &AppState, decl: &CollectionDecl) {
    use crate::collections::decl::CacheKind;
    // This instance reads its own writes at once; others hear this instance's announcement
    // (the write's transaction did not NOTIFY: `db::scope::begin_write`).
    state.public_cache.clear();
    state.public_cache.announce();
    for kind in decl.invalidates {
        match kind {
            CacheKind::Principals => state.principals.clear(),
            CacheKind::Tenants => {
                state.tenants.clear();
                state.hosts.clear();
                state.integrations.secrets.clear_tenants();
            }
            CacheKind::Endpoints => state.integrations.secrets.clear_endpoints(),
        }
    }
}

/// A JSON object body: too large → 413, not JSON → Payload's 400, another type → 415.
fn body_object(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Map<String, Value>, ApiError> {
    let bytes = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(ApiError::PayloadTooLarge),
        Err(_) => return Err(ApiError::bad_json()),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !bytes.is_empty() && !content_type.is_empty() && !content_type.to_ascii_lowercase().contains("json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    json_object(&bytes)
}

async fn list(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    QueryTree(tree): QueryTree,
    ctx: CallContext,
) -> Result<Response, ApiError> {
    let path = format!("/api/{slug}");
    let decl = decl_for(&state, &slug, &path)?;
    let params = FindParams::from_tree(&tree)?;
    let load = async {
        let mut conn = crate::db::scope::begin(&state.pool, &scope(&ctx)).await?;
        read::find(&mut conn, &env(&state, &ctx), decl, &params).await
    };
    state.public_cache.read(&ctx, &path, &tree, load).await
}

async fn count(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    QueryTree(tree): QueryTree,
    ctx: CallContext,
) -> Result<Response, ApiError> {
    let path = format!("/api/{slug}/count");
    let decl = decl_for(&state, &slug, &path)?;
    let params = FindParams::from_tree(&tree)?;
    let load = async {
        let mut conn = crate::db::scope::begin(&state.pool, &scope(&ctx)).await?;
        let total = read::count(&mut conn, &env(&state, &ctx), decl, params.where_.as_ref()).await?;
        Ok(json!({"totalDocs": total}))
    };
    state.public_cache.read(&ctx, &path, &tree, load).await
}

async fn by_id(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    QueryTree(tree): QueryTree,
    ctx: CallContext,
) -> Result<Response, ApiError> {
    let path = format!("/api/{slug}/{id}");
    let decl = decl_for(&state, &slug, &path)?;
    let params = FindParams::from_tree(&tree)?;
    let load = async {
        let mut conn = crate::db::scope::begin(&state.pool, &scope(&ctx)).await?;
        read::find_by_id(
            &mut conn,
            &env(&state, &ctx),
            decl,
            &id,
            params.depth,
            params.select.as_ref(),
            params.populate.as_ref(),
        )
        .await
    };
    state.public_cache.read(&ctx, &path, &tree, load).await
}

async fn create(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    QueryTree(tree): QueryTree,
    ctx: CallContext,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    let decl = decl_for(&state, &slug, &format!("/api/{slug}"))?;
    let params = FindParams::from_tree(&tree)?;
    // Upload collections take their files as a streamed multipart body (JSON alone is refused).
    if crate::media::is_upload(decl) {
        return crate::media::routes::create(&state, &ctx, decl, &params, &headers, req.into_body()).await;
    }
    let body = body_object(&headers, Bytes::from_request(req, &state).await)?;
    let plan = write::plan_create(&write_env(&state, &ctx), decl, body, Default::default()).await?;
    let doc = match plan {
        write::Planned::Ready(plan) if plan.is_one_statement() && state.creates.batches() => {
            let scope = scope(&ctx);
            let job = CreateJob {
                state: state.clone(),
                ctx,
                plan,
                params,
            };
            let doc = state.creates.submit(scope, job).await?;
            after_commit(&state, decl);
            doc
        }
        plan => {
            let mut tx = crate::db::scope::begin_write(&state.pool, &scope(&ctx)).await?;
            let doc = plan.write(&mut tx, &write_env(&state, &ctx), &params).await?;
            commit(&state, decl, tx).await?;
            doc
        }
    };
    let message = format!("{} successfully created.", decl.singular);
    Ok((StatusCode::CREATED, Json(json!({"doc": doc, "message": message}))).into_response())
}

/// A checked create, written by the group commit with the creates waiting in its scope.
pub struct CreateJob {
    state: AppState,
    ctx: CallContext,
    plan: write::CreatePlan,
    params: FindParams,
}

impl crate::db::group_commit::Job for CreateJob {
    type Out = Value;
    type Err = ApiError;
    fn run<'c>(
        &'c self,
        conn: &'c mut sqlx::PgConnection,
    ) -> crate::db::group_commit::JobFuture<'c, Value, ApiError> {
        Box::pin(async move {
            let env = write_env(&self.state, &self.ctx);
            self.plan.execute(conn, &env, &self.params).await
        })
    }
}

async fn update(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    QueryTree(tree): QueryTree,
    ctx: CallContext,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    let decl = decl_for(&state, &slug, &format!("/api/{slug}/{id}"))?;
    let params = FindParams::from_tree(&tree)?;
    if crate::media::is_upload(decl) && crate::media::upload::is_multipart(&headers) {
        return crate::media::routes::update(&state, &ctx, decl, &id, &params, &headers, req.into_body())
            .await;
    }
    let body = body_object(&headers, Bytes::from_request(req, &state).await)?;
    let mut tx = crate::db::scope::begin_write(&state.pool, &scope(&ctx)).await?;
    let doc = write::update_by_id(&mut tx, &write_env(&state, &ctx), decl, &id, body, &params).await?;
    commit(&state, decl, tx).await?;
    Ok(Json(json!({"doc": doc, "message": "Updated successfully."})).into_response())
}

async fn delete(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    QueryTree(tree): QueryTree,
    ctx: CallContext,
) -> Result<Response, ApiError> {
    let decl = decl_for(&state, &slug, &format!("/api/{slug}/{id}"))?;
    let params = FindParams::from_tree(&tree)?;
    let mut tx = crate::db::scope::begin_write(&state.pool, &scope(&ctx)).await?;
    let objects = stored_objects(&mut tx, decl, &id).await?;
    let doc = write::delete_by_id(&mut tx, &write_env(&state, &ctx), decl, &id, &params).await?;
    commit(&state, decl, tx).await?;
    crate::media::routes::remove_objects(&state, &objects).await;
    Ok(Json(json!({"doc": doc, "message": "Deleted successfully."})).into_response())
}

/// The stored files of an upload document, removed once its delete is committed.
async fn stored_objects(
    conn: &mut sqlx::PgConnection,
    decl: &CollectionDecl,
    id: &str,
) -> Result<Vec<String>, ApiError> {
    if crate::media::is_upload(decl) {
        crate::media::routes::object_keys(conn, id).await
    } else if decl.slug == "tenants" {
        // The tenant's media rows go with it (ON DELETE CASCADE); their files must too.
        crate::media::routes::tenant_object_keys(conn, id).await
    } else {
        Ok(Vec::new())
    }
}

async fn bulk_update(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    QueryTree(tree): QueryTree,
    ctx: CallContext,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let decl = decl_for(&state, &slug, &format!("/api/{slug}"))?;
    let params = FindParams::from_tree(&tree)?;
    let Some(where_) = params.where_.clone() else {
        return Err(ApiError::bad_request(
            "Missing 'where' query of documents to update.",
        ));
    };
    let body = body_object(&headers, body)?;
    // Bulk PATCH: `limit` absent means all matches.
    let limit = match tree.get("limit") {
        Some(_) => params.limit,
        None => 0,
    };
    bulk(
        &state,
        &ctx,
        decl,
        Action::Update,
        &where_,
        limit,
        &params,
        Some(body),
    )
    .await
}

async fn bulk_delete(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    QueryTree(tree): QueryTree,
    ctx: CallContext,
) -> Result<Response, ApiError> {
    let decl = decl_for(&state, &slug, &format!("/api/{slug}"))?;
    let params = FindParams::from_tree(&tree)?;
    let Some(where_) = params.where_.clone() else {
        return Err(ApiError::bad_request(
            "Missing 'where' query of documents to delete.",
        ));
    };
    bulk(&state, &ctx, decl, Action::Delete, &where_, 0, &params, None).await
}

/// Applies an update or delete to every document in scope, each in its own transaction, and
/// reports Payload's partial-failure envelope.
#[allow(clippy::too_many_arguments)]
async fn bulk(
    state: &AppState,
    ctx: &CallContext,
    decl: &'static CollectionDecl,
    action: Action,
    where_: &Value,
    limit: i64,
    params: &FindParams,
    body: Option<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let ids = {
        let mut conn = crate::db::scope::begin(&state.pool, &scope(ctx)).await?;
        write::bulk_targets(&mut conn, &env(state, ctx), decl, action, where_, limit).await?
    };
    let wenv = write_env(state, ctx);
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for id in &ids {
        let mut tx = crate::db::scope::begin_write(&state.pool, &scope(ctx)).await?;
        let objects = match &body {
            Some(_) => Vec::new(),
            None => stored_objects(&mut tx, decl, &id.to_string()).await?,
        };
        let result = match &body {
            Some(b) => write::update_by_id(&mut tx, &wenv, decl, &id.to_string(), b.clone(), params).await,
            None => write::delete_by_id(&mut tx, &wenv, decl, &id.to_string(), params).await,
        };
        match result {
            Ok(doc) => {
                commit(state, decl, tx).await?;
                crate::media::routes::remove_objects(state, &objects).await;
                docs.push(doc);
            }
            Err(e) => {
                let _ = tx.rollback().await;
                let message = if e.status().is_client_error() {
                    e.to_string()
                } else {
                    tracing::error!(error = %e, doc = %id, "bulk item failed");
                    "Something went wrong.".to_string()
                };
                errors.push(json!({"id": id.to_string(), "message": message}));
            }
        }
    }
    let verb = if action == Action::Update {
        "update"
    } else {
        "delete"
    };
    let total = ids.len();
    if errors.is_empty() {
        let label = if docs.len() == 1 {
            decl.singular
        } else {
            decl.plural
        };
        let past = if action == Action::Update {
            "Updated"
        } else {
            "Deleted"
        };
        let message = format!("{past} {} {label} successfully.", docs.len());
        Ok(Json(json!({"docs": docs, "errors": [], "message": message})).into_response())
    } else {
        let label = if total == 1 { decl.singular } else { decl.plural };
        let message = format!("Unable to {verb} {} out of {total} {label}.", errors.len());
        Ok((
            StatusCode::BAD_REQUEST,
            Json(json!({"docs": docs, "errors": errors, "message": message})),
        )
            .into_response())
    }
}

/// `GET /api/access`: what the caller may do on each collection (the admin UI reads it).
async fn access(State(state): State<AppState>, ctx: CallContext) -> Result<Json<Value>, ApiError> {
    use crate::collections::access::{authorize, filter_as_where, Decision};
    const ACTIONS: [Action; 4] = [Action::Create, Action::Read, Action::Update, Action::Delete];
    // Every (collection, action) plan at once: with a PDP these are concurrent calls.
    let asks = state.registry.all().flat_map(|decl| {
        ACTIONS
            .iter()
            .map(|a| authorize(&state.authz, &ctx.principal, *a, decl, &ctx.tenant))
    });
    let mut decisions = futures_util::future::join_all(asks).await.into_iter();
    let mut collections = Map::new();
    for decl in state.registry.all() {
        let mut entry = Map::new();
        entry.insert("fields".into(), Value::Bool(true));
        for action in ACTIONS {
            let decision = decisions.next().expect("one decision per ask")?;
            let v = match decision {
                Decision::Deny => Value::Bool(false),
                Decision::All => Value::Bool(true),
                Decision::Filter(f) => match filter_as_where(decl, &f) {
                    Some(w) => json!({"permission": true, "where": w}),
                    None => json!({"permission": true}),
                },
            };
            entry.insert(action.as_str().into(), v);
        }
        collections.insert(decl.slug.into(), Value::Object(entry));
    }
    let can_access_admin = crate::admin::can_access_admin(&ctx.principal);
    Ok(Json(
        json!({"collections": collections, "canAccessAdmin": can_access_admin}),
    ))
}
