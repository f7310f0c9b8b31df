//! The job queue in `sync_jobs` (data-model 3.16): claim with `FOR UPDATE SKIP LOCKED`, a lease
//! renewed by a heartbeat while the job runs, exponential backoff with jitter, `dead` after
//! `max_attempts`, and `NOTIFY cityos_jobs` wake-ups.
//!
//! Exactly-once effects rest on three things: a job is only ever `running` under one claim
//! (SKIP LOCKED + the status change in the claiming statement); every state change after the
//! claim is fenced by `(locked_by, attempts)`, so a worker whose lease expired cannot overwrite
//! the outcome of the worker that took over; and the target receives the job's
//! `idempotencyKey`, so a request repeated after a lost lease is applied once there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::Integrations;
use crate::db::scope::{begin, DbScope};

/// Job types the sync cron processes.
pub const SYNC_TYPES: &[&str] = &["payload_to_medusa", "medusa_to_payload"];
/// Job types of the webhook-retry cron (inbound processing and outbound deliveries).
pub const WEBHOOK_TYPES: &[&str] = &["process_webhook", "deliver_webhook"];
pub const RECONCILE_TYPES: &[&str] = &["reconcile"];
pub const ALL_TYPES: &[&str] = &[
    "payload_to_medusa",
    "medusa_to_payload",
    "process_webhook",
    "deliver_webhook",
    "reconcile",
];

/// A claimed job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: Uuid,
    pub job_type: String,
    pub tenant_id: Option<Uuid>,
    pub store_id: Option<Uuid>,
    pub source_collection: Option<String>,
    pub source_doc_id: Option<String>,
    pub target_system: Option<String>,
    pub target_id: Option<String>,
    pub webhook_log_id: Option<Uuid>,
    pub payload: Option<Value>,
    pub idempotency_key: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub locked_by: Option<String>,
}

impl Job {
    /// The scope the job's own database work runs in: its tenant, or all tenants for
    /// platform jobs.
    pub fn scope(&self) -> DbScope {
        DbScope {
            tenant_id: self.tenant_id,
            user_id: None,
            all_tenants: self.tenant_id.is_none(),
        }
    }
}

/// What running a job came to.
#[derive(Debug)]
pub enum Outcome {
    Success(String),
    /// Worth retrying (5xx, timeout, connection error); `after` honours `Retry-After`.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Permanent (a 4xx, a missing target): `failed` at once.
    Fail(String),
}

/// What a finished job became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    Succeeded,
    Retried,
    Failed,
    Dead,
    /// The lease was lost meanwhile; another worker owns the job now.
    Lost,
}

/// The JSON summary of a batch (cron routes, the scheduler).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub claimed: u64,
    pub succeeded: u64,
    pub retried: u64,
    pub failed: u64,
    pub dead: u64,
    pub lost: u64,
    pub reaped: u64,
    pub took_ms: u64,
}

impl Summary {
    fn add(&mut self, f: Finished) {
        match f {
            Finished::Succeeded => self.succeeded += 1,
            Finished::Retried => self.retried += 1,
            Finished::Failed => self.failed += 1,
            Finished::Dead => self.dead += 1,
            Finished::Lost => self.lost += 1,
        }
    }
}

const JOB_COLUMNS: &str = "j.id, j.job_type, j.tenant_id, j.store_id, j.source_collection, j.source_doc_id, \
     j.target_system, j.target_id, j.webhook_log_id, j.payload, j.idempotency_key, j.attempts, \
     j.max_attempts, j.locked_by";

/// `min(2^attempts × base, max)` ± 20 % jitter.
pub fn backoff(attempts: i32, base_ms: u64, max_ms: u64) -> Duration {
    let exp = 2u64.saturating_pow(attempts.clamp(0, 40) as u32);
    let ms = base_ms.saturating_mul(exp).min(max_ms) as f64;
    let jitter = rand::thread_rng().gen_range(0.8..=1.2);
    Duration::from_millis((ms * jitter) as u64)
}

