//! An in-memory directory of tenants by handle, so resolving `?tenant=<handle>` costs no query
//! on the hot path. It is emptied on every `cityos_context` notification (sent by triggers on
//! tenants, stores and domains) on every instance, and bypassed while that listener is down.

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

use crate::notify::NotifiedCache;

/// A resolved tenant: id and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantEntry {
    pub id: Uuid,
    pub status: String,
}

pub struct TenantDirectory {
    by_handle: Arc<NotifiedCache<TenantEntry>>,
}

impl TenantDirectory {
    pub fn new() -> Arc<TenantDirectory> {
        Arc::new(TenantDirectory {
            by_handle: NotifiedCache::new(10_000),
        })
    }

    /// The tenant with this handle (`None` when there is none), from the cache when possible.
    pub async fn by_handle(&self, pool: &PgPool, handle: &str) -> Result<Option<TenantEntry>, sqlx::Error> {
        if let Some(hit) = self.by_handle.get(handle) {
            return Ok(Some(hit));
        }
        let generation = self.by_handle.generation();
        let row: Option<(Uuid, String)> = sqlx::query_as("SELECT id, status FROM tenants WHERE handle = $1")
            .bind(handle)
            .fetch_optional(pool)
            .await?;
        let entry = row.map(|(id, status)| TenantEntry { id, status });
        // Unknown handles are not cached: a tenant created a moment ago must resolve at once.
        if let Some(e) = &entry {
            self.by_handle.insert(handle.to_string(), e.clone(), generation);
        }
        Ok(entry)
    }

    pub fn clear(&self) {
        self.by_handle.clear();
    }

    pub fn listen(&self, listeners: &crate::notify::Listeners) {
        self.by_handle.listen(listeners, "cityos_context")
    }
}
