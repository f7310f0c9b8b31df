//! Writing documents: create, update and delete (single and bulk) inside one transaction each,
//! with validation, hooks, child tables, constraint mapping and the audit row.

use serde_json::{Map, Value};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::collections::access::{authorize, may_write_in, Action, Decision, RowFilter};
use crate::collections::decl::{ChildKind, CollectionDecl, Default, Field, Kind};
use crate::collections::engine::audit::{self, AuditEntry};
use crate::collections::engine::params::FindParams;
use crate::collections::engine::query::{push_cond, Compiler, Cond};
use crate::collections::engine::read::{self, ReadEnv};
use crate::collections::engine::validate::{self, WriteVal, INVALID_SELECTION, UNIQUE};
use crate::collections::hooks::{BeforeChange, ChangeCtx, ChangeEvent};
use crate::crypto::FieldCipher;
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::CallContext;

/// What a write needs besides the connection.
pub struct WriteEnv<'a> {
    pub read: ReadEnv<'a>,
    pub call: &'a CallContext,
    pub cipher: &'a FieldCipher,
    pub api_key_salt: &'a str,
}

/// Values the server sets on a write (an upload's file metadata): they pass the wire's
/// read-only filter, then the same validation, hooks, audit and read-back as the body.
#[derive(Debug, Default)]
pub struct ServerValues {
    /// The new document's id (the upload names its object after it), else a fresh one.
    pub id: Option<Uuid>,
    pub fields: Map<String, Value>,
}

/// Creates a document; returns it as read back (honouring depth/select).
pub async fn create(
    conn: &mut PgConnection,
    env: &WriteEnv<'_>,
    decl: &'static CollectionDecl,
    body: Map<String, Value>,
    params: &FindParams,
) -> Result<Value, ApiError> {
    create_with(conn, env, decl, body, ServerValues::default(), params).await
}

/// [`create`] with server-set values.
pub async fn create_with(
    conn: &mut PgConnection,
    env: &WriteEnv<'_>,
    decl: &'static CollectionDecl,
    body: Map<String, Value>,
    server: ServerValues,
    params: &FindParams,
) -> Result<Value, ApiError> {
    plan_create(env, decl, body, server)
        .await?
        .write(conn, env, params)
        .await
}

/// A create checked without the database: ready to write, or refused by validation.
pub enum Planned {
    Ready(CreatePlan),
    Invalid(InvalidCreate),
}

impl Planned {
    /// Writes a ready create in `conn`'s transaction, or completes an invalid one's error (its
    /// references are looked up there).
    pub async fn write(
        self,
        conn: &mut PgConnection,
        env: &WriteEnv<'_>,
        params: &FindParams,
    ) -> Result<Value, ApiError> {
        match self {
            Planned::Ready(plan) => plan.execute(conn, env, params).await,
            Planned::Invalid(invalid) => Err(invalid.into_error(conn, env).await),
        }
    }
}

/// A create that passed access, validation and the before-hooks: what its transaction writes.
/// Executing it again writes the same row (same id, same values), so a create that shared a
/// transaction with a failing one can be written again on its own (`db::group_commit`).
pub struct CreatePlan {
    decl: &'static CollectionDecl,
    id: Uuid,
    values: Vec<(&'static Field, WriteVal)>,
    reveal: Map<String, Value>,
    tenant_of_row: Option<Uuid>,
}

/// A create refused by validation before its references were looked up.
pub struct InvalidCreate {
    decl: &'static CollectionDecl,
    values: Vec<(&'static Field, WriteVal)>,
    errors: Vec<FieldError>,
}

impl InvalidCreate {
    /// The validation error listing every failing field at once, the references included.
    pub async fn into_error(mut self, conn: &mut PgConnection, env: &WriteEnv<'_>) -> ApiError {
        match check_relations(conn, env, &self.values, &mut self.errors).await {
            Ok(()) => ApiError::validation(self.decl.slug, None, self.errors),
            Err(e) => e,
        }
    }
}

/// Access, defaults, the before-hooks and validation of a create: everything but the database.
pub async fn plan_create(
    env: &WriteEnv<'_>,
    decl: &'static CollectionDecl,
    body: Map<String, Value>,
    server: ServerValues,
) -> Result<Planned, ApiError> {
    let decision = authorize(
        env.read.authz,
        env.read.principal,
        Action::Create,
        decl,
        env.read.tenant,
    )
    .await?;
    if decision.is_denied() {
        return Err(ApiError::Forbidden);
    }
    let mut data = validate::incoming(decl, &body);
    apply_defaults(decl, env, &mut data, true).await?;
    data.extend(server.fields);
    let mut reveal = Map::new();
    let mut hooks = HookRun {
        action: Action::Create,
        original: None,
        reveal: &mut reveal,
        api_key_salt: env.api_key_salt,
    };
    let hook_error = hooks.run(decl.hooks.before_validate, &mut data);
    let (mut values, mut errors) = validate::check(decl, &data, &data);
    errors.extend(hook_error);
    check_tenant(decl, env, &values, Action::Create, &mut errors).await?;
    if !errors.is_empty() {
        return Ok(Planned::Invalid(InvalidCreate { decl, values, errors }));
    }
    if decl.hooks.before_change.is_some() {
        // The valid document, as it will be written; what the hook sets is checked again.
        let hook_error = hooks.run(decl.hooks.before_change, &mut data);
        let (checked, mut errors) = validate::check(decl, &data, &data);
        errors.extend(hook_error);
        if !errors.is_empty() {
            return Err(ApiError::validation(decl.slug, None, errors));
        }
        values = checked;
    }
    let id = server.id.unwrap_or_else(Uuid::now_v7);
    let tenant_of_row = tenant_value(decl, &values, Some(id));
    Ok(Planned::Ready(CreatePlan {
        decl,
        id,
        values,
        reveal,
        tenant_of_row,
    }))
}

impl CreatePlan {
    /// Whether the row, its audit row and its events are one statement: no child rows (those
    /// are written after the row, so their audit and events follow them).
    pub fn is_one_statement(&self) -> bool {
        !self
            .values
            .iter()
            .any(|(f, v)| matches!((f.kind, v), (Kind::Child(_), WriteVal::Rows(_))))
    }

