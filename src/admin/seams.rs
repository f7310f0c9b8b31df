//! Actions that belong to the integration plane (#7), which lands on its own branch. The admin
//! renders the buttons and calls these functions; after merging, the lead points them at
//! `integrations::` (webhook replay, job retry/cancel) and the buttons start working.

use uuid::Uuid;

use crate::app::AppState;
use crate::http::extract::CallContext;

/// What a control-plane action did.
pub enum ActionOutcome {
    /// Done; a message for the user.
    Done(String),
    /// The integration plane is not installed in this build.
    NotAvailable,
}

/// Replays a stored webhook delivery (`webhook-logs` row) through its handler again.
/// Seam for #7: call `integrations::webhooks::replay(state, ctx, id)`.
pub async fn replay_webhook_log(
    _state: &AppState,
    _ctx: &CallContext,
    _id: Uuid,
) -> anyhow::Result<ActionOutcome> {
    Ok(ActionOutcome::NotAvailable)
}

/// Puts a failed or dead sync job back in the queue. Seam for #7: `integrations::jobs::retry`.
pub async fn retry_sync_job(
    _state: &AppState,
    _ctx: &CallContext,
    _id: Uuid,
) -> anyhow::Result<ActionOutcome> {
    Ok(ActionOutcome::NotAvailable)
}

/// Cancels a pending or running sync job. Seam for #7: `integrations::jobs::cancel`.
pub async fn cancel_sync_job(
    _state: &AppState,
    _ctx: &CallContext,
    _id: Uuid,
) -> anyhow::Result<ActionOutcome> {
    Ok(ActionOutcome::NotAvailable)
}

/// The actions a collection's documents offer: (action slug, dictionary key).
pub fn actions_for(slug: &str) -> &'static [(&'static str, &'static str)] {
    match slug {
        "webhook-logs" => &[("replay", "replay")],
        "sync-jobs" => &[("retry", "retry"), ("cancel", "cancel")],
        _ => &[],
    }
}
