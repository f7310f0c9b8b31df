//! The access decision point: one `authorize(principal, action, collection, context)` seam.
//!
//! A decision is either a denial, unconditional access, or a row filter the engine ANDs into
//! its SQL (lists, counts, bulk scopes, by-id reads and population all use the same filter).
//! The tenancy issue puts Cerbos and row-level security behind this same seam.

use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::collections::decl::{CollectionDecl, Scope};

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
}

/// Who may do an action, in the declaration's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Anyone, signed in or not.
    Anyone,
    /// super_admin only.
    SuperAdmin,
    /// Nobody through the API (server-written logs).
    Nobody,
    /// Members of the row's tenant holding one of these roles (any role when empty).
    TenantRoles(&'static [&'static str]),
    /// Content: anonymous and non-members read live published rows of the resolved tenant;
    /// members read everything of their tenants.
    PublishedOrMembers,
    /// As `PublishedOrMembers` with `editorial_status = 'published'` (product content).
    EditorialPublishedOrMembers,
    /// Tenant rows: the resolved tenant for anyone, member tenants for members.
    ResolvedOrMembers,
    /// Media: public (NULL tenant) media and the resolved tenant's, plus member tenants.
    PublicOrResolvedOrMembers,
    /// Users: self, plus users sharing a tenant where the caller is tenant_admin.
    SelfOrTenantAdmin,
}

/// The declaration's default rules.
#[derive(Debug, Clone, Copy)]
pub struct AccessRules {
    pub read: Rule,
    pub create: Rule,
    pub update: Rule,
    pub delete: Rule,
}

impl AccessRules {
    fn rule(&self, action: Action) -> Rule {
        match action {
            Action::Read => self.read,
            Action::Create => self.create,
            Action::Update => self.update,
            Action::Delete => self.delete,
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

/// Decides whether `principal` may do `action` on `decl`'s rows, and on which rows.
pub fn authorize(
    principal: &Principal,
    action: Action,
    decl: &CollectionDecl,
    ctx: &TenantContext,
) -> Decision {
    let rule = decl.access.rule(action);
    if rule == Rule::Nobody {
        return Decision::Deny;
    }
    if let Principal::ApiKey(key) = principal {
        return authorize_key(key, action, decl);
    }
    if principal.is_super_admin() {
        return match ctx.tenant_id {
            // A super admin who selected a tenant works inside it, for tenant data.
            Some(t) if decl.tenant_column().is_some() && action == Action::Read => {
                Decision::Filter(RowFilter::TenantIn(vec![t]))
            }
            _ => Decision::All,
        };
    }
    let resolved = ctx.tenant_id;
    // Members' tenants, narrowed to the resolved tenant when one is resolved.
    let narrow = |mut tenants: Vec<Uuid>| {
        if let Some(t) = resolved {
            tenants.retain(|x| *x == t);
        }
        tenants
    };
    let filter = match rule {
        Rule::Anyone => return Decision::All,
        Rule::Nobody | Rule::SuperAdmin => return Decision::Deny,
        Rule::TenantRoles(roles) => {
            let tenants = narrow(principal.tenants_with(roles));
            if tenants.is_empty() {
                return Decision::Deny;
            }
            RowFilter::TenantIn(tenants)
        }
        Rule::PublishedOrMembers | Rule::EditorialPublishedOrMembers => {
            let published = if rule == Rule::PublishedOrMembers {
                RowFilter::Live
            } else {
                RowFilter::EditorialPublished
            };
            let public = match resolved {
                Some(t) => RowFilter::And(vec![RowFilter::TenantIn(vec![t]), published]),
                None => RowFilter::Nothing,
            };
            let members = narrow(principal.tenants_with(&[]));
            if members.is_empty() {
                public
            } else {
                RowFilter::Or(vec![RowFilter::TenantIn(members), public])
            }
        }
        Rule::ResolvedOrMembers => {
            let mut tenants = narrow(principal.tenants_with(&[]));
            tenants.extend(resolved);
            tenants.sort();
            tenants.dedup();
            if tenants.is_empty() {
                RowFilter::Nothing
            } else {
                RowFilter::TenantIn(tenants)
            }
        }
        Rule::PublicOrResolvedOrMembers => {
            let mut tenants = narrow(principal.tenants_with(&[]));
            tenants.extend(resolved);
            tenants.sort();
            tenants.dedup();
            RowFilter::Or(vec![RowFilter::TenantNull, RowFilter::TenantIn(tenants)])
        }
        Rule::SelfOrTenantAdmin => {
            let Some(uid) = principal.user_id() else {
                return Decision::Deny;
            };
            let admin_of = narrow(principal.tenants_with(&["tenant_admin"]));
            if admin_of.is_empty() || action == Action::Delete {
                RowFilter::SelfUser(uid)
            } else {
                RowFilter::Or(vec![RowFilter::SelfUser(uid), RowFilter::MemberOf(admin_of)])
            }
        }
    };
    // Anonymous callers may only read.
    if matches!(principal, Principal::Anonymous) && action != Action::Read {
        return Decision::Deny;
    }
    if decl.scope == Scope::Global && action != Action::Read {
        return Decision::Deny;
    }
    Decision::Filter(filter)
}

/// API keys: the scope decides the action; a tenant key sees only its tenant's rows, a platform
/// key (no tenant) acts on every tenant. Global collections are writable by platform keys only.
fn authorize_key(
    key: &crate::auth::principal::ApiKeyPrincipal,
    action: Action,
    decl: &CollectionDecl,
) -> Decision {
    let verb = match action {
        Action::Read => "read",
        Action::Create | Action::Update => "write",
        Action::Delete => "delete",
    };
    if !key.allows(verb, decl.slug) {
        return Decision::Deny;
    }
    match (key.tenant_id, decl.tenant_column()) {
        (None, _) => Decision::All,
        (Some(t), Some(_)) => Decision::Filter(RowFilter::TenantIn(vec![t])),
        (Some(_), None) if action == Action::Read && decl.scope == Scope::Global => Decision::All,
        (Some(_), None) => Decision::Deny,
    }
}

/// Whether a user holding tenant roles may create rows in `tenant` (the `tenant` field check).
pub fn may_write_in_tenant(
    principal: &Principal,
    decl: &CollectionDecl,
    action: Action,
    tenant: Uuid,
) -> bool {
    if principal.is_super_admin() {
        return true;
    }
    if let Principal::ApiKey(key) = principal {
        return key.tenant_id.is_none_or(|t| t == tenant);
    }
    match decl.access.rule(action) {
        Rule::TenantRoles(roles) => principal.tenants_with(roles).contains(&tenant),
        Rule::Anyone => true,
        _ => false,
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
        RowFilter::Nothing | RowFilter::Live | RowFilter::MemberOf(_) => return None,
    })
}
