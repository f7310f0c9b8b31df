//! API keys: shown once, stored only as an HMAC, limited by scope and tenant, revocable,
//! expiring, with usage written in batches.

mod common;

use std::time::{Duration, Instant};

use common::{json, TestApp, FASHIONISTA, RIYADH_EATS};
use reqwest::Method;
use serde_json::{json, Value};

async fn create_key(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, created) = json(
        app.send(Method::POST, "/api/api-keys?depth=0", Some(token), Some(body))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created
}

fn with_key(app: &TestApp, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .header("Authorization", format!("api-keys API-Key {key}"))
}

#[tokio::test]
async fn a_key_is_shown_once_and_stored_only_as_a_hash() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let created = create_key(
        &app,
        &admin,
        json!({"name": "Storefront", "tenant": FASHIONISTA, "scopes": ["read:pages"]}),
    )
    .await;
    let key = created["doc"]["key"].as_str().unwrap().to_string();
    let id = created["doc"]["id"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 81);
    assert!(key.starts_with(created["doc"]["prefix"].as_str().unwrap()));
    assert!(created["doc"].get("keyHash").is_none());
    assert_eq!(created["doc"]["scopes"], json!([{"scope": "read:pages"}]));

    let (_, again) = json(app.get_as(&format!("/api/api-keys/{id}"), &admin).await).await;
    assert!(again.get("key").is_none() && !again.to_string().contains(&key[17..]));
    let (_, list) = json(app.get_as("/api/api-keys", &admin).await).await;
    assert!(!list.to_string().contains(&key[17..]), "never readable again");

    let row: String = sqlx::query_scalar("SELECT row_to_json(k)::text FROM api_keys k WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!row.contains(&key[17..]), "the secret part is not stored");
    let audit: String = sqlx::query_scalar(
        "SELECT string_agg(diff_summary::text, ' ') FROM audit_logs WHERE collection = 'api-keys'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(!audit.contains(&key[17..]), "nor audited");

    // Both header forms authenticate.
    let res = with_key(&app, Method::GET, "/api/pages?depth=0&limit=0", &key)
        .send()
        .await
        .unwrap();
    let (status, pages) = json(res).await;
    assert_eq!(status, 200);
    assert!(pages["docs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["tenant"] == FASHIONISTA));
    assert!(
        pages["docs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["status"] == "draft"),
        "a tenant key reads drafts"
    );
    let res = app
        .client
        .get(app.url("/api/users/me"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    let (_, me) = json(res).await;
    assert_eq!(me["strategy"], "api-key");
    assert_eq!(me["user"]["email"], common::ADMIN_EMAIL, "the owner of the key");
}

#[tokio::test]
async fn scopes_and_tenant_limit_what_a_key_does() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let created = create_key(
        &app,
        &admin,
        json!({"name": "CMS sync", "tenant": FASHIONISTA, "scopes": ["read:pages", "write:pages"]}),
    )
    .await;
    let key = created["doc"]["key"].as_str().unwrap().to_string();

    let res = with_key(&app, Method::POST, "/api/pages", &key)
        .json(&json!({"title": "From a key"}))
        .send()
        .await
        .unwrap();
    let (status, page) = json(res).await;
    assert_eq!(status, 201, "{page}");
    // The key cannot read tenants, so the relationship stays an id (Payload quirk).
    assert_eq!(
        page["doc"]["tenant"], FASHIONISTA,
        "the key's tenant is the default"
    );
    let page_id = page["doc"]["id"].as_str().unwrap().to_string();
    let actor: (String, Option<uuid::Uuid>) = sqlx::query_as(
        "SELECT actor_type, actor_api_key_id FROM audit_logs WHERE doc_id = $1 AND action = 'create'",
    )
    .bind(&page_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(actor.0, "api_key");
    assert_eq!(
        actor.1.unwrap().to_string(),
        created["doc"]["id"].as_str().unwrap()
    );

    let res = with_key(&app, Method::POST, "/api/pages", &key)
        .json(&json!({"title": "Elsewhere", "tenant": RIYADH_EATS}))
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["data"]["errors"][0]["path"], "tenant");
    let res = with_key(
        &app,
        Method::GET,
        &format!("/api/pages?where[tenant][equals]={RIYADH_EATS}"),
        &key,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(json(res).await.1["totalDocs"], 0);
    let res = with_key(&app, Method::DELETE, &format!("/api/pages/{page_id}"), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "no delete:pages scope");
    let res = with_key(&app, Method::GET, "/api/posts", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "no read:posts scope");
    let res = with_key(&app, Method::GET, "/api/api-keys", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // A tenant admin creates keys for its own tenant only.
    let ta = app
        .member("ta@fashionista.sa", FASHIONISTA, &["tenant_admin"])
        .await;
    let (status, _) = json(
        app.send(
            Method::POST,
            "/api/api-keys",
            Some(&ta),
            Some(json!({"name": "x", "scopes": ["read:pages"]})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = json(
        app.send(
            Method::POST,
            "/api/api-keys",
            Some(&ta),
            Some(json!({"name": "y", "tenant": RIYADH_EATS, "scopes": ["read:pages"]})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn revoked_expired_and_wrong_keys_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let created = create_key(
        &app,
        &admin,
        json!({"name": "k", "tenant": FASHIONISTA, "scopes": ["read:*"]}),
    )
    .await;
    let key = created["doc"]["key"].as_str().unwrap().to_string();
    let id = created["doc"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        with_key(&app, Method::GET, "/api/pages", &key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let mut wrong = key.clone();
    let last = if wrong.ends_with('0') { '1' } else { '0' };
    wrong.pop();
    wrong.push(last);
    for bad in [
        wrong.as_str(),
        "dck_000000000000_0000000000000000000000000000000000000000000000000000000000000000",
        "garbage",
    ] {
        let (status, body) = json(
            with_key(&app, Method::GET, "/api/pages", bad)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body),
            (401, json!({"errors": [{"message": "Invalid API key."}]}))
        );
    }

    let (status, patched) = json(
        app.send(
            Method::PATCH,
            &format!("/api/api-keys/{id}"),
            Some(&admin),
            Some(json!({"status": "revoked"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(patched["doc"]["revokedAt"].is_string());
    let (status, body) = json(
        with_key(&app, Method::GET, "/api/pages", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["message"].clone()),
        (401, json!("This API key has been revoked."))
    );
    let (status, body) = json(
        app.send(
            Method::PATCH,
            &format!("/api/api-keys/{id}"),
            Some(&admin),
            Some(json!({"status": "active"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "revocation is final: {body}");

    let second = create_key(&app, &admin, json!({"name": "k2", "tenant": FASHIONISTA, "scopes": ["read:*"], "expiresAt": "2099-01-01T00:00:00Z"})).await;
    let key2 = second["doc"]["key"].as_str().unwrap().to_string();
    assert_eq!(
        with_key(&app, Method::GET, "/api/pages", &key2)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(second["doc"]["id"].as_str().unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = json(
            with_key(&app, Method::GET, "/api/pages", &key2)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if status == 401 {
            assert_eq!(body["errors"][0]["message"], "This API key has expired.");
            break;
        }
        assert!(Instant::now() < deadline, "an expired key kept working");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn usage_is_written_in_batches_not_per_request() {
    let url = common::fresh_database().await;
    let app = TestApp::spawn_on(&url, &[("API_KEY_USAGE_FLUSH_SECONDS", "2")]).await;
    let admin = app.admin_token().await;
    let created = create_key(
        &app,
        &admin,
        json!({"name": "k", "tenant": FASHIONISTA, "scopes": ["read:*"]}),
    )
    .await;
    let key = created["doc"]["key"].as_str().unwrap().to_string();
    let id = created["doc"]["id"].as_str().unwrap().to_string();
    let usage = || {
        let pool = app.pool.clone();
        let id = id.clone();
        async move {
            sqlx::query_as::<_, (i64, Option<time::OffsetDateTime>)>(
                "SELECT usage_count, last_used_at FROM api_keys WHERE id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    // Align with a flush so the requests below land in one batch window.
    let start = usage().await;
    for _ in 0..5 {
        assert_eq!(
            with_key(&app, Method::GET, "/api/countries", &key)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (count, last) = usage().await;
        if count == start.0 + 5 {
            assert!(last.is_some());
            break;
        }
        assert!(count < start.0 + 5, "counted more than once");
        assert!(Instant::now() < deadline, "usage never written");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn refusal_time_does_not_depend_on_how_much_of_the_key_was_right() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let created = create_key(
        &app,
        &admin,
        json!({"name": "t", "tenant": FASHIONISTA, "scopes": ["read:*"]}),
    )
    .await;
    let key = created["doc"]["key"].as_str().unwrap().to_string();
    let mut almost = key.clone();
    almost.pop();
    almost.push(if key.ends_with('a') { 'b' } else { 'a' });
    let mut mostly_wrong = key[..17].to_string();
    mostly_wrong.push_str(&"f".repeat(64));
    let mut samples = (Vec::new(), Vec::new());
    for i in 0..120 {
        for (which, k) in [(0, &almost), (1, &mostly_wrong)] {
            let t = Instant::now();
            let res = with_key(&app, Method::GET, "/api/countries", k)
                .send()
                .await
                .unwrap();
            let d = t.elapsed();
            assert_eq!(res.status(), 401);
            if i >= 20 {
                if which == 0 {
                    samples.0.push(d)
                } else {
                    samples.1.push(d)
                }
            }
        }
    }
    samples.0.sort();
    samples.1.sort();
    let (a, b) = (samples.0[samples.0.len() / 2], samples.1[samples.1.len() / 2]);
    let diff = a.abs_diff(b);
    // A byte-by-byte comparison would not show at HTTP scale either; this guards against a
    // path that does extra work (e.g. a second query) for near misses.
    assert!(
        diff < Duration::from_millis(2) || diff < a.max(b) / 3,
        "medians {a:?} vs {b:?}"
    );
}

#[tokio::test]
async fn revocation_reaches_every_instance_at_once() {
    let url = common::fresh_database().await;
    let a = TestApp::spawn_on(&url, &[]).await;
    let b = TestApp::spawn_on(&url, &[]).await;
    let admin = a.admin_token().await;
    let created = create_key(
        &a,
        &admin,
        json!({"name": "shared", "tenant": FASHIONISTA, "scopes": ["read:*"]}),
    )
    .await;
    let key = created["doc"]["key"].as_str().unwrap().to_string();
    // Instance b resolves (and caches) the key.
    for _ in 0..3 {
        assert_eq!(
            with_key(&b, Method::GET, "/api/pages", &key)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let id = created["doc"]["id"].as_str().unwrap();
    let (status, _) = json(
        a.send(
            Method::PATCH,
            &format!("/api/api-keys/{id}"),
            Some(&admin),
            Some(json!({"status": "revoked"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        with_key(&a, Method::GET, "/api/pages", &key)
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "the revoking instance at once"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while with_key(&b, Method::GET, "/api/pages", &key)
        .send()
        .await
        .unwrap()
        .status()
        != 401
    {
        assert!(
            Instant::now() < deadline,
            "the other instance kept accepting a revoked key"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
