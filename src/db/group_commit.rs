//! Group commit for writes that run in a request's database scope (creates, for now).
//!
//! Each write alone costs a BEGIN, its statements and a COMMIT with its WAL flush; under load
//! the BEGIN and COMMIT round trips, the commit's flush and the executor's per-transaction work
//! are a large part of a create. Here requests hand their checked write (a [`Job`]) to a few
//! writer tasks. A writer takes the first job waiting and whatever else is waiting **in the
//! same scope** (the same tenant, user and all-tenants flag, so the row-level security each job
//! sees is the one it would see alone), up to `batch`, runs them one after another in one
//! transaction, commits once and answers each after that commit. Nothing waits to fill a batch:
//! a lone job is written at once, batches form only while the writers are busy.
//!
//! There are no savepoints (each would be a round trip of its own). When a job fails, the
//! transaction is rolled back and every job of the batch is run again alone, in a transaction
//! of its own, so the others are still written and each failing one gets its own error, as if
//! it had never shared. Jobs must therefore be repeatable and touch nothing but the database:
//! whatever else a write does (caches, answers) happens after `submit` returns.
//!
//! The writers run on tasks of their own: a request that goes away while its job waits or runs
//! cannot leave a transaction half done; its job is still written and its answer dropped.
//!
//! A batch's COMMIT can fail two ways. When PostgreSQL answers it with an error, the
//! transaction is rolled back and the jobs run again alone, as above. When the answer is lost
//! (the connection broke), the batch may or may not have landed, and running it again would
//! write every job twice or, with fixed ids, fail each with a unique error although it was
//! written. So a batch asks for its transaction id before it commits, and an unanswered COMMIT
//! is settled by asking PostgreSQL, on another connection, what became of that transaction
//! (`pg_xact_status`): committed, the jobs get their answers; aborted, they run again alone;
//! unknown, each gets an error, as a request's own transaction would. A lone job runs exactly
//! as in a request's own transaction (no id asked), so its cost is unchanged.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio::sync::{oneshot, Notify};

use super::scope::{begin_write, DbScope};

/// What [`Job::run`] returns: the write's future, borrowing the job and the connection.
pub type JobFuture<'c, O, E> = Pin<Box<dyn Future<Output = Result<O, E>> + Send + 'c>>;

/// A checked write, run in a transaction the group commit opens in the job's scope.
pub trait Job: Send + Sync + 'static {
    type Out: Send + 'static;
    type Err: Send + 'static + From<sqlx::Error>;
    /// Runs the write's statements on `conn`. Called again (alone) when its batch failed.
    fn run<'c>(&'c self, conn: &'c mut PgConnection) -> JobFuture<'c, Self::Out, Self::Err>;
}

/// The writers and what waits for them.
pub struct GroupCommit<J: Job> {
    shared: Arc<Shared<J>>,
    started: OnceLock<()>,
}

/// How often batches formed (tests and benchmarks read these).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Jobs written (committed), alone or in a batch.
    pub jobs: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Batches rolled back because a job failed, whose jobs then ran alone.
    pub failed_batches: u64,
}

struct Shared<J: Job> {
    pool: PgPool,
    batch: usize,
    writers: usize,
    queue: Mutex<VecDeque<Pending<J>>>,
    ready: Notify,
    closed: AtomicBool,
    jobs: AtomicU64,
    commits: AtomicU64,
    failed_batches: AtomicU64,
}

struct Pending<J: Job> {
    scope: DbScope,
    job: J,
    reply: oneshot::Sender<Result<J::Out, J::Err>>,
}

impl<J: Job> GroupCommit<J> {
    /// `batch`: jobs per transaction at most (1: each alone); `writers`: transactions at once.
    pub fn new(pool: PgPool, batch: usize, writers: usize) -> Self {
        GroupCommit {
            shared: Arc::new(Shared {
                pool,
                batch: batch.max(1),
                writers: writers.max(1),
                queue: Mutex::new(VecDeque::new()),
                ready: Notify::new(),
                closed: AtomicBool::new(false),
                jobs: AtomicU64::new(0),
                commits: AtomicU64::new(0),
                failed_batches: AtomicU64::new(0),
            }),
            started: OnceLock::new(),
        }
    }

    /// Whether jobs may share a transaction at all (`batch` > 1).
    pub fn batches(&self) -> bool {
        self.shared.batch > 1
    }

    /// Writes `job` in `scope` (with the jobs waiting in the same scope) and returns what it
    /// returned, once its transaction is committed.
    pub async fn submit(&self, scope: DbScope, job: J) -> Result<J::Out, J::Err> {
        self.started.get_or_init(|| {
            for _ in 0..self.shared.writers {
                tokio::spawn(write_loop(self.shared.clone()));
            }
        });
        let (reply, answer) = oneshot::channel();
        lock(&self.shared.queue).push_back(Pending { scope, job, reply });
        self.shared.ready.notify_one();
        // A writer drops the reply only if its runtime is shutting down.
        answer.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Jobs waiting for a writer now (tests use it to know a batch is ready to form).
    pub fn waiting(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    pub fn counts(&self) -> Counts {
        let s = &self.shared;
        Counts {
            jobs: s.jobs.load(Ordering::Relaxed),
            commits: s.commits.load(Ordering::Relaxed),
            failed_batches: s.failed_batches.load(Ordering::Relaxed),
        }
    }
}

impl<J: Job> Drop for GroupCommit<J> {
    /// The writers end once nothing waits (they hold the queue, not this).
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.ready.notify_waiters();
    }
}

/// The queue's lock; a writer that panicked while holding it left a queue that is still whole
/// (every change to it is a single push or remove).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn gone<E: From<sqlx::Error>>() -> E {
    sqlx::Error::Protocol("the group commit writer is gone".into()).into()
}

