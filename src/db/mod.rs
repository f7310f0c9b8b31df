//! Database access: the pool, the embedded cluster, migrations and seeding.

pub mod embedded;
pub mod group_commit;
pub mod scope;
pub mod seed;

use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::Config;
use embedded::{Durability, EmbeddedPostgres};

/// The migrations under `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The pool plus, when the server runs its own, the embedded cluster behind it.
pub struct Database {
    pub pool: PgPool,
    pub embedded: Option<EmbeddedPostgres>,
    /// True when the database was created by this start (so demo data may be seeded).
    pub created: bool,
}

impl Database {
    /// Connects to `DATABASE_URL`, or starts the embedded cluster when it is unset.
    pub async fn open(config: &Config) -> anyhow::Result<Database> {
        match &config.database_url {
            Some(url) => {
                let pool = pool_for(url.expose(), config.database_max_connections)
                    .await
                    .context("cannot connect to DATABASE_URL")?;
                Ok(Database {
                    pool,
                    embedded: None,
                    created: false,
                })
            }
            None => {
                let pg = EmbeddedPostgres::start(
                    &config.data_dir,
                    config.pg_bin_dir.as_deref(),
                    Durability::Durable,
                )
                .await
                .context("cannot start the embedded PostgreSQL (or set DATABASE_URL)")?;
                tracing::info!(
                    port = pg.port(),
                    started_here = pg.started_here(),
                    elapsed_ms = pg.elapsed.as_millis() as u64,
                    "embedded postgres ready"
                );
                let created = ensure_database(&pg.url("postgres"), embedded::DATABASE).await?;
                let pool = pool_for(&pg.url(embedded::DATABASE), config.database_max_connections).await?;
                Ok(Database {
                    pool,
                    embedded: Some(pg),
                    created,
                })
            }
        }
    }

    /// Closes the pool, then stops the embedded cluster if this process started it.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(pg) = self.embedded {
            if let Err(e) = pg.stop().await {
                tracing::warn!(error = format!("{e:#}"), "embedded postgres did not stop cleanly");
            }
        }
    }
}

/// A pool that fails fast when the server is down, so `/api/ready` can answer 503 quickly.
pub async fn pool_for(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let opts: PgConnectOptions = url.parse()?;
    let opts = opts
        .application_name("cityos")
        // Timestamps are rendered in UTC by the documents' JSON projection.
        .options([("timezone", "UTC")])
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        // No ping per acquire: a broken connection fails its query and is replaced.
        .test_before_acquire(false)
        .idle_timeout(Duration::from_secs(300))
        .connect_with(opts)
        .await?;
    Ok(pool)
}

/// Creates `database` if it does not exist; true when it was created.
pub async fn ensure_database(admin_url: &str, database: &str) -> anyhow::Result<bool> {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(admin_url)
        .await
        .context("cannot connect to the embedded cluster")?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(database)
        .fetch_one(&admin)
        .await?;
    if !exists {
        // Identifiers cannot be bound; `database` is one of our constants.
        sqlx::query(&format!("CREATE DATABASE \"{database}\""))
            .execute(&admin)
            .await?;
    }
    admin.close().await;
    Ok(!exists)
}

/// Applies pending migrations; a no-op when all are applied.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("migration failed")?;
    Ok(())
}

/// What `/api/ready` reports about the schema.
#[derive(Debug, PartialEq, Eq)]
pub enum SchemaState {
    Current,
    Pending { applied: i64, expected: i64 },
}

/// Compares the applied migrations with the ones embedded in this binary.
pub async fn schema_state(pool: &PgPool) -> Result<SchemaState, sqlx::Error> {
    let expected = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .or_else(|e| match &e {
            // No migrations table yet: nothing applied.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => Ok(None),
            _ => Err(e),
        })?;
    let applied = applied.unwrap_or(0);
    Ok(if applied >= expected {
        SchemaState::Current
    } else {
        SchemaState::Pending { applied, expected }
    })
}
