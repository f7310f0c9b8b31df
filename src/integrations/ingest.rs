//! Group commit for webhook deliveries, accepted and refused.
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
//!
//! Refused deliveries (bad or missing signature, stale, not JSON, too large) are logged the same
//! way: waiting refusals share one multi-row INSERT and its commit, before their 4xx.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use super::secrets::Candidate;
use crate::db::scope::{begin, DbScope};

/// One verified delivery, as `cityos_accept_webhook` takes it: its log row (the statement sets
/// the verdict, status and response code itself) and what the acceptance needs besides.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub row: LogRow,
    /// A store named by the body (id or handle), looked up inside the tenant by the statement.
    pub store_hint: Option<String>,
    /// The cached secret that verified it, for the statement to check against the table.
    pub confirm: Option<Candidate>,
    /// The job's NOTIFY is left to the server (`Integrations::job_enqueued`).
    pub defer_notify: bool,
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

/// A delivery's log row as the receiver builds it; a refused delivery's is stored as it is
/// (no job).
#[derive(Debug, Clone)]
pub struct LogRow {
    pub request_id: String,
    pub source: &'static str,
    pub tenant: Option<Uuid>,
    pub store: Option<Uuid>,
    pub endpoint: Option<Uuid>,
    pub event_type: String,
    pub external_id: Option<String>,
    pub hash: Option<String>,
    pub signature_valid: bool,
    pub status: &'static str,
    pub url: String,
    pub headers: Value,
    /// None when the body was not kept (too large).
    pub body: Option<Bytes>,
    pub response_code: u16,
    pub error: Option<String>,
}

/// Counts since start: statements written and the deliveries they carried.
#[derive(Debug, Default)]
struct Counters {
    statements: AtomicU64,
    deliveries: AtomicU64,
}

type Reply<R> = oneshot::Sender<Result<R, sqlx::Error>>;
type Queue<T, R> = Arc<Mutex<mpsc::UnboundedReceiver<(T, Reply<R>)>>>;

/// The deliveries waiting for a writer: accepted ones and refused ones, each kind with its own
/// writers (they start with the first delivery of their kind, inside the runtime, and end when
/// this is dropped).
pub struct Ingest {
    accepted: Writers<Delivery, Outcome>,
    refused: Writers<LogRow, ()>,
    settings: Arc<Settings>,
    counters: Arc<Counters>,
}

struct Writers<T, R> {
    tx: mpsc::UnboundedSender<(T, Reply<R>)>,
    rx: Queue<T, R>,
    started: OnceLock<()>,
}

impl<T: Row<Out = R>, R: Send + 'static> Writers<T, R> {
    fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Writers {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            started: OnceLock::new(),
        }
    }

    async fn submit(
        &self,
        row: T,
        settings: &Arc<Settings>,
        counters: &Arc<Counters>,
    ) -> Result<R, sqlx::Error> {
        self.started.get_or_init(|| {
            for _ in 0..settings.writer_count {
                tokio::spawn(write_loop(self.rx.clone(), settings.clone(), counters.clone()));
            }
        });
        let (reply, answer) = oneshot::channel();
        if self.tx.send((row, reply)).is_err() {
            return Err(gone());
        }
        // A writer that ended without answering (it never does) drops the reply: an error.
        answer.await.unwrap_or_else(|_| Err(gone()))
    }
}

struct Settings {
    pool: PgPool,
    batch: usize,
    writer_count: usize,
    max_attempts: i32,
}

impl Ingest {
    /// `batch`: deliveries per statement at most (1: each alone); `writers`: statements at once
    /// (per kind).
    pub fn new(pool: PgPool, batch: usize, writers: usize, max_attempts: i32) -> Ingest {
        Ingest {
            accepted: Writers::new(),
            refused: Writers::new(),
            settings: Arc::new(Settings {
                pool,
                batch: batch.max(1),
                writer_count: writers.max(1),
                max_attempts,
            }),
            counters: Arc::default(),
        }
    }

    /// Stores one accepted delivery (with the others waiting at the same time) and tells what
    /// was done, once it is committed.
    pub async fn accept(&self, delivery: Delivery) -> Result<Outcome, sqlx::Error> {
        self.accepted
            .submit(delivery, &self.settings, &self.counters)
            .await
    }

