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
}

impl PublicCache {
    pub fn new(ttl_ms: u64, max_entries: usize) -> PublicCache {
        PublicCache {
            entries: NotifiedCache::new(max_entries),
            ttl: Duration::from_millis(ttl_ms),
        }
    }

    /// Empties the cache on every change.
    pub fn listen(&self, listeners: &crate::notify::Listeners) {
        self.entries.listen(listeners, "cityos_public")
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
