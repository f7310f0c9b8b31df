//! Row-level security proven without the handlers: as the server's database role, with tenant A
//! set, raw SQL sees and changes no row of tenant B, and sees nothing without a tenant.

mod common;

use common::{FASHIONISTA as A, RIYADH_EATS as B};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

const TENANT_TABLES: &[&str] = &[
    "stores",
    "portals",
    "domains",
    "pages",
    "posts",
    "product_content",
    "integration_endpoints",
    "api_keys",
    "webhook_logs",
    "sync_jobs",
    "media",
    "audit_logs",
    "user_tenant_memberships",
];

async fn as_app(conn: &mut PgConnection, tenant: &str, all: bool) {
    sqlx::query(
        "SELECT set_config('role', 'cityos_app', true), set_config('cityos.tenant_id', $1, true),
                set_config('cityos.user_id', '', true), set_config('cityos.all_tenants', $2, true)",
    )
    .bind(tenant)
    .bind(if all { "on" } else { "off" })
    .execute(&mut *conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_database_keeps_tenants_apart_whatever_the_query() {
    let url = common::fresh_database().await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    // Rows of B in every tenant table (the demo seed has some; add the rest as the owner).
    sqlx::raw_sql(&format!(
        "INSERT INTO integration_endpoints (tenant_id, name, system_type, base_url) VALUES ('{B}', 'ERP', 'erpnext', 'https://erp.b.test');
         INSERT INTO api_keys (tenant_id, name, prefix, key_hash, owner_ref, scopes) VALUES ('{B}', 'k', 'dck_000000000001', repeat('a', 64), 'x', '{{read:*}}');
         INSERT INTO webhook_logs (tenant_id, request_id, system_type, direction) VALUES ('{B}', 'req-b', 'medusa', 'inbound');
         INSERT INTO sync_jobs (tenant_id, job_type, idempotency_key) VALUES ('{B}', 'reconcile', 'k-b');
         INSERT INTO media (tenant_id, alt, filename, mime_type, filesize, storage_key) VALUES ('{B}', 'b', 'b.png', 'image/png', 1, 'b/b.png');
         INSERT INTO audit_logs (tenant_id, actor_type, action, collection) VALUES ('{B}', 'system', 'event', 'x');
         INSERT INTO users (id, email, external_auth_provider) VALUES ('01a20000-0000-7000-8000-00000000000b', 'b@b.test', 'local');
         INSERT INTO user_tenant_memberships (user_id, tenant_id, roles, position) VALUES ('01a20000-0000-7000-8000-00000000000b', '{B}', '{{viewer}}', 0);"
    ))
    .execute(&pool)
    .await
    .unwrap();

    let mut conn = pool.acquire().await.unwrap();
    for table in TENANT_TABLES {
        let owner_sees: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE tenant_id = '{B}'"))
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert!(owner_sees > 0, "fixture: {table} has rows of B");

        let mut tx = conn.begin().await.unwrap();
        as_app(&mut tx, A, false).await;
        // A query that "forgets" its tenant filter.
        let leaked: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE tenant_id IS DISTINCT FROM '{A}'"
        ))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        let public = if *table == "media" { 0 } else { leaked };
        assert_eq!(public, 0, "{table}: rows of other tenants visible under tenant A");
        let touched = sqlx::query(&format!(
            "UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = '{B}'"
        ))
        .execute(&mut *tx)
        .await;
        match touched {
            Ok(r) => assert_eq!(r.rows_affected(), 0, "{table}: an UPDATE reached tenant B"),
            // audit_logs: cityos_app has no UPDATE at all.
            Err(e) => assert_eq!(*table, "audit_logs", "{table}: {e}"),
        }
        tx.rollback().await.unwrap();

        let mut tx = conn.begin().await.unwrap();
        as_app(&mut tx, "", false).await;
        let seen: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE tenant_id IS NOT NULL"
        ))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(seen, 0, "{table}: tenant rows visible without a tenant");
        tx.rollback().await.unwrap();

        let mut tx = conn.begin().await.unwrap();
        as_app(&mut tx, "", true).await;
        let all: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE tenant_id = '{B}'"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(all, owner_sees, "{table}: all_tenants sees everything");
        tx.rollback().await.unwrap();
    }

    // Writing another tenant's row is refused by the policy itself.
    let mut tx = conn.begin().await.unwrap();
    as_app(&mut tx, A, false).await;
    let err = sqlx::query(&format!(
        "INSERT INTO pages (tenant_id, title, slug) VALUES ('{B}', 'x', 'x')"
    ))
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("42501")
    );
    tx.rollback().await.unwrap();

    // tenants and users: only A (and nobody's private rows).
    let mut tx = conn.begin().await.unwrap();
    as_app(&mut tx, A, false).await;
    let tenants: Vec<String> = sqlx::query_scalar("SELECT id::text FROM tenants")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(tenants, vec![A.to_string()]);
    let users_of_b: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'b@b.test'")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(users_of_b, 0);
    tx.rollback().await.unwrap();

    // Settings are transaction-local: the pooled connection is back to the owner afterwards.
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_ne!(role, "cityos_app");
    let setting: Option<String> =
        sqlx::query_scalar("SELECT nullif(current_setting('cityos.tenant_id', true), '')")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(setting, None);
}

#[tokio::test]
async fn requests_run_as_the_unprivileged_role() {
    // The server's own queries run as cityos_app: a page of another tenant cannot be read even
    // when the handler's filter would allow everything (super admin reads use all_tenants).
    let app = common::TestApp::spawn().await;
    let role: (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'cityos_app'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(role, (false, false));
    let owned: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = 'cityos_app'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(owned, 0, "cityos_app owns nothing");
    let editor = app.member("ed@fashionista.sa", A, &["content_editor"]).await;
    let (status, body) = common::json(app.get_as("/api/pages?depth=0&limit=0", &editor).await).await;
    assert_eq!(status, 200);
    assert!(body["docs"].as_array().unwrap().iter().all(|d| d["tenant"] == A));
}