    /// Writes the create in `conn`'s transaction; returns the document as read back.
    pub async fn execute(
        &self,
        conn: &mut PgConnection,
        env: &WriteEnv<'_>,
        params: &FindParams,
    ) -> Result<Value, ApiError> {
        let CreatePlan {
            decl,
            id,
            values,
            reveal,
            tenant_of_row,
        } = self;
        let (decl, id, tenant_of_row) = (*decl, *id, *tenant_of_row);
        let one_statement = self.is_one_statement();
        // The row, guarded by its references being visible, read back as stored.
        let mut qb = QueryBuilder::<Postgres>::new("WITH ins AS (INSERT INTO ");
        qb.push(decl.table).push(" AS t0 (id");
        let columns: Vec<&(&'static Field, WriteVal)> =
            values.iter().filter(|(f, _)| !f.column.is_empty()).collect();
        for (f, _) in &columns {
            qb.push(", ").push(f.column);
        }
        qb.push(") SELECT ").push_bind(id);
        for (f, v) in &columns {
            qb.push(", ");
            push_value(&mut qb, f, v, env.cipher)?;
        }
        qb.push(" WHERE ");
        push_relation_guard(&mut qb, env, values);
        if one_statement {
            // `d`: the new row's document, parsed once for the audit diff and the events.
            qb.push(" RETURNING ")
                .push(read::stored_doc_expr_payload_dates(decl, "t0"))
                .push(" AS doc), d AS (SELECT doc, doc::jsonb AS j FROM ins), audit AS (");
            let entry = AuditEntry::change(
                env.call,
                "create",
                decl,
                &id.to_string(),
                None,
                None,
                tenant_of_row,
            );
            audit::push_insert_created(&mut qb, &entry, decl, "d.j", "d");
            qb.push(") SELECT d.doc");
            if let Some(tenant) = tenant_of_row {
                qb.push(", ");
                crate::integrations::outbound::push_on_create(&mut qb, decl.slug, id, tenant, "d.j");
            }
            qb.push(" FROM d");
        } else {
            qb.push(" RETURNING ")
                .push(read::stored_doc_expr(decl, "t0"))
                .push(" AS doc) SELECT doc FROM ins");
        }
        let stored: Option<String> = qb
            .build_query_scalar()
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| map_db_error(decl, None, e))?;
        let Some(stored) = stored else {
            return Err(invalid_references(conn, env, decl, None, values).await);
        };
        let event = |after| ChangeEvent {
            action: Action::Create,
            collection: decl.slug,
            id,
            tenant: tenant_of_row,
            before: None,
            after: Some(after),
        };
        let after = if one_statement {
            let after = read::parse_stored(decl, &stored)?;
            if let Some(hook) = decl.hooks.after_change {
                hook(conn, &event(&after)).await?;
            }
            after
        } else {
            write_children(conn, id, tenant_of_row, values)
                .await
                .map_err(|e| map_db_error(decl, None, e))?;
            let after = read_flat(conn, decl, id).await?;
            record_change(conn, env, decl, event(&after)).await?;
            after
        };
        let mut doc = read_back(conn, env, decl, id, after, params).await?;
        if let Value::Object(d) = &mut doc {
            d.extend(reveal.clone());
        }
        Ok(doc)
    }
}

/// The data hooks of one write (`before_validate`, then `before_change`), with what they share.
struct HookRun<'a> {
    action: Action,
    original: Option<&'a Map<String, Value>>,
    reveal: &'a mut Map<String, Value>,
    api_key_salt: &'a str,
}

impl HookRun<'_> {
    /// Runs `hook` (if the declaration names one) on the document; its refusal is a field error.
    fn run(&mut self, hook: Option<BeforeChange>, data: &mut Map<String, Value>) -> Option<FieldError> {
        let hook = hook?;
        hook(&mut ChangeCtx {
            action: self.action,
            original: self.original,
            data,
            reveal: self.reveal,
            api_key_salt: self.api_key_salt,
        })
        .err()
    }

