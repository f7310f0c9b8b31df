//! The integration plane: signed inbound webhooks (every source and every refusal leaves its
//! log row), the job queue against a fake Medusa that follows the Admin API wire contract
//! (integrations spec §4), cron routes, and signed outbound events.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use cityos::integrations::signatures as sig;
use cityos::integrations::{ingest, queue, secrets, Integrations};
use common::{json, TestApp, FASHIONISTA};
use reqwest::Method;
use serde_json::{json, Value};

const MEDUSA_SECRET: &str = "whsec_Y2l0eW9zLW1lZHVzYS10ZXN0LXNlY3JldC0zMmJ5dGU=";
const FLEETBASE_SECRET: &str = "flb_test_secret_7f3a9c";
const ERP_SECRET: &str = "erp_test_secret_5b1d";
const CRON: &str = "test-cron-secret-0123456789abcdef";
const MEDUSA_KEY: &str = "sk_test_orchestrator";

// ---------------------------------------------------------------------------------------------
// A fake Medusa v2 Admin API: Basic auth with the secret key, POST /admin/products/{id} merges
// metadata, GET one / list; applications are counted per Idempotency-Key.

#[derive(Default)]
struct FakeMedusa {
    requests: AtomicUsize,
    /// Idempotency-Key → times applied (a repeated key is answered but applied once).
    applied: Mutex<HashMap<String, usize>>,
    products: Mutex<HashMap<String, Value>>,
    fail_next: AtomicUsize,
    hang: AtomicBool,
    delay_ms: std::sync::atomic::AtomicU64,
    bodies: Mutex<Vec<(String, String, Value)>>,
    /// Updates being answered right now, and the most seen at once.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Counts an update in flight while it lives.
struct InFlight<'a>(&'a FakeMedusa);

impl<'a> InFlight<'a> {
    fn new(m: &'a FakeMedusa) -> InFlight<'a> {
        let now = m.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        m.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(m)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn authorized(h: &HeaderMap) -> bool {
    use base64::Engine;
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{MEDUSA_KEY}:"))
    );
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str())
}

async fn fake_update(
    State(m): State<Arc<FakeMedusa>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    m.requests.fetch_add(1, Ordering::SeqCst);
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"message": "Unauthorized"}))).into_response();
    }
    let _in_flight = InFlight::new(&m);
    if m.hang.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let delay = m.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if m.fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"code": "unknown_error", "type": "unknown_error", "message": "An unknown error occurred."})),
        )
            .into_response();
    }
    if let Some(k) = body
        .as_object()
        .and_then(|o| o.keys().find(|k| k.as_str() != "metadata"))
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"type": "invalid_data", "message": format!("Invalid request: Unrecognized fields: '{k}'")})),
        )
            .into_response();
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut products = m.products.lock().unwrap();
    let Some(product) = products.get_mut(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"type": "not_found", "message": format!("Product with id \"{id}\" not found")})),
        )
            .into_response();
    };
    let first = {
        let mut applied = m.applied.lock().unwrap();
        let n = applied.entry(key.clone()).or_insert(0);
        *n += 1;
        *n == 1
    };
    if first {
        let meta = product["metadata"].as_object_mut().unwrap();
        for (k, v) in body["metadata"].as_object().cloned().unwrap_or_default() {
            meta.insert(k, v);
        }
        product["updated_at"] = json!("2026-11-24T10:19:23.833Z");
        m.bodies.lock().unwrap().push((id.clone(), key, body));
    }
    Json(json!({"product": product.clone()})).into_response()
}

async fn fake_get(
    State(m): State<Arc<FakeMedusa>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> axum::response::Response {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"message": "Unauthorized"}))).into_response();
    }
    match m.products.lock().unwrap().get(&id) {
        Some(p) => Json(json!({"product": p})).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"type": "not_found", "message": format!("Product with id \"{id}\" not found")})),
        )
            .into_response(),
    }
}

async fn fake_list(State(m): State<Arc<FakeMedusa>>, headers: HeaderMap) -> axum::response::Response {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"message": "Unauthorized"}))).into_response();
    }
    let products: Vec<Value> = m.products.lock().unwrap().values().cloned().collect();
    Json(json!({"products": products, "count": products.len(), "offset": 0, "limit": 50})).into_response()
}

impl FakeMedusa {
    fn add_product(&self, id: &str) {
        self.products.lock().unwrap().insert(
            id.to_string(),
            json!({"id": id, "title": "Test Shirt", "handle": format!("h-{id}"), "metadata": {}, "updated_at": "2026-11-24T10:00:00.000Z"}),
        );
    }
    fn applied_total(&self) -> usize {
        self.applied.lock().unwrap().values().filter(|n| **n > 0).count()
    }
}

async fn start_fake_medusa() -> (Arc<FakeMedusa>, String) {
    let m = Arc::new(FakeMedusa::default());
    let app = Router::new()
        .route("/admin/products", get(fake_list))
        .route("/admin/products/{id}", post(fake_update).get(fake_get))
        .with_state(m.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (m, url)
}

fn env(medusa_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MEDUSA_BASE_URL", medusa_url.to_string()),
        ("MEDUSA_API_KEY", MEDUSA_KEY.into()),
        ("MEDUSA_WEBHOOK_SECRET", MEDUSA_SECRET.into()),
        ("FLEETBASE_WEBHOOK_SECRET", format!("internal,{FLEETBASE_SECRET}")),
        ("ERPNEXT_WEBHOOK_SECRET", ERP_SECRET.into()),
        ("SYNC_WORKERS", "0".into()),
        ("SYNC_RETRY_BASE_MS", "1".into()),
        ("SYNC_RETRY_MAX_MS", "5".into()),
        ("SYNC_POLL_INTERVAL_MS", "20".into()),
        ("MEDUSA_REQUEST_TIMEOUT_MS", "500".into()),
    ]
}

