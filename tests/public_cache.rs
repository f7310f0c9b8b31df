//! Anonymous read responses are reused, and never outlive a change: a write through this
//! instance, a change made anywhere else (NOTIFY), or their time to live.

mod common;

use std::time::Duration;

use cityos::authz::{evaluate, Plan};
use cityos::collections::decl::Kind;
use common::*;
use serde_json::json;

/// A published page of Fashionista and the path a storefront reads it at.
async fn published_page(app: &TestApp) -> (String, String) {
    let id: uuid::Uuid = sqlx::query_scalar(
        "SELECT id FROM pages WHERE tenant_id = $1::uuid AND status = 'published'
           AND (publish_at IS NULL OR publish_at <= now()) AND (unpublish_at IS NULL OR unpublish_at > now())
         ORDER BY id LIMIT 1",
    )
    .bind(FASHIONISTA)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    (
        id.to_string(),
        format!("/api/pages/{id}?depth=0&tenant=fashionista-sa"),
    )
}

async fn title(app: &TestApp, path: &str) -> String {
    let (status, body) = json(app.get(path).await).await;
    assert_eq!(status, 200, "{body}");
    body["title"].as_str().unwrap().to_string()
}

/// Changes a title without firing triggers, so no NOTIFY tells the server.
async fn silent_rename(app: &TestApp, id: &str, title: &str) {
    let mut conn = app.pool.acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("UPDATE pages SET title = $1 WHERE id = $2::uuid")
        .bind(title)
        .bind(id)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("SET session_replication_role = origin")
        .execute(&mut *conn)
        .await
        .unwrap();
}