    /// [`run`](Self::run) on an update's merged document; the fields the hook set join the patch.
    fn run_on_patch(
        &mut self,
        hook: Option<BeforeChange>,
        merged: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
    ) -> Option<FieldError> {
        hook?;
        let snapshot = merged.clone();
        let error = self.run(hook, merged);
        for (k, v) in merged.iter() {
            if snapshot.get(k) != Some(v) {
                patch.insert(k.clone(), v.clone());
            }
        }
        error
    }
}

/// The write's hook, its audit row and its outbound events, in the write's transaction. The
/// audit row and the events travel as one statement.
async fn record_change(
    conn: &mut PgConnection,
    env: &WriteEnv<'_>,
    decl: &'static CollectionDecl,
    event: ChangeEvent<'_>,
) -> Result<(), ApiError> {
    let (hook, verb) = match event.action {
        Action::Create => (decl.hooks.after_change, "create"),
        Action::Delete => (decl.hooks.after_delete, "delete"),
        _ => (decl.hooks.after_change, "update"),
    };
    if let Some(hook) = hook {
        hook(conn, &event).await?;
    }
    let entry = AuditEntry::change(
        env.call,
        verb,
        decl,
        &event.id.to_string(),
        event.before,
        event.after,
        event.tenant,
    );
    let mut qb = QueryBuilder::<Postgres>::new("WITH audit AS (");
    audit::push_insert(&mut qb, &entry);
    qb.push(") SELECT ");
    if !crate::integrations::outbound::push_on_change(&mut qb, &event) {
        qb.push("NULL");
    }
    qb.build().execute(&mut *conn).await?;
    Ok(())
}

