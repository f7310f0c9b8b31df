//! What each job does: one small function per job type, and per (source, event type) for
//! inbound webhooks. Tenant data is written in the job's tenant scope (RLS applies); platform
//! jobs (no tenant) run with all tenants.

use std::sync::Arc;

use serde_json::{json, Value};
use uuid::Uuid;

use super::medusa::{self, MedusaTarget};
use super::queue::{Finished, Job, Outcome};
use super::Integrations;
use crate::db::scope::{begin, DbScope};

/// Runs the job's work; never panics on bad input (a bad job is a permanent failure).
pub async fn execute(ix: &Arc<Integrations>, job: &Job) -> Outcome {
    let result = match job.job_type.as_str() {
        "payload_to_medusa" => push_to_medusa(ix, job).await,
        "medusa_to_payload" => match job.source_doc_id.clone() {
            Some(id) => refresh_product(ix, job.tenant_id, &id).await,
            None => Ok(Outcome::Fail("medusa_to_payload job without sourceDocId".into())),
        },
        "process_webhook" => process_webhook(ix, job).await,
        "deliver_webhook" => super::outbound::deliver(ix, job).await,
        "reconcile" => reconcile_job(ix, job).await,
        other => Ok(Outcome::Fail(format!("unknown job type {other:?}"))),
    };
    match result {
        Ok(o) => o,
        // A database problem is transient from the job's point of view.
        Err(e) => Outcome::Retry {
            error: format!("database error: {e}"),
            after: None,
        },
    }
}

/// Bookkeeping on the records a job stands for, once its outcome is recorded.
pub async fn after_finish(ix: &Integrations, job: &Job, outcome: &Outcome, finished: Finished) {
    let result = async {
        match job.job_type.as_str() {
            "payload_to_medusa" if job.source_collection.as_deref() == Some("product-content") => {
                let error = match (outcome, finished) {
                    (Outcome::Fail(e), Finished::Failed)
                    | (Outcome::Retry { error: e, .. }, Finished::Dead) => e,
                    _ => return Ok(()),
                };
                let Some(id) = job.source_doc_id.as_deref().and_then(|s| Uuid::parse_str(s).ok()) else {
                    return Ok(());
                };
                let mut tx = begin(&ix.pool, &job.scope()).await?;
                sqlx::query(
                    "UPDATE product_content SET sync_status = 'failed', last_sync_error = $2 WHERE id = $1",
                )
                .bind(id)
                .bind(super::queue::truncate(error, 4000))
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            }
            "process_webhook" => {
                let Some(log) = job.webhook_log_id else {
                    return Ok(());
                };
                let status = match finished {
                    Finished::Succeeded => "success",
                    Finished::Retried => "retrying",
                    Finished::Failed => "failed",
                    Finished::Dead => "dead",
                    Finished::Lost => return Ok(()),
                };
                let error = match outcome {
                    Outcome::Success(_) => None,
                    Outcome::Fail(e) | Outcome::Retry { error: e, .. } => {
                        Some(super::queue::truncate(e, 4000))
                    }
                };
                let mut tx = begin(&ix.pool, &DbScope::system()).await?;
                sqlx::query(
                    "UPDATE webhook_logs w SET status = $2, attempts = $3, error_message = $4,
                            processed_at = CASE WHEN $2 = 'success' THEN now() ELSE w.processed_at END,
                            next_retry_at = CASE WHEN $2 = 'retrying'
                                THEN (SELECT run_after FROM sync_jobs WHERE id = $5) END
                      WHERE w.id = $1",
                )
                .bind(log)
                .bind(status)
                .bind(job.attempts)
                .bind(error)
                .bind(job.id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            }
            _ => Ok(()),
        }
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(job = %job.id, error = %e, "cannot record the job's effect on its source");
    }
}

/// `cms_sync_version` of a document: its `updatedAt` in unix milliseconds (monotonic per edit).
pub fn sync_version(doc: &Value) -> String {
    doc.get("updatedAt")
        .and_then(Value::as_str)
        .and_then(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000).to_string())
        .unwrap_or_else(|| "0".into())
}

