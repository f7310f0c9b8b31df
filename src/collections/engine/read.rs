//! Reading documents: one `json_build_object` projection per collection (so PostgreSQL does the
//! serialisation), lists with Payload's pagination arithmetic, and population of relationships
//! with one batched query per target collection and level (`WHERE id = ANY($1)`).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::authz::Authorizer;
use crate::collections::access::{authorize, Action, Decision, TenantContext};
use crate::collections::decl::{ChildKind, CollectionDecl, Field, Kind, SubField, SubKind, Visibility};
use crate::collections::engine::params::FindParams;
use crate::collections::engine::query::{push_cond, Compiler, Cond};
use crate::collections::Registry;
use crate::http::error::ApiError;

/// What a read needs to know about the caller and the server.
pub struct ReadEnv<'a> {
    pub registry: &'a Registry,
    pub authz: &'a Authorizer,
    pub principal: &'a Principal,
    pub tenant: &'a TenantContext,
    pub app_url: &'a str,
}

impl ReadEnv<'_> {
    /// Whether only public fields may be shown: to anonymous callers, and to signed-in callers
    /// reading inside a tenant they do not belong to (another tenant's storefront context).
    pub fn public_only(&self) -> bool {
        match self.principal {
            Principal::Anonymous => true,
            p if p.is_super_admin() => false,
            p => match self.tenant.tenant_id {
                Some(t) => !p.tenants_with(&[]).contains(&t),
                None => false,
            },
        }
    }
}

/// Which fields a response holds (`select`).
#[derive(Debug, Clone, Default)]
pub struct Projection {
    include: Option<Vec<String>>,
    exclude: Vec<String>,
}

impl Projection {
    pub fn from_select(select: Option<&Value>) -> Projection {
        let Some(select) = select else {
            return Projection::default();
        };
        let mut paths = Vec::new();
        flatten_select(select, "", &mut paths);
        let any_false = paths.iter().any(|(_, on)| !on);
        if any_false {
            Projection {
                include: None,
                exclude: paths.into_iter().filter(|(_, on)| !on).map(|(p, _)| p).collect(),
            }
        } else if paths.is_empty() {
            Projection::default()
        } else {
            Projection {
                include: Some(paths.into_iter().map(|(p, _)| p).collect()),
                exclude: Vec::new(),
            }
        }
    }

    /// Whether the field (or the timestamp `createdAt`/`updatedAt`) is part of the response.
    pub fn wants(&self, name: &str) -> bool {
        let covers = |sel: &str| {
            name == sel || name.starts_with(&format!("{sel}.")) || sel.starts_with(&format!("{name}."))
        };
        if self
            .exclude
            .iter()
            .any(|e| name == e || name.starts_with(&format!("{e}.")))
        {
            return false;
        }
        match &self.include {
            Some(inc) => inc.iter().any(|s| covers(s)),
            None => true,
        }
    }

    fn explicitly_selects(&self, name: &str) -> bool {
        self.include
            .as_ref()
            .is_some_and(|inc| inc.iter().any(|s| s == name))
    }
}

fn flatten_select(v: &Value, prefix: &str, out: &mut Vec<(String, bool)>) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match child {
                Value::Object(_) => flatten_select(child, &path, out),
                Value::Bool(b) => out.push((path, *b)),
                Value::String(s) => out.push((path, s != "false")),
                _ => {}
            }
        }
    }
}

/// How a document expression writes timestamps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dates {
    /// PostgreSQL's JSON form (ISO 8601 in the session's UTC zone, cheaper than `to_char`), put
    /// in Payload's millisecond form by `normalize_dates` once read.
    Json,
    /// Payload's form already (`2026-11-24T10:15:11.665Z`), for a document that SQL uses
    /// itself (a create's audit diff and event body), where `normalize_dates` never runs.
    Payload,
}

fn ts_expr(col: &str, dates: Dates) -> String {
    match dates {
        Dates::Json => col.to_string(),
        // Truncated to the millisecond, as `util::payload_timestamp` does.
        Dates::Payload => format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"),
    }
}

