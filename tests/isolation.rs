//! Isolation matrix: for every tenant-scoped collection, a tenant admin of A — by JWT and by an
//! A-bound API key, under every context source — can neither read nor change B's private rows.

mod common;

use common::{json, TestApp, FASHIONISTA as A, RIYADH_EATS as B};
use reqwest::Method;
use serde_json::{json, Value};

/// (collection, table, a private row of B created as the owner)
async fn rows_of_b(app: &TestApp) -> Vec<(&'static str, &'static str, String)> {
    let insert = |sql: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(&sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    vec![
        ("stores", "stores", insert(format!("SELECT id::text FROM stores WHERE tenant_id = '{B}' LIMIT 1")).await),
        ("portals", "portals", insert(format!("SELECT id::text FROM portals WHERE tenant_id = '{B}' LIMIT 1")).await),
        ("pages", "pages", insert(format!("SELECT id::text FROM pages WHERE tenant_id = '{B}' AND status = 'draft' LIMIT 1")).await),
        ("posts", "posts", insert(format!("SELECT id::text FROM posts WHERE tenant_id = '{B}' AND status = 'draft' LIMIT 1")).await),
        ("product-content", "product_content", insert(format!("INSERT INTO product_content (tenant_id, medusa_product_id, title) VALUES ('{B}', 'prod_b', 'B draft') RETURNING id::text")).await),
        ("integration-endpoints", "integration_endpoints", insert(format!("INSERT INTO integration_endpoints (tenant_id, name, system_type, base_url) VALUES ('{B}', 'B', 'medusa', 'https://b.test') RETURNING id::text")).await),
        ("api-keys", "api_keys", insert(format!("INSERT INTO api_keys (tenant_id, name, prefix, key_hash, owner_ref, scopes) VALUES ('{B}', 'b', 'dck_00000000000b', repeat('b', 64), 'x', '{{read:*}}') RETURNING id::text")).await),
        ("media", "media", insert(format!("INSERT INTO media (tenant_id, alt, filename, mime_type, filesize, storage_key) VALUES ('{B}', 'b', 'b.png', 'image/png', 1, 'b/b.png') RETURNING id::text")).await),
        ("webhook-logs", "webhook_logs", insert(format!("INSERT INTO webhook_logs (tenant_id, request_id, system_type, direction) VALUES ('{B}', 'rb', 'medusa', 'inbound') RETURNING id::text")).await),
        ("sync-jobs", "sync_jobs", insert(format!("INSERT INTO sync_jobs (tenant_id, job_type, idempotency_key) VALUES ('{B}', 'reconcile', 'kb') RETURNING id::text")).await),
        ("audit-logs", "audit_logs", insert(format!("INSERT INTO audit_logs (tenant_id, actor_type, action, collection) VALUES ('{B}', 'system', 'event', 'x') RETURNING id::text")).await),
    ]
}

#[tokio::test]
async fn no_cross_tenant_reads_or_writes_for_any_collection_credential_or_context() {
    let url = common::fresh_database().await;
    let app = TestApp::spawn_on(&url, &[("CITYOS_BASE_DOMAINS", "cityos.test")]).await;
    let admin = app.admin_token().await;
    let targets = rows_of_b(&app).await;
    let ta = app.member("ta@a.test", A, &["tenant_admin"]).await;
    let (_, key) = json(
        app.send(
            Method::POST,
            "/api/api-keys?depth=0",
            Some(&admin),
            Some(json!({"name": "a-all", "tenant": A, "scopes": ["read:*", "write:*", "delete:*"]})),
        )
        .await,
    )
    .await;
    let key = key["doc"]["key"].as_str().unwrap().to_string();

    // (label, extra query, Host)
    let contexts: &[(&str, &str, &str)] = &[
        ("none", "", "localhost"),
        ("slug of A", "tenant=fashionista-sa", "localhost"),
        ("domain of A", "", "fashionista.sa"),
        ("subdomain of A", "", "fashionista.cityos.test"),
        ("slug of B", "tenant=riyadh-eats", "localhost"),
        ("domain of B", "", "riyadheats.sa"),
    ];
    let credentials: Vec<(&str, (&str, String))> = vec![
        ("tenant admin JWT", ("Authorization", format!("JWT {ta}"))),
        ("A-bound API key", ("X-API-Key", key.clone())),
    ];
    let mut checked = 0;
    for (collection, table, id) in &targets {
        for (cred_name, (header, value)) in &credentials {
            for (ctx_name, query, host) in contexts {
                let sep = |q: &str| {
                    if q.is_empty() {
                        String::new()
                    } else {
                        format!("&{q}")
                    }
                };
                let req = |method: Method, path: String| {
                    app.client
                        .request(method, app.url(&path))
                        .header(*header, value.as_str())
                        .header("Host", *host)
                };
                let what = format!("{collection} / {cred_name} / {ctx_name}");
                // A tenant's stores and media are its public storefront surface: anyone reads them
                // in its context (the data model's default access).
                let public_here = ["stores", "media"].contains(collection) && ctx_name.ends_with("of B");

                let (status, list) = json(
                    req(
                        Method::GET,
                        format!("/api/{collection}?depth=0&limit=0{}", sep(query)),
                    )
                    .send()
                    .await
                    .unwrap(),
                )
                .await;
                if status == 200 && !public_here {
                    let ids: Vec<&str> = list["docs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|d| d["id"].as_str())
                        .collect();
                    assert!(!ids.contains(&id.as_str()), "{what}: B's row listed");
                } else if status != 200 {
                    assert!(status == 403 || status == 401, "{what}: list answered {status}");
                }
                let (status, count) = json(
                    req(
                        Method::GET,
                        format!("/api/{collection}/count?where[id][equals]={id}{}", sep(query)),
                    )
                    .send()
                    .await
                    .unwrap(),
                )
                .await;
                assert!(
                    public_here || status != 200 || count["totalDocs"] == 0,
                    "{what}: B's row counted"
                );
                let status = req(
                    Method::GET,
                    format!("/api/{collection}/{id}?depth=0{}", sep(query)),
                )
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
                assert!(
                    public_here || [403, 404].contains(&status),
                    "{what}: B's row read by id ({status})"
                );
                let status = req(
                    Method::PATCH,
                    format!("/api/{collection}/{id}?depth=0{}", sep(query)),
                )
                .json(&json!({"name": "hijack", "title": "hijack"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
                assert!(
                    [400, 403, 404].contains(&status),
                    "{what}: B's row updated ({status})"
                );
                let (status, bulk) = json(
                    req(
                        Method::PATCH,
                        format!("/api/{collection}?where[id][equals]={id}{}", sep(query)),
                    )
                    .json(&json!({"name": "hijack"}))
                    .send()
                    .await
                    .unwrap(),
                )
                .await;
                assert!(
                    status != 200 || bulk["docs"] == json!([]),
                    "{what}: B's row bulk-updated"
                );
                let status = req(Method::DELETE, format!("/api/{collection}/{id}{}", sep(query)))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                assert!(
                    [400, 403, 404].contains(&status),
                    "{what}: B's row deleted ({status})"
                );
                checked += 1;
            }
        }
        let still: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE id = $1::uuid"))
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(still, 1, "{collection}: B's row is gone");
        let changed: Option<Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t) FROM {table} t WHERE id = $1::uuid AND to_jsonb(t)::text LIKE '%hijack%'"
        ))
        .bind(id)
        .fetch_optional(&app.pool)
        .await
        .unwrap();
        assert!(changed.is_none(), "{collection}: B's row was changed");
    }
    assert_eq!(checked, 11 * 2 * 6);

    // In B's storefront context a member of A sees B's tenant like anyone else: public fields only.
    let res = app
        .client
        .get(app.url(&format!("/api/tenants/{B}?depth=0")))
        .header("Authorization", format!("JWT {ta}"))
        .header("Host", "riyadheats.sa")
        .send()
        .await
        .unwrap();
    let (status, tenant) = json(res).await;
    assert_eq!(status, 200);
    assert!(
        tenant.get("billingEmail").is_none(),
        "non-public field shown to a non-member: {tenant}"
    );

    // Creating with B's id in the body is refused, for every writable collection.
    for (collection, body) in [
        ("pages", json!({"tenant": B, "title": "x"})),
        ("posts", json!({"tenant": B, "title": "x"})),
        ("stores", json!({"tenant": B, "handle": "x", "name": "x"})),
        (
            "portals",
            json!({"tenant": B, "name": "x", "portalType": "public", "allowedRoles": ["public"]}),
        ),
        (
            "product-content",
            json!({"tenant": B, "medusaProductId": "p", "title": "x"}),
        ),
        (
            "integration-endpoints",
            json!({"tenant": B, "name": "x", "systemType": "custom", "baseUrl": "https://x.test"}),
        ),
        (
            "api-keys",
            json!({"tenant": B, "name": "x", "scopes": ["read:*"]}),
        ),
    ] {
        let (status, _) = json(
            app.send(Method::POST, &format!("/api/{collection}"), Some(&ta), Some(body))
                .await,
        )
        .await;
        assert!(
            [400, 403].contains(&status),
            "{collection}: created in B ({status})"
        );
    }
    let created_in_b: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM pages WHERE tenant_id = '{B}' AND title = 'x'"
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(created_in_b, 0);
}