/// A guarded write touched no row: a reference is missing or not visible. Names the fields.
async fn invalid_references(
    conn: &mut PgConnection,
    env: &WriteEnv<'_>,
    decl: &'static CollectionDecl,
    id: Option<Uuid>,
    values: &[(&'static Field, WriteVal)],
) -> ApiError {
    let mut errors = Vec::new();
    if let Err(e) = check_relations(conn, env, values, &mut errors).await {
        return e;
    }
    if errors.is_empty() {
        // Visible again by the time we looked (a concurrent change): name every reference.
        for (f, _) in relation_refs(env, values).into_iter().flat_map(|(_, refs)| refs) {
            if !errors.iter().any(|e: &FieldError| e.path == f.name) {
                let label = if f.name == "tenant" { None } else { Some(f.label) };
                errors.push(FieldError::new(f.name, label, INVALID_SELECTION));
            }
        }
    }
    ApiError::validation(decl.slug, id.map(|i| i.to_string()), errors)
}

/// The update or delete target, checked against the caller's access.
async fn load_target(
    conn: &mut PgConnection,
    env: &WriteEnv<'_>,
    decl: &'static CollectionDecl,
    id: Uuid,
    action: Action,
) -> Result<Map<String, Value>, ApiError> {
    let decision = authorize(env.read.authz, env.read.principal, action, decl, env.read.tenant).await?;
    let filter = match &decision {
        Decision::Deny => return Err(ApiError::Forbidden),
        Decision::All => Cond::True,
        Decision::Filter(f) => Compiler::new(env.read.registry, false).row_filter(decl, "t0", f),
    };
    // Locked, checked and read in one statement.
    let mut qb = QueryBuilder::<Postgres>::new("SELECT (");
    push_cond(&mut qb, &filter);
    qb.push("), ")
        .push(read::stored_doc_expr(decl, "t0"))
        .push(" FROM ")
        .push(decl.table)
        .push(" t0 WHERE t0.id = ")
        .push_bind(id)
        .push(" FOR UPDATE");
    let row: Option<(Option<bool>, String)> = qb.build_query_as().fetch_optional(&mut *conn).await?;
    match (row, &decision) {
        (Some((Some(true), stored)), _) => read::parse_stored(decl, &stored),
        // Outside a where-shaped access result, or missing while one applies: 403 (Payload).
        (_, Decision::Filter(_)) => Err(ApiError::Forbidden),
        _ => Err(ApiError::NotFound),
    }
}

/// Updates one document by id.
pub async fn update_by_id(
    conn: &mut PgConnection,
    env: &WriteEnv<'_>,
    decl: &'static CollectionDecl,
    id: &str,
    body: Map<String, Value>,
    params: &FindParams,
) -> Result<Value, ApiError> {
    update_with(conn, env, decl, id, body, ServerValues::default(), params).await
}

/// [`update_by_id`] with server-set values (`server.id` is ignored).
pub async fn update_with(
    conn: &mut PgConnection,
    env: &WriteEnv<'_>,
    decl: &'static CollectionDecl,
    id: &str,
    body: Map<String, Value>,
    server: ServerValues,
    params: &FindParams,
) -> Result<Value, ApiError> {
    let Ok(id) = Uuid::parse_str(id) else {
        return Err(ApiError::NotFound);
    };
    let before = load_target(conn, env, decl, id, Action::Update).await?;
    let mut patch = validate::incoming(decl, &body);
    apply_defaults(decl, env, &mut patch, false).await?;
    patch.extend(server.fields);
    let mut merged = before.clone();
    for (k, v) in &patch {
        merged.insert(k.clone(), v.clone());
    }
    let mut reveal = Map::new();
    let mut hooks = HookRun {
        action: Action::Update,
        original: Some(&before),
        reveal: &mut reveal,
        api_key_salt: env.api_key_salt,
    };
    let hook_error = hooks.run_on_patch(decl.hooks.before_validate, &mut merged, &mut patch);
    let (mut values, mut errors) = validate::check(decl, &patch, &merged);
    errors.extend(hook_error);
    check_tenant(decl, env, &values, Action::Update, &mut errors).await?;
    if !errors.is_empty() {
        check_relations(conn, env, &values, &mut errors).await?;
        return Err(ApiError::validation(decl.slug, Some(id.to_string()), errors));
    }
    if decl.hooks.before_change.is_some() {
        let hook_error = hooks.run_on_patch(decl.hooks.before_change, &mut merged, &mut patch);
        let (checked, mut errors) = validate::check(decl, &patch, &merged);
        errors.extend(hook_error);
        if !errors.is_empty() {
            return Err(ApiError::validation(decl.slug, Some(id.to_string()), errors));
        }
        values = checked;
    }
    let columns: Vec<&(&'static Field, WriteVal)> =
        values.iter().filter(|(f, _)| !f.column.is_empty()).collect();
    let mut stored = None;
    if !columns.is_empty() {
        let mut qb = QueryBuilder::<Postgres>::new("UPDATE ");
        qb.push(decl.table).push(" AS t0 SET ");
        for (i, (f, v)) in columns.iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            qb.push(f.column).push(" = ");
            push_value(&mut qb, f, v, env.cipher)?;
        }
        qb.push(" WHERE t0.id = ").push_bind(id).push(" AND ");
        push_relation_guard(&mut qb, env, &values);
        qb.push(" RETURNING ").push(read::stored_doc_expr(decl, "t0"));
        let row: Option<String> = qb
            .build_query_scalar()
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| map_db_error(decl, Some(id), e))?;
        // The target is locked (load_target): no row means a reference failed its guard.
        let Some(row) = row else {
            return Err(invalid_references(conn, env, decl, Some(id), &values).await);
        };
        stored = Some(row);
    } else if !relation_refs(env, &values).is_empty() {
        let mut errors = Vec::new();
        check_relations(conn, env, &values, &mut errors).await?;
        if !errors.is_empty() {
            return Err(ApiError::validation(decl.slug, Some(id.to_string()), errors));
        }
    }
    let tenant = tenant_value(decl, &values, Some(id)).or_else(|| uuid_of(before.get("tenant")));
    let wrote_children = write_children(conn, id, tenant, &values)
        .await
        .map_err(|e| map_db_error(decl, Some(id), e))?;
    let after = match stored {
        Some(text) if !wrote_children => read::parse_stored(decl, &text)?,
        _ => read_flat(conn, decl, id).await?,
    };
    record_change(
        conn,
        env,
        decl,
        ChangeEvent {
            action: Action::Update,
            collection: decl.slug,
            id,
            tenant,
            before: Some(&before),
            after: Some(&after),
        },
    )
    .await?;
    let mut doc = read_back(conn, env, decl, id, after, params).await?;
    if let Value::Object(d) = &mut doc {
        d.extend(reveal);
    }
    Ok(doc)
}

/// Deletes one document by id; returns it as it was.
pub async fn delete_by_id(
    conn: &mut PgConnection,
    env: &WriteEnv<'_>,
    decl: &'static CollectionDecl,
    id: &str,
    params: &FindParams,
) -> Result<Value, ApiError> {
    let Ok(id) = Uuid::parse_str(id) else {
        return Err(ApiError::NotFound);
    };
    let before = load_target(conn, env, decl, id, Action::Delete).await?;
    let doc = read_back(conn, env, decl, id, before.clone(), params).await?;
    sqlx::query(&format!("DELETE FROM {} WHERE id = $1", decl.table))
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(|e| map_db_error(decl, Some(id), e))?;
    let tenant = if decl.slug == "tenants" {
        Some(id)
    } else {
        uuid_of(before.get("tenant"))
    };
    record_change(
        conn,
        env,
        decl,
        ChangeEvent {
            action: Action::Delete,
            collection: decl.slug,
            id,
            tenant,
            before: Some(&before),
            after: None,
        },
    )
    .await?;
    Ok(doc)
}

/// Ids a bulk operation applies to: `where` ∧ the caller's access for `action`.
pub async fn bulk_targets(
    conn: &mut PgConnection,
    env: &ReadEnv<'_>,
    decl: &'static CollectionDecl,
    action: Action,
    where_: &Value,
    limit: i64,
) -> Result<Vec<Uuid>, ApiError> {
    let mut compiler = Compiler::new(env.registry, env.public_only());
    let access = read::access_cond(&mut compiler, env, decl, "t0", action).await?;
    let filter = compiler.compile(decl, "t0", where_)?;
    let mut qb = QueryBuilder::<Postgres>::new("SELECT t0.id FROM ");
    qb.push(decl.table).push(" t0 WHERE ");
    push_cond(&mut qb, &Cond::And(vec![access, filter]));
    qb.push(" ORDER BY t0.created_at DESC, t0.id DESC");
    if limit > 0 {
        qb.push(" LIMIT ").push_bind(limit);
    }
    Ok(qb.build_query_scalar().fetch_all(conn).await?)
}

fn uuid_of(v: Option<&Value>) -> Option<Uuid> {
    v.and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok())
}

