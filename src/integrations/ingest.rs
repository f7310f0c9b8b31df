//! Group commit for accepted webhook deliveries.
//!
//! Every accepted delivery is committed (its log row and its `process_webhook` job, through
//! `cityos_accept_webhook`, migration 0016) before its 200. Committing each alone made
//! PostgreSQL's per-statement and per-commit work (executor start-up with the tables' CHECK
//! constraints, the WAL flush) the cost of ingest. Here the receivers hand their deliveries to
//! a few writers; a writer takes whatever is waiting (up to `WEBHOOK_INGEST_BATCH`) and writes
//! it in **one statement**, so one commit covers them all, and answers each delivery after that
//! commit. Nothing waits to fill a batch: a lone delivery is written at once, batches form only
//! while statements are already running (`WEBHOOK_INGEST_WRITERS` at a time).
//!
//! Inside a statement the deliveries are accepted one after another, so a redelivery in the
//! same batch as its original is stored as its `duplicate`, as it would be in two statements.
//! A statement that fails on one delivery (a constraint, a deadlock with another batch) has
//! written nothing; its deliveries are then written one by one, so the others are still stored
//! and only the failing one is answered with the error. A lost connection fails the batch's
//! deliveries without retrying them (the senders redeliver, and redeliveries are idempotent).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

/// One verified delivery, as `cityos_accept_webhook` takes it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub request_id: String,
    pub source: &'static str,
    pub tenant: Option<Uuid>,
    pub store: Option<Uuid>,
    /// A store named by the body (id or handle), looked up inside the tenant by the statement.
    pub store_hint: Option<String>,
    pub endpoint: Option<Uuid>,
    pub event_type: String,
    pub external_id: Option<String>,
    pub hash: Option<String>,
    pub url: String,
    pub headers: Value,
    pub body: Bytes,
    /// The cached secret that verified it, for the statement to check against the table.
    pub confirm: Option<Confirm>,
    /// The job's NOTIFY is left to the server (`Integrations::job_enqueued`).
    pub defer_notify: bool,
}

/// A cached secret to confirm: its stored (encrypted) form, and whether it was the endpoint's
/// previous secret (valid during its grace period).
#[derive(Debug, Clone)]
pub struct Confirm {
    pub stored: Option<Vec<u8>>,
    pub previous: bool,
}

/// What the statement did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored: the first delivery of its event, with its job, or a `duplicate` row (no job)
    /// pointing at the first.
    Logged { id: Option<Uuid>, duplicate: bool },
    /// The cached secret that verified it no longer holds; nothing was written.
    Stale,
}

/// Counts since start: statements written and the deliveries they carried.
#[derive(Debug, Default)]
struct Counters {
    statements: AtomicU64,
    deliveries: AtomicU64,
}

type Reply = oneshot::Sender<Result<Outcome, sqlx::Error>>;

/// The deliveries waiting for a writer. The writers start with the first delivery (inside the
/// runtime) and end when this is dropped.
pub struct Ingest {
    tx: mpsc::UnboundedSender<(Delivery, Reply)>,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<(Delivery, Reply)>>>,
    writers: OnceLock<()>,
    settings: Arc<Settings>,
    counters: Arc<Counters>,
}

struct Settings {
    pool: PgPool,
    batch: usize,
    writer_count: usize,
    max_attempts: i32,
}

impl Ingest {
    /// `batch`: deliveries per statement at most (1: each alone); `writers`: statements at once.
    pub fn new(pool: PgPool, batch: usize, writers: usize, max_attempts: i32) -> Ingest {
        let (tx, rx) = mpsc::unbounded_channel();
        Ingest {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            writers: OnceLock::new(),
            settings: Arc::new(Settings {
                pool,
                batch: batch.max(1),
                writer_count: writers.max(1),
                max_attempts,
            }),
            counters: Arc::default(),
        }
    }

    /// Stores one delivery (with the others waiting at the same time) and tells what was done,
    /// once it is committed.
    pub async fn accept(&self, delivery: Delivery) -> Result<Outcome, sqlx::Error> {
        self.writers.get_or_init(|| {
            for _ in 0..self.settings.writer_count {
                tokio::spawn(write_loop(
                    self.rx.clone(),
                    self.settings.clone(),
                    self.counters.clone(),
                ));
            }
        });
        let (reply, answer) = oneshot::channel();
        if self.tx.send((delivery, reply)).is_err() {
            return Err(gone());
        }
        // A writer that ended without answering (it never does) drops the reply: an error.
        answer.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Statements written and deliveries carried since start (tests, benchmarks).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counters.statements.load(Ordering::Relaxed),
            self.counters.deliveries.load(Ordering::Relaxed),
        )
    }
}

fn gone() -> sqlx::Error {
    sqlx::Error::Protocol("the webhook ingest writer is gone".into())
}

async fn write_loop(
    rx: Arc<Mutex<mpsc::UnboundedReceiver<(Delivery, Reply)>>>,
    settings: Arc<Settings>,
    counters: Arc<Counters>,
) {
    loop {
        let mut batch = Vec::new();
        {
            // One writer at a time collects: it waits for the first delivery, then takes what
            // else is already waiting.
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(first) => batch.push(first),
                None => return,
            }
            while batch.len() < settings.batch {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
        }
        write(&settings, &counters, batch).await;
    }
}

