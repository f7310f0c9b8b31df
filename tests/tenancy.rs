//! Tenant context from the request: signed gateway headers, custom domains, subdomains, slug and
//! the super admin's cookie — the seed guide's tests 1 and 3 literally.

mod common;

use common::{json, TestApp, FASHIONISTA, RIYADH_EATS, SAUDI};
use hmac::Mac;
use reqwest::Method;
use serde_json::{json, Value};

const SIGNATURE_SECRET: &str = "test-signature-secret-0123456789abcdef";

async fn app() -> TestApp {
    let url = common::fresh_database().await;
    TestApp::spawn_on(&url, &[("CITYOS_BASE_DOMAINS", "cityos.test")]).await
}

fn get_host(app: &TestApp, path: &str, host: &str) -> reqwest::RequestBuilder {
    app.client.get(app.url(path)).header("Host", host)
}

async fn create(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let (status, created) = json(app.send(Method::POST, path, Some(token), Some(body)).await).await;
    assert_eq!(status, 201, "{created}");
    created["doc"].clone()
}

fn tenants_of(list: &Value) -> Vec<String> {
    let mut t: Vec<String> = list["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["tenant"].as_str().unwrap().to_string())
        .collect();
    t.sort();
    t.dedup();
    t
}

#[tokio::test]
async fn seed_guide_test_1_isolation_by_domain_and_the_super_admin_cookie() {
    let app = app().await;
    let admin = app.admin_token().await;
    let mut ids = Vec::new();
    for (handle, domain) in [
        ("tenant-a", "tenant-a.example.com"),
        ("tenant-b", "tenant-b.example.com"),
    ] {
        let t = create(
            &app,
            &admin,
            "/api/tenants?depth=0",
            json!({"handle": handle, "name": handle, "country": SAUDI,
            "status": "active", "customDomains": [domain]}),
        )
        .await;
        let id = t["id"].as_str().unwrap().to_string();
        create(
            &app,
            &admin,
            "/api/pages?depth=0",
            json!({"tenant": id, "title": format!("Home of {handle}"), "status": "published"}),
        )
        .await;
        create(
            &app,
            &admin,
            "/api/pages?depth=0",
            json!({"tenant": id, "title": format!("Draft of {handle}")}),
        )
        .await;
        ids.push(id);
    }
    let (a, b) = (ids[0].clone(), ids[1].clone());

    let (_, on_a) = json(
        get_host(&app, "/api/pages?depth=0", "tenant-a.example.com")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tenants_of(&on_a), vec![a.clone()]);
    assert_eq!(on_a["totalDocs"], 1, "only the published page: {on_a}");
    let (_, on_b) = json(
        get_host(&app, "/api/pages?depth=0", "tenant-b.example.com:443")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tenants_of(&on_b), vec![b.clone()]);

    // Super admin: everything without a context, one tenant with the cookie.
    let (_, all) = json(
        app.get_as(
            &format!("/api/pages?depth=0&limit=0&where[tenant][in]={a},{b}"),
            &admin,
        )
        .await,
    )
    .await;
    assert_eq!(all["totalDocs"], 4);
    let res = app
        .client
        .get(app.url("/api/pages?depth=0&limit=0"))
        .header("Authorization", format!("JWT {admin}"))
        .header("Cookie", format!("cityos-selected-tenant={b}"))
        .send()
        .await
        .unwrap();
    let (_, selected) = json(res).await;
    assert_eq!(tenants_of(&selected), vec![b.clone()]);
    assert_eq!(selected["totalDocs"], 2, "drafts included for the super admin");

    // A non-super-admin's cookie is ignored.
    let editor = app.member("ed@tenant-a.test", &a, &["content_editor"]).await;
    let res = app
        .client
        .get(app.url("/api/pages?depth=0&limit=0"))
        .header("Authorization", format!("JWT {editor}"))
        .header("Cookie", format!("cityos-selected-tenant={b}"))
        .send()
        .await
        .unwrap();
    let (_, mine) = json(res).await;
    assert_eq!(tenants_of(&mine), vec![a.clone()]);

    // The audit log records where the context came from.
    let res = app
        .client
        .post(app.url("/api/pages"))
        .header("Authorization", format!("JWT {editor}"))
        .header("Host", "tenant-a.example.com")
        .json(&json!({"title": "Via the domain"}))
        .send()
        .await
        .unwrap();
    let (status, page) = json(res).await;
    assert_eq!(status, 201, "{page}");
    let source: String = sqlx::query_scalar("SELECT context_source FROM audit_logs WHERE doc_id = $1")
        .bind(page["doc"]["id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(source, "custom_domain");
}

#[tokio::test]
async fn seed_guide_test_3_a_tenant_admin_is_denied_another_tenants_data() {
    let app = app().await;
    let admin = app.admin_token().await;
    let ta = app
        .member("ta@fashionista.sa", FASHIONISTA, &["tenant_admin"])
        .await;
    let other: String = sqlx::query_scalar(
        "SELECT id::text FROM pages WHERE tenant_id = $1::uuid AND status = 'draft' LIMIT 1",
    )
    .bind(RIYADH_EATS)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        app.get_as(&format!("/api/pages/{other}"), &ta).await.status(),
        404
    );
    let (status, _) = json(
        app.send(
            Method::PATCH,
            &format!("/api/pages/{other}"),
            Some(&ta),
            Some(json!({"title": "x"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = json(
        app.send(Method::DELETE, &format!("/api/pages/{other}"), Some(&ta), None)
            .await,
    )
    .await;
    assert_eq!(status, 403);
    let (_, list) = json(
        app.get_as(&format!("/api/pages?where[tenant][equals]={RIYADH_EATS}"), &ta)
            .await,
    )
    .await;
    assert_eq!(list["totalDocs"], 0);
    let (_, count) = json(
        app.get_as(
            &format!("/api/pages/count?where[tenant][equals]={RIYADH_EATS}"),
            &ta,
        )
        .await,
    )
    .await;
    assert_eq!(count["totalDocs"], 0);
    // Even with the other tenant's domain as Host.
    let res = app
        .client
        .get(app.url(&format!("/api/pages/{other}")))
        .header("Authorization", format!("JWT {ta}"))
        .header("Host", "riyadheats.sa")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // super_admin is allowed.
    assert_eq!(
        app.get_as(&format!("/api/pages/{other}"), &admin).await.status(),
        200
    );
}

#[tokio::test]
async fn subdomains_under_a_base_domain_resolve_tenants_and_stores() {
    let app = app().await;
    let (_, t) = json(
        get_host(&app, "/api/pages?depth=0&limit=0", "fashionista.cityos.test")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tenants_of(&t), vec![FASHIONISTA.to_string()]);
    let (_, s) = json(
        get_host(&app, "/api/stores?depth=0", "shop.fashionista.cityos.test")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s["docs"][0]["handle"], "main");
    let (_, none) = json(
        get_host(&app, "/api/pages?depth=0", "nobody.cityos.test")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(none["totalDocs"], 0);
    let (_, custom) = json(
        get_host(&app, "/api/pages?depth=0&limit=0", "riyadheats.sa")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(tenants_of(&custom), vec![RIYADH_EATS.to_string()]);
}

type Headers = Vec<(&'static str, String)>;

fn signed(tenant: &str, store: &str, portal: &str, ts_ms: i64, secret: &str) -> Headers {
    let input = format!("{tenant}:{store}:{portal}:{ts_ms}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let mut h = vec![
        ("x-cityos-tenant-id", tenant.to_string()),
        ("x-cityos-timestamp", ts_ms.to_string()),
        ("x-cityos-sig", hex::encode(mac.finalize().into_bytes())),
    ];
    if !store.is_empty() {
        h.push(("x-cityos-store-id", store.to_string()));
    }
    if !portal.is_empty() {
        h.push(("x-cityos-portal-type", portal.to_string()));
    }
    h
}

#[tokio::test]
async fn signed_gateway_headers_win_and_never_fall_through() {
    let app = app().await;
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let send = |headers: Headers, host: &str| {
        let mut req = get_host(&app, "/api/pages?depth=0&limit=0", host);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    // Good: the headers beat the Host (which names another tenant).
    let (status, body) = json(
        send(
            signed(FASHIONISTA, "", "public", now, SIGNATURE_SECRET),
            "riyadheats.sa",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(tenants_of(&body), vec![FASHIONISTA.to_string()]);
    let store = "60000000-0000-4000-8000-000000000001";
    assert_eq!(
        send(signed(FASHIONISTA, store, "", now, SIGNATURE_SECRET), "x")
            .await
            .unwrap()
            .status(),
        200
    );

    let mut bad = signed(FASHIONISTA, "", "public", now, SIGNATURE_SECRET);
    bad[0].1 = RIYADH_EATS.to_string(); // signature over another tenant
    let cases: Vec<(&str, Headers, &str)> = vec![
        ("bad signature", bad, "Invalid signature on the tenant headers."),
        (
            "wrong secret",
            signed(FASHIONISTA, "", "", now, "another-secret"),
            "Invalid signature on the tenant headers.",
        ),
        (
            "stale",
            signed(FASHIONISTA, "", "", now - 301_000, SIGNATURE_SECRET),
            "The signed tenant headers have expired.",
        ),
        (
            "future",
            signed(FASHIONISTA, "", "", now + 301_000, SIGNATURE_SECRET),
            "The signed tenant headers have expired.",
        ),
        (
            "missing signature",
            signed(FASHIONISTA, "", "", now, SIGNATURE_SECRET)[..2].to_vec(),
            "Incomplete signed tenant headers.",
        ),
        (
            "missing timestamp",
            vec![signed(FASHIONISTA, "", "", now, SIGNATURE_SECRET).remove(2)],
            "Incomplete signed tenant headers.",
        ),
        (
            "unknown tenant",
            signed(
                "00000000-0000-4000-8000-00000000beef",
                "",
                "",
                now,
                SIGNATURE_SECRET,
            ),
            "Unknown tenant in the signed headers.",
        ),
        (
            "store of another tenant",
            signed(RIYADH_EATS, store, "", now, SIGNATURE_SECRET),
            "Unknown store in the signed headers.",
        ),
    ];
    for (name, headers, message) in cases {
        // A valid Host is there too: a refused signature must not fall through to it.
        let (status, body) = json(send(headers, "fashionista.sa").await.unwrap()).await;
        assert_eq!(
            (status, body["errors"][0]["message"].clone()),
            (401, json!(message)),
            "{name}"
        );
    }
    // Replayed later, outside the window: refused.
    let captured = signed(FASHIONISTA, "", "", now - 299_000, SIGNATURE_SECRET);
    assert_eq!(send(captured.clone(), "x").await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        send(captured, "x").await.unwrap().status(),
        401,
        "the same headers replayed after the window"
    );
}

#[tokio::test]
async fn suspended_tenants_are_refused_on_public_surfaces() {
    let app = app().await;
    sqlx::query("UPDATE tenants SET status = 'suspended' WHERE id = $1::uuid")
        .bind(RIYADH_EATS)
        .execute(&app.pool)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while get_host(&app, "/api/pages", "riyadheats.sa")
        .send()
        .await
        .unwrap()
        .status()
        != 403
    {
        assert!(
            std::time::Instant::now() < deadline,
            "suspended tenant still served by its domain"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let admin = app.admin_token().await;
    let res = app
        .client
        .get(app.url("/api/pages"))
        .header("Authorization", format!("JWT {admin}"))
        .header("Host", "riyadheats.sa")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the super admin still manages it");
}