/// Defaults on create; caller-stamped fields on every write.
async fn apply_defaults(
    decl: &CollectionDecl,
    env: &WriteEnv<'_>,
    data: &mut Map<String, Value>,
    creating: bool,
) -> Result<(), ApiError> {
    for field in decl.fields {
        let Some(default) = field.default else { continue };
        if creating && data.contains_key(field.name) && field.writable() {
            continue;
        }
        let value = match default {
            Default::CallerAlways => env.read.principal.user_id().map(|u| Value::String(u.to_string())),
            _ if !creating => None,
            Default::Str(s) => Some(Value::String(s.into())),
            Default::Int(i) => Some(Value::from(i)),
            Default::Bool(b) => Some(Value::Bool(b)),
            Default::ContextTenant => default_tenant(decl, env)
                .await?
                .map(|t| Value::String(t.to_string())),
            Default::ContextStore => env.read.tenant.store_id.map(|s| Value::String(s.to_string())),
            Default::Caller => env.read.principal.user_id().map(|u| Value::String(u.to_string())),
        };
        if let Some(v) = value {
            data.insert(field.name.to_string(), v);
        }
    }
    Ok(())
}

/// The tenant a new row belongs to when the body names none: the resolved tenant, else the
/// caller's only tenant where it may create.
pub async fn default_tenant(decl: &CollectionDecl, env: &WriteEnv<'_>) -> Result<Option<Uuid>, ApiError> {
    if let Some(t) = env.read.tenant.tenant_id.filter(|t| !t.is_nil()) {
        return Ok(Some(t));
    }
    let candidates = env.read.principal.tenants_with(&[]);
    if candidates.is_empty() {
        return Ok(None);
    }
    let asked: Vec<Option<Uuid>> = candidates.iter().copied().map(Some).collect();
    let allowed = may_write_in(
        env.read.authz,
        env.read.principal,
        env.read.tenant,
        decl,
        Action::Create,
        &asked,
    )
    .await?;
    let mut ok = candidates
        .iter()
        .zip(allowed)
        .filter(|(_, a)| *a)
        .map(|(t, _)| *t);
    Ok(match (ok.next(), ok.next()) {
        (Some(t), None) => Some(t),
        _ => None,
    })
}

