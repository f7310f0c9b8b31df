//! Outbound events: integration endpoints of kind `notifications`/`custom` subscribe to
//! `<collection>.<created|updated|deleted|published>`, `sync-jobs.dead` or `*`. Each delivery is
//! a `deliver_webhook` job enqueued in the transaction of the change, signed as Standard
//! Webhooks with the endpoint's webhook secret, retried by the queue, and logged as an
//! outbound `webhook_logs` row (one per delivery, updated on every attempt).

use std::sync::Arc;

use serde_json::{json, Map, Value};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::queue::{truncate, Job, Outcome};
use super::Integrations;
use crate::collections::access::Action;
use crate::collections::hooks::ChangeEvent;
use crate::db::scope::{begin, DbScope};

fn published(doc: Option<&Map<String, Value>>) -> bool {
    doc.is_some_and(|d| {
        d.get("status").and_then(Value::as_str) == Some("published")
            || d.get("editorialStatus").and_then(Value::as_str) == Some("published")
    })
}

/// Enqueues deliveries for a change, in the write's transaction: a SQL expression (a call of
/// `cityos_enqueue_change`) for the caller's statement; `false` (nothing pushed) when the change
/// has no tenant.
pub fn push_on_change(qb: &mut QueryBuilder<'_, Postgres>, ev: &ChangeEvent<'_>) -> bool {
    let Some(tenant) = ev.tenant else { return false };
    let verb = match ev.action {
        Action::Create => "created",
        Action::Delete => "deleted",
        _ => "updated",
    };
    let mut events = vec![format!("{}.{verb}", ev.collection)];
    if ev.action != Action::Delete && published(ev.after) && !published(ev.before) {
        events.push(format!("{}.published", ev.collection));
    }
    let doc = ev
        .after
        .or(ev.before)
        .cloned()
        .map(Value::Object)
        .unwrap_or(Value::Null);
    let data = json!({"collection": ev.collection, "id": ev.id, "tenant": tenant, "doc": doc});
    push_enqueue(qb, tenant, events, ev.collection, &ev.id.to_string(), data);
    true
}

/// `sync-jobs.dead` for the job's tenant (not for dead deliveries themselves: no loops).
pub async fn emit_job_dead(conn: &mut PgConnection, job: &Job, error: &str) -> Result<(), sqlx::Error> {
    let Some(tenant) = job.tenant_id else {
        return Ok(());
    };
    if job.job_type == "deliver_webhook" {
        return Ok(());
    }
    let data = json!({
        "id": job.id, "jobType": job.job_type, "sourceCollection": job.source_collection,
        "sourceDocId": job.source_doc_id, "attempts": job.attempts, "errorMessage": error,
    });
    let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
    let events = vec!["sync-jobs.dead".to_string()];
    push_enqueue(&mut qb, tenant, events, "sync-jobs", &job.id.to_string(), data);
    qb.build().execute(&mut *conn).await?;
    Ok(())
}

/// The `cityos_enqueue_change(…)` call (migration 0019). The event bodies are built by
/// PostgreSQL around the one `data` value, so a change's document is sent once however many
/// events it raises.
fn push_enqueue(
    qb: &mut QueryBuilder<'_, Postgres>,
    tenant: Uuid,
    events: Vec<String>,
    collection: &str,
    doc_id: &str,
    data: Value,
) {
    let msg_ids: Vec<String> = events.iter().map(|_| new_msg_id()).collect();
    push_enqueue_call(
        qb,
        tenant,
        collection,
        doc_id,
        |qb| {
            qb.push_bind(events);
        },
        |qb| {
            qb.push_bind(msg_ids);
        },
        |qb| {
            qb.push_bind(sqlx::types::Json(data)).push("::jsonb");
        },
    );
}

