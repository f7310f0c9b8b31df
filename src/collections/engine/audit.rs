//! The audit row every change writes, in the same transaction as the change: if it cannot be
//! written, the change rolls back with it.

use serde_json::{json, Map, Value};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::collections::decl::{CollectionDecl, Field, Kind, Visibility};
use crate::collections::engine::read::SECRET_SET_PREFIX;
use crate::http::extract::CallContext;

/// One audit row.
pub struct AuditEntry<'a> {
    pub call: &'a CallContext,
    pub action: &'a str,
    pub collection: &'a str,
    pub doc_id: Option<String>,
    pub tenant: Option<Uuid>,
    pub diff: Value,
}

impl<'a> AuditEntry<'a> {
    /// A create/update/delete with the diff of the fields that changed.
    pub fn change(
        call: &'a CallContext,
        action: &'a str,
        decl: &'a CollectionDecl,
        doc_id: &str,
        before: Option<&Map<String, Value>>,
        after: Option<&Map<String, Value>>,
        tenant: Option<Uuid>,
    ) -> AuditEntry<'a> {
        AuditEntry {
            call,
            action,
            collection: decl.slug,
            doc_id: Some(doc_id.to_string()),
            tenant,
            diff: diff(decl, before, after),
        }
    }
}

/// `{"path": {"before": …, "after": …}}` for changed fields; secrets show as `[redacted]`.
pub fn diff(
    decl: &CollectionDecl,
    before: Option<&Map<String, Value>>,
    after: Option<&Map<String, Value>>,
) -> Value {
    let empty = Map::new();
    let (b, a) = (before.unwrap_or(&empty), after.unwrap_or(&empty));
    let mut out = Map::new();
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.dedup();
    let mut seen = std::collections::HashSet::new();
    for k in keys {
        if !seen.insert(k) || k == "updatedAt" || k == "createdAt" {
            continue;
        }
        let (x, y) = (b.get(k).unwrap_or(&Value::Null), a.get(k).unwrap_or(&Value::Null));
        if x == y {
            continue;
        }
        let secret = k.starts_with(SECRET_SET_PREFIX) || decl.field(k).is_some_and(is_secret);
        let entry = if secret {
            json!({"before": "[redacted]", "after": "[redacted]"})
        } else {
            json!({"before": x, "after": y})
        };
        out.insert(k.clone(), entry);
    }
    Value::Object(out)
}

/// Fields whose values an audit row never shows.
fn is_secret(f: &Field) -> bool {
    matches!(f.kind, Kind::Secret | Kind::Password) || f.visibility == Visibility::WriteOnly
}

/// The audit row's `INSERT` statement, for callers that send it with other work in one
/// statement (as a data-modifying `WITH` item).
pub fn push_insert<'q>(qb: &mut QueryBuilder<'q, Postgres>, e: &AuditEntry<'_>) {
    push_row(qb, e, |qb| {
        qb.push_bind(sqlx::types::Json(e.diff.clone()));
    });
}

/// The audit row of a create whose stored document is the SQL expression `doc` (jsonb, with
/// timestamps in Payload's form) over `from` (the statement's `WITH` item holding the inserted
/// row): the diff [`diff`] would compute from it, computed where the row already is, so the
/// create's row and its audit row travel as one statement. No row in `from`, no audit row.
pub fn push_insert_created<'q>(
    qb: &mut QueryBuilder<'q, Postgres>,
    e: &AuditEntry<'_>,
    decl: &CollectionDecl,
    doc: &str,
    from: &str,
) {
    let secret: Vec<&'static str> = decl
        .fields
        .iter()
        .filter(|f| is_secret(f))
        .map(|f| f.name)
        .collect();
    push_row(qb, e, |qb| {
        // `before` is absent for every key: only the keys with a value differ.
        qb.push(format!(
            "(SELECT COALESCE(jsonb_object_agg(k.key, CASE WHEN k.key LIKE '{SECRET_SET_PREFIX}%' OR k.key = ANY("
        ))
        .push_bind(secret)
        .push(format!(
            ") THEN '{{\"before\": \"[redacted]\", \"after\": \"[redacted]\"}}'::jsonb \
             ELSE jsonb_build_object('before', NULL, 'after', k.value) END), '{{}}'::jsonb) \
             FROM jsonb_each({doc}) k WHERE k.value <> 'null'::jsonb AND k.key NOT IN ('createdAt', 'updatedAt'))"
        ));
    });
    qb.push(" FROM ").push(from);
}

/// `INSERT INTO audit_logs (…) SELECT …` with the diff's value pushed by `diff`.
fn push_row<'q>(
    qb: &mut QueryBuilder<'q, Postgres>,
    e: &AuditEntry<'_>,
    diff: impl FnOnce(&mut QueryBuilder<'q, Postgres>),
) {
    let principal = &e.call.principal;
    let actor_type = match principal {
        Principal::Anonymous => "system",
        Principal::ApiKey(_) => "api_key",
        Principal::User(_) => "user",
    };
    qb.push(
        "INSERT INTO audit_logs (id, actor_type, actor_user_id, actor_roles, action, collection, doc_id, tenant_id, \
         store_id, request_id, context_source, ip, user_agent, actor_api_key_id, diff_summary) SELECT ",
    );
    let mut values = qb.separated(", ");
    // Time-ordered ids: each row lands at the right edge of the primary key's index, where a
    // random UUID would touch a random leaf page of an ever-growing table.
    values
        .push_bind(Uuid::now_v7())
        .push_bind(actor_type)
        .push_bind(principal.user_id())
        .push_bind(principal.roles())
        .push_bind(e.action.to_string())
        .push_bind(e.collection.to_string())
        .push_bind(e.doc_id.clone())
        .push_bind(e.tenant)
        .push_bind(e.call.tenant.store_id)
        .push_bind(e.call.request_id.clone())
        .push_bind(e.call.tenant.source)
        .push_bind(e.call.ip.clone())
        .push_unseparated("::inet")
        .push_bind(e.call.user_agent.clone())
        .push_bind(principal.api_key().map(|k| k.id));
    qb.push(", ");
    diff(qb);
}
