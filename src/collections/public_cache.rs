//! Anonymous read responses (storefront traffic), kept for a moment.
//!
//! Only anonymous GETs (list, by id, count) are kept: their answer depends on nothing but the
//! path, the parsed query and the resolved tenant/store, all of which are in the key. Entries
//! live at most `PUBLIC_CACHE_TTL_MS` (1 s by default, which also bounds how late a scheduled
//! publish window is seen) and are dropped on every instance by `NOTIFY cityos_public`
//! whenever a table those responses are built from changes (migration 0012). While the
//! listener is down the cache is bypassed, and a response computed while a change committed
//! is not stored (the generation check of [`NotifiedCache`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::auth::principal::Principal;
use crate::http::error::ApiError;
use crate::http::extract::CallContext;
use crate::notify::NotifiedCache;

/// Responses larger than this are not kept (a few big lists must not evict everything).
const MAX_BODY: usize = 256 * 1024;

#[derive(Clone)]
struct Entry {
    at: Instant,
    body: Bytes,
}

pub struct PublicCache {
    entries: Arc<NotifiedCache<Entry>>,
    ttl: Duration,
    announcer: Arc<Announcer>,
}

/// Other instances learn of this instance's writes from a `NOTIFY cityos_public` sent after the
/// write committed, at most one per [`ANNOUNCE_EVERY`], instead of one inside every write's
/// transaction (migration 0015): PostgreSQL serialises the commits of notifying transactions
/// under one lock held through the commit's disk flush, so a NOTIFY per write capped the write
/// rate at one commit per flush. Sent with `synchronous_commit = off`, the announcement holds
/// that lock for microseconds. If the process dies between a commit and its announcement, other
/// instances still drop the entry within the TTL.
struct Announcer {
    pending: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
    /// `announced:<instance>`: this instance cleared its cache at commit and ignores its own.
    payload: String,
}

/// How often at most this instance announces its writes.
const ANNOUNCE_EVERY: Duration = Duration::from_millis(10);

impl PublicCache {
    pub fn new(ttl_ms: u64, max_entries: usize) -> PublicCache {
        PublicCache {
            entries: NotifiedCache::new(max_entries),
            ttl: Duration::from_millis(ttl_ms),
            announcer: Arc::new(Announcer {
                pending: Default::default(),
                wake: Default::default(),
                payload: format!("announced:{}", uuid::Uuid::new_v4().simple()),
            }),
        }
    }

    /// Tells the other instances (soon, coalesced) that this instance committed a change.
    pub fn announce(&self) {
        use std::sync::atomic::Ordering;
        if !self.announcer.pending.swap(true, Ordering::AcqRel) {
            self.announcer.wake.notify_one();
        }
    }

    /// Sends the announcements until the pool closes, on a connection of its own (idle but for
    /// at most one short statement per [`ANNOUNCE_EVERY`]; its statements are not logged).
    pub fn start_announcer(&self, pool: sqlx::PgPool) -> tokio::task::JoinHandle<()> {
        use sqlx::{ConnectOptions, Connection};
        use std::sync::atomic::Ordering;
        let announcer = self.announcer.clone();
        tokio::spawn(async move {
            let options = (*pool.connect_options()).clone().disable_statement_logging();
            let mut conn: Option<sqlx::PgConnection> = None;
            loop {
                announcer.wake.notified().await;
                if pool.is_closed() {
                    if let Some(c) = conn.take() {
                        let _ = c.close().await;
                    }
                    return;
                }
                // Writes arriving from here on are covered by this announcement or the next.
                announcer.pending.store(false, Ordering::Release);
                if conn.is_none() {
                    conn = sqlx::PgConnection::connect_with(&options).await.ok();
                }
                // The payload is ours (a UUID), not client text: safe to inline in the one
                // simple-query round trip.
                let sql = format!(
                    "BEGIN; SET LOCAL synchronous_commit = off; \
                     SELECT pg_notify('cityos_public', '{}'); COMMIT",
                    announcer.payload
                );
                let sent = match conn.as_mut() {
                    Some(c) => sqlx::Executor::execute(c, sql.as_str()).await.map(|_| ()),
                    None => Err(sqlx::Error::PoolClosed),
                };
                if let Err(e) = sent {
                    // Other instances fall back on the TTL; the next write tries again.
                    tracing::warn!(error = %e, "cannot announce a public change");
                    conn = None;
                }
                tokio::time::sleep(ANNOUNCE_EVERY).await;
            }
        })
    }

    /// Empties the cache on every change made elsewhere (not on this instance's own
    /// announcements: it cleared the cache when it committed).
    pub fn listen(&self, listeners: &crate::notify::Listeners) {
        self.entries
            .listen_except(listeners, "cityos_public", Some(self.announcer.payload.clone()))
    }

    /// Drops every entry (after a write committed by this instance).
    pub fn clear(&self) {
        self.entries.clear();
    }

    /// The key of a cacheable request, `None` when this caller's answers are not kept.
    fn key(&self, ctx: &CallContext, path: &str, query: &Value) -> Option<String> {
        if self.ttl.is_zero() || !matches!(ctx.principal, Principal::Anonymous) {
            return None;
        }
        let id = |u: Option<uuid::Uuid>| u.map_or_else(|| "-".to_string(), |u| u.to_string());
        Some(format!(
            "{}|{}|{path}|{query}",
            id(ctx.tenant.tenant_id),
            id(ctx.tenant.store_id)
        ))
    }

    /// Answers from the cache, or runs `load` and keeps its answer for the next callers.
    pub async fn read<F>(
        &self,
        ctx: &CallContext,
        path: &str,
        query: &Value,
        load: F,
    ) -> Result<Response, ApiError>
    where
        F: std::future::Future<Output = Result<Value, ApiError>>,
    {
        let key = self.key(ctx, path, query);
        if let Some(k) = &key {
            if let Some(hit) = self.entries.get(k).filter(|e| e.at.elapsed() < self.ttl) {
                return Ok(json_bytes(hit.body));
            }
        }
        let generation = self.entries.generation();
        let value = load.await?;
        let body = Bytes::from(serde_json::to_vec(&value).map_err(anyhow::Error::from)?);
        if let Some(k) = key.filter(|_| body.len() <= MAX_BODY) {
            let entry = Entry {
                at: Instant::now(),
                body: body.clone(),
            };
            self.entries.insert(k, entry, generation);
        }
        Ok(json_bytes(body))
    }
}

fn json_bytes(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
