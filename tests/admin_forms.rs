//! The admin UI over plain HTTP: every collection's generated form, sign-in, CSRF, the
//! no-access page, inline validation errors with the typed values kept, tenant isolation.

mod common;

use cityos::collections::decl::{Kind, Visibility};
use cityos::collections::Registry;
use common::{TestApp, ADMIN_EMAIL, ADMIN_PASSWORD, FASHIONISTA, RIYADH_EATS};

/// Signs in through the admin's form and returns the session cookie.
async fn admin_login(app: &TestApp, email: &str, password: &str) -> String {
    let res = app
        .client
        .post(app.url("/admin/login"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "sign-in as {email}");
    assert_eq!(res.headers()["location"], "/admin");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_string()
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> (u16, String) {
    let res = app
        .client
        .get(app.url(path))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn post(
    app: &TestApp,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let res = app
        .client
        .post(app.url(path))
        .header("Cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    (status, res.text().await.unwrap(), location)
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a CSRF field") + 20;
    html[at..at + 64].to_string()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
}

#[tokio::test]
async fn every_collection_has_a_create_form_with_a_label_for_every_field() {
    let app = TestApp::spawn().await;
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let registry = Registry::new();
    let mut checked = 0;
    for decl in registry.all() {
        let (status, html) = page(&app, &cookie, &format!("/admin/c/{}/new", decl.slug)).await;
        assert_eq!(status, 200, "{}: {html}", decl.slug);
        assert!(
            html.contains("<form method=\"post\" class=\"doc\""),
            "{}",
            decl.slug
        );
        for f in decl.fields.iter().filter(|f| f.visibility != Visibility::Hidden) {
            let wrapper = format!("data-field=\"{}\"", f.name);
            let at = html
                .find(&wrapper)
                .unwrap_or_else(|| panic!("{}: field {} not rendered", decl.slug, f.name));
            let block = &html[at..];
            let label = format!(">{}", esc(f.label));
            assert!(
                block[..block.len().min(600)].contains(&label),
                "{}: {} has no label",
                decl.slug,
                f.name
            );
            let id = format!("f-{}", f.name.replace('.', "-"));
            // Simple inputs: a <label for> pointing at an element with that id.
            if !matches!(
                f.kind,
                Kind::Rows(_)
                    | Kind::Blocks(_)
                    | Kind::Child(_)
                    | Kind::Point
                    | Kind::List { options: Some(_), .. }
            ) && f.writable()
            {
                assert!(
                    html.contains(&format!("for=\"{id}\"")),
                    "{}: {} label for",
                    decl.slug,
                    f.name
                );
            }
            assert!(
                html.contains(&format!("id=\"{id}\"")),
                "{}: {} input id",
                decl.slug,
                f.name
            );
            checked += 1;
        }
        // Secrets and passwords are never pre-filled.
        for f in decl
            .fields
            .iter()
            .filter(|f| matches!(f.kind, Kind::Secret | Kind::Password))
        {
            assert!(
                html.contains(&format!("type=\"password\" name=\"{}\"", f.name)),
                "{}",
                f.name
            );
        }
    }
    assert!(checked > 150, "only {checked} fields checked");
    app.stop().await;
}

#[tokio::test]
async fn sign_in_errors_keep_the_email_and_anonymous_users_are_sent_to_sign_in() {
    let app = TestApp::spawn().await;
    let res = app.get("/admin").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/admin/login");
    let res = app
        .client
        .post(app.url("/admin/login"))
        .form(&[("email", ADMIN_EMAIL), ("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("set-cookie").is_none());
    let html = res.text().await.unwrap();
    assert!(html.contains("The email or password provided is incorrect."));
    assert!(html.contains(&format!("value=\"{ADMIN_EMAIL}\"")));
    // The same lockout as the REST login: a failed admin sign-in counts there.
    let attempts: i32 = sqlx::query_scalar("SELECT login_attempts FROM users WHERE email = $1")
        .bind(ADMIN_EMAIL)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 1);
    app.stop().await;
}

#[tokio::test]
async fn csrf_is_required_and_sign_out_revokes_the_session() {
    let app = TestApp::spawn().await;
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, html) = page(&app, &cookie, "/admin/c/countries/new").await;
    let csrf = csrf_of(&html);
    // No token, a wrong token: refused before anything is written.
    for form in [
        vec![("code", "QQ"), ("name", "Nowhere")],
        vec![("_csrf", "00"), ("code", "QQ"), ("name", "Nowhere")],
    ] {
        let (status, body, _) = post(&app, &cookie, "/admin/c/countries/new", &form).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("The form expired"));
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM countries WHERE name = 'Nowhere'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // Sign out with the token: the session is revoked, the old cookie opens nothing.
    let (status, _, location) = post(&app, &cookie, "/admin/logout", &[("_csrf", &csrf)]).await;
    assert_eq!((status, location.as_deref()), (303, Some("/admin/login")));
    let res = app
        .client
        .get(app.url("/admin"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = app
        .client
        .get(app.url("/api/users/me"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    let me: serde_json::Value = res.json().await.unwrap();
    assert!(me["user"].is_null(), "{me}");
    app.stop().await;
}

#[tokio::test]
async fn a_user_without_an_admin_role_sees_no_access() {
    let app = TestApp::spawn().await;
    // A user with no membership and no global role.
    let hash = cityos::auth::password::hash("member-password-123").unwrap();
    sqlx::query("INSERT INTO users (email, external_auth_provider, password_hash) VALUES ('shopper@example.com', 'local', $1)")
        .bind(hash)
        .execute(&app.pool)
        .await
        .unwrap();
    let cookie = admin_login(&app, "shopper@example.com", "member-password-123").await;
    let (status, html) = page(&app, &cookie, "/admin").await;
    assert_eq!(status, 403);
    assert!(html.contains("No access") && html.contains("no administrative role"));
    let (status, _) = page(&app, &cookie, "/admin/c/pages").await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test]
async fn validation_errors_are_shown_beside_their_fields_with_the_typed_values() {
    let app = TestApp::spawn().await;
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, html) = page(&app, &cookie, "/admin/c/pages/new").await;
    let csrf = csrf_of(&html);
    let form = [
        ("_csrf", csrf.as_str()),
        ("tenant", FASHIONISTA),
        ("title", ""),
        ("slug", "Not A Slug"),
        ("seo.title", "Typed SEO title"),
        ("status", "draft"),
    ];
    let (status, html, _) = post(&app, &cookie, "/admin/c/pages/new", &form).await;
    assert_eq!(status, 422, "{html}");
    // The engine's own messages, each next to its input.
    let title = html.find("data-field=\"title\"").unwrap();
    assert!(
        html[title..title + 800].contains("This field is required."),
        "{}",
        &html[title..title + 800]
    );
    assert!(html[title..title + 800].contains("aria-invalid=\"true\""));
    let slug = html.find("data-field=\"slug\"").unwrap();
    assert!(html[slug..slug + 800].contains("class=\"error\""));
    assert!(html.contains("value=\"Not A Slug\""));
    assert!(html.contains("value=\"Typed SEO title\""));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pages WHERE seo_title = 'Typed SEO title'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_page_with_blocks_is_created_reordered_and_published_through_the_engine() {
    let app = TestApp::spawn().await;
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, html) = page(&app, &cookie, "/admin/c/pages/new").await;
    let csrf = csrf_of(&html);
    let base = vec![
        ("_csrf", csrf.as_str()),
        ("tenant", FASHIONISTA),
        ("title", "Admin blocks"),
        ("slug", "admin-blocks"),
        ("status", "draft"),
        ("_present", "layout"),
        ("layout.0._row", "1"),
        ("layout.0.blockType", "hero"),
        ("layout.0.title", "First hero"),
        ("layout.1._row", "1"),
        ("layout.1.blockType", "cta"),
        ("layout.1.label", "Buy"),
        ("layout.1.link", "/buy"),
    ];
    // "Move down" re-renders without saving, rows swapped.
    let mut moved = base.clone();
    moved.push(("_op", "down:layout:0"));
    let (status, html, _) = post(&app, &cookie, "/admin/c/pages/new", &moved).await;
    assert_eq!(status, 200);
    let cta = html.find("value=\"Buy\"").unwrap();
    let hero = html.find("value=\"First hero\"").unwrap();
    assert!(cta < hero, "the cta block comes first now");
    // Save in the new order, published.
    let mut form: Vec<(&str, &str)> = base
        .iter()
        .map(|(k, v)| match *k {
            "status" => (*k, "published"),
            _ => (*k, *v),
        })
        .filter(|(k, _)| !k.starts_with("layout."))
        .collect();
    form.extend([
        ("layout.0._row", "1"),
        ("layout.0.blockType", "cta"),
        ("layout.0.label", "Buy"),
        ("layout.0.link", "/buy"),
        ("layout.1._row", "1"),
        ("layout.1.blockType", "hero"),
        ("layout.1.title", "First hero"),
    ]);
    let (status, body, location) = post(&app, &cookie, "/admin/c/pages/new", &form).await;
    assert_eq!(status, 303, "{body}");
    let id = location
        .unwrap()
        .split('/')
        .nth(4)
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    // Read back over REST: the same document the API serves, hooks and audit applied.
    let token = app.admin_token().await;
    let (status, doc) = common::json(app.get_as(&format!("/api/pages/{id}"), &token).await).await;
    assert_eq!(status, 200);
    assert_eq!(doc["status"], "published");
    assert_eq!(doc["layout"][0]["blockType"], "cta");
    assert_eq!(doc["layout"][1]["title"], "First hero");
    assert!(doc["publishedAt"].is_string(), "the publish hook ran: {doc}");
    let audits: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE collection = 'pages' AND doc_id = $1")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(audits, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_admin_sees_only_its_tenant_in_lists_pickers_and_by_url() {
    let app = TestApp::spawn().await;
    common::insert_pages(&app.pool, RIYADH_EATS, 3).await;
    common::insert_pages(&app.pool, FASHIONISTA, 2).await;
    app.member("ta@fashionista.test", FASHIONISTA, &["tenant_admin"])
        .await;
    let cookie = admin_login(&app, "ta@fashionista.test", "member-password-123").await;
    let (status, html) = page(&app, &cookie, "/admin/c/pages?limit=100").await;
    assert_eq!(status, 200);
    let riyadh_page: String =
        sqlx::query_scalar("SELECT id::text FROM pages WHERE tenant_id = $1::uuid LIMIT 1")
            .bind(RIYADH_EATS)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(!html.contains(&riyadh_page));
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM pages WHERE tenant_id = $1::uuid")
        .bind(FASHIONISTA)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(html.matches("<tr data-id=").count() as i64, own);
    // The tenant picker on a new page offers its own tenant only.
    let (_, form) = page(&app, &cookie, "/admin/c/pages/new").await;
    assert!(form.contains(FASHIONISTA) && !form.contains(RIYADH_EATS));
    // By URL: another tenant's page is not found.
    let (status, _) = page(&app, &cookie, &format!("/admin/c/pages/{riyadh_page}")).await;
    assert_eq!(status, 404);
    // No tenant selector for a non-super admin.
    assert!(!html.contains("id=\"tenant-select\""));
    app.stop().await;
}

#[tokio::test]
async fn an_api_key_is_shown_once_after_create() {
    let app = TestApp::spawn().await;
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, html) = page(&app, &cookie, "/admin/c/api-keys/new").await;
    let csrf = csrf_of(&html);
    let form = [
        ("_csrf", csrf.as_str()),
        ("name", "Admin-made key"),
        ("tenant", FASHIONISTA),
        ("scopes", "read:pages"),
    ];
    let (status, html, _) = post(&app, &cookie, "/admin/c/api-keys/new", &form).await;
    assert_eq!(status, 201, "{html}");
    let marker = "id=\"api-key\" readonly value=\"";
    let at = html.find(marker).unwrap() + marker.len();
    let key = html[at..].split('"').next().unwrap().to_string();
    assert_eq!(key.len(), 81);
    // The key works on the REST side, and the edit page never shows it again.
    let res = app
        .client
        .get(app.url("/api/pages?limit=1"))
        .header("Authorization", format!("api-keys API-Key {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let id: String = sqlx::query_scalar("SELECT id::text FROM api_keys WHERE name = 'Admin-made key'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (_, again) = page(&app, &cookie, &format!("/admin/c/api-keys/{id}")).await;
    assert!(!again.contains(&key[17..]));
    app.stop().await;
}

#[tokio::test]
async fn arabic_renders_right_to_left_and_static_files_are_cached() {
    let app = TestApp::spawn().await;
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let res = app
        .client
        .get(app.url("/admin"))
        .header("Cookie", &cookie)
        .header("Accept-Language", "ar-SA,ar;q=0.9")
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    assert!(html.contains("<html lang=\"ar\" dir=\"rtl\">"));
    assert!(html.contains("لوحة المعلومات"));
    assert!(
        html.contains(">الصفحات</a>"),
        "collection names in Arabic in the navigation"
    );
    // Forms and lists name the declared fields in Arabic too.
    let arabic = |path: &'static str| {
        let app = &app;
        let cookie = cookie.clone();
        async move {
            app.client
                .get(app.url(path))
                .header("Cookie", cookie)
                .header("Accept-Language", "ar")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let form = arabic("/admin/c/pages/new").await;
    assert!(
        form.contains(">العنوان <span class=\"req\""),
        "the Title field's label"
    );
    assert!(form.contains(">وصف SEO</label>"), "{form}");
    assert!(!form.contains(">Title <span"), "no English field label left");
    let list = arabic("/admin/c/pages").await;
    assert!(list.contains("<h1>الصفحات</h1>"));
    // The switch wins over the header.
    let res = app.get("/admin/lang?to=en&back=/admin/c/pages").await;
    assert_eq!(res.headers()["location"], "/admin/c/pages");
    let res = app.get("/admin/lang?to=ar&back=https://evil.example").await;
    assert_eq!(res.headers()["location"], "/admin");
    for path in ["/static/admin.css", "/static/htmx.min.js"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200);
        assert!(res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age"));
    }
    app.stop().await;
}

async fn webhook_log(app: &TestApp, signature_valid: bool) -> String {
    sqlx::query_scalar(
        "INSERT INTO webhook_logs (request_id, system_type, direction, tenant_id, event_type, status, headers,
                                   signature_valid, raw_body)
         VALUES (gen_random_uuid()::text, 'medusa', 'inbound', $1::uuid, 'order.placed', 'failed',
                 '{\"x-medusa-signature\":\"abc\"}', $2, '{}')
         RETURNING id::text",
    )
    .bind(FASHIONISTA)
    .bind(signature_valid)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn jobs_for_log(app: &TestApp, id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM sync_jobs WHERE webhook_log_id = $1::uuid AND job_type = 'process_webhook'
            AND status = 'queued'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn webhook_log_replay_queues_verified_deliveries_only() {
    let app = TestApp::spawn().await;
    let id = webhook_log(&app, true).await;
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, html) = page(&app, &cookie, &format!("/admin/c/webhook-logs/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("x-medusa-signature"), "headers are shown");
    assert!(html.contains(&format!("action=\"/admin/c/webhook-logs/{id}/action/replay\"")));
    let csrf = csrf_of(&html);
    let replay = format!("/admin/c/webhook-logs/{id}/action/replay");
    // Without the token nothing runs.
    let (status, _, _) = post(&app, &cookie, &replay, &[]).await;
    assert_eq!(status, 403);
    assert_eq!(jobs_for_log(&app, &id).await, 0);
    let (status, _, location) = post(&app, &cookie, &replay, &[("_csrf", &csrf)]).await;
    assert_eq!(status, 303);
    assert_eq!(
        location.unwrap(),
        format!("/admin/c/webhook-logs/{id}?msg=queued")
    );
    assert_eq!(jobs_for_log(&app, &id).await, 1, "the handler is queued again");
    let (_, html) = page(&app, &cookie, &format!("/admin/c/webhook-logs/{id}?msg=queued")).await;
    assert!(
        html.contains("job queue picks it up"),
        "the outcome is said in words"
    );
    // Pressing it again while that replay waits queues nothing more.
    let (_, _, location) = post(&app, &cookie, &replay, &[("_csrf", &csrf)]).await;
    assert_eq!(
        location.unwrap(),
        format!("/admin/c/webhook-logs/{id}?msg=refused")
    );
    assert_eq!(jobs_for_log(&app, &id).await, 1);

    // A delivery whose signature failed is never processed, not even by replay.
    let forged = webhook_log(&app, false).await;
    let (_, _, location) = post(
        &app,
        &cookie,
        &format!("/admin/c/webhook-logs/{forged}/action/replay"),
        &[("_csrf", &csrf)],
    )
    .await;
    assert_eq!(
        location.unwrap(),
        format!("/admin/c/webhook-logs/{forged}?msg=refused")
    );
    assert_eq!(jobs_for_log(&app, &forged).await, 0);

    // The dashboard counts deliveries by status.
    let (_, dash) = page(&app, &cookie, "/admin").await;
    assert!(dash.contains("/admin/c/webhook-logs?f.status="));
    app.stop().await;
}

#[tokio::test]
async fn dead_jobs_are_retried_and_waiting_jobs_cancelled_from_the_admin() {
    let app = TestApp::spawn().await;
    let job = |status: &'static str, key: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "INSERT INTO sync_jobs (job_type, status, tenant_id, source_collection, source_doc_id,
                                        target_system, idempotency_key, attempts, error_message)
                 VALUES ('payload_to_medusa', $1, $2::uuid, 'product-content', $3, 'medusa', $3, 8, 'boom')
                 RETURNING id::text",
            )
            .bind(status)
            .bind(FASHIONISTA)
            .bind(key)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let dead = job("dead", "doc-dead").await;
    let waiting = job("queued", "doc-waiting").await;
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, html) = page(&app, &cookie, &format!("/admin/c/sync-jobs/{dead}")).await;
    let csrf = csrf_of(&html);
    let act = |id: &str, action: &str| format!("/admin/c/sync-jobs/{id}/action/{action}");
    let status_of = |id: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_as::<_, (String, i32)>("SELECT status, attempts FROM sync_jobs WHERE id = $1::uuid")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };

    let (_, _, location) = post(&app, &cookie, &act(&dead, "retry"), &[("_csrf", &csrf)]).await;
    assert_eq!(location.unwrap(), format!("/admin/c/sync-jobs/{dead}?msg=queued"));
    assert_eq!(status_of(dead.clone()).await, ("queued".to_string(), 0));
    // A job that is not dead or failed is not "retried".
    let (_, _, location) = post(&app, &cookie, &act(&waiting, "retry"), &[("_csrf", &csrf)]).await;
    assert_eq!(
        location.unwrap(),
        format!("/admin/c/sync-jobs/{waiting}?msg=refused")
    );

    let (_, _, location) = post(&app, &cookie, &act(&waiting, "cancel"), &[("_csrf", &csrf)]).await;
    assert_eq!(
        location.unwrap(),
        format!("/admin/c/sync-jobs/{waiting}?msg=queued")
    );
    assert_eq!(status_of(waiting.clone()).await.0, "dead");
    let reason: String = sqlx::query_scalar("SELECT error_message FROM sync_jobs WHERE id = $1::uuid")
        .bind(&waiting)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(reason.starts_with("cancelled by "), "{reason}");
    app.stop().await;
}

#[tokio::test]
async fn a_super_admin_working_in_a_tenant_lists_only_that_tenant() {
    let app = TestApp::spawn().await;
    common::insert_pages(&app.pool, RIYADH_EATS, 4).await;
    common::insert_pages(&app.pool, FASHIONISTA, 2).await;
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, html) = page(&app, &cookie, "/admin").await;
    let csrf = csrf_of(&html);
    let (status, _, _) = post(
        &app,
        &cookie,
        "/admin/tenant",
        &[("_csrf", &csrf), ("tenant", RIYADH_EATS)],
    )
    .await;
    assert_eq!(status, 303);
    let with_tenant = format!("{cookie}; cityos-selected-tenant={RIYADH_EATS}");
    let (_, list) = page(&app, &with_tenant, "/admin/c/pages?limit=100").await;
    let riyadh: i64 = sqlx::query_scalar("SELECT count(*) FROM pages WHERE tenant_id = $1::uuid")
        .bind(RIYADH_EATS)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(list.matches("<tr data-id=").count() as i64, riyadh);
    assert!(list.contains("Riyadh"), "the current tenant is shown");
    // Search and filter go through the engine's where language.
    let (_, found) = page(
        &app,
        &with_tenant,
        "/admin/c/pages?q=Bulk%20page%203&f.status=draft",
    )
    .await;
    assert_eq!(found.matches("<tr data-id=").count(), 1, "{found}");
    app.stop().await;
}

#[tokio::test]
async fn picker_search_finds_options_within_the_callers_access() {
    let app = TestApp::spawn().await;
    app.member("ta-picker@fashionista.test", FASHIONISTA, &["tenant_admin"])
        .await;
    let cookie = admin_login(&app, "ta-picker@fashionista.test", "member-password-123").await;
    let riyadh: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1::uuid")
        .bind(RIYADH_EATS)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let q: String = riyadh.chars().take(4).collect();
    let (status, html) = page(&app, &cookie, &format!("/admin/options/tenants?q={q}")).await;
    assert_eq!(status, 200);
    assert!(
        !html.contains(RIYADH_EATS),
        "another tenant never appears: {html}"
    );
    let admin = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, html) = page(&app, &admin, &format!("/admin/options/tenants?q={q}")).await;
    assert!(
        html.contains(&format!("<option value=\"{RIYADH_EATS}\">")),
        "{html}"
    );
    assert!(!html.contains(FASHIONISTA) || riyadh.contains("Fashion"));
    app.stop().await;
}

#[tokio::test]
async fn an_audit_event_shows_its_before_and_after() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let res = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/tenants/{FASHIONISTA}"),
            Some(&token),
            Some(serde_json::json!({"name": "Fashionista Renamed"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let id: String = sqlx::query_scalar(
        "SELECT id::text FROM audit_logs WHERE collection = 'tenants' AND action = 'update' ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, html) = page(&app, &cookie, &format!("/admin/c/audit-logs/{id}")).await;
    assert_eq!(status, 200);
    let at = html.find("<table class=\"diff\"").expect("a diff table");
    let table = &html[at..at + html[at..].find("</table>").unwrap()];
    assert!(table.contains("<th scope=\"row\">name</th>"), "{table}");
    assert!(
        table.contains("<td class=\"after\">Fashionista Renamed</td>"),
        "{table}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_cross_site_sign_in_post_is_refused() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .post(app.url("/admin/login"))
        .header("Origin", "https://evil.example")
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("set-cookie").is_none());
    // The same form from this server's own origin signs in.
    let res = app
        .client
        .post(app.url("/admin/login"))
        .header("Origin", format!("http://{}", app.addr))
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Uploads from admin forms: the media form's own file, and new files beside upload pickers.

/// A multipart form part: text, or a file input `(name, filename, bytes)`.
enum Part<'a> {
    Text(&'a str, &'a str),
    File(&'a str, &'a str, &'a [u8]),
}

const FORM_BOUNDARY: &str = "----cityos-admin-form-4vZ8mQ2";

/// Posts a browser-shaped multipart form (parts in the order given, as in the document).
async fn post_multipart(
    app: &TestApp,
    cookie: &str,
    path: &str,
    parts: &[Part<'_>],
) -> (u16, String, Option<String>) {
    let mut body = Vec::new();
    for p in parts {
        match p {
            Part::Text(name, value) => body.extend_from_slice(
                format!(
                    "--{FORM_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            ),
            Part::File(name, filename, bytes) => {
                body.extend_from_slice(
                    format!(
                        "--{FORM_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{FORM_BOUNDARY}--\r\n").as_bytes());
    let res = app
        .client
        .post(app.url(path))
        .header("Cookie", cookie)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={FORM_BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    (status, res.text().await.unwrap(), location)
}

/// The app with its own media directory (and upload limit).
async fn media_app(max_bytes: &str) -> (TestApp, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("cityos-admin-media-{}", uuid::Uuid::new_v4()));
    let url = common::fresh_database().await;
    let dir_s = dir.to_string_lossy().to_string();
    let app = TestApp::spawn_on(&url, &[("MEDIA_DIR", &dir_s), ("MEDIA_MAX_BYTES", max_bytes)]).await;
    (app, dir)
}

/// Files in the staging area (a refused upload must leave none behind).
fn staged_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join(".incoming"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn media_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM media")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// The HTML of a field's wrapper (`data-field="…"`), up to the next field.
fn field_html<'h>(html: &'h str, name: &str) -> &'h str {
    let at = html
        .find(&format!("data-field=\"{name}\""))
        .unwrap_or_else(|| panic!("field {name} in {html}"));
    let rest = &html[at..];
    let end = rest[1..].find("data-field=").map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

#[tokio::test]
async fn the_media_form_uploads_a_file_through_the_media_engine() {
    let (app, dir) = media_app("200000").await;
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, html) = page(&app, &cookie, "/admin/c/media/new").await;
    assert_eq!(status, 200);
    assert!(html.contains("enctype=\"multipart/form-data\""), "{html}");
    assert!(html.contains("<input type=\"file\" name=\"file\""));
    assert!(html.contains("<label for=\"f-file\">File"));
    let csrf = csrf_of(&html);
    let png = common::media::png(8, 6);
    let before = media_count(&app).await;

    // CSRF is the first part and is checked before the file is read: nothing is staged.
    let (status, _, _) = post_multipart(
        &app,
        &cookie,
        "/admin/c/media/new",
        &[
            Part::File("file", "x.png", &png),
            Part::Text("_csrf", &csrf),
            Part::Text("alt", "No token first"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = post_multipart(
        &app,
        &cookie,
        "/admin/c/media/new",
        &[
            Part::Text("_csrf", &"0".repeat(64)),
            Part::File("file", "x.png", &png),
        ],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(staged_files(&dir), 0);
    assert_eq!(media_count(&app).await, before);

    // No file: the error is on the file input, the typed values stay.
    let (status, html, _) = post_multipart(
        &app,
        &cookie,
        "/admin/c/media/new",
        &[
            Part::Text("_csrf", &csrf),
            Part::File("file", "", b""),
            Part::Text("alt", "Kept alt"),
            Part::Text("tenant", FASHIONISTA),
        ],
    )
    .await;
    assert_eq!(status, 422, "{html}");
    assert!(field_html(&html, "file").contains("Choose a file to upload."));
    assert!(html.contains("value=\"Kept alt\""));

    // Bytes that are not an allowed type: the engine's sniffing refuses them, inline.
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
    let (status, html, _) = post_multipart(
        &app,
        &cookie,
        "/admin/c/media/new",
        &[
            Part::Text("_csrf", &csrf),
            Part::File("file", "logo.svg", svg),
            Part::Text("alt", "Kept alt"),
            Part::Text("tenant", FASHIONISTA),
        ],
    )
    .await;
    assert_eq!(status, 422, "{html}");
    let file = field_html(&html, "file");
    assert!(file.contains("This file type is not allowed"), "{file}");
    assert!(file.contains("aria-invalid=\"true\""));
    // A required field missing: the engine's validation, beside its input.
    let (status, html, _) = post_multipart(
        &app,
        &cookie,
        "/admin/c/media/new",
        &[
            Part::Text("_csrf", &csrf),
            Part::File("file", "photo.png", &png),
            Part::Text("alt", ""),
            Part::Text("caption", "Kept caption"),
            Part::Text("tenant", FASHIONISTA),
        ],
    )
    .await;
    assert_eq!(status, 422, "{html}");
    assert!(field_html(&html, "alt").contains("This field is required."));
    assert!(html.contains("value=\"Kept caption\""));
    assert_eq!(media_count(&app).await, before);

    // Over MEDIA_MAX_BYTES: refused on the input, and the fields after the file still arrive.
    let big = vec![0x89u8; 300_000];
    let (status, html, _) = post_multipart(
        &app,
        &cookie,
        "/admin/c/media/new",
        &[
            Part::Text("_csrf", &csrf),
            Part::File("file", "big.png", &big),
            Part::Text("alt", "Typed after the file"),
            Part::Text("tenant", FASHIONISTA),
        ],
    )
    .await;
    assert_eq!(status, 422, "{html}");
    assert!(field_html(&html, "file").contains("larger than the upload limit"));
    assert!(html.contains("value=\"Typed after the file\""));
    assert_eq!(staged_files(&dir), 0);

    // A real image: created in the chosen tenant, the file stored, served over REST.
    let (status, html, location) = post_multipart(
        &app,
        &cookie,
        "/admin/c/media/new",
        &[
            Part::Text("_csrf", &csrf),
            Part::File("file", "shop front.png", &png),
            Part::Text("alt", "The shop front"),
            Part::Text("tenant", FASHIONISTA),
        ],
    )
    .await;
    assert_eq!(status, 303, "{html}");
    let location = location.unwrap();
    assert!(location.ends_with("?msg=created"), "{location}");
    let id = location
        .trim_start_matches("/admin/c/media/")
        .trim_end_matches("?msg=created");
    let (tenant, filename, mime, width, key): (String, String, String, i32, String) = sqlx::query_as(
        "SELECT tenant_id::text, filename, mime_type, width, storage_key FROM media WHERE id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (tenant.as_str(), filename.as_str(), mime.as_str(), width),
        (FASHIONISTA, "shop front.png", "image/png", 8)
    );
    assert_eq!(std::fs::read(dir.join(&key)).unwrap(), png);
    let token = app.admin_token().await;
    let res = app
        .get_as(&format!("/api/media/file/{FASHIONISTA}/shop%20front.png"), &token)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), png.as_slice());

    // The edit form links the current file and replaces it (the old object goes).
    let (_, html) = page(&app, &cookie, &format!("/admin/c/media/{id}")).await;
    assert!(html.contains("Replace the file"));
    assert!(html.contains(">shop front.png</a>"));
    let jpeg = common::media::jpeg(4, 4);
    let (status, html, _) = post_multipart(
        &app,
        &cookie,
        &format!("/admin/c/media/{id}"),
        &[
            Part::Text("_csrf", &csrf),
            Part::File("file", "replaced.jpg", &jpeg),
            Part::Text("alt", "The shop front, new"),
            Part::Text("tenant", FASHIONISTA),
        ],
    )
    .await;
    assert_eq!(status, 303, "{html}");
    let (filename, new_key): (String, String) =
        sqlx::query_as("SELECT filename, storage_key FROM media WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(filename, "replaced.jpg");
    assert_eq!(std::fs::read(dir.join(&new_key)).unwrap(), jpeg);
    assert!(!dir.join(&key).exists(), "the replaced object is removed");
    // Saving without a new file keeps the stored one.
    let (status, _, _) = post_multipart(
        &app,
        &cookie,
        &format!("/admin/c/media/{id}"),
        &[
            Part::Text("_csrf", &csrf),
            Part::File("file", "", b""),
            Part::Text("alt", "Only the alt changes"),
            Part::Text("tenant", FASHIONISTA),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let (alt, same_key): (String, String) =
        sqlx::query_as("SELECT alt, storage_key FROM media WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (alt.as_str(), same_key.as_str()),
        ("Only the alt changes", new_key.as_str())
    );
    assert_eq!(staged_files(&dir), 0);
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_upload_picker_takes_a_new_file_and_selects_it() {
    let (app, dir) = media_app("200000").await;
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, html) = page(&app, &cookie, "/admin/c/pages/new").await;
    assert!(html.contains("enctype=\"multipart/form-data\""));
    let csrf = csrf_of(&html);
    // Adding a hero block (a row edit, nothing saved) shows its image picker with a file input.
    let (status, html, _) = post(
        &app,
        &cookie,
        "/admin/c/pages/new",
        &[
            ("_csrf", csrf.as_str()),
            ("tenant", FASHIONISTA),
            ("_present", "layout"),
            ("_block.layout", "hero"),
            ("_op", "add:layout"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("<select id=\"f-layout-0-image\" name=\"layout.0.image\""),
        "{html}"
    );
    assert!(html.contains("name=\"layout.0.image._file\""));
    assert!(html.contains("<label for=\"f-layout-0-image-alt\">"));
    let png = common::media::png(5, 5);
    let page_parts = |alt: &'static str| {
        vec![
            ("tenant", FASHIONISTA),
            ("title", "Hero with upload"),
            ("slug", "hero-with-upload"),
            ("status", "draft"),
            ("_present", "layout"),
            ("layout.0._row", "1"),
            ("layout.0.blockType", "hero"),
            ("layout.0.title", "Hero"),
            ("layout.0.image", ""),
            ("layout.0.image._alt", alt),
        ]
    };
    let with_file = |fields: &[(&'static str, &'static str)]| {
        let mut parts = vec![Part::Text("_csrf", csrf.as_str())];
        for (k, v) in fields {
            if *k == "layout.0.image._alt" {
                parts.push(Part::File("layout.0.image._file", "hero.png", png.as_slice()));
            }
            parts.push(Part::Text(k, v));
        }
        parts
    };

    // No alt text: the media engine's validation, on the alt input; nothing is created.
    let (status, html, _) =
        post_multipart(&app, &cookie, "/admin/c/pages/new", &with_file(&page_parts(""))).await;
    assert_eq!(status, 422, "{html}");
    let at = html.find("id=\"f-layout-0-image-alt\"").unwrap();
    assert!(
        html[at..at + 400].contains("This field is required."),
        "{}",
        &html[at..at + 400]
    );
    assert!(html.contains("value=\"Hero with upload\""));
    assert_eq!(media_count(&app).await, 0);
    let pages: i64 = sqlx::query_scalar("SELECT count(*) FROM pages WHERE slug = 'hero-with-upload'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(pages, 0);

    // With alt text: the file becomes a media document of the page's tenant, and the image.
    let (status, html, location) = post_multipart(
        &app,
        &cookie,
        "/admin/c/pages/new",
        &with_file(&page_parts("Hero image")),
    )
    .await;
    assert_eq!(status, 303, "{html}");
    let page_id = location
        .unwrap()
        .trim_start_matches("/admin/c/pages/")
        .trim_end_matches("?msg=created")
        .to_string();
    let (media_id, tenant, alt): (String, String, String) =
        sqlx::query_as("SELECT id::text, tenant_id::text, alt FROM media WHERE filename = 'hero.png'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((tenant.as_str(), alt.as_str()), (FASHIONISTA, "Hero image"));
    let token = app.admin_token().await;
    let (status, doc) =
        common::json(app.get_as(&format!("/api/pages/{page_id}?depth=0"), &token).await).await;
    assert_eq!(status, 200);
    assert_eq!(doc["layout"][0]["image"], media_id.as_str());
    // The edit form shows it selected.
    let (_, html) = page(&app, &cookie, &format!("/admin/c/pages/{page_id}")).await;
    assert!(
        html.contains(&format!(
            "<option value=\"{media_id}\" selected>hero.png</option>"
        )),
        "{html}"
    );

    // The upload runs with the caller's access: a tenant admin naming another tenant gets
    // neither the page nor a media document there.
    app.member("ta-upload@fashionista.test", FASHIONISTA, &["tenant_admin"])
        .await;
    let ta = admin_login(&app, "ta-upload@fashionista.test", "member-password-123").await;
    let (_, html) = page(&app, &ta, "/admin/c/pages/new").await;
    let ta_csrf = csrf_of(&html);
    let mut parts = vec![Part::Text("_csrf", ta_csrf.as_str())];
    for (k, v) in page_parts("Other tenant?") {
        let v = match k {
            "tenant" => RIYADH_EATS,
            "slug" => "ta-hero",
            _ => v,
        };
        if k == "layout.0.image._alt" {
            parts.push(Part::File("layout.0.image._file", "ta.png", png.as_slice()));
        }
        parts.push(Part::Text(k, v));
    }
    let (status, _, _) = post_multipart(&app, &ta, "/admin/c/pages/new", &parts).await;
    assert_ne!(status, 303, "a tenant admin cannot write into another tenant");
    let foreign: i64 = sqlx::query_scalar("SELECT count(*) FROM media WHERE tenant_id = $1::uuid")
        .bind(RIYADH_EATS)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(foreign, 0, "no media lands in another tenant");
    assert_eq!(staged_files(&dir), 0);
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Page ids a tenant has, as the list rows name them.
async fn page_ids(app: &TestApp, tenant: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT id::text FROM pages WHERE tenant_id = $1::uuid")
        .bind(tenant)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

fn listed_ids(html: &str) -> Vec<String> {
    html.match_indices("<tr data-id=\"")
        .map(|(at, m)| html[at + m.len()..at + m.len() + 36].to_string())
        .collect()
}

#[tokio::test]
async fn a_member_of_several_tenants_switches_between_its_own_tenants_only() {
    let app = TestApp::spawn().await;
    common::insert_pages(&app.pool, RIYADH_EATS, 3).await;
    common::insert_pages(&app.pool, FASHIONISTA, 2).await;
    // A third tenant the member does not belong to, with pages of its own.
    let third: String = sqlx::query_scalar(
        "INSERT INTO tenants (handle, name, status, country_id, scope_id, category_id, subcategory_id)
         SELECT 'third-tenant', 'Third Tenant', 'active', country_id, scope_id, category_id, subcategory_id
           FROM tenants WHERE id = $1::uuid RETURNING id::text",
    )
    .bind(FASHIONISTA)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    common::insert_pages(&app.pool, &third, 2).await;
    app.member("two-tenants@cityos.test", FASHIONISTA, &["tenant_admin"])
        .await;
    sqlx::query(
        "INSERT INTO user_tenant_memberships (user_id, tenant_id, roles, position)
         SELECT id, $1::uuid, ARRAY['content_editor'], 1 FROM users WHERE email = 'two-tenants@cityos.test'",
    )
    .bind(RIYADH_EATS)
    .execute(&app.pool)
    .await
    .unwrap();
    let session = admin_login(&app, "two-tenants@cityos.test", "member-password-123").await;

    // The selector offers the member's own tenants, and only those.
    let (status, html) = page(&app, &session, "/admin").await;
    assert_eq!(status, 200);
    let selector = &html[html.find("id=\"tenant-select\"").expect("a tenant selector")..];
    let selector = &selector[..selector.find("</select>").unwrap()];
    assert!(
        selector.contains(FASHIONISTA) && selector.contains(RIYADH_EATS),
        "{selector}"
    );
    assert!(!selector.contains(&third), "{selector}");
    let csrf = csrf_of(&html);

    // Choosing Riyadh Eats: its pages and nothing else.
    let res = app
        .client
        .post(app.url("/admin/tenant"))
        .header("Cookie", &session)
        .form(&[("_csrf", csrf.as_str()), ("tenant", RIYADH_EATS)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.starts_with(&format!("cityos-admin-tenant={RIYADH_EATS}")),
        "{set}"
    );
    assert!(set.contains("Path=/admin") && set.contains("HttpOnly"), "{set}");
    let in_riyadh = format!("{session}; cityos-admin-tenant={RIYADH_EATS}");
    let (_, list) = page(&app, &in_riyadh, "/admin/c/pages?limit=100").await;
    let mut shown = listed_ids(&list);
    let mut expected = page_ids(&app, RIYADH_EATS).await;
    shown.sort();
    expected.sort();
    assert_eq!(shown, expected, "Riyadh Eats' pages, all of them and only them");
    assert!(list.contains("Riyadh Eats"), "the current tenant is shown");

    // Switching to Fashionista.
    let in_fashionista = format!("{session}; cityos-admin-tenant={FASHIONISTA}");
    let (_, list) = page(&app, &in_fashionista, "/admin/c/pages?limit=100").await;
    let mut shown = listed_ids(&list);
    let mut expected = page_ids(&app, FASHIONISTA).await;
    shown.sort();
    expected.sort();
    assert_eq!(shown, expected);

    // Another tenant is refused by the selector, and a forged cookie naming it is ignored.
    let (status, _, _) = post(
        &app,
        &session,
        "/admin/tenant",
        &[("_csrf", &csrf), ("tenant", &third)],
    )
    .await;
    assert_eq!(status, 403);
    let forged = format!("{session}; cityos-admin-tenant={third}");
    let (_, list) = page(&app, &forged, "/admin/c/pages?limit=100").await;
    let third_ids = page_ids(&app, &third).await;
    assert!(
        listed_ids(&list).iter().all(|id| !third_ids.contains(id)),
        "a forged selection never reaches another tenant"
    );
    for id in &third_ids {
        let (status, _) = page(&app, &forged, &format!("/admin/c/pages/{id}")).await;
        assert_eq!(status, 404, "another tenant's page by URL");
    }
    // The REST API never honours the admin's selection (browsers do not even send it there).
    let rest = |cookie: String| {
        let app = &app;
        async move {
            let res = app
                .client
                .get(app.url("/api/pages?limit=100&depth=0"))
                .header("Cookie", cookie)
                .send()
                .await
                .unwrap();
            common::json(res).await
        }
    };
    let (s1, with_selection) = rest(in_riyadh.clone()).await;
    let (s2, without) = rest(session.clone()).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(with_selection["totalDocs"], without["totalDocs"]);
    app.stop().await;
}

/// Inserts a draft page and returns its id.
async fn draft_page(app: &TestApp, tenant: &str, title: &str) -> String {
    sqlx::query_scalar(
        "INSERT INTO pages (tenant_id, title, slug, status) VALUES ($1::uuid, $2, lower(replace($2, ' ', '-')), 'draft')
         RETURNING id::text",
    )
    .bind(tenant)
    .bind(title)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn status_of(app: &TestApp, id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM pages WHERE id = $1::uuid")
        .bind(id)
        .fetch_optional(&app.pool)
        .await
        .unwrap()
}

/// A bulk action tries every checked row: the ones the caller may change are changed (each
/// audited), the others are listed with the reason and left as they were.
#[tokio::test]
async fn bulk_actions_change_what_they_may_and_list_what_they_refused() {
    let app = TestApp::spawn().await;
    app.member("bulk@fashionista.test", FASHIONISTA, &["tenant_admin"])
        .await;
    let cookie = admin_login(&app, "bulk@fashionista.test", "member-password-123").await;
    let own = [
        draft_page(&app, FASHIONISTA, "Bulk own one").await,
        draft_page(&app, FASHIONISTA, "Bulk own two").await,
    ];
    let other = draft_page(&app, RIYADH_EATS, "Bulk other tenant").await;
    let missing = "0190d2f4-0000-7000-8000-000000000000".to_string();
    let (_, list) = page(&app, &cookie, "/admin/c/pages?limit=100").await;
    let csrf = csrf_of(&list);

    // Publish: two of four changed; another tenant's page and a missing one are refused.
    let form = [
        ("_csrf", csrf.as_str()),
        ("do", "publish"),
        ("ids", own[0].as_str()),
        ("ids", other.as_str()),
        ("ids", own[1].as_str()),
        ("ids", missing.as_str()),
        ("ids", own[0].as_str()),
    ];
    let (status, html, _) = post(&app, &cookie, "/admin/c/pages/bulk", &form).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<h1>Published: 2 of 4</h1>"), "{html}");
    let refused = listed_ids(&html);
    assert_eq!(
        refused,
        vec![other.clone(), missing.clone()],
        "the refused rows, in order"
    );
    // As Payload answers a caller whose access is a filter: not allowed, found or not.
    assert_eq!(
        html.matches("<td>You are not allowed to perform this action.</td>")
            .count(),
        2,
        "{html}"
    );
    for id in &own {
        assert_eq!(status_of(&app, id).await.as_deref(), Some("published"));
    }
    assert_eq!(
        status_of(&app, &other).await.as_deref(),
        Some("draft"),
        "left as it was"
    );
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE collection = 'pages' AND action = 'update' AND doc_id = ANY($1)",
    )
    .bind(vec![own[0].clone(), own[1].clone(), other.clone()])
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 2, "one audit row per changed page, none for the refused");

    // Nothing changed at all: the refusal's status, and the page stays.
    let form = [
        ("_csrf", csrf.as_str()),
        ("do", "delete"),
        ("ids", other.as_str()),
    ];
    let (status, html, _) = post(&app, &cookie, "/admin/c/pages/bulk", &form).await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("<h1>Deleted: 0 of 1</h1>"), "{html}");
    assert!(status_of(&app, &other).await.is_some());

    // Everything changed: back to the list with the usual notice.
    let form = [
        ("_csrf", csrf.as_str()),
        ("do", "delete"),
        ("ids", own[0].as_str()),
        ("ids", own[1].as_str()),
    ];
    let (status, _, location) = post(&app, &cookie, "/admin/c/pages/bulk", &form).await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/admin/c/pages?msg=deleted"));
    for id in &own {
        assert_eq!(status_of(&app, id).await, None, "deleted");
    }

    // In Arabic, with Arabic-Indic digits.
    let form = [
        ("_csrf", csrf.as_str()),
        ("do", "delete"),
        ("ids", other.as_str()),
    ];
    let res = app
        .client
        .post(app.url("/admin/c/pages/bulk"))
        .header("Cookie", &cookie)
        .header("Accept-Language", "ar")
        .form(&form)
        .send()
        .await
        .unwrap();
    let html = res.text().await.unwrap();
    assert!(html.contains("تم الحذف: ٠ من ١"), "{html}");

    // A super admin (unrestricted access) is told a missing row is not found.
    let admin = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, list) = page(&app, &admin, "/admin/c/pages?limit=1").await;
    let csrf = csrf_of(&list);
    let form = [
        ("_csrf", csrf.as_str()),
        ("do", "publish"),
        ("ids", missing.as_str()),
        ("ids", other.as_str()),
    ];
    let (status, html, _) = post(&app, &admin, "/admin/c/pages/bulk", &form).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<h1>Published: 1 of 2</h1>"), "{html}");
    assert_eq!(listed_ids(&html), vec![missing.clone()]);
    assert!(html.contains("<td>Not found.</td>"), "{html}");
    assert_eq!(status_of(&app, &other).await.as_deref(), Some("published"));

    // More rows than one action takes: refused before any is touched.
    let ids: Vec<String> = (0..501).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let mut form = vec![("_csrf", csrf.as_str()), ("do", "delete")];
    form.extend(ids.iter().map(|id| ("ids", id.as_str())));
    form.push(("ids", other.as_str()));
    let (status, html, _) = post(&app, &admin, "/admin/c/pages/bulk", &form).await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("The most at once: 500"), "{html}");
    assert!(status_of(&app, &other).await.is_some(), "nothing deleted");
    app.stop().await;
}

/// The admin's pages and static files are gzipped for browsers that ask; the REST API is not
/// (left to the proxy), and nothing is compressed for clients that do not ask.
#[tokio::test]
async fn admin_responses_are_gzipped_for_browsers_that_ask() {
    use std::io::Read;
    let app = TestApp::spawn().await;
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let get = |path: &'static str, gzip: bool| {
        let app = &app;
        let cookie = cookie.clone();
        async move {
            let mut req = app.client.get(app.url(path)).header("Cookie", cookie);
            if gzip {
                req = req.header("Accept-Encoding", "gzip");
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200, "{path}");
            let encoding = res
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_string());
            (encoding, res.bytes().await.unwrap().to_vec())
        }
    };
    let gunzip = |bytes: &[u8]| {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    };
    for path in [
        "/admin/c/pages?limit=50",
        "/static/htmx.min.js",
        "/static/admin.css",
    ] {
        let (plain_encoding, plain) = get(path, false).await;
        assert_eq!(plain_encoding, None, "{path}: not compressed unasked");
        let (encoding, zipped) = get(path, true).await;
        assert_eq!(encoding.as_deref(), Some("gzip"), "{path}");
        assert_eq!(gunzip(&zipped), plain, "{path}: the same content");
        assert!(
            zipped.len() * 2 < plain.len(),
            "{path}: {} → {} bytes",
            plain.len(),
            zipped.len()
        );
    }
    let (encoding, body) = get("/api/pages?limit=10", true).await;
    assert_eq!(encoding, None, "the REST API is not compressed here");
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    app.stop().await;
}

/// Rows inside a block (a product's image gallery): added and removed with the row buttons,
/// validated per nested input, an image uploaded right in a nested row, saved through the
/// engine as the REST API stores them.
#[tokio::test]
async fn gallery_rows_inside_a_block_are_edited_as_rows() {
    let (app, dir) = media_app("200000").await;
    let cookie = admin_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, html) = page(&app, &cookie, "/admin/c/product-content/new").await;
    assert!(html.contains("enctype=\"multipart/form-data\""));
    let csrf = csrf_of(&html);
    let base = [
        ("_csrf", csrf.as_str()),
        ("tenant", FASHIONISTA),
        ("medusaProductId", "prod_gallery_rows"),
        ("title", "Gallery shirt"),
        ("editorialStatus", "draft"),
        ("_present", "contentBlocks"),
    ];
    // An image gallery block: its images are rows with their own buttons, not JSON.
    let mut form = base.to_vec();
    form.extend([
        ("_block.contentBlocks", "imageGallery"),
        ("_op", "add:contentBlocks"),
    ]);
    let (status, html, _) = post(&app, &cookie, "/admin/c/product-content/new", &form).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("name=\"_present\" value=\"contentBlocks.0.images\""),
        "{html}"
    );
    assert!(html.contains("value=\"add:contentBlocks.0.images\""));
    assert!(
        !html.contains("name=\"contentBlocks.0.images\""),
        "no JSON text area for the gallery"
    );
    // Two rows added (nothing saved).
    let block = [
        ("contentBlocks.0._row", "1"),
        ("contentBlocks.0.blockType", "imageGallery"),
        ("_present", "contentBlocks.0.images"),
    ];
    let mut form = base.to_vec();
    form.extend(block);
    form.push(("_op", "add:contentBlocks.0.images"));
    let (_, html, _) = post(&app, &cookie, "/admin/c/product-content/new", &form).await;
    assert!(
        html.contains(
            "<select id=\"f-contentBlocks-0-images-0-image\" name=\"contentBlocks.0.images.0.image\""
        ),
        "{html}"
    );
    assert!(html.contains("name=\"contentBlocks.0.images.0.image._file\""));
    assert!(html.contains("value=\"remove:contentBlocks.0.images:0\""));
    // Saving with a row that has no image: the engine's error beside that row's picker, the
    // typed caption kept, nothing stored.
    let mut form = base.to_vec();
    form.extend(block);
    form.extend([
        ("contentBlocks.0.images.0._row", "1"),
        ("contentBlocks.0.images.0.image", ""),
        ("contentBlocks.0.images.0.caption", "Front view"),
    ]);
    let (status, html, _) = post(&app, &cookie, "/admin/c/product-content/new", &form).await;
    assert_eq!(status, 422, "{html}");
    let at = html
        .find("id=\"f-contentBlocks-0-images-0-image-error\"")
        .expect(&html);
    assert!(
        html[at..at + 200].contains("This field is required."),
        "{}",
        &html[at..at + 200]
    );
    assert!(html.contains("value=\"Front view\""));
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM product_content WHERE medusa_product_id = 'prod_gallery_rows'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, 0);

    // With a file chosen in the nested row: it becomes a media document and that row's image.
    let png = common::media::png(4, 4);
    let mut parts: Vec<Part> = base.iter().map(|(k, v)| Part::Text(k, v)).collect();
    parts.extend(block.iter().map(|(k, v)| Part::Text(k, v)));
    parts.extend([
        Part::Text("contentBlocks.0.images.0._row", "1"),
        Part::Text("contentBlocks.0.images.0.image", ""),
        Part::File(
            "contentBlocks.0.images.0.image._file",
            "front.png",
            png.as_slice(),
        ),
        Part::Text("contentBlocks.0.images.0.image._alt", "The front"),
        Part::Text("contentBlocks.0.images.0.caption", "Front view"),
    ]);
    let (status, html, location) =
        post_multipart(&app, &cookie, "/admin/c/product-content/new", &parts).await;
    assert_eq!(status, 303, "{html}");
    let id = location
        .unwrap()
        .trim_start_matches("/admin/c/product-content/")
        .trim_end_matches("?msg=created")
        .to_string();
    let media_id: String = sqlx::query_scalar("SELECT id::text FROM media WHERE filename = 'front.png'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let token = app.admin_token().await;
    let (status, doc) = common::json(
        app.get_as(&format!("/api/product-content/{id}?depth=0"), &token)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["contentBlocks"][0]["blockType"], "imageGallery");
    assert_eq!(doc["contentBlocks"][0]["images"][0]["image"], media_id.as_str());
    assert_eq!(doc["contentBlocks"][0]["images"][0]["caption"], "Front view");
    // The edit form shows the row with its image selected.
    let (_, html) = page(&app, &cookie, &format!("/admin/c/product-content/{id}")).await;
    let at = html.find("name=\"contentBlocks.0.images.0.image\"").expect(&html);
    let select_end = html[at..].find("</select>").unwrap();
    assert!(
        html[at..at + select_end].contains(&format!("value=\"{media_id}\" selected")),
        "{}",
        &html[at..at + select_end]
    );
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
