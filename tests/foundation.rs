//! The binary as an operator meets it: start-up on an embedded database, configuration errors,
//! readiness, graceful shutdown, idempotent seeding.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cityos::db::embedded::{Durability, EmbeddedPostgres};
use common::free_port;
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;

const BIN: &str = env!("CARGO_BIN_EXE_cityos");

/// Stops a cluster of this test even when an assertion fails first (nothing may outlive the run).
struct StopClusterOnDrop(std::path::PathBuf);

impl Drop for StopClusterOnDrop {
    fn drop(&mut self) {
        if !self.0.join("postmaster.pid").exists() {
            return;
        }
        let pg_ctl = "/usr/lib/postgresql/15/bin/pg_ctl";
        let pgdata = self.0.to_string_lossy().to_string();
        let args = ["-D", pgdata.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if unsafe { libc::geteuid() } == 0 {
            Command::new("runuser")
                .args(["-u", "postgres", "--", pg_ctl])
                .args(args)
                .output()
        } else {
            Command::new(pg_ctl).args(args).output()
        };
    }
}

/// The binary with a clean environment: nothing of the developer's shell leaks in.
fn cityos(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .current_dir(std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

async fn wait_ready(port: u16, child: &mut Child) -> reqwest::Response {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(e) = child.stderr.as_mut() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("server exited early with {status}: {err}");
        }
        if let Ok(res) = client
            .get(format!("http://127.0.0.1:{port}/api/ready"))
            .send()
            .await
        {
            if res.status() == 200 {
                return res;
            }
        }
        assert!(Instant::now() < deadline, "server not ready in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sigterm(child: &Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn serve_without_database_url_starts_its_own_cluster_and_reuses_it() {
    let data = std::env::temp_dir().join(format!("cityos-embedded-{}", uuid::Uuid::new_v4()));
    let data_s = data.to_string_lossy().to_string();
    for round in 0..2 {
        let port = free_port();
        let port_s = port.to_string();
        let mut child = cityos(
            &["serve"],
            &[
                ("CITYOS_DATA_DIR", &data_s),
                ("PORT", &port_s),
                ("HOST", "127.0.0.1"),
                ("LOG_LEVEL", "info"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        wait_ready(port, &mut child).await;
        let body: Value = reqwest::get(format!(
            "http://127.0.0.1:{port}/api/countries?where[code][equals]=SA"
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(body["totalDocs"], 1, "round {round}: demo data served: {body}");
        assert_eq!(body["docs"][0]["nameAr"], "المملكة العربية السعودية");
        let pages: Value = reqwest::get(format!(
            "http://127.0.0.1:{port}/api/pages?tenant=fashionista-sa&depth=0"
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert!(
            pages["totalDocs"].as_i64().unwrap() >= 3,
            "published pages listed: {pages}"
        );
        sigterm(&child);
        let status = wait_exit(&mut child, Duration::from_secs(30));
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert!(status.success(), "round {round}: exit {status}: {stderr}");
        if round == 0 {
            assert!(
                stderr.contains("creating embedded PostgreSQL cluster"),
                "{stderr}"
            );
            assert!(stderr.contains("demo data loaded"), "{stderr}");
        } else {
            assert!(
                !stderr.contains("creating embedded PostgreSQL cluster"),
                "second start reuses .data: {stderr}"
            );
            assert!(
                !stderr.contains("demo data loaded"),
                "second start does not reseed: {stderr}"
            );
        }
        // The embedded cluster was stopped with the server.
        assert!(
            !data.join("postgres/postmaster.pid").exists(),
            "round {round}: the embedded cluster stops with the server"
        );
    }
    let secrets = std::fs::read_to_string(data.join("secrets.env")).unwrap();
    assert!(
        secrets.contains("PAYLOAD_SECRET="),
        "development secrets kept under the data dir"
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn bad_configuration_exits_2_naming_each_variable_without_secrets() {
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Env, &[&str])] = &[
        (
            &[
                ("APP_ENV", "production"),
                ("PAYLOAD_SECRET", "too-short-secret-value"),
            ],
            &[
                "PAYLOAD_SECRET: must be at least 32 bytes",
                "CRON_SECRET: required in production",
            ],
        ),
        (
            &[("DATABASE_URL", "mysql://root:hunter2@db/x")],
            &["DATABASE_URL: must start with postgres://"],
        ),
        (
            &[("DATABASE_URL", "postgres://u:hunter2@db:notaport/x")],
            &["DATABASE_URL: has an invalid port"],
        ),
        (&[("PORT", "http")], &["PORT: must be a port number"]),
        (&[("PORT", "99999")], &["PORT: must be a port number"]),
    ];
    for (env, expected) in cases {
        let out = cityos(&["serve"], env).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        for e in *expected {
            assert!(stderr.contains(e), "{env:?}: expected {e:?} in {stderr}");
        }
        assert!(
            !stderr.contains("hunter2") && !stderr.contains("too-short-secret-value"),
            "secret leaked: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn config_check_prints_the_configuration_with_secrets_redacted() {
    let secret = "s3cr3t-value-that-is-long-enough-0123456789";
    let out = cityos(
        &["config", "check"],
        &[
            ("PAYLOAD_SECRET", secret),
            ("MEDUSA_API_KEY", secret),
            ("DATABASE_URL", "postgres://app:hunter2@db.internal:5432/cityos"),
            (
                "CITYOS_DATA_DIR",
                &std::env::temp_dir().join("cityos-cfg-check").to_string_lossy(),
            ),
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("PAYLOAD_SECRET=[redacted]"), "{stdout}");
    assert!(stdout.contains("MEDUSA_API_KEY=[redacted]"), "{stdout}");
    assert!(
        stdout.contains("DATABASE_URL=postgres://app:[redacted]@db.internal:5432/cityos"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(secret) && !stdout.contains("hunter2"),
        "{stdout}"
    );
}

#[test]
fn database_down_at_start_is_a_clear_error_not_a_panic() {
    let port = free_port();
    let url = format!("postgres://cityos@127.0.0.1:{port}/cityos");
    let out = cityos(
        &["serve"],
        &[("DATABASE_URL", &url), ("PORT", &free_port().to_string())],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to DATABASE_URL"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn readiness_follows_the_database_and_health_does_not() {
    let dir = std::env::temp_dir().join(format!("cityos-lost-{}", uuid::Uuid::new_v4()));
    // Durable: an immediate stop of a throwaway (fsync off) cluster may lose the last commits.
    let pg = EmbeddedPostgres::start(&dir, None, Durability::Durable)
        .await
        .unwrap();
    let _stop = StopClusterOnDrop(pg.pgdata().to_path_buf());
    cityos::db::ensure_database(&pg.url("postgres"), "cityos")
        .await
        .unwrap();
    let app = common::TestApp::spawn_on(&pg.url("cityos"), &[]).await;

    assert_eq!(app.get("/api/ready").await.status(), 200);
    pg.force_stop().await.unwrap();
    let res = app.get("/api/ready").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["reason"], "database unreachable");
    assert_eq!(app.get("/api/health").await.status(), 200);

    pg.restart(Durability::Durable).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = app.get("/api/ready").await;
        if res.status() == 200 {
            break;
        }
        let body = res.text().await.unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "no recovery after the database returned: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
    pg.force_stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn migrations_pending_make_the_server_unready() {
    let url = common::fresh_database().await;
    let app = common::TestApp::spawn_on(&url, &[]).await;
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)")
        .execute(&app.pool)
        .await
        .unwrap();
    let res = app.get("/api/ready").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["reason"].as_str().unwrap().starts_with("migrations pending"),
        "{body}"
    );
}

#[tokio::test]
async fn sigterm_lets_a_slow_request_finish_then_exits_0() {
    let url = common::fresh_database().await;
    let port = free_port();
    let mut env: Vec<(String, String)> = common::test_env(&url).into_iter().collect();
    env.retain(|(k, _)| k != "PORT");
    env.push(("PORT".into(), port.to_string()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut child = cityos(&["serve"], &env_ref)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(port, &mut child).await;

    // Make the next read slow for real: hold a lock the query must wait for.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE countries IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();

    let slow = tokio::spawn(async move {
        reqwest::get(format!("http://127.0.0.1:{port}/api/countries"))
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited while a request was in flight"
    );
    tx.rollback().await.unwrap();

    let res = slow.await.unwrap();
    assert_eq!(res.status(), 200, "the in-flight request completed");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["totalDocs"], 1);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert!(status.success(), "exit status {status}");
    // New connections are refused once shutdown began.
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/api/health"))
        .await
        .is_err());
}

#[tokio::test]
async fn seed_demo_twice_creates_no_duplicates() {
    let url = common::empty_database().await;
    let env: Vec<(String, String)> = common::test_env(&url).into_iter().collect();
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut counts = Vec::new();
    for _ in 0..2 {
        let out = cityos(&["seed", "--demo"], &env_ref).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let mut row = Vec::new();
        for t in [
            "countries",
            "scopes",
            "tenants",
            "stores",
            "domains",
            "portals",
            "pages",
            "posts",
            "users",
        ] {
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {t}"))
                .fetch_one(&pool)
                .await
                .unwrap();
            row.push((t, n));
        }
        pool.close().await;
        counts.push(row);
    }
    assert_eq!(counts[0], counts[1]);
    let tenants = counts[0].iter().find(|(t, _)| *t == "tenants").unwrap().1;
    assert_eq!(tenants, 2);
    assert_eq!(
        counts[0].iter().find(|(t, _)| *t == "users").unwrap().1,
        1,
        "one super admin"
    );
}

#[tokio::test]
async fn create_user_then_log_in_with_it() {
    let url = common::fresh_database().await;
    let env: Vec<(String, String)> = common::test_env(&url).into_iter().collect();
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut child = cityos(
        &[
            "create-user",
            "--email",
            "Ops@Example.SA",
            "--role",
            "super_admin",
        ],
        &env_ref,
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a-long-enough-password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let short = cityos(
        &["create-user", "--email", "x@example.sa", "--password", "short"],
        &env_ref,
    )
    .output()
    .unwrap();
    assert_eq!(short.status.code(), Some(2));

    let app = common::TestApp::spawn_on(&url, &[]).await;
    let token = app.login("ops@example.sa", "a-long-enough-password").await;
    let me: Value = app.get_as("/api/users/me", &token).await.json().await.unwrap();
    assert_eq!(me["user"]["email"], "ops@example.sa");
    assert_eq!(me["user"]["globalRoles"][0]["role"], "super_admin");
}
