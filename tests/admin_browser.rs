//! The admin UI in a real browser: headless Chromium (Debian's package) driven by
//! playwright-core from `tests/e2e/admin.spec.mjs` against the real server.
//! Needs `/usr/bin/chromium` and `npm ci` in tests/e2e (`./run test` does both). The app is
//! configured for Keycloak against the auto-approving OIDC provider of the test harness, so
//! "Sign in with Keycloak" runs in the browser end to end.

mod common;

use common::oidc_provider::{OidcProvider, KC_BUYER, KC_TENANT_ADMIN};
use common::{TestApp, ADMIN_EMAIL, ADMIN_PASSWORD, FASHIONISTA, RIYADH_EATS};

#[tokio::test]
async fn admin_flows_in_headless_chromium() {
    let root = env!("CARGO_MANIFEST_DIR");
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium not found at {chromium}: apt-get install -y --no-install-recommends chromium"
    );
    assert!(
        std::path::Path::new(&format!("{root}/tests/e2e/node_modules/playwright-core")).exists(),
        "run `npm ci` in tests/e2e"
    );
    let idp = OidcProvider::start(KC_TENANT_ADMIN).await;
    let url = common::fresh_database().await;
    let media_dir = std::env::temp_dir().join(format!("cityos-e2e-media-{}", uuid::Uuid::new_v4()));
    let mut env = idp.env();
    env.push(("MEDIA_DIR".into(), media_dir.to_string_lossy().to_string()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::spawn_on(&url, &env_ref).await;
    let tenant_a_name: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1::uuid")
        .bind(FASHIONISTA)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    common::insert_pages(&app.pool, FASHIONISTA, 3).await;
    common::insert_pages(&app.pool, RIYADH_EATS, 2).await;
    app.member("ta-browser@fashionista.test", FASHIONISTA, &["tenant_admin"])
        .await;
    let other_page: String =
        sqlx::query_scalar("SELECT id::text FROM pages WHERE tenant_id = $1::uuid LIMIT 1")
            .bind(RIYADH_EATS)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let webhook_log: String = sqlx::query_scalar(
        "INSERT INTO webhook_logs (request_id, system_type, direction, tenant_id, event_type, status, headers,
                                   signature_valid, raw_body)
         VALUES ('req-browser', 'medusa', 'inbound', $1::uuid, 'order.placed', 'failed',
                 '{\"x-medusa-signature\":\"abc\"}', true, '{}')
         RETURNING id::text",
    )
    .bind(FASHIONISTA)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let artifacts = format!("{root}/target/e2e");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(format!("{root}/tests/e2e/admin.spec.mjs"))
        .arg(app.url(""))
        .env("CHROMIUM_PATH", &chromium)
        .env("ADMIN_EMAIL", ADMIN_EMAIL)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("TENANT_A", FASHIONISTA)
        .env("TENANT_B", RIYADH_EATS)
        .env("TENANT_ADMIN_EMAIL", "ta-browser@fashionista.test")
        .env("TENANT_ADMIN_PASSWORD", "member-password-123")
        .env("OTHER_PAGE_ID", &other_page)
        .env("WEBHOOK_LOG_ID", &webhook_log)
        .env("ARTIFACTS", &artifacts)
        .env("TENANT_A_NAME", &tenant_a_name)
        .env("IDP_BASE", &idp.base)
        .env("KC_ADMIN_USER", KC_TENANT_ADMIN.username)
        .env("KC_ADMIN_NAME", KC_TENANT_ADMIN.name())
        .env("KC_ADMIN_EMAIL", KC_TENANT_ADMIN.email)
        .env("KC_BUYER_USER", KC_BUYER.username)
        .env("KC_BUYER_EMAIL", KC_BUYER.email)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser flows failed:\n{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        14,
        "{stdout}"
    );
    // The right-to-left screenshot is kept as an artifact.
    let shot = std::fs::metadata(format!("{artifacts}/admin-arabic-rtl.png")).expect("screenshot");
    assert!(shot.len() > 5_000);
    // The browser's uploads went through the media engine: rows with their stored files.
    let stored: Vec<(String, String)> = sqlx::query_as(
        "SELECT filename, storage_key FROM media WHERE filename IN ('browser-pixel.png', 'hero-pixel.png') ORDER BY filename",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    for (_, key) in &stored {
        assert!(media_dir.join(key).is_file(), "{key} stored on disk");
    }
    app.stop().await;
    idp.stop();
    let _ = std::fs::remove_dir_all(&media_dir);
}
