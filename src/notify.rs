//! LISTEN/NOTIFY plumbing shared by the per-instance caches: one connection for all of the
//! instance's channels ([`Listeners`]), reconnected with back-off; while it is down the caches
//! are marked not live (and bypassed), and every reconnect clears them, so a notification missed
//! in between can never leave a stale entry behind.
//!
//! One connection rather than one per channel: PostgreSQL signals every listening backend of the
//! database on each committed NOTIFY, whatever its channel, so each extra listener costs a
//! signal, a wake-up and a context switch on every write of every instance.

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

/// What a channel's notification does, and the flag saying whether it is being heard.
#[derive(Clone)]
struct Subscription {
    channel: &'static str,
    /// Notifications with this payload are not for us (our own announcements).
    ignore: Option<String>,
    live: Arc<AtomicBool>,
    on_notify: Arc<dyn Fn() + Send + Sync>,
}

/// The instance's LISTEN connection: subscribe every channel, then [`start`](Self::start) once.
#[derive(Default)]
pub struct Listeners {
    subscriptions: std::sync::Mutex<Vec<Subscription>>,
}

impl Listeners {
    pub fn new() -> Arc<Listeners> {
        Arc::new(Listeners::default())
    }

    /// `on_notify` runs on every notification of `channel` and whenever the connection is
    /// (re)established or lost; `live` is true only while the channel is being listened to.
    pub fn subscribe(
        &self,
        channel: &'static str,
        live: Arc<AtomicBool>,
        on_notify: Arc<dyn Fn() + Send + Sync>,
    ) {
        self.subscribe_except(channel, None, live, on_notify);
    }

    /// [`subscribe`](Self::subscribe), skipping notifications whose payload is `ignore`.
    pub fn subscribe_except(
        &self,
        channel: &'static str,
        ignore: Option<String>,
        live: Arc<AtomicBool>,
        on_notify: Arc<dyn Fn() + Send + Sync>,
    ) {
        self.subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Subscription {
                channel,
                ignore,
                live,
                on_notify,
            });
    }

    /// Listens to every subscribed channel on one connection, until the pool closes.
    pub fn start(self: &Arc<Self>, pool: PgPool) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                let subs: Vec<Subscription> = this
                    .subscriptions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let mut channels: Vec<&str> = subs.iter().map(|s| s.channel).collect();
                channels.sort_unstable();
                channels.dedup();
                let all = |f: &dyn Fn(&AtomicBool, &(dyn Fn() + Send + Sync))| {
                    for s in &subs {
                        f(&s.live, s.on_notify.as_ref());
                    }
                };
                match PgListener::connect_with(&pool).await {
                    Ok(mut listener) => {
                        if listener.listen_all(channels.iter().copied()).await.is_ok() {
                            all(&|live, on_notify| {
                                on_notify();
                                live.store(true, Ordering::Release);
                            });
                            backoff = Duration::from_millis(200);
                            // None or an error: the connection is gone.
                            while let Ok(Some(n)) = listener.try_recv().await {
                                for s in subs.iter().filter(|s| {
                                    s.channel == n.channel() && s.ignore.as_deref() != Some(n.payload())
                                }) {
                                    (s.on_notify)();
                                }
                            }
                            all(&|live, on_notify| {
                                live.store(false, Ordering::Release);
                                on_notify();
                            });
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "cache listener cannot connect"),
                }
                all(&|live, _| live.store(false, Ordering::Release));
                if pool.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        })
    }
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

    /// Empties this cache on every notification of `channel` (and while it is not heard).
    pub fn listen(self: &Arc<Self>, listeners: &Listeners, channel: &'static str) {
        self.listen_except(listeners, channel, None);
    }

    /// [`listen`](Self::listen), ignoring notifications whose payload is `ignore`.
    pub fn listen_except(
        self: &Arc<Self>,
        listeners: &Listeners,
        channel: &'static str,
        ignore: Option<String>,
    ) {
        let cache = Arc::clone(self);
        listeners.subscribe_except(
            channel,
            ignore,
            self.live.clone(),
            Arc::new(move || cache.clear()),
        );
    }
}
