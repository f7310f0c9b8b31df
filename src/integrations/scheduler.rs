//! The built-in scheduler (`SCHEDULER_ENABLED=true`, for one-box installs): the cron routes'
//! work on intervals. Each task takes a PostgreSQL session advisory lock first, so with several
//! instances only one runs a task at a time; the others skip that round.

use std::sync::Arc;
use std::time::Duration;

use super::queue;
use super::Integrations;

/// Advisory lock keys (arbitrary, fixed): one per task.
pub const LOCK_SYNC: i64 = 0x4349_5459_0001;
pub const LOCK_WEBHOOK_RETRY: i64 = 0x4349_5459_0002;
pub const LOCK_RECONCILE: i64 = 0x4349_5459_0003;

#[derive(Clone, Copy, Debug)]
pub enum Task {
    Sync,
    WebhookRetry,
    Reconcile,
}

impl Task {
    fn lock(self) -> i64 {
        match self {
            Task::Sync => LOCK_SYNC,
            Task::WebhookRetry => LOCK_WEBHOOK_RETRY,
            Task::Reconcile => LOCK_RECONCILE,
        }
    }
}

/// Runs `task` once if no other instance is running it; `None` when the lock was taken.
pub async fn run_once(ix: &Arc<Integrations>, task: Task) -> Result<Option<queue::Summary>, sqlx::Error> {
    let mut conn = ix.pool.acquire().await?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(task.lock())
        .fetch_one(&mut *conn)
        .await?;
    if !got {
        return Ok(None);
    }
    let limit = ix.config.jobs.cron_batch;
    let result = match task {
        Task::Sync => queue::run_batch(ix, queue::SYNC_TYPES, limit).await,
        Task::WebhookRetry => queue::run_batch(ix, queue::WEBHOOK_TYPES, limit).await,
        Task::Reconcile => match super::routes::enqueue_reconcile(ix).await {
            Ok(()) => queue::run_batch(ix, queue::RECONCILE_TYPES, limit).await,
            Err(e) => Err(e),
        },
    };
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(task.lock())
        .execute(&mut *conn)
        .await;
    result.map(Some)
}

pub fn spawn(ix: Arc<Integrations>) {
    let cfg = ix.config.jobs.clone();
    for (task, every) in [
        (Task::Sync, cfg.sync_interval_secs),
        (Task::WebhookRetry, cfg.webhook_retry_interval_secs),
        (Task::Reconcile, cfg.reconcile_interval_secs),
    ] {
        let ix = ix.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(every));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if ix.pool.is_closed() {
                    return;
                }
                match run_once(&ix, task).await {
                    Ok(Some(s)) if s.claimed > 0 => tracing::info!(?task, ?s, "scheduled run"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(?task, error = %e, "scheduled run failed"),
                }
            }
        });
    }
}