async fn medusa_or_fail(
    ix: &Integrations,
    tenant: Option<Uuid>,
) -> Result<Result<MedusaTarget, Outcome>, sqlx::Error> {
    Ok(match medusa::target_for(ix, tenant).await? {
        Some(t) => Ok(t),
        None => Err(Outcome::Fail(
            "Medusa is not configured (MEDUSA_BASE_URL or a medusa integration endpoint)".into(),
        )),
    })
}

/// `payload_to_medusa`: product content → the product's metadata in Medusa.
async fn push_to_medusa(ix: &Arc<Integrations>, job: &Job) -> Result<Outcome, sqlx::Error> {
    let collection = job.source_collection.as_deref().unwrap_or("");
    if collection != "product-content" {
        // Pages and vendor stores have no counterpart in Medusa's core Admin API.
        return Ok(Outcome::Success(format!(
            "nothing to push for {collection}; acknowledged"
        )));
    }
    let doc = job.payload.clone().unwrap_or(Value::Null);
    let Some(product_id) = job.target_id.clone().or_else(|| {
        doc.get("medusaProductId")
            .and_then(Value::as_str)
            .map(str::to_string)
    }) else {
        return Ok(Outcome::Fail("no medusaProductId to push to".into()));
    };
    let target = match medusa_or_fail(ix, job.tenant_id).await? {
        Ok(t) => t,
        Err(o) => return Ok(o),
    };
    let version = sync_version(&doc);
    let body = json!({
        "metadata": {
            "cms_page_id": job.source_doc_id,
            "tenant_id": job.tenant_id.map(|t| t.to_string()),
            "cms_sync_version": version,
        }
    });
    let product = match target
        .update_product(ix, &product_id, &body, &job.idempotency_key)
        .await
    {
        Ok(v) => v.get("product").cloned().unwrap_or(v),
        Err(e) => return Ok(e.into_outcome()),
    };
    if let Some(id) = job.source_doc_id.as_deref().and_then(|s| Uuid::parse_str(s).ok()) {
        let mut tx = begin(&ix.pool, &job.scope()).await?;
        sqlx::query(
            "UPDATE product_content SET sync_status = 'synced', last_sync_at = now(), last_sync_error = NULL,
                    medusa_snapshot = $2, handle = coalesce($3, handle)
              WHERE id = $1",
        )
        .bind(id)
        .bind(&product)
        .bind(product.get("handle").and_then(Value::as_str))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(Outcome::Success(format!(
        "pushed to Medusa product {product_id} (cms_sync_version {version})"
    )))
}

/// Re-fetches a Medusa product and refreshes the snapshot of the product content linked to
/// it. Our own pushes come back as `product.updated`; writing the same snapshot again is
/// harmless and enqueues nothing (this write bypasses the engine's hooks).
async fn refresh_product(
    ix: &Arc<Integrations>,
    tenant: Option<Uuid>,
    product_id: &str,
) -> Result<Outcome, sqlx::Error> {
    let target = match medusa_or_fail(ix, tenant).await? {
        Ok(t) => t,
        Err(o) => return Ok(o),
    };
    let product = match target.get_product(ix, product_id).await {
        Ok(v) => v.get("product").cloned().unwrap_or(v),
        Err(e) if e.status == Some(404) => {
            return mark_deleted(ix, tenant, product_id).await;
        }
        Err(e) => return Ok(e.into_outcome()),
    };
    let variants: Vec<String> = product
        .get("variants")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v.get("id")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let scope = DbScope {
        tenant_id: tenant,
        user_id: None,
        all_tenants: tenant.is_none(),
    };
    let mut tx = begin(&ix.pool, &scope).await?;
    let n = sqlx::query(
        "UPDATE product_content SET medusa_snapshot = $2, handle = coalesce($3, handle),
                medusa_variant_ids = CASE WHEN cardinality($4::text[]) > 0 THEN $4 ELSE medusa_variant_ids END,
                last_sync_at = now()
          WHERE medusa_product_id = $1 AND medusa_snapshot IS DISTINCT FROM $2",
    )
    .bind(product_id)
    .bind(&product)
    .bind(product.get("handle").and_then(Value::as_str))
    .bind(&variants)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Outcome::Success(format!(
        "snapshot of {product_id} refreshed in {n} product content document(s)"
    )))
}