/// The SQL expression producing a field's wire value.
fn field_expr(field: &Field, alias: &str, dates: Dates) -> String {
    let col = format!("{alias}.{}", field.column);
    match field.kind {
        Kind::Date => ts_expr(&col, dates),
        Kind::Point => format!(
            "CASE WHEN {col} IS NULL THEN NULL ELSE json_build_array(ST_X({col}::geometry), ST_Y({col}::geometry)) END"
        ),
        Kind::Vector => format!("({col})::text::json"),
        Kind::List { sub, .. } => format!(
            "COALESCE((SELECT json_agg(json_build_object('{sub}', x) ORDER BY o) FROM unnest({col}) WITH ORDINALITY AS u(x, o)), '[]'::json)"
        ),
        Kind::Child(child) => {
            let c = "c";
            let mut pairs = vec![format!("'id', {c}.id")];
            for (wire, column, kind) in child.columns {
                let e = match kind {
                    ChildKind::Date => ts_expr(&format!("{c}.{column}"), dates),
                    ChildKind::List(_) => format!(
                        "COALESCE((SELECT json_agg(json_build_object('role', r)) FROM unnest({c}.{column}) r), '[]'::json)"
                    ),
                    _ => format!("{c}.{column}"),
                };
                pairs.push(format!("'{wire}', {e}"));
            }
            let mut cond = format!("{c}.{} = {alias}.id", child.owner_column);
            for (k, v) in child.fixed {
                cond.push_str(&format!(" AND {c}.{k} = '{v}'"));
            }
            if child.store_null {
                cond.push_str(&format!(" AND {c}.store_id IS NULL"));
            }
            if let Some(extra) = child.condition {
                cond.push_str(&format!(" AND {}", extra.replace("{c}", c)));
            }
            format!(
                "COALESCE((SELECT json_agg(json_build_object({}) ORDER BY {c}.{}) FROM {} {c} WHERE {cond}), '[]'::json)",
                pairs.join(", "),
                child.order_column,
                child.table
            )
        }
        _ => col,
    }
}

/// The prefix of the keys that say whether a secret is set ([`has_name`]).
pub const SECRET_SET_PREFIX: &str = "has";

/// `webhookSecret` → `hasWebhookSecret`.
pub fn has_name(field: &str) -> String {
    let mut chars = field.chars();
    match chars.next() {
        Some(first) => format!(
            "{SECRET_SET_PREFIX}{}{}",
            first.to_ascii_uppercase(),
            chars.as_str()
        ),
        None => SECRET_SET_PREFIX.into(),
    }
}

