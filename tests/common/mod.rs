//! The test harness: every test starts the real application on a random port against a fresh
//! database of its own, cloned from a migrated and seeded template (milliseconds per test).
//!
//! With `DATABASE_URL` unset the harness runs one embedded PostgreSQL cluster for all test
//! processes (under `target/tmp/cityos-pg`, started once, guarded by a file lock), the same
//! way `cityos serve` does; `./run test` stops it afterwards.
#![allow(dead_code)]

pub mod cerbos;
pub mod media;
pub mod oidc;
pub mod oidc_provider;
pub mod schema_spec;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use cityos::db::embedded::{Durability, EmbeddedPostgres};
use cityos::{Application, Config};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

pub const ADMIN_EMAIL: &str = "admin@cityos.local";
pub const ADMIN_PASSWORD: &str = "cityos-admin-test-pw";
pub const FASHIONISTA: &str = "50000000-0000-4000-8000-000000000001";
pub const RIYADH_EATS: &str = "50000000-0000-4000-8000-000000000002";
pub const SAUDI: &str = "10000000-0000-4000-8000-000000000001";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where the shared test cluster lives.
pub fn cluster_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cityos-pg")
}

/// Holds an exclusive `flock` on a file until dropped.
struct FileLock(std::fs::File);

impl FileLock {
    fn acquire(path: &std::path::Path) -> FileLock {
        use std::os::unix::io::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .expect("open lock file");
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock failed");
        FileLock(file)
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::unix::io::AsRawFd;
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// A URL (to the `postgres` database) of the server the tests use.
async fn server_admin_url() -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    let dir = cluster_dir();
    std::fs::create_dir_all(&dir).expect("create cluster dir");
    let pg = EmbeddedPostgres::start(&dir, None, Durability::Throwaway)
        .await
        .expect("start the embedded test cluster");
    // Tell `./run test` where to find the cluster to stop it.
    let _ = std::fs::write(dir.join("PGDATA_PATH"), pg.pgdata().to_string_lossy().as_bytes());
    pg.url("postgres")
}

/// The name of the template for the current migrations and seeds.
fn template_name() -> String {
    let mut material = String::new();
    for m in cityos::db::MIGRATOR.iter() {
        material.push_str(&hex::encode(&*m.checksum));
    }
    material.push_str(include_str!("../../sql/seed_demo.sql"));
    format!(
        "cityos_tpl_{}",
        &cityos::util::sha256_hex(material.as_bytes())[..16]
    )
}

/// Ensures the cluster runs and the template exists; returns the admin URL and template name.
async fn prepare() -> (String, String) {
    let dir = cluster_dir();
    std::fs::create_dir_all(&dir).expect("create cluster dir");
    let lock_path = dir.join("lock");
    let _lock = tokio::task::spawn_blocking(move || FileLock::acquire(&lock_path))
        .await
        .expect("lock task");
    let admin_url = server_admin_url().await;
    let template = template_name();
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .expect("connect to the test cluster");
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&template)
        .fetch_one(&admin)
        .await
        .unwrap();
    if !exists {
        let building = format!("{template}_building");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .execute(&admin)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {building}"))
            .execute(&admin)
            .await
            .unwrap();
        let url = with_database(&admin_url, &building);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap();
        cityos::db::migrate(&pool).await.expect("migrate template");
        cityos::db::seed::demo(&pool, ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .expect("seed template");
        pool.close().await;
        sqlx::query(&format!("ALTER DATABASE {building} RENAME TO {template}"))
            .execute(&admin)
            .await
            .unwrap();
        sqlx::query(&format!("ALTER DATABASE {template} IS_TEMPLATE true"))
            .execute(&admin)
            .await
            .unwrap();
    }
    // Databases of test processes that are gone (earlier runs) would pile up on disk.
    drop_stale_databases(&admin).await;
    admin.close().await;
    (admin_url, template)
}

/// Drops test databases left by processes that are gone.
async fn drop_stale_databases(admin: &PgPool) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%'")
            .fetch_all(admin)
            .await
            .unwrap_or_default();
    for name in names {
        let pid: i32 = name.split('_').nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if pid > 0 && unsafe { libc::kill(pid, 0) } != 0 {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(admin)
                .await;
        }
    }
}

pub fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("url has a database");
    format!("{base}/{db}")
}

