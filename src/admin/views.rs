//! The admin's pages: dashboard, list, create/edit, delete, bulk actions, control-plane
//! actions. Every read and write goes through the engine (`read::find/count/find_by_id`,
//! `write::create/update_by_id/delete_by_id`) in the request's `DbScope`, and every write
//! commits through `collections::routes::commit` — the REST API's own path.

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Map, Value};

use super::forms::{self, FormInput, FormView, RowOp};
use super::multipart::{self, FormFile, Refused};
use super::seams::{self, ActionOutcome};
use super::{render, AdminCtx, Chrome};
use crate::app::AppState;
use crate::collections::access::{authorize, Action};
use crate::collections::decl::{ChildKind, CollectionDecl, Kind, SubKind};
use crate::collections::engine::params::FindParams;
use crate::collections::engine::{read, write};
use crate::collections::routes::{commit, env, scope, write_env};
use crate::http::error::{ApiError, FieldError};

#[derive(Template)]
#[template(path = "admin/message.html")]
pub struct MessagePage {
    pub c: Chrome,
    pub title: String,
    pub message: String,
}

pub fn csrf_failed(ctx: &AdminCtx) -> Response {
    let page = MessagePage {
        c: Chrome::bare(ctx.lang, &ctx.csrf, Some(ctx.user.email.clone())),
        title: ctx.lang.t("forbidden").into(),
        message: ctx.lang.t("bad_csrf").into(),
    };
    render(StatusCode::FORBIDDEN, &page)
}

pub async fn forbidden(ctx: &AdminCtx, state: &AppState) -> Response {
    message(ctx, state, StatusCode::FORBIDDEN, "forbidden").await
}

async fn message(ctx: &AdminCtx, state: &AppState, status: StatusCode, key: &str) -> Response {
    titled_message(ctx, state, status, key, String::new()).await
}

/// A message page titled by the dictionary's `key`, with `text` under it.
async fn titled_message(
    ctx: &AdminCtx,
    state: &AppState,
    status: StatusCode,
    key: &str,
    text: String,
) -> Response {
    let page = MessagePage {
        c: ctx.chrome(state).await,
        title: ctx.lang.t(key).into(),
        message: text,
    };
    render(status, &page)
}

/// An engine error as a page: 403/404 in words, internal causes logged, never shown.
async fn error_page(ctx: &AdminCtx, state: &AppState, e: ApiError) -> Response {
    match e {
        ApiError::Forbidden => forbidden(ctx, state).await,
        ApiError::NotFound => message(ctx, state, StatusCode::NOT_FOUND, "not_found").await,
        e if e.status().is_client_error() => {
            titled_message(ctx, state, e.status(), "error", e.to_string()).await
        }
        e => {
            tracing::error!(error = %e, "admin request failed");
            message(ctx, state, StatusCode::INTERNAL_SERVER_ERROR, "error").await
        }
    }
}

fn decl_of(state: &AppState, slug: &str) -> Option<&'static CollectionDecl> {
    state.registry.get(slug)
}

/// The words a document is known by: its first title-like field, else its id.
pub fn title_of(o: &Map<String, Value>) -> String {
    for k in [
        "title", "name", "handle", "email", "label", "filename", "prefix", "action", "event", "slug",
    ] {
        if let Some(s) = o.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()) {
            return s.to_string();
        }
    }
    o.get("id").and_then(Value::as_str).unwrap_or("").to_string()
}

/// The field searched by the list's search box.
fn title_field(decl: &CollectionDecl) -> Option<&'static str> {
    [
        "title", "name", "handle", "email", "label", "filename", "prefix", "action", "event",
    ]
    .into_iter()
    .find(|n| {
        decl.field(n)
            .is_some_and(|f| f.kind.is_text_like() && f.readable())
    })
    .and_then(|n| decl.field(n).map(|f| f.name))
}

/// Up to five list columns: simple readable fields, the title first.
fn columns(decl: &CollectionDecl) -> Vec<&'static crate::collections::decl::Field> {
    let title = title_field(decl);
    let mut cols: Vec<_> = decl
        .fields
        .iter()
        .filter(|f| f.readable() && !f.name.contains('.'))
        .filter(|f| {
            matches!(
                f.kind,
                Kind::Text
                    | Kind::Email
                    | Kind::Select(_)
                    | Kind::Int
                    | Kind::BigInt
                    | Kind::Numeric
                    | Kind::Checkbox
                    | Kind::Date
                    | Kind::Relation(_)
            )
        })
        .collect();
    cols.sort_by_key(|f| Some(f.name) != title);
    cols.truncate(5);
    cols
}

// ---------------------------------------------------------------------------------------------
// Dashboard

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
pub struct DashboardPage {
    pub c: Chrome,
    pub counts: Vec<(&'static str, &'static str, String)>,
    pub failing_jobs: Option<String>,
    pub deliveries: Vec<(String, String)>,
    pub audit: Vec<Vec<String>>,
}