/// Where one key of a document comes from.
enum Part {
    Field(&'static Field),
    /// `hasX`: whether a secret is set (secrets themselves are never returned).
    SecretSet(&'static Field),
    Timestamp(&'static str),
}

/// The keys of a document the projection and caller allow, in wire order (after `id`). The
/// SQL projection and the projection of an already-read row both come from this one list.
fn parts(decl: &'static CollectionDecl, proj: &Projection, public_only: bool) -> Vec<(String, Part)> {
    let mut out = Vec::new();
    for field in decl.fields {
        if matches!(field.kind, Kind::Secret) && !public_only {
            // The admin sees whether one is set.
            let name = has_name(field.name);
            if proj.wants(&name) {
                out.push((name, Part::SecretSet(field)));
            }
            continue;
        }
        if !field.readable() || (public_only && field.visibility == Visibility::NotPublic) {
            continue;
        }
        if !proj.wants(field.name) {
            continue;
        }
        // Embeddings are large: only when asked for by name.
        if matches!(field.kind, Kind::Vector) && !proj.explicitly_selects(field.name) {
            continue;
        }
        out.push((field.name.to_string(), Part::Field(field)));
    }
    for (wire, col) in [("updatedAt", "updated_at"), ("createdAt", "created_at")] {
        if proj.wants(wire) {
            out.push((wire.to_string(), Part::Timestamp(col)));
        }
    }
    out
}

/// `json_build_object(...)::text` for the fields of `decl` that the projection and caller allow.
fn doc_expr(decl: &'static CollectionDecl, alias: &str, proj: &Projection, public_only: bool) -> String {
    doc_expr_dated(decl, alias, proj, public_only, Dates::Json)
}

fn doc_expr_dated(
    decl: &'static CollectionDecl,
    alias: &str,
    proj: &Projection,
    public_only: bool,
    dates: Dates,
) -> String {
    let mut pairs = vec![format!("'id', {alias}.id")];
    for (name, part) in parts(decl, proj, public_only) {
        let expr = match part {
            Part::Field(field) => field_expr(field, alias, dates),
            Part::SecretSet(field) => format!("{alias}.{} IS NOT NULL", field.column),
            Part::Timestamp(col) => ts_expr(&format!("{alias}.{col}"), dates),
        };
        pairs.push(format!("'{name}', {expr}"));
    }
    // json_build_object takes at most 100 arguments: split into chunks merged as jsonb would
    // lose key order, so collections are declared with fewer than 50 fields.
    debug_assert!(
        pairs.len() <= 50,
        "{} has too many fields for one json_build_object",
        decl.slug
    );
    format!("json_build_object({})::text", pairs.join(", "))
}

/// The stored form of a row (every field, flat, unpopulated) as a SQL expression over `alias`:
/// what [`flat_by_id`] reads, for a write's `RETURNING`.
pub fn stored_doc_expr(decl: &'static CollectionDecl, alias: &str) -> String {
    doc_expr(decl, alias, &Projection::default(), false)
}

/// [`stored_doc_expr`] with its timestamps in Payload's form already: the document a write's
/// statement hands on to SQL of its own (the audit diff, the event body) as
/// [`parse_stored`] would give it to Rust.
pub fn stored_doc_expr_payload_dates(decl: &'static CollectionDecl, alias: &str) -> String {
    doc_expr_dated(decl, alias, &Projection::default(), false, Dates::Payload)
}

/// [`doc_expr`] for a caller's `select`.
pub fn doc_expr_for(
    decl: &'static CollectionDecl,
    alias: &str,
    select: Option<&Value>,
    public_only: bool,
) -> String {
    doc_expr(decl, alias, &Projection::from_select(select), public_only)
}

/// The stored form of a row parsed from [`stored_doc_expr`]'s text.
pub fn parse_stored(decl: &CollectionDecl, text: &str) -> Result<Map<String, Value>, ApiError> {
    parse_doc(decl, text)
}

/// What a read with `select` by this caller would hold of a row whose stored form is known
/// (a write's read-back without a second query), or `None` when the stored form lacks a key
/// the projection wants (an embedding asked for by name).
pub fn project_stored(
    decl: &'static CollectionDecl,
    mut stored: Map<String, Value>,
    select: Option<&Value>,
    public_only: bool,
) -> Option<Map<String, Value>> {
    let proj = Projection::from_select(select);
    let keys = parts(decl, &proj, public_only);
    if keys.iter().any(|(name, _)| !stored.contains_key(name)) {
        return None;
    }
    stored.retain(|k, _| k == "id" || keys.iter().any(|(name, _)| name == k));
    Some(stored)
}

/// Nests dotted keys (`seo.title`) into groups and adds computed fields.
fn shape(decl: &CollectionDecl, flat: Map<String, Value>, env: &ReadEnv<'_>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in flat {
        match k.split_once('.') {
            None => {
                out.insert(k, v);
            }
            Some(_) => {
                let parts: Vec<&str> = k.split('.').collect();
                let mut cur = &mut out;
                for p in &parts[..parts.len() - 1] {
                    let entry = cur
                        .entry(p.to_string())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !entry.is_object() {
                        *entry = Value::Object(Map::new());
                    }
                    cur = entry.as_object_mut().expect("object just ensured");
                }
                cur.insert(parts[parts.len() - 1].to_string(), v);
            }
        }
    }
    if let Some(hook) = decl.hooks.after_read {
        hook(
            &mut out,
            &crate::collections::hooks::ReadCtx { app_url: env.app_url },
        );
    }
    if decl.auth {
        out.insert("collection".into(), Value::String(decl.slug.into()));
    }
    out
}

/// The SQL ORDER BY for a `sort` list; unknown paths are ignored (Payload quirk) and logged.
fn order_by(decl: &CollectionDecl, alias: &str, sort: &[String]) -> String {
    let keys: Vec<String> = if sort.is_empty() {
        decl.default_sort.split(',').map(String::from).collect()
    } else {
        sort.to_vec()
    };
    let mut parts = Vec::new();
    let mut last_desc = true;
    for key in &keys {
        let (desc, name) = match key.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, key.trim_start_matches('+')),
        };
        let column = match name {
            "id" => Some("id"),
            "createdAt" => Some("created_at"),
            "updatedAt" => Some("updated_at"),
            _ => decl
                .field(name)
                .filter(|f| {
                    f.readable()
                        && !f.column.is_empty()
                        && !f.kind.is_jsonb()
                        && !matches!(f.kind, Kind::Point | Kind::Vector)
                })
                .map(|f| f.column),
        };
        match column {
            Some(c) => {
                parts.push(format!("{alias}.{c} {}", if desc { "DESC" } else { "ASC" }));
                last_desc = desc;
            }
            None => tracing::warn!(collection = decl.slug, path = %name, "unknown sort path ignored"),
        }
    }
    // A unique tie-breaker so pages never overlap or skip rows.
    parts.push(format!("{alias}.id {}", if last_desc { "DESC" } else { "ASC" }));
    format!(" ORDER BY {}", parts.join(", "))
}

