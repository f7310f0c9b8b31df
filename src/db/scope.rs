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

/// Begins a transaction as `cityos_app` with the scope's settings, in the same round trip as
/// the BEGIN. The values are ours (UUIDs and on/off), never client text, so inlining them in the
/// statement is safe; binding would cost a second round trip on every request.
///
/// The BEGIN runs to completion on a task of its own. sqlx's `begin` is not cancellation-safe:
/// a request dropped (client gone, timeout) after BEGIN was sent but before its answer would put
/// the connection back in the pool *inside* a transaction, with our role settings, where the
/// next borrower's statements would run and never commit. A finished `Transaction` that nobody
/// takes is dropped instead, and its drop queues the ROLLBACK.
pub async fn begin(pool: &PgPool, scope: &DbScope) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    begin_planned(pool, scope, false).await
}

/// [`begin`] for a write committed with `collections::routes::commit`:
/// - every statement of the transaction uses its prepared statement's generic plan. Writes
///   address rows by id, so a plan made for one set of values fits all; re-planning them per
///   call (PostgreSQL's default keeps choosing custom plans for the row-level-security-guarded
///   INSERT … RETURNING) cost more than executing them. Reads keep custom plans: a list's
///   filters can be skewed (one tenant's thousands of rows).
/// - the public-read triggers do not NOTIFY (migration 0015): `commit` announces the change
///   after the commit instead (`PublicCache::announce`).
pub async fn begin_write(
    pool: &PgPool,
    scope: &DbScope,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    begin_planned(pool, scope, true).await
}

async fn begin_planned(
    pool: &PgPool,
    scope: &DbScope,
    write: bool,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let tenant = scope.tenant_id.map(|t| t.to_string()).unwrap_or_default();
    let user = scope.user_id.map(|u| u.to_string()).unwrap_or_default();
    let all = if scope.all_tenants { "on" } else { "off" };
    // SET statements are parsed and applied; a SELECT of set_config() calls would also be
    // analysed, planned and run through the executor, on every transaction.
    let write = if write {
        "; SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL cityos.public_announced = on"
    } else {
        ""
    };
    let sql = format!(
        "BEGIN; SET LOCAL ROLE cityos_app; SET LOCAL cityos.tenant_id = '{tenant}'; \
         SET LOCAL cityos.user_id = '{user}'; SET LOCAL cityos.all_tenants = {all}{write}"
    );
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin_with(sql).await })
        .await
        .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?
}