pub async fn dashboard(State(state): State<AppState>, ctx: AdminCtx) -> Response {
    let c = ctx.chrome(&state).await;
    let result: Result<DashboardPage, ApiError> = async {
        let renv = env(&state, &ctx.call);
        let mut conn = crate::db::scope::begin(&state.pool, &scope(&ctx.call)).await?;
        let mut counts = Vec::new();
        for item in c.nav.iter().flat_map(|g| g.items.iter()) {
            let Some(decl) = decl_of(&state, item.slug) else {
                continue;
            };
            let n = read::count(&mut conn, &renv, decl, None).await?;
            counts.push((item.slug, item.label, ctx.lang.number(n)));
        }
        let readable = |slug: &str| c.nav.iter().any(|g| g.items.iter().any(|i| i.slug == slug));
        let mut failing_jobs = None;
        if let (true, Some(decl)) = (readable("sync-jobs"), decl_of(&state, "sync-jobs")) {
            let w = json!({"status": {"in": ["failed", "dead"]}});
            failing_jobs = Some(
                ctx.lang
                    .number(read::count(&mut conn, &renv, decl, Some(&w)).await?),
            );
        }
        let mut deliveries = Vec::new();
        if let (true, Some(decl)) = (readable("webhook-logs"), decl_of(&state, "webhook-logs")) {
            if let Some(Kind::Select(statuses)) = decl.field("status").map(|f| f.kind) {
                for s in statuses {
                    let w = json!({"status": {"equals": s}});
                    let n = read::count(&mut conn, &renv, decl, Some(&w)).await?;
                    deliveries.push((s.to_string(), ctx.lang.number(n)));
                }
            }
        }
        let mut audit = Vec::new();
        if let (true, Some(decl)) = (readable("audit-logs"), decl_of(&state, "audit-logs")) {
            let params = list_params(None, vec!["-createdAt".into()], 1, 10, 0);
            let body = read::find(&mut conn, &renv, decl, &params).await?;
            for d in body["docs"].as_array().into_iter().flatten() {
                audit.push(vec![
                    d["id"].as_str().unwrap_or("").to_string(),
                    d["createdAt"].as_str().unwrap_or("").chars().take(19).collect(),
                    d["action"].as_str().unwrap_or("").to_string(),
                    d["collection"].as_str().unwrap_or("").to_string(),
                    d["docId"].as_str().unwrap_or("").to_string(),
                ]);
            }
        }
        Ok(DashboardPage {
            c,
            counts,
            failing_jobs,
            deliveries,
            audit,
        })
    }
    .await;
    match result {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => error_page(&ctx, &state, e).await,
    }
}

fn list_params(where_: Option<Value>, sort: Vec<String>, page: i64, limit: i64, depth: u32) -> FindParams {
    FindParams {
        where_,
        depth,
        limit,
        page,
        pagination: true,
        sort,
        select: None,
        populate: None,
    }
}

// ---------------------------------------------------------------------------------------------
// List

pub struct Column {
    pub name: &'static str,
    pub label: &'static str,
    pub sort_link: String,
    pub sorted: &'static str,
}

pub struct ListRow {
    pub id: String,
    pub cells: Vec<String>,
}

pub struct Filter {
    pub name: &'static str,
    pub label: &'static str,
    pub options: Vec<(String, bool)>,
}

#[derive(Template)]
#[template(path = "admin/list.html")]
pub struct ListPage {
    pub c: Chrome,
    pub slug: &'static str,
    pub plural: &'static str,
    pub columns: Vec<Column>,
    pub rows: Vec<ListRow>,
    pub q: String,
    pub searchable: bool,
    pub filters: Vec<Filter>,
    pub sort: String,
    pub page: i64,
    pub total_pages: i64,
    pub total: String,
    pub prev_link: Option<String>,
    pub next_link: Option<String>,
    pub can_create: bool,
    pub can_delete: bool,
    pub can_publish: bool,
    pub flash: Option<&'static str>,
}

fn flash_of(tree: &Value, lang: super::i18n::Lang) -> Option<&'static str> {
    match tree.get("msg").and_then(Value::as_str) {
        Some("saved") => Some(lang.t("saved")),
        Some("created") => Some(lang.t("created")),
        Some("deleted") => Some(lang.t("deleted")),
        Some("queued") => Some(lang.t("action_queued")),
        Some("refused") => Some(lang.t("action_refused")),
        _ => None,
    }
}

fn link(slug: &str, q: &str, filters: &[(String, String)], sort: &str, page: i64) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    if !q.is_empty() {
        s.append_pair("q", q);
    }
    for (k, v) in filters {
        s.append_pair(&format!("f.{k}"), v);
    }
    if !sort.is_empty() {
        s.append_pair("sort", sort);
    }
    if page > 1 {
        s.append_pair("page", &page.to_string());
    }
    let qs = s.finish();
    if qs.is_empty() {
        format!("/admin/c/{slug}")
    } else {
        format!("/admin/c/{slug}?{qs}")
    }
}