/// Claims up to `n` due jobs of `types` for `worker`: status `running`, a lease, one more attempt.
pub async fn claim(
    ix: &Integrations,
    types: &[&str],
    n: i64,
    worker: &str,
    due_by: Option<time::OffsetDateTime>,
) -> Result<Vec<Job>, sqlx::Error> {
    let mut tx = begin(&ix.pool, &DbScope::system()).await?;
    // Workers take every type: no per-row type test while the claim walks the queue's index.
    // (`$3 IS NOT NULL` keeps the parameter typed; without a column it is a one-time test.)
    let type_filter = if types == ALL_TYPES {
        ""
    } else {
        "AND job_type = ANY($3)"
    };
    let jobs = sqlx::query_as::<_, Job>(&format!(
        "UPDATE sync_jobs j
            SET status = 'running', locked_by = $1, locked_at = now(),
                lease_expires_at = now() + make_interval(secs => $2),
                started_at = coalesce(j.started_at, now()), attempts = j.attempts + 1
           FROM (SELECT id FROM sync_jobs
                  WHERE status = 'queued' AND run_after <= least(now(), coalesce($5, now()))
                    AND ($3::text[] IS NOT NULL) {type_filter}
                  ORDER BY run_after LIMIT $4 FOR UPDATE SKIP LOCKED) c
          WHERE j.id = c.id
      RETURNING {JOB_COLUMNS}"
    ))
    .bind(worker)
    .bind(ix.config.jobs.lease_secs as f64)
    .bind(types.iter().map(|t| t.to_string()).collect::<Vec<_>>())
    .bind(n)
    .bind(due_by)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(jobs)
}

/// Extends the lease of a running job; false when the claim is no longer ours.
pub async fn heartbeat(ix: &Integrations, job: &Job) -> Result<bool, sqlx::Error> {
    let mut tx = begin(&ix.pool, &DbScope::system()).await?;
    let n = sqlx::query(
        "UPDATE sync_jobs SET lease_expires_at = now() + make_interval(secs => $1)
          WHERE id = $2 AND status = 'running' AND locked_by = $3 AND attempts = $4",
    )
    .bind(ix.config.jobs.lease_secs as f64)
    .bind(job.id)
    .bind(&job.locked_by)
    .bind(job.attempts)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}

fn log_entry(level: &str, message: &str) -> Value {
    json!([{
        "id": Uuid::new_v4().to_string(),
        "timestamp": crate::util::format_timestamp(time::OffsetDateTime::now_utc()),
        "level": level,
        "message": truncate(message, 1000),
    }])
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Appends a log row and keeps the last 50 (SQL fragment; `$LOG` is the new row array). Most
/// jobs have a few entries: they take the plain concatenation, not the unnest-sort-aggregate.
const APPEND_LOG: &str = "logs = CASE
        WHEN jsonb_array_length(j.logs) + jsonb_array_length($LOG::jsonb) <= 50 THEN j.logs || $LOG::jsonb
        ELSE (SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb) FROM (
              SELECT e, n FROM jsonb_array_elements(j.logs || $LOG::jsonb) WITH ORDINALITY AS x(e, n)
              ORDER BY n DESC LIMIT 50) k) END";

