//! The migrations produce the spec's schema, and running them again changes nothing.

mod common;

use common::schema_spec::{FOREIGN_KEYS, INDEXES, TABLES};
use sqlx::postgres::PgPoolOptions;

#[tokio::test]
async fn migrate_twice_is_a_no_op_and_the_schema_matches_the_spec() {
    let url = common::empty_database().await;
    let bin = env!("CARGO_BIN_EXE_cityos");
    for round in 0..2 {
        let out = std::process::Command::new(bin)
            .arg("migrate")
            .envs(common::test_env(&url))
            .output()
            .expect("run cityos migrate");
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();

    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        applied.len(),
        cityos::db::MIGRATOR.iter().count(),
        "each migration applied once"
    );
    assert!(applied.iter().all(|(_, ok)| *ok));

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for t in TABLES {
        assert!(tables.iter().any(|x| x == t), "missing table {t}");
    }

    let fks: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, a.attname::text, c.confrelid::regclass::text
         FROM pg_constraint c
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
         WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (table, column, target) in FOREIGN_KEYS {
        assert!(
            fks.iter()
                .any(|(t, c, r)| t == table && c == column && r == target),
            "missing foreign key {table}.{column} → {target}"
        );
    }

    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public'")
            .fetch_all(&pool)
            .await
            .unwrap();
    for i in INDEXES {
        assert!(indexes.iter().any(|x| x == i), "missing index {i}");
    }

    // Every foreign-key column leads some index (list queries and cascades need them).
    let unindexed: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, a.attname::text
         FROM pg_constraint c
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
           AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        unindexed.is_empty(),
        "foreign keys without an index: {unindexed:?}"
    );

    // PostGIS and pgvector columns where the spec puts them.
    let special: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, udt_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND udt_name IN ('geography', 'vector')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (t, c, ty) in [
        ("stores", "location", "geography"),
        ("pages", "embedding", "vector"),
        ("posts", "embedding", "vector"),
        ("product_content", "embedding", "vector"),
    ] {
        assert!(
            special.iter().any(|(a, b, u)| a == t && b == c && u == ty),
            "missing {t}.{c} {ty}"
        );
    }

    // updated_at is maintained by the database.
    let id: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO countries (code, name, created_at, updated_at) VALUES ('QA', 'Qatar', now() - interval '1 day', now() - interval '1 day') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let moved: bool = sqlx::query_scalar(
        "UPDATE countries SET name = 'State of Qatar' WHERE id = $1 RETURNING updated_at > created_at + interval '1 hour'",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(moved, "updated_at trigger did not run");
}

#[tokio::test]
async fn audit_rows_cannot_be_updated_or_deleted() {
    let url = common::fresh_database().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    sqlx::query("INSERT INTO audit_logs (actor_type, action, collection) VALUES ('system', 'event', 'test')")
        .execute(&pool)
        .await
        .unwrap();
    assert!(sqlx::query("UPDATE audit_logs SET action = 'x'")
        .execute(&pool)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM audit_logs")
        .execute(&pool)
        .await
        .is_err());
}
