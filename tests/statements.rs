//! Population is batched: the number of SQL statements a list costs does not grow with the page
//! size, at any depth. Statements are counted from sqlx's own per-query tracing events.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestApp, FASHIONISTA, RIYADH_EATS};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

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
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(CountQueries));
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