/// Records the outcome, fenced by the claim. Retries go back to `queued` with a later
/// `run_after`; when a newer job for the same document is already queued (coalescing index),
/// the newer one carries the work and this one is closed as `failed` ("superseded").
pub async fn finish(ix: &Integrations, job: &Job, outcome: &Outcome) -> Result<Finished, sqlx::Error> {
    let mut tx = begin(&ix.pool, &DbScope::system()).await?;
    let fence = "WHERE j.id = $1 AND j.status = 'running' AND j.locked_by = $2 AND j.attempts = $3";
    let (finished, sql, level, message, run_after_ms): (Finished, String, &str, String, i64) = match outcome {
        Outcome::Success(note) => (
            Finished::Succeeded,
            format!(
                "UPDATE sync_jobs j SET status = 'success', finished_at = now(), locked_by = NULL,
                        locked_at = NULL, lease_expires_at = NULL, error_message = NULL, {} {fence}",
                APPEND_LOG.replace("$LOG", "$4")
            ),
            "info",
            note.clone(),
            0,
        ),
        Outcome::Fail(err) => (
            Finished::Failed,
            format!(
                "UPDATE sync_jobs j SET status = 'failed', finished_at = now(), locked_by = NULL,
                        locked_at = NULL, lease_expires_at = NULL, error_message = $5, {} {fence}",
                APPEND_LOG.replace("$LOG", "$4")
            ),
            "error",
            err.clone(),
            0,
        ),
        Outcome::Retry { error, after } if job.attempts < job.max_attempts => {
            let delay = after.unwrap_or_else(|| {
                backoff(
                    job.attempts,
                    ix.config.jobs.retry_base_ms,
                    ix.config.jobs.retry_max_ms,
                )
            });
            (
                Finished::Retried,
                format!(
                    "UPDATE sync_jobs j SET status = 'queued', locked_by = NULL, locked_at = NULL,
                            lease_expires_at = NULL, error_message = $5,
                            run_after = now() + make_interval(secs => $6::double precision / 1000), {} {fence}",
                    APPEND_LOG.replace("$LOG", "$4")
                ),
                "warning",
                error.clone(),
                delay.as_millis() as i64,
            )
        }
        Outcome::Retry { error, .. } => (
            Finished::Dead,
            format!(
                "UPDATE sync_jobs j SET status = 'dead', finished_at = now(), locked_by = NULL,
                        locked_at = NULL, lease_expires_at = NULL, error_message = $5, {} {fence}",
                APPEND_LOG.replace("$LOG", "$4")
            ),
            "error",
            error.clone(),
            0,
        ),
    };
    let error = truncate(&message, 4096 + 1000);
    let mut q = sqlx::query(&sql)
        .bind(job.id)
        .bind(&job.locked_by)
        .bind(job.attempts)
        .bind(log_entry(level, &message));
    if !matches!(outcome, Outcome::Success(_)) {
        q = q.bind(&error);
    }
    if finished == Finished::Retried {
        q = q.bind(run_after_ms);
    }
    // Only a return to `queued` can meet the coalescing index.
    if finished == Finished::Retried {
        sqlx::query("SAVEPOINT finish").execute(&mut *tx).await?;
    }
    let result = q.execute(&mut *tx).await;
    let finished = match result {
        Ok(r) if r.rows_affected() == 0 => Finished::Lost,
        Ok(_) => finished,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
            sqlx::query("ROLLBACK TO SAVEPOINT finish")
                .execute(&mut *tx)
                .await?;
            let r = sqlx::query(&format!(
                "UPDATE sync_jobs j SET status = 'failed', finished_at = now(), locked_by = NULL,
                        locked_at = NULL, lease_expires_at = NULL, error_message = $5, {} {fence}",
                APPEND_LOG.replace("$LOG", "$4")
            ))
            .bind(job.id)
            .bind(&job.locked_by)
            .bind(job.attempts)
            .bind(log_entry(
                "info",
                "superseded by a newer queued job for the same document",
            ))
            .bind(format!("superseded by a newer queued job; last error: {error}"))
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 0 {
                Finished::Lost
            } else {
                Finished::Failed
            }
        }
        Err(e) => return Err(e),
    };
    if finished == Finished::Dead {
        super::outbound::emit_job_dead(&mut tx, job, &error).await?;
    }
    tx.commit().await?;
    Ok(finished)
}