    /// Logs one refused delivery (with the others waiting at the same time), committed when
    /// this returns.
    pub async fn refuse(&self, refusal: LogRow) -> Result<(), sqlx::Error> {
        self.refused.submit(refusal, &self.settings, &self.counters).await
    }

    /// Statements written and deliveries carried since start, both kinds (tests, benchmarks).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counters.statements.load(Ordering::Relaxed),
            self.counters.deliveries.load(Ordering::Relaxed),
        )
    }
}

/// A kind of row the writers store: alone, or many in one statement.
trait Row: Sized + Send + Sync + 'static {
    type Out: Send + 'static;
    fn write_one(
        settings: &Settings,
        row: &Self,
    ) -> impl std::future::Future<Output = Result<Self::Out, sqlx::Error>> + Send;
    fn write_many(
        settings: &Settings,
        rows: &[&Self],
    ) -> impl std::future::Future<Output = Result<Vec<Self::Out>, sqlx::Error>> + Send;
}

fn gone() -> sqlx::Error {
    sqlx::Error::Protocol("the webhook ingest writer is gone".into())
}

async fn write_loop<T: Row>(rx: Queue<T, T::Out>, settings: Arc<Settings>, counters: Arc<Counters>) {
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

async fn write<T: Row>(settings: &Settings, counters: &Counters, batch: Vec<(T, Reply<T::Out>)>) {
    if batch.len() > 1 {
        let rows: Vec<&T> = batch.iter().map(|(d, _)| d).collect();
        counters.statements.fetch_add(1, Ordering::Relaxed);
        match T::write_many(settings, &rows).await {
            Ok(outs) if outs.len() == batch.len() => {
                counters
                    .deliveries
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for ((_, reply), out) in batch.into_iter().zip(outs) {
                    let _ = reply.send(Ok(out));
                }
                return;
            }
            Ok(outs) => {
                // Cannot happen (one row per delivery); nothing to trust, and nothing to redo:
                // whatever was written stands, the senders redeliver and are deduplicated.
                tracing::error!(
                    sent = batch.len(),
                    answered = outs.len(),
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
    for (row, reply) in batch {
        counters.statements.fetch_add(1, Ordering::Relaxed);
        let out = T::write_one(settings, &row).await;
        if out.is_ok() {
            counters.deliveries.fetch_add(1, Ordering::Relaxed);
        }
        let _ = reply.send(out);
    }
}

/// One column of a batch, as the array parameter an `unnest` takes.
fn col<'a, R, T>(rows: &[&'a R], f: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(|r| f(r)).collect()
}

fn outcome((id, duplicate, stale): (Option<Uuid>, bool, bool)) -> Outcome {
    if stale {
        Outcome::Stale
    } else {
        Outcome::Logged { id, duplicate }
    }
}

impl Row for Delivery {
    type Out = Outcome;
    async fn write_one(settings: &Settings, d: &Delivery) -> Result<Outcome, sqlx::Error> {
        accept_one(settings, d).await
    }
    async fn write_many(settings: &Settings, ds: &[&Delivery]) -> Result<Vec<Outcome>, sqlx::Error> {
        accept_many(settings, ds).await
    }
}

/// One delivery, one statement (outside a transaction: the call is the transaction).
async fn accept_one(settings: &Settings, d: &Delivery) -> Result<Outcome, sqlx::Error> {
    let row: (Option<Uuid>, bool, bool) = sqlx::query_as(
        "SELECT log_id, duplicate, stale FROM cityos_accept_webhook(
             $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(&d.row.request_id)
    .bind(d.row.source)
    .bind(d.row.tenant)
    .bind(d.row.store)
    .bind(&d.store_hint)
    .bind(d.row.endpoint)
    .bind(&d.row.event_type)
    .bind(&d.row.external_id)
    .bind(&d.row.hash)
    .bind(&d.row.url)
    .bind(&d.row.headers)
    .bind(d.row.body.as_deref())
    .bind(settings.max_attempts)
    .bind(d.defer_notify)
    .bind(d.confirm.is_some())
    .bind(d.confirm.as_ref().and_then(Candidate::stored))
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
    let rows: Vec<(Option<Uuid>, bool, bool)> = sqlx::query_as(ACCEPT_MANY)
        .bind(col(ds, |d| d.row.request_id.as_str()))
        .bind(col(ds, |d| d.row.source))
        .bind(col(ds, |d| d.row.tenant))
        .bind(col(ds, |d| d.row.store))
        .bind(col(ds, |d| d.store_hint.as_deref()))
        .bind(col(ds, |d| d.row.endpoint))
        .bind(col(ds, |d| d.row.event_type.as_str()))
        .bind(col(ds, |d| d.row.external_id.as_deref()))
        .bind(col(ds, |d| d.row.hash.as_deref()))
        .bind(col(ds, |d| d.row.url.as_str()))
        .bind(col(ds, |d| &d.row.headers))
        .bind(col(ds, |d| d.row.body.as_deref()))
        .bind(col(ds, |d| d.defer_notify))
        .bind(col(ds, |d| d.confirm.is_some()))
        .bind(col(ds, |d| d.confirm.as_ref().and_then(Candidate::stored)))
        .bind(col(ds, |d| d.confirm.as_ref().is_some_and(|c| c.previous)))
        .bind(settings.max_attempts)
        .fetch_all(&settings.pool)
        .await?;
    Ok(rows.into_iter().map(outcome).collect())
}

/// A refused delivery's row; a client-supplied request id that is taken gets a suffix (the
/// column is unique). Two refusals with the same request id in one batch conflict, and the
/// batch is then written row by row, where the second sees the first.
const REFUSE_MANY: &str = "INSERT INTO webhook_logs (request_id, system_type, direction, tenant_id, store_id,
        endpoint_id, event_type, external_event_id, payload_hash, signature_valid, status, attempts, url,
        headers, raw_body, response_code, error_message)
     SELECT CASE WHEN taken.one IS NULL THEN d.request_id
                 ELSE d.request_id || '.' || substr(md5(random()::text), 1, 8) END,
            d.source, 'inbound', d.tenant, d.store, d.endpoint, d.event_type, d.external_id, d.hash,
            d.signature_valid, d.status, 0, d.url, d.headers, d.body, d.response_code, d.error
       FROM unnest($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[],
                   $8::text[], $9::boolean[], $10::text[], $11::text[], $12::jsonb[], $13::bytea[],
                   $14::integer[], $15::text[])
            AS d(request_id, source, tenant, store, endpoint, event_type, external_id, hash,
                 signature_valid, status, url, headers, body, response_code, error)
       -- One index probe per row: an EXISTS here may be planned as a hash of every request id.
       LEFT JOIN LATERAL (SELECT 1 AS one FROM webhook_logs w WHERE w.request_id = d.request_id LIMIT 1) taken
              ON true";

impl Row for LogRow {
    type Out = ();
    async fn write_one(settings: &Settings, r: &LogRow) -> Result<(), sqlx::Error> {
        LogRow::write_many(settings, &[r]).await.map(|_| ())
    }
    /// In a transaction of the server's own (RLS is forced on the log).
    async fn write_many(settings: &Settings, rs: &[&LogRow]) -> Result<Vec<()>, sqlx::Error> {
        let mut tx = begin(&settings.pool, &DbScope::system()).await?;
        sqlx::query(REFUSE_MANY)
            .bind(col(rs, |r| r.request_id.as_str()))
            .bind(col(rs, |r| r.source))
            .bind(col(rs, |r| r.tenant))
            .bind(col(rs, |r| r.store))
            .bind(col(rs, |r| r.endpoint))
            .bind(col(rs, |r| r.event_type.as_str()))
            .bind(col(rs, |r| r.external_id.as_deref()))
            .bind(col(rs, |r| r.hash.as_deref()))
            .bind(col(rs, |r| r.signature_valid))
            .bind(col(rs, |r| r.status))
            .bind(col(rs, |r| r.url.as_str()))
            .bind(col(rs, |r| &r.headers))
            .bind(col(rs, |r| r.body.as_deref()))
            .bind(col(rs, |r| r.response_code as i32))
            .bind(col(rs, |r| r.error.as_deref()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(vec![(); rs.len()])
    }
}