async fn write_loop<J: Job>(shared: Arc<Shared<J>>) {
    loop {
        // Registered before looking, so a job pushed after the look still wakes this writer.
        let notified = shared.ready.notified();
        let batch = take_batch(&shared);
        if batch.is_empty() {
            if shared.closed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
            continue;
        }
        // On a task of its own: a job that panics fails its batch's answers, not this writer.
        let task = tokio::spawn(write(shared.clone(), batch));
        if let Err(e) = task.await {
            tracing::error!(error = %e, "a group commit batch panicked");
        }
    }
}

/// The first job waiting and the later ones in its scope, up to the batch size, in order.
fn take_batch<J: Job>(shared: &Shared<J>) -> Vec<Pending<J>> {
    let mut queue = lock(&shared.queue);
    let Some(first) = queue.pop_front() else {
        return Vec::new();
    };
    let mut batch = vec![first];
    let mut i = 0;
    while i < queue.len() && batch.len() < shared.batch {
        if queue[i].scope == batch[0].scope {
            if let Some(next) = queue.remove(i) {
                batch.push(next);
            }
        } else {
            i += 1;
        }
    }
    batch
}

async fn write<J: Job>(shared: Arc<Shared<J>>, batch: Vec<Pending<J>>) {
    if batch.len() > 1 {
        let outs = match together(&shared, &batch).await {
            Together::Committed(outs) => Some(outs),
            Together::RolledBack => None,
            Together::InDoubt { xid, outs, error } => match landed(&shared.pool, &xid).await {
                Ok(true) => Some(outs),
                Ok(false) => None,
                Err(settling) => {
                    tracing::error!(
                        jobs = batch.len(),
                        commit = %error,
                        settling = %settling,
                        "a group commit batch's outcome is unknown"
                    );
                    for pending in batch {
                        let unknown = std::io::Error::other(format!(
                            "the commit's answer was lost ({error}) and its outcome is unknown"
                        ));
                        let _ = pending.reply.send(Err(sqlx::Error::Io(unknown).into()));
                    }
                    return;
                }
            },
        };
        if let Some(outs) = outs {
            shared.commits.fetch_add(1, Ordering::Relaxed);
            shared.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
            for (pending, out) in batch.into_iter().zip(outs) {
                let _ = pending.reply.send(Ok(out));
            }
            return;
        }
        // Rolled back: nothing of the batch was written. Each runs again alone.
        shared.failed_batches.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            jobs = batch.len(),
            "group commit batch failed; writing its jobs one by one"
        );
    }
    for pending in batch {
        let out = alone(&shared, &pending).await;
        if out.is_ok() {
            shared.commits.fetch_add(1, Ordering::Relaxed);
            shared.jobs.fetch_add(1, Ordering::Relaxed);
        }
        let _ = pending.reply.send(out);
    }
}

/// What became of a batch's transaction.
enum Together<O> {
    Committed(Vec<O>),
    /// Nothing of it was written: a job failed, or PostgreSQL refused the COMMIT.
    RolledBack,
    /// The COMMIT was sent and its answer lost: transaction `xid` may have landed.
    InDoubt {
        xid: String,
        outs: Vec<O>,
        error: sqlx::Error,
    },
}

/// The batch in one transaction (rolled back when it is dropped unfinished).
async fn together<J: Job>(shared: &Shared<J>, batch: &[Pending<J>]) -> Together<J::Out> {
    let Ok(mut tx) = begin_write(&shared.pool, &batch[0].scope).await else {
        return Together::RolledBack;
    };
    // Asked now, because after a lost answer to COMMIT this connection is gone.
    let xid = match sqlx::query_scalar::<_, String>("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut *tx)
        .await
    {
        Ok(xid) => xid,
        Err(_) => return Together::RolledBack,
    };
    let mut outs = Vec::with_capacity(batch.len());
    for pending in batch {
        match pending.job.run(&mut tx).await {
            Ok(out) => outs.push(out),
            Err(_) => return Together::RolledBack,
        }
    }
    match tx.commit().await {
        Ok(()) => Together::Committed(outs),
        // PostgreSQL answered the COMMIT with an error: the transaction is rolled back.
        Err(sqlx::Error::Database(_)) => Together::RolledBack,
        Err(error) => Together::InDoubt { xid, outs, error },
    }
}

/// Whether transaction `xid` committed, asked on a connection of its own. A transaction whose
/// connection broke is still "in progress" until its backend notices; that takes moments, so
/// the question is asked again for a few seconds before the outcome counts as unknown.
async fn landed(pool: &PgPool, xid: &str) -> Result<bool, sqlx::Error> {
    const ASKS: u32 = 50;
    for _ in 0..ASKS {
        let status: Option<String> = sqlx::query_scalar("SELECT pg_xact_status($1::xid8)")
            .bind(xid)
            .fetch_one(pool)
            .await?;
        match status.as_deref() {
            Some("committed") => return Ok(true),
            Some("aborted") => return Ok(false),
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            // Older than what PostgreSQL still keeps the status of.
            None => break,
        }
    }
    Err(sqlx::Error::Protocol(format!(
        "transaction {xid} is still in progress or too old to tell"
    )))
}

async fn alone<J: Job>(shared: &Shared<J>, pending: &Pending<J>) -> Result<J::Out, J::Err> {
    let mut tx = begin_write(&shared.pool, &pending.scope).await?;
    let out = pending.job.run(&mut tx).await?;
    tx.commit().await?;
    Ok(out)
}
