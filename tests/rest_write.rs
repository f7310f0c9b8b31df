//! Writing over REST: create/update/delete with Payload's envelopes, validation that lists every
//! field, unique violations named by field, tenant rules, bulk partial failures, the audit log.

mod common;

use common::{json, sample, TestApp, FASHIONISTA, RIYADH_EATS};
use reqwest::Method;
use serde_json::{json, Value};

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

#[tokio::test]
async fn create_update_delete_round_trip_with_audit() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let body = json!({"tenant": FASHIONISTA, "title": "Summer Sale 2026", "status": "published",
        "layout": [{"blockType": "hero", "title": "Hot deals"}], "seo": {"title": "Sale"}});
    let (status, created) = json(
        app.send(Method::POST, "/api/pages?depth=0", Some(&admin), Some(body))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["message"], "Page successfully created.");
    let doc = &created["doc"];
    assert_eq!(doc["slug"], "summer-sale-2026", "slug derived from the title");
    assert!(doc["publishedAt"].is_string(), "publishedAt set on publish");
    assert_eq!(doc["seo"]["title"], "Sale", "groups nest on the wire");
    assert_eq!(doc["layout"][0]["id"].as_str().unwrap().len(), 24);
    assert_eq!(doc["createdAt"], doc["updatedAt"]);
    for key in ["createdAt", "updatedAt", "publishedAt"] {
        let t = doc[key].as_str().unwrap();
        let ok = t.len() == 24
            && t.ends_with('Z')
            && t.as_bytes()[10] == b'T'
            && t.as_bytes()[19] == b'.'
            && t[20..23].bytes().all(|b| b.is_ascii_digit());
        assert!(ok, "{key} is not in Payload's timestamp form: {t}");
    }
    assert!(doc["createdBy"].is_string());
    let id = doc["id"].as_str().unwrap().to_string();

    let (_, populated) = json(
        app.send(
            Method::POST,
            "/api/pages",
            Some(&admin),
            Some(json!({"tenant": FASHIONISTA, "title": "Populated"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        populated["doc"]["tenant"]["handle"], "fashionista-sa",
        "create without depth populates"
    );

    let (status, updated) = json(
        app.send(
            Method::PATCH,
            &format!("/api/pages/{id}?depth=0"),
            Some(&admin),
            Some(json!({"title": "Winter Sale", "id": "ignored"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["message"], "Updated successfully.");
    assert_eq!(updated["doc"]["title"], "Winter Sale");
    assert_eq!(updated["doc"]["slug"], "summer-sale-2026", "slug kept once set");
    assert_eq!(updated["doc"]["id"], id.as_str());

    let diff: Value = sqlx::query_scalar(
        "SELECT diff_summary FROM audit_logs WHERE collection = 'pages' AND doc_id = $1 AND action = 'update'",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        diff["title"],
        json!({"before": "Summer Sale 2026", "after": "Winter Sale"})
    );
    assert!(diff.get("slug").is_none(), "only changed fields are in the diff");

    let (status, deleted) = json(
        app.send(Method::DELETE, &format!("/api/pages/{id}"), Some(&admin), None)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(deleted["message"], "Deleted successfully.");
    assert_eq!(deleted["doc"]["title"], "Winter Sale");
    let (status, body) = json(app.get_as(&format!("/api/pages/{id}"), &admin).await).await;
    assert_eq!((status, body), (404, sample("not-found-after-delete.json")));
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_logs WHERE doc_id = $1 ORDER BY created_at")
            .bind(&id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(actions, vec!["create", "update", "delete"]);
}

#[tokio::test]
async fn validation_lists_every_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (status, _) = json(
        app.send(
            Method::POST,
            "/api/pages",
            Some(&admin),
            Some(json!({"tenant": FASHIONISTA, "title": "Dup", "slug": "dup-slug"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201);
    let pages_before = count(&app, "SELECT count(*) FROM pages").await;
    let audit_before = count(&app, "SELECT count(*) FROM audit_logs WHERE collection = 'pages'").await;

    let (status, body) = json(
        app.send(Method::POST, "/api/pages", Some(&admin), Some(json!({})))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    let expected = sample("validation-error-missing-title-and-tenant.json");
    assert_eq!(body["errors"][0]["message"], expected["errors"][0]["message"]);
    assert_eq!(body["errors"][0]["data"], expected["errors"][0]["data"]);
    assert_eq!(body["errors"][0]["name"], "ValidationError");

    let (status, body) = json(
        app.send(Method::POST, "/api/pages", Some(&admin),
            Some(json!({"tenant": FASHIONISTA, "title": "x".repeat(201), "status": "archived", "publishAt": "soon", "slug": "Bad Slug"}))).await,
    )
    .await;
    assert_eq!(status, 400);
    let paths: Vec<&str> = body["errors"][0]["data"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["title", "slug", "status", "publishAt"]);

    // Unique violation is reported on its field.
    let (status, body) = json(
        app.send(
            Method::POST,
            "/api/pages",
            Some(&admin),
            Some(json!({"tenant": FASHIONISTA, "title": "Other", "slug": "dup-slug"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0]["data"]["errors"],
        json!([{"label": "Slug", "message": "Value must be unique", "path": "slug"}])
    );
    assert_eq!(
        body["errors"][0]["message"],
        "The following field is invalid: Slug"
    );

    let (status, body) = json(
        app.send(
            Method::POST,
            "/api/pages",
            Some(&admin),
            Some(json!({"tenant": "00000000-0000-4000-8000-00000000dead", "title": "Ghost"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["data"]["errors"][0]["path"], "tenant");

    let res = app
        .client
        .post(app.url("/api/pages"))
        .header("Authorization", format!("JWT {admin}"))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!((status, body), (400, sample("bad-json.json")));

    assert_eq!(
        count(&app, "SELECT count(*) FROM pages").await,
        pages_before,
        "nothing half-written"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM audit_logs WHERE collection = 'pages'").await,
        audit_before
    );
}

#[tokio::test]
async fn tenant_members_write_only_inside_their_tenant() {
    let app = TestApp::spawn().await;
    let editor = app
        .member("editor@fashionista.sa", FASHIONISTA, &["content_editor"])
        .await;

    let (status, body) = json(
        app.send(
            Method::POST,
            "/api/pages",
            Some(&editor),
            Some(json!({"title": "Own page"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "the only tenant is the default: {body}");
    assert_eq!(body["doc"]["tenant"]["id"], FASHIONISTA);

    let (status, body) = json(
        app.send(
            Method::POST,
            "/api/pages",
            Some(&editor),
            Some(json!({"tenant": RIYADH_EATS, "title": "Elsewhere"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        sample("tenant-user-create-other-tenant.json").pipe(|mut s| {
            s["errors"][0]["name"] = json!("ValidationError");
            s
        })
    );

    let other_page: String =
        sqlx::query_scalar("SELECT id::text FROM pages WHERE tenant_id = $1::uuid LIMIT 1")
            .bind(RIYADH_EATS)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let (status, body) = json(
        app.send(
            Method::PATCH,
            &format!("/api/pages/{other_page}"),
            Some(&editor),
            Some(json!({"title": "Hijack"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (403, sample("tenant-user-update-other-tenant.json"))
    );
    let (status, _) = json(app.get_as(&format!("/api/pages/{other_page}"), &editor).await).await;
    assert_eq!(status, 404, "reading another tenant's page by id");
    let (status, body) = json(
        app.get_as(
            &format!("/api/pages?where[tenant][equals]={RIYADH_EATS}"),
            &editor,
        )
        .await,
    )
    .await;
    assert_eq!((status, body["totalDocs"].clone()), (200, json!(0)));

    // content_editor cannot delete (tenant_admin only).
    let own: String = sqlx::query_scalar("SELECT id::text FROM pages WHERE tenant_id = $1::uuid LIMIT 1")
        .bind(FASHIONISTA)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (status, _) = json(
        app.send(Method::DELETE, &format!("/api/pages/{own}"), Some(&editor), None)
            .await,
    )
    .await;
    assert_eq!(status, 403);

    let (status, body) = json(
        app.send(Method::POST, "/api/pages", None, Some(json!({"title": "anon"})))
            .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (403, sample("forbidden-create-unauthenticated.json"))
    );
}

#[tokio::test]
async fn bulk_update_reports_partial_failures_and_bulk_delete_needs_where() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for t in ["Bulk A", "Bulk B"] {
        let (s, _) = json(
            app.send(
                Method::POST,
                "/api/pages",
                Some(&admin),
                Some(json!({"tenant": FASHIONISTA, "title": t})),
            )
            .await,
        )
        .await;
        assert_eq!(s, 201);
    }
    // Both would get the same slug: the second violates uniqueness.
    let (status, body) = json(
        app.send(
            Method::PATCH,
            "/api/pages?where[title][like]=Bulk&depth=0",
            Some(&admin),
            Some(json!({"slug": "same-slug"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["docs"].as_array().unwrap().len(), 1);
    assert_eq!(body["errors"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["errors"][0]["message"],
        "The following field is invalid: Slug"
    );
    assert!(body["errors"][0]["id"].is_string());
    assert_eq!(body["message"], "Unable to update 1 out of 2 Pages.");

    let (status, body) = json(
        app.send(
            Method::PATCH,
            "/api/pages?where[title][equals]=Bulk%20B",
            Some(&admin),
            Some(json!({"status": "published"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["message"].clone()),
        (200, json!("Updated 1 Page successfully."))
    );
    assert_eq!(body["errors"], json!([]));

    let (status, body) = json(app.send(Method::DELETE, "/api/pages", Some(&admin), None).await).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"errors": [{"message": "Missing 'where' query of documents to delete."}]})
        )
    );
    let (status, body) = json(
        app.send(Method::PATCH, "/api/pages", Some(&admin), Some(json!({})))
            .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"errors": [{"message": "Missing 'where' query of documents to update."}]})
        )
    );

    let (status, body) = json(
        app.send(
            Method::DELETE,
            "/api/pages?where[title][like]=Bulk",
            Some(&admin),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["message"].clone()),
        (200, json!("Deleted 2 Pages successfully."))
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM audit_logs WHERE collection = 'pages' AND action = 'delete'"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn logs_are_read_only_and_secrets_are_never_returned() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (status, _) = json(
        app.send(
            Method::POST,
            "/api/audit-logs",
            Some(&admin),
            Some(json!({"action": "create", "collection": "x"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403);
    let audit_id: String = sqlx::query_scalar("SELECT id::text FROM audit_logs LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for m in [Method::PATCH, Method::DELETE] {
        let (status, _) = json(
            app.send(
                m,
                &format!("/api/audit-logs/{audit_id}"),
                Some(&admin),
                Some(json!({})),
            )
            .await,
        )
        .await;
        assert_eq!(status, 403);
    }
    let (status, _) = json(
        app.send(
            Method::POST,
            "/api/webhook-logs",
            None,
            Some(json!({"requestId": "x"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403, "no anonymous writes to webhook logs");

    let (status, created) = json(
        app.send(Method::POST, "/api/integration-endpoints", Some(&admin), Some(json!({
            "tenant": FASHIONISTA, "name": "Medusa", "systemType": "medusa", "baseUrl": "https://medusa.example.sa",
            "webhookSecret": "whsec_super_secret_value"}))).await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let text = created.to_string();
    assert!(!text.contains("whsec_super_secret_value"));
    assert_eq!(created["doc"]["hasWebhookSecret"], true);
    assert_eq!(created["doc"]["hasAuthSecret"], false);
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT webhook_secret_enc FROM integration_endpoints WHERE name = 'Medusa'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains("whsec"),
        "stored encrypted"
    );
    let diff: Value =
        sqlx::query_scalar("SELECT diff_summary FROM audit_logs WHERE collection = 'integration-endpoints'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        !diff.to_string().contains("whsec"),
        "audit diff masks secrets: {diff}"
    );

    let (status, user) = json(app.send(Method::POST, "/api/users", Some(&admin), Some(json!({
        "email": "New.Editor@Example.SA", "password": "a-strong-password-1", "externalAuthProvider": "local"}))).await).await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["doc"]["email"], "new.editor@example.sa");
    assert!(user["doc"].get("password").is_none());
    assert_eq!(user["doc"]["collection"], "users");
    let token = app.login("new.editor@example.sa", "a-strong-password-1").await;
    assert!(!token.is_empty());
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl Pipe for Value {}

#[tokio::test]
async fn publishing_product_content_enqueues_a_medusa_push_in_the_same_transaction() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let body = json!({"tenant": FASHIONISTA, "medusaProductId": "prod_01TEST", "title": "Linen Abaya", "editorialStatus": "draft"});
    let (status, created) = json(
        app.send(
            Method::POST,
            "/api/product-content?depth=0",
            Some(&admin),
            Some(body),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["doc"]["id"].as_str().unwrap().to_string();
    let jobs = |app: &TestApp, id: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_as::<_, (String, String, Option<String>)>(
                "SELECT job_type, status, target_id FROM sync_jobs WHERE source_collection = 'product-content' AND source_doc_id = $1",
            )
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert!(jobs(&app, id.clone()).await.is_empty(), "drafts are not pushed");

    let (status, _) = json(
        app.send(
            Method::PATCH,
            &format!("/api/product-content/{id}"),
            Some(&admin),
            Some(json!({"editorialStatus": "published"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        jobs(&app, id.clone()).await,
        vec![(
            "payload_to_medusa".into(),
            "queued".into(),
            Some("prod_01TEST".into())
        )]
    );
    let sync_status: String =
        sqlx::query_scalar("SELECT sync_status FROM product_content WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(sync_status, "pending");

    // A second edit while the job is queued coalesces into it.
    let (status, _) = json(
        app.send(
            Method::PATCH,
            &format!("/api/product-content/{id}"),
            Some(&admin),
            Some(json!({"title": "Linen Abaya (Sand)"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(jobs(&app, id.clone()).await.len(), 1);

    // A failing write enqueues nothing: the unique violation rolls the whole transaction back.
    let dup = json!({"tenant": FASHIONISTA, "medusaProductId": "prod_01TEST", "title": "Dup", "editorialStatus": "published"});
    let (status, body) = json(
        app.send(Method::POST, "/api/product-content", Some(&admin), Some(dup))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["data"]["errors"][0]["path"], "medusaProductId");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(total, 1);
}

#[tokio::test]
async fn a_failing_audit_write_rolls_the_change_back() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    // Make every audit insert fail for pages (as a full disk or a broken trigger would).
    sqlx::raw_sql(
        "CREATE FUNCTION test_fail_audit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.collection = 'pages' THEN RAISE EXCEPTION 'audit unavailable'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER test_fail_audit BEFORE INSERT ON audit_logs FOR EACH ROW EXECUTE FUNCTION test_fail_audit();",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let before = count(&app, "SELECT count(*) FROM pages").await;
    let (status, body) = json(
        app.send(
            Method::POST,
            "/api/pages",
            Some(&admin),
            Some(json!({"tenant": FASHIONISTA, "title": "Unaudited"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (500, json!({"errors": [{"message": "Something went wrong."}]}))
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM pages").await,
        before,
        "the page was rolled back"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM pages WHERE title = 'Unaudited'").await,
        0
    );
}

#[tokio::test]
async fn oversized_and_mistyped_bodies_are_clear_4xx() {
    let app = TestApp::spawn_on(&common::fresh_database().await, &[("MAX_BODY_BYTES", "2048")]).await;
    let admin = app.admin_token().await;
    let big = json!({"tenant": FASHIONISTA, "title": "Big", "layout": [{"blockType": "richText", "content": {"text": "x".repeat(5000)}}]});
    let (status, body) = json(
        app.send(Method::POST, "/api/pages", Some(&admin), Some(big))
            .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (413, json!({"errors": [{"message": "Request Entity Too Large"}]}))
    );
    let res = app
        .client
        .post(app.url("/api/pages"))
        .header("Authorization", format!("JWT {admin}"))
        .header("Content-Type", "text/plain")
        .body("title=x")
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 415, "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("application/json"));
    let (status, body) = json(
        app.send(Method::POST, "/api/pages", Some(&admin), Some(json!([1, 2])))
            .await,
    )
    .await;
    assert_eq!(
        (status, body),
        (400, sample("bad-json.json")),
        "a JSON body that is not an object"
    );
}

/// A create's audit diff and event bodies are computed by PostgreSQL in the row's own
/// statement (no second statement for them). They must be exactly what the engine computes in
/// Rust from the stored document (`audit::diff`, `parse_stored`): dates in Payload's form,
/// secrets redacted, empty fields left out; the published event only for published rows; for a
/// super admin and for a tenant member alike, and with a collection's own after-change hook.
#[tokio::test]
async fn a_creates_audit_diff_and_event_bodies_are_its_stored_document() {
    use cityos::collections::decl::CollectionDecl;
    use cityos::collections::decls::{integration_endpoints, pages, product_content};
    use cityos::collections::engine::{audit, read};

    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let editor = app
        .member("diff-editor@example.com", FASHIONISTA, &["tenant_admin"])
        .await;
    // A subscriber to every event of the tenant, so the events are written.
    app.subscribe(FASHIONISTA, "custom", &["*"]).await;

    let cases: Vec<(&str, &String, &'static CollectionDecl, Value, bool)> = vec![
        (
            "published page, super admin",
            &admin,
            &pages::DECL,
            json!({"tenant": FASHIONISTA,
            "title": "Diffed Launch", "status": "published", "publishAt": "2026-03-04T05:06:07.891Z",
            "seo": {"title": "Launch"}, "layout": [{"blockType": "hero", "title": "Hi"}]}),
            true,
        ),
        (
            "draft page, tenant admin",
            &editor,
            &pages::DECL,
            json!({"tenant": FASHIONISTA, "title": "Diffed Draft", "status": "draft"}),
            false,
        ),
        (
            "endpoint with a secret",
            &admin,
            &integration_endpoints::DECL,
            json!({"tenant": FASHIONISTA,
            "name": "Diffed Hook", "systemType": "notifications", "baseUrl": "https://hooks.example.sa/x",
            "events": ["pages.created"], "webhookSecret": "whsec_never_in_the_diff"}),
            false,
        ),
        (
            "published product content, tenant admin",
            &editor,
            &product_content::DECL,
            json!({
            "tenant": FASHIONISTA, "medusaProductId": "prod_DIFF", "title": "Diffed Abaya",
            "editorialStatus": "published"}),
            true,
        ),
    ];
    for (case, token, decl, body, published) in cases {
        let (status, created) = json(
            app.send(
                Method::POST,
                &format!("/api/{}?depth=0", decl.slug),
                Some(token),
                Some(body),
            )
            .await,
        )
        .await;
        assert_eq!(status, 201, "{case}: {created}");
        let id: uuid::Uuid = created["doc"]["id"].as_str().unwrap().parse().unwrap();
        let mut conn = app.pool.acquire().await.unwrap();
        let stored = read::flat_by_id(&mut conn, decl, id).await.unwrap().unwrap();

        let diff: Value = sqlx::query_scalar(
            "SELECT diff_summary FROM audit_logs WHERE action = 'create' AND collection = $1 AND doc_id = $2",
        )
        .bind(decl.slug)
        .bind(id.to_string())
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(diff, audit::diff(decl, None, Some(&stored)), "{case}: audit diff");
        assert!(!diff.to_string().contains("whsec"), "{case}: {diff}");

        let events: Vec<(String, Value)> = sqlx::query_as(
            "SELECT payload->>'event', payload->'body'->'data' FROM sync_jobs \
             WHERE job_type = 'deliver_webhook' AND source_doc_id = $1 ORDER BY payload->>'event'",
        )
        .bind(id.to_string())
        .fetch_all(&app.pool)
        .await
        .unwrap();
        let mut expected = vec![format!("{}.created", decl.slug)];
        if published {
            expected.push(format!("{}.published", decl.slug));
        }
        let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(names, expected, "{case}: events");
        for (event, data) in &events {
            assert_eq!(
                data,
                &json!({"collection": decl.slug, "id": id, "tenant": FASHIONISTA, "doc": Value::Object(stored.clone())}),
                "{case}: body of {event}"
            );
        }
    }

    // Deliveries are messages, not coalesced state: editing a document again while its last
    // deliveries are still queued raises new ones (it used to fail the edit).
    let id: String = sqlx::query_scalar("SELECT id::text FROM pages WHERE title = 'Diffed Draft'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for title in ["Diffed Draft 2", "Diffed Draft 3"] {
        let (status, updated) = json(
            app.send(
                Method::PATCH,
                &format!("/api/pages/{id}"),
                Some(&editor),
                Some(json!({"title": title})),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{updated}");
    }
    let deliveries = count(
        &app,
        &format!(
            "SELECT count(*) FROM sync_jobs WHERE source_doc_id = '{id}' AND job_type = 'deliver_webhook'"
        ),
    )
    .await;
    assert_eq!(deliveries, 3, "one delivery per change");
}

/// Values PostgreSQL cannot hold or compare (a NUL character: JSON's `\u0000`, a query's
/// `%00`) are the client's 400 with what was wrong, never a 500, and nothing is written. Found
/// by fuzzing the OpenAPI document (`scripts/fuzz-api.sh`).
#[tokio::test]
async fn values_the_database_cannot_hold_are_400s_and_write_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let pages_before = count(&app, "SELECT count(*) FROM pages").await;
    let audit_before = count(&app, "SELECT count(*) FROM audit_logs").await;

    // In a body: refused with the value's path, before any statement.
    let (status, body) = json(
        app.send(
            Method::POST,
            "/api/pages",
            Some(&admin),
            Some(json!({"tenant": FASHIONISTA, "title": "a\u{0}b"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("\"title\"") && message.contains("NUL"),
        "{message}"
    );
    let (status, created) = json(
        app.send(
            Method::POST,
            "/api/pages",
            Some(&admin),
            Some(json!({"tenant": FASHIONISTA, "title": "Clean"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["doc"]["id"].as_str().unwrap();
    let (status, body) = json(
        app.send(
            Method::PATCH,
            &format!("/api/pages/{id}"),
            Some(&admin),
            Some(json!({"title": "Still clean", "layout": [
                {"blockType": "hero", "title": "ok"},
                {"blockType": "hero", "title": "x\u{0}"},
            ]})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("\"layout.1.title\""),
        "{body}"
    );

    // In a query string: the tenant, a where value, a store.
    for query in [
        "tenant=a%00b",
        "where[title][equals]=a%00b",
        "tenant=fashionista-sa&store=%00",
    ] {
        let (status, body) = json(
            app.send(Method::GET, &format!("/api/pages?{query}"), Some(&admin), None)
                .await,
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["errors"][0]["message"].as_str().unwrap().contains("%00"),
            "{body}"
        );
    }
    // A where in a method-override body reaches PostgreSQL; its refusal is still a 400.
    let res = app
        .client
        .post(app.url("/api/pages"))
        .header("Authorization", format!("JWT {admin}"))
        .header("X-Payload-HTTP-Method-Override", "GET")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("where[title][equals]=a%00b")
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be stored or compared"),
        "{body}"
    );
    // A tenant handle that breaks the handle format names no tenant: no documents.
    let (status, body) = json(
        app.send(Method::GET, "/api/pages?tenant=Not%20A%20Handle", None, None)
            .await,
    )
    .await;
    assert_eq!((status, body["totalDocs"].as_i64()), (200, Some(0)), "{body}");

    assert_eq!(count(&app, "SELECT count(*) FROM pages").await, pages_before + 1);
    assert_eq!(
        count(&app, "SELECT count(*) FROM audit_logs").await,
        audit_before + 1
    );
    let title: String = sqlx::query_scalar("SELECT title FROM pages WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(title, "Clean", "the refused update changed nothing");
    app.stop().await;
}
