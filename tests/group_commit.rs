//! Group commit of creates (`db::group_commit`): creates waiting in one scope share a
//! transaction; a failing one rolls its batch back and every create of it is written again
//! alone, so only the failing one fails; creates of other scopes never share. A batch whose
//! COMMIT went unanswered is settled by asking PostgreSQL what became of it.

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

/// A TCP proxy in front of the test database that cuts one connection at its `nth` COMMIT
/// (counted over all connections): either after passing the COMMIT on, so the transaction
/// commits and its answer is lost, or instead of passing it on, so it never commits.
struct CommitCutter {
    port: u16,
    cuts: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Clone, Copy, PartialEq)]
enum Cut {
    AnswerLost,
    CommitLost,
}

/// What sqlx sends for `Transaction::commit`: a simple query, `Q`, its length, `COMMIT\0`.
const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

impl CommitCutter {
    async fn start(database_url: &str, nth: usize, cut: Cut) -> CommitCutter {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let opts: sqlx::postgres::PgConnectOptions = database_url.parse().unwrap();
        let (host, port) = (opts.get_host().to_string(), opts.get_port());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap().port();
        let (commits, cuts) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let counted = cuts.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream: Box<dyn Stream> = if host.starts_with('/') {
                    let path = format!("{host}/.s.PGSQL.{port}");
                    Box::new(tokio::net::UnixStream::connect(path).await.unwrap())
                } else {
                    Box::new(
                        tokio::net::TcpStream::connect((host.as_str(), port))
                            .await
                            .unwrap(),
                    )
                };
                let (commits, cuts) = (commits.clone(), counted.clone());
                tokio::spawn(pump(client, upstream, move || {
                    (commits.fetch_add(1, Ordering::SeqCst) + 1 == nth).then(|| {
                        cuts.fetch_add(1, Ordering::SeqCst);
                        cut
                    })
                }));
            }
        });
        CommitCutter { port: local, cuts }
    }

    fn cuts(&self) -> usize {
        self.cuts.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A pool whose connections go through the cutter.
    async fn pool(&self, database_url: &str) -> PgPool {
        let opts: sqlx::postgres::PgConnectOptions = database_url.parse().unwrap();
        let opts = opts
            .host("127.0.0.1")
            .port(self.port)
            .ssl_mode(sqlx::postgres::PgSslMode::Disable);
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .unwrap()
    }
}

/// Copies bytes both ways; `on_commit` decides, for each COMMIT the client sends, whether
/// this connection is cut there and how.
async fn pump(
    client: tokio::net::TcpStream,
    upstream: Box<dyn Stream>,
    mut on_commit: impl FnMut() -> Option<Cut> + Send + 'static,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = tokio::io::split(upstream);
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cut_seen = cut.clone();
    let answers = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // Set before the COMMIT went on, so its answer is never passed back.
            if cut_seen.load(std::sync::atomic::Ordering::SeqCst)
                || client_w.write_all(&buf[..n]).await.is_err()
            {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client_r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = &buf[..n];
        let has_commit = data.windows(COMMIT.len()).any(|w| w == COMMIT);
        match has_commit.then(&mut on_commit).flatten() {
            None => {
                if server_w.write_all(data).await.is_err() {
                    break;
                }
            }
            Some(how) => {
                cut.store(true, std::sync::atomic::Ordering::SeqCst);
                if how == Cut::AnswerLost {
                    let _ = server_w.write_all(data).await;
                    // Time for the server to commit before the connection goes.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                break;
            }
        }
    }
    // Dropping both halves closes the connection on both sides.
    answers.abort();
}

/// Runs five probes as one batch (behind a gated one) through a cutter that cuts the batch's
/// COMMIT; returns the answers, the counts and the rows stored.
async fn batch_through_a_cut(cut: Cut) -> (Vec<(String, String)>, Counts, Vec<i32>, usize) {
    let app = TestApp::spawn().await;
    probe_table(&app.pool).await;
    // The gated probe's COMMIT is the first, the batch's the second.
    let cutter = CommitCutter::start(&app.database_url, 2, cut).await;
    let pool = cutter.pool(&app.database_url).await;
    let group = Arc::new(GroupCommit::<Probe>::new(pool, 8, 1));
    let probes = (21..=25).map(|n| (tenant_scope(FASHIONISTA), n)).collect();
    let answers = behind_a_gate(&group, 20, probes).await;
    let answers: Vec<(String, String)> = answers
        .into_iter()
        .map(|a| a.expect("every probe is written once"))
        .collect();
    let rows: Vec<i32> = sqlx::query_scalar("SELECT n FROM gc_probe ORDER BY n")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let counts = group.counts();
    let cuts = cutter.cuts();
    app.stop().await;
    (answers, counts, rows, cuts)
}

/// The batch committed but the answer to its COMMIT was lost: its jobs are answered from the
/// batch (one transaction), not written again, which would fail each on its own primary key.
#[tokio::test]
async fn a_batch_whose_commit_answer_is_lost_is_settled_as_committed() {
    let (answers, counts, rows, cuts) = batch_through_a_cut(Cut::AnswerLost).await;
    assert_eq!(cuts, 1, "the batch's COMMIT was cut");
    let xids: std::collections::HashSet<&str> = answers.iter().map(|(_, x)| x.as_str()).collect();
    assert_eq!(
        xids.len(),
        1,
        "answered from the batch's transaction: {answers:?}"
    );
    assert_eq!(
        counts,
        Counts {
            jobs: 6,
            commits: 2,
            failed_batches: 0
        }
    );
    assert_eq!(rows, [20, 21, 22, 23, 24, 25]);
}

/// The COMMIT never reached PostgreSQL: the batch is settled as rolled back and every job is
/// written again alone.
#[tokio::test]
async fn a_batch_whose_commit_was_never_received_is_written_again_alone() {
    let (answers, counts, rows, cuts) = batch_through_a_cut(Cut::CommitLost).await;
    assert_eq!(cuts, 1, "the batch's COMMIT was cut");
    let xids: std::collections::HashSet<&str> = answers.iter().map(|(_, x)| x.as_str()).collect();
    assert_eq!(xids.len(), 5, "each written alone: {answers:?}");
    assert_eq!(
        counts,
        Counts {
            jobs: 6,
            commits: 6,
            failed_batches: 1
        }
    );
    assert_eq!(rows, [20, 21, 22, 23, 24, 25]);
}
