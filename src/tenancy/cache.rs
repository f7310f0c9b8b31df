//! An in-memory directory of tenants by handle, so resolving `?tenant=<handle>` costs no query
//! on the hot path. Every instance LISTENs on `cityos_context` (sent by triggers on tenants,
//! stores and domains) and drops its entries on any change; while the listener is not connected
//! the cache is bypassed, so a missed notification can never serve a stale tenant.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use uuid::Uuid;

/// Upper bound of cached handles; the map is cleared when it is reached.
const MAX_ENTRIES: usize = 10_000;

/// A resolved tenant: id and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantEntry {
    pub id: Uuid,
    pub status: String,
}

#[derive(Default)]
pub struct TenantDirectory {
    by_handle: RwLock<HashMap<String, Option<TenantEntry>>>,
    /// True while the invalidation listener is connected.
    live: AtomicBool,
}

impl TenantDirectory {
    pub fn new() -> Arc<TenantDirectory> {
        Arc::new(TenantDirectory::default())
    }

    /// The tenant with this handle (`None` when there is none), from the cache when possible.
    pub async fn by_handle(&self, pool: &PgPool, handle: &str) -> Result<Option<TenantEntry>, sqlx::Error> {
        let live = self.live.load(Ordering::Acquire);
        if live {
            if let Some(hit) = self.read().get(handle) {
                return Ok(hit.clone());
            }
        }
        let row: Option<(Uuid, String)> = sqlx::query_as("SELECT id, status FROM tenants WHERE handle = $1")
            .bind(handle)
            .fetch_optional(pool)
            .await?;
        let entry = row.map(|(id, status)| TenantEntry { id, status });
        // Unknown handles are not cached: a tenant created a moment ago must resolve at once.
        if live && entry.is_some() {
            let mut map = self.write();
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(handle.to_string(), entry.clone());
        }
        Ok(entry)
    }

    pub fn invalidate(&self) {
        self.write().clear();
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Option<TenantEntry>>> {
        self.by_handle.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Option<TenantEntry>>> {
        self.by_handle.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a LISTEN connection open for as long as the server runs, reconnecting with back-off.
    pub fn spawn_invalidation(self: &Arc<Self>, pool: PgPool) -> tokio::task::JoinHandle<()> {
        let dir = Arc::clone(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match PgListener::connect_with(&pool).await {
                    Ok(mut listener) => {
                        if listener.listen("cityos_context").await.is_ok() {
                            // Anything may have changed while we were not listening.
                            dir.invalidate();
                            dir.live.store(true, Ordering::Release);
                            backoff = Duration::from_millis(200);
                            loop {
                                match listener.try_recv().await {
                                    Ok(Some(_)) => dir.invalidate(),
                                    // None: the connection was lost (PgListener reconnects on the next call).
                                    Ok(None) | Err(_) => {
                                        dir.live.store(false, Ordering::Release);
                                        dir.invalidate();
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "tenant cache listener cannot connect"),
                }
                dir.live.store(false, Ordering::Release);
                if pool.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        })
    }
}