async fn write(settings: &Settings, counters: &Counters, batch: Vec<(Delivery, Reply)>) {
    if batch.len() > 1 {
        let deliveries: Vec<&Delivery> = batch.iter().map(|(d, _)| d).collect();
        counters.statements.fetch_add(1, Ordering::Relaxed);
        match accept_many(settings, &deliveries).await {
            Ok(outcomes) if outcomes.len() == batch.len() => {
                counters
                    .deliveries
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
                return;
            }
            Ok(outcomes) => {
                // Cannot happen (one row per delivery); nothing to trust, and nothing to redo:
                // whatever was written stands, the senders redeliver and are deduplicated.
                tracing::error!(
                    sent = batch.len(),
                    answered = outcomes.len(),
                    "webhook ingest statement answered a different number of rows"
                );
                for (_, reply) in batch {
                    let _ = reply.send(Err(sqlx::Error::Protocol(
                        "the ingest statement answered a different number of rows".into(),
                    )));
                }
                return;
            }
            Err(sqlx::Error::Database(e)) => {
                // The statement wrote nothing; write each alone so only the failing one fails.
                tracing::warn!(
                    error = %e,
                    deliveries = batch.len(),
                    "webhook ingest batch failed; writing its deliveries one by one"
                );
            }
            Err(e) => {
                let message = e.to_string();
                tracing::warn!(error = %message, deliveries = batch.len(), "webhook ingest batch failed");
                for (_, reply) in batch {
                    let _ = reply.send(Err(sqlx::Error::Protocol(message.clone())));
                }
                return;
            }
        }
    }
    for (delivery, reply) in batch {
        counters.statements.fetch_add(1, Ordering::Relaxed);
        let outcome = accept_one(settings, &delivery).await;
        if outcome.is_ok() {
            counters.deliveries.fetch_add(1, Ordering::Relaxed);
        }
        let _ = reply.send(outcome);
    }
}

fn outcome((id, duplicate, stale): (Option<Uuid>, bool, bool)) -> Outcome {
    if stale {
        Outcome::Stale
    } else {
        Outcome::Logged { id, duplicate }
    }
}

/// One delivery, one statement (outside a transaction: the call is the transaction).
async fn accept_one(settings: &Settings, d: &Delivery) -> Result<Outcome, sqlx::Error> {
    let row: (Option<Uuid>, bool, bool) = sqlx::query_as(
        "SELECT log_id, duplicate, stale FROM cityos_accept_webhook(
             $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(&d.request_id)
    .bind(d.source)
    .bind(d.tenant)
    .bind(d.store)
    .bind(&d.store_hint)
    .bind(d.endpoint)
    .bind(&d.event_type)
    .bind(&d.external_id)
    .bind(&d.hash)
    .bind(&d.url)
    .bind(&d.headers)
    .bind(d.body.as_ref())
    .bind(settings.max_attempts)
    .bind(d.defer_notify)
    .bind(d.confirm.is_some())
    .bind(d.confirm.as_ref().and_then(|c| c.stored.as_deref()))
    .bind(d.confirm.as_ref().is_some_and(|c| c.previous))
    .fetch_one(&settings.pool)
    .await?;
    Ok(outcome(row))
}

/// Many deliveries, one statement: `cityos_accept_webhook` once per delivery, in order, in the
/// statement's one transaction.
const ACCEPT_MANY: &str = "SELECT a.log_id, a.duplicate, a.stale
   FROM unnest($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[], $7::text[],
               $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::bytea[], $13::boolean[],
               $14::boolean[], $15::bytea[], $16::boolean[])
        WITH ORDINALITY AS d(request_id, source, tenant, store, store_hint, endpoint, event_type,
                             external_id, hash, url, headers, body, defer_notify, confirm,
                             confirm_enc, confirm_previous, n)
  CROSS JOIN LATERAL cityos_accept_webhook(
        d.request_id, d.source, d.tenant, d.store, d.store_hint, d.endpoint, d.event_type,
        d.external_id, d.hash, d.url, d.headers, d.body, $17, d.defer_notify, d.confirm,
        d.confirm_enc, d.confirm_previous) a
  ORDER BY d.n";

async fn accept_many(settings: &Settings, ds: &[&Delivery]) -> Result<Vec<Outcome>, sqlx::Error> {
    fn col<'a, T>(ds: &[&'a Delivery], f: impl Fn(&'a Delivery) -> T) -> Vec<T> {
        ds.iter().map(|d| f(d)).collect()
    }
    let rows: Vec<(Option<Uuid>, bool, bool)> = sqlx::query_as(ACCEPT_MANY)
        .bind(col(ds, |d| d.request_id.as_str()))
        .bind(col(ds, |d| d.source))
        .bind(col(ds, |d| d.tenant))
        .bind(col(ds, |d| d.store))
        .bind(col(ds, |d| d.store_hint.as_deref()))
        .bind(col(ds, |d| d.endpoint))
        .bind(col(ds, |d| d.event_type.as_str()))
        .bind(col(ds, |d| d.external_id.as_deref()))
        .bind(col(ds, |d| d.hash.as_deref()))
        .bind(col(ds, |d| d.url.as_str()))
        .bind(col(ds, |d| &d.headers))
        .bind(col(ds, |d| d.body.as_ref()))
        .bind(col(ds, |d| d.defer_notify))
        .bind(col(ds, |d| d.confirm.is_some()))
        .bind(col(ds, |d| d.confirm.as_ref().and_then(|c| c.stored.as_deref())))
        .bind(col(ds, |d| d.confirm.as_ref().is_some_and(|c| c.previous)))
        .bind(settings.max_attempts)
        .fetch_all(&settings.pool)
        .await?;
    Ok(rows.into_iter().map(outcome).collect())
}