async fn spawn(medusa_url: &str, extra: &[(&'static str, &str)]) -> TestApp {
    let url = common::fresh_database().await;
    let mut vars = env(medusa_url);
    for (k, v) in extra {
        vars.retain(|(n, _)| n != k);
        vars.push((k, v.to_string()));
    }
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::spawn_on(&url, &refs).await
}

/// An `Integrations` of our own on the test database (for workers under the test's control).
fn integrations(app: &TestApp, medusa_url: &str, extra: &[(&str, &str)]) -> Arc<Integrations> {
    let mut vars = common::test_env(&app.database_url);
    for (k, v) in env(medusa_url) {
        vars.insert(k.to_string(), v);
    }
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = cityos::Config::from_vars(&vars).unwrap();
    let cipher = Arc::new(cityos::crypto::FieldCipher::new(
        config.secrets.payload_secret.expose(),
    ));
    Integrations::new(app.pool.clone(), Arc::new(config), cipher)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn post_raw(app: &TestApp, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
    let mut req = app.client.post(app.url(path)).body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// (status, signature_valid, duplicate_of set, has raw body, error) of every log row of a source.
async fn logs(app: &TestApp, system: &str) -> Vec<(String, bool, bool, bool, Option<String>)> {
    sqlx::query_as(
        "SELECT status, coalesce(signature_valid, false), duplicate_of_id IS NOT NULL, raw_body IS NOT NULL, error_message
           FROM webhook_logs WHERE system_type = $1 AND direction = 'inbound' ORDER BY created_at, id",
    )
    .bind(system)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn job_count(app: &TestApp, job_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sync_jobs WHERE job_type = $1")
        .bind(job_type)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

fn medusa_body(product: &str) -> String {
    format!(
        r#"{{"type":"product.updated","timestamp":"2026-11-24T10:19:17.689Z","data":{{"id":"{product}"}},"metadata":{{"eventGroupId":"01M86H29JS5V292YFSPV7HTN2X"}}}}"#
    )
}

fn standard_headers(secret: &str, id: &str, ts: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".into()),
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sig::standard_sign(secret, id, ts, body)),
    ]
}

const MEDUSA_PATH: &str = "/api/integrations/medusa/webhook";
const FLEETBASE_PATH: &str = "/api/integrations/fleetbase/webhook";
const ERP_PATH: &str = "/api/integrations/erpnext/webhook";

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn seed_test_4_medusa_webhook_is_logged_verified_and_retried() {
    let (medusa, murl) = start_fake_medusa().await;
    medusa.add_product("prod_01M86H29K34E9H744CVCB6KTD9");
    let app = spawn(&murl, &[]).await;
    sqlx::query("INSERT INTO product_content (tenant_id, medusa_product_id, title) VALUES ($1::uuid, 'prod_01M86H29K34E9H744CVCB6KTD9', 'Shirt')")
        .bind(FASHIONISTA)
        .execute(&app.pool)
        .await
        .unwrap();
    // 1. Send a test webhook (the subscriber's format).
    let body = medusa_body("prod_01M86H29K34E9H744CVCB6KTD9");
    let h = standard_headers(
        MEDUSA_SECRET,
        "msg_01M86H29KZ7Q4T2W0Y3X5V6B8N",
        now(),
        body.as_bytes(),
    );
    let (status, answer) = post_raw(&app, MEDUSA_PATH, &h, body.clone().into_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicate"], false);
    // 2. It is logged (before the answer), with masked headers and the raw body.
    let (event, ext, headers, raw, status): (String, String, Value, Vec<u8>, String) = sqlx::query_as(
        "SELECT event_type, external_event_id, headers, raw_body, status FROM webhook_logs WHERE id = $1::text::uuid",
    )
    .bind(answer["id"].as_str().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (event.as_str(), ext.as_str(), status.as_str()),
        ("product.updated", "msg_01M86H29KZ7Q4T2W0Y3X5V6B8N", "received")
    );
    assert_eq!(headers["webhook-signature"], "[redacted]");
    assert_eq!(raw, body.as_bytes());
    assert_eq!(job_count(&app, "process_webhook").await, 1);
    // 3. Signature validation: a wrong secret is refused with 401 and logged.
    let bad = standard_headers("whsec_d3Jvbmc=", "msg_other", now(), body.as_bytes());
    let (status, err) = post_raw(&app, MEDUSA_PATH, &bad, body.clone().into_bytes()).await;
    assert_eq!(status, 401);
    assert_eq!(err["errors"][0]["message"], "Invalid webhook signature.");
    assert_eq!(
        job_count(&app, "process_webhook").await,
        1,
        "refused deliveries are not processed"
    );
    // 4. Retry logic: the first processing attempt meets Medusa unreachable (retrying, with
    //    next_retry_at); the webhook-retry cron then processes it against the live fake.
    let ix_down = integrations(&app, "http://127.0.0.1:9", &[]);
    let s = queue::run_batch(&ix_down, queue::WEBHOOK_TYPES, 10)
        .await
        .unwrap();
    assert_eq!((s.claimed, s.retried), (1, 1), "{s:?}");
    let (st, attempts, next): (String, i32, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT status, attempts, next_retry_at FROM webhook_logs WHERE id = $1::text::uuid")
            .bind(answer["id"].as_str().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((st.as_str(), attempts), ("retrying", 1));
    assert!(next.is_some());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let res = app
        .client
        .post(app.url("/api/cron/webhook-retry"))
        .header("x-cron-secret", CRON)
        .send()
        .await
        .unwrap();
    let (code, summary) = json(res).await;
    assert_eq!(code, 200);
    assert_eq!(
        (summary["claimed"].as_u64(), summary["succeeded"].as_u64()),
        (Some(1), Some(1)),
        "{summary}"
    );
    let (st, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM webhook_logs WHERE id = $1::text::uuid")
            .bind(answer["id"].as_str().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((st.as_str(), attempts), ("success", 2));
    // The handler refreshed the product content's snapshot from Medusa.
    let snap: Value = sqlx::query_scalar("SELECT medusa_snapshot FROM product_content WHERE medusa_product_id = 'prod_01M86H29K34E9H744CVCB6KTD9'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(snap["handle"], "h-prod_01M86H29K34E9H744CVCB6KTD9");
    app.stop().await;
}

#[tokio::test]
async fn every_source_refuses_bad_deliveries_and_logs_each_exactly_once() {
    let (_m, murl) = start_fake_medusa().await;
    let app = spawn(&murl, &[]).await;
    let big = vec![b'x'; 1024 * 1024 + 1];

    // ---- Medusa (Standard Webhooks)
    let body = medusa_body("prod_1");
    let ok = standard_headers(MEDUSA_SECRET, "msg_a", now(), body.as_bytes());
    assert_eq!(
        post_raw(&app, MEDUSA_PATH, &ok, body.clone().into_bytes())
            .await
            .0,
        200
    );
    let (s, dup) = post_raw(&app, MEDUSA_PATH, &ok, body.clone().into_bytes()).await;
    assert_eq!((s, dup["duplicate"].as_bool()), (200, Some(true)), "redelivery");
    let wrong = standard_headers("whsec_d3Jvbmc=", "msg_b", now(), body.as_bytes());
    assert_eq!(
        post_raw(&app, MEDUSA_PATH, &wrong, body.clone().into_bytes())
            .await
            .0,
        401
    );
    let missing: Vec<_> = ok
        .iter()
        .filter(|(k, _)| *k != "webhook-signature")
        .cloned()
        .collect();
    assert_eq!(
        post_raw(&app, MEDUSA_PATH, &missing, body.clone().into_bytes())
            .await
            .0,
        401
    );
    let stale = standard_headers(MEDUSA_SECRET, "msg_c", now() - 301, body.as_bytes());
    assert_eq!(
        post_raw(&app, MEDUSA_PATH, &stale, body.clone().into_bytes())
            .await
            .0,
        401
    );
    let signed = standard_headers(MEDUSA_SECRET, "msg_d", now(), body.as_bytes());
    let mut altered = body.clone().into_bytes();
    altered[20] ^= 1;
    assert_eq!(post_raw(&app, MEDUSA_PATH, &signed, altered).await.0, 401);
    let (s, e) = post_raw(
        &app,
        MEDUSA_PATH,
        &standard_headers(MEDUSA_SECRET, "msg_e", now(), &big),
        big.clone(),
    )
    .await;
    assert_eq!(s, 413, "{e}");
    // The original format (x-medusa-signature: t=…,v1=…) is accepted too; stale is refused.
    let legacy = br#"{"event":"product.updated","data":{"id":"prod_01"}}"#.to_vec();
    let h = vec![(
        "x-medusa-signature",
        sig::medusa_legacy_sign(MEDUSA_SECRET, now(), &legacy),
    )];
    assert_eq!(post_raw(&app, MEDUSA_PATH, &h, legacy.clone()).await.0, 200);
    let h = vec![(
        "x-medusa-signature",
        sig::medusa_legacy_sign(MEDUSA_SECRET, now() - 1000, &legacy),
    )];
    assert_eq!(post_raw(&app, MEDUSA_PATH, &h, legacy.clone()).await.0, 401);

    let rows = logs(&app, "medusa").await;
    let statuses: Vec<(&str, bool, bool, bool)> =
        rows.iter().map(|r| (r.0.as_str(), r.1, r.2, r.3)).collect();
    assert_eq!(
        statuses,
        vec![
            ("received", true, false, true),
            ("duplicate", true, true, true),
            ("failed", false, false, true),
            ("failed", false, false, true),
            ("failed", false, false, true),
            ("failed", false, false, true),
            ("failed", false, false, false),
            ("received", true, false, true),
            ("failed", false, false, true),
        ]
    );
    let errors: Vec<Option<String>> = rows.iter().map(|r| r.4.clone()).collect();
    assert_eq!(errors[2].as_deref(), Some("Invalid webhook signature."));
    assert_eq!(errors[3].as_deref(), Some("Missing webhook signature."));
    assert_eq!(
        errors[4].as_deref(),
        Some("Webhook timestamp is outside the replay window.")
    );
    assert_eq!(
        job_count(&app, "process_webhook").await,
        2,
        "only the two accepted deliveries are processed"
    );

    // ---- Fleetbase
    let created = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let fb = |id: &str, at: &str| {
        format!(
            r#"{{"id":"{id}","api_version":"2024-03-12","event":"order.dispatched","created_at":"{at}","data":{{"id":"order_8x2kQd1","status":"dispatched","meta":{{"tenant_id":"fashionista-sa"}}}}}}"#
        )
        .into_bytes()
    };
    let fresh = created.format(&fmt).unwrap();
    let body = fb("event_1", &fresh);
    let h = |b: &[u8]| {
        vec![
            ("content-type", "application/json".to_string()),
            ("signature", sig::fleetbase_sign(FLEETBASE_SECRET, b)),
        ]
    };
    assert_eq!(
        post_raw(&app, FLEETBASE_PATH, &h(&body), body.clone()).await.0,
        200
    );
    assert_eq!(
        post_raw(&app, FLEETBASE_PATH, &h(&body), body.clone()).await.1["duplicate"],
        true
    );
    let wrong = vec![("signature", sig::fleetbase_sign("nope", &body))];
    assert_eq!(post_raw(&app, FLEETBASE_PATH, &wrong, body.clone()).await.0, 401);
    assert_eq!(post_raw(&app, FLEETBASE_PATH, &[], body.clone()).await.0, 401);
    let old = fb(
        "event_2",
        &(created - time::Duration::hours(25)).format(&fmt).unwrap(),
    );
    assert_eq!(post_raw(&app, FLEETBASE_PATH, &h(&old), old.clone()).await.0, 401);
    let mut altered = body.clone();
    altered[5] ^= 1;
    assert_eq!(post_raw(&app, FLEETBASE_PATH, &h(&body), altered).await.0, 401);
    assert_eq!(post_raw(&app, FLEETBASE_PATH, &h(&big), big.clone()).await.0, 413);
    let rows = logs(&app, "fleetbase").await;
    let statuses: Vec<(&str, bool)> = rows.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(
        statuses,
        vec![
            ("received", true),
            ("duplicate", true),
            ("failed", false),
            ("failed", false),
            ("failed", false),
            ("failed", false),
            ("failed", false)
        ]
    );
    // The tenant came from the verified body's meta (a handle).
    let tenant: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT tenant_id FROM webhook_logs WHERE system_type = 'fleetbase' AND status = 'received'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(tenant.map(|t| t.to_string()).as_deref(), Some(FASHIONISTA));

    // ---- ERPNext (no Content-Type, like Frappe)
    let erp = |modified: &str| {
        format!(r#"{{"doctype": "Sales Order", "name": "SAL-ORD-2026-00001", "modified": "{modified}.123456", "status": "To Deliver and Bill", "grand_total": 119.0, "custom_tenant_id": "fashionista-sa"}}"#).into_bytes()
    };
    let body = erp(&fresh);
    let h = |b: &[u8]| vec![("x-frappe-webhook-signature", sig::erpnext_sign(ERP_SECRET, b))];
    assert_eq!(post_raw(&app, ERP_PATH, &h(&body), body.clone()).await.0, 200);
    assert_eq!(
        post_raw(&app, ERP_PATH, &h(&body), body.clone()).await.1["duplicate"],
        true
    );
    assert_eq!(
        post_raw(
            &app,
            ERP_PATH,
            &[("x-frappe-webhook-signature", sig::erpnext_sign("x", &body))],
            body.clone()
        )
        .await
        .0,
        401
    );
    assert_eq!(post_raw(&app, ERP_PATH, &[], body.clone()).await.0, 401);
    let old = erp(&(created - time::Duration::hours(30)).format(&fmt).unwrap());
    assert_eq!(post_raw(&app, ERP_PATH, &h(&old), old.clone()).await.0, 401);
    let mut altered = body.clone();
    altered[3] ^= 1;
    assert_eq!(post_raw(&app, ERP_PATH, &h(&body), altered).await.0, 401);
    assert_eq!(post_raw(&app, ERP_PATH, &h(&big), big.clone()).await.0, 413);
    // Valid signature but not JSON: 400, logged.
    let junk = b"not json".to_vec();
    assert_eq!(post_raw(&app, ERP_PATH, &h(&junk), junk.clone()).await.0, 400);
    let rows = logs(&app, "erpnext").await;
    let statuses: Vec<(&str, bool)> = rows.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(
        statuses,
        vec![
            ("received", true),
            ("duplicate", true),
            ("failed", false),
            ("failed", false),
            ("failed", false),
            ("failed", false),
            ("failed", false),
            ("failed", true)
        ]
    );
    let ext: String = sqlx::query_scalar(
        "SELECT external_event_id FROM webhook_logs WHERE system_type = 'erpnext' AND status = 'received'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(ext, format!("Sales Order:SAL-ORD-2026-00001:{fresh}.123456:"));
    app.stop().await;
}

#[tokio::test]
async fn missing_secret_is_401_and_tenant_secrets_take_precedence_with_rotation() {
    let (_m, murl) = start_fake_medusa().await;
    let rotating = format!("whsec_b2xkLW1lZHVzYS1zZWNyZXQ=, {MEDUSA_SECRET}");
    let app = spawn(
        &murl,
        &[
            ("FLEETBASE_WEBHOOK_SECRET", ""),
            ("MEDUSA_WEBHOOK_SECRET", &rotating),
        ],
    )
    .await;
    // An env secret being rotated: old and new both verify meanwhile.
    for (i, secret) in ["whsec_b2xkLW1lZHVzYS1zZWNyZXQ=", MEDUSA_SECRET]
        .iter()
        .enumerate()
    {
        let body = medusa_body("prod_rot");
        let h = standard_headers(secret, &format!("msg_rot{i}"), now(), body.as_bytes());
        assert_eq!(post_raw(&app, MEDUSA_PATH, &h, body.into_bytes()).await.0, 200);
    }
    let body = br#"{"id":"event_x","event":"order.created","data":{"meta":{"tenant_id":"fashionista-sa"}}}"#
        .to_vec();
    let (s, e) = post_raw(
        &app,
        FLEETBASE_PATH,
        &[("signature", sig::fleetbase_sign("any", &body))],
        body.clone(),
    )
    .await;
    assert_eq!(
        s, 401,
        "no secret configured: refused (the original processed it)"
    );
    assert_eq!(
        e["errors"][0]["message"],
        "No webhook secret is configured for this source."
    );

    // A tenant endpoint with its own secret, created through the API (stored encrypted).
    let admin = app.admin_token().await;
    let (st, ep) = json(
        app.send(
            Method::POST,
            "/api/integration-endpoints",
            Some(&admin),
            Some(json!({"name": "Fleet", "tenant": FASHIONISTA, "systemType": "fleetbase", "baseUrl": "https://fleet.example", "webhookSecret": "tenant-old"})),
        )
        .await,
    )
    .await;
    assert_eq!(st, 201, "{ep}");
    let id = ep["doc"]["id"].as_str().unwrap().to_string();
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT webhook_secret_enc FROM integration_endpoints WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains("tenant-old"),
        "secret stored encrypted"
    );
    let send = |secret: &'static str, n: u32| {
        let body = format!(r#"{{"id":"event_{n}","event":"order.created","data":{{"meta":{{"tenant_id":"fashionista-sa"}}}}}}"#).into_bytes();
        let h = vec![("signature", sig::fleetbase_sign(secret, &body))];
        (h, body)
    };
    let (h, b) = send("tenant-old", 1);
    assert_eq!(post_raw(&app, FLEETBASE_PATH, &h, b).await.0, 200);
    // Rotate: the old secret stays valid (24 h grace), the new one works at once.
    let (st, _) = json(
        app.send(
            Method::PATCH,
            &format!("/api/integration-endpoints/{id}"),
            Some(&admin),
            Some(json!({"webhookSecret": "tenant-new"})),
        )
        .await,
    )
    .await;
    assert_eq!(st, 200);
    let (h, b) = send("tenant-new", 2);
    assert_eq!(post_raw(&app, FLEETBASE_PATH, &h, b).await.0, 200);
    let (h, b) = send("tenant-old", 3);
    assert_eq!(
        post_raw(&app, FLEETBASE_PATH, &h, b).await.0,
        200,
        "previous secret within its grace period"
    );
    sqlx::query("UPDATE integration_endpoints SET previous_webhook_secret_expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();
    let (h, b) = send("tenant-old", 4);
    assert_eq!(
        post_raw(&app, FLEETBASE_PATH, &h, b).await.0,
        401,
        "grace period over"
    );
    let endpoint_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_logs WHERE system_type = 'fleetbase' AND endpoint_id = $1::uuid AND tenant_id = $2::uuid",
    )
    .bind(&id)
    .bind(FASHIONISTA)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(endpoint_rows, 3, "accepted rows name the endpoint and its tenant");
    app.stop().await;
}

async fn create_published(app: &TestApp, admin: &str, product: &str) -> String {
    let (status, created) = json(
        app.send(
            Method::POST,
            "/api/product-content?depth=0",
            Some(admin),
            Some(json!({"tenant": FASHIONISTA, "medusaProductId": product, "title": "Linen Abaya", "editorialStatus": "published"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created["doc"]["id"].as_str().unwrap().to_string()
}

async fn cron(app: &TestApp, path: &str) -> (u16, Value) {
    json(
        app.client
            .post(app.url(path))
            .header("authorization", format!("Bearer {CRON}"))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn seed_test_5_product_content_sync_job_updates_medusa() {
    let (medusa, murl) = start_fake_medusa().await;
    medusa.add_product("prod_T5");
    let app = spawn(&murl, &[]).await;
    let admin = app.admin_token().await;
    // 1-2. Create ProductContent (published) → a SyncJob is enqueued in the same transaction.
    let id = create_published(&app, &admin, "prod_T5").await;
    let (status, key): (String, String) = sqlx::query_as(
        "SELECT status, idempotency_key FROM sync_jobs WHERE job_type = 'payload_to_medusa' AND source_doc_id = $1",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(status, "queued");
    // 3. Trigger /api/cron/sync.
    let (code, summary) = cron(&app, "/api/cron/sync").await;
    assert_eq!(code, 200);
    assert_eq!(
        (summary["claimed"].as_u64(), summary["succeeded"].as_u64()),
        (Some(1), Some(1)),
        "{summary}"
    );
    assert!(summary["took_ms"].is_u64());
    // 4. Medusa was updated: POST /admin/products/prod_T5 with Basic auth, the idempotency key,
    //    and the metadata contract.
    let bodies = medusa.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0].0, "prod_T5");
    assert_eq!(bodies[0].1, key);
    assert_eq!(bodies[0].2["metadata"]["cms_page_id"], id.as_str());
    assert_eq!(bodies[0].2["metadata"]["tenant_id"], FASHIONISTA);
    assert!(
        bodies[0].2["metadata"]["cms_sync_version"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    let (st, synced, snapshot): (String, String, Value) = sqlx::query_as(
        "SELECT j.status, p.sync_status, p.medusa_snapshot FROM sync_jobs j JOIN product_content p ON p.id::text = j.source_doc_id WHERE j.source_doc_id = $1",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((st.as_str(), synced.as_str()), ("success", "synced"));
    assert_eq!(snapshot["metadata"]["cms_page_id"], id.as_str());
    // Reconcile: Medusa now has our version → in sync, nothing enqueued; a product whose
    // metadata lost the version is re-pushed.
    let (code, rep) = json(
        app.send(
            Method::POST,
            "/api/integrations/payload/reconcile",
            Some(&admin),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(code, 200, "{rep}");
    assert_eq!(
        (
            rep["report"]["inSync"].as_u64(),
            rep["report"]["enqueued"].as_u64()
        ),
        (Some(1), Some(0)),
        "{rep}"
    );
    medusa.products.lock().unwrap().get_mut("prod_T5").unwrap()["metadata"] = json!({});
    let (_, rep) = json(
        app.send(
            Method::POST,
            "/api/integrations/payload/reconcile",
            Some(&admin),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(rep["report"]["enqueued"].as_u64(), Some(1), "{rep}");
    // push-to-medusa (admin) enqueues on demand; an editor may not.
    let (code, pushed) = json(
        app.send(
            Method::POST,
            "/api/integrations/payload/push-to-medusa",
            Some(&admin),
            Some(json!({"where": {"medusaProductId": {"equals": "prod_T5"}}})),
        )
        .await,
    )
    .await;
    assert_eq!(code, 200, "{pushed}");
    assert_eq!(
        (pushed["matched"].as_u64(), pushed["alreadyQueued"].as_u64()),
        (Some(1), Some(1)),
        "coalesces with the queued reconcile push"
    );
    let editor = app
        .member("editor@fashionista.sa", FASHIONISTA, &["content_editor"])
        .await;
    let (code, _) = json(
        app.send(
            Method::POST,
            "/api/integrations/payload/push-to-medusa",
            Some(&editor),
            Some(json!({"id": id})),
        )
        .await,
    )
    .await;
    assert_eq!(code, 403);
    let (code, _) = json(
        app.send(
            Method::POST,
            "/api/integrations/payload/push-to-medusa",
            None,
            Some(json!({"id": id})),
        )
        .await,
    )
    .await;
    assert_eq!(code, 401);
    app.stop().await;
}

/// A draft product-content document of `tenant` (drafts enqueue no push of their own).
async fn create_draft(app: &TestApp, admin: &str, tenant: &str, product: &str) -> String {
    let (status, created) = json(
        app.send(
            Method::POST,
            "/api/product-content?depth=0",
            Some(admin),
            Some(json!({"tenant": tenant, "medusaProductId": product, "title": "Oud Set"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created["doc"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn push_and_reconcile_are_the_policys_actions_per_tenant() {
    let (_medusa, murl) = start_fake_medusa().await;
    let app = spawn(&murl, &[]).await;
    let admin = app.admin_token().await;
    let mine = create_draft(&app, &admin, FASHIONISTA, "prod_A1").await;
    let theirs = create_draft(&app, &admin, common::RIYADH_EATS, "prod_B1").await;
    let push = |who: Option<String>, body: Value| {
        let app = &app;
        async move {
            json(
                app.send(
                    Method::POST,
                    "/api/integrations/payload/push-to-medusa",
                    who.as_deref(),
                    Some(body),
                )
                .await,
            )
            .await
        }
    };
    let queued = |id: String| {
        let app = &app;
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM sync_jobs WHERE job_type = 'payload_to_medusa' AND source_doc_id = $1",
            )
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap()
        }
    };
    // A tenant admin pushes everything it can: its own tenant's document, never the other's.
    let ta = app
        .member("ta@fashionista.sa", FASHIONISTA, &["tenant_admin"])
        .await;
    let in_tenant = |tenant: &'static str| {
        let app = &app;
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM product_content WHERE tenant_id = $1::uuid")
                .bind(tenant)
                .fetch_one(&app.pool)
                .await
                .unwrap() as u64
        }
    };
    let jobs_in = |tenant: &'static str| {
        let app = &app;
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM sync_jobs WHERE job_type = 'payload_to_medusa' AND tenant_id = $1::uuid",
            )
            .bind(tenant)
            .fetch_one(&app.pool)
            .await
            .unwrap()
        }
    };
    let riyadh_jobs = jobs_in(common::RIYADH_EATS).await;
    let (code, rep) = push(Some(ta.clone()), json!({"where": {"id": {"exists": true}}})).await;
    assert_eq!(code, 200, "{rep}");
    let own = in_tenant(FASHIONISTA).await;
    assert!(own >= 1);
    assert_eq!(rep["matched"].as_u64(), Some(own), "{rep}");
    assert_eq!(
        rep["enqueued"].as_u64().unwrap() + rep["alreadyQueued"].as_u64().unwrap(),
        own,
        "{rep}"
    );
    assert_eq!(rep["refused"].as_u64(), Some(0), "{rep}");
    assert_eq!((queued(mine.clone()).await, queued(theirs.clone()).await), (1, 0));
    assert_eq!(
        jobs_in(common::RIYADH_EATS).await,
        riyadh_jobs,
        "nothing of the other tenant"
    );
    // Naming the other tenant's document by id changes nothing.
    let (code, rep) = push(Some(ta.clone()), json!({"id": theirs})).await;
    assert_eq!((code, rep["enqueued"].as_u64()), (200, Some(0)), "{rep}");
    assert_eq!(queued(theirs.clone()).await, 0);
    // Reconcile: its own tenant yes, another tenant's context no.
    let reconcile = |who: String, path: &'static str| {
        let app = &app;
        async move { json(app.send(Method::POST, path, Some(&who), None).await).await }
    };
    let (code, rep) = reconcile(ta.clone(), "/api/integrations/payload/reconcile").await;
    assert_eq!(code, 200, "{rep}");
    assert_eq!(rep["report"]["tenants"].as_u64(), Some(1), "{rep}");
    let (code, _) = reconcile(
        ta.clone(),
        "/api/integrations/payload/reconcile?tenant=riyadh-eats",
    )
    .await;
    assert_eq!(code, 403);
    // API keys: the policy treats a tenant key as its tenant's admin, and the scope must allow
    // writing product content.
    let key = |scopes: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let (code, created) = json(
                app.send(
                    Method::POST,
                    "/api/api-keys?depth=0",
                    Some(&admin),
                    Some(json!({"name": "sync", "tenant": FASHIONISTA, "scopes": scopes})),
                )
                .await,
            )
            .await;
            assert_eq!(code, 201, "{created}");
            created["doc"]["key"].as_str().unwrap().to_string()
        }
    };
    let reader = key(json!(["read:product-content"])).await;
    let writer = key(json!(["read:product-content", "write:product-content"])).await;
    let with_key = |k: String| {
        let app = &app;
        let id = mine.clone();
        async move {
            let res = app
                .client
                .post(app.url("/api/integrations/payload/push-to-medusa"))
                .header("x-api-key", k)
                .json(&json!({"id": id}))
                .send()
                .await
                .unwrap();
            json(res).await
        }
    };
    let (code, _) = with_key(reader).await;
    assert_eq!(code, 403, "a read-only key may not push");
    let (code, rep) = with_key(writer).await;
    assert_eq!(code, 200, "{rep}");
    assert_eq!(rep["matched"].as_u64(), Some(1), "{rep}");
    app.stop().await;
}

#[tokio::test]
async fn medusa_500_then_recovery_timeout_and_permanent_errors() {
    let (medusa, murl) = start_fake_medusa().await;
    medusa.add_product("prod_R");
    medusa.add_product("prod_H");
    let app = spawn(&murl, &[]).await;
    let admin = app.admin_token().await;
    // 500 twice, then recovery.
    medusa.fail_next.store(2, Ordering::SeqCst);
    let id = create_published(&app, &admin, "prod_R").await;
    let ix = integrations(&app, &murl, &[]);
    let s = queue::run_batch(&ix, queue::SYNC_TYPES, 10).await.unwrap();
    assert_eq!(s.retried, 1);
    let err: String = sqlx::query_scalar("SELECT error_message FROM sync_jobs WHERE source_doc_id = $1")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        err.contains("500") && err.contains("An unknown error occurred."),
        "{err}"
    );
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        queue::run_batch(&ix, queue::SYNC_TYPES, 10).await.unwrap();
    }
    let (st, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM sync_jobs WHERE source_doc_id = $1")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((st.as_str(), attempts), ("success", 3));
    assert_eq!(medusa.applied_total(), 1);

    // Hanging past the timeout (500 ms): retried, then dead after max attempts.
    medusa.hang.store(true, Ordering::SeqCst);
    let ix = integrations(&app, &murl, &[("SYNC_MAX_ATTEMPTS", "2")]);
    let hid = create_published(&app, &admin, "prod_H").await;
    sqlx::query("UPDATE sync_jobs SET max_attempts = 2 WHERE source_doc_id = $1")
        .bind(&hid)
        .execute(&app.pool)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let s = queue::run_batch(&ix, queue::SYNC_TYPES, 10).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the timeout bounds the call"
    );
    assert_eq!(s.retried, 1, "{s:?}");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let s = queue::run_batch(&ix, queue::SYNC_TYPES, 10).await.unwrap();
    assert_eq!(s.dead, 1, "{s:?}");
    let (st, err, sync, sync_err): (String, String, String, Option<String>) = sqlx::query_as(
        "SELECT j.status, j.error_message, p.sync_status, p.last_sync_error FROM sync_jobs j JOIN product_content p ON p.id::text = j.source_doc_id WHERE j.source_doc_id = $1",
    )
    .bind(&hid)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((st.as_str(), sync.as_str()), ("dead", "failed"));
    assert!(err.contains("timeout"), "{err}");
    assert!(sync_err.is_some());
    medusa.hang.store(false, Ordering::SeqCst);

    // A 404 is permanent: failed at once, no retry.
    let nid = create_published(&app, &admin, "prod_missing").await;
    let s = queue::run_batch(&ix, queue::SYNC_TYPES, 10).await.unwrap();
    assert_eq!(s.failed, 1, "{s:?}");
    let (st, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM sync_jobs WHERE source_doc_id = $1")
            .bind(&nid)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((st.as_str(), attempts), ("failed", 1));
    app.stop().await;
}

async fn insert_jobs(app: &TestApp, n: i32) {
    sqlx::query(
        "INSERT INTO sync_jobs (job_type, tenant_id, source_collection, source_doc_id, target_system, target_id, payload, idempotency_key)
         SELECT 'payload_to_medusa', $1::uuid, 'product-content', gen_random_uuid()::text, 'medusa', 'prod_Q',
                jsonb_build_object('updatedAt', '2026-11-24T10:00:00.000Z'), 'bulk:' || g
           FROM generate_series(1, $2) g",
    )
    .bind(FASHIONISTA)
    .bind(n)
    .execute(&app.pool)
    .await
    .unwrap();
}

async fn wait_all_done(app: &TestApp, n: i64, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sync_jobs WHERE status IN ('success', 'failed', 'dead')",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if done >= n {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "only {done}/{n} jobs done");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn four_workers_apply_a_thousand_jobs_exactly_once() {
    let (medusa, murl) = start_fake_medusa().await;
    medusa.add_product("prod_Q");
    let app = spawn(&murl, &[]).await;
    insert_jobs(&app, 1000).await;
    let ix = integrations(&app, &murl, &[]);
    ix.start_listener();
    let workers = queue::spawn_workers(&ix, 4);
    wait_all_done(&app, 1000, 120).await;
    for w in workers {
        w.abort();
    }
    let counts = queue::counts(&app.pool).await.unwrap();
    assert_eq!(counts, vec![("success".to_string(), 1000)]);
    assert_eq!(medusa.requests.load(Ordering::SeqCst), 1000, "each job sent once");
    assert_eq!(medusa.applied_total(), 1000);
    assert!(medusa.applied.lock().unwrap().values().all(|n| *n == 1));
    let workers: i64 = sqlx::query_scalar("SELECT count(DISTINCT logs->0->>'message') FROM sync_jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(workers >= 1);
    app.stop().await;
}

#[tokio::test]
async fn a_worker_sends_at_most_its_concurrency_of_requests_at_once() {
    let (medusa, murl) = start_fake_medusa().await;
    medusa.add_product("prod_Q");
    medusa.delay_ms.store(30, Ordering::SeqCst);
    let app = spawn(&murl, &[]).await;
    insert_jobs(&app, 40).await;
    let ix = integrations(
        &app,
        &murl,
        &[("SYNC_CLAIM_BATCH", "16"), ("SYNC_WORKER_CONCURRENCY", "3")],
    );
    let workers = queue::spawn_workers(&ix, 1);
    wait_all_done(&app, 40, 60).await;
    for w in workers {
        w.abort();
    }
    assert_eq!(
        queue::counts(&app.pool).await.unwrap(),
        vec![("success".to_string(), 40)]
    );
    assert_eq!(medusa.applied_total(), 40);
    let most = medusa.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&most),
        "a batch of 16 runs 3 requests at a time, not 1 and not 16: {most}"
    );
    app.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_running_jobs_and_hands_back_the_unstarted_ones() {
    let (medusa, murl) = start_fake_medusa().await;
    medusa.add_product("prod_Q");
    // Within the client's timeout (500 ms in these tests).
    medusa.delay_ms.store(300, Ordering::SeqCst);
    let app = spawn(
        &murl,
        &[
            ("SYNC_WORKERS", "1"),
            ("SYNC_CLAIM_BATCH", "4"),
            ("SYNC_CLAIM_BATCH_MAX", "4"),
            ("SYNC_WORKER_CONCURRENCY", "1"),
        ],
    )
    .await;
    // One statement: the worker's first claim takes all four, and runs one at a time.
    insert_jobs(&app, 4).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while medusa.in_flight.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "no job started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pool = app.pool.clone();
    let stopping = std::time::Instant::now();
    app.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "the drain waits for the running job, not for leases (60 s)"
    );
    let rows: Vec<(String, i32, Option<String>, Value)> = sqlx::query_as(
        "SELECT status, attempts, locked_by, logs FROM sync_jobs WHERE idempotency_key LIKE 'bulk:%' ORDER BY status",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let statuses: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(statuses, ["queued", "queued", "queued", "success"], "{rows:?}");
    assert_eq!(medusa.applied_total(), 1, "the running job was finished, once");
    for (_, attempts, locked_by, logs) in rows.iter().filter(|r| r.0 == "queued") {
        assert_eq!(
            (*attempts, locked_by.as_deref()),
            (0, None),
            "its attempt is given back"
        );
        assert!(logs.to_string().contains("released at shutdown"), "{logs}");
    }
}

#[tokio::test]
async fn a_killed_worker_s_job_is_finished_by_another_after_its_lease_expires() {
    let (medusa, murl) = start_fake_medusa().await;
    medusa.add_product("prod_Q");
    let app = spawn(&murl, &[]).await;
    insert_jobs(&app, 1).await;
    medusa.hang.store(true, Ordering::SeqCst);
    let ix = integrations(
        &app,
        &murl,
        &[
            ("SYNC_LEASE_SECONDS", "1"),
            ("MEDUSA_REQUEST_TIMEOUT_MS", "20000"),
        ],
    );
    let victim = queue::spawn_workers(&ix, 1);
    // Wait until the job is in flight at Medusa, then kill the worker.
    for _ in 0..100 {
        if medusa.requests.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(medusa.requests.load(Ordering::SeqCst), 1);
    victim[0].abort();
    medusa.hang.store(false, Ordering::SeqCst);
    let (st, locked): (String, Option<String>) = sqlx::query_as("SELECT status, locked_by FROM sync_jobs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(st, "running");
    assert!(locked.is_some());
    let rescuer = queue::spawn_workers(&ix, 1);
    wait_all_done(&app, 1, 20).await;
    rescuer[0].abort();
    let (st, attempts, logs): (String, i32, Value) =
        sqlx::query_as("SELECT status, attempts, logs FROM sync_jobs")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((st.as_str(), attempts), ("success", 2));
    assert!(logs.to_string().contains("lease"), "{logs}");
    assert_eq!(medusa.applied_total(), 1, "applied once at Medusa");
    app.stop().await;
}

#[tokio::test]
async fn cron_routes_need_the_secret_and_concurrent_calls_never_share_a_job() {
    let (medusa, murl) = start_fake_medusa().await;
    medusa.add_product("prod_Q");
    let app = spawn(&murl, &[("CRON_BATCH_SIZE", "1000")]).await;
    for path in ["/api/cron/sync", "/api/cron/webhook-retry", "/api/cron/reconcile"] {
        let res = app.client.post(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 401, "{path} without secret");
        let res = app
            .client
            .post(app.url(path))
            .header("x-cron-secret", "wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{path} with a wrong secret");
        let res = app
            .client
            .post(app.url(path))
            .header("authorization", "Bearer wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    insert_jobs(&app, 200).await;
    let (a, b) = tokio::join!(cron(&app, "/api/cron/sync"), cron(&app, "/api/cron/sync"));
    assert_eq!((a.0, b.0), (200, 200));
    let claimed = a.1["claimed"].as_u64().unwrap() + b.1["claimed"].as_u64().unwrap();
    let succeeded = a.1["succeeded"].as_u64().unwrap() + b.1["succeeded"].as_u64().unwrap();
    assert_eq!((claimed, succeeded), (200, 200), "{a:?} {b:?}");
    assert_eq!(medusa.requests.load(Ordering::SeqCst), 200);
    // The x-cron-secret header works as well.
    let res = app
        .client
        .post(app.url("/api/cron/webhook-retry"))
        .header("x-cron-secret", CRON)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Scheduler: one instance at a time (advisory lock held elsewhere → skipped).
    let ix = integrations(&app, &murl, &[]);
    let mut holder = app.pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(cityos::integrations::scheduler::LOCK_SYNC)
        .execute(&mut *holder)
        .await
        .unwrap();
    assert!(
        cityos::integrations::scheduler::run_once(&ix, cityos::integrations::scheduler::Task::Sync)
            .await
            .unwrap()
            .is_none()
    );
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(cityos::integrations::scheduler::LOCK_SYNC)
        .execute(&mut *holder)
        .await
        .unwrap();
    assert!(
        cityos::integrations::scheduler::run_once(&ix, cityos::integrations::scheduler::Task::Sync)
            .await
            .unwrap()
            .is_some()
    );
    // The reconcile cron enqueues one platform reconcile job and runs it.
    let (code, summary) = cron(&app, "/api/cron/reconcile").await;
    assert_eq!(code, 200);
    assert_eq!(
        (summary["claimed"].as_u64(), summary["succeeded"].as_u64()),
        (Some(1), Some(1)),
        "{summary}"
    );
    let logs: Value = sqlx::query_scalar("SELECT logs FROM sync_jobs WHERE job_type = 'reconcile'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        logs[0]["message"].as_str().unwrap().contains("medusaProducts"),
        "{logs}"
    );
    app.stop().await;
}

/// Headers and body of one delivery received by the test endpoint.
type Delivery = (HeaderMap, Vec<u8>);

#[tokio::test]
async fn subscribed_endpoints_receive_standard_webhooks_signed_events() {
    let (_m, murl) = start_fake_medusa().await;
    // A receiving endpoint that verifies the signature like a subscriber would.
    let received: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let r2 = received.clone();
    let hook = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let r2 = r2.clone();
            async move {
                r2.lock().unwrap().push((headers, body.to_vec()));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let app = spawn(&murl, &[]).await;
    let admin = app.admin_token().await;
    let secret = "whsec_b3V0Ym91bmQtc2VjcmV0LWZvci10ZXN0cw==";
    let (st, ep) = json(
        app.send(
            Method::POST,
            "/api/integration-endpoints",
            Some(&admin),
            Some(json!({"name": "Notify", "tenant": FASHIONISTA, "systemType": "notifications", "baseUrl": hook_url,
                        "webhookSecret": secret, "events": ["pages.published", "sync-jobs.dead"]})),
        )
        .await,
    )
    .await;
    assert_eq!(st, 201, "{ep}");
    let (st, page) = json(
        app.send(
            Method::POST,
            "/api/pages",
            Some(&admin),
            Some(json!({"tenant": FASHIONISTA, "title": "Launch", "status": "published"})),
        )
        .await,
    )
    .await;
    assert_eq!(st, 201, "{page}");
    let (code, summary) = cron(&app, "/api/cron/webhook-retry").await;
    assert_eq!(code, 200);
    assert_eq!(summary["succeeded"].as_u64(), Some(1), "{summary}");
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "only the subscribed event");
    let (h, body) = &got[0];
    let g = |n: &str| h.get(n).unwrap().to_str().unwrap().to_string();
    assert_eq!(
        sig::verify_standard(
            &[secret],
            &g("webhook-id"),
            &g("webhook-timestamp"),
            body,
            &g("webhook-signature")
        ),
        Ok(0)
    );
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["type"], "pages.published");
    assert_eq!(event["data"]["id"], page["doc"]["id"]);
    // A job that dies emits sync-jobs.dead to the subscribers.
    sqlx::query(
        "INSERT INTO sync_jobs (job_type, tenant_id, source_collection, source_doc_id, target_system, target_id, payload, idempotency_key, max_attempts)
         VALUES ('payload_to_medusa', $1::uuid, 'product-content', 'doc-1', 'medusa', 'prod_x', '{}', 'dies', 1)",
    )
    .bind(FASHIONISTA)
    .execute(&app.pool)
    .await
    .unwrap();
    let unreachable = integrations(&app, "http://127.0.0.1:9", &[]);
    let s = queue::run_batch(&unreachable, queue::SYNC_TYPES, 10)
        .await
        .unwrap();
    assert_eq!(s.dead, 1, "{s:?}");
    let (_, summary) = cron(&app, "/api/cron/webhook-retry").await;
    assert_eq!(summary["succeeded"].as_u64(), Some(1), "{summary}");
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let dead: Value = serde_json::from_slice(&got[1].1).unwrap();
    assert_eq!(dead["type"], "sync-jobs.dead");
    assert_eq!(dead["data"]["attempts"], 1);
    assert!(
        dead["data"]["errorMessage"].as_str().unwrap().contains("Medusa"),
        "{dead}"
    );

    let (status, code, dir): (String, i32, String) = sqlx::query_as(
        "SELECT status, response_code, direction FROM webhook_logs WHERE direction = 'outbound' ORDER BY created_at LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), code, dir.as_str()),
        ("success", 204, "outbound")
    );
    app.stop().await;
}

/// Stops a test's own cluster even when an assertion fails.
struct StopCluster(std::path::PathBuf);

impl Drop for StopCluster {
    fn drop(&mut self) {
        let pgdata = self.0.to_string_lossy().to_string();
        let args = ["-D", pgdata.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if unsafe { libc::geteuid() } == 0 {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--", "pg_ctl"])
                .args(args)
                .output()
        } else {
            std::process::Command::new("pg_ctl").args(args).output()
        };
    }
}

#[tokio::test]
async fn postgres_restarted_while_jobs_run_loses_nothing_and_applies_nothing_twice() {
    use cityos::db::embedded::{Durability, EmbeddedPostgres};
    let (medusa, murl) = start_fake_medusa().await;
    medusa.add_product("prod_Q");
    medusa.delay_ms.store(5, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("cityos-jobs-restart-{}", uuid::Uuid::new_v4()));
    // Durable: an immediate stop of an fsync-off cluster may lose acknowledged commits.
    let pg = EmbeddedPostgres::start(&dir, None, Durability::Durable)
        .await
        .unwrap();
    let _stop = StopCluster(pg.pgdata().to_path_buf());
    cityos::db::ensure_database(&pg.url("postgres"), "cityos")
        .await
        .unwrap();
    let mut vars = env(&murl);
    vars.retain(|(k, _)| !matches!(*k, "SYNC_WORKERS" | "SYNC_LEASE_SECONDS"));
    vars.push(("SYNC_WORKERS", "2".into()));
    vars.push(("SYNC_LEASE_SECONDS", "2".into()));
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_on(&pg.url("cityos"), &refs).await;
    // Platform jobs (no tenant: this database has no demo data).
    sqlx::query(
        "INSERT INTO sync_jobs (job_type, source_collection, source_doc_id, target_system, target_id, payload, idempotency_key)
         SELECT 'payload_to_medusa', 'product-content', gen_random_uuid()::text, 'medusa', 'prod_Q',
                '{}'::jsonb, 'restart:' || g FROM generate_series(1, 300) g",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    for _ in 0..500 {
        if medusa.applied_total() >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        medusa.applied_total() >= 40 && medusa.applied_total() < 300,
        "restart must hit mid-run"
    );
    pg.force_stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    pg.restart(Durability::Durable).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let done: Result<i64, _> =
            sqlx::query_scalar("SELECT count(*) FROM sync_jobs WHERE status = 'success'")
                .fetch_one(&app.pool)
                .await;
        if done.as_ref().is_ok_and(|d| *d == 300) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not all jobs recovered: {done:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts = queue::counts(&app.pool).await.unwrap();
    assert_eq!(counts, vec![("success".to_string(), 300)]);
    let applied = medusa.applied.lock().unwrap().clone();
    assert_eq!(applied.len(), 300, "every job reached Medusa");
    assert_eq!(
        medusa.bodies.lock().unwrap().len(),
        300,
        "and was applied exactly once"
    );
    app.stop().await;
    pg.force_stop().await.ok();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_expired_lease_on_the_last_attempt_makes_the_job_dead_and_marks_its_document() {
    let (_m, murl) = start_fake_medusa().await;
    let app = spawn(&murl, &[]).await;
    let doc: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO product_content (tenant_id, medusa_product_id, title) VALUES ($1::uuid, 'prod_L', 'L') RETURNING id",
    )
    .bind(FASHIONISTA)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    // A job whose worker vanished during its last allowed attempt.
    sqlx::query(
        "INSERT INTO sync_jobs (job_type, tenant_id, source_collection, source_doc_id, target_system, target_id,
                                idempotency_key, status, attempts, max_attempts, locked_by, locked_at, lease_expires_at)
         VALUES ('payload_to_medusa', $1::uuid, 'product-content', $2, 'medusa', 'prod_L', 'k', 'running', 2, 2,
                 'gone:1:0', now() - interval '1 minute', now() - interval '1 second')",
    )
    .bind(FASHIONISTA)
    .bind(doc.to_string())
    .execute(&app.pool)
    .await
    .unwrap();
    let (code, summary) = cron(&app, "/api/cron/sync").await;
    assert_eq!(code, 200);
    assert_eq!(
        (summary["reaped"].as_u64(), summary["claimed"].as_u64()),
        (Some(1), Some(0)),
        "{summary}"
    );
    let (st, err, locked): (String, String, Option<String>) =
        sqlx::query_as("SELECT status, error_message, locked_by FROM sync_jobs WHERE idempotency_key = 'k'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((st.as_str(), locked), ("dead", None));
    assert!(err.contains("lease expired"), "{err}");
    let sync: String = sqlx::query_scalar("SELECT sync_status FROM product_content WHERE id = $1")
        .bind(doc)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sync, "failed");
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_s_own_secret_takes_precedence_over_the_env_secret() {
    let (_m, murl) = start_fake_medusa().await;
    let app = spawn(&murl, &[]).await;
    let admin = app.admin_token().await;
    let (st, ep) = json(
        app.send(
            Method::POST,
            "/api/integration-endpoints",
            Some(&admin),
            Some(
                json!({"name": "Fleet", "tenant": FASHIONISTA, "systemType": "fleetbase",
                        "baseUrl": "https://fleet.example", "webhookSecret": "tenant-secret"}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(st, 201, "{ep}");
    let endpoint = ep["doc"]["id"].as_str().unwrap().to_string();
    let delivery = |n: u32, tenant: Option<&str>, secret: &str| {
        let meta = match tenant {
            Some(t) => format!(r#"{{"tenant_id":"{t}"}}"#),
            None => "{}".into(),
        };
        let body =
            format!(r#"{{"id":"event_p{n}","event":"order.updated","data":{{"meta":{meta}}}}}"#).into_bytes();
        (vec![("signature", sig::fleetbase_sign(secret, &body))], body)
    };
    let who = |id: Value| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_as::<_, (Option<uuid::Uuid>, Option<uuid::Uuid>)>(
                "SELECT tenant_id, endpoint_id FROM webhook_logs WHERE id = $1::text::uuid",
            )
            .bind(id.as_str().unwrap().to_string())
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    // The tenant has its own secret: the env secret no longer speaks for it.
    let (h, b) = delivery(1, Some("fashionista-sa"), FLEETBASE_SECRET);
    assert_eq!(post_raw(&app, FLEETBASE_PATH, &h, b).await.0, 401);
    let (h, b) = delivery(2, Some("fashionista-sa"), "tenant-secret");
    let (s, r) = post_raw(&app, FLEETBASE_PATH, &h, b).await;
    assert_eq!(s, 200, "{r}");
    let (t, e) = who(r["id"].clone()).await;
    assert_eq!(
        (t.map(|t| t.to_string()), e.map(|e| e.to_string())),
        (Some(FASHIONISTA.into()), Some(endpoint.clone()))
    );
    // Another tenant without an endpoint still uses the env secret.
    let (h, b) = delivery(3, Some(common::RIYADH_EATS), FLEETBASE_SECRET);
    let (s, r) = post_raw(&app, FLEETBASE_PATH, &h, b).await;
    assert_eq!(s, 200, "{r}");
    let (t, e) = who(r["id"].clone()).await;
    assert_eq!(
        (t.map(|t| t.to_string()), e),
        (Some(common::RIYADH_EATS.into()), None)
    );
    // No hint: the secret that verifies names the tenant.
    let (h, b) = delivery(4, None, "tenant-secret");
    let (s, r) = post_raw(&app, FLEETBASE_PATH, &h, b).await;
    assert_eq!(s, 200, "{r}");
    let (t, _) = who(r["id"].clone()).await;
    assert_eq!(t.map(|t| t.to_string()).as_deref(), Some(FASHIONISTA));
    app.stop().await;
}

#[tokio::test]
async fn handlers_per_event_deleted_products_unknown_types_and_fleetbase_orders() {
    let (_m, murl) = start_fake_medusa().await;
    let app = spawn(&murl, &[]).await;
    sqlx::query("INSERT INTO product_content (tenant_id, medusa_product_id, title) VALUES ($1::uuid, 'prod_gone', 'Gone')")
        .bind(FASHIONISTA)
        .execute(&app.pool)
        .await
        .unwrap();
    for (id, body) in [
        (
            "msg_del",
            r#"{"type":"product.deleted","data":{"id":"prod_gone"}}"#,
        ),
        ("msg_odd", r#"{"type":"customer.created","data":{"id":"cus_1"}}"#),
    ] {
        let h = standard_headers(MEDUSA_SECRET, id, now(), body.as_bytes());
        assert_eq!(
            post_raw(&app, MEDUSA_PATH, &h, body.as_bytes().to_vec()).await.0,
            200
        );
    }
    let body = format!(
        r#"{{"id":"event_o1","event":"order.completed","created_at":"{}","data":{{"id":"order_1","status":"completed","meta":{{"medusa_order_id":"order_01"}}}}}}"#,
        time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .unwrap()
    );
    let h = vec![(
        "signature",
        sig::fleetbase_sign(FLEETBASE_SECRET, body.as_bytes()),
    )];
    assert_eq!(post_raw(&app, FLEETBASE_PATH, &h, body.into_bytes()).await.0, 200);
    let (code, summary) = cron(&app, "/api/cron/webhook-retry").await;
    assert_eq!(code, 200);
    assert_eq!(
        (summary["claimed"].as_u64(), summary["succeeded"].as_u64()),
        (Some(3), Some(3)),
        "{summary}"
    );
    let (sync, err): (String, Option<String>) = sqlx::query_as(
        "SELECT sync_status, last_sync_error FROM product_content WHERE medusa_product_id = 'prod_gone'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(sync, "conflict");
    assert!(err.unwrap().contains("deleted"));
    let notes: Vec<(String, String)> = sqlx::query_as(
        "SELECT w.event_type, j.logs->0->>'message' FROM sync_jobs j JOIN webhook_logs w ON w.id = j.webhook_log_id ORDER BY w.created_at",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(notes.len(), 3);
    assert!(
        notes[1].1.contains("no handler for medusa customer.created"),
        "{notes:?}"
    );
    assert!(notes[2].1.contains("order_1 is completed"), "{notes:?}");
    let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM webhook_logs ORDER BY created_at")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(statuses, vec!["success", "success", "success"]);
    app.stop().await;
}

/// Waits until the app's listener for `channel` runs (its LISTEN is the connection's last query),
/// so the caches under test are live rather than bypassed.
async fn wait_listening(app: &TestApp, channel: &str) {
    for _ in 0..200 {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE $1",
        )
        .bind(format!("LISTEN%{channel}%"))
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no listener on {channel}");
}

fn test_cipher(app: &TestApp) -> cityos::crypto::FieldCipher {
    let vars = common::test_env(&app.database_url);
    let config = cityos::Config::from_vars(&vars).unwrap();
    cityos::crypto::FieldCipher::new(config.secrets.payload_secret.expose())
}

#[tokio::test]
async fn cached_webhook_secrets_never_outlive_a_change_made_elsewhere() {
    let (_m, murl) = start_fake_medusa().await;
    let app = spawn(&murl, &[]).await;
    wait_listening(&app, "cityos_integrations").await;
    wait_listening(&app, "cityos_context").await;
    let cipher = test_cipher(&app);
    let endpoint: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO integration_endpoints (name, tenant_id, system_type, base_url, webhook_secret_enc)
         VALUES ('Fleet', $1::uuid, 'fleetbase', 'https://fleet.example', $2) RETURNING id",
    )
    .bind(FASHIONISTA)
    .bind(cipher.encrypt("secret-a"))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let delivery = |n: u32, tenant: &str, secret: &str| {
        let body = format!(
            r#"{{"id":"event_c{n}","event":"order.updated","data":{{"meta":{{"tenant_id":"{tenant}"}}}}}}"#
        )
        .into_bytes();
        (vec![("signature", sig::fleetbase_sign(secret, &body))], body)
    };
    // Warm the caches: both tenants' hints and the source's endpoint secrets.
    let (h, b) = delivery(1, "fashionista-sa", "secret-a");
    assert_eq!(post_raw(&app, FLEETBASE_PATH, &h, b).await.0, 200);
    let (h, b) = delivery(2, common::RIYADH_EATS, FLEETBASE_SECRET);
    assert_eq!(post_raw(&app, FLEETBASE_PATH, &h, b).await.0, 200);

    // Another instance changes things and this one has not heard yet (its NOTIFY is held back).
    sqlx::query(
        "ALTER TABLE integration_endpoints DISABLE TRIGGER integration_endpoints_notify_integrations",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // Rotated to b, and the grace period of a cut short.
    sqlx::query("UPDATE integration_endpoints SET webhook_secret_enc = $2 WHERE id = $1")
        .bind(endpoint)
        .bind(cipher.encrypt("secret-b"))
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE integration_endpoints SET previous_webhook_secret_expires_at = now() - interval '1 second' WHERE id = $1",
    )
    .bind(endpoint)
    .execute(&app.pool)
    .await
    .unwrap();
    // Riyadh Eats gets a secret of its own: the env secret no longer speaks for it.
    sqlx::query(
        "INSERT INTO integration_endpoints (name, tenant_id, system_type, base_url, webhook_secret_enc)
         VALUES ('Fleet', $1::uuid, 'fleetbase', 'https://fleet.example', $2)",
    )
    .bind(common::RIYADH_EATS)
    .bind(cipher.encrypt("secret-r"))
    .execute(&app.pool)
    .await
    .unwrap();

    // The cached (now removed) secret is refused: the logging statement finds it changed.
    let (h, b) = delivery(3, "fashionista-sa", "secret-a");
    let (s, r) = post_raw(&app, FLEETBASE_PATH, &h, b).await;
    assert_eq!(s, 401, "{r}");
    // The new secret works at once: a refusal with cached secrets is decided from the table.
    let (h, b) = delivery(4, "fashionista-sa", "secret-b");
    let (s, r) = post_raw(&app, FLEETBASE_PATH, &h, b).await;
    assert_eq!(s, 200, "{r}");
    // The env secret for a tenant that has its own secret now: refused.
    let (h, b) = delivery(5, common::RIYADH_EATS, FLEETBASE_SECRET);
    let (s, r) = post_raw(&app, FLEETBASE_PATH, &h, b).await;
    assert_eq!(s, 401, "{r}");
    let (h, b) = delivery(6, common::RIYADH_EATS, "secret-r");
    let (s, r) = post_raw(&app, FLEETBASE_PATH, &h, b).await;
    assert_eq!(s, 200, "{r}");
    // A disabled endpoint's secret: refused.
    sqlx::query("UPDATE integration_endpoints SET enabled = false WHERE id = $1")
        .bind(endpoint)
        .execute(&app.pool)
        .await
        .unwrap();
    let (h, b) = delivery(7, "fashionista-sa", "secret-b");
    assert_eq!(post_raw(&app, FLEETBASE_PATH, &h, b).await.0, 401);

    // One log row per delivery, with the verdict each got; only the accepted ones have a job.
    let rows: Vec<(Option<String>, bool, i32, Option<uuid::Uuid>)> = sqlx::query_as(
        "SELECT external_event_id, signature_valid, response_code, tenant_id FROM webhook_logs
          WHERE system_type = 'fleetbase' ORDER BY created_at, id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let verdicts: Vec<(Option<&str>, bool, i32)> = rows
        .iter()
        .map(|(e, v, c, _)| (e.as_deref().and_then(|e| e.strip_prefix("event_c")), *v, *c))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            (Some("1"), true, 200),
            (Some("2"), true, 200),
            (None, false, 401),
            (Some("4"), true, 200),
            (None, false, 401),
            (Some("6"), true, 200),
            (None, false, 401),
        ]
    );
    assert_eq!(
        rows[5].3.map(|t| t.to_string()).as_deref(),
        Some(common::RIYADH_EATS)
    );
    assert_eq!(job_count(&app, "process_webhook").await, 4);
    app.stop().await;
}

#[tokio::test]
async fn the_secret_cache_serves_repeated_lookups_and_empties_on_notify() {
    use cityos::integrations::webhooks::Source;
    let (_m, murl) = start_fake_medusa().await;
    let app = spawn(&murl, &[]).await;
    let ix = integrations(&app, &murl, &[]);
    ix.secrets.spawn_invalidation(app.pool.clone());
    let cipher = test_cipher(&app);
    let lookup = || {
        ix.secrets.candidates(
            &ix.pool,
            &ix.cipher,
            Source::Fleetbase,
            None,
            secrets::Read::Cached,
        )
    };
    let mut live = false;
    for _ in 0..200 {
        lookup().await.unwrap();
        if lookup().await.unwrap().cached {
            live = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        live,
        "the second lookup is served from the cache once its listener runs"
    );
    let before = lookup().await.unwrap().list.len();
    // A change from anywhere (here: SQL) empties it through NOTIFY cityos_integrations.
    sqlx::query(
        "INSERT INTO integration_endpoints (name, tenant_id, system_type, base_url, webhook_secret_enc)
         VALUES ('Fleet', $1::uuid, 'fleetbase', 'https://fleet.example', $2)",
    )
    .bind(FASHIONISTA)
    .bind(cipher.encrypt("secret-n"))
    .execute(&app.pool)
    .await
    .unwrap();
    let mut seen = false;
    for _ in 0..200 {
        let c = lookup().await.unwrap();
        if c.list.len() == before + 1 {
            seen = c.list.iter().any(|c| &*c.secret == "secret-n");
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "the new endpoint's secret is a candidate after the NOTIFY");
    assert!(lookup().await.unwrap().cached, "and cached again");
    app.stop().await;
}

#[tokio::test]
async fn accepted_deliveries_share_a_coalesced_notify_that_other_instances_hear() {
    let (_m, murl) = start_fake_medusa().await;
    let app = spawn(&murl, &[]).await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&app.pool).await.unwrap();
    listener.listen("cityos_jobs").await.unwrap();
    for i in 0..20 {
        let body = medusa_body(&format!("prod_n{i}"));
        let h = standard_headers(MEDUSA_SECRET, &format!("msg_n{i}"), now(), body.as_bytes());
        assert_eq!(post_raw(&app, MEDUSA_PATH, &h, body.into_bytes()).await.0, 200);
    }
    // Another instance's idle workers are woken: at least one NOTIFY after the jobs committed…
    let first = tokio::time::timeout(Duration::from_secs(2), listener.recv()).await;
    assert!(first.is_ok_and(|n| n.is_ok()), "a NOTIFY cityos_jobs arrives");
    // …but fewer than one per delivery (a NOTIFY per insert would give 20; the notifier sends
    // at most one per 20 ms).
    let mut more = 0;
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), listener.recv()).await {
        more += 1;
    }
    assert!(more < 19, "coalesced: {} NOTIFYs for 20 deliveries", more + 1);
    assert_eq!(job_count(&app, "process_webhook").await, 20);
    app.stop().await;
}

#[tokio::test]
async fn the_app_s_workers_wake_on_another_instance_s_notify_without_polling() {
    let (_m, murl) = start_fake_medusa().await;
    // A poll interval far beyond the test: only the NOTIFY can wake the idle workers.
    let app = spawn(
        &murl,
        &[("SYNC_WORKERS", "2"), ("SYNC_POLL_INTERVAL_MS", "600000")],
    )
    .await;
    wait_listening(&app, "cityos_jobs").await;
    // Let the workers find the queue empty and go to sleep.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query(
        "INSERT INTO sync_jobs (job_type, source_collection, source_doc_id, target_system, idempotency_key)
         VALUES ('payload_to_medusa', 'pages', 'p1', 'medusa', 'wake:1')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    wait_all_done(&app, 1, 5).await;
    assert_eq!(
        queue::counts(&app.pool).await.unwrap(),
        vec![("success".to_string(), 1)]
    );
    app.stop().await;
}

/// A delivery as the receivers hand it to the ingest writers.
fn delivery(n: usize, external_id: &str, tenant: Option<uuid::Uuid>) -> ingest::Delivery {
    ingest::Delivery {
        row: ingest::LogRow {
            request_id: format!("req-ingest-{n}"),
            source: "medusa",
            tenant,
            store: None,
            endpoint: None,
            event_type: "product.updated".into(),
            external_id: Some(external_id.into()),
            hash: Some(format!("{n:064x}")),
            signature_valid: true,
            status: "received",
            url: MEDUSA_PATH.into(),
            headers: json!({"webhook-id": external_id}),
            body: Some(axum::body::Bytes::from(medusa_body(&format!("prod_i{n}")))),
            response_code: 200,
            error: None,
        },
        store_hint: None,
        confirm: None,
        defer_notify: false,
    }
}

/// Deliveries waiting together share one statement (one commit); a redelivery in the same
/// statement as its original is its duplicate; a delivery the database refuses fails alone and
/// the others of its statement are still stored, each exactly once.
#[tokio::test]
async fn waiting_deliveries_share_one_statement_and_a_failing_one_fails_alone() {
    let (_m, murl) = start_fake_medusa().await;
    let app = spawn(&murl, &[]).await;
    let fashionista: uuid::Uuid = FASHIONISTA.parse().unwrap();
    let ingest = ingest::Ingest::new(app.pool.clone(), 16, 1, 8);

    // 1. Ten deliveries waiting at once (the writer starts after all are queued): one statement.
    //    Two of them carry the same event id.
    let mut batch: Vec<_> = (0..10)
        .map(|n| delivery(n, &format!("msg_batch_{n}"), Some(fashionista)))
        .collect();
    batch[7].row.external_id = Some("msg_batch_2".into());
    let outcomes = futures_util::future::join_all(batch.into_iter().map(|d| ingest.accept(d))).await;
    assert_eq!(ingest.counts(), (1, 10), "one statement carried all ten");
    let outcomes: Vec<ingest::Outcome> = outcomes.into_iter().map(Result::unwrap).collect();
    let first = match outcomes[2] {
        ingest::Outcome::Logged {
            id: Some(id),
            duplicate: false,
        } => id,
        other => panic!("the original is logged: {other:?}"),
    };
    assert_eq!(
        outcomes[7],
        ingest::Outcome::Logged {
            id: Some(first),
            duplicate: true
        },
        "the redelivery in the same statement points at its original"
    );
    let fresh = outcomes
        .iter()
        .filter(|o| matches!(o, ingest::Outcome::Logged { duplicate: false, .. }))
        .count();
    assert_eq!(fresh, 9);
    assert_eq!(job_count(&app, "process_webhook").await, 9, "one job per event");
    let (received, duplicates): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'received'), count(*) FILTER (WHERE status = 'duplicate')
           FROM webhook_logs WHERE request_id LIKE 'req-ingest-%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((received, duplicates), (9, 1));

    // 2. One delivery names a tenant that does not exist (the foreign key refuses it): the
    //    statement writes nothing, then each delivery is written alone.
    let mut batch: Vec<_> = (10..16)
        .map(|n| delivery(n, &format!("msg_batch_{n}"), Some(fashionista)))
        .collect();
    batch[3].row.tenant = Some(uuid::Uuid::new_v4());
    let outcomes = futures_util::future::join_all(batch.into_iter().map(|d| ingest.accept(d))).await;
    for (i, o) in outcomes.iter().enumerate() {
        if i == 3 {
            assert!(o.is_err(), "the refused delivery fails: {o:?}");
        } else {
            assert!(
                matches!(o, Ok(ingest::Outcome::Logged { duplicate: false, .. })),
                "delivery {i} is stored: {o:?}"
            );
        }
    }
    assert_eq!(
        ingest.counts(),
        (1 + 1 + 6, 10 + 5),
        "the failed statement, then one per delivery"
    );
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT external_event_id FROM webhook_logs WHERE request_id LIKE 'req-ingest-%' AND status = 'received'
          ORDER BY external_event_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let expected: Vec<String> = {
        let mut v: Vec<String> = (0..16)
            .filter(|n| *n != 7 && *n != 13)
            .map(|n| format!("msg_batch_{n}"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        stored, expected,
        "every other delivery stored once, the refused one not at all"
    );
    assert_eq!(job_count(&app, "process_webhook").await, 14);
    app.stop().await;
}

/// Through the receivers under concurrency: every delivery answered 200 after its commit, each
/// event stored and queued once however its redeliveries were grouped into statements.
#[tokio::test]
async fn concurrent_deliveries_and_redeliveries_are_each_stored_once() {
    let (_m, murl) = start_fake_medusa().await;
    let app = spawn(&murl, &[]).await;
    let sends = (0..64).map(|i| {
        let app = &app;
        async move {
            // 16 events, each delivered four times at once.
            let event = i % 16;
            let body = medusa_body(&format!("prod_c{event}"));
            let h = standard_headers(MEDUSA_SECRET, &format!("msg_c{event}"), now(), body.as_bytes());
            post_raw(app, MEDUSA_PATH, &h, body.into_bytes()).await
        }
    });
    let answers = futures_util::future::join_all(sends).await;
    let mut originals = std::collections::HashMap::new();
    for (i, (status, answer)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "{answer}");
        if answer["duplicate"] == false {
            assert!(
                originals.insert(i % 16, answer["id"].clone()).is_none(),
                "event {} accepted twice",
                i % 16
            );
        }
    }
    assert_eq!(originals.len(), 16, "every event accepted once");
    for (i, (_, answer)) in answers.iter().enumerate() {
        assert_eq!(
            answer["id"],
            originals[&(i % 16)],
            "a redelivery points at its original"
        );
    }
    let rows = logs(&app, "medusa").await;
    assert_eq!(rows.len(), 64, "every delivery logged");
    assert_eq!(rows.iter().filter(|r| r.0 == "received").count(), 16);
    assert_eq!(rows.iter().filter(|r| r.0 == "duplicate" && r.2).count(), 48);
    assert_eq!(job_count(&app, "process_webhook").await, 16);
    app.stop().await;
}

/// Refusals decide from a read of the secrets that began after the delivery arrived; such a
/// read is shared by the refusals that arrived before it began (so a flood of forged
/// deliveries does not read the table once each), and an acceptance from a shared read is
/// confirmed by the logging statement like one from the cache.
#[tokio::test]
async fn refusals_share_a_read_that_began_after_they_arrived() {
    use cityos::integrations::webhooks::Source;
    use secrets::Read;
    let (_m, murl) = start_fake_medusa().await;
    let app = spawn(&murl, &[]).await;
    let ix = integrations(&app, &murl, &[]);
    let cipher = test_cipher(&app);
    let secrets_of =
        |c: &secrets::Candidates| -> Vec<String> { c.list.iter().map(|c| c.secret.to_string()).collect() };
    let ix = &ix;
    let read = |how: Read| async move {
        ix.secrets
            .candidates(&ix.pool, &ix.cipher, Source::Fleetbase, None, how)
            .await
            .unwrap()
    };
    let arrived = std::time::Instant::now();
    let first = read(Read::After(arrived)).await;
    assert!(!first.cached, "a read of its own");
    // A second refusal that arrived before that read began takes it (and would confirm an
    // acceptance from it).
    let second = read(Read::After(arrived)).await;
    assert!(second.cached, "the shared read");
    assert_eq!(secrets_of(&second), secrets_of(&first));
    // A secret added now: a delivery arriving after it is decided from a new read that sees it.
    sqlx::query(
        "INSERT INTO integration_endpoints (name, tenant_id, system_type, base_url, webhook_secret_enc)
         VALUES ('Fleet', $1::uuid, 'fleetbase', 'https://fleet.example', $2)",
    )
    .bind(FASHIONISTA)
    .bind(cipher.encrypt("secret-added-now"))
    .execute(&app.pool)
    .await
    .unwrap();
    let later = read(Read::After(std::time::Instant::now())).await;
    assert!(!later.cached);
    assert!(secrets_of(&later).contains(&"secret-added-now".to_string()));
    assert!(!secrets_of(&first).contains(&"secret-added-now".to_string()));
    // A read of one's own is never shared.
    let own = read(Read::Own).await;
    assert!(!own.cached);

    // Through the receiver: 32 forged deliveries at once are each refused and logged once.
    let sends = (0..32).map(|i| {
        let app = &app;
        async move {
            let body = format!(r#"{{"id":"forged_{i}","event":"order.updated"}}"#).into_bytes();
            let h = vec![("signature", sig::fleetbase_sign("not-the-secret", &body))];
            post_raw(app, FLEETBASE_PATH, &h, body).await.0
        }
    });
    let statuses = futures_util::future::join_all(sends).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let rows = logs(&app, "fleetbase").await;
    assert_eq!(rows.len(), 32);
    assert!(rows.iter().all(|r| r.0 == "failed" && !r.1));
    app.stop().await;
}

/// Refused deliveries waiting together are logged by one statement; two with the same
/// (client-supplied) request id make it fail, and then each is logged alone, the second with a
/// suffixed request id: every refusal leaves its row.
#[tokio::test]
async fn waiting_refusals_share_one_statement_and_each_leaves_its_row() {
    let (_m, murl) = start_fake_medusa().await;
    let app = spawn(&murl, &[]).await;
    let ingest = ingest::Ingest::new(app.pool.clone(), 16, 1, 8);
    let refusal = |n: usize, request_id: &str| ingest::LogRow {
        request_id: request_id.into(),
        source: "erpnext",
        tenant: None,
        store: None,
        endpoint: None,
        event_type: "Item.on_update".into(),
        external_id: None,
        hash: Some(format!("{n:064x}")),
        signature_valid: false,
        status: "failed",
        url: ERP_PATH.into(),
        headers: json!({"x-frappe-webhook-signature": "[redacted]"}),
        body: (n != 3).then(|| axum::body::Bytes::from(format!("{{\"n\":{n}}}"))),
        response_code: if n == 3 { 413 } else { 401 },
        error: Some("Invalid webhook signature.".into()),
    };
    let batch: Vec<_> = (0..8).map(|n| refusal(n, &format!("req-refused-{n}"))).collect();
    let results = futures_util::future::join_all(batch.into_iter().map(|r| ingest.refuse(r))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(ingest.counts(), (1, 8), "one statement for the eight");
    let rows = logs(&app, "erpnext").await;
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r.0 == "failed" && !r.1 && !r.2));
    assert_eq!(
        rows.iter().filter(|r| !r.3).count(),
        1,
        "the too-large body is not kept"
    );

    // The same request id twice in one batch: the statement fails, each is then logged alone.
    let batch = vec![
        refusal(10, "req-refused-same"),
        refusal(11, "req-refused-same"),
        refusal(12, "req-refused-12"),
    ];
    let results = futures_util::future::join_all(batch.into_iter().map(|r| ingest.refuse(r))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(ingest.counts(), (1 + 1 + 3, 8 + 3));
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT request_id FROM webhook_logs WHERE request_id LIKE 'req-refused-same%' ORDER BY created_at, id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[0], "req-refused-same");
    assert!(ids[1].starts_with("req-refused-same.") && ids[1].len() == "req-refused-same.".len() + 8);
    assert_eq!(logs(&app, "erpnext").await.len(), 11);
    app.stop().await;
}

/// JSON's `\u0000` in the text a delivery carries into the log's columns (event type, id,
/// tenant and store hints): PostgreSQL's text cannot hold a NUL, so these were 500s and the
/// refusal went unlogged. Now each delivery is answered and logged like any other, the NUL
/// shown as U+FFFD in the columns and the body kept byte for byte.
#[tokio::test]
async fn deliveries_with_nul_characters_are_answered_and_logged() {
    let (_m, murl) = start_fake_medusa().await;
    let app = spawn(&murl, &[]).await;
    // Unsigned, with a NUL in the event type and in the tenant hint: refused and logged.
    let forged = br#"{"type":"order\u0000placed","tenant_id":"x\u0000","data":{"id":"o_1"}}"#.to_vec();
    let json_type = [("content-type", "application/json".to_string())];
    let (status, body) = post_raw(&app, MEDUSA_PATH, &json_type, forged.clone()).await;
    assert_eq!(status, 401, "{body}");
    // Signed (ERPNext), a NUL in the doctype, the name and the store hint: accepted.
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let fresh = time::OffsetDateTime::now_utc().format(&fmt).unwrap();
    let signed = format!(
        r#"{{"doctype": "Item\u0000", "name": "ITEM\u0000-1", "modified": "{fresh}.000001", "custom_tenant_id": "fashionista-sa", "custom_store_id": "s\u0000"}}"#
    )
    .into_bytes();
    let h = vec![(
        "x-frappe-webhook-signature",
        sig::erpnext_sign(ERP_SECRET, &signed),
    )];
    let (status, body) = post_raw(&app, ERP_PATH, &h, signed.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["duplicate"], false);
    // The same delivery again is known by its (cleaned) id.
    let (status, body) = post_raw(&app, ERP_PATH, &h, signed.clone()).await;
    assert_eq!((status, body["duplicate"].as_bool()), (200, Some(true)), "{body}");

    let rows: Vec<(String, String, Option<String>, Vec<u8>)> = sqlx::query_as(
        "SELECT status, event_type, external_event_id, raw_body FROM webhook_logs \
         WHERE direction = 'inbound' ORDER BY created_at, id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let columns: Vec<(&str, &str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_deref()))
        .collect();
    let erp_id = format!("Item\u{FFFD}:ITEM\u{FFFD}-1:{fresh}.000001:");
    assert_eq!(
        columns,
        [
            ("failed", "order\u{FFFD}placed", None),
            ("received", "Item\u{FFFD}", Some(erp_id.as_str())),
            ("duplicate", "Item\u{FFFD}", Some(erp_id.as_str())),
        ]
    );
    assert_eq!(rows[0].3, forged, "the refused body is kept as sent");
    assert_eq!(rows[1].3, signed, "the accepted body is kept as sent");
    app.stop().await;
}