async fn mark_deleted(
    ix: &Integrations,
    tenant: Option<Uuid>,
    product_id: &str,
) -> Result<Outcome, sqlx::Error> {
    let scope = DbScope {
        tenant_id: tenant,
        user_id: None,
        all_tenants: tenant.is_none(),
    };
    let mut tx = begin(&ix.pool, &scope).await?;
    let n = sqlx::query(
        "UPDATE product_content SET sync_status = 'conflict', last_sync_error = 'The product was deleted in Medusa.'
          WHERE medusa_product_id = $1",
    )
    .bind(product_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Outcome::Success(format!(
        "{product_id} is gone from Medusa; {n} product content document(s) marked conflict"
    )))
}

/// system type, event type, raw body, tenant of a stored delivery.
type LogRowData = (String, String, Option<Vec<u8>>, Option<Uuid>);

/// `process_webhook`: the stored delivery → its handler.
async fn process_webhook(ix: &Arc<Integrations>, job: &Job) -> Result<Outcome, sqlx::Error> {
    let Some(log) = job.webhook_log_id else {
        return Ok(Outcome::Fail(
            "process_webhook job without its webhook log".into(),
        ));
    };
    let mut tx = begin(&ix.pool, &DbScope::system()).await?;
    let row: Option<LogRowData> =
        sqlx::query_as("SELECT system_type, event_type, raw_body, tenant_id FROM webhook_logs WHERE id = $1")
            .bind(log)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    let Some((system, event, body, tenant)) = row else {
        return Ok(Outcome::Fail("the webhook log is gone".into()));
    };
    let body: Value = body
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    match (system.as_str(), event.as_str()) {
        ("medusa", "product.created" | "product.updated") => match data.get("id").and_then(Value::as_str) {
            Some(id) => refresh_product(ix, tenant, id).await,
            None => Ok(Outcome::Fail("product event without data.id".into())),
        },
        ("medusa", "product.deleted") => match data.get("id").and_then(Value::as_str) {
            Some(id) => mark_deleted(ix, tenant, id).await,
            None => Ok(Outcome::Fail("product event without data.id".into())),
        },
        ("fleetbase", e) if e.starts_with("order.") => {
            let status = data.get("status").and_then(Value::as_str).unwrap_or("?");
            let order = data.get("id").and_then(Value::as_str).unwrap_or("?");
            let medusa_order = data
                .pointer("/meta/medusa_order_id")
                .and_then(Value::as_str)
                .unwrap_or("-");
            Ok(Outcome::Success(format!(
                "Fleetbase order {order} is {status} (Medusa order {medusa_order}); no local record to update"
            )))
        }
        (source, event) => Ok(Outcome::Success(format!(
            "no handler for {source} {event}; logged and acknowledged"
        ))),
    }
}

/// id, store, Medusa product, version last pushed, synced, push payload.
type ContentRow = (Uuid, Option<Uuid>, String, Option<String>, bool, Value);

/// Counts of one reconciliation.
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    pub tenants: u64,
    pub medusa_products: u64,
    pub content_documents: u64,
    pub in_sync: u64,
    pub enqueued: u64,
    pub missing_in_medusa: u64,
    pub not_in_cms: u64,
}