/// Returns jobs whose lease expired to the queue (or `dead` when their attempts are used up).
pub async fn reap(ix: &Integrations) -> Result<u64, sqlx::Error> {
    let mut tx = begin(&ix.pool, &DbScope::system()).await?;
    let expired: Vec<Job> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM sync_jobs j
          WHERE j.status = 'running' AND j.lease_expires_at < now()
          ORDER BY j.lease_expires_at LIMIT 100 FOR UPDATE SKIP LOCKED"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let mut n = 0;
    let mut dead = Vec::new();
    for job in expired {
        let (id, attempts) = (job.id, job.attempts);
        let locked_by = job.locked_by.clone().unwrap_or_default();
        sqlx::query("SAVEPOINT reap").execute(&mut *tx).await?;
        let r = sqlx::query(&format!(
            "UPDATE sync_jobs j SET
                status = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'queued' END,
                finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
                error_message = coalesce(j.error_message, 'lease expired (worker lost)'),
                locked_by = NULL, locked_at = NULL, lease_expires_at = NULL, run_after = now(), {}
              WHERE j.id = $1 AND j.status = 'running'",
            APPEND_LOG.replace("$LOG", "$2")
        ))
        .bind(id)
        .bind(log_entry(
            "warning",
            &format!("lease of {locked_by} expired during attempt {attempts}; returned to the queue"),
        ))
        .execute(&mut *tx)
        .await;
        match r {
            Ok(_) => {
                n += 1;
                if job.attempts >= job.max_attempts {
                    super::outbound::emit_job_dead(&mut tx, &job, "lease expired (worker lost)").await?;
                    dead.push(job);
                }
            }
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                sqlx::query("ROLLBACK TO SAVEPOINT reap")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE sync_jobs SET status = 'failed', finished_at = now(), locked_by = NULL,
                            locked_at = NULL, lease_expires_at = NULL,
                            error_message = 'superseded by a newer queued job (lease expired)'
                      WHERE id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                n += 1;
            }
            Err(e) => return Err(e),
        }
    }
    tx.commit().await?;
    let lost = Outcome::Retry {
        error: "lease expired (worker lost)".into(),
        after: None,
    };
    for job in &dead {
        super::handlers::after_finish(ix, job, &lost, Finished::Dead).await;
    }
    Ok(n)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one claimed job: the handler with a heartbeat beside it, then the fenced outcome.
pub async fn run_one(ix: &Arc<Integrations>, job: Job) -> Result<Finished, sqlx::Error> {
    // Aborted when this future ends or is dropped (a killed worker stops renewing its lease).
    let _beat = AbortOnDrop({
        let ix = ix.clone();
        let job = job.clone();
        let every = Duration::from_millis((ix.config.jobs.lease_secs * 1000 / 3).max(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match heartbeat(&ix, &job).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(job = %job.id, error = %e, "heartbeat failed"),
                }
            }
        })
    });
    let outcome = super::handlers::execute(ix, &job).await;
    drop(_beat);
    let finished = finish(ix, &job, &outcome).await?;
    super::handlers::after_finish(ix, &job, &outcome, finished).await;
    if finished != Finished::Succeeded {
        tracing::info!(job = %job.id, job_type = %job.job_type, ?finished, "job not succeeded");
    }
    Ok(finished)
}

