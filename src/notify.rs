//! LISTEN/NOTIFY plumbing shared by the per-instance caches: one connection per channel,
//! reconnected with back-off; while it is down the cache is marked not live (and bypassed),
//! and every reconnect clears it, so a notification missed in between can never leave a stale
//! entry behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;

/// Keeps `live` true only while LISTENing on `channel`; calls `clear` on every notification
/// and whenever the connection is (re)established or lost.
pub fn spawn_listener(
    pool: PgPool,
    channel: &'static str,
    live: Arc<AtomicBool>,
    clear: Arc<dyn Fn() + Send + Sync>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => {
                    if listener.listen(channel).await.is_ok() {
                        clear();
                        live.store(true, Ordering::Release);
                        backoff = Duration::from_millis(200);
                        // None or an error: the connection is gone.
                        while let Ok(Some(_)) = listener.try_recv().await {
                            clear();
                        }
                        live.store(false, Ordering::Release);
                        clear();
                    }
                }
                Err(e) => tracing::debug!(channel, error = %e, "cache listener cannot connect"),
            }
            live.store(false, Ordering::Release);
            if pool.is_closed() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    })
}

/// A per-instance cache emptied by a NOTIFY channel. Lookups bypass it while the listener is
/// down; a value loaded before a concurrent invalidation is not stored (generation check), so a
/// read that raced a change cannot outlive it.
pub struct NotifiedCache<V> {
    live: Arc<AtomicBool>,
    generation: std::sync::atomic::AtomicU64,
    map: std::sync::RwLock<std::collections::HashMap<String, V>>,
    max_entries: usize,
}

impl<V: Clone + Send + Sync + 'static> NotifiedCache<V> {
    pub fn new(max_entries: usize) -> Arc<Self> {
        Arc::new(NotifiedCache {
            live: Arc::new(AtomicBool::new(false)),
            generation: std::sync::atomic::AtomicU64::new(0),
            map: Default::default(),
            max_entries,
        })
    }

    /// A cached value, when the cache is live.
    pub fn get(&self, key: &str) -> Option<V> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Take this before loading from the database; pass it to [`insert`](Self::insert).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores a value loaded at `generation`, unless an invalidation happened since.
    pub fn insert(&self, key: String, value: V, generation: u64) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= self.max_entries {
            map.clear();
        }
        map.insert(key, value);
    }

    pub fn clear(&self) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    /// Starts the listener that keeps this cache honest.
    pub fn spawn(self: &Arc<Self>, pool: PgPool, channel: &'static str) -> tokio::task::JoinHandle<()> {
        let cache = Arc::clone(self);
        spawn_listener(pool, channel, self.live.clone(), Arc::new(move || cache.clear()))
    }
}