pub async fn list(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    RawQuery(raw): RawQuery,
    ctx: AdminCtx,
) -> Response {
    let Some(decl) = decl_of(&state, &slug) else {
        return message(&ctx, &state, StatusCode::NOT_FOUND, "not_found").await;
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let q = get("q").unwrap_or_default();
    let page = get("page")
        .and_then(|p| p.parse::<i64>().ok())
        .unwrap_or(1)
        .max(1);
    let limit = get("limit")
        .and_then(|p| p.parse::<i64>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let cols = columns(decl);
    let sort = get("sort")
        .filter(|s| cols.iter().any(|c| c.name == s.trim_start_matches('-')))
        .unwrap_or_default();
    // Filters: equality on select fields, through the same `where` language as the API.
    let mut active: Vec<(String, String)> = Vec::new();
    let mut conds = Vec::new();
    for f in decl.fields.iter().filter(|f| f.readable()) {
        if let Kind::Select(opts) = f.kind {
            if let Some(v) = get(&format!("f.{}", f.name)).filter(|v| opts.contains(&v.as_str())) {
                conds.push(json!({ f.name: {"equals": v} }));
                active.push((f.name.to_string(), v));
            }
        }
    }
    let title = title_field(decl);
    if let (Some(t), false) = (title, q.trim().is_empty()) {
        conds.push(json!({ t: {"like": q.trim()} }));
    }
    let where_ = (!conds.is_empty()).then(|| json!({ "and": conds }));
    let sort_vec = if sort.is_empty() {
        vec![decl.default_sort.to_string()]
    } else {
        vec![sort.clone()]
    };
    let params = list_params(where_, sort_vec, page, limit, 1);
    let c = ctx.chrome(&state).await;
    let result: Result<Value, ApiError> = async {
        let mut conn = crate::db::scope::begin(&state.pool, &scope(&ctx.call)).await?;
        read::find(&mut conn, &env(&state, &ctx.call), decl, &params).await
    }
    .await;
    let body = match result {
        Ok(b) => b,
        Err(e) => return error_page(&ctx, &state, e).await,
    };
    let (can_create, can_delete, can_update) = {
        let ask = |a| authorize(&state.authz, &ctx.call.principal, a, decl, &ctx.call.tenant);
        let (cr, de, up) = tokio::join!(ask(Action::Create), ask(Action::Delete), ask(Action::Update));
        let ok =
            |d: Result<crate::collections::access::Decision, ApiError>| matches!(d, Ok(d) if !d.is_denied());
        (ok(cr), ok(de), ok(up))
    };
    let can_publish = can_update
        && matches!(decl.field("status").map(|f| f.kind), Some(Kind::Select(o)) if o.contains(&"published"))
        && decl.field("status").is_some_and(|f| f.writable());
    let rows = body["docs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| ListRow {
            id: d["id"].as_str().unwrap_or("").to_string(),
            cells: cols
                .iter()
                .map(|f| {
                    let v = &d[f.name];
                    match f.kind {
                        Kind::Date => ctx.lang.digits(
                            &v.as_str()
                                .unwrap_or("")
                                .chars()
                                .take(16)
                                .collect::<String>()
                                .replace('T', " "),
                        ),
                        Kind::Int | Kind::BigInt => v
                            .as_i64()
                            .map(|n| ctx.lang.number(n))
                            .unwrap_or_else(|| forms::value_text(v)),
                        _ => forms::display_value(f, v),
                    }
                })
                .collect(),
        })
        .collect();
    let columns = cols
        .iter()
        .map(|f| {
            let (next, sorted) = if sort == f.name {
                (format!("-{}", f.name), "ascending")
            } else if sort == format!("-{}", f.name) {
                (f.name.to_string(), "descending")
            } else {
                (f.name.to_string(), "none")
            };
            Column {
                name: f.name,
                label: super::labels::label(ctx.lang, f.label),
                sort_link: link(decl.slug, &q, &active, &next, 1),
                sorted,
            }
        })
        .collect();
    let filters = decl
        .fields
        .iter()
        .filter(|f| f.readable())
        .filter_map(|f| match f.kind {
            Kind::Select(opts) => Some(Filter {
                name: f.name,
                label: super::labels::label(ctx.lang, f.label),
                options: opts
                    .iter()
                    .map(|o| (o.to_string(), active.iter().any(|(k, v)| k == f.name && v == o)))
                    .collect(),
            }),
            _ => None,
        })
        .collect();
    let total_pages = body["totalPages"].as_i64().unwrap_or(1).max(1);
    let tree = crate::http::extract::query_tree(raw.as_deref().unwrap_or(""));
    let page_view = ListPage {
        flash: flash_of(&tree, ctx.lang),
        slug: decl.slug,
        plural: super::labels::label(ctx.lang, decl.plural),
        columns,
        rows,
        searchable: title.is_some(),
        filters,
        prev_link: (page > 1).then(|| link(decl.slug, &q, &active, &sort, page - 1)),
        next_link: (page < total_pages).then(|| link(decl.slug, &q, &active, &sort, page + 1)),
        q,
        sort,
        page,
        total_pages,
        total: ctx.lang.number(body["totalDocs"].as_i64().unwrap_or(0)),
        can_create,
        can_delete,
        can_publish,
        c,
    };
    render(StatusCode::OK, &page_view)
}

/// At most this many rows per bulk action (each is a transaction of its own).
const BULK_MAX: usize = 500;

/// The outcome of a bulk action that did not change every row it was given.
#[derive(Template)]
#[template(path = "admin/bulk_result.html")]
pub struct BulkResultPage {
    pub c: Chrome,
    pub slug: &'static str,
    pub plural: &'static str,
    pub heading: String,
    /// (id, why it was not changed) per row left as it was.
    pub refused: Vec<(String, String)>,
}

/// Bulk delete or publish of the checked rows, each through the engine in its own transaction
/// (as the REST bulk routes do). Every row is tried: the ones the caller may not change (or
/// that are gone, or invalid) are listed with the reason, and the others are changed. A server
/// error stops the action; the rows changed before it stay changed and are counted.
pub async fn bulk(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ctx: AdminCtx,
    body: Bytes,
) -> Response {
    let input = FormInput::parse(&body);
    if !ctx.csrf_ok(&state, input.get("_csrf")) {
        return csrf_failed(&ctx);
    }
    let Some(decl) = decl_of(&state, &slug) else {
        return message(&ctx, &state, StatusCode::NOT_FOUND, "not_found").await;
    };
    let mut ids: Vec<String> = Vec::new();
    for id in input.all("ids") {
        if !ids.iter().any(|seen| seen == id) {
            ids.push(id.to_string());
        }
    }
    if ids.is_empty() {
        return Redirect::to(&format!("/admin/c/{slug}")).into_response();
    }
    if ids.len() > BULK_MAX {
        let text = format!(
            "{} {}",
            ctx.lang.t("bulk_too_many"),
            ctx.lang.number(BULK_MAX as i64)
        );
        return titled_message(&ctx, &state, StatusCode::BAD_REQUEST, "error", text).await;
    }
    let publish = input.get("do") == Some("publish");
    let wenv = write_env(&state, &ctx.call);
    let params = list_params(None, Vec::new(), 1, 0, 0);
    let mut done = 0usize;
    let mut refused: Vec<(String, String)> = Vec::new();
    let mut first_refusal: Option<StatusCode> = None;
    let mut failed = false;
    for id in &ids {
        let result: Result<(), ApiError> = async {
            let mut tx = crate::db::scope::begin_write(&state.pool, &scope(&ctx.call)).await?;
            if publish {
                let mut b = Map::new();
                b.insert("status".into(), json!("published"));
                write::update_by_id(&mut tx, &wenv, decl, id, b, &params).await?;
            } else {
                write::delete_by_id(&mut tx, &wenv, decl, id, &params).await?;
            }
            commit(&state, decl, tx).await
        }
        .await;
        match result {
            Ok(()) => done += 1,
            Err(e) if e.status().is_client_error() => {
                first_refusal.get_or_insert(e.status());
                let reason = match e {
                    ApiError::Forbidden => ctx.lang.t("forbidden").to_string(),
                    ApiError::NotFound => ctx.lang.t("not_found").to_string(),
                    e => e.to_string(),
                };
                refused.push((id.clone(), reason));
            }
            Err(e) => {
                tracing::error!(error = %e, collection = decl.slug, "admin bulk action failed");
                failed = true;
                break;
            }
        }
    }
    if done == ids.len() {
        let msg = if publish { "saved" } else { "deleted" };
        return Redirect::to(&format!("/admin/c/{slug}?msg={msg}")).into_response();
    }
    let lang = ctx.lang;
    let verb = lang.t(if publish { "bulk_published" } else { "bulk_deleted" });
    let mut heading = format!(
        "{verb}: {} {} {}",
        lang.number(done as i64),
        lang.t("of"),
        lang.number(ids.len() as i64)
    );
    if failed {
        heading = format!("{heading}. {}", lang.t("bulk_stopped"));
    }
    let status = if failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if done > 0 {
        StatusCode::OK
    } else {
        first_refusal.unwrap_or(StatusCode::BAD_REQUEST)
    };
    let page = BulkResultPage {
        c: ctx.chrome(&state).await,
        slug: decl.slug,
        plural: super::labels::label(lang, decl.plural),
        heading,
        refused,
    };
    render(status, &page)
}

// ---------------------------------------------------------------------------------------------
// Create / edit

#[derive(Template)]
#[template(path = "admin/edit.html")]
pub struct EditPage {
    pub c: Chrome,
    pub slug: &'static str,
    pub singular: &'static str,
    pub plural: &'static str,
    pub id: Option<String>,
    pub heading: String,
    pub fields_html: String,
    pub can_save: bool,
    pub can_delete: bool,
    pub has_errors: bool,
    pub flash: Option<&'static str>,
    pub actions: Vec<(&'static str, &'static str)>,
    /// The form has file inputs and posts `multipart/form-data`.
    pub multipart: bool,
}

#[derive(Template)]
#[template(path = "admin/key_once.html")]
pub struct KeyOncePage {
    pub c: Chrome,
    pub key: String,
    pub id: String,
}

/// Options of every relationship picker on the form, read with the caller's access (so a
/// tenant admin's pickers hold that tenant's documents only).
async fn picker_options(
    state: &AppState,
    ctx: &AdminCtx,
    decl: &'static CollectionDecl,
) -> HashMap<&'static str, Vec<(String, String)>> {
    let mut targets: Vec<&'static str> = Vec::new();
    for f in decl.fields.iter().filter(|f| f.writable()) {
        match f.kind {
            Kind::Relation(t) | Kind::Upload(t) => targets.push(t),
            Kind::Blocks(blocks) => {
                for b in blocks {
                    for s in b.fields {
                        if let SubKind::Upload(t) = s.kind {
                            targets.push(t);
                        }
                    }
                }
            }
            Kind::Rows(subs) => {
                for s in subs {
                    if let SubKind::Upload(t) = s.kind {
                        targets.push(t);
                    }
                }
            }
            Kind::Child(child) => {
                for (_, _, k) in child.columns {
                    if let ChildKind::Relation(t) = k {
                        targets.push(t);
                    }
                }
            }
            _ => {}
        }
    }
    targets.sort();
    targets.dedup();
    let mut out = HashMap::new();
    let Ok(mut conn) = crate::db::scope::begin(&state.pool, &scope(&ctx.call)).await else {
        return out;
    };
    let renv = env(state, &ctx.call);
    for t in targets {
        let Some(target) = decl_of(state, t) else { continue };
        let params = list_params(None, vec![target.default_sort.to_string()], 1, 200, 0);
        let docs = match read::find(&mut conn, &renv, target, &params).await {
            Ok(b) => b["docs"].as_array().cloned().unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        out.insert(
            t,
            docs.iter()
                .filter_map(|d| {
                    let o = d.as_object()?;
                    Some((o.get("id")?.as_str()?.to_string(), title_of(o)))
                })
                .collect(),
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn edit_page(
    state: &AppState,
    ctx: &AdminCtx,
    decl: &'static CollectionDecl,
    id: Option<String>,
    values: &Value,
    errors: &HashMap<String, String>,
    raw: &HashMap<String, String>,
    flash: Option<&'static str>,
    status: StatusCode,
) -> Response {
    let ask = |a| authorize(&state.authz, &ctx.call.principal, a, decl, &ctx.call.tenant);
    let ok = |d: Result<crate::collections::access::Decision, ApiError>| matches!(d, Ok(d) if !d.is_denied());
    let can_save = ok(ask(if id.is_some() {
        Action::Update
    } else {
        Action::Create
    })
    .await);
    let can_delete = id.is_some() && ok(ask(Action::Delete).await);
    // Upload pickers offer a new file when the caller may create in their collection (media).
    let can_upload = match (forms::has_upload_fields(decl), decl_of(state, "media")) {
        (true, Some(media)) => ok(authorize(
            &state.authz,
            &ctx.call.principal,
            Action::Create,
            media,
            &ctx.call.tenant,
        )
        .await),
        _ => false,
    };
    let options = picker_options(state, ctx, decl).await;
    let fields_html = FormView {
        decl,
        values,
        errors,
        raw,
        options: &options,
        lang: ctx.lang,
        can_save,
        can_upload,
        editing: id.is_some(),
        max_upload_bytes: state.config.media.max_bytes,
    }
    .render();
    let multipart = can_save && (crate::media::is_upload(decl) || can_upload);
    let heading = match &id {
        Some(_) => values.as_object().map(title_of).unwrap_or_default(),
        None => format!(
            "{} {}",
            ctx.lang.t("create_doc"),
            super::labels::label(ctx.lang, decl.singular)
        ),
    };
    let page = EditPage {
        c: ctx.chrome(state).await,
        slug: decl.slug,
        singular: super::labels::label(ctx.lang, decl.singular),
        plural: super::labels::label(ctx.lang, decl.plural),
        actions: if id.is_some() {
            allowed_actions(state, ctx, decl).await
        } else {
            Vec::new()
        },
        id,
        heading,
        fields_html,
        can_save,
        can_delete,
        has_errors: !errors.is_empty(),
        flash,
        multipart,
    };
    render(status, &page)
}

pub async fn new_form(State(state): State<AppState>, Path(slug): Path<String>, ctx: AdminCtx) -> Response {
    let Some(decl) = decl_of(&state, &slug) else {
        return message(&ctx, &state, StatusCode::NOT_FOUND, "not_found").await;
    };
    let values = forms::defaults(decl);
    edit_page(
        &state,
        &ctx,
        decl,
        None,
        &values,
        &HashMap::new(),
        &HashMap::new(),
        None,
        StatusCode::OK,
    )
    .await
}

pub async fn edit_form(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    ctx: AdminCtx,
) -> Response {
    let Some(decl) = decl_of(&state, &slug) else {
        return message(&ctx, &state, StatusCode::NOT_FOUND, "not_found").await;
    };
    let doc: Result<Value, ApiError> = async {
        let mut conn = crate::db::scope::begin(&state.pool, &scope(&ctx.call)).await?;
        read::find_by_id(&mut conn, &env(&state, &ctx.call), decl, &id, 0, None, None).await
    }
    .await;
    match doc {
        Ok(doc) => {
            let tree = crate::http::extract::query_tree(raw.as_deref().unwrap_or(""));
            let flash = flash_of(&tree, ctx.lang);
            edit_page(
                &state,
                &ctx,
                decl,
                Some(id),
                &doc,
                &HashMap::new(),
                &HashMap::new(),
                flash,
                StatusCode::OK,
            )
            .await
        }
        Err(e) => error_page(&ctx, &state, e).await,
    }
}

pub async fn create(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ctx: AdminCtx,
    req: Request,
) -> Response {
    save(state, slug, None, ctx, req).await
}

pub async fn update(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    ctx: AdminCtx,
    req: Request,
) -> Response {
    save(state, slug, Some(id), ctx, req).await
}

/// A form post, urlencoded or (a form with file inputs) multipart, after its CSRF check.
async fn submitted(
    state: &AppState,
    ctx: &AdminCtx,
    req: Request,
) -> Result<(FormInput, Vec<FormFile>), Response> {
    if !crate::media::upload::is_multipart(req.headers()) {
        let body = match Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) => return Err(e.into_response()),
        };
        let input = FormInput::parse(&body);
        if !ctx.csrf_ok(state, input.get("_csrf")) {
            return Err(csrf_failed(ctx));
        }
        return Ok((input, Vec::new()));
    }
    let headers = req.headers().clone();
    let staging = crate::media::routes::staging_dir(state);
    let read = multipart::read(
        &headers,
        req.into_body(),
        &staging,
        state.config.media.max_bytes,
        |token| ctx.csrf_ok(state, Some(token)),
    )
    .await;
    match read {
        Ok(form) => Ok((form.input, form.files)),
        Err(Refused::Csrf) => Err(csrf_failed(ctx)),
        Err(Refused::Body(e)) => Err(error_page(ctx, state, e).await),
    }
}

/// A file that could not be taken, as an error on its input.
fn file_refused(ctx: &AdminCtx, path: &str, e: &ApiError) -> FieldError {
    let message = match e {
        ApiError::PayloadTooLarge => ctx.lang.t("file_too_large").to_string(),
        e => e.to_string(),
    };
    FieldError::new(path, None, message)
}

/// Files chosen beside upload pickers (`<path>._file`, alt text in `<path>._alt`): each becomes
/// a document of the picker's collection through the media engine (the REST upload's checks,
/// in the form's tenant), and the picker's value is set to it. Errors land on the inputs.
async fn upload_picked_files(
    state: &AppState,
    ctx: &AdminCtx,
    decl: &'static CollectionDecl,
    input: &mut FormInput,
    files: Vec<FormFile>,
    errors: &mut Vec<FieldError>,
) -> Result<(), ApiError> {
    let params = list_params(None, Vec::new(), 1, 0, 0);
    for file in files {
        let Some(path) = file.name.strip_suffix("._file") else {
            continue;
        };
        let Some(target) = forms::upload_target(decl, input, path).and_then(|t| decl_of(state, t)) else {
            continue;
        };
        let staged = match file.staged {
            Ok(s) => s,
            Err(e) => {
                errors.push(file_refused(ctx, path, &e));
                continue;
            }
        };
        let mut fields = Map::new();
        for (key, from) in [("alt", format!("{path}._alt")), ("tenant", "tenant".to_string())] {
            if let Some(v) = input.get(&from).map(str::trim).filter(|v| !v.is_empty()) {
                fields.insert(key.into(), json!(v));
            }
        }
        match crate::media::routes::create_from(state, &ctx.call, target, fields, staged, &params).await {
            Ok(doc) => {
                let id = doc["id"].as_str().unwrap_or("").to_string();
                input.push(path, id);
            }
            Err(ApiError::Validation(v)) => {
                for e in v.errors {
                    let at = if e.path == "alt" {
                        format!("{path}._alt")
                    } else {
                        path.to_string()
                    };
                    let message = match (&e.label, e.path.as_str()) {
                        (Some(label), p) if p != "file" && p != "alt" => format!("{label}: {}", e.message),
                        _ => e.message,
                    };
                    errors.push(FieldError::new(at, None, message));
                }
            }
            Err(e) if e.status().is_client_error() => errors.push(file_refused(ctx, path, &e)),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A form post: an array edit re-renders; otherwise files are uploaded, the engine writes,
/// and its `ValidationError` comes back as messages beside the inputs, typed values kept.
async fn save(state: AppState, slug: String, id: Option<String>, ctx: AdminCtx, req: Request) -> Response {
    let (mut input, files) = match submitted(&state, &ctx, req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let Some(decl) = decl_of(&state, &slug) else {
        return message(&ctx, &state, StatusCode::NOT_FOUND, "not_found").await;
    };
    // Secret "is set" hints survive a re-render.
    let has: Vec<String> = input.all("_has").into_iter().map(str::to_string).collect();
    if let Some(op) = RowOp::from_form(&input) {
        // Rows are edited without saving anything, so chosen files are not uploaded.
        let mut parsed = forms::body_from_form(decl, &input, id.is_none());
        op.apply(decl, &mut parsed.body);
        let values = with_has(parsed.body, &has);
        return edit_page(
            &state,
            &ctx,
            decl,
            id,
            &values,
            &HashMap::new(),
            &parsed.raw,
            None,
            StatusCode::OK,
        )
        .await;
    }
    let mut upload_errors = Vec::new();
    // The upload collection's own file (`file`); other files belong to upload pickers.
    let mut own_file = None;
    let mut picked = Vec::new();
    for f in files {
        if crate::media::is_upload(decl) && f.name == "file" {
            match f.staged {
                Ok(s) => own_file = Some(s),
                Err(e) => upload_errors.push(file_refused(&ctx, "file", &e)),
            }
        } else {
            picked.push(f);
        }
    }
    if crate::media::is_upload(decl) && id.is_none() && own_file.is_none() && upload_errors.is_empty() {
        upload_errors.push(FieldError::new("file", None, ctx.lang.t("no_file")));
    }
    if let Err(e) = upload_picked_files(&state, &ctx, decl, &mut input, picked, &mut upload_errors).await {
        return error_page(&ctx, &state, e).await;
    }
    let mut parsed = forms::body_from_form(decl, &input, id.is_none());
    parsed.errors.extend(upload_errors);
    if !parsed.errors.is_empty() {
        let errors = forms::errors_by_path(&parsed.errors);
        let mut raw = parsed.raw;
        keep_alt_texts(&input, &mut raw);
        let values = with_has(parsed.body, &has);
        return edit_page(
            &state,
            &ctx,
            decl,
            id,
            &values,
            &errors,
            &raw,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let params = list_params(None, Vec::new(), 1, 0, 0);
    let wenv = write_env(&state, &ctx.call);
    let result: Result<Value, ApiError> = async {
        if crate::media::is_upload(decl) {
            // The same path as `POST/PATCH /api/media` with a file.
            return match (&id, own_file) {
                (None, Some(file)) => {
                    crate::media::routes::create_from(
                        &state,
                        &ctx.call,
                        decl,
                        parsed.body.clone(),
                        file,
                        &params,
                    )
                    .await
                }
                (None, None) => Err(ApiError::bad_request("No files were uploaded.")),
                (Some(id), file) => {
                    crate::media::routes::update_from(
                        &state,
                        &ctx.call,
                        decl,
                        id,
                        parsed.body.clone(),
                        file,
                        &params,
                    )
                    .await
                }
            };
        }
        let mut tx = crate::db::scope::begin_write(&state.pool, &scope(&ctx.call)).await?;
        let doc = match &id {
            None => write::create(&mut tx, &wenv, decl, parsed.body.clone(), &params).await?,
            Some(id) => write::update_by_id(&mut tx, &wenv, decl, id, parsed.body.clone(), &params).await?,
        };
        commit(&state, decl, tx).await?;
        Ok(doc)
    }
    .await;
    match result {
        Ok(doc) => {
            let new_id = doc["id"].as_str().unwrap_or("").to_string();
            // A generated API key: shown once, on this response only.
            if let Some(key) = doc.get("key").and_then(Value::as_str) {
                let page = KeyOncePage {
                    c: ctx.chrome(&state).await,
                    key: key.to_string(),
                    id: new_id,
                };
                return render(StatusCode::CREATED, &page);
            }
            let msg = if id.is_some() { "saved" } else { "created" };
            Redirect::to(&format!("/admin/c/{slug}/{new_id}?msg={msg}")).into_response()
        }
        Err(ApiError::Validation(v)) => {
            let errors = forms::errors_by_path(&v.errors);
            let mut raw = parsed.raw;
            keep_alt_texts(&input, &mut raw);
            let values = with_has(parsed.body, &has);
            edit_page(
                &state,
                &ctx,
                decl,
                id,
                &values,
                &errors,
                &raw,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => error_page(&ctx, &state, e).await,
    }
}

/// The alt texts typed for new files are shown again with the form (the files themselves
/// cannot be: browsers never prefill a file input).
fn keep_alt_texts(input: &FormInput, raw: &mut HashMap<String, String>) {
    for (k, v) in input.pairs() {
        if k.ends_with("._alt") && !v.is_empty() {
            raw.insert(k.clone(), v.clone());
        }
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    ctx: AdminCtx,
    body: Bytes,
) -> Response {
    let input = FormInput::parse(&body);
    if !ctx.csrf_ok(&state, input.get("_csrf")) {
        return csrf_failed(&ctx);
    }
    let Some(decl) = decl_of(&state, &slug) else {
        return message(&ctx, &state, StatusCode::NOT_FOUND, "not_found").await;
    };
    let params = list_params(None, Vec::new(), 1, 0, 0);
    let result: Result<(), ApiError> = async {
        let mut tx = crate::db::scope::begin_write(&state.pool, &scope(&ctx.call)).await?;
        write::delete_by_id(&mut tx, &write_env(&state, &ctx.call), decl, &id, &params).await?;
        commit(&state, decl, tx).await
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/admin/c/{slug}?msg=deleted")).into_response(),
        Err(e) => error_page(&ctx, &state, e).await,
    }
}

/// Control-plane actions on one document (webhook replay, job retry/cancel): the caller must
/// see the document and hold the action in the collection's Cerbos policy; the work itself is
/// the integration plane's (`seams`).
pub async fn doc_action(
    State(state): State<AppState>,
    Path((slug, id, action)): Path<(String, String, String)>,
    ctx: AdminCtx,
    body: Bytes,
) -> Response {
    let input = FormInput::parse(&body);
    if !ctx.csrf_ok(&state, input.get("_csrf")) {
        return csrf_failed(&ctx);
    }
    let Some(decl) = decl_of(&state, &slug) else {
        return message(&ctx, &state, StatusCode::NOT_FOUND, "not_found").await;
    };
    let Ok(uuid) = uuid::Uuid::parse_str(&id) else {
        return message(&ctx, &state, StatusCode::NOT_FOUND, "not_found").await;
    };
    // The document must be visible to the caller, and the action allowed.
    let visible: Result<Value, ApiError> = async {
        let mut conn = crate::db::scope::begin(&state.pool, &scope(&ctx.call)).await?;
        read::find_by_id(&mut conn, &env(&state, &ctx.call), decl, &id, 0, None, None).await
    }
    .await;
    let doc = match visible {
        Ok(doc) => doc,
        Err(e) => return error_page(&ctx, &state, e).await,
    };
    // The action is a Cerbos action of its own (`replay`, `retry`, `cancel` in policies/),
    // decided for this document (its tenant).
    if !seams::actions_for(decl.slug).iter().any(|(a, _)| *a == action) {
        return message(&ctx, &state, StatusCode::NOT_FOUND, "not_found").await;
    }
    let target = crate::collections::access::Target {
        id: &id,
        tenant: doc["tenant"].as_str().and_then(|t| uuid::Uuid::parse_str(t).ok()),
        store: None,
    };
    let decided = crate::collections::access::allowed(
        &state.authz,
        &ctx.call.principal,
        &ctx.call.tenant,
        decl.slug,
        &action,
        &[target],
    )
    .await;
    match decided {
        Ok(allowed) if allowed == [true] => {}
        Ok(_) => return forbidden(&ctx, &state).await,
        Err(e) => return error_page(&ctx, &state, e).await,
    }
    let outcome = match (slug.as_str(), action.as_str()) {
        ("webhook-logs", "replay") => seams::replay_webhook_log(&state, &ctx.call, uuid).await,
        ("sync-jobs", "retry") => seams::retry_sync_job(&state, &ctx.call, uuid).await,
        ("sync-jobs", "cancel") => seams::cancel_sync_job(&state, &ctx.call, uuid).await,
        _ => return message(&ctx, &state, StatusCode::NOT_FOUND, "not_found").await,
    };
    match outcome {
        Ok(ActionOutcome::Done) => Redirect::to(&format!("/admin/c/{slug}/{id}?msg=queued")).into_response(),
        Ok(ActionOutcome::Refused(why)) => {
            tracing::info!(slug, %id, action, why, "control-plane action refused");
            Redirect::to(&format!("/admin/c/{slug}/{id}?msg=refused")).into_response()
        }
        Err(e) => error_page(&ctx, &state, ApiError::Internal(e)).await,
    }
}

/// The body shown again, with the "secret is set" flags the form carried.
fn with_has(mut body: Map<String, Value>, has: &[String]) -> Value {
    for h in has {
        body.insert(h.clone(), json!(true));
    }
    Value::Object(body)
}

/// The control-plane actions the caller's policy allows on this collection.
async fn allowed_actions(
    state: &AppState,
    ctx: &AdminCtx,
    decl: &CollectionDecl,
) -> Vec<(&'static str, &'static str)> {
    let principal = crate::authz::principal(&ctx.call.principal, &ctx.call.tenant);
    let mut out = Vec::new();
    for (action, key) in seams::actions_for(decl.slug) {
        if let Ok(plan) = state.authz.plan(&principal, decl.slug, action).await {
            if !matches!(plan, crate::authz::plan::Plan::Never) {
                out.push((*action, *key));
            }
        }
    }
    out
}

/// `GET /admin/options/{slug}?q=`: a relationship picker's options matching `q` (htmx swaps
/// them into the `<select>`), read with the caller's access like the form's own list.
pub async fn picker_search(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    RawQuery(raw): RawQuery,
    ctx: AdminCtx,
) -> Response {
    let Some(decl) = decl_of(&state, &slug) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let q = form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let where_ = match (title_field(decl), q.is_empty()) {
        (Some(t), false) => Some(json!({ t: {"like": q} })),
        _ => None,
    };
    let params = list_params(where_, vec![decl.default_sort.to_string()], 1, 50, 0);
    let result: Result<Value, ApiError> = async {
        let mut conn = crate::db::scope::begin(&state.pool, &scope(&ctx.call)).await?;
        read::find(&mut conn, &env(&state, &ctx.call), decl, &params).await
    }
    .await;
    let docs = match result {
        Ok(b) => b["docs"].as_array().cloned().unwrap_or_default(),
        Err(ApiError::Forbidden) => Vec::new(),
        Err(e) => return error_page(&ctx, &state, e).await,
    };
    let options = docs.iter().filter_map(|d| {
        let o = d.as_object()?;
        Some((o.get("id")?.as_str()?.to_string(), title_of(o)))
    });
    let mut res = axum::response::Html(forms::option_list(options, "", true)).into_response();
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res
}
