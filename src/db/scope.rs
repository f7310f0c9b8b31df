//! The per-request database scope: every request's queries run in one transaction as the
//! `cityos_app` role (no BYPASSRLS, owns nothing), with the tenant, the user and the
//! super-admin flag set transaction-locally, so the row-level security policies apply and
//! pooled connections never carry one request's settings into the next.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::auth::principal::Principal;
use crate::collections::access::TenantContext;

/// What the policies see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbScope {
    pub tenant_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub all_tenants: bool,
}

impl DbScope {
    /// The scope of a request: the resolved tenant, else the caller's only tenant; all tenants
    /// for super admins and platform API keys.
    pub fn for_request(principal: &Principal, tenant: &TenantContext) -> DbScope {
        let all_tenants =
            principal.is_super_admin() || principal.api_key().is_some_and(|k| k.tenant_id.is_none());
        let tenant_id = tenant.tenant_id.or_else(|| {
            let mine = principal.tenants_with(&[]);
            (mine.len() == 1).then(|| mine[0])
        });
        DbScope {
            tenant_id,
            user_id: principal.user_id(),
            all_tenants,
        }
    }

    /// System work that must see every tenant (identity lookups, job claiming).
    pub fn system() -> DbScope {
        DbScope {
            tenant_id: None,
            user_id: None,
            all_tenants: true,
        }
    }
}

/// Begins a transaction as `cityos_app` with the scope's settings (one round trip after BEGIN).
pub async fn begin(pool: &PgPool, scope: &DbScope) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT set_config('role', 'cityos_app', true),
                set_config('cityos.tenant_id', $1, true),
                set_config('cityos.user_id', $2, true),
                set_config('cityos.all_tenants', $3, true)",
    )
    .bind(scope.tenant_id.map(|t| t.to_string()).unwrap_or_default())
    .bind(scope.user_id.map(|u| u.to_string()).unwrap_or_default())
    .bind(if scope.all_tenants { "on" } else { "off" })
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}
