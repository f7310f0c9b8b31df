//! The `where` language, operator × field type: every allowed combination returns exactly the
//! rows an independent SQL query finds; every disallowed one is a 400 in Payload's shape.

mod common;

use common::{json, TestApp, FASHIONISTA, RIYADH_EATS};

async fn seed(app: &TestApp) {
    common::insert_pages(&app.pool, FASHIONISTA, 30).await;
    common::insert_pages(&app.pool, RIYADH_EATS, 12).await;
    sqlx::query(
        "INSERT INTO integration_endpoints (tenant_id, name, system_type, base_url, enabled, timeout_ms)
         VALUES ($1::uuid, 'Medusa', 'medusa', 'https://m.example.sa', true, 5000),
                ($1::uuid, 'Hooks', 'custom', 'https://h.example.sa', false, 15000),
                ($2::uuid, 'ERP', 'erpnext', 'https://erp.example.sa', true, 800)",
    )
    .bind(FASHIONISTA)
    .bind(RIYADH_EATS)
    .execute(&app.pool)
    .await
    .unwrap();
}

async fn truth(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {sql}"))
        .fetch_one(&app.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn allowed_operators_return_the_right_rows() {
    let app = TestApp::spawn().await;
    seed(&app).await;
    let admin = app.admin_token().await;
    let f = FASHIONISTA;
    let cases: Vec<(String, String)> = vec![
        // text
        ("pages?where[title][equals]=Bulk page 7".into(), "pages WHERE title = 'Bulk page 7'".into()),
        ("pages?where[title][not_equals]=Bulk page 7".into(), "pages WHERE title <> 'Bulk page 7' OR title IS NULL".into()),
        ("pages?where[title][in]=Bulk page 1,Bulk page 2".into(), "pages WHERE title IN ('Bulk page 1','Bulk page 2')".into()),
        ("pages?where[title][not_in][0]=Bulk page 1".into(), "pages WHERE title <> 'Bulk page 1'".into()),
        ("pages?where[title][like]=page 1".into(), "pages WHERE title ILIKE '%page%' AND title ILIKE '%1%'".into()),
        ("pages?where[title][not_like]=bulk".into(), "pages WHERE title NOT ILIKE '%bulk%'".into()),
        ("pages?where[title][contains]=GE 2".into(), "pages WHERE title ILIKE '%ge 2%'".into()),
        ("pages?where[title][greater_than]=Bulk page 5".into(), "pages WHERE title > 'Bulk page 5'".into()),
        ("pages?where[title][exists]=true".into(), "pages WHERE title IS NOT NULL".into()),
        // select
        ("pages?where[status][equals]=published".into(), "pages WHERE status = 'published'".into()),
        ("pages?where[status][in][0]=draft".into(), "pages WHERE status = 'draft'".into()),
        // date
        ("pages?where[publishedAt][exists]=false".into(), "pages WHERE published_at IS NULL".into()),
        ("pages?where[publishedAt][exists]=true".into(), "pages WHERE published_at IS NOT NULL".into()),
        ("pages?where[createdAt][greater_than]=2000-01-01".into(), "pages WHERE created_at > '2000-01-01'".into()),
        ("pages?where[createdAt][less_than_equal]=2000-01-01T00:00:00.000Z".into(), "pages WHERE created_at <= '2000-01-01'".into()),
        // relationship, and through it
        (format!("pages?where[tenant][equals]={f}"), format!("pages WHERE tenant_id = '{f}'")),
        (format!("pages?where[tenant][not_in]={f}"), format!("pages WHERE tenant_id <> '{f}'")),
        ("pages?where[tenant.handle][equals]=riyadh-eats".into(), format!("pages WHERE tenant_id = '{RIYADH_EATS}'")),
        ("pages?where[tenant.country.code][equals]=SA".into(), "pages".into()),
        ("pages?where[store][exists]=false".into(), "pages WHERE store_id IS NULL".into()),
        ("pages?where[store][equals]=null".into(), "pages WHERE store_id IS NULL".into()),
        ("pages?where[id][equals]=not-a-uuid".into(), "pages WHERE false".into()),
        // or / and nesting
        (
            format!("pages?where[or][0][status][equals]=draft&where[or][1][and][0][tenant][equals]={f}&where[or][1][and][1][title][like]=Bulk"),
            format!("pages WHERE status = 'draft' OR (tenant_id = '{f}' AND title ILIKE '%Bulk%')"),
        ),
        // number
        ("integration-endpoints?where[timeoutMs][greater_than]=1000".into(), "integration_endpoints WHERE timeout_ms > 1000".into()),
        ("integration-endpoints?where[timeoutMs][in]=800,5000".into(), "integration_endpoints WHERE timeout_ms IN (800, 5000)".into()),
        ("integration-endpoints?where[timeoutMs][like]=5000".into(), "integration_endpoints WHERE timeout_ms = 5000".into()),
        ("integration-endpoints?where[timeoutMs][equals]=abc".into(), "integration_endpoints WHERE timeout_ms IS NULL".into()),
        // checkbox
        ("integration-endpoints?where[enabled][equals]=TRUE".into(), "integration_endpoints WHERE enabled".into()),
        ("integration-endpoints?where[enabled][not_equals]=true".into(), "integration_endpoints WHERE NOT enabled".into()),
        // hasMany (scalar list)
        ("posts?where[tags][contains]=riyadh".into(), "posts WHERE 'riyadh' = ANY(tags)".into()),
        ("posts?where[tags][in]=riyadh,fashion".into(), "posts WHERE tags && ARRAY['riyadh','fashion']".into()),
        ("posts?where[tags][exists]=false".into(), "posts WHERE cardinality(tags) = 0".into()),
        // point
        ("stores?where[location][near]=46.6753,24.7136,5000".into(), "stores WHERE ST_DWithin(location, ST_MakePoint(46.6753,24.7136)::geography, 5000)".into()),
        ("stores?where[location][near]=0,0,1000".into(), "stores WHERE false".into()),
        (
            "stores?where[location][within][type]=Polygon&where[location][within][coordinates][0][0][0]=46&where[location][within][coordinates][0][0][1]=24&where[location][within][coordinates][0][1][0]=47&where[location][within][coordinates][0][1][1]=24&where[location][within][coordinates][0][2][0]=47&where[location][within][coordinates][0][2][1]=25&where[location][within][coordinates][0][3][0]=46&where[location][within][coordinates][0][3][1]=25&where[location][within][coordinates][0][4][0]=46&where[location][within][coordinates][0][4][1]=24".into(),
            "stores WHERE ST_Within(location::geometry, ST_GeomFromText('POLYGON((46 24,47 24,47 25,46 25,46 24))', 4326))".into(),
        ),
        // json path, blocks, child-table arrays
        ("tenants?where[metadata.demo][equals]=true".into(), "tenants WHERE metadata->>'demo' = 'true'".into()),
        ("pages?where[layout.blockType][equals]=hero".into(), "pages WHERE layout @> '[{\"blockType\":\"hero\"}]'".into()),
        ("tenants?where[subdomains.subdomain][equals]=fashionista".into(), format!("tenants WHERE id = '{f}'")),
        ("stores?where[customDomains.domain][like]=shop".into(), "stores WHERE id IN (SELECT store_id FROM domains WHERE kind = 'custom' AND hostname ILIKE '%shop%')".into()),
    ];
    for (query, sql) in cases {
        let expected = truth(&app, &sql).await;
        assert!(expected >= 0);
        let path = format!("/api/{}&limit=0&depth=0", query.replace(' ', "%20"));
        let (status, body) = json(app.get_as(&path, &admin).await).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(body["totalDocs"], expected, "{query} (truth: {sql})");
        let (_, count) = json(app.get_as(&path.replacen('?', "/count?", 1), &admin).await).await;
        assert_eq!(
            count["totalDocs"], expected,
            "count agrees with the list: {query}"
        );
    }
}

#[tokio::test]
async fn disallowed_combinations_are_400() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for query in [
        "integration-endpoints?where[enabled][like]=x",
        "integration-endpoints?where[enabled][greater_than]=true",
        "integration-endpoints?where[enabled][equals]=maybe",
        "stores?where[location][equals]=1",
        "stores?where[location][near]=abc,def",
        "stores?where[location][within]=notgeojson",
        "pages?where[title][near]=1,2,3",
        "pages?where[publishedAt][contains]=2026",
        "pages?where[publishedAt][greater_than]=not-a-date",
        "posts?where[tags][greater_than]=a",
        "tenants?where[metadata][equals]=x",
        "pages?where[title][all][0]=x",
        "pages?where[embedding][exists]=true",
    ] {
        let (status, body) = json(app.get_as(&format!("/api/{query}"), &admin).await).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["errors"][0]["name"], "QueryError", "{query}: {body}");
        assert!(
            body["errors"][0]["data"][0]["path"].is_string(),
            "{query}: {body}"
        );
    }
    // Unknown operators are ignored (Payload quirk): the condition disappears.
    let (status, body) = json(
        app.get_as("/api/countries?where[code][sounds_like]=xx", &admin)
            .await,
    )
    .await;
    assert_eq!((status, body["totalDocs"].clone()), (200, serde_json::json!(1)));
}
