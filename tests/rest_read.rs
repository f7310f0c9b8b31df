//! Reading over REST: envelopes, pagination, by-id, count, select, depth, errors — compared with
//! the shapes of real Payload 3.90 responses in `tests/fixtures/payload/`.

mod common;

use common::{json, same_keys, sample, TestApp, FASHIONISTA, RIYADH_EATS};
use serde_json::{json, Value};

#[tokio::test]
async fn list_envelope_and_pagination_match_payload() {
    let app = TestApp::spawn().await;
    common::insert_pages(&app.pool, FASHIONISTA, 400).await;
    let admin = app.admin_token().await;
    let base = format!("/api/pages?where[tenant][equals]={FASHIONISTA}&where[title][like]=Bulk&depth=0");

    let (status, body) = json(app.get_as(&format!("{base}&limit=10&page=999"), &admin).await).await;
    assert_eq!(status, 200);
    let expected = sample("list-page-past-end.json");
    assert!(same_keys(&body, &expected));
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    let expected_keys: Vec<&String> = expected.as_object().unwrap().keys().collect();
    assert_eq!(keys, expected_keys, "key order as Payload sends it");
    for k in [
        "hasNextPage",
        "hasPrevPage",
        "limit",
        "nextPage",
        "page",
        "pagingCounter",
        "prevPage",
        "totalDocs",
        "totalPages",
    ] {
        assert_eq!(body[k], expected[k], "{k}");
    }

    let (_, first) = json(
        app.get_as(
            &format!("{base}&limit=2&select[title]=true&select[slug]=true"),
            &admin,
        )
        .await,
    )
    .await;
    let s = sample("list-select.json");
    for k in [
        "hasNextPage",
        "hasPrevPage",
        "limit",
        "nextPage",
        "page",
        "pagingCounter",
        "prevPage",
        "totalDocs",
        "totalPages",
    ] {
        assert_eq!(first[k], s[k], "{k}");
    }
    let doc = first["docs"][0].as_object().unwrap();
    let mut doc_keys: Vec<&String> = doc.keys().collect();
    doc_keys.sort();
    assert_eq!(
        doc_keys,
        vec!["id", "slug", "title"],
        "include-select keeps only id + selected"
    );

    let (_, count) = json(
        app.get_as(
            &format!("/api/pages/count?where[tenant][equals]={FASHIONISTA}&where[title][like]=Bulk"),
            &admin,
        )
        .await,
    )
    .await;
    assert_eq!(count, json!({"totalDocs": 400}));

    let (_, none) = json(
        app.get_as("/api/pages?where[title][equals]=no-such-title&page=3", &admin)
            .await,
    )
    .await;
    assert_eq!(none["totalDocs"], 0);
    assert_eq!(none["totalPages"], 1);
    assert_eq!(none["pagingCounter"], 1);
    assert_eq!(none["page"], 3);
    assert_eq!(none["hasPrevPage"], false);

    let (_, all) = json(app.get_as(&format!("{base}&limit=0"), &admin).await).await;
    assert_eq!(all["docs"].as_array().unwrap().len(), 400);
    assert_eq!(
        (
            all["totalDocs"].clone(),
            all["limit"].clone(),
            all["totalPages"].clone()
        ),
        (json!(400), json!(0), json!(1))
    );

    // Pages never overlap: ties on createdAt are broken by id.
    let (_, p1) = json(
        app.get_as(&format!("{base}&limit=50&page=1&sort=status"), &admin)
            .await,
    )
    .await;
    let (_, p2) = json(
        app.get_as(&format!("{base}&limit=50&page=2&sort=status"), &admin)
            .await,
    )
    .await;
    let ids = |v: &Value| {
        v["docs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (a, b) = (ids(&p1), ids(&p2));
    assert!(a.iter().all(|x| !b.contains(x)), "pages overlap");
}

#[tokio::test]
async fn by_id_count_and_not_found_shapes() {
    let app = TestApp::spawn().await;
    let (status, doc) = json(
        app.get(&format!(
            "/api/tenants/{FASHIONISTA}?tenant=fashionista-sa&depth=0"
        ))
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(doc["handle"], "fashionista-sa");
    assert_eq!(doc["country"], common::SAUDI, "depth 0 keeps ids");
    assert!(
        doc.get("billingEmail").is_none(),
        "non-public field hidden from anonymous readers"
    );
    let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    assert_eq!(keys.first().map(|k| k.as_str()), Some("id"));
    assert_eq!(&keys[keys.len() - 2..], ["updatedAt", "createdAt"]);

    for path in [
        "/api/pages/00000000-0000-4000-8000-000000000000".to_string(),
        "/api/pages/not-a-uuid".to_string(),
        format!("/api/tenants/{RIYADH_EATS}?tenant=fashionista-sa"),
    ] {
        let (status, body) = json(app.get(&path).await).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body, sample("not-found.json"), "{path}");
    }
    let (status, body) = json(app.get("/api/does-not-exist").await).await;
    assert_eq!(
        (status, body),
        (404, json!({"message": "Route not found \"/api/does-not-exist\""}))
    );
    let res = app.client.put(app.url("/api/pages/1")).send().await.unwrap();
    assert_eq!(res.status(), 404, "unsupported method is a route-not-found 404");
    let (_, body) = json(res).await;
    assert_eq!(body, json!({"message": "Route not found \"/api/pages/1\""}));
}

#[tokio::test]
async fn depth_populates_through_relationships() {
    let app = TestApp::spawn().await;
    let page = "/api/pages?tenant=fashionista-sa&limit=1&sort=title";
    let (_, d0) = json(app.get(&format!("{page}&depth=0")).await).await;
    assert!(d0["docs"][0]["tenant"].is_string());
    let (_, d1) = json(app.get(&format!("{page}&depth=1")).await).await;
    assert_eq!(d1["docs"][0]["tenant"]["handle"], "fashionista-sa");
    assert!(
        d1["docs"][0]["tenant"]["country"].is_string(),
        "depth 1: the tenant's relations stay ids"
    );
    let (_, d2) = json(app.get(page).await).await;
    assert_eq!(
        d2["docs"][0]["tenant"]["country"]["code"], "SA",
        "default depth 2"
    );
    assert!(d2["docs"][0]["tenant"]["scope"]["country"].is_string());
    let (_, d3) = json(app.get(&format!("{page}&depth=3")).await).await;
    assert_eq!(d3["docs"][0]["tenant"]["scope"]["country"]["code"], "SA");
}

#[tokio::test]
async fn where_errors_and_forms() {
    let app = TestApp::spawn().await;
    let (status, body) = json(app.get("/api/pages?where[nope][equals]=1").await).await;
    assert_eq!(status, 400);
    let expected = sample("where-invalid-path.json");
    assert_eq!(body["errors"][0]["message"], expected["errors"][0]["message"]);
    assert_eq!(body["errors"][0]["data"], expected["errors"][0]["data"]);
    assert_eq!(body["errors"][0]["name"], "QueryError");

    let (status, body) = json(
        app.get("/api/pages?where[nope][equals]=1&where[alsoNope][in]=2")
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["message"],
        "The following path cannot be queried: nope, alsoNope"
    );

    for bad in [
        "where=%7Bbroken",
        "where[createdAt][greater_than]=yesterday-ish",
        "limit=-1",
        "where[title][all][0]=x",
    ] {
        let (status, body) = json(app.get(&format!("/api/countries?{bad}")).await).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["errors"][0]["message"].is_string());
    }
    // The password hash is never queryable.
    let admin = app.admin_token().await;
    let (status, _) = json(
        app.get_as("/api/users?where[password][exists]=true", &admin)
            .await,
    )
    .await;
    assert_eq!(status, 400);

    let json_form = format!(
        "/api/pages?tenant=fashionista-sa&where={}",
        urlencode(&json!({"slug": {"equals": "about"}}).to_string())
    );
    let (_, by_json) = json(app.get(&json_form).await).await;
    let (_, by_brackets) = json(
        app.get("/api/pages?tenant=fashionista-sa&where[slug][equals]=about")
            .await,
    )
    .await;
    assert_eq!(by_json["totalDocs"], 1);
    assert_eq!(by_json["docs"], by_brackets["docs"]);

    // Method override: a long where in a form body.
    let res = app
        .client
        .post(app.url("/api/pages?tenant=fashionista-sa"))
        .header("X-Payload-HTTP-Method-Override", "GET")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("where%5Bslug%5D%5Bequals%5D=about&depth=0")
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 200);
    assert_eq!(body["docs"][0]["slug"], "about");
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn anonymous_callers_see_only_published_content_of_the_resolved_tenant() {
    let app = TestApp::spawn().await;
    let (_, none) = json(app.get("/api/pages").await).await;
    assert_eq!(none["totalDocs"], 0, "no tenant resolved: no tenant content");
    let (_, fashion) = json(app.get("/api/pages?tenant=fashionista-sa&depth=0&limit=0").await).await;
    let docs = fashion["docs"].as_array().unwrap();
    assert!(!docs.is_empty());
    assert!(docs
        .iter()
        .all(|d| d["tenant"] == FASHIONISTA && d["status"] == "published"));
    let (_, other) = json(
        app.get(&format!(
            "/api/pages?tenant=fashionista-sa&where[tenant][equals]={RIYADH_EATS}"
        ))
        .await,
    )
    .await;
    assert_eq!(
        other["totalDocs"], 0,
        "filtering into another tenant finds nothing"
    );
    let (status, body) = json(app.get("/api/users").await).await;
    assert_eq!(
        (status, body),
        (403, sample("forbidden-users-list-unauthenticated.json"))
    );
}

#[tokio::test]
async fn cors_request_id_and_options() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/api/countries"))
        .header("X-Request-Id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(
        res.headers()["access-control-allow-methods"],
        "PUT, PATCH, POST, GET, DELETE, OPTIONS"
    );
    let res = app
        .client
        .get(app.url("/api/countries"))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&generated).is_ok());
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/pages"))
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!((status, body), (200, json!({})));
}