/// A tenant the caller may not write in is an invalid selection (Payload's multi-tenant rule).
async fn check_tenant(
    decl: &CollectionDecl,
    env: &WriteEnv<'_>,
    values: &[(&'static Field, WriteVal)],
    action: Action,
    errors: &mut Vec<FieldError>,
) -> Result<(), ApiError> {
    if !matches!(decl.tenant_column(), Some("tenant_id")) {
        return Ok(());
    }
    let asked: Option<Option<Uuid>> = values
        .iter()
        .find(|(f, _)| f.name == "tenant")
        .and_then(|(_, v)| match v {
            WriteVal::Uuid(t) => Some(Some(*t)),
            // A platform-wide row (NULL tenant): the policy decides on `public`.
            WriteVal::Null => Some(None),
            _ => None,
        });
    let Some(asked) = asked else {
        return Ok(());
    };
    let allowed = may_write_in(
        env.read.authz,
        env.read.principal,
        env.read.tenant,
        decl,
        action,
        &[asked],
    )
    .await?;
    if allowed.first() != Some(&true) {
        errors.push(FieldError::new("tenant", None, INVALID_SELECTION));
    }
    Ok(())
}

/// The single references of a write, grouped by target collection.
/// The references of a write to check for visibility, by target collection. The caller's own
/// user row (`createdBy`/`updatedBy`, set by the server) is left out: callers always see
/// themselves, and its foreign key still refuses a user deleted meanwhile.
fn relation_refs(
    env: &WriteEnv<'_>,
    values: &[(&'static Field, WriteVal)],
) -> Vec<(&'static str, Vec<(&'static Field, Uuid)>)> {
    let caller = env.read.principal.user_id();
    let mut by_target: Vec<(&'static str, Vec<(&'static Field, Uuid)>)> = Vec::new();
    for (f, v) in values {
        let (Some(target), WriteVal::Uuid(id)) = (f.kind.relation_target(), v) else {
            continue;
        };
        if target == "users" && Some(*id) == caller {
            continue;
        }
        match by_target.iter_mut().find(|(t, _)| *t == target) {
            Some((_, list)) => list.push((f, *id)),
            None => by_target.push((target, vec![(f, *id)])),
        }
    }
    by_target
}

/// A condition that holds when every reference of the write points at a document the caller
/// may reference ([`tenant_visibility`]): the write's statement carries it, so the common case
/// costs no query of its own; [`check_relations`] names the failing fields when it fails.
fn push_relation_guard(
    qb: &mut QueryBuilder<'_, Postgres>,
    env: &WriteEnv<'_>,
    values: &[(&'static Field, WriteVal)],
) {
    qb.push("TRUE");
    for (slug, refs) in relation_refs(env, values) {
        let Some(target) = env.read.registry.get(slug) else {
            continue;
        };
        let mut ids: Vec<Uuid> = refs.iter().map(|(_, id)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut compiler = Compiler::new(env.read.registry, false);
        let access = tenant_visibility(&mut compiler, env, target, "r0");
        if let [id] = ids[..] {
            // The common case, one reference per target: a plain EXISTS (no aggregate to run).
            qb.push(" AND EXISTS (SELECT FROM ")
                .push(target.table)
                .push(" r0 WHERE r0.id = ")
                .push_bind(id)
                .push(" AND ");
            push_cond(qb, &access);
            qb.push(")");
            continue;
        }
        let count = ids.len() as i64;
        qb.push(" AND (SELECT count(*) FROM ")
            .push(target.table)
            .push(" r0 WHERE r0.id = ANY(")
            .push_bind(ids)
            .push(") AND ");
        push_cond(qb, &access);
        qb.push(") = ").push_bind(count);
    }
}

/// Referenced documents must exist and be readable by the caller: one query per target.
async fn check_relations(
    conn: &mut PgConnection,
    env: &WriteEnv<'_>,
    values: &[(&'static Field, WriteVal)],
    errors: &mut Vec<FieldError>,
) -> Result<(), ApiError> {
    for (slug, refs) in relation_refs(env, values) {
        let Some(target) = env.read.registry.get(slug) else {
            continue;
        };
        let mut compiler = Compiler::new(env.read.registry, false);
        let access = tenant_visibility(&mut compiler, env, target, "t0");
        let ids: Vec<Uuid> = refs.iter().map(|(_, id)| *id).collect();
        let mut qb = QueryBuilder::<Postgres>::new("SELECT t0.id FROM ");
        qb.push(target.table)
            .push(" t0 WHERE t0.id = ANY(")
            .push_bind(ids)
            .push(") AND ");
        push_cond(&mut qb, &access);
        let found: Vec<Uuid> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
        for (f, id) in refs {
            if !found.contains(&id) {
                // The tenant field keeps Payload's label-less error.
                let label = if f.name == "tenant" { None } else { Some(f.label) };
                if !errors.iter().any(|e| e.path == f.name) {
                    errors.push(FieldError::new(f.name, label, INVALID_SELECTION));
                }
            }
        }
    }
    Ok(())
}

/// Which rows of `target` a reference may point at: the caller's tenants (and public rows),
/// whatever its read rules on the target collection (drafts, scopes) say. This is the row-level
/// security view the spec validates references under.
fn tenant_visibility(
    compiler: &mut Compiler<'_>,
    env: &WriteEnv<'_>,
    target: &'static CollectionDecl,
    alias: &str,
) -> Cond {
    let principal = env.read.principal;
    let platform_key = principal.api_key().is_some_and(|k| k.tenant_id.is_none());
    if principal.is_super_admin() || platform_key || target.tenant_column().is_none() {
        return Cond::True;
    }
    let mut tenants = principal.tenants_with(&[]);
    tenants.extend(env.read.tenant.tenant_id.filter(|t| !t.is_nil()));
    let filter = RowFilter::Or(vec![RowFilter::TenantIn(tenants), RowFilter::TenantNull]);
    compiler.row_filter(target, alias, &filter)
}

/// Binds one value with the SQL its column type needs.
fn push_value(
    qb: &mut QueryBuilder<'_, Postgres>,
    field: &Field,
    v: &WriteVal,
    cipher: &FieldCipher,
) -> Result<(), ApiError> {
    match v {
        WriteVal::Null => match field.kind {
            Kind::Json | Kind::RichText => {
                qb.push("NULL::jsonb");
            }
            _ => {
                qb.push("NULL");
            }
        },
        WriteVal::Text(s) => {
            qb.push_bind(s.clone());
        }
        WriteVal::Int(i) => {
            qb.push_bind(*i);
        }
        WriteVal::Num(n) => {
            qb.push_bind(*n);
        }
        WriteVal::Bool(b) => {
            qb.push_bind(*b);
        }
        WriteVal::Ts(t) => {
            qb.push_bind(*t);
        }
        WriteVal::Uuid(u) => {
            qb.push_bind(*u);
        }
        WriteVal::Json(j) => {
            qb.push_bind(sqlx::types::Json(j.clone()));
        }
        WriteVal::Point(lng, lat) => {
            qb.push("ST_SetSRID(ST_MakePoint(")
                .push_bind(*lng)
                .push(", ")
                .push_bind(*lat)
                .push("), 4326)::geography");
        }
        WriteVal::Vector(text) => {
            qb.push_bind(text.clone()).push("::vector");
        }
        WriteVal::List(items) => {
            qb.push_bind(items.clone());
        }
        WriteVal::Secret(plain) => {
            qb.push_bind(cipher.encrypt(plain));
        }
        WriteVal::Password(plain) => {
            qb.push_bind(crate::auth::password::hash(plain)?);
        }
        WriteVal::Rows(_) => {
            qb.push("NULL");
        }
    }
    Ok(())
}

fn tenant_value(
    decl: &CollectionDecl,
    values: &[(&'static Field, WriteVal)],
    id: Option<Uuid>,
) -> Option<Uuid> {
    if decl.slug == "tenants" {
        return id;
    }
    values.iter().find_map(|(f, v)| match (f.name, v) {
        ("tenant", WriteVal::Uuid(t)) => Some(*t),
        _ => None,
    })
}

/// Replaces the child-table rows of the array fields present in the write; whether there
/// were any (the stored form read with the row is then out of date).
async fn write_children(
    conn: &mut PgConnection,
    owner: Uuid,
    tenant: Option<Uuid>,
    values: &[(&'static Field, WriteVal)],
) -> Result<bool, sqlx::Error> {
    let mut wrote = false;
    for (f, v) in values {
        let (Kind::Child(child), WriteVal::Rows(rows)) = (f.kind, v) else {
            continue;
        };
        wrote = true;
        let mut del = QueryBuilder::<Postgres>::new("DELETE FROM ");
        del.push(child.table)
            .push(" WHERE ")
            .push(child.owner_column)
            .push(" = ")
            .push_bind(owner);
        for (c, val) in child.fixed {
            del.push(format!(" AND {c} = ")).push_bind(val.to_string());
        }
        if child.store_null {
            del.push(" AND store_id IS NULL");
        }
        del.build().execute(&mut *conn).await?;
        for (pos, row) in rows.iter().enumerate() {
            let mut qb = QueryBuilder::<Postgres>::new("INSERT INTO ");
            qb.push(child.table)
                .push(" (id, ")
                .push(child.owner_column)
                .push(", position");
            // Domains carry the tenant too (the composite FK needs it).
            let needs_tenant = child.table == "domains" && child.owner_column == "store_id";
            if needs_tenant {
                qb.push(", tenant_id");
            }
            for (c, _) in child.fixed {
                qb.push(", ").push(*c);
            }
            for (wire, column, _) in child.columns {
                if row.contains_key(*wire) {
                    qb.push(", ").push(*column);
                }
            }
            let row_id = row
                .get("id")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
                .unwrap_or_else(Uuid::now_v7);
            qb.push(") VALUES (")
                .push_bind(row_id)
                .push(", ")
                .push_bind(owner)
                .push(", ")
                .push_bind(pos as i32);
            if needs_tenant {
                qb.push(", ").push_bind(tenant);
            }
            for (_, val) in child.fixed {
                qb.push(", ").push_bind(val.to_string());
            }
            for (wire, _, kind) in child.columns {
                let Some(val) = row.get(*wire) else { continue };
                qb.push(", ");
                match kind {
                    ChildKind::Text | ChildKind::Select(_) => {
                        qb.push_bind(val.as_str().map(str::to_string));
                    }
                    ChildKind::Bool => {
                        qb.push_bind(val.as_bool().unwrap_or(false));
                    }
                    ChildKind::Date => {
                        qb.push_bind(
                            val.as_str()
                                .and_then(crate::collections::engine::query::parse_date),
                        );
                    }
                    ChildKind::Relation(_) => {
                        qb.push_bind(val.as_str().and_then(|s| Uuid::parse_str(s).ok()));
                    }
                    ChildKind::List(_) => {
                        let items: Vec<String> = val
                            .as_array()
                            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                            .unwrap_or_default();
                        qb.push_bind(items);
                    }
                }
            }
            qb.push(")");
            qb.build().execute(&mut *conn).await?;
        }
    }
    Ok(wrote)
}

/// The stored document with every column, at depth 0 (for hooks, merges and audit diffs).
async fn read_flat(
    conn: &mut PgConnection,
    decl: &'static CollectionDecl,
    id: Uuid,
) -> Result<Map<String, Value>, ApiError> {
    read::flat_by_id(conn, decl, id).await?.ok_or(ApiError::NotFound)
}

/// The response to a write: the stored document as the caller's read with `select`/`depth`
/// would show it. Built from the row the write already holds; only population queries. The
/// writer may have moved the document outside its read scope (e.g. unpublished it): the
/// response still shows what was written.
async fn read_back(
    conn: &mut PgConnection,
    env: &WriteEnv<'_>,
    decl: &'static CollectionDecl,
    id: Uuid,
    stored: Map<String, Value>,
    params: &FindParams,
) -> Result<Value, ApiError> {
    let public_only = env.read.public_only();
    let doc = match read::project_stored(decl, stored, params.select.as_ref(), public_only) {
        Some(doc) => doc,
        // A key the stored form leaves out (an embedding asked for by name): read it.
        None => {
            let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
            qb.push(read::doc_expr_for(
                decl,
                "t0",
                params.select.as_ref(),
                public_only,
            ))
            .push(" FROM ")
            .push(decl.table)
            .push(" t0 WHERE t0.id = ")
            .push_bind(id);
            let text: String = qb.build_query_scalar().fetch_one(&mut *conn).await?;
            read::parse_stored(decl, &text)?
        }
    };
    let mut docs = read::finish_docs(
        conn,
        &env.read,
        decl,
        vec![doc],
        params.depth,
        params.populate.as_ref(),
    )
    .await?;
    Ok(docs.pop().unwrap_or(Value::Null))
}

/// Database constraint errors as field errors (the one place the mapping lives).
pub fn map_db_error(decl: &CollectionDecl, id: Option<Uuid>, e: sqlx::Error) -> ApiError {
    let sqlx::Error::Database(db) = &e else {
        return ApiError::Internal(e.into());
    };
    let constraint = db.constraint().unwrap_or("").to_string();
    let field_for_column = |column: &str| {
        decl.fields
            .iter()
            .find(|f| !f.column.is_empty() && f.column == column)
    };
    // A row-level security refusal: the row is outside the request's tenant.
    if db.code().as_deref() == Some("42501") {
        return ApiError::Forbidden;
    }
    let error = match db.code().as_deref() {
        Some("23505") => {
            let path = decl
                .unique
                .iter()
                .find(|(c, _)| *c == constraint)
                .map(|(_, p)| *p)
                .unwrap_or("id");
            let label = decl.field(path).map(|f| f.label);
            FieldError::new(path, label, UNIQUE)
        }
        Some("23503") => {
            // Restrict on delete: the document is still referenced.
            if let Some(table) = db.table().filter(|t| *t != decl.table) {
                FieldError::new(
                    "id",
                    None,
                    format!(
                        "This document is still referenced by {} and cannot be deleted.",
                        table.replace('_', "-")
                    ),
                )
            } else {
                let column = constraint
                    .strip_prefix(&format!("{}_", decl.table))
                    .and_then(|c| c.strip_suffix("_fkey"))
                    .unwrap_or("");
                match decl
                    .fields
                    .iter()
                    .find(|f| !f.column.is_empty() && column.starts_with(f.column))
                {
                    Some(f) => FieldError::new(f.name, Some(f.label), INVALID_SELECTION),
                    None => FieldError::new("id", None, INVALID_SELECTION),
                }
            }
        }
        Some("23502") => {
            // NOT NULL: a required value nobody supplied (e.g. no slug could be derived).
            let column = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|p| p.column())
                .unwrap_or("");
            match field_for_column(column) {
                Some(f) => FieldError::new(f.name, Some(f.label), validate::REQUIRED),
                None => FieldError::new("id", None, "This document is not valid."),
            }
        }
        Some("23514") => {
            let column = constraint
                .strip_prefix(&format!("{}_", decl.table))
                .unwrap_or(&constraint);
            let field = decl
                .fields
                .iter()
                .filter(|f| !f.column.is_empty() && column.starts_with(f.column))
                .max_by_key(|f| f.column.len());
            match field {
                Some(f) => FieldError::new(f.name, Some(f.label), "This value is not valid for this field."),
                None => FieldError::new("id", None, "This document is not valid."),
            }
        }
        _ => return ApiError::from(e),
    };
    ApiError::validation(decl.slug, id.map(|i| i.to_string()), vec![error])
}