async fn eventually_title(app: &TestApp, path: &str, want: &str) {
    for _ in 0..100 {
        if title(app, path).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never showed {want:?}");
}

#[tokio::test]
async fn anonymous_reads_are_reused_until_a_change_is_notified() {
    let url = fresh_database().await;
    let app = TestApp::spawn_on(&url, &[("PUBLIC_CACHE_TTL_MS", "60000")]).await;
    let (id, path) = published_page(&app).await;
    let original = title(&app, &path).await;
    let list = format!(
        "/api/pages?tenant=fashionista-sa&depth=0&limit=100&where[id][equals]={id}&where[title][equals]={}",
        original.replace(' ', "%20")
    );
    let count = format!(
        "/api/pages/count?tenant=fashionista-sa&where[title][equals]={}",
        original.replace(' ', "%20")
    );
    let (_, listed) = json(app.get(&list).await).await;
    let (_, counted) = json(app.get(&count).await).await;
    assert_eq!(listed["totalDocs"], 1, "{listed}");

    // Served from the cache: a change nobody announced is not seen by anonymous readers…
    silent_rename(&app, &id, "Renamed quietly").await;
    assert_eq!(title(&app, &path).await, original);
    // …the list and count of the same storefront are cached the same way…
    assert_eq!(json(app.get(&list).await).await.1, listed);
    assert_eq!(json(app.get(&count).await).await.1, counted);
    // …while signed-in callers always read the database.
    let token = app.admin_token().await;
    let (_, as_admin) = json(app.get_as(&path, &token).await).await;
    assert_eq!(as_admin["title"], "Renamed quietly");

    // A change made anywhere (here: plain SQL, which fires the trigger) empties the cache.
    sqlx::query("UPDATE pages SET title = 'Renamed loudly' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();
    eventually_title(&app, &path, "Renamed loudly").await;
    let (_, after) = json(app.get(&list).await).await;
    assert_eq!(
        after["totalDocs"], 0,
        "the old title is gone from lists too: {after}"
    );

    // A write through this instance is visible to the very next read.
    let res = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/pages/{id}"),
            Some(&token),
            Some(json!({"title": "Renamed by the API"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(title(&app, &path).await, "Renamed by the API");
    app.stop().await;
}

#[tokio::test]
async fn cached_answers_expire_after_their_time_to_live() {
    let url = fresh_database().await;
    let app = TestApp::spawn_on(&url, &[("PUBLIC_CACHE_TTL_MS", "200")]).await;
    let (id, path) = published_page(&app).await;
    let original = title(&app, &path).await;
    silent_rename(&app, &id, "Seen after the TTL").await;
    assert_eq!(title(&app, &path).await, original);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(title(&app, &path).await, "Seen after the TTL");
    app.stop().await;
}

#[tokio::test]
async fn with_the_cache_off_every_read_goes_to_the_database() {
    let url = fresh_database().await;
    let app = TestApp::spawn_on(&url, &[("PUBLIC_CACHE_TTL_MS", "0")]).await;
    let (id, path) = published_page(&app).await;
    title(&app, &path).await;
    silent_rename(&app, &id, "Seen at once").await;
    assert_eq!(title(&app, &path).await, "Seen at once");
    app.stop().await;
}

/// Every table an anonymous answer can be built from announces its changes: the tables (and
/// child tables) of each collection the policies let an anonymous storefront visitor read.
#[tokio::test]
async fn every_table_anonymous_readers_see_notifies_its_changes() {
    let url = fresh_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let notifying: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
          WHERE t.tgname LIKE '%_notify_public'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let policies = cityos::authz::policy::PolicySet::embedded().unwrap();
    let visitor = json!({"id": "anonymous", "roles": ["anonymous"], "attr": {
        "tenantIds": [], "tenantIdsByRole": {}, "storeIds": [], "contextTenantId": FASHIONISTA}});
    let mut readable = 0;
    for decl in cityos::collections::decls::ALL {
        if evaluate::plan(&policies, &visitor, decl.slug, "read") == Plan::Never {
            continue;
        }
        readable += 1;
        let mut tables = vec![decl.table];
        for f in decl.fields {
            if let Kind::Child(child) = f.kind {
                tables.push(child.table);
            }
        }
        for t in tables {
            assert!(
                notifying.iter().any(|n| n == t),
                "{t} ({}) has no notify_public trigger",
                decl.slug
            );
        }
    }
    assert!(readable >= 8, "{readable} collections readable anonymously");
}

/// A write through one instance reaches the other instances' caches by the writer's
/// announcement after its commit; the write's own transaction does not NOTIFY (its commit would
/// wait in PostgreSQL's notify queue lock through the disk flush), while plain SQL still does.
#[tokio::test]
async fn writes_through_an_instance_are_announced_to_the_others_after_commit() {
    let url = fresh_database().await;
    let writer = TestApp::spawn_on(&url, &[("PUBLIC_CACHE_TTL_MS", "60000")]).await;
    let reader = TestApp::spawn_on(&url, &[("PUBLIC_CACHE_TTL_MS", "60000")]).await;
    let (id, path) = published_page(&writer).await;
    let original = title(&reader, &path).await;

    let mut listener = sqlx::postgres::PgListener::connect(&url).await.unwrap();
    listener.listen("cityos_public").await.unwrap();
    let token = writer.admin_token().await;
    let res = writer
        .send(
            reqwest::Method::PATCH,
            &format!("/api/pages/{id}"),
            Some(&token),
            Some(json!({"title": "Announced"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    // The other instance had the old answer cached, and drops it.
    assert_ne!(original, "Announced");
    eventually_title(&reader, &path, "Announced").await;
    let heard = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("an announcement")
        .unwrap();
    assert!(
        heard.payload().starts_with("announced:"),
        "from the server, after the commit: {}",
        heard.payload()
    );

    // Plain SQL is announced by the trigger, with the table's name.
    sqlx::query("UPDATE pages SET title = 'By SQL' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&writer.pool)
        .await
        .unwrap();
    // (Announcements of the earlier writes may still be on their way.)
    loop {
        let heard = tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .expect("the trigger's notification")
            .unwrap();
        match heard.payload() {
            "pages" => break,
            other => assert!(other.starts_with("announced:"), "{other}"),
        }
    }
    eventually_title(&reader, &path, "By SQL").await;
    writer.stop().await;
    reader.stop().await;
}
