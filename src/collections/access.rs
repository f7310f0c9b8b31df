//! The access decision point: one `authorize(principal, action, collection, context)` seam.
//!
//! A decision is either a denial, unconditional access, or a row filter the engine ANDs into
//! its SQL (lists, counts, bulk scopes, by-id reads and population all use the same filter).
//! The rules themselves are the Cerbos policies in `policies/` (see `crate::authz`).

use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::authz::{self, Authorizer, Expr, Plan};
use crate::collections::decl::{CollectionDecl, Scope};
use crate::http::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }

    /// The verb of an API-key scope (`read:pages`, `write:pages`, `delete:pages`).
    pub fn scope_verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create | Action::Update => "write",
            Action::Delete => "delete",
        }
    }
}

/// The request's tenant context (resolved before access is decided).
#[derive(Debug, Clone, Default)]
pub struct TenantContext {
    pub tenant_id: Option<Uuid>,
    pub store_id: Option<Uuid>,
    pub source: &'static str,
}

/// A row filter, rendered to SQL by the query builder.
#[derive(Debug, Clone, PartialEq)]
pub enum RowFilter {
    /// Matches nothing.
    Nothing,
    /// The tenant column is one of these.
    TenantIn(Vec<Uuid>),
    /// The tenant column is NULL.
    TenantNull,
    /// `status = 'published'` and inside its publish window.
    Live,
    /// `editorial_status = 'published'`.
    EditorialPublished,
    /// The row's id is this user.
    SelfUser(Uuid),
    /// The user has an active membership in one of these tenants.
    MemberOf(Vec<Uuid>),
    /// The store column (the row id for `stores`) is one of these.
    StoreIn(Vec<Uuid>),
    Not(Box<RowFilter>),
    And(Vec<RowFilter>),
    Or(Vec<RowFilter>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Deny,
    All,
    Filter(RowFilter),
}

impl Decision {
    pub fn is_denied(&self) -> bool {
        matches!(self, Decision::Deny)
    }
}

/// Decides whether `principal` may do `action` on `decl`'s rows, and on which rows: the
/// policy's plan (PDP or built-in evaluator) turned into a row filter.
pub async fn authorize(
    authz: &Authorizer,
    principal: &Principal,
    action: Action,
    decl: &CollectionDecl,
    ctx: &TenantContext,
) -> Result<Decision, ApiError> {
    // API keys: the scope decides the verb before the policy decides the rows.
    if let Principal::ApiKey(key) = principal {
        if !key.allows(action.scope_verb(), decl.slug) {
            return Ok(Decision::Deny);
        }
    }
    let p = authz::principal(principal, ctx);
    let decision = match authz.plan(&p, decl.slug, action.as_str()).await? {
        Plan::Always => Decision::All,
        Plan::Never => Decision::Deny,
        Plan::Cond(e) => Decision::Filter(row_filter(decl, &e)),
    };
    // A super admin who selected a tenant works inside it when reading tenant data.
    if let (true, Action::Read, Some(t), Some(_)) = (
        principal.is_super_admin(),
        action,
        ctx.tenant_id,
        decl.tenant_column(),
    ) {
        let inside = RowFilter::TenantIn(vec![t]);
        return Ok(match decision {
            Decision::All => Decision::Filter(inside),
            Decision::Filter(f) => Decision::Filter(RowFilter::And(vec![inside, f])),
            Decision::Deny => Decision::Deny,
        });
    }
    Ok(decision)
}

/// Which of these tenants `principal` may put a new or moved `decl` document in (`None` = a
/// platform-wide row without tenant), after the API key's scope allows the verb.
pub async fn may_write_in(
    authz: &Authorizer,
    principal: &Principal,
    ctx: &TenantContext,
    decl: &CollectionDecl,
    action: Action,
    tenants: &[Option<Uuid>],
) -> Result<Vec<bool>, ApiError> {
    if let Principal::ApiKey(key) = principal {
        if !key.allows(action.scope_verb(), decl.slug) {
            return Ok(vec![false; tenants.len()]);
        }
    }
    let targets: Vec<Target<'_>> = tenants
        .iter()
        .map(|&tenant| Target {
            id: "new",
            tenant,
            store: None,
        })
        .collect();
    allowed(authz, principal, ctx, decl.slug, action.as_str(), &targets).await
}

/// A document a decision is asked about, by the attributes the policies use: its tenant
/// (`None` = a platform-wide row) and store.
pub struct Target<'a> {
    pub id: &'a str,
    pub tenant: Option<Uuid>,
    pub store: Option<Uuid>,
}