/// Runs jobs claimed together under one `locked_by`: the handlers concurrently beside one
/// heartbeat for the batch; successes are recorded in one statement (one commit for the
/// batch), everything else one by one. Returns the outcome of each job.
pub async fn run_claimed(ix: &Arc<Integrations>, jobs: Vec<Job>) -> Result<Vec<Finished>, sqlx::Error> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let locked_by = jobs[0].locked_by.clone();
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let _beat = AbortOnDrop({
        let ix = ix.clone();
        let ids = ids.clone();
        let locked_by = locked_by.clone();
        let every = Duration::from_millis((ix.config.jobs.lease_secs * 1000 / 3).max(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let r = async {
                    let mut tx = begin(&ix.pool, &DbScope::system()).await?;
                    sqlx::query(
                        "UPDATE sync_jobs SET lease_expires_at = now() + make_interval(secs => $1)
                          WHERE id = ANY($2) AND status = 'running' AND locked_by = $3",
                    )
                    .bind(ix.config.jobs.lease_secs as f64)
                    .bind(&ids)
                    .bind(&locked_by)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await
                }
                .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "batch heartbeat failed");
                }
            }
        })
    });
    // At most `SYNC_WORKER_CONCURRENCY` handlers at once: a grown batch of slow jobs must not
    // become that many simultaneous requests to Medusa or an endpoint.
    let mut set = tokio::task::JoinSet::new();
    let mut pending = jobs.iter().cloned().enumerate();
    let mut outcomes: Vec<Option<Outcome>> = (0..jobs.len()).map(|_| None).collect();
    let mut started = vec![false; jobs.len()];
    loop {
        while set.len() < ix.config.jobs.worker_concurrency && !ix.stopping() {
            let Some((i, job)) = pending.next() else {
                break;
            };
            started[i] = true;
            let ix = ix.clone();
            set.spawn(async move { (i, super::handlers::execute(&ix, &job).await) });
        }
        match set.join_next().await {
            Some(Ok((i, o))) => outcomes[i] = Some(o),
            Some(Err(e)) => tracing::error!(error = %e, "job task panicked"),
            None => break,
        }
    }
    let mut results = vec![Finished::Lost; jobs.len()];
    let unstarted: Vec<&Job> = jobs
        .iter()
        .zip(&started)
        .filter(|(_, s)| !**s)
        .map(|(j, _)| j)
        .collect();
    if !unstarted.is_empty() {
        release(ix, &unstarted, &locked_by).await?;
    }
    // Successes: one fenced statement.
    let ok: Vec<usize> = (0..jobs.len())
        .filter(|i| matches!(outcomes[*i], Some(Outcome::Success(_))))
        .collect();
    if !ok.is_empty() {
        let mut tx = begin(&ix.pool, &DbScope::system()).await?;
        let done: Vec<Uuid> = sqlx::query_scalar(&format!(
            "UPDATE sync_jobs j SET status = 'success', finished_at = now(), locked_by = NULL, locked_at = NULL,
                    lease_expires_at = NULL, error_message = NULL, {}
               FROM unnest($1::uuid[], $2::int[], $3::jsonb[]) AS f(id, attempts, log)
              WHERE j.id = f.id AND j.status = 'running' AND j.locked_by = $4 AND j.attempts = f.attempts
          RETURNING j.id",
            APPEND_LOG.replace("$LOG::jsonb", "f.log")
        ))
        .bind(ok.iter().map(|i| jobs[*i].id).collect::<Vec<_>>())
        .bind(ok.iter().map(|i| jobs[*i].attempts).collect::<Vec<_>>())
        .bind(
            ok.iter()
                .map(|i| match &outcomes[*i] {
                    Some(Outcome::Success(note)) => log_entry("info", note),
                    _ => Value::Null,
                })
                .collect::<Vec<_>>(),
        )
        .bind(&locked_by)
        .fetch_all(&mut *tx)
        .await?;
        // Inbound deliveries processed: their log rows in the same commit.
        let webhooks = ok.iter().any(|i| jobs[*i].job_type == "process_webhook");
        if webhooks {
            sqlx::query(
                "UPDATE webhook_logs w SET status = 'success', attempts = s.attempts, error_message = NULL,
                    processed_at = now(), next_retry_at = NULL
               FROM sync_jobs s
              WHERE s.id = ANY($1) AND s.job_type = 'process_webhook' AND w.id = s.webhook_log_id",
            )
            .bind(&done)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        for i in &ok {
            if done.contains(&jobs[*i].id) {
                results[*i] = Finished::Succeeded;
            }
        }
        for i in &ok {
            let job = &jobs[*i];
            if results[*i] == Finished::Succeeded && job.job_type != "process_webhook" {
                if let Some(o) = &outcomes[*i] {
                    super::handlers::after_finish(ix, job, o, Finished::Succeeded).await;
                }
            }
        }
    }
    for (i, job) in jobs.iter().enumerate() {
        let Some(outcome) = &outcomes[i] else {
            // The handler panicked: the lease expires and the job is retried.
            continue;
        };
        if matches!(outcome, Outcome::Success(_)) {
            continue;
        }
        let finished = finish(ix, job, outcome).await?;
        super::handlers::after_finish(ix, job, outcome, finished).await;
        results[i] = finished;
    }
    Ok(results)
}