#[tokio::test]
async fn the_tenant_cache_follows_changes_made_anywhere() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, before) = json(app.get("/api/tenants?tenant=riyadh-eats&depth=0").await).await;
    assert_eq!(before["docs"][0]["handle"], "riyadh-eats");
    // Renamed behind the server's back (another instance, or SQL): NOTIFY drops the cache.
    sqlx::query("UPDATE tenants SET handle = 'riyadh-eats-2' WHERE handle = 'riyadh-eats'")
        .execute(&app.pool)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, old) = json(app.get("/api/tenants?tenant=riyadh-eats&depth=0").await).await;
        if old["totalDocs"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stale tenant served after the change"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, renamed) = json(app.get("/api/tenants?tenant=riyadh-eats-2&depth=0").await).await;
    assert_eq!(renamed["totalDocs"], 1);
    // Suspended tenants are refused on public surfaces.
    let (status, _) = json(
        app.send(
            reqwest::Method::PATCH,
            &format!("/api/tenants/{RIYADH_EATS}"),
            Some(&admin),
            Some(json!({"status": "suspended"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while app.get("/api/pages?tenant=riyadh-eats-2").await.status() != 403 {
        assert!(
            std::time::Instant::now() < deadline,
            "suspended tenant still served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_home_page_lists_the_collections_from_the_declarations() {
    let app = TestApp::spawn().await;
    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(html.contains("database ready"));
    for heading in [
        "Geo &#38; Hierarchy",
        "Tenancy",
        "Users &#38; Security",
        "Control Plane",
        "Audit",
    ] {
        assert!(html.contains(heading), "{heading}");
    }
    assert_eq!(html.matches("<tr><td>").count(), 17, "one row per collection");
    assert!(html.contains(r#"href="/api/integration-endpoints""#));
    let css = app.get("/static/app.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(app.get("/nope").await.status(), 404);
}

#[tokio::test]
async fn uploads_inside_blocks_populate_and_vanished_ones_become_null() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let media: String = sqlx::query_scalar(
        "INSERT INTO media (tenant_id, alt, filename, mime_type, filesize, storage_key)
         VALUES ($1::uuid, 'Storefront', 'storefront.jpg', 'image/jpeg', 1234, 'x/storefront.jpg') RETURNING id::text",
    )
    .bind(FASHIONISTA)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let gone = "00000000-0000-4000-8000-0000000000aa";
    let body = json!({"tenant": FASHIONISTA, "title": "With media", "layout": [
        {"blockType": "hero", "title": "Hi", "image": media},
        {"blockType": "media", "media": gone}
    ]});
    let (status, created) = json(
        app.send(
            reqwest::Method::POST,
            "/api/pages?depth=0",
            Some(&admin),
            Some(body),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["doc"]["id"].as_str().unwrap();
    assert_eq!(
        created["doc"]["layout"][0]["image"],
        media.as_str(),
        "depth 0 keeps ids"
    );

    let (_, doc) = json(app.get_as(&format!("/api/pages/{id}?depth=1"), &admin).await).await;
    assert_eq!(doc["layout"][0]["image"]["filename"], "storefront.jpg");
    assert!(doc["layout"][0]["image"]["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/api/media/file/{FASHIONISTA}/storefront.jpg")));
    assert_eq!(
        doc["layout"][1]["media"],
        Value::Null,
        "a vanished upload populates to null"
    );
}
