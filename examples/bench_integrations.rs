//! Integration-plane benchmark (not a test): signed webhook ingest, queue throughput with a
//! no-op target, and the cost of enqueueing in a write's transaction.
//!
//! `cargo run --release --example bench_integrations` (or `./scripts/bench.sh integrations`).
//! Runs its own embedded PostgreSQL (fsync on) under `target/bench/integrations-pg`, the app
//! in-process on 127.0.0.1. Env: BENCH_SECONDS (10), BENCH_CONNECTIONS (32), BENCH_JOBS
//! (20000), BENCH_WORKERS (4), BENCH_PRESIGNED_PER_CONNECTION (600 × BENCH_SECONDS: requests
//! signed ahead per connection), BENCH_FSYNC_OFF, BENCH_NO_NOTIFY, SYNC_CLAIM_BATCH,
//! SYNC_CLAIM_BATCH_MAX, SYNC_WORKER_CONCURRENCY.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cityos::db::embedded::{Durability, EmbeddedPostgres};
use cityos::integrations::{queue, signatures, Integrations};
use cityos::{Application, Config};

const SECRET: &str = "whsec_Y2l0eW9zLW1lZHVzYS10ZXN0LXNlY3JldC0zMmJ5dGU=";

fn var(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = var("BENCH_SECONDS", 10);
    let conns = var("BENCH_CONNECTIONS", 32);
    let jobs = var("BENCH_JOBS", 20_000) as i64;
    let workers = var("BENCH_WORKERS", 4) as usize;
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench/integrations-pg");
    // BENCH_FSYNC_OFF=1: a throwaway cluster, to separate CPU cost from the disk's flush latency.
    let durability = if std::env::var("BENCH_FSYNC_OFF").is_ok() {
        Durability::Throwaway
    } else {
        Durability::Durable
    };
    let pg = EmbeddedPostgres::start(&root, None, durability).await?;
    let db = format!("bench_{}", std::process::id());
    cityos::db::ensure_database(&pg.url("postgres"), &db).await?;
    let url = pg.url(&db);
    let data = std::env::temp_dir().join(format!("cityos-bench-{}", std::process::id()));
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", url.clone()),
        ("APP_ENV", "development".into()),
        ("HOST", "127.0.0.1".into()),
        ("PORT", "0".into()),
        ("CITYOS_DATA_DIR", data.to_string_lossy().to_string()),
        ("PAYLOAD_SECRET", "bench-payload-secret-0123456789abcdef".into()),
        (
            "CITYOS_SIGNATURE_SECRET",
            "bench-signature-secret-0123456789abcdef".into(),
        ),
        ("CRON_SECRET", "bench-cron-secret-0123456789abcdef".into()),
        ("API_KEY_HASH_SALT", "bench-api-key-salt-0123456789abcdef".into()),
        ("LOG_LEVEL", "error".into()),
        ("MEDUSA_WEBHOOK_SECRET", SECRET.into()),
        ("SYNC_WORKERS", "0".into()),
        ("DATABASE_MAX_CONNECTIONS", "40".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(
        [
            "SYNC_CLAIM_BATCH",
            "SYNC_CLAIM_BATCH_MAX",
            "SYNC_WORKER_CONCURRENCY",
            "DATABASE_MAX_CONNECTIONS",
        ]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))),
    )
    .collect();
    let config = Config::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await?;

    if std::env::var("BENCH_NO_NOTIFY").is_ok() {
        sqlx::query("ALTER TABLE sync_jobs DISABLE TRIGGER sync_jobs_notify_jobs")
            .execute(&pool)
            .await?;
    }
    // (a) Signed webhook ingest: each delivery verified, logged and enqueued before the 200.
    // The requests are built and signed before the timed window (unique ids, timestamps of now,
    // well inside the replay window), so the load generator spends its CPU on HTTP only.
    // The load generator runs on threads of its own, so its CPU time is told apart from the
    // server's (`cpu_ms` reads each thread's time by name).
    let loadgen = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("loadgen")
        .enable_all()
        .build()?;
    let client = reqwest::Client::new();
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let exhausted = Arc::new(AtomicU64::new(0));
    let per_task = var("BENCH_PRESIGNED_PER_CONNECTION", seconds * 600) as usize;
    let endpoint = format!("http://{addr}/api/integrations/medusa/webhook");
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut prepared: Vec<Vec<reqwest::Request>> = Vec::new();
    for c in 0..conns {
        let mut reqs = Vec::with_capacity(per_task);
        for i in 0..per_task {
            let id = format!("msg_{c}_{i}");
            let body = format!(
                r#"{{"type":"product.updated","timestamp":"2026-11-24T10:19:17.689Z","data":{{"id":"prod_{c}_{i}"}}}}"#
            );
            let sig = signatures::standard_sign(SECRET, &id, ts, body.as_bytes());
            reqs.push(
                client
                    .post(&endpoint)
                    .header("content-type", "application/json")
                    .header("webhook-id", id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", sig)
                    .body(body)
                    .build()?,
            );
        }
        prepared.push(reqs);
    }
    let postmaster = postmaster_pid(pg.pgdata());
    let cpu_before = (cpu_ms(postmaster), Instant::now());
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for reqs in prepared {
        let (client, ok, bad, exhausted) = (client.clone(), ok.clone(), bad.clone(), exhausted.clone());
        tasks.push(loadgen.spawn(async move {
            let mut reqs = reqs.into_iter();
            while Instant::now() < until {
                let Some(req) = reqs.next() else {
                    exhausted.fetch_add(1, Ordering::Relaxed);
                    break;
                };
                match client.execute(req).await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => bad.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let cpu_after = cpu_ms(postmaster);
    loadgen.shutdown_background();
    if exhausted.load(Ordering::Relaxed) > 0 {
        eprintln!(
            "warning: connections ran out of pre-signed requests (raise BENCH_PRESIGNED_PER_CONNECTION)"
        );
    }
    let took = started.elapsed().as_secs_f64();
    let n = ok.load(Ordering::Relaxed);
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_logs WHERE status = 'received'")
        .fetch_one(&pool)
        .await?;
    println!(
        "| signed webhook ingest ({conns} connections, {seconds} s) | {:.0} /s | {n} accepted, {} refused, {logged} log rows |",
        n as f64 / took,
        bad.load(Ordering::Relaxed)
    );
    let per = |a: f64, b: f64| (b - a) / n.max(1) as f64 * 1000.0;
    let (before, at) = cpu_before;
    println!(
        "| … CPU per accepted delivery (µs): server {:.0}, PostgreSQL {:.0}, load generator {:.0}; {:.0} % of 2 cores busy |",
        per(before.server, cpu_after.server),
        per(before.postgres, cpu_after.postgres),
        per(before.loadgen, cpu_after.loadgen),
        (cpu_after.total() - before.total()) / at.elapsed().as_millis() as f64 / 2.0 * 100.0,
    );
    sqlx::query("DELETE FROM sync_jobs").execute(&pool).await?;

    // (b) Queue throughput with a no-op target (pushes of `pages` have nothing to send).
    sqlx::query(
        "INSERT INTO sync_jobs (job_type, source_collection, source_doc_id, target_system, idempotency_key)
         SELECT 'payload_to_medusa', 'pages', g::text, 'medusa', 'noop:' || g FROM generate_series(1, $1) g",
    )
    .bind(jobs)
    .execute(&pool)
    .await?;
    let cfg = Config::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cipher = Arc::new(cityos::crypto::FieldCipher::new(
        cfg.secrets.payload_secret.expose(),
    ));
    let ix_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(workers as u32 * 2 + 2)
        .connect(&url)
        .await?;
    let ix = Integrations::new(ix_pool, Arc::new(cfg), cipher);
    let cpu_before = cpu_ms(postmaster);
    let started = Instant::now();
    let handles = queue::spawn_workers(&ix, workers);
    // Done when nothing is queued or running (both answered from the partial indexes; a
    // count over the whole table every 20 ms would itself cost a noticeable share of the CPU).
    loop {
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sync_jobs WHERE status = 'queued')
                 OR EXISTS (SELECT 1 FROM sync_jobs WHERE status = 'running')",
        )
        .fetch_one(&pool)
        .await?;
        if !busy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed().as_secs_f64();
    let cpu_after = cpu_ms(postmaster);
    for h in handles {
        h.abort();
    }
    let succeeded: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_jobs WHERE status = 'success'")
        .fetch_one(&pool)
        .await?;
    println!(
        "| queue throughput, no-op target ({workers} workers, {jobs} jobs) | {:.0} jobs/s | {:.2} s, {succeeded} succeeded |",
        jobs as f64 / took,
        took
    );
    println!(
        "| … CPU per job (µs): workers {:.0}, PostgreSQL {:.0}; {:.0} % of 2 cores busy |",
        (cpu_after.server - cpu_before.server) / jobs as f64 * 1000.0,
        (cpu_after.postgres - cpu_before.postgres) / jobs as f64 * 1000.0,
        (cpu_after.total() - cpu_before.total()) / (took * 1000.0) / 2.0 * 100.0,
    );

    // (c) Enqueue cost inside a write's transaction: UPDATE alone vs UPDATE + the outbox INSERT.
    cityos::db::seed::demo(&pool, "admin@cityos.local", "bench-admin-password").await?;
    let doc: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenants ORDER BY handle LIMIT 1")
        .fetch_one(&pool)
        .await?;
    let pc: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO product_content (tenant_id, medusa_product_id, title) VALUES ($1, 'prod_bench', 'x') RETURNING id",
    )
    .bind(doc)
    .fetch_one(&pool)
    .await?;
    let rounds = 500;
    let mut timings = [0f64; 2];
    for (k, with_enqueue) in [false, true].into_iter().enumerate() {
        let started = Instant::now();
        for i in 0..rounds {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE product_content SET title = $2 WHERE id = $1")
                .bind(pc)
                .bind(format!("t{i}"))
                .execute(&mut *tx)
                .await?;
            if with_enqueue {
                sqlx::query(
                    "INSERT INTO sync_jobs (job_type, tenant_id, source_collection, source_doc_id, target_system,
                                            target_id, payload, idempotency_key)
                     VALUES ('payload_to_medusa', $1, 'product-content', $2, 'medusa', 'prod_bench', '{}'::jsonb, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(doc)
                .bind(pc.to_string())
                .bind(format!("bench:{i}"))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        timings[k] = started.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    }
    println!(
        "| enqueue cost per write (UPDATE + outbox INSERT vs UPDATE, {rounds} commits each) | +{:.3} ms | {:.3} ms vs {:.3} ms |",
        timings[1] - timings[0],
        timings[1],
        timings[0]
    );

    let _ = tx.send(());
    let _ = server.await;
    pool.close().await;
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&pg.url("postgres"))
        .await?;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&admin)
        .await;
    admin.close().await;
    if pg.started_here() {
        pg.stop().await?;
    }
    Ok(())
}

/// CPU time used so far, in ms: this process's threads (load generator vs the rest, the server)
/// and every process of the PostgreSQL cluster (the postmaster and its children).
#[derive(Debug, Default, Clone, Copy)]
struct Cpu {
    server: f64,
    loadgen: f64,
    postgres: f64,
}

impl Cpu {
    fn total(&self) -> f64 {
        self.server + self.loadgen + self.postgres
    }
}

/// (name, parent pid, utime + stime in ms) from a `/proc/…/stat` line.
fn stat(path: &std::path::Path) -> Option<(String, u32, f64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (head, rest) = text.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12), in clock ticks (100 per second).
    let ppid = fields.get(1)?.parse().ok()?;
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((name, ppid, ticks * 10.0))
}

fn postmaster_pid(pgdata: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

fn cpu_ms(postmaster: Option<u32>) -> Cpu {
    let mut cpu = Cpu::default();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Some((name, _, ms)) = stat(&t.path().join("stat")) {
                if name.starts_with("loadgen") {
                    cpu.loadgen += ms;
                } else {
                    cpu.server += ms;
                }
            }
        }
    }
    let Some(postmaster) = postmaster else {
        return cpu;
    };
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Some((_, ppid, ms)) = stat(&p.path().join("stat")) {
                if pid == postmaster || ppid == postmaster {
                    cpu.postgres += ms;
                }
            }
        }
    }
    cpu
}