/// The access condition of `action` for `decl`, or 403.
pub async fn access_cond(
    compiler: &mut Compiler<'_>,
    env: &ReadEnv<'_>,
    decl: &'static CollectionDecl,
    alias: &str,
    action: Action,
) -> Result<Cond, ApiError> {
    match authorize(env.authz, env.principal, action, decl, env.tenant).await? {
        Decision::Deny => Err(ApiError::Forbidden),
        Decision::All => Ok(Cond::True),
        Decision::Filter(f) => Ok(compiler.row_filter(decl, alias, &f)),
    }
}

/// A page of documents with Payload's envelope.
pub async fn find(
    conn: &mut PgConnection,
    env: &ReadEnv<'_>,
    decl: &'static CollectionDecl,
    params: &FindParams,
) -> Result<Value, ApiError> {
    let mut compiler = Compiler::new(env.registry, env.public_only());
    let access = access_cond(&mut compiler, env, decl, "t0", Action::Read).await?;
    let filter = match &params.where_ {
        Some(w) => compiler.compile(decl, "t0", w)?,
        None => Cond::True,
    };
    let proj = Projection::from_select(params.select.as_ref());
    let paginate = params.pagination && params.limit > 0;

    let cond = Cond::And(vec![access, filter]);
    let order = order_by(decl, "t0", &params.sort);
    let doc = doc_expr(decl, "t0", &proj, env.public_only());
    let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
    if paginate {
        // One statement for the page and the total. The total is its own aggregate (any index
        // can answer it, once), the page's ids come from the sort order's index with LIMIT, and
        // documents are built for the page rows only. A page past the end still reports the
        // total: the count's row is joined to an empty page.
        qb.push("CASE WHEN t0.id IS NULL THEN NULL ELSE ")
            .push(&doc)
            .push(" END, c.total FROM (SELECT count(*) AS total FROM ")
            .push(decl.table)
            .push(" t0 WHERE ");
        push_cond(&mut qb, &cond);
        qb.push(") c LEFT JOIN (SELECT t0.id FROM ")
            .push(decl.table)
            .push(" t0 WHERE ");
        push_cond(&mut qb, &cond);
        qb.push(&order);
        qb.push(" LIMIT ")
            .push_bind(params.limit)
            .push(" OFFSET ")
            .push_bind((params.page - 1).saturating_mul(params.limit));
        qb.push(") p ON TRUE LEFT JOIN ")
            .push(decl.table)
            .push(" t0 ON t0.id = p.id");
        qb.push(&order);
    } else {
        qb.push(&doc).push(" FROM ").push(decl.table).push(" t0 WHERE ");
        push_cond(&mut qb, &cond);
        qb.push(&order);
        if params.limit > 0 {
            qb.push(" LIMIT ").push_bind(params.limit);
        }
    }
    let rows = qb.build().fetch_all(&mut *conn).await?;
    let total: i64 = rows
        .first()
        .map(|r| r.try_get::<i64, _>("total").unwrap_or(0))
        .unwrap_or(0);
    let mut docs = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(text) = row.try_get::<Option<String>, _>(0)? {
            docs.push(parse_doc(decl, &text)?);
        }
    }
    let docs = finish_docs(conn, env, decl, docs, params.depth, params.populate.as_ref()).await?;
    Ok(envelope(docs, total, params, paginate))
}

/// `totalDocs` for `/count`.
pub async fn count(
    conn: &mut PgConnection,
    env: &ReadEnv<'_>,
    decl: &'static CollectionDecl,
    where_: Option<&Value>,
) -> Result<i64, ApiError> {
    let mut compiler = Compiler::new(env.registry, env.public_only());
    let access = access_cond(&mut compiler, env, decl, "t0", Action::Read).await?;
    let filter = match where_ {
        Some(w) => compiler.compile(decl, "t0", w)?,
        None => Cond::True,
    };
    count_where(conn, decl, &Cond::And(vec![access, filter])).await
}

