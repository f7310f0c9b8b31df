//! Population is batched: the number of SQL statements a list costs does not grow with the page
//! size, at any depth; a write costs a fixed, small number of statements. Statements are counted
//! from sqlx's own per-query tracing events (one counter for the process: the tests take turns).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestApp, FASHIONISTA, RIYADH_EATS};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn count_statements() {
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(CountQueries));
}

struct CountQueries;

impl<S: tracing::Subscriber> Layer<S> for CountQueries {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn statements_for(app: &TestApp, token: &str, path: &str) -> usize {
    let before = STATEMENTS.load(Ordering::SeqCst);
    let res = app.get_as(path, token).await;
    assert_eq!(res.status(), 200, "{path}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(!body["docs"].as_array().unwrap().is_empty());
    STATEMENTS.load(Ordering::SeqCst) - before
}

#[tokio::test]
async fn statements_per_list_do_not_grow_with_page_size() {
    count_statements();
    let _turn = TURN.lock().await;
    let app = TestApp::spawn().await;
    common::insert_pages(&app.pool, FASHIONISTA, 40).await;
    common::insert_pages(&app.pool, RIYADH_EATS, 40).await;
    let admin = app.admin_token().await;
    // Warm the pool so connection set-up statements are not counted.
    statements_for(&app, &admin, "/api/pages?limit=1&depth=0").await;

    let mut by_depth = Vec::new();
    for depth in 0..=3 {
        let one = statements_for(&app, &admin, &format!("/api/pages?limit=1&depth={depth}")).await;
        let many = statements_for(&app, &admin, &format!("/api/pages?limit=60&depth={depth}")).await;
        assert_eq!(
            one, many,
            "depth {depth}: 1 doc cost {one} statements, 60 docs cost {many}"
        );
        by_depth.push(one);
    }
    assert!(by_depth[0] > 0, "statements are being counted");
    // pages → tenant/store/users → country/scope/… : one query per target collection and level.
    assert!(
        by_depth[3] <= by_depth[0] + 12,
        "depth 3 stays bounded: {by_depth:?}"
    );
}

async fn statements_for_one(app: &TestApp, token: &str, path: &str) -> usize {
    let before = STATEMENTS.load(Ordering::SeqCst);
    let res = app.get_as(path, token).await;
    assert_eq!(res.status(), 200, "{path}");
    STATEMENTS.load(Ordering::SeqCst) - before
}

async fn statements_for_write(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (usize, serde_json::Value) {
    let before = STATEMENTS.load(Ordering::SeqCst);
    let res = app.send(method, path, Some(token), body).await;
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {body}");
    (STATEMENTS.load(Ordering::SeqCst) - before, body)
}

/// A create is two statements, whoever writes: the row (its references checked, read back by
/// RETURNING) with its audit row and outbound events, then COMMIT (plus the BEGIN that carries
/// the request's settings, which sqlx does not report as a query). The response is built from
/// the returned row. An update is four: the locked target, the row, audit + events, COMMIT.
#[tokio::test]
async fn a_create_costs_two_statements_and_an_update_four() {
    count_statements();
    let _turn = TURN.lock().await;
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let editor = app
        .member("count-editor@example.com", FASHIONISTA, &["tenant_admin"])
        .await;
    // Warm the pool and the caches (principal, plans) so set-up work is not counted.
    statements_for(&app, &admin, "/api/pages?limit=1&depth=0").await;
    statements_for(&app, &editor, "/api/pages?limit=1&depth=0").await;

    for (who, token) in [("super admin", &admin), ("tenant admin", &editor)] {
        let (n, created) = statements_for_write(
            &app,
            token,
            reqwest::Method::POST,
            "/api/pages?depth=0",
            Some(serde_json::json!({"tenant": FASHIONISTA, "title": format!("Counted {who}"), "status": "draft"})),
        )
        .await;
        assert_eq!(n, 2, "{who}: create cost {n} statements");
        let doc = &created["doc"];
        assert_eq!(doc["title"], format!("Counted {who}"));
        assert_eq!(doc["tenant"], FASHIONISTA, "depth 0 keeps the id");
        let id = doc["id"].as_str().unwrap().to_string();

        // Update: the locked target, the row, audit + events, COMMIT.
        let (n, updated) = statements_for_write(
            &app,
            token,
            reqwest::Method::PATCH,
            &format!("/api/pages/{id}?depth=0"),
            Some(serde_json::json!({"title": format!("Recounted {who}")})),
        )
        .await;
        assert_eq!(n, 4, "{who}: update cost {n} statements");
        assert_eq!(updated["doc"]["title"], format!("Recounted {who}"));
        assert_eq!(updated["doc"]["slug"], created["doc"]["slug"]);

        // Depth 1 on the response costs what population costs on a read, nothing more.
        let populate = statements_for_one(&app, token, &format!("/api/pages/{id}?depth=1")).await
            - statements_for_one(&app, token, &format!("/api/pages/{id}?depth=0")).await;
        assert!(populate > 0, "the tenant is populated by a query");
        let (n, deep) = statements_for_write(
            &app,
            token,
            reqwest::Method::PATCH,
            &format!("/api/pages/{id}?depth=1"),
            Some(serde_json::json!({"title": format!("Deep {who}")})),
        )
        .await;
        assert_eq!(n, 4 + populate, "{who}: update at depth 1 cost {n} statements");
        assert_eq!(deep["doc"]["tenant"]["id"], FASHIONISTA);

        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE doc_id = $1")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(rows, 3, "{who}: every write has its audit row");
    }

    // A reference the caller may not use (another tenant's image) fails the statement's guard:
    // nothing is written and the field is named, as the separate check did.
    let elsewhere: uuid::Uuid = sqlx::query_scalar(&format!(
        "INSERT INTO media (tenant_id, alt, filename, mime_type, filesize, storage_key) \
         VALUES ('{RIYADH_EATS}', 'r', 'r.png', 'image/png', 1, 'r/r.png') RETURNING id"
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    for (who, token) in [("tenant admin", &editor), ("super admin", &admin)] {
        let res = app
            .send(
                reqwest::Method::POST,
                "/api/pages",
                Some(token),
                Some(serde_json::json!({
                    "tenant": FASHIONISTA, "title": format!("Borrowed image {who}"), "status": "draft",
                    "seo": {"ogImage": elsewhere}
                })),
            )
            .await;
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap();
        if who == "super admin" {
            // Super admins may reference any tenant's document.
            assert_eq!(status, 201, "{who}: {body}");
            continue;
        }
        assert_eq!(status, 400, "{who}: {body}");
        assert_eq!(
            body["errors"][0]["data"]["errors"][0]["path"], "seo.ogImage",
            "{body}"
        );
        let written: i64 = sqlx::query_scalar("SELECT count(*) FROM pages WHERE title = $1")
            .bind(format!("Borrowed image {who}"))
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(written, 0, "nothing half-written");
    }
}

/// A content write with no subscribed endpoint enqueues nothing and notifies no job worker: a
/// NOTIFY in the write's transaction would make its commit wait for the previous notifying
/// commit's disk flush. With a subscriber, the delivery job is enqueued in the same statement.
#[tokio::test]
async fn a_write_without_subscribers_enqueues_nothing_and_wakes_nobody() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let mut jobs = sqlx::postgres::PgListener::connect_with(&app.pool).await.unwrap();
    jobs.listen("cityos_jobs").await.unwrap();
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for i in 0..3 {
        let res = app
            .send(
                reqwest::Method::POST,
                "/api/pages",
                Some(&admin),
                Some(serde_json::json!({"tenant": FASHIONISTA, "title": format!("Quiet {i}"), "status": "draft"})),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let heard = tokio::time::timeout(std::time::Duration::from_millis(300), jobs.recv()).await;
    assert!(heard.is_err(), "no job worker was woken: {heard:?}");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(after, before, "no job enqueued");

    // A subscriber: the next create enqueues its delivery in the write's transaction.
    app.subscribe(FASHIONISTA, "notifications", &["pages.created"])
        .await;
    let res = app
        .send(
            reqwest::Method::POST,
            "/api/pages",
            Some(&admin),
            Some(serde_json::json!({"tenant": FASHIONISTA, "title": "Heard", "status": "draft"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sync_jobs WHERE job_type = 'deliver_webhook' AND payload->>'event' = 'pages.created'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(queued, 1);
}
