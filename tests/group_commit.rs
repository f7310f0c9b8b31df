//! Group commit of creates (`db::group_commit`): creates waiting in one scope share a
//! transaction; a failing one rolls its batch back and every create of it is written again
//! alone, so only the failing one fails; creates of other scopes never share.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cityos::db::group_commit::{Counts, GroupCommit, Job, JobFuture};
use cityos::db::scope::DbScope;
use common::{json, TestApp, FASHIONISTA, RIYADH_EATS};
use reqwest::Method;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

/// Inserts `n` into `gc_probe` and answers what the row-level security settings and the
/// transaction were; a gated probe first says it started, then waits for the test to open it.
struct Probe {
    n: i32,
    gate: Option<(Arc<Notify>, Arc<Semaphore>)>,
}

impl Job for Probe {
    type Out = (String, String);
    type Err = sqlx::Error;
    fn run<'c>(&'c self, conn: &'c mut PgConnection) -> JobFuture<'c, (String, String), sqlx::Error> {
        Box::pin(async move {
            if let Some((started, gate)) = &self.gate {
                started.notify_one();
                let _open = gate.acquire().await;
            }
            sqlx::query_as(
                "INSERT INTO gc_probe (n) VALUES ($1) \
                 RETURNING current_setting('cityos.tenant_id'), xmin::text",
            )
            .bind(self.n)
            .fetch_one(conn)
            .await
        })
    }
}

fn tenant_scope(tenant: &str) -> DbScope {
    DbScope {
        tenant_id: Some(tenant.parse().unwrap()),
        user_id: None,
        all_tenants: false,
    }
}