/// A fresh database cloned from the template; returns its URL.
pub async fn fresh_database() -> String {
    let (admin_url, template) = prepare().await;
    let name = format!(
        "test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .unwrap();
    // Concurrent clones of one template can collide briefly ("being accessed by other users").
    let mut attempt = 0;
    loop {
        match sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&admin)
            .await
        {
            Ok(_) => break,
            Err(e) if attempt < 50 => {
                attempt += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot clone the template: {e}"),
        }
    }
    admin.close().await;
    with_database(&admin_url, &name)
}

/// A completely empty database (no migrations), for migration tests.
pub async fn empty_database() -> String {
    let (admin_url, _) = prepare().await;
    let name = format!(
        "test_{}_{}_empty",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    with_database(&admin_url, &name)
}

/// Environment for a test server or a CLI run against `database_url`.
pub fn test_env(database_url: &str) -> HashMap<String, String> {
    let data = std::env::temp_dir().join(format!("cityos-test-{}", uuid::Uuid::new_v4()));
    [
        ("DATABASE_URL", database_url.to_string()),
        ("APP_ENV", "test".into()),
        ("HOST", "127.0.0.1".into()),
        ("PORT", "0".into()),
        ("CITYOS_DATA_DIR", data.to_string_lossy().to_string()),
        ("PAYLOAD_SECRET", "test-payload-secret-0123456789abcdef".into()),
        (
            "CITYOS_SIGNATURE_SECRET",
            "test-signature-secret-0123456789abcdef".into(),
        ),
        ("CRON_SECRET", "test-cron-secret-0123456789abcdef".into()),
        ("API_KEY_HASH_SALT", "test-api-key-salt-0123456789abcdef".into()),
        ("LOG_LEVEL", "warn".into()),
        ("CITYOS_SEED_DEMO", "false".into()),
        // Jobs run only when a test asks (cron routes, or workers it starts itself).
        ("SYNC_WORKERS", "0".into()),
        // Every test server decides through the real Cerbos PDP (tests/authz.rs covers the
        // built-in evaluator and the switch between them).
        ("CERBOS_PDP_URL", cerbos::shared_url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A running application and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub database_url: String,
    pub pool: PgPool,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Starts the app against a fresh copy of the demo database.
    pub async fn spawn() -> TestApp {
        let url = fresh_database().await;
        TestApp::spawn_on(&url, &[]).await
    }

    /// Starts the app on `database_url` with extra environment.
    pub async fn spawn_on(database_url: &str, extra: &[(&str, &str)]) -> TestApp {
        let mut env = test_env(database_url);
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_vars(&env).expect("test config");
        let app = Application::build(config).await.expect("build app");
        let addr = app.local_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(database_url)
            .await
            .expect("test pool");
        TestApp {
            addr,
            database_url: database_url.to_string(),
            pool,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("Authorization", format!("JWT {token}"))
            .send()
            .await
            .expect("request")
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", format!("JWT {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request")
    }

    /// Logs in and returns the token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let res = self
            .send(
                reqwest::Method::POST,
                "/api/users/login",
                None,
                Some(serde_json::json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(res.status(), 200, "login as {email}");
        let body: Value = res.json().await.unwrap();
        body["token"].as_str().expect("token").to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// An enabled outbound-events endpoint of `tenant` (`notifications` or `custom`) that
    /// subscribes to `events`; its deliveries go nowhere (tests look at the queued jobs).
    pub async fn subscribe(&self, tenant: &str, system_type: &str, events: &[&str]) {
        sqlx::query(
            "INSERT INTO integration_endpoints (tenant_id, name, system_type, base_url, events, enabled) \
             VALUES ($1::uuid, $2 || ' ' || gen_random_uuid(), $2, 'http://127.0.0.1:9/hook', $3, true)",
        )
        .bind(tenant)
        .bind(system_type)
        .bind(events)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// Creates a local user with a membership (and returns a token for it).
    pub async fn member(&self, email: &str, tenant: &str, roles: &[&str]) -> String {
        let password = "member-password-123";
        let hash = cityos::auth::password::hash(password).unwrap();
        let id: uuid::Uuid = sqlx::query_scalar(
            "INSERT INTO users (email, external_auth_provider, password_hash) VALUES ($1, 'local', $2) RETURNING id",
        )
        .bind(email)
        .bind(hash)
        .fetch_one(&self.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO user_tenant_memberships (user_id, tenant_id, roles, position) VALUES ($1, $2::uuid, $3, 0)",
        )
        .bind(id)
        .bind(tenant)
        .bind(roles.iter().map(|r| r.to_string()).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .unwrap();
        self.login(email, password).await
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }
}

/// Reads a sample of the real Payload responses.
pub fn sample(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/payload/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("sample {path}"))).unwrap()
}

/// The same keys at every level (values ignored), for comparing shapes with Payload's samples.
pub fn same_keys(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let kx: Vec<&String> = x.keys().collect();
            let ky: Vec<&String> = y.keys().collect();
            let mut sx = kx.clone();
            sx.sort();
            let mut sy = ky.clone();
            sy.sort();
            sx == sy
        }
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// Status and parsed JSON body of a response.
pub async fn json(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")),
    )
}

/// Inserts `n` pages for a tenant straight into the database (half published).
pub async fn insert_pages(pool: &PgPool, tenant: &str, n: i32) {
    sqlx::query(
        "INSERT INTO pages (tenant_id, title, slug, status, published_at, created_at)
         SELECT $1::uuid, 'Bulk page ' || g, 'bulk-page-' || g,
                CASE WHEN g % 2 = 0 THEN 'published' ELSE 'draft' END,
                CASE WHEN g % 2 = 0 THEN now() - make_interval(mins => g) END,
                now() - make_interval(secs => g)
         FROM generate_series(1, $2) g",
    )
    .bind(tenant)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}