/// Processes at most `limit` due jobs of `types` (the cron routes and the scheduler), a few at
/// a time. Two concurrent calls never share a job: each claim is exclusive.
pub async fn run_batch(ix: &Arc<Integrations>, types: &[&str], limit: i64) -> Result<Summary, sqlx::Error> {
    let started = Instant::now();
    let mut summary = Summary {
        reaped: reap(ix).await?,
        ..Summary::default()
    };
    let worker = format!(
        "{}:cron:{}",
        ix.instance,
        &Uuid::new_v4().simple().to_string()[..8]
    );
    // Only jobs due when the batch starts: a job retried by this batch waits for the next one.
    let due_by = Some(time::OffsetDateTime::now_utc());
    while (summary.claimed as i64) < limit {
        let n = (limit - summary.claimed as i64).min(ix.config.jobs.claim_batch);
        let jobs = claim(ix, types, n, &worker, due_by).await?;
        if jobs.is_empty() {
            break;
        }
        summary.claimed += jobs.len() as u64;
        for f in run_claimed(ix, jobs).await? {
            summary.add(f);
        }
    }
    summary.took_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// How many jobs a worker claims next. Each claimed batch costs two commits however many jobs
/// it holds, so while the queue is deep (the last claim came back full) and its jobs are fast
/// (the whole batch done within [`FAST_BATCH`]) the batch doubles, up to `SYNC_CLAIM_BATCH_MAX`;
/// any other batch puts it back to `SYNC_CLAIM_BATCH`. Slow jobs (Medusa, endpoints) therefore
/// keep small batches: a worker never sits on many claimed jobs that others could run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimBatch {
    pub size: i64,
    base: i64,
    max: i64,
}

/// A batch finished within this is "fast" (no-op and local jobs; not a round trip to Medusa).
pub const FAST_BATCH: Duration = Duration::from_millis(50);

impl ClaimBatch {
    pub fn new(base: i64, max: i64) -> ClaimBatch {
        ClaimBatch {
            size: base,
            base,
            max: max.max(base),
        }
    }

    /// Adapts to the batch just run: `claimed` jobs, done in `took`.
    pub fn adapt(&mut self, claimed: usize, took: Duration) {
        self.size = if claimed as i64 >= self.size && took < FAST_BATCH {
            (self.size * 2).min(self.max)
        } else {
            self.base
        };
    }
}