async fn probe_table(pool: &PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE gc_probe (n int PRIMARY KEY); GRANT INSERT, SELECT ON gc_probe TO cityos_app",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// Submits `probes` behind a gated one, so all of them are waiting when the writer is free:
/// the batch that forms is deterministic. Returns each probe's answer, in order.
async fn behind_a_gate(
    group: &Arc<GroupCommit<Probe>>,
    gate_n: i32,
    probes: Vec<(DbScope, i32)>,
) -> Vec<Result<(String, String), sqlx::Error>> {
    let (started, gate) = (Arc::new(Notify::new()), Arc::new(Semaphore::new(0)));
    let gated = {
        let (group, gate) = (group.clone(), Some((started.clone(), gate.clone())));
        tokio::spawn(async move {
            let probe = Probe { n: gate_n, gate };
            group.submit(tenant_scope(FASHIONISTA), probe).await
        })
    };
    // The gated probe was taken alone and holds the only writer until the gate opens.
    started.notified().await;
    let waiting = probes.len();
    let handles: Vec<_> = probes
        .into_iter()
        .map(|(scope, n)| {
            let group = group.clone();
            tokio::spawn(async move { group.submit(scope, Probe { n, gate: None }).await })
        })
        .collect();
    while group.waiting() < waiting {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gate.add_permits(1_000);
    assert!(gated.await.unwrap().is_ok(), "the gated probe is written");
    let mut answers = Vec::new();
    for h in handles {
        answers.push(h.await.unwrap());
    }
    answers
}

#[tokio::test]
async fn waiting_jobs_of_one_scope_share_a_commit_and_other_scopes_do_not() {
    let app = TestApp::spawn().await;
    probe_table(&app.pool).await;
    let group = Arc::new(GroupCommit::<Probe>::new(app.pool.clone(), 8, 1));
    let probes = vec![
        (tenant_scope(FASHIONISTA), 1),
        (tenant_scope(RIYADH_EATS), 2),
        (tenant_scope(FASHIONISTA), 3),
        (tenant_scope(RIYADH_EATS), 4),
        (tenant_scope(FASHIONISTA), 5),
    ];
    let answers = behind_a_gate(&group, 100, probes).await;
    let answers: Vec<(String, String)> = answers.into_iter().map(|a| a.unwrap()).collect();
    // Each job saw its own scope's tenant.
    let tenants: Vec<&str> = answers.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        tenants,
        [FASHIONISTA, RIYADH_EATS, FASHIONISTA, RIYADH_EATS, FASHIONISTA]
    );
    // Fashionista's three share one transaction, Riyadh Eats' two another.
    let xid = |i: usize| answers[i].1.clone();
    assert_eq!((xid(0), xid(0)), (xid(2), xid(4)));
    assert_eq!(xid(1), xid(3));
    assert_ne!(xid(0), xid(1));
    assert_eq!(
        group.counts(),
        Counts {
            jobs: 6,
            commits: 3,
            failed_batches: 0
        }
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM gc_probe")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 6);
    app.stop().await;
}

#[tokio::test]
async fn a_failing_job_fails_alone_and_its_batch_is_written_one_by_one() {
    let app = TestApp::spawn().await;
    probe_table(&app.pool).await;
    let group = Arc::new(GroupCommit::<Probe>::new(app.pool.clone(), 8, 1));
    // 13 is inserted twice: in one transaction the second aborts the batch.
    let ns = [11, 12, 13, 14, 13, 15];
    let probes = ns.iter().map(|n| (tenant_scope(FASHIONISTA), *n)).collect();
    let answers = behind_a_gate(&group, 10, probes).await;
    let failed: Vec<usize> = (0..answers.len()).filter(|i| answers[*i].is_err()).collect();
    assert_eq!(failed, [4], "only the second 13 fails: {answers:?}");
    let error = answers[4].as_ref().unwrap_err().to_string();
    assert!(error.contains("gc_probe_pkey"), "{error}");
    // Written again alone: five transactions of their own.
    let xids: std::collections::HashSet<&str> = answers.iter().flatten().map(|(_, x)| x.as_str()).collect();
    assert_eq!(xids.len(), 5);
    assert_eq!(
        group.counts(),
        Counts {
            jobs: 6,
            commits: 6,
            failed_batches: 1
        }
    );
    let rows: Vec<i32> = sqlx::query_scalar("SELECT n FROM gc_probe ORDER BY n")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, [10, 11, 12, 13, 14, 15]);
    app.stop().await;
}

/// Over REST: concurrent creates by one caller, one of them a duplicate slug. Every create but
/// the duplicate is stored with its audit row in its transaction, the duplicate is refused as
/// alone, and creates did share transactions.
#[tokio::test]
async fn concurrent_creates_share_commits_and_a_duplicate_is_refused_alone() {
    let url = common::fresh_database().await;
    let app = TestApp::spawn_on(&url, &[("CREATE_BATCH", "8"), ("CREATE_WRITERS", "1")]).await;
    let admin = app.admin_token().await;
    let titles: Vec<String> = (0..40)
        .map(|i| format!("Grouped {}", if i == 39 { 7 } else { i }))
        .collect();
    let creates = titles.iter().map(|title| {
        app.send(
            Method::POST,
            "/api/pages?depth=0",
            Some(&admin),
            Some(json!({"tenant": FASHIONISTA, "title": title, "status": "draft"})),
        )
    });
    let mut created = Vec::new();
    let mut refused = Vec::new();
    for res in futures_util::future::join_all(creates).await {
        let (status, body) = json(res).await;
        match status {
            201 => created.push(body["doc"]["id"].as_str().unwrap().to_string()),
            _ => refused.push((status, body)),
        }
    }
    assert_eq!(created.len(), 39, "{refused:?}");
    assert_eq!(refused.len(), 1);
    let (status, body) = &refused[0];
    assert_eq!(*status, 400);
    assert_eq!(
        body["errors"][0]["data"]["errors"],
        json!([{"label": "Slug", "message": "Value must be unique", "path": "slug"}])
    );
    let ids: Vec<Uuid> = created.iter().map(|id| id.parse().unwrap()).collect();
    // Each page and its audit row were committed by the same transaction; fewer transactions
    // than pages means creates shared them.
    let (pages, audits, same_xid, xids): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(a.id), count(*) FILTER (WHERE a.xmin = p.xmin), \
                count(DISTINCT p.xmin::text) \
         FROM pages p LEFT JOIN audit_logs a \
           ON a.doc_id = p.id::text AND a.action = 'create' AND a.collection = 'pages' \
         WHERE p.id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((pages, audits, same_xid), (39, 39, 39));
    assert!(xids < 39, "creates shared transactions: {xids} for 39 pages");
    let grouped_pages: i64 = sqlx::query_scalar("SELECT count(*) FROM pages WHERE title LIKE 'Grouped %'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(grouped_pages, 39, "nothing of the refused create is stored");
    app.stop().await;
}