impl Target<'_> {
    fn attrs(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut attr = serde_json::Map::new();
        match self.tenant {
            Some(t) => attr.insert("tenantId".into(), t.to_string().into()),
            None => attr.insert("public".into(), true.into()),
        };
        if let Some(s) = self.store {
            attr.insert("storeId".into(), s.to_string().into());
        }
        attr
    }
}

/// Whether `principal` may do `action` (any policy action: `create`, `push`, `replay`, …) on
/// each of these `kind` documents. The action's plan (cached for the PDP) settles what the
/// documents' attributes decide — a super admin's `Always`, a tenant admin's
/// `tenantId in [...]` —; what it leaves open goes to one batched check.
pub async fn allowed(
    authz: &Authorizer,
    principal: &Principal,
    ctx: &TenantContext,
    kind: &str,
    action: &str,
    targets: &[Target<'_>],
) -> Result<Vec<bool>, ApiError> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let p = authz::principal(principal, ctx);
    let attrs: Vec<serde_json::Map<String, serde_json::Value>> = targets.iter().map(Target::attrs).collect();
    let plan = authz.plan(&p, kind, action).await?;
    let mut decided: Vec<Option<bool>> = attrs.iter().map(|a| plan.decides(a)).collect();
    let open: Vec<usize> = (0..decided.len()).filter(|&i| decided[i].is_none()).collect();
    if !open.is_empty() {
        let resources: Vec<serde_json::Value> = open
            .iter()
            .map(|&i| serde_json::json!({"kind": kind, "id": targets[i].id, "attr": attrs[i]}))
            .collect();
        let answers = authz.check(&p, &resources, action).await?;
        for (i, allowed) in open.into_iter().zip(answers) {
            decided[i] = Some(allowed);
        }
    }
    Ok(decided.into_iter().map(|d| d == Some(true)).collect())
}

/// A plan's condition over resource attributes as a row filter of `decl`. Attributes map to
/// columns through this fixed table; anything else matches nothing (deny).
pub fn row_filter(decl: &CollectionDecl, e: &Expr) -> RowFilter {
    let uuids = |values: &[serde_json::Value]| -> Vec<Uuid> {
        values
            .iter()
            .filter_map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
            .collect()
    };
    match e {
        Expr::And(items) => RowFilter::And(items.iter().map(|i| row_filter(decl, i)).collect()),
        Expr::Or(items) => RowFilter::Or(items.iter().map(|i| row_filter(decl, i)).collect()),
        Expr::Not(inner) => RowFilter::Not(Box::new(row_filter(decl, inner))),
        Expr::In(attr, values) => match (attr.as_str(), decl.scope) {
            ("tenantId", Scope::Users) => RowFilter::MemberOf(uuids(values)),
            ("tenantId", Scope::Global) => RowFilter::Nothing,
            ("tenantId", _) => RowFilter::TenantIn(uuids(values)),
            ("storeId", _) => RowFilter::StoreIn(uuids(values)),
            ("ownerId", Scope::Users) => {
                RowFilter::Or(uuids(values).into_iter().map(RowFilter::SelfUser).collect())
            }
            ("status", _) if values == &[serde_json::Value::from("published")] => {
                if decl.has_field_column("editorial_status") {
                    RowFilter::EditorialPublished
                } else if decl.has_field_column("publish_at") {
                    RowFilter::Live
                } else {
                    RowFilter::Nothing
                }
            }
            ("public", Scope::TenantOptional) if values.contains(&serde_json::Value::Bool(true)) => {
                RowFilter::TenantNull
            }
            _ => RowFilter::Nothing,
        },
    }
}

/// A row filter as a Payload `where`, when it can be written as one (for `/api/access`).
pub fn filter_as_where(decl: &CollectionDecl, f: &RowFilter) -> Option<serde_json::Value> {
    use serde_json::json;
    let tenant_path = match decl.scope {
        Scope::TenantSelf => "id",
        Scope::Tenant | Scope::TenantOptional => "tenant",
        _ => return None,
    };
    Some(match f {
        RowFilter::TenantIn(ids) => json!({tenant_path: {"in": ids}}),
        RowFilter::TenantNull => json!({tenant_path: {"exists": false}}),
        RowFilter::SelfUser(id) => json!({"id": {"equals": id}}),
        RowFilter::EditorialPublished => json!({"editorialStatus": {"equals": "published"}}),
        RowFilter::And(items) => {
            json!({"and": items.iter().map(|i| filter_as_where(decl, i)).collect::<Option<Vec<_>>>()?})
        }
        RowFilter::Or(items) => {
            json!({"or": items.iter().map(|i| filter_as_where(decl, i)).collect::<Option<Vec<_>>>()?})
        }
        RowFilter::Nothing
        | RowFilter::Live
        | RowFilter::MemberOf(_)
        | RowFilter::StoreIn(_)
        | RowFilter::Not(_) => return None,
    })
}