/// Compares Medusa's products with `product-content` of `tenant` (all tenants when `None`)
/// and enqueues a push for every document whose version Medusa does not have.
pub async fn reconcile(
    ix: &Integrations,
    tenant: Option<Uuid>,
) -> Result<Result<ReconcileReport, Outcome>, sqlx::Error> {
    let mut report = ReconcileReport::default();
    let tenants: Vec<Uuid> = match tenant {
        Some(t) => vec![t],
        None => {
            let mut tx = begin(&ix.pool, &DbScope::system()).await?;
            let ts = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM product_content ORDER BY 1")
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            ts
        }
    };
    for t in tenants {
        let target = match medusa_or_fail(ix, Some(t)).await? {
            Ok(target) => target,
            Err(o) => return Ok(Err(o)),
        };
        let products = match target.list_products(ix).await {
            Ok(p) => p,
            Err(e) => return Ok(Err(e.into_outcome())),
        };
        report.tenants += 1;
        report.medusa_products += products.len() as u64;
        let versions: std::collections::HashMap<String, Option<String>> = products
            .iter()
            .filter_map(|p| {
                let id = p.get("id")?.as_str()?.to_string();
                let v = p
                    .pointer("/metadata/cms_sync_version")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                Some((id, v))
            })
            .collect();
        let scope = DbScope {
            tenant_id: Some(t),
            user_id: None,
            all_tenants: false,
        };
        let mut tx = begin(&ix.pool, &scope).await?;
        let docs: Vec<ContentRow> = sqlx::query_as(
            "SELECT id, store_id, medusa_product_id, medusa_snapshot #>> '{metadata,cms_sync_version}',
                    sync_status = 'synced',
                    jsonb_build_object('id', id, 'medusaProductId', medusa_product_id, 'title', title,
                        'updatedAt', to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))
               FROM product_content WHERE tenant_id = $1 AND editorial_status = 'published'",
        )
        .bind(t)
        .fetch_all(&mut *tx)
        .await?;
        report.content_documents += docs.len() as u64;
        let mut linked = std::collections::HashSet::new();
        for (id, store, product, pushed, synced, doc) in docs {
            linked.insert(product.clone());
            let Some(remote) = versions.get(&product) else {
                report.missing_in_medusa += 1;
                continue;
            };
            // In sync: nothing changed since our last push, and Medusa still has that push.
            if synced && pushed.is_some() && remote.as_deref() == pushed.as_deref() {
                report.in_sync += 1;
                continue;
            }
            let key = format!(
                "payload_to_medusa:product-content:{id}:{}",
                doc["updatedAt"].as_str().unwrap_or("")
            );
            let n = sqlx::query(
                "INSERT INTO sync_jobs (job_type, tenant_id, store_id, source_collection, source_doc_id,
                                        target_system, target_id, payload, idempotency_key, max_attempts, metadata)
                 VALUES ('payload_to_medusa', $1, $2, 'product-content', $3, 'medusa', $4, $5,
                         $6 || ':reconcile:' || extract(epoch FROM now())::bigint, $7, '{\"reason\":\"reconcile\"}')
                 ON CONFLICT DO NOTHING",
            )
            .bind(t)
            .bind(store)
            .bind(id.to_string())
            .bind(&product)
            .bind(&doc)
            .bind(key)
            .bind(ix.config.jobs.max_attempts)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            report.enqueued += n;
        }
        tx.commit().await?;
        report.not_in_cms += versions.keys().filter(|k| !linked.contains(*k)).count() as u64;
    }
    Ok(Ok(report))
}

async fn reconcile_job(ix: &Arc<Integrations>, job: &Job) -> Result<Outcome, sqlx::Error> {
    Ok(match reconcile(ix, job.tenant_id).await? {
        Ok(r) => Outcome::Success(format!(
            "reconciled: {}",
            serde_json::to_string(&r).unwrap_or_default()
        )),
        Err(o) => o,
    })
}