/// [`push_on_change`] for a create whose stored document is the SQL expression `doc` (jsonb,
/// timestamps in Payload's form) of the statement's inserted row: the create's events, decided
/// by SQL from that row, in the same statement as the row.
pub fn push_on_create(
    qb: &mut QueryBuilder<'_, Postgres>,
    collection: &str,
    id: Uuid,
    tenant: Uuid,
    doc: &str,
) {
    let published = format!(
        "{doc} @> '{{\"status\": \"published\"}}' OR {doc} @> '{{\"editorialStatus\": \"published\"}}'"
    );
    // The published event and its message id, only when the row is published.
    let if_published = |qb: &mut QueryBuilder<'_, Postgres>, always: String, published_too: String| {
        qb.push(format!("(CASE WHEN {published} THEN "))
            .push_bind(vec![always.clone(), published_too])
            .push("::text[] ELSE ")
            .push_bind(vec![always])
            .push("::text[] END)");
    };
    push_enqueue_call(
        qb,
        tenant,
        collection,
        &id.to_string(),
        |qb| {
            if_published(
                qb,
                format!("{collection}.created"),
                format!("{collection}.published"),
            )
        },
        |qb| if_published(qb, new_msg_id(), new_msg_id()),
        |qb| {
            qb.push("jsonb_build_object('collection', ")
                .push_bind(collection.to_string())
                .push("::text, 'id', ")
                .push_bind(id)
                .push(", 'tenant', ")
                .push_bind(tenant)
                .push(format!(", 'doc', {doc})"));
        },
    );
}

fn new_msg_id() -> String {
    format!("msg_{}", Uuid::new_v4().simple())
}

