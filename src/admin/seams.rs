//! Control-plane actions the admin offers on documents: webhook replay and job retry/cancel,
//! carried out by the integration plane (`integrations::control`) in the caller's transaction.

use uuid::Uuid;

use crate::app::AppState;
use crate::http::extract::CallContext;
use crate::integrations::control::{self, Done};

/// What a control-plane action did.
pub enum ActionOutcome {
    /// Done.
    Done,
    /// Refused, with the reason shown to the operator.
    Refused(&'static str),
}

async fn run<F>(state: &AppState, ctx: &CallContext, action: F) -> anyhow::Result<ActionOutcome>
where
    F: for<'c> FnOnce(
        &'c mut sqlx::PgConnection,
    )
        -> std::pin::Pin<Box<dyn std::future::Future<Output = sqlx::Result<Done>> + Send + 'c>>,
{
    let scope = crate::db::scope::DbScope::for_request(&ctx.principal, &ctx.tenant);
    let mut tx = crate::db::scope::begin(&state.pool, &scope).await?;
    let done = action(&mut tx).await?;
    tx.commit().await?;
    Ok(match done {
        Done::Yes => ActionOutcome::Done,
        Done::No(why) => ActionOutcome::Refused(why),
    })
}

/// Queues a verified inbound delivery's handler again.
pub async fn replay_webhook_log(
    state: &AppState,
    ctx: &CallContext,
    id: Uuid,
) -> anyhow::Result<ActionOutcome> {
    let attempts = state.config.jobs.max_attempts;
    run(state, ctx, move |c| {
        Box::pin(control::replay_webhook(c, id, attempts))
    })
    .await
}

/// Puts a failed or dead sync job back in the queue.
pub async fn retry_sync_job(state: &AppState, ctx: &CallContext, id: Uuid) -> anyhow::Result<ActionOutcome> {
    run(state, ctx, move |c| Box::pin(control::retry_job(c, id))).await
}

/// Gives up a job still waiting in the queue.
pub async fn cancel_sync_job(state: &AppState, ctx: &CallContext, id: Uuid) -> anyhow::Result<ActionOutcome> {
    let by = ctx
        .principal
        .user()
        .map_or_else(|| "an operator".to_string(), |u| u.email.clone());
    run(state, ctx, move |c| {
        Box::pin(async move { control::cancel_job(c, id, &by).await })
    })
    .await
}

/// The actions a collection's documents offer: (action slug, dictionary key).
pub fn actions_for(slug: &str) -> &'static [(&'static str, &'static str)] {
    match slug {
        "webhook-logs" => &[("replay", "replay")],
        "sync-jobs" => &[("retry", "retry"), ("cancel", "cancel")],
        _ => &[],
    }
}
