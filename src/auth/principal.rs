//! The caller of a request, whatever the credential: the one type every access check takes.

use uuid::Uuid;

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
    pub global_roles: Vec<String>,
    pub memberships: Vec<Membership>,
    /// The local session (`sid`) the token belongs to.
    pub session_id: Option<Uuid>,
    /// `local-jwt`, `keycloak`, `api-key`.
    pub strategy: &'static str,
    /// The presented token and its expiry, echoed by `/me`.
    pub token: Option<(String, i64)>,
}

#[derive(Debug, Clone)]
pub enum Principal {
    Anonymous,
    User(UserPrincipal),
}

impl Principal {
    pub fn user(&self) -> Option<&UserPrincipal> {
        match self {
            Principal::User(u) => Some(u),
            Principal::Anonymous => None,
        }
    }
    pub fn is_super_admin(&self) -> bool {
        self.user()
            .is_some_and(|u| u.global_roles.iter().any(|r| r == "super_admin"))
    }
    pub fn user_id(&self) -> Option<Uuid> {
        self.user().map(|u| u.id)
    }
    /// Tenants where the user holds any of `roles` (all active memberships when `roles` is empty).
    pub fn tenants_with(&self, roles: &[&str]) -> Vec<Uuid> {
        let Some(u) = self.user() else {
            return Vec::new();
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
