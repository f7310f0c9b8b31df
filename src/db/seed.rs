//! Demo and benchmark data. Both loads are idempotent: a second run inserts nothing.

use anyhow::Context;
use sqlx::PgPool;

use crate::auth::password;

const DEMO_SQL: &str = include_str!("../../sql/seed_demo.sql");
const BENCH_SQL: &str = include_str!("../../sql/seed_bench.sql");

/// What a seed run did, for the CLI and the first-start log.
#[derive(Debug, Default)]
pub struct SeedReport {
    /// Set when the super admin was created by this run.
    pub admin_created: Option<String>,
}

/// Loads the seed guide's hierarchy, two tenants with content, and a super admin.
pub async fn demo(pool: &PgPool, admin_email: &str, admin_password: &str) -> anyhow::Result<SeedReport> {
    sqlx::raw_sql(DEMO_SQL)
        .execute(pool)
        .await
        .context("demo seed failed")?;
    let created = create_user(pool, admin_email, admin_password, "super_admin").await?;
    Ok(SeedReport {
        admin_created: created.then(|| admin_email.to_string()),
    })
}

/// Loads 50 tenants with 400 pages each (the SQL creates the hierarchy it hangs under when missing).
pub async fn bench(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::raw_sql(BENCH_SQL)
        .execute(pool)
        .await
        .context("bench seed failed")?;
    // Fresh statistics and visibility map, so the planner and index-only scans see the data.
    for table in ["pages", "tenants", "domains"] {
        sqlx::query(&format!("VACUUM ANALYZE {table}"))
            .execute(pool)
            .await
            .context("vacuum after bench seed failed")?;
    }
    Ok(())
}

/// Creates a local user with one global role; false when the email already exists.
pub async fn create_user(
    pool: &PgPool,
    email: &str,
    plain_password: &str,
    global_role: &str,
) -> anyhow::Result<bool> {
    let hash = password::hash(plain_password)?;
    let inserted: Option<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO users (id, email, name, external_auth_provider, status, global_roles, password_hash)
         VALUES ($1, lower($2), $3, 'local', 'active', $4, $5)
         ON CONFLICT (email) DO NOTHING
         RETURNING id",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(email)
    .bind("Administrator")
    .bind(vec![global_role.to_string()])
    .bind(hash)
    .fetch_optional(pool)
    .await
    .context("cannot create user")?;
    Ok(inserted.is_some())
}