/// `cityos_enqueue_change(…)` (migration 0019) with the events, their message ids and the
/// `data` every body carries pushed by the callers (SQL expressions: `text[]`, `text[]`,
/// `jsonb`); the function builds the bodies around the one `data` value.
fn push_enqueue_call<'q>(
    qb: &mut QueryBuilder<'q, Postgres>,
    tenant: Uuid,
    collection: &str,
    doc_id: &str,
    events: impl FnOnce(&mut QueryBuilder<'q, Postgres>),
    msg_ids: impl FnOnce(&mut QueryBuilder<'q, Postgres>),
    data: impl FnOnce(&mut QueryBuilder<'q, Postgres>),
) {
    let now = crate::util::format_timestamp(time::OffsetDateTime::now_utc());
    // Nobody subscribes, as a rule: then the call is not worth making. The lookup runs under
    // the write's row-level security, which shows it the endpoints of every tenant it may
    // write rows of (the same tenant policy); the function looks again under all tenants and
    // matches the events.
    qb.push("CASE WHEN EXISTS (SELECT FROM integration_endpoints e WHERE e.tenant_id = ")
        .push_bind(tenant)
        .push(" AND e.enabled AND e.system_type IN ('notifications', 'custom')) THEN cityos_enqueue_change(")
        .push_bind(tenant)
        .push(", ");
    events(qb);
    qb.push(", ")
        .push_bind(collection.to_string())
        .push(", ")
        .push_bind(doc_id.to_string())
        .push(", ");
    msg_ids(qb);
    qb.push(", ").push_bind(now).push(", ");
    data(qb);
    qb.push(") END");
}

/// One delivery attempt.
pub async fn deliver(ix: &Arc<Integrations>, job: &Job) -> Result<Outcome, sqlx::Error> {
    let Some(endpoint) = job.target_id.as_deref().and_then(|s| Uuid::parse_str(s).ok()) else {
        return Ok(Outcome::Fail("delivery without a target endpoint".into()));
    };
    let payload = job.payload.clone().unwrap_or(Value::Null);
    let msg_id = payload["msgId"].as_str().unwrap_or("msg_unknown").to_string();
    let event = payload["event"].as_str().unwrap_or("unknown").to_string();
    let body = serde_json::to_vec(&payload["body"]).unwrap_or_default();

    let mut tx = begin(&ix.pool, &DbScope::system()).await?;
    type Row = (
        String,
        String,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<String>,
        i32,
        bool,
        String,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT base_url, auth_type, auth_secret_enc, webhook_secret_enc, secret_ref, timeout_ms, enabled, system_type
           FROM integration_endpoints WHERE id = $1",
    )
    .bind(endpoint)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let Some((url, auth_type, auth_enc, hook_enc, secret_ref, timeout_ms, enabled, system)) = row else {
        return Ok(Outcome::Fail("the endpoint is gone".into()));
    };
    if !enabled {
        return Ok(Outcome::Fail("the endpoint is disabled".into()));
    }
    let Some(secret) = hook_enc.and_then(|e| ix.cipher.decrypt(&e)) else {
        return Ok(Outcome::Fail(
            "the endpoint has no webhook secret to sign with".into(),
        ));
    };
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = super::signatures::standard_sign(&secret, &msg_id, ts, &body);
    let mut req = ix
        .http
        .post(&url)
        .timeout(std::time::Duration::from_millis(timeout_ms.max(100) as u64))
        .header("content-type", "application/json")
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", &signature)
        .body(body.clone());
    let credential = auth_enc
        .and_then(|e| ix.cipher.decrypt(&e))
        .or_else(|| secret_ref.and_then(|n| std::env::var(n).ok()));
    if let Some(c) = credential {
        req = match auth_type.as_str() {
            "bearer" => req.bearer_auth(c),
            "api_key" => req.header("x-api-key", c),
            "basic" => {
                let (u, p) = c.split_once(':').unwrap_or((c.as_str(), ""));
                req.basic_auth(u, Some(p))
            }
            _ => req,
        };
    }
    let (outcome, code, snippet) = match req.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let text = res.text().await.unwrap_or_default();
            let snippet = truncate(&text, 1000);
            let outcome = if (200..300).contains(&status) {
                Outcome::Success(format!("delivered {event} ({status})"))
            } else if matches!(status, 408 | 409 | 425 | 429) || status >= 500 {
                Outcome::Retry {
                    error: format!("endpoint answered {status}: {}", truncate(&text, 4096)),
                    after: None,
                }
            } else {
                Outcome::Fail(format!("endpoint answered {status}: {}", truncate(&text, 4096)))
            };
            (outcome, Some(status as i32), Some(snippet))
        }
        Err(e) => (
            Outcome::Retry {
                error: if e.is_timeout() {
                    "endpoint did not answer in time".into()
                } else {
                    "cannot reach the endpoint".into()
                },
                after: None,
            },
            None,
            None,
        ),
    };
    let status = match &outcome {
        Outcome::Success(_) => "success",
        Outcome::Fail(_) => "failed",
        Outcome::Retry { .. } if job.attempts >= job.max_attempts => "dead",
        Outcome::Retry { .. } => "retrying",
    };
    let error = match &outcome {
        Outcome::Success(_) => None,
        Outcome::Fail(e) | Outcome::Retry { error: e, .. } => Some(truncate(e, 4000)),
    };
    let mut tx = begin(&ix.pool, &DbScope::system()).await?;
    let log: Uuid = sqlx::query_scalar(
        "INSERT INTO webhook_logs (request_id, system_type, direction, tenant_id, endpoint_id, event_type,
                                   external_event_id, payload_hash, status, attempts, url, headers, raw_body,
                                   response_code, response_body_snippet, error_message, processed_at)
         VALUES ($1, $2, 'outbound', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                 CASE WHEN $8 = 'success' THEN now() END)
         ON CONFLICT (request_id) DO UPDATE SET status = EXCLUDED.status, attempts = EXCLUDED.attempts,
                response_code = EXCLUDED.response_code, response_body_snippet = EXCLUDED.response_body_snippet,
                error_message = EXCLUDED.error_message, processed_at = EXCLUDED.processed_at
         RETURNING id",
    )
    .bind(format!("outbound:{}", job.id))
    .bind(&system)
    .bind(job.tenant_id)
    .bind(endpoint)
    .bind(&event)
    .bind(&msg_id)
    .bind(crate::util::sha256_hex(&body))
    .bind(status)
    .bind(job.attempts)
    .bind(&url)
    .bind(json!({"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": ts.to_string(),
                 "webhook-signature": "[redacted]"}))
    .bind(&body)
    .bind(code)
    .bind(snippet)
    .bind(error)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE sync_jobs SET webhook_log_id = $2 WHERE id = $1 AND webhook_log_id IS NULL")
        .bind(job.id)
        .bind(log)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(outcome)
}