async fn count_where(conn: &mut PgConnection, decl: &CollectionDecl, cond: &Cond) -> Result<i64, ApiError> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT count(*) FROM ");
    qb.push(decl.table).push(" t0 WHERE ");
    push_cond(&mut qb, cond);
    Ok(qb.build_query_scalar::<i64>().fetch_one(conn).await?)
}

/// One document by id, or 404 when missing or unreadable.
pub async fn find_by_id(
    conn: &mut PgConnection,
    env: &ReadEnv<'_>,
    decl: &'static CollectionDecl,
    id: &str,
    depth: u32,
    select: Option<&Value>,
    populate: Option<&Value>,
) -> Result<Value, ApiError> {
    let Ok(id) = Uuid::parse_str(id) else {
        return Err(ApiError::NotFound);
    };
    let mut compiler = Compiler::new(env.registry, env.public_only());
    let access = match access_cond(&mut compiler, env, decl, "t0", Action::Read).await {
        Ok(c) => c,
        // Unreadable and missing look the same for a by-id read.
        Err(ApiError::Forbidden) => return Err(ApiError::Forbidden),
        Err(e) => return Err(e),
    };
    let proj = Projection::from_select(select);
    let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
    qb.push(doc_expr(decl, "t0", &proj, env.public_only()))
        .push(" FROM ")
        .push(decl.table)
        .push(" t0 WHERE t0.id = ")
        .push_bind(id)
        .push(" AND ");
    push_cond(&mut qb, &access);
    let text: Option<String> = qb.build_query_scalar().fetch_optional(&mut *conn).await?;
    let Some(text) = text else {
        return Err(ApiError::NotFound);
    };
    let doc = parse_doc(decl, &text)?;
    let mut docs = finish_docs(conn, env, decl, vec![doc], depth, populate).await?;
    Ok(docs.pop().unwrap_or(Value::Null))
}

/// Every stored field of one row, flat (`seo.title` keys) and unpopulated: for merges and diffs.
pub async fn flat_by_id(
    conn: &mut PgConnection,
    decl: &'static CollectionDecl,
    id: Uuid,
) -> Result<Option<Map<String, Value>>, ApiError> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
    qb.push(doc_expr(decl, "t0", &Projection::default(), false))
        .push(" FROM ")
        .push(decl.table)
        .push(" t0 WHERE t0.id = ")
        .push_bind(id);
    let text: Option<String> = qb.build_query_scalar().fetch_optional(conn).await?;
    text.map(|t| parse_doc(decl, &t)).transpose()
}

fn parse_doc(decl: &CollectionDecl, text: &str) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut m)) => {
            normalize_dates(decl, &mut m);
            Ok(m)
        }
        _ => Err(ApiError::Internal(anyhow::anyhow!(
            "row projection did not produce an object"
        ))),
    }
}