/// One background worker: reaps, claims a batch of jobs (sized by [`ClaimBatch`]), runs them;
/// sleeps until NOTIFY or the poll interval when the queue is empty. Stops when the pool closes.
pub async fn worker_loop(ix: Arc<Integrations>, index: usize) {
    let name = format!("{}:{index}", ix.instance);
    let poll = Duration::from_millis(ix.config.jobs.poll_ms);
    let mut last_reap = Instant::now() - Duration::from_secs(3600);
    let mut backoff = Duration::from_millis(100);
    let mut batch = ClaimBatch::new(ix.config.jobs.claim_batch, ix.config.jobs.claim_batch_max);
    loop {
        if ix.pool.is_closed() || ix.stopping() {
            return;
        }
        let notified = ix.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // `drain` sets the flag, then wakes the waiters: checked again once registered.
        if ix.stopping() {
            return;
        }
        if last_reap.elapsed() >= Duration::from_secs(1) {
            last_reap = Instant::now();
            if let Err(e) = reap(&ix).await {
                tracing::debug!(error = %e, "reaper failed");
            }
        }
        let jobs = match claim(&ix, ALL_TYPES, batch.size, &name, None).await {
            Ok(jobs) => {
                backoff = Duration::from_millis(100);
                jobs
            }
            Err(e) => {
                // The database is unreachable (restart, failover): wait and try again.
                tracing::warn!(worker = %name, error = %e, "cannot claim jobs");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        let claimed = jobs.len();
        let started = Instant::now();
        // A failure to record outcomes leaves jobs running; their leases expire and the reaper
        // returns them to the queue, so nothing is lost (the target dedupes the repeated
        // request by the job's idempotency key).
        if let Err(e) = run_claimed(&ix, jobs).await {
            tracing::warn!(worker = %name, error = %e, "cannot record job outcomes");
            tokio::time::sleep(backoff).await;
        }
        batch.adapt(claimed, started.elapsed());
    }
}

/// Hands claimed jobs that never started back to the queue (shutdown): the attempt they were
/// claimed for is given back, fenced by the claim like every other outcome.
async fn release(ix: &Integrations, jobs: &[&Job], locked_by: &Option<String>) -> Result<(), sqlx::Error> {
    let mut tx = begin(&ix.pool, &DbScope::system()).await?;
    let released = sqlx::query(&format!(
        "UPDATE sync_jobs j SET status = 'queued', attempts = j.attempts - 1, locked_by = NULL, locked_at = NULL,
                lease_expires_at = NULL, run_after = now(), {}
           FROM unnest($1::uuid[], $2::int[]) AS f(id, attempts)
          WHERE j.id = f.id AND j.status = 'running' AND j.locked_by = $3 AND j.attempts = f.attempts
            -- a newer job for the same document already waits (the coalescing index allows one):
            -- this one is left to its lease, and the reaper settles it
            AND NOT EXISTS (SELECT 1 FROM sync_jobs q
                             WHERE q.status = 'queued' AND q.job_type = j.job_type
                               AND q.tenant_id IS NOT DISTINCT FROM j.tenant_id
                               AND q.source_collection IS NOT DISTINCT FROM j.source_collection
                               AND q.source_doc_id IS NOT DISTINCT FROM j.source_doc_id)",
        APPEND_LOG.replace("$LOG", "$4")
    ))
    .bind(jobs.iter().map(|j| j.id).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.attempts).collect::<Vec<_>>())
    .bind(locked_by)
    .bind(log_entry("info", "released at shutdown before it started"))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    if released > 0 {
        ix.job_enqueued();
    }
    tracing::info!(released, "claimed jobs handed back to the queue");
    Ok(())
}

/// Spawns `n` workers.
pub fn spawn_workers(ix: &Arc<Integrations>, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n).map(|i| tokio::spawn(worker_loop(ix.clone(), i))).collect()
}

/// Statistics for tests and the admin: jobs by status.
pub async fn counts(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let mut tx = begin(pool, &DbScope::system()).await?;
    let rows = sqlx::query_as("SELECT status, count(*) FROM sync_jobs GROUP BY status ORDER BY status")
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_batch_grows_while_full_and_fast_and_falls_back_otherwise() {
        let fast = FAST_BATCH / 2;
        let mut b = ClaimBatch::new(16, 100);
        b.adapt(16, fast);
        assert_eq!(b.size, 32);
        b.adapt(32, fast);
        b.adapt(64, fast);
        assert_eq!(b.size, 100, "capped at the maximum");
        b.adapt(100, fast);
        assert_eq!(b.size, 100);
        b.adapt(100, FAST_BATCH * 2);
        assert_eq!(b.size, 16, "slow jobs: back to the base batch");
        b.adapt(16, fast);
        b.adapt(20, fast);
        assert_eq!(b.size, 16, "the queue ran short: back to the base batch");
        let mut b = ClaimBatch::new(16, 8);
        b.adapt(16, fast);
        assert_eq!(b.size, 16, "a maximum below the base is the base");
    }

    #[test]
    fn backoff_grows_with_jitter_and_cap() {
        for attempts in 0..12 {
            let d = backoff(attempts, 5000, 3_600_000).as_millis() as f64;
            let nominal = (5000f64 * 2f64.powi(attempts)).min(3_600_000.0);
            assert!(
                d >= nominal * 0.8 - 1.0 && d <= nominal * 1.2 + 1.0,
                "{attempts}: {d}"
            );
        }
    }
}
