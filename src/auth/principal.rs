//! The caller of a request, whatever the credential: the one type every access check takes.

use uuid::Uuid;

/// The data model's global roles (`users.globalRoles`).
pub const GLOBAL_ROLES: &[&str] = &["super_admin", "platform_operator", "support_agent"];
/// The data model's membership roles (`users.tenantMemberships[].roles`).
pub const MEMBERSHIP_ROLES: &[&str] = &[
    "tenant_admin",
    "store_manager",
    "content_editor",
    "vendor_owner",
    "vendor_staff",
    "b2b_company_admin",
    "b2b_buyer",
    "b2b_approver",
    "city_partner_admin",
    "viewer",
];

/// A tenant membership of a user (only active ones are loaded).
#[derive(Debug, Clone)]
pub struct Membership {
    pub tenant_id: Uuid,
    pub store_id: Option<Uuid>,
    pub roles: Vec<String>,
}

/// An authenticated user.
#[derive(Debug, Clone)]
pub struct UserPrincipal {
    pub id: Uuid,
    pub email: String,
    /// The profile name (`users.name`), shown by the admin.
    pub name: Option<String>,
    pub global_roles: Vec<String>,
    pub memberships: Vec<Membership>,
    /// The local session (`sid`) the token belongs to.
    pub session_id: Option<Uuid>,
    /// `local-jwt`, `keycloak`, `api-key`.
    pub strategy: &'static str,
    /// The presented token and its expiry, echoed by `/me`.
    pub token: Option<(String, i64)>,
}

/// A caller authenticated by an API key: limited to its scopes and, when set, its tenant.
#[derive(Debug, Clone)]
pub struct ApiKeyPrincipal {
    pub id: Uuid,
    pub prefix: String,
    /// The only tenant the key acts in; `None` for a platform key (created by a super admin).
    pub tenant_id: Option<Uuid>,
    pub scopes: Vec<String>,
    /// The owning user when `ownerType = user`.
    pub owner_user: Option<Uuid>,
}

impl ApiKeyPrincipal {
    /// `read:pages`, `read:*`, … for the collection and action.
    pub fn allows(&self, verb: &str, slug: &str) -> bool {
        self.scopes.iter().any(|s| {
            s.split_once(':')
                .is_some_and(|(v, target)| v == verb && (target == "*" || target == slug))
        })
    }
}

#[derive(Debug, Clone)]
pub enum Principal {
    Anonymous,
    User(UserPrincipal),
    ApiKey(ApiKeyPrincipal),
}

impl Principal {
    pub fn user(&self) -> Option<&UserPrincipal> {
        match self {
            Principal::User(u) => Some(u),
            _ => None,
        }
    }
    pub fn api_key(&self) -> Option<&ApiKeyPrincipal> {
        match self {
            Principal::ApiKey(k) => Some(k),
            _ => None,
        }
    }
    pub fn is_super_admin(&self) -> bool {
        self.user()
            .is_some_and(|u| u.global_roles.iter().any(|r| r == "super_admin"))
    }
    /// The user acting (an API key acts for its owning user, if any).
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Principal::User(u) => Some(u.id),
            Principal::ApiKey(k) => k.owner_user,
            Principal::Anonymous => None,
        }
    }
    /// Tenants where the user holds any of `roles` (all active memberships when `roles` is empty).
    pub fn tenants_with(&self, roles: &[&str]) -> Vec<Uuid> {
        let u = match self {
            Principal::User(u) => u,
            Principal::ApiKey(k) => return k.tenant_id.into_iter().collect(),
            Principal::Anonymous => return Vec::new(),
        };
        let mut out: Vec<Uuid> = u
            .memberships
            .iter()
            .filter(|m| roles.is_empty() || m.roles.iter().any(|r| roles.contains(&r.as_str())))
            .map(|m| m.tenant_id)
            .collect();
        out.sort();
        out.dedup();
        out
    }
    /// Role names for the audit log.
    pub fn roles(&self) -> Vec<String> {
        match self {
            Principal::Anonymous => Vec::new(),
            Principal::ApiKey(k) => k.scopes.clone(),
            Principal::User(u) => {
                let mut r = u.global_roles.clone();
                for m in &u.memberships {
                    r.extend(m.roles.iter().cloned());
                }
                r.sort();
                r.dedup();
                r
            }
        }
    }
}