/// `2026-11-24T10:15:11.665123+00:00` → `2026-11-24T10:15:11.665Z` for every date of the document.
fn normalize_dates(decl: &CollectionDecl, doc: &mut Map<String, Value>) {
    let fix = |v: &mut Value| {
        if let Some(t) = v.as_str().and_then(crate::util::payload_timestamp) {
            *v = Value::String(t);
        }
    };
    for key in ["createdAt", "updatedAt"] {
        if let Some(v) = doc.get_mut(key) {
            fix(v);
        }
    }
    for field in decl.fields {
        match field.kind {
            Kind::Date => {
                if let Some(v) = doc.get_mut(field.name) {
                    fix(v);
                }
            }
            Kind::Child(child) => {
                let dates: Vec<&str> = child
                    .columns
                    .iter()
                    .filter(|(_, _, k)| *k == ChildKind::Date)
                    .map(|(w, _, _)| *w)
                    .collect();
                if let Some(Value::Array(rows)) = doc.get_mut(field.name) {
                    for row in rows.iter_mut().filter_map(Value::as_object_mut) {
                        for d in &dates {
                            if let Some(v) = row.get_mut(*d) {
                                fix(v);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Populates relationships to `depth`, then nests groups and adds computed fields.
pub async fn finish_docs(
    conn: &mut PgConnection,
    env: &ReadEnv<'_>,
    decl: &'static CollectionDecl,
    mut docs: Vec<Map<String, Value>>,
    depth: u32,
    populate: Option<&Value>,
) -> Result<Vec<Value>, ApiError> {
    if depth > 0 && !docs.is_empty() {
        populate_level(conn, env, decl, &mut docs, depth, populate).await?;
    }
    Ok(docs
        .into_iter()
        .map(|d| Value::Object(shape(decl, d, env)))
        .collect())
}

/// Replaces relationship ids by documents, batching one query per target collection.
fn populate_level<'a>(
    conn: &'a mut PgConnection,
    env: &'a ReadEnv<'a>,
    decl: &'static CollectionDecl,
    docs: &'a mut [Map<String, Value>],
    depth: u32,
    populate: Option<&'a Value>,
) -> futures_util::future::BoxFuture<'a, Result<(), ApiError>> {
    Box::pin(async move {
        // target slug → ids
        let mut wanted: BTreeMap<&'static str, HashSet<Uuid>> = BTreeMap::new();
        for doc in docs.iter_mut() {
            for_each_ref(decl, doc, &mut |target, slot| {
                if let Some(id) = slot.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                    wanted.entry(target).or_default().insert(id);
                }
            });
        }
        let mut fetched: HashMap<Uuid, Option<Value>> = HashMap::new();
        for (slug, ids) in wanted {
            let Some(target) = env.registry.get(slug) else {
                continue;
            };
            let ids: Vec<Uuid> = ids.into_iter().collect();
            let mut compiler = Compiler::new(env.registry, env.public_only());
            let access = match access_cond(&mut compiler, env, target, "t0", Action::Read).await {
                Ok(c) => c,
                Err(_) => Cond::False,
            };
            let proj = Projection::from_select(populate.and_then(|p| p.get(slug)));
            let mut qb = QueryBuilder::<Postgres>::new("SELECT t0.id, ");
            qb.push(doc_expr(target, "t0", &proj, env.public_only()))
                .push(", (");
            push_cond(&mut qb, &access);
            qb.push(") AS visible FROM ")
                .push(target.table)
                .push(" t0 WHERE t0.id = ANY(")
                .push_bind(ids)
                .push(")");
            let rows = qb.build().fetch_all(&mut *conn).await?;
            let mut visible_docs = Vec::new();
            let mut visible_ids = Vec::new();
            for row in rows {
                let id: Uuid = row.try_get(0)?;
                let visible: Option<bool> = row.try_get(2)?;
                if visible == Some(true) {
                    let text: String = row.try_get(1)?;
                    visible_docs.push(parse_doc(target, &text)?);
                    visible_ids.push(id);
                } else {
                    // Readable ids stay ids (Payload quirk): no document, no null.
                    fetched.insert(id, None);
                }
            }
            let shaped = finish_docs(conn, env, target, visible_docs, depth - 1, populate).await?;
            for (id, doc) in visible_ids.into_iter().zip(shaped) {
                fetched.insert(id, Some(doc));
            }
        }
        for doc in docs.iter_mut() {
            for_each_ref(decl, doc, &mut |_, slot| {
                let Some(id) = slot.as_str().and_then(|s| Uuid::parse_str(s).ok()) else {
                    return;
                };
                match fetched.get(&id) {
                    Some(Some(populated)) => *slot = populated.clone(),
                    Some(None) => {}
                    // The referenced document no longer exists.
                    None => *slot = Value::Null,
                }
            });
        }
        Ok(())
    })
}

/// Calls `f(target collection, slot)` for every reference of a document: relationship and
/// upload fields, and upload sub-fields inside array rows and blocks (which have no foreign key).
fn for_each_ref(
    decl: &CollectionDecl,
    doc: &mut Map<String, Value>,
    f: &mut dyn FnMut(&'static str, &mut Value),
) {
    for field in decl.fields {
        let Some(value) = doc.get_mut(field.name) else {
            continue;
        };
        match field.kind {
            Kind::Relation(target) | Kind::Upload(target) => f(target, value),
            Kind::Rows(subs) => visit_rows(subs, value, f),
            Kind::Blocks(blocks) => {
                for block in value.as_array_mut().into_iter().flatten() {
                    let Some(obj) = block.as_object_mut() else {
                        continue;
                    };
                    let block_type = obj
                        .get("blockType")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    if let Some(b) = blocks.iter().find(|b| b.slug == block_type) {
                        visit_subs(b.fields, obj, f);
                    }
                }
            }
            _ => {}
        }
    }
}

fn visit_rows(subs: &[SubField], rows: &mut Value, f: &mut dyn FnMut(&'static str, &mut Value)) {
    for row in rows.as_array_mut().into_iter().flatten() {
        if let Some(obj) = row.as_object_mut() {
            visit_subs(subs, obj, f);
        }
    }
}

fn visit_subs(subs: &[SubField], obj: &mut Map<String, Value>, f: &mut dyn FnMut(&'static str, &mut Value)) {
    for sub in subs {
        let Some(v) = obj.get_mut(sub.name) else { continue };
        match sub.kind {
            SubKind::Upload(target) => f(target, v),
            SubKind::Rows(inner) => visit_rows(inner, v, f),
            _ => {}
        }
    }
}

fn envelope(docs: Vec<Value>, total: i64, params: &FindParams, paginate: bool) -> Value {
    let mut m = Map::new();
    if !paginate {
        let n = docs.len() as i64;
        m.insert("docs".into(), Value::Array(docs));
        m.insert("hasNextPage".into(), false.into());
        m.insert("hasPrevPage".into(), false.into());
        m.insert("limit".into(), params.limit.into());
        m.insert("nextPage".into(), Value::Null);
        m.insert("page".into(), 1.into());
        m.insert("pagingCounter".into(), 1.into());
        m.insert("prevPage".into(), Value::Null);
        m.insert("totalDocs".into(), n.into());
        m.insert("totalPages".into(), 1.into());
        return Value::Object(m);
    }
    let (limit, page) = (params.limit, params.page);
    let total_pages = if total == 0 {
        1
    } else {
        (total + limit - 1) / limit
    };
    let has_prev = page > 1 && total > 0;
    let has_next = page < total_pages;
    m.insert("docs".into(), Value::Array(docs));
    m.insert("hasNextPage".into(), has_next.into());
    m.insert("hasPrevPage".into(), has_prev.into());
    m.insert("limit".into(), limit.into());
    m.insert(
        "nextPage".into(),
        if has_next { (page + 1).into() } else { Value::Null },
    );
    m.insert("page".into(), page.into());
    // Zero matches always give pagingCounter 1 (Payload's Postgres adapter).
    let paging_counter = if total == 0 { 1 } else { (page - 1) * limit + 1 };
    m.insert("pagingCounter".into(), paging_counter.into());
    m.insert(
        "prevPage".into(),
        if has_prev { (page - 1).into() } else { Value::Null },
    );
    m.insert("totalDocs".into(), total.into());
    m.insert("totalPages".into(), total_pages.into());
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collections::engine::qs;

    fn p(q: &str) -> FindParams {
        FindParams::from_tree(&qs::parse(q)).unwrap()
    }

    #[test]
    fn pagination_arithmetic_matches_payload() {
        let past_end = envelope(vec![], 400, &p("limit=10&page=999"), true);
        assert_eq!(
            past_end,
            serde_json::json!({"docs":[],"hasNextPage":false,"hasPrevPage":true,"limit":10,"nextPage":null,
                "page":999,"pagingCounter":9981,"prevPage":998,"totalDocs":400,"totalPages":40})
        );
        let empty = envelope(vec![], 0, &p("page=3"), true);
        assert_eq!(empty["totalPages"], 1);
        assert_eq!(empty["hasPrevPage"], false);
        assert_eq!(empty["page"], 3);
        let first = envelope(vec![], 400, &p("limit=2"), true);
        assert_eq!(
            (first["nextPage"].clone(), first["totalPages"].clone()),
            (2.into(), 200.into())
        );
    }

    #[test]
    fn select_include_and_exclude() {
        let inc = Projection::from_select(Some(
            &serde_json::json!({"title": "true", "seo": {"title": "true"}}),
        ));
        assert!(inc.wants("title") && inc.wants("seo.title"));
        assert!(!inc.wants("slug") && !inc.wants("createdAt") && !inc.wants("seo.description"));
        let exc = Projection::from_select(Some(&serde_json::json!({"layout": "false"})));
        assert!(!exc.wants("layout") && exc.wants("title") && exc.wants("createdAt"));
    }
}
