//! Operator actions on the control plane (the admin UI's buttons): replay a stored inbound
//! delivery, put a failed job back in the queue, cancel a waiting job. Each runs in the
//! caller's transaction (its RLS scope); the policy decided beforehand who may.

use sqlx::PgConnection;
use uuid::Uuid;

/// What an operator action did, in words for the operator.
#[derive(Debug, PartialEq, Eq)]
pub enum Done {
    Yes,
    /// Refused, and why (e.g. an unverified delivery is never replayed).
    No(&'static str),
}

/// Queues the stored delivery's handler again. Only deliveries whose signature was verified
/// and that are not redeliveries qualify: replaying an unverified body would let anyone who
/// can reach the endpoint get a payload processed later.
pub async fn replay_webhook(conn: &mut PgConnection, log_id: Uuid, max_attempts: i32) -> sqlx::Result<Done> {
    let row: Option<(bool, Option<bool>, Option<Uuid>)> = sqlx::query_as(
        "SELECT direction = 'inbound', signature_valid, duplicate_of_id FROM webhook_logs WHERE id = $1",
    )
    .bind(log_id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => return Ok(Done::No("not found")),
        Some((false, _, _)) => return Ok(Done::No("only inbound deliveries are replayed")),
        Some((_, valid, _)) if valid != Some(true) => {
            return Ok(Done::No(
                "a delivery with an invalid signature is never processed",
            ))
        }
        Some((_, _, Some(_))) => return Ok(Done::No("a redelivery is replayed through its original")),
        _ => {}
    }
    // A replay is a new job (its own idempotency key); an already queued one for the same
    // delivery is enough (the coalescing index on queued jobs refuses a second).
    let queued: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO sync_jobs (job_type, tenant_id, store_id, source_collection, source_doc_id,
                                target_system, webhook_log_id, payload, idempotency_key, max_attempts)
         SELECT 'process_webhook', tenant_id, store_id, 'webhook-logs', id::text, 'payload', id,
                jsonb_build_object('source', system_type, 'eventType', event_type, 'replay', true),
                'replay:' || id || ':' || gen_random_uuid(), $2
           FROM webhook_logs WHERE id = $1
         ON CONFLICT DO NOTHING
         RETURNING id",
    )
    .bind(log_id)
    .bind(max_attempts)
    .fetch_optional(&mut *conn)
    .await?;
    if queued.is_none() {
        return Ok(Done::No("a replay of this delivery is already queued"));
    }
    sqlx::query("UPDATE webhook_logs SET status = 'retrying', updated_at = now() WHERE id = $1")
        .bind(log_id)
        .execute(&mut *conn)
        .await?;
    Ok(Done::Yes)
}

/// A failed or dead job goes back to the queue with a fresh set of attempts.
pub async fn retry_job(conn: &mut PgConnection, job_id: Uuid) -> sqlx::Result<Done> {
    let updated = sqlx::query(
        "UPDATE sync_jobs SET status = 'queued', attempts = 0, run_after = now(), locked_by = NULL,
                locked_at = NULL, lease_expires_at = NULL, finished_at = NULL, updated_at = now()
          WHERE id = $1 AND status IN ('failed', 'dead')",
    )
    .bind(job_id)
    .execute(&mut *conn)
    .await;
    match updated {
        Ok(r) if r.rows_affected() == 1 => {
            sqlx::query("SELECT pg_notify('cityos_jobs', 'sync_jobs')")
                .execute(&mut *conn)
                .await?;
            Ok(Done::Yes)
        }
        Ok(_) => Ok(Done::No("only failed or dead jobs are retried")),
        // The coalescing index: a newer job for the same document is already waiting.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Ok(Done::No("a newer job for this document is already queued"))
        }
        Err(e) => Err(e),
    }
}

/// A job still waiting in the queue is given up (`dead`, with who cancelled it). A running
/// job is not interrupted: its worker holds the lease.
pub async fn cancel_job(conn: &mut PgConnection, job_id: Uuid, by: &str) -> sqlx::Result<Done> {
    let updated = sqlx::query(
        "UPDATE sync_jobs SET status = 'dead', finished_at = now(), updated_at = now(),
                error_message = 'cancelled by ' || $2
          WHERE id = $1 AND status = 'queued'",
    )
    .bind(job_id)
    .bind(by)
    .execute(&mut *conn)
    .await?;
    Ok(if updated.rows_affected() == 1 {
        Done::Yes
    } else {
        Done::No("only waiting jobs are cancelled; a running job finishes or its lease expires")
    })
}
